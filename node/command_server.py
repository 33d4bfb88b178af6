"""ZeroMQ transport for the dispatcher: web workers (and relays) send commands here.

A ROUTER socket served by its own thread; each request is handled by the dispatcher
and answered on the same socket. Bound to loopback unless configured otherwise.
"""

from __future__ import annotations

import json
import logging
import threading

import zmq

from node.dispatcher import MAX_PAYLOAD, Dispatcher, error
from node.supervisor import Supervisor, beat
from node.wire import encode_json

log = logging.getLogger(__name__)


class CommandServer:
    """Owns the ROUTER socket and its thread; start()/stop() are idempotent."""

    def __init__(self, bind: str, dispatcher: Dispatcher, context: zmq.Context | None = None,
                 supervisor: Supervisor | None = None):
        self.supervisor = supervisor or Supervisor()  # runs the thread (part `commands`)
        self.bind = bind
        self.endpoint = ""
        self.dispatcher = dispatcher
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._stop = threading.Event()
        self._part = None

    def start(self) -> None:
        if self._sock is not None:
            return
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.bind)
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._sock = sock
        self._stop.clear()
        # A command may load a module (imports, model files): allow it 30 s before "stalled".
        self._part = self.supervisor.spawn("commands", self._run, self._stop, stall_after=30)
        log.info("accepting commands on %s", self.endpoint)

    def stop(self) -> None:
        self._stop.set()
        if self._part is not None:
            self._part.join(5)
            self._part = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

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
