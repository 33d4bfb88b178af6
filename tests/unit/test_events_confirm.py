"""Events worth automating on: confirmation before `new`, stationary objects, per-ROI
per-label occupancy and counts, ROI label filters, snapshots with the box drawn.

EventEngine is driven through `_step` with explicit timestamps (its thread never runs).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from camnode.node.config import EventsConfig
from camnode.node.events import SNAPSHOT_BOX, EventEngine, Tracker, make_snapshot, normalise
from camnode.node.topics import Topics

T0 = 1000.0
DOOR = {"left": 0, "top": 0, "right": 50, "bottom": 100}
YARD = {"left": 50, "top": 0, "right": 100, "bottom": 100}


def cfg(**overrides) -> EventsConfig:
    base = dict(update_interval_s=1.0, end_after_s=1.5, occupancy_off_delay_s=3.0,
                min_score=0.0, snapshot_height=240, snapshot_max_bytes=200_000,
                confirm_frames=3, stationary_after_s=10.0, stationary_end_after_s=60.0)
    return EventsConfig(**{**base, **overrides})


def ndet(l, t, r, b, label="person", run=None, exclude=None) -> dict:
    d = {"label": label, "score": 0.9, "box": (l, t, r, b)}
    if run is not None:
        d["run"] = run
    if exclude is not None:
        d["exclude_rois"] = frozenset(exclude)
    return d


def det(l, t, r, b, label="person", **extra) -> dict:
    return {"label": label, "score": 0.9, "box_pct": (l, t, r, b), **extra}


class Sink:
    def __init__(self):
        self.calls = []

    def event(self, e):
        self.calls.append(("event", e))

    def occupancy(self, roi, occupied, count):
        self.calls.append(("occupancy", roi, occupied, count))

    def label_occupancy(self, roi, label, occupied, count):
        self.calls.append(("label", roi, label, occupied, count))

    def motion(self, on):
        self.calls.append(("motion", on))

    def snapshot(self, jpeg, ts):
        self.calls.append(("snapshot", jpeg, ts))

    def of(self, kind):
        return [c[1:] for c in self.calls if c[0] == kind]

    def types(self):
        return [c[1]["type"] for c in self.calls if c[0] == "event"]


@pytest.fixture
def sink():
    return Sink()


@pytest.fixture
def engine(sink):
    e = EventEngine(cfg(), "porch", [sink], clock=lambda: T0)
    e.set_rois({"door": DOOR})
    return e


def frame(engine, ts, *dets, jpeg=None, w=640, h=480):
    engine._step((list(dets), ts, jpeg, w, h))


# -- confirmation ----------------------------------------------------------------------------
def test_a_one_frame_ghost_never_fires_and_never_occupies(engine, sink):
    frame(engine, T0, det(10, 10, 30, 60))
    for i in range(1, 40):
        frame(engine, T0 + i * 0.1)
    assert sink.types() == []
    assert ("door", True, 1) not in sink.of("occupancy")
    assert sink.of("motion") == []
    assert engine.tracker.tracks == {}


def test_new_comes_on_the_third_frame_that_sees_the_object(engine, sink):
    frame(engine, T0, det(10, 10, 30, 60))
    frame(engine, T0 + 0.1, det(11, 10, 31, 60))
    assert sink.types() == []
    frame(engine, T0 + 0.2, det(12, 10, 32, 60))
    assert sink.types() == ["new"]
    (new,) = [c[1] for c in sink.calls if c[0] == "event"]
    assert new["start"] == T0  # when it was first seen, not when confirmed
    assert sink.of("occupancy")[-1] == ("door", True, 1)


def test_a_repeated_result_of_one_detector_run_counts_once():
    tr = Tracker(cfg(), "porch")
    events = []
    for i in range(20):  # a slow detector: run 1's result repeated on 20 frames
        events += tr.update([ndet(10, 10, 30, 60, run=1)], T0 + i * 0.05)
    assert events == []
    events += tr.update([ndet(10, 10, 30, 60, run=2)], T0 + 1.0)
    assert events == []
    events += tr.update([ndet(10, 10, 30, 60, run=3)], T0 + 1.1)
    assert [e["type"] for e in events] == ["new"]


def test_an_unconfirmed_track_vanishes_without_an_end_event():
    tr = Tracker(cfg(), "porch")
    tr.update([ndet(10, 10, 30, 60)], T0)
    tr.update([ndet(10, 10, 30, 60)], T0 + 0.1)
    assert tr.update([], T0 + 5) == []
    assert tr.tracks == {}


def test_confirm_frames_comes_from_the_config_file():
    import json
    from pathlib import Path

    from camnode.node.config import parse_config

    doc = json.loads((Path(__file__).resolve().parents[2] / "config.json").read_text())
    doc.pop("events", None)
    assert parse_config(doc).events.confirm_frames == 3
    c = parse_config({**doc, "events": {"confirm_frames": 5, "stationary_after_s": 30}})
    assert c.events.confirm_frames == 5 and c.events.stationary_after_s == 30


# -- stationary objects ------------------------------------------------------------------------
def test_a_parked_car_reports_stationary_once_then_stays_quiet(sink):
    engine = EventEngine(cfg(), "porch", [sink], clock=lambda: T0)
    engine.set_rois({"drive": YARD})
    ts = T0
    for i in range(600):  # 10 minutes at 1 detection a second, jitter of a few tenths
        ts = T0 + i
        j = (i % 3) * 0.2
        frame(engine, ts, det(60 + j, 40, 90 + j, 80, label="car"))
    evs = [c[1] for c in sink.calls if c[0] == "event"]
    assert [e["type"] for e in evs] == ["new"] + ["update"] * (len(evs) - 1)
    stationary = [e for e in evs if e["stationary"]]
    assert len(stationary) == 1 and stationary[0]["start"] == T0
    assert len(evs) <= 2 + 10  # new, about 10 s of updates, then the stationary one


def test_a_stationary_object_missed_for_a_while_does_not_end_and_fire_again(engine, sink):
    for i in range(15):
        frame(engine, T0 + i, det(60, 40, 90, 80, label="car"))
    assert engine.tracker.tracks[1].stationary
    for i in range(15, 45):  # the detector misses it for 30 s (rain, headlights)
        frame(engine, T0 + i)
    frame(engine, T0 + 45, det(60, 40, 90, 80, label="car"))
    assert sink.types().count("new") == 1 and "end" not in sink.types()
    assert list(engine.tracker.tracks) == [1]


def test_a_stationary_object_ends_after_stationary_end_after_s_unseen(engine, sink):
    for i in range(15):
        frame(engine, T0 + i, det(60, 40, 90, 80, label="car"))
    frame(engine, T0 + 14 + 59)
    assert "end" not in sink.types()
    frame(engine, T0 + 14 + 61)
    assert sink.types()[-1] == "end"


def test_a_stationary_object_that_moves_again_says_so(engine, sink):
    for i in range(15):
        frame(engine, T0 + i, det(60, 40, 90, 80, label="car"))
    assert [c[1] for c in sink.calls if c[0] == "event"][-1]["stationary"] is True
    frame(engine, T0 + 15, det(50, 40, 80, 80, label="car"))  # drives off
    last = [c[1] for c in sink.calls if c[0] == "event"][-1]
    assert last["type"] == "update" and last["stationary"] is False


# -- per-ROI per-label occupancy ----------------------------------------------------------------
def test_tracked_labels_start_off_in_every_roi(sink):
    engine = EventEngine(cfg(), "porch", [sink], clock=lambda: T0)
    engine.set_rois({"door": DOOR, "yard": YARD})
    engine.set_labels(["person", "car"])
    frame(engine, T0)
    assert sorted(sink.of("label")) == [("door", "car", False, 0), ("door", "person", False, 0),
                                        ("yard", "car", False, 0), ("yard", "person", False, 0)]


def test_person_in_door_and_car_in_yard_are_counted_per_label(sink):
    engine = EventEngine(cfg(), "porch", [sink], clock=lambda: T0)
    engine.set_rois({"door": DOOR, "yard": YARD})
    engine.set_labels(["person", "car"])
    for i in range(3):
        ts = T0 + i * 0.1
        frame(engine, ts, det(2, 10, 18, 60), det(30 + i, 10, 46 + i, 60),
              det(60, 40, 90, 80, label="car"))
    state = engine.state()["label_occupancy"]
    assert state["door"]["person"] == {"occupied": True, "count": 2}
    assert state["door"]["car"] == {"occupied": False, "count": 0}
    assert state["yard"]["car"] == {"occupied": True, "count": 1}
    assert state["yard"]["person"] == {"occupied": False, "count": 0}
    assert ("door", "person", True, 2) in sink.of("label")


def test_label_occupancy_turns_off_after_the_off_delay(engine, sink):
    engine.set_labels(["person"])
    for i in range(3):
        frame(engine, T0 + i * 0.1, det(10, 10, 30, 60))
    assert sink.of("label")[-1] == ("door", "person", True, 1)
    frame(engine, T0 + 2.0)                      # track ends (1.5 s unseen), held ON
    assert sink.of("label")[-1] == ("door", "person", True, 0)
    frame(engine, T0 + 0.2 + 3.0)
    assert sink.of("label")[-1] == ("door", "person", False, 0)


def test_a_label_seen_but_not_announced_still_gets_occupancy(engine, sink):
    for i in range(3):
        frame(engine, T0 + i * 0.1, det(10, 10, 30, 60, label="dog"))
    assert ("door", "dog", True, 1) in sink.of("label")
    assert engine.labels_of("door") == ["dog"]


def test_a_sink_without_label_occupancy_still_gets_everything_else(engine):
    class Old(Sink):
        label_occupancy = None  # an adapter written before per-label topics

    old = Old()
    engine.sinks.append(old)
    engine.set_labels(["person"])
    for i in range(3):
        frame(engine, T0 + i * 0.1, det(10, 10, 30, 60))
    assert old.types() == ["new"] and old.of("label") == []


def test_roi_label_filter_keeps_an_excluded_label_out_of_that_roi(sink):
    engine = EventEngine(cfg(), "porch", [sink], clock=lambda: T0)
    engine.set_rois({"door": DOOR, "yard": YARD})
    for i in range(3):  # a person across both ROIs, whose filter for "yard" leaves people out
        frame(engine, T0 + i * 0.1, det(30, 10, 70, 60, exclude_rois=["yard"]))
    (new,) = [c[1] for c in sink.calls if c[0] == "event"]
    assert new["rois"] == ["door"]
    assert engine.occupied == {"door": (True, 1), "yard": (False, 0)}


def test_normalise_keeps_run_and_exclude_rois_and_drops_bad_ones():
    d = normalise(det(1, 1, 5, 5, run=7, exclude_rois=["a", "b"]), 10, 10)
    assert d["run"] == 7 and d["exclude_rois"] == frozenset({"a", "b"})
    d = normalise(det(1, 1, 5, 5, run="7", exclude_rois="a"), 10, 10)
    assert "run" not in d and "exclude_rois" not in d


def test_topics_for_per_label_occupancy_follow_the_contract():
    t = Topics.for_node("camnode", "porch")
    assert t.roi_label_occupancy("Driveway", "person") == "camnode/porch/roi/Driveway/person/occupancy"
    assert t.roi_label_count("Driveway", "car") == "camnode/porch/roi/Driveway/car/count"


# -- snapshot ------------------------------------------------------------------------------
def _grey_jpeg(w=640, h=480) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((h, w, 3), 90, np.uint8))
    return buf.tobytes()


def test_the_event_snapshot_has_the_new_objects_box_drawn(engine, sink):
    jpeg = _grey_jpeg()
    for i in range(3):
        frame(engine, T0 + i * 0.1, det(25, 25, 75, 75), jpeg=jpeg)
    ((snap, ts),) = sink.of("snapshot")
    img = cv2.imdecode(np.frombuffer(snap, np.uint8), cv2.IMREAD_COLOR).astype(int)
    h, w = img.shape[:2]
    # The box's left edge, half-way down, is the box colour; the frame's middle is not.
    edge = img[h // 2, round(w * 0.25) + 1]
    assert np.abs(edge - np.array(SNAPSHOT_BOX)).max() < 60
    assert np.abs(img[h // 2, w // 2] - 90).max() < 10


def test_make_snapshot_without_boxes_leaves_the_frame_alone():
    img = cv2.imdecode(np.frombuffer(make_snapshot(_grey_jpeg(), 240, 100_000), np.uint8),
                       cv2.IMREAD_COLOR)
    assert np.abs(img.astype(int) - 90).max() < 10


def test_a_background_detectors_one_run_ghost_repeated_on_many_frames_never_fires():
    """people/faces repeat their newest result on every frame until the next run: one
    run's ghost shown on ten frames is still one sighting."""
    import time

    from camnode.processors.background import BackgroundDetector

    answers = [[{"label": "person", "score": 0.9, "box_pct": [10, 10, 30, 60]}]]
    worker = BackgroundDetector(lambda f: answers.pop(0) if answers else [], "ghost")
    tr = Tracker(cfg(), "porch")
    frame_ = np.zeros((48, 64, 3), np.uint8)
    try:
        worker.submit(frame_)
        deadline = time.monotonic() + 5
        while worker.runs < 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        events = []
        for i in range(10):
            dets = [normalise(d, 64, 48) for d in worker.latest()]
            events += tr.update(dets, T0 + i * 0.05)
        assert len(tr.tracks) == 1 and events == []
    finally:
        worker.close()
