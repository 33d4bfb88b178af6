"""The node's ZeroMQ PUB socket: frames, state and events for every web worker.

Several node threads publish (pipeline: frames; state thread: state; dispatcher:
events), so sends are serialised by a lock. A slow subscriber never blocks the node:
PUB drops messages for a subscriber past its high-water mark.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import zmq

from camnode.node import transport, wire

log = logging.getLogger(__name__)


class Publisher:
    """Binds on start(); `endpoint` is the real address (a `*` port resolved)."""

    def __init__(self, bind: str, context: zmq.Context | None = None):
        self.bind = bind
        self.endpoint = ""
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._lock = threading.Lock()
        self.frames_sent = 0
        self.bytes_sent = 0

    def start(self) -> None:
        if self._sock is not None:
            return
        sock = self._ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, 16)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.bind)
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._sock = sock
        log.info("publishing frames and state on %s", self.endpoint)

    def stop(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _send(self, parts: list[bytes]) -> None:
        with self._lock:
            if self._sock is None:
                return
            try:
                self._sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                pass  # no room for some subscriber: PUB drops, as intended

    def frame(self, header: wire.FrameHeader, jpeg: bytes) -> None:
        self._send([wire.TOPIC_FRAME, header.encode(), jpeg])
        self.frames_sent += 1
        self.bytes_sent += len(jpeg)

    def variant(self, header: wire.FrameHeader, jpeg: bytes) -> None:
        """A variant's frame (node/variants.py), on its own topic."""
        self._send([wire.TOPIC_VARIANT, header.encode(), jpeg])

    # -- node/transport.py's interface ----------------------------------------------------
    def publish(self, topic: str, payload: Any, retain: bool = False) -> None:
        """Core topics for web workers: the state (also a refresh's), ROI edits as an event."""
        if topic == transport.STATE:
            self.state(payload)
        elif topic == transport.REFRESH:
            self.state(payload["state"])
        elif topic == transport.ROIS:
            self.event({"kind": wire.EVENT_ROIS, "version": payload["version"],
                        "rois": payload["rois"]})

    def subscribe(self, handler: Any) -> None:
        """Nothing comes back over the PUB socket (commands: node/command_server.py)."""

    def state(self, state: dict) -> None:
        self._send([wire.TOPIC_STATE, wire.encode_json(state), b""])

    def event(self, event: dict, body: bytes = b"") -> None:
        self._send([wire.TOPIC_EVENT, wire.encode_json(event), body])
