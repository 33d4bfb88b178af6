"""camnode as Home Assistant sees it, against a real Mosquitto: the discovery message a
running node publishes, the image entity across a broker restart, fresh diagnostics, and
a refused module showing as the last error. The probe plays Home Assistant."""

from __future__ import annotations

import json
import os

import jinja2
import pytest

from tests import ha_mqtt_discovery as ha
from tests.integration.conftest import Broker, MjpegReader

BASE = "camnode/test"
DISCOVERY = "homeassistant/device/camnode_test/config"


def _json(msg) -> dict:
    return json.loads(msg.payload)


def _render(template: str, state: dict) -> str:
    env = jinja2.Environment()
    env.filters["tojson"] = json.dumps
    return env.from_string(template).render(value_json=state)


@pytest.fixture
def ha_node(run_node, probe_factory, tmp_path):
    """A node on `broker` (stats refresh left at 30 s, so anything sooner is on change),
    and a probe subscribed before it connects."""
    def start(broker: Broker, changes: dict | None = None):
        probe = probe_factory(broker.port)
        changes = dict(changes or {})
        changes["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": broker.port,
                           "stats_interval_s": 30, **changes.get("mqtt", {})}
        node = run_node(changes)
        probe.wait(f"{BASE}/availability", lambda m: m.payload == b"online")
        return node, probe
    return start


