"""Run the notebooks headlessly with papermill, export HTML reports in-process, write a manifest.

A run writes into ``<out>/.staging-<run_id>/`` and is swapped into ``<out>/runs/<run_id>`` only when
every notebook succeeded; ``<out>/latest``, ``<out>/reports`` and ``<out>/strategy`` are symlinks that
are repointed atomically, so a failed run leaves the previous outputs intact. Its entry page is
``<out>/reports/index.html`` (kit.report.entry), written in the staging folder with everything else.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.config import DEFAULT_OUT, NOTEBOOKS_DIR, PROJECT_ROOT, ParameterError, RunConfig
from kit.errors import NotebookFailed

if TYPE_CHECKING:
    from kit.analysis.coverage import Coverage

NOTEBOOKS = (
    "00_data_overview",
    "10_kpis",
    "20_slos_alerting",
    "30_bottlenecks",
    "40_cache_simulation",
    "50_optimizations",
    "60_scaling",
    "90_strategy_export",
)
EXPORT_NOTEBOOK = "90_strategy_export"  # runs after the others, on their results
RANKING_NOTEBOOK = "50_optimizations"  # ranks what 30_bottlenecks and 40_cache_simulation found, so runs after them
# Parameters the runner injects itself (not part of RunConfig).
RUN_PARAMETERS = ("results_dir", "strategy_dir", "headless")
KEEP_RUNS = 5
CELL_TIMEOUT_S = 900  # a cell still running after this fails the run (a hung kernel must not hang CI)
MANIFEST_PACKAGES = ("perfkit", "duckdb", "pandas", "numpy", "plotly", "papermill", "nbconvert",
                     "numba", "libcachesim", "jupyterlab", "kaleido", "itables")


@dataclass(frozen=True)
class NotebookTiming:
    name: str
    execute_s: float
    export_s: float


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    timings: list[NotebookTiming] = field(default_factory=list)
    seconds: float = 0.0


def notebook_path(name: str) -> Path:
    return NOTEBOOKS_DIR / f"{name}.ipynb"


def shareable_parameters(config: RunConfig) -> dict[str, Any]:
    """The run's parameters as saved with its outputs: a database DSN's password is redacted."""
    from kit.ingest.pg_stat_statements import redact_dsn  # imports duckdb: not at module level (papermill workers)

    values = config.to_dict()
    if values.get("database_dsn"):
        values["database_dsn"] = redact_dsn(str(values["database_dsn"]))
    return values


def declared_parameters(name: str) -> list[str]:
    """Names assigned in a notebook's cell tagged ``parameters`` (read with ``ast``, so annotations
    such as ``str | None`` are understood)."""
    import ast

    import nbformat

    nb = nbformat.read(notebook_path(name), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"notebook {name} must have exactly one cell tagged 'parameters', found {len(cells)}")
    names = []
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def select_notebooks(only: list[str] | None) -> list[str]:
    """Notebooks to run, in order; ``only`` accepts full names or their two-digit prefixes."""
    if not only:
        return list(NOTEBOOKS)
    chosen = []
    for wanted in only:
        matches = [n for n in NOTEBOOKS if n == wanted or n.split("_", 1)[0] == wanted or n.split("_", 1)[1] == wanted]
        if not matches:
            raise ParameterError(f"unknown notebook {wanted!r} in --only; choose from {', '.join(NOTEBOOKS)}")
        chosen.extend(matches)
    return [n for n in NOTEBOOKS if n in chosen]


def run_stages(names: list[str]) -> list[list[str]]:
    """``names`` in the stages they run in, each stage after the one before: the analyses that only read
    the warehouse (at once, up to ``workers``), then 50_optimizations (it ranks what 30 and 40 found),
    then 90_strategy_export. Empty stages are left out."""
    later = (RANKING_NOTEBOOK, EXPORT_NOTEBOOK)
    stages = [[n for n in names if n not in later], *([n for n in names if n == last] for last in later)]
    return [stage for stage in stages if stage]


def notebook_parameters(name: str, config: RunConfig, run_values: dict[str, Any]) -> dict[str, Any]:
    """The values to inject into one notebook: those of its declared names we know."""
    declared = declared_parameters(name)
    known = set(config.to_dict()) | set(RUN_PARAMETERS)
    stray = sorted(set(declared) - known)
    if stray:
        raise ParameterError(f"notebook {name} declares parameter(s) the kit does not know: {', '.join(stray)}")
    values = {**config.to_dict(), **run_values}
    return {k: values[k] for k in declared}


def check_preconditions(config: RunConfig) -> tuple[Path, Coverage]:
    """Fail before any notebook runs when the warehouse is missing, unreadable or empty; return its path
    and what it holds."""
    from kit.analysis.coverage import data_coverage, empty_warehouse_message
    from kit.warehouse import connect

    db = Path(config.db)
    if not db.is_absolute():
        db = (Path.cwd() / db).resolve()
    if not db.exists():
        raise ParameterError(f"parameter 'db': warehouse {config.db} does not exist "
                             f"(build the demo with `perfkit demo --db {config.db}`)")
    with connect(db, read_only=True) as con:
        coverage = data_coverage(con)
    if coverage.empty:
        raise ParameterError(f"parameter 'db': {empty_warehouse_message(config.db)}")
    return db, coverage


NEEDS_TAG = "needs:"


def prepare_notebook(name: str, coverage: Coverage) -> Any:
    """The notebook with every cell whose ``needs:<name>`` tag the warehouse cannot meet taken out.

    The first cell that misses a given need is replaced by that gap's one-sentence explanation (a
    markdown cell keeps its heading above the sentence); later cells with the same gap are dropped, so each
    notebook says once what it could not analyse, why, and how to add the data."""
    import nbformat

    nb = nbformat.read(notebook_path(name), as_version=4)
    said: set[str] = set()  # what is missing, once per notebook
    cells = []
    for cell in nb.cells:
        needs = [t[len(NEEDS_TAG):] for t in cell.get("metadata", {}).get("tags", []) if t.startswith(NEEDS_TAG)]
        gaps = coverage.gaps(*needs)
        if not gaps:
            cells.append(cell)
            continue
        heading = [line for line in cell.source.splitlines()[:1] if line.startswith("#")] \
            if cell.cell_type == "markdown" else []
        new = [g for g in gaps if g.missing not in said]
        said.update(g.missing for g in new)
        if new:
            text = "\n\n".join(heading + [f"*{g.sentence()}*" for g in new])
            cells.append(nbformat.v4.new_markdown_cell(text, metadata={"tags": ["perfkit-gap"]}))
    nb.cells = cells
    return nb


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in MANIFEST_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


def _failing_cell(executed: Path) -> str:
    """``cell N (`first line`)`` for the first cell with an error output in an executed notebook."""
    try:
        import nbformat

        nb = nbformat.read(executed, as_version=4)
    except Exception:  # noqa: BLE001 - the notebook may not have been written at all
        return "an unknown cell"
    def failed(cell: Any) -> bool:
        return any(o.get("output_type") == "error" for o in cell.get("outputs", []))

    def running(cell: Any) -> bool:  # a kernel that died leaves no error output, only this status
        return cell.get("metadata", {}).get("papermill", {}).get("status") == "running"

    for found in (failed, running):
        for index, cell in enumerate(nb.cells):
            if found(cell):
                first = cell.source.strip().splitlines()[0][:120] if cell.source.strip() else ""
                return f"cell {index}" + (f" (`{first}`)" if first else "")
    return "an unknown cell"


@dataclass(frozen=True)
class _Execution:
    """What a worker reports for one notebook (plain values, so it crosses process boundaries)."""

    name: str
    seconds: float
    error: str | None = None


def _kernel_config() -> Any:
    """Configuration for the kernels papermill starts: their traffic is encrypted (CurveZMQ keys made by
    the kernel manager, for kernelspecs that declare support, as ipykernel 7's does). Without it every
    ipykernel 7 kernel prints "Kernel is running over TCP without encryption" on the console. Older
    jupyter_client has no such option (and its kernels no such warning), and a libzmq built without
    CurveZMQ cannot encrypt: then the default is kept."""
    import zmq
    from jupyter_client import KernelManager
    from traitlets.config import Config

    if not KernelManager.class_traits().get("transport_encryption") or not zmq.has("curve"):
        return Config()
    return Config({"KernelManager": {"transport_encryption": "auto"}})


def _execute(name: str, source: str, executed: str, parameters: dict[str, Any]) -> _Execution:
    """Run one notebook with papermill (in a worker process); errors are returned, not raised."""
    import logging

    import papermill

    # papermill warns about parameters its own regex cannot read (``str | None``); ast reads them.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(source, executed, parameters=parameters,
                                   kernel_name="python3", progress_bar=False, cwd=str(PROJECT_ROOT),
                                   log_output=False, execution_timeout=CELL_TIMEOUT_S, config=_kernel_config())
    except Exception as exc:  # noqa: BLE001 - PapermillExecutionError, dead kernels, timeouts
        ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
        where = _failing_cell(Path(executed))
        return _Execution(name, time.perf_counter() - t0, f"failed in {where}: {ename}: {evalue}")
    return _Execution(name, time.perf_counter() - t0)


def export_notices(result: RunResult) -> list[str]:
    """What this run's export left out and how to get it, one line each (e.g. the dashboard PNGs without
    Chromium), as notebook 90 saved it; empty when 90 did not run in this run."""
    import json

    saved = result.run_dir / "results" / "export.json"
    if EXPORT_NOTEBOOK not in {t.name for t in result.timings} or not saved.exists():
        return []
    return [str(notice) for notice in json.loads(saved.read_text()).get("notices", [])]


def export_html(executed: Path, target: Path) -> None:
    """Self-contained HTML report of an executed notebook (code hidden, plotly.js embedded once)."""
    import nbconvert
    import nbformat

    from kit.results import write_text_atomic

    nb = nbformat.read(executed, as_version=4)
    exporter = nbconvert.HTMLExporter(
        extra_template_basedirs=[str(Path(__file__).parent / "report" / "nbconvert")], template_name="perfkit",
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    write_text_atomic(target, body)


def _swap_symlink(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target)
    if link.exists() and not link.is_symlink():
        raise ParameterError(f"{link} exists and is not a symlink made by perfkit; move it away first")
    os.replace(tmp, link)


def _prune_runs(runs_dir: Path, keep: int) -> None:
    runs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def run(config: RunConfig, out_dir: str | Path = DEFAULT_OUT, only: list[str] | None = None,
        progress: bool = True, workers: int = 2) -> RunResult:
    """Execute the notebooks and publish their outputs; raises NotebookFailed or ParameterError.

    The analysis notebooks (00-40) only read the warehouse, so ``workers`` of them run at once (each in
    its own kernel); 50_optimizations then ranks what they found, and 90_strategy_export runs last, on
    their results."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    import nbformat
    from tqdm import tqdm

    from kit.report.entry import write_entry_pages
    from kit.report.screenshots import take_screenshots
    from kit.results import dumps, write_text_atomic
    from kit.warehouse import connect, fingerprint

    started = time.perf_counter()
    started_at = datetime.now(UTC)
    names = select_notebooks(only)
    db, coverage = check_preconditions(config)
    config = RunConfig.from_mapping({**config.to_dict(), "db": str(db)})
    out = Path(out_dir).resolve()
    run_id = started_at.strftime("%Y%m%dT%H%M%S%fZ")
    staging = out / f".staging-{run_id}"
    dirs = {k: staging / k for k in ("notebooks", "reports", "results", "strategy")}
    run_values = {"results_dir": str(dirs["results"]), "strategy_dir": str(dirs["strategy"]), "headless": True}
    plans = {name: notebook_parameters(name, config, run_values) for name in names}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    sources = {name: staging / ".inputs" / f"{name}.ipynb" for name in names}
    sources[names[0]].parent.mkdir()
    for name in names:
        nbformat.write(prepare_notebook(name, coverage), sources[name])
    previous = out / "latest" / "results"
    if only and previous.is_dir():
        # A partial run builds on the latest run's results, so 90 can re-export from them (with the alert
        # rule files 20_slos_alerting wrote next to them, which 90 ships with the documents).
        for result in [*previous.glob("*.json"), *previous.glob("*.yml")]:
            shutil.copy2(result, dirs["results"] / result.name)
    write_text_atomic(dirs["results"] / "parameters.json", dumps(shareable_parameters(config)))

    executed = {name: dirs["notebooks"] / f"{name}.ipynb" for name in names}
    stages = run_stages(names)
    results: dict[str, _Execution] = {}
    bar = tqdm(total=len(names), desc="perfkit run", unit="notebook", disable=not progress, file=sys.stderr)
    for stage in stages:
        # A pool per stage: its workers are gone before the export stage starts its own kernel and Chromium.
        with ProcessPoolExecutor(max_workers=max(1, min(workers, len(stage))),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            pending = {pool.submit(_execute, n, str(sources[n]), str(executed[n]), plans[n]) for n in stage}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    outcome = future.result()
                    results[outcome.name] = outcome
                    bar.update()
                    bar.set_postfix_str(outcome.name)
                errors = [future.result() for future in done if future.result().error]
                if errors:
                    # let the notebooks already running finish, then name the first failure in run order
                    # (not whichever kernel happened to fail first)
                    pool.shutdown(wait=True, cancel_futures=True)
                    errors += [f.result() for f in pending if not f.cancelled() and f.result().error]
                    first = min(errors, key=lambda o: stage.index(o.name))
                    bar.close()
                    failed = out / f"failed-{run_id}"
                    shutil.move(str(staging), failed)
                    raise NotebookFailed(f"notebook {first.name} {first.error}. Executed notebook kept at "
                                         f"{failed / 'notebooks' / executed[first.name].name}")
    bar.close()

    timings = []
    for name in names:
        t0 = time.perf_counter()
        export_html(executed[name], dirs["reports"] / f"{name}.html")
        timings.append(NotebookTiming(name, round(results[name].seconds, 3), round(time.perf_counter() - t0, 3)))

    with connect(db, read_only=True) as con:
        warehouse = fingerprint(con)
    manifest = {
        "run_id": run_id,
        "started_at": started_at.isoformat(),
        "notebooks": names,
        "workers": workers,
        "parameters": shareable_parameters(config),
        "warehouse": {"path": str(db), **warehouse},
        "packages": _package_versions(),
        "platform": platform.platform(),
        "timings": timings,
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_text_atomic(staging / "manifest.json", dumps(manifest))
    # The entry page (reports/index.html) and the Markdown documents as HTML, swapped in with the rest.
    write_entry_pages(staging, names)
    take_screenshots(dirs["reports"])  # for people to look at; a missing browser leaves a README.txt instead
    shutil.rmtree(staging / ".inputs")  # the notebooks as prepared for this warehouse; kept only on failure

    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    final = runs_dir / run_id
    os.replace(staging, final)
    _swap_symlink(out / "latest", f"runs/{run_id}")
    for name in ("reports", "strategy", "results", "notebooks"):
        _swap_symlink(out / name, f"latest/{name}")
    _prune_runs(runs_dir, KEEP_RUNS)
    return RunResult(run_id, final, timings, round(time.perf_counter() - started, 3))
