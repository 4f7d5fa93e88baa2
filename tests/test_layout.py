"""The package's layering: no import cycle among gpupix's modules, counting imports made
inside functions too (a lazy import still ties two modules together)."""

from __future__ import annotations

import ast
from pathlib import Path

import gpupix

PACKAGE = Path(gpupix.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The gpupix modules ``path`` imports when it runs (a package import counts as its
    __init__; imports under ``if TYPE_CHECKING:`` are for type checkers and never run)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in modules)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph = {name: imports_of(path, modules) - {name} for name, path in files.items()}
    for name in graph:  # importing a.b.c runs a and a.b first: not an edge we chose
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_in_gpupix():
    graph = import_graph()
    assert "gpupix.pipeline" in graph and "gpupix.rows" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_report_and_the_rows_do_not_import_the_pipeline():
    graph = import_graph()
    report_modules = [name for name in graph if name.startswith("gpupix.report")]
    assert report_modules
    for name in [*report_modules, "gpupix.rows", "gpupix.jobs", "gpupix.jobs.base"]:
        assert "gpupix.pipeline" not in graph[name], name