def test_published_discovery_is_understood_by_every_generation_with_documented_ids(
        ha_node, broker):
    node, probe = ha_node(broker, {"name": "camnode"})
    doc = _json(probe.wait(DISCOVERY))
    for gen in ha.GENERATIONS:
        assert ha.problems(doc, gen) == [], gen.name
        ids = ha.entity_ids(doc, gen)
        assert ids["pipeline"] == "switch.camnode_test_pipeline", gen.name
        assert ids["roi_door_occupancy"] == "binary_sensor.camnode_test_roi_door_occupancy"
        assert ids["problem"] == "binary_sensor.camnode_test_problem"
    assert doc["device"]["name"] == "test"  # name left at "camnode": the node id
    url = doc["device"]["configuration_url"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/")
    options = doc["components"]["module"]["options"]
    assert "service" in options and not [o for o in options if o.startswith("example_")]


def test_image_entity_sees_no_new_picture_after_a_broker_restart(
        ha_node, tmp_path, probe_factory):
    store = tmp_path / "mosquitto-data"
    store.mkdir()
    broker = Broker(tmp_path)
    broker.extra_conf = (f"listener {broker.port} 127.0.0.1\nallow_anonymous true\n"
                         f"persistence true\npersistence_location {store}/\n"
                         # as root Mosquitto would switch to a user that cannot write here
                         + ("user root\n" if os.geteuid() == 0 else ""))
    broker.start()
    try:
        node, probe = ha_node(broker)
        doc = _json(probe.wait(DISCOVERY))
        image_topic = doc["components"]["snapshot"]["image_topic"]
        camera_topic = doc["components"]["camera"]["topic"]
        mark = probe.mark()
        assert probe.request(BASE, "snapshot", {"id": "s"})["status"] == "ok"
        picture = probe.wait(image_topic, lambda m: m.payload[:2] == b"\xff\xd8", since=mark)
        probe.wait(camera_topic, lambda m: m.payload == picture.payload, since=mark)
        # The broker restarts (keeping retained messages); the node reconnects.
        broker.stop()
        broker.start()
        ha_again = probe_factory(broker.port, client_id="home-assistant")
        ha_again.wait(f"{BASE}/availability", lambda m: m.payload == b"online", timeout=40)
        ha_again.wait(DISCOVERY)
        # The camera keeps its picture (retained); the image entity gets nothing, so its
        # state (the time of the last message) stays as it was.
        assert ha_again.wait(camera_topic, lambda m: m.retain).payload == picture.payload
        assert probe.request(BASE, "state/get", {"id": "g"})["status"] == "ok"  # a round trip
        assert ha_again.payloads(image_topic) == []
        # A new snapshot is one new picture.
        mark = ha_again.mark()
        assert probe.request(BASE, "snapshot", {"id": "s2"})["status"] == "ok"
        ha_again.wait(image_topic, since=mark)
        assert len(ha_again.payloads(image_topic, since=mark)) == 1
    finally:
        broker.stop()


def test_frame_rate_reads_zero_within_seconds_of_a_stop(ha_node, broker):
    node, probe = ha_node(broker)
    fps_template = _json(probe.wait(DISCOVERY))["components"]["fps"]["value_template"]
    probe.wait(f"{BASE}/state", lambda m: _json(m)["fps"] > 0)
    mark = probe.mark()
    probe.publish(f"{BASE}/pipeline/set", "OFF")
    stopped = probe.wait(f"{BASE}/state", lambda m: _json(m)["pipeline"] == "stopped",
                         since=mark, timeout=5)
    assert _render(fps_template, _json(stopped)) == "0"  # what Home Assistant shows at once
    # ...and the state itself says 0 long before the 30 s refresh.
    probe.wait(f"{BASE}/state", lambda m: _json(m)["fps"] == 0, since=mark, timeout=8)
    mark = probe.mark()
    probe.publish(f"{BASE}/pipeline/set", "ON")
    probe.wait(f"{BASE}/state", lambda m: _json(m)["fps"] > 5, since=mark, timeout=10)


def test_a_module_that_fails_to_load_shows_as_the_last_error(ha_node, broker, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "broken.py").write_text("raise ImportError('needs a library that is missing')\n")
    node, probe = ha_node(broker, {"pipeline": {"processor_dirs": ["mods"]}})
    template = _json(probe.wait(DISCOVERY))["components"]["last_error"]["value_template"]
    mark = probe.mark()
    probe.publish(f"{BASE}/module/set", "broken")
    reply = _json(probe.wait(f"{BASE}/response/module/set", since=mark))
    assert reply["error"]["code"] == "module_error"
    state = _json(probe.wait(f"{BASE}/state", lambda m: _json(m)["last_error"], since=mark,
                             timeout=5))
    shown = _render(template, state)
    assert "broken" in shown and "missing" in shown
    assert state["module"] == "service"  # the old module keeps running


def test_viewers_are_published_when_they_change(ha_node, broker):
    node, probe = ha_node(broker)
    template = _json(probe.wait(DISCOVERY))["components"]["viewers"]["value_template"]
    mark = probe.mark()
    viewer = MjpegReader(node.url + "/stream.mjpg")
    try:
        viewer.read_part()
        shown = probe.wait(f"{BASE}/state", lambda m: _json(m)["viewers"] == 1, since=mark,
                           timeout=8)  # the stats refresh is 30 s: this is on change
        assert _render(template, _json(shown)) == "1"
    finally:
        viewer.close()
    probe.wait(f"{BASE}/state", lambda m: _json(m)["viewers"] == 0,
               since=probe.mark(), timeout=10)


def test_problem_entity_turns_on_while_the_module_raises_and_off_when_it_is_replaced(
        ha_node, broker, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "raiser.py").write_text("def process_image(src):\n"
                                    "    raise RuntimeError('lens cap on')\n")
    node, probe = ha_node(broker, {"pipeline": {"processor_dirs": ["mods"]}})
    problem = _json(probe.wait(DISCOVERY))["components"]["problem"]
    shows = lambda m: _render(problem["value_template"], _json(m))  # noqa: E731
    probe.wait(f"{BASE}/state", lambda m: shows(m) == "OFF")
    mark = probe.mark()
    probe.publish(f"{BASE}/module/set", "raiser")
    bad = probe.wait(f"{BASE}/state", lambda m: shows(m) == "ON", since=mark, timeout=8)
    attrs = json.loads(_render(problem["json_attributes_template"], _json(bad)))
    assert [p["part"] for p in attrs["problems"]] == ["module"]
    assert "lens cap on" in attrs["problems"][0]["reason"]
    mark = probe.mark()
    probe.publish(f"{BASE}/module/set", "passthrough")
    probe.wait(f"{BASE}/state", lambda m: shows(m) == "OFF", since=mark, timeout=20)


def test_labels_a_module_tracks_become_per_roi_entities_fed_by_the_node(ha_node, broker):
    # `faces` reports labels ["face"] in its status, as the object detector does its own.
    node, probe = ha_node(broker, {"pipeline": {"module": "faces"}})
    doc = _json(probe.wait(DISCOVERY, lambda m: any(
        "face" in c.get("name", "") for c in _json(m)["components"].values())))
    ids = {cid: eid for gen in ha.GENERATIONS for cid, eid in ha.entity_ids(doc, gen).items()}
    comp = next(c for c in doc["components"].values() if c.get("name") == "door face")
    assert comp["default_entity_id"] == "binary_sensor.camnode_test_roi_door_face_occupancy"
    assert "binary_sensor.camnode_test_roi_door_face_occupancy" in ids.values()
    assert probe.wait(comp["state_topic"]).payload in (b"ON", b"OFF")
    # Another module without labels: the label entities are removed from Home Assistant.
    mark = probe.mark()
    probe.publish(f"{BASE}/module/set", "service")
    gone = _json(probe.wait(DISCOVERY, lambda m: {"p": "binary_sensor"} in
                            _json(m)["components"].values(), since=mark))
    assert not [c for c in gone["components"].values() if "face" in c.get("name", "")]
