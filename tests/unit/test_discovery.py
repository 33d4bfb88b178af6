"""Unit tests for node.discovery: the Home Assistant device-based discovery document.

The expected document below is written out by hand: it is the contract with Home
Assistant's MQTT device discovery (`<prefix>/device/<object_id>/config`, one message with
`device`, `origin`, shared `availability`/`qos` and a `components` map whose entries carry
their platform in `p`).
"""

from __future__ import annotations

import copy
import json
import re

import pytest

from node import __version__
from node.discovery import discovery_payload, roi_component_ids
from node.topics import Topics

TOPICS = Topics.for_node("camnode", "porch")
ARGS = dict(topics=TOPICS, node_id="porch", name="Porch camera",
            modules=["motion", "passthrough"], rois=["door"],
            config_url="http://cam.local:8080/")

EXPECTED = {
    "device": {
        "identifiers": ["camnode_porch"],
        "name": "Porch camera",
        "manufacturer": "camnode",
        "model": "camnode camera node",
        "sw_version": __version__,
        "configuration_url": "http://cam.local:8080/",
    },
    "origin": {"name": "camnode", "sw_version": __version__},
    "availability": [{"topic": "camnode/porch/availability",
                      "payload_available": "online",
                      "payload_not_available": "offline"}],
    "qos": 1,
    "components": {
        "pipeline": {
            "p": "switch",
            "name": "Pipeline",
            "unique_id": "camnode_porch_pipeline",
            "default_entity_id": "switch.camnode_porch_pipeline",
            "command_topic": "camnode/porch/pipeline/set",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ 'ON' if value_json.pipeline == 'running' else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "icon": "mdi:cctv",
        },
        "module": {
            "p": "select",
            "name": "Module",
            "unique_id": "camnode_porch_module",
            "default_entity_id": "select.camnode_porch_module",
            "command_topic": "camnode/porch/module/set",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ value_json.module }}",
            "options": ["motion", "passthrough"],
            "icon": "mdi:image-filter-center-focus",
        },
        "fps": {
            "p": "sensor",
            "name": "Frame rate",
            "unique_id": "camnode_porch_fps",
            "default_entity_id": "sensor.camnode_porch_fps",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ value_json.fps }}",
            "unit_of_measurement": "fps",
            "state_class": "measurement",
            "entity_category": "diagnostic",
            "icon": "mdi:speedometer",
        },
        "viewers": {
            "p": "sensor",
            "name": "Viewers",
            "unique_id": "camnode_porch_viewers",
            "default_entity_id": "sensor.camnode_porch_viewers",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ value_json.viewers }}",
            "state_class": "measurement",
            "entity_category": "diagnostic",
            "icon": "mdi:eye",
        },
        "source": {
            "p": "sensor",
            "name": "Source",
            "unique_id": "camnode_porch_source",
            "default_entity_id": "sensor.camnode_porch_source",
            "state_topic": "camnode/porch/state",
            "value_template": "{{ value_json.source.status }}",
            "entity_category": "diagnostic",
            "icon": "mdi:camera",
        },
        "motion": {
            "p": "binary_sensor",
            "name": "Motion",
            "unique_id": "camnode_porch_motion",
            "default_entity_id": "binary_sensor.camnode_porch_motion",
            "state_topic": "camnode/porch/motion",
            "device_class": "motion",
            "payload_on": "ON",
            "payload_off": "OFF",
        },
        "snapshot": {
            "p": "image",
            "name": "Snapshot",
            "unique_id": "camnode_porch_snapshot",
            "default_entity_id": "image.camnode_porch_snapshot",
            "image_topic": "camnode/porch/snapshot",
            "content_type": "image/jpeg",
        },
        "camera": {
            "p": "camera",
            "name": "Camera",
            "unique_id": "camnode_porch_camera",
            "default_entity_id": "camera.camnode_porch_camera",
            "topic": "camnode/porch/snapshot",
        },
        "restart": {
            "p": "button",
            "name": "Restart pipeline",
            "unique_id": "camnode_porch_restart",
            "default_entity_id": "button.camnode_porch_restart",
            "command_topic": "camnode/porch/request/pipeline/restart",
            "payload_press": "{}",
            "icon": "mdi:restart",
        },
        "take_snapshot": {
            "p": "button",
            "name": "Take snapshot",
            "unique_id": "camnode_porch_take_snapshot",
            "default_entity_id": "button.camnode_porch_take_snapshot",
            "command_topic": "camnode/porch/request/snapshot",
            "payload_press": "{}",
            "icon": "mdi:camera-iris",
        },
        "rois": {
            "p": "sensor",
            "name": "Regions of interest",
            "unique_id": "camnode_porch_rois",
            "default_entity_id": "sensor.camnode_porch_rois",
            "state_topic": "camnode/porch/rois",
            "value_template": "{{ value_json.rois | count }}",
            "json_attributes_topic": "camnode/porch/rois",
            "json_attributes_template": "{{ value_json.rois | tojson }}",
            "entity_category": "diagnostic",
            "icon": "mdi:vector-rectangle",
        },
        "roi_door_occupancy": {
            "p": "binary_sensor",
            "name": "door occupancy",
            "unique_id": "camnode_porch_roi_door_occupancy",
            "default_entity_id": "binary_sensor.camnode_porch_roi_door_occupancy",
            "state_topic": "camnode/porch/roi/door/occupancy",
            "device_class": "occupancy",
            "payload_on": "ON",
            "payload_off": "OFF",
        },
        "roi_door_count": {
            "p": "sensor",
            "name": "door count",
            "unique_id": "camnode_porch_roi_door_count",
            "default_entity_id": "sensor.camnode_porch_roi_door_count",
            "state_topic": "camnode/porch/roi/door/count",
            "state_class": "measurement",
            "icon": "mdi:counter",
        },
    },
}

