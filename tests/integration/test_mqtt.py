"""camnode as an MQTT device, against a real Mosquitto: commands, answers, state, recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import cv2
import numpy as np
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.integration.conftest import Broker, port_open, post_command, wait_for

BASE = "camnode/test"


@pytest.fixture
def node_on(run_node, broker, probe_factory):
    """A node connected to the test broker, and a probe that saw it come online."""
    def start(changes: dict | None = None, **probe_kw):
        probe = probe_factory(broker.port, **probe_kw)
        changes = dict(changes or {})
        changes.setdefault("mqtt", {})
        changes["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": broker.port,
                           "stats_interval_s": 2, **changes["mqtt"]}
        node = run_node(changes)
        probe.wait(f"{BASE}/availability", lambda m: m.payload == b"online")
        return node, probe
    return start


def _json(msg) -> dict:
    return json.loads(msg.payload)


def test_connect_publishes_retained_state_rois_info_and_online(node_on):
    node, probe = node_on()
    state = _json(probe.wait(f"{BASE}/state", lambda m: _json(m)["pipeline"] == "running"))
    assert state["module"] == "service" and state["mqtt"]["connected"] is True
    assert "passthrough" in state["modules"]
    rois = _json(probe.wait(f"{BASE}/rois"))
    assert rois["version"] == 0 and "door" in rois["rois"]
    info = _json(probe.wait(f"{BASE}/info"))
    assert info["stream_url"].endswith("/stream.mjpg") and info["version"]
    stats = _json(probe.wait(f"{BASE}/stats", timeout=10))
    assert stats["fps"] > 0


def test_late_subscriber_gets_retained_topics(node_on, broker, probe_factory):
    node_on()
    late = probe_factory(broker.port, client_id="late")
    for topic in ("availability", "state", "rois", "info"):
        assert late.wait(f"{BASE}/{topic}", lambda m: m.retain, timeout=5)
    assert late.wait("homeassistant/device/camnode_test/config", lambda m: m.retain)


def test_pipeline_set_plain_payloads(node_on):
    node, probe = node_on()
    mark = probe.mark()
    probe.publish(f"{BASE}/pipeline/set", "OFF")
    probe.wait(f"{BASE}/state", lambda m: _json(m)["pipeline"] == "stopped", since=mark)
    wait_for(lambda: node.state()["pipeline"] == "stopped", what="page shows stopped")
    # The answer to a command can come after the state it caused: take it before the next.
    probe.wait(f"{BASE}/response/pipeline/set", lambda m: _json(m)["status"] == "ok",
               since=mark)
    mark = probe.mark()
    probe.publish(f"{BASE}/pipeline/set", "ON")
    probe.wait(f"{BASE}/state", lambda m: _json(m)["pipeline"] == "running", since=mark)
    probe.wait(f"{BASE}/response/pipeline/set", lambda m: _json(m)["status"] == "ok",
               since=mark)
    mark = probe.mark()
    probe.publish(f"{BASE}/pipeline/set", "MAYBE")
    reply = _json(probe.wait(f"{BASE}/response/pipeline/set", since=mark))
    assert reply["status"] == "error" and reply["error"]["code"] == "validation_failed"


def test_module_set_plain_and_json(node_on, tmp_path):
    node, probe = node_on()
    mark = probe.mark()
    probe.publish(f"{BASE}/module/set", "passthrough")
    probe.wait(f"{BASE}/state", lambda m: _json(m)["module"] == "passthrough", since=mark)
    reply = probe.request(BASE, "module/set", {"id": "m1", "name": "service"})
    assert reply == {**reply, "id": "m1", "status": "ok"} and reply["data"]["module"] == "service"
    before = (tmp_path / "config.json").read_bytes()
    for bad, code in ((("nope",), "unknown_module"), (("../../etc/passwd",), "validation_failed"),
                      (("os.path",), "validation_failed")):
        reply = probe.request(BASE, "module/set", {"id": bad[0], "name": bad[0]})
        assert reply["status"] == "error" and reply["error"]["code"] == code, reply
    mark = probe.mark()
    probe.publish(f"{BASE}/module/set", "nope")
    reply = _json(probe.wait(f"{BASE}/response/module/set", since=mark))
    assert reply["error"]["code"] == "unknown_module"
    assert (tmp_path / "config.json").read_bytes() == before
    assert node.state()["module"] == "service"


@pytest.mark.parametrize("payload, code, path", [
    (b"{not json", "invalid_json", None),
    (b"\xff\xfe", "invalid_json", None),
    (b'{"name": 5}', "validation_failed", "$.name"),
    (b'{"name": "door", "left": 1, "top": 1, "right": 2, "bottom": 2, "extra": 1}',
     "validation_failed", "$.extra"),
    (b'{"name": "x", "left": -5, "top": 1, "right": 2, "bottom": 2}', "validation_failed", "$.left"),
    (b'{"name": "x", "left": 50, "top": 1, "right": 20, "bottom": 2}', "validation_failed",
     "$.rois.x.right"),
    (b'{"name": "x", "left": 5, "top": 1, "right": 20, "bottom": 2, "colour": "plaid"}',
     "validation_failed", "$.rois.x.colour"),
    (b'{"name": "door", "left": 5, "top": 1, "right": 20, "bottom": 9}', "exists", "$.name"),
    (b'{"name": "' + b"x" * 70000 + b'"}', "too_large", "$"),
])
def test_bad_roi_requests_are_answered_and_change_nothing(node_on, tmp_path, payload, code, path):
    node, probe = node_on()
    before = (tmp_path / "config.json").read_bytes()
    mark = probe.mark()
    probe.publish(f"{BASE}/request/roi/add", payload)
    reply = _json(probe.wait(f"{BASE}/response/roi/add", since=mark))
    assert reply["status"] == "error" and reply["error"]["code"] == code, reply
    if path:
        assert path in [d["path"] for d in reply["error"]["details"]], reply
    assert (tmp_path / "config.json").read_bytes() == before
    assert probe.request(BASE, "roi/get", {"id": 1})["data"]["version"] == 0


def test_unknown_command_is_answered(node_on):
    node, probe = node_on()
    reply = probe.request(BASE, "launch/rocket", {"id": "r"})
    assert reply["status"] == "error" and reply["error"]["code"] == "unknown_command"
    assert reply["id"] == "r"
    # Internal commands are not reachable over MQTT.
    reply = probe.request(BASE, "viewers/report", {"id": "v", "worker": "x", "viewers": 9})
    assert reply["error"]["code"] == "unknown_command"


def test_roi_edits_apply_persist_and_publish_versions(node_on, tmp_path):
    node, probe = node_on()
    cfg = tmp_path / "config.json"
    reply = probe.request(BASE, "roi/add", {"id": 1, "name": "porch", "left": 50, "top": 10,
                                            "right": 90, "bottom": 60, "colour": "red",
                                            "if_version": 0})
    assert reply["status"] == "ok" and reply["data"]["version"] == 1
    saved = json.loads(cfg.read_text())
    assert saved["rois"]["porch"]["colour"] == "red" and saved["rois_version"] == 1
    assert "porch" not in json.loads((tmp_path / "config.json.bak").read_text())["rois"]
    probe.wait(f"{BASE}/rois", lambda m: _json(m)["version"] == 1)
    # A second editor still at version 0 is refused, and nothing changes.
    reply = probe.request(BASE, "roi/update", {"id": 2, "name": "porch", "left": 55,
                                               "if_version": 0})
    assert reply["error"]["code"] == "version_conflict"
    assert json.loads(cfg.read_text())["rois"]["porch"]["left"] == 50
    reply = probe.request(BASE, "roi/update", {"id": 3, "name": "porch", "left": 55,
                                               "rename": "front", "if_version": 1})
    assert reply["status"] == "ok" and "front" in reply["data"]["rois"]
    assert reply["data"]["rois"]["front"]["left"] == 55
    reply = probe.request(BASE, "roi/update", {"id": 4, "name": "ghost", "left": 1})
    assert reply["error"]["code"] == "not_found"
    reply = probe.request(BASE, "roi/delete", {"id": 5, "name": "front"})
    assert reply["status"] == "ok" and "front" not in reply["data"]["rois"]
    reply = probe.request(BASE, "roi/delete", {"id": 6, "name": "front"})
    assert reply["error"]["code"] == "not_found"
    reply = probe.request(BASE, "roi/replace", {"id": 7, "rois": {
        "a": {"left": 0, "top": 0, "right": 10, "bottom": 10, "colour": "green"}}})
    assert reply["status"] == "ok" and list(reply["data"]["rois"]) == ["a"]
    assert reply["data"]["version"] == 4
    assert json.loads(cfg.read_text())["rois"] == reply["data"]["rois"]
    disc = _json(probe.wait("homeassistant/device/camnode_test/config",
                            lambda m: "roi_a_occupancy" in _json(m)["components"]))
    # ROIs that went away are removed from Home Assistant (platform-only component).
    assert disc["components"]["roi_door_occupancy"] == {"p": "binary_sensor"}


def test_retained_commands_are_ignored(node_on, camnode, tmp_path):
    node, probe = node_on()

    def run_node_again(path):
        return camnode("run", "--config", str(path / "config.json")).wait_ready()

    mark = probe.mark()
    probe.publish(f"{BASE}/request/pipeline/stop", {"id": "old"}, retain=True)
    reply = _json(probe.wait(f"{BASE}/response/pipeline/stop", since=mark))
    assert reply["status"] == "error" and "retained" in reply["error"]["message"]
    assert node.state()["pipeline"] == "running"
    # ...and when the broker replays it to a node that (re)connects later.
    assert node.stop() == 0
    mark = probe.mark()
    again = run_node_again(tmp_path)
    reply = _json(probe.wait(f"{BASE}/response/pipeline/stop",
                             lambda m: _json(m)["id"] == "old", since=mark))
    assert reply["status"] == "error"
    assert again.state()["pipeline"] == "running"
    probe.publish(f"{BASE}/request/pipeline/stop", b"", retain=True)  # clear it


def test_mqtt5_response_topic_and_correlation_data(node_on):
    node, probe = node_on(topics=("camnode/#", "homeassistant/#", "my/replies"))
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "my/replies"
    props.CorrelationData = b"abc-123"
    probe.publish(f"{BASE}/request/state/get", {"id": "s"}, properties=props)
    msg = probe.wait("my/replies")
    assert msg.properties.CorrelationData == b"abc-123"
    assert _json(msg)["status"] == "ok" and _json(msg)["id"] == "s"


def test_snapshot_command_publishes_a_jpeg(node_on):
    node, probe = node_on({"events": {"snapshot_height": 120}})
    reply = probe.request(BASE, "snapshot", {"id": "snap"})
    assert reply["status"] == "ok"
    msg = probe.wait(f"{BASE}/snapshot", lambda m: m.payload[:2] == b"\xff\xd8")
    img = cv2.imdecode(np.frombuffer(msg.payload, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[0] == 120


def test_state_get_republishes_retained_topics(node_on):
    node, probe = node_on()
    mark = probe.mark()
    reply = probe.request(BASE, "state/get", {"id": "g"})
    assert reply["status"] == "ok" and reply["data"]["pipeline"] == "running"
    for topic in ("state", "rois", "info"):
        probe.wait(f"{BASE}/{topic}", since=mark)


def test_rest_and_mqtt_give_the_same_answers(node_on, tmp_path):
    node, probe = node_on()
    cases = [("module/set", {"id": 1, "name": "nope"}),
             ("module/set", {"id": 2, "name": 5}),
             ("roi/add", {"id": 3, "name": "door", "left": 1, "top": 1, "right": 5, "bottom": 5}),
             ("roi/delete", {"id": 4, "name": "ghost"}),
             ("roi/get", {"id": 5})]
    for command, payload in cases:
        via_mqtt = probe.request(BASE, command, payload)
        _, via_rest = post_command(node.url, command, payload)
        assert via_mqtt == via_rest, command


def test_broker_restart_recovers_by_itself(node_on, broker, probe_factory):
    node, probe = node_on()
    broker.stop()
    wait_for(lambda: node.state()["mqtt"]["connected"] is False, what="node sees broker gone")
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "live",  # the stream does
             what="live frames")                                      # not care
    broker.start()
    again = probe_factory(broker.port, client_id="after-restart")
    again.wait(f"{BASE}/availability", lambda m: m.payload == b"online", timeout=40)
    third = probe_factory(broker.port, client_id="third")  # retained state is back
    third.wait(f"{BASE}/state", lambda m: m.retain, timeout=10)
    reply = again.request(BASE, "state/get", {"id": "after"})  # re-subscribed
    assert reply["status"] == "ok"


def test_node_starts_without_broker_and_connects_when_it_appears(run_node, tmp_path,
                                                                  probe_factory):
    late = Broker(tmp_path)
    node = run_node({"mqtt": {"enabled": True, "host": "127.0.0.1", "port": late.port}})
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "live", what="live frames")
    assert node.state()["mqtt"]["connected"] is False
    late.start()
    try:
        probe = probe_factory(late.port)
        probe.wait(f"{BASE}/availability", lambda m: m.payload == b"online", timeout=40)
    finally:
        late.stop()


def test_sigkill_leaves_offline_via_last_will(node_on):
    node, probe = node_on()
    mark = probe.mark()
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait(10)
    # The broker notices after 1.5 x keepalive at most; the will is retained.
    probe.wait(f"{BASE}/availability", lambda m: m.payload == b"offline", timeout=60, since=mark)


def test_clean_stop_publishes_offline(node_on):
    node, probe = node_on()
    mark = probe.mark()
    assert node.stop() == 0
    probe.wait(f"{BASE}/availability", lambda m: m.payload == b"offline", timeout=10, since=mark)


def test_home_assistant_birth_resends_discovery(node_on):
    node, probe = node_on()
    probe.wait("homeassistant/device/camnode_test/config")
    mark = probe.mark()
    probe.publish("homeassistant/status", "online")
    msg = probe.wait("homeassistant/device/camnode_test/config", since=mark, timeout=10)
    disc = _json(msg)
    assert disc["device"]["identifiers"] == ["camnode_test"]
    assert disc["components"]["pipeline"]["command_topic"] == f"{BASE}/pipeline/set"


RED_SHIRT = '''
import cv2
import numpy as np

def process_image(src):
    """Finds the synthetic scene's walker by the colour of the shirt."""
    b, g, r = cv2.split(src)
    mask = ((r > 140) & (g < 90) & (b < 90)).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    h, w = mask.shape
    found = [s for s in stats[1:] if s[cv2.CC_STAT_AREA] > h * w * 0.01]
    if not found:
        return True, []
    s = max(found, key=lambda s: s[cv2.CC_STAT_AREA])
    x, y, bw, bh = (int(v) for v in s[:4])
    return True, [{"label": "person", "score": 0.9, "box": (x, y, x + bw, y + bh)}]
