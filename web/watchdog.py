"""A web worker's watchdog: a worker whose event loop stopped turning ends itself.

The loop is the worker's only thread of work, and it cannot be restarted from inside: a
handler stuck in a blocking call would leave every viewer of this worker frozen with
nothing said. `camnode run` (node/cli.py `Workers`) restarts a worker that exits, with a
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
