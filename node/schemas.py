"""JSON Schema files from `schemas/`, compiled once, and errors as (path, reason) pairs.

Called from any thread (validators are immutable once built). Schema names are file
stems: "config" is `schemas/config.schema.json`.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@dataclass(frozen=True)
class ValidationIssue:
    """One problem with a document: where (JSON path like `$.camera.fps`) and why."""

    path: str
    reason: str

    def as_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


def json_path(parts) -> str:
    """`["rois", "door", "left"]` -> `$.rois.door.left`; list indices as `[0]`."""
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _pattern(validator, pattern, instance, schema):
    """ECMA-262 `pattern`: `$` ends the string (Python's `$` also matches before a final
    newline, which would let "camnode\n" pass as a node id)."""
    if not isinstance(instance, str):
        return
    if not re.search(_ecma(pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.lru_cache(maxsize=256)
def _ecma(pattern: str) -> re.Pattern:
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))


StrictValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


@functools.lru_cache(maxsize=None)
def _registry() -> Registry:
    """Every schema file by its `$id`, so `$ref`s between files resolve offline."""
    resources = []
    for path in sorted(SCHEMA_DIR.rglob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema, DRAFT202012)))
    return Registry().with_resources(resources)


@functools.lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    """The compiled validator for `schemas/<name>.schema.json` ("commands/module.set")."""
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return StrictValidator(schema, registry=_registry())


def has_schema(name: str) -> bool:
    return (SCHEMA_DIR / f"{name}.schema.json").is_file()


MAX_DEPTH = 64  # deeper documents are refused before jsonschema sees them
MAX_ISSUES = 50
MAX_TEXT = 200  # characters of one issue's path or reason


class _Str(str):
    """A string whose repr is short: jsonschema puts `{instance!r}` in its messages."""

    def __repr__(self) -> str:
        return repr(self[:40] + ("..." if len(self) > 40 else ""))


class _Dict(dict):
    def __repr__(self) -> str:
        return "{}" if not self else f"{{...}} (an object of {len(self)} key(s))"


class _List(list):
    def __repr__(self) -> str:
        return "[]" if not self else f"[...] (an array of {len(self)} item(s))"


def _bounded(doc: Any, depth: int = 0) -> Any:
    """A copy of `doc` whose containers and strings repr in a few dozen characters, so
    building jsonschema's messages costs little whatever the instance. Raises
    RecursionError past MAX_DEPTH (callers refuse such a document)."""
    if depth > MAX_DEPTH:
        raise RecursionError("document nested too deep")
    if isinstance(doc, str):
        return _Str(doc)
    if isinstance(doc, dict):
        return _Dict((_Str(k) if isinstance(k, str) else k, _bounded(v, depth + 1))
                     for k, v in doc.items())
    if isinstance(doc, (list, tuple)):
        return _List(_bounded(v, depth + 1) for v in doc)
    return doc


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


def issues_for(v: Draft202012Validator, doc: Any) -> list[ValidationIssue]:
    """Every error of `doc` against `v` (at most MAX_ISSUES), sorted by path so reports
    are stable. Never reprs the document itself (see `_bounded`); NaN and Infinity are
    refused wherever they are, whatever the schema says (JSON has no such numbers)."""
    from camnode.node.strictjson import non_finite_paths

    try:
        instance = _bounded(doc)
    except RecursionError:
        return [ValidationIssue("$", f"document nested deeper than {MAX_DEPTH} levels")]
    out = [ValidationIssue(p, "non-finite number (NaN or Infinity) not allowed")
           for p in non_finite_paths(doc)]
    for err in v.iter_errors(instance):
        if len(out) >= MAX_ISSUES:
            break
        path = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = set(err.schema.get("properties", {}))
            extras = sorted(k for k in err.instance if k not in allowed)
            for extra in extras:
                out.append(ValidationIssue(_clip(json_path(path + [extra])), "unknown field"))
            if extras:
                continue
        out.append(ValidationIssue(_clip(json_path(path)), _clip(err.message)))
    return sorted(out, key=lambda i: (i.path, i.reason))


def validate(name: str, doc: Any) -> list[ValidationIssue]:
    """Validate `doc` against the named schema; an empty list means valid."""
    return issues_for(validator(name), doc)


@functools.lru_cache(maxsize=None)
def roi_name_pattern() -> str:
    """The ROI-name rule, defined once in config.schema.json; the page gets it from roi/get."""
    schema = json.loads((SCHEMA_DIR / "config.schema.json").read_text(encoding="utf-8"))
    return schema["$defs"]["roi_name"]["pattern"]
