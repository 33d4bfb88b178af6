"""Unit tests for node.events: normalise, iou/overlap, Tracker and EventEngine.

EventEngine is driven through `_step` with explicit timestamps and a fake clock (its
thread is never started), so nothing here sleeps.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from camnode.node.config import EventsConfig
from camnode.node.events import EventEngine, Tracker, iou, make_snapshot, normalise, overlap

T0 = 1000.0  # frame timestamps are wall-clock seconds; any large value will do

DOOR = {"left": 0, "top": 0, "right": 50, "bottom": 100}   # left half of the frame
YARD = {"left": 50, "top": 0, "right": 100, "bottom": 100}  # right half


def cfg(**overrides) -> EventsConfig:
    # confirm_frames=1: these tests are about tracking, occupancy and sinks, so a track
    # is reported on its first frame; tests/unit/test_events_confirm.py covers confirmation.
    base = dict(update_interval_s=1.0, end_after_s=1.5, occupancy_off_delay_s=3.0,
                min_score=0.0, snapshot_height=120, snapshot_max_bytes=60_000,
                confirm_frames=1)
    return EventsConfig(**{**base, **overrides})


def det(left, top, right, bottom, label="person", score=0.9) -> dict:
    """A detection as a module reports it, in percent."""
    return {"label": label, "score": score, "box_pct": (left, top, right, bottom)}


def ndet(left, top, right, bottom, label="person", score=0.9) -> dict:
    """A normalised detection, as Tracker.update takes it."""
    return {"label": label, "score": score, "box": (left, top, right, bottom)}


class FakeClock:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class RecordingSink:
    def __init__(self):
        self.calls: list[tuple] = []

    def event(self, event):
        self.calls.append(("event", event))

    def occupancy(self, roi, occupied, count):
        self.calls.append(("occupancy", roi, occupied, count))

    def motion(self, on):
        self.calls.append(("motion", on))

    def snapshot(self, jpeg, ts):
        self.calls.append(("snapshot", jpeg, ts))

    def of(self, kind: str) -> list[tuple]:
        return [c[1:] for c in self.calls if c[0] == kind]

    def events(self) -> list[dict]:
        return [c[0] for c in self.of("event")]


class BrokenSink:
    def __init__(self):
        self.attempts = 0

    def _boom(self, *args):
        self.attempts += 1
        raise RuntimeError("sink down")

    event = occupancy = motion = snapshot = _boom


def frame(engine: EventEngine, ts: float, *dets, jpeg=None, w=640, h=480) -> None:
    engine._step((list(dets), ts, jpeg, w, h))


def tick(engine: EventEngine, clock: FakeClock, ts: float) -> None:
    clock.t = ts
    engine._step(None)


def jpeg_image(width=640, height=480) -> bytes:
    img = np.zeros((height, width, 3), np.uint8)
    img[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    img[:, :, 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    cv2.rectangle(img, (100, 100), (300, 300), (0, 0, 255), -1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sink():
    return RecordingSink()


@pytest.fixture
def engine(clock, sink):
    e = EventEngine(cfg(), "porch", [sink], clock=clock)
    e.set_rois({"door": DOOR})
    return e


# -- normalise -----------------------------------------------------------------------------
def test_normalise_converts_pixel_boxes_to_percent():
    d = normalise({"label": "person", "score": 0.75, "box": (64, 48, 320, 240)}, 640, 480)
    assert d == {"label": "person", "score": 0.75, "box": (10.0, 10.0, 50.0, 50.0)}


def test_normalise_rounds_percent_to_two_decimals():
    d = normalise({"label": "cat", "box": (1, 1, 2, 2)}, 3, 3)
    assert d["box"] == (33.33, 33.33, 66.67, 66.67)


def test_normalise_passes_box_pct_through():
    d = normalise({"label": "car", "score": 0.5, "box_pct": [12.5, 20, 40, 60.25]}, 640, 480)
    assert d == {"label": "car", "score": 0.5, "box": (12.5, 20.0, 40.0, 60.25)}


def test_normalise_box_pct_wins_over_pixel_box():
    d = normalise({"box": (0, 0, 640, 480), "box_pct": (10, 10, 20, 20)}, 640, 480)
    assert d["box"] == (10.0, 10.0, 20.0, 20.0)


def test_normalise_defaults_label_object_and_score_one():
    assert normalise({"box_pct": (1, 2, 3, 4)}, 10, 10) == \
        {"label": "object", "score": 1.0, "box": (1.0, 2.0, 3.0, 4.0)}


def test_normalise_truncates_long_labels_and_stringifies():
    assert normalise(det(1, 1, 2, 2, label="x" * 100), 1, 1)["label"] == "x" * 64
    assert normalise(det(1, 1, 2, 2, label=7), 1, 1)["label"] == "7"


def test_normalise_clamps_to_the_frame():
    assert normalise(det(-10, -5, 120, 101), 1, 1)["box"] == (0.0, 0.0, 100.0, 100.0)
    d = normalise({"box": (-64, -48, 700, 500)}, 640, 480)
    assert d["box"] == (0.0, 0.0, 100.0, 100.0)


def test_normalise_orders_swapped_corners():
    assert normalise(det(50, 60, 10, 20), 1, 1)["box"] == (10.0, 20.0, 50.0, 60.0)
    assert normalise({"box": (320, 240, 64, 48)}, 640, 480)["box"] == (10.0, 10.0, 50.0, 50.0)


@pytest.mark.parametrize("raw", [
    {"label": "person"},                                  # no box
    {"box": (1, 2, 3)},                                   # too few values
    {"box": (1, 2, 3, 4, 5)},                             # too many
    {"box": None},
    {"box": ("a", 1, 2, 3)},
    {"box_pct": (1, 2, 3, "x")},
    {"box_pct": 5},
    {"box_pct": (1, 2, 3, 4), "score": "high"},
    {"box_pct": (1, 2, 3, 4), "score": None},
    {"box_pct": (10, 10, 10, 50)},                        # zero width
    {"box_pct": (10, 10, 50, 10)},                        # zero height
    {"box_pct": (120, 10, 150, 50)},                      # entirely right of the frame
    {"box_pct": (-30, 10, -5, 50)},                       # entirely left of the frame
])
def test_normalise_returns_none_for_unusable_detections(raw):
    assert normalise(raw, 640, 480) is None


@pytest.mark.parametrize("raw", [None, "person", 42, [1, 2, 3, 4], ("box", 1), object()])
def test_normalise_returns_none_for_non_dict(raw):
    assert normalise(raw, 640, 480) is None


@pytest.mark.parametrize("box", [(math.nan, 10, 50, 50), (10, math.nan, 50, 50)])
def test_normalise_rejects_nan_left_or_top(box):
    assert normalise({"box_pct": box}, 640, 480) is None


@pytest.mark.parametrize("box", [(10, 10, math.nan, 50), (10, 10, 50, math.nan)])
def test_normalise_rejects_nan_right_or_bottom(box):
    assert normalise({"box_pct": box}, 640, 480) is None


# -- iou / overlap -------------------------------------------------------------------------
def test_iou_of_identical_boxes_is_one():
    assert iou((10, 10, 30, 30), (10, 10, 30, 30)) == pytest.approx(1.0)


def test_iou_of_disjoint_and_touching_boxes_is_zero():
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_iou_partial_overlap_value():
    # intersection 5x10=50, union 100+100-50=150
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    # a box inside another: 25 / 100
    assert iou((0, 0, 10, 10), (0, 0, 5, 5)) == pytest.approx(0.25)
    assert iou((0, 0, 5, 5), (0, 0, 10, 10)) == pytest.approx(0.25)


def test_iou_of_degenerate_boxes_is_zero():
    assert iou((5, 5, 5, 5), (5, 5, 5, 5)) == 0.0


def test_overlap_is_fraction_of_the_box_inside_the_roi():
    roi = {"left": 0, "top": 0, "right": 50, "bottom": 100}
    assert overlap((10, 10, 30, 30), roi) == pytest.approx(1.0)
    assert overlap((40, 10, 60, 30), roi) == pytest.approx(0.5)
    assert overlap((60, 10, 80, 30), roi) == 0.0
    # small ROI inside a big box: fraction of the box, not of the ROI
    assert overlap((0, 0, 100, 100), {"left": 0, "top": 0, "right": 10, "bottom": 10}) == \
        pytest.approx(0.01)
    assert overlap((5, 5, 5, 5), roi) == 0.0


# -- Tracker -------------------------------------------------------------------------------
def test_object_moving_a_few_percent_per_frame_keeps_its_id_over_20_frames():
    tr = Tracker(cfg(), "porch")
    all_events = []
    for i in range(20):
        x = 5 + 3 * i
        all_events += tr.update([ndet(x, 20, x + 20, 60)], T0 + i * 0.1)
    assert {e["id"] for e in all_events} == {1}
    assert all_events[0]["type"] == "new"
    assert all(e["type"] == "update" for e in all_events[1:])
    assert list(tr.tracks) == [1]
    assert tr.tracks[1].box == (62, 20, 82, 60)


def test_a_walker_seen_less_often_than_its_width_allows_keeps_its_id():
    """A walker (15 % wide, 25 %/s) seen every 0.1 s, then every 0.5 s when the detector
    slows down (a busy machine): it moves 12.5 % between runs, IoU 0.09 with where it
    was. Matching where it would be now keeps one object and one `new`."""
    tr = Tracker(cfg(), "porch")
    events, ts, x = [], T0, 80.0
    for step in [0.1] * 5 + [0.5] * 5:
        events += tr.update([ndet(x, 20, x + 15, 60)], ts)
        ts, x = ts + step, x - 25 * step
    assert [e["type"] for e in events].count("new") == 1, events
    assert {e["id"] for e in events} == {1}


def test_prediction_does_not_join_two_people_walking_apart():
    tr = Tracker(cfg(), "porch")
    for i in range(4):  # one walks left, another enters later on the right, walking right
        tr.update([ndet(40 - 3 * i, 20, 50 - 3 * i, 60)], T0 + i * 0.1)
    evs = tr.update([ndet(28, 20, 38, 60), ndet(70, 20, 80, 60)], T0 + 0.4)
    assert sorted(tr.tracks) == [1, 2] and tr.tracks[1].box == (28, 20, 38, 60)
    assert [e["type"] for e in evs if e["id"] == 2] in ([], ["new"])


def test_two_objects_far_apart_get_two_ids():
    tr = Tracker(cfg(), "porch")
    evs = tr.update([ndet(5, 5, 20, 40), ndet(70, 50, 90, 95)], T0)
    assert [e["type"] for e in evs] == ["new", "new"]
    assert {e["id"] for e in evs} == {1, 2}
    # and they keep them while both move a little
    for i in range(1, 10):
        tr.update([ndet(5 + i, 5, 20 + i, 40), ndet(70 - i, 50, 90 - i, 95)], T0 + i * 0.1)
    assert sorted(tr.tracks) == [1, 2]
    assert tr.tracks[1].box == (14, 5, 29, 40)
    assert tr.tracks[2].box == (61, 50, 81, 95)


def test_a_detection_with_another_label_does_not_continue_a_track():
    tr = Tracker(cfg(), "porch")
    (first,) = tr.update([ndet(10, 10, 40, 60, label="person")], T0)
    evs = tr.update([ndet(10, 10, 40, 60, label="car")], T0 + 0.1)
    assert [(e["type"], e["id"], e["label"]) for e in evs] == [("new", 2, "car")]
    assert first["id"] == 1
    assert tr.tracks[1].label == "person" and tr.tracks[1].last_seen == T0


def test_detections_below_min_score_are_ignored():
    tr = Tracker(cfg(min_score=0.5), "porch")
    assert tr.update([ndet(10, 10, 40, 60, score=0.49)], T0) == []
    assert tr.tracks == {}
    assert [e["type"] for e in tr.update([ndet(10, 10, 40, 60, score=0.5)], T0)] == ["new"]


def test_update_events_at_most_once_per_update_interval_per_track():
    tr = Tracker(cfg(update_interval_s=1.0), "porch")
    kinds = []
    for i in range(13):  # T0 .. T0+3.0 every 0.25 s, standing still, no ROI changes
        ts = T0 + i * 0.25
        kinds += [(e["type"], ts) for e in tr.update([ndet(10, 10, 40, 60)], ts)]
    assert kinds == [("new", T0), ("update", T0 + 1.0), ("update", T0 + 2.0),
                     ("update", T0 + 3.0)]


def test_update_interval_is_per_track():
    tr = Tracker(cfg(update_interval_s=1.0), "porch")
    tr.update([ndet(10, 10, 30, 40)], T0)
    tr.update([ndet(10, 10, 30, 40), ndet(60, 60, 80, 90)], T0 + 0.5)
    evs = tr.update([ndet(10, 10, 30, 40), ndet(60, 60, 80, 90)], T0 + 1.0)
    assert [(e["type"], e["id"]) for e in evs] == [("update", 1)]
    evs = tr.update([ndet(10, 10, 30, 40), ndet(60, 60, 80, 90)], T0 + 1.5)
    assert [(e["type"], e["id"]) for e in evs] == [("update", 2)]


def test_roi_change_triggers_an_update_at_once():
    tr = Tracker(cfg(update_interval_s=10.0), "porch")
    tr.rois = {"door": DOOR}
    (new,) = tr.update([ndet(60, 10, 80, 50)], T0)
    assert new["rois"] == [] and new["entered_rois"] == []
    # Walking left 4 % a frame; the interval (10 s) never elapses in this test.
    for i, x in enumerate((56, 52, 48), start=1):           # overlap with door < 30 %
        assert tr.update([ndet(x, 10, x + 20, 50)], T0 + i * 0.1) == []
    (upd,) = tr.update([ndet(44, 10, 64, 50)], T0 + 0.4)     # 30 % inside door
    assert upd["type"] == "update" and upd["id"] == new["id"]
    assert upd["rois"] == ["door"] and upd["entered_rois"] == ["door"]
    assert tr.update([ndet(43, 10, 63, 50)], T0 + 0.5) == []  # still in door
    (left,) = tr.update([ndet(47, 10, 67, 50)], T0 + 0.6)     # 15 %: out again
    assert left["type"] == "update" and left["id"] == new["id"]
    assert left["rois"] == [] and left["entered_rois"] == ["door"]


def test_track_not_seen_for_end_after_s_ends_with_start_end_and_entered_rois():
    tr = Tracker(cfg(end_after_s=1.5), "porch")
    tr.rois = {"door": DOOR, "yard": YARD}
    for i in range(11):  # 10..30 (door) -> 40..60 (both) -> 60..80 (yard), 5 % a frame
        x = 10 + 5 * i
        tr.update([ndet(x, 10, x + 20, 50)], T0 + i * 0.125)
    last_seen = T0 + 10 * 0.125
    assert list(tr.tracks) == [1]
    assert tr.update([], last_seen + 1.0) == []
    assert tr.update([], last_seen + 1.5) == []               # exactly end_after_s: not yet
    evs = tr.update([], last_seen + 1.625)
    assert len(evs) == 1
    assert evs[0] == {"type": "end", "id": 1, "node_id": "porch", "label": "person",
                      "score": 0.9, "box": {"left": 60, "top": 10, "right": 80, "bottom": 50},
                      "rois": ["yard"], "entered_rois": ["door", "yard"], "stationary": False,
                      "start": T0, "end": last_seen}
    assert tr.tracks == {}


def test_expire_alone_ends_stale_tracks():
    tr = Tracker(cfg(end_after_s=1.5), "porch")
    tr.update([ndet(10, 10, 30, 50), ndet(60, 60, 90, 90, label="car")], T0)
    tr.update([ndet(10, 10, 30, 50)], T0 + 1.0)
    ended = tr.expire(T0 + 1.75)
    assert [(e["type"], e["label"]) for e in ended] == [("end", "car")]
    assert list(tr.tracks) == [1]


def test_end_event_keeps_an_end_time_of_zero():
    tr = Tracker(cfg(end_after_s=1.5), "porch")
    tr.update([ndet(10, 10, 30, 50)], 0.0)
    (end,) = tr.expire(2.0)
    assert end["end"] == 0.0


def test_roi_counts_count_tracks_per_roi():
    tr = Tracker(cfg(), "porch")
    tr.rois = {"door": DOOR, "yard": YARD}
    tr.update([ndet(5, 5, 20, 40), ndet(25, 50, 45, 90), ndet(70, 10, 90, 50)], T0)
    assert tr.roi_counts() == {"door": 2, "yard": 1}


# -- EventEngine: occupancy ------------------------------------------------------------------
def test_occupancy_on_with_count_one_when_a_detection_is_in_an_roi(engine, sink):
    frame(engine, T0, det(10, 20, 30, 60))
    assert sink.of("occupancy") == [("door", True, 1)]
    assert engine.occupied == {"door": (True, 1)}
    assert engine.state()["occupancy"] == {"door": {"occupied": True, "count": 1}}
    assert [e["type"] for e in sink.events()] == ["new"]
    assert engine.events_sent == 1


def test_roi_without_objects_is_reported_off_once(engine, sink):
    frame(engine, T0)
    frame(engine, T0 + 0.125)
    assert sink.of("occupancy") == [("door", False, 0)]


def test_count_follows_the_number_of_tracks_in_the_roi(engine, sink):
    frame(engine, T0, det(5, 5, 20, 40))
    frame(engine, T0 + 0.125, det(5, 5, 20, 40), det(25, 50, 45, 90))
    assert sink.of("occupancy") == [("door", True, 1), ("door", True, 2)]


def test_occupancy_stays_on_during_off_delay_after_object_leaves_then_turns_off(engine, sink):
    # The object walks right, 4 % per frame, out of the door ROI (left half).
    ts = T0
    for i in range(10):
        ts = T0 + i * 0.125
        x = 10 + 4 * i
        frame(engine, ts, det(x, 20, x + 20, 60))
    # i=8 (x=42): 40 % inside -> still in; i=9 (x=46): 20 % inside -> left.
    last_in = T0 + 8 * 0.125
    assert sink.of("occupancy") == [("door", True, 1), ("door", True, 0)]
    # It stays visible outside the ROI; occupancy held ON until the off-delay runs out.
    for t in (ts + 0.5, last_in + 2.0, last_in + 2.875):
        frame(engine, t, det(46, 20, 66, 60))
    assert sink.of("occupancy")[-1] == ("door", True, 0)
    assert engine.occupied["door"] == (True, 0)
    frame(engine, last_in + 3.0, det(46, 20, 66, 60))
    assert sink.of("occupancy") == [("door", True, 1), ("door", True, 0), ("door", False, 0)]
    assert engine.occupied["door"] == (False, 0)


def test_object_missing_for_one_frame_does_not_flap_occupancy_or_motion(engine, sink):
    frame(engine, T0, det(10, 20, 30, 60))
    frame(engine, T0 + 0.125)                       # detector missed it once
    frame(engine, T0 + 0.25, det(11, 20, 31, 60))
    frame(engine, T0 + 0.375, det(12, 20, 32, 60))
    assert sink.of("occupancy") == [("door", True, 1)]
    assert sink.of("motion") == [(True,)]
    assert [e["type"] for e in sink.events()] == ["new"]
    assert list(engine.tracker.tracks) == [1]


def test_occupancy_off_after_track_ends_and_off_delay_passes(engine, sink, clock):
    frame(engine, T0, det(10, 20, 30, 60))
    # No more frames: the events thread ticks with the clock.
    tick(engine, clock, T0 + 1.0)                   # track still alive (unseen < 1.5 s)
    tick(engine, clock, T0 + 1.5)                   # still alive (not > end_after_s)
    assert sink.of("occupancy") == [("door", True, 1)]
    tick(engine, clock, T0 + 1.75)                  # track ends; count 0 but held
    assert [e["type"] for e in sink.events()] == ["new", "end"]
    assert sink.of("occupancy") == [("door", True, 1), ("door", True, 0)]
    tick(engine, clock, T0 + 1.5 + 2.875)           # < 3 s since last counted in the ROI
    assert engine.occupied["door"] == (True, 0)
    tick(engine, clock, T0 + 1.5 + 3.0)
    assert sink.of("occupancy")[-1] == ("door", False, 0)
    assert len(sink.of("occupancy")) == 3


def test_set_rois_removal_drops_that_rois_occupancy(clock, sink):
    engine = EventEngine(cfg(), "porch", [sink], clock=clock)
    engine.set_rois({"door": DOOR, "yard": YARD})
    frame(engine, T0, det(10, 20, 30, 60))
    assert engine.occupied == {"door": (True, 1), "yard": (False, 0)}
    engine.set_rois({"yard": YARD})
    assert "door" in engine.occupied                # applied by the events thread, not here
    frame(engine, T0 + 0.125, det(10, 20, 30, 60))
    assert engine.occupied == {"yard": (False, 0)}
    assert engine.state()["occupancy"] == {"yard": {"occupied": False, "count": 0}}
    assert engine.tracker.roi_counts() == {"yard": 0}
    assert "door" not in engine._last_in
    n = len(sink.of("occupancy"))
    tick(engine, clock, T0 + 10)
    assert all(c[0] != "door" for c in sink.of("occupancy")[n:])


def test_set_rois_addition_reports_the_new_roi(engine, sink):
    frame(engine, T0, det(60, 20, 80, 60))
    engine.set_rois({"door": DOOR, "yard": YARD})
    frame(engine, T0 + 0.125, det(61, 20, 81, 60))
    assert ("yard", True, 1) in sink.of("occupancy")


# -- EventEngine: motion ---------------------------------------------------------------------
def test_motion_on_with_a_track_and_off_after_the_off_delay(engine, sink, clock):
    tick(engine, clock, T0)
    assert sink.of("motion") == [] and engine.tracking is False
    frame(engine, T0 + 0.125, det(60, 20, 80, 60))  # outside every ROI: motion still
    assert sink.of("motion") == [(True,)]
    assert engine.tracking is True and engine.state()["tracking"] is True
    tick(engine, clock, T0 + 1.5)                   # track alive, unseen
    tick(engine, clock, T0 + 1.75)                  # track ends
    assert engine.tracker.tracks == {}
    assert sink.of("motion") == [(True,)]           # held by the off-delay
    tick(engine, clock, T0 + 1.5 + 2.875)
    assert sink.of("motion") == [(True,)]
    tick(engine, clock, T0 + 1.5 + 3.0)
    assert sink.of("motion") == [(True,), (False,)]
    assert engine.tracking is False
    tick(engine, clock, T0 + 10)
    assert sink.of("motion") == [(True,), (False,)]


def test_motion_comes_back_on_for_a_new_object(engine, sink, clock):
    frame(engine, T0, det(60, 20, 80, 60))
    tick(engine, clock, T0 + 10)
    frame(engine, T0 + 11, det(60, 20, 80, 60))
    assert sink.of("motion") == [(True,), (False,), (True,)]


# -- EventEngine: submit, sinks ----------------------------------------------------------------
def test_submit_never_blocks_when_the_queue_is_full_and_counts_drops(engine):
    for i in range(100):                            # nothing consumes: the thread is off
        engine.submit([det(10, 20, 30, 60)], T0 + i, None, 640, 480)
    assert engine._queue.qsize() == 64
    assert engine.dropped == 36


def test_submitted_frames_are_processed_in_order_by_step(engine, sink):
    engine.submit([det(10, 20, 30, 60)], T0, None, 640, 480)
    engine.submit([det(11, 20, 31, 60)], T0 + 0.125, None, 640, 480)
    while not engine._queue.empty():
        engine._step(engine._queue.get_nowait())
    assert [e["type"] for e in sink.events()] == ["new"]
    assert engine.tracker.tracks[1].box == (11, 20, 31, 60)


def test_a_sink_that_raises_does_not_stop_the_others(clock, sink):
    broken = BrokenSink()
    engine = EventEngine(cfg(), "porch", [broken, sink], clock=clock)
    engine.set_rois({"door": DOOR})
    frame(engine, T0, det(10, 20, 30, 60), jpeg=jpeg_image())
    assert [e["type"] for e in sink.events()] == ["new"]
    assert sink.of("occupancy") == [("door", True, 1)]
    assert sink.of("motion") == [(True,)]
    assert len(sink.of("snapshot")) == 1
    assert broken.attempts == 4
    assert engine.events_sent == 1
    frame(engine, T0 + 0.125, det(70, 20, 90, 60, label="car"))
    assert [e["type"] for e in sink.events()] == ["new", "new"]


def test_pixel_detections_from_modules_are_normalised_with_frame_size(engine, sink):
    frame(engine, T0, {"label": "person", "box": (64, 96, 192, 288)}, "junk", None, w=640, h=480)
    (ev,) = sink.events()
    assert ev["box"] == {"left": 10.0, "top": 20.0, "right": 30.0, "bottom": 60.0}
    assert ev["node_id"] == "porch" and ev["rois"] == ["door"]


# -- snapshots -----------------------------------------------------------------------------
def test_snapshot_on_new_track_is_scaled_to_snapshot_height_and_under_max_bytes(clock, sink):
    engine = EventEngine(cfg(snapshot_height=120, snapshot_max_bytes=20_000), "porch", [sink],
                         clock=clock)
    src = jpeg_image(640, 480)
    frame(engine, T0, det(10, 20, 30, 60), jpeg=src)
    (snap,) = sink.of("snapshot")
    jpeg, ts = snap
    assert ts == T0
    assert isinstance(jpeg, bytes) and len(jpeg) <= 20_000
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (120, 160, 3)


def test_snapshot_only_for_new_tracks_and_at_most_once_a_second(engine, sink):
    src = jpeg_image()
    frame(engine, T0, det(10, 20, 30, 60), jpeg=src)                    # new -> snapshot
    frame(engine, T0 + 0.5, det(10, 20, 30, 60), jpeg=src)              # no new track
    frame(engine, T0 + 0.75, det(10, 20, 30, 60), det(70, 20, 90, 60), jpeg=src)  # < 1 s
    frame(engine, T0 + 1.0, det(10, 20, 30, 60), jpeg=src)              # update only
    frame(engine, T0 + 1.25, det(10, 20, 30, 60), det(70, 60, 90, 95, label="car"),
          jpeg=src)                                                     # new, > 1 s
    assert [ts for _, ts in sink.of("snapshot")] == [T0, T0 + 1.25]


def test_no_snapshot_without_a_jpeg(engine, sink):
    frame(engine, T0, det(10, 20, 30, 60), jpeg=None)
    assert sink.of("snapshot") == []


def test_make_snapshot_returns_none_for_garbage_bytes():
    assert make_snapshot(b"not a jpeg at all", 120, 100_000) is None
    assert make_snapshot(b"\xff\xd8\xff" + b"\x00" * 50, 120, 100_000) is None
    assert make_snapshot(bytes(range(256)) * 4, 120, 100_000) is None


def test_make_snapshot_returns_none_for_empty_bytes():
    assert make_snapshot(b"", 120, 100_000) is None


def test_make_snapshot_does_not_upscale_small_frames():
    out = make_snapshot(jpeg_image(160, 120), 360, 100_000)
    img = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (120, 160, 3)


def test_make_snapshot_keeps_aspect_ratio():
    out = make_snapshot(jpeg_image(1280, 360), 90, 100_000)
    img = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (90, 320, 3)


def test_make_snapshot_returns_none_when_it_cannot_fit_max_bytes():
    assert make_snapshot(jpeg_image(), 120, 100) is None


def test_make_snapshot_lowers_quality_to_fit_max_bytes():
    src = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, 95])
    big = make_snapshot(buf.tobytes(), 240, 10_000_000)
    small_limit = len(big) * 2 // 3
    small = make_snapshot(buf.tobytes(), 240, small_limit)
    assert small is not None and len(small) <= small_limit < len(big)
