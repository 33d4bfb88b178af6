"""Small hardware: no encoding nobody needs, camera JPEGs passed through, variants.

Each test runs a real node (`camnode run`) with `pipeline.encode` = "demand" (the
default) and reads its state, /metrics, /stream.mjpg and /snapshot.jpg as clients do.
"""

from __future__ import annotations

import socket
import time

import cv2
import numpy as np
import pytest

from tests.integration.conftest import MjpegCamera, MjpegReader, get_json, request, wait_for

DEMAND = {"pipeline": {"encode": "demand"}}


def _enc(node) -> dict:
    return node.state()["encoding"]


def _decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a JPEG"
    return img


def test_nothing_is_encoded_without_viewers_and_a_viewer_starts_it_within_a_frame(run_node):
    node = run_node({**DEMAND, "camera": {"fps": 10}})
    wait_for(lambda: _enc(node)["not_encoded"] > 20, what="frames processed without viewers")
    enc = _enc(node)
    assert enc["encoded_for"]["viewers"] == 0
    assert enc["encoded"] <= enc["encoded_for"]["placeholder"]  # at most the "starting" frames
    assert node.state()["frames"]["captured"] >= 20  # the module still gets every frame

    connected = time.time()
    reader = MjpegReader(node.url + "/stream.mjpg")
    try:
        while True:  # the worker may hold an old frame; wait for one captured after we came
            headers, jpeg, received = reader.read_part()
            if float(headers["x-timestamp"]) >= connected:
                break
        # The worker tells the node at once (not at its next report, up to 1 s away);
        # at 10 fps a frame is 0.1 s: allow a few for a loaded test machine.
        assert received - connected < 0.6, f"first new frame after {received - connected:.2f} s"
        wait_for(lambda: _enc(node)["encoded_for"]["viewers"] > 5, what="viewer encodes")
    finally:
        reader.close()
    # Viewer gone: the node goes idle again.
    wait_for(lambda: _enc(node)["stream_viewers"] == 0, timeout=8, what="viewer gone")
    idle = _enc(node)["not_encoded"]
    encoded = _enc(node)["encoded_for"]["viewers"]
    wait_for(lambda: _enc(node)["not_encoded"] > idle + 10, what="idle again")
    assert _enc(node)["encoded_for"]["viewers"] <= encoded + 2


def test_snapshot_without_viewers_is_a_picture_of_now(run_node):
    node = run_node({**DEMAND, "camera": {"fps": 10}})
    wait_for(lambda: _enc(node)["not_encoded"] > 10, what="idle frames")
    asked = time.time()
    status, headers, body = request(node.url + "/snapshot.jpg")
    assert status == 200, body
    assert float(headers["X-Timestamp"]) >= asked - 0.15  # this frame, not an old one
    assert _decode(body).shape[:2] == (240, 320)
    wait_for(lambda: _enc(node)["encoded_for"]["snapshot"] >= 1, what="snapshot counted")
    metrics = request(node.url + "/metrics")[2].decode()
    assert 'camnode_frames_encoded_total{node_id="test",reason="snapshot"}' in metrics
    assert "camnode_frames_not_encoded_total" in metrics


def test_variant_stream_and_snapshot_have_the_asked_width(run_node):
    node = run_node({**DEMAND, "camera": {"fps": 15}})
    reader = MjpegReader(node.url + "/stream.mjpg?width=160&fps=5")
    try:
        _, jpeg, t0 = reader.read_part()
        assert _decode(jpeg).shape[:2] == (120, 160)
        n, start = 0, time.time()
        while time.time() - start < 2.0:
            _, jpeg, _ = reader.read_part()
            n += 1
        assert 5 <= n <= 14, f"{n} frames in 2 s of a 5 fps variant"
        enc = _enc(node)
        assert enc["variants"]["active"] == {"w160-f5": 1}
        assert enc["encoded_for"]["viewers"] == 0  # nobody watches the full stream
        status, _, body = request(node.url + "/snapshot.jpg?width=100")
        assert status == 200
        assert _decode(body).shape[1] == 100
    finally:
        reader.close()
    wait_for(lambda: not _enc(node)["variants"]["active"], timeout=8, what="variant dropped")
    assert request(node.url + "/stream.mjpg?width=abc")[0] == 400
    assert request(node.url + "/snapshot.jpg?width=5")[0] == 400


