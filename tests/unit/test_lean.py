"""Encoding on demand, variants and JPEG helpers, without processes (node/encoder.py,
node/variants.py, node/mjpeg.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from camnode.node import wire
from camnode.node.capture import CapturedFrame
from camnode.node.encoder import Encoder
from camnode.node.events import make_snapshot
from camnode.node.mjpeg import as_jpeg, jpeg_size
from camnode.node.variants import Variant, VariantError, choose, parse_key, parse_request


class FakePublisher:
    def __init__(self):
        self.frames, self.variants = [], []

    def frame(self, header, jpeg):
        self.frames.append((header, jpeg))

    def variant(self, header, jpeg):
        self.variants.append((header, jpeg))


def _jpeg(w=64, h=48, value=90) -> bytes:
    return cv2.imencode(".jpg", np.full((h, w, 3), value, np.uint8))[1].tobytes()


def test_jpeg_size_is_read_from_the_header():
    assert jpeg_size(_jpeg(64, 48)) == (64, 48)
    assert jpeg_size(b"not a jpeg") is None
    assert as_jpeg(_jpeg(33, 17)).width == 33


@pytest.mark.parametrize("width,fps,key", [("320", "5", "w320-f5"), ("320", None, "w320"),
                                           (None, "2.5", "full-f2.5"), (None, None, "")])
def test_variant_keys_round_trip(width, fps, key):
    assert parse_request(width, fps) == key
    if key:
        w, f = parse_key(key)
        assert (w, f) == (int(width) if width else None, float(fps) if fps else None)


@pytest.mark.parametrize("width,fps", [("abc", None), ("8", None), (None, "0"),
                                       (None, "nan"), (None, "inf"), ("99999", None)])
def test_bad_variant_arguments_are_refused(width, fps):
    with pytest.raises(VariantError):
        parse_request(width, fps)


def test_variant_pacing_keeps_the_asked_rate():
    v = Variant("w320-f10", 320, 10.0)
    shown = sum(v.due(i / 15) for i in range(150))  # 10 s of a 15 fps source
    assert 95 <= shown <= 101


def test_variant_cap_keeps_the_most_watched():
    assert choose({"w320": 1, "w160": 5, "w80": 2}, 2) == (["w160", "w80"], ["w320"])


def test_nobody_watching_means_no_encode_and_a_request_encodes_the_next_frame():
    pub = FakePublisher()
    enc = Encoder(pub, 80)
    img = np.zeros((48, 64, 3), np.uint8)
    plan = enc.plan(1.0)
    assert not plan and enc.publish(img, 1.0, "m", wire.KIND_LIVE, plan) is None
    enc.request()
    plan = enc.plan(2.0)
    assert plan.full and plan.reasons == ("snapshot",)
    assert enc.publish(img, 2.0, "m", wire.KIND_LIVE, plan) is not None
    assert not enc.plan(3.0)  # one frame only
    enc.set_demand(1, {})
    assert enc.plan(4.0).reasons == ("viewers",)
    assert enc.encoded_for["snapshot"] == 1 and enc.not_encoded == 1


def test_variants_of_one_width_share_one_encode():
    pub = FakePublisher()
    enc = Encoder(pub, 80)
    enc.set_demand(0, {"w32": 1, "w32-f5": 2})
    plan = enc.plan(1.0)
    enc.publish(np.zeros((48, 64, 3), np.uint8), 1.0, "m", wire.KIND_LIVE, plan)
    assert {h.variant for h, _ in pub.variants} == {"w32", "w32-f5"}
    assert all(h.width == 32 and h.height == 24 for h, _ in pub.variants)
    assert enc.encoded_for["variant"] == 1 and not pub.frames


def test_a_full_size_variant_takes_the_frames_jpeg_instead_of_a_second_encode():
    pub = FakePublisher()
    enc = Encoder(pub, 80)
    enc.set_demand(1, {"full-f5": 1})  # a stream viewer and a slowed, full-size variant
    enc.publish(np.zeros((48, 64, 3), np.uint8), 1.0, "m", wire.KIND_LIVE, enc.plan(1.0))
    [(_, full)] = pub.frames
    [(header, jpeg)] = pub.variants
    assert (header.variant, jpeg) == ("full-f5", full) and enc.encoded_for["variant"] == 0
    data = _jpeg()  # from a camera's JPEG, relayed: not even decoded
    frame = CapturedFrame(2, 2.0, jpeg=as_jpeg(data))
    assert enc.relay(frame, "passthrough", stamp_on=False, fits=True)
    assert pub.variants[-1][1] == data and not frame.decoded


def test_relay_publishes_the_camera_bytes_and_skips_unwatched_frames():
    pub = FakePublisher()
    enc = Encoder(pub, 80)
    data = _jpeg()
    frame = CapturedFrame(1, 1.0, jpeg=as_jpeg(data))
    assert enc.relay(frame, "passthrough", stamp_on=False, fits=True)
    assert not pub.frames and not frame.decoded  # nobody watched: not even decoded
    enc.set_demand(1, {})
    frame = CapturedFrame(2, 2.0, jpeg=as_jpeg(data))
    assert enc.relay(frame, "passthrough", stamp_on=False, fits=True)
    assert pub.frames[-1][1] == data and not frame.decoded
    frame = CapturedFrame(3, 3.0, jpeg=as_jpeg(data))
    assert not enc.relay(frame, "passthrough", stamp_on=True, fits=True)  # stamp: decode
    assert enc.plan(3.0).full  # the pipeline gets the same plan back


def test_event_snapshot_from_pixels_when_nothing_was_encoded():
    img = np.full((480, 640, 3), 120, np.uint8)
    snap = make_snapshot(img, 240, 100_000)
    out = cv2.imdecode(np.frombuffer(snap, np.uint8), cv2.IMREAD_COLOR)
    assert out.shape[:2] == (240, 320)
    assert make_snapshot(_jpeg(), 240, 100_000) is not None


def test_a_camera_jpeg_is_decoded_small_for_a_module_that_can_use_it_when_nobody_looks():
    class Module:
        @staticmethod
        def input_width():
            return 160

    enc = Encoder(FakePublisher(), 80)
    frame = CapturedFrame(1, 1.0, jpeg=as_jpeg(_jpeg(640, 480)))
    assert enc.pixels(frame, Module, fits=True).shape[:2] == (120, 160)  # 1/4 scale
    assert not frame.decoded and enc.reduced == 1
    enc.set_demand(1, {})
    frame = CapturedFrame(2, 2.0, jpeg=as_jpeg(_jpeg(640, 480)))
    assert enc.pixels(frame, Module, fits=True).shape[:2] == (480, 640)  # watched: full


def test_a_snapshot_command_waits_for_the_next_frame_when_nothing_is_fresh():
    import threading

    pub = FakePublisher()
    enc = Encoder(pub, 80)
    img = np.zeros((48, 64, 3), np.uint8)

    def pipeline():  # the pipeline thread: one frame a few ms later
        for i in range(50):
            plan = enc.plan(float(i))
            enc.publish(img, float(i), "m", wire.KIND_LIVE, plan)
            if plan:
                return
            threading.Event().wait(0.01)

    t = threading.Thread(target=pipeline)
    t.start()
    got = enc.picture(timeout=2.0)
    t.join()
    assert got is not None and got[2] == wire.KIND_LIVE
    assert enc.encoded_for["snapshot"] == 1
    assert enc.picture(timeout=0.05) == got  # fresh now: no new encode asked
