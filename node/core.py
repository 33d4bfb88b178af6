"""The node's core: capture, pipeline, events, the dispatcher and the state's owner.

Built by node/wiring.py in the main thread, which hands it the ZeroMQ publisher its frames
go out on and adds the transports (node/transport.py); the core knows them only by that
interface. `start()` brings components up in dependency order and `stop()` takes them
down in reverse. The state thread owns the node's state: it runs every command (node/owner.py)
and publishes the state, on every change and once a second, as the core topic `state`
to every transport, and `stats` every `mqtt.stats_interval_s`. Frames go capture ->
pipeline -> encoder -> ZeroMQ PUB without passing through it.

Every long-lived thread runs under `self.supervisor` (node/supervisor.py); the state's
`health` lists what it finds dead or stalled plus the pipeline's degraded conditions.
"""

from __future__ import annotations

import logging
import threading
import time

from camnode.node import __version__, transport, wire
from camnode.node.config import ConfigStore
from camnode.node.dispatcher import Dispatcher
from camnode.node.owner import CALL_TIMEOUT_S, Mailbox
from camnode.node.events import EventEngine, make_snapshot
from camnode.node.loader import InvalidParams, ModuleLoadError, Processor, Registry, UnknownModule
from camnode.node.pipeline import Pipeline
from camnode.node.transport import Transport
from camnode.node.publisher import Publisher
from camnode.node import supervisor as supervision
from camnode.node.supervisor import Supervisor, beat
from camnode.processors.common import DEFAULT_COLOURS

log = logging.getLogger(__name__)

STATE_PERIOD = 1.0
VIEWER_FRESH_S = 5.0  # a web worker silent longer has no viewers


class PubEventSink:
    """Detections and occupancy to web workers, over the PUB socket (events thread)."""

    def __init__(self, publisher: Publisher):
        self.publisher = publisher

    def event(self, event: dict) -> None:
        self.publisher.event({"kind": wire.EVENT_DETECTION, **event})

    def occupancy(self, roi: str, occupied: bool, count: int) -> None:
        self.publisher.event({"kind": wire.EVENT_OCCUPANCY, "roi": roi, "occupied": occupied,
                              "count": count})

    def motion(self, on: bool) -> None:
        self.publisher.event({"kind": wire.EVENT_MOTION, "on": on})

    def snapshot(self, jpeg: bytes, ts: float) -> None:
        self.publisher.event({"kind": wire.EVENT_SNAPSHOT, "ts": ts}, jpeg)  # event thumbnails


