"""The monitoring documents: ``Performance_Monitoring_Strategy.md`` and
``Metrics_Framework_Specifications.json``, built from the results a run saved.

``results`` maps result names to the JSON each notebook saved: ``kpis`` (notebook 10), ``slo``
(notebook 20, optional), ``bottlenecks`` (notebook 30, optional). Every number comes from there; the
date is ``config.as_of`` or the end of the analysed window (never the clock), so the same results and
parameters give byte-identical documents. Text that came from logs (services, routes, metric names) is
escaped by the renderer (``kit.report.render``); SQL and PromQL go into code fences that cannot be closed
from inside.

Document model first (``monitoring_model``: plain values, nothing escaped or formatted), rendering last
(Jinja template ``Performance_Monitoring_Strategy.md.j2`` with the partials ``partials/slo.md.j2`` and
``partials/findings.md.j2``). The document leads with five summary bullets (``kit.report.summary``);
the SQL and PromQL of each KPI and dashboard panel are in appendices at its end."""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from kit.analysis.coverage import coverage_of, gap_text
from kit.analysis.optimizations import scope_pairs
from kit.config import RunConfig
from kit.report import slo_sections
from kit.report.render import markdown, render_markdown
from kit.report.scaling_spec import scaling_block
from kit.report.summary import monitoring_summary
from kit.report.text import code_block

__all__ = [
    "PANELS", "build_metrics_framework", "dashboard_panels", "build_monitoring_strategy", "code_block",
    "findings_model", "kpi_targets",
    "monitoring_figures", "monitoring_model", "recommended_metrics", "slo_parts",
]

SCHEMA_VERSION = "1.0"
STANDARD_OBJECTIVES = (0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999)
HISTOGRAM_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCRAPE_INTERVAL_S = 15.0
CAUSES_SHOWN = 3                # at most this many probable causes per finding
CAUSE_SHOWN_STRENGTH = 0.4      # a further cause is named from this strength (the detector's "unknown" bar)

# Dashboard panels: key (also the figure name), title, kind, PromQL, what the panel answers.
# ``{sel}`` is replaced by a label selector body (possibly empty), ``{t}``/``{t4}`` by Apdex T and 4T in s.
PANELS: tuple[tuple[str, str, str, tuple[str, ...], str], ...] = (
    ("overview", "Overview: rate, errors, latency", "timeseries", (
        "sum(rate(http_requests_total{{{sel}}}[5m]))",
        'sum(rate(http_requests_total{{{sel_5xx}}}[5m])) / sum(rate(http_requests_total{{{sel}}}[5m]))',
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))",
    ), "Is the system healthy right now, and since when has it not been?"),
    ("per_service", "Per service: RED", "timeseries", (
        "sum by (service) (rate(http_requests_total{{{sel}}}[5m]))",
        'sum by (service) (rate(http_requests_total{{{sel_5xx}}}[5m])) / '
        "sum by (service) (rate(http_requests_total{{{sel}}}[5m]))",
        "histogram_quantile(0.95, sum by (le, service) (rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))",
    ), "Which service moved?"),
    ("per_route", "Per route drill-down", "table", (
        "topk(10, histogram_quantile(0.99, sum by (le, route) "
        "(rate(http_request_duration_seconds_bucket{{{sel}}}[5m]))))",
        "topk(10, sum by (route) (rate(http_requests_total{{{sel}}}[5m])))",
    ), "Which routes are busy and slow, or failing?"),
    ("latency_heatmap", "Latency heatmap", "heatmap", (
        "sum by (le) (increase(http_request_duration_seconds_bucket{{{sel}}}[5m]))",
    ), "Did the whole distribution shift, or did a slow subset appear?"),
    ("apdex", "Apdex", "timeseries", (
        '(sum(rate(http_request_duration_seconds_bucket{{{sel_t}}}[5m])) + '
        'sum(rate(http_request_duration_seconds_bucket{{{sel_t4}}}[5m]))) / 2 / '
        "sum(rate(http_request_duration_seconds_count{{{sel}}}[5m]))",
    ), "How satisfied are users with response times?"),
    ("slo_burndown", "SLO error budget burn-down", "timeseries", (
        "1 - (sum(increase(http_requests_total{{{sel_5xx}}}[30d])) / "
        "sum(increase(http_requests_total{{{sel}}}[30d]))) / (1 - {objective})",
    ), "How much error budget is left in the SLO window?"),
    ("burn_rate", "Burn rate with alert firings", "timeseries", (
        '(sum(rate(http_requests_total{{{sel_5xx}}}[1h])) / sum(rate(http_requests_total{{{sel}}}[1h]))) '
        "/ (1 - {objective})",
        'ALERTS{{alertstate="firing"}}',
    ), "How fast is the budget burning, and did the alerts fire when they should?"),
    ("saturation_latency", "Saturation against latency", "timeseries", (
        "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))",
    ), "Which resource fills up when latency rises?"),
)


