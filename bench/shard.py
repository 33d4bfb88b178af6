"""One process's share of bench.loadgen's MJPEG clients, on one epoll loop.

bench.loadgen calls `run_shard(**kwargs)` in its own process or in each forked one; it
returns plain arrays (picklable). All of it runs on that process's only thread. What a
client does per part is described in bench/loadgen.py's docstring.
"""

from __future__ import annotations

import errno
import heapq
import math
import resource
import select
import socket
import time
from collections import Counter

import numpy as np

HEAD_BUF = 8192          # per-client buffer for part headers (and the HTTP response head)
HEAD_READ = 2048         # bytes asked for while looking for a header block
SCRATCH = 4 << 20        # shared discard buffer for JPEG bodies
MSG_TRUNC = getattr(socket, "MSG_TRUNC", 0)
EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
EPOLLERR, EPOLLHUP = select.EPOLLERR, select.EPOLLHUP

CONNECTING, HEADERS, BODY, DONE = 0, 1, 2, 3     # Client.state
NEED_MORE, SKIPPING, PAUSED = 0, 1, 2            # what Shard._parse left a client doing
RESPONSE_HEAD, FAILED = -1, -2                   # Shard._header_block, besides a length


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
        self.start = self.end = self.skip = 0
        self.ts, self.seq, self.t_connect = 0.0, -1, 0.0
        self.first = math.nan
        self.frames = self.frames_all = 0
        self.last_seq = -1
        self.gaps = self.backwards = 0
        self.paused = False
        self.error = ""

    def frame_received(self, now: float) -> None:
        """Count a whole frame: time to the first one, X-Frame-Seq gaps and reversals."""
        if self.first != self.first:  # nan: first frame
            self.first = now - self.t_connect
        self.frames_all += 1
        seq = self.seq
        if self.last_seq >= 0:
            if seq > self.last_seq + 1:
                self.gaps += seq - self.last_seq - 1
            elif seq <= self.last_seq:
                self.backwards += 1
        self.last_seq = seq


