"""Synthetic camera scene: a textured room with objects that walk/roll through it.

It is the default camera source when no hardware is present, and ground truth for
tests: :meth:`SyntheticScene.objects_at` gives the exact boxes of what
:meth:`SyntheticScene.render` draws. Timeline per period (defaults to 12 s, all times
scale with ``period``):

* 0-2 s   empty, static room
* 2-8 s   a "person" walks from beyond the left edge to beyond the right edge
* 5-10 s  a "ball" rolls right-to-left across the lower part of the frame
* 10-12 s empty, static room

The background is computed once; ``render`` copies it (or one of a few precomputed
noisy variants, sensor noise at most ``NOISE_LEVEL`` grey levels) and pastes
precomputed object sprites: well under 1 ms at 640x480 on one core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

NOISE_LEVEL = 1
"""Max per-pixel deviation of a rendered empty frame from the clean background."""
NOISE_LAYERS = 4
NOISE_RATE = 15.0  # noise layer changes this many times per second of scene time

# Timeline as fractions of the period (12 s defaults: 2-8 s and 5-10 s).
PERSON_SPAN = (2.0 / 12.0, 8.0 / 12.0)
BALL_SPAN = (5.0 / 12.0, 10.0 / 12.0)
# Vertical placement in percent of the frame height.
PERSON_TOP, PERSON_BOTTOM = 26.0, 82.0
BALL_TOP, BALL_BOTTOM = 84.0, 96.0
FLOOR_Y = 62.0


@dataclass(frozen=True)
class SceneObject:
    """A visible object: ``box`` is (left, top, right, bottom) in percent, clipped to 0..100."""

    label: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class _Sprite:
    """A precomputed object image, its mask and, per column, the first/last+1 masked row."""

    img: np.ndarray
    mask: np.ndarray  # bool, h x w x 1
    col_top: np.ndarray
    col_bottom: np.ndarray

    @classmethod
    def of(cls, img: np.ndarray, mask: np.ndarray) -> _Sprite:
        rows = np.arange(mask.shape[0])[:, None]
        top = np.where(mask, rows, mask.shape[0]).min(axis=0)
        bottom = np.where(mask, rows + 1, 0).max(axis=0)
        return cls(img, mask[:, :, None], top, bottom)


def _paste(out: np.ndarray, sprite: np.ndarray, mask: np.ndarray, x0: int, y0: int) -> None:
    """Copy ``sprite`` where ``mask`` is set into ``out`` at (x0, y0), clipped to the frame."""
    h, w = mask.shape[:2]
    height, width = out.shape[:2]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
    if xa >= xb or ya >= yb:
        return
    src = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
    np.copyto(out[ya:yb, xa:xb], sprite[src], where=mask[src])


class SyntheticScene:
    """Deterministic synthetic room scene with ground-truth object boxes."""

    def __init__(self, width: int = 640, height: int = 480, seed: int = 1,
                 period: float = 12.0, noise: bool = True) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"frame too small: {width}x{height}")
        if period <= 0:
            raise ValueError("period must be positive")
        self.width, self.height, self.seed = int(width), int(height), int(seed)
        self.period, self.noise = float(period), bool(noise)
        rng = np.random.default_rng(seed)
        self._background = self._build_background(rng)
        self._background.flags.writeable = False
        self._layers = [self._background]
        if noise:
            self._layers = []
            for _ in range(NOISE_LAYERS):
                shape = self._background.shape
                delta = rng.integers(-NOISE_LEVEL, NOISE_LEVEL + 1, shape, np.int16)
                layer = np.clip(self._background + delta, 0, 255).astype(np.uint8)
                self._layers.append(layer)
        # Object sizes in pixels derive from the height so shapes keep their aspect ratio.
        self._person_h = max(4, round((PERSON_BOTTOM - PERSON_TOP) * self.height / 100))
        self._person_w = max(2, round(self._person_h * 0.3))
        self._ball_d = max(3, round((BALL_BOTTOM - BALL_TOP) * self.height / 100))
        self._person_sprites = [self._build_person(rng, gait) for gait in (0, 1)]
        self._ball_sprites = [self._build_ball(k * math.pi / 8) for k in range(4)]

    @property
    def background(self) -> np.ndarray:
        """The clean (noise-free, object-free) background, read-only."""
        return self._background

    # ----------------------------------------------------------------- timeline
    def _placements(self, t: float) -> list[tuple[str, _Sprite, int, int]]:
        """(label, sprite, x, y) of objects whose sprite overlaps the frame at time ``t``."""
        phase = (t % self.period) / self.period
        found = []
        a, b = PERSON_SPAN
        if a < phase < b:
            w = self._person_w
            x = round(-w + (self.width + w) * (phase - a) / (b - a))
            step = (x // max(1, w // 2)) % 2  # gait pose changes every half body width
            y = round(PERSON_TOP * self.height / 100)
            found.append(("person", self._person_sprites[step], x, y))
        a, b = BALL_SPAN
        if a < phase < b:
            d = self._ball_d
            x = round(self.width - (self.width + d) * (phase - a) / (b - a))
            k = math.floor(-x / (d / 2) / (math.pi / 8)) % len(self._ball_sprites)  # roll angle
            found.append(("ball", self._ball_sprites[k], x, round(BALL_TOP * self.height / 100)))
        return [p for p in found if -p[1].img.shape[1] < p[2] < self.width]

    def objects_at(self, t: float) -> list[SceneObject]:
        """Ground truth at scene time ``t`` seconds: tight boxes of the drawn (visible) pixels."""
        result = []
        for label, sprite, x, y in self._placements(t):
            xa, xb = max(x, 0), min(x + sprite.img.shape[1], self.width)
            cols = slice(xa - x, xb - x)  # every sprite column has at least one pixel
            top = max(y + int(sprite.col_top[cols].min()), 0)
            bottom = min(y + int(sprite.col_bottom[cols].max()), self.height)
            if xa < xb and top < bottom:
                box = (100.0 * xa / self.width, 100.0 * top / self.height,
                       100.0 * xb / self.width, 100.0 * bottom / self.height)
                result.append(SceneObject(label, box))
        return result

    def render(self, t: float, out: np.ndarray | None = None) -> np.ndarray:
        """Render the BGR uint8 frame (height x width x 3) at scene time ``t``."""
        layer = self._layers[int(math.floor(t * NOISE_RATE)) % len(self._layers)]
        if out is None:
            out = layer.copy()
        else:
            if out.shape != layer.shape or out.dtype != np.uint8:
                raise ValueError(f"out must be uint8 {layer.shape}, got {out.dtype} {out.shape}")
            np.copyto(out, layer)
        for _label, sprite, x, y in self._placements(t):
            _paste(out, sprite.img, sprite.mask, x, y)
        return out

    # ---------------------------------------------------------------- building
    def _build_person(self, rng: np.random.Generator, gait: int) -> _Sprite:
        w, h = self._person_w, self._person_h
        img = np.zeros((h, w, 3), np.uint8)
        mask = np.zeros((h, w), np.uint8)
        head_h, torso_b = max(2, round(h * 0.16)), max(3, round(h * 0.55))
        # Head (skin + dark hair), narrower than the shoulders; touches the top row.
        hx, hr = w // 2, max(1, round(w * 0.28))
        for target, colour in ((img, (120, 160, 215)), (mask, 255)):
            cv2.ellipse(target, (hx, head_h // 2), (hr, head_h // 2), 0, 0, 360, colour, -1)
        cv2.ellipse(img, (hx, head_h // 2), (hr, head_h // 2), 0, 180, 360, (30, 35, 45), -1)
        # Torso + arms: red striped shirt spanning the full box width.
        img[head_h:torso_b] = (40, 40, 205)
        img[head_h:torso_b:max(2, h // 40)] = (30, 30, 150)
        mask[head_h:torso_b] = 255
        # Legs: dark blue jeans down to the bottom row; two gait poses.
        spans = ((0.12, 0.45), (0.55, 0.88)) if gait == 0 else ((0.22, 0.50), (0.50, 0.78))
        for a, b in spans:
            xa, xb = round(a * w), max(round(a * w) + 1, round(b * w))
            img[torso_b:, xa:xb] = (110, 50, 25)
            mask[torso_b:, xa:xb] = 255
        grain = rng.integers(-14, 15, (h, w, 1), np.int16)
        img = np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        return _Sprite.of(img, mask > 0)

    def _build_ball(self, angle: float) -> _Sprite:
        d = self._ball_d
        c, r = (d - 1) / 2.0, d / 2.0
        yy, xx = np.mgrid[0:d, 0:d].astype(np.float32)
        dx, dy = xx - c, yy - c
        inside = dx * dx + dy * dy <= r * r
        sector = ((np.arctan2(dy, dx) + angle) // (math.pi / 4)).astype(int) % 2
        img = np.where(sector[:, :, None] == 0, np.uint8((0, 140, 255)), np.uint8((240, 240, 240)))
        shade = np.clip(1.15 - 0.5 * np.hypot(dx + 0.3 * r, dy + 0.3 * r) / r, 0.5, 1.0)
        img = (img * shade[:, :, None]).astype(np.uint8)
        return _Sprite.of(img, inside)

    def _build_background(self, rng: np.random.Generator) -> np.ndarray:
        W, H = self.width, self.height

        def px(x: float) -> int:
            return int(round(x * W / 100.0))

        def py(y: float) -> int:
            return int(round(y * H / 100.0))

        def smooth(rows: int, cols: int, h: int = H, w: int = W) -> np.ndarray:
            small = rng.random((max(2, rows), max(2, cols)), dtype=np.float32) - 0.5
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)

        img = np.empty((H, W, 3), np.float32)
        fy = py(FLOOR_Y)
        # Wall: warm vertical gradient with low-frequency plaster blotches.
        ramp = np.linspace(1.05, 0.88, fy, dtype=np.float32)[:, None, None]
        img[:fy] = np.float32((165, 190, 210)) * ramp
        img[:fy] += (smooth(H // 12, W // 12)[:fy] * 22)[:, :, None]
        # Floor: wooden planks with stretched grain and seams.
        img[fy:] = (55, 95, 140)
        grain = smooth(H // 3, W // 40) * 50 + smooth(H // 2, W // 6) * 20
        img[fy:] += grain[fy:, :, None]
        y, row = fy, 0
        while y < H:
            ph = max(2, py(3.0 + row * 1.2))  # planks grow towards the camera (perspective)
            img[y:y + ph] *= np.float32(rng.uniform(0.85, 1.1))
            img[y:y + 1] *= 0.55
            xj = int(rng.integers(0, W))
            img[y:y + ph, xj:xj + max(1, W // 400)] *= 0.55
            y, row = y + ph, row + 1
        cv2.rectangle(img, (0, fy - py(2)), (W, fy), (200, 215, 225), -1)  # skirting board
        # Window with sky, trees and a white frame.
        x0, y0, x1, y1 = px(7), py(9), px(29), py(46)
        sky = np.linspace(0.0, 1.0, y1 - y0, dtype=np.float32)[:, None, None]
        wh, ww = y1 - y0, x1 - x0
        img[y0:y1, x0:x1] = np.float32((250, 205, 140)) + np.float32((-5, 30, 75)) * sky
        trees = smooth(H // 25, W // 25, wh, ww) + np.linspace(-0.4, 0.3, wh)[:, None]
        leaf = trees > 0.0
        leaves = np.float32((50, 120, 70)) + smooth(H // 4, W // 4, wh, ww)[:, :, None] * 120
        img[y0:y1, x0:x1][leaf] = leaves[leaf]
        t = max(2, px(1.0))
        cv2.rectangle(img, (x0, y0), (x1, y1), (235, 240, 240), t)
        cv2.line(img, ((x0 + x1) // 2, y0), ((x0 + x1) // 2, y1), (235, 240, 240), t)
        cv2.line(img, (x0, (y0 + y1) // 2), (x1, (y0 + y1) // 2), (235, 240, 240), t)
        # Framed picture.
        x0, y0, x1, y1 = px(37), py(14), px(51), py(31)
        art = np.stack([smooth(6, 6, y1 - y0, x1 - x0) for _ in range(3)], axis=2)
        img[y0:y1, x0:x1] = 130 + art * 330
        cv2.rectangle(img, (x0, y0), (x1, y1), (30, 45, 70), max(2, px(0.8)))
        # Bookshelf with books.
        x0, y0, x1, y1 = px(62), py(10), px(93), py(FLOOR_Y)
        cv2.rectangle(img, (x0, y0), (x1, y1), (40, 70, 110), -1)
        img[y0:y1, x0:x1] += (grain[y0:y1, x0:x1] * 0.6)[:, :, None]
        board, inset = max(2, py(1.5)), max(2, px(1.2))
        cv2.rectangle(img, (x0 + inset, y0 + board), (x1 - inset, y1 - board), (28, 42, 62), -1)
        shelves = np.linspace(y0 + board, y1 - board, 5).astype(int)
        palette = np.float32([(40, 40, 160), (140, 70, 30), (40, 130, 60), (30, 150, 200),
                              (120, 40, 100), (200, 200, 190), (50, 60, 70), (30, 90, 170)])
        for s0, s1 in zip(shelves[:-1], shelves[1:]):
            cv2.rectangle(img, (x0, s1 - board // 2), (x1, s1 + board // 2), (45, 80, 125), -1)
            bx = x0 + inset
            while True:
                bw = max(2, px(float(rng.uniform(0.8, 2.2))))
                if bx + bw > x1 - inset:
                    break
                top = s1 - board // 2 - int((s1 - s0 - board) * rng.uniform(0.55, 0.92))
                colour = palette[rng.integers(len(palette))] * np.float32(rng.uniform(0.7, 1.2))
                base = s1 - board // 2 - 1
                cv2.rectangle(img, (bx, top), (bx + bw - 1, base), colour.tolist(), -1)
                band = top + (s1 - top) // 4
                cv2.line(img, (bx, band), (bx + bw - 1, band), (colour / 2).tolist(), 1 + H // 300)
                bx += bw + int(rng.integers(0, 2))
        # Sofa against the wall.
        x0, y0, x1, y1 = px(31), py(44), px(58), py(70)
        cv2.rectangle(img, (x0, y0), (x1, y1), (95, 115, 95), -1)
        for k in range(3):
            cx0 = x0 + (x1 - x0) * k // 3
            cx1 = cx0 + (x1 - x0) // 3
            cv2.rectangle(img, (cx0 + 3, y0 + 3), (cx1 - 3, py(58)), (110, 135, 110), -1)
        cv2.rectangle(img, (x0, py(58)), (x1, y1), (80, 98, 80), -1)
        img[y0:y1, x0:x1] += (smooth(H // 5, W // 5)[y0:y1, x0:x1] * 30)[:, :, None]
        # Rug on the floor with a woven pattern.
        x0, y0, x1, y1 = px(18), py(74), px(82), py(97)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        weave = np.sin(xx * (40.0 / W) * math.pi) * np.sin(yy * (40.0 / H) * math.pi)
        img[y0:y1, x0:x1] = np.float32((120, 60, 45)) + weave[:, :, None] * np.float32((30, 25, 35))
        cv2.rectangle(img, (x0, y0), (x1, y1), (60, 150, 190), max(2, py(1.5)))
        # Lighting falloff, lens softness, then fine luminance grain (like a real sensor).
        yy, xx = np.ogrid[0:H, 0:W]
        r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
        img *= (1.0 - 0.18 * r2).astype(np.float32)[:, :, None]
        img = cv2.GaussianBlur(img, (3, 3), 0)
        img += rng.normal(0.0, 1.0, (H, W)).astype(np.float32)[:, :, None]
        return np.clip(img, 0, 255).astype(np.uint8)


def jpeg_size(frame: np.ndarray, quality: int = 80) -> int:
    """Size in bytes of ``frame`` encoded as JPEG at ``quality``."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return len(buf)


if __name__ == "__main__":
    import time

    cv2.setNumThreads(1)
    for w, h in ((640, 480), (1280, 720)):
        t0 = time.perf_counter()
        scene = SyntheticScene(w, h)
        built = (time.perf_counter() - t0) * 1000
        frame = np.empty((h, w, 3), np.uint8)
        n = 300
        t0 = time.perf_counter()
        for i in range(n):
            scene.render(i / 25.0, out=frame)
        ms = (time.perf_counter() - t0) * 1000 / n
        sizes = [jpeg_size(scene.render(t)) / 1024 for t in (1.0, 5.0, 6.5)]
        print(f"{w}x{h}: build {built:.0f} ms, render {ms:.2f} ms/frame, "
              f"JPEG q80 {min(sizes):.1f}-{max(sizes):.1f} KB")