# ------------------------------------------------------------------------------------------- helpers


def _promql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _selectors(config: RunConfig, service_selector: str | None = None, status: str = "status") -> dict[str, str]:
    sel = service_selector or ""
    if config.services and not service_selector:
        sel = 'service=~"' + _promql_string("|".join(re.escape(s) for s in config.services)) + '"'

    def join(*parts: str) -> str:
        return ", ".join(p for p in parts if p)

    t, t4 = config.apdex_t_ms / 1000, 4 * config.apdex_t_ms / 1000
    return {"sel": sel, "sel_5xx": join(sel, f'{status}=~"5.."'), "sel_t": join(sel, f'le="{t:g}"'),
            "sel_t4": join(sel, f'le="{t4:g}"')}


def _document_date(results: dict[str, Any], config: RunConfig) -> str:
    if config.as_of:
        return config.as_of
    for name, key in (("kpis", "window_end"), ("overview", "window")):
        value = (results.get(name) or {}).get(key)
        if isinstance(value, dict):
            value = value.get("end")
        if value:
            return str(value)[:10]
    raise ValueError("no analysed window in the results (run 10_kpis) and no as_of parameter")


def slo_parts(results: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, list] | None, str]:
    """The SLO section model and catalog from ``kit.report.slo_sections`` when an ``slo`` result
    exists; otherwise (None, None, reason as Markdown)."""
    slo = results.get("slo")
    if not slo:
        return None, None, gap_text(results, "requests", fallback=(
            "SLOs, error budgets and alert rules were not computed in this run "
            "(no `slo` result: notebook 20_slos_alerting did not run or saved nothing)."))
    return slo_sections.slo_section_model(slo), slo_sections.slo_catalog(slo), ""


def _objective(results: dict[str, Any], kind: str) -> tuple[float | None, str | None]:
    for slo in (results.get("slo") or {}).get("slos", []) or []:
        if slo.get("sli_kind") == kind and slo.get("objective") is not None and \
                str(slo.get("service") or "all") in ("all", "", "*"):
            return float(slo["objective"]), str(slo.get("name"))
    for slo in (results.get("slo") or {}).get("slos", []) or []:
        if slo.get("sli_kind") == kind and slo.get("objective") is not None:
            return float(slo["objective"]), str(slo.get("name"))
    return None, None


def _nice_ceiling(value: float) -> float:
    """Round up to two significant digits: 137.2 → 140."""
    if value <= 0:
        return value
    exponent = math.floor(math.log10(value)) - 1
    step = 10.0 ** exponent
    return round(math.ceil(value / step - 1e-9) * step, 10)


