"""The layering of DESIGN.md, read from the source: `api/` and `worker/` build on
`core/`, `core/` on neither, `api/` never on `worker/` or the heavy libraries only
workers need, the product never on the dev tooling or the tests, and no module-level
import cycle anywhere."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "worker", "core")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


SOURCES = _sources()


def _imports(path: Path, *, module_level_only: bool) -> Iterator[str]:
    """The absolute module names a file imports (`from a import b` yields `a.b` when
    that is a module, else `a`)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                yield candidate if candidate in SOURCES else node.module


def _importers(prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for name, path in SOURCES.items():
        if name != prefix and not name.startswith(prefix + "."):
            continue
        for imported in _imports(path, module_level_only=False):
            if any(imported == f or imported.startswith(f + ".") for f in forbidden):
                found.append(f"{name} imports {imported}")
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("core", ("api", "worker", "tests")),
        ("api", ("worker", "tests", "core.dev", "agents", "boto3", "botocore", "pypdf", "PIL")),
        ("worker", ("api", "tests", "core.dev")),
    ],
)
def test_a_layer_imports_only_what_it_may(package: str, forbidden: tuple[str, ...]) -> None:
    assert _importers(package, forbidden) == []


def test_the_product_core_does_not_import_the_dev_tooling() -> None:
    found = [
        offence
        for offence in _importers("core", ("core.dev",))
        if not offence.startswith(("core.dev", "core.cli.operations "))
    ]
    assert found == []


def test_the_client_imports_nothing_of_conveyor_but_itself() -> None:
    """core/client is what any Python program may import to talk to an API: none of
    the server's code (settings, database, models) comes with it."""
    ours = tuple(f"{package}." for package in PACKAGES)
    found = [
        f"{name} imports {imported}"
        for name, path in SOURCES.items()
        if name == "core.client" or name.startswith("core.client.")
        for imported in _imports(path, module_level_only=False)
        if imported.startswith(ours) and not imported.startswith("core.client")
    ]
    assert found == []


def test_no_module_level_import_cycles() -> None:
    graph = {
        name: {
            imported
            for imported in _imports(path, module_level_only=True)
            if imported in SOURCES and imported != name
        }
        for name, path in SOURCES.items()
    }
    assert _cycles(graph) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
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
