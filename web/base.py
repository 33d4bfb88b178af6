"""What every handler of a worker shares: its context, and the authentication rules.

`BaseHandler.prepare` enforces web/auth.py's rules on every request: pages redirect to
/login, APIs answer 401. Tornado's XSRF check guards every POST made with the session
cookie; a request carrying a *valid* API token (`Authorization: Bearer`) is exempt, a
token being no ambient browser credential. Every state-changing request must also name
the node in its Host (and Origin) header (web/hosts.py, against DNS rebinding), checked
before anything else. Credential checks go through the worker's `Throttle`. All on the
worker's single loop thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tornado import web

from camnode.web.auth import AuthConfig, Throttle, session_user
from camnode.web.hosts import HostCheck
from camnode.web.nodelink import NodeLink
from camnode.web.sessions import SessionStore

if TYPE_CHECKING:
    from camnode.web.live import EventLog, LiveHub
    from camnode.web.stream import Fanout


@dataclass
class WebContext:
    link: NodeLink
    fanout: "Fanout"
    auth: AuthConfig
    events: "EventLog"
    live: "LiveHub"
    sessions: SessionStore = field(default_factory=lambda: SessionStore(None))
    throttle: Throttle = field(default_factory=Throttle)
    hosts: HostCheck = field(default_factory=HostCheck)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def host_refusal(request, ctx: WebContext) -> str | None:
    """Why a state-changing request is refused for its Host/Origin; None if allowed."""
    return ctx.hosts.refusal(request.headers.get("Host", ""), request.headers.get("Origin"))


def error_body(code: str, message: str) -> dict:
    return {"status": "error", "error": {"code": code, "message": message, "details": []}}


class BaseHandler(web.RequestHandler):
    """Handlers get the worker's context from the route table (`initialize`)."""

    basic_auth_allowed = False  # only the stream and snapshot, for Home Assistant
    public = False  # served without credentials (login page, health check)

    def initialize(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self.link = ctx.link
        self.fanout = ctx.fanout
        self.auth = ctx.auth

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "same-origin")

    def _bearer(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        return header[7:].strip() if header.startswith("Bearer ") else None

    def get_current_user(self) -> str | None:
        """The session's user (`prepare` replaces it with whatever credential worked)."""
        return session_user(self, self.auth, self.ctx.sessions)

    async def _authenticate(self) -> str | None:
        """The user a request is authenticated as: an API token or HTTP Basic where
        allowed (both throttled per address, failures logged), else the session cookie.
        "token" means a valid API token was sent (and only then)."""
        if not self.auth.enabled:
            return "anonymous"
        header = self.request.headers.get("Authorization", "")
        token = self._bearer()
        if token is not None or (self.basic_auth_allowed and header.startswith("Basic ")):
            ip = self.request.remote_ip or "?"
            if not await self.ctx.throttle.wait(ip):
                self.set_header("Retry-After", "%d" % max(1, round(self.ctx.throttle.delay(ip))))
                self.write_json(error_body("too_many_attempts", "too many failed credential "
                                           "checks from this address; try again later"), 429)
                raise web.Finish()
            if token is not None:
                user = "token" if self.auth.check_token(token) else None
            else:
                user = self.auth.check_basic(header)
            if user:
                self.ctx.throttle.success(ip)
                return user
            self.ctx.throttle.failure(ip, "API token" if token is not None
                                      else f"HTTP Basic on {self.request.path}")
        return self.get_current_user()

    def check_host(self) -> None:
        """403 (and the end of the request) when Host/Origin do not name this node."""
        reason = host_refusal(self.request, self.ctx)
        if reason is not None:
            self.write_json(error_body("forbidden_host", reason), 403)
            raise web.Finish()

    async def prepare(self) -> None:
        if self.request.method not in SAFE_METHODS:
            self.check_host()
        if self.public:
            return
        user = await self._authenticate()
        if user:
            if self._xsrf_after_auth and user != "token":
                self._check_xsrf()  # an invalid token does not excuse the XSRF token
            self.current_user = user
            return
        if self.request.path.startswith(("/api/", "/ws")) or self.basic_auth_allowed:
            if self.basic_auth_allowed:
                self.set_header("WWW-Authenticate", 'Basic realm="camnode", charset="UTF-8"')
            self.write_json(error_body("unauthorized", "log in, or send an API token"), 401)
            return
        if self.request.method in ("GET", "HEAD"):
            self.redirect("/login?" + urlencode({"next": self.request.uri}))
        else:
            raise web.HTTPError(401)

    _xsrf_after_auth = False

    def check_xsrf_cookie(self) -> None:
        """XSRF applies to browser requests; a valid API token or a cookie-less script
        (auth off: a browser cannot send JSON cross-site without a preflight) needs none.
        Tornado calls this before `prepare`: the Host check comes first here too, and with
        a Bearer header the decision waits for `prepare`, where the token is checked
        (throttled), so this check never tells a good token from a bad one."""
        self.check_host()
        if self._bearer() is not None and not self.public:
            self._xsrf_after_auth = True
            return
        self._check_xsrf()

    def _check_xsrf(self) -> None:
        if not self.auth.enabled and not self.request.headers.get("Cookie"):
            return
        super().check_xsrf_cookie()

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(obj))
