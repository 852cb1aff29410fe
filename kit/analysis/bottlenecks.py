"""Where the time goes: routes ranked by the total request time they consume (a first cut of
bottleneck identification; correlation with saturation and change points come later)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from kit.analysis.window import Window, services_sql

TIME_SHARE_SQL = """
SELECT service, route,
       count(*)                                   AS requests,
       sum(latency_ms) / 1000.0                   AS total_time_s,
       sum(latency_ms) / sum(sum(latency_ms)) OVER () AS time_share,
       quantile_cont(latency_ms, 0.5)             AS p50_ms,
       quantile_cont(latency_ms, 0.95)            AS p95_ms,
       quantile_cont(latency_ms, 0.99)            AS p99_ms,
       avg((status >= 500)::INT)                  AS error_rate
FROM requests
WHERE ts >= ? AND ts < ? AND latency_ms IS NOT NULL AND {services}
GROUP BY service, route
ORDER BY total_time_s DESC
"""


@dataclass(frozen=True)
class TimeConsumers:
    """Routes by total request time (s) in the window; ``top`` holds the first ``top_n``."""

    window: Window
    routes_analysed: int
    top: pd.DataFrame           # service, route, requests, total_time_s, time_share, p50/p95/p99_ms, error_rate
    top_share: float            # share of all request time spent in the top routes
    routes_for_half: int        # fewest routes that together consume half of the time
    sql: str


def time_consumers(con: duckdb.DuckDBPyConnection, window: Window, services: list[str] | tuple[str, ...] = (),
                   top_n: int = 10) -> TimeConsumers:
    """Rank routes by the request time they consume; the head of this list is where to look first."""
    sql = TIME_SHARE_SQL.format(services=services_sql(services))
    table = con.execute(sql, [window.start, window.end]).df()
    cumulative = table["time_share"].cumsum()
    routes_for_half = int((cumulative < 0.5).sum() + 1) if len(table) else 0
    top = table.head(top_n).reset_index(drop=True)
    return TimeConsumers(window, len(table), top, float(top["time_share"].sum()) if len(top) else 0.0,
                         routes_for_half, sql.strip())
