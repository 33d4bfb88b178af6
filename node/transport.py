"""The one small interface every transport implements (MQTT, the ZeroMQ state/event
publisher, the ZeroMQ command server), after Frigate's Communicator.

The core (node/core.py, node/dispatcher.py) publishes on the core topics below and never
names a transport; each transport maps a core topic onto its own wire (MQTT topics,
ZeroMQ messages) and ignores the ones it has no use for. Commands come back through the
one callable a transport is subscribed with, `handler(command, payload, allow_internal)`
(node/dispatcher.py's `Dispatcher.handle`), which always returns one answer envelope.
A transport knows nothing else of the core: what it needs to publish comes in the core
topics' payloads, and after a reconnect it asks for them again with the internal
command `transport/refresh`.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

# Core topics (what the core says, not where it goes).
STATE = "state"        # payload: the state dict (owner thread, on change and every second)
STATS = "stats"        # payload: the stats dict (owner thread, every stats interval)
ROIS = "rois"          # payload: {"version", "rois", "removed": {roi: [labels]}} after an edit
REFRESH = "refresh"    # payload: {"state", "rois", "info", "outputs"}: send everything
                       # retained again (`state/get`, `transport/refresh`)
SNAPSHOT = "snapshot"  # payload: (jpeg bytes, capture time) of a `snapshot` command


# handler(command, payload, allow_internal) -> answer envelope; never raises. `payload`
# is the parsed JSON, or bytes/str still to parse with the strict reader (node/strictjson.py).
# `allow_internal=False` for what users send (MQTT, REST): internal commands are refused.
CommandHandler = Callable[[str, Any, bool], dict]


class Transport(Protocol):
    def publish(self, topic: str, payload: Any, retain: bool = False) -> None:
        """A core topic's news (any thread; never blocks, never raises)."""

    def subscribe(self, handler: CommandHandler) -> None:
        """Commands arriving on this transport go to `handler` (before `start`)."""

    def stop(self) -> None:
        """Stop for good; safe to call twice."""
