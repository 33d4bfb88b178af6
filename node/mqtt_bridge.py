"""MQTT transport: the node as a device that Home Assistant discovers and Node-RED drives.

One paho-mqtt 2.x client per node (`camnode-<node_id>`), connected with
`connect_async` + `loop_start`, so the node streams with the broker down and connects
when it appears; paho reconnects by itself. paho's network thread only runs the
callbacks, which hand work over: commands go to a queue served by the `mqtt-commands`
thread, which hands them to the core's command handler and publishes exactly one reply
per request. Publishing (`publish` is thread-safe in paho) happens from the node's threads.

The bridge never sees the node: it is given its settings, the supervisor that runs its
thread and a callback for "my status changed" (node/wiring.py), commands go to the one
handler it is subscribed with, and what it publishes comes from the core topics
(node/transport.py). After every (re)connect it asks the core, with the internal command
`transport/refresh`, to send everything retained again; the core's answer, a `refresh`
on its state thread, is published before `online`.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import ssl
import threading
import time
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from camnode.node import response_topic, strictjson, transport
from camnode.node.config import MqttConfig
from camnode.node.mqtt_retained import (  # noqa: F401 (tests and tools import them from here)
    DIAGNOSTICS_MIN_INTERVAL_S, SIGNIFICANT, RetainedTopics, fps_changed, state_key)
from camnode.node.supervisor import Supervisor, beat, guarded
from camnode.node.topics import Topics
from camnode.node.transport import CommandHandler
from camnode.node.wire import MAX_PAYLOAD, request_id_of, reply_error as error

log = logging.getLogger(__name__)

# paho doubles its wait between reconnect attempts up to this: after a broker outage of
# any length the node is back within about this many seconds of the broker's return.
RECONNECT_MAX_S = 2
# After a connect, ask the core again for everything retained if it has not sent it
# within this long (its state thread was busy and answered `unavailable`).
REFRESH_RETRY_S = 2.0


def mqtt_password() -> str | None:
    """From CAMNODE_MQTT_PASSWORD, or the file named by CAMNODE_MQTT_PASSWORD_FILE."""
    if os.environ.get("CAMNODE_MQTT_PASSWORD"):
        return os.environ["CAMNODE_MQTT_PASSWORD"]
    path = os.environ.get("CAMNODE_MQTT_PASSWORD_FILE")
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    return None


class MqttBridge(RetainedTopics):
    """Owns the MQTT client and the command thread. start()/stop() are idempotent."""

    def __init__(self, cfg: MqttConfig, host: str, port: int, node_id: str, *,
                 web_url: str | None = None, supervisor: Supervisor | None = None,
                 on_change: Callable[[], None] | None = None):
        """Built by node/wiring.py. `on_change`: called (any thread) when `status()`
        changed, so the core publishes its state now rather than within a second."""
        self.cfg = cfg
        self.host, self.port = host, port
        self.node_id = node_id
        self.web_url = web_url
        self.supervisor = supervisor or Supervisor()
        self._on_change = on_change or (lambda: None)
        self.handler: CommandHandler | None = None  # subscribe()
        # The core as the bridge knows it: the newest `state` and `rois` news (written by
        # the core's state thread only; see node/mqtt_retained.py).
        self._state: dict | None = None
        self._rois: dict | None = None
        self.topics = Topics.for_node(cfg.base_topic, node_id, cfg.discovery_prefix)
        # Written by the `mqtt-commands` thread only (and by stop() once it has ended):
        # True from a connect on (the retained topics, then `online`, follow from the
        # core's refresh), False on the first drop it hears of.
        self.connected = False
        self.last_error: str | None = None
        self.connects = 0
        # Connections to announce, counted: `_wanted` is written by the command thread
        # (one more per connect), `_announced` by the state thread once the core's
        # `refresh` and then `online` are out. A connect that comes while a refresh is
        # being sent is announced by the next one.
        self._wanted = self._announced = 0
        self._asked_at = 0.0
        # paho's thread posts ("up"|"down"|"refused", detail) here, in order; the worker
        # acts on the newest, so a drop between connect and announce leaves it False.
        self._link: queue.SimpleQueue = queue.SimpleQueue()
        self._client: mqtt.Client | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=100)
        self._stop = threading.Event()
        self._worker = None  # the `mqtt` part of the supervisor
        self._last_state: dict | None = None
        self._last_state_at = 0.0
        self._last_fps: float | None = None
        self._discovery_timer: threading.Timer | None = None
        self._discovered: tuple | None = None
        self._sent_components: dict[str, str] = {}
        self._labels: list[str] = []
        self._lock = threading.Lock()
        self._discovery_lock = threading.Lock()

    # -- lifetime (node main thread) ---------------------------------------------------
    def start(self) -> None:
        if self._client is not None:
            return
        cfg = self.cfg
        v5 = cfg.protocol == "5"
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"camnode-{self.node_id}",
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, mqtt_password())
        if cfg.tls.enabled:
            client.tls_set(ca_certs=cfg.tls.ca_certs, certfile=cfg.tls.certfile,
                           keyfile=cfg.tls.keyfile, cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(cfg.tls.insecure)
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        client.on_socket_open = _no_delay
        # paho re-raises a callback's exception, which ends its network thread for good.
        supervisor = self.supervisor
        client.on_connect = guarded(self, "_on_connect", "mqtt", supervisor)
        client.on_disconnect = guarded(self, "_on_disconnect", "mqtt", supervisor)
        client.on_message = guarded(self, "_on_message", "mqtt", supervisor)
        self._client = client
        self._stop.clear()
        self._worker = supervisor.spawn("mqtt", self._work, self._stop, name="mqtt-commands",
                                        stall_after=30)  # a command may load a module
        if v5:
            client.connect_async(self.host, self.port, cfg.keepalive,
                                 clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY)
        else:
            client.connect_async(self.host, self.port, cfg.keepalive)
        client.loop_start()
        log.info("MQTT: connecting to %s:%d as camnode-%s (base topic %s)", self.host,
                 self.port, self.node_id, self.topics.base)

    def stop(self) -> None:
        client, self._client = self._client, None
        self._stop.set()
        if self._discovery_timer:
            self._discovery_timer.cancel()
        if client is None:
            return
        if self.connected:
            info = client.publish(self.topics.availability, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError):
                pass
        client.disconnect()
        client.loop_stop()
        if self._worker:
            self._worker.join(5)
            self._worker = None
        self.connected = False
        log.info("MQTT: disconnected")

    def status(self) -> dict:
        return {"enabled": True, "broker": f"{self.host}:{self.port}",
                "connected": self.connected, "last_error": self.last_error}

    # -- paho callbacks (paho's network thread: hand work over only) ---------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT: broker %s:%d refused the connection: %s", self.host, self.port,
                      reason_code)
            self._link.put(("refused", f"connection refused: {reason_code}"))
            return
        self.connects += 1
        t = self.topics
        # MQTT 5 "retain as published": a retained command is seen as retained even when
        # it arrives live, so it can be refused (a broker must never replay old commands).
        opts = SubscribeOptions(qos=1, retainAsPublished=True) if self.cfg.protocol == "5" else 1
        client.subscribe([(t.request_filter, opts), (t.pipeline_set, opts), (t.module_set, opts),
                          (t.ha_status, opts)])
        self._link.put(("up", ""))  # never lost, however full the command queue is

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._link.put(("down", f"disconnected: {reason_code}"))

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        try:
            self._queue.put_nowait(msg)
        except queue.Full:
            # Still one answer per request: say we are busy (publish never blocks).
            command = self.topics.command_of(msg.topic)
            if command is not None:
                log.warning("MQTT: command queue full, refusing %s", command)
                self._reply(command, error(_request_id(msg), command, "unavailable",
                                           "node busy: too many commands queued"), msg)

    # -- command thread --------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            beat()
            try:
                msg = self._queue.get(timeout=0.2)
            except queue.Empty:
                msg = None
            self._follow_link()  # before any message of the new connection
            if self._wanted > self._announced and self.connected and \
                    time.monotonic() - self._asked_at > REFRESH_RETRY_S:
                self._ask_refresh()
            if msg is None:
                continue
            try:
                self._handle(msg)
            except Exception:
                log.exception("MQTT: handling a message failed")
                self._answer_failure(msg)

    def _follow_link(self) -> None:
        """Catch up with paho's connection news (command thread, the only writer of
        `connected`): announce after the newest "up", go offline after a "down"."""
        news = []
        while True:
            try:
                news.append(self._link.get_nowait())
            except queue.Empty:
                break
        for i, (kind, detail) in enumerate(news):
            if kind == "up":
                if i == len(news) - 1:  # a later drop or connect supersedes this one
                    try:
                        self._announce()
                    except Exception:
                        log.exception("MQTT: announcing after connect failed")
            elif kind == "refused":
                self.last_error = detail
            else:
                was, self.connected = self.connected, False
                if was and not self._stop.is_set():
                    self.last_error = detail
                    log.warning("MQTT: lost the broker (%s); reconnecting", detail)
                    self._on_change()

    def _answer_failure(self, msg: mqtt.MQTTMessage) -> None:
        """Still one answer when handling a request raised (a bug): internal_error."""
        try:
            command = self.topics.command_of(msg.topic)
            if command is not None:
                self._reply(command, error(_request_id(msg), command, "internal_error",
                                           "internal error, see the node's log"), msg)
        except Exception:
            log.exception("MQTT: answering a failed request failed too")

    def _announce(self) -> None:
        """After every (re)connect (command thread): ask the core for everything
        retained; `_refreshed` sends it, discovery, then `online` (state thread)."""
        self.connected = True
        self.last_error = None
        self._wanted += 1
        self._ask_refresh()

    def _ask_refresh(self) -> None:
        self._asked_at = time.monotonic()
        if self.handler is None:
            return
        reply = self.handler("transport/refresh", {}, True)
        if reply.get("status") != "ok":
            log.warning("MQTT: the node did not refresh the retained topics (%s); asking "
                        "again", (reply.get("error") or {}).get("message"))

    def _refreshed(self, news: dict) -> None:
        """The core's `refresh` (state thread): every retained topic, and `online` after
        them when this follows a connect."""
        wanted = self._wanted
        announcing = wanted > self._announced
        self.republish(news, force_discovery=announcing)
        if announcing and self.connected:
            self._announced = wanted
            self._publish(self.topics.availability, "online", retain=True)
            log.info("MQTT: connected to %s:%d", self.host, self.port)
            self._on_change()

    def _handle(self, msg: mqtt.MQTTMessage) -> None:
        t = self.topics
        if msg.topic == t.ha_status:
            if msg.payload.strip().lower() == b"online":
                self._schedule_discovery()
            return
        command = t.command_of(msg.topic)
        if command is None:
            return
        refused = self._response_topic_problem(msg)
        if len(msg.payload) > MAX_PAYLOAD:
            too_big = f"payload larger than {MAX_PAYLOAD} bytes"
            reply = error(None, command, "too_large", too_big, [{"path": "$", "reason": too_big}])
        elif refused:
            reply = error(_request_id(msg), command, "validation_failed",
                          "request refused: " + refused, [{"path": "response_topic",
                                                           "reason": refused}])
        elif msg.retain:
            reply = error(_request_id(msg), command, "validation_failed",
                          "retained command ignored: publish commands with retain=false")
        elif command == "pipeline/set":
            value = msg.payload.decode("utf-8", "replace").strip().upper()
            if value in ("ON", "OFF"):
                reply = self.handler(
                    "pipeline/start" if value == "ON" else "pipeline/stop", {}, False)
                reply["command"] = command
            else:
                reply = error(None, command, "validation_failed", "payload must be ON or OFF")
        elif command == "module/set" and msg.topic == t.module_set:
            name = msg.payload.decode("utf-8", "replace").strip()
            reply = self.handler("module/set", {"name": name}, False)
        else:  # the body as it came: the handler parses it with the strict JSON reader
            reply = self.handler(command, msg.payload, False)
        self._reply(command, reply, msg)

    def _response_topic_problem(self, msg: mqtt.MQTTMessage) -> str | None:
        props = getattr(msg, "properties", None)
        topic = getattr(props, "ResponseTopic", None) if props else None
        return None if topic is None else response_topic.problem(topic, self.topics)

    def _reply(self, command: str, reply: dict, msg: mqtt.MQTTMessage) -> None:
        """The answer on our own response topic, and on the request's MQTT 5 response
        topic when it is an acceptable one (see node/response_topic.py); both carry
        the request's correlation data. Never raises (paho thread or command thread)."""
        body = strictjson.dumps(reply)
        props = getattr(msg, "properties", None)
        out = None
        correlation = getattr(props, "CorrelationData", None) if props else None
        if correlation is not None:
            out = Properties(PacketTypes.PUBLISH)
            out.CorrelationData = correlation
        own = self.topics.response(command)
        self._publish(own, body, properties=out)
        topic = getattr(props, "ResponseTopic", None) if props else None
        if topic and topic != own and response_topic.problem(topic, self.topics) is None:
            self._publish(topic, body, properties=out or Properties(PacketTypes.PUBLISH))

    # -- publishing (any thread) -----------------------------------------------------------
    def _publish(self, topic: str, payload: Any, retain: bool = False, qos: int = 1,
                 properties: Properties | None = None) -> None:
        client = self._client
        if client is None or not self.connected:
            return  # everything retained is re-published on the next connect
        if isinstance(payload, (dict, list)):
            payload = strictjson.dumps(payload)
        try:
            client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        except (ValueError, TypeError) as exc:  # a topic or payload paho refuses
            log.warning("MQTT: cannot publish on %.200r: %s", topic, exc)

    # -- node/transport.py's interface -----------------------------------------------------
    def publish(self, topic: str, payload: Any, retain: bool = False) -> None:
        """Core topics onto MQTT topics (node/topics.py). The core's state thread."""
        if topic == transport.STATE:
            self.publish_state(payload)
            self.publish_discovery()  # sent only when what it lists changed
        elif topic == transport.STATS:
            self.publish_stats(payload)
        elif topic == transport.ROIS:
            self._rois = {"version": payload["version"], "rois": payload["rois"]}
            self.publish_rois()
            for gone, labels in payload.get("removed", {}).items():
                self.clear_roi(gone, labels)
            self.publish_discovery()
        elif topic == transport.REFRESH:
            self._refreshed(payload)
        elif topic == transport.SNAPSHOT:
            self.snapshot(*payload)

    def subscribe(self, handler: CommandHandler) -> None:
        self.handler = handler


def _request_id(msg: mqtt.MQTTMessage) -> object:
    """The request's `id` when the payload is JSON we accept (else None), for answers
    given without running the command (busy, retained, refused response topic)."""
    try:
        return request_id_of(strictjson.loads(msg.payload, max_bytes=MAX_PAYLOAD))
    except strictjson.JsonRefused:
        return None


def _no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """paho's on_socket_open: TCP_NODELAY, so an answer written right after a PUBACK is
    not held back by Nagle until the broker's delayed ACK (~40 ms per QoS 1 round trip)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as exc:  # not a TCP socket (e.g. a unix socket)
        log.debug("MQTT: TCP_NODELAY not set: %s", exc)
