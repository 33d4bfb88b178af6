"""Finding and loading processing modules, and calling them safely.

Only files found in the built-in `processors/` folder and the configured extra folders
can be loaded, by a plain name (no dots, no slashes): a command cannot import anything
else. The dispatcher thread loads a module (imports can be slow) and hands the ready
`Processor` to the pipeline thread, which is the only caller of `process`.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from camnode.node.schemas import StrictValidator, ValidationIssue, issues_for

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "processors"
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
NOT_MODULES = {"common", "background", "__init__"}  # helpers, not modules
EXAMPLE = "example_"  # built-in SDK examples, listed only when the config asks


class UnknownModule(Exception):
    """No module of that name in the processor directories."""


class ModuleLoadError(Exception):
    """The module exists but failed to import or to set up."""


class InvalidParams(Exception):
    """Parameters refused by the module's PARAMS_SCHEMA."""

    def __init__(self, issues: list[ValidationIssue]):
        self.issues = issues
        super().__init__("; ".join(f"{i.path}: {i.reason}" for i in issues))


@dataclass
class Result:
    """What one call of a module produced, as the pipeline needs it."""

    frame: np.ndarray | None  # None: the module asked to drop this frame
    detections: list = field(default_factory=list)
    error: str | None = None


class Registry:
    """The module names available now; rescanned on every call (a folder listing).

    The built-in SDK examples (`example_*` in processors/) are listed only with
    `examples=True` (config `pipeline.examples`); they still load by name."""

    def __init__(self, extra_dirs: list[Path] | None = None, examples: bool = False):
        self.dirs = [BUILTIN_DIR] + [Path(d) for d in (extra_dirs or [])]
        self.examples = examples

    def available(self) -> list[str]:
        """Module names offered for selection (the page, the Home Assistant select)."""
        names: set[str] = set()
        for d in self.dirs:
            try:
                for p in d.glob("*.py"):
                    if not self.examples and d == BUILTIN_DIR and p.stem.startswith(EXAMPLE):
                        continue
                    if NAME_RE.match(p.stem) and p.stem not in NOT_MODULES \
                            and not p.stem.startswith("_"):
                        names.add(p.stem)
            except OSError:
                continue
        return sorted(names)

    def offered(self, current: str) -> list[str]:
        """`available()`, plus the module in use when it exists but is not listed (an
        example while examples are hidden): a select must be able to show it."""
        names = self.available()
        if current not in names:
            try:
                self.path_of(current)
            except UnknownModule:
                return names
            names = sorted([*names, current])
        return names

    def path_of(self, name: str) -> Path:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name in NOT_MODULES \
                or name.startswith("_"):
            raise UnknownModule(name)
        for d in self.dirs:
            p = d / f"{name}.py"
            if p.is_file():
                return p
        raise UnknownModule(name)

    def params_schema(self, name: str) -> dict | None:
        """A module's PARAMS_SCHEMA read from its source without running it (ast), so
        listing modules never executes their code."""
        try:
            tree = ast.parse(self.path_of(name).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnknownModule, ValueError):
            return None
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "PARAMS_SCHEMA" for t in node.targets):
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    return None
                return value if isinstance(value, dict) else None
        return None

    def load(self, name: str, params: dict | None = None) -> "Processor":
        """Import `name` freshly from its file and set it up; raise on any failure."""
        path = self.path_of(name)
        mod_name = f"camnode_processor_{name}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise ModuleLoadError(f"{name}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        _seed_names()
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ModuleLoadError(f"{name}: import failed: {type(exc).__name__}: {exc}") from exc
        if not callable(getattr(module, "process_image", None)):
            raise ModuleLoadError(f"{name}: has no process_image(src) function")
        sys.modules[mod_name] = module
        proc = Processor(name, module)
        proc.setup(params or {})
        return proc


def _seed_names() -> None:
    """Modules written for the seed import `processors.common`; the installed name is
    `camnode.processors.common`. Point the old name at it (only inside this process)."""
    import camnode.processors
    import camnode.processors.common
    sys.modules.setdefault("processors", camnode.processors)
    sys.modules.setdefault("processors.common", camnode.processors.common)


def params_issues(module: ModuleType, params: Any) -> list[ValidationIssue]:
    """Validate params against the module's PARAMS_SCHEMA (no schema: must be empty)."""
    schema = getattr(module, "PARAMS_SCHEMA", None)
    if schema is None:
        schema = {"type": "object", "maxProperties": 0}
    return issues_for(StrictValidator(schema), params)


class Processor:
    """A loaded module. `process` is called by the pipeline thread only."""

    def __init__(self, name: str, module: ModuleType | None):
        self.name = name
        self.module = module
        self.params: dict = {}
        self.errors = 0
        self.last_error: str | None = None
        self._last_logged = 0.0

    @property
    def params_schema(self) -> dict | None:
        return getattr(self.module, "PARAMS_SCHEMA", None)

    def setup(self, params: dict) -> None:
        if self.module is None:
            return
        issues = params_issues(self.module, params)
        if issues:
            raise InvalidParams(issues)
        setup = getattr(self.module, "setup", None)
        if callable(setup):
            try:
                setup(dict(params))
            except Exception as exc:
                raise ModuleLoadError(f"{self.name}: setup failed: {exc}") from exc
        self.params = dict(params)

    def status(self) -> dict | None:
        """The module's optional `status()` (called from the state thread)."""
        fn = getattr(self.module, "status", None)
        if not callable(fn):
            return None
        try:
            out = fn()
            return out if isinstance(out, dict) else None
        except Exception as exc:
            return {"error": f"status() failed: {exc}"}

    def close(self) -> None:
        close = getattr(self.module, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                log.exception("module %s: close() failed", self.name)

    def process(self, frame: np.ndarray) -> Result:
        """Run the module on `frame`; never raises. On error the unedited frame is kept."""
        if self.module is None:
            return Result(frame)
        work = frame.copy()  # so an exception half-way leaves the original unedited
        try:
            out = self.module.process_image(work)
        except Exception as exc:
            return self._failed(frame, f"{type(exc).__name__}: {exc}")
        detections: list = []
        if isinstance(out, tuple) and len(out) == 2:
            out, detections = out
            if detections is None:
                detections = []
            elif isinstance(detections, (list, tuple)):
                detections = list(detections)
            else:
                return self._failed(frame, "detections must be a list, got "
                                    + type(detections).__name__)
        if out is None or out is True:
            return Result(work, detections)
        if out is False:
            return Result(None, detections)
        if isinstance(out, np.ndarray) and out.ndim in (2, 3) and out.size:
            return Result(out, detections)
        return self._failed(frame, f"process_image returned {type(out).__name__}")

    def _failed(self, frame: np.ndarray, message: str) -> Result:
        self.errors += 1
        self.last_error = message
        now = time.monotonic()
        if now - self._last_logged > 10:  # log the error, not every frame of it
            self._last_logged = now
            log.error("module %s failed (%d errors so far): %s", self.name, self.errors, message)
        return Result(frame, [], message)


def module_config_issues(registry: Registry, name: str, params: Any) -> list[ValidationIssue]:
    """What is wrong with a configured module and its `module_params`, read without
    importing the module (check-config calls this, so checking runs no module code)."""
    try:
        registry.path_of(name)
    except UnknownModule:
        return [ValidationIssue("$.pipeline.module", f"no module named {name!r}; available: "
                                + ", ".join(registry.available()))]
    schema = registry.params_schema(name) or {"type": "object", "maxProperties": 0}
    return [ValidationIssue("$.pipeline.module_params" + i.path[1:], i.reason)
            for i in issues_for(StrictValidator(schema), params)]
