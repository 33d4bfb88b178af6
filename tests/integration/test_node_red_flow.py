"""The shipped Node-RED flow, replayed against a real node: every button does its job."""

from __future__ import annotations

import json
from pathlib import Path

import paho.mqtt.client as mqtt

from tests.integration.conftest import ROOT, wait_for

FLOW = ROOT / "deploy" / "node-red" / "flows.json"


def _flow() -> list[dict]:
    return json.loads(FLOW.read_text())


def test_flow_is_importable_json_wired_to_existing_nodes():
    nodes = _flow()
    ids = {n["id"] for n in nodes}
    assert len(ids) == len(nodes)
    for n in nodes:
        for outputs in n.get("wires", []):
            assert set(outputs) <= ids, n["id"]
        if n["type"] in ("mqtt in", "mqtt out"):
            assert n["broker"] in ids


def test_every_inject_in_the_flow_works_against_a_node(run_node, broker, probe_factory,
                                                       tmp_path: Path):
    node = run_node({"node_id": "camnode",
                     "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port}})
    probe = probe_factory(broker.port)
    probe.wait("camnode/camnode/availability", lambda m: m.payload == b"online")
    nodes = {n["id"]: n for n in _flow()}
    subscriptions = [n["topic"] for n in nodes.values() if n["type"] == "mqtt in"]
    for inj in (n for n in nodes.values() if n["type"] == "inject"):
        out = nodes[inj["wires"][0][0]]
        payload = inj["payload"] if inj["payloadType"] == "str" else json.loads(inj["payload"])
        mark = probe.mark()
        probe.publish(out["topic"], payload)
        if isinstance(payload, dict):
            command = out["topic"].split("/request/")[1]
            reply = json.loads(probe.wait(f"camnode/camnode/response/{command}",
                                          lambda m: json.loads(m.payload)["id"] == payload["id"],
                                          since=mark).payload)
            assert reply["status"] == "ok", (inj["name"], reply)
            # The flow's "Responses" node would have shown it.
            assert any(mqtt.topic_matches_sub(s, f"camnode/camnode/response/{command}")
                       for s in subscriptions)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["rois"]["porch"]["left"] == 60  # added, then moved by the flow
    # Its pipeline buttons were pressed Start, then Stop.
    wait_for(lambda: node.state()["pipeline"] == "stopped", what="pipeline stopped by the flow")
