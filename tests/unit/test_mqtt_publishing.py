"""What the MQTT bridge publishes for Home Assistant, and when: state and diagnostics,
discovery with the object detector's labels, snapshots. A recording client stands in
for paho; time is driven by the test (no sleeps)."""

from __future__ import annotations

import json

import pytest

from camnode.node import mqtt_retained, transport
from camnode.node.config import parse_config
from camnode.node.discovery import label_component_ids
from camnode.node.loader import Registry
from camnode.node.mqtt_bridge import DIAGNOSTICS_MIN_INTERVAL_S, MqttBridge, fps_changed


class Recorder:
    """Stands in for paho's client: records (topic, payload, retain)."""

    def __init__(self):
        self.sent: list[tuple[str, object, bool]] = []

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        self.sent.append((topic, payload, retain))

    def on(self, topic: str) -> list:
        return [(p, r) for t, p, r in self.sent if t == topic]


BASE = {"node_id": "porch", "camera": {"source": "synthetic"},
        "rois": {"door": {"left": 1, "top": 1, "right": 50, "bottom": 50}},
        "mqtt": {"stats_interval_s": 30}}


@pytest.fixture
def bridge(monkeypatch):
    """A bridge as node/wiring.py builds it, told the ROIs the way the core tells it
    (the core topic `rois`); tests hand it states with `publish_state`."""
    clock = {"now": 1000.0}
    monkeypatch.setattr(mqtt_retained.time, "monotonic", lambda: clock["now"])

    def make(doc: dict | None = None) -> tuple[MqttBridge, Recorder, dict]:
        cfg = parse_config({**BASE, **(doc or {})})
        b = MqttBridge(cfg.mqtt, "127.0.0.1", 1883, cfg.node_id,
                       web_url="http://cam.local:8080/")
        rec = Recorder()
        b._client, b.connected = rec, True
        b.publish(transport.ROIS, {"version": cfg.rois_version, "rois": cfg.rois, "removed": {}})
        rec.sent.clear()
        return b, rec, clock
    return make


def state(**kw) -> dict:
    s = {"pipeline": "running", "module": "service", "modules": ["service"], "fps": 30.0,
         "viewers": 0, "last_error": None, "module_error": None, "source": {"status": "ok"}}
    s.update(kw)
    return s


def states_sent(rec: Recorder) -> list[dict]:
    return [json.loads(p) for p, _ in rec.on("camnode/porch/state")]


# -- diagnostics: on change, rate-limited, 0 when stopped (item 4) ---------------------------
@pytest.mark.parametrize("before, now, changed", [
    (30.0, 29.6, False), (30.0, 30.9, False), (30.0, 26.0, True), (30.0, 0.0, True),
    (0.0, 0.4, True), (None, 30.0, True), (5.0, 5.8, False), (5.0, 6.0, True)])
def test_fps_changed_ignores_jitter_and_sees_real_changes(before, now, changed):
    assert fps_changed(before, now) is changed


def test_frame_rate_change_is_published_within_the_rate_limit_not_the_stats_interval(bridge):
    b, rec, clock = bridge()
    b.publish_state(state(fps=30.0))
    assert len(states_sent(rec)) == 1
    clock["now"] += 1
    b.publish_state(state(fps=29.7))  # jitter: nothing
    b.publish_state(state(fps=12.0))  # a real change, but within the rate limit
    assert len(states_sent(rec)) == 1
    clock["now"] += DIAGNOSTICS_MIN_INTERVAL_S
    b.publish_state(state(fps=12.0))
    assert states_sent(rec)[-1]["fps"] == 12.0  # seconds, not stats_interval_s (30 s)


def test_stopping_is_published_at_once_and_the_frame_rate_follows(bridge):
    b, rec, clock = bridge()
    b.publish_state(state(fps=30.0))
    clock["now"] += 0.5
    b.publish_state(state(pipeline="stopped", fps=30.0))  # frames still fresh
    assert states_sent(rec)[-1]["pipeline"] == "stopped"
    clock["now"] += 1
    b.publish_state(state(pipeline="stopped", fps=0.0))  # frames stale: the rate drops
    assert len(states_sent(rec)) == 2  # not yet: rate limit
    clock["now"] += DIAGNOSTICS_MIN_INTERVAL_S
    b.publish_state(state(pipeline="stopped", fps=0.0))
    assert states_sent(rec)[-1]["fps"] == 0.0  # flows reading the raw state see it too


