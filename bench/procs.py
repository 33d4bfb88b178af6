"""The processes a benchmark starts: started, known by their log, stopped.

- `Procs`: every process a benchmark started; each leads its own process group, and
  stopping one also kills children that left its group.
- `LogTail`: a thread draining a child's output, keeping recent lines and problems.
- `start_service`: start a server from a command line given by the caller, wait for
  the line it logs when ready (by default its URL: `camnode run`'s "is running: open
  http://..." or `camnode web`'s "listening on http://..."), return a `Service`.
- `camnode_running`: `camnode run` with a config for the length of a `with` block
  (bench.processors, bench.detect_node); bench.budget starts `camnode node` and
  `camnode web` pinned with taskset through `start_service`.
- `Camnode` and `Baseline`: the two servers bench.run measures.

All of it runs on the benchmark's main thread, but for the LogTail threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

from bench.procstat import Group, descendants, start_time

ROOT = Path(__file__).resolve().parent.parent
URL_LINES = ("is running: open http://", "listening on http://")  # camnode run, camnode web


class Procs:
    """Every process started by the benchmark; each leads its own process group."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], cwd: Path = ROOT, **kw) -> subprocess.Popen:
        p = subprocess.Popen(cmd, start_new_session=True, cwd=str(cwd), **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen, timeout: float = 6.0) -> None:
        # Children that left the process group (e.g. a broker in its own session) are
        # remembered now and killed below if stopping the leader did not take them down.
        below = [(q, start_time(q)) for q in descendants(p.pid) if q != p.pid] \
            if p.poll() is None else []
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # the leader may be gone while its children (workers) linger
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(2)
        except subprocess.TimeoutExpired:
            pass
        for q, started in below:
            if started is not None and start_time(q) == started:
                try:
                    os.kill(q, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self, timeout: float = 3.0) -> None:
        for p in reversed(list(self.procs)):
            self.stop(p, timeout=timeout)


class LogTail(threading.Thread):
    """Drains a child's output; keeps recent lines and WARNING/ERROR lines."""

    def __init__(self, stream, name: str):
        super().__init__(daemon=True)
        self.stream, self.name = stream, name
        self.lines: list[str] = []
        self.problems: list[str] = []
        self.cond = threading.Condition()

    def run(self) -> None:
        for raw in self.stream:
            line = raw.decode("utf-8", "replace").rstrip()
            with self.cond:
                self.lines.append(line)
                if len(self.lines) > 500:
                    del self.lines[:250]
                if " WARNING " in line or " ERROR " in line or "Traceback" in line:
                    self.problems.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, needles: str | tuple[str, ...], timeout: float) -> str | None:
        """The first line holding one of `needles`, waiting up to `timeout` s for it;
        None when the output ends or the time runs out first."""
        if isinstance(needles, str):
            needles = (needles,)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if any(n in line for n in needles):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or not self.is_alive():
                    return None
                self.cond.wait(min(left, 0.2))

    def tail(self, n: int = 20) -> str:
        with self.cond:
            return "\n".join(self.lines[-n:])


