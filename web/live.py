"""Live updates for the page: the /ws WebSocket and the recent-events log.

The NodeLink calls `LiveHub.on_state` / `on_event` (loop thread) for every state and
event message from the node; the hub pushes them to every open socket, state at most
twice a second. A socket whose writes are not draining is skipped for state updates
(the next one carries everything), so a slow browser never grows the worker's memory.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from typing import Callable

from tornado import websocket

from camnode.node import wire
from camnode.web.auth import session_id, session_user
from camnode.web.base import host_refusal

log = logging.getLogger(__name__)

STATE_MIN_INTERVAL = 0.5
MAX_PENDING_WRITES = 8
EVENT_LOG_SIZE = 50


class EventLog:
    """The newest detection events, and the snapshot taken when each one started."""

    def __init__(self, size: int = EVENT_LOG_SIZE):
        self.events: collections.deque = collections.deque(maxlen=size)
        self.snapshots: dict[int, bytes] = {}
        self._seq = 0

    def add_event(self, event: dict) -> dict:
        entry = {**event, "snapshot": None, "_snap": None}  # _snap: key in self.snapshots
        self.events.appendleft(entry)
        self._trim()
        return entry

    def add_snapshot(self, jpeg: bytes, ts: float) -> list[dict]:
        """Attach to the `new` events that started with this frame; returns them."""
        self._seq += 1
        key = self._seq
        attached = []
        for e in self.events:
            if e.get("type") == "new" and e["snapshot"] is None and abs(e["start"] - ts) < 2:
                e["snapshot"], e["_snap"] = f"/api/events/{key}.jpg", key
                attached.append(e)
        if attached:
            self.snapshots[key] = jpeg
        self._trim()
        return attached

    def _trim(self) -> None:
        """Forget snapshots whose events fell out of the log."""
        live = {e["_snap"] for e in self.events}
        for key in list(self.snapshots):
            if key not in live:
                del self.snapshots[key]

    @staticmethod
    def public(entry: dict) -> dict:
        """An entry as the page sees it."""
        return {k: v for k, v in entry.items() if k != "_snap"}

    def recent(self) -> list[dict]:
        return [self.public(e) for e in self.events]


class LiveHub:
    """Every open /ws socket of this worker."""

    def __init__(self, events: EventLog, state: Callable[[], dict]):
        self.sockets: set["LiveSocket"] = set()
        self.events = events
        self._state = state  # builds the page's state; only called when someone listens
        self._last_state = 0.0
        self._state_due = False
        self._timer = None

    def on_state(self, _node_state: dict | None = None) -> None:
        """The node sent new state (NodeLink listener)."""
        if not self.sockets:
            return
        self._state_due = True
        now = time.monotonic()
        if now - self._last_state >= STATE_MIN_INTERVAL:
            self._flush_state()
        elif self._timer is None:
            from tornado.ioloop import IOLoop
            self._timer = IOLoop.current().call_later(
                STATE_MIN_INTERVAL - (now - self._last_state), self._flush_state)

    def _flush_state(self) -> None:
        self._timer = None
        if not self._state_due:
            return
        self._last_state = time.monotonic()
        self._state_due = False
        self.broadcast("state", self._state(), droppable=True)

    def on_event(self, event: dict, body: bytes) -> None:
        kind = event.get("kind")
        if kind == wire.EVENT_DETECTION:
            entry = self.events.add_event({k: v for k, v in event.items() if k != "kind"})
            self.broadcast("event", self.events.public(entry))
        elif kind == wire.EVENT_SNAPSHOT and body:
            for entry in self.events.add_snapshot(body, event.get("ts", time.time())):
                self.broadcast("event", self.events.public(entry))
        elif kind == wire.EVENT_ROIS:
            self.broadcast("rois", {"version": event["version"], "rois": event["rois"]})
        elif kind == wire.EVENT_OCCUPANCY:
            self.broadcast("occupancy", {k: event[k] for k in ("roi", "occupied", "count")})
        elif kind == wire.EVENT_MOTION:
            self.broadcast("motion", {"on": event["on"]})

    def broadcast(self, kind: str, data: dict, droppable: bool = False) -> None:
        if not self.sockets:
            return
        message = json.dumps({"type": kind, "data": data})
        for sock in list(self.sockets):
            sock.send(message, droppable)

    def close_all(self) -> None:
        for sock in list(self.sockets):
            sock.close()


class LiveSocket(websocket.WebSocketHandler):
    """GET /ws. Same origin only (Tornado's default check), Host naming this node
    (web/hosts.py), and logged in when auth is on."""

    def initialize(self, ctx) -> None:
        self.ctx = ctx
        self.pending = 0
        self.session: str | None = None  # the login session it was opened with, if any

    def get_current_user(self) -> str | None:
        return session_user(self, self.ctx.auth, self.ctx.sessions)

    def get(self, *args, **kwargs):
        reason = host_refusal(self.request, self.ctx)  # the upgrade opens a live channel
        if reason is not None:
            self.set_status(403)
            self.finish(reason + "\n")
            return None
        if not self.current_user:
            self.set_status(401)
            self.finish("log in first\n")
            return None
        return super().get(*args, **kwargs)

    def open(self) -> None:
        from camnode.web.handlers import worker_state

        self.ctx.live.sockets.add(self)
        if self.ctx.auth.enabled:
            self.session = session_id(self)
        state = worker_state(self.ctx, self.current_user)
        self.send(json.dumps({"type": "state", "data": state}), False)

    def on_message(self, message) -> None:
        pass  # commands go through POST /api/<command>, with XSRF protection

    def on_close(self) -> None:
        self.ctx.live.sockets.discard(self)

    def send(self, message: str, droppable: bool) -> None:
        if droppable and self.pending >= MAX_PENDING_WRITES:
            return  # this browser is not keeping up; the next state carries everything
        try:
            fut = self.write_message(message)
        except websocket.WebSocketClosedError:
            self.ctx.live.sockets.discard(self)
            return
        self.pending += 1
        fut.add_done_callback(self._written)

    def _written(self, fut) -> None:
        self.pending -= 1
