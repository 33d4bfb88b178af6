"""ZeroMQ transport for the dispatcher: web workers (and relays) send commands here.

A ROUTER socket served by its own thread; each request is handled by the dispatcher
and answered on the same socket. Bound to loopback unless configured otherwise, and
(given `keys`) a CURVE server that only the node's workers and keyed relays can reach
(node/curve.py).
"""

from __future__ import annotations

import json
import logging
import threading

import zmq

from node.curve import CurveGuard, ServerKeys
from node.dispatcher import MAX_PAYLOAD, Dispatcher, error
from node.wire import encode_json

log = logging.getLogger(__name__)


class CommandServer:
    """Owns the ROUTER socket and its thread; start()/stop() are idempotent."""

    def __init__(self, bind: str, dispatcher: Dispatcher, context: zmq.Context | None = None,
                 keys: ServerKeys | None = None):
        self.bind = bind
        self.keys = keys
        self._guard: CurveGuard | None = None
        self.endpoint = ""
        self.dispatcher = dispatcher
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)
        self._thread.start()
        log.info("accepting commands on %s%s", self.endpoint,
                 " (CURVE: keyed clients only)" if self._guard else "")

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
            self._thread = None
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
        if len(body) > MAX_PAYLOAD + 4096:
            return error(None, "", "validation_failed", "command message too large")
        try:
            req = json.loads(body)
            command = req["command"]
            payload = req.get("payload", {})
            if not isinstance(command, str):
                raise TypeError("command must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            return error(None, "", "invalid_json", f"malformed command message: {exc}")
        if isinstance(payload, (str, bytes)):
            return self.dispatcher.handle_raw(command, payload)
        return self.dispatcher.handle(command, payload)
