"""MJPEG load generator: K concurrent `/stream.mjpg` clients for D seconds, cheaply.

    python -m bench.loadgen http://127.0.0.1:8080/stream.mjpg --clients 500 --duration 10

Every client is a non-blocking socket on one epoll loop per process (`--procs` spreads
them over 1-2 processes, merged at the end). Only the part headers are parsed: a small
`recv_into` into the client's preallocated buffer finds `Content-Length`, `X-Timestamp`
and `X-Frame-Seq`; the JPEG body is then skipped with `recv_into(..., MSG_TRUNC)`, which
on Linux TCP discards the bytes in the kernel without copying them to user space (plain
`recv_into` into a shared scratch buffer with `--copy`, or where MSG_TRUNC is missing).

Per client it records frames received inside the measurement window (warm-up
excluded), delivered fps, time to first frame (from the start of its connect) and one
latency sample per frame: time the last byte of the JPEG was read minus the frame's
X-Timestamp (capture time on the node), in ms. Samples go into preallocated numpy
arrays (strided if they would overflow), so memory stays small.

Slow readers (`--slow-fraction`): after each complete part they stop reading for
`--slow-pause` seconds (epoll interest cleared), so their kernel receive buffer fills
and the server has to skip frames for them. Their figures are reported apart.

Traffic only ever goes to loopback addresses unless `--allow-remote` is given.

The clients and their epoll loop are in bench/shard.py; this module starts the shards
(in this process or forked ones), merges and summarizes their figures, and is the CLI.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import multiprocessing as mp
import resource
import socket
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import numpy as np

from bench.shard import MSG_TRUNC, run_shard


def raise_nofile(need: int) -> int:
    """Raise RLIMIT_NOFILE towards the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    return soft


def check_loopback(host: str) -> None:
    for info in socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM):
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise SystemExit(f"loadgen: {host} is not a loopback address "
                             "(use --allow-remote to load another host)")


def _shard_entry(conn, kwargs) -> None:
    try:
        conn.send(("ok", run_shard(**kwargs)))
    except BaseException as exc:  # report, never hang the parent
        conn.send(("error", repr(exc)))
    finally:
        conn.close()


def run_load(url: str, clients: int, duration: float = 10.0, warmup: float = 2.0,
             slow_fraction: float = 0.0, slow_pause: float = 1.0, procs: int = 1,
             copy: bool = False, ramp: float = 0.0, allow_remote: bool = False,
             max_fps: float = 60.0, start_at: float | None = None) -> dict:
    """Run the load; returns merged raw results (numpy arrays) for `summarize`."""
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    if not allow_remote:
        check_loopback(host)
    addr = (socket.gethostbyname(host), port)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    raise_nofile(clients + 256)
    n_slow = int(round(clients * slow_fraction))
    # Spread slow clients evenly over the index range (and so over processes).
    slow_idx = set(np.linspace(0, clients - 1, n_slow).round().astype(int).tolist()) if n_slow else set()
    procs = max(1, min(procs, clients))
    t0 = start_at if start_at else time.time() + 0.3 + 0.05 * procs
    per = [list(range(p, clients, procs)) for p in range(procs)]
    cap = lambda n: max(1024, int(n * max_fps * duration))  # noqa: E731
    common = dict(addr=addr, path=path, host_header=u.netloc, slow_idx=slow_idx, t0=t0,
                  warmup=warmup, duration=duration, slow_pause=slow_pause, copy=copy or not MSG_TRUNC,
                  ramp=ramp)
    jobs = [dict(idxs=idxs, lat_capacity=cap(len(idxs)), **common) for idxs in per]
    if procs == 1:
        shards = [run_shard(**jobs[0])]
    else:
        shards = _run_forked(jobs, deadline=t0 + warmup + duration + 60)
    merged = _merge(shards)
    merged.update(t0=t0, clients=clients, duration=duration, warmup=warmup, procs=procs,
                  slow_pause=slow_pause, mode="copy" if common["copy"] else "msg_trunc")
    return merged


def _run_forked(jobs: list[dict], deadline: float) -> list[dict]:
    """Each shard in a forked process; their results, or RuntimeError if one failed or
    did not report by `deadline` (every process is joined or killed either way)."""
    ctx = mp.get_context("fork")
    running, shards = [], []
    for job in jobs:
        a, b = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_shard_entry, args=(b, job), daemon=True)
        proc.start()
        b.close()
        running.append((proc, a))
    try:
        for proc, a in running:
            if not a.poll(max(0.1, deadline - time.time())):
                raise RuntimeError("load generator shard did not report")
            status, payload = a.recv()
            if status != "ok":
                raise RuntimeError(f"load generator shard failed: {payload}")
            shards.append(payload)
    finally:
        for proc, a in running:
            proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return shards


def _merge(shards: list[dict]) -> dict:
    """The shards' per-client arrays in client order, their samples and counts summed."""
    merged = {k: np.concatenate([s[k] for s in shards])
              for k in ("idx", "slow", "frames", "frames_all", "ttff", "gaps", "backwards",
                        "failed", "lat", "lat_cid")}
    order = np.argsort(merged["idx"])
    for k in ("idx", "slow", "frames", "frames_all", "ttff", "gaps", "backwards", "failed"):
        merged[k] = merged[k][order]
    errors: Counter = Counter()
    for s in shards:
        errors.update(s["errors"])
    merged.update(errors=dict(errors),
                  lat_stride=max(s["lat_stride"] for s in shards),
                  loadgen_cpu_s=sum(s["cpu_s"] for s in shards),
                  loadgen_window_s=max(s["cpu_window_s"] for s in shards),
                  recv_calls=sum(s["recv_calls"] for s in shards))
    return merged


