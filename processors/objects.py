"""Objects: a COCO neural detector (SSD MobileNet v2 through OpenCV's dnn), gated by motion.

The model is data fetched by `camnode fetch-model` (`make model`) into the state
directory; without it, choosing this module is refused with what to run.

Who calls what: the pipeline thread calls `process_image` on every frame. It runs a
cheap motion check (MOG2 on a 160-pixel-wide copy) and offers the frame to the detector
thread (processors/background.py) only when something moves, or every
`still_interval_s` on a still scene so parked objects stay tracked. The detector thread
runs `detect`. The stream therefore keeps the camera's rate, and a still scene costs one
small MOG2 update per frame plus one inference every few seconds.

Detections carry `run` (which detector run saw them: node/events.py counts an object's
frames by distinct runs, not by repeated results) and `exclude_rois` (ROIs whose label
filter, `roi_labels`, leaves this label out).
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from camnode.node import models
from camnode.processors.background import BackgroundDetector
from camnode.processors.common import draw_detections, draw_rois, with_defaults

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "labels": {
            "description": "COCO labels to report (others are ignored)",
            "type": "array", "uniqueItems": True, "maxItems": 80,
            "items": {"type": "string", "enum": [
                "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
                "boat", "traffic_light", "fire_hydrant", "stop_sign", "parking_meter",
                "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear",
                "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase",
                "frisbee", "skis", "snowboard", "sports_ball", "kite", "baseball_bat",
                "baseball_glove", "skateboard", "surfboard", "tennis_racket", "bottle",
                "wine_glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
                "sandwich", "orange", "broccoli", "carrot", "hot_dog", "pizza", "donut",
                "cake", "chair", "couch", "potted_plant", "bed", "dining_table", "toilet",
                "tv", "laptop", "mouse", "remote", "keyboard", "cell_phone", "microwave",
                "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
                "scissors", "teddy_bear", "hair_drier", "toothbrush"]},
            "default": ["person", "bicycle", "car", "motorcycle", "bus", "truck", "bird",
                        "cat", "dog"]},
        "min_score": {"description": "Score (0..1) below which a detection is dropped",
                      "type": "number", "minimum": 0.05, "maximum": 1, "default": 0.5},
        "label_min_score": {"description": "Per-label minimum score, e.g. {\"car\": 0.6}",
                            "type": "object", "maxProperties": 80,
                            "additionalProperties": {"type": "number", "minimum": 0.05,
                                                     "maximum": 1},
                            "default": {}},
        "min_area": {"description": "Smallest box, percent of the frame",
                     "type": "number", "minimum": 0, "maximum": 100, "default": 0.05},
        "max_area": {"description": "Largest box, percent of the frame",
                     "type": "number", "minimum": 0, "maximum": 100, "default": 100},
        "roi_labels": {"description": "Per ROI, the only labels that count in it, "
                                      "e.g. {\"Driveway\": [\"car\", \"person\"]}",
                       "type": "object", "maxProperties": 64,
                       "additionalProperties": {"type": "array", "maxItems": 80,
                                                "items": {"type": "string", "maxLength": 64}},
                       "default": {}},
        "motion_gate": {"description": "Run the detector only while something moves",
                        "type": "boolean", "default": True},
        "motion_fraction": {"description": "Fraction of the frame that must change to "
                                           "count as motion", "type": "number",
                            "minimum": 0, "maximum": 1, "default": 0.002},
        "still_interval_s": {"description": "On a still scene, look again this often "
                                            "(seconds) so parked objects stay tracked",
                             "type": "number", "minimum": 0.5, "maximum": 600, "default": 5},
        "draw": {"type": "boolean", "default": True},
    },
}

# The model's class ids (COCO's 90-id numbering, with its gaps) -> our labels.
COCO_IDS = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus",
    7: "train", 8: "truck", 9: "boat", 10: "traffic_light", 11: "fire_hydrant",
    13: "stop_sign", 14: "parking_meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog",
    19: "horse", 20: "sheep", 21: "cow", 22: "elephant", 23: "bear", 24: "zebra",
    25: "giraffe", 27: "backpack", 28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase",
    34: "frisbee", 35: "skis", 36: "snowboard", 37: "sports_ball", 38: "kite",
    39: "baseball_bat", 40: "baseball_glove", 41: "skateboard", 42: "surfboard",
    43: "tennis_racket", 44: "bottle", 46: "wine_glass", 47: "cup", 48: "fork", 49: "knife",
    50: "spoon", 51: "bowl", 52: "banana", 53: "apple", 54: "sandwich", 55: "orange",
    56: "broccoli", 57: "carrot", 58: "hot_dog", 59: "pizza", 60: "donut", 61: "cake",
    62: "chair", 63: "couch", 64: "potted_plant", 65: "bed", 67: "dining_table", 70: "toilet",
    72: "tv", 73: "laptop", 74: "mouse", 75: "remote", 76: "keyboard", 77: "cell_phone",
    78: "microwave", 79: "oven", 80: "toaster", 81: "sink", 82: "refrigerator", 84: "book",
    85: "clock", 86: "vase", 87: "scissors", 88: "teddy_bear", 89: "hair_drier",
    90: "toothbrush",
}
INPUT_SIZE = 300  # the size the model was trained at
FLOOR_SCORE = 0.05  # below every configurable threshold: what the network is asked for
GATE_WIDTH = 160

log = logging.getLogger(__name__)


class ModelMissing(RuntimeError):
    pass


def load_net(model_dir=None) -> cv2.dnn.Net:
    """The network from the state directory; ModelMissing says what to run."""
    bundle = models.DEFAULT_MODEL
    where = models.model_dir() if model_dir is None else model_dir
    files = models.paths(bundle, where)
    pb, pbtxt = files["ssd_mobilenet_v2_coco.pb"], files["ssd_mobilenet_v2_coco.pbtxt"]
    if not (pb.is_file() and pbtxt.is_file()):
        raise ModelMissing(f"no detector model in {where.resolve()}: run `make model` "
                           f"(or `camnode fetch-model`) once, then choose objects again")
    net = cv2.dnn.readNetFromTensorflow(str(pb), str(pbtxt))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    return net


class Detector:
    """One network and its thresholds; `detect` runs on the detector thread only."""

    def __init__(self, net: cv2.dnn.Net, params: dict):
        self.net = net
        self.params = params
        self.labels = set(params["labels"])
        self.runs = 0

    def raw(self, src: np.ndarray) -> list[tuple[str, float, tuple[float, float, float, float]]]:
        """Every detection of a known label above FLOOR_SCORE: (label, score, box %)."""
        blob = cv2.dnn.blobFromImage(src, size=(INPUT_SIZE, INPUT_SIZE), swapRB=True)
        self.net.setInput(blob)
        out = self.net.forward()
        found = []
        for _, cls, score, x1, y1, x2, y2 in out.reshape(-1, 7):
            label = COCO_IDS.get(int(cls))
            if label is None or score < FLOOR_SCORE:
                continue
            box = tuple(float(min(100.0, max(0.0, v * 100))) for v in (x1, y1, x2, y2))
            if box[2] > box[0] and box[3] > box[1]:
                found.append((label, float(score), box))
        return found

    def detect(self, src: np.ndarray) -> list[dict]:
        """Detections in `src` (BGR) that pass the label, score and area filters."""
        p = self.params
        self.runs += 1
        out = []
        for label, score, box in self.raw(src):
            if label not in self.labels:
                continue
            if score < p["label_min_score"].get(label, p["min_score"]):
                continue
            area = (box[2] - box[0]) * (box[3] - box[1]) / 100  # percent of the frame
            if not p["min_area"] <= area <= p["max_area"]:
                continue
            det = {"label": label, "score": round(score, 3),
                   "box_pct": [round(v, 2) for v in box], "run": self.runs}
            excluded = sorted(roi for roi, allowed in p["roi_labels"].items()
                              if label not in allowed)
            if excluded:
                det["exclude_rois"] = excluded
            out.append(det)
        return out


class MotionGate:
    """Whether the scene changed since the last frames (pipeline thread only)."""

    def __init__(self, fraction: float):
        self.fraction = fraction
        self._mog = cv2.createBackgroundSubtractorMOG2(history=300, varThreshold=25,
                                                       detectShadows=False)
        self.moving = 0.0

    def moved(self, src: np.ndarray) -> bool:
        h, w = src.shape[:2]
        small = cv2.resize(src, (GATE_WIDTH, max(1, round(h * GATE_WIDTH / w))),
                           interpolation=cv2.INTER_AREA)
        mask = self._mog.apply(cv2.GaussianBlur(small, (3, 3), 0))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        self.moving = float(np.count_nonzero(mask)) / mask.size
        return self.moving >= self.fraction


_params: dict = with_defaults(PARAMS_SCHEMA, {})
_detector: Detector | None = None
_worker: BackgroundDetector | None = None
_gate: MotionGate | None = None
_last_offer = 0.0
_gated = 0


def setup(params: dict) -> None:
    """Called by the loader (dispatcher thread) on selection; raises ModelMissing."""
    global _params, _detector, _worker, _gate, _last_offer, _gated
    p = with_defaults(PARAMS_SCHEMA, params)
    net = load_net()
    # The first forward() sets the network up (about 0.5 s): do it now, not on the
    # first person to walk in.
    t0 = time.perf_counter()
    net.setInput(cv2.dnn.blobFromImage(np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8),
                                       size=(INPUT_SIZE, INPUT_SIZE), swapRB=True))
    net.forward()
    log.info("objects: model loaded and warmed up in %.0f ms; tracking %s",
             (time.perf_counter() - t0) * 1000, ", ".join(p["labels"]))
    close()
    _params, _detector = p, Detector(net, p)
    _worker = BackgroundDetector(_detector.detect, "objects")
    _gate = MotionGate(p["motion_fraction"])
    _last_offer, _gated = 0.0, 0


def detect(src: np.ndarray) -> list[dict]:
    """Synchronous detection (tests, bench); loads the model on first use."""
    global _detector
    if _detector is None:
        _detector = Detector(load_net(), _params)
    return _detector.detect(src)


def process_image(src: np.ndarray):
    """Pipeline thread, every frame: gate, offer, draw and return the newest detections."""
    global _last_offer, _gated
    if _worker is None:
        setup({})
    now = time.monotonic()
    moved = _gate.moved(src) if _params["motion_gate"] else True
    if moved or now - _last_offer >= _params["still_interval_s"]:
        _worker.submit(src)
        _last_offer = now
    else:
        _gated += 1
    # Results stay valid while nothing moves (the next still check refreshes them).
    detections = _worker.latest(max_age=_params["still_interval_s"] + 2.0)
    if _params["draw"]:
        draw_rois(src)
        draw_detections(src, detections, "green")
    return True, detections


def status() -> dict:
    """Shown in the node's state as `module_status` (state thread)."""
    out = _worker.stats() if _worker else {}
    out["labels"] = sorted(_params["labels"])
    out["frames_gated"] = _gated
    out["moving_fraction"] = round(_gate.moving, 4) if _gate else 0.0
    return out


def close() -> None:
    global _worker
    if _worker:
        _worker.close()
        _worker = None
