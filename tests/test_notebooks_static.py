"""Notebooks stay thin and parameterized: a question first, one typed parameters cell with known
names, no definitions of their own, and no outputs in git."""

from __future__ import annotations

import ast

import nbformat
import pytest

from kit.config import RunConfig
from kit.runner import NOTEBOOKS, RUN_PARAMETERS, declared_parameters, notebook_path, run_stages

KNOWN = set(RunConfig().to_dict()) | set(RUN_PARAMETERS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_thin_and_parameterized(name: str) -> None:
    nb = nbformat.read(notebook_path(name), as_version=4)
    assert nb.cells[0].cell_type == "markdown" and "question" in nb.cells[0].source.lower()
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for node in ast.parse(params[0].source).body:
        assert isinstance(node, ast.AnnAssign), f"{name}: parameters must be typed: {ast.unparse(node)}"
        line = params[0].source.splitlines()[node.lineno - 1]
        assert "#" in line, f"{name}: parameter without a comment: {line}"
    assert set(declared_parameters(name)) <= KNOWN
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not cell.get("outputs") and not cell.get("execution_count"), f"{name}: committed outputs"
        tree = ast.parse(cell.source)
        defined = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)]
        assert not defined, f"{name}: define functions in kit/, not in the notebook"
        assert len(cell.source.splitlines()) <= 25, f"{name}: a long code cell belongs in kit/"


def test_the_ranking_notebook_runs_after_the_notebooks_it_ranks() -> None:
    stages = run_stages(list(NOTEBOOKS))
    stage_of = {name: i for i, stage in enumerate(stages) for name in stage}
    assert sorted(stage_of) == sorted(NOTEBOOKS)
    assert stage_of["50_optimizations"] > max(stage_of["30_bottlenecks"], stage_of["40_cache_simulation"])
    assert stages[-1] == ["90_strategy_export"] and len(stages[0]) == len(NOTEBOOKS) - 2
    assert run_stages(["50_optimizations", "90_strategy_export"]) == [["50_optimizations"], ["90_strategy_export"]]
