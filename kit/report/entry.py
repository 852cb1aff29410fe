"""The run's entry page (``reports/index.html``) and the Markdown strategy documents as HTML pages.

Method: everything is read from what the run saved — ``results/*.json`` (overview, kpis, slo,
bottlenecks, optimizations, export, parameters), ``manifest.json``, the HTML reports in ``reports/``
and the documents in ``strategy/`` — and nothing is re-computed. The entry page shows the system's
name, the analysed window, the headline KPIs, each SLO's status, the top findings and opportunities,
links to every report and document, and the run's parameters and manifest; what the run lacks
(``perfkit run --only 10``) is listed, not hidden. The two Markdown documents are rendered with mistune
(tables on) to ``strategy/<name>.html`` in the same style, their figures inlined as ``data:`` PNGs.

Limits: pages are self-contained and offline (inline CSS, no script, nothing fetched); the links
between them are relative, so they hold while the run folder stays together. Every value from the data
is escaped by a Jinja environment with autoescape; the only HTML printed as it is is mistune's output,
which escapes raw HTML in the Markdown and drops ``javascript:``-style links (the Markdown documents
already escape the data themselves, so that is a second fence)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from kit import fmt
from kit.analysis.findings import text as finding_text
from kit.analysis.opportunity import saving_text
from kit.results import write_text_atomic

__all__ = ["ENTRY_PAGE", "EntryPages", "document_html", "entry_model", "markdown_html", "render_entry_page",
           "write_entry_pages"]

ENTRY_PAGE = "index.html"  # in the run's reports/ folder, next to the HTML reports
TOP_SHOWN = 5  # findings and opportunities on the entry page (the documents list them all)

# What each notebook's report shows, in run order (kit.runner.NOTEBOOKS).
REPORTS = {
    "00_data_overview": "Data overview: what the warehouse holds, its window, coverage and gaps",
    "10_kpis": "KPIs: traffic, errors, latency percentiles, Apdex, per service and route",
    "20_slos_alerting": "SLOs and alerting: objectives, error budgets, burn-rate alerts and their backtest",
    "30_bottlenecks": "Bottlenecks: the routes that cost most, and what changed, when and why",
    "40_cache_simulation": "Cache simulation: miss-ratio curves, policies and cache sizes",
    "50_optimizations": "Optimizations: every opportunity ranked by its saving and effort",
    "60_scaling": "Scaling: capacity model, headroom and autoscaling targets per service",
    "90_strategy_export": "Strategy export: how the documents below were written",
}
# The results the page reads: name -> (the notebook that saves it, what the page shows from it).
RESULTS = {
    "overview": ("00_data_overview", "the analysed window"),
    "kpis": ("10_kpis", "the headline KPIs"),
    "slo": ("20_slos_alerting", "the SLO status"),
    "bottlenecks": ("30_bottlenecks", "the top findings"),
    "optimizations": ("50_optimizations", "the top opportunities"),
}
MONITORING_MD = "Performance_Monitoring_Strategy.md"
OPTIMIZATION_MD = "Performance_Optimization_Strategy.md"
# The documents in strategy/, in the order shown; Markdown ones are linked as their HTML rendering.
DOCUMENTS = (
    (MONITORING_MD, "what to measure, the KPI targets, SLOs, alerts and dashboards"),
    (OPTIMIZATION_MD, "what to change first, with the saving each change brings"),
    ("Metrics_Framework_Specifications.json", "the KPIs, SLOs and alerts as a machine-readable specification"),
    ("Caching_Implementation_Plan.json", "the caching layers, keys, TTLs and sizes as a machine-readable plan"),
    ("grafana_dashboard.json", "a Grafana dashboard to import"),
    ("slo_rules.yml", "Prometheus alert rules for the SLOs"),
    ("slo_rules_test.yml", "promtool unit tests of those rules"),
)
REQUIRED_DOCUMENTS = 4  # the first four are always written by 90_strategy_export; the rest when there is data
HEADLINE_KPIS = {  # name -> label, in the order shown
    "request_rate_rps": "Request rate", "peak_rps_1m": "Peak 1-minute rate", "availability": "Availability",
    "error_rate_5xx": "5xx error rate", "latency_p50_ms": "Latency p50", "latency_p95_ms": "Latency p95",
    "latency_p99_ms": "Latency p99", "apdex": "Apdex",
}


@dataclass(frozen=True)
class EntryPages:
    """The pages written: ``index`` (reports/index.html), the HTML renderings of the Markdown documents by
    document name, and what the run lacks (one sentence each, as the page states it)."""

    index: Path
    documents: dict[str, Path]
    missing: tuple[str, ...]


# ------------------------------------------------------------------------------------------ text helpers


def _label(name: str) -> str:
    return str(name).replace("_", " ")


def _plain(value: Any) -> str:
    """A parameter or manifest value as a reader reads it: lists joined, mappings as ``key: value``,
    None as "not set"; never a Python repr."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return fmt.num(value, 6)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "none"
    return str(value)