# Platforms Home Assistant's MQTT integration supports in device discovery that we use.
HA_PLATFORMS = {"switch", "select", "sensor", "binary_sensor", "image", "camera", "button"}
COMPONENT_ID = re.compile(r"^[a-z0-9_]+$")


def payload(**overrides) -> dict:
    return discovery_payload(**{**ARGS, **overrides})


def entities(doc: dict) -> dict:
    """Components that describe an entity (not platform-only removals)."""
    return {k: v for k, v in doc["components"].items() if set(v) != {"p"}}


# -- the full contract -------------------------------------------------------------------
def test_payload_for_porch_node_matches_the_home_assistant_contract_exactly():
    assert payload() == EXPECTED


def test_payload_component_keys_in_full_contract():
    # A second view of the same contract, so a mismatch names the component that differs.
    doc = payload()
    assert set(doc) == {"device", "origin", "availability", "components", "qos"}
    assert list(doc["components"]) == list(EXPECTED["components"])
    for key, comp in EXPECTED["components"].items():
        assert doc["components"][key] == comp, key


def test_payload_is_what_the_mqtt_bridge_publishes_on_the_device_discovery_topic():
    assert TOPICS.discovery == "homeassistant/device/camnode_porch/config"
    # The device object id in the topic and the device identifier agree.
    assert payload()["device"]["identifiers"] == ["camnode_porch"]


# -- per-key rules -------------------------------------------------------------------------
def test_every_entity_has_a_known_platform_unique_id_and_domain_qualified_default_entity_id():
    doc = payload(rois=["door", "Front Gate"])
    for key, comp in entities(doc).items():
        assert comp["p"] in HA_PLATFORMS, key
        assert comp["unique_id"] == f"camnode_porch_{key}"
        # default_entity_id (HA 2025.10+) is "<domain>.<object id>", unlike object_id.
        domain, _, object_id = comp["default_entity_id"].partition(".")
        assert domain == comp["p"], key
        assert re.fullmatch(r"[a-z0-9_]+", object_id), key
        assert comp["name"], key


def test_no_component_uses_the_deprecated_object_id():
    doc = payload(rois=["door", "yard"], removed_rois=["old"])
    for key, comp in doc["components"].items():
        assert "object_id" not in comp, key
    assert "object_id" not in doc


def test_every_entity_unique_id_is_unique():
    doc = payload(rois=["door", "yard", "Front-Gate", "a_b"])
    ids = [c["unique_id"] for c in entities(doc).values()]
    assert len(ids) == len(set(ids)) == 11 + 2 * 4
    dids = [c["default_entity_id"] for c in entities(doc).values()]
    assert len(dids) == len(set(dids))


def test_availability_uses_the_nodes_availability_topic_with_online_offline():
    doc = payload(topics=Topics.for_node("home/cams/", "garden"), node_id="garden")
    assert doc["availability"] == [{"topic": "home/cams/garden/availability",
                                    "payload_available": "online",
                                    "payload_not_available": "offline"}]


def test_topics_follow_base_topic_and_node():
    t = Topics.for_node("home/cams", "garden")
    doc = payload(topics=t, node_id="garden", rois=["yard"])
    comps = doc["components"]
    assert comps["pipeline"]["command_topic"] == "home/cams/garden/pipeline/set"
    assert comps["module"]["command_topic"] == "home/cams/garden/module/set"
    assert comps["snapshot"]["image_topic"] == "home/cams/garden/snapshot"
    assert comps["camera"]["topic"] == "home/cams/garden/snapshot"
    assert comps["roi_yard_occupancy"]["state_topic"] == "home/cams/garden/roi/yard/occupancy"
    assert comps["roi_yard_count"]["state_topic"] == "home/cams/garden/roi/yard/count"
    assert comps["restart"]["command_topic"] == "home/cams/garden/request/pipeline/restart"
    assert doc["device"]["identifiers"] == ["camnode_garden"]


def test_payload_is_json_serialisable_and_round_trips():
    doc = payload(rois=["door", "yard"], removed_rois=["old"])
    assert json.loads(json.dumps(doc)) == doc


def test_no_configuration_url_key_when_config_url_is_missing():
    assert "configuration_url" not in payload(config_url=None)["device"]
    assert "configuration_url" not in payload(config_url="")["device"]


def test_select_options_fall_back_to_passthrough_when_no_modules():
    assert payload(modules=[])["components"]["module"]["options"] == ["passthrough"]


