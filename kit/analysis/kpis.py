"""Key performance indicators over the warehouse, computed in DuckDB SQL.

RED (rate, errors, duration) per service and per route, by time bucket and over the window; Apdex(T);
availability; peak and sustained throughput; latency histogram and heatmap; USE (utilization,
saturation, errors) of resources from ``metrics``; the instrumentation gaps; and a period-over-period
comparison. Every headline KPI carries its definition as SQL and, for the recommended Prometheus
instrumentation, as PromQL.

Percentiles: exact by default with ``quantile_cont`` (linear interpolation between the two closest
ranks, the same as ``numpy.percentile``'s default ``linear`` method). When the window holds more than
``exact_max_rows`` requests, the whole-window percentiles come from a log-spaced latency histogram
(``histogram_quantiles``: 1 % buckets, DDSketch-style) instead: each estimate is within
``HIST_RELATIVE_ERROR`` = 0.4975 % of the exact ``quantile_cont`` value (tested against numpy), and the
histogram is a plain GROUP BY that spills under a memory limit. DuckDB's ``approx_quantile`` (t-digest),
used here before, only bounds the *rank* error: across a gap in a bimodal tail its *value* can be far
off. The report states which method was used.
That switch applies to the whole-window tables (a few
groups holding every value); the per-bucket series stay exact at any size: they are computed in
bucket-aligned time slices of at most ``SERIES_SLICE_ROWS`` requests (``red_series_frame``,
``latency_series_frame``), so ``quantile_cont`` never holds more than one slice's values (we measured
``approx_quantile`` over 1.3M route-minutes at 50M rows: 41 s and 8.9 GB, against about 3 s and
0.9 GB exact in slices; DuckDB's holistic aggregates do not spill, so the slices are also what keeps
100M rows within a 2 GB ``memory_limit``).

Speed (benchmarks/bench_kpis.py): grouping by ``epoch_us`` integer buckets instead of ``time_bucket`` on
TIMESTAMPTZ (time-zone aware) made the per-route, per-minute query ~1.5x faster at 50M rows; slicing
helps most when the requests table is stored in time order, as ingestion from logs leaves it (each
slice then reads only its own row groups); in random order every slice scans the whole table.

Saved JSON (``report_json``, ``save_report_json``): long per-bucket lists are stored column-wise with
floats rounded to 4 significant digits, series over long windows use coarser buckets
(``series_step_s``: at most 1000 points overall, 400 per service, 200 per route and heatmap columns),
and the file is written without indentation: ~0.8 MB for the 7-day, 1M-request demo (was 8.7 MB).

Definitions used everywhere:
- error rate 5xx = requests with status >= 500 / all requests; 4xx are reported apart (client errors);
- availability = 1 - error rate 5xx (request based);
- Apdex(T) = (satisfied + tolerating / 2) / total, satisfied = latency <= T, tolerating =
  T < latency <= 4T; a 5xx response counts as frustrated whatever its latency;
- peak throughput = the busiest 1-minute rate; sustained throughput = p95 of the 1-minute rates over
  every minute of the window (empty minutes count as 0).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from kit.analysis.window import Window, resolve_window, services_sql
from kit.config import bucket_seconds
from kit.errors import DataError, ParameterError
from kit.results import to_jsonable, write_text_atomic

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99, 0.999)
QUANTILE_NAMES: tuple[str, ...] = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms")
EXACT_MAX_ROWS = 20_000_000
# Above EXACT_MAX_ROWS the whole-window percentiles come from a log-spaced histogram (DDSketch-style):
# bucket k = floor(ln(x) / ln(HIST_GAMMA)) holds [GAMMA^k, GAMMA^(k+1)) and stands for 2 GAMMA^(k+1) /
# (GAMMA + 1), which is within HIST_RELATIVE_ERROR of every value of the bucket. The estimate interpolates
# between the representatives of the two ranks quantile_cont would interpolate between, so it is within
# HIST_RELATIVE_ERROR (0.4975 %) of the exact quantile_cont value. Latencies below HIST_MIN_MS count as
# HIST_MIN_MS / 2 (absolute error below 0.5 µs).
LOG_HISTOGRAM = "log_histogram"
HIST_GAMMA = 1.01
HIST_RELATIVE_ERROR = (HIST_GAMMA - 1) / (HIST_GAMMA + 1)
HIST_MIN_MS = 0.001
# Latency histogram: 10 log-spaced bins per decade from 0.1 ms to 100 s (outside values clamp to the ends).
HIST_BINS_PER_DECADE = 10
HIST_MIN_EXP, HIST_MAX_EXP = -1, 5
# Time resolution kept in the report (and its JSON) so it stays small whatever the window: the series
# use the requested bucket, or the first step of SERIES_STEPS_S that keeps them within these counts.
SERIES_MAX_POINTS = 1000  # overall series
SERVICE_SERIES_MAX_POINTS = 400  # per-service series and the saturation points
HEATMAP_MAX_COLUMNS = 200  # heatmap columns and the per-route series
SERIES_STEPS_S: tuple[int, ...] = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
# Per-bucket series over more requests than this are computed in time slices (aligned to the bucket), one
# query each: a group (bucket, route) lies in one slice, so the exact quantiles are unchanged, while the
# memory held by ``quantile_cont`` (every value of the slice) stays bounded and smaller hash tables run faster.
SERIES_SLICE_ROWS = 8_000_000
# time_bucket's default origin (Monday 2000-01-03 UTC), in microseconds since the Unix epoch.
_BUCKET_ORIGIN_US = 946_857_600_000_000

__all__ = [
    "Definition", "Kpi", "RedRow", "SeriesPoint", "HistogramBin", "HeatCell", "Throughput", "UseSignal",
    "Gap", "MetricInfo",
    "metric_inventory", "SaturationPoint", "USE_CATALOG", "ComparisonRow", "Comparison", "KpiReport",
    "kpi_report", "report_json", "save_report_json", "red_table", "series_step_s", "red_series_frame",
    "latency_series_frame",
    "red_series", "throughput", "use_signals", "instrumentation_gaps", "compare_periods", "headline", "status_label",
    "quantile_function", "QUANTILES", "EXACT_MAX_ROWS", "histogram_quantiles", "HIST_RELATIVE_ERROR",
]


@dataclass(frozen=True)
class Definition:
    """How a KPI is computed: DuckDB SQL over the warehouse, and PromQL over the recommended metrics."""

    sql: str
    promql: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Kpi:
    """One headline KPI over the window, with the previous window's value when there is one."""

    name: str
    unit: str
    value: float | None
    description: str
    better: str  # "lower" or "higher"
    definition: Definition
    previous: float | None = None
    change_pct: float | None = None


@dataclass(frozen=True)
class RedRow:
    """RED and Apdex for one group (a service, a route, or everything) over the window."""

    group: str
    service: str | None
    requests: int
    rate_rps: float
    errors_5xx: int
    error_rate_5xx: float
    errors_4xx: int
    error_rate_4xx: float
    availability: float
    apdex: float | None
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    bytes_sent: int | None


