"""USE (utilization, saturation, errors) of resources from ``metrics``: the catalog of signals matched by
metric name, the metric inventory, the per-bucket signals against latency, and the USE cells no metric
covers."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import duckdb

from kit.analysis.kpis.model import Definition, Gap, MetricInfo, SaturationPoint, UseSignal
from kit.analysis.kpis.quantiles import LOG_HISTOGRAM
from kit.analysis.kpis.sql import float_or_none
from kit.analysis.window import Window
from kit.config import bucket_seconds

__all__ = ["USE_CATALOG", "metric_inventory", "use_signals"]


def _load_catalog() -> tuple[tuple[str, str, str, str, tuple[str, str, str]], ...]:
    cells = tomllib.loads(Path(__file__).with_name("use_catalog.toml").read_text("utf-8"))["cell"]
    return tuple((c["resource"], c["kind"], c["pattern"], c["collect"], tuple(c["metric"])) for c in cells)


# (resource, kind, regex over metric names, what to collect when missing, the metric to add:
#  (name, Prometheus type, unit)), from use_catalog.toml
USE_CATALOG: tuple[tuple[str, str, str, str, tuple[str, str, str]], ...] = _load_catalog()


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
                              float_or_none(interval)))
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
        signals.append(UseSignal(resource, kind, name, _unit_of(name), int(s or 0), int(k or 0),
                                 float_or_none(mean), float_or_none(p95), float_or_none(mx), float_or_none(corr),
                                 Definition(sql_def, promql)))
    points = tuple(SaturationPoint(b.to_pydatetime(), name, float_or_none(x), float_or_none(p95), int(n))
                   for name, b, x, _k, _s, p95, n in rows
                   if any(sig.metric == name and sig.kind in ("utilization", "saturation") for sig in signals))
    return tuple(signals), points, tuple(gaps)
