"""CPU time and memory of processes, read from /proc (Linux).

Used by bench.run (a server's processes measured together over a window: `Group`,
`cpu_delta`, `RssSampler`, `host_cpu`), by bench.budget and bench.detect_node (one
process's CPU seconds: `cpu_seconds`) and by bench.procs (`descendants`, `start_time`,
to stop children that left a process group). Every reader tolerates a process that
exited meanwhile. No state here but what a `Group` or `RssSampler` holds.
"""

from __future__ import annotations

import os
import threading

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime ticks) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[1]), int(rest[11]) + int(rest[12])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (every thread) in seconds; OSError if it is gone."""
    st = _stat(pid)
    if st is None:
        raise ProcessLookupError(pid)
    return st[1] / CLK_TCK


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


def start_time(pid: int) -> int | None:
    """Start time of a process (ticks since boot): tells a pid from its reuse."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


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
        self.parts = parts  # label -> (pid, "self" | "tree" | "web" | "other")

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


def cpu_per_process(a: dict, b: dict, seconds: float, label: str) -> list[float]:
    """% of one core of each process of `label` present in both snapshots."""
    out = []
    for p, t in b.get(label, {}).items():
        if p in a.get(label, {}):
            out.append(round(100.0 * (t - a[label][p]) / CLK_TCK / seconds, 1))
    return out


class RssSampler(threading.Thread):
    """Peak summed VmRSS of a Group, sampled every `period` s on its own thread
    between `start()` and `stop()` (which returns the peak in kB)."""

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
