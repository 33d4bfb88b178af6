"""Nothing dies silently (issue 9, A.3): an exception injected into each long-lived part of
a real node is logged with its traceback, counted, the part restarted, and meanwhile the
node's health names it on /healthz (503), /api/state and MQTT; then all is well again.

The node runs in this process (so a loop body can be replaced), with a real Mosquitto,
its real capture/pipeline/publisher, and a real `camnode web` process in front of it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time

import pytest

from camnode.node import supervisor
from camnode.node.command_server import CommandServer
from camnode.node.core import Node
from camnode.node.wiring import build_node
from camnode.node.config import ConfigStore, load_config
from tests.integration.conftest import (BASE_CONFIG, deep_update, get_json, post_command,
                                        request, wait_for)

DETECTING = """
from camnode.processors.background import BackgroundDetector

def _detect(frame):
    return [{"label": "thing", "box_pct": (10, 10, 20, 20), "score": 0.9}]

DETECTOR = BackgroundDetector(_detect, name="test-detector")

def process_image(src):
    return DETECTOR.step(src, False, "green")

def close():
    DETECTOR.close()
"""

# part -> (what to break, method of it the loop calls every time round)
TARGETS = {
    "capture": (lambda n: n.pipeline._capture, "_conform"),
    "pipeline": (lambda n: n.pipeline, "_process"),
    "commands": (lambda n: next(t for t in n.transports if isinstance(t, CommandServer)),
                 "_answer"),
    "events": (lambda n: n.events._queue, "get"),
    "mqtt": (lambda n: n.broker_link._queue, "get"),
    "state": (lambda n: n.mailbox, "serve"),
    "detector": (lambda n: n.pipeline._processor.module.DETECTOR, "_take"),
}
BACKOFF = 2.0  # the first restart's delay here: long enough to see the problem reported


def break_once(obj, attr: str, exc: Exception) -> threading.Event:
    """Make obj.attr raise `exc` once; the returned Event is set when it has."""
    real = getattr(obj, attr)
    raised = threading.Event()

    def broken(*args, **kwargs):
        if not raised.is_set():
            raised.set()
            raise exc
        return real(*args, **kwargs)

    setattr(obj, attr, broken)
    return raised


@pytest.fixture
def live(tmp_path, broker, camnode, probe_factory, monkeypatch):
    """(node, web url, MQTT probe): a node in this process, a web worker process."""
    monkeypatch.setattr(supervisor, "BACKOFF_MIN", BACKOFF)
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "detecting.py").write_text(DETECTING)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(deep_update(BASE_CONFIG, {
        "pipeline": {"module": "detecting", "processor_dirs": [str(mods)]},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port}})))
    probe = probe_factory(broker.port, topics=("camnode/test/#",))
    parts = build_node(ConfigStore(load_config(path), path), ("127.0.0.1", broker.port))
    parts.start()
    node = parts.node
    try:
        web = camnode("web", "--connect", parts.publisher.endpoint, "--command",
                      parts.commands.endpoint, "--host", "127.0.0.1", "--port", "0")
        url = web.wait_line(r"listening on (http://127\.0\.0\.1:\d+)/").group(1)
        wait_for(lambda: request(url + "/healthz")[0] == 200, what="a healthy node")
        wait_for(lambda: node.broker_link.connected, what="MQTT")
        yield node, url, probe
    finally:
        parts.stop()


def _send_quietly(url: str) -> None:
    try:  # the command that meets the broken loop gets no answer (item A.1 is elsewhere)
        post_command(url, "state/get", timeout=6)
    except OSError:
        pass


def _problems(node: Node, part: str) -> list[dict]:
    return [p for p in node.health()["problems"] if p["part"] == part]


def _healthz(url: str) -> tuple[int, dict]:
    status, _, body = request(url + "/healthz")
    return status, json.loads(body)


def _works(node: Node, url: str, probe, part: str) -> None:
    """The part does its job again (what a user would notice)."""
    if part in ("capture", "pipeline"):
        n = node.pipeline.published
        wait_for(lambda: node.pipeline.published > n + 5, what="frames flowing")
    elif part == "commands":
        assert post_command(url, "state/get")[0] == 200
    elif part == "events":
        sent = node.events.events_sent
        node.events.tracker.tracks.clear()  # the next detection is a `new` event again
        wait_for(lambda: node.events.events_sent > sent, what="events")
    elif part == "mqtt":
        reply = probe.request("camnode/test", "state/get", {"id": "after"})
        assert reply["status"] == "ok"
    elif part == "state":
        at = get_json(url + "/api/state")["time"]
        wait_for(lambda: get_json(url + "/api/state")["time"] > at + 1, what="state published")
    elif part == "detector":
        runs = node.pipeline._processor.module.DETECTOR.runs
        wait_for(lambda: node.pipeline._processor.module.DETECTOR.runs > runs + 3,
                 what="detections")


@pytest.mark.parametrize("part", list(TARGETS))
def test_exception_in_a_part_is_logged_counted_reported_and_recovered(live, part, caplog):
    node, url, probe = live
    caplog.set_level(logging.INFO, logger="camnode.node.supervisor")
    mark = probe.mark()
    get, attr = TARGETS[part]
    raised = break_once(get(node), attr, RuntimeError(f"injected into {part}"))
    if part == "commands":  # its loop body runs when a command arrives
        threading.Thread(target=_send_quietly, args=(url,), daemon=True).start()
    assert raised.wait(10), f"the {part} loop never ran the broken step"

    # Reported while it waits to restart: in the state, on /healthz (503 naming it), MQTT.
    problem = wait_for(lambda: _problems(node, part), timeout=BACKOFF,
                       what=f"{part} problem in the health")[0]
    assert f"RuntimeError: injected into {part}" in problem["reason"]
    if part == "state":  # its own thread publishes the state: ask for it instead
        post_command(url, "state/get")
    status, body = wait_for(lambda: (h := _healthz(url))[0] == 503 and h, timeout=BACKOFF,
                            interval=0.02, what="/healthz 503")
    assert part in body["failing"]
    if part != "state":
        probe.wait("camnode/test/state", lambda m: part in
                   [p["part"] for p in json.loads(m.payload)["health"]["problems"]],
                   timeout=BACKOFF, since=mark)

    # Logged with the traceback, restarted, counted, healthy again.
    crash = [r for r in caplog.records if "crashed" in r.getMessage()
             and f"injected into {part}" in r.getMessage()]
    assert crash and crash[0].exc_info is not None, "no traceback logged"
    assert "Traceback" in caplog.text
    wait_for(lambda: not _problems(node, part), timeout=BACKOFF + 5, what="recovery")
    counts = node.health()["parts"][part]
    assert counts["crashes"] == 1 and counts["restarts"] == 1, counts
    assert f"injected into {part}" in counts["last_error"]
    _works(node, url, probe, part)
    wait_for(lambda: _healthz(url)[0] == 200, what="/healthz 200 again")
    assert node.health()["ok"] is True


def test_a_stalled_pipeline_turns_healthz_503_until_it_moves_again(live):
    node, url, probe = live
    release = threading.Event()
    real = node.pipeline._process

    def stuck(*args):
        release.wait(30)  # e.g. an encoder or driver call that never returns
        return real(*args)

    node.pipeline._process = stuck
    status, body = wait_for(lambda: (h := _healthz(url))[0] == 503 and h, timeout=15,
                            what="pipeline reported stalled")
    assert body["failing"] == ["pipeline"]
    assert any("stalled" in p["reason"] for p in body["problems"] if p["part"] == "pipeline")
    assert get_json(url + "/api/state")["health"]["ok"] is False
    node.pipeline._process = real
    release.set()
    wait_for(lambda: _healthz(url)[0] == 200, what="healthy again")
    _works(node, url, probe, "pipeline")


def test_a_lost_camera_is_a_problem_but_not_a_failure(run_node, tmp_path):
    node = run_node({"camera": {"source": str(tmp_path / "missing.mp4")}})
    state = wait_for(lambda: (s := node.state())["health"]["problems"] and s,
                     what="the lost source in the health")
    assert [p["part"] for p in state["health"]["problems"]] == ["source"]
    assert "missing.mp4" in state["health"]["problems"][0]["reason"]
    assert state["health"]["ok"] is False and state["health"]["failing"] == []
    status, body = _healthz(node.url)  # camnode itself works: 200, the problem named
    assert status == 200 and body["failing"] == []
    assert body["problems"][0]["part"] == "source"


def test_a_web_worker_that_dies_is_restarted_and_reported_meanwhile(run_node):
    node = run_node({"web": {"workers": 2}})
    wait_for(lambda: node.state()["web_workers"] == 2, what="two workers reporting")
    victim = node.state()["worker"]["pid"]
    os.kill(victim, signal.SIGKILL)
    node.wait_line(rf"web worker \d \(pid {victim}\) exited with -9; restarting it in 1 s")
    # The other worker answers meanwhile, and says which part is down.
    status, body = wait_for(lambda: (h := _healthz(node.url))[0] == 503 and h, interval=0.02,
                            what="/healthz 503 naming web")
    assert body["failing"] == ["web"]
    state = node.state()
    assert [p["part"] for p in state["health"]["problems"]] == ["web"]
    node.wait_line(r"web worker \d \(pid \d+\) is back", timeout=20)
    wait_for(lambda: _healthz(node.url)[0] == 200, what="healthy again")
    state = wait_for(lambda: (s := node.state())["web_workers"] == 2 and s, what="2 workers")
    assert state["health"]["parts"]["web"]["restarts"] == 1
    assert victim not in {node.state()["worker"]["pid"] for _ in range(6)}


def test_a_web_worker_keeps_serving_after_a_malformed_message_from_the_node(camnode):
    """A publisher sending one bad message (2 parts, a header that is not JSON) once left
    the worker's reader dead: no more frames or state, /healthz 503 for good."""
    import zmq

    from camnode.node import wire

    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    cport = router.bind_to_random_port("tcp://127.0.0.1")
    seq = [0]

    def send_good() -> None:
        seq[0] += 1
        pub.send_multipart([wire.TOPIC_STATE, wire.encode_json(
            {"pipeline": "running", "health": {"ok": True, "problems": [], "failing": []}}),
            b""])
        pub.send_multipart([wire.TOPIC_FRAME, wire.FrameHeader(
            seq[0], time.time(), 2, 2, "fake").encode(), b"\xff\xd8fakejpeg\xff\xd9"])

    try:
        web = camnode("web", "--connect", f"tcp://127.0.0.1:{port}", "--command",
                      f"tcp://127.0.0.1:{cport}", "--host", "127.0.0.1", "--port", "0")
        url = web.wait_line(r"listening on (http://127\.0\.0\.1:\d+)/").group(1)

        def seen_seq() -> int:
            send_good()
            return get_json(url + "/api/state")["stream"]["frame_seq"] or 0

        wait_for(lambda: seen_seq() > 0, what="the worker to receive frames")
        pub.send_multipart([wire.TOPIC_FRAME, b"this is not a header"])  # 2 parts
        pub.send_multipart([wire.TOPIC_FRAME, b"{not json", b""])
        before = seq[0]
        wait_for(lambda: seen_seq() > before + 3, what="frames after the bad message")
        web.wait_line(r"frame/state reader failed \(1 so far\)")
        assert _healthz(url)[0] == 200
        assert "Traceback" in web.output
    finally:
        pub.close()
        router.close()


def test_an_exception_in_a_paho_callback_does_not_end_mqtt(live, caplog):
    """paho re-raises a callback's exception, which ended its network thread: no command
    was ever answered again and nothing said so."""
    node, url, probe = live
    break_once(node.broker_link._queue, "put_nowait", RuntimeError("injected into on_message"))
    probe.publish("camnode/test/request/state/get", {"id": "lost"})  # meets the bug
    reply = probe.request("camnode/test", "state/get", {"id": "after"}, timeout=10)
    assert reply["status"] == "ok" and reply["id"] == "after"
    crash = [r for r in caplog.records if "callback _on_message failed" in r.getMessage()]
    assert crash and crash[0].exc_info is not None
    counts = node.health()["parts"]["mqtt"]
    assert counts["crashes"] == 1 and "injected into on_message" in counts["last_error"]
