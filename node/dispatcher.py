"""The one command dispatcher: every transport (ZeroMQ from the web, MQTT, REST) calls it.

`handle(command, payload)` validates the payload against
`schemas/commands/<command with / as .>.schema.json`, runs the handler from a dict,
and always returns one envelope: `{"id", "command", "status": "ok", "data"}` or
`{"id", "command", "status": "error", "error": {"code", "message", "details"}}`.
A rejected command changes nothing. Commands are serialised by a lock, so transports
may call from their own threads.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

from node.config import ConfigError
from node.loader import InvalidParams, ModuleLoadError, UnknownModule
from node.schemas import ValidationIssue, has_schema, validate

if TYPE_CHECKING:
    from node.app import Node

log = logging.getLogger(__name__)

MAX_PAYLOAD = 64 * 1024
# Sent by web workers every second over ZeroMQ only: not logged, not counted.
INTERNAL = frozenset({"viewers/report"})


class CommandError(Exception):
    """A refusal with an error code from schemas/envelope.schema.json."""

    def __init__(self, code: str, message: str, details: list[ValidationIssue] | None = None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or []


def ok(request_id: Any, command: str, data: Any = None) -> dict:
    return {"id": request_id, "command": command, "status": "ok", "data": data}


def error(request_id: Any, command: str, code: str, message: str,
          details: list[ValidationIssue] | None = None) -> dict:
    return {"id": request_id, "command": command, "status": "error",
            "error": {"code": code, "message": message,
                      "details": [d.as_dict() for d in (details or [])]}}


class Dispatcher:
    """Routes commands to handlers of the node. Called from transport threads."""

    def __init__(self, node: "Node"):
        self.node = node
        self._lock = threading.Lock()
        self._handlers: dict[str, Callable[[dict], Any]] = {
            "pipeline/start": self._pipeline_start,
            "pipeline/stop": self._pipeline_stop,
            "pipeline/restart": self._pipeline_restart,
            "module/set": self._module_set,
            "state/get": self._state_get,
            "viewers/report": self._viewers_report,
        }
        self.counts: dict[str, int] = {"ok": 0, "error": 0}

    @property
    def commands(self) -> list[str]:
        return sorted(c for c in self._handlers if c not in INTERNAL)

    def handle_raw(self, command: str, raw: bytes | str) -> dict:
        """Parse a JSON request body, then `handle` it (empty body = `{}`)."""
        size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
        if size > MAX_PAYLOAD:
            return self._count(error(None, command, "validation_failed",
                                     f"payload larger than {MAX_PAYLOAD} bytes",
                                     [ValidationIssue("$", "payload too large")]))
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                return self._count(error(None, command, "invalid_json", "payload is not UTF-8"))
        if not raw.strip():
            payload: Any = {}
        else:
            try:
                payload = json.loads(raw)
            except json.JSONDecodeError as exc:
                return self._count(error(None, command, "invalid_json",
                                         f"invalid JSON: {exc.msg} at line {exc.lineno} "
                                         f"column {exc.colno}"))
        return self.handle(command, payload)

    def handle(self, command: str, payload: Any) -> dict:
        """Validate and run one command; never raises."""
        request_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(request_id, (str, int, type(None))) or isinstance(request_id, bool):
            request_id = None
        handler = self._handlers.get(command)
        if handler is None:
            return self._count(error(request_id, command, "unknown_command",
                                     f"unknown command {command!r}",
                                     [ValidationIssue("$", f"known: {', '.join(self.commands)}")]))
        schema = "commands/" + command.replace("/", ".")
        issues = validate(schema, payload) if has_schema(schema) else []
        if issues:
            return self._count(error(request_id, command, "validation_failed",
                                     f"{command}: {len(issues)} invalid field(s)", issues))
        try:
            with self._lock:
                data = handler(payload)
        except CommandError as exc:
            return self._count(error(request_id, command, exc.code, exc.message, exc.details))
        except Exception:
            log.exception("command %s failed", command)
            return self._count(error(request_id, command, "internal_error",
                                     "internal error, see the node's log"))
        if command in INTERNAL:
            return ok(request_id, command, data)
        log.info("command %s done", command)
        return self._count(ok(request_id, command, data))

    def _count(self, envelope: dict) -> dict:
        self.counts[envelope["status"]] += 1
        if envelope["status"] == "error":
            log.info("command %s refused: %s", envelope["command"], envelope["error"]["message"])
        return envelope

    # -- handlers (run under the lock) --------------------------------------------------
    def _pipeline_start(self, payload: dict) -> dict:
        self.node.pipeline.start()
        return self.node.state()

    def _pipeline_stop(self, payload: dict) -> dict:
        self.node.pipeline.stop()
        return self.node.state()

    def _pipeline_restart(self, payload: dict) -> dict:
        self.node.pipeline.stop()
        self.node.pipeline.start()
        return self.node.state()

    def _state_get(self, payload: dict) -> dict:
        self.node.publish_state()
        return self.node.state()

    def _viewers_report(self, payload: dict) -> None:
        self.node.viewers_report(payload["worker"], payload["viewers"],
                                 payload.get("fps_min"), payload.get("fps_median"))

    def _module_set(self, payload: dict) -> dict:
        name, params = payload["name"], payload.get("params", {})
        try:
            processor = self.node.registry.load(name, params)
        except UnknownModule:
            raise CommandError("unknown_module", f"no module named {name!r}",
                               [ValidationIssue("$.name", "available: " +
                                                ", ".join(self.node.registry.available()))])
        except InvalidParams as exc:
            raise CommandError("validation_failed", f"parameters refused by module {name}",
                               [ValidationIssue("$.params" + i.path[1:], i.reason)
                                for i in exc.issues])
        except ModuleLoadError as exc:
            raise CommandError("module_error", str(exc))

        def change(doc: dict) -> None:
            pipe = doc.setdefault("pipeline", {})
            pipe["module"], pipe["module_params"] = name, params

        try:
            self.node.store.update(change)
        except (ConfigError, OSError) as exc:
            processor.close()
            raise CommandError("internal_error", f"cannot save configuration: {exc}")
        self.node.pipeline.set_processor(processor)
        return self.node.state()
