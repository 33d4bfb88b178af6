"""Faces: OpenCV's bundled Haar cascade (frontal face), on a downscaled grey frame.

Detection runs beside the stream (processors/background.py), so a slow machine runs it
on fewer frames instead of slowing the stream. Detections are labelled `face`.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from camnode.processors.background import BackgroundDetector
from camnode.processors.common import with_defaults

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "width": {"description": "Width the frame is scaled to for detection",
                  "type": "integer", "minimum": 160, "maximum": 1920, "default": 320},
        "min_neighbors": {"description": "Higher: fewer false faces, more missed ones",
                          "type": "integer", "minimum": 1, "maximum": 20, "default": 6},
        "min_size": {"description": "Smallest face, percent of the frame height",
                     "type": "number", "minimum": 1, "maximum": 100, "default": 6},
        "draw": {"type": "boolean", "default": True},
    },
}

_params: dict = with_defaults(PARAMS_SCHEMA, {})
_cascade: cv2.CascadeClassifier | None = None
_worker: BackgroundDetector | None = None


def setup(params: dict) -> None:
    global _params, _cascade, _worker
    _params = with_defaults(PARAMS_SCHEMA, params)
    path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
    _cascade = cv2.CascadeClassifier(path)
    if _cascade.empty():
        raise RuntimeError(f"cannot load the Haar cascade {path}")
    _worker = BackgroundDetector(detect, "faces")


def detect(src: np.ndarray) -> list[dict]:
    """Faces in `src` (BGR) as detections with boxes in percent; runs synchronously."""
    if _cascade is None:
        setup({})
    h, w = src.shape[:2]
    width = min(_params["width"], w)
    scale = width / w
    grey = cv2.cvtColor(cv2.resize(src, (width, max(1, round(h * scale))),
                                   interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    grey = cv2.equalizeHist(grey)
    min_px = max(12, round(_params["min_size"] / 100 * grey.shape[0]))
    faces = _cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=_params["min_neighbors"],
                                      minSize=(min_px, min_px))
    gh, gw = grey.shape
    return [{"label": "face", "score": 1.0,
             "box_pct": [round(float(x) * 100 / gw, 2), round(float(y) * 100 / gh, 2),
                         round(float(x + fw) * 100 / gw, 2), round(float(y + fh) * 100 / gh, 2)]}
            for (x, y, fw, fh) in faces]


def process_image(src: np.ndarray):
    if _worker is None:
        setup({})
    return _worker.step(src, _params["draw"], "cyan")


def status() -> dict:
    return {**(_worker.stats() if _worker else {}), "labels": ["face"]}


def close() -> None:
    if _worker:
        _worker.close()
