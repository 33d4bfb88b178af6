"""Built-in processors measured against ground truth, not just "it ran"."""

from __future__ import annotations

import importlib
import threading
import time

import cv2
import numpy as np
import pytest

from camnode.node.config import EventsConfig
from camnode.node.events import Tracker, iou, normalise
from camnode.node.loader import InvalidParams, Registry
from camnode.node.synthetic import SyntheticScene
from camnode.processors import common
from camnode.processors.background import BackgroundDetector

FPS = 15
W, H = 640, 480


def fresh(name: str):
    """A freshly imported module, as the node loads it (module state is per selection)."""
    proc = Registry().load(name, {})
    return proc.module


@pytest.fixture(autouse=True)
def no_rois():
    common.configure({}, {})
    yield
    common.configure({}, {})


def test_motion_box_matches_the_moving_object_in_nine_frames_of_ten():
    scene, motion = SyntheticScene(W, H), fresh("motion")
    hits = total = 0
    for i in range(24 * FPS):
        t = i / FPS
        _, dets = motion.process_image(scene.render(t))
        if t < 12:  # one scene period of warm-up
            continue
        for obj in scene.objects_at(t):
            total += 1
            best = max((iou(obj.box, tuple(d["box_pct"])) for d in dets), default=0.0)
            hits += best >= 0.5
    assert total > 100
    assert hits / total >= 0.9, f"IoU >= 0.5 in only {hits}/{total} frames"


def test_motion_reports_nothing_in_a_static_scene():
    scene, motion = SyntheticScene(W, H), fresh("motion")
    empty = [i / FPS for i in range(int(2 * FPS))]  # 0..2 s: the room is empty
    for t in empty[:10]:
        motion.process_image(scene.render(t))
    found = [motion.process_image(scene.render(t))[1] for t in empty[10:]]
    assert not any(found)


def test_motion_reports_the_fraction_of_each_roi_in_motion():
    common.configure({"left": {"left": 0, "top": 0, "right": 30, "bottom": 100},
                      "right": {"left": 80, "top": 0, "right": 100, "bottom": 40}}, {})
    scene, motion = SyntheticScene(W, H), fresh("motion")
    for i in range(int(12 * FPS + 3.0 * FPS)):  # the walker is in the left third at 15 s
        motion.process_image(scene.render(i / FPS))
    status = motion.status()
    assert status["roi_motion"]["left"] > 0.05 and status["roi_motion"]["right"] == 0
    assert status["rois_in_motion"] == ["left"]


def test_motion_draws_its_boxes_on_the_frame():
    scene, motion = SyntheticScene(W, H), fresh("motion")
    for i in range(int(5 * FPS)):
        frame = scene.render(i / FPS)
        before = frame.copy()
        _, dets = motion.process_image(frame)
    assert dets and not np.array_equal(before, frame)


def test_roi_occupancy_turns_on_when_the_object_enters_and_off_after_it_leaves(monkeypatch):
    roi = {"left": 40, "top": 20, "right": 60, "bottom": 80}
    common.configure({"spot": roi}, {})
    scene, occ = SyntheticScene(W, H), fresh("roi_occupancy")
    now = [0.0]
    monkeypatch.setattr(occ, "_clock", lambda: now[0])
    occ.setup({"on_delay_s": 0.3, "off_delay_s": 1.0})
    changes, inside_since, outside_since = [], None, None
    for i in range(int(12 * FPS)):
        now[0] = t = i / FPS
        _, dets = occ.process_image(scene.render(t))
        occupied = any(d.get("roi") == "spot" for d in dets)
        truth = any(o.label == "person" and _overlap(o.box, roi) > 0.2 for o in scene.objects_at(t))
        if truth and inside_since is None:
            inside_since = t
        if inside_since is not None and not truth and outside_since is None:
            outside_since = t
        if not changes or changes[-1][1] != occupied:
            changes.append((t, occupied))
    ons = [t for t, o in changes if o]
    offs = [t for t, o in changes[1:] if not o]
    assert len(ons) == 1 and len(offs) == 1, changes  # no flapping
    assert inside_since <= ons[0] <= inside_since + 0.3 + 0.5
    assert outside_since + 1.0 - 0.2 <= offs[0] <= outside_since + 1.0 + 0.6


def _overlap(box, roi) -> float:
    ix = max(0, min(box[2], roi["right"]) - max(box[0], roi["left"]))
    iy = max(0, min(box[3], roi["bottom"]) - max(box[1], roi["top"]))
    return ix * iy / ((roi["right"] - roi["left"]) * (roi["bottom"] - roi["top"]))


def test_faces_finds_the_face_in_a_real_photograph():
    data = pytest.importorskip("skimage.data")
    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    faces = fresh("faces")
    found = faces.detect(img)
    assert [d["label"] for d in found] == ["face"]
    # Eileen Collins' face is in the upper left-centre of the 512x512 picture.
    l, t, r, b = found[0]["box_pct"]
    assert 25 < (l + r) / 2 < 60 and 10 < (t + b) / 2 < 35 and 10 < r - l < 30


def test_faces_finds_none_in_a_face_free_image():
    scene, faces = SyntheticScene(W, H), fresh("faces")
    assert not any(faces.detect(scene.render(t)) for t in (0.5, 3, 5, 7, 11))
    data = pytest.importorskip("skimage.data")
    assert faces.detect(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)) == []


def test_faces_module_reports_faces_through_process_image_without_waiting():
    data = pytest.importorskip("skimage.data")
    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    faces = fresh("faces")
    try:
        deadline = time.monotonic() + 10
        dets = []
        while not dets and time.monotonic() < deadline:
            _, dets = faces.process_image(img.copy())
            time.sleep(0.01)
        assert dets and dets[0]["label"] == "face"
    finally:
        faces.close()


