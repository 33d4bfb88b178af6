"""Encoding on demand: a frame is stamped and JPEG-encoded only when someone needs it.

Who needs a picture, frame by frame: stream viewers (reported by web workers through
`viewers/report`, and at once when the first one of a stream or variant connects), a
snapshot request (web `/snapshot.jpg`, the MQTT `snapshot` command), each variant being
watched (node/variants.py), or `pipeline.encode` = "always". With nobody, the module
still runs (detections need frames in) but nothing is stamped or encoded; an event's
snapshot is then made from the frame's pixels by the events thread.

When the source gives JPEG (node/mjpeg.py) and nothing edits frames (module
`passthrough`, stamp off), the camera's bytes are published as they came: no decode,
no encode ("relayed"). With a passthrough module and nobody watching, the frame is not
even decoded.

Threads: the pipeline thread is the only caller of `plan`, `publish` and `relay`; the
dispatcher thread (viewer reports, commands) and the state thread call `set_demand`,
`request`, `picture` and `status`. Shared fields are guarded by one lock (a Condition,
so `picture` can wait for the next frame).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from camnode.node import wire
from camnode.node.publisher import Publisher
from camnode.node.variants import Variant, choose, parse_key, variant_key

log = logging.getLogger(__name__)

FRESH_S = 0.3  # a full-size JPEG this recent answers a snapshot without a new encode
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}
REASONS = ("viewers", "snapshot", "variant", "always", "placeholder")


@dataclass
class Plan:
    """What one frame must be turned into: the full-size JPEG and/or some variants."""

    full: bool = False
    reasons: tuple[str, ...] = ()
    variants: list[Variant] = field(default_factory=list)
    shots: frozenset = frozenset()  # the one-shot requests it answers

    def __bool__(self) -> bool:
        return self.full or bool(self.variants)


ALWAYS = Plan(True, ("placeholder",))


class Encoder:
    """Decides per frame who needs a picture, encodes the stream and each variant once."""

    def __init__(self, publisher: Publisher, jpeg_quality: int, mode: str = "demand",
                 max_variants: int = 4):
        self.publisher = publisher
        self.jpeg_quality = jpeg_quality
        self.mode = mode
        self.max_variants = max_variants
        self._cond = threading.Condition()
        self._full_viewers = 0
        self._demand: dict[str, int] = {}
        self._active: list[str] = []
        self._refused: list[str] = []
        self._shots: set[str] = set()  # one-shot snapshots: "" full size, or "w320"
        self._variants: dict[str, Variant] = {}  # pacing state, pipeline thread only
        self._stash: tuple[float, Plan] | None = None
        self.seq = 0
        self.published = 0  # full-size frames published (encoded or relayed)
        self.last_jpeg: tuple[bytes, float, str] | None = None
        self._full_at = 0.0  # monotonic time of the newest full-size live frame
        self.encoded = 0  # full-size frames JPEG-encoded
        self.encoded_for: collections.Counter = collections.Counter({r: 0 for r in REASONS})
        self.not_encoded = 0  # frames nobody needed a picture of
        self.relayed = 0  # camera JPEGs published undecoded
        self.variant_frames = 0
        self.reduced = 0  # camera JPEGs decoded at a reduced size for the module

    # -- demand (dispatcher / state threads) ------------------------------------------
    def set_demand(self, full_viewers: int, variants: dict[str, int]) -> None:
        """Viewers of the plain stream and of each variant, over all web workers."""
        clean = {}
        for key, n in variants.items():
            try:
                parse_key(key)
            except ValueError:
                continue
            if n > 0:
                clean[key] = n
        active, refused = choose(clean, self.max_variants)
        with self._cond:
            changed = set(refused) - set(self._refused)
            self._full_viewers, self._demand = max(0, full_viewers), clean
            self._active, self._refused = active, refused
        if changed:
            log.warning("variants refused, over the cap of %d: %s", self.max_variants,
                        ", ".join(sorted(changed)))

    def request(self, width: int | None = None) -> None:
        """Encode the next frame for a snapshot, at full size or scaled to `width`."""
        with self._cond:
            self._shots.add(variant_key(width) if width else "")

    def picture(self, timeout: float = 2.0) -> tuple[bytes, float, str] | None:
        """A full-size JPEG of now for a snapshot (dispatcher thread): the newest one if it
        is fresh, else the next frame's (asked for and waited on); None if none comes."""
        with self._cond:
            if self.last_jpeg is not None and (self.mode == "always" or
                                               time.monotonic() - self._full_at < FRESH_S):
                return self.last_jpeg
            before = self.published
            self._shots.add("")
            self._cond.wait_for(lambda: self.published > before, timeout)
            return self.last_jpeg if self.published > before else None

    # -- pipeline thread ------------------------------------------------------------------
    def plan(self, ts: float) -> Plan:
        """Who needs a picture of the frame captured at `ts` (once per frame)."""
        stash, self._stash = self._stash, None
        if stash is not None and stash[0] == ts:
            return stash[1]
        with self._cond:
            if stash is not None:  # planned for a frame that was then dropped: ask again
                self._shots |= stash[1].shots
            shots, self._shots = self._shots, set()
            full_viewers, active = self._full_viewers, list(self._active)
        reasons = []
        if self.mode == "always":
            reasons.append("always")
        if full_viewers > 0:
            reasons.append("viewers")
        if "" in shots:
            reasons.append("snapshot")
        for gone in set(self._variants) - set(active):
            del self._variants[gone]
        variants = []
        for key in active:
            v = self._variants.get(key)
            if v is None:
                v = self._variants[key] = Variant(key, *parse_key(key))
            if v.due(ts):
                variants.append(v)
        for key in shots - {""} - {v.key for v in variants}:
            variants.append(Variant(key, *parse_key(key)))
        return Plan(bool(reasons), tuple(reasons), variants, frozenset(shots))

    def publish(self, image: np.ndarray, ts: float, module: str, kind: str,
                plan: Plan | None = None) -> bytes | None:
        """Encode what `plan` asks (None: the full frame, e.g. a placeholder) and publish
        it; returns the full-size JPEG, or None when not encoded."""
        plan = ALWAYS if plan is None else plan
        if not plan:
            self.not_encoded += 1
            return None
        jpeg = None
        h, w = image.shape[:2]
        if plan.full:
            jpeg = self._encode(image, kind)
            if jpeg is not None:
                self.encoded += 1
                for reason in plan.reasons:
                    self.encoded_for[reason] += 1
                self._send_full(jpeg, ts, w, h, module, kind)
        if plan.variants:
            self._send_variants(lambda: image, (w, h), ts, module, kind, plan.variants,
                                full=jpeg)
        return jpeg

    def relay(self, frame, module: str, stamp_on: bool, fits: bool) -> bool:
        """For a module that leaves frames as they are: publish the camera's JPEG without
        decoding when nothing else is drawn on it, skip the frame entirely when nobody
        needs a picture. True when the frame is dealt with; False: process it as usual."""
        plan = self.plan(frame.ts)
        if not plan:
            self.not_encoded += 1
            return True
        if frame.jpeg is None or stamp_on or not fits:
            self._stash = (frame.ts, plan)  # the pipeline's own plan() gets this one back
            return False
        jpeg = frame.jpeg
        if plan.full:
            self.relayed += 1
            self._send_full(jpeg.data, frame.ts, jpeg.width, jpeg.height, module,
                            wire.KIND_LIVE)
        if plan.variants:  # decoded only for a variant of another width
            self._send_variants(lambda: frame.image, (jpeg.width, jpeg.height), frame.ts,
                                module, wire.KIND_LIVE, plan.variants, full=jpeg.data)
        return True

    def pixels(self, frame, module, fits: bool) -> np.ndarray:
        """The frame's pixels for the module. A camera JPEG is decoded at a reduced size
        (libjpeg's 1/2, 1/4, 1/8 scaling: a fraction of the work) when the module says
        how narrow a frame it can use (`input_width()`) and nobody needs a picture of
        this frame; otherwise at full size."""
        fn = getattr(module, "input_width", None)
        if frame.jpeg is None or frame.decoded or not fits or not callable(fn):
            return frame.image
        try:
            want = int(fn())
        except Exception:  # a module bug: decode fully, the module's own errors show
            return frame.image
        plan = self.plan(frame.ts)
        self._stash = (frame.ts, plan)  # the pipeline's plan() gets this one back
        factor = next((f for f in (8, 4, 2) if frame.jpeg.width // f >= want), 1)
        if plan or factor == 1:
            return frame.image
        img = cv2.imdecode(np.frombuffer(frame.jpeg.data, np.uint8), _REDUCED[factor])
        if img is None:
            return frame.image
        self.reduced += 1
        return img

    def _encode(self, image: np.ndarray, kind: str) -> bytes | None:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            log.error("JPEG encoding failed for a %s frame", kind)
            return None
        return buf.tobytes()

    def _send_full(self, jpeg: bytes, ts: float, w: int, h: int, module: str,
                   kind: str) -> None:
        self.seq += 1
        self.publisher.frame(wire.FrameHeader(self.seq, ts, w, h, module, kind), jpeg)
        with self._cond:
            self.published += 1
            self.last_jpeg = (jpeg, ts, kind)
            if kind == wire.KIND_LIVE:
                self._full_at = time.monotonic()
            self._cond.notify_all()

    def _send_variants(self, pixels: Callable[[], np.ndarray], frame_size: tuple[int, int],
                       ts: float, module: str, kind: str, variants: list[Variant],
                       full: bytes | None = None) -> None:
        """Each due variant once; those of one width share an encode, and a full-size
        one (only slowed) takes `full`, the frame's full-size JPEG, when there is one.
        `pixels` is called only when something must be encoded."""
        w, h = frame_size
        done: dict[tuple[int, int] | None, tuple[bytes, int, int]] = \
            {None: (full, w, h)} if full is not None else {}
        for v in variants:
            size = v.size_for(w, h)
            if size not in done:  # two variants of one width share the encode
                image = pixels()
                img = image if size is None else cv2.resize(image, size,
                                                             interpolation=cv2.INTER_AREA)
                jpeg = self._encode(img, kind)
                if jpeg is None:
                    continue
                done[size] = (jpeg, img.shape[1], img.shape[0])
                self.encoded_for["variant"] += 1
            jpeg, vw, vh = done[size]
            self.seq += 1
            v.encoded += 1
            self.variant_frames += 1
            self.publisher.variant(wire.FrameHeader(self.seq, ts, vw, vh, module, kind,
                                                    variant=v.key), jpeg)

    # -- what the state shows (state thread) ------------------------------------------
    def status(self) -> dict:
        with self._cond:
            demand, active, refused = dict(self._demand), list(self._active), \
                list(self._refused)
            full_viewers = self._full_viewers
        return {
            "mode": self.mode,
            "encoded": self.encoded,
            "encoded_for": dict(self.encoded_for),
            "not_encoded": self.not_encoded,
            "relayed": self.relayed,
            "variant_frames": self.variant_frames,
            "decoded_reduced": self.reduced,
            "stream_viewers": full_viewers,
            "variants": {"active": {k: demand[k] for k in active}, "refused": refused,
                         "max": self.max_variants},
        }
