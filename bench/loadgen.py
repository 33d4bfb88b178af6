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
"""

from __future__ import annotations

import argparse
import errno
import heapq
import ipaddress
import json
import math
import multiprocessing as mp
import os
import resource
import select
import socket
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import numpy as np

HEAD_BUF = 8192          # per-client buffer for part headers (and the HTTP response head)
HEAD_READ = 2048         # bytes asked for while looking for a header block
SCRATCH = 4 << 20        # shared discard buffer for JPEG bodies
MSG_TRUNC = getattr(socket, "MSG_TRUNC", 0)
EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
EPOLLERR, EPOLLHUP = select.EPOLLERR, select.EPOLLHUP

CONNECTING, HEADERS, BODY, DONE = 0, 1, 2, 3


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


def _field(block: bytes, start: int) -> bytes:
    """Header value starting at `start` up to the end of its line."""
    e = block.find(b"\r\n", start)
    return block[start:e] if e >= 0 else block[start:]


class Client:
    __slots__ = ("idx", "sock", "fd", "slow", "state", "buf", "view", "start", "end",
                 "skip", "ts", "seq", "t_connect", "first", "frames", "frames_all",
                 "last_seq", "gaps", "backwards", "paused", "error")

    def __init__(self, idx: int, slow: bool):
        self.idx, self.slow = idx, slow
        self.sock = None
        self.fd = -1
        self.state = CONNECTING
        self.buf = bytearray(HEAD_BUF)
        self.view = memoryview(self.buf)
        self.start = self.end = 0
        self.skip = 0
        self.ts = 0.0
        self.seq = -1
        self.t_connect = 0.0
        self.first = math.nan
        self.frames = self.frames_all = 0
        self.last_seq = -1
        self.gaps = self.backwards = 0
        self.paused = False
        self.error = ""


def _shard(addr, path: str, host_header: str, idxs: list[int], slow_idx: set[int],
           t0: float, warmup: float, duration: float, slow_pause: float, copy: bool,
           lat_capacity: int, ramp: float) -> dict:
    """Run one process's clients; returns plain arrays (picklable)."""
    t_win0, t_end = t0 + warmup, t0 + warmup + duration
    request = (f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\n"
               f"User-Agent: camnode-bench\r\nAccept: */*\r\n\r\n").encode()
    trunc = 0 if copy else MSG_TRUNC
    scratch = bytearray(SCRATCH)
    clients = [Client(i, i in slow_idx) for i in idxs]
    by_fd: dict[int, Client] = {}
    ep = select.epoll(len(clients) + 8)
    wakes: list[tuple[float, int, Client]] = []   # (time, idx, client) for paused slow clients
    lat = np.empty(lat_capacity, np.float32)
    lat_cid = np.empty(lat_capacity, np.int32)
    nlat = 0
    stride = 1
    errors: Counter = Counter()
    _time = time.time
    n_recv = 0

    def fail(c: Client, why: str) -> None:
        if c.state != DONE:
            c.state = DONE
            c.error = why
            errors[why] += 1
            try:
                ep.unregister(c.fd)
            except (OSError, ValueError):
                pass
            by_fd.pop(c.fd, None)
            c.sock.close()

    def frame_done(c: Client, now: float) -> None:
        nonlocal nlat, stride
        if c.first != c.first:  # nan: first frame
            c.first = now - c.t_connect
        c.frames_all += 1
        seq = c.seq
        if c.last_seq >= 0:
            if seq > c.last_seq + 1:
                c.gaps += seq - c.last_seq - 1
            elif seq <= c.last_seq:
                c.backwards += 1
        c.last_seq = seq
        if t_win0 <= now < t_end:
            c.frames += 1
            if c.frames % stride == 0:
                if nlat == lat_capacity:  # full: keep every other sample from now on
                    keep = slice(0, lat_capacity, 2)
                    k = len(range(0, lat_capacity, 2))
                    lat[:k] = lat[keep]
                    lat_cid[:k] = lat_cid[keep]
                    nlat = k
                    stride *= 2
                lat[nlat] = (now - c.ts) * 1000.0
                lat_cid[nlat] = c.idx
                nlat += 1

    def pause(c: Client, now: float) -> None:
        c.paused = True
        ep.modify(c.fd, 0)
        heapq.heappush(wakes, (now + slow_pause, c.idx, c))

    def parse(c: Client) -> int:
        """Consume complete header blocks (and bodies already in the buffer).

        Returns 0: need more header bytes; 1: now skipping a body; 2: paused (slow)."""
        buf, pos, end = c.buf, c.start, c.end
        while True:
            i = buf.find(b"\r\n\r\n", pos, end)
            if i < 0:
                if pos:
                    rest = end - pos
                    if rest:
                        buf[:rest] = buf[pos:end]
                    c.start, c.end = 0, rest
                if c.end >= HEAD_BUF:
                    fail(c, "header too long")
                return 0
            block = bytes(buf[pos:i])
            hdr_end = i + 4
            k = block.find(b"Content-Length:")
            if k < 0:
                if block.startswith(b"HTTP/"):
                    status = block[9:12]
                    if status != b"200":
                        fail(c, "HTTP " + status.decode("latin-1", "replace"))
                        return 0
                    pos = hdr_end
                    continue
                fail(c, "part without Content-Length")
                return 0
            n = int(_field(block, k + 15))
            k = block.find(b"X-Timestamp:")
            c.ts = float(_field(block, k + 12)) if k >= 0 else math.nan
            k = block.find(b"X-Frame-Seq:")
            c.seq = int(_field(block, k + 12)) if k >= 0 else c.last_seq + 1
            avail = end - hdr_end
            if avail >= n:  # whole (small) body already here
                pos = hdr_end + n
                now = _time()
                frame_done(c, now)
                if c.slow:
                    c.start, c.end = pos, end
                    if pos == end:
                        c.start = c.end = 0
                    pause(c, now)
                    return 2
                continue
            c.skip = n - avail
            c.start = c.end = 0
            c.state = BODY
            return 1

    def on_read(c: Client) -> None:
        nonlocal n_recv
        sock = c.sock
        while True:
            if c.state == BODY:
                want = c.skip if c.skip < SCRATCH else SCRATCH
                try:
                    got = sock.recv_into(scratch, want, trunc)
                except BlockingIOError:
                    return
                except OSError as exc:
                    fail(c, errno.errorcode.get(exc.errno, str(exc)))
                    return
                n_recv += 1
                if got == 0:
                    fail(c, "closed by server")
                    return
                c.skip -= got
                if c.skip:
                    if got < want:
                        return  # kernel drained; wait for epoll
                    continue
                c.state = HEADERS
                now = _time()
                frame_done(c, now)
                if c.slow:
                    pause(c, now)
                # The next part comes a frame interval later: back to epoll (level-
                # triggered, so data already queued is reported at once) rather than
                # a recv that would most likely fail with EAGAIN.
                return
            if c.state != HEADERS:
                return
            end = c.end
            want = HEAD_BUF - end
            if want > HEAD_READ:
                want = HEAD_READ
            try:
                got = sock.recv_into(c.view[end:], want)
            except BlockingIOError:
                return
            except OSError as exc:
                fail(c, errno.errorcode.get(exc.errno, str(exc)))
                return
            n_recv += 1
            if got == 0:
                fail(c, "closed by server")
                return
            c.end = end + got
            r = parse(c)
            if r == 2 or c.state == DONE:
                return
            if r == 0 and got < want:
                return

    def on_connect(c: Client) -> None:
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            fail(c, "connect: " + errno.errorcode.get(err, str(err)))
            return
        try:
            c.sock.send(request)
        except OSError as exc:
            fail(c, "send: " + errno.errorcode.get(exc.errno or 0, str(exc)))
            return
        c.state = HEADERS
        ep.modify(c.fd, EPOLLIN)

    def connect(c: Client) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        c.sock, c.fd = s, s.fileno()
        c.t_connect = _time()
        err = s.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            c.state = DONE
            c.error = "connect: " + errno.errorcode.get(err, str(err))
            errors[c.error] += 1
            s.close()
            return
        by_fd[c.fd] = c
        ep.register(c.fd, EPOLLOUT)

    # Wait for the common start, then connect (optionally spread over `ramp` seconds).
    delay = t0 - _time()
    if delay > 0:
        time.sleep(delay)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_win0 = None
    todo = list(clients)
    n_todo = len(todo)
    next_i = 0
    poll = ep.poll
    while True:
        now = _time()
        if now >= t_end:
            break
        if next_i < n_todo:
            due = n_todo if ramp <= 0 else min(n_todo, int(n_todo * (now - t0) / ramp) + 1)
            while next_i < due:
                connect(todo[next_i])
                next_i += 1
        if cpu_win0 is None and now >= t_win0:
            cpu_win0 = (resource.getrusage(resource.RUSAGE_SELF), now)
        timeout = t_end - now
        if next_i < n_todo:
            timeout = min(timeout, 0.01)
        if cpu_win0 is None:
            timeout = min(timeout, t_win0 - now)
        if wakes:
            timeout = min(timeout, wakes[0][0] - now)
        for fd, ev in poll(max(timeout, 0.0), 4096):
            c = by_fd.get(fd)
            if c is None:
                continue
            if c.paused:
                if ev & (EPOLLERR | EPOLLHUP):
                    fail(c, "hangup while paused")
                continue
            if c.state == CONNECTING:
                on_connect(c)
            else:
                on_read(c)
        if wakes:
            now = _time()
            while wakes and wakes[0][0] <= now:
                _, _, c = heapq.heappop(wakes)
                c.paused = False
                if c.state == DONE:
                    continue
                ep.modify(c.fd, EPOLLIN)
                if c.state == HEADERS and c.end > c.start:
                    r = parse(c)  # bytes read before the pause
                    if r == 1:
                        on_read(c)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    t_stop = _time()
    for c in clients:
        if c.state != DONE and c.sock is not None:
            c.sock.close()
    ep.close()
    if cpu_win0 is None:
        cpu_win0 = (ru0, t0)
    r0 = cpu_win0[0]
    cpu_s = (ru1.ru_utime - r0.ru_utime) + (ru1.ru_stime - r0.ru_stime)
    return {
        "idx": np.array([c.idx for c in clients], np.int32),
        "slow": np.array([c.slow for c in clients], bool),
        "frames": np.array([c.frames for c in clients], np.int32),
        "frames_all": np.array([c.frames_all for c in clients], np.int32),
        "ttff": np.array([c.first for c in clients], np.float64),
        "gaps": np.array([c.gaps for c in clients], np.int64),
        "backwards": np.array([c.backwards for c in clients], np.int64),
        "failed": np.array([bool(c.error) for c in clients], bool),
        "lat": lat[:nlat].copy(),
        "lat_cid": lat_cid[:nlat].copy(),
        "lat_stride": stride,
        "errors": dict(errors),
        "cpu_s": cpu_s,
        "cpu_window_s": max(1e-9, t_stop - cpu_win0[1]),
        "recv_calls": n_recv,
    }


