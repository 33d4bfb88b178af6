"""Per-processor benchmark: stream rate and processing time with each module selected.

Starts `camnode run` (synthetic camera, 640x480 @ 30 fps), keeps one stream client
reading, selects each built-in module in turn over the REST API and samples the node's
state: delivered fps, the pipeline's processing time (p50/p95 ms, the part the stream
waits for) and, for detectors that run beside the stream, their own detection time and
how many frames they looked at. Run: `python -m bench.processors` (also `make bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.procs import camnode_running

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["passthrough", "service", "motion", "roi_occupancy", "faces", "people", "objects"]
TARGET_FPS = 25.0


def _post(url: str, payload: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _reader(url: str, stop: threading.Event, counter: list) -> None:
    """One viewer that reads the whole stream (so frames are really delivered)."""
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray(1 << 20)
        while not stop.is_set():
            n = s.recv_into(buf)
            if not n:
                return
            counter[0] += buf[:n].count(b"--frame\r\n")


def run(duration: float, width: int, height: int) -> list[dict]:
    cfg = json.loads((ROOT / "config.json").read_text())
    cfg["camera"].update({"source": "synthetic", "width": width, "height": height, "fps": 30})
    cfg["zmq"] = {"publish": "tcp://127.0.0.1:*", "command": "tcp://127.0.0.1:*"}
    cfg["web"] = {"host": "127.0.0.1", "port": 0, "workers": 1}
    cfg["mqtt"] = {"enabled": False}
    results = []
    with tempfile.TemporaryDirectory(prefix="camnode-bench-proc-") as tmp, \
            camnode_running(cfg, Path(tmp) / "config.json",
                            env={"CAMNODE_MODEL_DIR": str(ROOT / "models"), **os.environ}) as node:
        url = node.url
        stop, counter = threading.Event(), [0]
        threading.Thread(target=_reader, args=(url, stop, counter), daemon=True).start()
        try:
            for module in MODULES:
                reply = _post(f"{url}/api/module/set", {"name": module})
                if reply["status"] != "ok":
                    results.append({"module": module, "error": reply["error"]["message"]})
                    continue
                time.sleep(3)  # warm-up: background models, detector threads
                fps, proc_p50, proc_p95 = [], [], []
                c0, t0 = counter[0], time.monotonic()
                while time.monotonic() - t0 < duration:
                    time.sleep(1)
                    s = node.state()
                    fps.append(s["fps"])
                    proc_p50.append(s["processing_ms"]["p50"] or 0)
                    proc_p95.append(s["processing_ms"]["p95"] or 0)
                delivered = (counter[0] - c0) / (time.monotonic() - t0)
                status = node.state().get("module_status") or {}
                results.append({
                    "module": module, "stream_fps": round(statistics.median(fps), 1),
                    "delivered_fps": round(delivered, 1),
                    "processing_ms_p50": round(statistics.median(proc_p50), 2),
                    "processing_ms_p95": round(max(proc_p95), 2),
                    "detector_ms_p50": status.get("detect_ms_p50"),
                    "detector_ms_p95": status.get("detect_ms_p95"),
                    "detector_runs": status.get("runs"),
                    "detector_frames_offered": status.get("frames_offered"),
                })
        finally:
            stop.set()
    return results


def report(results: list[dict], width: int, height: int) -> list[str]:
    lines = [f"\n=== processors at {width}x{height} @ 30 fps (target: stream >= {TARGET_FPS:g} "
             "fps with each) ===",
             f"{'module':<15}{'stream fps':>11}{'delivered':>10}{'proc p50':>10}{'proc p95':>10}"
             f"{'detector p50/p95 ms':>22}{'detector ran on':>18}  verdict"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['module']:<15}  error: {r['error']}")
            continue
        det = (f"{r['detector_ms_p50']}/{r['detector_ms_p95']}"
               if r["detector_ms_p50"] is not None else "-")
        share = (f"{r['detector_runs']}/{r['detector_frames_offered']} frames"
                 if r["detector_runs"] is not None else "every frame")
        ok = "PASS" if r["stream_fps"] >= TARGET_FPS else "FAIL"
        lines.append(f"{r['module']:<15}{r['stream_fps']:>11}{r['delivered_fps']:>10}"
                     f"{r['processing_ms_p50']:>10}{r['processing_ms_p95']:>10}{det:>22}"
                     f"{share:>18}  {ok}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds measured per module")
    ap.add_argument("--quick", action="store_true", help="3 s per module")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "processors.json"))
    args = ap.parse_args(argv)
    results = run(3.0 if args.quick else args.duration, 640, 480)
    print("\n".join(report(results, 640, 480)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"resolution": "640x480", "results": results}, indent=1))
    return 0 if all(r.get("stream_fps", 0) >= TARGET_FPS for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
