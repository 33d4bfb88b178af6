"""camnode benchmark: MJPEG fan-out to many viewers, camnode against a naive baseline.

    python -m bench.run            # full run (~13 min): 640x480 and 1280x720 @ 30 fps
    python -m bench.run --quick    # smoke run (< 2 min)

For each resolution it starts `camnode run` (synthetic camera, passthrough module) with
a temporary config, once per web worker count (`--workers`, default 1 and 2), and the
naive baseline (`bench/baseline.py`) subscribed to the same node. For each client count
(and, with 20 % slow readers, again) it runs `bench/loadgen.py` for a warm-up plus
`--duration` seconds and measures, over the window after the warm-up:

- delivered fps of normal clients (median, minimum), latency p50/p95 (receive time of
  the last JPEG byte minus X-Timestamp, the capture time on the node), median time to
  first frame; the slow readers' figures apart;
- server CPU: user+sys from /proc/<pid>/stat summed over the server's processes
  (camnode: node process + web workers; baseline: baseline process + the node process
  that feeds it), in % of one core (200 % = both cores of this machine);
- peak RSS of those processes (VmRSS sampled every 0.5 s, summed);
- the load generator's own CPU, to show it is not the bottleneck.

Results go to bench/results/latest.json and a plot to docs/bench.png. Every process
started here is started in its own process group and killed on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "latest.json"
PLOT = ROOT / "docs" / "bench.png"

TARGET_CLIENTS = 500
TARGET_FPS = 29.0
TARGET_P95_MS = 100.0
TARGET_RES = "640x480"
CAMERA_FPS = 30

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# --------------------------------------------------------------------------- /proc
def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime ticks) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[1]), int(rest[11]) + int(rest[12])


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return []


def _is_web_worker(pid: int) -> bool:
    cmd = _cmdline(pid)
    return "web" in cmd and any(a.endswith("node.cli") or a.endswith("camnode") for a in cmd)


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def schema_keys() -> set[str]:
    try:
        schema = json.loads((ROOT / "schemas" / "config.schema.json").read_text())
        return set(schema.get("properties", {}))
    except (OSError, ValueError):
        return set()


def descendants(root: int) -> list[int]:
    """root and every process below it (scan of /proc, ppid links)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st:
                children.setdefault(st[0], []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def host_cpu() -> list[int]:
    """Aggregate /proc/stat cpu line: user nice system idle iowait irq softirq steal ..."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


def host_delta(a: list[int], b: list[int], seconds: float) -> dict[str, float]:
    """Machine-wide CPU over the window, in % of one core (all processes + softirq)."""
    d = [y - x for x, y in zip(a, b)]
    busy = sum(d) - d[3] - d[4]
    pct = lambda t: round(100.0 * t / CLK_TCK / seconds, 1)  # noqa: E731
    return {"busy_pct": pct(busy), "softirq_pct": pct(d[6]), "idle_pct": pct(d[3] + d[4])}


class Group:
    """A set of server processes measured together; parts are labelled ('node', 'web'...)."""

    def __init__(self, parts: dict[str, tuple[int, str]]):
        self.parts = parts  # label -> (pid, "self" | "tree" | "children")

    def pids(self) -> dict[str, list[int]]:
        out = {}
        for label, (pid, which) in self.parts.items():
            if which == "self":
                out[label] = [pid]
                continue
            tree = descendants(pid)
            if which == "tree":
                out[label] = tree
            else:  # "web": camnode web workers below pid; "other": any other descendant
                web = [p for p in tree if p != pid and _is_web_worker(p)]
                out[label] = web if which == "web" else \
                    [p for p in tree if p != pid and p not in web]
        return out

    def cpu_ticks(self) -> dict[str, dict[int, int]]:
        snap = {}
        for label, pids in self.pids().items():
            snap[label] = {p: st[1] for p in pids if (st := _stat(p))}
        return snap

    def rss_kb(self) -> int:
        return sum(_rss_kb(p) for pids in self.pids().values() for p in pids)


def cpu_delta(a: dict, b: dict, seconds: float) -> dict[str, float]:
    """% of one core per label between two snapshots (processes present in both)."""
    out = {}
    for label in b:
        ticks = sum(t - a.get(label, {}).get(p, t) for p, t in b[label].items())
        out[label] = round(100.0 * ticks / CLK_TCK / seconds, 1)
    return out


class RssSampler(threading.Thread):
    def __init__(self, group: Group, period: float = 0.5):
        super().__init__(daemon=True)
        self.group, self.period = group, period
        self.peak_kb = 0
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.is_set():
            self.peak_kb = max(self.peak_kb, self.group.rss_kb())
            self._stop_evt.wait(self.period)

    def stop(self) -> int:
        self._stop_evt.set()
        self.join(2)
        self.peak_kb = max(self.peak_kb, self.group.rss_kb())
        return self.peak_kb


# --------------------------------------------------------------------------- processes
class Procs:
    """Every process started by the benchmark; each leads its own process group."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(cmd, start_new_session=True, cwd=str(ROOT), **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen, timeout: float = 6.0) -> None:
        # Children that left the process group (e.g. a broker in its own session) are
        # remembered now and killed below if stopping the leader did not take them down.
        below = [(q, _start_time(q)) for q in descendants(p.pid) if q != p.pid] \
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
            if started is not None and _start_time(q) == started:
                try:
                    os.kill(q, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in reversed(list(self.procs)):
            self.stop(p, timeout=3.0)


class LogTail(threading.Thread):
    """Drains a child's output; keeps matching lines and WARNING/ERROR lines."""

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

    def wait_for(self, needle: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or not self.is_alive():
                    return None
                self.cond.wait(min(left, 0.2))


def http_get(url: str, timeout: float = 3.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except Exception:
        return None


def camnode_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "camnode"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("camnode")
    return [found] if found else [sys.executable, "-m", "camnode"]


class Camnode:
    def __init__(self, procs: Procs, tmp: Path, width: int, height: int, workers: int):
        cfg = {
            "node_id": "bench", "name": "camnode-bench",
            "camera": {"source": "synthetic", "width": width, "height": height, "fps": CAMERA_FPS},
            "pipeline": {"autostart": True, "module": "passthrough"},
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
        path = tmp / f"camnode-{width}x{height}-w{workers}.json"
        path.write_text(json.dumps(cfg, indent=1))
        self.procs = procs
        self.proc = procs.start(camnode_cmd() + ["run", "--config", str(path), "--port", "0",
                                                 "--workers", str(workers)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.log = LogTail(self.proc.stderr, "camnode")
        self.log.start()
        line = self.log.wait_for("is running: open http://", 30)
        pub = self.log.wait_for("publishing frames and state on tcp://", 1)
        if not line or not pub:
            self.stop()
            raise RuntimeError("camnode did not start:\n" + "\n".join(self.log.lines[-20:]))
        self.base = line.split("open ", 1)[1].split()[0].rstrip("/")
        self.publish = pub.split(" on ", 1)[1].split()[0]
        self.workers = workers
        deadline = time.monotonic() + 20
        # Every worker linked to the node and the camera capturing. No frame reaches a
        # worker before someone watches: the node encodes on demand (node/encoder.py).
        while time.monotonic() < deadline:
            state = get_state(self.base)
            if state and state.get("web_workers", 0) >= workers and \
                    state.get("pipeline") == "running" and \
                    (state.get("frames") or {}).get("captured", 0) > 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("camnode web workers not ready")
        time.sleep(0.5)
        jpeg = http_get(self.base + "/snapshot.jpg")
        self.frame_kb = round(len(jpeg) / 1024, 1) if jpeg else None

    def group(self) -> Group:
        return Group({"node": (self.proc.pid, "self"), "web": (self.proc.pid, "web"),
                      "other": (self.proc.pid, "other")})

    def web_pids(self) -> list[int]:
        return Group({"web": (self.proc.pid, "web")}).pids()["web"]

    def stop(self) -> None:
        self.procs.stop(self.proc)


class Baseline:
    def __init__(self, procs: Procs, publish: str, node_pid: int):
        self.procs, self.node_pid = procs, node_pid
        self.proc = procs.start([sys.executable, "-m", "bench.baseline", "--connect", publish,
                                 "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.log = LogTail(self.proc.stdout, "baseline")
        self.log.start()
        line = self.log.wait_for("baseline is running: open http://", 15)
        if not line:
            self.stop()
            raise RuntimeError("baseline did not start:\n" + "\n".join(self.log.lines[-20:]))
        self.base = line.split("open ", 1)[1].split()[0].rstrip("/")

    def group(self) -> Group:
        return Group({"node": (self.node_pid, "self"), "web": (self.proc.pid, "tree")})

    def idle(self, timeout: float) -> bool:
        """Wait until every stream thread has noticed its client left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = get_state(self.base, 1.0)
            if state is not None and state.get("viewers") == 0:
                return True
            time.sleep(0.3)
        return False

    def stop(self) -> None:
        self.procs.stop(self.proc)


def get_state(base: str, timeout: float = 3.0) -> dict | None:
    raw = http_get(base + "/api/state", timeout)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- one run
def run_load(procs: Procs, server, group: Group, state_base: str, clients: int, slow: float,
             args, label: str, res: str) -> dict:
    """One load run against `server`; returns the record for the results file."""
    loadgen_procs = args.loadgen_procs or (2 if clients >= 400 else 1)
    start_at = time.time() + 0.6
    t_win0, t_end = start_at + args.warmup, start_at + args.warmup + args.duration
    cmd = [sys.executable, "-m", "bench.loadgen", server.base + "/stream.mjpg",
           "--clients", str(clients), "--duration", str(args.duration),
           "--warmup", str(args.warmup), "--slow-fraction", str(slow),
           "--procs", str(loadgen_procs), "--start-at", repr(start_at), "--json", "-"]
    sampler = RssSampler(group)
    sampler.start()
    lg = procs.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state_box: dict = {}
    out = err = b""
    try:
        time.sleep(max(0.0, t_win0 - time.time()))
        cpu0, c0, h0 = group.cpu_ticks(), time.monotonic(), host_cpu()

        def grab_state():
            state_box["state"] = get_state(state_base, 3.0)
        mid = threading.Timer(args.duration / 2, grab_state)
        mid.daemon = True
        mid.start()
        time.sleep(max(0.0, t_end - time.time()))
        cpu1, c1, h1 = group.cpu_ticks(), time.monotonic(), host_cpu()
        try:
            out, err = lg.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            err = b"load generator timed out"
        mid.join(4)
    finally:
        procs.stop(lg, timeout=2)
        peak_kb = sampler.stop()
    record = {"server": label, "resolution": res, "clients": clients, "slow_fraction": slow,
              "frame_kb": getattr(server, "frame_kb", None)}
    try:
        summary = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        record["error"] = (err.decode("utf-8", "replace")[-600:] or "no output").strip()
        return record
    cpu = cpu_delta(cpu0, cpu1, c1 - c0)
    record.update(summary)
    record["server_cpu_pct"] = round(sum(cpu.values()), 1)
    record["server_cpu_parts"] = cpu
    if label.startswith("camnode"):
        pcts = cpu_per_process(cpu0, cpu1, c1 - c0, "web")
        record["web_worker_cpu_pct"] = pcts
    record["server_peak_rss_mb"] = round(peak_kb / 1024, 1)
    host = host_delta(h0, h1, c1 - c0)
    # What neither the server nor the load generator used: softirq (loopback TCP receive
    # work not charged to a process) and anything else running on the machine.
    host["unaccounted_pct"] = round(host["busy_pct"] - record["server_cpu_pct"]
                                    - record.get("loadgen_cpu_pct", 0), 1)
    record["host_cpu"] = host
    record["other_load_pct"] = round(max(0.0, host["unaccounted_pct"] - host["softirq_pct"]), 1)
    state = state_box.get("state") or {}
    record["node_state"] = {k: state.get(k) for k in
                            ("fps", "viewers", "viewer_fps_min", "viewer_fps_median", "frames",
                             "encode_ms", "web_workers") if k in state}
    if "threads" in state:
        record["node_state"]["threads"] = state["threads"]
    return record


def cpu_per_process(a: dict, b: dict, seconds: float, label: str) -> list[float]:
    out = []
    for p, t in b.get(label, {}).items():
        if p in a.get(label, {}):
            out.append(round(100.0 * (t - a[label][p]) / CLK_TCK / seconds, 1))
    return out


# --------------------------------------------------------------------------- output
HEAD = (f"{'server':13s} {'clients':>7s} {'slow':>4s} | {'fps med':>7s} {'fps min':>7s} "
        f"{'p50 ms':>7s} {'p95 ms':>7s} {'1st ms':>7s} | {'slow fps':>8s} {'slow p95':>8s} | "
        f"{'CPU %':>5s} {'node/web %':>11s} {'RSS MB':>6s} | {'lg CPU':>6s} {'host':>5s}")


def fmt_row(r: dict) -> str:
    def num(v, w, d=1):
        return f"{v:{w}.{d}f}" if isinstance(v, (int, float)) else f"{'-':>{w}s}"
    if "error" in r or "skipped" in r:
        why = r.get("skipped") or r.get("error", "").splitlines()[-1][:80]
        return (f"{r['server']:13s} {r['clients']:7d} {r.get('slow_clients', 0):4d} | "
                f"{'skipped' if 'skipped' in r else 'FAILED'}: {why}")
    n, s = r["normal"], r["slow"]
    parts = r.get("server_cpu_parts", {})
    nw = f"{parts.get('node', 0):.0f}/{parts.get('web', 0):.0f}"
    if parts.get("other"):
        nw += f"+{parts['other']:.0f}"
    return (f"{r['server']:13s} {r['clients']:7d} {r['slow_clients']:4d} | "
            f"{num(n.get('fps_median'), 7)} {num(n.get('fps_min'), 7)} "
            f"{num(n.get('lat_p50_ms'), 7)} {num(n.get('lat_p95_ms'), 7)} "
            f"{num(n.get('ttff_median_ms'), 7, 0)} | "
            f"{num(s.get('fps_median'), 8)} {num(s.get('lat_p95_ms'), 8, 0)} | "
            f"{num(r.get('server_cpu_pct'), 5, 0)} {nw:>11s} {num(r.get('server_peak_rss_mb'), 6, 0)} | "
            f"{num(r.get('loadgen_cpu_pct'), 6, 0)} {num(r.get('host_cpu', {}).get('busy_pct'), 5, 0)}"
            f"{' *' if disturbed(r) else ''}")


DISTURBED_PCT = 25.0  # CPU used by other processes (% of a core) above which a run is flagged


def disturbed(r: dict) -> bool:
    return r.get("other_load_pct", 0.0) > DISTURBED_PCT


def notes_for(r: dict) -> list[str]:
    notes = []
    if "error" in r:
        return notes
    n = r["normal"]
    if n.get("failed") or n.get("no_frame"):
        notes.append(f"{n.get('failed')} normal clients failed, {n.get('no_frame')} got no frame; "
                     f"errors {r.get('errors')}")
    for p in r.get("web_worker_cpu_pct", []) or []:
        if p >= 90:
            notes.append(f"a web worker used {p:.0f}% of a core (saturated)")
    if n.get("seq_backwards"):
        notes.append(f"{n['seq_backwards']} frames arrived with a non-increasing X-Frame-Seq")
    return notes


def print_tables(records: list[dict]) -> None:
    for res in dict.fromkeys(r["resolution"] for r in records):
        rows = [r for r in records if r["resolution"] == res]
        print(f"\n=== {res} @ {CAMERA_FPS} fps"
              f"{', JPEG ~%s KB' % rows[0]['frame_kb'] if rows[0].get('frame_kb') else ''} ===")
        print(HEAD)
        keys = sorted({(r["clients"], r.get("slow_fraction", 0)) for r in rows})
        for c, sf in keys:
            for r in rows:
                if r["clients"] == c and r.get("slow_fraction", 0) == sf:
                    print(fmt_row(r))
            print("-" * len(HEAD))


def best_workers(records: list[dict], res: str) -> tuple[str | None, str]:
    """Which camnode worker count serves the heavy runs better at `res`."""
    scores = {}
    for r in records:
        if r["resolution"] != res or not r["server"].startswith("camnode") or "error" in r \
                or "skipped" in r or r["slow_clients"] or r["clients"] < 200:
            continue
        s = scores.setdefault(r["server"], [])
        s.append((r["clients"], r["normal"]["fps_median"], r["normal"]["lat_p95_ms"] or 1e9))
    if len(scores) < 2:
        return (next(iter(scores)) if scores else None), "only one worker count measured"
    def key(label):
        runs = sorted(scores[label])
        return (sum(f for _, f, _ in runs), -sum(p for _, _, p in runs))
    ranked = sorted(scores, key=key, reverse=True)
    detail = "; ".join(f"{lab}: " + ", ".join(f"{c} cl {f:.1f} fps p95 {p:.0f} ms"
                                                for c, f, p in sorted(scores[lab]))
                       for lab in ranked)
    return ranked[0], detail


def _target_figures(run: dict) -> tuple[float, float | None, bool]:
    """Median fps and p95 latency of a run's normal clients, and whether they meet the
    targets."""
    f, p = run["normal"]["fps_median"], run["normal"]["lat_p95_ms"]
    return f, p, f >= TARGET_FPS and p is not None and p <= TARGET_P95_MS


def target_check(records: list[dict]) -> list[str]:
    lines = [f"\n=== Targets: {TARGET_CLIENTS} clients at {TARGET_RES}: median fps >= {TARGET_FPS:g}, "
             f"p95 latency <= {TARGET_P95_MS:g} ms; 20% slow readers change neither ==="]
    labels = sorted({r["server"] for r in records if r["server"].startswith("camnode")})
    def find(label, slow):
        for r in records:
            if r["server"] == label and r["resolution"] == TARGET_RES and \
                    r["clients"] == TARGET_CLIENTS and bool(r.get("slow_fraction")) == slow \
                    and "normal" in r:
                return r
        return None
    for label in labels:
        plain, slowr = find(label, False), find(label, True)
        if plain is None:
            lines.append(f"{label}: not measured")
            continue
        f, p, ok = _target_figures(plain)
        lines.append(f"{label}: {f:.2f} fps median, p95 {p} ms -> {'PASS' if ok else 'FAIL'}"
                     + (" (run disturbed by other load)" if disturbed(plain) else ""))
        if slowr is None:
            lines.append(f"{label} with slow readers: not measured")
            continue
        f2, p2, ok2 = _target_figures(slowr)
        lines.append(f"{label} + {slowr['slow_clients']} slow readers: normal clients {f2:.2f} fps "
                     f"median (change {f2 - f:+.2f}), p95 {p2} ms (change {p2 - p:+.1f}) -> "
                     f"{'PASS' if ok2 else 'FAIL'}; slow readers got "
                     f"{slowr['slow']['fps_median']:.2f} fps, p95 {slowr['slow']['lat_p95_ms']} ms"
                     + (" (run disturbed by other load)" if disturbed(slowr) else ""))
    b = find("baseline", False)
    if b:
        lines.append(f"baseline: {b['normal']['fps_median']:.2f} fps median, p95 "
                     f"{b['normal']['lat_p95_ms']} ms")
    else:
        lines.append("baseline: no result at this size (skipped or collapsed earlier)")
    return lines


def plot(records: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    resolutions = list(dict.fromkeys(r["resolution"] for r in records))
    fig, axes = plt.subplots(2, len(resolutions), figsize=(6 * len(resolutions), 8),
                             squeeze=False, sharex=True)
    styles = {"baseline": dict(color="tab:red", marker="s")}
    palette = iter(["tab:blue", "tab:green", "tab:purple", "tab:orange"])
    for col, res in enumerate(resolutions):
        ax_f, ax_l = axes[0][col], axes[1][col]
        labels = list(dict.fromkeys(r["server"] for r in records if r["resolution"] == res))
        for label in labels:
            st = styles.setdefault(label, dict(color=next(palette, "black"), marker="o"))
            for slow, ls in ((False, "-"), (True, "--")):
                rs = sorted((r for r in records if r["resolution"] == res and r["server"] == label
                             and bool(r.get("slow_fraction")) == slow and "normal" in r),
                            key=lambda r: r["clients"])
                if not rs:
                    continue
                x = [r["clients"] for r in rs]
                name = label + (" (20% slow readers; normal clients)" if slow else "")
                ax_f.plot(x, [r["normal"]["fps_median"] for r in rs], ls=ls, label=name, **st)
                ax_f.fill_between(x, [r["normal"]["fps_min"] for r in rs],
                                  [r["normal"]["fps_median"] for r in rs],
                                  color=st["color"], alpha=0.08)
                ax_l.plot(x, [r["normal"]["lat_p95_ms"] or float("nan") for r in rs], ls=ls,
                          label=name, **st)
        ax_f.axhline(TARGET_FPS, color="grey", lw=0.8, ls=":")
        ax_l.axhline(TARGET_P95_MS, color="grey", lw=0.8, ls=":")
        ax_f.set_title(f"{res} @ {CAMERA_FPS} fps")
        ax_f.set_ylabel("delivered fps (median; band down to min)")
        ax_f.set_ylim(0, CAMERA_FPS * 1.1)
        ax_l.set_ylabel("latency p95 (ms, log)")
        ax_l.set_yscale("log")
        ax_l.set_xlabel("concurrent stream clients")
        ax_f.grid(alpha=0.3)
        ax_l.grid(alpha=0.3, which="both")
        ax_f.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"camnode MJPEG fan-out vs naive threaded relay ({os.cpu_count()} cores, loopback)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main
def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run with fewer clients")
    p.add_argument("--duration", type=float, help="measured seconds per run (default 10; quick 3)")
    p.add_argument("--warmup", type=float, help="seconds excluded at the start (default 2; quick 1)")
    p.add_argument("--clients", help="comma list (default 1,50,200,500,800; quick 1,50,200)")
    p.add_argument("--slow-clients", help="client counts also run with slow readers "
                                          "(default 50,200,500,800; quick 200)")
    p.add_argument("--slow-fraction", type=float, default=0.2)
    p.add_argument("--resolutions", default="640x480,1280x720")
    p.add_argument("--workers", help="camnode web worker counts (default 1,2; quick 1)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--baseline-max", type=int, default=800,
                   help="largest client count tried on the baseline")
    p.add_argument("--baseline-budget", type=float, default=180,
                   help="seconds of baseline runs per resolution before the rest is skipped")
    p.add_argument("--budget", type=float, default=14 * 60,
                   help="overall seconds; runs that would exceed it are skipped")
    p.add_argument("--retries", type=int,
                   help="re-runs of a run disturbed by other load on the machine, time permitting "
                        "(default 1; quick 0)")
    p.add_argument("--loadgen-procs", type=int, default=0, help="0: 1 below 400 clients, else 2")
    p.add_argument("--output", default=None, help=f"results JSON (default {RESULTS}; "
                   "quick runs: quick.json beside it)")
    p.add_argument("--plot", default=None, help=f"plot (default {PLOT}, the README's; "
                   "quick runs: bench/results/quick.png, so a smoke run never replaces it)")
    a = p.parse_args(argv)
    a.output = a.output or str(RESULTS.with_name("quick.json") if a.quick else RESULTS)
    a.plot = a.plot or str(HERE / "results" / "quick.png" if a.quick else PLOT)
    a.duration = a.duration or (3.0 if a.quick else 10.0)
    a.retries = a.retries if a.retries is not None else (0 if a.quick else 1)
    a.warmup = a.warmup if a.warmup is not None else (1.0 if a.quick else 2.0)
    ints = lambda s: [int(x) for x in s.split(",") if x.strip()]  # noqa: E731
    a.clients = ints(a.clients or ("1,50,200" if a.quick else "1,50,200,500,800"))
    a.slow_clients = ints(a.slow_clients if a.slow_clients is not None
                          else ("200" if a.quick else "50,200,500,800"))
    a.workers = ints(a.workers or ("1" if a.quick else "1,2"))
    a.resolutions = [tuple(int(v) for v in r.split("x")) for r in a.resolutions.split(",")]
    if a.quick:
        a.baseline_max = min(a.baseline_max, 200)
    return a


def plan(args) -> list[tuple[int, float]]:
    runs = [(c, 0.0) for c in args.clients]
    runs += [(c, args.slow_fraction) for c in args.slow_clients
             if args.slow_fraction > 0 and round(c * args.slow_fraction) >= 1]
    return sorted(runs)


def collapsed(r: dict) -> str | None:
    if "error" in r:
        return "load run failed"
    n = r["normal"]
    if n["clients"] and (n["failed"] + n["no_frame"]) > 0.05 * n["clients"]:
        return f"{n['failed'] + n['no_frame']} of {n['clients']} clients failed or got no frame"
    if n.get("fps_median", 0) < CAMERA_FPS / 2:
        return f"median {n['fps_median']} fps"
    if (n.get("lat_p95_ms") or 0) > 2000:
        return f"p95 latency {n['lat_p95_ms']} ms"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    per_run = args.warmup + args.duration + 2.5

    def stop_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, stop_signal)
    signal.signal(signal.SIGHUP, stop_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored

    procs = Procs()
    records: list[dict] = []
    notes: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="camnode-bench-"))
    interrupted = False
    meta = {"started": dt.datetime.now().isoformat(timespec="seconds"),
            "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "quick": args.quick, "duration_s": args.duration,
            "warmup_s": args.warmup, "camera_fps": CAMERA_FPS,
            "slow_fraction": args.slow_fraction}
    try:
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=5)
        meta["commit"] = git.stdout.strip()
    except Exception:
        pass
    print(f"camnode benchmark: {len(args.resolutions)} resolution(s), workers {args.workers}, "
          f"clients {args.clients}, slow-reader runs at {args.slow_clients} "
          f"({args.slow_fraction:.0%} slow), {args.warmup:g} s warm-up + {args.duration:g} s each",
          flush=True)
    print("Columns: fps med/min, latency p50/p95 and median time to first frame are for normal "
          "clients;\n  CPU % is of one core (node process + web tier), RSS is peak over the run, "
          "lg CPU is the load generator,\n  host is the whole machine (of 200 %: server, load "
          "generator, softirq and anything else running).\n", flush=True)

    def over_budget(n_runs: int = 1) -> bool:
        return time.monotonic() - t_start + n_runs * per_run > args.budget

    planned = len(args.resolutions) * len(plan(args)) * \
        (len(args.workers) + (0 if args.no_baseline else 1))
    done = [0]

    def do_run(server, group, state_base, label, res, clients, slow) -> dict:
        r = run_load(procs, server, group, state_base, clients, slow, args, label, res)
        done[0] += 1
        tries = 1
        while disturbed(r) and tries <= args.retries and \
                not over_budget(planned - done[0] - skipped_runs[0] + 1):
            print(fmt_row(r) + "  (other load on the machine: retrying)", flush=True)
            time.sleep(1.0)
            again = run_load(procs, server, group, state_base, clients, slow, args, label, res)
            tries += 1
            if again.get("other_load_pct", 1e9) < r.get("other_load_pct", 1e9) or "error" in r:
                r = again
        r["attempts"] = tries
        records.append(r)
        print(fmt_row(r), flush=True)
        for n in notes_for(r):
            notes.append(f"{label} {res} {clients} clients: {n}")
            print(f"    note: {n}", flush=True)
        time.sleep(1.0)  # let the server notice the disconnects
        return r

    try:
        for w, h in args.resolutions:
            res = f"{w}x{h}"
            for workers in args.workers:
                label = f"camnode w{workers}"
                if over_budget(len(plan(args))):
                    msg = f"{label} {res}: skipped, the time budget ({args.budget:g} s) would be exceeded"
                    notes.append(msg)
                    print(msg, flush=True)
                    continue
                cam = Camnode(procs, tmp, w, h, workers)
                print(f"\n--- {label} at {res}: {cam.base} (JPEG ~{cam.frame_kb} KB, "
                      f"node pid {cam.proc.pid}, web pids {cam.web_pids()})", flush=True)
                print(HEAD, flush=True)
                try:
                    for clients, slow in plan(args):
                        do_run(cam, cam.group(), cam.base, label, res, clients, slow)
                    if workers == args.workers[0] and not args.no_baseline:
                        run_baseline(procs, cam, res, args, do_run, records, notes, over_budget)
                finally:
                    for line in cam.log.problems:
                        notes.append(f"{label} {res} log: {line}")
                    cam.stop()
    except KeyboardInterrupt as exc:
        interrupted = True
        print(f"\ninterrupted ({exc or 'Ctrl-C'}); stopping every process started", flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    if not records:
        return 130 if interrupted else 1
    print_tables(records)
    verdict: list[str] = []
    for res in dict.fromkeys(r["resolution"] for r in records):
        best, detail = best_workers(records, res)
        if best:
            verdict.append(f"{res}: better camnode configuration: {best} ({detail})")
    verdict += target_check(records)
    print()
    for line in verdict:
        print(line)
    flagged = [r for r in records if disturbed(r)]
    if flagged:
        worst = max(r["other_load_pct"] for r in flagged)
        notes.append(f"* = {len(flagged)} of {len(records)} runs had other processes on the machine "
                     f"using more than {DISTURBED_PCT:.0f}% of a core (up to {worst:.0f}%): "
                     "their figures are disturbed; re-run on a quiet machine")
    if notes:
        print("\nNotes:")
        for n in dict.fromkeys(notes):
            print("  " + n)
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
    meta["interrupted"] = interrupted
    out = Path(args.output)
    if interrupted:  # keep the last complete results; partial ones go next to them
        out = out.with_name(out.stem + ".interrupted.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "runs": records, "verdict": verdict,
                               "notes": list(dict.fromkeys(notes))}, indent=1))
    if interrupted:
        print(f"\npartial results: {out} (plot not redrawn)")
        return 130
    try:
        plot(records, Path(args.plot))
        print(f"\nresults: {out}\nplot: {args.plot}")
    except Exception as exc:  # the numbers matter more than the picture
        print(f"\nresults: {out}\nplot failed: {exc!r}")
    print(f"elapsed {meta['elapsed_s']:.0f} s")
    return 130 if interrupted else 0


skipped_runs = [0]


def run_baseline(procs, cam, res, args, do_run, records, notes, over_budget) -> None:
    bl = Baseline(procs, cam.publish, cam.proc.pid)
    bl.frame_kb = cam.frame_kb
    print(f"--- baseline at {res}: {bl.base} (pid {bl.proc.pid}, frames from {cam.publish})",
          flush=True)
    t0 = time.monotonic()
    dead: str | None = None
    try:
        for clients, slow in plan(args):
            skip = None
            if clients > args.baseline_max:
                skip = f"above --baseline-max {args.baseline_max}"
            elif dead:
                skip = f"baseline collapsed earlier ({dead})"
            elif time.monotonic() - t0 > args.baseline_budget:
                skip = f"baseline time limit ({args.baseline_budget:g} s) reached"
            elif over_budget():
                skip = "overall time budget reached"
            if skip:
                r = {"server": "baseline", "resolution": res, "clients": clients,
                     "slow_fraction": slow, "slow_clients": int(round(clients * slow)),
                     "skipped": skip}
                records.append(r)
                print(fmt_row(r), flush=True)
                skipped_runs[0] += 1
                continue
            if bl.proc.poll() is not None or not bl.idle(10.0):
                notes.append(f"baseline {res}: still busy/dead after a run; restarted")
                bl.stop()
                bl = Baseline(procs, cam.publish, cam.proc.pid)
                bl.frame_kb = cam.frame_kb
            r = do_run(bl, bl.group(), cam.base, "baseline", res, clients, slow)
            why = collapsed(r)
            if why and not slow:
                dead = f"{why} at {clients} clients"
                notes.append(f"baseline {res}: collapsed: {dead}; larger runs skipped")
    finally:
        bl.stop()


if __name__ == "__main__":
    sys.exit(main())
