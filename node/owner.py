"""The owner of the node's state: one thread runs every command and publishes the state.

Transports (ZeroMQ command server, MQTT, REST through the web workers) call the
dispatcher from their own threads; the dispatcher posts each command here with `call`
and waits for its answer. The node's state thread serves this mailbox (Node._state_loop),
so it is the only writer of the config store, the ROIs, the module setting, the viewer
reports and the published state; other threads read immutable snapshots (the store's
current Config, the event engine's Outputs, the last state). Frames never pass here.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 30.0  # a command may load a module (the `state` part's stall limit too)


class OwnerBusy(Exception):
    """The owner did not take the message in time (or is not running any more)."""


class Mailbox:
    """Messages for the owner thread. `call` from any thread; `serve` from the owner."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._owner: int | None = None  # the serving thread's ident, while it serves
        self._lock = threading.Lock()  # runs calls inline while no owner serves

    def attach(self) -> None:
        """The calling thread becomes the owner (start of its loop)."""
        self._owner = threading.get_ident()

    def detach(self) -> None:
        """The owner leaves: later calls run inline (serialised), queued ones too."""
        self._owner = None
        self.serve_pending()

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = CALL_TIMEOUT_S) -> Any:
        """Run `fn(*args)` on the owner thread and return its result (or raise its
        exception). Inline when called by the owner itself or when no owner serves
        (before start, after stop, unit tests). Raises OwnerBusy after `timeout`."""
        if self._owner is None or self._owner == threading.get_ident():
            with self._lock:
                return fn(*args)
        fut: Future = Future()
        self._queue.put((fut, fn, args))
        if self._owner is None:  # the owner left between our check and our put
            self.serve_pending()
        try:
            return fut.result(timeout)
        except FutureTimeout:
            if fut.cancel():
                raise OwnerBusy(f"the node did not take the command within {timeout:g} s")
            return fut.result()  # it started just now: wait for its end

    def owns(self) -> bool:
        """Whether the calling thread may write the owner's state: it is the owner, or
        none serves (calls run inline, serialised)."""
        return self._owner is None or self._owner == threading.get_ident()

    def wake(self) -> None:
        """Wake the owner without a message (a state change to publish)."""
        self._queue.put(None)

    def serve(self, timeout: float) -> bool:
        """Owner thread: run the next message, waiting up to `timeout`; False if none."""
        try:
            item = self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return False
        self._run(item)
        return True

    def serve_pending(self) -> None:
        """Run every message queued now (owner thread, or inline after it left)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            with self._lock:
                self._run(item)

    @staticmethod
    def _run(item) -> None:
        if item is None:
            return
        fut, fn, args = item
        if not fut.set_running_or_notify_cancel():
            return  # its caller gave up
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # handed to the caller, who answers with it
            fut.set_exception(exc)
