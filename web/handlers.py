"""HTTP handlers other than the stream: page, snapshot, state, commands, health.

Every handler runs on the worker's loop thread and answers from what the worker already
holds (newest frame, newest state), so nothing hangs when the node is stopped or gone;
commands go to the node's dispatcher with a timeout. State changes only by POST.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from tornado import web

from web.hub import NodeLink
from web.stream import Fanout

log = logging.getLogger(__name__)

HTTP_STATUS = {"ok": 200, "invalid_json": 400, "validation_failed": 400,
               "unknown_command": 404, "unknown_module": 404, "not_found": 404,
               "exists": 409, "version_conflict": 409, "module_error": 422,
               "unavailable": 503, "internal_error": 500}

# Commands the REST API forwards; internal ones (worker reports) are not reachable.
PUBLIC_COMMANDS = {"pipeline/start", "pipeline/stop", "pipeline/restart", "module/set",
                   "state/get", "roi/add", "roi/update", "roi/delete", "roi/replace",
                   "roi/get", "snapshot"}


class BaseHandler(web.RequestHandler):
    def initialize(self, link: NodeLink, fanout: Fanout) -> None:
        self.link = link
        self.fanout = fanout

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(obj))


class SnapshotHandler(BaseHandler):
    """GET /snapshot.jpg: the newest frame this worker has (the same JPEG viewers get)."""

    def get(self) -> None:
        frame = self.link.frame
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

    def get(self) -> None:
        self.write_json(worker_state(self.link, self.fanout))


def worker_state(link: NodeLink, fanout: Fanout) -> dict:
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
    state.setdefault("viewers", len(fanout.clients))
    return state


class HealthHandler(BaseHandler):
    """GET /healthz: 200 while the worker gets state from the node, else 503."""

    def get(self) -> None:
        ok = self.link.node_reachable
        self.write_json({"web": "ok", "node": "ok" if ok else "unreachable"},
                        200 if ok else 503)


class CommandHandler(BaseHandler):
    """POST /api/<command> (e.g. /api/pipeline/start): the dispatcher's envelope back.

    A JSON content type is required: browsers cannot send one cross-site without a CORS
    preflight, which we never grant, so another site cannot drive the camera.
    """

    async def post(self, command: str) -> None:
        if command not in PUBLIC_COMMANDS:
            self.write_json({"id": None, "command": command, "status": "error",
                             "error": {"code": "unknown_command",
                                       "message": f"unknown command {command!r}",
                                       "details": []}}, 404)
            return
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            self.write_json({"id": None, "command": command, "status": "error",
                             "error": {"code": "invalid_json",
                                       "message": "Content-Type must be application/json",
                                       "details": []}}, 415)
            return
        body = self.request.body.decode("utf-8", "replace")
        reply = await self.link.command(command, body)
        code = "ok" if reply.get("status") == "ok" else reply.get("error", {}).get("code")
        self.write_json(reply, HTTP_STATUS.get(code, 500))


class IndexHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data: blob:; "
                        "connect-src 'self'; frame-ancestors 'none'")
        self.render("index.html")