@dataclass(frozen=True)
class SeriesPoint:
    """RED for one group in one time bucket (rate over the bucket's length)."""

    bucket_start: datetime
    group: str
    requests: int
    rate_rps: float
    errors_5xx: int
    error_rate_5xx: float
    errors_4xx: int
    apdex: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class HistogramBin:
    """Requests of a group whose latency falls in [lo_ms, hi_ms)."""

    group: str
    lo_ms: float
    hi_ms: float
    count: int


@dataclass(frozen=True)
class HeatCell:
    """Requests in one time bucket and one latency bin (only non-empty cells are listed)."""

    bucket_start: datetime
    lo_ms: float
    hi_ms: float
    count: int


@dataclass(frozen=True)
class Throughput:
    """Peak and sustained request rates from 1-minute counts over every minute of the window."""

    mean_rps: float
    median_rps_1m: float
    sustained_rps_p95_1m: float
    peak_rps_1m: float
    peak_minute: datetime | None
    minutes: int


@dataclass(frozen=True)
class UseSignal:
    """One USE signal found in ``metrics``: summary of its per-bucket mean across series."""

    resource: str
    kind: str  # utilization, saturation or errors
    metric: str
    unit: str
    series: int
    samples: int
    mean: float | None
    p95: float | None
    max: float | None
    latency_corr: float | None  # Pearson correlation of the bucket mean with the bucket's p95 latency
    definition: Definition


@dataclass(frozen=True)
class Gap:
    """A signal the warehouse lacks: what is missing and what to collect instead."""

    resource: str
    kind: str
    what: str
    collect: str
    metric: str | None = None  # the recommended metric name, when there is one


@dataclass(frozen=True)
class SaturationPoint:
    """One time bucket: a resource signal's mean next to the overall latency."""

    bucket_start: datetime
    metric: str
    value: float | None
    p95_ms: float | None
    requests: int


@dataclass(frozen=True)
class ComparisonRow:
    name: str
    unit: str
    current: float | None
    previous: float | None
    change_pct: float | None
    better: str
    verdict: str  # better, worse, same, n/a


@dataclass(frozen=True)
class Comparison:
    """This window against the one before it (same length)."""

    basis: str
    current_start: datetime
    current_end: datetime
    previous_start: datetime
    previous_end: datetime
    previous_requests: int
    rows: tuple[ComparisonRow, ...]