def _stream_outcome(sock: socket.socket, timeout: float) -> str:
    """What a viewer of /stream.mjpg gets: 'refused' (503), 'frames' (a JPEG part
    arrived), 'closed' (ended without a frame) or 'hung' (nothing at all for `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"Content-Type: image/jpeg" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return "refused" if data.startswith(b"HTTP/1.1 503") else "closed"
            data += chunk
            if data.startswith(b"HTTP/1.1 503"):
                return "refused"
    except socket.timeout:
        return "hung"
    return "frames"


def test_two_variants_admitted_at_once_over_the_cap_leave_no_viewer_hanging(run_node):
    """Both requests arrive before the worker hears from the node, so both pass its
    check of the cap (1); the node encodes one. The other's viewer used to wait for
    frames forever; now its stream is ended (or refused), and the first one plays."""
    node = run_node({"pipeline": {"encode": "demand", "max_variants": 1}})
    host, port = node.url.split("//")[1].split(":")
    socks = [socket.create_connection((host, int(port))) for _ in range(2)]
    try:
        for sock, width in zip(socks, (160, 80)):
            sock.sendall(f"GET /stream.mjpg?width={width} HTTP/1.1\r\nHost: {host}\r\n\r\n"
                         .encode())
        outcomes = sorted(_stream_outcome(sock, 8.0) for sock in socks)
        assert outcomes in (["closed", "frames"], ["frames", "refused"]), outcomes
    finally:
        for sock in socks:
            sock.close()


def test_variants_over_the_cap_are_refused(run_node):
    node = run_node({"pipeline": {"encode": "demand", "max_variants": 1}})
    first = MjpegReader(node.url + "/stream.mjpg?width=160")
    try:
        first.read_part()
        wait_for(lambda: _enc(node)["variants"]["active"] == {"w160": 1}, what="variant on")
        second = MjpegReader(node.url + "/stream.mjpg?width=80")
        assert second.status == 503
        second.sock.close()
        same = MjpegReader(node.url + "/stream.mjpg?width=160")  # the same variant is fine
        assert same.status == 200
        same.close()
    finally:
        first.close()


# -- camera JPEG passthrough ---------------------------------------------------------------
def _numbered_jpegs(width=320, height=240, count=20) -> list[bytes]:
    """Distinct numbered JPEGs, so the bytes a viewer gets can be told apart."""
    jpegs = []
    for i in range(count):
        img = np.full((height, width, 3), (i * 12) % 255, np.uint8)
        cv2.putText(img, str(i), (20, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 2,
                    (255, 255, 255), 3)
        jpegs.append(cv2.imencode(".jpg", img)[1].tobytes())
    return jpegs


@pytest.fixture
def mjpeg_camera():
    cam = MjpegCamera(_numbered_jpegs(), fps=10)
    url = cam.start()
    yield cam, url
    cam.stop()


def test_camera_jpegs_are_published_byte_for_byte_when_nothing_edits(run_node, mjpeg_camera):
    cam, url = mjpeg_camera
    node = run_node({"camera": {"source": url, "fps": 10},
                     "pipeline": {"encode": "demand", "module": "passthrough", "stamp": False}})
    wait_for(lambda: node.state()["source"]["status"] == "ok", what="camera connected")
    reader = MjpegReader(node.url + "/stream.mjpg")
    try:
        parts = [reader.read_part()[1] for _ in range(8)]
    finally:
        reader.close()
    foreign = [i for i, p in enumerate(parts) if p not in cam.jpegs]
    assert not foreign, f"frames {foreign} are not camera JPEGs; " + str(node.state()["encoding"])
    wait_for(lambda: _enc(node)["relayed"] >= 8, what="relayed frames counted")
    state = node.state()
    assert state["encoding"]["encoded_for"]["viewers"] == 0  # nothing decoded and re-encoded
    assert state["source"]["actual"]["format"] == "MJPG"
    assert (state["source"]["actual"]["width"], state["source"]["actual"]["height"]) == (320, 240)


def test_camera_jpegs_are_decoded_when_the_stamp_needs_pixels(run_node, mjpeg_camera):
    cam, url = mjpeg_camera
    node = run_node({"camera": {"source": url, "fps": 10},
                     "pipeline": {"encode": "demand", "module": "passthrough", "stamp": True}})
    reader = MjpegReader(node.url + "/stream.mjpg")
    try:
        parts = [reader.read_part()[1] for _ in range(5)]
    finally:
        reader.close()
    assert not any(p in cam.jpegs for p in parts), "stamped frames must be re-encoded"
    wait_for(lambda: _enc(node)["encoded_for"]["viewers"] >= 5, what="viewer encodes counted")
    assert _enc(node)["relayed"] == 0


def test_snapshot_from_a_passthrough_camera_is_its_jpeg(run_node, mjpeg_camera):
    cam, url = mjpeg_camera
    node = run_node({"camera": {"source": url, "fps": 10},
                     "pipeline": {"encode": "demand", "module": "passthrough", "stamp": False}})
    wait_for(lambda: _enc(node)["not_encoded"] > 5, what="idle camera frames")
    status, _, body = request(node.url + "/snapshot.jpg")
    assert status == 200
    assert body in cam.jpegs
    state = get_json(node.url + "/api/state")
    assert state["encoding"]["encoded"] <= state["encoding"]["encoded_for"]["placeholder"]



def test_camera_jpegs_are_decoded_small_for_motion_while_nobody_watches(run_node, mjpeg_camera):
    cam, url = mjpeg_camera
    node = run_node({"camera": {"source": url, "fps": 10},
                     "pipeline": {"encode": "demand", "module": "motion",
                                  "module_params": {"width": 80}}})
    wait_for(lambda: _enc(node)["decoded_reduced"] > 5, what="reduced decodes")
    assert node.state()["module_errors"] == 0
    reader = MjpegReader(node.url + "/stream.mjpg")  # a viewer: full-size frames again
    try:
        for _ in range(3):
            _, jpeg, _ = reader.read_part()
        assert _decode(jpeg).shape[:2] == (240, 320)
    finally:
        reader.close()


def test_event_snapshots_come_without_viewers(run_node):
    node = run_node({**DEMAND, "camera": {"fps": 15}, "pipeline": {"encode": "demand",
                                                                    "module": "motion"}})
    events = wait_for(lambda: [e for e in get_json(node.url + "/api/events")["events"]
                               if e.get("snapshot")], timeout=20, what="an event snapshot")
    status, headers, body = request(node.url + events[0]["snapshot"])
    assert status == 200 and _decode(body).shape[1] > 0
    enc = _enc(node)
    assert enc["encoded_for"]["viewers"] == 0  # nobody watched; the snapshot came anyway
