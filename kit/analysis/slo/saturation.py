"""Resource saturation signals for cause-based alerts: the database connection pool, cache hit ratios
and ``*_utilization`` / ``*_saturation_ratio`` gauges, summarized over the history and as per-minute
series for the backtest. Each signal is a dict (name, expr, limit or threshold and direction, p99, max)
that ``kit.analysis.slo.alerts.saturation_rules`` turns into alert rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import numpy as np

from kit.analysis.slo.sli import rolling_sum
from kit.warehouse import sql_string

__all__ = ["saturation_candidates", "saturation_minutes"]


def saturation_candidates(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Resource saturation signals: the database connection pool (``pg_stat_activity_count`` /
    ``pg_settings_max_connections`` in ``metrics``), cache hit ratios of services that normally hit (from
    ``requests.cache_status``; alert when under half the median 15-min ratio) and gauges named
    ``*_utilization`` or ``*_saturation_ratio`` (limit 1). Each item: name, expr (PromQL), limit or
    threshold, p99 and max over the history."""
    names = {r[0] for r in con.execute("SELECT DISTINCT name FROM metrics").fetchall()}
    out: list[dict[str, Any]] = []
    if {"pg_stat_activity_count", "pg_settings_max_connections"} <= names:
        row = con.execute("""
            WITH a AS (SELECT ts, sum(value) AS active FROM metrics
                       WHERE name = 'pg_stat_activity_count' AND labels['state'] = 'active' GROUP BY ts),
                 m AS (SELECT ts, max(value) AS max_conn FROM metrics
                       WHERE name = 'pg_settings_max_connections' GROUP BY ts)
            SELECT quantile_cont(active / max_conn, 0.99), max(active / max_conn)
            FROM a JOIN m USING (ts)""").fetchone()
        out.append({"name": "db_connection_pool_utilization",
                    "expr": 'sum(pg_stat_activity_count{state="active"}) / max(pg_settings_max_connections)',
                    "limit": 1.0, "p99": row[0] if row else None, "max": row[1] if row else None})
    # caches: services whose responses carry a cache status and normally hit (median 15-min hit ratio
    # >= 30%); a collapse to under half of that median is an outage of the cache (CDN purge, bad key).
    hit = con.execute("""
        WITH m AS (SELECT service, time_bucket(INTERVAL 15 MINUTE, ts) AS b,
                          count(*) FILTER (WHERE cache_status = 'HIT') / count(*) AS hit_ratio
                   FROM requests WHERE cache_status IS NOT NULL AND method IN ('GET', 'HEAD') GROUP BY ALL
                   HAVING count(*) >= 20)
        SELECT service, median(hit_ratio) FROM m WHERE service IS NOT NULL GROUP BY 1 ORDER BY 1""").fetchall()
    for service, median_hit in hit:
        if median_hit is None or median_hit < 0.3:
            continue
        sel = f'service="{service}",method=~"GET|HEAD"'
        out.append({"name": f"cache_hit_ratio_{service}", "service": service, "direction": "below",
                    "threshold": round(0.5 * float(median_hit), 3),
                    "basis": f"half its median 15-min hit ratio {float(median_hit):.3g}",
                    "expr": (f'sum(rate(http_requests_total{{{sel},cache_status="HIT"}}[15m])) / '
                             f'sum(rate(http_requests_total{{{sel}}}[15m]))'),
                    "p99": None, "max": None})
    for name in sorted(n for n in names if n.endswith("_utilization") or n.endswith("_saturation_ratio")):
        row = con.execute("SELECT quantile_cont(value, 0.99), max(value) FROM metrics WHERE name = ?",
                          [name]).fetchone()
        out.append({"name": name, "expr": f"max by (instance) ({name})", "limit": 1.0,
                    "p99": row[0] if row else None, "max": row[1] if row else None})
    return out


def saturation_minutes(con: duckdb.DuckDBPyConnection, candidate: dict[str, Any], start: datetime,
                       end: datetime) -> np.ndarray:
    """Per-minute value of a saturation candidate over [start, end) (NaN where no sample), computed in
    DuckDB: the DB pool's active / max connections, or the max of a gauge over its series."""
    n = int((end - start).total_seconds() // 60)
    base = int(start.timestamp() // 60)
    window = f"ts >= TIMESTAMPTZ '{start.isoformat()}' AND ts < TIMESTAMPTZ '{end.isoformat()}'"
    if candidate.get("direction") == "below" and candidate["name"].startswith("cache_hit_ratio_"):
        rows = con.execute(
            f"SELECT CAST(floor(epoch(ts) / 60) AS BIGINT) - {base} AS i, count(*) AS n, "
            "count(*) FILTER (WHERE cache_status = 'HIT') AS h FROM requests "
            f"WHERE service = {sql_string(candidate['service'])} AND cache_status IS NOT NULL "
            f"AND method IN ('GET', 'HEAD') AND {window} GROUP BY 1").fetchnumpy()
        total = np.zeros(n)
        hits = np.zeros(n)
        idx = np.asarray(rows["i"], dtype=np.int64)
        keep = (idx >= 0) & (idx < n)
        total[idx[keep]] = np.asarray(rows["n"], dtype=np.float64)[keep]
        hits[idx[keep]] = np.asarray(rows["h"], dtype=np.float64)[keep]
        t15, h15 = rolling_sum(total, 15), rolling_sum(hits, 15)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(t15 >= 20, h15 / np.maximum(t15, 1), np.nan)
    if candidate["name"] == "db_connection_pool_utilization":
        sql = f"""
            WITH a AS (SELECT ts, sum(value) AS active FROM metrics WHERE name = 'pg_stat_activity_count'
                       AND labels['state'] = 'active' AND {window} GROUP BY ts),
                 m AS (SELECT ts, max(value) AS max_conn FROM metrics
                       WHERE name = 'pg_settings_max_connections' AND {window} GROUP BY ts)
            SELECT CAST(floor(epoch(ts) / 60) AS BIGINT) - {base} AS i, max(active / max_conn) AS v
            FROM a JOIN m USING (ts) GROUP BY 1"""
    else:
        sql = (f"SELECT CAST(floor(epoch(ts) / 60) AS BIGINT) - {base} AS i, max(value) AS v FROM metrics "
               f"WHERE name = {sql_string(candidate['name'])} AND {window} GROUP BY 1")
    rows = con.execute(sql).fetchnumpy()
    out = np.full(n, np.nan)
    idx = np.asarray(rows["i"], dtype=np.int64)
    keep = (idx >= 0) & (idx < n)
    out[idx[keep]] = np.asarray(rows["v"], dtype=np.float64)[keep]
    return out

