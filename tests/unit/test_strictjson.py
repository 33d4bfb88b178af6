"""The strict, bounded JSON reader (node.strictjson) and what uses it: limits checked
before parsing, NaN/Infinity refused with their paths, validation messages that never
repr a huge or deep document, config written strictly, stale temp files removed."""

from __future__ import annotations

import json
import math
import time

import pytest

from camnode.node import strictjson
from camnode.node.config import ConfigError, ConfigStore, atomic_write_json, load_config, parse_config
from camnode.node.schemas import validate
from camnode.node.strictjson import JsonRefused

from tests.unit.test_config import shipped_doc


@pytest.fixture
def minimal() -> dict:
    return shipped_doc()


def refused(data, **kw) -> JsonRefused:
    with pytest.raises(JsonRefused) as exc:
        strictjson.loads(data, **kw)
    return exc.value


def test_deep_nesting_is_refused_before_parsing_without_recursion():
    err = refused(b"[" * 1000 + b"]" * 1000)
    assert err.code == "too_large" and "nested deeper than 32" in err.message
    err = refused("[" * 100_000)  # larger than the stack could ever take
    assert err.code == "too_large"


def test_nesting_limit_is_exact_and_ignores_brackets_inside_strings():
    assert strictjson.loads("[" * 32 + "]" * 32)
    assert refused("[" * 33 + "]" * 33).code == "too_large"
    assert strictjson.loads('{"a": "' + "[{" * 5000 + '"}') == {"a": "[{" * 5000}


def test_huge_integer_is_refused_not_a_value_error():
    err = refused(b'{"id": ' + b"1" * 4301 + b"}")
    assert err.code == "too_large" and "number longer than" in err.message
    assert refused('{"x": -' + "9" * 41 + "}").code == "too_large"
    assert strictjson.loads('{"x": ' + "9" * 40 + "}")["x"] == int("9" * 40)
    assert strictjson.loads('{"x": "' + "9" * 5000 + '"}')["x"] == "9" * 5000  # a string


@pytest.mark.parametrize("text, paths", [
    ('{"left": NaN, "top": 1}', ["$.left"]),
    ('{"a": [1, Infinity, {"b": -Infinity}]}', ["$.a[1]", "$.a[2].b"]),
    ('{"x": 1e999}', ["$.x"]),  # overflows to infinity in float()
    ("NaN", ["$"]),
])
def test_non_finite_numbers_are_refused_with_their_paths(text, paths):
    err = refused(text)
    assert err.code == "invalid_json"
    assert sorted(i.path for i in err.issues) == paths
    assert all("non-finite" in i.reason for i in err.issues)


def test_size_utf8_and_lone_surrogates():
    assert refused(b" " * (64 * 1024 + 1)).code == "too_large"
    assert refused(b'"\xff"').code == "invalid_json"
    assert "surrogate" in refused('{"n": "\\ud800"}').message
    assert strictjson.loads('{"n": "\\ud83d\\ude00"}') == {"n": "\U0001F600"}
    assert refused("{").code == "invalid_json"


def test_scans_are_linear_on_adversarial_text():
    for text in ['"' + '\\"' * 30_000, '"\\' + '"' * 60_000, "[" + "1," * 30_000 + "1]",
                 '"' + "a" * 65_000 + '"']:
        start = time.perf_counter()
        try:
            strictjson.loads(text)
        except JsonRefused:
            pass
        assert time.perf_counter() - start < 0.5, text[:20]


def test_writer_never_emits_nan():
    text = strictjson.dumps({"fps": math.nan, "x": [math.inf, 1.5]})
    assert json.loads(text) == {"fps": None, "x": [None, 1.5]}


def test_validation_messages_never_carry_the_whole_instance():
    issues = validate("commands/roi.add", {"name": "x" * 60_000, "left": {"k" * 9000: 1},
                                           "top": [[1] * 50_000], "right": 5, "bottom": 6})
    assert issues and all(len(i.reason) < 300 and len(i.path) < 300 for i in issues)
    deep: list = []
    node = deep
    for _ in range(5000):  # built in Python, never through the reader: still answered
        node.append([])
        node = node[0]
    assert [i.path for i in validate("commands/roi.get", {"id": deep})] == ["$"]


def test_non_finite_numbers_fail_validation_whatever_the_schema():
    issues = validate("commands/roi.add", {"name": "n", "left": math.nan, "top": 10,
                                           "right": 20, "bottom": 30})
    assert [(i.path, "non-finite" in i.reason) for i in issues] == [("$.left", True)]


def test_config_file_with_nan_is_refused_listing_each(tmp_path, minimal):
    minimal["rois"] = {"d": {"left": "@L", "top": 1, "right": "@R", "bottom": 9}}
    text = json.dumps(minimal).replace('"@L"', "NaN").replace('"@R"', "Infinity")
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert [i.path for i in exc.value.issues] == ["$.rois.d.left", "$.rois.d.right"]
    assert "$.rois.d.left" in str(exc.value)


def test_config_never_keeps_nan(tmp_path, minimal):
    path = tmp_path / "config.json"
    atomic_write_json(path, minimal)
    store = ConfigStore(load_config(path), path)
    before = path.read_bytes()
    with pytest.raises(ConfigError):
        store.update(lambda d: d["pipeline"].update(module_params={"sensitivity": math.nan}))
    with pytest.raises(ConfigError):
        parse_config({**minimal, "camera": {**minimal["camera"], "fps": math.inf}})
    with pytest.raises(ValueError):
        atomic_write_json(path, {"x": math.nan})
    assert path.read_bytes() == before


def test_stale_temp_files_are_removed_at_start(tmp_path, minimal):
    path = tmp_path / "config.json"
    atomic_write_json(path, minimal)
    stale = [tmp_path / ".config.json.abc123.tmp", tmp_path / ".config.json.bak.tmp"]
    for p in stale:
        p.write_text("half a write")
    other = tmp_path / ".other.json.x.tmp"
    other.write_text("not ours")
    store = ConfigStore(load_config(path), path)
    assert store.remove_stale_temp_files() == 2
    assert not any(p.exists() for p in stale) and other.exists() and path.exists()
