"""The headline KPIs over a window, each with its definition as DuckDB SQL and as PromQL over the
recommended Prometheus instrumentation."""

from __future__ import annotations

import re

import duckdb

from kit.analysis.kpis.model import Definition, Kpi
from kit.analysis.kpis.quantiles import HIST_GAMMA, HIST_RELATIVE_ERROR, LOG_HISTOGRAM, QUANTILE_NAMES, QUANTILES
from kit.analysis.kpis.red import red_table, throughput
from kit.analysis.kpis.sql import duration_label, http_requests_label_keys, rate_seconds, scope_sql
from kit.analysis.window import Window
from kit.engine import Queryable

__all__ = ["headline", "status_label"]

def _promql_label(services: tuple[str, ...] | list[str] | None) -> str:
    if not services:
        return ""
    pattern = "|".join(re.escape(s) for s in services).replace("\\", "\\\\").replace('"', '\\"')
    return f'service=~"{pattern}"'


def status_label(con: duckdb.DuckDBPyConnection) -> str:
    """The label carrying the HTTP status on ``http_requests_total`` in ``metrics`` (``code`` as in
    client_golang, else ``status``, the default when the metric is absent)."""
    keys = http_requests_label_keys(con) or set()
    return "code" if "code" in keys and "status" not in keys else "status"


def headline(con: Queryable, window: Window, *, services: list[str] | tuple[str, ...] | None = None,
             apdex_t_ms: float = 300.0, qfunc: str = "quantile_cont", status: str = "status") -> tuple[Kpi, ...]:
    """The headline KPIs over ``window``, each with its SQL and PromQL definition (``status``: the
    label name of the HTTP status in PromQL)."""
    overall = red_table(con, window, None, services=services, apdex_t_ms=apdex_t_ms, qfunc=qfunc)
    tput = throughput(con, window, services=services)
    row = overall[0] if overall and overall[0].requests else None
    scope = scope_sql(window, services)
    sel = _promql_label(services)
    s_all = f"{{{sel}}}" if sel else ""
    s_5xx = "{" + ", ".join(x for x in (sel, f'{status}=~"5.."') if x) + "}"
    s_4xx = "{" + ", ".join(x for x in (sel, f'{status}=~"4.."') if x) + "}"
    total = f"sum(rate(http_requests_total{s_all}[5m]))"
    rng = duration_label(window.seconds)
    t_s, t4_s = apdex_t_ms / 1000, 4 * apdex_t_ms / 1000
    hist = "http_request_duration_seconds_bucket"

    def le(v: float) -> str:
        return "{" + ", ".join(x for x in (sel, f'le="{v:g}"') if x) + "}"

    base = f"FROM requests WHERE {scope}"
    out: list[Kpi] = [
        Kpi("request_rate_rps", "requests/s", row.rate_rps if row else 0.0,
            "mean request rate over the window", "higher",
            Definition(f"SELECT count(*) / {rate_seconds(window):.3f} {base}", total)),
        Kpi("error_rate_5xx", "ratio", row.error_rate_5xx if row else None,
            "share of requests answered with a 5xx status", "lower",
            Definition(f"SELECT count(*) FILTER (WHERE status >= 500) / count(*) {base}",
                       f"sum(rate(http_requests_total{s_5xx}[5m])) / {total}")),
        Kpi("error_rate_4xx", "ratio", row.error_rate_4xx if row else None,
            "share of requests answered with a 4xx status (client errors, reported apart)", "lower",
            Definition(f"SELECT count(*) FILTER (WHERE status BETWEEN 400 AND 499) / count(*) {base}",
                       f"sum(rate(http_requests_total{s_4xx}[5m])) / {total}")),
        Kpi("availability", "ratio", row.availability if row else None,
            "share of requests not answered with a 5xx status", "higher",
            Definition(f"SELECT 1 - count(*) FILTER (WHERE status >= 500) / count(*) {base}",
                       f"1 - sum(rate(http_requests_total{s_5xx}[5m])) / {total}")),
    ]
    for q, name in zip(QUANTILES, QUANTILE_NAMES, strict=True):
        value = getattr(row, name) if row else None
        out.append(Kpi(
            f"latency_{name}", "ms", value, f"{q * 100:g}th percentile of request latency", "lower",
            Definition(f"SELECT {qfunc}(latency_ms, {q:g}) {base}" if qfunc != LOG_HISTOGRAM else
                       f"quantile {q:g} of the log histogram (buckets floor(ln(latency_ms) / ln({HIST_GAMMA:g})), "
                       f"linear interpolation at rank {q:g} (n - 1)) {base}",
                       f"1000 * histogram_quantile({q:g}, sum by (le) (rate({hist}{s_all}[5m])))",
                       "quantile_cont = linear interpolation between closest ranks"
                       if qfunc == "quantile_cont" else
                       f"log-histogram estimate within {100 * HIST_RELATIVE_ERROR:.2f} % of quantile_cont")))
    out.append(Kpi(
        "apdex", "score 0-1", row.apdex if row else None,
        f"Apdex with T = {apdex_t_ms:g} ms (5xx count as frustrated)", "higher",
        Definition(
            f"SELECT (count(*) FILTER (WHERE status < 500 AND latency_ms <= {apdex_t_ms:g}) + 0.5 * count(*) "
            f"FILTER (WHERE status < 500 AND latency_ms > {apdex_t_ms:g} AND latency_ms <= {4 * apdex_t_ms:g}))"
            f" / count(*) {base}",
            f"(sum(rate({hist}{le(t_s)}[5m])) + sum(rate({hist}{le(t4_s)}[5m]))) / 2 / "
            f"sum(rate(http_request_duration_seconds_count{s_all}[5m]))",
            f"the histogram needs buckets at le={t_s:g} and le={t4_s:g}; PromQL counts slow errors as "
            "tolerating/satisfied, the SQL as frustrated")))
    minute_sql = (f"SELECT count(*) / 60 AS rps FROM requests WHERE {scope} "
                  "GROUP BY time_bucket(INTERVAL '1 minute', ts)")
    out.append(Kpi(
        "peak_rps_1m", "requests/s", tput.peak_rps_1m, "busiest 1-minute request rate", "higher",
        Definition(f"SELECT max(rps) FROM ({minute_sql})",
                   f"max_over_time(sum(rate(http_requests_total{s_all}[1m]))[{rng}:1m])")))
    out.append(Kpi(
        "sustained_rps_p95_1m", "requests/s", tput.sustained_rps_p95_1m,
        "95th percentile of the 1-minute request rates (empty minutes count as 0)", "higher",
        Definition(f"SELECT quantile_cont(rps, 0.95) FROM (<every minute of the window, 0 when empty> "
                   f"LEFT JOIN ({minute_sql}))",
                   f"quantile_over_time(0.95, sum(rate(http_requests_total{s_all}[1m]))[{rng}:1m])")))
    return tuple(out)
