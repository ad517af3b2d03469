"""The dependency direction of DESIGN.md, checked on the source: controller -> providers -> channel."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by a file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package_parts = _module_name(path).split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    found.update(f"{module}.{alias.name}" for alias in node.names)
            else:
                module = node.module or ""
            found.add(module)
    return found


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    return ".".join(["mngr", *parts])


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _files("remote_helper"), ids=lambda p: p.name)
def test_helper_imports_only_the_standard_library(path: Path) -> None:
    for module in _imports(path):
        top = module.split(".")[0]
        if module.startswith("mngr.remote_helper"):
            continue
        assert top in sys.stdlib_module_names, f"{path.name} imports {module}"


@pytest.mark.parametrize("path", _files("providers"), ids=lambda p: p.name)
def test_providers_use_only_the_channel_layer_of_the_controller(path: Path) -> None:
    # (paths: where mngr keeps its files on this machine; durations: how users write them;
    # verbosity: what -v shows of a provider's actions; progress: the line long work draws
    # on the user's terminal; all stdlib only at load, like errors)
    allowed = ("mngr.controller.channel", "mngr.controller.errors", "mngr.controller.plugin_spec",
               "mngr.controller.paths", "mngr.controller.durations", "mngr.controller.verbosity",
               "mngr.controller.progress")
    for module in _imports(path):
        if module.startswith("mngr.controller"):
            assert module.startswith(allowed), f"{path.name} imports {module}"


def test_verbosity_which_providers_use_is_standard_library_only() -> None:
    modules = _imports(ROOT / "controller" / "verbosity.py")
    assert modules and all(module.split(".")[0] in sys.stdlib_module_names or module == "__future__"
                           for module in modules), modules


@pytest.mark.parametrize("path", _files("controller/channel"), ids=lambda p: p.name)
def test_channel_layer_depends_on_nothing_above_it(path: Path) -> None:
    for module in _imports(path):
        if module.startswith("mngr."):
            assert module.startswith(("mngr.controller.channel", "mngr.controller.errors", "mngr.remote_helper")), (
                f"{path.name} imports {module}"
            )


def test_the_checker_sees_relative_imports() -> None:
    """Guard against a checker that passes because it finds nothing."""
    imports = _imports(ROOT / "controller" / "channel" / "rpc.py")
    assert "mngr.controller.errors" in imports
    assert "mngr.controller.channel.protocol" in imports


def _helper_graph() -> dict[str, set[str]]:
    """Each helper module's imports of other helper modules (any import, even in a function)."""
    prefix = "mngr.remote_helper."
    graph = {}
    for path in _files("remote_helper"):
        name = _module_name(path)
        if name.endswith(".__init__"):
            continue
        graph[name] = {module for module in _imports(path)
                       if module.startswith(prefix) and module != name and not module.endswith(".__init__")}
    return graph


def test_the_helper_has_no_import_cycle() -> None:
    graph = _helper_graph()
    state: dict[str, str] = {}  # "visiting" or "done"
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = "visiting"
        stack.append(module)
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "visiting":
                cycle = [*stack[stack.index(imported):], imported]
                pytest.fail("import cycle: " + " -> ".join(part.rsplit(".", 1)[-1] for part in cycle))
            if imported not in state:
                visit(imported)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("path", _files("remote_helper") + _files("controller") + _files("providers"),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_module_reaches_into_a_helper_modules_private_names(path: Path) -> None:
    """A helper module's underscored names are its own: others use what it makes public."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    helper_modules = {file.stem for file in _files("remote_helper")}
    own = path.stem if path.parent.name == "remote_helper" else None
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.startswith("_")
                and not node.attr.startswith("__") and node.value.id in helper_modules and node.value.id != own):
            pytest.fail(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
