"""Unit tests for node.config: loading, validation, defaults and atomic storage."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path

import pytest

from camnode.node.config import ConfigError, ConfigStore, atomic_write_json, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config.json"


def shipped_doc() -> dict:
    return json.loads(SHIPPED.read_text(encoding="utf-8"))


def paths(err: ConfigError) -> set[str]:
    return {i.path for i in err.issues}


def write_config(folder: Path, doc: dict) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def stored(tmp_path):
    """A ConfigStore over a temporary copy of the shipped config."""
    path = write_config(tmp_path, shipped_doc())
    return ConfigStore(load_config(path), path), path


# -- loading and validation --------------------------------------------------------------

def test_shipped_config_json_is_valid():
    cfg = load_config(SHIPPED)
    assert cfg.node_id == "camnode"
    assert cfg.camera.source == "synthetic"
    assert cfg.pipeline.module == "service"
    assert set(cfg.rois) == {"AccessPoint_1", "Driveway"}
    assert cfg.colours["orange"] == (0, 165, 255)
    assert cfg.base_dir == SHIPPED.parent


def test_config_with_several_schema_mistakes_lists_every_error_with_its_path():
    doc = shipped_doc()
    doc["camera"]["fps"] = "fast"
    doc["bogus"] = 1
    doc["node_id"] = "bad id!"
    doc["web"]["port"] = 70000
    with pytest.raises(ConfigError) as exc:
        parse_config(doc, "test.json")
    assert paths(exc.value) == {"$.camera.fps", "$.bogus", "$.node_id", "$.web.port"}
    text = str(exc.value)
    assert "test.json: 4 error(s)" in text
    for p in ("$.camera.fps", "$.bogus", "$.node_id", "$.web.port"):
        assert p in text
    bogus = next(i for i in exc.value.issues if i.path == "$.bogus")
    assert bogus.reason == "unknown field"


def test_roi_corner_order_and_unknown_colour_are_both_reported():
    doc = shipped_doc()
    doc["rois"]["Door"] = {"left": 60, "top": 10, "right": 40, "bottom": 50,
                           "colour": "chartreuse"}
    with pytest.raises(ConfigError) as exc:
        parse_config(doc)
    assert paths(exc.value) == {"$.rois.Door.right", "$.rois.Door.colour"}
    assert "chartreuse" in str(exc.value)


def test_roi_colour_from_config_table_or_builtin_table_is_accepted():
    doc = shipped_doc()
    doc["colours"]["teal"] = [128, 128, 0]
    doc["rois"]["A"] = {"left": 0, "top": 0, "right": 10, "bottom": 10, "colour": "teal"}
    doc["rois"]["B"] = {"left": 0, "top": 0, "right": 10, "bottom": 10, "colour": "purple"}
    cfg = parse_config(doc)
    assert cfg.rois["A"]["colour"] == "teal"


def test_config_with_schema_and_roi_mistakes_lists_every_error():
    doc = shipped_doc()
    doc["camera"]["fps"] = "fast"
    doc["bogus"] = 1
    doc["node_id"] = "bad id!"
    doc["rois"]["Door"] = {"left": 60, "top": 10, "right": 40, "bottom": 50,
                           "colour": "chartreuse"}
    with pytest.raises(ConfigError) as exc:
        parse_config(doc)
    assert paths(exc.value) == {"$.camera.fps", "$.bogus", "$.node_id",
                                "$.rois.Door.right", "$.rois.Door.colour"}


def test_roi_colour_given_as_a_list_is_a_config_error_not_a_crash():
    doc = {"node_id": "n1", "camera": {"source": "synthetic"},
           "rois": {"Door": {"left": 0, "top": 0, "right": 10, "bottom": 10,
                             "colour": [0, 255, 0]}}}
    with pytest.raises(ConfigError) as exc:
        parse_config(doc)
    assert "$.rois.Door.colour" in paths(exc.value)


def test_schema_type_errors_in_rois_do_not_crash_the_semantic_checks():
    doc = {"node_id": "n1", "camera": {"source": "synthetic"}, "colours": [],
           "rois": {"A": {"left": "x", "top": 0, "right": 10, "bottom": 10}, "B": 5}}
    with pytest.raises(ConfigError) as exc:
        parse_config(doc)
    assert {"$.colours", "$.rois.A.left", "$.rois.B"} <= paths(exc.value)


@pytest.mark.parametrize("node_id", ["", "has space", "a/b", "x" * 65, "caf\u00e9", 42])
def test_bad_node_id_is_refused(node_id):
    with pytest.raises(ConfigError) as exc:
        parse_config({"node_id": node_id, "camera": {"source": "synthetic"}})
    assert paths(exc.value) == {"$.node_id"}


def test_node_id_with_trailing_newline_is_refused():
    with pytest.raises(ConfigError) as exc:
        parse_config({"node_id": "camnode\n", "camera": {"source": "synthetic"}})
    assert paths(exc.value) == {"$.node_id"}


def test_invalid_json_reports_line_and_column(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "node_id": "x",\n  "camera": {"source": "synthetic",}\n}\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert [i.path for i in exc.value.issues] == ["$"]
    reason = exc.value.issues[0].reason
    assert "invalid JSON at line 3 column" in reason
    assert str(path) in str(exc.value)


def test_missing_config_file_is_a_clear_error(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert [i.path for i in exc.value.issues] == ["$"]
    assert "cannot read file" in exc.value.issues[0].reason
    assert str(path) in str(exc.value)


def test_minimal_config_gets_every_default(tmp_path):
    path = write_config(tmp_path, {"node_id": "n1", "camera": {"source": "synthetic"}})
    cfg = load_config(path)
    assert cfg.name == "camnode"
    assert (cfg.camera.width, cfg.camera.height, cfg.camera.fps) == (640, 480, 30.0)
    assert (cfg.camera.jpeg_quality, cfg.camera.rotate) == (80, 0)
    assert cfg.pipeline.module == "passthrough" and cfg.pipeline.autostart is True
    assert cfg.pipeline.module_params == {} and cfg.pipeline.processor_dirs == ()
    assert cfg.zmq.publish == "tcp://127.0.0.1:5555"
    assert (cfg.web.port, cfg.web.workers, cfg.web.max_clients) == (8080, 1, 2000)
    assert cfg.rois == {} and cfg.log_level == "INFO"
    assert cfg.raw == {"node_id": "n1", "camera": {"source": "synthetic"}}


def test_examples_are_hidden_unless_the_config_lists_them():
    base = {"node_id": "n1", "camera": {"source": "synthetic"}}
    assert parse_config(base).pipeline.examples is False
    assert parse_config({**base, "pipeline": {"examples": True}}).pipeline.examples is True
    with pytest.raises(ConfigError) as exc:
        parse_config({**base, "pipeline": {"examples": "yes"}})
    assert "$.pipeline.examples" in str(exc.value)


def test_partial_section_keeps_defaults_for_missing_keys():
    cfg = parse_config({"node_id": "n1", "camera": {"source": 0, "fps": 5}})
    assert cfg.camera.source == 0 and cfg.camera.fps == 5.0 and cfg.camera.width == 640


def test_processor_dirs_are_relative_to_the_config_folder(tmp_path):
    path = write_config(tmp_path, {"node_id": "n1", "camera": {"source": "synthetic"},
                                   "pipeline": {"processor_dirs": ["mods"]}})
    assert load_config(path).processor_dirs() == [(tmp_path / "mods").resolve()]


# -- storing -------------------------------------------------------------------------------

def test_update_writes_new_content_keeps_backup_and_leaves_no_temp_files(stored):
    store, path = stored
    before = path.read_bytes()

    def change(doc):
        doc["pipeline"]["module"] = "passthrough"

    new = store.update(change)
    assert new.pipeline.module == "passthrough"
    assert store.config is new
    assert json.loads(path.read_text())["pipeline"]["module"] == "passthrough"
    assert load_config(path).pipeline.module == "passthrough"
    assert path.with_name("config.json.bak").read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["config.json", "config.json.bak"]


def test_second_update_backs_up_the_first_update(stored):
    store, path = stored
    store.update(lambda d: d.__setitem__("name", "one"))
    first = path.read_bytes()
    store.update(lambda d: d.__setitem__("name", "two"))
    assert path.with_name("config.json.bak").read_bytes() == first
    assert json.loads(path.read_text())["name"] == "two"
    assert sorted(os.listdir(path.parent)) == ["config.json", "config.json.bak"]


def test_invalid_change_raises_and_changes_nothing(stored):
    store, path = stored
    before_bytes, before_cfg = path.read_bytes(), store.config

    def change(doc):
        doc["camera"]["fps"] = -1
        doc["bogus"] = True

    with pytest.raises(ConfigError) as exc:
        store.update(change)
    assert paths(exc.value) == {"$.camera.fps", "$.bogus"}
    assert path.read_bytes() == before_bytes
    assert store.config is before_cfg
    assert store.config.raw == shipped_doc()
    assert sorted(os.listdir(path.parent)) == ["config.json"]


def test_change_function_cannot_mutate_the_stored_config(stored):
    store, path = stored
    before = copy.deepcopy(store.config.raw)

    def change(doc):
        doc["rois"].clear()
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        store.update(change)
    assert store.config.raw == before
    assert store.config.rois.keys() == {"AccessPoint_1", "Driveway"}


def test_overrides_apply_in_memory_but_are_never_written(tmp_path):
    path = write_config(tmp_path, shipped_doc())

    def overrides(cfg):
        return dataclasses.replace(cfg, node_id="override",
                                   web=dataclasses.replace(cfg.web, port=9999))

    store = ConfigStore(load_config(path), path, overrides)
    assert (store.config.node_id, store.config.web.port) == ("override", 9999)
    new = store.update(lambda d: d.__setitem__("name", "renamed"))
    assert (new.node_id, new.web.port, new.name) == ("override", 9999, "renamed")
    on_disk = json.loads(path.read_text())
    assert on_disk["node_id"] == "camnode" and on_disk["web"]["port"] == 8080
    assert on_disk["name"] == "renamed"
    assert "override" not in path.read_text()


def test_store_without_path_keeps_changes_in_memory(tmp_path):
    store = ConfigStore(parse_config(shipped_doc()), None)
    assert store.update(lambda d: d.__setitem__("name", "mem")).name == "mem"
    assert os.listdir(tmp_path) == []


def _failing_replace(monkeypatch, fail_when=lambda src, dst: True):
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if fail_when(str(src), str(dst)):
            raise OSError(28, "No space left on device")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_failed_write_leaves_original_file_and_config_intact(stored, monkeypatch):
    store, path = stored
    before_bytes, before_cfg = path.read_bytes(), store.config
    _failing_replace(monkeypatch)
    with pytest.raises(OSError):
        store.update(lambda d: d.__setitem__("name", "never"))
    assert path.read_bytes() == before_bytes
    assert store.config is before_cfg
    # the data temp file is removed (the backup link: see the next-but-one test)
    leftovers = set(os.listdir(path.parent)) - {"config.json", ".config.json.bak.tmp"}
    assert leftovers == set()


def test_failed_final_rename_leaves_original_file_and_no_temp_file(stored, monkeypatch):
    store, path = stored
    before = path.read_bytes()
    _failing_replace(monkeypatch, lambda src, dst: dst == str(path))
    with pytest.raises(OSError):
        store.update(lambda d: d.__setitem__("name", "never"))
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["config.json", "config.json.bak"]


def test_failed_write_leaves_no_temp_file_behind(stored, monkeypatch):
    store, path = stored
    _failing_replace(monkeypatch)
    with pytest.raises(OSError):
        store.update(lambda d: d.__setitem__("name", "never"))
    assert sorted(os.listdir(path.parent)) == ["config.json"]


def test_atomic_write_creates_a_new_file_without_backup(tmp_path):
    path = tmp_path / "new.json"
    atomic_write_json(path, {"a": "\u00e9"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": "\u00e9"}
    assert os.listdir(tmp_path) == ["new.json"]


def test_atomic_write_keeps_the_file_mode(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{}")
    path.chmod(0o640)
    atomic_write_json(path, {"b": 1})
    assert path.stat().st_mode & 0o777 == 0o640
