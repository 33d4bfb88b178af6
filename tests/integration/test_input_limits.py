"""Bad input on every path into a real node (issue 9 A.1, B.5, B.6, C.17, D.18):
REST bodies through the web worker and the ZeroMQ command socket, MQTT payloads through
a real Mosquitto, the config file. Every payload gets one answer, nothing is kept, and
the node keeps answering afterwards."""

from __future__ import annotations

import json
import time

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.integration.conftest import request, wait_for
from tests.integration.test_mqtt import BASE, node_on  # noqa: F401  (fixture)

DEEP = "[" * 1000 + "]" * 1000
HUGE_ID = '{"id": ' + "1" * 4301 + "}"
NAN_ROI = '{"name": "n", "left": NaN, "top": 10, "right": 20, "bottom": 30}'
NAN_PARAMS = '{"name": "motion", "params": {"sensitivity": NaN}}'
INF_PARAMS = '{"name": "example_params", "params": {"level": 1e999}}'

CASES = [  # (command, body, error code, HTTP status)
    ("roi/get", DEEP, "too_large", 413),
    ("roi/get", HUGE_ID, "too_large", 413),
    ("roi/add", NAN_ROI, "invalid_json", 400),
    ("roi/add", NAN_ROI.replace("NaN", "Infinity"), "invalid_json", 400),
    ("module/set", NAN_PARAMS, "invalid_json", 400),
    ("module/set", INF_PARAMS, "invalid_json", 400),
]


def post_raw(url: str, command: str, body: str) -> tuple[int, dict]:
    status, _, data = request(f"{url}/api/{command}", "POST", body.encode(),
                              {"Content-Type": "application/json"})
    return status, json.loads(data)


def test_bad_rest_bodies_are_answered_change_nothing_and_commands_keep_working(
        run_node, tmp_path):
    node = run_node()
    config = tmp_path / "config.json"
    before = config.read_bytes()
    for command, body, code, status in CASES:
        got, reply = post_raw(node.url, command, body)
        assert (got, reply["error"]["code"]) == (status, code), (command, body[:40], reply)
        status2, ok = post_raw(node.url, "roi/get", '{"id": "still-here"}')
        assert status2 == 200 and ok["id"] == "still-here", "command thread died"
    assert config.read_bytes() == before
    state = node.state()
    assert state["module"] == "service" and "NaN" not in json.dumps(state)
    assert request(node.url + "/healthz")[0] == 200


def test_bad_mqtt_payloads_are_answered_change_nothing_and_commands_keep_working(
        node_on, tmp_path):
    node, probe = node_on()
    config = tmp_path / "config.json"
    before = config.read_bytes()
    for command, body, code, _ in CASES:
        mark = probe.mark()
        probe.publish(f"{BASE}/request/{command}", body)
        reply = json.loads(probe.wait(f"{BASE}/response/{command}", since=mark).payload)
        assert reply["error"]["code"] == code, (command, body[:40], reply)
        assert probe.request(BASE, "roi/get", {"id": "alive"})["id"] == "alive"
    assert config.read_bytes() == before
    for topic in ("rois", "state"):  # what was published is strict JSON
        assert all(json.loads(p, parse_constant=pytest.fail)
                   for p in probe.payloads(f"{BASE}/{topic}"))


def test_check_config_refuses_nan_listing_each_path(camnode, write_config):
    path = write_config({"rois": {"d": {"left": "@N", "top": 1, "right": "@I", "bottom": 9}}})
    path.write_text(path.read_text().replace('"@N"', "NaN").replace('"@I"', "-Infinity"))
    check = camnode("check-config", str(path))
    assert check.proc.wait(30) == 1
    assert "$.rois.d.left" in check.output and "$.rois.d.right" in check.output
    assert "Traceback" not in check.output


def test_stale_temp_files_from_a_killed_writer_are_removed_at_start(run_node, tmp_path):
    stale = [tmp_path / ".config.json.k1ll9x.tmp", tmp_path / ".config.json.bak.tmp"]
    for p in stale:
        p.write_text('{"half": ')
    node = run_node()
    wait_for(lambda: not any(p.exists() for p in stale), timeout=5, what="stale files gone")
    assert node.state()["pipeline"] == "running"


@pytest.mark.parametrize("bad", ["camnode/other/request/pipeline/stop", "homeassistant/status",
                                 f"{BASE}/pipeline/set", "zigbee2mqtt/lamp/set"])
def test_response_topic_in_a_command_or_discovery_tree_is_refused(node_on, bad):
    node, probe = node_on(topics=("camnode/#", "homeassistant/#", "zigbee2mqtt/#"))
    mark = probe.mark()
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = bad
    props.CorrelationData = b"corr"
    probe.publish(f"{BASE}/request/pipeline/stop", {"id": "evil"}, properties=props)
    msg = probe.wait(f"{BASE}/response/pipeline/stop", since=mark)
    reply = json.loads(msg.payload)
    assert reply["id"] == "evil" and reply["error"]["code"] == "validation_failed"
    assert reply["error"]["details"] == [{"path": "response_topic",
                                          "reason": reply["error"]["details"][0]["reason"]}]
    assert msg.properties.CorrelationData == b"corr"
    probe.request(BASE, "roi/get", {"id": "after"})  # everything before it has been handled
    assert probe.payloads(bad, since=mark) == []
    assert node.state()["pipeline"] == "running"


def test_back_online_within_5_s_after_a_long_broker_outage(node_on, broker, probe_factory):
    node, probe = node_on()
    broker.stop()
    wait_for(lambda: node.state()["mqtt"]["connected"] is False, what="node sees broker gone")
    time.sleep(20)  # the outage itself: paho's old back-off (1, 2, 4, 8, 16 s) waited 11 s more
    broker.start()
    back = time.monotonic()
    again = probe_factory(broker.port, client_id="after-outage")
    again.wait(f"{BASE}/availability", lambda m: m.payload == b"online", timeout=30)
    took = time.monotonic() - back
    assert took < 5, f"node back online {took:.1f} s after the broker"
