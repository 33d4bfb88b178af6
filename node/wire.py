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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import zmq
import zmq.auth

TOPIC_FRAME = b"frame"
TOPIC_VARIANT = b"vframe"
TOPIC_STATE = b"state"
TOPIC_EVENT = b"event"

# `kind` of an `event` message's header (built in node/core.py, read by web workers).
EVENT_DETECTION = "event"
EVENT_OCCUPANCY = "occupancy"
EVENT_MOTION = "motion"
EVENT_SNAPSHOT = "snapshot"
EVENT_ROIS = "rois"

KIND_LIVE = "live"
KIND_NOSIGNAL = "nosignal"
KIND_STOPPED = "stopped"


# A command's payload, as JSON text, at most this long (REST body, MQTT payload, ZeroMQ).
MAX_PAYLOAD = 64 * 1024


@dataclass(frozen=True)
class Command:
    """One entry of the command table. `public`: reachable over REST and MQTT; internal
    commands (web workers' reports, a transport's refresh) are never taken from what users
    send over REST or MQTT."""
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
    Command("transport/refresh", public=False),  # a transport reconnected: resend retained
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


def request_id_of(payload: Any) -> Any:
    """The sender's `id` to echo, when the payload (a dict, or a REST body still as text)
    has a usable one: a string of at most 128 characters or an integer of at most 40
    digits. Never raises, whatever the text (web workers answer for the node with it when
    the node does not answer)."""
    if isinstance(payload, (str, bytes)):
        if len(payload) > MAX_PAYLOAD:
            return None
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError, TypeError):
            return None
    rid = payload.get("id") if isinstance(payload, dict) else None
    if isinstance(rid, bool) or not isinstance(rid, (str, int, type(None))):
        return None
    if isinstance(rid, int) and len(str(abs(rid))) > 40:
        return None
    return rid if not isinstance(rid, str) or len(rid) <= 128 else None


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


# -- stream variants: how a web worker names what its viewers asked for (node/variants.py
# encodes them). Pure functions, so both sides agree on the key of `?width=&fps=`.
MIN_WIDTH, MAX_WIDTH = 16, 7680
MIN_FPS, MAX_FPS = 0.1, 120.0


class VariantError(ValueError):
    """A width or fps a variant cannot have; the message says which and why."""


def variant_key(width: int | None = None, fps: float | None = None) -> str:
    """The canonical name of a variant, "" for the plain stream (no width, no fps)."""
    if not width and not fps:
        return ""
    key = f"w{int(width)}" if width else "full"
    if fps:
        key += f"-f{fps:g}"
    return key


def parse_request(width: str | None, fps: str | None) -> str:
    """The key for the `width` and `fps` query arguments (strings, or None when absent);
    raises VariantError for values out of range or not numbers."""
    w = f = None
    if width not in (None, ""):
        try:
            w = int(width)
        except ValueError:
            raise VariantError(f"width must be a whole number of pixels, not {width!r}") from None
        if not MIN_WIDTH <= w <= MAX_WIDTH:
            raise VariantError(f"width must be {MIN_WIDTH}..{MAX_WIDTH} pixels")
    if fps not in (None, ""):
        try:
            f = float(fps)
        except ValueError:
            raise VariantError(f"fps must be a number, not {fps!r}") from None
        if not math.isfinite(f) or not MIN_FPS <= f <= MAX_FPS:
            raise VariantError(f"fps must be {MIN_FPS:g}..{MAX_FPS:g}")
        f = round(f, 1)
    return variant_key(w, f)


def parse_key(key: str) -> tuple[int | None, float | None]:
    """(width, fps) of a key made by `variant_key`; raises VariantError otherwise."""
    width = fps = None
    head, _, tail = key.partition("-")
    try:
        if head != "full":
            if not head.startswith("w"):
                raise ValueError(key)
            width = int(head[1:])
        if tail:
            if not tail.startswith("f"):
                raise ValueError(key)
            fps = float(tail[1:])
    except ValueError:
        raise VariantError(f"not a variant: {key!r}") from None
    if variant_key(width, fps) != key:
        raise VariantError(f"not a canonical variant: {key!r}")
    return width, fps


# -- the command socket's CURVE client keys (node/curve.py holds the server side) --------
ENV_SERVER = "CAMNODE_CURVE_SERVER_KEY"
ENV_CLIENT_PUBLIC = "CAMNODE_CURVE_CLIENT_KEY"
ENV_CLIENT_SECRET = "CAMNODE_CURVE_CLIENT_SECRET"


@dataclass(frozen=True)
class ClientKeys:
    """What a command client (web worker, relay) needs: the server's public key and its
    own key pair, all Z85 text as bytes."""

    server_public: bytes
    public: bytes
    secret: bytes

    def apply(self, sock: zmq.Socket) -> None:
        """Make `sock` a CURVE client of the node (before it connects)."""
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret

    def to_env(self) -> dict[str, str]:
        return {ENV_SERVER: self.server_public.decode(), ENV_CLIENT_PUBLIC: self.public.decode(),
                ENV_CLIENT_SECRET: self.secret.decode()}

    @classmethod
    def from_env(cls, env: dict | None = None) -> "ClientKeys | None":
        env = os.environ if env is None else env
        values = [env.get(k) for k in (ENV_SERVER, ENV_CLIENT_PUBLIC, ENV_CLIENT_SECRET)]
        if not all(values):
            return None
        return cls(*(v.encode() for v in values))

    @classmethod
    def from_dir(cls, path: Path) -> "ClientKeys":
        """Read `server.key` and `client.key_secret` from a key directory (a relay's copy,
        or the node's own); raises OSError/ValueError when they are missing or bad."""
        path = Path(path)
        server_public, _ = zmq.auth.load_certificate(path / "server.key")
        public, secret = zmq.auth.load_certificate(path / "client.key_secret")
        if not secret:
            raise ValueError(f"{path / 'client.key_secret'} holds no secret key")
        return cls(server_public, public, secret)
