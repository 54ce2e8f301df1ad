"""The import layers of the project, read from the source (ast), top-level and function-level imports alike:

    config  ←  warehouse  ←  pipelines / api        ui → config only (it talks to the API over HTTP)
    stack (the launcher) may import everything; nothing in the other packages imports stack

and no import cycle between the project's modules. An import names the module it names (`from api import auth`
names api.auth); the parent packages Python also runs on the way are not counted as imports of their own.
The last tests run the same checker on a small tree that breaks every rule, so it is known to be able to fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.settings import REPO_ROOT

PACKAGES = ("config", "warehouse", "pipelines", "api", "ui", "stack")
# what each package must not import, and why
FORBIDDEN = {
    "config": (frozenset(PACKAGES) - {"config"}, "config is the bottom layer: it imports no other package"),
    "warehouse": (frozenset({"pipelines", "api", "ui", "stack"}), "warehouse sits on config alone"),
    "pipelines": (frozenset({"api", "ui", "stack"}), "pipelines sit on warehouse and config"),
    "api": (frozenset({"pipelines", "ui", "stack"}), "api sits on warehouse and config"),
    "ui": (frozenset(PACKAGES) - {"ui", "config"}, "ui imports config only and talks to the API over HTTP"),
    "stack": (frozenset(), "stack, the launcher, may import everything"),
}


@dataclass(frozen=True)
class Import:
    importer: str  # module, e.g. "api.notices"
    imported: str  # the project module it names, e.g. "warehouse.paths"
    where: str  # "api/notices.py:20"
    in_function: bool

    def __str__(self) -> str:
        return f"{self.where} ({self.importer}) imports {self.imported}" + (
            " in a function" if self.in_function else ""
        )


def project_modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Module name → file of every module of the packages (a package is its __init__.py)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _named_module(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is a project module."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in modules:
            return ".".join(parts[:n])
    return None


def _function_lines(tree: ast.AST) -> set[int]:
    """Lines of the imports that sit inside a function (they run when it is called)."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inside |= {n.lineno for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)}
    return inside


