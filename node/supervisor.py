"""Supervision: every long-lived loop of the node runs under one Supervisor.

A component hands its loop body to `Supervisor.spawn(part, body, stop)`, which runs it on
a thread of its own. When the body raises, the exception is logged with its traceback,
counted, and the body is called again after a back-off (0.5 s doubling to 30 s; reset
after a run of 30 s). The body returns only when `stop` is set; returning earlier counts
as a crash too.

Progress: the body calls `beat()` (this module's function: it finds the calling thread's
part) each time round its loop ("I am alive and will beat again within `stall_after`
seconds"), `beat(within=s)` before a wait known to be longer, and `idle()` before
waiting for work that may never come (a detector with no frame to work on cannot be
late). A part whose promise has expired is *stalled*.

`Supervisor.problems()` (any thread; the node's state thread calls it every second) lists
dead, crashed (in back-off) and stalled parts, plus conditions reported from outside with
`report()` (web worker processes, which the CLI's main thread supervises). Each becomes a
`{"part", "reason", "since"}` entry of the state's `health`. Parts named in `DEGRADED`
(`source`, `module`) are conditions, not failures: the node still works, so `/healthz`
stays 200 for them (see README, "/healthz").

A web worker's asyncio loop is watched by `web/watchdog.py` instead (web workers import
nothing of the node but the wire format).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

STALL_AFTER = 5.0
BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
HEALTHY_RUN = 30.0  # a run at least this long resets the back-off
DEGRADED = ("source", "module")  # problems that leave /healthz at 200
PARTS = ("capture", "pipeline", "commands", "events", "mqtt", "state", "detector", "web")


_local = threading.local()


def beat(within: float | None = None) -> None:
    """Progress of the calling thread's part (no-op outside a supervised thread)."""
    part = getattr(_local, "part", None)
    if part is not None:
        part.beat(within)


def idle() -> None:
    """The calling thread's part waits for work that may not come (see the docstring)."""
    part = getattr(_local, "part", None)
    if part is not None:
        part.idle()


def guarded(obj: object, name: str, part: str, supervisor: "Supervisor") -> Callable:
    """`obj.name` as a callback for a library's own thread (paho's network loop), which an
    exception would end: logged with its traceback, counted for `part`, then swallowed.
    The method is looked up at each call, so it can be replaced (tests)."""
    def call(*args, **kwargs):
        try:
            return getattr(obj, name)(*args, **kwargs)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            supervisor.count(part, crashed=error)
            log.error("%s: callback %s failed: %s (its thread goes on)", part, name, error,
                      exc_info=True)
            return None

    call.__name__ = name
    return call


def failing(problems: list[dict]) -> list[dict]:
    """The problems that make the node unhealthy (dead or stalled parts)."""
    return [p for p in problems if p.get("part") not in DEGRADED]