def kpi_value_text(value: float | None, unit: str) -> str:
    """A KPI value with its unit: ratios as % (3 decimals), ms, requests/s; a score as a bare number."""
    if value is None:
        return fmt.NA
    if unit in ("ratio", "ms"):
        return fmt.quantity(value, unit)
    if unit == "requests/s":
        return f"{fmt.num(value)} req/s"
    if unit.startswith("score"):
        return fmt.num(value)
    return f"{fmt.num(value)} {unit}".strip()


def _change_text(change_pct: float | None, verdict: str | None) -> str:
    if change_pct is None:
        return ""
    return f"{change_pct:+.1f}% vs the previous period" + (f" ({verdict})" if verdict else "")


def _window(results: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The analysed window (start, end) as ISO text: notebook 00's, else notebook 10's, else None."""
    window = (results.get("overview") or {}).get("window") or {}
    if window.get("start") and window.get("end"):
        return str(window["start"]), str(window["end"])
    kpis = results.get("kpis") or {}
    if kpis.get("window_start") and kpis.get("window_end"):
        return str(kpis["window_start"]), str(kpis["window_end"])
    return None, None


def _span_text(start: str, end: str) -> str:
    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return ""
    days = seconds / 86400
    return f"{days:.1f} days" if days >= 1.5 else fmt.duration(seconds)


# ------------------------------------------------------------------------------------------ the model


def _kpi_cards(kpis: Mapping[str, Any]) -> list[dict[str, str]]:
    changes = {row.get("name"): row for row in (kpis.get("comparison") or {}).get("rows") or []}
    by_name = {k.get("name"): k for k in kpis.get("kpis") or [] if isinstance(k, Mapping)}
    cards = []
    for name, label in HEADLINE_KPIS.items():
        kpi = by_name.get(name)
        if kpi is None:
            continue
        change = changes.get(name) or {}
        cards.append({"label": label, "value": kpi_value_text(kpi.get("value"), str(kpi.get("unit") or "")),
                      "description": str(kpi.get("description") or ""),
                      "change": _change_text(change.get("change_pct"), change.get("verdict"))})
    return cards


def _slo_rows(slo: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for s in slo.get("slos") or []:
        objective, achieved, remaining = s.get("objective"), s.get("achieved"), s.get("remaining_ratio")
        if objective is None or achieved is None:
            status = "unknown"
        elif achieved >= objective:
            status = "met"
        else:
            status = "missed"
        proposed = " (proposed)" if s.get("objective_source") == "proposed" else ""
        rows.append({"name": str(s.get("name") or ""), "service": str(s.get("service") or "all"),
                     "sli": str((s.get("sli") or {}).get("description") or s.get("sli_kind") or ""),
                     "objective": fmt.pct(objective, 5, significant=True) + proposed,
                     "achieved": fmt.pct(achieved, 5, significant=True),
                     "remaining": fmt.pct(remaining, 3, significant=True), "status": status,
                     "exhausted": remaining is not None and remaining <= 0})
    return rows


def _finding_rows(bottlenecks: Mapping[str, Any]) -> list[dict[str, str]]:
    items = ((bottlenecks.get("findings") or {}).get("items")) or []
    rows = []
    for item in items[:TOP_SHOWN]:
        causes = [c for c in item.get("causes") or [] if c.get("kind") != "unknown"]
        cause = f"{causes[0].get('kind')}: {causes[0].get('detail')}" if causes else "unknown"
        end = item.get("end")
        rows.append({"title": str(item.get("title") or _label(item.get("kind") or "")),
                     "when": f"{fmt.timestamp(item.get('onset'))} to "
                             f"{fmt.timestamp(end) if end else 'the end of the window (still on)'}",
                     "effect": finding_text.effect_text(item), "cost": finding_text.cost_text(item),
                     "confidence": str(item.get("confidence") or fmt.NA), "cause": cause})
    return rows


def _opportunity_rows(optimizations: Mapping[str, Any]) -> list[dict[str, str]]:
    rows = []
    for item in (optimizations.get("ranking") or [])[:TOP_SHOWN]:
        saving = item.get("saving")
        rows.append({"area": _label(item.get("area") or ""), "title": str(item.get("title") or ""),
                     "saving": saving_text(saving) if isinstance(saving, Mapping) else "not estimated",
                     "effort": str(item.get("effort") or fmt.NA)})
    return rows


def _manifest_model(manifest: Mapping[str, Any]) -> dict[str, Any]:
    warehouse = manifest.get("warehouse") or {}
    facts = [("run id", manifest.get("run_id")), ("started", fmt.timestamp(manifest.get("started_at"))
                                                  if manifest.get("started_at") else None),
             ("took", fmt.seconds(manifest.get("seconds")) if manifest.get("seconds") is not None else None),
             ("notebooks run", manifest.get("notebooks")), ("workers", manifest.get("workers")),
             ("warehouse", warehouse.get("path")), ("warehouse SHA-256", warehouse.get("sha256")),
             ("platform", manifest.get("platform"))]
    rows = warehouse.get("row_counts") or {}
    return {
        "facts": [(k, _plain(v)) for k, v in facts if v is not None],
        "row_counts": [(str(k), fmt.count(v) if isinstance(v, int | float) else _plain(v))
                       for k, v in sorted(rows.items())],
        "timings": [(str(t.get("name")), fmt.seconds(t.get("execute_s")), fmt.seconds(t.get("export_s")))
                    for t in manifest.get("timings") or [] if isinstance(t, Mapping)],
        "packages": [(str(k), _plain(v)) for k, v in sorted((manifest.get("packages") or {}).items())],
    }


def entry_model(results: Mapping[str, Any], manifest: Mapping[str, Any] | None, reports: list[str],
                documents: list[str], notebooks_run: list[str] | None = None) -> dict[str, Any]:
    """What the entry page shows, as plain text (formatted by ``kit.fmt``; the template escapes it).

    ``results``: the run's results by name (``kit.results.load_results``); ``manifest``: manifest.json;
    ``reports``: the HTML report files present in reports/; ``documents``: the files present in
    strategy/ (a Markdown document counts as present when its ``.html`` rendering is there too);
    ``notebooks_run``: the notebooks this run executed (for saying why something is missing)."""
    manifest = manifest or {}
    parameters = results.get("parameters") or manifest.get("parameters") or {}
    ran = set(notebooks_run if notebooks_run is not None else manifest.get("notebooks") or [])
    missing = []

    def absent(what: str, notebook: str) -> str:
        why = "it did not run in this run" if notebook not in ran else "it saved nothing for it"
        return f"{what}: no result from notebook {notebook} ({why})."

    for name, (notebook, what) in RESULTS.items():
        if not results.get(name):
            missing.append(absent(what[:1].upper() + what[1:], notebook))
    report_rows = []
    for name, description in REPORTS.items():
        file = f"{name}.html"
        present = file in reports
        report_rows.append({"name": name, "description": description,
                            "href": quote(file) if present else None})
        if not present:
            why = "it did not run in this run" if name not in ran else "its export wrote nothing"
            missing.append(f"Report {name}: not written ({why}).")
    document_rows = []
    for index, (name, description) in enumerate(DOCUMENTS):
        html = f"{Path(name).stem}.html"
        present = name in documents and (not name.endswith(".md") or html in documents)
        href = None
        if present:
            href = "../strategy/" + quote(html if name.endswith(".md") else name)
        source = "../strategy/" + quote(name) if present and name.endswith(".md") else None
        if present or index < REQUIRED_DOCUMENTS:
            document_rows.append({"name": Path(name).stem.replace("_", " ") if name.endswith(".md") else name,
                                  "description": description, "href": href, "source": source})
        if not present and index < REQUIRED_DOCUMENTS:
            why = "did not run in this run" if "90_strategy_export" not in ran else "wrote no such file"
            missing.append(f"Document {name}: not written (notebook 90_strategy_export {why}).")
    carried = [f"{what} ({notebook})" for name, (notebook, what) in RESULTS.items()
               if results.get(name) and notebook not in ran] if notebooks_run is not None or manifest else []
    start, end = _window(results)
    bottlenecks = results.get("bottlenecks") or {}
    optimizations = results.get("optimizations") or {}
    kpis = results.get("kpis") or {}
    slo = results.get("slo") or {}
    comparison = (kpis.get("comparison") or {}).get("basis")
    return {
        "title": str(parameters.get("title") or "this system"),
        "window": {"start": fmt.timestamp(start), "end": fmt.timestamp(end), "span": _span_text(start, end)}
        if start and end else None,
        "run_id": str(manifest.get("run_id") or ""),
        "missing": missing,
        "carried": carried,
        "kpis": _kpi_cards(kpis) if kpis else None,
        "comparison": str(comparison) if comparison else "",
        "slos": _slo_rows(slo) if slo else None,
        "slo_note": str(slo.get("budget_note") or ""),
        "findings": _finding_rows(bottlenecks) if bottlenecks else None,
        "findings_total": len(((bottlenecks.get("findings") or {}).get("items")) or []),
        "opportunities": _opportunity_rows(optimizations) if optimizations else None,
        "opportunities_total": len(optimizations.get("ranking") or []),
        "reports": report_rows,
        "documents": document_rows,
        "notices": [str(n) for n in (results.get("export") or {}).get("notices") or []],
        "parameters": [(str(k), _plain(v)) for k, v in sorted(parameters.items())],
        "links": [(label, href) for label, href, present in (
            ("manifest.json", "../manifest.json", bool(manifest)),
            ("parameters.json", "../results/parameters.json", bool(results.get("parameters"))),
        ) if present],
        "manifest": _manifest_model(manifest) if manifest else None,
    }


# ------------------------------------------------------------------------------------------ rendering


@cache
def html_environment() -> jinja2.Environment:
    """Templates from ``kit/report/templates/html``; every printed value HTML-escaped (autoescape on)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("kit.report", "templates/html"),
                             undefined=jinja2.StrictUndefined, autoescape=True, trim_blocks=True,
                             lstrip_blocks=True)
    return env


