"""Instrumentation gaps of the requests: fields the logs leave empty and Prometheus request metrics
that are missing or lack a route label (the USE cells no metric covers come from ``use_signals``)."""

from __future__ import annotations

import duckdb

from kit.analysis.kpis.model import Gap
from kit.analysis.kpis.sql import http_requests_label_keys, scope_sql
from kit.analysis.window import Window

__all__ = ["REQUEST_FIELDS", "instrumentation_gaps"]

# Request columns whose absence is an instrumentation gap (column, what it enables, what to log).
REQUEST_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("latency_ms", "latency KPIs, Apdex, latency SLOs", "$request_time (nginx) / %D (Apache)"),
    ("upstream_ms", "splitting proxy time from application time", "$upstream_response_time"),
    ("bytes_sent", "bandwidth, compression and CDN byte-hit analysis", "$body_bytes_sent"),
    ("cache_status", "cache and CDN hit ratios", "$upstream_cache_status or the cache status field of the CDN log"),
    ("route", "per-route drill-down", "a route template (or rely on perfkit's path templating)"),
    ("service", "per-service RED", "the service or virtual host name"),
)


def instrumentation_gaps(con: duckdb.DuckDBPyConnection, window: Window, *,
                         services: list[str] | tuple[str, ...] | None = None,
                         min_share: float = 0.5) -> tuple[Gap, ...]:
    """Request fields filled in fewer than ``min_share`` of the window's requests, and missing
    Prometheus request metrics (the KPIs then come from logs only)."""
    cols = ", ".join(f"count({c})" for c, _, _ in REQUEST_FIELDS)
    row = con.execute(f"SELECT count(*), {cols} FROM requests WHERE {scope_sql(window, services)}").fetchall()[0]
    assert row is not None
    total, counts = row[0], row[1:]
    gaps = []
    for (column, enables, collect), filled in zip(REQUEST_FIELDS, counts, strict=True):
        if total and filled / total < min_share:
            gaps.append(Gap("requests", column,
                            f"{column} filled in {100 * filled / total:.1f} % of requests: no {enables}",
                            collect))
    has_prom = con.execute(
        "SELECT count(*) FROM metrics WHERE name LIKE 'http_request%' OR name LIKE 'http_server_request%'"
    ).fetchall()[0]
    keys = http_requests_label_keys(con)
    if keys is not None and "route" not in keys:
        gaps.append(Gap("requests", "prometheus route label",
                        "http_requests_total has no route label: per-route panels and alerts cannot be "
                        "evaluated from Prometheus, only from logs",
                        "a templated route label on http_requests_total and http_request_duration_seconds "
                        "(bounded cardinality: templates, not raw paths)", "http_requests_total"))
    if has_prom and not has_prom[0]:
        gaps.append(Gap("requests", "prometheus",
                        "no HTTP request metrics in Prometheus form: KPIs come from access logs only, "
                        "so alerts cannot be evaluated live",
                        "http_requests_total{service,route,method,status} counter and "
                        "http_request_duration_seconds histogram", "http_requests_total"))
    return tuple(gaps)
