"""Server-side login sessions, so a session can be revoked.

The session cookie holds a random id, signed with a key derived from the cookie secret
*and the password* (web/auth.py `session_key`): changing `CAMNODE_PASSWORD` makes every
cookie signed before unreadable. The ids themselves live in a `SessionStore`: /login adds
one, /logout removes it, and a cookie whose id is not in the store is refused even when
its signature is good (a copied cookie dies at logout).

The workers of one node share the store through a small JSON file in the state directory
(`.camnode-sessions.json`, mode 600; ids are kept only as SHA-256 hashes). Each worker
re-reads it when its inode or mtime changes (one `stat` per authenticated request) and
writes it under an exclusive `flock`, atomically (temporary file + rename). Without a
state directory (a relay started by hand) the store lives in the worker's memory. Used on
the worker's loop thread only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

FILE_NAME = ".camnode-sessions.json"


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionStore:
    """Valid sessions: id hash -> [user, expiry (Unix seconds)]."""

    def __init__(self, state_dir: Path | None, lifetime_s: float = 30 * 86400):
        self.path = Path(state_dir) / FILE_NAME if state_dir is not None else None
        self.lifetime_s = lifetime_s
        self._sessions: dict[str, list] = {}
        self._stamp: tuple | None = None

    def create(self, user: str) -> str:
        """A new session for `user`; returns its id (what the signed cookie carries)."""
        sid = secrets.token_urlsafe(32)
        expires = time.time() + self.lifetime_s
        self._modify(lambda s: s.__setitem__(_digest(sid), [user, expires]))
        return sid

    def user(self, sid: str) -> str | None:
        """The user of a live session, None when it is unknown, revoked or expired."""
        self._refresh()
        entry = self._sessions.get(_digest(sid))
        if entry is None or entry[1] < time.time():
            return None
        return entry[0]

    def revoke(self, sid: str) -> bool:
        """End one session; True if it existed."""
        found = []
        self._modify(lambda s: found.append(s.pop(_digest(sid), None)))
        return found[0] is not None

    def __len__(self) -> int:
        self._refresh()
        return len(self._sessions)

    # -- the shared file ---------------------------------------------------------------------
    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._sessions, self._stamp = {}, None
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._sessions = self._read()
            self._stamp = stamp

    def _read(self) -> dict:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("cannot read the session store %s (%s): every session is logged out",
                      self.path, exc)
            return {}
        if not isinstance(doc, dict):
            return {}
        return {k: v for k, v in doc.items()
                if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
                and isinstance(v[1], (int, float))}

    def _modify(self, change: Callable[[dict], None]) -> None:
        if self.path is not None:
            try:
                lock_fd = os.open(self.path.with_name(FILE_NAME + ".lock"),
                                  os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                log.error("cannot write sessions beside %s (%s): keeping them in this "
                          "worker's memory", self.path, exc)
                self.path = None
        if self.path is None:
            change(self._sessions)
            self._prune(self._sessions)
            return
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            sessions = self._read()  # the newest, whatever other workers wrote
            change(sessions)
            self._prune(sessions)
            self._write(sessions)
            self._sessions = sessions
            self._stamp = None  # re-stat on the next read
        finally:
            os.close(lock_fd)

    @staticmethod
    def _prune(sessions: dict) -> None:
        now = time.time()
        for key in [k for k, v in sessions.items() if v[1] < now]:
            del sessions[key]

    def _write(self, sessions: dict) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(sessions, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
