"""What a module returns can never stop the stream, and a slow module never slows it.

Real `camnode run` processes, modules written to a temporary processors folder, the
stream and snapshot read over HTTP as a viewer would.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from tests.integration.conftest import MjpegReader, post_command, request, wait_for

MODULES = {
    # Outputs that once ended the pipeline thread (issue 9, A.2), and what a viewer sees now.
    "bool_mask": "import numpy as np\n"
                 "def process_image(src):\n    return np.zeros(src.shape, bool)\n",
    "float_grey": "import numpy as np\n"
                  "def process_image(src):\n"
                  "    return np.full(src.shape[:2], 0.5, np.float64)\n",
    "read_only": "import numpy as np\n"
                 "def process_image(src):\n"
                 "    return np.broadcast_to(np.array([0, 255, 0], np.uint8), src.shape)\n",
    "two_channel": "import numpy as np\n"
                   "def process_image(src):\n"
                   "    return np.zeros(src.shape[:2] + (2,), np.uint8)\n",
    "slow": "import time\n"
            "def process_image(src):\n"
            "    time.sleep(5)\n"
            "    src[:] = (255, 0, 0)\n"
            "    return True\n",
}


def _node(run_node, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    for name, code in MODULES.items():
        (mods / f"{name}.py").write_text(code)
    return run_node({"pipeline": {"processor_dirs": [str(mods)], "module": "passthrough"}})


def _snapshot(url: str) -> np.ndarray:
    status, _, body = request(url + "/snapshot.jpg")
    assert status == 200
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)


def _centre(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return img[h // 3: 2 * h // 3, w // 3: 2 * w // 3].reshape(-1, 3).mean(0)


def _stamp_pixels(img: np.ndarray, bgr_lo: tuple, bgr_hi: tuple) -> int:
    """Pixels of a colour in the band under the module name, where errors/notes go."""
    h, w = img.shape[:2]
    band = img[: h // 5, : int(w * 0.8)]
    return int(cv2.inRange(band, np.array(bgr_lo), np.array(bgr_hi)).sum() // 255)


def _red_text(img):
    return _stamp_pixels(img, (0, 0, 170), (90, 90, 255))


def _frames_flow(node, n: int = 10) -> None:
    seq = wait_for(lambda: node.state()["stream"]["frame_seq"], what="a first frame")
    wait_for(lambda: node.state()["stream"]["frame_seq"] > seq + n, what="frames flowing")
    assert node.state()["stream"]["frame_kind"] == "live"


def _module_problems(state: dict) -> list[dict]:
    return [p for p in state["health"]["problems"] if p["part"] == "module"]


def test_module_outputs_that_once_killed_the_pipeline_are_shown_or_reported(run_node,
                                                                            tmp_path):
    node = _node(run_node, tmp_path)
    clean = _snapshot(node.url)
    # Coercible outputs: shown as the module meant them (black, grey, green), no error.
    for name, colour in (("bool_mask", (0, 0, 0)), ("float_grey", (128, 128, 128)),
                         ("read_only", (0, 255, 0))):
        assert post_command(node.url, "module/set", {"name": name})[0] == 200
        _frames_flow(node)
        wait_for(lambda: np.all(np.abs(_centre(_snapshot(node.url)) - colour) < 30),
                 what=f"{name}'s picture")
        state = node.state()
        assert state["module"] == name and state["module_errors"] == 0, state
        assert state["pipeline"] == "running" and _module_problems(state) == []
        if name != "read_only":  # copied to a writable frame, nothing to say about it
            assert node.wait_line(rf"module {name} returns .* frames; converting them")
    # A 2-channel array cannot be a BGR picture: unedited frames flow, the error is counted,
    # stamped in red, in the state and health (not a failed part: /healthz stays 200).
    assert post_command(node.url, "module/set", {"name": "two_channel"})[0] == 200
    state = wait_for(lambda: (s := node.state())["module_errors"] > 5 and s, what="errors")
    _frames_flow(node)
    assert "2-channel" in state["last_error"] and "unedited" in state["last_error"]
    problems = _module_problems(state)
    assert problems and "2-channel" in problems[0]["reason"] and state["health"]["ok"] is False
    status, _, _ = request(node.url + "/healthz")
    assert status == 200
    shot = _snapshot(node.url)
    assert np.all(np.abs(_centre(shot) - _centre(clean)) < 40)  # the camera's picture
    stamped = _red_text(shot)
    assert stamped > _red_text(clean) + 40, "the module error is not stamped on the frame"
    assert node.output.count("module two_channel returned a 2-channel frame") == 1  # once
    # Switching to a good module brings a clean stream back.
    assert post_command(node.url, "module/set", {"name": "passthrough"})[0] == 200
    wait_for(lambda: _module_problems(node.state()) == [], what="module problem cleared")
    _frames_flow(node)
    assert node.state()["health"]["ok"] is True
    assert _red_text(_snapshot(node.url)) < stamped / 3


def test_slow_module_keeps_the_stream_at_camera_rate_and_is_reported(run_node, tmp_path):
    node = _node(run_node, tmp_path)
    assert post_command(node.url, "module/set", {"name": "slow"})[0] == 200
    state = wait_for(lambda: (s := node.state())["module_slow"]["slow"] and s, timeout=5,
                     what="module reported slow")
    problems = _module_problems(state)
    assert problems and "slow" in problems[0]["reason"]
    assert request(node.url + "/healthz")[0] == 200  # degraded, not dead
    reader = MjpegReader(node.url + "/stream.mjpg")
    try:
        reader.read_part()
        t0, parts = time.monotonic(), 0
        while time.monotonic() - t0 < 3.0:
            reader.read_part()
            parts += 1
    finally:
        reader.close()
    fps = parts / (time.monotonic() - t0)
    assert fps > 8, f"stream at {fps:.1f} fps with a 5 s module (camera 15 fps)"
    shot = _snapshot(node.url)
    assert not np.all(np.abs(_centre(shot) - (255, 0, 0)) < 30)  # unedited frames
    assert _stamp_pixels(shot, (0, 110, 190), (90, 210, 255)) > 20, "no 'module slow' stamp"
    assert node.output.count("module slow is slow") == 1  # logged once, not per frame
    # Switching module clears it at once, though the old one is still in its 5 s call.
    t0 = time.monotonic()
    assert post_command(node.url, "module/set", {"name": "passthrough"})[0] == 200
    wait_for(lambda: not (s := node.state())["module_slow"]["slow"]
             and _module_problems(s) == [], timeout=3, what="slow cleared")
    assert time.monotonic() - t0 < 3
    _frames_flow(node)