def render_entry_page(model: Mapping[str, Any]) -> str:
    """The entry page's HTML for an :func:`entry_model`."""
    return html_environment().get_template("index.html.j2").render(m=model)


def _inline_image(url: str, base: Path) -> str:
    """A figure the document links relatively (``figures/x.png``) as a ``data:`` URI, so the page stands
    alone; any other URL is returned as it is (mistune then keeps it only when its protocol is safe)."""
    if "://" in url or url.startswith(("/", "data:")) or not url.lower().endswith(".png"):
        return url
    path = (base / url).resolve()
    if not path.is_relative_to(base.resolve()) or not path.is_file():
        return url
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def markdown_html(text: str, base: Path | None = None) -> Markup:
    """A Markdown document as an HTML fragment (CommonMark with tables), raw HTML in it escaped and
    unsafe link protocols dropped; figures relative to ``base`` are inlined."""
    import mistune

    class Renderer(mistune.HTMLRenderer):
        def text(self, text: str) -> str:
            # The documents write entities for < > & from the data (kit.report.text.md_escape): keep them
            # entities rather than escaping them a second time (mistune's escape mode would show "&lt;").
            return mistune.util.safe_entity(text)

        def image(self, text: str, url: str, title: str | None = None) -> str:
            return super().image(text, _inline_image(url, base) if base else url, title)

    render = mistune.create_markdown(renderer=Renderer(escape=True), plugins=["table", "strikethrough"])
    # mistune escaped every raw HTML block and span, and every text, attribute and code span it printed.
    return Markup(str(render(text)))


