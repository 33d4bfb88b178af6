"""Optional authentication for the web side.

Off unless a password is given: `CAMNODE_PASSWORD`, or the file named by
`CAMNODE_PASSWORD_FILE` (user `admin`, or `CAMNODE_USER`). With it on, every page and
API needs one of: the signed session cookie set by /login, an API token
(`Authorization: Bearer <token>`, tokens from `CAMNODE_API_TOKENS` or the file named by
`CAMNODE_API_TOKENS_FILE`, one per line or comma-separated), or — on /stream.mjpg and
/snapshot.jpg only, for Home Assistant's MJPEG camera — HTTP Basic. Only /login and
/healthz are served without credentials. Read once per worker at start.

Every credential check (login form, Basic, API token) goes through one per-address
`Throttle`; sessions are ids in a revocable `web.sessions.SessionStore`, in cookies
signed with `session_key` (which changes with the password).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from camnode.web.sessions import SessionStore

log = logging.getLogger(__name__)

SESSION_COOKIE = "camnode_session"
SESSION_DAYS = 30


def _secret_from_env(name: str) -> str | None:
    if os.environ.get(name):
        return os.environ[name]
    path = os.environ.get(name + "_FILE")
    if path:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    return None


@dataclass(frozen=True)
class AuthConfig:
    user: str = "admin"
    password: str | None = None
    tokens: frozenset[str] = field(default_factory=frozenset)

    @property
    def enabled(self) -> bool:
        return bool(self.password)

    @classmethod
    def from_env(cls) -> "AuthConfig":
        raw_tokens = _secret_from_env("CAMNODE_API_TOKENS") or ""
        tokens = frozenset(t.strip() for t in raw_tokens.replace(",", "\n").splitlines()
                           if t.strip())
        return cls(os.environ.get("CAMNODE_USER", "admin"), _secret_from_env("CAMNODE_PASSWORD"),
                   tokens)

    def check_password(self, user: str, password: str) -> bool:
        if not self.enabled:
            return False
        ok_user = hmac.compare_digest(user.encode(), self.user.encode())
        ok_pass = hmac.compare_digest(password.encode(), self.password.encode())
        return ok_user and ok_pass

    def check_token(self, token: str) -> bool:
        return any(hmac.compare_digest(token.encode(), t.encode()) for t in self.tokens)

    def check_basic(self, header: str) -> str | None:
        """The user name for a valid `Authorization: Basic ...` header, else None."""
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user if self.check_password(user, password) else None


def session_user(handler, auth: AuthConfig, sessions: "SessionStore") -> str | None:
    """Who a request (any Tornado handler, WebSocket too) is logged in as by its session
    cookie: "anonymous" with auth off, None when not logged in (no cookie, a bad
    signature — e.g. signed under another password — or a revoked or expired session)."""
    if not auth.enabled:
        return "anonymous"
    sid = session_id(handler)
    return sessions.user(sid) if sid else None


def session_id(handler) -> str | None:
    """The session id of a request's cookie when its signature is good."""
    raw = handler.get_signed_cookie(SESSION_COOKIE, max_age_days=SESSION_DAYS)
    try:
        return raw.decode("ascii") if raw else None
    except UnicodeDecodeError:
        return None


def session_key(secret: str, auth: AuthConfig) -> str:
    """The key that signs session cookies: the node's cookie secret bound to the user
    and password, so a password change makes every earlier cookie invalid."""
    if not auth.enabled:
        return secret
    msg = b"camnode-session\0" + auth.user.encode() + b"\0" + auth.password.encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


class Throttle:
    """Slows credential guessing down, per client address (one per worker).

    Every credential check (login form, HTTP Basic, API token) first awaits `wait(ip)`.
    After the n-th failure in a row from an address, checks from it wait until
    `min(max_delay, step * n)` seconds after that failure; at most `max_waiting` checks
    per address wait at once, more are refused (429) without checking anything. So one
    address gets a handful of guesses per `max_delay` seconds instead of thousands a
    second, while a person who mistyped once waits half a second. Failures are logged;
    refusals at most once per address and delay. A success, or `forget_s` without
    failures, clears the address. Loop thread only.
    """

    def __init__(self, step: float = 0.5, max_delay: float = 5.0, max_waiting: int = 3,
                 forget_s: float = 900.0, max_addresses: int = 10000):
        self.step, self.max_delay, self.max_waiting = step, max_delay, max_waiting
        self.forget_s, self.max_addresses = forget_s, max_addresses
        self._failures: dict[str, tuple[int, float]] = {}  # ip -> (count, last failure)
        self._waiting: collections.Counter = collections.Counter()
        self._refusal_logged: dict[str, float] = {}
        self.refused = 0

    def delay(self, ip: str) -> float:
        """Seconds before the next check from `ip` may run (0: now)."""
        entry = self._failures.get(ip)
        if entry is None:
            return 0.0
        count, last = entry
        now = time.monotonic()
        if now - last > self.forget_s:
            del self._failures[ip]
            return 0.0
        return max(0.0, last + min(self.max_delay, self.step * count) - now)

    async def wait(self, ip: str) -> bool:
        """Wait for this address's turn; False (refuse with 429) when too many wait."""
        delay = self.delay(ip)
        if delay <= 0:
            return True
        if self._waiting[ip] >= self.max_waiting:
            self.refused += 1
            now = time.monotonic()
            if now - self._refusal_logged.get(ip, -1e9) >= self.max_delay:
                self._refusal_logged[ip] = now
                log.warning("too many credential checks from %s: refusing them (429) for "
                            "%.1f s", ip, delay)
            return False
        self._waiting[ip] += 1
        try:
            await asyncio.sleep(delay)
        finally:
            self._waiting[ip] -= 1
            if not self._waiting[ip]:
                del self._waiting[ip]
        return True

    def failure(self, ip: str, what: str) -> None:
        count = self._failures.get(ip, (0, 0.0))[0] + 1
        if ip not in self._failures and len(self._failures) >= self.max_addresses:
            self._forget_oldest()
        self._failures[ip] = (count, time.monotonic())
        log.warning("failed %s from %s (%d in a row; its next check waits %.1f s)",
                    what, ip, count, min(self.max_delay, self.step * count))

    def success(self, ip: str) -> None:
        self._failures.pop(ip, None)
        self._refusal_logged.pop(ip, None)

    def _forget_oldest(self) -> None:
        for ip, _ in sorted(self._failures.items(), key=lambda kv: kv[1][1])[
                :len(self._failures) // 2]:
            del self._failures[ip]


def cookie_secret(config_dir: Path | None) -> str:
    """The key that signs session cookies, shared by all workers of a node.

    Kept in `<config dir>/.camnode-cookie-secret` (mode 600) so logins survive restarts;
    random for this run when that folder is not writable.
    """
    if os.environ.get("CAMNODE_COOKIE_SECRET"):
        return os.environ["CAMNODE_COOKIE_SECRET"]
    if config_dir is not None:
        path = config_dir / ".camnode-cookie-secret"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            secret = secrets.token_urlsafe(32)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(secret + "\n")
                return secret
            except OSError:
                pass
        except OSError:
            pass
    return secrets.token_urlsafe(32)