def kpi_targets(kpis: dict[str, Any], results: dict[str, Any],
                config: RunConfig) -> dict[str, tuple[float | None, str]]:
    """A target and its basis for each headline KPI: an SLO objective when one exists, the parameters,
    else a proposal from the baseline (stated as such)."""
    out: dict[str, tuple[float | None, str]] = {}
    values = {k["name"]: k.get("value") for k in kpis.get("kpis", [])}
    objective, slo_name = _objective(results, "availability")
    availability = values.get("availability")
    if config.availability_target is not None:
        avail_target, basis = config.availability_target, "parameter availability_target"
    elif objective is not None:
        avail_target, basis = (objective / 100 if objective > 1 else objective), f"SLO {slo_name}"
    elif availability is not None:
        met = [o for o in STANDARD_OBJECTIVES if o <= availability]
        avail_target = met[-1] if met else STANDARD_OBJECTIVES[0]
        basis = "proposed: the highest standard objective the window already meets" if met else \
            "proposed: the lowest standard objective (the window does not meet it yet)"
    else:
        avail_target, basis = None, "no baseline"
    out["availability"] = (avail_target, basis)
    out["error_rate_5xx"] = (None if avail_target is None else 1 - avail_target, f"1 - availability target ({basis})")
    for name in ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_p999_ms"):
        value = values.get(name)
        out[name] = ((_nice_ceiling(value * 1.1), "proposed: no regression beyond 10 % of the baseline")
                     if value is not None else (None, "no baseline"))
    if config.latency_threshold_ms and values.get("latency_p99_ms") is not None:
        lat_obj, lat_slo = _objective(results, "latency")
        if lat_obj is not None:
            q = lat_obj / 100 if lat_obj > 1 else lat_obj
            out["latency_p99_ms"] = (
                out["latency_p99_ms"][0],
                out["latency_p99_ms"][1] + f"; the latency SLO {lat_slo} asks {q:.4g} of requests "
                f"under {config.latency_threshold_ms:g} ms")
    apdex = values.get("apdex")
    out["apdex"] = ((math.floor(apdex * 20) / 20, "proposed: the baseline rounded down to 0.05")
                    if apdex is not None else (None, "no baseline"))
    out["error_rate_4xx"] = (None, "informational: client errors are watched for changes, not targeted")
    for name in ("request_rate_rps", "peak_rps_1m", "sustained_rps_p95_1m"):
        out[name] = (None, "informational: capacity planning input (plan for the peak with headroom)")
    return out


def recommended_metrics(kpis: dict[str, Any], config: RunConfig) -> list[dict[str, Any]]:
    """Metrics to collect: the HTTP RED metrics, the USE metrics found, and one per USE gap."""
    present = {m["name"]: m for m in kpis.get("metrics", [])}
    retention = float(max(2 * config.slo_window_days, 35))
    buckets = sorted({*HISTOGRAM_BUCKETS_S, config.apdex_t_ms / 1000, 4 * config.apdex_t_ms / 1000,
                      config.latency_threshold_ms / 1000})
    out: list[dict[str, Any]] = [
        {"name": "http_requests_total", "type": "counter", "unit": "requests",
         "labels": ["service", "route", "method", kpis.get("status_label") or "status"],
         "source": "application or ingress exporter",
         "interval_s": SCRAPE_INTERVAL_S, "retention_days": retention,
         "description": "requests by templated route and status: rate, error rate, availability SLI",
         "present_in_warehouse": "http_requests_total" in present},
        {"name": "http_request_duration_seconds", "type": "histogram", "unit": "seconds",
         "labels": ["service", "route", "method"], "source": "application or ingress exporter",
         "interval_s": SCRAPE_INTERVAL_S, "retention_days": retention,
         "description": "latency percentiles, Apdex and the latency SLI; buckets include Apdex T, 4T "
                        "and the latency SLO threshold",
         "present_in_warehouse": "http_request_duration_seconds_bucket" in present, "buckets": buckets},
        {"name": "http_response_size_bytes", "type": "histogram", "unit": "bytes",
         "labels": ["service", "route"], "source": "application or ingress exporter",
         "interval_s": SCRAPE_INTERVAL_S, "retention_days": retention,
         "description": "bandwidth and compression effects",
         "present_in_warehouse": "http_response_size_bytes_bucket" in present},
    ]
    seen = {m["name"] for m in out}
    for signal in kpis.get("use", []):
        name = signal["metric"]
        if name in seen:
            continue
        seen.add(name)
        info = present.get(name, {})
        out.append({
            "name": name, "type": info.get("type") or ("counter" if name.endswith("_total") else "gauge"),
            "unit": info.get("unit") or signal.get("unit") or "1", "labels": list(info.get("labels") or []),
            "source": "warehouse metrics (as ingested)",
            "interval_s": info.get("interval_s") or SCRAPE_INTERVAL_S, "retention_days": retention,
            "description": f"USE: {signal['resource']} {signal['kind']}", "present_in_warehouse": True})
    from kit.analysis.kpis import USE_CATALOG
    recommended = {c[4][0]: c[4] for c in USE_CATALOG}
    for gap in kpis.get("gaps", []):
        name = gap.get("metric")
        if not name or name in seen or name not in recommended:
            continue
        seen.add(name)
        _, kind, unit = recommended[name]
        out.append({"name": name, "type": kind, "unit": unit, "labels": ["instance"],
                    "source": "exporter to add (node_exporter, postgres_exporter or the application)",
                    "interval_s": SCRAPE_INTERVAL_S, "retention_days": retention,
                    "description": f"USE gap: {gap['resource']} {gap['kind']}", "present_in_warehouse": False})
    for unit_fix in out:
        unit_fix["unit"] = unit_fix["unit"] or "1"
    return out


