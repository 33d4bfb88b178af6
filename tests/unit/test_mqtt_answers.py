"""MQTT answers without a broker: which response topics are refused (C.17), and a
request refused for a full queue still echoes its id (B.7). The bridge is subscribed to a
real Node's command handler, as node/wiring.py does; paho's client is replaced by a
recorder of publishes."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from types import SimpleNamespace

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from camnode.node import response_topic
from camnode.node.config import MqttConfig, TlsConfig
from camnode.node.mqtt_bridge import MqttBridge, _no_delay
from camnode.node.topics import Topics
from tests.unit.test_dispatcher import config_path, node  # noqa: F401  (fixtures)

TOPICS = Topics.for_node("camnode", "porch")


@pytest.mark.parametrize("topic", [
    "", "a/+/b", "a/#", "#", "$SYS/x", "nul\0byte", "x" * 70_000,
    "camnode/other/request/pipeline/stop", "camnode/porch/request/roi/delete",
    "camnode/other/pipeline/set", "camnode/other/module/set", "camnode/other/state",
    "camnode/porch/availability", "camnode", "homeassistant/status",
    "homeassistant/device/camnode_x/config", "homeassistant",
    "zigbee2mqtt/lamp/set", "zigbee2mqtt/lamp/set/state", "garage/cam/request/x",
    "cmnd/plug/POWER", "shellies/relay/0/Command",
])
def test_dangerous_response_topics_are_refused(topic):
    assert response_topic.problem(topic, TOPICS)


@pytest.mark.parametrize("topic", [
    "my/replies", "nodered/camnode-replies/42", "camnode/porch/response/state/get/mine",
    "app/settings-reply",
])
def test_ordinary_response_topics_are_accepted(topic):
    assert response_topic.problem(topic, TOPICS) is None


def test_configured_trees_are_refused_too():
    topics = Topics.for_node("house/cams", "porch", "ha")
    assert response_topic.problem("ha/status", topics)
    assert response_topic.problem("house/cams/other/state", topics)
    assert response_topic.problem("house/cams/porch/response/x", topics) is None


class Recorder:
    def __init__(self):
        self.published: list[tuple[str, bytes, object]] = []

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        if "+" in topic or "#" in topic:
            raise ValueError("Publish topic cannot contain wildcards.")
        self.published.append((topic, payload, properties))


@pytest.fixture
def bridge(node):  # noqa: F811
    cfg = MqttConfig(enabled=True, host="127.0.0.1", port=1, username=None, protocol="5",
                     keepalive=30, base_topic="camnode", tls=TlsConfig(), discovery=False,
                     discovery_prefix="homeassistant", stats_interval_s=30, public_url=None)
    b = MqttBridge(cfg, "127.0.0.1", 1, node.store.config.node_id,
                   supervisor=node.supervisor, on_change=node.notify)
    b.subscribe(node.dispatcher.handle)
    b._client, b.connected = Recorder(), True
    return b


def message(topic: str, payload, response: str | None = None, correlation: bytes | None = None):
    props = Properties(PacketTypes.PUBLISH)
    if response is not None:
        props.ResponseTopic = response
    if correlation is not None:
        props.CorrelationData = correlation
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return SimpleNamespace(topic=topic, payload=data, retain=False, properties=props)


def test_full_queue_answers_unavailable_with_the_request_id(bridge):
    while True:
        try:
            bridge._queue.put_nowait(None)
        except queue.Full:
            break
    base = bridge.topics.base
    bridge._on_message(None, None, message(f"{base}/request/roi/get", {"id": "flood-7"}))
    bridge._on_message(None, None, message(f"{base}/request/roi/get", b"{broken"))
    answers = [json.loads(p) for t, p, _ in bridge._client.published]
    assert [(a["error"]["code"], a["id"]) for a in answers] == [("unavailable", "flood-7"),
                                                                  ("unavailable", None)]


def test_refused_response_topic_is_answered_on_our_own_topic_and_changes_nothing(
        bridge, node):  # noqa: F811
    base = bridge.topics.base
    before = node.store.config.rois_version
    msg = message(f"{base}/request/roi/add",
                  {"id": "r1", "name": "x", "left": 1, "top": 1, "right": 9, "bottom": 9},
                  response="camnode/other/request/pipeline/stop", correlation=b"c-1")
    bridge._handle(msg)
    [(topic, body, props)] = bridge._client.published
    answer = json.loads(body)
    assert topic == f"{base}/response/roi/add" and props.CorrelationData == b"c-1"
    assert answer["id"] == "r1" and answer["error"]["code"] == "validation_failed"
    assert answer["error"]["details"][0]["path"] == "response_topic"
    assert node.store.config.rois_version == before


def test_accepted_response_topic_gets_the_answer_with_correlation_data(bridge):
    base = bridge.topics.base
    bridge._handle(message(f"{base}/request/roi/get", {"id": 5}, response="my/replies",
                           correlation=b"xyz"))
    topics = [(t, p.CorrelationData) for t, _, p in bridge._client.published]
    assert topics == [(f"{base}/response/roi/get", b"xyz"), ("my/replies", b"xyz")]


def test_oversize_mqtt_payload_is_answered_too_large(bridge):
    base = bridge.topics.base
    bridge._handle(message(f"{base}/module/set", b"x" * (1024 * 1024)))
    [(_, body, _)] = bridge._client.published
    assert json.loads(body)["error"]["code"] == "too_large"


def test_no_delay_sets_tcp_nodelay():
    with socket.socket() as s:
        _no_delay(None, None, s)
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_request_that_raises_is_still_answered_internal_error(bridge, monkeypatch, caplog):
    def broken(command, payload, allow_internal=True):
        raise RuntimeError("bug in a handler")

    bridge.subscribe(broken)
    bridge._queue.put(message(f"{bridge.topics.base}/request/roi/get", {"id": "b1"}))
    bridge._stop.clear()
    worker = threading.Thread(target=bridge._work, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while not bridge._client.published and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        bridge._stop.set()
        worker.join(2)
    [(topic, body, _)] = bridge._client.published
    assert json.loads(body)["error"]["code"] == "internal_error"
    assert json.loads(body)["id"] == "b1" and "bug in a handler" in caplog.text
