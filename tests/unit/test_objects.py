"""The `objects` module without the real network: refusal without a model, its
PARAMS_SCHEMA, the label/score/area/ROI filters and the motion gate.

A fake network stands in for cv2.dnn (tests/integration/test_objects_model.py runs the
real one); model files are empty placeholders in a temporary model directory.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from camnode.node import models
from camnode.node.loader import InvalidParams, ModuleLoadError, Registry


class FakeNet:
    """Answers every forward() with `rows` ([class id, score, x1, y1, x2, y2] in 0..1)."""

    def __init__(self, rows):
        self.rows = rows
        self.forwards = 0

    def setPreferableBackend(self, _):
        pass

    def setInput(self, blob):
        assert blob.shape == (1, 3, 300, 300)

    def forward(self):
        self.forwards += 1
        out = np.zeros((1, 1, len(self.rows), 7), np.float32)
        for i, r in enumerate(self.rows):
            out[0, 0, i, 1:] = r
        return out


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    d = tmp_path / "models"
    monkeypatch.setenv(models.MODEL_DIR_ENV, str(d))
    return d


@pytest.fixture
def fake_net(model_dir, monkeypatch):
    model_dir.mkdir()
    for fname in models.paths(models.DEFAULT_MODEL, model_dir).values():
        fname.write_bytes(b"")
    net = FakeNet([])
    monkeypatch.setattr(cv2.dnn, "readNetFromTensorflow", lambda pb, pbtxt: net)
    return net


@pytest.fixture
def load():
    loaded = []

    def _load(params=None):
        proc = Registry().load("objects", params or {})
        loaded.append(proc)
        return proc

    yield _load
    for p in loaded:
        p.close()


def test_without_a_model_choosing_objects_says_what_to_run(model_dir):
    with pytest.raises(ModuleLoadError) as err:
        Registry().load("objects", {})
    msg = str(err.value)
    assert msg.startswith("objects: setup failed: no detector model in ")
    assert str(model_dir) in msg and "make model" in msg and "camnode fetch-model" in msg


def test_params_schema_is_readable_without_running_the_module():
    schema = Registry().params_schema("objects")  # what the page's form and check-config use
    assert schema is not None
    assert set(schema["properties"]) >= {"labels", "min_score", "label_min_score", "min_area",
                                         "max_area", "roi_labels", "motion_gate"}


def test_the_label_enum_is_exactly_the_models_labels():
    import importlib.util

    spec = importlib.util.spec_from_file_location("objs", Registry().path_of("objects"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    enum = mod.PARAMS_SCHEMA["properties"]["labels"]["items"]["enum"]
    assert sorted(enum) == sorted(mod.COCO_IDS.values()) and len(enum) == 80
    assert set(mod.PARAMS_SCHEMA["properties"]["labels"]["default"]) <= set(enum)


@pytest.mark.parametrize("params, path", [
    ({"labels": ["unicorn"]}, "$.labels[0]"),
    ({"min_score": 2}, "$.min_score"),
    ({"label_min_score": {"car": -1}}, "$.label_min_score.car"),
    ({"roi_labels": {"Driveway": "car"}}, "$.roi_labels.Driveway"),
    ({"colour": "red"}, "$.colour"),
])
def test_bad_params_are_refused_with_their_path(fake_net, load, params, path):
    with pytest.raises(InvalidParams) as err:
        load(params)
    assert path in [i.path for i in err.value.issues]


def test_filters_by_label_score_per_label_area_and_marks_roi_exclusions(fake_net, load):
    fake_net.rows = [
        [1, 0.90, 0.10, 0.10, 0.30, 0.60],   # person: kept
        [3, 0.55, 0.50, 0.50, 0.90, 0.90],   # car at 0.55: under car's own 0.6
        [3, 0.70, 0.50, 0.20, 0.90, 0.45],   # car: kept
        [47, 0.99, 0.40, 0.40, 0.50, 0.50],  # cup: not a tracked label
        [1, 0.45, 0.60, 0.10, 0.70, 0.50],   # person under min_score
        [1, 0.95, 0.00, 0.00, 0.01, 0.01],   # person box of 0.01 % of the frame: too small
        [18, 0.80, 0.00, 0.00, 1.00, 1.00],  # dog over the whole frame: over max_area
        [99, 0.99, 0.10, 0.10, 0.20, 0.20],  # an id the model should not give
    ]
    proc = load({"labels": ["person", "car", "dog"], "label_min_score": {"car": 0.6},
                 "min_area": 0.05, "max_area": 90,
                 "roi_labels": {"Driveway": ["car"], "Porch": ["person", "car"]}})
    dets = proc.module.detect(np.zeros((240, 320, 3), np.uint8))
    assert [(d["label"], d["score"]) for d in dets] == [("person", 0.9), ("car", 0.7)]
    assert dets[0]["box_pct"] == [10.0, 10.0, 30.0, 60.0]
    assert dets[0]["exclude_rois"] == ["Driveway"] and "exclude_rois" not in dets[1]
    again = proc.module.detect(np.zeros((240, 320, 3), np.uint8))
    assert again[0]["run"] == dets[0]["run"] + 1  # events count runs, not repeats


def test_setup_warms_the_network_up(fake_net, load):
    load({})
    assert fake_net.forwards == 1


def test_status_lists_the_tracked_labels(fake_net, load):
    proc = load({"labels": ["dog", "person"]})
    assert proc.status()["labels"] == ["dog", "person"]


def _settle(proc, timeout=5.0):
    """Wait until the detector thread has taken and finished the offered frame."""
    worker = proc.module._worker
    deadline = time.monotonic() + timeout
    while worker._frame is not None:
        assert time.monotonic() < deadline, "detector thread stuck"
        time.sleep(0.002)


def _noisy(rng, base):
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def test_a_still_scene_runs_the_network_only_every_still_interval(fake_net, load):
    rng = np.random.default_rng(0)
    base = np.tile(np.linspace(40, 200, 320)[None, :, None], (240, 1, 3))
    proc = load({"still_interval_s": 60})
    before = fake_net.forwards
    for _ in range(60):
        proc.process(_noisy(rng, base))
        _settle(proc)
    assert fake_net.forwards - before <= 3  # the first frame, and MOG2 learning the scene
    assert proc.status()["frames_gated"] >= 57


def test_something_moving_runs_the_network_on_many_frames(fake_net, load):
    rng = np.random.default_rng(0)
    base = np.tile(np.linspace(40, 200, 320)[None, :, None], (240, 1, 3))
    proc = load({"still_interval_s": 60})
    for _ in range(20):  # learn the empty scene
        proc.process(_noisy(rng, base))
        _settle(proc)
    before = fake_net.forwards
    for i in range(30):
        frame = base.copy()
        frame[80:160, 10 + 8 * i:50 + 8 * i] = 250
        proc.process(_noisy(rng, frame))
        _settle(proc)
    assert fake_net.forwards - before >= 25


def test_without_the_gate_every_idle_moment_runs_the_network(fake_net, load):
    proc = load({"motion_gate": False})
    before = fake_net.forwards  # setup's warm-up run
    still = np.full((240, 320, 3), 100, np.uint8)
    for _ in range(10):
        proc.process(still)
        _settle(proc)
    assert fake_net.forwards - before == 10


def test_detections_are_drawn_and_returned_every_frame_while_fresh(fake_net, load):
    fake_net.rows = [[1, 0.9, 0.25, 0.25, 0.75, 0.75]]
    proc = load({})
    first = proc.process(np.zeros((240, 320, 3), np.uint8))
    _settle(proc)
    res = proc.process(np.zeros((240, 320, 3), np.uint8))
    assert [d["label"] for d in res.detections] == ["person"]
    assert res.frame[60, 80:240].any()  # the box's top edge is drawn
    assert first.error is None and res.error is None


def _config(tmp_path, params) -> str:
    import json
    from pathlib import Path

    doc = json.loads((Path(__file__).resolve().parents[2] / "config.json").read_text())
    doc["pipeline"].update({"module": "objects", "module_params": params})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_check_config_checks_the_modules_parameters(tmp_path, capsys):
    from camnode.cli import main

    bad = _config(tmp_path, {"labels": ["person", "unicorn"], "min_score": 3})
    assert main(["check-config", bad]) == 1
    err = capsys.readouterr().err
    assert "$.pipeline.module_params.labels[1]: 'unicorn' is not one of" in err
    assert "$.pipeline.module_params.min_score: 3 is greater than the maximum of 1" in err
    good = _config(tmp_path, {"labels": ["person", "car"], "roi_labels": {"door": ["car"]}})
    assert main(["check-config", good]) == 0


@pytest.mark.parametrize("module, labels", [("people", ["person"]), ("faces", ["face"])])
def test_the_light_detectors_declare_their_labels_too(module, labels):
    proc = Registry().load(module, {})
    try:
        assert proc.status()["labels"] == labels  # Home Assistant gets per-label entities
    finally:
        proc.close()
