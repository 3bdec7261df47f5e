"""The project's import graph, read from the source with ``ast`` (issue 12).

Two rules, checked per app:

- no import circle among the modules of ``clusters/`` or of ``rollouts/`` (their ``api/``
  packages included). Every import statement counts, function-level ones too: an import moved
  into a function still runs, it only hides the circle from the module's top. Imports under
  ``if TYPE_CHECKING:`` do not count (they never run).
- no module of ``sidecarhub/``, ``clusters/`` or ``rollouts/`` uses a leading-underscore name of
  another project module (``from x import _y``, or ``import x`` then ``x._y``). Dunder names
  (``__version__``) are allowed.

Pure: no Django setup, no database; the helpers are tested on synthetic modules below so that
the checks are known to be able to fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("sidecarhub", "clusters", "rollouts")


# --- helpers --------------------------------------------------------------------------------------


def module_name(path: Path, root: Path) -> str:
    """``clusters/api/views.py`` -> ``clusters.api.views``; ``clusters/__init__.py`` -> ``clusters``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_sources(root: Path, package: str) -> dict[str, Path]:
    """Module name -> source file for every module of ``package`` (migrations left out)."""
    sources: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        if "migrations" in path.relative_to(root).parts:
            continue
        sources[module_name(path, root)] = path
    return sources


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (its ``else`` runs)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported_modules(tree: ast.AST, module: str, *, is_package: bool, known: Iterable[str]) -> set[str]:
    """The modules that ``module`` imports at run time (any depth, TYPE_CHECKING excluded).

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a known module (a
    submodule), else ``pkg``."""
    known_modules = set(known)
    found: set[str] = set()
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node)
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in known_modules else source)
    return found


def import_graph(sources: Mapping[str, str]) -> dict[str, set[str]]:
    """Module -> the modules (among ``sources``) it imports. ``sources`` maps module names to
    source text; a name ending in ``.__init__`` marks a package and is stored without it."""
    parsed: dict[str, tuple[ast.AST, bool]] = {}
    for name, text in sources.items():
        is_package = name.endswith(".__init__")
        parsed[name.removesuffix(".__init__")] = (ast.parse(text), is_package)
    graph: dict[str, set[str]] = {}
    for name, (tree, is_package) in parsed.items():
        targets = imported_modules(tree, name, is_package=is_package, known=parsed)
        graph[name] = {target for target in targets if target in parsed and target != name}
    return graph


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, component) for component in sorted(components)]


def _cycle_in(graph: Mapping[str, Iterable[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, staying in the component."""
    members = set(component)
    start = component[0]
    paths: dict[str, list[str]] = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph.get(node, ())):
                if target == start:
                    return [*paths[node], start]
                if target in members and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {component}")  # pragma: no cover


@dataclass(frozen=True)
class PrivateUse:
    """``module`` (line ``line``) uses ``name``, private to ``owner``."""

    module: str
    line: int
    owner: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} uses {self.owner}.{self.name}"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_project(module: str) -> bool:
    return module.split(".")[0] in PROJECT_PACKAGES


def private_uses(tree: ast.AST, module: str, *, is_package: bool) -> list[PrivateUse]:
    """Leading-underscore names of other project modules that ``module`` uses: ``from x import
    _y`` and ``x._y`` where ``x`` is a name bound by ``import x [as x]`` (any depth, type-only
    imports included: they are uses too)."""
    found: list[PrivateUse] = []
    bound: dict[str, str] = {}  # local name -> project module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_project(alias.name) and alias.name != module:
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node)
            if not _is_project(source) or source == module:
                continue
            for alias in node.names:
                if _private(alias.name):
                    found.append(PrivateUse(module, node.lineno, source, alias.name))
                else:
                    # ``from pkg import submodule`` binds a module too; attribute checks below.
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            dotted = _dotted(node.value)
            if dotted is None:
                continue
            head, _, rest = dotted.partition(".")
            if head in bound:
                owner = ".".join(part for part in (bound[head], rest) if part)
                if owner != module:
                    found.append(PrivateUse(module, node.lineno, owner, node.attr))
    return sorted(found, key=lambda use: (use.line, use.name))


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def _module_bound_uses(uses: list[PrivateUse], modules: set[str]) -> list[PrivateUse]:
    """Keep attribute uses only where the owner is a module (``from pkg import Class`` then
    ``Class._x`` is not a cross-module use of a module's private name)."""
    return [use for use in uses if use.owner in modules]


def _sources_of(package: str) -> dict[str, str]:
    return {
        (f"{name}.__init__" if path.name == "__init__.py" else name): path.read_text(encoding="utf-8")
        for name, path in package_sources(ROOT, package).items()
    }


def private_uses_in(package: str) -> list[PrivateUse]:
    """Every cross-module private use in ``package`` (owners anywhere in the project)."""
    modules = {name for project in PROJECT_PACKAGES for name in package_sources(ROOT, project)} | set(
        PROJECT_PACKAGES
    )
    uses: list[PrivateUse] = []
    for name, path in package_sources(ROOT, package).items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        uses.extend(
            _module_bound_uses(private_uses(tree, name, is_package=path.name == "__init__.py"), modules)
        )
    return uses


# --- the helpers can fail -------------------------------------------------------------------------


def test_a_two_module_cycle_is_found() -> None:
    graph = import_graph(
        {
            "app.__init__": "",
            "app.a": "from app.b import thing\n",
            "app.b": "def late():\n    from app import a\n",
            "app.c": "import app.a\n",
        }
    )
    assert graph["app.b"] == {"app.a"}
    assert find_cycles(graph) == [["app.a", "app.b", "app.a"]]


def test_type_checking_imports_and_relative_imports() -> None:
    graph = import_graph(
        {
            "app.__init__": "",
            "app.a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.b import B\n",
            "app.b": "from . import a\nfrom .c import x\n",
            "app.c": "",
        }
    )
    assert graph == {"app": set(), "app.a": set(), "app.b": {"app.a", "app.c"}, "app.c": set()}
    assert find_cycles(graph) == []


def test_longer_cycles_are_reported_one_per_component() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["d", "e", "d"]]


def test_private_uses_are_found() -> None:
    tree = ast.parse(
        "import clusters.push\n"
        "import rollouts.patching as patching\n"
        "from clusters import kube\n"
        "from clusters.push import _requeue, __all__\n"
        "def f():\n"
        "    clusters.push._transition(1)\n"
        "    patching._uid({})\n"
        "    kube._REDACTED\n"
        "    self._private\n"
        "    patching.__name__\n"
    )
    uses = private_uses(tree, "clusters.admin", is_package=False)
    assert [str(use) for use in uses] == [
        "clusters.admin:4 uses clusters.push._requeue",
        "clusters.admin:6 uses clusters.push._transition",
        "clusters.admin:7 uses rollouts.patching._uid",
        "clusters.admin:8 uses clusters.kube._REDACTED",
    ]


# --- the project ----------------------------------------------------------------------------------


@pytest.mark.parametrize("app", ["clusters", "rollouts"])
def test_no_import_circle_within_app(app: str) -> None:
    cycles = find_cycles(import_graph(_sources_of(app)))
    assert not cycles, f"import circles in {app}/: " + "; ".join(" → ".join(c) for c in cycles)


@pytest.mark.parametrize("app", ["sidecarhub", "clusters", "rollouts"])
def test_no_private_name_imported_across_modules(app: str) -> None:
    uses = private_uses_in(app)
    assert not uses, f"{len(uses)} private name(s) used across modules in {app}/:\n" + "\n".join(
        map(str, uses)
    )
