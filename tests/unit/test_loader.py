"""Unit tests for node.loader: finding modules, loading them safely, and the module contract."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from camnode.node.loader import InvalidParams, ModuleLoadError, Processor, Registry, UnknownModule


@pytest.fixture(autouse=True)
def _forget_loaded_modules():
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("camnode_processor_"):
            del sys.modules[name]


@pytest.fixture
def extra(tmp_path) -> Path:
    d = tmp_path / "mods"
    d.mkdir()
    return d


@pytest.fixture
def registry(extra) -> Registry:
    return Registry([extra])


def module(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def grey(value: int = 100) -> np.ndarray:
    return np.full((12, 16, 3), value, np.uint8)


# -- finding modules --------------------------------------------------------------------------

def test_available_lists_builtin_and_extra_dir_modules(extra, registry):
    module(extra, "mine", "def process_image(src):\n    return True\n")
    names = registry.available()
    assert {"passthrough", "service", "mine"} <= set(names)
    assert names == sorted(names)


def test_module_dropped_into_extra_dir_appears_without_new_registry(extra, registry):
    assert "late" not in registry.available()
    module(extra, "late", "def process_image(src):\n    return True\n")
    assert "late" in registry.available()
    assert registry.load("late").name == "late"


def test_helper_and_private_files_are_not_listed(extra, registry):
    for name in ("common", "__init__", "_private"):
        module(extra, name, "def process_image(src):\n    return True\n")
    (extra / "notes.txt").write_text("x")
    (extra / "bad-name.py").write_text("def process_image(src):\n    return True\n")
    names = registry.available()
    for hidden in ("common", "__init__", "_private", "notes", "bad-name"):
        assert hidden not in names


def test_missing_extra_dir_is_ignored(tmp_path):
    assert Registry([tmp_path / "missing"]).available() == Registry().available()
    assert {"passthrough", "service"} <= set(Registry().available())


@pytest.mark.parametrize("name", ["../etc/passwd", "os.path", "service/../x", "", "a-b",
                                  "common", "__init__", "/etc/passwd", "service.py",
                                  "x" * 65, "nosuchmodule", "service\n", None, 3])
def test_names_that_are_not_plain_module_names_are_unknown(registry, name):
    with pytest.raises(UnknownModule):
        registry.path_of(name)
    with pytest.raises(UnknownModule):
        registry.load(name)


def test_builtin_module_wins_over_extra_dir_file_of_same_name(extra, registry):
    module(extra, "passthrough", "raise RuntimeError('shadow loaded')\n")
    assert registry.path_of("passthrough").parent.name == "processors"
    assert registry.load("passthrough").process(grey()).error is None


def test_builtin_modules_load_and_run(registry):
    for name in ("passthrough", "service"):
        result = registry.load(name).process(grey())
        assert result.error is None and result.frame.shape == (12, 16, 3)


# -- load errors ------------------------------------------------------------------------------

def test_import_error_is_a_module_load_error_naming_the_error(extra, registry):
    module(extra, "broken", "import no_such_package_xyz\n")
    with pytest.raises(ModuleLoadError) as exc:
        registry.load("broken")
    assert "broken" in str(exc.value)
    assert "ModuleNotFoundError" in str(exc.value)
    assert "no_such_package_xyz" in str(exc.value)


def test_syntax_error_is_a_module_load_error(extra, registry):
    module(extra, "typo", "def process_image(src)\n    return True\n")
    with pytest.raises(ModuleLoadError, match="SyntaxError"):
        registry.load("typo")


def test_module_without_process_image_is_a_module_load_error(extra, registry):
    module(extra, "empty", "PROCESS = 1\nprocess_image = 'not callable'\n")
    with pytest.raises(ModuleLoadError, match="process_image"):
        registry.load("empty")


def test_failing_setup_is_a_module_load_error(extra, registry):
    module(extra, "nosetup", """
        def setup(params):
            raise ValueError("camera model unknown")
        def process_image(src):
            return True
    """)
    with pytest.raises(ModuleLoadError, match="camera model unknown"):
        registry.load("nosetup")


def test_each_load_imports_the_file_afresh(extra, registry):
    module(extra, "fresh", "VALUE = 1\ndef process_image(src):\n    return True\n")
    first = registry.load("fresh")
    module(extra, "fresh", "VALUE = 2\ndef process_image(src):\n    return True\n")
    second = registry.load("fresh")
    assert (first.module.VALUE, second.module.VALUE) == (1, 2)


# -- the process() contract ---------------------------------------------------------------------

CONTRACT = {
    "edit_true": "def process_image(src):\n    src[:] = 7\n    return True\n",
    "edit_none": "def process_image(src):\n    src[0, 0] = 9\n",
    "drop": "def process_image(src):\n    return False\n",
    "new_array": ("import numpy as np\n"
                  "def process_image(src):\n    return np.full((4, 5), 3, np.uint8)\n"),
    "with_detections": ("def process_image(src):\n    src[:] = 1\n"
                        "    return src, [{'label': 'cat', 'score': 0.9}]\n"),
    "drop_with_detections": "def process_image(src):\n    return False, ({'label': 'x'},)\n",
    "raises": "def process_image(src):\n    src[:] = 255\n    raise ValueError('lens cap on')\n",
    "wrong_type": "def process_image(src):\n    src[:] = 255\n    return 'done'\n",
    "empty_array": "import numpy as np\ndef process_image(src):\n    return np.zeros((0, 0, 3))\n",
    "three_tuple": "def process_image(src):\n    return src, [], 1\n",
}


@pytest.fixture
def load(extra, registry):
    def _load(name: str) -> Processor:
        module(extra, name, CONTRACT[name])
        return registry.load(name)
    return _load


def test_in_place_edit_returning_true_gives_edited_frame_and_keeps_input(load):
    frame = grey()
    result = load("edit_true").process(frame)
    assert (result.frame == 7).all()
    assert (frame == 100).all()
    assert result.detections == [] and result.error is None


def test_returning_none_gives_edited_frame(load):
    result = load("edit_none").process(grey())
    assert (result.frame[0, 0] == 9).all() and (result.frame[1:] == 100).all()
    assert result.error is None


def test_returning_false_drops_the_frame(load):
    proc = load("drop")
    result = proc.process(grey())
    assert result.frame is None and result.error is None and proc.errors == 0


def test_returning_a_new_array_replaces_the_frame(load):
    result = load("new_array").process(grey())
    assert result.frame.shape == (4, 5) and (result.frame == 3).all()
    assert result.error is None


def test_frame_and_detections_tuple_reports_detections(load):
    result = load("with_detections").process(grey())
    assert (result.frame == 1).all()
    assert result.detections == [{"label": "cat", "score": 0.9}]
    assert result.error is None


def test_drop_with_detections_still_reports_detections(load):
    result = load("drop_with_detections").process(grey())
    assert result.frame is None and result.detections == [{"label": "x"}]


def test_raising_module_returns_original_unedited_frame_and_counts_error(load):
    proc = load("raises")
    frame = grey(100)
    result = proc.process(frame)
    assert result.frame is frame
    assert (result.frame == 100).all()  # the module's half-done edit is not visible
    assert result.detections == []
    assert "ValueError" in result.error and "lens cap on" in result.error
    assert proc.errors == 1 and proc.last_error == result.error
    proc.process(grey())
    assert proc.errors == 2


@pytest.mark.parametrize("name, type_name", [("wrong_type", "str"), ("empty_array", "ndarray"),
                                             ("three_tuple", "tuple")])
def test_wrong_return_type_is_an_error_with_the_original_frame(load, name, type_name):
    proc = load(name)
    result = proc.process(grey(100))
    assert (result.frame == 100).all()
    assert result.error == f"process_image returned {type_name}"
    assert proc.errors == 1


def test_detections_as_numpy_array_do_not_make_process_raise(extra, registry):
    module(extra, "arraydet", "import numpy as np\n"
                              "def process_image(src):\n    return src, np.array([[1, 2, 3, 4]])\n")
    result = registry.load("arraydet").process(grey())
    assert result.frame is not None


def test_non_iterable_detections_are_a_reported_error_not_an_exception(extra, registry):
    module(extra, "intdet", "def process_image(src):\n    return src, 3\n")
    proc = registry.load("intdet")
    result = proc.process(grey(100))
    assert (result.frame == 100).all() and result.error and proc.errors == 1


def test_processor_without_module_passes_frames_through():
    frame = grey()
    result = Processor("missing", None).process(frame)
    assert result.frame is frame and result.error is None


# -- parameters, setup and close --------------------------------------------------------------

PARAMS_MODULE = """
    PARAMS_SCHEMA = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"threshold": {"type": "integer", "minimum": 0},
                       "label": {"type": "string"}},
    }
    SETUP_CALLS = []
    CLOSED = []

    def setup(params):
        SETUP_CALLS.append(params)

    def close():
        CLOSED.append(True)

    def process_image(src):
        return True
