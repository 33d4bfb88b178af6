"""Motion: background subtraction (OpenCV MOG2) on a downscaled frame.

Reports each moving region as a `motion` detection (box in percent) and, per ROI, the
fraction of the ROI that moves (`status()`, shown in the node's state). Draws the boxes
and the ROIs. Parameters can be changed at run time with `module/set`.
"""

from __future__ import annotations

import cv2
import numpy as np

from camnode.processors.common import (current_rois, draw_detections, draw_rois, draw_text,
                               roi_to_pixels, with_defaults)

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sensitivity": {"description": "1 (only strong changes) .. 100 (faint ones too)",
                        "type": "number", "minimum": 1, "maximum": 100, "default": 50},
        "min_area": {"description": "Smallest moving region, percent of the frame",
                     "type": "number", "minimum": 0, "maximum": 50, "default": 0.2},
        "roi_threshold": {"description": "Fraction of an ROI that must move to count it as "
                                         "in motion", "type": "number", "minimum": 0,
                          "maximum": 1, "default": 0.02},
        "learning_rate": {"description": "How fast the background adapts (0..1 per frame)",
                          "type": "number", "minimum": 0, "maximum": 1, "default": 0.002},
        "width": {"description": "Width the frame is scaled to for detection",
                  "type": "integer", "minimum": 80, "maximum": 1920, "default": 320},
        "draw": {"type": "boolean", "default": True},
    },
}

_params: dict = {}
_mog = None
_status: dict = {}


def setup(params: dict) -> None:
    """Called on selection, with params already checked against PARAMS_SCHEMA."""
    global _params, _mog
    _params = with_defaults(PARAMS_SCHEMA, params)
    # MOG2's threshold is a squared distance: 16 at sensitivity 50, x4 per 50 points.
    var_threshold = 16 * 4 ** ((50 - _params["sensitivity"]) / 50)
    _mog = cv2.createBackgroundSubtractorMOG2(history=500, varThreshold=var_threshold,
                                              detectShadows=False)


def input_width() -> int:
    """The narrowest frame this module works on as well as a full one (it scales to
    `width` itself): when nobody watches, the node may decode a camera's JPEG at a
    reduced size down to this (node/encoder.py). Called by the pipeline thread."""
    return (_params or {}).get("width", 320)


def mask_of(src: np.ndarray) -> np.ndarray:
    """The cleaned foreground mask at detection size (uint8, 0/255)."""
    if _mog is None:
        setup({})
    h, w = src.shape[:2]
    width = min(_params["width"], w)
    small = cv2.resize(src, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (3, 3), 0)
    mask = _mog.apply(small, learningRate=_params["learning_rate"])
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))


def detect(src: np.ndarray) -> tuple[list, dict]:
    """Moving regions of `src` as detections, and the fraction of each ROI in motion."""
    mask = mask_of(src)
    mh, mw = mask.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8))
    min_px = _params["min_area"] / 100 * mh * mw
    detections = []
    for x, y, bw, bh, area in stats[1:]:
        if area < min_px:
            continue
        box = (x * 100 / mw, y * 100 / mh, (x + bw) * 100 / mw, (y + bh) * 100 / mh)
        detections.append({"label": "motion",
                           "score": round(float(min(1.0, area / (bw * bh))), 3),
                           "box_pct": [round(float(v), 2) for v in box]})
    fractions = {}
    for name, roi in current_rois().items():
        x1, y1, x2, y2 = roi_to_pixels(roi, mw, mh)
        region = mask[y1:y2, x1:x2]
        fractions[name] = round(float(np.count_nonzero(region)) / max(1, region.size), 4)
    return detections, fractions


def process_image(src: np.ndarray):
    global _status
    detections, fractions = detect(src)
    active = sorted(n for n, f in fractions.items() if f >= _params["roi_threshold"])
    _status = {"moving_regions": len(detections), "roi_motion": fractions,
               "rois_in_motion": active}
    if _params["draw"]:
        draw_rois(src)
        draw_detections(src, detections, "red", label=False)
        if active:
            draw_text(src, "motion: " + ", ".join(active), anchor="top-right", scale=0.6,
                      colour=(0, 0, 255))
    return True, detections


def status() -> dict:
    """What the node shows in its state as `module_status`."""
    return dict(_status)