def _panels(config: RunConfig, figures: dict[str, str], objective: float | None,
            kpis: dict[str, Any] | None, results: dict[str, Any],
            service_selector: str | None = None) -> list[dict[str, Any]]:
    sel = _selectors(config, service_selector, (kpis or {}).get("status_label") or "status")
    if objective is None and kpis:  # no SLO: the availability target of the KPI table
        objective = kpi_targets(kpis, results, config)["availability"][0]
    obj = objective if objective is not None else 0.999
    panels = []
    for key, title, kind, exprs, question in PANELS:
        promql = [e.format(**sel, objective=f"{obj:g}").replace("{}", "") for e in exprs]
        if key == "saturation_latency" and kpis:
            promql += [s["definition"]["promql"] for s in kpis.get("use", [])
                       if s.get("kind") in ("utilization", "saturation") and s["definition"].get("promql")]
        panels.append({"key": key, "title": title, "kind": kind, "promql": promql, "description": question,
                       "figure": figures.get(key)})
    return panels


def dashboard_panels(results: dict[str, Any], config: RunConfig,
                     service_selector: str | None = None) -> list[dict[str, Any]]:
    """The dashboard panels (key, title, kind, promql, description) for this run's results;
    ``service_selector`` replaces the service matcher (Grafana: ``service=~"$service"``)."""
    objective, _ = _objective(results, "availability")
    if objective is not None and objective > 1:
        objective /= 100
    return _panels(config, {}, objective, results.get("kpis") or None, results, service_selector)


# ---------------------------------------------------------------------------------------- the model


def monitoring_model(results: dict[str, Any], config: RunConfig, figures: dict[str, str],
                     figures_skipped: str = "") -> dict[str, Any]:
    """Everything the Markdown document shows, as plain values (not yet escaped or formatted; the
    coverage gap sentences are kit-written Markdown); ``coverage`` says what the warehouse holds, so the
    template leaves out what needs request times; ``figures_skipped`` says why the panel images were not
    drawn, when they were wanted but could not be."""
    kpis = results.get("kpis")
    slo_model, slo_catalog, slo_reason = slo_parts(results)
    objective, _ = _objective(results, "availability")
    if objective is not None and objective > 1:
        objective /= 100
    model: dict[str, Any] = {
        "title": config.title, "date": _document_date(results, config), "kpis": kpis,
        "slo": slo_model, "slo_reason": markdown(slo_reason), "config": config, "coverage": coverage_of(results),
        "panels": _panels(config, figures, objective, kpis, results), "figures_skipped": figures_skipped,
        "bottlenecks": _bottleneck_rows(results.get("bottlenecks"), config.top_n),
        "service_naming": _service_naming(results),
        "kpis_missing": markdown(gap_text(results, "requests", fallback=(
            "KPIs were not computed in this run (no `kpis` result: notebook 10_kpis did not run), so this "
            "document has no baselines."))),
        "use_missing": markdown(gap_text(results, "metrics", fallback=(
            "No metric in the warehouse is one perfkit recognizes as a resource signal (CPU, memory, "
            "connections, queues)."))),
        "bottlenecks_missing": markdown(gap_text(results, "requests", "latency", fallback=(
            "The bottleneck ranking was not computed in this run (no `bottlenecks` result)."))),
        "findings": findings_model(results.get("bottlenecks")),
        "findings_missing": markdown(gap_text(results, "requests", fallback=(
            "Bottleneck findings (what changed, where, when and why) were not computed in this run (no "
            "`findings` in the `bottlenecks` result: notebook 30_bottlenecks did not run, or the run is older "
            "than the detector)."))),
    }
    if kpis:
        targets = kpi_targets(kpis, results, config)
        model["kpi_rows"] = [{**k, "target": targets.get(k["name"], (None, ""))[0],
                              "target_basis": targets.get(k["name"], (None, ""))[1]} for k in kpis["kpis"]]
        model["metrics"] = recommended_metrics(kpis, config)
        routes = sorted(kpis.get("by_route", []), key=lambda r: (-(r.get("p99_ms") or 0), r["group"]))
        busy = [r for r in routes if r["requests"] >= _median([x["requests"] for x in routes])]
        model["slow_routes"] = busy[: config.top_n]
        model["failing_routes"] = sorted(
            [r for r in kpis.get("by_route", []) if r["errors_5xx"]],
            key=lambda r: (-r["errors_5xx"], r["group"]))[: config.top_n]
    model["summary"] = monitoring_summary(results, model.get("kpi_rows"))
    return model


