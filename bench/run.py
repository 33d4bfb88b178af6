"""camnode benchmark: MJPEG fan-out to many viewers, camnode against a naive baseline.

    python -m bench.run            # full run (~13 min): 640x480 and 1280x720 @ 30 fps
    python -m bench.run --quick    # smoke run (< 2 min)

For each resolution it starts `camnode run` (synthetic camera, passthrough module) with
a temporary config, once per web worker count (`--workers`, default 1 and 2), and the
naive baseline (`bench/baseline.py`) subscribed to the same node. For each client count
(and, with 20 % slow readers, again) it runs `bench/loadgen.py` for a warm-up plus
`--duration` seconds and measures, over the window after the warm-up:

- delivered fps of normal clients (median, minimum), latency p50/p95 (receive time of
  the last JPEG byte minus X-Timestamp, the capture time on the node), median time to
  first frame; the slow readers' figures apart;
- server CPU: user+sys from /proc/<pid>/stat summed over the server's processes
  (camnode: node process + web workers; baseline: baseline process + the node process
  that feeds it), in % of one core (200 % = both cores of this machine);
- peak RSS of those processes (VmRSS sampled every 0.5 s, summed);
- the load generator's own CPU, to show it is not the bottleneck.

Results go to bench/results/latest.json and a plot to docs/bench.png. Every process
started here is started in its own process group and killed on exit, error or Ctrl-C.

This module holds one load run and the sequence of runs; the servers and their
processes are in bench/procs.py, the /proc figures in bench/procstat.py, the tables,
verdicts and plot in bench/report.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.procs import Baseline, Camnode, Procs, get_state
from bench.procstat import Group, RssSampler, cpu_delta, cpu_per_process, host_cpu, host_delta
from bench.report import (CAMERA_FPS, DISTURBED_PCT, HEAD, best_workers, disturbed, fmt_row,
                          notes_for, plot, print_tables, target_check)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "latest.json"
PLOT = ROOT / "docs" / "bench.png"


# --------------------------------------------------------------------------- one run
def run_load(procs: Procs, server, group: Group, state_base: str, clients: int, slow: float,
             args, label: str, res: str) -> dict:
    """One load run against `server`; returns the record for the results file."""
    loadgen_procs = args.loadgen_procs or (2 if clients >= 400 else 1)
    start_at = time.time() + 0.6
    t_win0, t_end = start_at + args.warmup, start_at + args.warmup + args.duration
    cmd = [sys.executable, "-m", "bench.loadgen", server.base + "/stream.mjpg",
           "--clients", str(clients), "--duration", str(args.duration),
           "--warmup", str(args.warmup), "--slow-fraction", str(slow),
           "--procs", str(loadgen_procs), "--start-at", repr(start_at), "--json", "-"]
    sampler = RssSampler(group)
    sampler.start()
    lg = procs.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state_box: dict = {}
    out = err = b""
    try:
        time.sleep(max(0.0, t_win0 - time.time()))
        cpu0, c0, h0 = group.cpu_ticks(), time.monotonic(), host_cpu()

        def grab_state():
            state_box["state"] = get_state(state_base, 3.0)
        mid = threading.Timer(args.duration / 2, grab_state)
        mid.daemon = True
        mid.start()
        time.sleep(max(0.0, t_end - time.time()))
        cpu1, c1, h1 = group.cpu_ticks(), time.monotonic(), host_cpu()
        try:
            out, err = lg.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            err = b"load generator timed out"
        mid.join(4)
    finally:
        procs.stop(lg, timeout=2)
        peak_kb = sampler.stop()
    record = {"server": label, "resolution": res, "clients": clients, "slow_fraction": slow,
              "frame_kb": getattr(server, "frame_kb", None)}
    try:
        summary = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        record["error"] = (err.decode("utf-8", "replace")[-600:] or "no output").strip()
        return record
    cpu = cpu_delta(cpu0, cpu1, c1 - c0)
    record.update(summary)
    record["server_cpu_pct"] = round(sum(cpu.values()), 1)
    record["server_cpu_parts"] = cpu
    if label.startswith("camnode"):
        pcts = cpu_per_process(cpu0, cpu1, c1 - c0, "web")
        record["web_worker_cpu_pct"] = pcts
    record["server_peak_rss_mb"] = round(peak_kb / 1024, 1)
    host = host_delta(h0, h1, c1 - c0)
    # What neither the server nor the load generator used: softirq (loopback TCP receive
    # work not charged to a process) and anything else running on the machine.
    host["unaccounted_pct"] = round(host["busy_pct"] - record["server_cpu_pct"]
                                    - record.get("loadgen_cpu_pct", 0), 1)
    record["host_cpu"] = host
    record["other_load_pct"] = round(max(0.0, host["unaccounted_pct"] - host["softirq_pct"]), 1)
    state = state_box.get("state") or {}
    record["node_state"] = {k: state.get(k) for k in
                            ("fps", "viewers", "viewer_fps_min", "viewer_fps_median", "frames",
                             "encode_ms", "web_workers") if k in state}
    if "threads" in state:
        record["node_state"]["threads"] = state["threads"]
    return record


# --------------------------------------------------------------------------- main
def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short smoke run with fewer clients")
    p.add_argument("--duration", type=float, help="measured seconds per run (default 10; quick 3)")
    p.add_argument("--warmup", type=float, help="seconds excluded at the start (default 2; quick 1)")
    p.add_argument("--clients", help="comma list (default 1,50,200,500,800; quick 1,50,200)")
    p.add_argument("--slow-clients", help="client counts also run with slow readers "
                                          "(default 50,200,500,800; quick 200)")
    p.add_argument("--slow-fraction", type=float, default=0.2)
    p.add_argument("--resolutions", default="640x480,1280x720")
    p.add_argument("--workers", help="camnode web worker counts (default 1,2; quick 1)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--baseline-max", type=int, default=800,
                   help="largest client count tried on the baseline")
    p.add_argument("--baseline-budget", type=float, default=180,
                   help="seconds of baseline runs per resolution before the rest is skipped")
    p.add_argument("--budget", type=float, default=14 * 60,
                   help="overall seconds; runs that would exceed it are skipped")
    p.add_argument("--retries", type=int,
                   help="re-runs of a run disturbed by other load on the machine, time permitting "
                        "(default 1; quick 0)")
    p.add_argument("--loadgen-procs", type=int, default=0, help="0: 1 below 400 clients, else 2")
    p.add_argument("--output", default=None, help=f"results JSON (default {RESULTS}; "
                   "quick runs: quick.json beside it)")
    p.add_argument("--plot", default=None, help=f"plot (default {PLOT}, the README's; "
                   "quick runs: bench/results/quick.png, so a smoke run never replaces it)")
    a = p.parse_args(argv)
    a.output = a.output or str(RESULTS.with_name("quick.json") if a.quick else RESULTS)
    a.plot = a.plot or str(HERE / "results" / "quick.png" if a.quick else PLOT)
    a.duration = a.duration or (3.0 if a.quick else 10.0)
    a.retries = a.retries if a.retries is not None else (0 if a.quick else 1)
    a.warmup = a.warmup if a.warmup is not None else (1.0 if a.quick else 2.0)
    ints = lambda s: [int(x) for x in s.split(",") if x.strip()]  # noqa: E731
    a.clients = ints(a.clients or ("1,50,200" if a.quick else "1,50,200,500,800"))
    a.slow_clients = ints(a.slow_clients if a.slow_clients is not None
                          else ("200" if a.quick else "50,200,500,800"))
    a.workers = ints(a.workers or ("1" if a.quick else "1,2"))
    a.resolutions = [tuple(int(v) for v in r.split("x")) for r in a.resolutions.split(",")]
    if a.quick:
        a.baseline_max = min(a.baseline_max, 200)
    return a


def plan(args) -> list[tuple[int, float]]:
    runs = [(c, 0.0) for c in args.clients]
    runs += [(c, args.slow_fraction) for c in args.slow_clients
             if args.slow_fraction > 0 and round(c * args.slow_fraction) >= 1]
    return sorted(runs)


def collapsed(r: dict) -> str | None:
    if "error" in r:
        return "load run failed"
    n = r["normal"]
    if n["clients"] and (n["failed"] + n["no_frame"]) > 0.05 * n["clients"]:
        return f"{n['failed'] + n['no_frame']} of {n['clients']} clients failed or got no frame"
    if n.get("fps_median", 0) < CAMERA_FPS / 2:
        return f"median {n['fps_median']} fps"
    if (n.get("lat_p95_ms") or 0) > 2000:
        return f"p95 latency {n['lat_p95_ms']} ms"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    per_run = args.warmup + args.duration + 2.5

    def stop_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, stop_signal)
    signal.signal(signal.SIGHUP, stop_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored

    procs = Procs()
    records: list[dict] = []
    notes: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="camnode-bench-"))
    interrupted = False
    meta = {"started": dt.datetime.now().isoformat(timespec="seconds"),
            "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "quick": args.quick, "duration_s": args.duration,
            "warmup_s": args.warmup, "camera_fps": CAMERA_FPS,
            "slow_fraction": args.slow_fraction}
    try:
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=5)
        meta["commit"] = git.stdout.strip()
    except Exception:
        pass
    print(f"camnode benchmark: {len(args.resolutions)} resolution(s), workers {args.workers}, "
          f"clients {args.clients}, slow-reader runs at {args.slow_clients} "
          f"({args.slow_fraction:.0%} slow), {args.warmup:g} s warm-up + {args.duration:g} s each",
          flush=True)
    print("Columns: fps med/min, latency p50/p95 and median time to first frame are for normal "
          "clients;\n  CPU % is of one core (node process + web tier), RSS is peak over the run, "
          "lg CPU is the load generator,\n  host is the whole machine (of 200 %: server, load "
          "generator, softirq and anything else running).\n", flush=True)

    def over_budget(n_runs: int = 1) -> bool:
        return time.monotonic() - t_start + n_runs * per_run > args.budget

    planned = len(args.resolutions) * len(plan(args)) * \
        (len(args.workers) + (0 if args.no_baseline else 1))
    done = [0]

    def do_run(server, group, state_base, label, res, clients, slow) -> dict:
        r = run_load(procs, server, group, state_base, clients, slow, args, label, res)
        done[0] += 1
        tries = 1
        while disturbed(r) and tries <= args.retries and \
                not over_budget(planned - done[0] - skipped_runs[0] + 1):
            print(fmt_row(r) + "  (other load on the machine: retrying)", flush=True)
            time.sleep(1.0)
            again = run_load(procs, server, group, state_base, clients, slow, args, label, res)
            tries += 1
            if again.get("other_load_pct", 1e9) < r.get("other_load_pct", 1e9) or "error" in r:
                r = again
        r["attempts"] = tries
        records.append(r)
        print(fmt_row(r), flush=True)
        for n in notes_for(r):
            notes.append(f"{label} {res} {clients} clients: {n}")
            print(f"    note: {n}", flush=True)
        time.sleep(1.0)  # let the server notice the disconnects
        return r

    try:
        for w, h in args.resolutions:
            res = f"{w}x{h}"
            for workers in args.workers:
                label = f"camnode w{workers}"
                if over_budget(len(plan(args))):
                    msg = f"{label} {res}: skipped, the time budget ({args.budget:g} s) would be exceeded"
                    notes.append(msg)
                    print(msg, flush=True)
                    continue
                cam = Camnode(procs, tmp, w, h, workers, CAMERA_FPS).start()
                print(f"\n--- {label} at {res}: {cam.base} (JPEG ~{cam.frame_kb} KB, "
                      f"node pid {cam.proc.pid}, web pids {cam.web_pids()})", flush=True)
                print(HEAD, flush=True)
                try:
                    for clients, slow in plan(args):
                        do_run(cam, cam.group(), cam.base, label, res, clients, slow)
                    if workers == args.workers[0] and not args.no_baseline:
                        run_baseline(procs, cam, res, args, do_run, records, notes, over_budget)
                finally:
                    for line in cam.log.problems:
                        notes.append(f"{label} {res} log: {line}")
                    cam.stop()
    except KeyboardInterrupt as exc:
        interrupted = True
        print(f"\ninterrupted ({exc or 'Ctrl-C'}); stopping every process started", flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    if not records:
        return 130 if interrupted else 1
    print_tables(records)
    verdict: list[str] = []
    for res in dict.fromkeys(r["resolution"] for r in records):
        best, detail = best_workers(records, res)
        if best:
            verdict.append(f"{res}: better camnode configuration: {best} ({detail})")
    verdict += target_check(records)
    print()
    for line in verdict:
        print(line)
    flagged = [r for r in records if disturbed(r)]
    if flagged:
        worst = max(r["other_load_pct"] for r in flagged)
        notes.append(f"* = {len(flagged)} of {len(records)} runs had other processes on the machine "
                     f"using more than {DISTURBED_PCT:.0f}% of a core (up to {worst:.0f}%): "
                     "their figures are disturbed; re-run on a quiet machine")
    if notes:
        print("\nNotes:")
        for n in dict.fromkeys(notes):
            print("  " + n)
    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
    meta["interrupted"] = interrupted
    out = Path(args.output)
    if interrupted:  # keep the last complete results; partial ones go next to them
        out = out.with_name(out.stem + ".interrupted.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "runs": records, "verdict": verdict,
                               "notes": list(dict.fromkeys(notes))}, indent=1))
    if interrupted:
        print(f"\npartial results: {out} (plot not redrawn)")
        return 130
    try:
        plot(records, Path(args.plot))
        print(f"\nresults: {out}\nplot: {args.plot}")
    except Exception as exc:  # the numbers matter more than the picture
        print(f"\nresults: {out}\nplot failed: {exc!r}")
    print(f"elapsed {meta['elapsed_s']:.0f} s")
    return 130 if interrupted else 0


skipped_runs = [0]


def run_baseline(procs, cam, res, args, do_run, records, notes, over_budget) -> None:
    bl = Baseline(procs, cam.publish, cam.proc.pid).start()
    bl.frame_kb = cam.frame_kb
    print(f"--- baseline at {res}: {bl.base} (pid {bl.proc.pid}, frames from {cam.publish})",
          flush=True)
    t0 = time.monotonic()
    dead: str | None = None
    try:
        for clients, slow in plan(args):
            skip = None
            if clients > args.baseline_max:
                skip = f"above --baseline-max {args.baseline_max}"
            elif dead:
                skip = f"baseline collapsed earlier ({dead})"
            elif time.monotonic() - t0 > args.baseline_budget:
                skip = f"baseline time limit ({args.baseline_budget:g} s) reached"
            elif over_budget():
                skip = "overall time budget reached"
            if skip:
                r = {"server": "baseline", "resolution": res, "clients": clients,
                     "slow_fraction": slow, "slow_clients": int(round(clients * slow)),
                     "skipped": skip}
                records.append(r)
                print(fmt_row(r), flush=True)
                skipped_runs[0] += 1
                continue
            if bl.proc.poll() is not None or not bl.idle(10.0):
                notes.append(f"baseline {res}: still busy/dead after a run; restarted")
                bl.stop()
                bl = Baseline(procs, cam.publish, cam.proc.pid).start()
                bl.frame_kb = cam.frame_kb
            r = do_run(bl, bl.group(), cam.base, "baseline", res, clients, slow)
            why = collapsed(r)
            if why and not slow:
                dead = f"{why} at {clients} clients"
                notes.append(f"baseline {res}: collapsed: {dead}; larger runs skipped")
    finally:
        bl.stop()


if __name__ == "__main__":
    sys.exit(main())