def document_html(text: str, title: str, base: Path | None = None) -> str:
    """A Markdown document as a self-contained HTML page in the entry page's style."""
    return html_environment().get_template("document.html.j2").render(title=title, body=markdown_html(text, base))


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_entry_pages(run_dir: str | Path, notebooks_run: list[str] | None = None) -> EntryPages:
    """Render ``strategy/<doc>.html`` for the Markdown documents present and write ``reports/index.html``
    (atomically, each), from the files under ``run_dir`` (the run's staging folder before it is swapped in)."""
    run = Path(run_dir)
    strategy, reports_dir, results_dir = run / "strategy", run / "reports", run / "results"
    written = {}
    for name in (MONITORING_MD, OPTIMIZATION_MD):
        source = strategy / name
        if source.is_file():
            target = strategy / f"{source.stem}.html"
            written[name] = write_text_atomic(target, document_html(source.read_text(), source.stem.replace(
                "_", " "), strategy))
    wanted = {*RESULTS, "export", "parameters"}
    results = {p.stem: _load(p) for p in sorted(results_dir.glob("*.json")) if p.stem in wanted}
    manifest = _load(run / "manifest.json")
    reports = sorted(p.name for p in reports_dir.glob("*.html")) if reports_dir.is_dir() else []
    documents = sorted(p.name for p in strategy.iterdir() if p.is_file()) if strategy.is_dir() else []
    model = entry_model({k: v for k, v in results.items() if v is not None}, manifest, reports, documents,
                        notebooks_run)
    index = write_text_atomic(reports_dir / ENTRY_PAGE, render_entry_page(model))
    return EntryPages(index, written, tuple(model["missing"]))
