"""Tracks from per-frame detections: IoU matching (same label) so ids stay stable while an
object moves, confirmation over several detector runs, stationary objects, ROI counts.

A track also keeps its velocity, and a detection is matched against where the track
would be now as well as where it was last seen: when the detector runs less often (a
busy or small machine), a walker moves further between runs than its own width allows
for IoU, and would otherwise become a new object with a second `new` event.

Owned by the events thread (node/events.py's EventEngine), which alone calls it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from camnode.node.config import EventsConfig

IOU_MATCH = 0.2
ROI_OVERLAP = 0.3  # fraction of the object's box inside an ROI to count as "in" it
STILL_IOU = 0.85  # a box this similar to where the object last moved has not moved
PREDICT_MAX_S = 2.0  # a track's motion is extrapolated over at most this long


Box = tuple[float, float, float, float]  # left, top, right, bottom in percent


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


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
    out = {"label": str(det.get("label", "object"))[:64], "score": score,
           "box": tuple(round(v, 2) for v in box)}
    run = det.get("run")
    if isinstance(run, int) and not isinstance(run, bool):
        out["run"] = run
    excluded = det.get("exclude_rois")
    if isinstance(excluded, (list, tuple, set, frozenset)):
        out["exclude_rois"] = frozenset(str(r) for r in excluded)
    return out


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
    hits: int = 1  # detector runs that saw it
    last_run: int | None = None
    confirmed: bool = False  # `new` sent
    anchor: Box | None = None  # the box when it last moved
    moved_at: float = 0.0
    stationary: bool = False
    exclude: frozenset = frozenset()
    velocity: tuple[float, float] = (0.0, 0.0)  # of the box's centre, percent per second

    def predicted(self, ts: float) -> Box:
        """Where the box would be at `ts` if it kept its velocity since last seen."""
        dt = min(max(ts - self.last_seen, 0.0), PREDICT_MAX_S)
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        l, t, r, b = self.box
        return (l + dx, t + dy, r + dx, b + dy)

    def match_score(self, box: Box, ts: float) -> float:
        """IoU with where it was last seen or, when it moves, where it would be now."""
        score = iou(self.box, box)
        if self.velocity != (0.0, 0.0):
            score = max(score, iou(self.predicted(ts), box))
        return score

    def as_event(self, kind: str, node_id: str, end: float | None = None) -> dict:
        return {"type": kind, "id": self.id, "node_id": node_id, "label": self.label,
                "score": round(self.score, 3),
                "box": dict(zip(("left", "top", "right", "bottom"), self.box)),
                "rois": sorted(self.rois), "entered_rois": sorted(self.entered),
                "stationary": self.stationary,
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
        pairs = sorted(((t.match_score(d["box"], ts), tid, i) for tid, t in self.tracks.items()
                        for i, d in enumerate(dets) if t.label == d["label"]), reverse=True)
        used_t, used_d = set(), set()
        for score, tid, i in pairs:
            if score < IOU_MATCH or tid in used_t or i in used_d:
                continue
            used_t.add(tid)
            used_d.add(i)
            events += self._matched(self.tracks[tid], dets[i], ts)
        for i, d in enumerate(dets):
            if i in used_d:
                continue
            t = Track(next(self._ids), d["label"], d["score"], d["box"], ts, ts, ts,
                      last_run=d.get("run"), anchor=d["box"], moved_at=ts,
                      exclude=d.get("exclude_rois", frozenset()))
            t.rois = self._rois_of(t.box, t.exclude)
            t.entered = set(t.rois)
            self.tracks[t.id] = t
            if self._confirm_frames() <= 1:
                t.confirmed = True
                events.append(t.as_event("new", self.node_id))
        return events + self.expire(ts)

    def _confirm_frames(self) -> int:
        return int(getattr(self.cfg, "confirm_frames", 1))

    def _matched(self, t: Track, d: dict, ts: float) -> list[dict]:
        """Track `t` was seen again as `d` at `ts`."""
        dt = ts - t.last_seen
        if dt > 0:  # the centre's velocity, smoothed over runs (a detector's box jitters)
            (ox, oy), (nx, ny) = _centre(t.box), _centre(d["box"])
            vx, vy = (nx - ox) / dt, (ny - oy) / dt
            if t.hits > 1:
                vx, vy = (t.velocity[0] + vx) / 2, (t.velocity[1] + vy) / 2
            t.velocity = (vx, vy)
        t.box, t.score, t.last_seen = d["box"], d["score"], ts
        t.exclude = d.get("exclude_rois", frozenset())
        run = d.get("run")
        if run is None or run != t.last_run:
            t.hits += 1
        t.last_run = run
        rois = self._rois_of(t.box, t.exclude)
        changed_rois = rois != t.rois
        t.rois = rois
        t.entered |= rois
        changed_motion = False
        if t.anchor is None or iou(t.box, t.anchor) < STILL_IOU:
            t.anchor, t.moved_at = t.box, ts
            changed_motion = t.stationary
            t.stationary = False
        elif not t.stationary and ts - t.moved_at >= getattr(
                self.cfg, "stationary_after_s", math.inf):
            t.stationary = changed_motion = True
        if not t.confirmed:
            if t.hits < self._confirm_frames():
                return []
            t.confirmed = True
            t.last_update = ts
            return [t.as_event("new", self.node_id)]
        if changed_rois or changed_motion or (
                not t.stationary and ts - t.last_update >= self.cfg.update_interval_s):
            t.last_update = ts
            return [t.as_event("update", self.node_id)]
        return []

    def expire(self, now: float) -> list[dict]:
        """End tracks not seen for long enough; unconfirmed ones vanish without an event."""
        stationary_end = max(self.cfg.end_after_s,
                             getattr(self.cfg, "stationary_end_after_s", 0.0))
        ended = [t for t in self.tracks.values()
                 if now - t.last_seen > (stationary_end if t.stationary else self.cfg.end_after_s)]
        for t in ended:
            del self.tracks[t.id]
        return [t.as_event("end", self.node_id, end=t.last_seen) for t in ended if t.confirmed]

    def _rois_of(self, box: Box, exclude: frozenset = frozenset()) -> set:
        return {name for name, roi in self.rois.items()
                if name not in exclude and overlap(box, roi) >= ROI_OVERLAP}

    def confirmed(self) -> list[Track]:
        return [t for t in self.tracks.values() if t.confirmed]

    def roi_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in self.rois}
        for t in self.confirmed():
            for name in t.rois:
                if name in counts:
                    counts[name] += 1
        return counts

    def roi_label_counts(self, labels) -> dict[tuple[str, str], int]:
        """{(roi, label): confirmed tracks of that label in that ROI}, for `labels` and
        every label being tracked now."""
        every = set(labels) | {t.label for t in self.confirmed()}
        counts = {(name, label): 0 for name in self.rois for label in every}
        for t in self.confirmed():
            for name in t.rois:
                if (name, t.label) in counts:
                    counts[(name, t.label)] += 1
        return counts
