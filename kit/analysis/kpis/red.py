"""RED (rate, errors, duration) and Apdex over the window and per time bucket, and throughput.

The per-bucket series are exact at any size: over more than ``SERIES_SLICE_ROWS`` requests they are
computed in bucket-aligned time slices, one query each, so ``quantile_cont`` never holds more than one
slice's values."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from kit.analysis.kpis.model import RedRow, SeriesPoint, Throughput
from kit.analysis.kpis.quantiles import (
    LOG_HISTOGRAM,
    QUANTILE_NAMES,
    QUANTILES,
    histogram_quantiles,
    series_quantile_function,
)
from kit.analysis.kpis.sql import (
    BUCKET_ORIGIN_US,
    bucket_sql,
    float_or_none,
    rate_seconds,
    request_count,
    scope_sql,
    sql_float,
)
from kit.analysis.window import Window, services_sql
from kit.config import bucket_seconds
from kit.engine import Queryable, as_engine
from kit.errors import ParameterError

__all__ = ["HEATMAP_MAX_COLUMNS", "SERIES_MAX_POINTS", "SERIES_SLICE_ROWS", "SERIES_STEPS_S",
           "SERVICE_SERIES_MAX_POINTS", "latency_series_frame", "red_series", "red_series_frame", "red_table",
           "series_step_s", "throughput"]

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
    qs = "[" + ", ".join(sql_float(q) for q in quantiles) + "]"
    quantile_sql = f"{qfunc}(latency_ms, {qs})" if qfunc else "NULL"
    t, t4 = sql_float(t_ms), sql_float(4 * t_ms)
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
            availability=1 - e5 / n if n else 1.0, apdex=float_or_none(apdex), mean_ms=float_or_none(mean),
            **{name: float_or_none(v) for name, v in zip(QUANTILE_NAMES, qv, strict=True)},
            bytes_sent=int(sent) if sent is not None else None,
        ))
    return tuple(out)


def _check_by(by: str | None) -> None:
    if by not in ("service", "route", None):
        raise ParameterError(f"parameter 'by' must be service, route or None, got {by!r}")


def red_table(con: Queryable, window: Window, by: str | None = "service", *,
              services: list[str] | tuple[str, ...] | None = None, apdex_t_ms: float = 300.0,
              qfunc: str = "quantile_cont", limit: int | None = None) -> tuple[RedRow, ...]:
    """RED + Apdex over the whole window, grouped by ``service``, ``route`` or nothing (``None``).

    Rows are ordered by request count, largest first; ``limit`` keeps the first rows."""
    _check_by(by)
    keys = {"service": ("service", "service"), "route": ("route", "any_value(service)"),
            None: ("'all'", "NULL")}[by]
    group_by = "GROUP BY 1" if by else ""
    if by == "route":  # a route may be shared by services: keep them apart
        keys = ("route", "service")
        group_by = "GROUP BY 1, 2"
    hist = qfunc == LOG_HISTOGRAM  # then the quantiles come from histogram_quantiles below
    select = _red_select(None if hist else qfunc, apdex_t_ms, sql_float(rate_seconds(window)))
    sql = f"""SELECT {keys[0]} AS grp, {keys[1]} AS svc, {select}
        FROM requests WHERE {scope_sql(window, services)} {group_by}
        ORDER BY requests DESC, grp {f'LIMIT {int(limit)}' if limit else ''}"""
    rows = as_engine(con).rows(sql)
    if hist:
        group_sql = {"service": "service", "route": "route, service", None: "'all'"}[by]
        found = histogram_quantiles(con, scope_sql(window, services), group_sql)
        rows = [(*r[:8], found.get((r[0], r[1]) if by == "route" else (r[0],)), r[9]) for r in rows]
    return _red_rows(rows, by == "service")


def red_series(con: Queryable, window: Window, bucket: str = "5m", by: str | None = None, *,
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


def red_series_frame(con: Queryable, window: Window, bucket: str = "5m", by: str | None = None, *,
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
    select = _red_select(series_quantile_function(qfunc), apdex_t_ms, str(seconds), (0.5, 0.95, 0.99))
    columns = ("requests, rate_rps, errors_5xx, errors_5xx / requests AS error_rate_5xx, errors_4xx, apdex, "
               "q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms")
    return _sliced_series(con, window, seconds, by, select, columns, services=services, routes=routes, rows=rows,
                          slice_rows=slice_rows)


def latency_series_frame(con: Queryable, window: Window, bucket: str = "1m", by: str | None = None,
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


def _sliced_series(con: Queryable, window: Window, seconds: int, by: str | None, select: str,
                   columns: str, *, services: list[str] | tuple[str, ...] | None, routes: list[str] | None,
                   rows: int | None, slice_rows: int) -> pd.DataFrame:
    """``SELECT bucket_start, group, <columns> FROM (SELECT bucket, group, <select> ... GROUP BY 1, 2)``
    per bucket-aligned time slice of the window, concatenated in time order."""
    _check_by(by)
    group = by or "'all'"
    route_filter = ("AND " + services_sql(routes, "route")) if routes else ""
    index_sql, start_sql = bucket_sql(seconds)
    if rows is None:
        rows = request_count(con, window, services)
    frames = []
    for part in _slices(window, seconds, rows, slice_rows):
        sql = f"""SELECT {start_sql} AS bucket_start, grp::VARCHAR AS "group", {columns}
            FROM (SELECT {index_sql} AS b, {group} AS grp, {select}
                  FROM requests WHERE {scope_sql(part, services)} {route_filter}
                  GROUP BY 1, 2)
            ORDER BY b, grp"""
        frames.append(as_engine(con).frame(sql))
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
    first = (start_us - BUCKET_ORIGIN_US) // width_us * width_us + BUCKET_ORIGIN_US  # bucket of the start
    step_us = max(1, math.ceil((end_us - first) / parts / width_us)) * width_us
    cuts = [start_us] + list(range(first + step_us, end_us, step_us)) + [end_us]
    return [Window(_from_epoch_us(a), _from_epoch_us(b)) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_epoch_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def throughput(con: Queryable, window: Window, *,
               services: list[str] | tuple[str, ...] | None = None) -> Throughput:
    """Mean, median, p95 ("sustained") and peak of the 1-minute request rates, in requests/s.

    The engine counts the requests per minute; the grid of every minute of the window (0 when empty)
    and its median/p95 (linear interpolation, as ``quantile_cont``) are numpy over one value per minute.
    The peak minute is the first of the busiest ones."""
    index_sql, _ = bucket_sql(60)
    counted = as_engine(con).frame(f"SELECT {index_sql} AS b, count(*) AS n FROM requests "
                                   f"WHERE {scope_sql(window, services)} GROUP BY 1")
    width = 60_000_000
    origin = BUCKET_ORIGIN_US - (BUCKET_ORIGIN_US // width + 1) * width  # the origin of bucket_sql(60)
    first = (_epoch_us(window.start) - origin) // width
    last = (_epoch_us(window.end) - 1 - origin) // width
    n = np.zeros(max(0, last - first + 1), dtype=np.int64)
    b = counted["b"].to_numpy(dtype=np.int64) - first
    inside = (b >= 0) & (b < len(n))
    n[b[inside]] = counted["n"].to_numpy(dtype=np.int64)[inside]
    if not len(n):
        return Throughput(mean_rps=0.0, median_rps_1m=0.0, sustained_rps_p95_1m=0.0, peak_rps_1m=0.0,
                          peak_minute=None, minutes=0)
    peak_at = int(np.argmax(n))
    peak = int(n[peak_at])
    return Throughput(mean_rps=int(n.sum()) / rate_seconds(window), median_rps_1m=float(np.median(n)) / 60,
                      sustained_rps_p95_1m=float(np.quantile(n, 0.95)) / 60, peak_rps_1m=peak / 60,
                      peak_minute=_from_epoch_us(origin + (first + peak_at) * width) if peak else None,
                      minutes=len(n))
