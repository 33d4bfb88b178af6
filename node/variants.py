"""Stream variants: smaller or slower copies of the stream for dashboards.

`/stream.mjpg?width=320&fps=5` names the variant `w320-f5`. Web workers count their
viewers per variant and report them with their other viewers; the node encodes each
variant once per due frame for all its viewers (node/encoder.py), only while someone
watches it, and at most `pipeline.max_variants` at once. Naming a variant from the
request (`parse_request`, `variant_key`) is part of the wire format and lives in
node/wire.py, the one node module web workers import; they are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from camnode.node.wire import (MAX_FPS, MAX_WIDTH, MIN_FPS, MIN_WIDTH,  # noqa: F401 (re-exported)
                       VariantError, parse_key, parse_request, variant_key)


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
