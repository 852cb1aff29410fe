"""No import cycle among ``kit`` modules (and a check that the checker finds one when there is one).

The graph has one node per module under ``kit/`` (a package is its ``__init__``) and one edge per
``import`` / ``from ... import`` statement anywhere in the module: at module level and inside functions
(a function-level import only postpones a cycle to the first call), but not under ``if TYPE_CHECKING:``
(never executed). Relative imports are resolved against the importing module's package.
``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``'s ``__init__``.
Dynamic imports (``importlib.import_module``, the lazy names of ``kit/__init__``) are not seen.

Packages. Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__`` first; those implicit edges
from a module to its ancestors are NOT counted. An ``__init__`` that re-exports its own submodules
(``a.b -> a.b.c``) would otherwise be a cycle by construction, and it is safe: when ``a.b.c`` is
imported first, ``a/b/__init__`` runs, imports ``a.b.c`` (which finds ``a.b`` in ``sys.modules`` and
needs only its siblings), and completes. What IS counted is an explicit import of the parent package
from inside it (``from kit.analysis.slo import SloSpec`` in ``kit/analysis/slo/alerts.py`` while
``kit/analysis/slo/__init__`` imports ``alerts``): that is a real hazard, because whichever side is
imported first, the other finds it half-initialised and the name missing (an ImportError at import
time, or at the first call for a function-level import). So inside a package, submodules import their
siblings by their full module names, never the package itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

KIT = Path(__file__).resolve().parents[1] / "kit"


def _module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package directory ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node`` at any depth, skipping the bodies of ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            found.append(child)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                found.extend([other] if isinstance(other, ast.Import | ast.ImportFrom) else _import_nodes(other))
        else:
            found.extend(_import_nodes(child))
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that one import statement of ``module`` names."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    out = set()
    for alias in node.names:
        if f"{source}.{alias.name}" in modules:
            out.add(f"{source}.{alias.name}")
        elif source in modules:
            out.add(source)
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package tree it imports (self-imports left out)."""
    files = _module_names(root)
    names = set(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[module] = {t for node in _import_nodes(tree)
                         for t in _targets(node, module, is_package, names) if t != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search, modules in sorted order)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_kit_has_no_import_cycle() -> None:
    graph = import_graph(KIT)
    assert len(graph) > 40 and "kit.analysis.slo.report" in graph  # the walk saw the whole kit
    assert graph["kit.analysis.slo.backtest"] >= {"kit.analysis.slo.alerts", "kit.analysis.slo.sli"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


SLO_LAYERS = ("spec", "loaders", "sli", "parameters", "saturation", "alerts", "backtest", "report")


def test_slo_modules_import_only_the_layers_before_them() -> None:
    """spec <- loaders <- sli <- parameters, saturation <- alerts <- backtest <- report; none imports the package."""
    graph = import_graph(KIT)
    rank = {f"kit.analysis.slo.{name}": i for i, name in enumerate(SLO_LAYERS)}
    assert set(rank) | {"kit.analysis.slo"} == {m for m in graph if m.startswith("kit.analysis.slo")}
    backwards = sorted((module, target) for module in rank for target in graph[module]
                       if target == "kit.analysis.slo" or rank.get(target, -1) >= rank[module])
    assert backwards == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_checker_resolves_relative_imports_and_ignores_type_checking(tmp_path: Path) -> None:
    pkg = _tree(tmp_path, {
        "pkg/__init__.py": "from pkg.b import thing\n",                          # re-export: not a cycle
        "pkg/a.py": "import os\nfrom .b import thing\n",
        "pkg/b.py": "from typing import TYPE_CHECKING\nthing = 1\n"
                    "if TYPE_CHECKING:\n    from pkg.a import os\nelse:\n    import json\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from .. import a\nfrom ..b import thing\n",
    })
    graph = import_graph(pkg)
    assert graph == {"pkg": {"pkg.b"}, "pkg.a": {"pkg.b"}, "pkg.b": set(), "pkg.sub": set(),
                     "pkg.sub.c": {"pkg.a", "pkg.b"}}
    assert find_cycle(graph) is None


def test_checker_finds_a_function_level_cycle(tmp_path: Path) -> None:
    pkg = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import g\n",
        "pkg/b.py": "def g():\n    from . import a\n    return a\n",
    })
    assert find_cycle(import_graph(pkg)) == ["pkg.a", "pkg.b", "pkg.a"]


def test_checker_finds_a_submodule_importing_its_package(tmp_path: Path) -> None:
    pkg = _tree(tmp_path, {
        "pkg/__init__.py": "from pkg.spec import Spec\nfrom pkg.alerts import plan\n",
        "pkg/spec.py": "class Spec: ...\n",
        "pkg/alerts.py": "from pkg import Spec\ndef plan(): return Spec\n",
    })
    assert find_cycle(import_graph(pkg)) == ["pkg", "pkg.alerts", "pkg"]
