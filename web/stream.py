"""MJPEG fan-out: every viewer gets the newest frame as soon as its socket can take it.

After the HTTP request is parsed, the connection is taken from Tornado and written to
directly (one `send` per frame, no per-client buffering or futures): with hundreds of
viewers the per-frame cost is what decides the frame rate. All on the worker's loop
thread. A client whose kernel buffer is full is skipped and armed for writability;
when it drains it gets the newest frame, never a backlog. `TCP_NOTSENT_LOWAT` keeps
what the kernel holds unsent per client to about one frame, so a slow client sees
fresh frames rather than seconds-old ones.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import itertools
import logging
import socket
import time
from typing import Callable

from camnode.node.wire import VariantError, parse_request
from camnode.web.auth import session_id
from camnode.web.base import BaseHandler
from camnode.web.mjpeg import BOUNDARY, Frame
from camnode.web.nodelink import NodeLink

log = logging.getLogger(__name__)

TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
NOTSENT_LOWAT_BYTES = 64 * 1024
STALE_AFTER_S = 1.5  # a viewer whose newest frame is older than this is counted as stalled

RESPONSE_HEAD = (b"HTTP/1.1 200 OK\r\n"
                 b"Content-Type: multipart/x-mixed-replace; boundary=" + BOUNDARY + b"\r\n"
                 b"Cache-Control: no-cache, no-store, must-revalidate\r\n"
                 b"Pragma: no-cache\r\n"
                 b"X-Content-Type-Options: nosniff\r\n"
                 b"Connection: close\r\n\r\n"
                 b"--" + BOUNDARY + b"\r\n")

_ids = itertools.count(1)


class StreamClient:
    """One viewer's socket. Owned by `Fanout`; every method runs on the loop thread."""

    __slots__ = ("id", "sock", "fd", "peer", "fanout", "loop", "pending", "sent_seq",
                 "armed", "closed", "frames", "bytes", "connected", "_fps_window", "session",
                 "variant", "sent_ts", "done_ts")

    def __init__(self, fanout: "Fanout", sock: socket.socket, peer: str, variant: str = ""):
        self.id = next(_ids)
        self.variant = variant  # "" the stream, else a variant's key (node/variants.py)
        self.sock, self.fd, self.peer, self.fanout = sock, sock.fileno(), peer, fanout
        self.loop = fanout.loop
        self.pending: memoryview | None = None  # rest of a frame the kernel took only part of
        self.sent_seq = -1
        # Capture times of the frame being sent and of the last one fully sent: the fps
        # is frames over capture time, so when the sample falls between frames no
        # longer matters (a 1 s window at 10 fps read 12 when it held one frame extra).
        self.sent_ts = self.done_ts = 0.0
        self.armed = self.closed = False
        self.frames = self.bytes = 0
        self.connected = time.time()
        self._fps_window: collections.deque = collections.deque(maxlen=8)
        self.session: str | None = None  # the login session it was opened with, if any

    def start(self) -> None:
        self.loop.add_reader(self.fd, self._on_readable)
        self.pending = memoryview(RESPONSE_HEAD)
        self._write_pending()

    def offer(self) -> None:
        """A new frame exists: send it now unless the previous one is still draining."""
        if not self.armed and self.pending is None:
            self._send_newest()

    def _send_newest(self) -> None:
        frame = self.fanout.link.newest(self.variant)
        if frame is None or frame.header.seq == self.sent_seq:
            return
        try:
            n = self.sock.send(frame.part)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self.close(exc)
            return
        if n == 0:
            self._arm()  # kernel full: try again, with whatever is newest, when it drains
            return
        self.sent_seq, self.sent_ts = frame.header.seq, frame.header.ts
        self.bytes += n
        if n < len(frame.part):
            self.pending = memoryview(frame.part)[n:]
            self._arm()
        else:
            self.frames += 1
            self.done_ts = self.sent_ts

    def _write_pending(self) -> None:
        try:
            n = self.sock.send(self.pending)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self.close(exc)
            return
        self.bytes += n
        if n < len(self.pending):
            self.pending = self.pending[n:]
            self._arm()
            return
        self.pending = None
        if self.sent_seq >= 0:
            self.frames += 1
            self.done_ts = self.sent_ts
        self._send_newest()

    def _arm(self) -> None:
        if not self.armed and not self.closed:
            self.armed = True
            self.loop.add_writer(self.fd, self._on_writable)

    def _on_writable(self) -> None:
        self.loop.remove_writer(self.fd)
        self.armed = False
        if self.pending is not None:
            self._write_pending()
        else:
            self._send_newest()

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self.close(exc)
            return
        if not data:
            self.close(None)  # the viewer went away

    def close(self, exc: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.fd)
        if self.armed:
            self.loop.remove_writer(self.fd)
        self.sock.close()
        self.pending = None
        self.fanout.remove(self)
        if exc is not None and getattr(exc, "errno", None) not in (errno.EPIPE, errno.ECONNRESET):
            log.info("stream client %d (%s) closed: %s", self.id, self.peer, exc)

    def sample_fps(self, now: float) -> float:
        """Frames per second over the last few samples (sampled by Fanout every second,
        `now` wall-clock time like the frames' capture times): frames delivered between
        the capture times of the first and last frame in the window. A viewer that has
        stopped getting frames has its window stretched to `now`, so it falls to 0."""
        if self.frames == 0:
            return 0.0
        self._fps_window.append((self.done_ts, self.frames))
        (t0, f0), (t1, f1) = self._fps_window[0], self._fps_window[-1]
        if now - t1 > STALE_AFTER_S:
            t1 = now
        return round((f1 - f0) / (t1 - t0), 2) if f1 > f0 and t1 > t0 else 0.0

    def describe(self, fps: float) -> dict:
        return {"id": self.id, "peer": self.peer, "fps": fps, "frames": self.frames,
                "bytes": self.bytes, "seconds": round(time.time() - self.connected, 1)}


