"""The library's layout: subpackages that import one way, with no cycle anywhere.

The import graph is read from the source (every ``import`` statement, those inside
functions included, so a cycle cannot hide behind a lazy import). Importing
``kwta.a.b`` from outside ``kwta.a`` also runs ``kwta/a/__init__.py``, so that
edge is in the graph too; the root ``kwta/__init__.py`` (the public API) runs
before anything else and may import anything, so no module may import from it.
"""

from __future__ import annotations

import ast
import importlib
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "kwta"

#: The layers, bottom first: a subpackage may import only from layers below it (or its own).
LAYERS: list[set[str]] = [
    {"kwta._version", "kwta.paper", "kwta.utils", "kwta.data"},
    {"kwta.nn"},
    {"kwta.models", "kwta.attacks"},
    {"kwta.zoo", "kwta.analysis"},
    {"kwta.evaluation"},
    {"kwta.training"},
    {"kwta.explorer"},
    {"kwta.doctor", "kwta.cli", "kwta.__main__"},
]


def _modules() -> dict[str, Path]:
    out = {}
    # kwta/models is a link to the top-level models/ folder (pyproject maps it likewise)
    trees = [(PKG, ["kwta"]), (REPO / "models", ["kwta", "models"])]
    for root, prefix in trees:
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = [*prefix, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _resolve(node: ast.ImportFrom, module: str) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> set[str]:
    """The kwta modules ``module`` imports (including package inits run on the way)."""
    tree = ast.parse(MODULES[module].read_text())
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module)
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
            targets |= subs
            if len(subs) < len(node.names):  # names defined in the module itself
                targets.add(base)
    out = set()
    for t in targets:
        if not t.startswith("kwta"):
            continue
        while t not in MODULES and "." in t:
            t = t.rpartition(".")[0]
        out.add(t)
        parts = t.split(".")  # package inits run on the way, unless the importer is inside
        for i in range(2, len(parts)):
            pkg = ".".join(parts[:i])
            if not module.startswith(pkg + ".") and module != pkg:
                out.add(pkg)
    out.discard(module)
    return out


def _graph() -> dict[str, set[str]]:
    return {m: _imports(m) - {"kwta"} for m in MODULES if m != "kwta"}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _layer(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if any(module == unit or module.startswith(unit + ".") for unit in layer):
            return i
    raise AssertionError(f"{module} is in no layer of LAYERS: add its subpackage there")


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = _graph()
    graph["kwta.nn.functional"] = graph["kwta.nn.functional"] | {"kwta.training.loop"}
    cycles = _cycles(graph)
    assert cycles and any("kwta.training.loop" in c and "kwta.nn.functional" in c for c in cycles)


def test_imports_run_one_way_through_the_layers() -> None:
    upward = [
        f"{m} -> {t}" for m, targets in _graph().items() for t in targets if _layer(t) > _layer(m)
    ]
    assert upward == []


def test_no_module_imports_the_root_package() -> None:
    offenders = [m for m in MODULES if m != "kwta" and "kwta" in _imports(m)]
    assert offenders == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_no_top_level_models_package() -> None:
    """The product's models/ folder installs as kwta.models; nothing claims ``models``."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(p == "kwta" or p.startswith("kwta.") for p in setuptools["packages"])
    assert setuptools["package-dir"] == {"kwta.models": "models"}
    for module in MODULES:
        importlib.import_module(module)
    assert "models" not in sys.modules
    import kwta.models

    assert Path(kwta.models.__file__).resolve().parent == REPO / "models"


def test_every_subpackage_is_installed() -> None:
    """pyproject lists exactly the packages there are (a forgotten one would be missing
    from the wheel and from Docker's install)."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert sorted(setuptools["packages"]) == sorted(m for m in MODULES if _is_package(m))


def test_small_files() -> None:
    """One topic per file: no module of the library grows past 800 lines."""
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > 800} == {}


def test_one_definition_of_the_papers_eps() -> None:
    """The number 0.031 (ε) is written once, in kwta.paper; everything else refers to it."""
    hits = defaultdict(list)
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and node.value == 0.031:
                hits[m].append(node.lineno)
    assert set(hits) <= {"kwta.paper"}, dict(hits)
