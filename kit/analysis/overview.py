"""What the warehouse holds: coverage per table, sources, rejects, services and field completeness."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from kit.analysis.coverage import NEEDS, Coverage, Gap, data_coverage
from kit.analysis.window import Window, services_sql
from kit.ingest.services import ServiceNaming, service_naming
from kit.warehouse import CORE_TABLES

_TIME_COLUMNS = {"requests": "ts", "metrics": "ts", "queries": "ts", "cache_requests": "ts",
                 "profiles": "ts", "events": "ts_start"}
REQUEST_FIELDS = ("service", "host", "method", "route", "path", "status", "latency_ms", "upstream_ms",
                  "bytes_sent", "content_type", "cache_status", "client_hash", "user_agent")


@dataclass(frozen=True)
class TableCoverage:
    table: str
    rows: int
    first_ts: datetime | None
    last_ts: datetime | None


@dataclass(frozen=True)
class Overview:
    window: Window
    tables: list[TableCoverage]
    sources: pd.DataFrame            # ingest_log rows
    rejects_by_reason: pd.DataFrame  # kind, reason, rejected
    services: pd.DataFrame           # service, requests, routes, hosts, first_ts, last_ts
    field_completeness: dict[str, float]  # requests column -> share of non-null values in the window
    requests_per_hour: pd.DataFrame  # hour, service, requests
    coverage: Coverage               # what the warehouse holds, per data kind
    gaps: list[Gap]                  # every analysis the warehouse cannot support, with the command that adds it
    service_naming: list[ServiceNaming]  # per source and service: how the service name was chosen


def warehouse_overview(con: duckdb.DuckDBPyConnection, window: Window,
                       services: list[str] | tuple[str, ...] = ()) -> Overview:
    """Summarize the warehouse's content, restricted to the window (and services) for requests."""
    tables = []
    for table in CORE_TABLES:
        column = _TIME_COLUMNS.get(table)
        if column:
            rows, first, last = con.execute(f"SELECT count(*), min({column}), max({column}) FROM {table}").fetchone()  # type: ignore[misc]
        else:
            rows, first, last = con.execute(f"SELECT count(*), NULL, NULL FROM {table}").fetchone()  # type: ignore[misc]
        tables.append(TableCoverage(table, int(rows), first, last))
    sources = con.execute(
        "SELECT source_id, kind, path, format, lines_in, rows_loaded, rows_rejected, rows_skipped, "
        "started_at, finished_at FROM ingest_log ORDER BY source_id").df()
    rejects = con.execute(
        "SELECT l.kind, r.reason, count(*) AS rejected FROM rejects r JOIN ingest_log l USING (source_id) "
        "GROUP BY ALL ORDER BY rejected DESC").df()
    where = f"ts >= ? AND ts < ? AND {services_sql(services)}"
    params = [window.start, window.end]
    per_service = con.execute(
        f"SELECT service, count(*) AS requests, count(DISTINCT route) AS routes, count(DISTINCT host) AS hosts, "
        f"min(ts) AS first_ts, max(ts) AS last_ts FROM requests WHERE {where} GROUP BY service ORDER BY requests DESC",
        params).df()
    completeness_sql = ", ".join(f"avg(({c} IS NOT NULL)::INT) AS {c}" for c in REQUEST_FIELDS)
    row = con.execute(f"SELECT {completeness_sql} FROM requests WHERE {where}", params).fetchone()
    completeness = {c: float(v) if v is not None else 0.0 for c, v in zip(REQUEST_FIELDS, row or (), strict=False)}
    per_hour = con.execute(
        f"SELECT time_bucket(INTERVAL 1 hour, ts) AS hour, service, count(*) AS requests FROM requests "
        f"WHERE {where} GROUP BY ALL ORDER BY hour, service", params).df()
    coverage = data_coverage(con)
    return Overview(window, tables, sources, rejects, per_service, completeness, per_hour, coverage,
                    coverage.gaps(*NEEDS), service_naming(con))
