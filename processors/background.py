"""Run a slow detector beside the stream, so the stream keeps its frame rate.

A module's `process_image` (pipeline thread) calls `submit(frame)` on every frame and
draws/returns `latest()`; the detector thread takes the newest submitted frame whenever
it is free. A detector slower than the camera therefore runs on fewer frames, and the
stream rate does not fall. Used by the `faces` and `people` modules; yours may use it.

The detector thread runs under the node's supervisor (part `detector`): an exception
escaping its loop is logged, counted and the loop restarted; a detection running longer
than `STALL_AFTER_S` shows as a stalled detector in the node's health.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

import numpy as np

from camnode.node import supervisor
from camnode.processors.common import draw_detections

log = logging.getLogger(__name__)

STALL_AFTER_S = 30.0


class BackgroundDetector:
    """Owns one detector thread. `close()` stops it (call it from the module's close())."""

    def __init__(self, detect: Callable[[np.ndarray], list], name: str = "detector"):
        self._detect = detect
        self.name = name
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._result: list = []
        self._result_at = 0.0
        self._stop = False
        self._stopping = threading.Event()  # for the supervisor: set by close()
        self._part: supervisor.Part | None = None
        self._ms: collections.deque = collections.deque(maxlen=100)
        self.runs = 0
        self.submitted = 0
        self.errors = 0
        self.last_error: str | None = None

    def submit(self, frame: np.ndarray) -> None:
        """Offer a frame; taken only if the detector is idle (never blocks the caller)."""
        self.submitted += 1
        with self._cond:
            if self._frame is not None:
                return  # still busy with an earlier frame: skip this one
            self._frame = frame.copy()
            if self._part is None:
                self._part = supervisor.current().spawn(
                    "detector", self._run, self._stopping, name=self.name,
                    stall_after=STALL_AFTER_S)
            self._cond.notify()

    def latest(self, max_age: float = 2.0) -> list:
        """The newest result, or [] when it is older than `max_age` seconds."""
        with self._cond:
            if time.monotonic() - self._result_at > max_age:
                return []
            return list(self._result)

    def step(self, src: np.ndarray, draw: bool, colour: str) -> tuple[bool, list]:
        """A whole `process_image` for a detector module: offer the frame, draw and
        return the newest detections."""
        self.submit(src)
        detections = self.latest()
        if draw:
            draw_detections(src, detections, colour)
        return True, detections

    def stats(self) -> dict:
        ms = sorted(self._ms)
        return {"runs": self.runs, "frames_offered": self.submitted,
                "detect_ms_p50": round(ms[len(ms) // 2], 1) if ms else None,
                "detect_ms_p95": round(ms[int(len(ms) * 0.95)], 1) if ms else None,
                "errors": self.errors, "last_error": self.last_error}

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._stopping.set()
            self._cond.notify()
        if self._part is not None:
            self._part.join(5)
            self._part = None

    def _take(self) -> np.ndarray | None:
        """Wait for a frame to work on; None when closed."""
        supervisor.idle()  # no frame, no work: waiting is not a stall
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._stop)
            if self._stop:
                return None
            supervisor.beat()
            return self._frame

    def _run(self) -> None:
        while True:
            frame = self._take()
            if frame is None:
                return
            t0 = time.perf_counter()
            try:
                result = list(self._detect(frame))
            except Exception as exc:  # a detector bug must not kill the thread
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.errors == 1 or self.errors % 100 == 0:
                    log.error("%s failed (%d errors): %s", self.name, self.errors, exc)
                result = []
            self._ms.append((time.perf_counter() - t0) * 1000)
            for det in result:  # node/events.py counts an object's runs, not repeats
                if isinstance(det, dict):
                    det.setdefault("run", self.runs + 1)
            with self._cond:
                self._result, self._result_at = result, time.monotonic()
                self._frame = None
                self.runs += 1
