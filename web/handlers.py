"""HTTP handlers other than the stream: page, login, snapshot, state, commands, events.

Every handler runs on the worker's loop thread and answers from what the worker already
holds (newest frame, newest state, recent events), so nothing hangs when the node is
stopped or gone; commands go to the node's dispatcher with a timeout. State changes
only by POST.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time

from tornado import web

from camnode.web import metrics
from camnode.node import wire
from camnode.node.wire import VariantError, parse_request, reply_error
from camnode.web.auth import SESSION_COOKIE, SESSION_DAYS, session_id, session_user
from camnode.web.base import BaseHandler, WebContext, host_refusal

log = logging.getLogger(__name__)

SNAPSHOT_FRESH_S = 0.3  # a newer frame than this is "now" (someone watches the stream)
SNAPSHOT_WAIT_S = 2.0

HTTP_STATUS = {"ok": 200, "invalid_json": 400, "too_large": 413, "validation_failed": 400,
               "unknown_command": 404, "unknown_module": 404, "not_found": 404,
               "exists": 409, "version_conflict": 409, "module_error": 422,
               "unavailable": 503, "internal_error": 500}

# Commands the REST API forwards (node/wire.py's table); internal ones (worker reports)
# are not reachable.
PUBLIC_COMMANDS = wire.PUBLIC_COMMANDS


class SnapshotHandler(BaseHandler):
    """GET /snapshot.jpg[?width=N]: a picture of now. The node encodes only what someone
    needs (node/encoder.py), so unless this worker's newest frame is fresh (viewers are
    watching) it asks the node for the next frame, full size or `width` wide, and waits
    for it. While the pipeline is stopped, the newest placeholder frame is the answer."""

    basic_auth_allowed = True

    async def get(self) -> None:
        try:
            key = parse_request(self.get_argument("width", None), None)
        except VariantError as exc:
            self.set_status(400)
            self.finish(f"{exc}\n")
            return
        frame = self.link.newest(key)
        newest = self.link.frame
        placeholder = newest is not None and newest.header.kind != wire.KIND_LIVE \
            and time.time() - newest.received < 3
        if placeholder:
            frame = newest
        elif key or frame is None or time.time() - frame.received > SNAPSHOT_FRESH_S:
            waiting = asyncio.ensure_future(self.link.next_frame(key, SNAPSHOT_WAIT_S))
            reply = await self.link.command("picture/request",
                                            {"width": int(key[1:])} if key else {},
                                            timeout=SNAPSHOT_WAIT_S)
            if reply.get("status") == "ok":
                frame = await waiting or frame
            else:  # node unreachable: answer now with what we have
                waiting.cancel()
        if frame is None or time.time() - frame.received > 5:
            self.set_status(503)
            self.set_header("Retry-After", "2")
            self.finish("no recent frame from the node\n")
            return
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("X-Timestamp", "%.6f" % frame.header.ts)
        self.set_header("X-Frame-Seq", str(frame.header.seq))
        self.finish(frame.jpeg)


class StateHandler(BaseHandler):
    """GET /api/state: the node's newest state plus this worker's viewers."""

    async def get(self) -> None:
        await self.link.settled()
        self.write_json(worker_state(self.ctx, self.current_user))


def worker_state(ctx: WebContext, user: str | None = None) -> dict:
    link, fanout = ctx.link, ctx.fanout
    state = dict(link.state) if link.node_reachable else {
        "pipeline": "unknown", "last_error": "node not reachable"}
    frame = link.frame
    state["node_reachable"] = link.node_reachable
    state["stream"] = {
        "frame_kind": frame.header.kind if frame else None,
        "frame_seq": frame.header.seq if frame else None,
        "frame_age_s": round(time.time() - frame.header.ts, 3) if frame else None,
    }
    state["worker"] = {"pid": os.getpid(), "viewers": len(fanout.clients),
                       "clients": fanout.describe()}
    state["auth"] = {"enabled": ctx.auth.enabled,
                     "user": (user or ctx.auth.user) if ctx.auth.enabled else None}
    state.setdefault("viewers", len(fanout.clients))
    return state


class HealthHandler(BaseHandler):
    """GET /healthz: 503 when the node is unreachable or one of its parts is dead or
    stalled (named in `failing`); else 200. Degraded conditions (source lost, module
    failing or slow) leave it at 200 and are listed in `problems` (README, "/healthz")."""

    public = True

    async def get(self) -> None:
        await self.link.settled()
        if not self.link.node_reachable:
            self.write_json({"web": "ok", "node": "unreachable", "failing": ["node"],
                             "problems": []}, 503)
            return
        health = self.link.state.get("health") or {}
        bad = health.get("failing") or []
        self.write_json({"web": "ok", "node": "failing" if bad else "ok", "failing": bad,
                         "problems": health.get("problems") or []}, 503 if bad else 200)


class CommandHandler(BaseHandler):
    """POST /api/<command> (e.g. /api/pipeline/start): the dispatcher's envelope back.

    A JSON content type is required: browsers cannot send one cross-site without a CORS
    preflight, which we never grant.
    """

    async def post(self, command: str) -> None:
        if command not in PUBLIC_COMMANDS:
            self.write_json(_error(command, "unknown_command", f"unknown command {command!r}"),
                            404)
            return
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self.write_json(_error(command, "invalid_json",
                                   "Content-Type must be application/json"), 415)
            return
        body = self.request.body.decode("utf-8", "replace")
        reply = await self.link.command(command, body)
        code = "ok" if reply.get("status") == "ok" else reply.get("error", {}).get("code")
        self.write_json(reply, HTTP_STATUS.get(code, 500))


def _error(command: str, code: str, message: str) -> dict:
    return reply_error(None, command, code, message)


class ModulesHandler(BaseHandler):
    """GET /api/modules: module names with their parameter schemas (for the page's form)."""

    async def get(self) -> None:
        reply = await self.link.command("module/list", {})
        if reply.get("status") != "ok":
            self.write_json(reply, HTTP_STATUS.get(reply["error"]["code"], 500))
            return
        self.write_json(reply["data"])


class EventsHandler(BaseHandler):
    """GET /api/events: the recent detection events this worker has seen."""

    def get(self) -> None:
        self.write_json({"events": self.ctx.events.recent()})


class EventSnapshotHandler(BaseHandler):
    """GET /api/events/<n>.jpg: the snapshot taken when an event started."""

    def get(self, key: str) -> None:
        # The route takes at most 18 digits, so int() never meets Python's 4,300-digit cap.
        jpeg = self.ctx.events.snapshots.get(int(key))
        if jpeg is None:
            raise web.HTTPError(404)
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "private, max-age=3600")
        self.finish(jpeg)


