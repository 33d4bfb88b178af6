"""Layers that read top-down (issue 10 item 3): the entry point (camnode/) sits above
node/ and web/; node/ imports nothing from web/; web/ takes from node/ only the wire
format (node/wire.py, which imports no other module of ours); and no two modules import each
other, directly or round a loop, when they are loaded. Read from the sources with ast,
so a new import that breaks a rule fails here, naming the file and the line."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The repository's folders and the installed names they become (pyproject.toml).
PACKAGES = {"camnode": "camnode", "node": "camnode.node", "web": "camnode.web",
            "processors": "camnode.processors"}


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((REPO / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports(path: Path, load_time_only: bool) -> list[tuple[str, int]]:
    """(module, line) for every camnode import; `load_time_only`: those run when the
    module is loaded (not inside functions, not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if load_time_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                     ast.Lambda)):
                continue
            if load_time_only and isinstance(child, ast.If) and _type_checking(child):
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                out.append((child.module, child.lineno))
                # `from camnode.node import wire` imports the module camnode.node.wire
                out.extend((f"{child.module}.{a.name}", child.lineno) for a in child.names)
            visit(child)

    visit(tree)
    return [(m, line) for m, line in out if m == "camnode" or m.startswith("camnode.")]


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


def test_node_imports_nothing_from_web_or_the_entry_point():
    bad = [f"{_where(p, line)} imports {m}" for name, p in modules().items()
           if name.startswith("camnode.node") for m, line in imports(p, False)
           if m.startswith(("camnode.web", "camnode.cli", "camnode.workers"))]
    assert bad == []


def test_web_takes_only_the_wire_format_from_node():
    known = modules()
    allowed = {"camnode.node", "camnode.node.wire"}  # the package's __init__ is bare
    bad = [f"{_where(p, line)} imports {m}" for name, p in known.items()
           if name.startswith("camnode.web") for m, line in imports(p, False)
           if (m.startswith("camnode.node") and m in known and m not in allowed)
           or m.startswith(("camnode.cli", "camnode.workers"))]
    assert bad == []
    for name in allowed:
        assert imports(known[name], False) == [], f"{name} must import no module of ours"


def test_no_import_cycle_at_load_time():
    known = modules()
    graph = {name: sorted({m for m, _ in imports(p, True) if m in known and m != name})
             for name, p in known.items()}
    # Every module's package __init__ runs first; that edge is not a cycle of ours.
    cycles, state = [], {}

    def walk(name: str, stack: list[str]) -> None:
        state[name] = "open"
        for dep in graph[name]:
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                walk(dep, stack + [dep])
        state[name] = "done"

    for name in graph:
        if name not in state:
            walk(name, [name])
    assert cycles == []