def http_get(url: str, timeout: float = 3.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except Exception:
        return None


def get_state(base: str, timeout: float = 3.0) -> dict | None:
    """The server's /api/state, None if it does not answer."""
    raw = http_get(base + "/api/state", timeout)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def camnode_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "camnode"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("camnode")
    return [found] if found else [sys.executable, "-m", "camnode"]


class Service:
    """A server started by `start_service`: its process (in `procs`), the LogTail on
    its output, the line it logged when ready and the URL in that line ("" if none)."""

    def __init__(self, procs: Procs, proc: subprocess.Popen, log: LogTail, line: str):
        self.procs, self.proc, self.log, self.line = procs, proc, log, line
        m = re.search(r"http://\S+", line)
        self.url = m.group(0).rstrip("/") if m else ""

    def state(self, timeout: float = 5.0) -> dict:
        """/api/state; RuntimeError if the server does not answer."""
        state = get_state(self.url, timeout)
        if state is None:
            raise RuntimeError(f"{self.log.name}: no answer from {self.url}/api/state")
        return state

    def wait_state(self, ready: Callable[[dict], bool], timeout: float, what: str,
                   period: float = 0.2) -> dict:
        """Poll /api/state until `ready(state)`; RuntimeError naming `what` after
        `timeout` s or when the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            state = get_state(self.url, min(3.0, max(0.1, deadline - time.monotonic())))
            if state is not None and ready(state):
                return state
            time.sleep(period)
        raise RuntimeError(f"{self.log.name}: {what}\n{self.log.tail()}")

    def stop(self, timeout: float = 6.0) -> None:
        self.procs.stop(self.proc, timeout)


def start_service(procs: Procs, cmd: list[str], name: str, *,
                  ready: str | tuple[str, ...] = URL_LINES, timeout: float = 30.0,
                  cwd: Path = ROOT, env: dict | None = None) -> Service:
    """Start `cmd` (stdout and stderr drained together) and wait for its `ready` line;
    RuntimeError with the end of its log, the process stopped, if it does not come."""
    proc = procs.start(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    log = LogTail(proc.stdout, name)
    log.start()
    line = log.wait_for(ready, timeout)
    if line is None:
        procs.stop(proc)
        raise RuntimeError(f"{name} did not start:\n{log.tail()}")
    return Service(procs, proc, log, line)


@contextlib.contextmanager
def camnode_running(config: dict, path: Path, *, env: dict | None = None,
                    stop_timeout: float = 10.0) -> Iterator[Service]:
    """`camnode run` with `config` (written to `path`) for a `with` block; it and
    everything it started are stopped on leaving, however the block ends."""
    path.write_text(json.dumps(config))
    procs = Procs()
    try:
        yield start_service(procs, camnode_cmd() + ["run", "--config", str(path)],
                            "camnode", env=env)
    finally:
        procs.stop_all(stop_timeout)


def schema_keys() -> set[str]:
    """Top-level keys the config schema knows (bench.run may measure older trees)."""
    try:
        schema = json.loads((ROOT / "schemas" / "config.schema.json").read_text())
        return set(schema.get("properties", {}))
    except (OSError, ValueError):
        return set()


class Camnode:
    """`camnode run` as bench.run measures it: synthetic camera, passthrough module,
    MQTT off, `workers` web workers. `start()` waits until every worker is linked to the
    node and the camera captures, and measures the JPEG size."""

    def __init__(self, procs: Procs, tmp: Path, width: int, height: int, workers: int,
                 fps: int):
        self.procs, self.tmp, self.workers = procs, tmp, workers
        self.width, self.height, self.fps = width, height, fps
        self.service: Service | None = None
        self.proc: subprocess.Popen | None = None
        self.base = self.publish = ""
        self.frame_kb: float | None = None

    def start(self) -> "Camnode":
        w, h, workers = self.width, self.height, self.workers
        cfg = {
            "node_id": "bench", "name": "camnode-bench",
            "camera": {"source": "synthetic", "width": w, "height": h, "fps": self.fps},
            # Every frame encoded, viewers or not: the baseline reads the node's frames
            # from ZeroMQ without reporting viewers, and both sides must pay the encode.
            "pipeline": {"autostart": True, "module": "passthrough", "encode": "always"},
            "zmq": {"publish": "tcp://127.0.0.1:*", "command": "tcp://127.0.0.1:*"},
            "web": {"host": "127.0.0.1", "port": 0, "workers": workers},
            "logging": {"level": "INFO"},
            # No MQTT: the node would otherwise find or start a broker (a child process
            # in its own session) and publish to it; not part of what is measured here.
            "mqtt": {"enabled": False},
        }
        known = schema_keys()
        if known:
            cfg = {k: v for k, v in cfg.items() if k in known}
        path = self.tmp / f"camnode-{w}x{h}-w{workers}.json"
        path.write_text(json.dumps(cfg, indent=1))
        self.service = start_service(
            self.procs, camnode_cmd() + ["run", "--config", str(path), "--port", "0",
                                         "--workers", str(workers)],
            "camnode", ready="is running: open http://")
        self.proc, self.base = self.service.proc, self.service.url
        pub = self.log.wait_for("publishing frames and state on tcp://", 1)
        if not pub:
            self.stop()
            raise RuntimeError("camnode did not start:\n" + self.log.tail())
        self.publish = pub.split(" on ", 1)[1].split()[0]
        # Every worker linked to the node and the camera capturing. No frame reaches a
        # worker before someone watches: the node encodes on demand (node/encoder.py).
        self.service.wait_state(
            lambda s: s.get("web_workers", 0) >= workers and s.get("pipeline") == "running"
            and (s.get("frames") or {}).get("captured", 0) > 0,
            20, "camnode web workers not ready")
        time.sleep(0.5)
        jpeg = http_get(self.base + "/snapshot.jpg")
        self.frame_kb = round(len(jpeg) / 1024, 1) if jpeg else None
        return self

    @property
    def log(self) -> LogTail:
        return self.service.log

    def group(self) -> Group:
        return Group({"node": (self.proc.pid, "self"), "web": (self.proc.pid, "web"),
                      "other": (self.proc.pid, "other")})

    def web_pids(self) -> list[int]:
        return Group({"web": (self.proc.pid, "web")}).pids()["web"]

    def stop(self) -> None:
        if self.service:
            self.service.stop()


class Baseline:
    """The naive relay (bench/baseline.py) fed by the node publishing on `publish`."""

    def __init__(self, procs: Procs, publish: str, node_pid: int):
        self.procs, self.publish, self.node_pid = procs, publish, node_pid
        self.service: Service | None = None
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.frame_kb: float | None = None

    def start(self) -> "Baseline":
        self.service = start_service(
            self.procs, [sys.executable, "-m", "bench.baseline", "--connect", self.publish,
                         "--port", "0"],
            "baseline", ready="baseline is running: open http://", timeout=15)
        self.proc, self.base = self.service.proc, self.service.url
        return self

    def group(self) -> Group:
        return Group({"node": (self.node_pid, "self"), "web": (self.proc.pid, "tree")})

    def idle(self, timeout: float) -> bool:
        """Wait until every stream thread has noticed its client left."""
        try:
            self.service.wait_state(lambda s: s.get("viewers") == 0, timeout,
                                    "still streaming", period=0.3)
            return True
        except RuntimeError:
            return False

    def stop(self) -> None:
        if self.service:
            self.service.stop()
