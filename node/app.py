"""The node: wires capture, pipeline, publisher, dispatcher and command server together.

Constructed by the CLI in the main thread; `start()` brings components up in
dependency order and `stop()` takes them down in reverse. A state thread publishes the
node's state on every change and once a second, so web workers never poll.
"""

from __future__ import annotations

import logging
import threading
import time

from node import __version__
from node.command_server import CommandServer
from node.config import ConfigStore
from node.dispatcher import Dispatcher
from node.loader import ModuleLoadError, Processor, Registry, UnknownModule, InvalidParams
from node.pipeline import Pipeline
from node.publisher import Publisher

log = logging.getLogger(__name__)

STATE_PERIOD = 1.0


class Node:
    """Owns all state of one camera node."""

    def __init__(self, store: ConfigStore):
        cfg = store.config
        self.store = store
        self.registry = Registry(cfg.processor_dirs())
        self.publisher = Publisher(cfg.zmq.publish)
        self.pipeline = Pipeline(cfg.camera, self.publisher, cfg.pipeline.stamp,
                                 on_change=self.notify)
        self.dispatcher = Dispatcher(self)
        self.commands = CommandServer(cfg.zmq.command, self.dispatcher)
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._state_thread: threading.Thread | None = None
        self._started_at = time.time()
        self.last_error: str | None = None
        self._viewers: dict[str, tuple] = {}

    def start(self) -> None:
        cfg = self.store.config
        self.publisher.start()
        self.pipeline.set_rois(cfg.rois, cfg.colours)
        self._load_initial_module()
        self.pipeline.start_thread()
        self.commands.start()
        self._stop.clear()
        self._state_thread = threading.Thread(target=self._state_loop, name="state", daemon=True)
        self._state_thread.start()
        if cfg.pipeline.autostart:
            self.pipeline.start()

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()
        if self._state_thread:
            self._state_thread.join(5)
            self._state_thread = None
        self.commands.stop()
        self.pipeline.stop_thread()
        self.publish_state()
        self.publisher.stop()
        log.info("node stopped")

    def _load_initial_module(self) -> None:
        """Load the configured module; on failure stream unedited frames and say why."""
        cfg = self.store.config.pipeline
        try:
            proc = self.registry.load(cfg.module, cfg.module_params)
            self.pipeline.set_processor(proc)
        except (UnknownModule, ModuleLoadError, InvalidParams) as exc:
            msg = f"module {cfg.module!r} not loaded: " + (
                "not found" if isinstance(exc, UnknownModule) else str(exc))
            log.error("%s; streaming unedited frames", msg)
            self.last_error = msg
            self.pipeline.set_processor(Processor(cfg.module, None), error=msg)

    def notify(self) -> None:
        """Something changed: publish state now (any thread)."""
        self._changed.set()

    def viewers_report(self, worker: str, viewers: int, fps_min: float | None,
                       fps_median: float | None) -> None:
        """A web worker's viewers (dispatcher thread, every second per worker)."""
        before = self._viewers.get(worker, (0, None))[1]
        self._viewers[worker] = (time.monotonic(), viewers, fps_min, fps_median)
        if viewers != before:
            self.notify()

    def viewer_summary(self) -> dict:
        now = time.monotonic()
        fresh = {w: v for w, v in self._viewers.items() if now - v[0] < 5}
        self._viewers = fresh
        mins = [v[2] for v in fresh.values() if v[2] is not None]
        meds = [v[3] for v in fresh.values() if v[3] is not None]
        return {"viewers": sum(v[1] for v in fresh.values()), "web_workers": len(fresh),
                "viewer_fps_min": min(mins) if mins else None,
                "viewer_fps_median": round(sum(meds) / len(meds), 2) if meds else None}

    def state(self) -> dict:
        cfg = self.store.config
        s = self.pipeline.status()
        s.update(self.viewer_summary())
        s.update({
            "node_id": cfg.node_id,
            "name": cfg.name,
            "version": __version__,
            "modules": self.registry.available(),
            "uptime_s": round(time.time() - self._started_at, 1),
            "last_error": s.get("module_error") or s.get("module_last_error") or self.last_error,
            "commands": dict(self.dispatcher.counts),
            "time": time.time(),
        })
        return s

    def publish_state(self) -> None:
        self.publisher.state(self.state())

    def _state_loop(self) -> None:
        while not self._stop.is_set():
            self._changed.wait(STATE_PERIOD)
            self._changed.clear()
            if self._stop.is_set():
                break
            try:
                self.publish_state()
            except Exception:
                log.exception("publishing state failed")
