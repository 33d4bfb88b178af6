"""ROI occupancy: is something in this parking space, doorway or access point?

Each ROI learns what it looks like empty (a slowly updated grey background, updated only
while the ROI is free, so a parked car is not learned away). An ROI is occupied while at
least `min_fraction` of it differs from that background, with on/off delays against
flapping. Occupied ROIs are reported as `occupied` detections covering the ROI, so the
node publishes `roi/<name>/occupancy` for them.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from camnode.processors.common import (current_rois, draw_roi, draw_text, roi_to_pixels,
                               with_defaults)

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "threshold": {"description": "Grey-level difference that counts as changed",
                      "type": "integer", "minimum": 1, "maximum": 255, "default": 25},
        "min_fraction": {"description": "Fraction of the ROI that must differ to be occupied",
                         "type": "number", "minimum": 0.001, "maximum": 1, "default": 0.15},
        "on_delay_s": {"type": "number", "minimum": 0, "maximum": 60, "default": 0.3},
        "off_delay_s": {"type": "number", "minimum": 0, "maximum": 600, "default": 1.0},
        "learning_rate": {"description": "How fast a free ROI's background adapts",
                          "type": "number", "minimum": 0, "maximum": 1, "default": 0.02},
        "width": {"type": "integer", "minimum": 80, "maximum": 1920, "default": 320},
        "draw": {"type": "boolean", "default": True},
    },
}

_params: dict = with_defaults(PARAMS_SCHEMA, {})
# Owned by the pipeline thread (process_image): name -> {"bg", "box", "occupied", ...}.
_rois: dict[str, dict] = {}
# What status() shows: a new dict made by the pipeline thread after each frame and never
# changed afterwards, so the state thread can read it while the next frame is processed.
_status: dict[str, dict] = {}
_clock = time.monotonic  # tests replace it to play frames faster than real time


def setup(params: dict) -> None:
    global _params, _rois, _status
    _params = with_defaults(PARAMS_SCHEMA, params)
    _rois, _status = {}, {}


def _step(name: str, region: np.ndarray, box: tuple, now: float) -> dict:
    st = _rois.get(name)
    if st is None or st["box"] != box:
        st = _rois[name] = {"bg": region.astype(np.float32), "box": box, "occupied": False,
                            "since": None, "fraction": 0.0}
    diff = cv2.absdiff(region, cv2.convertScaleAbs(st["bg"]))
    fraction = float(np.count_nonzero(diff > _params["threshold"])) / max(1, diff.size)
    raw = fraction >= _params["min_fraction"]
    st["fraction"] = round(fraction, 4)
    if raw != st["occupied"]:
        delay = _params["on_delay_s"] if raw else _params["off_delay_s"]
        st["since"] = st["since"] if st["since"] is not None else now
        if now - st["since"] >= delay:
            st["occupied"], st["since"] = raw, None
    else:
        st["since"] = None
    if not st["occupied"] and not raw:
        cv2.accumulateWeighted(region, st["bg"], _params["learning_rate"])
    return st


def process_image(src: np.ndarray):
    global _status
    h, w = src.shape[:2]
    width = min(_params["width"], w)
    grey = cv2.cvtColor(cv2.resize(src, (width, max(1, round(h * width / w))),
                                   interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    grey = cv2.GaussianBlur(grey, (5, 5), 0)
    gh, gw = grey.shape
    now = _clock()
    rois = current_rois()
    for gone in set(_rois) - set(rois):
        del _rois[gone]
    detections = []
    for name, roi in rois.items():
        box = roi_to_pixels(roi, gw, gh)
        x1, y1, x2, y2 = box
        st = _step(name, grey[y1:y2, x1:x2], box, now)
        if st["occupied"]:
            detections.append({"label": "occupied", "score": min(1.0, st["fraction"]),
                               "box_pct": [roi["left"], roi["top"], roi["right"],
                                           roi["bottom"]], "roi": name})
        if _params["draw"]:
            draw_roi(src, name, colour="red" if st["occupied"] else None, label=True)
            x1p, _, _, y2p = roi_to_pixels(roi, w, h)
            draw_text(src, f"{st['fraction']:.0%}", (x1p + 4, y2p - 4), scale=0.5,
                      anchor="bottom-left")
    _status = {name: {"occupied": st["occupied"], "fraction": st["fraction"]}
               for name, st in _rois.items()}
    return True, detections


def status() -> dict:
    """Per-ROI occupancy as of the last frame (state thread; reads a finished snapshot)."""
    return _status