class Part:
    """One supervised loop: its thread, its heartbeat and its crash record.

    Created by `Supervisor.spawn`; `beat`/`idle` are called by the loop's own thread,
    `problem`/`status` by any thread (they read plain attributes set as a whole).
    """

    def __init__(self, supervisor: "Supervisor", part: str, body: Callable[[], None],
                 stop: threading.Event, stall_after: float, name: str):
        self.supervisor = supervisor
        self.part = part
        self.name = name
        self.stall_after = stall_after
        self._body = body
        self._stop = stop
        self._thread: threading.Thread | None = None
        self._deadline: float | None = None  # monotonic time of the promised next beat
        self._down_since: float | None = None  # wall time of the crash streak's first crash
        self._restart_at: float | None = None  # monotonic; set while in back-off
        self._stalled_logged = False
        self.crashes = 0
        self.restarts = 0
        self.beats = 0
        self.last_error: str | None = None

    # -- the loop's own thread -------------------------------------------------------
    def beat(self, within: float | None = None) -> None:
        """Progress: the loop will beat again within `within` (default `stall_after`) s."""
        self._deadline = time.monotonic() + (self.stall_after if within is None else within)
        self.beats += 1

    def idle(self) -> None:
        """The loop waits for work that may not come: it cannot stall until it beats."""
        self._deadline = None

    # -- lifetime (the component's start/stop) ------------------------------------------
    def start(self) -> "Part":
        # Known to others only once started: a thread not yet started is not alive and
        # would read as "dead" to the state thread in between.
        thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.beat()
        thread.start()
        self._thread = thread
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (after `stop` was set); False if it did not."""
        if self._thread is not None:
            self._thread.join(timeout)
        self.supervisor.remove(self)
        if self._thread is not None and self._thread.is_alive():
            log.warning("%s did not stop within %s s; left behind", self.name, timeout)
            return False
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- any thread ------------------------------------------------------------------------
    def problem(self) -> tuple[str, float] | None:
        """(reason, since) when the part is dead, crashed or stalled; else None."""
        if self._stop.is_set():
            return None
        now = time.monotonic()
        if self._restart_at is not None:
            return (f"crashed ({self.crashes}x): {self.last_error}; restarting in "
                    f"{max(0.0, self._restart_at - now):.1f} s", self._down_since or time.time())
        if self._thread is not None and not self._thread.is_alive():
            return f"dead: thread ended ({self.last_error or 'no exception'})", \
                self._down_since or time.time()
        deadline = self._deadline
        if deadline is not None and now > deadline:
            late = now - deadline + self.stall_after
            if not self._stalled_logged:
                self._stalled_logged = True
                log.error("%s stalled: no progress for %.1f s", self.name, late)
            return f"stalled: no progress for {late:.1f} s", time.time() - (now - deadline)
        if self._stalled_logged:
            self._stalled_logged = False
            log.info("%s makes progress again", self.name)
        return None

    def status(self) -> dict:
        return {"part": self.part, "thread": self.name, "alive": self.alive,
                "crashes": self.crashes, "restarts": self.restarts,
                "last_error": self.last_error}

    # -- the supervised thread -------------------------------------------------------------
    def _run(self) -> None:
        _local.part = self
        backoff = BACKOFF_MIN
        while not self._stop.is_set():
            started = time.monotonic()
            self.beat()
            try:
                self._body()
                if self._stop.is_set():
                    break
                raise RuntimeError("loop returned while it should keep running")
            except Exception as exc:
                if self._stop.is_set():  # torn down under it (a socket closed): not a crash
                    log.debug("%s ended while stopping: %s", self.name, exc)
                    break
                self.crashes += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.supervisor.count(self.part, crashed=self.last_error)
                if time.monotonic() - started >= HEALTHY_RUN:
                    backoff, self._down_since = BACKOFF_MIN, None
                if self._down_since is None:
                    self._down_since = time.time()
                self._deadline = None
                self._restart_at = time.monotonic() + backoff
                log.error("%s crashed (%d so far): %s; restarting in %.1f s", self.name,
                          self.crashes, self.last_error, backoff, exc_info=True)
                self.supervisor.changed()
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, BACKOFF_MAX)
            self._restart_at = None
            self.restarts += 1
            self.supervisor.count(self.part, restarted=True)
            log.info("%s restarted (restart %d)", self.name, self.restarts)
            self.supervisor.changed()
        self._restart_at = None
        self._deadline = None
        self.supervisor.remove(self)  # stopped as asked (a thread killed otherwise stays: dead)


class Supervisor:
    """Owns the registry of supervised parts and of problems reported from outside.

    Threads: `spawn`/`remove` from components' start/stop, `report` from the CLI's main
    thread, `problems`/`status` from the state thread; a lock guards the registries.
    """

    def __init__(self, on_change: Callable[[], None] | None = None):
        self.on_change = on_change or (lambda: None)
        self._lock = threading.Lock()
        self._parts: list[Part] = []
        self._external: dict[tuple[str, str], tuple[str, float]] = {}
        self._totals: dict[str, dict] = {}  # part -> crashes, restarts, last_error (ever)

    def spawn(self, part: str, body: Callable[[], None], stop: threading.Event, *,
              name: str | None = None, stall_after: float = STALL_AFTER) -> Part:
        """Run `body` on a new supervised thread; `body` loops until `stop` is set."""
        p = Part(self, part, body, stop, stall_after, name or part)
        with self._lock:
            self._parts.append(p)
        return p.start()

    def remove(self, part: Part) -> None:
        with self._lock:
            if part in self._parts:
                self._parts.remove(part)

    def report(self, part: str, key: str, reason: str | None) -> None:
        """Set (`reason`) or clear (None) a problem found outside the threads (any thread)."""
        with self._lock:
            old = self._external.get((part, key))
            if reason is None:
                self._external.pop((part, key), None)
            else:
                self._external[(part, key)] = (reason, old[1] if old else time.time())
        if (old is None) != (reason is None) or (old and old[0] != reason):
            self.changed()

    def count(self, part: str, crashed: str | None = None, restarted: bool = False) -> None:
        """Count a crash (its error text) or a restart of `part` (any thread)."""
        with self._lock:
            c = self._totals.setdefault(part, {"crashes": 0, "restarts": 0, "last_error": None})
            if crashed is not None:
                c["crashes"] += 1
                c["last_error"] = crashed
            if restarted:
                c["restarts"] += 1

    def changed(self) -> None:
        try:
            self.on_change()
        except Exception:
            log.exception("supervisor: on_change failed")

    def problems(self) -> list[dict]:
        with self._lock:
            parts = list(self._parts)
            external = dict(self._external)
        out = []
        for p in parts:
            found = p.problem()
            if found:
                reason, since = found
                out.append({"part": p.part, "reason": f"{p.name}: {reason}"
                            if p.name != p.part else reason, "since": round(since, 3)})
        for (part, _key), (reason, since) in sorted(external.items()):
            out.append({"part": part, "reason": reason, "since": round(since, 3)})
        return out

    def status(self) -> dict:
        """Per part name: running threads, and crashes and restarts since the start."""
        with self._lock:
            out = {k: {"threads": 0, **v} for k, v in self._totals.items()}
            for p in self._parts:
                out.setdefault(p.part, {"threads": 0, "crashes": 0, "restarts": 0,
                                        "last_error": None})["threads"] += 1
        return out


_current = Supervisor()


def current() -> Supervisor:
    """The node's supervisor, for helpers that are not handed one (module detectors)."""
    return _current


def set_current(supervisor: Supervisor) -> None:
    global _current
    _current = supervisor