def test_select_options_are_a_copy_of_the_modules_list():
    modules = ["motion", "passthrough"]
    doc = payload(modules=modules)
    doc["components"]["module"]["options"].append("x")
    assert modules == ["motion", "passthrough"]


def test_no_rois_gives_no_roi_components():
    comps = payload(rois=[])["components"]
    assert not [k for k in comps if k.startswith("roi_")]
    assert set(comps) == set(EXPECTED["components"]) - {"roi_door_occupancy", "roi_door_count"}


# -- ROIs: removal and component ids -------------------------------------------------------
def test_removed_roi_is_sent_as_platform_only_components():
    comps = payload(rois=["door"], removed_rois=["yard"])["components"]
    assert comps["roi_yard_occupancy"] == {"p": "binary_sensor"}
    assert comps["roi_yard_count"] == {"p": "sensor"}
    assert comps["roi_door_occupancy"] == EXPECTED["components"]["roi_door_occupancy"]
    assert comps["roi_door_count"] == EXPECTED["components"]["roi_door_count"]


def test_roi_both_removed_and_present_is_not_removed():
    comps = payload(rois=["door"], removed_rois=["door"])["components"]
    assert comps["roi_door_occupancy"] == EXPECTED["components"]["roi_door_occupancy"]
    assert comps["roi_door_count"] == EXPECTED["components"]["roi_door_count"]


@pytest.mark.parametrize("roi, prefix", [
    ("door", "roi_door"),
    ("Front Door", "roi_front_door_"),
    ("front-door", "roi_front_door_"),
    ("  Gate #2!  ", "roi_gate_2_"),
    ("Zone_A", "roi_zone_a_"),
    ("Tür", "roi_t_r_"),
    ("!!!", "roi_x_"),
])
def test_roi_names_with_odd_characters_give_valid_component_ids(roi, prefix):
    occ, cnt = roi_component_ids(roi)
    assert occ.startswith(prefix) and occ.endswith("_occupancy")
    assert cnt.startswith(prefix) and cnt.endswith("_count")
    if roi == "door":  # clean names stay readable, without a hash
        assert (occ, cnt) == ("roi_door_occupancy", "roi_door_count")
    comps = payload(rois=[roi])["components"]
    assert occ in comps and cnt in comps
    for key in comps:
        assert COMPONENT_ID.fullmatch(key), key
    # The entity keeps the ROI's real name and topics; only ids are slugged.
    assert comps[occ]["name"] == f"{roi} occupancy"
    assert comps[occ]["state_topic"] == TOPICS.occupancy(roi)
    assert comps[occ]["unique_id"] == f"camnode_porch_{occ}"


def test_node_id_is_slugged_in_unique_ids_and_device_identifier():
    doc = payload(topics=Topics.for_node("camnode", "Porch-1"), node_id="Porch-1")
    ident = doc["device"]["identifiers"][0]
    assert re.fullmatch(r"camnode_porch_1_[0-9a-f]{6}", ident)
    assert doc["components"]["pipeline"]["unique_id"] == f"{ident}_pipeline"
    assert doc["components"]["pipeline"]["default_entity_id"] == f"switch.{ident}_pipeline"


def test_removed_roi_whose_slug_matches_a_present_roi_does_not_delete_it():
    comps = payload(rois=["door"], removed_rois=["Door"])["components"]
    assert comps["roi_door_occupancy"] == EXPECTED["components"]["roi_door_occupancy"]
    assert comps["roi_door_count"] == EXPECTED["components"]["roi_door_count"]


def test_distinct_roi_names_get_distinct_components():
    comps = payload(rois=["front-door", "front_door"])["components"]
    topics = {c["state_topic"] for c in comps.values()
              if c.get("device_class") == "occupancy"}
    assert topics == {TOPICS.occupancy("front-door"), TOPICS.occupancy("front_door")}


def test_distinct_node_ids_get_distinct_device_identifiers():
    a = payload(topics=Topics.for_node("camnode", "porch-1"), node_id="porch-1")
    b = payload(topics=Topics.for_node("camnode", "porch_1"), node_id="porch_1")
    assert a["device"]["identifiers"] != b["device"]["identifiers"]


# -- purity ------------------------------------------------------------------------------
def test_function_is_pure_same_inputs_equal_output_and_inputs_not_mutated():
    modules, rois, removed = ["motion", "passthrough"], ["door", "yard"], ["old", "door"]
    before = copy.deepcopy((modules, rois, removed))
    t = Topics.for_node("camnode", "porch")
    a = discovery_payload(t, "porch", "Porch camera", modules, rois, removed,
                          "http://cam.local:8080/")
    b = discovery_payload(t, "porch", "Porch camera", modules, rois, removed,
                          "http://cam.local:8080/")
    assert a == b
    assert a is not b
    assert (modules, rois, removed) == before
    assert t == Topics.for_node("camnode", "porch")


def test_returned_documents_share_no_mutable_state():
    a = payload()
    a["components"]["pipeline"]["name"] = "changed"
    a["availability"][0]["topic"] = "changed"
    a["device"]["identifiers"].append("changed")
    assert payload() == EXPECTED
