"""The library's layout: one subpackage per stage, imports pointing one way, no cycles.

Stages in workbook order (`accelnas/__init__.py`): space -> latency -> train -> search -> scaling -> report,
then the workbook shell (params, run, runner, cli). A module may import from its own stage and the
stages before it, never from a later one; `io` and `schema` are leaves that import nothing of ours.
Every import counts, also those inside functions (a lazy import is still a dependency); only
``if TYPE_CHECKING:`` blocks are skipped.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "accelnas"
STAGES = ("space", "latency", "train", "search", "scaling", "report")
SHELL = ("params", "run", "runner", "cli")
LEAVES = ("io", "schema")


def module_name(path: Path, lib: Path = LIB) -> str:
    parts = list(path.relative_to(lib.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, here: str, is_pkg: bool) -> set[str]:
    found = set()

    def visit(node):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".") if is_pkg else here.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import module`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(lib: Path = LIB) -> dict[str, set[str]]:
    """{module: the accelnas modules it imports} over every .py file of the package."""
    paths = {module_name(p, lib): p for p in lib.rglob("*.py")}
    graph = {}
    for mod, path in paths.items():
        raw = _imports(ast.parse(path.read_text()), mod, path.name == "__init__.py")
        graph[mod] = {m for m in raw if m in paths and m != mod}
    return graph


def rank(mod: str) -> float:
    parts = mod.split(".")
    if len(parts) == 1:
        return -1  # accelnas/__init__: __version__ and a lazy public API (importlib, no static import)
    top = parts[1]
    if top in LEAVES:
        return -1
    if top in STAGES:
        return STAGES.index(top)
    if top in SHELL:
        return len(STAGES)
    raise AssertionError(f"{mod}: not in a stage, the shell or the leaves; place it (tests/test_layout.py)")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                cyc = dfs(n)
                if cyc:
                    return cyc
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cyc = dfs(m)
            if cyc:
                return cyc
    return None


def test_every_module_is_in_a_stage():
    for mod in import_graph():
        rank(mod)
    assert sorted(p.name for p in LIB.iterdir() if p.is_dir() and (p / "__init__.py").exists()) == \
        sorted(STAGES)


def test_no_import_cycle():
    cyc = find_cycle(import_graph())
    assert cyc is None, "import cycle: " + " -> ".join(cyc)


def test_imports_point_one_way():
    graph = import_graph()
    upward = [f"{m} -> {n}" for m, deps in graph.items() for n in deps
              if rank(n) > rank(m)]
    assert not upward, "imports from a later stage: " + "; ".join(sorted(upward))
    leaves = [f"{m} -> {n}" for m, deps in graph.items() if rank(m) == -1 for n in deps]
    assert not leaves, "leaf modules import from accelnas: " + "; ".join(leaves)


@pytest.mark.parametrize("source, cycle", [
    ({"a.py": "from accelnas import b\n", "b.py": "def f():\n    from accelnas.a import x\n"}, True),
    ({"a.py": "from accelnas import b\n", "b.py": "x = 1\n"}, False),
    ({"a.py": "from . import b\n", "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                          "    from .a import x\n"}, False),
])
def test_cycle_finder_detects_cycles(tmp_path, source, cycle):
    lib = tmp_path / "accelnas"
    lib.mkdir()
    (lib / "__init__.py").write_text("")
    for name, text in source.items():
        (lib / name).write_text(text)
    assert (find_cycle(import_graph(lib)) is not None) == cycle
