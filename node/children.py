"""Child processes that must not outlive camnode, even when it is killed with SIGKILL.

Linux's PR_SET_PDEATHSIG asks the kernel to send the child a signal when its parent
dies; used for web workers and the private Mosquitto. Elsewhere it is a no-op.
"""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """`preexec_fn` for subprocess.Popen (runs in the child before exec)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
