"""Scale-out: one node, web relays elsewhere; many nodes on one broker."""

from __future__ import annotations

import json
import os
import threading
import time

from tests.integration.conftest import MjpegReader, get_json, post_command, wait_for


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _node_cpu_share(pid: int, seconds: float = 3.0) -> float:
    before, t0 = _cpu(pid), time.monotonic()
    time.sleep(seconds)  # a measurement window, not a wait for a condition
    return (_cpu(pid) - before) / (time.monotonic() - t0)


def test_two_relays_serve_viewers_from_one_node(camnode, write_config, tmp_path):
    node = camnode("node", "--config", str(write_config({
        "camera": {"fps": 15},
        "zmq": {"publish": "tcp://127.0.0.1:*", "command": "tcp://127.0.0.1:*"}})))
    m = node.wait_line(r"frames on (tcp://\S+), commands on (tcp://\S+)")
    relays = []
    for _ in range(2):
        # The relay holds the node's command key (here the node's own key folder).
        web = camnode("web", "--connect", m.group(1), "--command", m.group(2),
                      "--keys", str(tmp_path / ".camnode-curve"),
                      "--host", "127.0.0.1", "--port", "0")
        url = web.wait_line(r"listening on (http://127\.0\.0\.1:\d+)/").group(1)
        wait_for(lambda: get_json(url + "/api/state").get("pipeline") == "running",
                 what="relay gets state")
        relays.append(url)
    idle = _node_cpu_share(node.proc.pid)
    readers = [MjpegReader(relays[i % 2] + "/stream.mjpg") for i in range(40)]
    stop = threading.Event()
    counts = [0] * len(readers)

    def drain(i: int) -> None:
        try:
            while not stop.is_set():
                readers[i].read_part()
                counts[i] += 1
        except (OSError, ValueError, AssertionError):
            pass

    threads = [threading.Thread(target=drain, args=(i,), daemon=True) for i in range(40)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: get_json(relays[0] + "/api/state")["viewers"] == 40,
                 what="the node counts viewers of both relays")
        busy = _node_cpu_share(node.proc.pid)
        assert all(c > 0 for c in counts), "every viewer on both relays got frames"
        # 40 viewers cost the node nothing: it sends each frame once per relay.
        assert busy < idle * 1.5 + 0.05, f"node CPU {idle:.0%} idle vs {busy:.0%} with viewers"
        status, reply = post_command(relays[1], "pipeline/stop")  # commands via a relay
        assert status == 200 and reply["data"]["pipeline"] == "stopped"
    finally:
        stop.set()
        for r in readers:
            r.close()


def test_many_nodes_share_one_broker_and_are_discovered_separately(run_node, broker,
                                                                   probe_factory):
    probe = probe_factory(broker.port)
    mqtt_cfg = {"enabled": True, "host": "127.0.0.1", "port": broker.port}
    run_node({"node_id": "porch", "mqtt": mqtt_cfg})
    run_node({"node_id": "garage", "mqtt": mqtt_cfg})
    docs = {}
    for node_id in ("porch", "garage"):
        msg = probe.wait(f"homeassistant/device/camnode_{node_id}/config")
        docs[node_id] = json.loads(msg.payload)
        probe.wait(f"camnode/{node_id}/availability", lambda m: m.payload == b"online")
    assert docs["porch"]["device"]["identifiers"] != docs["garage"]["device"]["identifiers"]
    porch_ids = {c.get("unique_id") for c in docs["porch"]["components"].values()}
    garage_ids = {c.get("unique_id") for c in docs["garage"]["components"].values()}
    assert not porch_ids & garage_ids
    reply = probe.request("camnode/garage", "pipeline/stop", {"id": "g"})
    assert reply["status"] == "ok"
    probe.wait("camnode/garage/state", lambda m: json.loads(m.payload)["pipeline"] == "stopped")
    probe.wait("camnode/porch/state", lambda m: json.loads(m.payload)["pipeline"] == "running")
