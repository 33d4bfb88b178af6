"""The Home Assistant examples refer to entities and topics a node really creates."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from node.discovery import discovery_payload
from node.topics import Topics

HA = Path(__file__).resolve().parents[2] / "deploy" / "home-assistant"


def _discovered_ids() -> set[str]:
    topics = Topics.for_node("camnode", "porch")
    doc = discovery_payload(topics, "porch", "Porch", ["motion", "passthrough"], ["door"])
    return {c["default_entity_id"] for c in doc["components"].values()
            if "default_entity_id" in c}


def test_examples_are_valid_yaml():
    class Loader(yaml.SafeLoader):
        pass
    Loader.add_constructor("!secret", lambda loader, node: "secret")
    for name in ("camera.yaml", "automations.yaml"):
        assert yaml.load((HA / name).read_text(), Loader=Loader)


def test_examples_and_entity_list_name_only_discovered_entities():
    ids = _discovered_ids()
    for name in ("automations.yaml", "ENTITIES.md"):
        text = (HA / name).read_text()
        used = set(re.findall(r"\b(?:binary_sensor|sensor|select|switch|image|camera|button)"
                              r"\.camnode_porch_\w+", text))
        assert used and used <= ids, (name, used - ids)
    listed = set(re.findall(r"`((?:binary_sensor|sensor|select|switch|image|camera|button)"
                            r"\.camnode_porch_\w+)`", (HA / "ENTITIES.md").read_text()))
    assert listed == ids  # every discovered entity is described


def test_automation_topics_are_node_topics():
    text = (HA / "automations.yaml").read_text()
    topics = Topics.for_node("camnode", "porch")
    assert topics.events in text


def test_prometheus_rules_use_metrics_the_node_exports():
    from web.metrics import render

    state = {"node_id": "porch", "pipeline": "running", "frames": {
        "captured": 1, "published": 1, "skipped": 0, "dropped_by_module": 0}, "metrics": {
        "processing_seconds": {"buckets": [[0.01, 1]], "sum": 0.001, "count": 1},
        "encode_seconds": {"buckets": [[0.01, 1]], "sum": 0.001, "count": 1}},
        "commands": {"ok": 1, "error": 0}, "source": {"reconnects": 0},
        "mqtt": {"connected": True}, "fps": 30, "viewers": 1, "bytes_sent": 5,
        "module_errors": 0}
    text = render(state, {"viewers": 1, "bytes_sent": 5, "clients_served": 1}, True)
    exported = set(re.findall(r"^(camnode_\w+?)(?:\{| )", text, flags=re.M))
    rules = (HA.parent / "prometheus" / "camnode-alerts.yml").read_text()
    used = set(re.findall(r"\b(camnode_\w+)", rules))
    missing = {u for u in used if u not in exported}
    assert used and not missing, missing
    assert yaml.safe_load(rules)["groups"][0]["rules"]
    assert yaml.safe_load((HA.parent / "prometheus" / "prometheus.yml").read_text())
