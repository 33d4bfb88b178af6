"""MQTT command round trip: QoS 0 against QoS 1 (issue 9 D.19).

Starts a private Mosquitto on a free loopback port and `camnode node` (synthetic camera,
pipeline stopped so frames cost nothing) connected to it, then a paho MQTT 5 client
sends `request/roi/get` one at a time and waits for `response/roi/get` with the same id,
first at QoS 0 (request and subscription), then at QoS 1, against a Mosquitto with and
without `set_tcp_nodelay`. Prints median, p95 and max per QoS; `--json FILE` writes
them. Run: `python -m bench.mqtt_rtt` (also `make bench`).

Nagle's algorithm and the peer's delayed ACK (~40 ms) cost a round trip whenever a
socket writes a second small packet before the first is acknowledged. The node writes a
PUBACK then its answer: without TCP_NODELAY on the node's socket a QoS 1 round trip took
~44 ms (0.7 ms with it). Mosquitto's own sockets have the same problem unless
`set_tcp_nodelay true` (stock: ~44 ms at either QoS), which is why camnode's private
broker and deploy/mosquitto set it.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.procs import Procs
from camnode.node.broker import find_mosquitto, free_port, port_open

BASE = "camnode/bench"


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.05)


class Client:
    """One paho client (TCP_NODELAY too, so only the node's socket is measured)."""

    def __init__(self, port: int):
        self.replies: dict[str, float] = {}
        self.cond = threading.Condition()
        self.online = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rtt-bench",
                        protocol=mqtt.MQTTv5)
        c.on_socket_open = lambda cl, ud, s: s.setsockopt(socket.IPPROTO_TCP,
                                                         socket.TCP_NODELAY, 1)
        c.on_message = self._on_message
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.c = c

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic.endswith("/availability"):
            if msg.payload == b"online":
                self.online.set()
            return
        try:
            rid = json.loads(msg.payload)["id"]
        except (ValueError, KeyError, TypeError):
            return
        with self.cond:
            self.replies[rid] = time.perf_counter()
            self.cond.notify_all()

    def round_trips(self, qos: int, n: int) -> list[float]:
        self.c.unsubscribe(f"{BASE}/response/#")
        self.c.subscribe(f"{BASE}/response/roi/get", qos=qos)[1]
        time.sleep(0.3)  # let SUBACK land before timing
        out = []
        for i in range(n):
            rid = f"q{qos}-{i}"
            start = time.perf_counter()
            self.c.publish(f"{BASE}/request/roi/get", json.dumps({"id": rid}), qos=qos)
            with self.cond:
                if not self.cond.wait_for(lambda: rid in self.replies, 5):
                    raise SystemExit(f"bench: no answer to {rid}")
                out.append((self.replies.pop(rid) - start) * 1000)
        return out

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def summary(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 2),
            "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2), "max_ms": round(ms[-1], 2)}


def measure(binary: str, nodelay: bool, n: int) -> dict:
    """Broker + node + client; {"qos0": ..., "qos1": ...}; every process stopped."""
    procs = Procs()
    with tempfile.TemporaryDirectory(prefix="camnode-rtt-") as tmp:
        port = free_port()
        conf = Path(tmp, "mosquitto.conf")
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        + ("set_tcp_nodelay true\n" if nodelay else ""))
        procs.start([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
        cfg = Path(tmp, "config.json")
        cfg.write_text(json.dumps({
            "node_id": "bench", "camera": {"source": "synthetic", "width": 160, "height": 120,
                                           "fps": 5},
            "pipeline": {"autostart": False, "module": "passthrough"},
            "zmq": {"publish": "tcp://127.0.0.1:*", "command": "tcp://127.0.0.1:*"},
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": port,
                     "discovery": {"enabled": False}},
            "logging": {"level": "WARNING"}}))
        client = None
        try:
            _wait(lambda: port_open("127.0.0.1", port), 10, "mosquitto")
            procs.start([sys.executable, "-m", "camnode", "node", "--config", str(cfg)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            client = Client(port)
            client.c.subscribe(f"{BASE}/availability", qos=1)
            if not client.online.wait(30):
                raise SystemExit("bench: the node did not come online")
            client.round_trips(1, 20)  # warm-up
            return {f"qos{q}": summary(client.round_trips(q, n)) for q in (0, 1)}
        finally:
            if client:
                client.close()
            procs.stop_all(timeout=10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=300, help="round trips per QoS (default 300)")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args(argv)
    binary = find_mosquitto()
    if not binary:
        print("bench: mosquitto not installed; skipping the MQTT round-trip bench")
        return 0
    # The node always sets TCP_NODELAY; the broker's side is a Mosquitto option
    # (set_tcp_nodelay, off by default; camnode's private broker and deploy/ turn it on).
    results = {name: measure(binary, nodelay, args.n)
               for name, nodelay in (("set_tcp_nodelay true", True),
                                     ("stock mosquitto", False))}
    print("MQTT command round trip (request/roi/get -> response/roi/get, loopback broker)")
    print(f"{'broker':<22} {'QoS':>4} {'n':>5} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for name, res in results.items():
        for q in (0, 1):
            r = res[f"qos{q}"]
            print(f"{name:<22} {q:>4} {r['n']:>5} {r['median_ms']:>10} {r['p95_ms']:>8} "
                  f"{r['max_ms']:>8}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