def imports_of(module: str, path: Path, modules: dict[str, Path], root: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    in_function = _function_lines(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .feed import x, from .. import y
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            names = [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        where = f"{path.relative_to(root)}:{node.lineno}"
        for name in names:
            imported = _named_module(name, modules)
            if imported is not None and imported != module:
                found.append(Import(module, imported, where, node.lineno in in_function))
    return found


def import_graph(root: Path = REPO_ROOT, packages: Iterable[str] = PACKAGES) -> list[Import]:
    modules = project_modules(root, packages)
    return [i for module, path in modules.items() for i in imports_of(module, path, modules, root)]


def layer_violations(imports: Iterable[Import], package: str) -> list[str]:
    forbidden, why = FORBIDDEN[package]
    return sorted(
        f"{i}: {package} must not import {i.imported.split('.')[0]} ({why})"
        for i in imports
        if i.importer.split(".")[0] == package and i.imported.split(".")[0] in forbidden
    )


def import_cycles(imports: Iterable[Import]) -> list[list[str]]:
    """The cycles among the modules: in each group of modules that import each other, the shortest cycle
    through each member (its modules from the smallest name, that one repeated at the end), each cycle once."""
    edges: dict[str, set[str]] = {}
    for i in imports:
        edges.setdefault(i.importer, set()).add(i.imported)
        edges.setdefault(i.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            connect(node)
    cycles = set()
    for group in groups:
        for member in group:
            cycle = _cycle_through(member, group, edges)[:-1]
            first = cycle.index(min(cycle))
            cycles.add(tuple(cycle[first:] + cycle[:first]))
    return sorted([*cycle, cycle[0]] for cycle in cycles)


def _cycle_through(start: str, group: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest path from `start` back to itself inside `group` (breadth first)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(edges[node] & group):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


def describe_cycles(cycles: list[list[str]], imports: Iterable[Import]) -> list[str]:
    """Each cycle with the import that makes each of its steps."""
    first = {}
    for i in imports:
        first.setdefault((i.importer, i.imported), i)
    return [
        " → ".join(cycle) + ": " + "; ".join(str(first[pair]) for pair in zip(cycle, cycle[1:])) for cycle in cycles
    ]


# -- the project --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    return import_graph()


def test_the_graph_holds_the_imports_it_should(graph):
    """Not vacuous: top-level, function-level and relative imports are all read."""
    pairs = {(i.importer, i.imported, i.in_function) for i in graph}
    assert ("api.notices", "warehouse.moderation_snapshot", False) in pairs
    assert ("api", "api.auth", True) in pairs  # create_app registers the blueprints
    assert any(importer == "ui.app" and imported.startswith("ui.") for importer, imported, _ in pairs)  # from .x
    assert {i.importer.split(".")[0] for i in graph} == set(PACKAGES)


@pytest.mark.parametrize("package", [p for p in PACKAGES if FORBIDDEN[p][0]])
def test_each_package_imports_only_the_layers_below_it(graph, package):
    violations = layer_violations(graph, package)
    assert violations == [], "\n".join(violations)


def test_no_modules_import_each_other_in_a_cycle(graph):
    cycles = describe_cycles(import_cycles(graph), graph)
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


# -- the checker on a tree that breaks every rule -----------------------------------------------------

BAD_TREE = {
    "config/__init__.py": "",
    "config/settings.py": "from warehouse import paths\n",
    "warehouse/__init__.py": "",
    "warehouse/paths.py": "import config.settings\n\ndef later():\n    from api import views\n",
    "api/__init__.py": "",
    "api/views.py": "from pipelines.jobs import run\nfrom . import helpers\n",
    "api/helpers.py": "def go():\n    from api.views import handler\n",
    "pipelines/__init__.py": "",
    "pipelines/jobs.py": "from ui import page\nimport stack\n",
    "ui/__init__.py": "",
    "ui/page.py": "from config import settings\nfrom warehouse.paths import later\nimport requests\n",
    "stack/__init__.py": "",
    "stack/up.py": "import api.views, pipelines.jobs, ui.page\n",
}


@pytest.fixture
def bad_tree(tmp_path) -> list[Import]:
    for name, text in BAD_TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return import_graph(tmp_path)


def test_the_checker_names_every_layer_violation(bad_tree):
    found = {p: layer_violations(bad_tree, p) for p in PACKAGES}
    assert found == {
        "config": [
            "config/settings.py:1 (config.settings) imports warehouse.paths: config must not import warehouse "
            "(config is the bottom layer: it imports no other package)"
        ],
        "warehouse": [
            "warehouse/paths.py:4 (warehouse.paths) imports api.views in a function: warehouse must not import "
            "api (warehouse sits on config alone)"
        ],
        "api": [
            "api/views.py:1 (api.views) imports pipelines.jobs: api must not import pipelines "
            "(api sits on warehouse and config)"
        ],
        "pipelines": [
            "pipelines/jobs.py:1 (pipelines.jobs) imports ui.page: pipelines must not import ui "
            "(pipelines sit on warehouse and config)",
            "pipelines/jobs.py:2 (pipelines.jobs) imports stack: pipelines must not import stack "
            "(pipelines sit on warehouse and config)",
        ],
        "ui": [
            "ui/page.py:2 (ui.page) imports warehouse.paths: ui must not import warehouse "
            "(ui imports config only and talks to the API over HTTP)"
        ],
        "stack": [],
    }


def test_the_checker_finds_cycles_also_through_function_level_imports(bad_tree):
    cycles = import_cycles(bad_tree)
    assert cycles == [
        ["api.helpers", "api.views", "api.helpers"],
        ["api.views", "pipelines.jobs", "ui.page", "warehouse.paths", "api.views"],
        ["config.settings", "warehouse.paths", "config.settings"],
    ]
    assert describe_cycles(cycles, bad_tree)[0] == (
        "api.helpers → api.views → api.helpers: api/helpers.py:2 (api.helpers) imports api.views in a function; "
        "api/views.py:2 (api.views) imports api.helpers"
    )
    # the launcher importing everything makes no cycle by itself
    assert not any("stack.up" in cycle for cycle in cycles)
