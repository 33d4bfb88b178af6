"""What crosses the ZeroMQ boundary between the node and web workers. One place only.

PUB socket (node -> web workers), multipart messages `[topic, header, body]`:

- `frame`: header is JSON `{"seq", "ts", "w", "h", "module", "kind"}` (ts = capture time
  in Unix seconds; kind "live", "nosignal" or "stopped"), body the JPEG bytes. Frames are
  JPEG-encoded once in the node; every viewer of every worker gets these same bytes.
- `vframe`: the same for a variant (node/variants.py): a scaled or slowed copy of the
  stream, encoded once for all its viewers; the header adds `"variant"` (its key).
  A separate topic, so a worker subscribes to variants apart from the stream.
- `state`: header is the state JSON, body empty. Published on change and every second,
  so a worker that joins late or lost a message catches up without polling.
- `event`: header is an event JSON whose `kind` is one of the EVENT_* constants below
  (detections, occupancy, motion, ROI edits); the body is empty except for
  `EVENT_SNAPSHOT`, whose body is the event thumbnail's JPEG.

Subscribers drain their socket and keep only the newest frame (ZeroMQ CONFLATE would
keep only the last *part* of a multipart message, so we do not use it).

Command socket (ROUTER in the node, DEALER in each web worker): request
`[b"", token, json {"command", "payload"}]`, reply `[b"", token, json envelope]`, the
envelope being the dispatcher's `{"id", "status", "data" | "error"}`; the token lets a
worker match replies to concurrent requests.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

TOPIC_FRAME = b"frame"
TOPIC_VARIANT = b"vframe"
TOPIC_STATE = b"state"
TOPIC_EVENT = b"event"

# `kind` of an `event` message's header (built in node/app.py, read by web workers).
EVENT_DETECTION = "event"
EVENT_OCCUPANCY = "occupancy"
EVENT_MOTION = "motion"
EVENT_SNAPSHOT = "snapshot"
EVENT_ROIS = "rois"

KIND_LIVE = "live"
KIND_NOSIGNAL = "nosignal"
KIND_STOPPED = "stopped"


@dataclass(frozen=True)
class Command:
    """One entry of the command table. `public`: reachable over REST and MQTT; internal
    commands (web workers' reports) are accepted over the ZeroMQ command socket only."""
    name: str
    public: bool = True

    @property
    def schema(self) -> str:
        """Its payload schema, `schemas/<this>.schema.json` (must exist: checked at start)."""
        return "commands/" + self.name.replace("/", ".")


# Every command the node answers, whatever the transport. The dispatcher checks at start
# that each has a handler and a schema; REST (web/handlers.py) and MQTT read it.
COMMANDS: tuple[Command, ...] = (
    Command("pipeline/start"),
    Command("pipeline/stop"),
    Command("pipeline/restart"),
    Command("module/set"),
    Command("module/list"),
    Command("state/get"),
    Command("roi/get"),
    Command("roi/add"),
    Command("roi/update"),
    Command("roi/delete"),
    Command("roi/replace"),
    Command("snapshot"),
    Command("viewers/report", public=False),  # every web worker, every second
    Command("picture/request", public=False),  # a web worker wants the next frame encoded
)
PUBLIC_COMMANDS = frozenset(c.name for c in COMMANDS if c.public)
INTERNAL_COMMANDS = frozenset(c.name for c in COMMANDS if not c.public)


@dataclass(frozen=True)
class FrameHeader:
    seq: int
    ts: float
    width: int
    height: int
    module: str
    kind: str = KIND_LIVE
    variant: str = ""  # "" for the stream itself, else the variant's key

    def encode(self) -> bytes:
        d = {"seq": self.seq, "ts": self.ts, "w": self.width, "h": self.height,
             "module": self.module, "kind": self.kind}
        if self.variant:
            d["variant"] = self.variant
        return json.dumps(d, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> "FrameHeader":
        d = json.loads(data)
        return cls(int(d["seq"]), float(d["ts"]), int(d["w"]), int(d["h"]),
                   str(d.get("module", "")), str(d.get("kind", KIND_LIVE)),
                   str(d.get("variant", "")))


def reply_ok(request_id: Any, command: str, data: Any = None) -> dict:
    """The answer envelope of a successful command (schemas/envelope.schema.json).
    Built here, import-light, so the node and web workers build it the same way."""
    return {"id": request_id, "command": command, "status": "ok", "data": data}


def reply_error(request_id: Any, command: str, code: str, message: str,
                details: Iterable = ()) -> dict:
    """The answer envelope of a refused command; `details` holds ValidationIssues
    (anything with `as_dict()`) or {"path", "reason"} dicts."""
    return {"id": request_id, "command": command, "status": "error",
            "error": {"code": code, "message": message,
                      "details": [d.as_dict() if hasattr(d, "as_dict") else dict(d)
                                  for d in details]}}


def dumps_finite(obj: Any, **kw: Any) -> str:
    """JSON text without NaN/Infinity (which no other JSON reader accepts): non-finite
    floats are written as null, as JavaScript's JSON.stringify does. Any thread."""
    try:
        return json.dumps(obj, allow_nan=False, **kw)
    except ValueError:
        return json.dumps(_finite(obj), allow_nan=False, **kw)


def _finite(value: Any, depth: int = 0) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if depth > 100:
        return value
    if isinstance(value, dict):
        return {k: _finite(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, depth + 1) for v in value]
    return value


def encode_json(obj) -> bytes:
    return dumps_finite(obj, separators=(",", ":")).encode()