def _service_naming(results: dict[str, Any], shown: int = 10) -> dict[str, Any] | None:
    """How the services of access logs without a service field were named: the first ``shown`` (service,
    how, file name) and how many more; None when every service was given or the log named it."""
    named = [n for n in (results.get("overview") or {}).get("service_naming", [])
             if n.get("how") in ("virtual host", "file name") and n.get("service")]
    if not named:
        return None
    return {"named": [{"service": n["service"], "how": n["how"], "file": Path(str(n.get("path") or "")).name}
                      for n in named[:shown]], "more": max(0, len(named) - shown)}


def _median(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def findings_model(bottlenecks: Any) -> dict[str, Any] | None:
    """The findings of ``bottlenecks["findings"]`` (notebook 30's result) as plain rows: kind in words,
    metric, scope as (key, value) pairs (service and route first), onset, end and duration (s), the
    numbers, confidence, cost and the causes worth naming (strength >= ``CAUSE_SHOWN_STRENGTH``, at most
    ``CAUSES_SHOWN``; the first cause always); ``command`` reproduces them. None when there is no result."""
    findings = bottlenecks.get("findings") if isinstance(bottlenecks, dict) else None
    if not isinstance(findings, dict):
        return None
    items = []
    for item in findings.get("items") or []:
        scope = scope_pairs(item["scope"])
        causes = list(item["causes"][:1]) + [c for c in item["causes"][1:CAUSES_SHOWN]
                                            if c["strength"] >= CAUSE_SHOWN_STRENGTH]
        onset, end = item["onset"], item.get("end")
        duration = (datetime.fromisoformat(end) - datetime.fromisoformat(onset)).total_seconds() if end else None
        items.append({**{k: item.get(k) for k in (
            "metric", "onset", "end", "before", "after", "effect", "ci_low", "ci_high", "effect_unit", "p_value",
            "confidence", "cost_share", "cost_basis")}, "kind": str(item["kind"]).replace("_", " "),
            "scope": scope, "duration_s": duration, "causes": causes})
    start, end = findings.get("window_start"), findings.get("window_end")
    command = "perfkit findings --db <warehouse>" + (f" --start {start} --end {end}" if start and end else "")
    return {"found": items, "window_start": start, "window_end": end, "bucket_s": findings.get("bucket_s"),
            "command": command}


def _bottleneck_rows(result: Any, top_n: int) -> list[dict[str, Any]]:
    if not isinstance(result, dict):
        return []
    rows = result.get("top") or []
    return [r for r in rows if isinstance(r, dict)][:top_n]


# ------------------------------------------------------------------------------------- the documents


def build_monitoring_strategy(results: dict[str, Any], config: RunConfig, figures: dict[str, str],
                              figures_skipped: str = "") -> str:
    """Performance_Monitoring_Strategy.md from the run's results; ``figures`` maps panel keys to
    image paths relative to the document (panels without one are listed without an image). With
    ``figures_skipped`` (why the images could not be drawn) one line in the dashboard section says so."""
    model = monitoring_model(results, config, figures, figures_skipped)
    return render_markdown("Performance_Monitoring_Strategy.md.j2", m=model, slo=model["slo"])


def build_metrics_framework(results: dict[str, Any], config: RunConfig) -> dict[str, Any]:
    """Metrics_Framework_Specifications.json (valid against its schema): metrics, gaps, KPIs with SQL
    and PromQL definitions, baselines and targets, SLOs, alerts and dashboards; and the ``scaling`` block
    (autoscaling targets, capacity metrics) when the run has a ``scaling`` result (notebook 60_scaling)."""
    kpis = results.get("kpis") or {}
    _, catalog, slo_reason = slo_parts(results)
    objective, _ = _objective(results, "availability")
    if objective is not None and objective > 1:
        objective /= 100
    notes = []
    kpi_items = []
    if kpis:
        targets = kpi_targets(kpis, results, config)
        for k in kpis["kpis"]:
            target, basis = targets.get(k["name"], (None, ""))
            kpi_items.append({
                "name": k["name"], "description": k["description"], "unit": k["unit"],
                "scope": "services=" + ",".join(kpis.get("services") or []) if kpis.get("services") else "overall",
                "definition": {"sql": k["definition"]["sql"], "promql": k["definition"].get("promql"),
                               "notes": k["definition"].get("notes")},
                "baseline": k.get("value"), "previous": k.get("previous"), "target": target,
                "target_direction": "max" if k["better"] == "lower" else "min",
                "target_basis": basis,
            })
        notes.append(f"Percentiles: {kpis.get('quantile_method', '')}")
        notes.append(f"Apdex T = {kpis.get('apdex_t_ms'):g} ms; a 5xx response counts as frustrated.")
    else:
        notes.append(gap_text(results, "requests", fallback=(
            "KPIs were not computed in this run (no kpis result: notebook 10_kpis did not run).")).replace("`", ""))
    if slo_reason:
        notes.append(slo_reason.replace("`", ""))
    panels = [{k: v for k, v in p.items() if k not in ("key", "figure")} | {"figure": p["key"]}
              for p in _panels(config, {}, objective, kpis or None, results)]
    scaling = {"scaling": scaling_block(results["scaling"])} if results.get("scaling") else {}
    return {
        "schema_version": SCHEMA_VERSION,
        "title": f"{config.title}: metrics framework",
        "as_of": _document_date(results, config),
        "window": {"start": kpis.get("window_start"), "end": kpis.get("window_end"),
                   **({"requests": int(kpis["requests"])} if kpis else {})},
        "metrics": recommended_metrics(kpis, config) if kpis else [],
        "instrumentation_gaps": [{"what": g["what"], "why": g["collect"], "metric": g.get("metric")}
                                 for g in kpis.get("gaps", [])],
        "kpis": kpi_items,
        "slos": (catalog or {}).get("slos", []),
        "alerts": (catalog or {}).get("alerts", []),
        "dashboards": [{"title": f"{config.title}: service health", "uid": "perfkit-service-health",
                        "panels": panels}],
        "notes": notes,
        **scaling,
    }


# --------------------------------------------------------------------------------------------- figures


def monitoring_figures(results: dict[str, Any]) -> dict[str, go.Figure]:
    """The dashboard panels as plotly figures, keyed like PANELS (static images for the Markdown)."""
    from kit.viz import kpis as charts

    figures: dict[str, go.Figure] = {}
    kpis = results.get("kpis")
    if kpis:
        figures["overview"] = charts.plot_overview(kpis)
    if kpis and coverage_of(results).has("latency"):  # the other panels draw request times
        figures["per_service"] = charts.plot_service_latency(kpis, "p95_ms")
        figures["per_route"] = charts.plot_route_drilldown(kpis)
        figures["latency_heatmap"] = charts.plot_latency_heatmap(kpis)
        if kpis.get("saturation_latency"):
            figures["saturation_latency"] = charts.plot_saturation_latency(kpis)
    slo = results.get("slo") or {}
    if slo.get("slos"):
        from kit.viz import slo as slo_charts

        figures["slo_burndown"] = slo_charts.plot_burndown(slo)
        timelines = (slo.get("backtest") or {}).get("timeline") or []
        if timelines:  # the first SLO with a replayed timeline, availability first
            kinds = {s.get("slo_id"): s.get("sli_kind") for s in slo["slos"]}
            chosen = sorted(timelines, key=lambda t: (kinds.get(t.get("slo_id")) != "availability",
                                                      str(t.get("slo_id"))))[0]
            figures["burn_rate"] = slo_charts.plot_burn_rate_timeline(slo, chosen["slo_id"])
    return figures
