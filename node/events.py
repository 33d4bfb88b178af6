"""From per-frame detections to tracks, events, ROI occupancy and motion.

The pipeline thread hands each processed frame's detections (plus the frame's JPEG)
to `EventEngine.submit`, which never blocks: a bounded queue, drops counted. The events
thread matches detections to tracks (IoU, same label), so ids stay stable while an
object moves, and emits `new` / `update` (at most once per `update_interval_s` per
track) / `end` events, per-ROI occupancy and counts (with an off-delay against
flapping) and motion ON/OFF. Outputs go to the sinks (MQTT bridge, ZeroMQ PUB) from
this thread.

A detection from a module is a dict: `label`, optional `score` (0..1), and `box` as
pixels `(x1, y1, x2, y2)` or `box_pct` as `(left, top, right, bottom)` in percent.
"""

from __future__ import annotations

import itertools
import math
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import cv2
import numpy as np

from node.config import EventsConfig
from node.supervisor import Supervisor, beat

log = logging.getLogger(__name__)

IOU_MATCH = 0.2
ROI_OVERLAP = 0.3  # fraction of the object's box inside an ROI to count as "in" it


class EventSink(Protocol):
    def event(self, event: dict) -> None: ...
    def occupancy(self, roi: str, occupied: bool, count: int) -> None: ...
    def motion(self, on: bool) -> None: ...
    def snapshot(self, jpeg: bytes, ts: float) -> None: ...


