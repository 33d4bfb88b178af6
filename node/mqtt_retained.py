"""The MQTT bridge's retained topics and Home Assistant discovery: what is published, when.

`RetainedTopics` is the publishing half of `MqttBridge` (node/mqtt_bridge.py), which
owns the connection and the command thread. It knows the node only by what the core
publishes (node/transport.py's core topics): the newest `state`, `rois` and `refresh`
payloads, kept here as the bridge's view. Called by the node's state thread (the owner:
state, stats, ROIs, refresh, so the view is written by one thread, in order), the events
thread (the EventSink methods) and a timer after Home Assistant comes online (discovery,
reading the view); they only call the bridge's `_publish`, which never blocks.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time

from camnode.node.discovery import discovery_payload, labels_of, sent_components

log = logging.getLogger(__name__)

# State fields whose change is worth a retained `state` message at once; counters ride
# along with the periodic refresh and the `stats` topic.
SIGNIFICANT = ("pipeline", "module", "modules", "module_error", "last_error", "viewers")
_DIGITS = re.compile(r"\d+(\.\d+)?")
# Diagnostics (the frame rate) are sent when they change noticeably, at most this often.
DIAGNOSTICS_MIN_INTERVAL_S = 2.0


def fps_changed(before: float | None, now: float | None) -> bool:
    """A frame-rate change worth telling Home Assistant: starting or stopping, or 1 fps /
    10 % either way (jitter around 30 fps does not count)."""
    a, b = float(before or 0), float(now or 0)
    if (a == 0) != (b == 0):
        return True
    return abs(b - a) >= max(1.0, 0.1 * a)


def state_key(state: dict) -> dict:
    """The fields of a state whose change publishes it at once (see SIGNIFICANT)."""
    key = {k: state.get(k) for k in SIGNIFICANT}
    key["source"] = (state.get("source") or {}).get("status")
    health = state.get("health")
    if isinstance(health, dict):  # missing (older nodes): counts as ok
        # Which parts and why, but not their timings ("no progress for 5.2 s" ticking up
        # rides the periodic refresh; a new part or a new reason is sent at once).
        key["health"] = (bool(health.get("ok")), sorted(
            (str(p.get("part")), _DIGITS.sub("#", str(p.get("reason"))))
            for p in health.get("problems") or [] if isinstance(p, dict)))
    return key


class RetainedTopics:
    """Mixin for MqttBridge: every retained topic and discovery (see the module doc)."""

    @property
    def snapshot_topic(self) -> str:
        return self.topics.snapshot

    def republish(self, news: dict, force_discovery: bool = False) -> None:
        """Every retained topic again, from the core's `refresh` payload (node/core.py
        `retained()`): on (re)connect and for `state/get`. State thread."""
        self._rois = news["rois"]
        self.publish_state(news["state"], force=True)
        self.publish_rois()
        self._publish(self.topics.info, news["info"], retain=True)
        out = news.get("outputs")  # the events thread's newest immutable Outputs
        if out is not None:
            for roi, (occupied, count) in out.occupied.items():
                self.occupancy(roi, occupied, count)
            self.motion(out.tracking)
            for (roi, label), (occupied, count) in out.label_occupied.items():
                self.label_occupancy(roi, label, occupied, count)
        self.publish_discovery(force=force_discovery)

    def publish_state(self, state: dict, force: bool = False) -> None:
        """Retained `state`: at once when a significant field changed, when the frame rate
        changed noticeably (at most every DIAGNOSTICS_MIN_INTERVAL_S), and every
        `stats_interval_s` anyway. Called by the node's state thread about once a second."""
        self._state = state
        now = time.monotonic()
        key = state_key(state)
        key["mqtt"] = self.connected
        fps = state.get("fps")
        self._labels = labels_of(state)
        with self._lock:
            since = now - self._last_state_at
            due = since >= self.cfg.stats_interval_s or (
                fps_changed(self._last_fps, fps) and since >= DIAGNOSTICS_MIN_INTERVAL_S)
            if not force and key == self._last_state and not due:
                return
            self._last_state, self._last_state_at, self._last_fps = key, now, fps
        self._publish(self.topics.state, state, retain=True)

    def publish_stats(self, stats: dict) -> None:
        self._publish(self.topics.stats, stats, qos=0)

    def publish_rois(self) -> None:
        """The ROIs of the newest `rois` or `refresh` news, retained (state thread)."""
        if self._rois is not None:
            self._publish(self.topics.rois, self._rois, retain=True)

    def publish_discovery(self, force: bool = False) -> None:
        """Home Assistant discovery from the newest state and ROIs, sent when what it
        lists changed (or `force`). State thread, or the timer after HA comes online."""
        state, rois_news = self._state, self._rois
        if not self.cfg.discovery or state is None or rois_news is None:
            return
        rois = sorted(rois_news["rois"])
        modules = list(state.get("modules") or [])
        labels = list(self._labels)
        name = state.get("name") or self.node_id
        key = (tuple(modules), tuple(rois), tuple(labels), name)
        with self._discovery_lock:
            if (key == self._discovered and not force) or not self.connected:
                return
            payload = discovery_payload(self.topics, self.node_id, name, modules, rois,
                                        labels, self._sent_components,
                                        self.cfg.public_url or self.web_url)
            self._publish(self.topics.discovery, payload, retain=True)
            self._discovered = key
            self._sent_components = sent_components(payload)
        log.info("MQTT: Home Assistant discovery sent (%d ROI(s), %d label(s), %d module(s))",
                 len(rois), len(labels), len(modules))

    def _schedule_discovery(self) -> None:
        """Home Assistant came online: re-send discovery after 1-5 s, as its docs ask."""
        if self._discovery_timer:
            self._discovery_timer.cancel()
        self._discovery_timer = threading.Timer(random.uniform(1, 5),
                                                lambda: self.publish_discovery(force=True))
        self._discovery_timer.daemon = True
        self._discovery_timer.start()

    # -- EventSink (events thread) ---------------------------------------------------------
    def event(self, event: dict) -> None:
        self._publish(self.topics.events, event)

    def occupancy(self, roi: str, occupied: bool, count: int) -> None:
        self._publish(self.topics.occupancy(roi), "ON" if occupied else "OFF", retain=True)
        self._publish(self.topics.count(roi), str(count), retain=True)

    def motion(self, on: bool) -> None:
        self._publish(self.topics.motion, "ON" if on else "OFF", retain=True)

    def label_occupancy(self, roi: str, label: str, occupied: bool, count: int) -> None:
        self._publish(self.topics.roi_label_occupancy(roi, label), "ON" if occupied else "OFF",
                      retain=True)
        self._publish(self.topics.roi_label_count(roi, label), str(count), retain=True)

    def clear_roi(self, roi: str, labels=()) -> None:
        """An ROI was deleted: remove its retained topics (empty retained payload)."""
        self._publish(self.topics.occupancy(roi), b"", retain=True)
        self._publish(self.topics.count(roi), b"", retain=True)
        for label in labels:
            self._publish(self.topics.roi_label_occupancy(roi, label), b"", retain=True)
            self._publish(self.topics.roi_label_count(roi, label), b"", retain=True)

    def snapshot(self, jpeg: bytes, ts: float) -> None:
        """A new snapshot: retained on `snapshot` (camera entity, flows that start later)
        and once, not retained, on `snapshot/image` for Home Assistant's image entity,
        whose state is the time it last received a message: a retained copy re-delivered
        after a broker or Home Assistant restart would look like a new picture."""
        self._publish(self.topics.snapshot, jpeg, retain=True)
        self._publish(self.topics.snapshot_image, jpeg)
