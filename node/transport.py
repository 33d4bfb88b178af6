"""The one small interface every transport implements (MQTT, the ZeroMQ state/event
publisher, the ZeroMQ command server), after Frigate's Communicator.

The core (node/core.py, node/dispatcher.py) publishes on the core topics below and never
names a transport; each transport maps a core topic onto its own wire (MQTT topics,
ZeroMQ messages) and ignores the ones it has no use for. Commands come back through the
handler a transport is subscribed with: the dispatcher (`handle(command, payload)`, and
`handle_raw(command, body)` for bodies still to parse with the strict JSON reader).
"""

from __future__ import annotations

from typing import Any, Protocol

# Core topics (what the core says, not where it goes).
STATE = "state"        # payload: the state dict (owner thread, on change and every second)
STATS = "stats"        # payload: the stats dict (owner thread, every stats interval)
ROIS = "rois"          # payload: {"version", "rois", "removed": {roi: [labels]}} after an edit
REFRESH = "refresh"    # payload: None; send everything retained again (`state/get`)
SNAPSHOT = "snapshot"  # payload: (jpeg bytes, capture time) of a `snapshot` command


class CommandHandler(Protocol):
    """What a transport hands commands to (node/dispatcher.py's Dispatcher)."""

    def handle(self, command: str, payload: Any, allow_internal: bool = True) -> dict: ...

    def handle_raw(self, command: str, raw: bytes | str, allow_internal: bool = True) -> dict: ...


class Transport(Protocol):
    def publish(self, topic: str, payload: Any, retain: bool = False) -> None:
        """A core topic's news (any thread; never blocks, never raises)."""

    def subscribe(self, handler: CommandHandler) -> None:
        """Commands arriving on this transport go to `handler` (before `start`)."""

    def stop(self) -> None:
        """Stop for good; safe to call twice."""
