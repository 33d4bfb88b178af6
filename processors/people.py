"""People: OpenCV's HOG + linear SVM pedestrian detector (full standing bodies).

HOG is slow (tens of milliseconds per frame), so it runs beside the stream
(processors/background.py) on a downscaled frame: the stream keeps its rate and people
are looked for as often as the machine allows. Detections are labelled `person`.
"""

from __future__ import annotations

import cv2
import numpy as np

from camnode.processors.background import BackgroundDetector
from camnode.processors.common import with_defaults

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "width": {"description": "Width the frame is scaled to for detection",
                  "type": "integer", "minimum": 160, "maximum": 1920, "default": 400},
        "min_score": {"description": "SVM score below which a window is not a person",
                      "type": "number", "minimum": -5, "maximum": 5, "default": 0.3},
        "draw": {"type": "boolean", "default": True},
    },
}

_params: dict = with_defaults(PARAMS_SCHEMA, {})
_hog: cv2.HOGDescriptor | None = None
_worker: BackgroundDetector | None = None


def setup(params: dict) -> None:
    global _params, _hog, _worker
    _params = with_defaults(PARAMS_SCHEMA, params)
    _hog = cv2.HOGDescriptor()
    _hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    _worker = BackgroundDetector(detect, "people")


def detect(src: np.ndarray) -> list[dict]:
    """People in `src` (BGR) as detections with boxes in percent; runs synchronously."""
    if _hog is None:
        setup({})
    h, w = src.shape[:2]
    width = min(_params["width"], w)
    small = cv2.resize(src, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    rects, weights = _hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
    sh, sw = small.shape[:2]
    out = []
    for (x, y, rw, rh), score in zip(rects, np.ravel(weights) if len(rects) else []):
        if score < _params["min_score"]:
            continue
        out.append({"label": "person", "score": round(float(min(1.0, score / 2)), 3),
                    "box_pct": [round(float(x) * 100 / sw, 2), round(float(y) * 100 / sh, 2),
                                round(float(x + rw) * 100 / sw, 2),
                                round(float(y + rh) * 100 / sh, 2)]})
    return out


def process_image(src: np.ndarray):
    if _worker is None:
        setup({})
    return _worker.step(src, _params["draw"], "orange")


def status() -> dict:
    return {**(_worker.stats() if _worker else {}), "labels": ["person"]}


def close() -> None:
    if _worker:
        _worker.close()
