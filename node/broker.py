"""Finding a broker when none is configured (`mqtt.host` "auto").

A broker already listening on 127.0.0.1:1883 is used as it is. Otherwise, when the
`mosquitto` binary is installed, a private one is started on loopback (port 1883 if
free, else any free port) and stopped with the node. Without either, the node runs
without MQTT and says so. Called by the CLI's main thread before the node starts.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time

from camnode.node.children import guarded

log = logging.getLogger(__name__)

DEFAULT_PORT = 1883


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)),
        None)


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(preferred: int = 0) -> int:
    for port in (preferred, 0):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
    raise OSError("no free port")


class PrivateBroker:
    """A Mosquitto child process on loopback; start() returns its port."""

    def __init__(self, binary: str):
        self.binary = binary
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self._dir: tempfile.TemporaryDirectory | None = None

    def start(self, timeout: float = 5.0) -> int:
        self._dir = tempfile.TemporaryDirectory(prefix="camnode-mosquitto-")
        self.port = free_port(DEFAULT_PORT)
        conf = os.path.join(self._dir.name, "mosquitto.conf")
        with open(conf, "w", encoding="utf-8") as f:
            # Stay the user we are: switching (mosquitto does when started as root) would
            # cancel the parent-death signal and lose access to this temporary config.
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    f"user {getpass.getuser()}\npersistence false\n"
                    # Without it each answer waits ~40 ms for a delayed ACK (Nagle).
                    "set_tcp_nodelay true\n"
                    "log_dest stderr\nlog_type error\nlog_type warning\n")
        # Own session: Ctrl-C in a terminal must not stop the broker before the node has
        # said "offline"; guarded: a killed node leaves no broker behind.
        self.proc = subprocess.Popen(guarded([self.binary, "-c", conf]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace").strip()
                raise OSError(f"mosquitto exited: {err or self.proc.returncode}")
            if port_open("127.0.0.1", self.port):
                log.info("MQTT: started a private Mosquitto on 127.0.0.1:%d", self.port)
                return self.port
            time.sleep(0.05)
        self.stop()
        raise OSError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._dir:
            self._dir.cleanup()
            self._dir = None


def resolve_broker(host: str, port: int) -> tuple[str, int, PrivateBroker | None] | None:
    """(host, port, private broker or None) to connect to, or None: run without MQTT."""
    if host != "auto":
        return host, port, None
    if port_open("127.0.0.1", DEFAULT_PORT):
        log.info("MQTT: using the broker already on 127.0.0.1:%d", DEFAULT_PORT)
        return "127.0.0.1", DEFAULT_PORT, None
    binary = find_mosquitto()
    if binary is None:
        log.warning("MQTT: no broker configured and mosquitto is not installed; running "
                    "without MQTT (set mqtt.host, or install the mosquitto package)")
        return None
    broker = PrivateBroker(binary)
    try:
        return "127.0.0.1", broker.start(), broker
    except OSError as exc:
        log.error("MQTT: could not start a private Mosquitto (%s); running without MQTT", exc)
        return None