class Node:
    """Owns all state of one camera node."""

    def __init__(self, store: ConfigStore, publisher: Publisher, web_url: str | None = None,
                 mqtt_note: str | None = None):
        """Built by node/wiring.py (the composition root). `publisher`: where encoded
        frames go (web workers subscribe to it); it is a transport for state too."""
        cfg = store.config
        self.store = store
        self.web_url = web_url
        self.supervisor = Supervisor(on_change=self.notify)
        self.registry = Registry(cfg.processor_dirs(), cfg.pipeline.examples)
        self.publisher = publisher
        self.events = EventEngine(cfg.events, cfg.node_id, [PubEventSink(self.publisher)],
                                  supervisor=self.supervisor)
        self.pipeline = Pipeline(cfg.camera, self.publisher, cfg.pipeline.stamp,
                                 on_change=self.notify, on_frame=self.events.submit,
                                 supervisor=self.supervisor, encode=cfg.pipeline.encode,
                                 max_variants=cfg.pipeline.max_variants)
        self.mailbox = Mailbox()  # served by the state thread, the state's one owner
        self.dispatcher = Dispatcher(self, self.mailbox)
        # Everything the core says goes to these (node/transport.py); commands come back
        # from them to the dispatcher. Others are added by node/wiring.py.
        self.transports: list[Transport] = [self.publisher]
        self.publisher.subscribe(self.dispatcher.handle)
        self._added: list = []  # started after the core, stopped before it
        self.broker_link = None  # the added transport whose status() is the state's "mqtt"
        self._mqtt_note = mqtt_note or "MQTT disabled in the configuration"
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._state_part: supervision.Part | None = None
        self._health_ok = True
        self._started_at = time.time()
        self.last_error: str | None = None
        self._viewers: dict[str, tuple] = {}
        self._bytes_sent: dict[str, int] = {}

    def start(self) -> None:
        cfg = self.store.config
        supervision.set_current(self.supervisor)  # module detectors register with it
        self.publisher.start()
        self.pipeline.set_rois(cfg.rois, cfg.colours)
        self.events.set_rois(cfg.rois)
        self.events.start()
        self._load_initial_module()
        self.pipeline.open()
        for t in self._added:
            t.start()
        self._stop.clear()
        # It runs commands too, and one may load a module: the commands part's stall limit.
        self._state_part = self.supervisor.spawn("state", self._state_loop, self._stop,
                                                 stall_after=CALL_TIMEOUT_S)
        if cfg.pipeline.autostart:
            self.pipeline.start_camera()

    def stop(self) -> None:
        self._stop.set()
        self.mailbox.wake()
        if self._state_part is not None:
            self._state_part.join(5)
            self._state_part = None
        for t in reversed(self._added):
            t.stop()
        self.pipeline.close()
        self.events.stop()
        self.publish_state()
        self.publisher.stop()
        log.info("node stopped")

    def add_transport(self, t, *, event_sink: bool = False, broker_link: bool = False) -> None:
        """A transport built by node/wiring.py (before start): subscribed to the
        dispatcher, sent every core topic, started after the core and stopped before it.
        `event_sink`: it also takes the event engine's outputs (node/events.py EventSink);
        `broker_link`: its status() is the state's `mqtt` field."""
        t.subscribe(self.dispatcher.handle)
        self.transports.append(t)
        self._added.append(t)
        if event_sink:
            self.events.sinks.append(t)
        if broker_link:
            self.broker_link = t

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

    # -- called by the dispatcher (under its lock) -----------------------------------------
    def apply_rois(self, previous: set[str]) -> None:
        """ROIs changed in the store: hand them to the pipeline and events, announce them."""
        cfg = self.store.config
        self.pipeline.set_rois(cfg.rois, cfg.colours)
        self.events.set_rois(cfg.rois)
        log.info("ROIs now %s (version %d)", ", ".join(sorted(cfg.rois)) or "none",
                 cfg.rois_version)
        self._broadcast(transport.ROIS, {
            "version": cfg.rois_version, "rois": cfg.rois,
            "removed": {gone: self.events.labels_of(gone) for gone in previous - set(cfg.rois)}},
            retain=True)
        self.notify()

    def refresh(self) -> dict:
        """Every transport sends its retained messages again (`state/get`, and a
        transport's `transport/refresh` after it reconnected). State thread; returns the
        news sent: the state, the ROIs, `info` and the events' newest outputs."""
        cfg = self.store.config
        news = {"state": self.state(), "rois": {"version": cfg.rois_version, "rois": cfg.rois},
                "info": self.info(), "outputs": self.events.outputs}
        self._broadcast(transport.REFRESH, news)
        return news

    def _broadcast(self, topic: str, payload, retain: bool = False) -> None:
        """A core topic to every transport (node/transport.py); one failing is logged."""
        for t in self.transports:
            try:
                t.publish(topic, payload, retain)
            except Exception:
                log.exception("transport %s failed on %s", type(t).__name__, topic)

    def snapshot(self) -> dict | None:
        """Publish the newest frame on the MQTT `snapshot` topic; None before any frame."""
        last = self.pipeline.output.picture(timeout=2.0)  # this frame's, if none is fresh
        if last is None:
            return None
        jpeg, ts, kind = last
        ev = self.store.config.events
        snap = make_snapshot(jpeg, ev.snapshot_height, ev.snapshot_max_bytes)
        if snap is None:
            return None
        self._broadcast(transport.SNAPSHOT, (snap, ts))
        return {"bytes": len(snap), "ts": ts, "kind": kind,
                "topic": getattr(self.broker_link, "snapshot_topic", None)}

    # -- state ---------------------------------------------------------------------------
    def notify(self) -> None:
        """Something changed: publish state now (any thread)."""
        if not self._changed.is_set():
            self._changed.set()
            self.mailbox.wake()

    def viewers_report(self, worker: str, viewers: int, fps: list[float],
                       bytes_sent: int = 0, variants: dict | None = None) -> None:
        """A web worker's viewers and their fps (dispatcher thread, every second, and at
        once when a stream or variant gets its first viewer or loses its last).

        The command thread is the only writer of the reports: it replaces the mapping
        (copy on write) and never changes one that was handed out, so the state thread
        reads a whole snapshot without a lock. Silent workers are dropped here too."""
        before = self._viewers.get(worker, (0, None))[1]
        reports = self._fresh_viewers()
        reports[worker] = (time.monotonic(), viewers, tuple(fps), dict(variants or {}))
        self._viewers = reports
        self._bytes_sent = {**self._bytes_sent, worker: bytes_sent}  # kept: a counter
        self._push_demand(reports)
        if viewers != before:
            self.notify()

    def _fresh_viewers(self) -> dict:
        """The reports of workers heard from in the last VIEWER_FRESH_S (any thread)."""
        now = time.monotonic()
        return {w: v for w, v in self._viewers.items() if now - v[0] < VIEWER_FRESH_S}

    def _push_demand(self, reports: dict) -> None:
        """Who watches what, over all workers, to the encoder (node/encoder.py)."""
        variants: dict[str, int] = {}
        total = 0
        for v in reports.values():
            total += v[1]
            for key, n in (v[3] if len(v) > 3 else {}).items():
                variants[key] = variants.get(key, 0) + n
        self.pipeline.output.set_demand(total - sum(variants.values()), variants)

    def worker_reported(self, pid: int) -> bool:
        """Whether the web worker process `pid` (on this host) reported in the last 5 s."""
        return any(w.endswith(f":{pid}") for w in self._fresh_viewers())

    def viewer_summary(self) -> dict:
        """Viewers over the workers that reported lately (state thread; reads a snapshot
        of the reports and changes nothing but the encoder's demand)."""
        reports = self._viewers
        fresh = self._fresh_viewers()
        if len(fresh) != len(reports) and self.mailbox.owns():  # a worker went silent
            self._push_demand(fresh)
        fps = sorted(f for v in fresh.values() for f in v[2])
        return {"viewers": sum(v[1] for v in fresh.values()), "web_workers": len(fresh),
                "viewer_fps_min": fps[0] if fps else None,
                "viewer_fps_median": fps[len(fps) // 2] if fps else None}

    def info(self) -> dict:
        cfg = self.store.config
        base = (cfg.mqtt.public_url or self.web_url or "").rstrip("/")
        return {"node_id": cfg.node_id, "name": cfg.name, "version": __version__,
                "web_url": base + "/" if base else None,
                "stream_url": base + "/stream.mjpg" if base else None,
                "snapshot_url": base + "/snapshot.jpg" if base else None,
                # For dashboards (Home Assistant thumbnails): small variants, node/variants.py
                "thumbnail_url": base + "/snapshot.jpg?width=320" if base else None,
                "dashboard_stream_url": base + "/stream.mjpg?width=640&fps=5" if base else None,
                "commands": self.dispatcher.commands,
                "started": round(self._started_at, 3)}

    def state(self) -> dict:
        cfg = self.store.config
        s = self.pipeline.status()
        self.events.set_labels((s.get("module_status") or {}).get("labels") or ())
        s.update(self.viewer_summary())
        s.update({
            "node_id": cfg.node_id,
            "name": cfg.name,
            "version": __version__,
            "modules": self.registry.offered(cfg.pipeline.module),
            "uptime_s": round(time.time() - self._started_at, 1),
            "last_error": s.get("module_error") or s.get("module_last_error") or self.last_error,
            "commands": dict(self.dispatcher.counts),
            "mqtt": self.broker_link.status() if self.broker_link else {
                "enabled": False, "connected": False, "last_error": self._mqtt_note},
            "detections": self.events.state(),
            "health": self.health(),
            "rois_version": cfg.rois_version,
            "rois": cfg.rois,
            "bytes_sent": sum(self._bytes_sent.values()),
            "metrics": {"processing_seconds": self.pipeline.proc_hist.snapshot(),
                        "encode_seconds": self.pipeline.encode_hist.snapshot(),
                        "events": self.events.events_sent},
            "colours": {**{k: list(v) for k, v in DEFAULT_COLOURS.items()},
                        **{k: list(v) for k, v in cfg.colours.items()}},
            "time": time.time(),
        })
        return s

    def health(self) -> dict:
        """The contract's `health`: ok, and problems (dead or stalled parts from the
        supervisor, then degraded conditions: source lost, module failing or slow).
        `failing` names the dead or stalled parts (what makes /healthz 503); `parts` adds
        crash/restart counts per supervised part. Logged on change."""
        problems = self.supervisor.problems() + self.pipeline.problems()
        ok = not problems
        if ok != self._health_ok:
            self._health_ok = ok
            if ok:
                log.info("health: ok again")
            else:
                log.warning("health: %s", "; ".join(f"{p['part']}: {p['reason']}"
                                                      for p in problems))
        return {"ok": ok, "problems": problems,
                "failing": sorted({p["part"] for p in supervision.failing(problems)}),
                "parts": self.supervisor.status()}

    def publish_state(self) -> dict:
        """State to the web workers (always) and MQTT (when significant); returns it."""
        state = self.state()
        self._broadcast(transport.STATE, state, retain=True)
        return state

    def _state_loop(self) -> None:
        """The state thread's loop (run, and restarted after a crash, by the supervisor):
        the owner of the node's state. It runs every command (node/owner.py) and
        publishes the state on change and every STATE_PERIOD."""
        self.mailbox.attach()
        try:
            self._serve()
        finally:
            self.mailbox.detach()  # commands run inline until the supervisor restarts us

    def _serve(self) -> None:
        last_stats = time.monotonic()
        due = 0.0
        while not self._stop.is_set():
            beat()
            self.mailbox.serve(min(STATE_PERIOD, due - time.monotonic()))
            if self._stop.is_set():
                break
            if not self._changed.is_set() and time.monotonic() < due:
                continue
            self._changed.clear()
            due = time.monotonic() + STATE_PERIOD
            try:
                self.publish_state()
                if time.monotonic() - last_stats >= self.store.config.mqtt.stats_interval_s:
                    last_stats = time.monotonic()
                    self._broadcast(transport.STATS, self.stats())
            except Exception:
                log.exception("publishing state failed")

    def stats(self) -> dict:
        s = self.pipeline.status()
        return {"fps": s["fps"], "frames": s["frames"], "processing_ms": s["processing_ms"],
                "encode_ms": s["encode_ms"], "viewers": self.viewer_summary()["viewers"],
                "events": self.events.events_sent, "events_dropped": self.events.dropped,
                "commands": dict(self.dispatcher.counts), "time": time.time()}
