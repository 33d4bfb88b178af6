"""A real camnode (`camnode run` with a private-port Mosquitto) to fuzz, and the checks
made on every answer. Used by tests/fuzz/test_fuzz.py (in `make test`) and
tests/fuzz/run.py (`make fuzz`).

Requests are sent one at a time, so each answer is matched to its request exactly
(MQTT 5 correlation data; HTTP by construction) and `config.json` can be compared
byte for byte before and after every refused command.
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from camnode.node.schemas import validate
from tests.integration.conftest import BASE_CONFIG, ROOT, Broker, Camnode, deep_update

NODE_ID = "fuzz"
BASE = f"camnode/{NODE_ID}"
HTTP_STATUS = {"ok": 200, "invalid_json": 400, "too_large": 413, "validation_failed": 400,
               "unknown_command": 404, "unknown_module": 404, "not_found": 404,
               "exists": 409, "version_conflict": 409, "module_error": 422,
               "unavailable": 503, "internal_error": 500}
THREAD_DEATH = re.compile(r"Exception in thread|Traceback \(most recent call last\)")


@dataclass
class Stats:
    """What `make fuzz` prints; one instance per transport."""

    sent: int = 0
    answered: int = 0
    ok: int = 0
    refused: int = 0
    internal_errors: int = 0
    bad_envelopes: int = 0
    wrong_http_status: int = 0
    config_changed_by_refused: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


class Target:
    """Broker + node + an MQTT 5 client; `stop()` cleans everything up."""

    def __init__(self, fps: int = 5):
        self._tmp = tempfile.TemporaryDirectory(prefix="camnode-fuzz-")
        self.dir = Path(self._tmp.name)
        self.config = self.dir / "config.json"
        self.broker = Broker(self.dir)
        # set_tcp_nodelay: a stock Mosquitto adds ~44 ms to every answer (bench/mqtt_rtt.py).
        self.broker.extra_conf = (f"listener {self.broker.port} 127.0.0.1\n"
                                  "allow_anonymous true\npersistence false\n"
                                  "set_tcp_nodelay true\n")
        self.fps = fps
        self.node: Camnode | None = None
        self.client: mqtt.Client | None = None
        self._answers: dict[bytes, list[bytes]] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count()
        self.host = self.port = None

    def start(self) -> "Target":
        self.broker.start()
        doc = deep_update(BASE_CONFIG, {
            "node_id": NODE_ID, "camera": {"fps": self.fps, "width": 160, "height": 120},
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": self.broker.port,
                     "stats_interval_s": 30}})
        self.config.write_text(json.dumps(doc, indent=2))
        self.node = Camnode(["run", "--config", str(self.config)], ROOT).start().wait_ready()
        m = re.match(r"http://([^:/]+):(\d+)", self.node.url)
        self.host, self.port = m.group(1), int(m.group(2))
        online = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fuzzer", protocol=mqtt.MQTTv5)
        c.on_message = lambda cl, ud, msg: self._on_message(msg, online)
        c.connect("127.0.0.1", self.broker.port)
        c.subscribe([(f"{BASE}/response/#", 1), (f"{BASE}/availability", 1)])
        c.loop_start()
        self.client = c
        if not online.wait(20):
            raise RuntimeError("the node did not come online on MQTT")
        return self

    def _on_message(self, msg, online: threading.Event) -> None:
        if msg.topic.endswith("/availability"):
            if msg.payload == b"online":
                online.set()
            return
        corr = getattr(msg.properties, "CorrelationData", None)
        if corr is None:
            return
        with self._cond:
            self._answers.setdefault(corr, []).append(msg.payload)
            self._cond.notify_all()

    def stop(self) -> None:
        if self.client:
            self.client.loop_stop()
            self.client.disconnect()
        if self.node:
            self.node.kill_all()
        self.broker.stop()
        self._tmp.cleanup()

    # -- probes ----------------------------------------------------------------------
    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.node.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))

    def thread_deaths(self) -> int:
        return sum(1 for line in self.node.output.splitlines() if THREAD_DEATH.search(line))

    # -- transports --------------------------------------------------------------------
    def mqtt(self, command: str, body: bytes, timeout: float = 10.0) -> dict | None:
        """`command` "plain:pipeline/set" publishes on the plain `<base>/pipeline/set`."""
        corr = str(next(self._ids)).encode()
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = corr
        topic = (f"{BASE}/{command[6:]}" if command.startswith("plain:")
                 else f"{BASE}/request/{command}")
        self.client.publish(topic, body, qos=1,
                            properties=props).wait_for_publish(5)
        with self._cond:
            if not self._cond.wait_for(lambda: corr in self._answers, timeout):
                return None
            return json.loads(self._answers[corr][0])

    def extra_mqtt_answers(self) -> int:
        """Answers beyond one per request (call after a short settle)."""
        with self._cond:
            return sum(len(v) - 1 for v in self._answers.values())

    def rest(self, command: str, body: bytes, timeout: float = 10.0) -> tuple[int, dict] | None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("POST", f"/api/{command}", body,
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
        try:
            return resp.status, json.loads(data)
        except ValueError:  # answered, but not with an envelope
            return resp.status, {"not_json": data[:200].decode("utf-8", "replace")}


def check(target: Target, stats: Stats, transport: str, command: str, body: bytes) -> None:
    """Send one request and record what a user would notice about its answer."""
    before = target.config.read_bytes()
    stats.sent += 1
    if transport == "mqtt":
        reply, status = target.mqtt(command, body), None
    else:
        got = target.rest(command, body)
        status, reply = got if got else (None, None)
    if reply is None:
        stats.note(f"{transport} {command}: no answer to {body[:80]!r}")
        return
    stats.answered += 1
    if validate("envelope", reply):
        stats.bad_envelopes += 1
        stats.note(f"{transport} {command}: not an envelope: {str(reply)[:200]}")
        return
    code = "ok" if reply["status"] == "ok" else reply["error"]["code"]
    stats.codes[code] = stats.codes.get(code, 0) + 1
    if code == "ok":
        stats.ok += 1
    else:
        stats.refused += 1
        if target.config.read_bytes() != before:
            stats.config_changed_by_refused += 1
            stats.note(f"{transport} {command}: refused ({code}) but config.json changed")
    if code == "internal_error":
        stats.internal_errors += 1
        stats.note(f"{transport} {command}: internal_error for {body[:80]!r}")
    if status is not None and status != HTTP_STATUS.get(code):
        stats.wrong_http_status += 1
        stats.note(f"rest {command}: HTTP {status} for {code}")


def rest_commands(target: Target, commands: list[str]) -> list[str]:
    """The commands the web routes to the node (POST /api/snapshot is issue 9 B.8, fixed
    on the web side: fuzzed over REST as soon as it answers with an envelope)."""
    got = target.rest("snapshot", b"{}")
    routed = got is not None and "not_json" not in got[1]
    return [c for c in commands if c != "snapshot" or routed]


def still_answering(target: Target) -> bool:
    """Both transports answer a plain request (the command threads are alive)."""
    via_mqtt = target.mqtt("roi/get", b'{"id": "alive"}')
    via_rest = target.rest("roi/get", b'{"id": "alive"}')
    return bool(via_mqtt and via_mqtt.get("id") == "alive" and via_rest
                and via_rest[0] == 200)