# -- problems (item 3) -----------------------------------------------------------------------
def test_a_new_problem_is_published_at_once_and_a_missing_health_report_is_fine(bridge):
    b, rec, clock = bridge()
    b.publish_state(state())  # no "health" key: a node without the report
    ok = {"ok": True, "problems": []}
    clock["now"] += 0.1
    b.publish_state(state(health=ok))
    n = len(states_sent(rec))
    clock["now"] += 0.1
    b.publish_state(state(health=ok))
    assert len(states_sent(rec)) == n  # unchanged health: no message
    bad = {"ok": False, "problems": [{"part": "source", "reason": "lost", "since": 5.0}]}
    clock["now"] += 0.1
    b.publish_state(state(health=bad))
    assert states_sent(rec)[-1]["health"]["ok"] is False
    clock["now"] += 0.1
    slow = {"part": "module", "reason": "slow: 212 ms a frame", "since": 6.0}
    b.publish_state(state(health={"ok": False, "problems": [*bad["problems"], slow]}))
    assert [p["part"] for p in states_sent(rec)[-1]["health"]["problems"]] == \
        ["source", "module"]  # a second part in trouble: at once
    n = len(states_sent(rec))
    clock["now"] += 0.1
    b.publish_state(state(health={"ok": False, "problems": [
        *bad["problems"], {**slow, "reason": "slow: 230 ms a frame"}]}))
    assert len(states_sent(rec)) == n  # only the numbers in a reason moved: no message
    clock["now"] += 0.1
    b.publish_state(state(health={"ok": False, "problems": [
        *bad["problems"], {**slow, "reason": "failing: ValueError"}]}))
    assert states_sent(rec)[-1]["health"]["problems"][1]["reason"] == "failing: ValueError"


# -- labels and removals (item 8) ------------------------------------------------------------
def discovery(rec: Recorder) -> dict:
    return json.loads(rec.on("homeassistant/device/camnode_porch/config")[-1][0])


def test_labels_from_the_state_become_entities_and_leave_when_the_module_stops_tracking(bridge):
    b, rec, clock = bridge()
    b.publish_state(state(module_status={"labels": ["person", "car"]}))
    b.publish_discovery()
    comps = discovery(rec)["components"]
    occ, cnt = label_component_ids("door", "person")
    assert comps[occ]["default_entity_id"] == \
        "binary_sensor.camnode_porch_roi_door_person_occupancy"
    assert comps[cnt]["state_topic"] == "camnode/porch/roi/door/person/count"
    clock["now"] += 0.1
    b.publish_state(state(module_status={"labels": ["person"]}))
    b.publish_discovery()
    comps = discovery(rec)["components"]
    assert comps[label_component_ids("door", "car")[0]] == {"p": "binary_sensor"}
    assert comps[label_component_ids("door", "car")[1]] == {"p": "sensor"}
    assert "default_entity_id" in comps[occ]
    n = len(rec.on("homeassistant/device/camnode_porch/config"))
    b.publish_discovery()  # nothing changed: nothing sent
    assert len(rec.on("homeassistant/device/camnode_porch/config")) == n


# -- examples out of the select (item 5) -----------------------------------------------------
def test_examples_are_not_offered_but_a_configured_example_still_shows(bridge):
    # The core's state lists what can be selected (Registry.offered); discovery offers that.
    assert "service" in Registry().offered("service")
    assert not [m for m in Registry().offered("service") if m.startswith("example_")]
    offered = Registry().offered("example_minimal")
    assert "example_minimal" in offered and "example_params" not in offered
    assert "example_params" in Registry(examples=True).offered("service")
    assert "nosuchmodule" not in Registry().offered("nosuchmodule")
    b, rec, _ = bridge({"pipeline": {"module": "example_minimal"}})
    b.publish(transport.STATE, state(module="example_minimal", modules=offered))
    options = discovery(rec)["components"]["module"]["options"]
    assert options == offered


# -- device name (item 2) and configuration URL (item 7) ---------------------------------------
def test_device_named_after_the_node_and_linked_to_its_page(bridge):
    b, rec, _ = bridge()
    b.publish(transport.STATE, state(name="porch"))
    device = discovery(rec)["device"]
    assert device["name"] == "porch"
    assert device["configuration_url"] == "http://cam.local:8080/"


# -- snapshots (item 6) ------------------------------------------------------------------------
def test_snapshot_goes_retained_to_the_camera_and_once_unretained_to_the_image_entity(bridge):
    b, rec, _ = bridge()
    b.publish(transport.STATE, state())
    image_topic = discovery(rec)["components"]["snapshot"]["image_topic"]
    camera_topic = discovery(rec)["components"]["camera"]["topic"]
    b.snapshot(b"\xff\xd8jpeg", 1.0)
    assert rec.on(image_topic) == [(b"\xff\xd8jpeg", False)]
    assert rec.on(camera_topic) == [(b"\xff\xd8jpeg", True)]
