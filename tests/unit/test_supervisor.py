"""The supervisor's mechanism: crash -> traceback logged, counted, restarted with back-off;
no progress -> stalled; problems reported and cleared; a stalled asyncio loop found."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import numpy as np
import pytest

from camnode.node import supervisor as sup
from camnode.node.module_runner import conform
from camnode.node.supervisor import Supervisor, beat, failing, idle
from camnode.web.watchdog import LoopWatchdog


def wait_for(cond, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def stop():
    ev = threading.Event()
    yield ev
    ev.set()


def test_a_crashing_loop_is_logged_counted_reported_and_restarted(stop, caplog):
    crashes = iter([True, True, False])
    ran = threading.Event()

    def body():
        if next(crashes, False):
            raise ValueError("injected")
        while not stop.is_set():
            beat()
            ran.set()
            stop.wait(0.02)

    s = Supervisor()
    with caplog.at_level(logging.ERROR, logger="camnode.node.supervisor"):
        part = s.spawn("events", body, stop)
        problem = wait_for(lambda: s.problems(), what="the crash reported")
        assert problem[0]["part"] == "events" and "ValueError: injected" in problem[0]["reason"]
        assert "restarting in" in problem[0]["reason"]
        assert ran.wait(5), "the loop never came back"
    assert not s.problems()
    assert part.crashes == 2 and part.restarts == 2
    assert s.status()["events"]["crashes"] == 2
    crash_logs = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert len(crash_logs) == 2 and crash_logs[0].exc_info is not None  # with traceback
    assert "ValueError: injected" in caplog.text and "Traceback" in caplog.text


def test_back_off_doubles_between_restarts(stop):
    starts = []

    def body():
        starts.append(time.monotonic())
        raise RuntimeError("always")

    Supervisor().spawn("pipeline", body, stop)
    wait_for(lambda: len(starts) >= 3, timeout=5)
    stop.set()
    first, second = starts[1] - starts[0], starts[2] - starts[1]
    assert first >= sup.BACKOFF_MIN * 0.9 and second >= 2 * sup.BACKOFF_MIN * 0.9


def test_a_loop_that_makes_no_progress_is_stalled_then_recovers(stop, caplog):
    caplog.set_level(logging.INFO, logger="camnode.node.supervisor")
    block = threading.Event()

    def body():
        while not stop.is_set():
            beat()
            if block.is_set():
                stop.wait(0.6)  # one long step: longer than the part's stall_after
                block.clear()
            stop.wait(0.01)

    s = Supervisor()
    s.spawn("capture", body, stop, stall_after=0.2)
    time.sleep(0.3)
    assert not s.problems()
    block.set()
    problem = wait_for(lambda: s.problems(), what="stall")
    assert problem[0]["part"] == "capture" and problem[0]["reason"].startswith("stalled")
    assert failing(problem)
    wait_for(lambda: not s.problems() and not block.is_set(), what="recovery")
    assert "capture stalled" in caplog.text and "makes progress again" in caplog.text


def test_an_idle_loop_is_not_stalled(stop):
    def body():
        idle()
        stop.wait()

    s = Supervisor()
    s.spawn("detector", body, stop, stall_after=0.1)
    time.sleep(0.3)
    assert s.problems() == []


def test_a_loop_that_returns_without_being_stopped_is_a_crash(stop):
    calls = []

    def body():
        calls.append(1)
        if len(calls) > 1:
            stop.wait()

    part = Supervisor().spawn("state", body, stop)
    wait_for(lambda: part.restarts == 1)
    assert "loop returned" in part.last_error


def test_stopped_parts_leave_the_registry(stop):
    s = Supervisor()
    part = s.spawn("commands", lambda: stop.wait(), stop)
    stop.set()
    assert part.join(2)
    assert s.status() == {} and s.problems() == []  # no threads, nothing counted


def test_external_reports_set_and_clear_and_degraded_ones_do_not_fail():
    changes = []
    s = Supervisor(on_change=lambda: changes.append(1))
    s.report("web", "worker-0", "worker 0 exited with -9")
    s.report("web", "worker-0", "worker 0 exited with -9")  # same: no new change
    assert [p["part"] for p in s.problems()] == ["web"] and len(changes) == 1
    since = s.problems()[0]["since"]
    s.report("web", "worker-0", "worker 0 restarted")
    assert s.problems()[0]["since"] == since  # the same problem continues
    s.report("web", "worker-0", None)
    assert s.problems() == []
    assert failing([{"part": "source"}, {"part": "module"}]) == []
    assert failing([{"part": "web"}]) == [{"part": "web"}]


def test_loop_watchdog_fires_when_the_loop_is_blocked():
    fired = threading.Event()

    async def main():
        dog = LoopWatchdog(stall_after=0.3, period=0.05, on_stall=fired.set)
        dog.start()
        await asyncio.sleep(0.5)  # a turning loop: no alarm
        assert not fired.is_set()
        time.sleep(0.8)  # blocks the loop, as a stuck handler would
        dog.stop()

    asyncio.run(main())
    assert fired.is_set()


# -- conform: every module output becomes a valid frame or a clear refusal ----------------------
SRC = np.full((48, 64, 3), 100, np.uint8)


@pytest.mark.parametrize("out, note", [
    (np.zeros(SRC.shape, bool), "bool"),
    (np.zeros((48, 64), np.float64), "float64"),
    (np.zeros((48, 64), np.uint8), "grey"),
    (np.zeros((48, 64, 1), np.uint8), "grey"),
    (np.zeros((48, 64, 4), np.uint8), "4-channel"),
    (np.broadcast_to(SRC[:1], SRC.shape), ""),  # read-only, not contiguous
    (SRC[:, ::-1], ""),  # a mirrored view: not contiguous
    (np.zeros((24, 32, 3), np.uint8), "32x24"),
    (np.full((48, 64, 3), 300, np.int32), "int32"),
    (np.full((48, 64, 3), np.nan, np.float32), "float32"),
])
def test_module_outputs_that_can_be_shown_become_bgr_uint8_frames(out, note):
    frame, got = conform(out, 64, 48)
    assert frame is not None, got
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert frame.flags.c_contiguous and frame.flags.writeable
    assert note in got


def test_float_frames_in_0_1_are_scaled_and_bool_is_white():
    frame, _ = conform(np.ones((48, 64), np.float64), 64, 48)
    assert frame.min() == 255
    frame, _ = conform(np.ones((48, 64, 3), bool), 64, 48)
    assert frame.min() == 255


@pytest.mark.parametrize("out, why", [
    (np.zeros((48, 64, 2), np.uint8), "2-channel"),
    (np.zeros((48, 64, 5), np.uint8), "5-channel"),
    (np.zeros((48, 64, 3), complex), "complex"),
    (np.zeros((48, 64, 3), object), "object"),
    (np.zeros((0, 64, 3), np.uint8), "shape"),
    (np.zeros(64, np.uint8), "shape"),
    (np.zeros((2, 48, 64, 3), np.uint8), "shape"),
    ("a string", "str"),
])
def test_module_outputs_that_cannot_be_shown_are_refused_with_why(out, why):
    frame, got = conform(out, 64, 48)
    assert frame is None and why in got


def test_a_part_being_started_is_never_reported_dead(monkeypatch):
    # The state thread may read problems while another thread is inside spawn(): the part
    # is listed but its thread not started yet. That moment must not read as "dead"
    # (every node start logged "capture: dead: thread ended" and at once "ok again").
    s = Supervisor()
    seen = []
    real_start = threading.Thread.start

    def start_and_look(thread):
        seen.extend(p.get("reason", "") for p in s.problems())
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_and_look)
    stop = threading.Event()
    part = s.spawn("capture", lambda: stop.wait(), stop)
    monkeypatch.setattr(threading.Thread, "start", real_start)
    stop.set()
    part.join(5)
    assert not [r for r in seen if "dead" in r], seen
