"""The one strict, bounded JSON reader and writer of the node.

Every way in reads JSON here: the ZeroMQ command socket, MQTT payloads, REST bodies
(through the dispatcher's `handle_raw`) and the config file. Limits are checked *before*
`json.loads` runs, by a linear scan of the text, so no input can make the parser or what
follows it (jsonschema, repr, int()) recurse deeply or work on huge numbers:

- size: at most `max_bytes` (too_large);
- nesting: at most `max_depth` levels of arrays/objects (too_large);
- numbers: at most `max_number` characters each (too_large), so `int()` never meets
  Python's 4,300-digit limit;
- non-finite numbers (`NaN`, `Infinity`, `-Infinity`, or `1e999` that overflows to
  infinity) are refused (invalid_json), each listed with its JSON path;
- strings must be valid Unicode (a lone `\\ud800` escape is refused).

Writing (`dumps`) never emits NaN or Infinity. Pure functions, any thread.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from camnode.node.schemas import ValidationIssue, json_path
from camnode.node.wire import dumps_finite as dumps  # noqa: F401  (the strict writer)

MAX_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_NUMBER = 40  # characters of one number literal: digits, sign, dot, exponent

TOO_LARGE = "too_large"
INVALID = "invalid_json"

# A string literal, or an unterminated one up to the end (so a scan never backtracks).
_STRING = re.compile(r'"(?:[^"\\]+|\\.)*(?:"|\\?\Z)', re.S)
_BRACKETS = str.maketrans({c: None for c in map(chr, range(128)) if c not in "[]{}"})


class JsonRefused(ValueError):
    """JSON refused before or while parsing: `code` is `invalid_json` or `too_large`."""

    def __init__(self, code: str, message: str, issues: list[ValidationIssue] | None = None):
        super().__init__(message)
        self.code, self.message = code, message
        self.issues = issues or [ValidationIssue("$", message)]


def _long_number(max_number: int) -> re.Pattern:
    return re.compile(r"[-0-9][-+0-9.eE]{%d,}" % max_number)


_NUMBER_RX = {MAX_NUMBER: _long_number(MAX_NUMBER)}


def check_limits(text: str, max_depth: int = MAX_DEPTH, max_number: int = MAX_NUMBER) -> None:
    """Raise JsonRefused when `text` nests deeper than `max_depth` or holds a number
    literal longer than `max_number` characters. Linear in len(text); no recursion."""
    bare = _STRING.sub('""', text)  # brackets and digits inside strings do not count
    brackets = bare.translate(_BRACKETS)
    if brackets:
        deepest = max(accumulate(1 if c in "[{" else -1 for c in brackets))
        if deepest > max_depth:
            raise JsonRefused(TOO_LARGE, f"JSON nested deeper than {max_depth} levels")
    rx = _NUMBER_RX.get(max_number) or _long_number(max_number)
    if rx.search(bare):
        raise JsonRefused(TOO_LARGE, f"JSON number longer than {max_number} characters")


class _Parse:
    """Hooks for json.loads that note non-finite numbers instead of keeping them quietly."""

    def __init__(self) -> None:
        self.non_finite = False

    def constant(self, name: str) -> float:
        self.non_finite = True
        return float(name.replace("Infinity", "inf"))

    def float_(self, text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            self.non_finite = True
        return value


def non_finite_paths(doc: Any, limit: int = 20) -> list[str]:
    """JSON paths of NaN/Infinity floats in `doc` (at most `limit`); iterative."""
    found: list[str] = []
    stack: list[tuple[Any, list]] = [(doc, [])]
    while stack and len(found) < limit:
        value, path = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            found.append(json_path(path))
        elif isinstance(value, dict):
            stack.extend((v, path + [k]) for k, v in reversed(value.items()))
        elif isinstance(value, (list, tuple)):
            stack.extend((v, path + [i]) for i, v in reversed(list(enumerate(value))))
    return found


def loads(data: bytes | str, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
          max_number: int = MAX_NUMBER) -> Any:
    """Parse one JSON document within the limits; raise JsonRefused otherwise."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise JsonRefused(TOO_LARGE, f"JSON larger than {max_bytes} bytes")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRefused(INVALID, f"not UTF-8 (byte {exc.start})") from None
    check_limits(data, max_depth, max_number)
    hooks = _Parse()
    try:
        doc = json.loads(data, parse_constant=hooks.constant, parse_float=hooks.float_)
    except json.JSONDecodeError as exc:
        raise JsonRefused(INVALID, f"invalid JSON at line {exc.lineno} column "
                                   f"{exc.colno}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # limits make these unreachable; be sure
        raise JsonRefused(INVALID, f"invalid JSON: {type(exc).__name__}") from None
    if hooks.non_finite:
        paths = non_finite_paths(doc)
        raise JsonRefused(INVALID, "NaN and Infinity are not allowed in JSON",
                          [ValidationIssue(p, "non-finite number (NaN or Infinity) not allowed")
                           for p in paths])
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise JsonRefused(INVALID, "invalid JSON: a string holds a lone surrogate "
                                   "(\\ud800-\\udfff escape)") from None
    return doc
