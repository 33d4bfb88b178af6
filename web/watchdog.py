"""A web worker's watchdog: a worker whose event loop stopped turning ends itself.

The loop is the worker's only thread of work, and it cannot be restarted from inside: a
handler stuck in a blocking call would leave every viewer of this worker frozen with
nothing said. `camnode run` (camnode/workers.py `Workers`) restarts a worker that exits, with a
back-off, and reports it in the node's health meanwhile (part `web`).
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import sys
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class LoopWatchdog:
    """Ends a web worker process whose asyncio loop stopped turning, so it is restarted.

    `start()` on the loop thread; a timer on the loop records each turn, and a thread
    checks it. On a stall: every thread's stack to stderr, a log line, then `os._exit(70)`
    (the loop cannot run a clean shutdown; the CLI's main thread restarts the worker).
    """

    def __init__(self, stall_after: float = 10.0, period: float = 0.5,
                 on_stall: Callable[[], None] | None = None):
        self.stall_after = stall_after
        self.period = period
        self.on_stall = on_stall or (lambda: os._exit(70))
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tick()
        threading.Thread(target=self._watch, name="loop-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()

    def _tick(self) -> None:
        self._last = time.monotonic()
        self._handle = self._loop.call_later(self.period, self._tick)

    def _watch(self) -> None:
        while not self._stop.wait(self.period):
            silent = time.monotonic() - self._last
            if silent > self.stall_after:
                log.critical("web worker %d: event loop stalled for %.0f s; exiting so it "
                             "is restarted (stacks follow)", os.getpid(), silent)
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                self.on_stall()
                return


class CallbackGuard:
    """Supervises one of the worker's socket callbacks (NodeLink's SUB and DEALER readers).

    ZeroMQ's FD is edge-triggered: a reader that raised half-way through draining its
    socket would never be called again, and the worker would go silently blind. The guard
    logs the exception with its traceback, counts it and runs the callback again after a
    back-off (0.1 s doubling to 5 s, reset by a clean run). Loop thread only.
    """

    def __init__(self, fn: Callable[[], None], name: str):
        self.fn = fn
        self.name = name
        self.crashes = 0
        self.last_error: str | None = None
        self._backoff = 0.1
        self._retry: asyncio.TimerHandle | None = None

    def __call__(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        try:
            self.fn()
        except Exception as exc:
            self.crashes += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("web worker %d: %s failed (%d so far): %s; again in %.1f s",
                      os.getpid(), self.name, self.crashes, self.last_error, self._backoff,
                      exc_info=True)
            self._retry = asyncio.get_running_loop().call_later(self._backoff, self)
            self._backoff = min(self._backoff * 2, 5.0)
        else:
            self._backoff = 0.1

    def cancel(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
