"""The package's layers, read from every module's imports (the syntax tree, so lazy imports inside
functions count too): L0 ``optim`` and ``masks`` (torch, numpy and the standard library only; a mask
never imports an optimizer), L1 ``experiment``, L2 ``book``, L3 ``cli``. Imports only point down, and
no two modules import each other, directly or through others."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sparsam"

# Rank of each part of the package; a module may import modules of its own rank or lower. Inside L0,
# masks sit below optim. The helpers at the package root (_checks, _dist, _types, ...) sit below all.
RANKS = {"_root": 0, "masks": 1, "optim": 2, "experiment": 3, "book": 4, "cli": 5, "__main__": 5, "__init__": 3}
# sparsam/__init__.py re-exports the optimizer only (rank 3 lets it import L0; it must not import L1 or up,
# which the third-party check below enforces: importing sparsam needs torch and numpy alone).
L0_THIRD_PARTY = {"torch", "numpy"}


def module_name(path: Path) -> str:
    return ".".join(("sparsam", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def part(module: str) -> str:
    """The layer part of a module: ``sparsam.optim.sam`` -> ``optim``, ``sparsam._checks`` -> ``_root``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    if parts[1] in RANKS:
        return parts[1]
    return "_root"


def imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved; ``from . import x``
    gives the module ``x`` where it is one)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            found.add(base_name)
            for alias in node.names:  # `from . import sam` imports the module sparsam.optim.sam
                candidate = f"{base_name}.{alias.name}"
                if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists() or \
                        (PACKAGE.parent / candidate.replace(".", "/") / "__init__.py").exists():
                    found.add(candidate)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: {i for i in imports(path) if i in MODULES and i != name} for name, path in MODULES.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} imports {b}" for a, targets in graph.items() for b in targets
                  if RANKS[part(b)] > RANKS[part(a)] and b != "sparsam")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles (strongly connected components with more than one module), by Tarjan's algorithm.
    A package and the modules inside it are not a circle: ``from .. import x`` passes through the
    package, and a package's ``__init__`` re-exports what is inside it."""
    edges = {a: {b for b in targets if not (a.startswith(b + ".") or b.startswith(a + "."))}
             for a, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_its_four_parts():
    assert {part(m) for m in MODULES} == {"__init__", "_root", "masks", "optim", "experiment", "book", "cli",
                                          "__main__"}


def test_imports_only_point_down():
    assert upward_imports(GRAPH) == []


def test_no_module_imports_itself_through_others():
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("module", [m for m in MODULES if RANKS[part(m)] <= RANKS["optim"] or m == "sparsam"])
def test_the_optimizer_core_needs_only_torch_numpy_and_the_standard_library(module):
    third_party = {i.split(".")[0] for i in imports(MODULES[module])} - {"sparsam"} - set(sys.stdlib_module_names)
    assert third_party <= L0_THIRD_PARTY, f"{module} imports {sorted(third_party - L0_THIRD_PARTY)}"
    inside = {i for i in GRAPH[module]}
    assert all(RANKS[part(i)] <= RANKS["optim"] for i in inside), f"{module} imports {sorted(inside)}"


def test_the_checks_fail_on_constructed_bad_imports():
    """The rules find what they are for: an upward import, a circle, a mask importing an optimizer."""
    bad = {"sparsam.optim.sam": {"sparsam.experiment.train"}, "sparsam.experiment.train": {"sparsam.optim.sam"},
           "sparsam.masks.patterns": {"sparsam.optim.ssam"}, "sparsam.optim.ssam": set()}
    assert upward_imports(bad) == ["sparsam.masks.patterns imports sparsam.optim.ssam",
                                   "sparsam.optim.sam imports sparsam.experiment.train"]
    assert cycles(bad) == [["sparsam.experiment.train", "sparsam.optim.sam"]]


def private_imports(module: str, source: str) -> list[str]:
    """The private names (``_name``) that ``module`` (its ``source``) imports from another module of the package:
    ``from x import _name``, relative or absolute. A private module (``from .. import _checks``, ``from .._timing
    import sync``) is the package's own helper and may be imported; what it keeps private may not."""
    package = module if MODULES.get(module, Path()).name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "sparsam"):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            found += [f"{module} imports {alias.name} from {origin}" for alias in node.names
                      if alias.name.startswith("_") and f"{origin}.{alias.name}" not in MODULES]
    return found


def test_no_module_imports_another_modules_private_names():
    assert [found for name, path in MODULES.items() for found in private_imports(name, path.read_text())] == []


def test_the_private_import_check_finds_them():
    source = ("from ..experiment.store import _folder\nfrom sparsam.book.study import _sides\n"
              "from .. import _checks\nfrom .._timing import sync as _sync\nfrom .stats import margins\n")
    assert private_imports("sparsam.book.probe", source) == [
        "sparsam.book.probe imports _folder from sparsam.experiment.store",
        "sparsam.book.probe imports _sides from sparsam.book.study"]
