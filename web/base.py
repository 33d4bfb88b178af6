"""What every handler of a worker shares: its context, and the authentication rules.

`BaseHandler.prepare` enforces web/auth.py's rules on every request: pages redirect to
/login, APIs answer 401. Tornado's XSRF check guards every POST made with the session
cookie; API tokens (`Authorization: Bearer`) are exempt, being no ambient browser
credential. All on the worker's single loop thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from tornado import web

from web.auth import AuthConfig, session_user
from web.hub import NodeLink

if TYPE_CHECKING:
    from web.live import EventLog, LiveHub
    from web.stream import Fanout


@dataclass
class WebContext:
    link: NodeLink
    fanout: "Fanout"
    auth: AuthConfig
    events: "EventLog"
    live: "LiveHub"


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
        user = session_user(self, self.auth)
        if user:
            return user
        token = self._bearer()
        if token is not None and self.auth.check_token(token):
            return "token"
        if self.basic_auth_allowed:
            return self.auth.check_basic(self.request.headers.get("Authorization", ""))
        return None

    def prepare(self) -> None:
        if self.public or self.current_user:
            return
        if self.request.path.startswith(("/api/", "/ws")) or self.basic_auth_allowed:
            if self.basic_auth_allowed:
                self.set_header("WWW-Authenticate", 'Basic realm="camnode", charset="UTF-8"')
            self.write_json({"status": "error", "error": {
                "code": "unauthorized", "message": "log in, or send an API token",
                "details": []}}, 401)
            return
        if self.request.method in ("GET", "HEAD"):
            self.redirect("/login?" + urlencode({"next": self.request.uri}))
        else:
            raise web.HTTPError(401)

    def check_xsrf_cookie(self) -> None:
        """XSRF applies to browser requests; a token or a cookie-less script (auth off:
        a browser cannot send JSON cross-site without a preflight) needs none."""
        if self._bearer() is not None:
            return
        if not self.auth.enabled and not self.request.headers.get("Cookie"):
            return
        super().check_xsrf_cookie()

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(obj))
