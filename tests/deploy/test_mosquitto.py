"""The shipped Mosquitto config and ACL: the node gets in with its login and may only
touch its own topics; anonymous clients and other nodes are kept out."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.conftest import ROOT, Broker, camnode, wait_for, write_config  # noqa: F401

DEPLOY = ROOT / "deploy" / "mosquitto"
USERS = {"porch": "porch-secret", "other": "other-secret", "homeassistant": "ha-secret"}


@pytest.fixture
def secure_broker(tmp_path: Path):
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        subprocess.run(["mosquitto_passwd", "-b"] + ([] if i else ["-c"]) +
                       [str(passwd), user, password], check=True, capture_output=True)
    acl = tmp_path / "camnode.acl"
    acl.write_text((DEPLOY / "camnode.acl").read_text())
    b = Broker(tmp_path)
    conf = (DEPLOY / "camnode.conf").read_text()
    conf = conf.replace("/etc/mosquitto/passwd", str(passwd))
    conf = conf.replace("/etc/mosquitto/camnode.acl", str(acl))
    conf = re.sub(r"^listener 1883$", f"listener {b.port} 127.0.0.1", conf, flags=re.M)
    # As root, mosquitto would switch to its own user, who cannot read our temp files.
    b.extra_conf = conf + "persistence false\n" + ("user root\n" if os.geteuid() == 0 else "")
    b.start()
    yield b
    b.stop()


def _client(port: int, user: str | None, client_id: str, topics=("camnode/#",)) -> tuple:
    """A connected paho client (or the refusal reason) and what it receives."""
    got: list = []
    result: dict = {}
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if user:
        c.username_pw_set(user, USERS[user])
    c.on_connect = lambda cl, u, f, rc, p: (result.setdefault("rc", rc),
                                            not rc.is_failure and cl.subscribe(
                                                [(t, 1) for t in topics]))
    c.on_message = lambda cl, u, m: got.append(m)
    c.connect("127.0.0.1", port)
    c.loop_start()
    wait_for(lambda: "rc" in result, what=f"{client_id} connection answer")
    return c, result["rc"], got


def test_node_connects_with_its_login_and_outsiders_are_kept_out(secure_broker, camnode,
                                                                  write_config):
    port = secure_broker.port
    ha, rc, seen = _client(port, "homeassistant", "ha", ("camnode/#", "homeassistant/#"))
    assert not rc.is_failure
    cfg = write_config({"node_id": "porch", "mqtt": {"enabled": True, "host": "127.0.0.1",
                                                      "port": port, "username": "porch"}})
    node = camnode("run", "--config", str(cfg), env={"CAMNODE_MQTT_PASSWORD": "porch-secret"})
    node.wait_ready()
    wait_for(lambda: any(m.topic == "camnode/porch/availability" and m.payload == b"online"
                         for m in seen), timeout=15, what="node online")
    wait_for(lambda: any(m.topic == "homeassistant/device/camnode_porch/config" for m in seen),
             what="discovery allowed by the ACL")

    anon, rc, _ = _client(port, None, "anon")
    assert rc.is_failure  # anonymous clients are refused
    anon.loop_stop()

    other, rc, _ = _client(port, "other", "other-node")
    assert not rc.is_failure
    # Another node may not command or impersonate "porch"...
    other.publish("camnode/porch/request/pipeline/stop", json.dumps({"id": "evil"}),
                  qos=1).wait_for_publish(5)
    other.publish("camnode/porch/state", "spoofed", qos=1, retain=True).wait_for_publish(5)
    # ...while Home Assistant may. Replies come in order, so if "evil" had got through,
    # its answer would have arrived before this one.
    ha.publish("camnode/porch/request/state/get", json.dumps({"id": "ha"}),
               qos=1).wait_for_publish(5)
    wait_for(lambda: any(m.topic == "camnode/porch/response/state/get" and
                         json.loads(m.payload)["id"] == "ha" for m in seen),
             what="Home Assistant's command answered")
    assert not any(m.topic.startswith("camnode/porch/response/pipeline") for m in seen)
    assert not any(m.payload == b"spoofed" for m in seen)
    assert node.state()["pipeline"] == "running"
    for c in (ha, other):
        c.loop_stop()
        c.disconnect()


def test_node_without_password_is_refused(secure_broker, camnode, write_config):
    cfg = write_config({"node_id": "porch", "mqtt": {"enabled": True, "host": "127.0.0.1",
                                                      "port": secure_broker.port,
                                                      "username": "porch"}})
    node = camnode("run", "--config", str(cfg)).wait_ready()
    state = wait_for(lambda: (s := node.state())["mqtt"]["last_error"] and s, timeout=15,
                     what="refusal")
    assert "refused" in state["mqtt"]["last_error"] and not state["mqtt"]["connected"]
