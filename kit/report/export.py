"""Write the four strategy documents (plus the Grafana dashboard and dashboard images) from the
results a run's notebooks saved. Same results and parameters → byte-identical documents."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.config import RunConfig
from kit.report.render import validate_document
from kit.results import dumps, write_text_atomic

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


def load_results(results_dir: str | Path) -> dict[str, Any]:
    """Every ``<name>.json`` in the results folder, keyed by name."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("*.json"))}


def document_date(results: dict[str, Any], config: RunConfig) -> str:
    """The date stamped on documents: ``as_of``, else the end of the analysed window (never the clock)."""
    if config.as_of:
        return config.as_of
    window = (results.get("overview") or {}).get("window") or {}
    end = window.get("end")
    if not end:
        raise ValueError("no analysed window in the results (run 00_data_overview) and no as_of parameter")
    return str(end)[:10]


def render_figures(figures: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Static PNGs of plotly figures through one kaleido server (Chromium) for the whole batch."""
    if not figures:
        return {}
    import kaleido

    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    kaleido.start_sync_server(silence_warnings=True)
    try:
        for name, fig in sorted(figures.items()):
            path = directory / f"{name}.png"
            path.write_bytes(fig.to_image(format="png", width=1000, height=420, scale=1))
            written[name] = path
    finally:
        kaleido.stop_sync_server(silence_warnings=True)
    return written


def write_documents(results_dir: str | Path, strategy_dir: str | Path, config: RunConfig,
                    images: bool = True) -> ExportedDocuments:
    """Build, validate and atomically write the four documents, the Grafana dashboard and the alert rules."""
    from kit.report import caching_plan, grafana, monitoring, optimization

    results = load_results(results_dir)
    out = Path(strategy_dir)
    as_of = document_date(results, config)
    figure_paths = render_figures(monitoring.monitoring_figures(results), out / "figures") if images else {}
    relative = {name: f"figures/{path.name}" for name, path in figure_paths.items()}

    metrics = monitoring.build_metrics_framework(results, config)
    validate_document(metrics, "Metrics_Framework_Specifications")
    plan = caching_plan.build_caching_plan(results, config)
    validate_document(plan, "Caching_Implementation_Plan")
    texts = {
        MONITORING_MD: monitoring.build_monitoring_strategy(results, config, relative),
        METRICS_JSON: dumps(metrics),
        OPTIMIZATION_MD: optimization.build_optimization_strategy(
            results, config, as_of, plan, caching_plan.caching_summary_markdown(plan)),
        CACHING_JSON: dumps(plan),
        "grafana_dashboard.json": dumps(grafana.grafana_dashboard(results, config)),
    }
    # Alert rule files the SLO notebook generated (Prometheus rules and their promtool tests) ship too.
    texts.update({p.name: p.read_text() for p in sorted(Path(results_dir).glob("*.yml"))})
    documents = {name: write_text_atomic(out / name, text) for name, text in texts.items()}
    return ExportedDocuments(out, documents, figure_paths)
