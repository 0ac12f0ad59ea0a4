"""The shape of the code, checked: stage packages import `core` and never each other or the CLI, `core` imports no
stage, the benchmarks and the service never import the tests, and no module imports itself round a cycle
(docs/architecture.md, "Packages and their boundaries").

Read from the source with ``ast``, nothing imported: a function-level import counts like a top-level one (it is
a dependency all the same); only imports under ``if TYPE_CHECKING:`` are left out, as they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
CORE = "core"
STAGES = ("ingest", "alerts", "api", "simulators", "gateway", "reports")  # each runs on its own, over core
CLI = "smartwater"  # wires the stages together: may import any of them
TOOLS = ("benchmarks", "support")  # measure and test the service; never imported by it
PACKAGES = (CORE, *STAGES, CLI, *TOOLS)


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")) if (ROOT / pkg).is_dir() else ():
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (the deepest one each import statement names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(target: str) -> str | None:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        return target or None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` the module mod
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names]
            else:
                visit(child)
                continue
            for t in targets:
                r = resolve(t)
                if r is not None and r != name:
                    found.add(r)

    visit(tree)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _top(module: str) -> str:
    return module.split(".")[0]


def test_the_graph_was_read():
    assert len(MODULES) > 80 and "alerts.engine" in MODULES
    assert "alerts.index" in GRAPH["alerts.engine"] and "core.catalog" in GRAPH["alerts.engine"]


def _entry_point(module: str) -> bool:
    """``python -m <stage>``: starts the stage as ``smartwater run`` does. Nothing imports it, so it can neither
    make a cycle nor make the stage depend on the CLI when the stage is used as a library."""
    return module.endswith(".__main__")


def test_stage_packages_import_only_core_and_themselves():
    bad = sorted(f"{m} imports {t}" for m, targets in GRAPH.items() if _top(m) in STAGES and not _entry_point(m)
                 for t in targets if _top(t) not in (CORE, _top(m)))
    assert bad == [], "\n".join(bad)
    assert not [m for m, targets in GRAPH.items() for t in targets if _entry_point(t)]


def test_core_imports_no_stage_nor_the_cli_nor_the_tools():
    bad = sorted(f"{m} imports {t}" for m, targets in GRAPH.items() if _top(m) == CORE
                 for t in targets if _top(t) != CORE)
    assert bad == [], "\n".join(bad)


def test_nothing_but_the_tests_imports_the_tests_and_nothing_in_the_service_imports_the_tools():
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        assert "from tests" not in text and "import tests" not in text, f"{name} imports from tests/"
    bad = sorted(f"{m} imports {t}" for m, targets in GRAPH.items() if _top(m) not in TOOLS
                 for t in targets if _top(t) in TOOLS)
    assert bad == [], "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in sorted(graph):
            if v not in index:
                strong(v)
    finally:
        sys.setrecursionlimit(limit)
    return out


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
