"""The composition root: builds the node's core and hands it its transports.

Called by camnode/cli.py in the main thread (and by tests). The core (node/core.py,
node/dispatcher.py) never names a transport; this is the one place that decides which
transports a node has and what each is given: the ZeroMQ publisher (frames, state and
events for web workers), the ZeroMQ command server (commands from web workers and
relays) and, when a broker was found, the MQTT bridge. A new transport implements
node/transport.py's interface and is added here, touching no core file.
"""

from __future__ import annotations

from dataclasses import dataclass

from camnode.node.broker import PrivateBroker
from camnode.node.command_server import CommandServer
from camnode.node.config import ConfigStore
from camnode.node.core import Node
from camnode.node.curve import ServerKeys
from camnode.node.mqtt_bridge import MqttBridge
from camnode.node.publisher import Publisher


@dataclass
class Assembly:
    """What `build_node` put together; start() and stop() bring all of it up and down
    (the private Mosquitto, when there is one, last)."""
    node: Node
    publisher: Publisher
    commands: CommandServer
    mqtt: MqttBridge | None = None
    private_broker: PrivateBroker | None = None

    def start(self) -> None:
        try:
            self.node.start()
        except Exception:
            self._stop_broker()
            raise

    def stop(self) -> None:
        try:
            self.node.stop()
        finally:
            self._stop_broker()

    def _stop_broker(self) -> None:
        if self.private_broker is not None:
            self.private_broker.stop()


def build_node(store: ConfigStore, mqtt_broker: tuple[str, int] | None = None,
               private_broker: PrivateBroker | None = None, web_url: str | None = None,
               mqtt_note: str | None = None, command_keys: ServerKeys | None = None
               ) -> Assembly:
    """The node with its ZeroMQ publisher and command server (a CURVE server when
    `command_keys` are given, node/curve.py), plus the MQTT bridge when a broker was
    found (`mqtt_broker` = (host, port)). No I/O: `start()` binds and connects."""
    cfg = store.config
    publisher = Publisher(cfg.zmq.publish)
    node = Node(store, publisher, web_url, mqtt_note)
    commands = CommandServer(cfg.zmq.command, supervisor=node.supervisor, keys=command_keys)
    node.add_transport(commands)
    bridge = None
    if mqtt_broker is not None:
        bridge = MqttBridge(cfg.mqtt, mqtt_broker[0], mqtt_broker[1], cfg.node_id,
                            web_url=web_url, supervisor=node.supervisor,
                            on_change=node.notify)
        node.add_transport(bridge, event_sink=True, broker_link=True)
    return Assembly(node, publisher, commands, bridge, private_broker)
