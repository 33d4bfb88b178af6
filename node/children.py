"""Child processes that must not outlive camnode, even when it is killed with SIGKILL.

Linux's PR_SET_PDEATHSIG asks the kernel to send a process a signal when its parent
dies. It used to be set in `preexec_fn`, which Python's docs warn can deadlock the child
of a threaded process (the node is one). Instead every child starts as
`python -m camnode.node.children PARENT_PID -- PROGRAM ARGS...`: that small program sets the
signal for itself, checks that its parent is still the one that started it (it may have
died between fork and prctl), then execs PROGRAM, which keeps the setting (execve clears
it only for set-user-id programs). Elsewhere than Linux it simply execs.

Called by the CLI (web workers) and node.broker (the private Mosquitto), from whichever
thread spawns them; the kernel ties the signal to that thread, so spawn from long-lived
threads only.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def guarded(argv: list[str]) -> list[str]:
    """The command line that runs `argv` as a child that dies with this process."""
    return [sys.executable, "-m", "camnode.node.children", str(os.getpid()), "--", *argv]


def die_with_parent(parent: int) -> None:
    """Ask for SIGTERM when our parent dies; exit now if `parent` is already gone."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        sys.exit(0)


def main(args: list[str]) -> None:
    if len(args) < 3 or args[1] != "--" or not args[0].isdigit():
        sys.exit("usage: python -m camnode.node.children PARENT_PID -- PROGRAM [ARGS...]")
    die_with_parent(int(args[0]))
    try:
        os.execvp(args[2], args[2:])
    except OSError as exc:
        sys.exit(f"camnode: cannot run {args[2]}: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
