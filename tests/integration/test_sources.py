"""Sources that are lost and come back, and frames of another size than requested."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.integration.conftest import MjpegCamera, request, wait_for


def _write_video(path: Path, size=(160, 120), frames=10, fps=10) -> None:
    """A short clip at another size than the camera asks for, bright so black is obvious."""
    tmp = path.with_suffix(".tmp.avi")
    out = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert out.isOpened()
    for i in range(frames):
        img = np.full((size[1], size[0], 3), (40, 180, 220), np.uint8)
        cv2.circle(img, (10 + i * 10, size[1] // 2), 12, (255, 255, 255), -1)
        out.write(img)
    out.release()
    os.replace(tmp, path)


def _snapshot(url: str) -> np.ndarray:
    status, _, body = request(url + "/snapshot.jpg")
    assert status == 200
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)


def test_video_file_of_another_size_is_resized_not_black(run_node, tmp_path):
    clip = tmp_path / "clip.avi"
    _write_video(clip)
    node = run_node({"camera": {"source": str(clip), "fps": 10}, "pipeline": {"module": "passthrough"}})
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "live", what="live frames")
    img = _snapshot(node.url)
    assert img.shape == (240, 320, 3)
    centre = img[100:140, 140:180].reshape(-1, 3).mean(0)
    assert centre.mean() > 100, f"frame is dark: {centre}"
    # The 10-frame clip loops: frames keep coming well past its 1 s length.
    seq = node.state()["stream"]["frame_seq"]
    wait_for(lambda: node.state()["stream"]["frame_seq"] > seq + 25, what="looping")


def test_deleted_video_file_gives_no_signal_then_recovers(run_node, tmp_path):
    clip = tmp_path / "clip.avi"
    _write_video(clip)
    node = run_node({"camera": {"source": str(clip), "fps": 10}})
    wait_for(lambda: node.state()["source"]["status"] == "ok", what="source ok")
    saved = clip.read_bytes()
    clip.unlink()
    state = wait_for(lambda: (s := node.state())["source"]["status"] == "lost" and s,
                     what="source lost")
    assert "not found" in state["source"]["detail"]
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "nosignal", what="no-signal frame")
    assert request(node.url + "/snapshot.jpg")[0] == 200  # the no-signal picture
    clip.write_bytes(saved)
    wait_for(lambda: node.state()["source"]["status"] == "ok", timeout=10, what="recovered")
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "live", what="live again")
    assert node.state()["source"]["reconnects"] >= 1


@pytest.fixture
def network_camera():
    ok, buf = cv2.imencode(".jpg", np.full((240, 320, 3), 200, np.uint8))
    cam = MjpegCamera([buf.tobytes()], fps=10)
    cam.start()
    yield cam
    cam.stop()


def test_unreachable_url_gives_no_signal_then_recovers(run_node, network_camera):
    url = f"http://127.0.0.1:{network_camera.port}/video.mjpg"
    node = run_node({"camera": {"source": url, "fps": 10}})
    wait_for(lambda: node.state()["source"]["status"] == "ok", timeout=15, what="source ok")
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "live", what="live frames")
    network_camera.stop()
    wait_for(lambda: node.state()["source"]["status"] == "lost", timeout=15, what="lost")
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "nosignal", what="no-signal frame")
    network_camera.start()
    wait_for(lambda: node.state()["source"]["status"] == "ok", timeout=15, what="recovered")
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "live", what="live again")


def test_missing_camera_device_is_reported_not_fatal(run_node):
    node = run_node({"camera": {"source": "/dev/video99"}})
    state = wait_for(lambda: (s := node.state())["source"]["status"] == "lost" and s,
                     what="lost source")
    assert state["pipeline"] == "running"
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "nosignal", what="no-signal frame")
