"""The whole node with `objects`: stream fps and the node process's CPU on a still and on
a busy scene.

Each scene (bench/detect_eval.py's yard, empty with sensor noise, or with a person
walking through, looped) is written to a video file and played by `camnode run` as its
camera (640x480, 15 fps, MQTT off). After a warm-up, the node process's CPU time
(/proc/<pid>/stat, the node's own threads: capture, pipeline, detector, events; web
workers not included) and the state's fps are sampled for `--seconds`.
Run: `python -m bench.detect_node` (part of `make bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

from bench import detect_eval
from bench.procs import camnode_running
from bench.procstat import cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
FPS = 15


def _video(path: Path, scene: detect_eval.Scene, seconds: float) -> None:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (scene.w, scene.h))
    for i in range(int(seconds * FPS)):
        out.write(scene.render(i / FPS))
    out.release()


def measure(video: Path, seconds: float, module: str = "objects") -> dict:
    tmp = video.parent
    cfg = json.loads((ROOT / "config.json").read_text())
    cfg["camera"].update({"source": str(video), "width": 640, "height": 480, "fps": FPS})
    cfg["pipeline"].update({"module": module, "module_params": {}})
    cfg["rois"] = {"Door": {"left": 50, "top": 0, "right": 100, "bottom": 100,
                            "colour": "green"}}
    cfg["zmq"] = {"publish": "tcp://127.0.0.1:*", "command": "tcp://127.0.0.1:*"}
    cfg["web"] = {"host": "127.0.0.1", "port": 0, "workers": 1}
    cfg["mqtt"] = {"enabled": False}
    env = {**os.environ, "CAMNODE_MODEL_DIR": os.environ.get("CAMNODE_MODEL_DIR",
                                                             str(ROOT / "models"))}
    with camnode_running(cfg, tmp / f"config-{video.stem}.json", env=env,
                         stop_timeout=15) as node:
        time.sleep(5)  # warm-up: model load, MOG2 learning the scene
        s0, c0, t0 = node.state(), cpu_seconds(node.proc.pid), time.monotonic()
        fps = []
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            fps.append(node.state()["fps"])
        s1, c1, wall = node.state(), cpu_seconds(node.proc.pid), time.monotonic() - t0
    ms = s1.get("module_status") or {}
    return {"scene": video.stem, "module": s1["module"], "error": s1.get("module_error"),
            "stream_fps": round(statistics.median(fps), 1),
            "node_cpu_pct": round(100 * (c1 - c0) / wall),
            "detector_runs": (ms.get("runs") or 0) - ((s0.get("module_status") or {})
                                                      .get("runs") or 0),
            "detect_ms_p50": ms.get("detect_ms_p50"),
            "events": s1["metrics"]["events"] - s0["metrics"]["events"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "detect_node.json")
    args = ap.parse_args(argv)
    detect_eval.ensure_model()
    bus = detect_eval.load_photos()["bus"]
    results = []
    with tempfile.TemporaryDirectory(prefix="camnode-detect-node-") as tmp:
        for name, scene in (("still", detect_eval.Scene(bus, walker=False)),
                            ("busy", detect_eval.Scene(bus, walker=True))):
            video = Path(tmp) / f"{name}.avi"
            _video(video, scene, 8.0)
            for module in ("passthrough", "objects"):
                results.append(measure(video, args.seconds, module))
    print(f"\n=== node at 640x480 @ {FPS} fps, video camera (CPU: node process, 100 % = one core) ===")
    print(f"{'scene':<7}{'module':<13}{'stream fps':>11}{'node CPU':>10}{'detector runs':>15}"
          f"{'detect ms':>11}{'events':>8}")
    for r in results:
        print(f"{r['scene']:<7}{r['module']:<13}{r['stream_fps']:>11}{r['node_cpu_pct']:>9}%"
              f"{r['detector_runs']:>15}{str(r['detect_ms_p50']):>11}{r['events']:>8}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