Box = tuple[float, float, float, float]  # left, top, right, bottom in percent


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def overlap(box: Box, roi: dict) -> float:
    """Fraction of `box` inside `roi` (0..1)."""
    ix = max(0.0, min(box[2], roi["right"]) - max(box[0], roi["left"]))
    iy = max(0.0, min(box[3], roi["bottom"]) - max(box[1], roi["top"]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return ix * iy / area if area > 0 else 0.0


def normalise(det: object, width: int, height: int) -> dict | None:
    """A module's detection as {label, score, box (percent)}; None if unusable."""
    if not isinstance(det, dict):
        return None
    try:
        raw = det["box_pct"] if "box_pct" in det else det["box"]
        if not isinstance(raw, (list, tuple, np.ndarray)):
            return None
        coords = [float(v) for v in raw]
        if len(coords) != 4 or not all(math.isfinite(v) for v in coords):
            return None
        if "box_pct" in det:
            l, t, r, b = coords
        else:
            x1, y1, x2, y2 = coords
            l, t, r, b = x1 * 100 / width, y1 * 100 / height, x2 * 100 / width, y2 * 100 / height
        box = (max(0.0, min(l, r)), max(0.0, min(t, b)), min(100.0, max(l, r)),
               min(100.0, max(t, b)))
        score = float(det.get("score", 1.0))
    except (KeyError, TypeError, ValueError):
        return None
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    return {"label": str(det.get("label", "object"))[:64], "score": score,
            "box": tuple(round(v, 2) for v in box)}


@dataclass
class Track:
    id: int
    label: str
    score: float
    box: Box
    start: float
    last_seen: float
    last_update: float
    rois: set = field(default_factory=set)
    entered: set = field(default_factory=set)

    def as_event(self, kind: str, node_id: str, end: float | None = None) -> dict:
        return {"type": kind, "id": self.id, "node_id": node_id, "label": self.label,
                "score": round(self.score, 3),
                "box": dict(zip(("left", "top", "right", "bottom"), self.box)),
                "rois": sorted(self.rois), "entered_rois": sorted(self.entered),
                "start": round(self.start, 3), "end": round(end, 3) if end is not None else None}


class Tracker:
    """Greedy IoU matching of detections to tracks. Pure logic, one thread at a time."""

    def __init__(self, cfg: EventsConfig, node_id: str = ""):
        self.cfg = cfg
        self.node_id = node_id
        self.tracks: dict[int, Track] = {}
        self._ids = itertools.count(1)
        self.rois: dict[str, dict] = {}

    def update(self, detections: list[dict], ts: float) -> list[dict]:
        """Feed one frame's normalised detections; returns the events it causes."""
        events = []
        dets = [d for d in detections if d["score"] >= self.cfg.min_score]
        pairs = sorted(((iou(t.box, d["box"]), tid, i) for tid, t in self.tracks.items()
                        for i, d in enumerate(dets) if t.label == d["label"]), reverse=True)
        used_t, used_d = set(), set()
        for score, tid, i in pairs:
            if score < IOU_MATCH or tid in used_t or i in used_d:
                continue
            used_t.add(tid)
            used_d.add(i)
            t, d = self.tracks[tid], dets[i]
            t.box, t.score, t.last_seen = d["box"], d["score"], ts
            rois = self._rois_of(t.box)
            changed_rois = rois != t.rois
            t.rois = rois
            t.entered |= rois
            if changed_rois or ts - t.last_update >= self.cfg.update_interval_s:
                t.last_update = ts
                events.append(t.as_event("update", self.node_id))
        for i, d in enumerate(dets):
            if i in used_d:
                continue
            t = Track(next(self._ids), d["label"], d["score"], d["box"], ts, ts, ts)
            t.rois = self._rois_of(t.box)
            t.entered = set(t.rois)
            self.tracks[t.id] = t
            events.append(t.as_event("new", self.node_id))
        return events + self.expire(ts)

    def expire(self, now: float) -> list[dict]:
        ended = [t for t in self.tracks.values() if now - t.last_seen > self.cfg.end_after_s]
        for t in ended:
            del self.tracks[t.id]
        return [t.as_event("end", self.node_id, end=t.last_seen) for t in ended]

    def _rois_of(self, box: Box) -> set:
        return {name for name, roi in self.rois.items() if overlap(box, roi) >= ROI_OVERLAP}

    def roi_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in self.rois}
        for t in self.tracks.values():
            for name in t.rois:
                if name in counts:
                    counts[name] += 1
        return counts


class EventEngine:
    """Owns the events thread, the tracker and the debounced occupancy/motion states."""

    def __init__(self, cfg: EventsConfig, node_id: str, sinks: list[EventSink] | None = None,
                 clock: Callable[[], float] = time.time, supervisor: Supervisor | None = None):
        self.cfg = cfg
        self.supervisor = supervisor or Supervisor()  # runs the events thread (part `events`)
        self.tracker = Tracker(cfg, node_id)
        self.sinks: list[EventSink] = list(sinks or [])
        self._clock = clock
        self._queue: queue.Queue = queue.Queue(maxsize=64)
        self._stop = threading.Event()
        self._part = None
        self._pending_rois: dict | None = None
        self.occupied: dict[str, tuple[bool, int]] = {}
        self._last_in: dict[str, float] = {}
        self.motion_on = False
        self._last_motion = 0.0
        self._last_snapshot = 0.0
        self.dropped = 0
        self.events_sent = 0

    # -- any thread ----------------------------------------------------------------------
    def start(self) -> None:
        if self._part is not None and self._part.alive:
            return
        self._stop.clear()
        self._part = self.supervisor.spawn("events", self._run, self._stop)

    def stop(self) -> None:
        self._stop.set()
        if self._part is not None:
            self._part.join(5)
            self._part = None

    def set_rois(self, rois: dict) -> None:
        self._pending_rois = dict(rois)

    def submit(self, detections: list, ts: float, jpeg: bytes | None, width: int,
               height: int) -> None:
        """Called by the pipeline thread for every processed frame; never blocks."""
        try:
            self._queue.put_nowait((detections, ts, jpeg, width, height))
        except queue.Full:
            self.dropped += 1

    def state(self) -> dict:
        return {"motion": self.motion_on, "tracks": len(self.tracker.tracks),
                "occupancy": {k: {"occupied": v[0], "count": v[1]}
                              for k, v in self.occupied.items()}}

    # -- events thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            beat()
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                item = None
            try:
                self._step(item)
            except Exception:
                log.exception("event processing failed")

    def _step(self, item) -> None:
        if self._pending_rois is not None:
            rois, self._pending_rois = self._pending_rois, None
            self.tracker.rois = rois
            for gone in set(self.occupied) - set(rois):
                del self.occupied[gone]
                self._last_in.pop(gone, None)
        if item is None:
            events, now, jpeg = self.tracker.expire(self._clock()), self._clock(), None
        else:
            raw, now, jpeg, w, h = item
            dets = [d for d in (normalise(x, w, h) for x in raw) if d]
            events = self.tracker.update(dets, now)
        for ev in events:
            self._emit("event", ev)
        if jpeg is not None and any(e["type"] == "new" for e in events) \
                and now - self._last_snapshot >= 1.0:
            self._last_snapshot = now
            snap = make_snapshot(jpeg, self.cfg.snapshot_height, self.cfg.snapshot_max_bytes)
            if snap:
                self._emit("snapshot", snap, now)
        self._update_occupancy(now)
        self._update_motion(now)

    def _update_occupancy(self, now: float) -> None:
        for name, count in self.tracker.roi_counts().items():
            if count:
                self._last_in[name] = now
            held = now - self._last_in.get(name, -1e18) < self.cfg.occupancy_off_delay_s
            occupied = count > 0 or held
            shown_count = count
            if self.occupied.get(name) != (occupied, shown_count):
                self.occupied[name] = (occupied, shown_count)
                self._emit("occupancy", name, occupied, shown_count)

    def _update_motion(self, now: float) -> None:
        if self.tracker.tracks:
            self._last_motion = now
        on = bool(self.tracker.tracks) or now - self._last_motion < self.cfg.occupancy_off_delay_s
        if on != self.motion_on:
            self.motion_on = on
            self._emit("motion", on)

    def _emit(self, what: str, *args) -> None:
        if what == "event":
            self.events_sent += 1
        for sink in self.sinks:
            try:
                getattr(sink, what)(*args)
            except Exception:
                log.exception("event sink %s.%s failed", type(sink).__name__, what)


def make_snapshot(jpeg: bytes, height: int, max_bytes: int) -> bytes | None:
    """Scale a frame's JPEG to `height` and re-encode it under `max_bytes`."""
    if not jpeg:
        return None
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    if h > height:
        img = cv2.resize(img, (max(1, round(w * height / h)), height),
                         interpolation=cv2.INTER_AREA)
    for quality in (85, 70, 55, 40, 25):
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buf) <= max_bytes:
            return buf.tobytes()
    return None
