"""Fixtures that run camnode as real processes on free ports and read it as clients do."""

from __future__ import annotations

import copy
import http.client
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

from bench.mjpeg_camera import MjpegCamera  # noqa: F401  (tests import it from here)

ROOT = Path(__file__).resolve().parents[2]


def wait_for(cond: Callable[[], object], timeout: float = 10.0, interval: float = 0.05,
             what: str = "condition"):
    """Poll `cond` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except (OSError, ValueError, KeyError, http.client.HTTPException) as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}"
                         + (f" (last error: {last_exc})" if last_exc else ""))


class Camnode:
    """One `camnode ...` process; output collected by a thread; stopped by the fixture."""

    def __init__(self, args: list[str], cwd: Path, env: dict | None = None,
                 python: str = sys.executable):
        self.args = args
        self.python = python
        self.cwd = cwd
        self.extra_env = env or {}
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> "Camnode":
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.extra_env)
        self.proc = subprocess.Popen([self.python, "-m", "camnode", *self.args],
                                     cwd=self.cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, pattern: str, timeout: float = 15.0) -> re.Match:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and seen == len(self.lines)):
                    raise AssertionError(f"no line matching {pattern!r}; output:\n" + self.output)
                self._cond.wait(min(left, 0.2))

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_ready(self) -> "Camnode":
        m = self.wait_line(r"is running: open (http://127\.0\.0\.1:\d+)/")
        self.url = m.group(1)
        wait_for(lambda: request(self.url + "/healthz")[0] == 200,
                 what="web worker to receive the node's state")
        return self

    def state(self) -> dict:
        return get_json(self.url + "/api/state")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError("camnode did not stop on SIGTERM:\n" + self.output)

    def kill_all(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


BASE_CONFIG = {
    "node_id": "test",
    "name": "test node",
    "camera": {"source": "synthetic", "width": 320, "height": 240, "fps": 15,
               "jpeg_quality": 70, "reconnect_max_s": 1},
    # "always": these tests read frames without being stream viewers; the encoding on
    # demand (the default) is tested with "demand" in test_lean.py.
    "pipeline": {"autostart": True, "module": "service", "encode": "always"},
    "zmq": {"publish": "tcp://127.0.0.1:*", "command": "tcp://127.0.0.1:*"},
    "web": {"host": "127.0.0.1", "port": 0, "workers": 1},
    "colours": {"green": [0, 255, 0], "red": [0, 0, 255]},
    "rois": {"door": {"left": 10, "top": 10, "right": 40, "bottom": 90, "colour": "green"}},
    "logging": {"level": "INFO"},
    "mqtt": {"enabled": False},
}


def deep_update(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = v
    return out


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(changes: dict | None = None, name: str = "config.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(deep_update(BASE_CONFIG, changes or {}), indent=2))
        return path
    return write


@pytest.fixture
def camnode(tmp_path: Path):
    """Factory: camnode("run", "--config", path) -> started Camnode; all killed at the end."""
    started: list[Camnode] = []

    def start(*args: str, env: dict | None = None) -> Camnode:
        c = Camnode(list(args), ROOT, env).start()
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill_all()


@pytest.fixture
def run_node(camnode, write_config):
    """Start `camnode run` with the base config plus `changes`, ready to use."""
    def run(changes: dict | None = None, *extra: str, env: dict | None = None) -> Camnode:
        cfg = write_config(changes)
        return camnode("run", "--config", str(cfg), *extra, env=env).wait_ready()
    return run


# -- HTTP helpers: real clients on real sockets ----------------------------------------------
def request(url: str, method: str = "GET", body: bytes | None = None,
            headers: dict | None = None, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(url: str, timeout: float = 5.0) -> dict:
    return json.loads(request(url, timeout=timeout)[2])


def post_command(base: str, command: str, payload: dict | None = None,
                 timeout: float = 10.0) -> tuple[int, dict]:
    status, _, body = request(f"{base}/api/{command}", "POST",
                              json.dumps(payload or {}).encode(),
                              {"Content-Type": "application/json"}, timeout)
    return status, json.loads(body)


class MjpegReader:
    """Reads /stream.mjpg over a plain socket, part by part, as a browser would."""

    def __init__(self, url: str, rcvbuf: int | None = None, timeout: float = 10.0):
        m = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        self.f = self.sock.makefile("rb")
        status = self.f.readline().decode()
        self.status = int(status.split()[1])
        self.headers = self._headers()
        ctype = self.headers.get("content-type", "")
        self.boundary = ctype.split("boundary=")[-1].encode() if "boundary=" in ctype else b""
        if self.status == 200:
            first = self.f.readline().strip()
            assert first == b"--" + self.boundary, first

    def _headers(self) -> dict:
        headers = {}
        while True:
            line = self.f.readline()
            if line in (b"\r\n", b"\n", b""):
                return headers
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()

    def read_part(self) -> tuple[dict, bytes, float]:
        """(part headers, JPEG bytes, local receive time) of the next frame."""
        headers = self._headers()
        jpeg = self.f.read(int(headers["content-length"]))
        received = time.time()
        tail = self.f.readline()
        assert tail == b"\r\n", tail
        boundary = self.f.readline().strip()
        assert boundary == b"--" + self.boundary, boundary
        return headers, jpeg, received

    def close(self) -> None:
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass


# -- MQTT: a real Mosquitto on a free port, and a paho client that records everything ----------
import shutil  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from camnode.node.broker import free_port, port_open  # noqa: E402  (the node's own helpers)

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker:
    """Mosquitto on 127.0.0.1:<free port>; stop() and start() again keep the port."""

    def __init__(self, workdir: Path, extra_conf: str = ""):
        self.port = free_port()
        self.workdir = workdir
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        conf.write_text(self.extra_conf or f"listener {self.port} 127.0.0.1\n"
                        "allow_anonymous true\npersistence false\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        wait_for(lambda: port_open("127.0.0.1", self.port), timeout=10,
                 what="mosquitto listening")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def broker(tmp_path: Path):
    if not os.path.exists(MOSQUITTO):
        pytest.fail("mosquitto is not installed: run `make test`, which installs it")
    b = Broker(tmp_path).start()
    yield b
    b.stop()


class Probe:
    """A paho MQTT 5 client that records every message it sees; used as HA / Node-RED."""

    def __init__(self, port: int, topics=("camnode/#", "homeassistant/#"), client_id="probe"):
        self.messages: list[mqtt.MQTTMessage] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def wait(self, topic: str, pred: Callable[[mqtt.MQTTMessage], bool] = lambda m: True,
             timeout: float = 10.0, since: int = 0) -> mqtt.MQTTMessage:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages[since:]:
                    if mqtt.topic_matches_sub(topic, m.topic) and pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({m.topic for m in self.messages})
                    raise AssertionError(f"no message on {topic} within {timeout} s; "
                                         f"topics seen: {seen}")
                self._cond.wait(left)

    def mark(self) -> int:
        with self._cond:
            return len(self.messages)

    def payloads(self, topic: str, since: int = 0) -> list[bytes]:
        with self._cond:
            return [m.payload for m in self.messages[since:]
                    if mqtt.topic_matches_sub(topic, m.topic)]

    def publish(self, topic: str, payload, retain: bool = False, properties=None) -> None:
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        self.client.publish(topic, payload, qos=1, retain=retain,
                            properties=properties).wait_for_publish(5)

    def request(self, base: str, command: str, payload, timeout: float = 10.0) -> dict:
        """Publish request/<command> and return the reply with the same id."""
        mark = self.mark()
        rid = payload.get("id") if isinstance(payload, dict) else None
        self.publish(f"{base}/request/{command}", payload)
        msg = self.wait(f"{base}/response/{command}",
                        lambda m: rid is None or json.loads(m.payload).get("id") == rid,
                        timeout, since=mark)
        return json.loads(msg.payload)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def probe_factory():
    probes: list[Probe] = []

    def make(port: int, **kw) -> Probe:
        p = Probe(port, **kw)
        probes.append(p)
        return p

    yield make
    for p in probes:
        p.close()
