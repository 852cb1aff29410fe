"""Where the time goes: routes ranked by the total request time they consume. What changed, where, when
and why is ``kit.analysis.findings``; ``save_bottlenecks`` writes both into ``results/bottlenecks.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kit.analysis.window import Window, services_sql
from kit.engine import Queryable, as_engine

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
WHERE {window} AND latency_ms IS NOT NULL AND {services}
GROUP BY service, route
ORDER BY total_time_s DESC, service, route
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


def time_consumers(con: Queryable, window: Window, services: list[str] | tuple[str, ...] = (),
                   top_n: int = 10) -> TimeConsumers:
    """Rank routes by the request time they consume; the head of this list is where to look first.
    ``con``: a DuckDB connection or an engine (``kit.engine``)."""
    sql = TIME_SHARE_SQL.format(window=window.sql(), services=services_sql(services))
    table = as_engine(con).frame(sql)
    cumulative = table["time_share"].cumsum()
    routes_for_half = int((cumulative < 0.5).sum() + 1) if len(table) else 0
    top = table.head(top_n).reset_index(drop=True)
    return TimeConsumers(window, len(table), top, float(top["time_share"].sum()) if len(top) else 0.0,
                         routes_for_half, sql.strip())


def bottlenecks_document(consumers: TimeConsumers | None, findings: Any) -> dict[str, Any]:
    """``results/bottlenecks.json``: the time ranking's keys (as before) plus ``findings``, the detector's
    ranked changes, validated against ``kit/report/schemas/bottleneck_findings.schema.json``."""
    from kit.report.render import validate_document
    from kit.results import to_jsonable

    document: dict[str, Any] = dict(to_jsonable(consumers)) if consumers is not None else {}
    document["findings"] = findings.to_dict()
    validate_document(document["findings"], "bottleneck_findings")
    return document


def save_bottlenecks(results_dir: str, consumers: TimeConsumers | None, findings: Any) -> Path:
    """Write ``bottlenecks.json`` (validated) under ``results_dir``; nothing when it is empty."""
    from kit.results import save_result

    return save_result(results_dir, "bottlenecks", bottlenecks_document(consumers, findings))
