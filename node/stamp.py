"""The stamp drawn on every frame after processing, and the placeholder frames.

Called by the pipeline thread only. Like the seed: module name top-left, date and time
bottom-left, plus fps bottom-right; a module error is written in red under the name,
and a note (a slow module) in orange under that.
"""

from __future__ import annotations

import time

import numpy as np

from camnode.processors.common import draw_text

RED = (0, 0, 255)
WHITE = (255, 255, 255)
ORANGE = (0, 165, 255)


def stamp(frame: np.ndarray, module: str, ts: float, fps: float,
          error: str | None = None, note: str | None = None) -> None:
    """Draw module name, local date/time of capture and fps onto `frame` in place."""
    h, w = frame.shape[:2]
    margin = max(4, h // 60)
    box = draw_text(frame, module, (margin, margin), scale=0.8)
    if error:
        box = draw_text(frame, f"error: {error}"[:80], (margin, box[3] + margin), scale=0.6,
                        colour=RED)
    if note:
        draw_text(frame, note[:80], (margin, box[3] + margin), scale=0.6, colour=ORANGE)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    draw_text(frame, when, (margin, h - margin), scale=0.7, anchor="bottom-left")
    draw_text(frame, f"{fps:4.1f} fps", (w - margin, h - margin), scale=0.7,
              anchor="bottom-right")


def placeholder(width: int, height: int, title: str, detail: str = "",
                ts: float | None = None) -> np.ndarray:
    """A dark frame saying why there is no picture ("NO SIGNAL", "STOPPED")."""
    frame = np.full((height, width, 3), 32, np.uint8)
    draw_text(frame, title, (width // 2, height // 2), scale=2.0, anchor="center")
    if detail:
        draw_text(frame, detail[:70], (width // 2, height // 2 + height // 8), scale=0.6,
                  anchor="center")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts or time.time()))
    draw_text(frame, when, (max(4, height // 60), height - max(4, height // 60)), scale=0.7,
              anchor="bottom-left")
    return frame