class IndexHandler(BaseHandler):
    def get(self) -> None:
        self.xsrf_token  # sets the _xsrf cookie the page sends back on every POST
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data: blob:; "
                        "connect-src 'self'; frame-ancestors 'none'")
        self.render("index.html")


# Where /login may send the browser afterwards: a path on this site, in plain printable
# ASCII. Not `//host` or `/\\host` (browsers read both as another host), no control
# characters or spaces (browsers drop tabs and newlines, so `/\t/host` is `//host`).
SAFE_NEXT = re.compile(r"/(?![/\\])[!#-\[\]-~]*")


def safe_next(url: str) -> str:
    """`url` when it is a same-origin path, else "/" (the open-redirect guard)."""
    return url if SAFE_NEXT.fullmatch(url) else "/"


class LoginHandler(BaseHandler):
    """GET/POST /login. Checks share the worker's per-address throttle with HTTP Basic
    and API tokens; a success creates a server-side session (web/sessions.py)."""

    public = True

    def get(self) -> None:
        if not self.auth.enabled:
            self.redirect("/")
            return
        self._page(None)

    def _page(self, error: str | None, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Security-Policy", "default-src 'self'; style-src 'self' "
                        "'unsafe-inline'; frame-ancestors 'none'")
        self.render("login.html", error=error, next_url=self._next())

    def _next(self) -> str:
        return safe_next(self.get_argument("next", "/"))

    def check_host(self) -> None:
        """The Host refusal (web/hosts.py) as the login page shows errors, for a person."""
        reason = host_refusal(self.request, self.ctx)
        if reason is not None:
            self._page(reason, 403)
            raise web.Finish()

    async def post(self) -> None:
        ip = self.request.remote_ip or "?"
        if not await self.ctx.throttle.wait(ip):
            self._page("Too many failed attempts from your address; wait a few seconds.", 429)
            return
        user = self.get_body_argument("username", "")
        password = self.get_body_argument("password", "")
        if not self.auth.check_password(user, password):
            self.ctx.throttle.failure(ip, f"login for {user!r}")
            self._page("Wrong user name or password.", 401)
            return
        self.ctx.throttle.success(ip)
        sid = self.ctx.sessions.create(user)
        self.set_signed_cookie(SESSION_COOKIE, sid, expires_days=SESSION_DAYS,
                               httponly=True, samesite="Strict")
        log.info("%s logged in from %s", user, ip)
        self.redirect(self._next())


class LogoutHandler(BaseHandler):
    """POST /logout: ends the session on the server too, so a copy of the cookie is
    worthless afterwards."""

    public = True

    def post(self) -> None:
        sid = session_id(self)
        if sid and self.ctx.sessions.revoke(sid):
            log.info("session ended by logout from %s", self.request.remote_ip)
        self.clear_cookie(SESSION_COOKIE)
        if self.request.headers.get("Content-Type", "").startswith("application/json"):
            self.write_json({"status": "ok"})
        else:
            self.redirect("/login")


class AuthStaticHandler(web.StaticFileHandler):
    """Page assets: behind the same login as the page when auth is on."""

    def initialize(self, path: str, ctx: WebContext) -> None:
        super().initialize(path)
        self.ctx = ctx

    def get_current_user(self) -> str | None:
        return session_user(self, self.ctx.auth, self.ctx.sessions)

    def prepare(self) -> None:
        if not self.current_user:
            raise web.HTTPError(401)

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        # A NUL (`/static/app.js%00.png`) makes the os.path calls raise: no such file.
        if "\x00" in absolute_path:
            raise web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)

    def set_extra_headers(self, path: str) -> None:
        # Modules imported by app.js carry no ?v= hash: make browsers revalidate them, so
        # an upgrade never mixes new and cached page scripts.
        if not self.get_argument("v", None):
            self.set_header("Cache-Control", "no-cache")


class MetricsHandler(BaseHandler):
    """GET /metrics: Prometheus text format (behind the login when auth is on: give
    Prometheus an API token as its bearer token)."""

    def get(self) -> None:
        worker = {"viewers": len(self.fanout.clients), "bytes_sent": self.fanout.bytes_sent,
                  "clients_served": self.fanout.total_served}
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(metrics.render(self.link.state, worker, self.link.node_reachable))
