"""Children started through node.children die with the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from camnode.node.children import guarded


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_guarded_child_dies_when_its_parent_is_killed(tmp_path):
    # An intermediate Python process starts a guarded `sleep` and prints its pid; killing
    # the intermediate with SIGKILL (no chance to clean up) must take the sleep with it.
    code = ("import subprocess, sys; from node.children import guarded; "
            "p = subprocess.Popen(guarded(['sleep', '60'])); print(p.pid, flush=True); "
            "p.wait()")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # exec'd into sleep: the pid stays the same
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if f.read().startswith(b"sleep"):
                    break
            time.sleep(0.02)
        assert _alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the guarded child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        try:
            os.kill(child, signal.SIGKILL)
        except (ProcessLookupError, UnboundLocalError):
            pass


def test_guarded_refuses_to_start_for_a_parent_that_is_gone():
    # The wrapper is told a parent pid that is not its parent (as after a race with the
    # parent's death): it must exit instead of running the program unsupervised.
    out = subprocess.run([sys.executable, "-m", "camnode.node.children", "1", "--", "echo", "ran"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "ran" not in out.stdout


def test_guarded_runs_the_program_with_its_arguments():
    out = subprocess.run(guarded(["echo", "hello", "world"]), capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "hello world"