@dataclass(frozen=True)
class KpiReport:
    """Everything notebook 10 shows; saved as ``results/kpis.json``."""

    window_start: datetime
    window_end: datetime
    window_seconds: float
    services: tuple[str, ...]
    bucket: str
    bucket_seconds: int
    apdex_t_ms: float
    requests: int
    quantile_method: str
    kpis: tuple[Kpi, ...]
    overall: RedRow
    by_service: tuple[RedRow, ...]
    by_route: tuple[RedRow, ...]
    series_overall: tuple[SeriesPoint, ...]
    series_by_service: tuple[SeriesPoint, ...]
    series_by_route: tuple[SeriesPoint, ...]
    top_routes: tuple[str, ...]
    throughput: Throughput
    histogram: tuple[HistogramBin, ...]
    heatmap_bucket_seconds: int
    heatmap: tuple[HeatCell, ...]
    route_series_bucket_seconds: int
    use: tuple[UseSignal, ...]
    metrics: tuple[MetricInfo, ...]
    status_label: str  # label of the HTTP status on http_requests_total (PromQL definitions use it)
    saturation_latency: tuple[SaturationPoint, ...]
    gaps: tuple[Gap, ...]
    comparison: Comparison
    series_bucket_seconds: int  # bucket of series_overall (the requested one unless the window is long)
    service_series_bucket_seconds: int  # bucket of series_by_service and saturation_latency
    notes: tuple[str, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------------------------------
# SQL building blocks


def quantile_function(rows: int, exact_max_rows: int = EXACT_MAX_ROWS) -> str:
    """``quantile_cont`` (exact) up to ``exact_max_rows`` rows, ``log_histogram`` (relative error at most
    ``HIST_RELATIVE_ERROR``, see ``histogram_quantiles``) above."""
    return "quantile_cont" if rows <= exact_max_rows else LOG_HISTOGRAM


def histogram_quantiles(con: duckdb.DuckDBPyConnection, where_sql: str, group_sql: str = "'all'",
                        quantiles: tuple[float, ...] = QUANTILES) -> dict[tuple, list[float]]:
    """Latency quantiles (ms) per group of ``group_sql`` (a comma-separated list of expressions) over
    ``requests WHERE where_sql``, from a log-spaced histogram: within ``HIST_RELATIVE_ERROR`` of
    ``quantile_cont`` (linear interpolation at rank q (n - 1)). A plain GROUP BY with few groups, so it is
    fast and spills to disk under a memory limit, unlike the holistic quantile aggregates.

    Returns {group key tuple: [one value per quantile]}."""
    ln_gamma = _num(math.log(HIST_GAMMA))
    n_keys = len(_split_top_level(group_sql))
    keys = ", ".join(f"g{i}" for i in range(n_keys))
    qs = ", ".join(f"({i}, {_num(q)})" for i, q in enumerate(quantiles))
    rep = (f"CASE WHEN {{k}} IS NULL THEN NULL WHEN {{k}} = -2147483648 THEN {_num(HIST_MIN_MS / 2)} "
           f"ELSE 2 * pow({_num(HIST_GAMMA)}, {{k}} + 1) / {_num(HIST_GAMMA + 1)} END")
    sql = f"""
        WITH h AS (
            SELECT {", ".join(f"{g} AS g{i}" for i, g in enumerate(_split_top_level(group_sql)))},
                   CASE WHEN latency_ms < {_num(HIST_MIN_MS)} THEN -2147483648
                        ELSE floor(ln(latency_ms) / {ln_gamma})::INTEGER END AS k, count(*) AS c
            FROM requests WHERE ({where_sql}) AND latency_ms IS NOT NULL GROUP BY ALL),
        cum AS (
            SELECT {keys}, k, sum(c) OVER (PARTITION BY {keys} ORDER BY k ROWS UNBOUNDED PRECEDING) AS upto,
                   sum(c) OVER (PARTITION BY {keys}) AS n
            FROM h),
        ranks AS (
            SELECT {keys}, i, min(k) FILTER (WHERE upto > floor(q * (n - 1))) AS k_lo,
                   min(k) FILTER (WHERE upto > ceil(q * (n - 1))) AS k_hi,
                   any_value(q * (n - 1) - floor(q * (n - 1))) AS frac
            FROM cum, (VALUES {qs}) AS qs(i, q) GROUP BY ALL)
        SELECT {keys}, list(v ORDER BY i) FROM (
            SELECT {keys}, i, {rep.format(k="k_lo")} + frac * ({rep.format(k="k_hi")} - {rep.format(k="k_lo")}) AS v
            FROM ranks)
        GROUP BY ALL"""
    return {tuple(row[:-1]): list(row[-1]) for row in con.execute(sql).fetchall()}


def _split_top_level(sql: str) -> list[str]:
    """Split a comma-separated list of SQL expressions at top-level commas."""
    parts, depth, current = [], 0, ""
    for char in sql:
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += (char == "(") - (char == ")")
        current += char
    return [*parts, current.strip()]


def _series_qfunc(qfunc: str) -> str:
    """Per-bucket series stay exact in time slices: the histogram path is for whole-window tables only."""
    return "quantile_cont" if qfunc == LOG_HISTOGRAM else qfunc


def _scope(window: Window, services: tuple[str, ...] | list[str] | None) -> str:
    return f"{window.sql()} AND {services_sql(list(services))}" if services else window.sql()


def _num(value: float) -> str:
    return repr(float(value))


def _bucket_sql(seconds: int, column: str = "ts") -> tuple[str, str]:
    """(integer bucket index of ``column``, that bucket's start as TIMESTAMPTZ from ``b``) for buckets of
    ``seconds``: the same buckets as ``time_bucket(INTERVAL 'seconds seconds', ts)`` (origin 2000-01-03),
    but integer arithmetic on ``epoch_us`` instead of the time-zone-aware TIMESTAMPTZ function, which
    made grouping 1.5x slower at 50M rows. The origin is moved back a whole number of buckets to before
    1970 so the integer division never sees a negative value."""
    width = int(seconds) * 1_000_000
    origin = _BUCKET_ORIGIN_US - (_BUCKET_ORIGIN_US // width + 1) * width
    return f"((epoch_us({column}) - ({origin})) // {width})", f"make_timestamptz({origin} + b * {width})"


def series_step_s(window_seconds: float, bucket_s: int, max_points: int) -> int:
    """The bucket length used for a series: ``bucket_s``, or the first of ``SERIES_STEPS_S`` above it that
    keeps the window within ``max_points`` buckets (the longest step when none does)."""
    if window_seconds / bucket_s <= max_points:
        return bucket_s
    for step in SERIES_STEPS_S:
        if step > bucket_s and window_seconds / step <= max_points:
            return step
    return max(bucket_s, SERIES_STEPS_S[-1])


def _red_select(qfunc: str | None, t_ms: float, seconds_sql: str, quantiles: tuple[float, ...] = QUANTILES) -> str:
    """The aggregate list shared by every RED query (over a relation with ts, status, latency_ms);
    ``qfunc`` None: ``NULL AS q`` (quantiles computed apart)."""
    qs = "[" + ", ".join(_num(q) for q in quantiles) + "]"
    quantile_sql = f"{qfunc}(latency_ms, {qs})" if qfunc else "NULL"
    t, t4 = _num(t_ms), _num(4 * t_ms)
    return f"""count(*) AS requests,
        count(*) / {seconds_sql} AS rate_rps,
        count(*) FILTER (WHERE status >= 500) AS errors_5xx,
        count(*) FILTER (WHERE status >= 400 AND status < 500) AS errors_4xx,
        CASE WHEN count(latency_ms) > 0 THEN
        (count(*) FILTER (WHERE status < 500 AND latency_ms <= {t})
         + 0.5 * count(*) FILTER (WHERE status < 500 AND latency_ms > {t} AND latency_ms <= {t4}))
         / nullif(count(*) FILTER (WHERE latency_ms IS NOT NULL OR status >= 500), 0) END AS apdex,
        avg(latency_ms) AS mean_ms,
        {quantile_sql} AS q,
        sum(bytes_sent) AS bytes_sent"""


def _red_rows(rows: list[tuple], group_is_service: bool) -> tuple[RedRow, ...]:
    out = []
    for group, service, n, rate, e5, e4, apdex, mean, q, sent in rows:
        qv = list(q) if q is not None else [None] * len(QUANTILES)
        out.append(RedRow(
            group=str(group) if group is not None else "(none)",
            service=str(service) if service is not None else None,
            requests=int(n), rate_rps=float(rate), errors_5xx=int(e5),
            error_rate_5xx=e5 / n if n else 0.0, errors_4xx=int(e4), error_rate_4xx=e4 / n if n else 0.0,
            availability=1 - e5 / n if n else 1.0, apdex=_f(apdex), mean_ms=_f(mean),
            p50_ms=_f(qv[0]), p90_ms=_f(qv[1]), p95_ms=_f(qv[2]), p99_ms=_f(qv[3]), p999_ms=_f(qv[4]),
            bytes_sent=int(sent) if sent is not None else None,
        ))
    return tuple(out)


def _f(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) or math.isinf(number) else number


def red_table(con: duckdb.DuckDBPyConnection, window: Window, by: str | None = "service", *,
              services: list[str] | tuple[str, ...] | None = None, apdex_t_ms: float = 300.0,
              qfunc: str = "quantile_cont", limit: int | None = None) -> tuple[RedRow, ...]:
    """RED + Apdex over the whole window, grouped by ``service``, ``route`` or nothing (``None``).

    Rows are ordered by request count, largest first; ``limit`` keeps the first rows."""
    if by not in ("service", "route", None):
        raise ParameterError(f"parameter 'by' must be service, route or None, got {by!r}")
    keys = {"service": ("service", "service"), "route": ("route", "any_value(service)"),
            None: ("'all'", "NULL")}[by]
    group_by = "GROUP BY 1" if by else ""
    if by == "route":  # a route may be shared by services: keep them apart
        keys = ("route", "service")
        group_by = "GROUP BY 1, 2"
    hist = qfunc == LOG_HISTOGRAM  # then the quantiles come from histogram_quantiles below
    select = _red_select(None if hist else qfunc, apdex_t_ms, _num(rate_seconds(window)))
    sql = f"""SELECT {keys[0]} AS grp, {keys[1]} AS svc, {select}
        FROM requests WHERE {_scope(window, services)} {group_by}
        ORDER BY requests DESC, grp {f'LIMIT {int(limit)}' if limit else ''}"""
    rows = con.execute(sql).fetchall()
    if hist:
        group_sql = {"service": "service", "route": "route, service", None: "'all'"}[by]
        found = histogram_quantiles(con, _scope(window, services), group_sql)
        rows = [(*r[:8], found.get((r[0], r[1]) if by == "route" else (r[0],)), r[9]) for r in rows]
    return _red_rows(rows, by == "service")


def red_series(con: duckdb.DuckDBPyConnection, window: Window, bucket: str = "5m", by: str | None = None, *,
               services: list[str] | tuple[str, ...] | None = None, routes: list[str] | None = None,
               apdex_t_ms: float = 300.0, qfunc: str = "quantile_cont",
               rows: int | None = None, slice_rows: int = SERIES_SLICE_ROWS) -> tuple[SeriesPoint, ...]:
    """RED per time bucket, overall or per ``service``/``route``; only buckets with traffic, ordered by
    bucket then group. One ``SeriesPoint`` per row of ``red_series_frame`` (same arguments): use the
    frame for large outputs (per route and minute over days), where Python objects cost more than SQL."""
    frame = red_series_frame(con, window, bucket, by, services=services, routes=routes, apdex_t_ms=apdex_t_ms,
                             qfunc=qfunc, rows=rows, slice_rows=slice_rows)
    # columnar fetch (numpy), then one tuple per row: no per-value Python conversion of timestamps
    columns = [frame["bucket_start"].dt.tz_convert("UTC").tolist()] + [frame[c].tolist()
                                                                         for c in frame.columns[1:]]
    return tuple(SeriesPoint(*row) for row in zip(*columns, strict=True))


def red_series_frame(con: duckdb.DuckDBPyConnection, window: Window, bucket: str = "5m", by: str | None = None, *,
                     services: list[str] | tuple[str, ...] | None = None, routes: list[str] | None = None,
                     apdex_t_ms: float = 300.0, qfunc: str = "quantile_cont",
                     rows: int | None = None, slice_rows: int = SERIES_SLICE_ROWS) -> pd.DataFrame:
    """RED per time bucket as a DataFrame with the ``SeriesPoint`` fields as columns (bucket_start UTC).

    Buckets are those of ``time_bucket`` (origin 2000-01-03 UTC); rows are ordered by bucket, then group.
    Percentiles are p50/p95/p99 (NaN when a bucket has no latency values), exact with the default
    ``quantile_cont``. Over more than ``slice_rows`` requests (``rows``: the window's count when known,
    else counted) the window is cut into bucket-aligned time slices queried one after the other: each
    (bucket, group) lies in one slice, so the result is the same, while the memory ``quantile_cont``
    holds (every value of a slice) stays bounded."""
    seconds = bucket_seconds(bucket)
    select = _red_select(_series_qfunc(qfunc), apdex_t_ms, str(seconds), (0.5, 0.95, 0.99))
    columns = ("requests, rate_rps, errors_5xx, errors_5xx / requests AS error_rate_5xx, errors_4xx, apdex, "
               "q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms")
    return _sliced_series(con, window, seconds, by, select, columns, services=services, routes=routes, rows=rows,
                          slice_rows=slice_rows)


def latency_series_frame(con: duckdb.DuckDBPyConnection, window: Window, bucket: str = "1m", by: str | None = None,
                         *, services: list[str] | tuple[str, ...] | None = None, routes: list[str] | None = None,
                         rows: int | None = None, slice_rows: int = SERIES_SLICE_ROWS) -> pd.DataFrame:
    """Request count and exact p50/p95/p99 latency (``quantile_cont``, ms) per time bucket, overall or per
    ``service``/``route``: columns bucket_start (UTC), group, requests, p50_ms, p95_ms, p99_ms, ordered by
    bucket then group. The lean part of ``red_series_frame`` (same buckets, same time slices), for the
    per-route, per-minute latency series over large warehouses."""
    columns = "requests, q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms"
    select = "count(*) AS requests, quantile_cont(latency_ms, [0.5, 0.95, 0.99]) AS q"
    return _sliced_series(con, window, bucket_seconds(bucket), by, select, columns, services=services,
                          routes=routes, rows=rows, slice_rows=slice_rows)


def _sliced_series(con: duckdb.DuckDBPyConnection, window: Window, seconds: int, by: str | None, select: str,
                   columns: str, *, services: list[str] | tuple[str, ...] | None, routes: list[str] | None,
                   rows: int | None, slice_rows: int) -> pd.DataFrame:
    """``SELECT bucket_start, group, <columns> FROM (SELECT bucket, group, <select> ... GROUP BY 1, 2)``
    per bucket-aligned time slice of the window, concatenated in time order."""
    if by not in ("service", "route", None):
        raise ParameterError(f"parameter 'by' must be service, route or None, got {by!r}")
    group = by or "'all'"
    route_filter = ("AND " + services_sql(routes, "route")) if routes else ""
    index_sql, start_sql = _bucket_sql(seconds)
    if rows is None:
        counted = con.execute(f"SELECT count(*) FROM requests WHERE {_scope(window, services)}").fetchall()[0]
        rows = int(counted[0]) if counted else 0
    frames = []
    for part in _slices(window, seconds, rows, slice_rows):
        sql = f"""SELECT {start_sql} AS bucket_start, grp::VARCHAR AS "group", {columns}
            FROM (SELECT {index_sql} AS b, {group} AS grp, {select}
                  FROM requests WHERE {_scope(part, services)} {route_filter}
                  GROUP BY 1, 2)
            ORDER BY b, grp"""
        frames.append(con.sql(sql).to_arrow_table().to_pandas())  # via Arrow: ~2x faster than .df() here
    # slices are in time order and each is ordered by bucket: the concatenation is ordered too
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _slices(window: Window, bucket_s: int, rows: int, slice_rows: int) -> list[Window]:
    """``window`` cut at bucket boundaries into about ``rows / slice_rows`` parts of equal length
    (the whole window when it holds at most ``slice_rows`` requests)."""
    if rows <= slice_rows:
        return [window]
    parts = math.ceil(rows / slice_rows)
    width_us = bucket_s * 1_000_000
    start_us = _epoch_us(window.start)
    end_us = _epoch_us(window.end)
    first = (start_us - _BUCKET_ORIGIN_US) // width_us * width_us + _BUCKET_ORIGIN_US  # bucket of the start
    step_us = max(1, math.ceil((end_us - first) / parts / width_us)) * width_us
    cuts = [start_us] + list(range(first + step_us, end_us, step_us)) + [end_us]
    return [Window(_from_epoch_us(a), _from_epoch_us(b)) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def _epoch_us(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_epoch_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _minute_grid_sql(window: Window, services: list[str] | tuple[str, ...] | None) -> str:
    return f"""WITH per_minute AS (
            SELECT {_bucket_sql(60)[1]} AS minute, n
            FROM (SELECT {_bucket_sql(60)[0]} AS b, count(*) AS n
                  FROM requests WHERE {_scope(window, services)} GROUP BY 1)),
        grid AS (
            SELECT unnest(generate_series(time_bucket(INTERVAL '1 minute', TIMESTAMPTZ '{window.start.isoformat()}'),
                                          TIMESTAMPTZ '{window.end.isoformat()}' - INTERVAL '1 microsecond',
                                          INTERVAL '1 minute')) AS minute),
        filled AS (SELECT grid.minute, coalesce(per_minute.n, 0) AS n FROM grid LEFT JOIN per_minute USING (minute))"""


MIN_RATE_SECONDS = 60.0  # rates are per second of at least one minute (the 1-minute rates' bucket)


def rate_seconds(window: Window) -> float:
    """The seconds a mean request rate divides by: the window, but at least one minute, so a log whose
    lines all share one timestamp (a burst, a test fixture) has no mean rate above its busiest minute."""
    return max(window.seconds, MIN_RATE_SECONDS)


def throughput(con: duckdb.DuckDBPyConnection, window: Window, *,
               services: list[str] | tuple[str, ...] | None = None) -> Throughput:
    """Mean, median, p95 ("sustained") and peak of the 1-minute request rates, in requests/s."""
    sql = _minute_grid_sql(window, services) + """
        SELECT sum(n), median(n) / 60, quantile_cont(n, 0.95) / 60, max(n) / 60, arg_max(minute, n), count(*)
        FROM filled"""
    row = con.execute(sql).fetchall()[0]
    assert row is not None
    total, median, p95, peak, peak_minute, minutes = row
    return Throughput(mean_rps=(total or 0) / rate_seconds(window), median_rps_1m=float(median or 0),
                      sustained_rps_p95_1m=float(p95 or 0), peak_rps_1m=float(peak or 0),
                      peak_minute=peak_minute if peak else None, minutes=int(minutes))


def _hist_bin_sql() -> str:
    lo, hi = HIST_MIN_EXP * HIST_BINS_PER_DECADE, HIST_MAX_EXP * HIST_BINS_PER_DECADE - 1
    return (f"least(greatest(floor({HIST_BINS_PER_DECADE} * log10(greatest(latency_ms, 1e-9)))::INTEGER, "
            f"{lo}), {hi})")


def _bin_edges(k: int) -> tuple[float, float]:
    return 10 ** (k / HIST_BINS_PER_DECADE), 10 ** ((k + 1) / HIST_BINS_PER_DECADE)


def latency_histogram(con: duckdb.DuckDBPyConnection, window: Window, by: str | None = None, *,
                      services: list[str] | tuple[str, ...] | None = None) -> tuple[HistogramBin, ...]:
    """Counts of requests per log-spaced latency bin (10 per decade, 0.1 ms … 100 s), overall or per service."""
    group = by or "'all'"
    sql = f"""SELECT {group} AS grp, {_hist_bin_sql()} AS k, count(*) FROM requests
        WHERE {_scope(window, services)} AND latency_ms IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"""
    return tuple(HistogramBin(str(g), *_rounded_edges(k), int(n)) for g, k, n in con.execute(sql).fetchall())


def _rounded_edges(k: int) -> tuple[float, float]:
    lo, hi = _bin_edges(k)
    return float(f"{lo:.6g}"), float(f"{hi:.6g}")


def latency_heatmap(con: duckdb.DuckDBPyConnection, window: Window, bucket_s: int, *,
                    services: list[str] | tuple[str, ...] | None = None) -> tuple[HeatCell, ...]:
    """Non-empty (time bucket × latency bin) counts, same bins as the histogram."""
    index_sql, start_sql = _bucket_sql(bucket_s)
    sql = f"""SELECT {start_sql}, k, n FROM (
            SELECT {index_sql} AS b, {_hist_bin_sql()} AS k, count(*) AS n
            FROM requests WHERE {_scope(window, services)} AND latency_ms IS NOT NULL GROUP BY 1, 2)
        ORDER BY 1, 2"""
    return tuple(HeatCell(b, *_rounded_edges(k), int(n)) for b, k, n in con.execute(sql).fetchall())


# ----------------------------------------------------------------------------------------------------
# Headline KPIs with definitions


def _promql_label(services: tuple[str, ...] | list[str] | None) -> str:
    if not services:
        return ""
    pattern = "|".join(re.escape(s) for s in services).replace("\\", "\\\\").replace('"', '\\"')
    return f'service=~"{pattern}"'


def _range(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 < 60:
        return f"{round(seconds / 86400)}d"
    if seconds >= 3600:
        return f"{round(seconds / 3600)}h"
    return f"{max(1, round(seconds / 60))}m"


def status_label(con: duckdb.DuckDBPyConnection) -> str:
    """The label carrying the HTTP status on ``http_requests_total`` in ``metrics`` (``code`` as in
    client_golang, else ``status``, the default when the metric is absent)."""
    row = con.execute("SELECT list_distinct(flatten(list(DISTINCT map_keys(labels)))) FROM metrics "
                      "WHERE name = 'http_requests_total'").fetchall()[0]
    keys = set(row[0] or []) if row else set()
    return "code" if "code" in keys and "status" not in keys else "status"


def headline(con: duckdb.DuckDBPyConnection, window: Window, *, services: list[str] | tuple[str, ...] | None = None,
             apdex_t_ms: float = 300.0, qfunc: str = "quantile_cont", status: str = "status") -> tuple[Kpi, ...]:
    """The headline KPIs over ``window``, each with its SQL and PromQL definition (``status``: the
    label name of the HTTP status in PromQL)."""
    overall = red_table(con, window, None, services=services, apdex_t_ms=apdex_t_ms, qfunc=qfunc)
    tput = throughput(con, window, services=services)
    row = overall[0] if overall and overall[0].requests else None
    scope = _scope(window, services)
    sel = _promql_label(services)
    s_all = f"{{{sel}}}" if sel else ""
    s_5xx = "{" + ", ".join(x for x in (sel, f'{status}=~"5.."') if x) + "}"
    s_4xx = "{" + ", ".join(x for x in (sel, f'{status}=~"4.."') if x) + "}"
    total = f"sum(rate(http_requests_total{s_all}[5m]))"
    rng = _range(window.seconds)
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


# ----------------------------------------------------------------------------------------------------
# USE signals from metrics, and instrumentation gaps

# (resource, kind, regex over metric names, what to collect when missing, the metric to add:
#  (name, Prometheus type, unit))
USE_CATALOG: tuple[tuple[str, str, str, str, tuple[str, str, str]], ...] = (
    ("cpu", "utilization", r"cpu.*(util|usage|busy|ratio|percent)|cpu_seconds_total$",
     "node_cpu_seconds_total (node_exporter) or process_cpu_seconds_total",
     ("node_cpu_seconds_total", "counter", "seconds")),
    ("cpu", "saturation", r"load(1|5|15|avg)|run_?queue|pressure_cpu|cpu.*throttl",
     "node_load1 or node_pressure_cpu_waiting_seconds_total", ("node_load1", "gauge", "runnable tasks")),
    ("memory", "utilization", r"mem(ory)?.*(util|usage|used|resident|ratio|percent|rss)|resident_memory",
     "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes, process_resident_memory_bytes",
     ("node_memory_MemAvailable_bytes", "gauge", "bytes")),
    ("memory", "saturation", r"swap|pgmajfault|pressure_memory|memory.*pressure",
     "node_vmstat_pgmajfault or node_pressure_memory_waiting_seconds_total",
     ("node_vmstat_pgmajfault", "counter", "faults")),
    ("memory", "errors", r"oom", "node_vmstat_oom_kill or container_oom_events_total",
     ("node_vmstat_oom_kill", "counter", "kills")),
    ("db_connections", "utilization", r"(db|pg|postgres|mysql|database|sql).*(conn|backends|activ)",
     "pg_stat_activity_count / pg_settings_max_connections (postgres_exporter)",
     ("pg_stat_activity_count", "gauge", "connections")),
    ("db_connections", "saturation", r"(pool|conn|db|pg).*(wait|pending|queue)|lock.*wait",
     "connection-pool wait count/time (e.g. hikaricp_connections_pending, pgbouncer_pools_client_waiting)",
     ("db_pool_pending_connections", "gauge", "waiting clients")),
    ("db_connections", "errors", r"(db|pg|postgres|mysql|database).*(error|deadlock|rollback|fail)",
     "pg_stat_database_deadlocks, pg_stat_database_xact_rollback",
     ("pg_stat_database_deadlocks", "counter", "deadlocks")),
    ("queue", "saturation", r"queue.*(depth|length|len|size|backlog)|backlog|queued|in_?flight|concurren",
     "work queue depth per worker pool", ("work_queue_depth", "gauge", "items")),
    ("disk", "utilization", r"disk.*(util|io_time|busy)|filesystem.*(avail|size|usage)",
     "node_disk_io_time_seconds_total, node_filesystem_avail_bytes",
     ("node_disk_io_time_seconds_total", "counter", "seconds")),
    ("network", "errors", r"(net|network).*(err|drop)",
     "node_network_receive_errs_total, node_network_transmit_drop_total",
     ("node_network_receive_errs_total", "counter", "errors")),
    ("app", "errors", r"(exception|panic|crash|restart|error|failure)s?(_total)?$",
     "application exceptions / restarts counter", ("app_exceptions_total", "counter", "exceptions")),
)


@dataclass(frozen=True)
class MetricInfo:
    """One metric name present in ``metrics`` over the window."""

    name: str
    type: str  # counter (``*_total``), histogram part, or gauge: guessed from the name
    unit: str
    labels: tuple[str, ...]
    series: int
    samples: int
    interval_s: float | None  # median time between two samples of one series


def metric_inventory(con: duckdb.DuckDBPyConnection, window: Window) -> tuple[MetricInfo, ...]:
    """Every metric name in the window with its label keys, series, samples and scrape interval
    (median over series of the mean gap between a series' samples)."""
    rows = con.execute(f"""
        WITH series AS (
            SELECT name, hash(labels) AS sid, any_value(map_keys(labels)) AS keys, count(*) AS n,
                   epoch(max(ts) - min(ts)) AS span_s
            FROM metrics WHERE {window.sql()} GROUP BY name, sid)
        SELECT name, sum(n), count(*), median(span_s / nullif(n - 1, 0)),
               list_sort(list_distinct(flatten(list(keys))))
        FROM series GROUP BY name ORDER BY name""").fetchall()
    out = []
    for name, samples, series, interval, keys in rows:
        kind = ("counter" if name.endswith("_total") else
                "histogram" if name.endswith(("_bucket", "_count", "_sum")) else "gauge")
        out.append(MetricInfo(name, kind, _unit_of(name), tuple(keys or ()), int(series), int(samples),
                              _f(interval)))
    return tuple(out)


def _unit_of(name: str) -> str:
    if name.endswith("_seconds_total"):
        return "s/s"
    if name.endswith("_total"):
        return "per s"
    for suffix, unit in (("_bytes", "bytes"), ("_ratio", "ratio"), ("_percent", "%"), ("_seconds", "s")):
        if name.endswith(suffix):
            return unit
    return ""


def use_signals(con: duckdb.DuckDBPyConnection, window: Window, bucket: str = "5m",
                qfunc: str = "quantile_cont"
                ) -> tuple[tuple[UseSignal, ...], tuple[SaturationPoint, ...], tuple[Gap, ...]]:
    """USE signals matched by name in ``metrics`` over the window, their per-bucket series against
    overall p95 latency, and the USE cells no metric covers (the instrumentation gaps).

    Counters (``*_total``) become per-second rates (resets handled: a negative step counts as the new
    value); gauges are averaged per series per bucket, then across series."""
    seconds = bucket_seconds(bucket)
    qfunc = "approx_quantile" if qfunc == LOG_HISTOGRAM else qfunc  # p95 per bucket: a t-digest per bucket
    names = [r[0] for r in con.execute(
        f"SELECT DISTINCT name FROM metrics WHERE {window.sql()} ORDER BY name").fetchall()]
    matched: list[tuple[str, str, str]] = []
    gaps: list[Gap] = []
    # a name goes to the first matching cell, errors before saturation before utilization
    # (pg_connection_errors_total is an error count, not a connection gauge)
    priority = {"errors": 0, "saturation": 1, "utilization": 2}
    # histogram/summary parts are not USE signals (but pg_stat_activity_count is a plain gauge)
    bases = {n.removesuffix("_bucket") for n in names if n.endswith("_bucket")} | \
        {n.removesuffix("_sum") for n in names if n.endswith("_sum")}
    claimed: set[str] = {n for n in names if n.endswith("_bucket") or
                         any(n == f"{b}{suffix}" for b in bases for suffix in ("_count", "_sum"))}
    hits_of: dict[tuple[str, str], list[str]] = {}
    for resource, kind, pattern, _collect, _metric in sorted(USE_CATALOG, key=lambda c: priority[c[1]]):
        regex = re.compile(pattern, re.IGNORECASE)
        hits = [n for n in names if regex.search(n) and not re.search(r"max|limit", n)  # limits: no
                and n not in claimed]
        claimed.update(hits)
        hits_of[(resource, kind)] = hits
    elsewhere = [r[0] for r in con.execute(  # metrics the warehouse holds outside the window
        f"SELECT DISTINCT name FROM metrics WHERE NOT ({window.sql()}) ORDER BY name").fetchall()]
    for resource, kind, pattern, collect, metric in USE_CATALOG:
        hits = hits_of[(resource, kind)]
        if not hits:
            outside = [n for n in elsewhere if re.search(pattern, n, re.IGNORECASE) and n not in names][:3]
            what = (f"{resource} {kind} metric {', '.join(outside)} has no sample in the analysed window"
                    if outside else f"no {resource} {kind} metric in the warehouse")
            gaps.append(Gap(resource, kind, what, collect, metric[0]))
        matched.extend((resource, kind, n) for n in hits)
    if not matched:
        return (), (), tuple(gaps)
    names_sql = ", ".join("('" + m.replace("'", "''") + "')" for _, _, m in matched)
    sql = f"""
        WITH raw AS (
            SELECT metrics.name, hash(labels) AS sid, ts, value
            FROM metrics JOIN (VALUES {names_sql}) AS n(name) ON metrics.name = n.name WHERE {window.sql()}),
        steps AS (  -- counters only: the window function is the expensive part
            SELECT name, sid, ts, value, value - lag(value) OVER w AS step, epoch(ts - lag(ts) OVER w) AS dt
            FROM raw WHERE name LIKE '%\\_total' ESCAPE '\\'
            WINDOW w AS (PARTITION BY name, sid ORDER BY ts)),
        v AS (
            SELECT name, sid, ts, (CASE WHEN step < 0 THEN value ELSE step END) / nullif(dt, 0) AS x FROM steps
            UNION ALL
            SELECT name, sid, ts, value AS x FROM raw WHERE NOT name LIKE '%\\_total' ESCAPE '\\'),
        per_series AS (
            SELECT name, sid, time_bucket(INTERVAL '{seconds} seconds', ts) AS b, avg(x) AS x, count(x) AS k
            FROM v WHERE x IS NOT NULL GROUP BY ALL),
        per_bucket AS (SELECT name, b, avg(x) AS x, sum(k) AS k, count(DISTINCT sid) AS s
                       FROM per_series GROUP BY ALL),
        lat AS (
            SELECT time_bucket(INTERVAL '{seconds} seconds', ts) AS b, {qfunc}(latency_ms, 0.95) AS p95,
                   count(*) AS n
            FROM requests WHERE {window.sql()} GROUP BY 1)
        SELECT per_bucket.name, per_bucket.b, per_bucket.x, per_bucket.k, per_bucket.s, lat.p95, coalesce(lat.n, 0)
        FROM per_bucket LEFT JOIN lat USING (b) ORDER BY 1, 2"""
    per_bucket_rows = con.execute(sql).df()  # small: one row per metric and bucket
    per_bucket_rows.columns = ["name", "b", "x", "k", "s", "p95", "n"]
    rows = list(per_bucket_rows.itertuples(index=False, name=None))
    con.register("_kpi_use_rows", per_bucket_rows)
    try:
        summary = {r[0]: r[1:] for r in con.execute(
            "SELECT name, avg(x), quantile_cont(x, 0.95), max(x), corr(x, p95), sum(k), max(s) "
            "FROM _kpi_use_rows GROUP BY name").fetchall()}
    finally:
        con.unregister("_kpi_use_rows")
    signals = []
    for resource, kind, name in matched:
        if name not in summary:
            continue
        mean, p95, mx, corr, k, s = summary[name]
        counter = name.endswith("_total")
        sql_def = (f"SELECT time_bucket(INTERVAL '{seconds} seconds', ts), avg(value) FROM metrics "
                   f"WHERE name = '{name}' AND {window.sql()} GROUP BY 1") if not counter else (
            f"per series: (value - lag(value)) / (ts - lag(ts)) over metrics WHERE name = '{name}', "
            f"averaged per {bucket} bucket")
        promql = f"avg(rate({name}[5m]))" if counter else f"avg(avg_over_time({name}[5m]))"
        signals.append(UseSignal(resource, kind, name, _unit_of(name), int(s or 0), int(k or 0), _f(mean),
                                 _f(p95), _f(mx), _f(corr), Definition(sql_def, promql)))
    points = tuple(SaturationPoint(b.to_pydatetime(), name, _f(x), _f(p95), int(n))
                   for name, b, x, _k, _s, p95, n in rows
                   if any(sig.metric == name and sig.kind in ("utilization", "saturation") for sig in signals))
    return tuple(signals), points, tuple(gaps)


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
    row = con.execute(f"SELECT count(*), {cols} FROM requests WHERE {_scope(window, services)}").fetchall()[0]
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
    keys_row = con.execute("SELECT list_distinct(flatten(list(DISTINCT map_keys(labels)))) FROM metrics "
                           "WHERE name = 'http_requests_total'").fetchall()[0]
    keys = set(keys_row[0] or []) if keys_row and keys_row[0] is not None else None
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


# ----------------------------------------------------------------------------------------------------
# Period over period


def _verdict(current: float | None, previous: float | None, better: str) -> tuple[float | None, str]:
    if current is None or previous is None:
        return None, "n/a"
    change = None if previous == 0 else 100.0 * (current - previous) / abs(previous)
    if math.isclose(current, previous, rel_tol=0.02, abs_tol=1e-12):
        return change, "same"
    improved = current < previous if better == "lower" else current > previous
    return change, "better" if improved else "worse"


def compare_periods(con: duckdb.DuckDBPyConnection, current: Window, previous: Window, *, basis: str = "",
                    services: list[str] | tuple[str, ...] | None = None, apdex_t_ms: float = 300.0,
                    qfunc: str = "quantile_cont") -> Comparison:
    """Headline KPIs of ``current`` against ``previous``; change in percent of the previous value."""
    now = headline(con, current, services=services, apdex_t_ms=apdex_t_ms, qfunc=qfunc)
    return _compare(con, now, current, previous, basis=basis, services=services, apdex_t_ms=apdex_t_ms,
                    qfunc=qfunc)


def _compare(con: duckdb.DuckDBPyConnection, now: tuple[Kpi, ...], current: Window, previous: Window, *,
             basis: str, services: list[str] | tuple[str, ...] | None, apdex_t_ms: float,
             qfunc: str) -> Comparison:
    before_n = con.execute(f"SELECT count(*) FROM requests WHERE {_scope(previous, services)}").fetchall()[0]
    n_prev = int(before_n[0]) if before_n else 0
    before = {k.name: k.value for k in headline(con, previous, services=services, apdex_t_ms=apdex_t_ms,
                                                 qfunc=qfunc)} if n_prev else {}
    rows = []
    for k in now:
        prev = before.get(k.name)
        change, verdict = _verdict(k.value, prev, k.better)
        rows.append(ComparisonRow(k.name, k.unit, k.value, prev, change, k.better, verdict))
    return Comparison(basis or "previous window of the same length", current.start, current.end,
                      previous.start, previous.end, n_prev, tuple(rows))


# ----------------------------------------------------------------------------------------------------
# The report


def kpi_report(con: duckdb.DuckDBPyConnection, start: str | datetime | None = None,
               end: str | datetime | None = None, services: list[str] | None = None, bucket: str = "5m",
               apdex_t_ms: float = 300.0, top_n: int = 10, exact_max_rows: int = EXACT_MAX_ROWS,
               max_routes: int = 500) -> KpiReport:
    """All KPIs of notebook 10 over the window [start, end) for ``services`` (empty = all)."""
    if apdex_t_ms <= 0:
        raise ParameterError("parameter 'apdex_t_ms' must be > 0")
    seconds = bucket_seconds(bucket)
    svc = tuple(services or ())
    con.execute("SET enable_progress_bar = false")  # no DuckDB progress widgets in notebook output
    window = resolve_window(con, start, end, list(svc))
    count = con.execute(f"SELECT count(*) FROM requests WHERE {_scope(window, svc)}").fetchall()[0]
    n = int(count[0]) if count else 0
    if n == 0:
        from kit.analysis.coverage import NEEDS

        raise DataError(f"no requests in the window {window.label()}"
                        + (f" for services {', '.join(svc)}" if svc else "")
                        + ("" if window.basis == "requests" else f". {NEEDS['requests'].sentence()}"))
    qfunc = quantile_function(n, exact_max_rows)
    method = ("exact: quantile_cont (linear interpolation between closest ranks, the numpy default)"
              if qfunc == "quantile_cont" else
              f"approximate above {exact_max_rows:,} rows: log histogram ({100 * (HIST_GAMMA - 1):g} % buckets), "
              f"within {100 * HIST_RELATIVE_ERROR:.2f} % of the exact value; per-bucket series stay exact")
    kw = {"services": svc, "apdex_t_ms": apdex_t_ms, "qfunc": qfunc}
    overall = red_table(con, window, None, **kw)[0]  # type: ignore[arg-type]
    by_service = red_table(con, window, "service", **kw)  # type: ignore[arg-type]
    by_route = red_table(con, window, "route", limit=max_routes, **kw)  # type: ignore[arg-type]
    top_routes = tuple(dict.fromkeys(r.group for r in by_route))[:top_n]
    # the series are exact at any size (time slices bound the memory, see red_series); coarser buckets
    # over long windows keep the report and its JSON small
    skw = {"services": svc, "apdex_t_ms": apdex_t_ms, "rows": n}
    overall_s = series_step_s(window.seconds, seconds, SERIES_MAX_POINTS)
    service_s = series_step_s(window.seconds, seconds, SERVICE_SERIES_MAX_POINTS)
    heat_s = series_step_s(window.seconds, seconds, HEATMAP_MAX_COLUMNS)
    series_overall = red_series(con, window, f"{overall_s}s", None, **skw)  # type: ignore[arg-type]
    series_by_service = red_series(con, window, f"{service_s}s", "service", **skw)  # type: ignore[arg-type]
    series_by_route = red_series(con, window, f"{heat_s}s", "route", routes=list(top_routes),
                                 **skw)  # type: ignore[arg-type]
    use, sat_points, use_gaps = use_signals(con, window, f"{service_s}s", qfunc)
    gaps = instrumentation_gaps(con, window, services=svc) + use_gaps

    status = status_label(con)
    current_kpis = headline(con, window, status=status, **kw)  # type: ignore[arg-type]
    previous = window.previous()
    prev_n = con.execute(f"SELECT count(*) FROM requests WHERE {_scope(previous, svc)}").fetchall()[0]
    notes = []
    if prev_n and prev_n[0]:
        comparison = _compare(con, current_kpis, window, previous, basis="previous window of the same length",
                              **kw)  # type: ignore[arg-type]
        by_name = {r.name: r for r in comparison.rows}
        current_kpis = tuple(Kpi(k.name, k.unit, k.value, k.description, k.better, k.definition,
                                 by_name[k.name].previous, by_name[k.name].change_pct) for k in current_kpis)
    else:  # the window is the whole history: compare its last day (or half) with the one before
        span = 86400.0 if window.seconds >= 2 * 86400 else window.seconds / 2
        cur = Window(window.end - timedelta(seconds=span), window.end)
        comparison = compare_periods(con, cur, cur.previous(), basis=(
            f"no requests before the window, so its last {_range(span)} is compared with the {_range(span)} "
            "before it"), **kw)  # type: ignore[arg-type]
        notes.append(comparison.basis)
    measured = tuple(k for k in current_kpis if k.value is not None)
    if len(measured) < len(current_kpis):
        from kit.analysis.coverage import NEEDS

        missing = ", ".join(k.name for k in current_kpis if k.value is None)
        notes.append(f"{missing} left out: {NEEDS['latency'].sentence()}")
        current_kpis = measured
        comparison = replace(comparison, rows=tuple(r for r in comparison.rows if r.current is not None))
    if window.seconds < MIN_RATE_SECONDS:
        notes.append(f"the window is {window.seconds:.3g} s long, under a minute: request rates are per minute "
                     "of history (requests / 60 s)")
    if max(overall_s, service_s, heat_s) > seconds:
        notes.append(f"series over this {window.seconds / 86400:.1f}-day window in coarser buckets than {bucket}: "
                     f"overall "
                     f"{_range(overall_s)}, per service and saturation {_range(service_s)}, per route and "
                     f"heatmap {_range(heat_s)}")
    if by_route and len(by_route) == max_routes:
        notes.append(f"per-route table limited to the {max_routes} busiest routes")
    return KpiReport(
        window_start=window.start, window_end=window.end, window_seconds=window.seconds, services=svc,
        bucket=bucket, bucket_seconds=seconds, apdex_t_ms=apdex_t_ms, requests=n, quantile_method=method,
        kpis=current_kpis, overall=overall, by_service=by_service, by_route=by_route,
        series_overall=series_overall, series_by_service=series_by_service, series_by_route=series_by_route,
        top_routes=top_routes, throughput=throughput(con, window, services=svc),
        histogram=latency_histogram(con, window, None, services=svc) + latency_histogram(
            con, window, "service", services=svc),
        heatmap_bucket_seconds=heat_s, heatmap=latency_heatmap(con, window, heat_s, services=svc),
        route_series_bucket_seconds=heat_s, series_bucket_seconds=overall_s,
        service_series_bucket_seconds=service_s,
        use=use, metrics=metric_inventory(con, window), status_label=status,
        saturation_latency=sat_points, gaps=gaps, comparison=comparison, notes=tuple(notes))


# ----------------------------------------------------------------------------------------------------
# The saved JSON

# Lists stored column-wise in the JSON ({"column": [values...]}, which pandas.DataFrame reads as it reads
# a list of records): the long per-bucket lists, where repeating every key would dominate the size.
COLUMNAR_KEYS: tuple[str, ...] = ("series_overall", "series_by_service", "series_by_route", "histogram",
                                  "heatmap", "saturation_latency")
SIGNIFICANT_DIGITS = 4  # floats of the columnar lists are rounded to 4 significant digits (<= 0.005 % off)


def _round_sig(value: object, digits: int = SIGNIFICANT_DIGITS) -> object:
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    return value


def report_json(report: KpiReport) -> dict:
    """The report as JSON values, compact: the ``COLUMNAR_KEYS`` lists as {column: [values]} with floats
    rounded to ``SIGNIFICANT_DIGITS`` significant digits; everything else as ``to_jsonable`` gives it."""
    out = to_jsonable(report)
    for key in COLUMNAR_KEYS:
        rows = out.get(key)
        if rows:
            out[key] = {column: [_round_sig(row[column]) for row in rows] for column in rows[0]}
    return out


def save_report_json(results_dir: str | Path, result: dict) -> Path | None:
    """Write ``result`` (from ``report_json``) as ``<results_dir>/kpis.json`` without indentation (the
    columnar lists would otherwise take one line per value); nothing is written when ``results_dir``
    is empty. Returns the path written."""
    if not str(results_dir):
        return None
    text = json.dumps(result, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return write_text_atomic(Path(results_dir) / "kpis.json", text + "\n")
