"""Starting, stopping, bad configuration, running node and web apart."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest

from tests.integration.conftest import (MjpegReader, get_json, port_open, post_command,
                                        request, wait_for)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_bad_config_is_refused_at_start_with_every_error(camnode, write_config):
    cfg = write_config({"node_id": "bad id!", "camera": {"fps": "fast", "jpeg_quality": 500},
                        "rois": {"door": {"left": 50, "right": 10}}, "surprise": True})
    proc = camnode("run", "--config", str(cfg))
    assert proc.proc.wait(30) == 2
    out = proc.output
    for path in ("$.node_id", "$.camera.fps", "$.camera.jpeg_quality", "$.surprise",
                 "$.rois.door"):
        assert path in out, f"{path} not reported:\n{out}"
    assert "Traceback" not in out


def test_check_config_lists_errors_and_accepts_the_default(camnode, write_config):
    good = camnode("check-config", "config.json")
    assert good.proc.wait(30) == 0 and "OK" in good.output
    bad = camnode("check-config", str(write_config({"camera": {"width": -1, "fps": 0}})))
    assert bad.proc.wait(30) == 1
    assert "$.camera.width" in bad.output and "$.camera.fps" in bad.output


def test_check_config_checks_module_params_against_the_modules_schema(camnode, write_config):
    # motion's PARAMS_SCHEMA bounds sensitivity; an unknown key and an unknown module are
    # refused too, all without importing (running) the module's code.
    bad = camnode("check-config", str(write_config(
        {"pipeline": {"module": "motion", "module_params": {"sensitivity": 5000, "nope": 1}}})))
    assert bad.proc.wait(30) == 1
    assert "$.pipeline.module_params.sensitivity" in bad.output
    assert "nope" in bad.output and "Traceback" not in bad.output
    unknown = camnode("check-config", str(write_config(
        {"pipeline": {"module": "no_such_module"}}, name="unknown.json")))
    assert unknown.proc.wait(30) == 1 and "$.pipeline.module" in unknown.output
    good = camnode("check-config", str(write_config(
        {"pipeline": {"module": "motion", "module_params": {"sensitivity": 50}}},
        name="good.json")))
    assert good.proc.wait(30) == 0, good.output


def test_sigterm_stops_node_and_web_workers(run_node):
    node = run_node({"web": {"workers": 2}})
    pids = wait_for(lambda: len(ps := _worker_pids(node)) == 2 and ps, what="two workers")
    assert node.stop(signal.SIGTERM) == 0
    for pid in pids:
        wait_for(lambda: not _alive(pid), timeout=5, what=f"worker {pid} gone")
    assert "node stopped" in node.output
    assert "Traceback" not in node.output


def _worker_pids(node) -> set[int]:
    return {get_json(node.url + "/api/state")["worker"]["pid"] for _ in range(8)}


def test_sigint_stops_cleanly_too(run_node):
    node = run_node()
    assert node.stop(signal.SIGINT) == 0
    assert "Traceback" not in node.output


def test_idle_node_uses_almost_no_cpu(run_node):
    node = run_node({"pipeline": {"autostart": False}})
    pid = node.proc.pid
    time.sleep(1)  # let start-up work finish before measuring
    before, t0 = _cpu_seconds(pid), time.monotonic()
    time.sleep(3)
    used = (_cpu_seconds(pid) - before) / (time.monotonic() - t0)
    assert used < 0.10, f"stopped node used {used:.0%} of a core"


def test_flags_override_the_file_without_changing_it(camnode, write_config):
    cfg = write_config()
    before = cfg.read_bytes()
    node = camnode("run", "--config", str(cfg), "--node-id", "porch",
                   "--source", "synthetic", "--port", "0").wait_ready()
    assert node.state()["node_id"] == "porch"
    post_command(node.url, "module/set", {"name": "passthrough"})  # a write to the file
    saved = json.loads(cfg.read_text())
    assert saved["node_id"] == "test" and saved["pipeline"]["module"] == "passthrough"
    assert cfg.read_bytes() != before


def test_node_and_web_run_apart(camnode, write_config, tmp_path):
    node = camnode("node", "--config", str(write_config()))
    m = node.wait_line(r"frames on (tcp://\S+), commands on (tcp://\S+)")
    web = camnode("web", "--connect", m.group(1), "--command", m.group(2),
                  "--keys", str(tmp_path / ".camnode-curve"),  # the node's command key
                  "--host", "127.0.0.1", "--port", "0")
    url = web.wait_line(r"listening on (http://127\.0\.0\.1:\d+)/").group(1)
    wait_for(lambda: get_json(url + "/api/state").get("pipeline") == "running",
             what="state through the relay")
    reader = MjpegReader(url + "/stream.mjpg")
    reader.read_part()
    reader.close()
    status, reply = post_command(url, "pipeline/stop")
    assert status == 200 and reply["data"]["pipeline"] == "stopped"
    assert node.stop() == 0 and web.stop() == 0


def test_the_first_health_check_after_start_up_finds_the_node(camnode, write_config):
    """Right after `camnode run` prints its address, /healthz and /api/state know the
    node: they used to say "node unreachable" (503) until the first periodic state."""
    node = camnode("run", "--config", str(write_config()))
    url = node.wait_line(r"is running: open (http://127\.0\.0\.1:\d+)/").group(1)
    status, _, body = request(url + "/healthz")
    assert (status, json.loads(body)["node"]) == (200, "ok"), body
    assert get_json(url + "/api/state")["node_reachable"] is True


def test_web_answers_quickly_when_the_node_is_down(camnode):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    web = camnode("web", "--connect", f"tcp://127.0.0.1:{dead}", "--host", "127.0.0.1",
                  "--port", "0")
    url = web.wait_line(r"listening on (http://127\.0\.0\.1:\d+)/").group(1)
    t0 = time.monotonic()
    status, _, body = request(url + "/healthz")
    assert status == 503 and json.loads(body)["node"] == "unreachable"
    state = get_json(url + "/api/state")
    assert state["node_reachable"] is False
    assert request(url + "/snapshot.jpg")[0] == 503
    status, reply = post_command(url, "pipeline/start")
    assert status == 503 and reply["error"]["code"] == "unavailable"
    # The worker answers for the node, and still echoes the request's id (issue 9 B.7).
    status, reply = post_command(url, "pipeline/start", {"id": "start-7"})
    assert status == 503 and reply["id"] == "start-7"
    assert time.monotonic() - t0 < 2.0


def test_sigkill_leaves_no_worker_or_private_broker_behind(run_node):
    node = run_node({"mqtt": {"enabled": True, "host": "auto"}})
    state = wait_for(lambda: (s := node.state())["mqtt"]["connected"] and s, timeout=15,
                     what="MQTT through the automatic broker")
    port = int(state["mqtt"]["broker"].rsplit(":", 1)[1])
    private = "started a private Mosquitto" in node.output
    worker = state["worker"]["pid"]
    os.kill(node.proc.pid, signal.SIGKILL)  # only camnode itself, not its process group
    node.proc.wait(10)
    wait_for(lambda: not _alive(worker), timeout=10, what="web worker gone with its parent")
    if private:
        wait_for(lambda: not port_open("127.0.0.1", port), timeout=10,
                 what="private broker gone with its parent")
