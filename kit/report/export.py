"""Write the four strategy documents (plus the Grafana dashboard and dashboard images) from the
results a run's notebooks saved. Same results and parameters → byte-identical documents."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.config import RunConfig
from kit.report.render import validate_document
from kit.results import dumps, load_results, write_text_atomic

MONITORING_MD = "Performance_Monitoring_Strategy.md"
METRICS_JSON = "Metrics_Framework_Specifications.json"
OPTIMIZATION_MD = "Performance_Optimization_Strategy.md"
CACHING_JSON = "Caching_Implementation_Plan.json"
DOCUMENTS = (MONITORING_MD, METRICS_JSON, OPTIMIZATION_MD, CACHING_JSON)


@dataclass(frozen=True)
class ExportedDocuments:
    directory: Path
    documents: dict[str, Path]
    figures: dict[str, Path]
    notices: tuple[str, ...] = ()  # what was left out of this export and how to get it, one line each


def document_date(results: dict[str, Any], config: RunConfig) -> str:
    """The date stamped on documents: ``as_of``, else the end of the analysed window (never the clock)."""
    if config.as_of:
        return config.as_of
    window = (results.get("overview") or {}).get("window") or {}
    end = window.get("end")
    if not end:
        raise ValueError("no analysed window in the results (run 00_data_overview) and no as_of parameter")
    return str(end)[:10]


FIGURE_TIMEOUT_S = 120.0  # one Chromium draws every panel in a few seconds; a hung one is stopped after this
GET_CHROMIUM = "`apt-get install chromium`, or kaleido's own Chrome with `plotly_get_chrome -y`"
REPLACE_CHROMIUM = "check that this browser starts headless, or install kaleido's own Chrome with " \
                   "`plotly_get_chrome -y` (kaleido prefers it)"
# The render process's whole program: the job comes as JSON on stdin. It imports plotly and kaleido
# only, not the kit (whose imports take seconds). Tests swap in a renderer that hangs.
_RENDER_WORKER = """
import json, sys
import plotly.io as pio
job = json.load(sys.stdin)
pio.write_images(job["figures"], job["files"], format="png", width=1000, height=420, scale=1, validate=False)
"""


@dataclass(frozen=True)
class RenderedFigures:
    """The PNGs written, by figure name; when none could be, ``skipped`` says why (short and the same on
    every run, for the document) and ``notice`` says it in one line with how to get them (for the user)."""

    paths: dict[str, Path]
    skipped: str = ""
    notice: str = ""


def find_chromium() -> str | None:
    """The browser kaleido would start, looked up the way it looks (choreographer's
    ``Chromium.find_browser``): the Chrome kaleido downloaded itself (``plotly_get_chrome``), else
    ``BROWSER_PATH`` if set, else chrome/chromium on ``PATH`` or at their usual install paths. None when
    there is none, or ``BROWSER_PATH`` names no file: kaleido would fail to start then."""
    from choreographer.browsers import Chromium  # kaleido's browser driver (kaleido depends on it)

    path = Chromium.find_browser(skip_local=False)
    return path if path and Path(path).is_file() else None


def _skipped(reason: str, detail: str, remedy: str) -> RenderedFigures:
    return RenderedFigures({}, reason, f"figures: the dashboard PNGs were skipped ({detail}); the documents are "
                                       f"complete without them. To get them: {remedy}.")


def _stop(process: subprocess.Popen[str]) -> None:
    """Kill a render process and everything it started (Chromium runs in a session of its own, so
    killing the process alone would leave it behind)."""
    import psutil

    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(family, timeout=5)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.communicate(timeout=5)


def _remove(paths: Iterable[Path]) -> None:
    """Drop the images of a batch that did not finish: the document links none of them."""
    for path in paths:
        path.unlink(missing_ok=True)


def render_figures(figures: dict[str, Any], directory: Path,
                   timeout_s: float = FIGURE_TIMEOUT_S) -> RenderedFigures:
    """Static PNGs of plotly figures, drawn by kaleido with one Chromium for the whole batch.

    Without a browser nothing is started and the PNGs are skipped at once. Otherwise the drawing runs in
    a child process with a deadline: kaleido waits on Chromium without a timeout of its own, so a browser
    that hangs is killed (with the child) after ``timeout_s`` and the PNGs are skipped, as when the
    drawing fails. The images are an extra: the documents never wait on, or fail for, a browser."""
    if not figures:
        return RenderedFigures({})
    browser = find_chromium()
    if browser is None:
        named = os.environ.get("BROWSER_PATH")
        return _skipped("no Chromium or Chrome was found",
                        f"no browser at BROWSER_PATH={named}" if named else "no Chromium or Chrome found",
                        GET_CHROMIUM)
    directory.mkdir(parents=True, exist_ok=True)
    names = sorted(figures)
    paths = {name: directory / f"{name}.png" for name in names}
    job = json.dumps({"files": [str(paths[name]) for name in names],
                      "figures": [json.loads(figures[name].to_json()) for name in names]})
    process = subprocess.Popen([sys.executable, "-c", _RENDER_WORKER], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, errors = process.communicate(job, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(process)
        _remove(paths.values())
        return _skipped(f"Chromium did not draw them within {timeout_s:g} s",
                        f"{browser} did not draw them within {timeout_s:g} s and was stopped", REPLACE_CHROMIUM)
    except BaseException:  # interrupted: leave no renderer or browser behind
        _stop(process)
        raise
    if process.returncode != 0 or not all(path.exists() for path in paths.values()):
        last = [line for line in errors.splitlines() if line.strip()][-1:] or [f"exit code {process.returncode}"]
        _remove(paths.values())
        return _skipped("Chromium failed to draw them", f"drawing them with {browser} failed: {last[0][:300]}",
                        REPLACE_CHROMIUM)
    return RenderedFigures(paths)


def write_documents(results_dir: str | Path, strategy_dir: str | Path, config: RunConfig,
                    images: bool = True) -> ExportedDocuments:
    """Build, validate and atomically write the four documents, the Grafana dashboard and the alert rules."""
    from kit.report import caching_plan, grafana, monitoring, optimization

    results = load_results(results_dir)
    out = Path(strategy_dir)
    as_of = document_date(results, config)
    rendered = render_figures(monitoring.monitoring_figures(results), out / "figures") if images else \
        RenderedFigures({})
    relative = {name: f"figures/{path.name}" for name, path in rendered.paths.items()}

    metrics = monitoring.build_metrics_framework(results, config)
    validate_document(metrics, "Metrics_Framework_Specifications")
    plan = caching_plan.build_caching_plan(results, config)
    validate_document(plan, "Caching_Implementation_Plan")
    texts = {
        MONITORING_MD: monitoring.build_monitoring_strategy(results, config, relative, rendered.skipped),
        METRICS_JSON: dumps(metrics),
        OPTIMIZATION_MD: optimization.build_optimization_strategy(results, config, as_of, plan),
        CACHING_JSON: dumps(plan),
        "grafana_dashboard.json": dumps(grafana.grafana_dashboard(results, config)),
    }
    # Alert rule files the SLO notebook generated (Prometheus rules and their promtool tests) ship too.
    texts.update({p.name: p.read_text() for p in sorted(Path(results_dir).glob("*.yml"))})
    documents = {name: write_text_atomic(out / name, text) for name, text in texts.items()}
    return ExportedDocuments(out, documents, rendered.paths, tuple(filter(None, [rendered.notice])))
