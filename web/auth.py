"""Optional authentication for the web side.

Off unless a password is given: `CAMNODE_PASSWORD`, or the file named by
`CAMNODE_PASSWORD_FILE` (user `admin`, or `CAMNODE_USER`). With it on, every page and
API needs one of: the signed session cookie set by /login, an API token
(`Authorization: Bearer <token>`, tokens from `CAMNODE_API_TOKENS` or the file named by
`CAMNODE_API_TOKENS_FILE`, one per line or comma-separated), or — on /stream.mjpg and
/snapshot.jpg only, for Home Assistant's MJPEG camera — HTTP Basic. Only /login and
/healthz are served without credentials. Read once per worker at start.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

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


def session_user(handler, auth: AuthConfig) -> str | None:
    """Who a request (any Tornado handler, WebSocket too) is logged in as by its session
    cookie: "anonymous" with auth off, None when not logged in."""
    if not auth.enabled:
        return "anonymous"
    user = handler.get_signed_cookie(SESSION_COOKIE, max_age_days=SESSION_DAYS)
    return user.decode() if user else None


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