def _shard_entry(conn, kwargs) -> None:
    try:
        conn.send(("ok", _shard(**kwargs)))
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
    shards = []
    common = dict(addr=addr, path=path, host_header=u.netloc, slow_idx=slow_idx, t0=t0,
                  warmup=warmup, duration=duration, slow_pause=slow_pause, copy=copy or not MSG_TRUNC,
                  ramp=ramp)
    if procs == 1:
        shards.append(_shard(idxs=per[0], lat_capacity=cap(len(per[0])), **common))
    else:
        ctx = mp.get_context("fork")
        running = []
        for p in range(procs):
            a, b = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_shard_entry, args=(b, dict(
                idxs=per[p], lat_capacity=cap(len(per[p])), **common)), daemon=True)
            proc.start()
            b.close()
            running.append((proc, a))
        deadline = t0 + warmup + duration + 60
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
    merged = {k: np.concatenate([s[k] for s in shards])
              for k in ("idx", "slow", "frames", "frames_all", "ttff", "gaps", "backwards",
                        "failed", "lat", "lat_cid")}
    order = np.argsort(merged["idx"])
    for k in ("idx", "slow", "frames", "frames_all", "ttff", "gaps", "backwards", "failed"):
        merged[k] = merged[k][order]
    errors: Counter = Counter()
    for s in shards:
        errors.update(s["errors"])
    merged.update(t0=t0, clients=clients, duration=duration, warmup=warmup, procs=procs,
                  slow_pause=slow_pause, errors=dict(errors),
                  lat_stride=max(s["lat_stride"] for s in shards),
                  loadgen_cpu_s=sum(s["cpu_s"] for s in shards),
                  loadgen_window_s=max(s["cpu_window_s"] for s in shards),
                  recv_calls=sum(s["recv_calls"] for s in shards),
                  mode="copy" if common["copy"] else "msg_trunc")
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
