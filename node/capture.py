"""The capture thread: reads the source, keeps only the newest frame, reopens on loss.

Capture never waits on a consumer: each frame replaces the previous one in a one-slot
holder, and the pipeline thread takes the newest with `wait_newer`. Frames of another
size than requested are resized here (the seed left them black). When the source is
lost it is reopened with exponential back-off; waits are on an Event, never a spin.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

import cv2
import numpy as np

from camnode.node.mjpeg import Jpeg
from camnode.node.sources import Source, SourceError
from camnode.node.supervisor import Supervisor, beat

log = logging.getLogger(__name__)

STATUS_STOPPED = "stopped"
STATUS_CONNECTING = "connecting"
STATUS_OK = "ok"
STATUS_LOST = "lost"

STALL_AFTER_S = 10.0  # a read that blocks longer: the capture is stalled (sources time out at 5 s)
OPEN_WITHIN_S = 30.0  # opening a network source may take a while

_ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180,
              270: cv2.ROTATE_90_COUNTERCLOCKWISE}


class CapturedFrame:
    """One captured frame. From a JPEG source (`jpeg` set) the pixels are decoded on the
    first read of `image`, by the pipeline thread, only when something needs them."""

    __slots__ = ("seq", "ts", "jpeg", "_image", "_conform")

    def __init__(self, seq: int, ts: float, image: np.ndarray | None = None,
                 jpeg: Jpeg | None = None,
                 conform: Callable[[np.ndarray], np.ndarray] | None = None):
        self.seq, self.ts, self.jpeg = seq, ts, jpeg  # ts: capture time, Unix seconds
        self._image, self._conform = image, conform

    @property
    def decoded(self) -> bool:
        return self._image is not None

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            img = cv2.imdecode(np.frombuffer(self.jpeg.data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:  # a broken JPEG: show a black frame rather than stop
                img = np.zeros((self.jpeg.height, self.jpeg.width, 3), np.uint8)
            self._image = self._conform(img) if self._conform else img
        return self._image


class Capture:
    """Owns one source and the thread that reads it. start()/stop() are idempotent.

    `on_status` is called from the capture thread on every status change. The thread
    runs under `supervisor` (part `capture`): it beats for every frame read and before
    every open and back-off wait, with the time that step may take.
    """

    def __init__(self, source_factory: Callable[[], Source], width: int, height: int,
                 rotate: int = 0, reconnect_max_s: float = 10.0,
                 on_status: Callable[[str, str], None] | None = None,
                 supervisor: Supervisor | None = None):
        self._factory = source_factory
        self.width, self.height, self.rotate = width, height, rotate
        self.reconnect_max_s = reconnect_max_s
        self._on_status = on_status or (lambda status, detail: None)
        self._cond = threading.Condition()
        self._latest: CapturedFrame | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._supervisor = supervisor or Supervisor()
        self._part = None
        self._source: Source | None = None
        self.status = STATUS_STOPPED
        self.status_since = time.time()
        self.detail = ""
        self.reconnects = 0
        self.frames = 0
        self.description = ""
        self._stamps: collections.deque = collections.deque(maxlen=30)

    # -- control (any thread) ------------------------------------------------------
    def start(self) -> None:
        if self._part is not None and self._part.alive:
            return
        self._stop.clear()
        self._part = self._supervisor.spawn("capture", self._run, self._stop,
                                            stall_after=STALL_AFTER_S)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._part is not None:
            if not self._part.join(timeout):
                log.warning("capture thread did not stop within %.0f s (source blocked)",
                            timeout)
            self._part = None
        with self._cond:
            self._latest = None
        self._set_status(STATUS_STOPPED, "")

    def wait_newer(self, seq: int, timeout: float) -> CapturedFrame | None:
        """The newest frame if its seq is above `seq`, waiting up to `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: (self._latest is not None and self._latest.seq > seq)
                                or self._stop.is_set(), timeout)
            latest = self._latest
        return latest if latest is not None and latest.seq > seq else None

    # -- capture thread -------------------------------------------------------------
    def status_age(self) -> float:
        return time.time() - self.status_since

    def _set_status(self, status: str, detail: str) -> None:
        if status != self.status or detail != self.detail:
            if status != self.status:
                self.status_since = time.time()
            self.status, self.detail = status, detail
            if status == STATUS_LOST:
                log.warning("source %s lost: %s", self.description, detail)
            else:
                log.info("source %s: %s %s", self.description, status, detail)
            self._on_status(status, detail)

    def _conform(self, frame: np.ndarray) -> np.ndarray:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        if self.rotate:
            frame = cv2.rotate(frame, _ROTATIONS[self.rotate])
        if frame.shape[1] != self.width or frame.shape[0] != self.height:
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return frame

    def _captured(self, seq: int, ts: float, frame: np.ndarray | Jpeg) -> CapturedFrame:
        self._stamps.append(ts)
        if isinstance(frame, Jpeg):  # decoded (and conformed) later, only if needed
            return CapturedFrame(seq, ts, jpeg=frame, conform=self._conform)
        return CapturedFrame(seq, ts, self._conform(frame))

    def jpeg_fits(self, jpeg: Jpeg | None) -> bool:
        """Whether the camera's JPEG can be published as it is (size and rotation match)."""
        return jpeg is not None and not self.rotate and \
            (jpeg.width, jpeg.height) == (self.width, self.height)

    def source_info(self) -> dict:
        """What the camera gives (format, size, its rate) and the rate measured here."""
        src, stamps = self._source, list(self._stamps)
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) \
            if len(stamps) > 1 and stamps[-1] > stamps[0] else None
        return {**(src.actual if src is not None else {}),
                "measured_fps": round(rate, 2) if rate else None}

    def _run(self) -> None:
        """The capture thread's loop (run, and restarted after a crash, by the supervisor)."""
        backoff = 0.5
        if self._source is not None:  # restarted after a crash: start from a closed source
            try:
                self._source.close()
            except Exception:
                log.exception("closing %s after a crash failed", self.description)
        source = self._source = self._factory()
        self.description = source.describe()
        self._set_status(STATUS_CONNECTING, "")
        while not self._stop.is_set():
            beat(within=OPEN_WITHIN_S)
            try:
                source.open()
            except SourceError as exc:
                self._set_status(STATUS_LOST, str(exc))
                beat(within=backoff + STALL_AFTER_S)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.reconnect_max_s)
                self.reconnects += 1
                continue
            except Exception as exc:  # a driver bug must not kill the thread
                log.exception("opening %s failed", self.description)
                self._set_status(STATUS_LOST, f"open failed: {exc}")
                beat(within=backoff + STALL_AFTER_S)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.reconnect_max_s)
                continue
            frames_before = self.frames
            lost = self._read_loop(source)
            source.close()
            if self.frames > frames_before:
                backoff = 0.5  # it worked for a while: retry soon
            if lost and not self._stop.is_set():
                self._set_status(STATUS_LOST, lost)
                self.reconnects += 1
                beat(within=backoff + STALL_AFTER_S)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.reconnect_max_s)
            else:
                backoff = 0.5

    def _read_loop(self, source: Source) -> str | None:
        """Read until stopped (None) or the source fails (why, as text)."""
        period = 1.0 / source.fps if source.paced and source.fps > 0 else 0.0
        next_at = time.monotonic()
        good = 0
        while not self._stop.is_set():
            beat(within=STALL_AFTER_S + period)
            try:
                frame = source.read()
            except SourceError as exc:
                return str(exc)
            except Exception as exc:
                log.warning("reading %s failed: %s", self.description, exc)
                return f"read failed: {exc}"
            if frame is None or (not isinstance(frame, Jpeg) and frame.size == 0):
                return "no frames from source"
            ts = time.time()
            with self._cond:
                self._seq += 1
                self._latest = self._captured(self._seq, ts, frame)
                self._cond.notify_all()
            self.frames += 1
            good += 1
            if good == 1:
                self._set_status(STATUS_OK, "")
            if period:
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.monotonic()  # fell behind: do not try to catch up
        return None
