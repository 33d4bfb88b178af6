"""The processing pipeline: newest captured frame -> module -> stamp -> JPEG once -> PUB.

One pipeline thread runs for the node's lifetime (under the node's supervisor) and is
the only caller of the encoder. The module runs on its own thread (`ModuleWorker`): the
pipeline waits for it up to `SLOW_AFTER_S` per frame; a slower module is reported
and unedited frames stamped "module slow" flow on meanwhile. Every module output is
checked (`conform`) before it is stamped or encoded. Other threads (the dispatcher)
change what the pipeline does through methods that only swap references under a lock;
the thread picks the change up between frames. While stopped, or while the source is
lost, it publishes a placeholder frame once a second so viewers see why there is no
picture, and every endpoint keeps answering.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

import numpy as np

from camnode.node import wire
from camnode.node.capture import STATUS_LOST, STATUS_OK, STATUS_STOPPED, Capture
from camnode.node.config import CameraConfig
from camnode.node.encoder import Encoder
from camnode.node.loader import Processor
from camnode.node.metrics import Histogram
from camnode.node.module_runner import SLOW_AFTER_S, ModuleWorker, Outcome
from camnode.node.publisher import Publisher
from camnode.node.sources import make_source
from camnode.node.stamp import placeholder, stamp
from camnode.node.supervisor import Supervisor, beat
from camnode.processors import common

log = logging.getLogger(__name__)

PLACEHOLDER_PERIOD = 1.0
MODULE_ERROR_HOLD_S = 10.0  # a module error stays a health problem this long after the last
SOURCE_GRACE_S = 5.0  # connecting longer than this counts as a lost source


class Pipeline:
    """Owns the capture, the current module and the pipeline thread."""

    def __init__(self, camera: CameraConfig, publisher: Publisher, stamp_frames: bool = True,
                 on_change: Callable[[], None] | None = None,
                 on_frame: Callable[[list, float, bytes, int, int], None] | None = None,
                 supervisor: Supervisor | None = None,
                 encode: str = "demand", max_variants: int = 4):
        self.camera = camera
        self.supervisor = supervisor or Supervisor()
        # Who needs a picture of each frame; stamps are drawn only then (node/encoder.py).
        self.output = Encoder(publisher, camera.jpeg_quality, encode, max_variants)
        self._on_frame = on_frame
        self.publisher = publisher
        self.stamp_frames = stamp_frames
        self._on_change = on_change or (lambda: None)
        self._lock = threading.Lock()
        self._processor = Processor("passthrough", None)
        self._module_error: str | None = None
        self._worker: ModuleWorker | None = None  # pipeline thread only
        self._slow_since: float | None = None  # wall time the module became slow
        self._slow_s = 0.0  # its last time per frame, seconds
        self._error_since: float | None = None  # wall time of the error streak's first
        self._error_at = 0.0
        self._rois: tuple[dict, dict] | None = None
        self._capture: Capture | None = None
        self._stop = threading.Event()
        self._part = None
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
    def open(self) -> None:
        """Spawn the pipeline thread (frames flow once `start_camera` opens the camera)."""
        if self._part is not None and self._part.alive:
            return
        self._stop.clear()
        self._part = self.supervisor.spawn("pipeline", self._run, self._stop)

    def close(self) -> None:
        """For good: the pipeline thread, the camera and the module (node shutdown)."""
        self._stop.set()
        if self._part is not None:
            self._part.join(5)
            self._part = None
        self.stop_camera()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.retire()  # closes its module
            worker.join(5)
        if worker is None or worker.processor is not self._processor:
            self._processor.close()

    # -- commands (dispatcher thread) ---------------------------------------------------
    def start_camera(self) -> bool:
        """Open the camera and process frames. False if already running."""
        with self._lock:
            if self.running:
                return False
            cam = self.camera
            self._capture = Capture(
                lambda: make_source(cam.source, cam.width, cam.height, cam.fps, cam.mjpg),
                cam.width, cam.height, cam.rotate, cam.reconnect_max_s,
                on_status=lambda s, d: self._on_change(), supervisor=self.supervisor)
            self._capture.start()
            self.running = True
        log.info("pipeline started (source %s, %dx%d @ %g fps)", cam.source, cam.width,
                 cam.height, cam.fps)
        self._on_change()
        return True

    def stop_camera(self) -> bool:
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
        """Swap the module; the pipeline thread retires the old one's worker, which
        closes it once its frame in work (if any) is done."""
        with self._lock:
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

    def problems(self) -> list[dict]:
        """Degraded conditions for the state's `health` (state thread): the source lost,
        the module failing to load, raising, returning what cannot be shown, or slow."""
        out = []
        cap = self._capture
        if cap is not None and self.running and (
                cap.status == STATUS_LOST or (cap.status != STATUS_OK and cap.status_age()
                                              > SOURCE_GRACE_S)):
            out.append({"part": "source", "reason": f"{cap.status}: {cap.detail or cap.description}",
                        "since": round(cap.status_since, 3)})
        p = self._processor
        if self._module_error:
            out.append({"part": "module", "reason": self._module_error,
                        "since": round(self._error_since or time.time(), 3)})
        elif self._error_since is not None and time.time() - self._error_at < MODULE_ERROR_HOLD_S:
            out.append({"part": "module", "reason": f"{p.name} failing ({p.errors} errors): "
                        f"{p.last_error}", "since": round(self._error_since, 3)})
        slow = self.module_slow()
        if slow is not None:
            out.append({"part": "module", "reason": f"{p.name} slow: {slow:.1f} s per frame "
                        f"(limit {SLOW_AFTER_S:g} s); streaming unedited frames",
                        "since": round(self._slow_since or time.time(), 3)})
        return out

    def module_slow(self) -> float | None:
        """Seconds per frame of the current module while it is slow, else None."""
        if self._slow_since is None:
            return None
        worker = self._worker
        busy = worker.busy_since if worker is not None else None
        return max(self._slow_s, time.monotonic() - busy if busy is not None else 0.0)

    def status(self) -> dict:
        p = self._processor
        cap = self._capture
        slow = self.module_slow()
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
            "module_slow": {"slow": slow is not None,
                            "seconds_per_frame": round(slow, 2) if slow is not None else None,
                            "since": self._slow_since},
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
        """The pipeline thread's loop (run, and restarted after a crash, by the supervisor)."""
        last_seq = 0
        last_capture: Capture | None = None
        last_placeholder = 0.0
        last_frame_at = time.monotonic()
        while not self._stop.is_set():
            beat()
            with self._lock:
                processor, capture, rois = self._processor, self._capture, self._rois
                self._rois = None
            worker = self._worker_for(processor)
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
            fits = capture.jpeg_fits(frame.jpeg)  # the camera's JPEG could go out as it is
            if processor.module is None or getattr(processor.module, "PASSTHROUGH", False):
                if self.output.relay(frame, processor.name, self.stamp_frames, fits):
                    self._times.append(time.time())
                    continue  # nothing to draw: the camera's JPEG went out, or nobody looks
            self._process(worker, self.output.pixels(frame, processor.module, fits), frame.ts)

    def _worker_for(self, processor: Processor) -> ModuleWorker:
        """The worker of the current module; a new module retires the old worker."""
        worker = self._worker
        if worker is not None and worker.processor is processor:
            return worker
        if worker is not None:
            worker.retire()  # closes its module after the frame in work, on its thread
            if worker.busy:
                log.warning("module %s still busy with a frame; it is closed when done",
                            worker.processor.name)
        self._set_slow(None)
        self._error_since = None
        self._worker = ModuleWorker(processor, self.camera.width, self.camera.height,
                                    self.supervisor)
        return self._worker

    def _process(self, worker: ModuleWorker, image: np.ndarray, ts: float) -> None:
        late = worker.take()  # finished after we stopped waiting for it
        if late is not None:
            self._collect(worker, late, publish=False)
        if worker.busy:
            self._publish_unedited(worker, image, ts)
            return
        worker.submit(image, ts)
        done = worker.wait(0.0 if self._slow_since is not None else SLOW_AFTER_S)
        if done is None:
            if self._slow_since is None:
                self._set_slow(SLOW_AFTER_S, worker.processor.name)
            self._publish_unedited(worker, image.copy(), ts)  # the worker reads `image`
            return
        self._collect(worker, done, publish=True)

    def _collect(self, worker: ModuleWorker, done: Outcome, publish: bool) -> None:
        """One outcome of the module: account for it, and publish it if it is current."""
        result = done.result
        self._proc_ms.append(done.seconds * 1000)
        self.proc_hist.observe(done.seconds)
        if done.seconds < SLOW_AFTER_S:
            self._set_slow(None, worker.processor.name)
        else:
            self._set_slow(done.seconds, worker.processor.name)
        if result.error:
            now = time.time()
            self._error_at = now
            if self._error_since is None:
                self._error_since = now
        if result.frame is None:
            self.module_dropped += 1
            return
        if not publish:  # too old to show: viewers saw newer unedited frames already
            if result.detections and self._on_frame is not None:
                self._on_frame(result.detections, done.ts, None, *done.size)
            return
        out = result.frame
        self._times.append(time.time())
        plan = self.output.plan(done.ts)  # who needs a picture of this frame
        if plan and self.stamp_frames:
            stamp(out, worker.processor.name, done.ts, self._fps(),
                  result.error or self._module_error)
        t1 = time.perf_counter()  # encode_ms times the encoding, not the stamping
        jpeg = self._publish(out, done.ts, worker.processor.name, wire.KIND_LIVE, plan)
        t2 = time.perf_counter()
        if plan:  # frames nobody needed are counted in `encoding`, not timed here
            self._encode_ms.append((t2 - t1) * 1000)
            self.encode_hist.observe(t2 - t1)
        if self._on_frame is not None:  # pixels when not encoded: events make their own JPEG
            self._on_frame(result.detections, done.ts, out if jpeg is None else jpeg,
                           *done.size)

    def _publish_unedited(self, worker: ModuleWorker, image: np.ndarray, ts: float) -> None:
        """The camera's frame as it is, stamped "module slow", while the module works."""
        self._times.append(time.time())
        plan = self.output.plan(ts)
        if plan and self.stamp_frames:
            slow = self.module_slow() or SLOW_AFTER_S
            stamp(image, worker.processor.name, ts, self._fps(), self._module_error,
                  note=f"module slow ({slow:.1f} s/frame): unedited")
        self._publish(image, ts, worker.processor.name, wire.KIND_LIVE, plan)

    def _set_slow(self, seconds: float | None, name: str = "") -> None:
        """Enter, update or leave the slow state (pipeline thread); logged on changes."""
        if seconds is None:
            if self._slow_since is not None:
                log.info("module %s keeps up again (%.2f s per frame)", name, self._slow_s)
                self._slow_since = None
                self._on_change()
            return
        self._slow_s = seconds
        if self._slow_since is None:
            self._slow_since = time.time()
            log.warning("module %s is slow (over %.1f s per frame): streaming unedited "
                        "frames stamped 'module slow' while it works on the newest frame",
                        name, seconds)
            self._on_change()

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