class LatencySamples:
    """Latency samples (ms) and their client ids in preallocated arrays. When they are
    full, every other sample is dropped and the stride doubles: from then on only every
    stride-th frame of a client is sampled, so memory stays bounded."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.ms = np.empty(capacity, np.float32)
        self.cid = np.empty(capacity, np.int32)
        self.n = 0
        self.stride = 1

    def add(self, frame_no: int, ms: float, cid: int) -> None:
        if frame_no % self.stride:
            return
        n = self.n
        if n == self.capacity:
            keep = slice(0, self.capacity, 2)
            n = len(range(0, self.capacity, 2))
            self.ms[:n] = self.ms[keep]
            self.cid[:n] = self.cid[keep]
            self.stride *= 2
        self.ms[n] = ms
        self.cid[n] = cid
        self.n = n + 1


class Shard:
    """Clients `idxs` (those in `slow_idx` slow readers) of one URL, from `t0` for
    `warmup` + `duration` s; `run()` does it all and returns the figures."""

    def __init__(self, addr, path: str, host_header: str, idxs: list[int],
                 slow_idx: set[int], t0: float, warmup: float, duration: float,
                 slow_pause: float, copy: bool, lat_capacity: int, ramp: float):
        self.addr, self.t0, self.ramp, self.slow_pause = addr, t0, ramp, slow_pause
        self.t_win0, self.t_end = t0 + warmup, t0 + warmup + duration
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\n"
                        f"User-Agent: camnode-bench\r\nAccept: */*\r\n\r\n").encode()
        self.trunc = 0 if copy else MSG_TRUNC
        self.scratch = bytearray(SCRATCH)
        self.clients = [Client(i, i in slow_idx) for i in idxs]
        self.by_fd: dict[int, Client] = {}
        self.ep: select.epoll | None = None
        self.wakes: list[tuple[float, int, Client]] = []  # paused slow readers: (time, idx, c)
        self.lat = LatencySamples(lat_capacity)
        self.errors: Counter = Counter()
        self.n_recv = 0

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict:
        """Wait for the common start, connect (spread over `ramp` s), read until the end
        of the window; the figures of every client."""
        self.ep = select.epoll(len(self.clients) + 8)
        delay = self.t0 - time.time()
        if delay > 0:
            time.sleep(delay)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        try:
            cpu_win0 = self._loop() or (ru0, self.t0)
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            t_stop = time.time()
        finally:
            self._close()
        return self._result(cpu_win0, ru1, t_stop)

    def _loop(self) -> tuple | None:
        """Until the end: connect those due, handle epoll events, wake slow readers.
        Returns (rusage, time) at the start of the window, None if it never came."""
        cpu_win0 = None
        n_todo, next_i = len(self.clients), 0
        poll, _time = self.ep.poll, time.time
        while True:
            now = _time()
            if now >= self.t_end:
                return cpu_win0
            if next_i < n_todo:
                next_i = self._connect_due(next_i, now)
            if cpu_win0 is None and now >= self.t_win0:
                cpu_win0 = (resource.getrusage(resource.RUSAGE_SELF), now)
            timeout = self.t_end - now
            if next_i < n_todo:
                timeout = min(timeout, 0.01)
            if cpu_win0 is None:
                timeout = min(timeout, self.t_win0 - now)
            if self.wakes:
                timeout = min(timeout, self.wakes[0][0] - now)
            for fd, ev in poll(max(timeout, 0.0), 4096):
                self._on_event(fd, ev)
            if self.wakes:
                self._wake_due(_time())

    def _connect_due(self, next_i: int, now: float) -> int:
        n = len(self.clients)
        due = n if self.ramp <= 0 else min(n, int(n * (now - self.t0) / self.ramp) + 1)
        while next_i < due:
            self._connect(self.clients[next_i])
            next_i += 1
        return next_i

    def _on_event(self, fd: int, ev: int) -> None:
        c = self.by_fd.get(fd)
        if c is None:
            return
        if c.paused:
            if ev & (EPOLLERR | EPOLLHUP):
                self._fail(c, "hangup while paused")
        elif c.state == CONNECTING:
            self._on_connect(c)
        else:
            self._on_read(c)

    def _wake_due(self, now: float) -> None:
        wakes = self.wakes
        while wakes and wakes[0][0] <= now:
            _, _, c = heapq.heappop(wakes)
            c.paused = False
            if c.state == DONE:
                continue
            self.ep.modify(c.fd, EPOLLIN)
            if c.state == HEADERS and c.end > c.start:
                if self._parse(c) == SKIPPING:  # bytes read before the pause
                    self._on_read(c)

    # ------------------------------------------------------------------ one client
    def _connect(self, c: Client) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        c.sock, c.fd = s, s.fileno()
        c.t_connect = time.time()
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            c.state = DONE
            c.error = "connect: " + errno.errorcode.get(err, str(err))
            self.errors[c.error] += 1
            s.close()
            return
        self.by_fd[c.fd] = c
        self.ep.register(c.fd, EPOLLOUT)

    def _on_connect(self, c: Client) -> None:
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(c, "connect: " + errno.errorcode.get(err, str(err)))
            return
        try:
            c.sock.send(self.request)
        except OSError as exc:
            self._fail(c, "send: " + errno.errorcode.get(exc.errno or 0, str(exc)))
            return
        c.state = HEADERS
        self.ep.modify(c.fd, EPOLLIN)

    def _on_read(self, c: Client) -> None:
        """Read what `c`'s socket holds, headers or body, while it is worth it."""
        while True:
            if c.state == BODY:
                if not self._read_body(c):
                    return
            elif c.state == HEADERS:
                if not self._read_headers(c):
                    return
            else:
                return

    def _recv_failed(self, c: Client, exc: OSError) -> bool:
        """False: no more to read now (EAGAIN), or `c` failed."""
        if not isinstance(exc, BlockingIOError):
            self._fail(c, errno.errorcode.get(exc.errno, str(exc)))
        return False

    def _read_body(self, c: Client) -> bool:
        """Skip body bytes; True to read on at once."""
        want = c.skip if c.skip < SCRATCH else SCRATCH
        try:
            got = c.sock.recv_into(self.scratch, want, self.trunc)
        except OSError as exc:
            return self._recv_failed(c, exc)
        self.n_recv += 1
        if not got:
            return self._fail(c, "closed by server")
        c.skip -= got
        if c.skip:
            return got == want  # fewer: the kernel is drained, wait for epoll
        c.state = HEADERS
        now = time.time()
        self._frame_done(c, now)
        if c.slow:
            self._pause(c, now)
        # The next part comes a frame interval later: back to epoll (level-triggered,
        # so data already queued is reported at once) rather than a recv that would
        # most likely fail with EAGAIN.
        return False

    def _read_headers(self, c: Client) -> bool:
        """Read header bytes and parse them; True to read on at once."""
        end = c.end
        want = min(HEAD_BUF - end, HEAD_READ)
        try:
            got = c.sock.recv_into(c.view[end:], want)
        except OSError as exc:
            return self._recv_failed(c, exc)
        self.n_recv += 1
        if not got:
            return self._fail(c, "closed by server")
        c.end = end + got
        r = self._parse(c)
        if r == PAUSED or c.state == DONE:
            return False
        return r == SKIPPING or got == want

    def _parse(self, c: Client) -> int:
        """Consume complete header blocks (and bodies already in the buffer); returns
        NEED_MORE (header bytes), SKIPPING (a body) or PAUSED (a slow reader)."""
        buf, pos, end = c.buf, c.start, c.end
        while True:
            i = buf.find(b"\r\n\r\n", pos, end)
            if i < 0:
                self._keep_partial(c, pos, end)
                return NEED_MORE
            n = self._header_block(c, bytes(buf[pos:i]))
            pos = i + 4
            if n == FAILED:
                return NEED_MORE
            if n == RESPONSE_HEAD:
                continue
            avail = end - pos
            if avail < n:
                c.skip = n - avail
                c.start = c.end = 0
                c.state = BODY
                return SKIPPING
            pos += n  # whole (small) body already here
            now = time.time()
            self._frame_done(c, now)
            if c.slow:
                c.start, c.end = (pos, end) if pos < end else (0, 0)
                self._pause(c, now)
                return PAUSED

    def _keep_partial(self, c: Client, pos: int, end: int) -> None:
        """Move an incomplete header block to the front of the buffer."""
        if pos:
            rest = end - pos
            if rest:
                c.buf[:rest] = c.buf[pos:end]
            c.start, c.end = 0, rest
        if c.end >= HEAD_BUF:
            self._fail(c, "header too long")

    def _header_block(self, c: Client, block: bytes) -> int:
        """Body length of the part headed by `block` (its X-Timestamp and X-Frame-Seq
        noted on `c`); RESPONSE_HEAD for the HTTP 200 head; FAILED when `c` failed."""
        k = block.find(b"Content-Length:")
        if k < 0:
            if not block.startswith(b"HTTP/"):
                self._fail(c, "part without Content-Length")
                return FAILED
            status = block[9:12]
            if status != b"200":
                self._fail(c, "HTTP " + status.decode("latin-1", "replace"))
                return FAILED
            return RESPONSE_HEAD
        n = int(_field(block, k + 15))
        k = block.find(b"X-Timestamp:")
        c.ts = float(_field(block, k + 12)) if k >= 0 else math.nan
        k = block.find(b"X-Frame-Seq:")
        c.seq = int(_field(block, k + 12)) if k >= 0 else c.last_seq + 1
        return n

    def _frame_done(self, c: Client, now: float) -> None:
        c.frame_received(now)
        if self.t_win0 <= now < self.t_end:
            c.frames += 1
            self.lat.add(c.frames, (now - c.ts) * 1000.0, c.idx)

    def _pause(self, c: Client, now: float) -> None:
        c.paused = True
        self.ep.modify(c.fd, 0)
        heapq.heappush(self.wakes, (now + self.slow_pause, c.idx, c))

    def _fail(self, c: Client, why: str) -> bool:
        """Close `c` for good, counting `why`; False (nothing more to read)."""
        if c.state != DONE:
            c.state = DONE
            c.error = why
            self.errors[why] += 1
            try:
                self.ep.unregister(c.fd)
            except (OSError, ValueError):
                pass
            self.by_fd.pop(c.fd, None)
            c.sock.close()
        return False

    # ------------------------------------------------------------------ the end
    def _close(self) -> None:
        for c in self.clients:
            if c.state != DONE and c.sock is not None:
                c.sock.close()
        self.ep.close()

    def _result(self, cpu_win0: tuple, ru1, t_stop: float) -> dict:
        r0 = cpu_win0[0]
        cs = self.clients
        return {
            "idx": np.array([c.idx for c in cs], np.int32),
            "slow": np.array([c.slow for c in cs], bool),
            "frames": np.array([c.frames for c in cs], np.int32),
            "frames_all": np.array([c.frames_all for c in cs], np.int32),
            "ttff": np.array([c.first for c in cs], np.float64),
            "gaps": np.array([c.gaps for c in cs], np.int64),
            "backwards": np.array([c.backwards for c in cs], np.int64),
            "failed": np.array([bool(c.error) for c in cs], bool),
            "lat": self.lat.ms[:self.lat.n].copy(),
            "lat_cid": self.lat.cid[:self.lat.n].copy(),
            "lat_stride": self.lat.stride,
            "errors": dict(self.errors),
            "cpu_s": (ru1.ru_utime - r0.ru_utime) + (ru1.ru_stime - r0.ru_stime),
            "cpu_window_s": max(1e-9, t_stop - cpu_win0[1]),
            "recv_calls": self.n_recv,
        }


def run_shard(**kwargs) -> dict:
    """Run one process's clients (keyword arguments of `Shard`); returns plain arrays."""
    return Shard(**kwargs).run()
