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


def issues_for(v: Draft202012Validator, doc: Any) -> list[ValidationIssue]:
    """Every error of `doc` against `v`, sorted by path so reports are stable."""
    out = []
    for err in v.iter_errors(doc):
        path = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = set(err.schema.get("properties", {}))
            extras = sorted(k for k in err.instance if k not in allowed)
            for extra in extras:
                out.append(ValidationIssue(json_path(path + [extra]), "unknown field"))
            if extras:
                continue
        out.append(ValidationIssue(json_path(path), err.message))
    return sorted(out, key=lambda i: (i.path, i.reason))


def validate(name: str, doc: Any) -> list[ValidationIssue]:
    """Validate `doc` against the named schema; an empty list means valid."""
    return issues_for(validator(name), doc)


@functools.lru_cache(maxsize=None)
def roi_name_pattern() -> str:
    """The ROI-name rule, defined once in config.schema.json; the page gets it from roi/get."""
    schema = json.loads((SCHEMA_DIR / "config.schema.json").read_text(encoding="utf-8"))
    return schema["$defs"]["roi_name"]["pattern"]
