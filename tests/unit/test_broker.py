"""Choosing an MQTT broker when the configuration says "auto"."""

from __future__ import annotations

import logging

from camnode.node import broker


def test_configured_host_is_used_as_is():
    assert broker.resolve_broker("mqtt.lan", 8883) == ("mqtt.lan", 8883, None)


def test_without_broker_or_mosquitto_the_node_runs_without_mqtt_and_says_so(monkeypatch, caplog):
    monkeypatch.setattr(broker, "port_open", lambda *a, **k: False)
    monkeypatch.setattr(broker, "find_mosquitto", lambda: None)
    with caplog.at_level(logging.WARNING):
        assert broker.resolve_broker("auto", 1883) is None
    assert "running without MQTT" in caplog.text


def test_a_broker_already_on_localhost_is_used(monkeypatch):
    monkeypatch.setattr(broker, "port_open", lambda host, port, timeout=0.3: port == 1883)
    assert broker.resolve_broker("auto", 1883) == ("127.0.0.1", 1883, None)
