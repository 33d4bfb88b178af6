"""The web worker: `make_app` builds the Tornado application, `run_worker` runs one.

A worker is one process with one loop thread: its NodeLink (SUB + DEALER) and every
HTTP connection live on that thread. `camnode run` starts one or more workers on a
listening socket it opened itself (so several share the port); `camnode web` runs one
on its own, possibly on another host than the node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from tornado import httpserver, httputil, netutil, web
from tornado.ioloop import PeriodicCallback

from camnode.node.wire import ClientKeys
from camnode.web.auth import AuthConfig, Throttle, cookie_secret, session_key
from camnode.web.base import WebContext
from camnode.web.handlers import (AuthStaticHandler, CommandHandler, EventSnapshotHandler,
                          EventsHandler, HealthHandler, IndexHandler, LoginHandler,
                          LogoutHandler, MetricsHandler, ModulesHandler, SnapshotHandler,
                          StateHandler, worker_state)
from camnode.web.hosts import HostCheck
from camnode.web.nodelink import FIRST_STATE_WAIT_S, NodeLink
from camnode.web.live import EventLog, LiveHub, LiveSocket
from camnode.web.sessions import SessionStore
from camnode.web.stream import Fanout, StreamHandler
from camnode.web.watchdog import LoopWatchdog

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MAX_BODY = 256 * 1024
MAX_FPS_REPORT = 5000  # per-client fps sent to the node each second (for a true median)


@dataclass(frozen=True)
class WebOptions:
    """A worker's settings besides its addresses: `camnode web` flags, which `camnode run`
    fills in from config.json (`web.*`) and its state directory."""

    max_clients: int = 2000
    allowed_hosts: tuple[str, ...] = ()  # names besides the machine's own (web/hosts.py)
    header_timeout_s: float = 20.0  # request line + headers (slowloris), and keep-alive idle
    body_timeout_s: float = 30.0  # a request body that never finishes
    state_dir: Path | None = None  # shared login sessions; None: this worker's memory only
    curve: ClientKeys | None = None  # to reach the node's command socket


class _Application(web.Application):
    """Tornado's Application, but a request whose headers Tornado cannot even turn into
    a request object (a Host port of 4,301 digits makes its int() raise) is answered
    400, instead of a logged traceback and a dropped connection."""

    def start_request(self, server_conn: object,
                      request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _HeaderGuard(super().start_request(server_conn, request_conn), request_conn)


class _HeaderGuard(httputil.HTTPMessageDelegate):
    def __init__(self, inner: httputil.HTTPMessageDelegate, conn: httputil.HTTPConnection):
        self.inner, self.conn, self.refused = inner, conn, False

    def headers_received(self, start_line, headers):
        try:
            return self.inner.headers_received(start_line, headers)
        except ValueError as exc:
            log.info("answered 400 to a request with unreadable headers: %s", exc)
            self.refused = True
            self.conn.write_headers(
                httputil.ResponseStartLine("HTTP/1.1", 400, "Bad Request"),
                httputil.HTTPHeaders({"Content-Length": "0", "Connection": "close"}))
            self.conn.finish()
            return None

    def data_received(self, chunk: bytes):
        return None if self.refused else self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.refused:
            self.inner.on_connection_close()


def make_app(ctx: WebContext, secret: str) -> web.Application:
    deps = {"ctx": ctx}
    return _Application([
        (r"/", IndexHandler, deps),
        (r"/login", LoginHandler, deps),
        (r"/logout", LogoutHandler, deps),
        (r"/stream\.mjpg", StreamHandler, deps),
        (r"/snapshot\.jpg", SnapshotHandler, deps),
        (r"/api/state", StateHandler, deps),
        (r"/api/modules", ModulesHandler, deps),
        (r"/api/events", EventsHandler, deps),
        (r"/api/events/(\d{1,18})\.jpg", EventSnapshotHandler, deps),
        (r"/api/([a-z_]+(?:/[a-z_]+)?)", CommandHandler, deps),  # snapshot, roi/add...
        (r"/ws", LiveSocket, deps),
        (r"/healthz", HealthHandler, deps),
        (r"/metrics", MetricsHandler, deps),
    ], template_path=str(HERE / "static"), static_path=str(HERE / "static"),
        static_handler_class=AuthStaticHandler, static_handler_args={"ctx": ctx},
        cookie_secret=secret, xsrf_cookies=True,
        xsrf_cookie_kwargs={"samesite": "Strict"}, compress_response=False)


def http_server(app: web.Application, opts: WebOptions) -> httpserver.HTTPServer:
    """The worker's HTTP server: bounded bodies, and no request may take forever to
    arrive (headers within `header_timeout_s`, a body within `body_timeout_s`)."""
    return httpserver.HTTPServer(app, max_body_size=MAX_BODY, xheaders=False,
                                 idle_connection_timeout=opts.header_timeout_s,
                                 body_timeout=opts.body_timeout_s)


async def serve(publish: str, command: str, sockets: list[socket.socket],
                max_clients: int = 2000, worker: int = 0,
                opts: WebOptions | None = None) -> None:
    """Serve until SIGINT/SIGTERM; then close viewers and sockets and return."""
    opts = opts or WebOptions(max_clients=max_clients)
    link = NodeLink(publish, command, curve=opts.curve)
    fanout = Fanout(link, opts.max_clients)
    events = EventLog()
    live = LiveHub(events, lambda: worker_state(ctx))  # ctx is looked up when called
    auth = AuthConfig.from_env()
    ctx = WebContext(link, fanout, auth, events, live, SessionStore(opts.state_dir),
                     Throttle(), HostCheck.from_system(opts.allowed_hosts))
    link.state_listeners.append(ctx.live.on_state)
    link.event_listeners.append(ctx.live.on_event)
    link.start()
    fanout.start()
    if ctx.auth.enabled:
        log.info("web login required (user %s)%s", ctx.auth.user,
                 f", {len(ctx.auth.tokens)} API token(s)" if ctx.auth.tokens else "")
    server = http_server(make_app(ctx, session_key(cookie_secret(None), auth)), opts)
    server.add_sockets(sockets)

    async def report() -> None:
        fanout.sample()
        close_revoked(ctx)
        await link.command("viewers/report", {
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "viewers": len(fanout.clients),
            "bytes_sent": fanout.bytes_sent,
            "variants": fanout.variant_counts(),
            "fps": sorted(round(f, 1) for f in fanout.fps.values())[:MAX_FPS_REPORT]},
            timeout=2.0)

    fanout.on_demand = lambda: asyncio.ensure_future(report())
    sampler = PeriodicCallback(lambda: asyncio.ensure_future(report()), 1000)
    sampler.start()
    asyncio.ensure_future(hello(link, report))
    watchdog = LoopWatchdog()  # a stalled loop ends the process; `camnode run` restarts it
    watchdog.start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    log.info("web worker %d (pid %d) serving", worker, os.getpid())
    await done.wait()
    log.info("web worker %d stopping", worker)
    watchdog.stop()
    sampler.stop()
    server.stop()
    fanout.close_all()
    ctx.live.close_all()
    await server.close_all_connections()
    link.stop()


async def hello(link: NodeLink, report: Callable[[], Awaitable[None]]) -> None:
    """Report at once, and again every 50 ms until the node's state arrives (at most
    FIRST_STATE_WAIT_S): a new worker's first report makes the node publish its state
    now, so a just-started worker knows the node within a few tens of milliseconds
    (NodeLink.settled) instead of at the next periodic state."""
    deadline = time.monotonic() + FIRST_STATE_WAIT_S
    while link.state_at == 0.0 and time.monotonic() < deadline:
        await report()
        await asyncio.sleep(0.05)


def close_revoked(ctx: WebContext) -> None:
    """Close the streams and live sockets opened with a session that has ended (logout
    in any worker): revoking a session also cuts what it is already watching. Called
    every second by the worker, on its loop thread."""
    if not ctx.auth.enabled:
        return
    ended = lambda sid: sid is not None and ctx.sessions.user(sid) is None  # noqa: E731
    streams = [c for c in ctx.fanout.clients.values() if ended(c.session)]
    sockets = [s for s in ctx.live.sockets if ended(s.session)]
    for client in streams:
        client.close(None)
    for sock in sockets:
        sock.close()
    if streams or sockets:
        log.info("closed %d stream(s) and %d live socket(s) of ended sessions",
                 len(streams), len(sockets))


def run_worker(publish: str, command: str, *, fd: int | None = None, host: str = "0.0.0.0",
               port: int = 8080, max_clients: int = 2000, worker: int = 0,
               opts: WebOptions | None = None) -> None:
    """Entry point of a worker process: listen on `fd` (inherited) or on host:port."""
    if fd is not None:
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        sockets = [sock]
    else:
        sockets = netutil.bind_sockets(port, host or None, reuse_port=False)
        for s in sockets:
            log.info("listening on http://%s:%d/", *s.getsockname()[:2])
    try:
        asyncio.run(serve(publish, command, sockets, max_clients, worker, opts))
    except Exception:
        log.critical("web worker %d crashed", worker, exc_info=True)
        raise
