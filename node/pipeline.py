"""The processing pipeline: newest captured frame -> module -> stamp -> JPEG once -> PUB.

One pipeline thread runs for the node's lifetime and is the only caller of the module
and the encoder. Other threads (the dispatcher) change what it does through methods
that only swap references under a lock; the thread picks the change up between frames.
While stopped, or while the source is lost, it publishes a placeholder frame once a
second so viewers see why there is no picture, and every endpoint keeps answering.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

import cv2
import numpy as np

from node import wire
from node.capture import STATUS_OK, STATUS_STOPPED, Capture
from node.config import CameraConfig
from node.encoder import Encoder
from node.loader import Processor
from node.metrics import Histogram
from node.publisher import Publisher
from node.sources import make_source
from node.stamp import placeholder, stamp
from processors import common

log = logging.getLogger(__name__)

PLACEHOLDER_PERIOD = 1.0


class Pipeline:
    """Owns the capture, the current module and the pipeline thread."""

    def __init__(self, camera: CameraConfig, publisher: Publisher, stamp_frames: bool = True,
                 on_change: Callable[[], None] | None = None,
                 on_frame: Callable[[list, float, bytes, int, int], None] | None = None,
                 encode: str = "demand", max_variants: int = 4):
        self.camera = camera
        # Who needs a picture of each frame; stamps are drawn only then (node/encoder.py).
        self.output = Encoder(publisher, camera.jpeg_quality, encode, max_variants)
        self._on_frame = on_frame
        self.publisher = publisher
        self.stamp_frames = stamp_frames
        self._on_change = on_change or (lambda: None)
        self._lock = threading.Lock()
        self._processor = Processor("passthrough", None)
        self._retired: list[Processor] = []
        self._module_error: str | None = None
        self._rois: tuple[dict, dict] | None = None
        self._capture: Capture | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.running = False
        self.module_dropped = 0
        self.skipped = 0
        self._times = collections.deque(maxlen=60)
        self._proc_ms = collections.deque(maxlen=300)
        self._encode_ms = collections.deque(maxlen=300)
        self.proc_hist = Histogram()
        self.encode_hist = Histogram()
        self._captured_before = 0
        self._reconnects_before = 0

    # -- lifetime (node main thread) --------------------------------------------------
    def start_thread(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self._thread.start()

    def stop_thread(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
            self._thread = None
        self.stop()
        self._processor.close()

    # -- commands (dispatcher thread) ---------------------------------------------------
    def start(self) -> bool:
        """Open the camera and process frames. False if already running."""
        with self._lock:
            if self.running:
                return False
            cam = self.camera
            self._capture = Capture(
                lambda: make_source(cam.source, cam.width, cam.height, cam.fps, cam.mjpg),
                cam.width, cam.height, cam.rotate, cam.reconnect_max_s,
                on_status=lambda s, d: self._on_change())
            self._capture.start()
            self.running = True
        log.info("pipeline started (source %s, %dx%d @ %g fps)", cam.source, cam.width,
                 cam.height, cam.fps)
        self._on_change()
        return True

    def stop(self) -> bool:
        """Stop processing and release the camera. False if already stopped."""
        with self._lock:
            if not self.running:
                return False
            capture, self._capture = self._capture, None
            self.running = False
        if capture:
            capture.stop()
            self._captured_before += capture.frames
            self._reconnects_before += capture.reconnects
        log.info("pipeline stopped")
        self._on_change()
        return True

    def set_processor(self, processor: Processor, error: str | None = None) -> None:
        """Swap the module; the old one is closed by the pipeline thread."""
        with self._lock:
            self._retired.append(self._processor)
            self._processor = processor
            self._module_error = error
        log.info("module set to %s%s", processor.name, f" (error: {error})" if error else "")
        self._on_change()

    def set_rois(self, rois: dict, colours: dict) -> None:
        with self._lock:
            self._rois = (dict(rois), dict(colours))

    # -- what the state shows (any thread) --------------------------------------------------
    @property
    def last_jpeg(self) -> tuple[bytes, float, str] | None:
        return self.output.last_jpeg

    @property
    def published(self) -> int:
        return self.output.published

    @property
    def module(self) -> str:
        return self._processor.name

    def status(self) -> dict:
        p = self._processor
        cap = self._capture
        fresh = self._times and time.time() - self._times[-1] < 2
        fps = self._fps() if fresh else 0.0
        return {
            "pipeline": "running" if self.running else "stopped",
            "module": p.name,
            "module_params": p.params,
            "module_error": self._module_error,
            "module_errors": p.errors,
            "module_last_error": p.last_error,
            "module_status": p.status(),
            "source": {
                "spec": cap.description if cap else str(self.camera.source),
                "status": cap.status if cap else STATUS_STOPPED,
                "detail": cap.detail if cap else "",
                "reconnects": self._reconnects_before + (cap.reconnects if cap else 0),
                "actual": cap.source_info() if cap else {},
            },
            "encoding": self.output.status(),
            "fps": round(fps, 2),
            "width": self.camera.width,
            "height": self.camera.height,
            "frames": {
                "captured": self._captured_before + (cap.frames if cap else 0),
                "published": self.published,
                "skipped": self.skipped,
                "dropped_by_module": self.module_dropped,
            },
            "processing_ms": _percentiles(self._proc_ms),
            "encode_ms": _percentiles(self._encode_ms),
        }

    # -- pipeline thread ---------------------------------------------------------------
    def _run(self) -> None:
        last_seq = 0
        last_capture: Capture | None = None
        last_placeholder = 0.0
        last_frame_at = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                processor, capture, rois = self._processor, self._capture, self._rois
                retired, self._retired = self._retired, []
                self._rois = None
            for old in retired:
                if old is not processor:
                    old.close()
            if rois is not None:
                common.configure(*rois)
            if capture is not last_capture:
                last_capture, last_seq = capture, 0
                last_frame_at = time.monotonic()
            now = time.monotonic()
            if capture is None:
                if now - last_placeholder >= PLACEHOLDER_PERIOD:
                    self._publish_placeholder(wire.KIND_STOPPED, "STOPPED", "")
                    last_placeholder = now
                self._stop.wait(0.2)
                continue
            frame = capture.wait_newer(last_seq, timeout=0.25)
            if frame is None:
                silent = time.monotonic() - last_frame_at
                if (capture.status != STATUS_OK or silent > 2.0) and \
                        time.monotonic() - last_placeholder >= PLACEHOLDER_PERIOD:
                    self._publish_placeholder(wire.KIND_NOSIGNAL, "NO SIGNAL",
                                              capture.detail or capture.description)
                    last_placeholder = time.monotonic()
                continue
            if last_seq and frame.seq > last_seq + 1:
                self.skipped += frame.seq - last_seq - 1
            last_seq = frame.seq
            last_frame_at = time.monotonic()
            if processor.module is None or getattr(processor.module, "PASSTHROUGH", False):
                if self.output.relay(frame, processor.name, self.stamp_frames,
                                     capture.jpeg_fits(frame.jpeg)):
                    self._times.append(time.time())
                    continue  # nothing to draw: the camera's JPEG went out, or nobody looks
            self._process(processor, self.output.pixels(frame, processor.module,
                                                        capture.jpeg_fits(frame.jpeg)), frame.ts)

    def _process(self, processor: Processor, image: np.ndarray, ts: float) -> None:
        t0 = time.perf_counter()
        result = processor.process(image)
        t1 = time.perf_counter()
        self._proc_ms.append((t1 - t0) * 1000)
        self.proc_hist.observe(t1 - t0)
        if result.frame is None:
            self.module_dropped += 1
            return
        out = result.frame
        if out.ndim == 2:
            out = cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)
        self._times.append(time.time())
        plan = self.output.plan(ts)  # who needs a picture of this frame
        if plan and self.stamp_frames:
            stamp(out, processor.name, ts, self._fps(), result.error or self._module_error)
        jpeg = self._publish(out, ts, processor.name, wire.KIND_LIVE, plan)
        t2 = time.perf_counter()
        self._encode_ms.append((t2 - t1) * 1000)
        self.encode_hist.observe(t2 - t1)
        if self._on_frame is not None:  # pixels when not encoded: events make their own JPEG
            self._on_frame(result.detections, ts, out if jpeg is None else jpeg, out.shape[1],
                           out.shape[0])

    def _fps(self) -> float:
        # No copy (this runs per frame): the deque only grows to maxlen and never empties,
        # so reading its ends from the state thread too is safe.
        t = self._times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def _publish_placeholder(self, kind: str, title: str, detail: str) -> None:
        ts = time.time()
        img = placeholder(self.camera.width, self.camera.height, title, detail, ts)
        self._publish(img, ts, self._processor.name, kind)

    def _publish(self, image: np.ndarray, ts: float, module: str, kind: str,
                 plan=None) -> bytes | None:
        """Encode and publish what `plan` asks (None: the full frame); node/encoder.py."""
        return self.output.publish(image, ts, module, kind, plan)


def _percentiles(values) -> dict:
    v = sorted(values)
    if not v:
        return {"p50": None, "p95": None}
    return {"p50": round(v[len(v) // 2], 2), "p95": round(v[min(len(v) - 1, int(len(v) * 0.95))], 2)}
