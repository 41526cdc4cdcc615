"""No import cycle anywhere in the tree: every module of `registry` and `plugins` can be read, and loaded,
after the modules it imports, function-level (lazy) imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("registry", "plugins")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_graph(found: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of this tree it imports (the longest existing prefix of each imported name)."""

    def owner(name: str) -> str | None:
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in found.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names: list[str] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                names += [f"{base}.{alias.name}" for alias in node.names]
        graph[module] = {target for name in names if (target := owner(name)) and target != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_tree_has_no_import_cycle() -> None:
    graph = import_graph(modules())
    assert "registry.scoring.scorer" in graph and "plugins.mlp" in graph  # the walk found the tree
    found = cycles(graph)
    assert not found, "import cycles (move what both sides need into a module of its own): " + "; ".join(
        " <-> ".join(c) for c in found
    )


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected


def test_core_never_imports_plugins() -> None:
    graph = import_graph(modules())
    offenders = sorted(
        m
        for m, targets in graph.items()
        if m.startswith("registry") and any(t.startswith("plugins") for t in targets)
    )
    assert not offenders, f"core modules importing plugins: {offenders}"


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = []
    for module, path in modules().items():
        if module == "registry.settings":
            continue
        tree = ast.parse(path.read_text())
        # `os.environ[X] = ...` hands configuration to child processes (uvicorn workers): a write, not a read.
        written = {
            id(target.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Subscript)
        }
        readers += [
            f"{module}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv")
            and id(node) not in written
        ]
    assert not readers, f"read configuration through registry.settings, not os.environ: {readers}"
