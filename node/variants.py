"""Stream variants: smaller or slower copies of the stream for dashboards.

`/stream.mjpg?width=320&fps=5` names the variant `w320-f5`. Web workers count their
viewers per variant and report them with their other viewers; the node encodes each
variant once per due frame for all its viewers (node/encoder.py), only while someone
watches it, and at most `pipeline.max_variants` at once. The key functions are pure
(no OpenCV), so web workers use them too: this is part of the wire format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_WIDTH, MAX_WIDTH = 16, 7680
MIN_FPS, MAX_FPS = 0.1, 120.0


class VariantError(ValueError):
    """A width or fps a variant cannot have; the message says which and why."""


def variant_key(width: int | None = None, fps: float | None = None) -> str:
    """The canonical name of a variant, "" for the plain stream (no width, no fps)."""
    if not width and not fps:
        return ""
    key = f"w{int(width)}" if width else "full"
    if fps:
        key += f"-f{fps:g}"
    return key


def parse_request(width: str | None, fps: str | None) -> str:
    """The key for the `width` and `fps` query arguments (strings, or None when absent);
    raises VariantError for values out of range or not numbers."""
    w = f = None
    if width not in (None, ""):
        try:
            w = int(width)
        except ValueError:
            raise VariantError(f"width must be a whole number of pixels, not {width!r}") from None
        if not MIN_WIDTH <= w <= MAX_WIDTH:
            raise VariantError(f"width must be {MIN_WIDTH}..{MAX_WIDTH} pixels")
    if fps not in (None, ""):
        try:
            f = float(fps)
        except ValueError:
            raise VariantError(f"fps must be a number, not {fps!r}") from None
        if not math.isfinite(f) or not MIN_FPS <= f <= MAX_FPS:
            raise VariantError(f"fps must be {MIN_FPS:g}..{MAX_FPS:g}")
        f = round(f, 1)
    return variant_key(w, f)


def parse_key(key: str) -> tuple[int | None, float | None]:
    """(width, fps) of a key made by `variant_key`; raises VariantError otherwise."""
    width = fps = None
    head, _, tail = key.partition("-")
    try:
        if head != "full":
            if not head.startswith("w"):
                raise ValueError(key)
            width = int(head[1:])
        if tail:
            if not tail.startswith("f"):
                raise ValueError(key)
            fps = float(tail[1:])
    except ValueError:
        raise VariantError(f"not a variant: {key!r}") from None
    if variant_key(width, fps) != key:
        raise VariantError(f"not a canonical variant: {key!r}")
    return width, fps


@dataclass
class Variant:
    """One variant the node encodes; paced on capture time. Pipeline thread only."""

    key: str
    width: int | None
    fps: float | None
    next_at: float = 0.0
    encoded: int = 0

    def due(self, ts: float) -> bool:
        """Whether the frame captured at `ts` is one this variant shows (and take it)."""
        if not self.fps:
            return True
        period = 1.0 / self.fps
        if ts + 1e-3 < self.next_at:
            return False
        # Keep the average rate (next_at += period) unless we fell far behind.
        self.next_at = self.next_at + period if ts - self.next_at < period else ts + period
        return True

    def size_for(self, width: int, height: int) -> tuple[int, int] | None:
        """The (w, h) to scale a width x height frame to; None to keep it as it is."""
        if not self.width or self.width >= width:
            return None
        h = max(2, round(height * self.width / width / 2) * 2)
        return self.width, h


def choose(demand: dict[str, int], cap: int) -> tuple[list[str], list[str]]:
    """Which demanded variants to encode (most viewers first, then by name) and which
    are refused over the cap."""
    ordered = sorted((k for k, n in demand.items() if k and n > 0),
                     key=lambda k: (-demand[k], k))
    return ordered[:cap], ordered[cap:]
