"""The package is a stack: every import runs down it, and no two subpackages import each other.

Each module's imports are read with `ast` (those inside functions and `TYPE_CHECKING` blocks
too: a lazy import is still a dependency), resolved to the subpackage or shared module they
reach, and checked against `LAYERS`, the allowed order as data. A new subpackage fails
`test_every_subpackage_has_a_place_in_the_stack` until it is given a layer here, which is where
its place in the architecture is decided.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mcp_sse_bridge"
FACADE = "mcp_sse_bridge"  # the package's own `__init__`: the library's public names

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),  # shared by every layer: the typed errors
    ("urls",),  # shared: the https-or-loopback rule
    ("manual",),
    ("upstream",),
    ("shaping",),  # under calls: it reduces the events a call accepted
    ("calls",),
    ("authoring", "subscriptions", FACADE),
    ("server", "demo"),
    ("cli",),
    ("__main__",),
)
"""Lowest first. A unit may import the units of lower layers only, never its own layer's."""

ROOT_CONSTANTS = {"__version__"}  # set in the facade before it imports anything: any layer's
MCP_SDK = {"mcp", "mcp_types"}
MAY_IMPORT_MCP = {"server", "cli", "demo"}  # the engine below them runs without the SDK

RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit in layer}


def modules() -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every module of the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def unit(module: str) -> str:
    """The layer unit a module belongs to: its top-level subpackage or module, or the facade."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else FACADE


def imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(absolute module or `module.name`, line) for every import in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield source, node.lineno
            yield from ((f"{source}.{alias.name}", node.lineno) for alias in node.names)


def dependencies() -> Iterator[tuple[str, str, str, int]]:
    """(importing unit, imported unit, where, line) for each import of one unit by another."""
    for module, path in modules():
        here = unit(module)
        for target, line in imports(module, path):
            if target != FACADE and not target.startswith(f"{FACADE}."):
                continue
            if target.removeprefix(f"{FACADE}.") in ROOT_CONSTANTS:
                continue
            there = unit(target)
            if there != here and not (there == FACADE and target == FACADE):
                yield here, there, str(path.relative_to(PACKAGE.parent)), line


def test_every_subpackage_has_a_place_in_the_stack() -> None:
    units = {unit(module) for module, _ in modules()}
    assert units - set(RANK) == set(), "give the new subpackage a layer in LAYERS"
    assert set(RANK) - units == set(), "LAYERS names a unit that no longer exists"


def test_imports_only_run_down_the_stack() -> None:
    upward = [
        f"{where}:{line}: {here} (layer {RANK[here]}) imports {there} (layer {RANK[there]})"
        for here, there, where, line in dependencies()
        if RANK[there] >= RANK[here]
    ]
    assert upward == []


def test_no_two_subpackages_import_each_other_even_through_others() -> None:
    graph: dict[str, set[str]] = {}
    for here, there, _, _ in dependencies():
        graph.setdefault(here, set()).add(there)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(graph.get(start, ()))
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return False

    cycles = sorted(unit for unit in graph if reaches(unit, unit))
    assert cycles == []


def test_only_the_server_the_command_line_and_the_demo_import_the_mcp_sdk() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {target}"
        for module, path in modules()
        if unit(module) not in MAY_IMPORT_MCP
        for target, line in imports(module, path)
        if target.partition(".")[0] in MCP_SDK
    ]
    assert found == []


@pytest.mark.parametrize(
    "init",
    sorted(path for path in PACKAGE.rglob("__init__.py") if path.parent != PACKAGE),
    ids=lambda path: path.parent.relative_to(PACKAGE).as_posix(),
)
def test_every_subpackage_says_what_it_owns_and_what_it_may_import(init: Path) -> None:
    docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    assert docstring, f"{init}: a short docstring says what the subpackage owns"
    assert "import" in docstring.lower(), f"{init}: the docstring says what it may import"


def test_imports_inside_functions_count_too() -> None:
    """`cli` imports `server` (hence the SDK) only inside the commands that need it; the rules
    above would also pass on a reader that found nothing, so this import must be found."""
    assert ("cli", "server") in {(here, there) for here, there, _, _ in dependencies()}
