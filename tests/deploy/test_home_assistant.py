"""The Home Assistant examples refer to entities and topics a node really creates, with
the ids every supported Home Assistant generation gives them (tests/ha_mqtt_discovery.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from camnode.node.discovery import discovery_payload
from camnode.node.topics import Topics
from tests import ha_mqtt_discovery as ha

HA = Path(__file__).resolve().parents[2] / "deploy" / "home-assistant"
README = Path(__file__).resolve().parents[2] / "README.md"
DOMAINS = r"(?:binary_sensor|sensor|select|switch|image|camera|button)"


def _payload() -> dict:
    """The node the examples describe: `porch`, ROI `door`, the detector tracking person."""
    topics = Topics.for_node("camnode", "porch")
    return discovery_payload(topics, "porch", "camnode", ["motion", "passthrough"], ["door"],
                             ["person"])


def _used(text: str) -> set[str]:
    return set(re.findall(rf"\b{DOMAINS}\.camnode_porch_\w+", text))


def test_examples_are_valid_yaml():
    assert yaml.safe_load((HA / "automations.yaml").read_text())


@pytest.mark.parametrize("gen", ha.GENERATIONS, ids=lambda g: g.name)
def test_examples_and_entity_list_name_the_ids_each_home_assistant_generation_makes(gen):
    doc = _payload()
    assert ha.problems(doc, gen) == []
    ids = set(ha.entity_ids(doc, gen).values())
    for name in ("automations.yaml", "ENTITIES.md"):
        used = _used((HA / name).read_text())
        assert used and used <= ids, (name, used - ids)
    listed = set(re.findall(rf"`({DOMAINS}\.camnode_porch_\w+)`",
                            (HA / "ENTITIES.md").read_text()))
    assert listed == ids  # every discovered entity is described


def test_readme_names_only_ids_a_node_makes():
    garden = discovery_payload(Topics.for_node("camnode", "garden"), "garden", None, ["m"],
                               ["AccessPoint_1", "Driveway"], ["person"])
    ids = set()
    for gen in ha.GENERATIONS:
        ids |= set(ha.entity_ids(_payload(), gen).values())
        ids |= set(ha.entity_ids(garden, gen).values())
    used = set(re.findall(rf"\b{DOMAINS}\.camnode_\w+", README.read_text()))
    assert used and used <= ids, used - ids


def test_automations_use_the_syntax_of_the_supported_releases():
    # triggers:/trigger: (2024.10) and actions:/action: (2024.8) exist on every release
    # camnode supports (2024.11 on); the old platform:/service: spelling is not used.
    for auto in yaml.safe_load((HA / "automations.yaml").read_text()):
        assert "triggers" in auto and "actions" in auto, auto["alias"]
        assert all("trigger" in t for t in auto["triggers"]), auto["alias"]
    assert "service:" not in (HA / "automations.yaml").read_text()


def test_automation_topics_are_node_topics():
    text = (HA / "automations.yaml").read_text()
    topics = Topics.for_node("camnode", "porch")
    assert topics.events in text


def test_prometheus_rules_use_metrics_the_node_exports():
    from camnode.web.metrics import render

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
