"""The package's import graph: no circle, and no module imports a layer above its own.

Every import of a `ted` module counts, at the top of a file, inside a function or under `if
TYPE_CHECKING:` (an annotation that names a module above is the same arrow), and so does a module
named as a string (`importlib.import_module`: the CLI's command list, lazy exports). A new module
must be placed in a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import CHECKOUT

ROOT = CHECKOUT

# Bottom first: a module may import its own layer and the ones below.
LAYERS = [
    ["ted.errors", "ted.files", "ted.redact", "ted.control_tokens", "ted.tokens", "ted.prompts", "ted.repo_ids", "ted.limits", "ted.shown", "ted.hub_refs"],
    ["ted.library"],
    ["ted.models", "ted.charts"],
    ["ted.tasks"],
    ["ted.distill", "ted.cards", "ted.system_probe", "ted.run_plan", "ted.run_guard"],
    ["ted.hub", "ted.hub_client", "ted.lm_eval_docs", "ted.stats"],
    ["ted.evaluate", "ted.attribution", "ted.data_sample", "ted.demo", "ted.deploy", "ted.compare"],
    ["ted.eval_tasks", "ted.reproduce"],
    ["ted.commands"],
    ["ted.cli"],
]


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for path in sorted((root / "ted").rglob("*.py")):
        found[".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")] = path
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    mods = modules(root)

    def owner(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():

        class Imports(ast.NodeVisitor):
            def add(self, target: str) -> None:
                module = owner(target)
                if module and module not in (name, "ted"):  # the package root is imported before any submodule
                    graph[name].add(module)

            def visit_Import(self, node: ast.Import) -> None:
                for alias in node.names:
                    if alias.name.startswith("ted"):
                        self.add(alias.name)

            def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
                if node.level == 0 and node.module and node.module.startswith("ted"):
                    for alias in node.names:
                        full = f"{node.module}.{alias.name}"
                        self.add(full if full in mods else node.module)

            def visit_Constant(self, node: ast.Constant) -> None:
                if isinstance(node.value, str) and node.value in mods:
                    self.add(node.value)

        Imports().visit(ast.parse(path.read_text(encoding="utf-8")))
    return graph


def layer(module: str) -> int | None:
    matches = [(len(prefix), index) for index, names in enumerate(LAYERS) for prefix in names if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1] if matches else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return [(a, b) for a, targets in graph.items() for b in targets if a != "ted" and layer(b) > layer(a)]  # type: ignore[operator]


def test_every_module_has_a_layer() -> None:
    assert [m for m in modules() if m != "ted" and layer(m) is None] == []


def test_no_import_circle() -> None:
    assert cycles(import_graph()) == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert upward(import_graph()) == []


def test_the_checks_see_a_circle_and_an_upward_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert layer("ted.library") < layer("ted.distill.pipeline") < layer("ted.reproduce.run") < layer("ted.commands.core") < layer("ted.cli")  # type: ignore[operator]


def test_a_type_checking_import_is_an_arrow(tmp_path: Path) -> None:
    """The circle `control_tokens ↔ library` once hid behind `if TYPE_CHECKING:`; planted again, both checks see it."""
    (tmp_path / "ted").mkdir()
    (tmp_path / "ted" / "library.py").write_text("from ted.control_tokens import find_control\n")
    (tmp_path / "ted" / "control_tokens.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ted.library import Library\n"
    )
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["ted.control_tokens", "ted.library"]]
    assert upward(graph) == [("ted.control_tokens", "ted.library")]


def test_reproduce_may_not_climb_into_the_commands(tmp_path: Path) -> None:
    """`ted reproduce` once ran `ted distill` through its Typer command; planted again, it is an upward arrow."""
    (tmp_path / "ted" / "reproduce").mkdir(parents=True)
    (tmp_path / "ted" / "commands").mkdir()
    (tmp_path / "ted" / "commands" / "core.py").write_text("")
    (tmp_path / "ted" / "reproduce" / "units.py").write_text("def distill():\n    from ted.commands.core import distill\n")
    assert upward(import_graph(tmp_path)) == [("ted.reproduce.units", "ted.commands.core")]


MAX_MODULE_LINES = 450  # a module past this does two jobs: split it into rooms (docs/architecture.md)


def test_no_module_is_over_the_line_limit() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}
