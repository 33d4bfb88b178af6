"""ZeroMQ transport for the dispatcher: web workers (and relays) send commands here.

A ROUTER socket served by its own thread; each request is handled by the dispatcher
and answered on the same socket. Bound to loopback unless configured otherwise, and
(given `keys`) a CURVE server that only the node's workers and keyed relays can reach
(node/curve.py).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import zmq

from camnode.node import strictjson
from camnode.node.curve import CurveGuard, ServerKeys
from camnode.node.supervisor import Supervisor, beat
from camnode.node.transport import CommandHandler
from camnode.node.wire import MAX_PAYLOAD, encode_json, reply_error as error

# A REST body (at most MAX_PAYLOAD bytes) arrives JSON-escaped inside the message: up
# to 6 bytes per character (\uXXXX) plus the envelope.
MESSAGE_MAX = 6 * MAX_PAYLOAD + 4096
MAX_PAYLOAD_DEPTH = strictjson.MAX_DEPTH + 1

log = logging.getLogger(__name__)


class CommandServer:
    """Owns the ROUTER socket and its thread; start()/stop() are idempotent."""

    def __init__(self, bind: str, context: zmq.Context | None = None,
                 supervisor: Supervisor | None = None, keys: ServerKeys | None = None):
        """Built by node/wiring.py; commands go to the handler it is subscribed with."""
        self.supervisor = supervisor or Supervisor()  # runs the thread (part `commands`)
        self.bind = bind
        self.keys = keys
        self._guard: CurveGuard | None = None
        self.endpoint = ""
        self.handler: CommandHandler | None = None
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._stop = threading.Event()
        self._part = None

    # -- node/transport.py's interface: commands in, nothing published -----------------------
    def subscribe(self, handler: CommandHandler) -> None:
        self.handler = handler

    def publish(self, topic: str, payload: Any, retain: bool = False) -> None:
        """Replies only: news reaches web workers over the PUB socket."""

    def start(self) -> None:
        if self._sock is not None:
            return
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        if self.keys is not None and not self.bind.startswith("inproc://"):
            self._guard = CurveGuard(self.keys)
            self._guard.secure(self._ctx, sock)
        sock.bind(self.bind)
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._sock = sock
        self._stop.clear()
        # A command may load a module (imports, model files): allow it 30 s before "stalled".
        self._part = self.supervisor.spawn("commands", self._run, self._stop, stall_after=30)
        log.info("accepting commands on %s%s", self.endpoint,
                 " (CURVE: keyed clients only)" if self._guard else "")

    def stop(self) -> None:
        self._stop.set()
        if self._part is not None:
            self._part.join(5)
            self._part = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._guard is not None:
            self._guard.stop()
            self._guard = None

    def _run(self) -> None:
        sock = self._sock
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        while not self._stop.is_set():
            beat()
            if not poller.poll(250):
                continue
            parts = sock.recv_multipart()
            if len(parts) != 4:  # [identity, b"", token, body]
                log.warning("ignoring a malformed command message (%d parts)", len(parts))
                continue
            ident, _, token, body = parts
            reply = self._answer(body)
            try:
                sock.send_multipart([ident, b"", token, encode_json(reply)], flags=zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.warning("could not answer a command: %s", exc)

    def _answer(self, body: bytes) -> dict:
        """Exactly one envelope per message; never raises (a bug in a handler or in
        parsing is answered `internal_error` and logged with its traceback)."""
        try:
            return self._dispatch(body)
        except Exception:
            log.exception("answering a command message failed")
            return error(None, "", "internal_error", "internal error, see the node's log")

    def _dispatch(self, body: bytes) -> dict:
        try:
            # The payload travels as a JSON string inside the message: allow for escaping.
            req = strictjson.loads(body, max_bytes=MESSAGE_MAX, max_depth=MAX_PAYLOAD_DEPTH)
        except strictjson.JsonRefused as exc:
            return error(None, "", exc.code, f"command message refused: {exc.message}",
                         exc.issues)
        command = req.get("command") if isinstance(req, dict) else None
        if not isinstance(command, str):
            return error(None, "", "invalid_json",
                         'command message must be {"command": str, "payload": ...}')
        # A REST body comes as the string it was (parsed by the handler's strict reader).
        return self.handler(command, req.get("payload", {}), True)
