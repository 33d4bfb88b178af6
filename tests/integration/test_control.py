"""Start/stop and module selection from the page's POST endpoints, and module failures."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np

from tests.integration.conftest import MjpegReader, post_command, request, wait_for

PAINT_RED = """
def process_image(src):
    src[:] = (0, 0, 255)
    return True
"""

BOOM = """
def process_image(src):
    src[:] = (255, 0, 0)   # half-way edit, then a crash: viewers must see the original
    raise RuntimeError("boom in the module")
"""

BROKEN = """
import this_module_does_not_exist
def process_image(src):
    return True
"""


def _snapshot(url: str) -> np.ndarray:
    status, _, body = request(url + "/snapshot.jpg")
    assert status == 200
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)


def _mostly(img: np.ndarray, bgr: tuple) -> bool:
    centre = img[img.shape[0] // 3: 2 * img.shape[0] // 3, img.shape[1] // 3: 2 * img.shape[1] // 3]
    return bool(np.all(np.abs(centre.reshape(-1, 3).mean(0) - bgr) < 30))


def test_stop_and_start_from_post_endpoints(run_node):
    node = run_node()
    status, reply = post_command(node.url, "pipeline/stop", {"id": "s1"})
    assert status == 200 and reply["status"] == "ok" and reply["id"] == "s1"
    assert reply["data"]["pipeline"] == "stopped"
    wait_for(lambda: node.state()["pipeline"] == "stopped", what="stopped state")
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "stopped", what="stopped frame")
    # Endpoints answer at once while stopped (the seed's hung).
    t0 = time.monotonic()
    assert request(node.url + "/snapshot.jpg")[0] == 200
    assert request(node.url + "/api/state")[0] == 200
    reader = MjpegReader(node.url + "/stream.mjpg")
    reader.read_part()
    reader.close()
    assert time.monotonic() - t0 < 1.0
    assert node.state()["source"]["status"] == "stopped"  # the camera is released
    status, reply = post_command(node.url, "pipeline/start")
    assert status == 200 and reply["data"]["pipeline"] == "running"
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "live", what="live frames again")


def test_state_never_changes_on_get(run_node):
    node = run_node()
    for path in ("/api/pipeline/stop", "/api/pipeline/stop?x=1"):
        status, _, _ = request(node.url + path)
        assert status == 405
    assert node.state()["pipeline"] == "running"


def test_post_without_json_content_type_is_refused(run_node):
    # A form on another site cannot send application/json without a CORS preflight.
    node = run_node()
    status, _, body = request(node.url + "/api/pipeline/stop", "POST", b"",
                              {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    assert json.loads(body)["status"] == "error"
    assert node.state()["pipeline"] == "running"


def test_bad_requests_are_answered_with_what_was_wrong(run_node):
    node = run_node()
    status, reply = post_command(node.url, "module/set", {"name": 5, "bogus": 1, "id": 7})
    assert status == 400 and reply["id"] == 7
    paths = {d["path"] for d in reply["error"]["details"]}
    assert {"$.name", "$.bogus"} <= paths
    status, _, body = request(node.url + "/api/pipeline/start", "POST", b"{not json",
                              {"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_json"
    status, reply = post_command(node.url, "nothing/here")
    assert status == 404 and reply["error"]["code"] == "unknown_command"


def test_module_switch_at_run_time_without_restarting_the_camera(run_node, tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "paint_red.py").write_text(PAINT_RED)
    node = run_node({"pipeline": {"processor_dirs": [str(tmp_path / "mods")]}})
    assert "paint_red" in node.state()["modules"]
    frames_before = node.state()["frames"]["captured"]
    status, reply = post_command(node.url, "module/set", {"name": "paint_red"})
    assert status == 200, reply
    wait_for(lambda: _mostly(_snapshot(node.url), (0, 0, 255)), what="red frames")
    state = wait_for(lambda: (s := node.state())["frames"]["captured"] > frames_before + 5
                     and s, what="capture going on")
    assert state["module"] == "paint_red" and state["source"]["reconnects"] == 0
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["pipeline"]["module"] == "paint_red"  # kept across restarts
    status, reply = post_command(node.url, "module/set", {"name": "passthrough"})
    assert status == 200
    wait_for(lambda: not _mostly(_snapshot(node.url), (0, 0, 255)), what="unpainted frames")


def test_module_dropped_into_a_folder_appears_without_restart(run_node, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    node = run_node({"pipeline": {"processor_dirs": [str(mods)]}})
    assert "late" not in node.state()["modules"]
    (mods / "late.py").write_text(PAINT_RED)
    wait_for(lambda: "late" in node.state()["modules"], what="new module listed")


def test_unknown_and_traversal_module_names_change_nothing(run_node, tmp_path):
    node = run_node()
    before = (tmp_path / "config.json").read_bytes()
    status, reply = post_command(node.url, "module/set", {"name": "nope"})
    assert status == 404 and reply["error"]["code"] == "unknown_module"
    status, reply = post_command(node.url, "module/set", {"name": "../../etc/passwd"})
    assert status == 400 and reply["error"]["details"][0]["path"] == "$.name"
    assert node.state()["module"] == "service"
    assert (tmp_path / "config.json").read_bytes() == before


def test_module_that_raises_leaves_the_stream_flowing_unedited(run_node, tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "boom.py").write_text(BOOM)
    node = run_node({"pipeline": {"processor_dirs": [str(tmp_path / "mods")]}})
    assert post_command(node.url, "module/set", {"name": "boom"})[0] == 200
    state = wait_for(lambda: (s := node.state())["module_errors"] > 5 and s, what="errors")
    assert "boom in the module" in state["last_error"]
    seq1 = node.state()["stream"]["frame_seq"]
    wait_for(lambda: node.state()["stream"]["frame_seq"] > seq1 + 5, what="frames flowing")
    assert node.state()["stream"]["frame_kind"] == "live"
    assert not _mostly(_snapshot(node.url), (255, 0, 0))  # the half-way edit is not shown
    assert "module boom failed" in node.output


def test_module_that_fails_to_import_streams_unedited_frames(run_node, tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "broken.py").write_text(BROKEN)
    node = run_node({"pipeline": {"module": "broken",
                                  "processor_dirs": [str(tmp_path / "mods")]}})
    state = node.state()
    assert state["pipeline"] == "running" and state["module"] == "broken"
    assert "this_module_does_not_exist" in state["module_error"]
    seq1 = wait_for(lambda: node.state()["stream"]["frame_seq"], what="a first frame")
    wait_for(lambda: node.state()["stream"]["frame_seq"] > seq1 + 5, what="frames flowing")
    # Choosing it at run time is refused and keeps the current module.
    post_command(node.url, "module/set", {"name": "passthrough"})
    status, reply = post_command(node.url, "module/set", {"name": "broken"})
    assert status == 422 and reply["error"]["code"] == "module_error"
    assert "this_module_does_not_exist" in reply["error"]["message"]
    assert node.state()["module"] == "passthrough"


def test_module_params_are_validated_and_changed_at_run_time(run_node, tmp_path):
    node = run_node()
    before = (tmp_path / "config.json").read_bytes()
    status, reply = post_command(node.url, "module/set",
                                 {"name": "motion", "params": {"sensitivity": "high", "x": 1}})
    assert status == 400
    assert {"$.params.sensitivity", "$.params.x"} <= {d["path"] for d in reply["error"]["details"]}
    assert node.state()["module"] == "service"
    assert (tmp_path / "config.json").read_bytes() == before
    status, reply = post_command(node.url, "module/set",
                                 {"name": "motion", "params": {"sensitivity": 80}})
    assert status == 200 and reply["data"]["module_params"] == {"sensitivity": 80}
    saved = json.loads((tmp_path / "config.json").read_text())["pipeline"]
    assert saved["module"] == "motion" and saved["module_params"] == {"sensitivity": 80}
    wait_for(lambda: "roi_motion" in (node.state().get("module_status") or {}),
             what="motion status in the state")
