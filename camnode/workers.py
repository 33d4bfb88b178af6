"""Web worker processes of `camnode run`, on one listening socket opened by the CLI.

Owned by the CLI's main thread, which calls `check()` every second; each worker is a
`camnode web` child that dies with camnode (node/children.py) and reports to the node.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from typing import Callable

from camnode.node.children import guarded

log = logging.getLogger("camnode")


class Workers:
    """Web worker processes on one inherited listening socket; restarted if they die.

    The main thread calls `check()` every second: a worker that exited is logged, counted
    and restarted after a back-off (1 s doubling to 30 s; reset once a worker has lived
    60 s). Meanwhile, and until the new worker has reported to the node, `supervisor`
    (the node's) carries a `web` problem, so /healthz, the state and MQTT show it.
    """

    def __init__(self, sock: socket.socket, publish: str, command: str, count: int,
                 max_clients: int, log_level: str, env: dict | None = None,
                 supervisor=None, reported: Callable[[int], bool] | None = None,
                 extra_args: list[str] | None = None):
        self.sock, self.publish, self.command = sock, publish, command
        self.env = env
        self.extra_args = extra_args or []
        self.count, self.max_clients, self.log_level = count, max_clients, log_level
        self.procs: dict[int, subprocess.Popen] = {}
        self.supervisor = supervisor
        self.reported = reported or (lambda pid: True)
        self.restarts: dict[int, int] = {}
        self._backoff: dict[int, float] = {}
        self._due: dict[int, float] = {}  # worker -> monotonic time of its restart
        self._started: dict[int, float] = {}
        self._waiting: set[int] = set()  # restarted, not yet heard from by the node

    def _spawn(self, i: int) -> None:
        cmd = [sys.executable, "-m", "camnode", "web", "--connect", self.publish,
               "--command", self.command, "--fd", str(self.sock.fileno()),
               "--worker", str(i), "--max-clients", str(self.max_clients),
               "--log-level", self.log_level, *self.extra_args]
        self.procs[i] = subprocess.Popen(guarded(cmd), pass_fds=(self.sock.fileno(),),
                                         env=self.env)
        self._started[i] = time.monotonic()

    def start(self) -> None:
        for i in range(self.count):
            self._spawn(i)

    def check(self) -> None:
        now = time.monotonic()
        for i, p in list(self.procs.items()):
            if i in self._due:
                if now >= self._due.pop(i):
                    self.restarts[i] = self.restarts.get(i, 0) + 1
                    self._spawn(i)
                    if self.supervisor is not None:
                        self.supervisor.count("web", restarted=True)
                    self._waiting.add(i)
                    self._report(i, f"worker {i} restarted (restart {self.restarts[i]}), "
                                 "waiting for it to reach the node")
                continue
            if p.poll() is not None:
                lived = now - self._started.get(i, now)
                backoff = 1.0 if lived > 60 else min(self._backoff.get(i, 0.5) * 2, 30.0)
                self._backoff[i] = backoff
                self._due[i] = now + backoff
                log.error("web worker %d (pid %d) exited with %s; restarting it in %.0f s",
                          i, p.pid, p.returncode, backoff)
                self._report(i, f"worker {i} exited with {p.returncode}; restarting in "
                             f"{backoff:.0f} s")
                if self.supervisor is not None:
                    self.supervisor.count("web", crashed=f"worker {i} exited with "
                                          f"{p.returncode}")
            elif i in self._waiting and self.reported(p.pid):
                self._waiting.discard(i)
                log.info("web worker %d (pid %d) is back", i, p.pid)
                self._report(i, None)

    def _report(self, i: int, reason: str | None) -> None:
        if self.supervisor is not None:
            self.supervisor.report("web", f"worker-{i}", reason)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("web worker %d did not stop; killing it", p.pid)
                p.kill()
                p.wait()
        self.procs.clear()