"""


def test_valid_params_are_passed_to_setup(extra, registry):
    module(extra, "tuned", PARAMS_MODULE)
    proc = registry.load("tuned", {"threshold": 5, "label": "door"})
    assert proc.module.SETUP_CALLS == [{"threshold": 5, "label": "door"}]
    assert proc.params == {"threshold": 5, "label": "door"}
    assert proc.params_schema["properties"]["threshold"]["minimum"] == 0


def test_no_params_calls_setup_with_empty_dict(extra, registry):
    module(extra, "tuned", PARAMS_MODULE)
    assert registry.load("tuned").module.SETUP_CALLS == [{}]


def test_invalid_params_raise_invalid_params_with_paths(extra, registry):
    module(extra, "tuned", PARAMS_MODULE)
    with pytest.raises(InvalidParams) as exc:
        registry.load("tuned", {"threshold": -1, "label": 5, "bogus": True})
    assert {i.path for i in exc.value.issues} == {"$.threshold", "$.label", "$.bogus"}
    assert "$.threshold" in str(exc.value)


def test_invalid_params_never_reach_setup(extra, registry):
    module(extra, "tuned", PARAMS_MODULE)
    proc = registry.load("tuned")
    with pytest.raises(InvalidParams):
        proc.setup({"threshold": "high"})
    assert proc.module.SETUP_CALLS == [{}]
    assert proc.params == {}


def test_module_without_params_schema_refuses_non_empty_params(extra, registry):
    module(extra, "plain", "def process_image(src):\n    return True\n")
    assert registry.load("plain", {}).params == {}
    with pytest.raises(InvalidParams) as exc:
        registry.load("plain", {"x": 1})
    assert [i.path for i in exc.value.issues] == ["$"]
    with pytest.raises(InvalidParams):
        registry.load("passthrough", {"x": 1})


def test_close_calls_the_module_close(extra, registry):
    module(extra, "tuned", PARAMS_MODULE)
    proc = registry.load("tuned")
    proc.close()
    assert proc.module.CLOSED == [True]


def test_failing_close_is_swallowed(extra, registry):
    module(extra, "badclose", "def close():\n    raise OSError('busy')\n"
                              "def process_image(src):\n    return True\n")
    registry.load("badclose").close()  # logged, not raised
    Processor("none", None).close()
