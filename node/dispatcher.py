"""The one command dispatcher: every transport (ZeroMQ from the web, MQTT, REST) calls it.

`handle(command, payload)` validates the payload against
`schemas/commands/<command with / as .>.schema.json`, runs the handler from a dict,
and always returns one envelope: `{"id", "command", "status": "ok", "data"}` or
`{"id", "command", "status": "error", "error": {"code", "message", "details"}}`.
A rejected command changes nothing. Transports call from their own threads; each
handler runs on the owner thread (node/owner.py), one at a time. The command table
(names, public/internal, schemas) is node/wire.py's COMMANDS, checked at construction.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

from camnode.node import strictjson
from camnode.node.config import ConfigError, roi_issues
from camnode.node.owner import Mailbox, OwnerBusy
from camnode.node.loader import InvalidParams, ModuleLoadError, UnknownModule
from camnode.node.schemas import ValidationIssue, has_schema, roi_name_pattern, validate, validator
from camnode.node.wire import (COMMANDS, INTERNAL_COMMANDS, MAX_PAYLOAD,  # noqa: F401
                               reply_error, reply_ok, request_id_of)

if TYPE_CHECKING:
    from camnode.node.core import Node

log = logging.getLogger(__name__)

# Internal commands (web workers' reports, a transport's refresh), never taken from what
# users send over REST or MQTT: not logged, not counted (node/wire.py's table).
INTERNAL = INTERNAL_COMMANDS


class CommandTableError(RuntimeError):
    """The command table (node/wire.py) and the handlers or schemas disagree: a bug in
    the installation or the code, refused at start-up rather than run unvalidated."""


class CommandError(Exception):
    """A refusal with an error code from schemas/envelope.schema.json."""

    def __init__(self, code: str, message: str, details: list[ValidationIssue] | None = None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or []


ok = reply_ok
error = reply_error


def check_table(handlers: dict[str, Callable]) -> dict[str, str]:
    """Every command of node/wire.py's table has a handler and a readable, valid schema,
    and every handler is in the table; returns each command's schema name. Raises
    CommandTableError naming what is missing (called once, when the node is built)."""
    problems = []
    names = {c.name for c in COMMANDS}
    for c in COMMANDS:
        if c.name not in handlers:
            problems.append(f"{c.name}: no handler")
        if not has_schema(c.schema):
            problems.append(f"{c.name}: no schema file schemas/{c.schema}.schema.json")
            continue
        try:
            validator(c.schema)
        except Exception as exc:  # unreadable JSON or an invalid schema
            problems.append(f"{c.name}: schema schemas/{c.schema}.schema.json unusable: {exc}")
    problems += [f"{name}: handler without an entry in node/wire.py's COMMANDS"
                 for name in sorted(set(handlers) - names)]
    if problems:
        raise CommandTableError("command table broken: " + "; ".join(problems))
    return {c.name: c.schema for c in COMMANDS}


class Dispatcher:
    """Routes commands to handlers of the node. Called from transport threads."""

    def __init__(self, node: "Node", mailbox: Mailbox | None = None):
        self.node = node
        # Handlers run on the owner thread (node/owner.py), one at a time, whichever
        # transport's thread called `handle`.
        self.mailbox = mailbox or Mailbox()
        self._handlers: dict[str, Callable[[dict], Any]] = {
            "pipeline/start": self._pipeline_start,
            "pipeline/stop": self._pipeline_stop,
            "pipeline/restart": self._pipeline_restart,
            "module/set": self._module_set,
            "module/list": self._module_list,
            "state/get": self._state_get,
            "viewers/report": self._viewers_report,
            "picture/request": self._picture_request,
            "transport/refresh": self._transport_refresh,
            "roi/get": self._roi_get,
            "roi/add": self._roi_add,
            "roi/update": self._roi_update,
            "roi/delete": self._roi_delete,
            "roi/replace": self._roi_replace,
            "snapshot": self._snapshot,
        }
        self._counts: dict[str, int] = {"ok": 0, "error": 0}
        self._counts_lock = threading.Lock()  # transports answer from their own threads
        self._schemas = check_table(self._handlers)

    @property
    def commands(self) -> list[str]:
        return sorted(c for c in self._handlers if c not in INTERNAL)

    def handle_raw(self, command: str, raw: bytes | str, allow_internal: bool = True) -> dict:
        """Parse a JSON request body with the strict reader, then `handle` it (empty
        body = `{}`). Bodies over the limits are answered `too_large`, bad JSON
        (NaN and Infinity included) `invalid_json`; never raises."""
        if not (raw.strip() if len(raw) <= MAX_PAYLOAD else raw):
            payload: Any = {}
        else:
            try:
                payload = strictjson.loads(raw, max_bytes=MAX_PAYLOAD)
            except strictjson.JsonRefused as exc:
                return self._count(error(None, command, exc.code, exc.message, exc.issues))
        return self._run(command, payload, allow_internal)

    def handle(self, command: str, payload: Any, allow_internal: bool = True) -> dict:
        """Validate and run one command; never raises. The one callable every transport
        is subscribed with (node/transport.py): `payload` as bytes or str is a body still
        to parse (`handle_raw`). MQTT and REST pass `allow_internal=False`: worker
        reports come over ZeroMQ only."""
        if isinstance(payload, (bytes, str)):
            return self.handle_raw(command, payload, allow_internal)
        return self._run(command, payload, allow_internal)

    def _run(self, command: str, payload: Any, allow_internal: bool) -> dict:
        """A parsed payload: check it against the table and its schema here, on the
        transport's thread, then run its handler on the owner thread."""
        request_id = request_id_of(payload)
        handler = self._handlers.get(command)
        if handler is None or (command in INTERNAL and not allow_internal):
            return self._count(error(request_id, command, "unknown_command",
                                     f"unknown command {command!r}",
                                     [ValidationIssue("$", f"known: {', '.join(self.commands)}")]))
        issues = validate(self._schemas[command], payload)
        if issues:
            return self._count(error(request_id, command, "validation_failed",
                                     f"{command}: {len(issues)} invalid field(s)", issues))
        try:
            data = self.mailbox.call(handler, payload)
        except OwnerBusy as exc:
            return self._count(error(request_id, command, "unavailable", str(exc)))
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

    @property
    def counts(self) -> dict[str, int]:
        """Answers given so far, ok and error (a copy; any thread)."""
        with self._counts_lock:
            return dict(self._counts)

    def _count(self, envelope: dict) -> dict:
        with self._counts_lock:
            self._counts[envelope["status"]] += 1
        if envelope["status"] == "error":
            log.info("command %s refused: %s", envelope["command"], envelope["error"]["message"])
        return envelope

    # -- handlers (run on the owner thread) --------------------------------------------------
    def _pipeline_start(self, payload: dict) -> dict:
        self.node.pipeline.start_camera()
        return self.node.state()

    def _pipeline_stop(self, payload: dict) -> dict:
        self.node.pipeline.stop_camera()
        return self.node.state()

    def _pipeline_restart(self, payload: dict) -> dict:
        self.node.pipeline.stop_camera()
        self.node.pipeline.start_camera()
        return self.node.state()

    def _state_get(self, payload: dict) -> dict:
        return self.node.refresh()["state"]  # every retained message again, everywhere

    def _transport_refresh(self, payload: dict) -> None:
        """A transport (re)connected (node/mqtt_bridge.py): everything retained again."""
        self.node.refresh()

    def _module_list(self, payload: dict) -> list[dict]:
        reg = self.node.registry
        return [{"name": n, "params_schema": reg.params_schema(n)} for n in reg.available()]

    def _viewers_report(self, payload: dict) -> None:
        self.node.viewers_report(payload["worker"], payload["viewers"],
                                 payload.get("fps", []), payload.get("bytes_sent", 0),
                                 payload.get("variants", {}))

    def _picture_request(self, payload: dict) -> None:
        """A web worker's snapshot: encode the next frame (node/encoder.py)."""
        self.node.pipeline.output.request(payload.get("width"))

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
            # The old module keeps running; say why the new one did not (last_error shows
            # in the state, on the page and as Home Assistant's "Last error" sensor).
            self.node.last_error = f"module {name!r} refused: {exc}"
            self.node.notify()
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

    # -- ROIs: every edit checks if_version, validates, persists atomically, then applies --
    def _roi_get(self, payload: dict) -> dict:
        cfg = self.node.store.config
        return {"version": cfg.rois_version, "rois": cfg.rois, "name_pattern": roi_name_pattern()}

    def _edit_rois(self, payload: dict, edit: Callable[[dict], None]) -> dict:
        cfg = self.node.store.config
        want = payload.get("if_version")
        if want is not None and want != cfg.rois_version:
            raise CommandError("version_conflict",
                               f"ROIs are at version {cfg.rois_version}, not {want}: "
                               "reload them and edit again",
                               [ValidationIssue("$.if_version",
                                                f"current version is {cfg.rois_version}")])
        rois = {k: dict(v) for k, v in cfg.rois.items()}
        edit(rois)
        colours = dict(cfg.colours)
        issues = [i for name, roi in rois.items()
                  for i in roi_issues(roi, colours, f"$.rois.{name}")]
        if issues:
            raise CommandError("validation_failed", "ROI refused", issues)

        def change(doc: dict) -> None:
            doc["rois"] = rois
            doc["rois_version"] = cfg.rois_version + 1

        try:
            self.node.store.update(change)
        except ConfigError as exc:
            raise CommandError("validation_failed", "ROI refused", exc.issues)
        self.node.apply_rois(previous=set(cfg.rois))
        return self._roi_get({})

    def _roi_add(self, payload: dict) -> dict:
        name = payload["name"]

        def edit(rois: dict) -> None:
            if name in rois:
                raise CommandError("exists", f"ROI {name!r} exists; use roi/update",
                                   [ValidationIssue("$.name", "already exists")])
            rois[name] = {k: payload[k] for k in ("left", "top", "right", "bottom")}
            rois[name]["colour"] = payload.get("colour", "green")

        return self._edit_rois(payload, edit)

    def _roi_update(self, payload: dict) -> dict:
        name = payload["name"]

        def edit(rois: dict) -> None:
            if name not in rois:
                raise CommandError("not_found", f"no ROI named {name!r}",
                                   [ValidationIssue("$.name", "not found")])
            roi = rois.pop(name)
            roi.update({k: payload[k] for k in ("left", "top", "right", "bottom", "colour")
                        if k in payload})
            new_name = payload.get("rename", name)
            if new_name != name and new_name in rois:
                rois[name] = roi
                raise CommandError("exists", f"ROI {new_name!r} exists",
                                   [ValidationIssue("$.rename", "already exists")])
            rois[new_name] = roi

        return self._edit_rois(payload, edit)

    def _roi_delete(self, payload: dict) -> dict:
        name = payload["name"]

        def edit(rois: dict) -> None:
            if rois.pop(name, None) is None:
                raise CommandError("not_found", f"no ROI named {name!r}",
                                   [ValidationIssue("$.name", "not found")])

        return self._edit_rois(payload, edit)

    def _roi_replace(self, payload: dict) -> dict:
        def edit(rois: dict) -> None:
            rois.clear()
            rois.update({k: dict(v) for k, v in payload["rois"].items()})

        return self._edit_rois(payload, edit)

    def _snapshot(self, payload: dict) -> dict:
        info = self.node.snapshot()
        if info is None:
            raise CommandError("not_found", "no frame yet")
        return info
