"""The layout shows the architecture: imports only point down the layers, no import cycles, short modules.

Layers, bottom to top (a module may import its own layer or lower ones):

0. core, no Lightning: ``seeding``, ``_atomic``, ``synthetic``, ``artifact`` (and the package ``__init__``)
1. pure torch: ``networks``, ``augment``, ``losses``, ``training``, ``visualize``
2. ``data``
3. ``regularizers``, ``pretrained``
4. ``methods`` (with the export callback every method returns, ``methods/export.py``)
5. Lightning glue: ``callbacks``, ``evaluation``
6. entry points: ``cli``, ``commands``, ``__main__``
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lightning_dd"
MAX_LINES = 400

LAYERS: dict[str, int] = {
    "lightning_dd": 0, "lightning_dd.seeding": 0, "lightning_dd._atomic": 0, "lightning_dd.synthetic": 0,
    "lightning_dd.artifact": 0,
    "lightning_dd.networks": 1, "lightning_dd.augment": 1, "lightning_dd.losses": 1, "lightning_dd.training": 1,
    "lightning_dd.visualize": 1,
    "lightning_dd.data": 2,
    "lightning_dd.regularizers": 3, "lightning_dd.pretrained": 3,
    "lightning_dd.methods": 4,
    "lightning_dd.callbacks": 5, "lightning_dd.evaluation": 5,
    "lightning_dd.cli": 6, "lightning_dd.commands": 6, "lightning_dd.__main__": 6,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    best = max((prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")), key=len)
    return LAYERS[best]


def imports(path: Path, known: set[str]) -> set[str]:
    """The lightning_dd modules ``path`` imports (at any level of the file, lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


GRAPH = {name: imports(path, set(modules())) - {name} for name, path in modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_every_module_has_a_layer_and_imports_only_point_down(module: str) -> None:
    upward = sorted(dep for dep in GRAPH[module] if layer(dep) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports higher layers: {upward}"


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep):], dep]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)


def test_the_checks_can_fail() -> None:
    # the upward import methods -> callbacks that the layout forbids is detected by the rule above
    assert layer("lightning_dd.callbacks.evaluator") > layer("lightning_dd.methods.base")
    assert layer("lightning_dd.data.real") > layer("lightning_dd.augment.zca")


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_module_is_over_400_lines(module: str) -> None:
    lines = len(modules()[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (at most {MAX_LINES}): split it by job"