class Fanout:
    """All stream clients of one worker; the node link's frame listener."""

    def __init__(self, link: NodeLink, max_clients: int):
        self.link = link
        self.max_clients = max_clients
        self.clients: dict[int, StreamClient] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.total_served = 0
        self.fps: dict[int, float] = {}
        self.bytes_closed = 0  # bytes sent to clients that have gone (for the counter)
        self.on_demand: Callable[[], None] | None = None  # set by the worker: report now

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.link.frame_listeners.append(self.on_frame)
        self.link.variant_listeners.append(self.on_frame)
        self.link.state_listeners.append(self.on_state)

    def on_state(self, state: dict) -> None:
        """End the streams of variants the node refuses. Admission is checked against
        the newest state (StreamHandler.variant_or_refuse), so two workers, or two
        requests in one loop turn, can each admit a variant while one place is left;
        the node, which owns the cap, then encodes one of them. The other's viewers
        would wait for frames that never come: closing makes a browser or Home
        Assistant retry, and it is logged."""
        variants = (state.get("encoding") or {}).get("variants") or {}
        refused = set(variants.get("refused") or ())
        if not refused:
            return
        for client in [c for c in self.clients.values() if c.variant in refused]:
            log.warning("stream client %d (%s): variant %s refused by the node (at most %s "
                        "at once); closing it", client.id, client.peer, client.variant,
                        variants.get("max"))
            client.close(None)

    def on_frame(self, frame: Frame) -> None:
        variant = frame.header.variant
        for client in list(self.clients.values()):
            if client.variant == variant:
                client.offer()

    def variant_counts(self) -> dict[str, int]:
        """Viewers per variant (the plain stream's are not listed), for the node."""
        counts: dict[str, int] = {}
        for c in self.clients.values():
            if c.variant:
                counts[c.variant] = counts.get(c.variant, 0) + 1
        return counts

    def _demand_changed(self, variant: str) -> None:
        """First viewer or last one gone: tell the node now, not at the next report, so
        it starts (or stops) encoding within a frame (node/encoder.py)."""
        if self.on_demand is not None and \
                sum(1 for c in self.clients.values() if c.variant == variant) in (0, 1):
            self.on_demand()

    def add(self, sock: socket.socket, peer: str, variant: str = "") -> StreamClient:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, NOTSENT_LOWAT_BYTES)
        except OSError:
            pass  # not Linux/macOS: frames may queue longer in the kernel for slow clients
        client = StreamClient(self, sock, peer, variant)
        self.clients[client.id] = client
        self.total_served += 1
        self._demand_changed(variant)
        log.debug("stream client %d from %s (%d watching)", client.id, peer, len(self.clients))
        client.start()
        return client

    def remove(self, client: StreamClient) -> None:
        if self.clients.pop(client.id, None) is not None:
            self.bytes_closed += client.bytes
            self._demand_changed(client.variant)
        self.fps.pop(client.id, None)

    def sample(self) -> None:
        """Called every second by the worker to refresh per-client fps."""
        now = time.time()
        self.fps = {cid: c.sample_fps(now) for cid, c in self.clients.items()}

    @property
    def bytes_sent(self) -> int:
        return self.bytes_closed + sum(c.bytes for c in self.clients.values())

    def describe(self, limit: int = 100) -> list[dict]:
        return [c.describe(self.fps.get(cid, 0.0))
                for cid, c in itertools.islice(self.clients.items(), limit)]

    def close_all(self) -> None:
        for client in list(self.clients.values()):
            client.close(None)


class StreamHandler(BaseHandler):
    """GET /stream.mjpg: hands the connection to the fan-out and leaves Tornado.

    HTTP Basic is accepted here (and on the snapshot) for Home Assistant's MJPEG camera.
    """

    basic_auth_allowed = True

    def get(self) -> None:
        if len(self.fanout.clients) >= self.fanout.max_clients:
            self.set_status(503)
            self.set_header("Retry-After", "5")
            self.finish("too many stream clients on this worker\n")
            return
        variant = self.variant_or_refuse()
        if variant is None:
            return
        stream = self.detach()
        # Own a duplicate of the descriptor, then let Tornado close (and unregister) its
        # copy: the connection stays open, and only our code watches it from now on.
        sock = stream.socket.dup()
        stream.close()
        client = self.fanout.add(sock, self.request.remote_ip or "?", variant)
        if self.auth.enabled:
            client.session = session_id(self)  # closed when that session ends

    def variant_or_refuse(self) -> str | None:
        """The variant asked by `?width=&fps=` ("" for none), or None after answering
        400 (bad values) or 503 (the node's cap on variants is reached)."""
        try:
            key = parse_request(self.get_argument("width", None), self.get_argument("fps", None))
        except VariantError as exc:
            self.set_status(400)
            self.finish(f"{exc}\n")
            return None
        info = (self.link.state.get("encoding") or {}).get("variants") or {}
        active = info.get("active") or {}
        if key and key not in active and len(active) >= info.get("max", len(active) + 1):
            self.set_status(503)
            self.set_header("Retry-After", "5")
            self.finish(f"too many stream variants (the node encodes at most "
                        f"{info.get('max')}: {', '.join(sorted(active))})\n")
            return None
        return key