'''


def test_events_and_occupancy_follow_an_object_through_an_roi(node_on, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "redshirt.py").write_text(RED_SHIRT)
    node, probe = node_on({
        "camera": {"fps": 10},
        "pipeline": {"module": "redshirt", "processor_dirs": [str(mods)]},
        "rois": {"door": {"left": 5, "top": 5, "right": 35, "bottom": 95, "colour": "green"}},
        "events": {"occupancy_off_delay_s": 1, "end_after_s": 1, "snapshot_height": 120}})
    new = _json(probe.wait(f"{BASE}/events", lambda m: _json(m)["type"] == "new", timeout=30))
    assert new["label"] == "person" and 0 <= new["box"]["left"] < new["box"]["right"] <= 100
    track = new["id"]
    probe.wait(f"{BASE}/roi/door/occupancy", lambda m: m.payload == b"ON", timeout=20)
    assert probe.wait(f"{BASE}/roi/door/count", lambda m: m.payload == b"1").retain is not None
    update = _json(probe.wait(f"{BASE}/events", lambda m: _json(m)["type"] == "update"
                              and "door" in _json(m)["rois"], timeout=20))
    assert update["id"] == track  # the same object keeps its id while it moves
    probe.wait(f"{BASE}/roi/door/occupancy", lambda m: m.payload == b"OFF", timeout=20)
    end = _json(probe.wait(f"{BASE}/events", lambda m: _json(m)["type"] == "end", timeout=20))
    assert end["id"] == track and "door" in end["entered_rois"] and end["end"] > end["start"]
    probe.wait(f"{BASE}/motion", lambda m: m.payload == b"ON")
    snap = probe.wait(f"{BASE}/snapshot", lambda m: m.payload[:2] == b"\xff\xd8")
    img = cv2.imdecode(np.frombuffer(snap.payload, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[0] == 120  # scaled to events.snapshot_height
    # Updates are rate-limited: at most about one per second per object.
    updates = [json.loads(p) for p in probe.payloads(f"{BASE}/events")]
    times = [u for u in updates if u["type"] == "update" and u["id"] == track]
    assert len(times) <= 12


def test_auto_broker_gives_a_fresh_machine_the_whole_product(run_node, probe_factory):
    node = run_node({"mqtt": {"enabled": True, "host": "auto"}})
    state = wait_for(lambda: (s := node.state())["mqtt"]["connected"] and s, timeout=15,
                     what="MQTT connected to the automatic broker")
    port = int(state["mqtt"]["broker"].rsplit(":", 1)[1])
    probe = probe_factory(port, client_id="auto-probe")
    probe.wait(f"{BASE}/availability", lambda m: m.payload == b"online")
    private = "started a private Mosquitto" in node.output
    assert private or "using the broker already on" in node.output
    assert node.stop() == 0
    if private:  # stopped with the node
        wait_for(lambda: not port_open("127.0.0.1", port), timeout=5,
                 what="private broker gone")


def test_new_module_file_updates_the_home_assistant_select(node_on, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    node, probe = node_on({"pipeline": {"processor_dirs": [str(mods)]}})
    topic = "homeassistant/device/camnode_test/config"
    probe.wait(topic)
    (mods / "fresh.py").write_text("def process_image(src):\n    return True\n")
    disc = _json(probe.wait(topic, lambda m: "fresh" in _json(m)["components"]["module"]
                            ["options"], timeout=10))
    assert "passthrough" in disc["components"]["module"]["options"]


def test_password_from_environment_and_mqtt_flag(camnode, write_config, tmp_path,
                                                 probe_factory):
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "camnode", "s3cret"],
                   check=True, capture_output=True)
    passwd.chmod(0o600)
    b = Broker(tmp_path)
    # As root, mosquitto would switch to its own user, who cannot read our temp files.
    run_as = "user root\n" if os.geteuid() == 0 else ""
    b.extra_conf = (f"listener {b.port} 127.0.0.1\nallow_anonymous false\n"
                    f"password_file {passwd}\npersistence false\n{run_as}")
    b.start()
    try:
        cfg = write_config({"mqtt": {"enabled": True, "host": "nowhere.invalid",
                                     "username": "camnode"}})
        secret = tmp_path / "mqtt-password"
        secret.write_text("s3cret\n")
        os.environ["CAMNODE_MQTT_PASSWORD_FILE"] = str(secret)
        try:
            good = camnode("run", "--config", str(cfg), "--mqtt", f"127.0.0.1:{b.port}")
            good.wait_ready()
        finally:
            del os.environ["CAMNODE_MQTT_PASSWORD_FILE"]
        wait_for(lambda: good.state()["mqtt"]["connected"], timeout=15, what="authenticated")
        assert "s3cret" not in good.output
        good.stop()
        os.environ["CAMNODE_MQTT_PASSWORD"] = "wrong"
        try:
            bad = camnode("run", "--config", str(cfg), "--mqtt", f"127.0.0.1:{b.port}")
            bad.wait_ready()
        finally:
            del os.environ["CAMNODE_MQTT_PASSWORD"]
        state = wait_for(lambda: (s := bad.state())["mqtt"]["last_error"] and s, timeout=15,
                         what="refusal reported")
        assert state["mqtt"]["connected"] is False and "refused" in state["mqtt"]["last_error"]
        wait_for(lambda: bad.state()["stream"]["frame_kind"] == "live", what="live frames")
    finally:
        b.stop()


def _make_tls_files(d) -> None:
    """A throw-away CA and a server certificate for 127.0.0.1, made with openssl."""
    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.crt")


def test_tls_connection_verifies_the_broker(camnode, write_config, tmp_path):
    _make_tls_files(tmp_path)
    b = Broker(tmp_path)
    run_as = "user root\n" if os.geteuid() == 0 else ""
    b.extra_conf = (f"listener {b.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"cafile {tmp_path}/ca.crt\ncertfile {tmp_path}/server.crt\n"
                    f"keyfile {tmp_path}/server.key\n{run_as}")
    b.start()
    try:
        cfg = write_config({"mqtt": {"enabled": True, "host": "127.0.0.1", "port": b.port,
                                     "tls": {"enabled": True,
                                             "ca_certs": str(tmp_path / "ca.crt")}}})
        node = camnode("run", "--config", str(cfg)).wait_ready()
        wait_for(lambda: node.state()["mqtt"]["connected"], timeout=15, what="TLS connection")
    finally:
        b.stop()


@pytest.mark.parametrize("command, payload, check", [
    ("pipeline/stop", {}, lambda d: d["pipeline"] == "stopped"),
    ("pipeline/start", {}, lambda d: d["pipeline"] == "running"),
    ("pipeline/restart", {}, lambda d: d["pipeline"] == "running"),
    ("module/set", {"name": "motion", "params": {"sensitivity": 60}},
     lambda d: d["module"] == "motion" and d["module_params"] == {"sensitivity": 60}),
    ("module/list", {}, lambda d: {"name": "passthrough", "params_schema": None} in d),
    ("roi/get", {}, lambda d: d["version"] == 0 and "door" in d["rois"]),
    ("state/get", {}, lambda d: d["node_id"] == "test"),
    ("snapshot", {}, lambda d: d["bytes"] > 1000),
])
def test_every_command_succeeds_over_mqtt(node_on, command, payload, check):
    node, probe = node_on()
    reply = probe.request(BASE, command, {"id": command, **payload})
    assert reply["status"] == "ok" and reply["id"] == command and reply["command"] == command
    assert check(reply["data"]), reply["data"]
