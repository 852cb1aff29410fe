"""``kpi_report``: every KPI of notebook 10 over one window, in one ``KpiReport``."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import duckdb

from kit.analysis.coverage import NEEDS, Coverage
from kit.analysis.kpis.compare import compare_headline, compare_periods
from kit.analysis.kpis.gaps import instrumentation_gaps
from kit.analysis.kpis.headline import headline, status_label
from kit.analysis.kpis.histogram import latency_heatmap, latency_histogram
from kit.analysis.kpis.model import Kpi, KpiReport
from kit.analysis.kpis.quantiles import EXACT_MAX_ROWS, HIST_GAMMA, HIST_RELATIVE_ERROR, quantile_function
from kit.analysis.kpis.red import (
    HEATMAP_MAX_COLUMNS,
    SERIES_MAX_POINTS,
    SERVICE_SERIES_MAX_POINTS,
    red_series,
    red_table,
    series_step_s,
    throughput,
)
from kit.analysis.kpis.sql import MIN_RATE_SECONDS, duration_label, request_count, scope_sql
from kit.analysis.kpis.use import metric_inventory, use_signals
from kit.analysis.window import Window, resolve_window
from kit.config import bucket_seconds
from kit.engine import Queryable, as_engine
from kit.errors import DataError, ParameterError

__all__ = ["LATENCY_KPIS", "kpi_report"]

# the headline KPIs computed from request latencies: left out when the window's requests have none
LATENCY_KPIS: tuple[str, ...] = ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
                                 "latency_p999_ms", "apdex")

def kpi_report(con: duckdb.DuckDBPyConnection, start: str | datetime | None = None,
               end: str | datetime | None = None, services: list[str] | None = None, bucket: str = "5m",
               apdex_t_ms: float = 300.0, top_n: int = 10, exact_max_rows: int = EXACT_MAX_ROWS,
               max_routes: int = 500, engine: Queryable | None = None) -> KpiReport:
    """All KPIs of notebook 10 over the window [start, end) for ``services`` (empty = all).

    ``engine`` runs the heavy aggregations over ``requests`` (RED tables and series, throughput,
    histogram, heatmap, headline and comparison; default: DuckDB on ``con``); ``con`` the rest (window,
    metrics, gaps)."""
    heavy = as_engine(engine if engine is not None else con)
    if apdex_t_ms <= 0:
        raise ParameterError("parameter 'apdex_t_ms' must be > 0")
    seconds = bucket_seconds(bucket)
    svc = tuple(services or ())
    con.execute("SET enable_progress_bar = false")  # no DuckDB progress widgets in notebook output
    window = resolve_window(con, start, end, list(svc))
    counts = heavy.rows(f"SELECT count(*), count(latency_ms) FROM requests WHERE {scope_sql(window, svc)}")[0]
    n, with_latency = (int(counts[0]), int(counts[1])) if counts else (0, 0)
    if n == 0:
        raise DataError(f"no requests in the window {window.label()}"
                        + (f" for services {', '.join(svc)}" if svc else "")
                        + ("" if window.basis == "requests" else f". {NEEDS['requests'].sentence()}"))
    qfunc = quantile_function(n, exact_max_rows)
    method = ("exact: quantile_cont (linear interpolation between closest ranks, the numpy default)"
              if qfunc == "quantile_cont" else
              f"approximate above {exact_max_rows:,} rows: log histogram ({100 * (HIST_GAMMA - 1):g} % buckets), "
              f"within {100 * HIST_RELATIVE_ERROR:.2f} % of the exact value; per-bucket series stay exact")
    kw = {"services": svc, "apdex_t_ms": apdex_t_ms, "qfunc": qfunc}
    overall = red_table(heavy, window, None, **kw)[0]  # type: ignore[arg-type]
    by_service = red_table(heavy, window, "service", **kw)  # type: ignore[arg-type]
    by_route = red_table(heavy, window, "route", limit=max_routes, **kw)  # type: ignore[arg-type]
    top_routes = tuple(dict.fromkeys(r.group for r in by_route))[:top_n]
    # the series are exact at any size (time slices bound the memory, see red_series); coarser buckets
    # over long windows keep the report and its JSON small
    skw = {"services": svc, "apdex_t_ms": apdex_t_ms, "rows": n}
    overall_s = series_step_s(window.seconds, seconds, SERIES_MAX_POINTS)
    service_s = series_step_s(window.seconds, seconds, SERVICE_SERIES_MAX_POINTS)
    heat_s = series_step_s(window.seconds, seconds, HEATMAP_MAX_COLUMNS)
    series_overall = red_series(heavy, window, f"{overall_s}s", None, **skw)  # type: ignore[arg-type]
    series_by_service = red_series(heavy, window, f"{service_s}s", "service", **skw)  # type: ignore[arg-type]
    series_by_route = red_series(heavy, window, f"{heat_s}s", "route", routes=list(top_routes),
                                 **skw)  # type: ignore[arg-type]
    use, sat_points, use_gaps = use_signals(con, window, f"{service_s}s", qfunc)
    gaps = instrumentation_gaps(con, window, services=svc) + use_gaps

    status = status_label(con)
    current_kpis = headline(heavy, window, status=status, **kw)  # type: ignore[arg-type]
    previous = window.previous()
    notes = []
    if request_count(heavy, previous, svc):
        comparison = compare_headline(heavy, current_kpis, window, previous,
                                      basis="previous window of the same length", **kw)  # type: ignore[arg-type]
        by_name = {r.name: r for r in comparison.rows}
        current_kpis = tuple(Kpi(k.name, k.unit, k.value, k.description, k.better, k.definition,
                                 by_name[k.name].previous, by_name[k.name].change_pct) for k in current_kpis)
    else:  # the window is the whole history: compare its last day (or half) with the one before
        span = 86400.0 if window.seconds >= 2 * 86400 else window.seconds / 2
        cur = Window(window.end - timedelta(seconds=span), window.end)
        comparison = compare_periods(heavy, cur, cur.previous(), basis=(
            f"no requests before the window, so its last {duration_label(span)} is compared with the "
            f"{duration_label(span)} before it"), **kw)  # type: ignore[arg-type]
        notes.append(comparison.basis)
    latency_gap = Coverage({"requests": n}, {"latency_ms": with_latency}).gap("latency")
    if latency_gap is not None:  # no request of the window has a latency: its KPIs are not measured
        notes.append(f"{', '.join(k.name for k in current_kpis if k.name in LATENCY_KPIS)} left out: "
                     f"{latency_gap.sentence()}")
        current_kpis = tuple(k for k in current_kpis if k.name not in LATENCY_KPIS)
        comparison = replace(comparison, rows=tuple(r for r in comparison.rows if r.name not in LATENCY_KPIS))
    if window.seconds < MIN_RATE_SECONDS:
        notes.append(f"the window is {window.seconds:.3g} s long, under a minute: request rates are per minute "
                     "of history (requests / 60 s)")
    if max(overall_s, service_s, heat_s) > seconds:
        notes.append(f"series over this {window.seconds / 86400:.1f}-day window in coarser buckets than {bucket}: "
                     f"overall {duration_label(overall_s)}, per service and saturation {duration_label(service_s)}, "
                     f"per route and heatmap {duration_label(heat_s)}")
    if by_route and len(by_route) == max_routes:
        notes.append(f"per-route table limited to the {max_routes} busiest routes")
    return KpiReport(
        window_start=window.start, window_end=window.end, window_seconds=window.seconds, services=svc,
        bucket=bucket, bucket_seconds=seconds, apdex_t_ms=apdex_t_ms, requests=n, quantile_method=method,
        kpis=current_kpis, overall=overall, by_service=by_service, by_route=by_route,
        series_overall=series_overall, series_by_service=series_by_service, series_by_route=series_by_route,
        top_routes=top_routes, throughput=throughput(heavy, window, services=svc),
        histogram=latency_histogram(heavy, window, None, services=svc) + latency_histogram(
            heavy, window, "service", services=svc),
        heatmap_bucket_seconds=heat_s, heatmap=latency_heatmap(heavy, window, heat_s, services=svc),
        route_series_bucket_seconds=heat_s, series_bucket_seconds=overall_s,
        service_series_bucket_seconds=service_s,
        use=use, metrics=metric_inventory(con, window), status_label=status,
        saturation_latency=sat_points, gaps=gaps, comparison=comparison, notes=tuple(notes))