def _pct(a: np.ndarray, q: float):
    return round(float(np.percentile(a, q)), 2) if len(a) else None


def _group(raw: dict, mask: np.ndarray) -> dict:
    n = int(mask.sum())
    if n == 0:
        return {"clients": 0}
    fps = raw["frames"][mask] / raw["duration"]
    ttff = raw["ttff"][mask]
    got = ttff[~np.isnan(ttff)]
    ids = np.nonzero(mask)[0]
    lat = raw["lat"][np.isin(raw["lat_cid"], ids)]
    return {
        "clients": n,
        "failed": int(raw["failed"][mask].sum()),
        "no_frame": int(np.isnan(ttff).sum()),
        "fps_median": round(float(np.median(fps)), 2),
        "fps_min": round(float(fps.min()), 2),
        "fps_p10": round(float(np.percentile(fps, 10)), 2),
        "fps_mean": round(float(fps.mean()), 2),
        "fps_max": round(float(fps.max()), 2),
        "lat_p50_ms": _pct(lat, 50),
        "lat_p95_ms": _pct(lat, 95),
        "lat_p99_ms": _pct(lat, 99),
        "lat_max_ms": round(float(lat.max()), 1) if len(lat) else None,
        "lat_samples": int(len(lat)),
        "ttff_median_ms": round(float(np.median(got)) * 1000, 1) if len(got) else None,
        "ttff_max_ms": round(float(got.max()) * 1000, 1) if len(got) else None,
        "frames": int(raw["frames"][mask].sum()),
        "seq_gaps": int(raw["gaps"][mask].sum()),
        "seq_backwards": int(raw["backwards"][mask].sum()),
    }


def summarize(raw: dict) -> dict:
    """Figures for normal and slow clients apart (headline = normal)."""
    return {
        "t0": raw["t0"],
        "clients": raw["clients"],
        "slow_clients": int(raw["slow"].sum()),
        "duration_s": raw["duration"],
        "warmup_s": raw["warmup"],
        "procs": raw["procs"],
        "mode": raw["mode"],
        "errors": raw["errors"],
        "normal": _group(raw, ~raw["slow"]),
        "slow": _group(raw, raw["slow"]),
        "loadgen_cpu_pct": round(100 * raw["loadgen_cpu_s"] / raw["loadgen_window_s"], 1),
        "recv_calls": raw["recv_calls"],
        "lat_stride": raw["lat_stride"],
    }


def format_summary(s: dict) -> str:
    lines = [f"{s['clients']} clients ({s['slow_clients']} slow), {s['duration_s']:g} s after "
             f"{s['warmup_s']:g} s warm-up, {s['procs']} process(es), body skip: {s['mode']}, "
             f"load generator CPU {s['loadgen_cpu_pct']}% of a core"]
    for name in ("normal", "slow"):
        g = s[name]
        if not g.get("clients"):
            continue
        lines.append(
            f"  {name:6s} n={g['clients']:4d}  fps median {g['fps_median']:6.2f} min {g['fps_min']:6.2f}"
            f"  latency p50 {g['lat_p50_ms']} p95 {g['lat_p95_ms']} ms"
            f"  first frame median {g['ttff_median_ms']} ms"
            f"  failed {g['failed']}  no frame {g['no_frame']}  seq gaps {g['seq_gaps']}")
    if s["errors"]:
        lines.append(f"  errors: {s['errors']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.splitlines()[0])
    p.add_argument("url", help="stream URL, e.g. http://127.0.0.1:8080/stream.mjpg")
    p.add_argument("--clients", "-c", type=int, default=50)
    p.add_argument("--duration", "-d", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", "-w", type=float, default=2.0, help="seconds excluded first")
    p.add_argument("--slow-fraction", type=float, default=0.0,
                   help="fraction of clients reading one part per --slow-pause")
    p.add_argument("--slow-pause", type=float, default=1.0)
    p.add_argument("--procs", "-p", type=int, default=1, help="load generator processes (1-2)")
    p.add_argument("--ramp", type=float, default=0.0, help="spread connects over this many s")
    p.add_argument("--copy", action="store_true", help="copy bodies to user space (no MSG_TRUNC)")
    p.add_argument("--allow-remote", action="store_true")
    p.add_argument("--start-at", type=float, help="Unix time to start connecting (default: now)")
    p.add_argument("--json", metavar="FILE", help="write the summary as JSON ('-' for stdout)")
    p.add_argument("--raw", metavar="FILE.npz", help="also save per-client arrays and samples")
    a = p.parse_args(argv)
    raw = run_load(a.url, a.clients, a.duration, a.warmup, a.slow_fraction, a.slow_pause,
                   a.procs, a.copy, a.ramp, a.allow_remote, start_at=a.start_at)
    s = summarize(raw)
    if a.raw:
        np.savez_compressed(a.raw, **{k: v for k, v in raw.items() if isinstance(v, np.ndarray)})
    if a.json == "-":
        json.dump(s, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(format_summary(s), file=sys.stderr if a.json is None else sys.stdout)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(s, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
