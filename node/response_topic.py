"""Which MQTT 5 response topics the node answers on (issue 9 C.17).

A request may name a response topic; answering there blindly lets any client make the
node publish into other nodes' command topics, Home Assistant's discovery and status
topics or a light's `.../set`. A response topic is refused when it:

- is empty, too long, holds a wildcard (`+`, `#`) or NUL, or starts with `$`;
- lies in the discovery tree (`homeassistant/#`, or the configured prefix);
- lies in any camnode tree (`camnode/#` and the configured base topic), except this
  node's own `<base>/response/...`;
- has a level that names a command: `request`, `set`, `cmnd`, `command` (camnode,
  Home Assistant MQTT entities, zigbee2mqtt, Tasmota and Shelly use these).

Pure functions; the MQTT command thread calls `problem`.
"""

from __future__ import annotations

from camnode.node.topics import Topics

MAX_TOPIC_BYTES = 65535
COMMAND_LEVELS = frozenset({"request", "set", "cmnd", "command"})


def _in_tree(topic: str, root: str) -> bool:
    root = root.rstrip("/")
    return bool(root) and (topic == root or topic.startswith(root + "/"))


def problem(topic: str, topics: Topics) -> str | None:
    """Why the node must not publish an answer on `topic`, or None when it may."""
    if not isinstance(topic, str) or not topic:
        return "response topic is empty"
    if len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        return "response topic is too long"
    if any(c in topic for c in "+#\0"):
        return "response topic must not hold wildcards (+, #) or NUL"
    if topic.startswith("$"):
        return "response topic must not start with $ (broker topics)"
    for root in {topics.discovery_prefix, "homeassistant"}:
        if _in_tree(topic, root):
            return f"response topic lies in the discovery tree {root}/#"
    own = topics.base + "/response/"
    if topic.startswith(own) and len(topic) > len(own):
        return None
    base_topic = topics.base.rsplit("/", 1)[0] if "/" in topics.base else topics.base
    for root in {base_topic, "camnode"}:
        if _in_tree(topic, root):
            return f"response topic lies in the camnode tree {root}/#"
    named = COMMAND_LEVELS.intersection(topic.lower().split("/"))
    if named:
        return f"response topic names a command level ({sorted(named)[0]})"
    return None
