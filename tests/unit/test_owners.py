"""State with one writing thread, read by others as snapshots (issue 10's races).

Each test puts the reader exactly where the old code let a writer in, so it failed
before the fix: the state thread dropping a viewer report that arrived while it pruned,
MQTT's announce iterating occupancy the events thread was changing, and a broker drop
between connect and announce leaving `connected` True while offline."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from camnode.node import transport
from camnode.node.events import EventEngine
from tests.unit.test_dispatcher import config_path, node  # noqa: F401  (fixtures)
from tests.unit.test_events import DOOR, YARD, FakeClock, RecordingSink, cfg, det, frame
from tests.unit.test_mqtt_answers import Recorder, bridge  # noqa: F401  (fixture)


def test_a_viewer_report_arriving_while_the_state_thread_prunes_is_kept(node):  # noqa: F811
    node._viewers = {"host:1": (time.monotonic() - 60, 2, (), {})}  # a silent worker
    real = node.pipeline.output.set_demand
    interleaved = []

    def set_demand(full, variants):  # the state thread is between prune and store here
        if not interleaved:
            interleaved.append(1)
            node.viewers_report("host:2", 3, [12.0])  # the command thread's report
        real(full, variants)

    node.pipeline.output.set_demand = set_demand
    node.mailbox.call(node.viewer_summary)  # on the state thread, which prunes
    assert interleaved
    summary = node.viewer_summary()
    assert (summary["viewers"], summary["web_workers"]) == (3, 1)
    assert node.worker_reported(2) and not node.worker_reported(1)


def test_occupancy_read_by_another_thread_is_a_snapshot_the_events_thread_never_changes():
    engine = EventEngine(cfg(), "porch", [RecordingSink()], clock=FakeClock())
    engine.set_rois({"door": DOOR, "yard": YARD})
    frame(engine, 1000.0, det(10, 20, 30, 60))
    seen = iter(engine.occupied.items())  # mqtt_bridge's announce, half-way through
    next(seen)
    engine.set_rois({"door": DOOR, "yard": YARD, "porch": YARD})
    frame(engine, 1000.1, det(60, 20, 80, 60))  # the events thread adds and changes ROIs
    assert list(seen) == [("yard", (False, 0))]  # the old snapshot, whole
    assert engine.occupied == {"door": (True, 1), "yard": (True, 1), "porch": (True, 1)}
    assert engine.outputs.tracking and engine.state()["tracks"] == 2


def test_roi_edits_reach_the_events_thread_in_order_and_the_last_one_wins():
    engine = EventEngine(cfg(), "porch", [RecordingSink()], clock=FakeClock())
    engine.set_rois({"door": DOOR})
    engine.set_rois({"yard": YARD})
    engine.set_rois({"door": DOOR, "yard": YARD})
    assert engine.tracker.rois == {}  # applied by the events thread only
    frame(engine, 1000.0, det(10, 20, 30, 60))
    assert set(engine.tracker.rois) == {"door", "yard"}
    assert engine.occupied == {"door": (True, 1), "yard": (False, 0)}


class LinkRecorder(Recorder):
    def subscribe(self, topics):
        pass


def test_a_drop_between_connect_and_announce_leaves_mqtt_offline(bridge):  # noqa: F811
    bridge._client, bridge.connected = LinkRecorder(), False
    ok = SimpleNamespace(is_failure=False)
    bridge._on_connect(bridge._client, None, None, ok, None)  # paho's thread
    bridge._on_disconnect(bridge._client, None, None, "connection lost", None)
    handled = threading.Event()
    bridge._handle = lambda msg: handled.set()  # marks the end of the worker's first pass
    bridge._queue.put(SimpleNamespace(topic="x"))
    worker = threading.Thread(target=bridge._work, daemon=True)
    worker.start()
    try:
        assert handled.wait(5)
    finally:
        bridge._stop.set()
        worker.join(5)
    assert bridge.connected is False
    assert bridge.status()["connected"] is False
    assert not [t for t, p, _ in bridge._client.published if p == "online"]


def test_the_newest_connect_is_announced_once(bridge, node):  # noqa: F811
    node.transports.append(bridge)  # the core's news reach it, as node/wiring.py arranges
    bridge._client, bridge.connected = LinkRecorder(), False
    ok = SimpleNamespace(is_failure=False)
    bridge._on_connect(bridge._client, None, None, ok, None)
    bridge._on_disconnect(bridge._client, None, None, "connection lost", None)
    bridge._on_connect(bridge._client, None, None, ok, None)
    bridge._follow_link()
    assert bridge.connected is True
    online = [t for t, p, _ in bridge._client.published if p == "online"]
    assert online == [bridge.topics.availability]
    # Everything retained went out before `online`, from the core's refresh.
    sent = [t for t, _, _ in bridge._client.published]
    assert sent.index(bridge.topics.state) < sent.index(bridge.topics.availability)
    assert sent.index(bridge.topics.rois) < sent.index(bridge.topics.availability)


def test_a_reconnect_while_the_retained_topics_go_out_is_announced_too(bridge):  # noqa: F811
    """The state thread is sending a refresh for one connection when the link drops and
    comes back (command thread): the new connection gets its own refresh and `online`
    after it. (With one flag written by both threads, the state thread cleared the new
    connection's request and it was never announced.)"""
    asked = []
    bridge.subscribe(lambda command, payload, internal: asked.append(command) or {
        "status": "ok"})
    bridge._client, bridge.connected = LinkRecorder(), False
    ok = SimpleNamespace(is_failure=False)
    bridge._on_connect(bridge._client, None, None, ok, None)
    bridge._follow_link()
    news = {"state": {"modules": [], "name": "porch"}, "rois": {"version": 1, "rois": {}},
            "info": {}, "outputs": None}
    real = bridge.republish

    def republish_while_the_link_flaps(n, force_discovery=False):
        real(n, force_discovery)
        bridge._on_disconnect(bridge._client, None, None, "lost", None)
        bridge._on_connect(bridge._client, None, None, ok, None)
        bridge._follow_link()  # the command thread, meanwhile

    bridge.republish = republish_while_the_link_flaps
    bridge.publish(transport.REFRESH, news)  # the state thread
    bridge.republish = real
    bridge.publish(transport.REFRESH, news)  # the refresh the new connection asked for
    assert asked == ["transport/refresh", "transport/refresh"]
    sent = [(t, p) for t, p, _ in bridge._client.published]
    online = [i for i, (t, p) in enumerate(sent) if p == "online"]
    assert len(online) == 2, sent
    assert sent[online[1] - 1][0] != bridge.topics.availability  # retained topics first
    assert bridge.topics.state in [t for t, _ in sent[online[0] + 1:online[1]]]


def test_dispatcher_counts_are_a_copy_readers_cannot_change(node):  # noqa: F811
    node.dispatcher.handle("state/get", {})
    counts = node.dispatcher.counts
    counts["ok"] += 100
    assert node.dispatcher.counts["ok"] == counts["ok"] - 100


def test_commands_from_any_thread_run_on_the_state_thread_one_at_a_time(node):  # noqa: F811
    ran_on, inside, overlaps = [], [0], []
    real = node.dispatcher._handlers["roi/get"]

    def roi_get(payload):
        inside[0] += 1
        overlaps.append(inside[0] > 1)
        ran_on.append(threading.current_thread().name)
        time.sleep(0.01)  # widen the window another command could run in
        inside[0] -= 1
        return real(payload)

    node.dispatcher._handlers["roi/get"] = roi_get
    threads = [threading.Thread(target=node.dispatcher.handle, args=("roi/get", {}))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(ran_on) == 8 and not any(overlaps)
    assert set(ran_on) == {"state"}


def test_a_command_the_owner_does_not_take_in_time_is_answered_unavailable(node):  # noqa: F811
    from camnode.node.owner import OwnerBusy

    release = threading.Event()
    blocker = threading.Thread(target=node.mailbox.call, args=(release.wait, 10))
    blocker.start()
    try:
        with pytest.raises(OwnerBusy):
            node.mailbox.call(lambda: None, timeout=0.2)
    finally:
        release.set()
        blocker.join(10)
    assert node.dispatcher.handle("roi/get", {})["status"] == "ok"
