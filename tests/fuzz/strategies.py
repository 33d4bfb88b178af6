"""Hypothesis strategies for fuzzing camnode's commands.

`request()` draws (command, raw payload bytes) from every command schema in
`schemas/commands/`: mostly instances built from the schema (so handlers are reached,
not only the validator), each possibly mutated (wrong types, extra or missing keys,
NaN/Infinity, 4,301-digit numbers, deep nesting, long or odd strings), plus raw bytes
that are not JSON at all. Module parameters come from the modules' PARAMS_SCHEMA.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import strategies as st

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
# Modules the fuzz may select: detectors that take a core each (faces, people, objects)
# are left out so the machine stays responsive; their parameters are still checked.
LIGHT_MODULES = ["passthrough", "service", "motion", "example_params", "roi_occupancy",
                 "example_minimal"]
PARAMS = {
    "motion": {"type": "object", "additionalProperties": False, "properties": {
        "sensitivity": {"type": "number", "minimum": 1, "maximum": 100},
        "min_area": {"type": "number", "minimum": 0, "maximum": 50}}},
    "example_params": {"type": "object", "additionalProperties": False, "properties": {
        "level": {"type": "number", "minimum": 0, "maximum": 1},
        "grey": {"type": "boolean"}}},
}


def command_schemas() -> dict[str, dict]:
    """{"roi/add": schema, ...} for every file in schemas/commands/."""
    out = {}
    for path in sorted((SCHEMAS / "commands").glob("*.schema.json")):
        out[path.name[:-len(".schema.json")].replace(".", "/")] = json.loads(path.read_text())
    return out


def _resolve(schema: dict, base: str) -> tuple[dict, str]:
    """Follow `$ref` (relative file + JSON pointer) from schema file `base`."""
    while "$ref" in schema:
        ref = schema["$ref"]
        file, _, pointer = ref.partition("#")
        base = str(Path(base).parent / file) if file else base
        doc = json.loads(Path(base).read_text(encoding="utf-8"))
        for part in filter(None, pointer.split("/")):
            doc = doc[part]
        schema = doc
    return schema, base


def _json_scalars() -> st.SearchStrategy:
    return st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30))


def wild_json(max_leaves: int = 20) -> st.SearchStrategy:
    """Any JSON-ish value, NaN and infinities included."""
    return st.recursive(_json_scalars(), lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
        max_leaves=max_leaves)


def from_schema(schema: dict, base: str) -> st.SearchStrategy:
    """Values that usually satisfy `schema` (the subset of JSON Schema our files use)."""
    schema, base = _resolve(schema, base)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, base) for k in kind])
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {k: from_schema(v, base) for k, v in props.items() if k in required}
        optional = {k: from_schema(v, base) for k, v in props.items() if k not in required}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            names = st.from_regex(r"\A[A-Za-z0-9_-]{1,12}\Z")
            return st.dictionaries(names, from_schema(extra, base), max_size=4)
        return st.fixed_dictionaries(fixed, optional=optional)
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"].replace("$", r"\Z"), fullmatch=False)
        return st.text(max_size=schema.get("maxLength", 40))
    if kind == "integer":
        return st.integers(schema.get("minimum", -1000), schema.get("maximum", 1000))
    if kind == "number":
        lo, hi = schema.get("minimum", -1e6), schema.get("maximum", 1e6)
        return st.one_of(st.integers(int(lo), int(hi)), st.floats(lo, hi))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), base), max_size=5)
    if kind == "null":
        return st.none()
    return wild_json(5)


NASTY_TEXT = [
    "[" * 1000 + "]" * 1000, '{"a":' * 500 + "1" + "}" * 500, "1" * 4301, "-" + "9" * 5000,
    "NaN", "Infinity", "-Infinity", "1e999", '"\\ud800"', "\x00", '"' + "x" * 70_000 + '"',
]


@st.composite
def mutate(draw, value):
    """Break a valid payload in one of several ways, or leave it alone."""
    how = draw(st.sampled_from(["keep", "keep", "keep", "field", "extra", "drop", "nasty",
                                "not-object"]))
    if how == "keep" or not isinstance(value, dict):
        return value
    value = dict(value)
    if how == "field" and value:
        key = draw(st.sampled_from(sorted(value)))
        value[key] = draw(wild_json(8))
    elif how == "extra":
        value[draw(st.text(max_size=12))] = draw(wild_json(4))
    elif how == "drop" and value:
        value.pop(draw(st.sampled_from(sorted(value))))
    elif how == "nasty":
        key = draw(st.sampled_from(sorted(value) or ["id"]))
        value[key] = _Raw(draw(st.sampled_from(NASTY_TEXT)))
    elif how == "not-object":
        return draw(wild_json(6))
    return value


class _Raw:
    """A JSON fragment written as is (to send what json.dumps cannot produce)."""

    def __init__(self, text: str):
        self.text = text


def encode(value) -> bytes:
    """JSON text of `value`, with _Raw fragments spliced in verbatim."""
    raws: list[str] = []

    def default(o):
        if isinstance(o, _Raw):
            raws.append(o.text)
            return f"\x00RAW{len(raws) - 1}\x00"
        raise TypeError(type(o).__name__)

    text = json.dumps(value, default=default)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00RAW{i}\x00"), raw)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def module_set(draw):
    name = draw(st.one_of(st.sampled_from(LIGHT_MODULES + list(PARAMS)),
                          st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,20}\Z")))
    payload = {"name": name}
    schema = PARAMS.get(name)
    if schema and draw(st.booleans()):
        payload["params"] = draw(from_schema(schema, str(SCHEMAS / "x")))
    elif draw(st.integers(0, 4)) == 0:
        payload["params"] = draw(st.dictionaries(st.text(max_size=8), wild_json(4), max_size=3))
    return payload


def request(commands: list[str] | None = None) -> st.SearchStrategy:
    """(command, payload bytes) over `commands` (default: every command schema)."""
    schemas = command_schemas()
    names = commands or sorted(schemas)

    @st.composite
    def one(draw):
        command = draw(st.sampled_from(names))
        kind = draw(st.integers(0, 19))
        if kind == 0:  # not JSON, or broken JSON
            return command, draw(st.one_of(st.binary(max_size=64),
                                           st.sampled_from([b"{", b"[1,", b"\xff\xfe", b""])))
        if command == "module/set":
            value = draw(module_set())
        else:
            path = str(SCHEMAS / "commands" / f"{command.replace('/', '.')}.schema.json")
            value = draw(from_schema(schemas[command], path))
        if isinstance(value, dict) and draw(st.booleans()):
            value["id"] = draw(st.one_of(st.integers(0, 10**9), st.text(max_size=20)))
        return command, encode(draw(mutate(value)))

    return one()


def plain() -> st.SearchStrategy:
    """("plain:pipeline/set" | "plain:module/set", payload) for the plain-text topics
    Home Assistant's switch and select use."""
    words = st.sampled_from([b"ON", b"OFF", b"on", b" off\n", b"MAYBE", b"", b"passthrough",
                             b"service", b"motion", b"nope", b"../etc/passwd", b"os",
                             b"x" * 70_000, b"\xff\xfe", b"\x00"])
    return st.tuples(st.sampled_from(["plain:pipeline/set", "plain:module/set"]),
                     st.one_of(words, st.binary(max_size=40),
                               st.text(max_size=40).map(lambda t: t.encode("utf-8", "replace"))))
