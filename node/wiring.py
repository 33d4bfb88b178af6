"""The composition root: builds the node's core and hands it its transports.

Called by camnode/cli.py in the main thread. The core (node/core.py, node/dispatcher.py) never
names MQTT; this is the one place that decides which transports a node has. A new
transport implements node/transport.py's interface and is added here, touching no core file.
"""

from __future__ import annotations

from camnode.node.core import Node
from camnode.node.broker import PrivateBroker
from camnode.node.config import ConfigStore
from camnode.node.mqtt_bridge import MqttBridge


def build_node(store: ConfigStore, mqtt_broker: tuple[str, int] | None = None,
               private_broker: PrivateBroker | None = None, web_url: str | None = None,
               mqtt_note: str | None = None) -> Node:
    """The node with its ZeroMQ publisher and command server, plus the MQTT bridge when a
    broker was found (`mqtt_broker` = (host, port)). No I/O: `node.start()` connects."""
    node = Node(store, private_broker, web_url, mqtt_note)
    if mqtt_broker is not None:
        bridge = MqttBridge(store.config.mqtt, mqtt_broker[0], mqtt_broker[1], node,
                            node.dispatcher)
        node.add_transport(bridge, event_sink=True, broker_link=True)
    return node
