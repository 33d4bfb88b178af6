"""Event snapshots: the frame's JPEG scaled down, with the new objects' boxes drawn.

Called by the events thread (node/events.py) when an event starts.
"""

from __future__ import annotations

import cv2
import numpy as np


def make_snapshot(jpeg: bytes | np.ndarray, height: int, max_bytes: int,
                  boxes: list[tuple[dict, str]] | None = None) -> bytes | None:
    """Scale a frame's JPEG to `height`, draw `boxes` (event boxes in percent, with
    their labels) and re-encode it under `max_bytes`. The pipeline hands the frame's
    pixels instead of a JPEG when nobody watched it (nothing was encoded)."""
    if isinstance(jpeg, np.ndarray):
        img = jpeg.copy()  # the events thread's own copy: the boxes are drawn on it
    else:
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) if jpeg else None
    if img is None:
        return None
    h, w = img.shape[:2]
    if h > height:
        img = cv2.resize(img, (max(1, round(w * height / h)), height),
                         interpolation=cv2.INTER_AREA)
    draw_boxes(img, boxes or [])
    for quality in (85, 70, 55, 40, 25):
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buf) <= max_bytes:
            return buf.tobytes()
    return None


SNAPSHOT_BOX = (0, 255, 255)  # yellow: visible on most scenes


def draw_boxes(img: np.ndarray, boxes: list[tuple[dict, str]]) -> None:
    """Draw event boxes ({left, top, right, bottom} in percent) with their labels."""
    h, w = img.shape[:2]
    thick = max(2, h // 180)
    for box, label in boxes:
        x1, y1 = round(box["left"] * w / 100), round(box["top"] * h / 100)
        x2, y2 = round(box["right"] * w / 100) - 1, round(box["bottom"] * h / 100) - 1
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 0), thick + 2)
        cv2.rectangle(img, (x1, y1), (x2, y2), SNAPSHOT_BOX, thick)
        scale = max(0.4, h / 600)
        org = (x1 + thick + 2, max(y1 + thick + int(14 * scale), int(14 * scale)))
        cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 1,
                    cv2.LINE_AA)
        cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, SNAPSHOT_BOX, 1,
                    cv2.LINE_AA)