def test_people_detections_are_labelled_person():
    scene, people = SyntheticScene(W, H), fresh("people")
    try:
        labels, deadline, i = set(), time.monotonic() + 20, 0
        while people.status().get("runs", 0) < 5 and time.monotonic() < deadline:
            _, dets = people.process_image(scene.render(3 + (i % 60) / FPS))
            labels |= {d["label"] for d in dets}
            i += 1
            time.sleep(0.005)
        assert people.status()["runs"] >= 5
        assert labels <= {"person"}
        assert people.status()["frames_offered"] > people.status()["runs"]  # fewer frames
    finally:
        people.close()


def test_slow_detector_runs_on_fewer_frames_and_never_delays_the_caller():
    release = threading.Event()

    def slow(frame):
        release.wait(5)
        return [{"label": "thing", "box_pct": [0, 0, 10, 10]}]

    worker = BackgroundDetector(slow, "slow")
    try:
        frame = np.zeros((48, 64, 3), np.uint8)
        t0 = time.perf_counter()
        for _ in range(100):
            worker.submit(frame)
            assert worker.latest() == []
        assert time.perf_counter() - t0 < 0.5
        release.set()
        deadline = time.monotonic() + 5
        while not worker.latest() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.latest()[0]["label"] == "thing"
        assert worker.stats()["runs"] <= 2 and worker.stats()["frames_offered"] == 100
    finally:
        release.set()
        worker.close()


def test_tracks_keep_their_id_while_the_object_moves_and_end_when_it_leaves():
    scene, motion = SyntheticScene(W, H), fresh("motion")
    cfg = EventsConfig(update_interval_s=1, end_after_s=0.5, occupancy_off_delay_s=1,
                       min_score=0, snapshot_height=120, snapshot_max_bytes=50000)
    tracker = Tracker(cfg, "test")
    person_ids, events = [], []
    for i in range(int(24 * FPS)):
        t = i / FPS
        _, raw = motion.process_image(scene.render(t))
        dets = [d for d in (normalise(x, W, H) for x in raw) if d]
        events += [e for e in tracker.update(dets, t) if t >= 12]
        if 12 + 3 <= t <= 12 + 7:  # the walker is well inside the frame
            person = [o for o in scene.objects_at(t) if o.label == "person"][0]
            match = max(tracker.tracks.values(), key=lambda tr: iou(tr.box, person.box))
            person_ids.append(match.id)
    main_id = max(set(person_ids), key=person_ids.count)
    assert person_ids.count(main_id) / len(person_ids) >= 0.9
    ends = [e for e in events if e["type"] == "end" and e["id"] == main_id]
    assert ends and ends[0]["end"] > 12 + 7  # ended after the walker left


def test_module_params_are_checked_by_the_module_schema():
    reg = Registry()
    with pytest.raises(InvalidParams) as exc:
        reg.load("motion", {"sensitivity": 500, "colour": "red"})
    paths = {i.path for i in exc.value.issues}
    assert {"$.sensitivity", "$.colour"} <= paths
    proc = reg.load("motion", {"sensitivity": 80})
    assert proc.params == {"sensitivity": 80}


@pytest.mark.parametrize("name", ["example_minimal", "example_detections", "example_params"])
def test_sdk_examples_run_on_a_frame(name):
    common.configure({"AccessPoint_1": {"left": 10, "top": 10, "right": 30, "bottom": 60}}, {})
    proc = Registry().load(name, {})
    frame = SyntheticScene(W, H).render(5.0)
    result = proc.process(frame)
    assert result.error is None and result.frame is not None
    assert not np.array_equal(result.frame, frame)
    if name == "example_detections":  # the walker's red shirt
        assert any(d["label"] == "red_object" for d in result.detections)


EXAMPLES = {"example_minimal", "example_detections", "example_params"}


def test_built_in_modules_are_listed_and_the_examples_only_when_asked_for():
    listed = set(Registry().available())
    assert {"motion", "faces", "people", "roi_occupancy", "passthrough", "service"} <= listed
    assert not listed & EXAMPLES  # the Home Assistant select and the page offer real modules
    assert EXAMPLES <= set(Registry(examples=True).available())
    assert "background" not in Registry().available()


def test_hidden_examples_still_load_by_name(tmp_path):
    proc = Registry().load("example_minimal")
    assert proc.name == "example_minimal"


def test_examples_setting_hides_only_the_built_in_examples(tmp_path):
    (tmp_path / "example_mine.py").write_text("def process_image(src):\n    return True\n")
    assert "example_mine" in Registry([tmp_path]).available()


def test_roi_occupancy_status_can_be_read_while_frames_are_processed():
    # The state thread calls status() while the pipeline thread runs process_image, which
    # adds and drops per-ROI entries as ROIs change; reading must never raise.
    occ = fresh("roi_occupancy")
    frame = np.zeros((120, 160, 3), np.uint8)
    stop, errors = threading.Event(), []

    def frames():
        i = 0
        while not stop.is_set():
            n = 1 + i % 40
            common.configure({f"r{k}": {"left": k % 90, "top": 0, "right": k % 90 + 10,
                                        "bottom": 10} for k in range(n)}, {})
            occ.process_image(frame)
            i += 1

    t = threading.Thread(target=frames)
    t.start()
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                occ.status()
            except RuntimeError as exc:
                errors.append(exc)
                break
    finally:
        stop.set()
        t.join()
        common.configure({}, {})
    assert not errors, errors
