"""The MJPEG stream as viewers see it: many at once, slow ones, ones that leave."""

from __future__ import annotations

import socket
import statistics
import threading
import time

import cv2
import numpy as np

from tests.integration.conftest import MjpegReader, get_json, request, wait_for


def test_several_viewers_get_valid_jpegs_with_increasing_timestamps(run_node):
    node = run_node()
    readers = [MjpegReader(node.url + "/stream.mjpg") for _ in range(4)]
    try:
        for r in readers:
            assert r.status == 200
            assert r.headers["content-type"].startswith("multipart/x-mixed-replace")
            assert "no-cache" in r.headers["cache-control"]
        results = {i: [] for i in range(len(readers))}

        def read(i: int) -> None:
            for _ in range(12):
                results[i].append(readers[i].read_part())

        threads = [threading.Thread(target=read, args=(i,)) for i in range(len(readers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        for parts in results.values():
            assert len(parts) == 12
            stamps = [float(h["x-timestamp"]) for h, _, _ in parts]
            seqs = [int(h["x-frame-seq"]) for h, _, _ in parts]
            assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            for headers, jpeg, received in parts:
                assert headers["content-type"] == "image/jpeg"
                assert int(headers["content-length"]) == len(jpeg)
                img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                assert img is not None and img.shape == (240, 320, 3)
                assert received - float(headers["x-timestamp"]) < 1.0
        # Frames are encoded once: every viewer got byte-identical JPEGs for a frame seq.
        by_seq: dict[int, set] = {}
        for parts in results.values():
            for h, jpeg, _ in parts:
                by_seq.setdefault(int(h["x-frame-seq"]), set()).add(jpeg)
        assert all(len(v) == 1 for v in by_seq.values())
    finally:
        for r in readers:
            r.close()


def test_newest_frame_is_sent_at_once_on_connect(run_node):
    node = run_node({"camera": {"fps": 2}})
    wait_for(lambda: node.state()["stream"]["frame_kind"] == "live", what="a live frame")
    t0 = time.monotonic()
    r = MjpegReader(node.url + "/stream.mjpg")
    r.read_part()
    r.close()
    # At 2 fps the next frame is up to 500 ms away; the held one must come first.
    assert time.monotonic() - t0 < 0.4


def test_stalled_viewer_does_not_slow_the_others(run_node):
    node = run_node({"camera": {"fps": 20, "width": 640, "height": 480, "jpeg_quality": 90}})
    stalled = [MjpegReader(node.url + "/stream.mjpg", rcvbuf=4096) for _ in range(3)]
    try:
        for s in stalled:
            s.read_part()  # then never read again
        reader = MjpegReader(node.url + "/stream.mjpg")
        reader.read_part()
        start = time.time()
        lags, n = [], 0
        while time.time() - start < 4.0:
            headers, _, received = reader.read_part()
            lags.append(received - float(headers["x-timestamp"]))
            n += 1
        reader.close()
        fps = n / (time.time() - start)
        assert fps >= 15, f"a reading viewer got {fps:.1f} fps next to stalled ones"
        assert statistics.quantiles(lags, n=20)[18] < 0.3, "p95 lag too high"
        state = node.state()
        assert state["worker"]["viewers"] == 3  # the stalled ones are still connected
    finally:
        for s in stalled:
            s.close()


def test_disconnected_viewer_is_removed(run_node):
    node = run_node()
    a = MjpegReader(node.url + "/stream.mjpg")
    b = MjpegReader(node.url + "/stream.mjpg")
    a.read_part()
    b.read_part()
    wait_for(lambda: node.state()["worker"]["viewers"] == 2, what="2 viewers")
    a.close()
    wait_for(lambda: node.state()["worker"]["viewers"] == 1, timeout=5, what="1 viewer")
    # The node's own count (MQTT and the page show this one) follows too.
    wait_for(lambda: node.state()["viewers"] == 1, timeout=5, what="node viewer count")
    clients = node.state()["worker"]["clients"]
    assert len(clients) == 1 and clients[0]["frames"] >= 1
    b.close()
    wait_for(lambda: node.state()["worker"]["viewers"] == 0, timeout=5, what="no viewers")


def test_per_client_fps_is_reported(run_node):
    node = run_node({"camera": {"fps": 10}})
    r = MjpegReader(node.url + "/stream.mjpg")
    stop = threading.Event()

    def drain() -> None:
        try:
            while not stop.is_set():
                r.read_part()
        except (OSError, ValueError):
            pass  # the test closed the socket

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    try:
        fps = wait_for(lambda: [c["fps"] for c in node.state()["worker"]["clients"]
                                if c["fps"] >= 7], timeout=10, what="client fps near 10")
        assert fps[0] <= 12
    finally:
        stop.set()
        r.close()


def test_snapshot_is_the_newest_frame(run_node):
    node = run_node()
    status, headers, body = request(node.url + "/snapshot.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (240, 320, 3)
    assert abs(time.time() - float(headers["X-Timestamp"])) < 2


def test_too_many_viewers_get_503_not_a_hang(run_node, write_config):
    node = run_node({"web": {"max_clients": 2}})
    readers = [MjpegReader(node.url + "/stream.mjpg") for _ in range(2)]
    try:
        third = MjpegReader(node.url + "/stream.mjpg")
        assert third.status == 503
        third.close()
    finally:
        for r in readers:
            r.close()


def test_two_workers_share_the_port_and_the_viewer_count(run_node):
    node = run_node({"web": {"workers": 2}})
    readers = [MjpegReader(node.url + "/stream.mjpg") for _ in range(6)]
    try:
        for r in readers:
            r.read_part()
        wait_for(lambda: node.state()["viewers"] == 6 and node.state()["web_workers"] == 2,
                 what="6 viewers over 2 workers")
    finally:
        for r in readers:
            r.close()
