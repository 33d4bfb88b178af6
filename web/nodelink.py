"""A web worker's link to the node: one SUB socket (frames, state, events), one DEALER.

Runs on the worker's Tornado/asyncio loop thread, the only thread of a worker. The SUB
socket's file descriptor is watched by the loop; each time it signals, the socket is
drained and only the newest frame is kept, so a busy node never puts a worker behind.
Each frame's HTTP multipart part (web/mjpeg.py) is built once here and the same bytes go
to every client of this worker.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from typing import Any, Callable

import zmq

from camnode.node import wire
from camnode.node.wire import ClientKeys
from camnode.web.mjpeg import Frame, build_part
from camnode.web.watchdog import CallbackGuard

log = logging.getLogger(__name__)

STATE_STALE_S = 3.0
FIRST_STATE_WAIT_S = 1.0  # how long a worker's first requests wait for the node's state


class NodeLink:
    """Subscribes to a node and sends it commands. start()/stop() on the loop thread."""

    def __init__(self, publish: str, command: str, context: zmq.Context | None = None,
                 curve: ClientKeys | None = None):
        self.publish_endpoint = publish
        self.command_endpoint = command
        self.curve = curve  # the key pair the node's command socket asks for
        self._ctx = context or zmq.Context.instance()
        self._sub: zmq.Socket | None = None
        self._dealer: zmq.Socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[bytes, asyncio.Future] = {}
        self._tokens = itertools.count(1)
        self.frame: Frame | None = None
        self.variants: dict[str, Frame] = {}  # newest frame of each variant (node/variants.py)
        self._frame_waiters: list[tuple[str, int, asyncio.Future]] = []
        self.state: dict = {}
        self.state_at = 0.0
        self._started_at = 0.0
        self.frames_received = 0
        self.frame_listeners: list[Callable[[Frame], None]] = []
        self.variant_listeners: list[Callable[[Frame], None]] = []
        self.state_listeners: list[Callable[[dict], None]] = []
        self.event_listeners: list[Callable[[dict, bytes], None]] = []

    # -- lifetime -----------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started_at = time.monotonic()
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 8)
        sub.setsockopt(zmq.LINGER, 0)
        for topic in (wire.TOPIC_FRAME, wire.TOPIC_VARIANT, wire.TOPIC_STATE, wire.TOPIC_EVENT):
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        sub.connect(self.publish_endpoint)
        dealer = self._ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.IMMEDIATE, 1)  # never queue a command for a node that is down
        if self.curve is not None:
            self.curve.apply(dealer)
        dealer.connect(self.command_endpoint)
        self._sub, self._dealer = sub, dealer
        # Guarded: a reader that raised would never be called again (edge-triggered FD).
        on_sub = CallbackGuard(self._on_sub, "frame/state reader")
        self._loop.add_reader(sub.getsockopt(zmq.FD), on_sub)
        self._loop.add_reader(dealer.getsockopt(zmq.FD),
                              CallbackGuard(self._on_dealer, "command reply reader"))
        self._loop.call_soon(on_sub)
        log.info("worker %d subscribed to %s, commands to %s", os.getpid(),
                 self.publish_endpoint, self.command_endpoint)

    def stop(self) -> None:
        for sock in (self._sub, self._dealer):
            if sock is not None:
                try:
                    self._loop.remove_reader(sock.getsockopt(zmq.FD))
                except (ValueError, zmq.ZMQError):
                    pass
                sock.close()
        self._sub = self._dealer = None
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()

    @property
    def node_reachable(self) -> bool:
        return time.monotonic() - self.state_at < STATE_STALE_S

    async def settled(self) -> None:
        """Return once the node's first state is here, or when a just-started worker has
        waited FIRST_STATE_WAIT_S for it (the worker's first report makes the node publish
        it at once): /healthz and /api/state then say "unreachable" only when it is.
        Loop thread."""
        while self.state_at == 0.0 and time.monotonic() - self._started_at < FIRST_STATE_WAIT_S:
            await asyncio.sleep(0.01)

    # -- SUB side -----------------------------------------------------------------------
    def _on_sub(self) -> None:
        sub = self._sub
        if sub is None:
            return
        newest = None
        variants: dict[str, Frame] = {}
        # zmq's FD is edge-triggered: read until the socket says it has nothing more.
        while sub.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            topic, head, body = sub.recv_multipart(zmq.NOBLOCK)
            if topic == wire.TOPIC_FRAME:
                newest = (head, body)
            elif topic == wire.TOPIC_VARIANT:
                header = wire.FrameHeader.decode(head)
                variants[header.variant] = Frame(header, body, b"", time.time())
            elif topic == wire.TOPIC_STATE:
                self._on_state(head)
            elif topic == wire.TOPIC_EVENT:
                self._on_event(head, body)
        if newest is not None:
            header = wire.FrameHeader.decode(newest[0])
            jpeg = newest[1]
            self.frame = Frame(header, jpeg, build_part(header, jpeg), time.time())
            self.frames_received += 1
            for cb in self.frame_listeners:
                cb(self.frame)
            self._wake("", self.frame)
        for key, frame in variants.items():
            frame = Frame(frame.header, frame.jpeg, build_part(frame.header, frame.jpeg),
                          frame.received)
            self.variants[key] = frame
            for cb in self.variant_listeners:
                cb(frame)
            self._wake(key, frame)

    def _wake(self, variant: str, frame: Frame) -> None:
        if not self._frame_waiters:
            return
        keep = []
        for key, after, fut in self._frame_waiters:
            if key == variant and frame.header.seq > after and not fut.done():
                fut.set_result(frame)
            elif not fut.done():
                keep.append((key, after, fut))
        self._frame_waiters = keep

    def newest(self, variant: str = "") -> Frame | None:
        """The newest frame of the stream ("") or of a variant."""
        return self.variants.get(variant) if variant else self.frame

    async def next_frame(self, variant: str, timeout: float) -> Frame | None:
        """Wait for the next frame of the stream ("") or a variant; None on timeout."""
        current = self.newest(variant)
        fut = self._loop.create_future()
        self._frame_waiters.append((variant, current.header.seq if current else -1, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return None

    def _on_state(self, raw: bytes) -> None:
        try:
            self.state = json.loads(raw)
        except ValueError:
            log.warning("ignoring malformed state message")
            return
        self.state_at = time.monotonic()
        for cb in self.state_listeners:
            cb(self.state)

    def _on_event(self, raw: bytes, body: bytes) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            return
        for cb in self.event_listeners:
            cb(event, body)

    # -- commands -----------------------------------------------------------------------
    async def command(self, command: str, payload: Any, timeout: float = 5.0) -> dict:
        """Send a command to the node's dispatcher; an `unavailable` envelope on timeout."""
        request_id = wire.request_id_of(payload)  # a REST body is still text here
        if self._dealer is None:
            return _unavailable(request_id, command, "web worker is shutting down")
        token = str(next(self._tokens)).encode()
        fut = self._loop.create_future()
        self._pending[token] = fut
        body = json.dumps({"command": command, "payload": payload}).encode()
        try:
            self._dealer.send_multipart([b"", token, body], zmq.NOBLOCK)
            # A send can consume the FD's edge: look for a reply once ourselves.
            self._loop.call_soon(self._on_dealer)
            return await asyncio.wait_for(fut, timeout)
        except zmq.Again:
            return _unavailable(request_id, command, "node not reachable" + (
                "" if self.curve else " (or it wants a command key: camnode web --keys DIR)"))
        except asyncio.TimeoutError:
            return _unavailable(request_id, command, f"node did not answer in {timeout:g} s")
        finally:
            self._pending.pop(token, None)

    def _on_dealer(self) -> None:
        dealer = self._dealer
        if dealer is None:
            return
        while dealer.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            parts = dealer.recv_multipart(zmq.NOBLOCK)
            if len(parts) != 3:
                continue
            fut = self._pending.get(parts[1])
            if fut is not None and not fut.done():
                try:
                    fut.set_result(json.loads(parts[2]))
                except ValueError:
                    fut.set_result(_unavailable(None, "", "malformed reply from node"))


def _unavailable(request_id: Any, command: str, message: str) -> dict:
    return wire.reply_error(request_id, command, "unavailable", message)
