"""Everything at once for a minute: ROI edits over REST and MQTT, viewers coming and going,
module switches, and the broker restarted every few seconds. Whatever the interleaving,
no exception is logged, the last acknowledged edit of each ROI is the one saved,
`online` follows every reconnect, and the node's command counters add up."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from tests.integration.conftest import MjpegReader, get_json, post_command, wait_for

BASE = "camnode/test"
DURATION = 60.0
RESTART_EVERY = 8.0

pytestmark = pytest.mark.timeout(240)


def test_a_minute_of_everything_at_once(run_node, broker, probe_factory, tmp_path):
    node = run_node({
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port,
                 "stats_interval_s": 2},
        "rois": {"door": {"left": 10, "top": 10, "right": 40, "bottom": 90},
                 "window": {"left": 50, "top": 10, "right": 90, "bottom": 50}}})
    probe = probe_factory(broker.port, client_id="stress-probe")
    probe.wait(f"{BASE}/availability", lambda m: m.payload == b"online", timeout=15)
    stop = threading.Event()
    errors: list[str] = []
    sent = {"rest": 0, "mqtt": 0}
    answered = {"rest": 0, "mqtt": 0}
    last_ok: dict[str, int] = {}

    def guard(fn):
        def run():
            try:
                fn()
            except Exception as exc:  # a failed driver fails the test, not silently
                errors.append(f"{fn.__name__}: {exc!r}")
                stop.set()
        return run

    def rest_edits():  # the only writer of ROI "door"
        i = 0
        while not stop.is_set():
            i += 1
            left = i % 30
            status, reply = post_command(node.url, "roi/update",
                                         {"name": "door", "left": left, "top": 10,
                                          "right": 40 + left % 10, "bottom": 90})
            sent["rest"] += 1
            answered["rest"] += 1
            if reply["status"] == "ok":
                last_ok["door"] = left
            elif reply["error"]["code"] not in ("version_conflict", "unavailable"):
                errors.append(f"REST roi/update refused: {reply}")

    def ask(command: str, payload: dict) -> dict | None:
        """One MQTT request; None when the broker is away (sent or not, not answered)."""
        while not probe.client.is_connected() and not stop.is_set():
            stop.wait(0.05)
        try:
            return probe.request(BASE, command, payload, timeout=15)
        except (AssertionError, RuntimeError):
            return None

    def mqtt_edits():  # the only writer of ROI "window", and module switches
        i = 0
        modules = ["service", "passthrough", "motion"]
        while not stop.is_set():
            i += 1
            top = i % 30
            reply = ask("roi/update", {"id": f"w{i}", "name": "window", "left": 50,
                                       "top": top, "right": 90, "bottom": 50 + top})
            sent["mqtt"] += 1
            if reply is None:  # maybe applied, never acknowledged: no "last" known now
                last_ok.pop("window", None)
                continue
            answered["mqtt"] += 1
            if reply["status"] == "ok":
                last_ok["window"] = top
            if i % 5 == 0:
                sent["mqtt"] += 1
                if ask("module/set", {"id": f"m{i}", "name": modules[i % len(modules)]}):
                    answered["mqtt"] += 1

    def viewers():
        rng = random.Random(7)
        while not stop.is_set():
            readers = []
            for _ in range(rng.randint(1, 4)):
                r = MjpegReader(node.url + "/stream.mjpg")
                r.read_part()
                readers.append(r)
            stop.wait(rng.uniform(0.2, 1.5))
            for r in readers:
                r.close()

    restarts: list[float] = []

    def broker_restarts():
        while not stop.wait(RESTART_EVERY):
            broker.stop()
            stop.wait(0.5)
            broker.start()
            restarts.append(time.time())

    threads = [threading.Thread(target=guard(f), name=f.__name__)
               for f in (rest_edits, mqtt_edits, viewers, broker_restarts)]
    for t in threads:
        t.start()
    stop.wait(DURATION)
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(restarts) >= 5

    # `online` after every reconnect: the probe reconnects too and sees every message.
    onlines = [m for m in probe.messages
               if m.topic == f"{BASE}/availability" and m.payload == b"online"]
    wait_for(lambda: len([m for m in probe.messages if m.topic == f"{BASE}/availability"
                          and m.payload == b"online"]) >= len(restarts) + 1,
             timeout=20, what="online after the last restart")
    onlines = [m for m in probe.messages
               if m.topic == f"{BASE}/availability" and m.payload == b"online"]
    assert len(onlines) >= len(restarts) + 1

    # The last acknowledged edit of each ROI is what config.json holds.
    state = wait_for(lambda: get_json(node.url + "/api/state"), what="state")
    saved = json.loads((tmp_path / "config.json").read_text())["rois"]
    assert saved["door"]["left"] == last_ok["door"]
    if "window" in last_ok:
        assert saved["window"]["top"] == last_ok["window"]
    assert state["rois"] == saved

    # Counters add up: every answered command was counted once (none twice, none lost).
    counts = state["commands"]
    assert counts["ok"] + counts["error"] >= answered["rest"] + answered["mqtt"]
    assert counts["ok"] + counts["error"] <= sent["rest"] + sent["mqtt"] + 1  # + state/get

    print(f"stress figures: sent {sent}, answered {answered}, counted {counts}, "
          f"broker restarts {len(restarts)}, online messages {len(onlines)}, "
          f"last edits {last_ok}")

    # Nothing died or was logged as an exception on the way.
    out = node.output
    assert "Traceback" not in out, out[-4000:]
    assert "dictionary changed size" not in out
