"""node/transport.py's interface is all a transport needs: one added by the composition
root (as node/wiring.py adds MQTT) gets the core's news and has its commands answered,
without the core naming it or handing it the node."""

from __future__ import annotations

import threading

import pytest

from camnode.node import transport
from camnode.node.config import ConfigStore, load_config
from camnode.node.wiring import build_node
from tests.integration.conftest import wait_for
from tests.unit.test_dispatcher import config_path  # noqa: F401  (fixture)


class Recording:
    """A transport that keeps what it is told and sends what a test asks it to."""

    def __init__(self) -> None:
        self.news: list[tuple[str, object]] = []
        self.handler: transport.CommandHandler | None = None
        self.started = self.stopped = 0
        self.lock = threading.Lock()

    def publish(self, topic: str, payload, retain: bool = False) -> None:
        with self.lock:
            self.news.append((topic, payload))

    def subscribe(self, handler: transport.CommandHandler) -> None:
        self.handler = handler

    def start(self) -> None:
        self.started += 1

    def stop(self) -> None:
        self.stopped += 1

    def of(self, topic: str) -> list:
        with self.lock:
            return [p for t, p in self.news if t == topic]


@pytest.fixture
def added(config_path):  # noqa: F811
    parts = build_node(ConfigStore(load_config(config_path), config_path))
    t = Recording()
    parts.node.add_transport(t)
    parts.start()
    try:
        yield t
    finally:
        parts.stop()
    assert (t.started, t.stopped) == (1, 1)


def test_an_added_transport_gets_the_state_and_its_commands_are_answered(added):
    state = wait_for(lambda: added.of(transport.STATE), what="the core's state")[-1]
    assert state["node_id"] and "health" in state
    reply = added.handler("roi/add", b'{"id": "t1", "name": "gate", "left": 1, "top": 1, '
                                     b'"right": 40, "bottom": 40}', False)
    assert (reply["status"], reply["id"]) == ("ok", "t1")
    [rois] = added.of(transport.ROIS)
    assert "gate" in rois["rois"] and rois["removed"] == {}
    reply = added.handler("roi/delete", {"name": "gate"}, False)
    assert added.of(transport.ROIS)[-1]["removed"] == {"gate": []}


def test_users_cannot_send_internal_commands_but_the_transport_can_ask_for_a_refresh(added):
    refused = added.handler("transport/refresh", {}, False)
    assert refused["error"]["code"] == "unknown_command"
    assert not added.of(transport.REFRESH)
    assert added.handler("transport/refresh", {}, True)["status"] == "ok"
    [news] = added.of(transport.REFRESH)
    assert set(news) == {"state", "rois", "info", "outputs"}
    assert news["info"]["node_id"] == news["state"]["node_id"]
    assert news["rois"]["version"] == news["state"]["rois_version"]
