"""Unit tests for node.dispatcher: envelopes, validation, module/set and pipeline commands.

A real node.core.Node is started on inproc ZeroMQ endpoints with a small synthetic camera
and autostart off; it is always stopped by the fixture finalizer.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from camnode.node.wiring import build_node
from camnode.node.config import ConfigStore, load_config
from camnode.node.dispatcher import MAX_PAYLOAD

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config_path(tmp_path) -> Path:
    doc = json.loads((REPO / "config.json").read_text(encoding="utf-8"))
    tag = uuid.uuid4().hex
    doc["camera"].update({"source": "synthetic", "width": 160, "height": 120, "fps": 15})
    doc["pipeline"].update({"autostart": False, "module": "service", "module_params": {}})
    doc["zmq"] = {"publish": f"inproc://test-pub-{tag}", "command": f"inproc://test-cmd-{tag}"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def node(config_path):
    parts = build_node(ConfigStore(load_config(config_path), config_path))
    parts.start()
    try:
        yield parts.node
    finally:
        parts.stop()


@pytest.fixture
def dispatcher(node):
    return node.dispatcher


def assert_error(reply: dict, code: str, command: str | None = None) -> dict:
    assert reply["status"] == "error", reply
    assert set(reply) == {"id", "command", "status", "error"}
    assert set(reply["error"]) == {"code", "message", "details"}
    assert reply["error"]["code"] == code, reply
    if command is not None:
        assert reply["command"] == command
    for d in reply["error"]["details"]:
        assert set(d) == {"path", "reason"}
    return reply["error"]


def detail_paths(reply: dict) -> set[str]:
    return {d["path"] for d in reply["error"]["details"]}


# -- envelopes and validation ----------------------------------------------------------------

def test_state_get_answers_ok_with_the_node_state(dispatcher):
    reply = dispatcher.handle("state/get", {})
    assert set(reply) == {"id", "command", "status", "data"}
    assert (reply["status"], reply["command"], reply["id"]) == ("ok", "state/get", None)
    data = reply["data"]
    assert data["pipeline"] == "stopped" and data["module"] == "service"
    assert data["node_id"] == "camnode" and (data["width"], data["height"]) == (160, 120)
    assert {"passthrough", "service"} <= set(data["modules"])


def test_unknown_command_is_refused_with_the_known_commands(dispatcher):
    err = assert_error(dispatcher.handle("pipeline/explode", {"id": 7}), "unknown_command",
                       "pipeline/explode")
    assert "pipeline/explode" in err["message"]
    assert "module/set" in err["details"][0]["reason"]
    assert "viewers/report" not in err["details"][0]["reason"]


def test_malformed_json_reports_line_and_column(dispatcher):
    reply = dispatcher.handle_raw("state/get", '{\n  "id": 1,\n  oops\n}')
    err = assert_error(reply, "invalid_json", "state/get")
    assert "line 3 column 3" in err["message"]
    assert reply["id"] is None


def test_non_utf8_body_is_invalid_json(dispatcher):
    assert_error(dispatcher.handle_raw("state/get", b"\xff\xfe{}"), "invalid_json")


def test_empty_body_means_empty_payload(dispatcher):
    assert dispatcher.handle_raw("state/get", b"  ")["status"] == "ok"


def test_unknown_field_is_validation_failed_at_its_path(dispatcher):
    reply = dispatcher.handle_raw("state/get", '{"bogus": 1}')
    assert_error(reply, "validation_failed")
    assert detail_paths(reply) == {"$.bogus"}


def test_wrong_type_is_validation_failed_at_its_path(dispatcher):
    reply = dispatcher.handle("module/set", {"name": 5})
    assert_error(reply, "validation_failed", "module/set")
    assert detail_paths(reply) == {"$.name"}


def test_payload_that_is_not_an_object_is_validation_failed(dispatcher):
    reply = dispatcher.handle_raw("pipeline/start", "[1, 2]")
    assert_error(reply, "validation_failed")
    assert detail_paths(reply) == {"$"}
    assert dispatcher.node.pipeline.running is False


def test_request_id_is_echoed_in_ok_and_error_replies(dispatcher):
    assert dispatcher.handle("state/get", {"id": "req-1"})["id"] == "req-1"
    assert dispatcher.handle_raw("state/get", '{"id": 42}')["id"] == 42
    refused = dispatcher.handle("module/set", {"id": "req-2", "name": "nosuchmodule"})
    assert (refused["status"], refused["id"]) == ("error", "req-2")
    assert dispatcher.handle("state/get", {"id": "req-3", "bogus": 1})["id"] == "req-3"
    assert dispatcher.handle("nope/nope", {"id": 9})["id"] == 9
    assert dispatcher.handle("state/get", {"id": True, "bogus": 1})["id"] is None


def test_payload_over_64_kib_is_refused_before_parsing(dispatcher):
    body = json.dumps({"id": "big", "pad": "x" * MAX_PAYLOAD}).encode()
    reply = dispatcher.handle_raw("state/get", body)
    err = assert_error(reply, "too_large")
    assert "larger than" in err["message"]
    assert reply["id"] is None
    assert dispatcher.handle_raw("state/get", body.decode())["status"] == "error"


def test_non_ascii_payload_over_64_kib_is_refused(dispatcher):
    body = json.dumps({"id": "big", "name": "\u00e9" * 40_000}, ensure_ascii=False)
    assert len(body.encode("utf-8")) > MAX_PAYLOAD >= len(body)
    reply = dispatcher.handle_raw("module/set", body)
    err = assert_error(reply, "too_large")
    assert "larger than" in err["message"]


def test_counts_ok_and_error_replies(dispatcher):
    before = dict(dispatcher.counts)
    dispatcher.handle("state/get", {})
    dispatcher.handle("nope", {})
    assert dispatcher.counts == {"ok": before["ok"] + 1, "error": before["error"] + 1}


# -- module/set ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, codes", [
    ("nosuchmodule", {"unknown_module"}),
    ("../../etc/passwd", {"validation_failed", "unknown_module"}),
    ("os.path", {"validation_failed", "unknown_module"}),
    ("common", {"validation_failed", "unknown_module"}),
    ("", {"validation_failed", "unknown_module"}),
])
def test_module_set_with_unknown_or_unsafe_name_changes_nothing(dispatcher, config_path,
                                                                name, codes):
    before = config_path.read_bytes()
    reply = dispatcher.handle("module/set", {"name": name})
    assert reply["status"] == "error" and reply["error"]["code"] in codes, reply
    assert detail_paths(reply) == {"$.name"}
    assert config_path.read_bytes() == before
    assert not config_path.with_name("config.json.bak").exists()
    assert dispatcher.node.pipeline.module == "service"


def test_unknown_module_reply_lists_available_modules(dispatcher):
    reply = dispatcher.handle("module/set", {"name": "nosuchmodule"})
    assert "passthrough" in reply["error"]["details"][0]["reason"]


def test_module_set_success_saves_the_module_to_the_config_file(dispatcher, config_path):
    before = config_path.read_bytes()
    reply = dispatcher.handle("module/set", {"id": "m1", "name": "passthrough"})
    assert (reply["status"], reply["id"]) == ("ok", "m1"), reply
    assert reply["data"]["module"] == "passthrough"
    on_disk = json.loads(config_path.read_text())
    assert on_disk["pipeline"]["module"] == "passthrough"
    assert on_disk["pipeline"]["module_params"] == {}
    assert config_path.with_name("config.json.bak").read_bytes() == before
    assert dispatcher.node.store.config.pipeline.module == "passthrough"
    assert dispatcher.node.pipeline.module == "passthrough"


def test_module_set_with_refused_params_reports_paths_and_changes_nothing(dispatcher,
                                                                         config_path):
    before = config_path.read_bytes()
    reply = dispatcher.handle("module/set", {"name": "passthrough", "params": {"x": 1}})
    assert_error(reply, "validation_failed")
    assert detail_paths(reply) == {"$.params"}
    assert config_path.read_bytes() == before
    assert dispatcher.node.pipeline.module == "service"


def test_module_set_with_broken_module_is_module_error(dispatcher, config_path, tmp_path,
                                                       monkeypatch):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "broken").with_suffix(".py").write_text("raise ImportError('no camera lib')\n")
    monkeypatch.setattr(dispatcher.node.registry, "dirs", dispatcher.node.registry.dirs + [mods])
    before = config_path.read_bytes()
    err = assert_error(dispatcher.handle("module/set", {"name": "broken"}), "module_error")
    assert "no camera lib" in err["message"]
    assert config_path.read_bytes() == before


def test_module_set_that_cannot_be_saved_keeps_the_running_module(dispatcher, config_path,
                                                                  monkeypatch):
    before = config_path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    err = assert_error(dispatcher.handle("module/set", {"name": "passthrough"}),
                       "internal_error")
    assert "cannot save configuration" in err["message"]
    monkeypatch.undo()
    assert config_path.read_bytes() == before
    assert dispatcher.node.store.config.pipeline.module == "service"
    assert dispatcher.node.pipeline.module == "service"


# -- pipeline commands -------------------------------------------------------------------------

def test_pipeline_start_and_stop_change_the_pipeline_state(dispatcher):
    assert dispatcher.handle("state/get", {})["data"]["pipeline"] == "stopped"
    started = dispatcher.handle("pipeline/start", {"id": "s"})
    assert (started["status"], started["id"]) == ("ok", "s")
    assert started["data"]["pipeline"] == "running"
    assert dispatcher.handle("state/get", {})["data"]["pipeline"] == "running"
    stopped = dispatcher.handle("pipeline/stop", {})
    assert stopped["status"] == "ok" and stopped["data"]["pipeline"] == "stopped"
    assert dispatcher.node.pipeline.running is False


def test_pipeline_start_and_stop_are_idempotent(dispatcher):
    assert dispatcher.handle("pipeline/stop", {})["data"]["pipeline"] == "stopped"
    dispatcher.handle("pipeline/start", {})
    assert dispatcher.handle("pipeline/start", {})["data"]["pipeline"] == "running"
    assert dispatcher.handle("pipeline/restart", {})["data"]["pipeline"] == "running"
    assert dispatcher.handle("pipeline/stop", {})["data"]["pipeline"] == "stopped"


def test_pipeline_commands_do_not_touch_the_config_file(dispatcher, config_path):
    before = config_path.read_bytes()
    dispatcher.handle("pipeline/start", {})
    dispatcher.handle("pipeline/stop", {})
    assert config_path.read_bytes() == before
    assert sorted(os.listdir(config_path.parent)) == ["config.json"]


def test_roi_name_rule_is_defined_once_and_sent_to_the_page(dispatcher):
    # The page validates names with the pattern roi/get sends; the node refuses with the
    # same definition (schemas/config.schema.json $defs.roi_name), so they cannot disagree.
    import re

    from camnode.node.schemas import SCHEMA_DIR
    schema = json.loads((SCHEMA_DIR / "config.schema.json").read_text())
    pattern = schema["$defs"]["roi_name"]["pattern"]
    reply = dispatcher.handle("roi/get", {})
    assert reply["data"]["name_pattern"] == pattern
    refused = dispatcher.handle("roi/add", {"name": "front door", "left": 1, "top": 1,
                                            "right": 5, "bottom": 5})
    assert_error(refused, "validation_failed")
    assert detail_paths(refused) == {"$.name"} and not re.match(pattern, "front door")
    texts = [p.read_text() for p in (SCHEMA_DIR / "commands").glob("roi.*.schema.json")]
    assert not any(pattern in t for t in texts), "the ROI-name pattern is written again"


def test_the_number_of_rois_is_bounded_and_a_refused_edit_changes_nothing(dispatcher,
                                                                          config_path):
    """Each ROI is entities in Home Assistant, retained topics and work on every frame:
    a node keeps at most 32 (schemas/config.schema.json $defs.rois, one definition for
    the file and for roi/replace); one more is refused, and nothing is written."""
    many = {f"zone_{i}": {"left": 1, "top": 1, "right": 5, "bottom": 5} for i in range(32)}
    assert dispatcher.handle("roi/replace", {"rois": many})["status"] == "ok"
    before = config_path.read_bytes()
    refused = dispatcher.handle("roi/add", {"name": "one_more", "left": 1, "top": 1,
                                            "right": 5, "bottom": 5})
    assert_error(refused, "validation_failed")
    assert detail_paths(refused) == {"$.rois"}, refused
    too_many = {**many, "one_more": many["zone_0"]}
    refused = dispatcher.handle("roi/replace", {"rois": too_many})
    assert_error(refused, "validation_failed")
    assert detail_paths(refused) == {"$.rois"}, refused
    assert config_path.read_bytes() == before
