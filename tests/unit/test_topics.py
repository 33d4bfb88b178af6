"""Unit tests for node.topics: every MQTT topic name of a node and command_of."""

from __future__ import annotations

import pytest

from camnode.node.topics import PLAIN_COMMANDS, Topics


@pytest.fixture
def t() -> Topics:
    return Topics.for_node("camnode", "porch")


def test_base_is_base_topic_slash_node_id(t):
    assert t.base == "camnode/porch"
    assert t.node_id == "porch"
    assert t.discovery_prefix == "homeassistant"


def test_trailing_slash_on_base_topic_does_not_double_the_separator():
    assert Topics.for_node("camnode/", "porch") == Topics.for_node("camnode", "porch")
    assert Topics.for_node("home/cams//", "porch").base == "home/cams/porch"
    assert Topics.for_node("camnode/", "porch").availability == "camnode/porch/availability"


def test_node_level_topic_names(t):
    assert t.availability == "camnode/porch/availability"
    assert t.state == "camnode/porch/state"
    assert t.rois == "camnode/porch/rois"
    assert t.info == "camnode/porch/info"
    assert t.stats == "camnode/porch/stats"
    assert t.events == "camnode/porch/events"
    assert t.motion == "camnode/porch/motion"
    assert t.snapshot == "camnode/porch/snapshot"
    assert t.pipeline_set == "camnode/porch/pipeline/set"
    assert t.module_set == "camnode/porch/module/set"


def test_request_and_response_topics_including_nested_commands(t):
    assert t.request_filter == "camnode/porch/request/#"
    assert t.request("state/get") == "camnode/porch/request/state/get"
    assert t.request("roi/add") == "camnode/porch/request/roi/add"
    assert t.response("roi/add") == "camnode/porch/response/roi/add"
    assert t.request("snapshot") == "camnode/porch/request/snapshot"


def test_per_roi_occupancy_and_count_topics(t):
    assert t.occupancy("door") == "camnode/porch/roi/door/occupancy"
    assert t.count("door") == "camnode/porch/roi/door/count"


def test_discovery_topic_is_device_based_under_prefix(t):
    assert t.discovery == "homeassistant/device/camnode_porch/config"
    assert t.ha_status == "homeassistant/status"


def test_custom_discovery_prefix_is_used_for_discovery_and_ha_status():
    t = Topics.for_node("camnode", "porch", "ha")
    assert t.discovery == "ha/device/camnode_porch/config"
    assert t.ha_status == "ha/status"


def test_command_of_request_topics_returns_the_command_path(t):
    assert t.command_of("camnode/porch/request/state/get") == "state/get"
    assert t.command_of("camnode/porch/request/roi/add") == "roi/add"
    assert t.command_of("camnode/porch/request/pipeline/restart") == "pipeline/restart"
    assert t.command_of(t.request("roi/delete")) == "roi/delete"


def test_command_of_plain_set_topics_returns_their_name(t):
    assert PLAIN_COMMANDS == {"pipeline/set", "module/set"}
    assert t.command_of("camnode/porch/pipeline/set") == "pipeline/set"
    assert t.command_of("camnode/porch/module/set") == "module/set"


@pytest.mark.parametrize("topic", [
    "camnode/garden/request/state/get",       # another node
    "camnode/garden/pipeline/set",             # another node's plain topic
    "camnode/porch/response/state/get",        # our own reply
    "camnode/porch/state",
    "camnode/porch/requests/state/get",        # look-alike prefix
    "camnode/porchx/request/state/get",        # node id prefix of another node
    "other/porch/request/state/get",
    "camnode/porch/pipeline/set/extra",
    "camnode/porch/request",                   # no trailing slash, no command
    "homeassistant/status",
    "",
])
def test_command_of_foreign_topics_is_none(t, topic):
    assert t.command_of(topic) is None


def test_command_of_with_trailing_slash_base_topic():
    t = Topics.for_node("camnode/", "porch")
    assert t.command_of("camnode/porch/request/roi/add") == "roi/add"
    assert t.command_of("camnode/porch/module/set") == "module/set"
