"""From per-frame detections to tracks, events, ROI occupancy and motion.

The pipeline thread hands each processed frame's detections (plus the frame's JPEG)
to `EventEngine.submit`, which never blocks: a bounded queue, drops counted. The events
thread matches detections to tracks (node/tracker.py: IoU, same label), so ids stay
stable while an object moves, and emits `new` / `update` (at most once per `update_interval_s` per
track) / `end` events, per-ROI occupancy and counts (with an off-delay against
flapping) and motion ON/OFF. Outputs go to the sinks (MQTT bridge, ZeroMQ PUB) from
this thread.

Events worth automating on: a track is reported (`new`) only once `confirm_frames`
detector runs have seen it, so a one-frame ghost never fires; a track whose box has not
moved for `stationary_after_s` turns stationary (one `update` saying so, then none until
it moves) and survives `stationary_end_after_s` of missed detections, so a parked car
does not fire again and again. Occupancy and counts are kept per ROI and, for the
labels a module tracks (`set_labels`), per ROI and label.

A detection from a module is a dict: `label`, optional `score` (0..1), and `box` as
pixels `(x1, y1, x2, y2)` or `box_pct` as `(left, top, right, bottom)` in percent.
Optional: `run` (an id of the detector run that produced it: a module that repeats its
newest result on every frame sets it, and a track's frames are counted by distinct
runs) and `exclude_rois` (ROI names this detection must not count in).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Protocol

import numpy as np

from camnode.node.config import EventsConfig
from camnode.node.supervisor import Supervisor, beat
from camnode.node.snapshot import SNAPSHOT_BOX, draw_boxes, make_snapshot  # noqa: F401 (re-exported)
from camnode.node.tracker import (  # noqa: F401 (re-exported: tests and modules use them)
    IOU_MATCH, ROI_OVERLAP, STILL_IOU, Box, Track, Tracker, iou, normalise, overlap)

log = logging.getLogger(__name__)



class EventSink(Protocol):
    def event(self, event: dict) -> None: ...
    def occupancy(self, roi: str, occupied: bool, count: int) -> None: ...
    def motion(self, on: bool) -> None: ...  # `tracking` changed: the `motion` topic
    def snapshot(self, jpeg: bytes, ts: float) -> None: ...
    # Optional (a sink without it is skipped): per ROI and label.
    # def label_occupancy(self, roi: str, label: str, occupied: bool, count: int) -> None


@dataclass(frozen=True)
class Outputs:
    """What the event engine shows the rest of the node: occupancy per ROI and per
    (ROI, label) as (occupied, count), `tracking` (some object of any label is tracked, or
    was within occupancy_off_delay_s: what the MQTT `motion` topic says) and the number
    of tracks. Built by the events thread, never changed after."""
    occupied: Mapping[str, tuple[bool, int]] = field(
        default_factory=lambda: MappingProxyType({}))
    label_occupied: Mapping[tuple[str, str], tuple[bool, int]] = field(
        default_factory=lambda: MappingProxyType({}))
    tracking: bool = False
    tracks: int = 0

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Outputs) and dict(self.occupied) == dict(other.occupied)
                and dict(self.label_occupied) == dict(other.label_occupied)
                and (self.tracking, self.tracks) == (other.tracking, other.tracks))

    __hash__ = None  # type: ignore[assignment]


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
        # ROI edits reach the events thread through its own queue, in order (never lost).
        self._roi_edits: queue.SimpleQueue = queue.SimpleQueue()
        self._labels: tuple[str, ...] = ()
        # Owned by the events thread; other threads read `outputs` (an immutable snapshot
        # replaced, never changed, after every step that changed something).
        self._occupied: dict[str, tuple[bool, int]] = {}
        self._last_in: dict[str, float] = {}
        self._label_occupied: dict[tuple[str, str], tuple[bool, int]] = {}
        self._label_last_in: dict[tuple[str, str], float] = {}
        self._tracking = False
        self.outputs = Outputs()
        self._last_tracked = 0.0
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
        """New ROIs (the command thread): applied by the events thread at its next step,
        edits in the order they were made. Never blocks."""
        self._roi_edits.put({k: dict(v) for k, v in rois.items()})

    # Read-only views of the newest outputs (any thread; never changed once read).
    @property
    def occupied(self) -> Mapping[str, tuple[bool, int]]:
        return self.outputs.occupied

    @property
    def label_occupied(self) -> Mapping[tuple[str, str], tuple[bool, int]]:
        return self.outputs.label_occupied

    @property
    def tracking(self) -> bool:
        return self.outputs.tracking

    def set_labels(self, labels) -> None:
        """The labels the current module tracks (from its `status()["labels"]`): each
        gets occupancy and a count per ROI, OFF/0 until seen. Any thread."""
        self._labels = tuple(sorted({str(x)[:64] for x in labels or ()}))

    def labels_of(self, roi: str) -> list[str]:
        """Labels with per-label topics for `roi` (tracked now or seen), any thread."""
        seen = {label for (name, label) in self.outputs.label_occupied if name == roi}
        return sorted(seen | set(self._labels))

    def submit(self, detections: list, ts: float, jpeg: bytes | np.ndarray | None, width: int,
               height: int) -> None:
        """Called by the pipeline thread for every processed frame; never blocks. `jpeg`
        is the frame's pixels when it was not encoded (make_snapshot takes either)."""
        try:
            self._queue.put_nowait((detections, ts, jpeg, width, height))
        except queue.Full:
            self.dropped += 1

    def state(self) -> dict:
        """The state's `detections` (any thread, from the newest `outputs`). `tracking`:
        some object (any label) is tracked, held for occupancy_off_delay_s; published as
        the MQTT `motion` topic, whose name is Home Assistant's contract."""
        out = self.outputs
        labels: dict[str, dict] = {}
        for (roi, label), (occupied, count) in sorted(out.label_occupied.items()):
            labels.setdefault(roi, {})[label] = {"occupied": occupied, "count": count}
        return {"tracking": out.tracking, "tracks": out.tracks,
                "occupancy": {k: {"occupied": v[0], "count": v[1]}
                              for k, v in out.occupied.items()},
                "label_occupancy": labels}

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
        while True:
            try:
                rois = self._roi_edits.get_nowait()
            except queue.Empty:
                break
            self.tracker.rois = rois
            for gone in set(self._occupied) - set(rois):
                del self._occupied[gone]
                self._last_in.pop(gone, None)
            for key in [k for k in self._label_occupied if k[0] not in rois]:
                del self._label_occupied[key]
                self._label_last_in.pop(key, None)
        if item is None:
            events, now, jpeg = self.tracker.expire(self._clock()), self._clock(), None
        else:
            raw, now, jpeg, w, h = item
            dets = [d for d in (normalise(x, w, h) for x in raw) if d]
            events = self.tracker.update(dets, now)
        for ev in events:
            self._emit("event", ev)
        new = [e for e in events if e["type"] == "new"]
        if jpeg is not None and new and now - self._last_snapshot >= 1.0:
            self._last_snapshot = now
            snap = make_snapshot(jpeg, self.cfg.snapshot_height, self.cfg.snapshot_max_bytes,
                                 [(e["box"], e["label"]) for e in new])
            if snap:
                self._emit("snapshot", snap, now)
        self._update_occupancy(now)
        self._update_label_occupancy(now)
        self._update_tracking(now)
        self._publish_outputs()

    def _publish_outputs(self) -> None:
        """Replace `outputs` when something changed (one reference assignment: readers
        see the old snapshot or the new one, whole)."""
        out = Outputs(MappingProxyType(dict(self._occupied)),
                      MappingProxyType(dict(self._label_occupied)), self._tracking,
                      len(self.tracker.confirmed()))
        if out != self.outputs:
            self.outputs = out

    def _update_occupancy(self, now: float) -> None:
        for name, count in self.tracker.roi_counts().items():
            if count:
                self._last_in[name] = now
            held = now - self._last_in.get(name, -1e18) < self.cfg.occupancy_off_delay_s
            occupied = count > 0 or held
            shown_count = count
            if self._occupied.get(name) != (occupied, shown_count):
                self._occupied[name] = (occupied, shown_count)
                self._emit("occupancy", name, occupied, shown_count)

    def _update_label_occupancy(self, now: float) -> None:
        for key, count in self.tracker.roi_label_counts(self._labels).items():
            if count:
                self._label_last_in[key] = now
            held = now - self._label_last_in.get(key, -1e18) < self.cfg.occupancy_off_delay_s
            value = (count > 0 or held, count)
            if self._label_occupied.get(key) != value:
                self._label_occupied[key] = value
                self._emit("label_occupancy", key[0], key[1], *value)

    def _update_tracking(self, now: float) -> None:
        """Anything tracked, held for the off-delay; sinks publish it as `motion`."""
        tracked = bool(self.tracker.confirmed())
        if tracked:
            self._last_tracked = now
        on = tracked or now - self._last_tracked < self.cfg.occupancy_off_delay_s
        if on != self._tracking:
            self._tracking = on
            self._emit("motion", on)

    def _emit(self, what: str, *args) -> None:
        if what == "event":
            self.events_sent += 1
        for sink in self.sinks:
            method = getattr(sink, what, None)
            if method is None:
                continue  # an optional output this sink does not take
            try:
                method(*args)
            except Exception:
                log.exception("event sink %s.%s failed", type(sink).__name__, what)

