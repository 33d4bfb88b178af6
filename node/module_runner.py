"""The module's own thread, and the check of every frame a module returns.

The pipeline thread hands each frame to a `ModuleWorker` and waits for its result up to
`SLOW_AFTER_S`. A module that takes longer is *slow*: the pipeline publishes unedited
frames stamped "module slow" at the camera's rate while the worker finishes, then gives
the worker the newest frame again (see README, "Processor contract"). Results that
arrive late feed the events (detections) but are not shown: they are older than what
viewers already saw.

`conform` turns what a module returned into a valid frame for stamping and encoding
(BGR, uint8, the camera's size, C-contiguous, writable), or says why it cannot; the
unedited frame is streamed then, and the module error counted and reported.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from camnode.node.loader import Processor, Result
from camnode.node.supervisor import Supervisor, idle

log = logging.getLogger(__name__)

SLOW_AFTER_S = 0.5  # a module slower than this per frame would take the stream below 2 fps


def conform(out: np.ndarray, width: int, height: int) -> tuple[np.ndarray | None, str]:
    """(frame, note): `out` as a BGR uint8 frame of `width` x `height`, with what was
    converted ("" if nothing); or (None, why it cannot be shown). Pipeline thread."""
    if not isinstance(out, np.ndarray):
        return None, f"returned {type(out).__name__}, not an image"
    notes = []
    if out.size == 0 or out.ndim not in (2, 3):
        return None, f"returned an array of shape {out.shape}"
    channels = 1 if out.ndim == 2 else out.shape[2]
    if channels not in (1, 3, 4):
        return None, f"returned a {channels}-channel frame (1, 3 or 4 can be shown)"
    if out.dtype == np.bool_:
        out = out.astype(np.uint8) * 255
        notes.append("bool")
    elif out.dtype.kind in "iu" and out.dtype != np.uint8:
        notes.append(str(out.dtype))
        out = np.clip(out, 0, 255).astype(np.uint8)
    elif out.dtype.kind == "f":
        notes.append(str(out.dtype))
        out = np.nan_to_num(out.astype(np.float32, copy=False), nan=0.0, posinf=255.0,
                            neginf=0.0)
        if out.max(initial=0.0) <= 1.0:  # OpenCV's convention for float images: 0..1
            out = out * 255.0
        out = np.clip(out, 0, 255).astype(np.uint8)
    elif out.dtype != np.uint8:
        return None, f"returned a frame of dtype {out.dtype}"
    if channels == 1:
        out = cv2.cvtColor(np.ascontiguousarray(out.reshape(out.shape[:2])),
                           cv2.COLOR_GRAY2BGR)
        notes.append("grey")
    elif channels == 4:
        out = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_BGRA2BGR)
        notes.append("4-channel")
    if out.shape[1] != width or out.shape[0] != height:
        notes.append(f"{out.shape[1]}x{out.shape[0]}")
        out = cv2.resize(np.ascontiguousarray(out), (width, height),
                         interpolation=cv2.INTER_AREA)
    if not out.flags.c_contiguous or not out.flags.writeable:
        out = np.array(out, order="C", copy=True)
    return out, ", ".join(notes)


@dataclass
class Outcome:
    """One finished call of the module, as the pipeline uses it."""

    result: Result  # result.frame is conformed (or the unedited frame, with result.error)
    ts: float
    seconds: float
    size: tuple[int, int]  # the module's own output size, for pixel detection boxes


class ModuleWorker:
    """Owns one Processor and the thread that is the only caller of it.

    The pipeline thread calls `submit`, `wait`, `take` and `retire`; the worker thread
    runs the module, conforms its output and closes the Processor when retired.
    """

    def __init__(self, processor: Processor, width: int, height: int,
                 supervisor: Supervisor):
        self.processor = processor
        self.width, self.height = width, height
        self._cond = threading.Condition()
        self._job: tuple[np.ndarray, float] | None = None
        self._done: Outcome | None = None
        self.busy_since: float | None = None  # monotonic; set while a frame is in work
        self._stop = threading.Event()
        self._logged: set[str] = set()
        self._part = supervisor.spawn("module", self._run, self._stop,
                                      name=f"module-{processor.name}")

    # -- pipeline thread ------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.busy_since is not None

    def submit(self, image: np.ndarray, ts: float) -> None:
        with self._cond:
            self._job = (image, ts)
            self.busy_since = time.monotonic()
            self._cond.notify_all()

    def wait(self, timeout: float) -> Outcome | None:
        """The outcome of the submitted frame if it is ready within `timeout` s."""
        with self._cond:
            self._cond.wait_for(lambda: self._done is not None, timeout)
            done, self._done = self._done, None
        return done

    def take(self) -> Outcome | None:
        """A finished outcome not collected yet, without waiting."""
        return self.wait(0) if self._done is not None else None

    def retire(self) -> None:
        """Stop after the frame in work (if any); the worker closes the module."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float) -> None:
        self._part.join(timeout)

    # -- worker thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                idle()  # a slow or stuck module is reported as `module`, below
                with self._cond:
                    self._cond.wait_for(lambda: self._job is not None or self._stop.is_set())
                    job, self._job = self._job, None
                if job is None:
                    continue
                outcome = self._call(*job)
                with self._cond:
                    self._done = outcome
                    self.busy_since = None
                    self._cond.notify_all()
        finally:
            if self._stop.is_set():
                self.processor.close()

    def _call(self, image: np.ndarray, ts: float) -> Outcome:
        t0 = time.perf_counter()
        result = self.processor.process(image)
        seconds = time.perf_counter() - t0
        size = (self.width, self.height)
        if result.frame is not None and result.frame is not image:
            size = (result.frame.shape[1], result.frame.shape[0]) \
                if isinstance(result.frame, np.ndarray) and result.frame.ndim >= 2 else size
            # The input's size: a camera JPEG may be decoded small for the module
            # while nobody watches (node/encoder.py `pixels`).
            frame, note = conform(result.frame, image.shape[1], image.shape[0])
            if frame is None:
                result = Result(image, [], self._refused(note))
            else:
                result.frame = frame
                if note and note not in self._logged:
                    self._logged.add(note)
                    log.warning("module %s returns %s frames; converting them to BGR "
                                "%dx%d", self.processor.name, note, self.width, self.height)
        return Outcome(result, ts, seconds, size)

    def _refused(self, why: str) -> str:
        """Count a frame we cannot show as a module error; log once per kind."""
        message = f"{why}; showing the unedited frame"
        p = self.processor
        p.errors += 1
        p.last_error = message
        kind = why.split(" of ")[0]
        if kind not in self._logged:
            self._logged.add(kind)
            log.error("module %s %s (logged once; counted in module_errors)", p.name, message)
        return message
