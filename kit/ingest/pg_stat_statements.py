"""``pg_stat_statements`` snapshots → ``queries`` (kind ``pg-stat-statements``).

:func:`snapshot_pg_stat_statements` stores one snapshot of the view per call (``kind = 'snapshot'``,
cumulative ``calls``/``total_ms``/``rows``/blocks, ``query_id`` = the server's queryid) under the
server's DSN with the password removed; :func:`pg_stat_deltas` turns consecutive snapshots of one server
into per-interval calls and time. PostgreSQL server logs are :mod:`kit.ingest.postgres`.
"""

from __future__ import annotations

import argparse
import re

import duckdb
import pandas as pd

from kit.ingest.core import (
    IngestError,
    IngestSummary,
    LoadCounts,
    add_common_args,
    ingest_live,
    run_ingest_cli,
    sql_string,
)
from kit.ingest.fingerprint import install_macros
from kit.warehouse import Source

__all__ = ["KIND", "pg_stat_deltas", "redact_dsn", "register_ingest", "snapshot_pg_stat_statements"]

KIND = "pg-stat-statements"


def redact_dsn(dsn: str) -> str:
    """The DSN with any password removed (URL ``user:pw@`` or ``password=...``)."""
    text = re.sub(r"(://[^:/@]*):[^@]*@", r"\1@", dsn)
    return re.sub(r"(?i)password\s*=\s*('[^']*'|\S+)", "password=REDACTED", text)


_STATS_SQL = """
SELECT now() AS ts, d.datname AS database, r.rolname AS user_name, s.queryid::text AS query_id, s.query,
       s.calls, {total} AS total_ms, s.rows, s.shared_blks_hit, s.shared_blks_read
FROM pg_stat_statements s
LEFT JOIN pg_database d ON d.oid = s.dbid
LEFT JOIN pg_roles r ON r.oid = s.userid
"""


def snapshot_pg_stat_statements(con: duckdb.DuckDBPyConnection, dsn: str, *,
                                connect_timeout_s: int = 10) -> IngestSummary:
    """Store one snapshot of ``pg_stat_statements`` from the server at ``dsn`` (``kind='snapshot'`` rows,
    cumulative counters); raise IngestError with a clear message when the server or view is missing."""
    import psycopg

    label = redact_dsn(dsn)
    try:
        with psycopg.connect(dsn, connect_timeout=connect_timeout_s, autocommit=True) as pg:
            cols = {r[0] for r in pg.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'pg_stat_statements'::regclass").fetchall()}
            total = "s.total_exec_time" if "total_exec_time" in cols else "s.total_time"
            cur = pg.execute(_STATS_SQL.format(total=total))
            names = [c.name for c in cur.description or []]
            frame = pd.DataFrame(cur.fetchall(), columns=names)
    except psycopg.errors.UndefinedTable:
        raise IngestError("pg_stat_statements is not installed in this database: add it to "
                          "shared_preload_libraries and run CREATE EXTENSION pg_stat_statements",
                          path=label) from None
    except psycopg.OperationalError as exc:
        raise IngestError(f"cannot connect: {str(exc).strip()}", path=label) from None

    def loader(c: duckdb.DuckDBPyConnection, source: Source) -> LoadCounts:
        install_macros(c)
        c.register("_pk_pgss", frame if len(frame) else pd.DataFrame({n: pd.Series(dtype="object")
                                                                        for n in names}))
        try:
            c.execute(f"""
                INSERT INTO queries (ts, db_system, database, user_name, kind, fingerprint, query_id, sample,
                                     calls, total_ms, rows, shared_blks_hit, shared_blks_read, source_id)
                SELECT CAST(ts AS TIMESTAMPTZ), 'postgresql', database, user_name, 'snapshot', fp, query_id,
                       pk_redact_pg(query), CAST(calls AS BIGINT), CAST(total_ms AS DOUBLE),
                       CAST(rows AS BIGINT), CAST(shared_blks_hit AS BIGINT), CAST(shared_blks_read AS BIGINT),
                       {int(source.source_id)}
                FROM (SELECT *, pk_fingerprint_pg(CAST(query AS VARCHAR)) AS fp FROM _pk_pgss
                      WHERE query IS NOT NULL AND query <> '<insufficient privilege>')""")
            c.execute(f"""
                INSERT INTO rejects (source_id, line_no, field, reason, raw)
                SELECT {int(source.source_id)}, NULL, 'query',
                       'statement text not visible (connect as a superuser or pg_read_all_stats member)',
                       'queryid ' || coalesce(CAST(query_id AS VARCHAR), '?')
                FROM _pk_pgss WHERE query IS NULL OR query = '<insufficient privilege>'""")
        finally:
            c.unregister("_pk_pgss")
        bad = int(frame["query"].isna().sum() + (frame["query"] == "<insufficient privilege>").sum()) \
            if len(frame) else 0
        return LoadCounts(lines_in=len(frame), rows_loaded=len(frame) - bad, rows_rejected=bad,
                          fmt="pg_stat_statements")

    return ingest_live(con, KIND, label, loader)


def pg_stat_deltas(con: duckdb.DuckDBPyConnection, *, database: str | None = None) -> pd.DataFrame:
    """Per-interval activity between consecutive ``pg_stat_statements`` snapshots of the same server label.

    One row per (interval, database, user, queryid): ``ts_start``, ``ts_end``, ``interval_s``, ``calls``,
    ``total_ms``, ``rows``, ``mean_ms``, ``fingerprint``. A statement missing from the earlier snapshot,
    or whose counters went down (a reset or an eviction), counts from zero."""
    where = "" if database is None else f"AND q.database = {sql_string(database)}"
    return con.execute(f"""
        WITH snaps AS (
            SELECT l.path AS server, q.source_id, min(q.ts) AS ts
            FROM queries q JOIN ingest_log l USING (source_id)
            WHERE q.kind = 'snapshot' AND l.kind = '{KIND}' GROUP BY 1, 2),
        seq AS (SELECT *, lag(ts) OVER (PARTITION BY server ORDER BY ts) AS prev_ts,
                          lag(source_id) OVER (PARTITION BY server ORDER BY ts) AS prev_source FROM snaps),
        cur AS (
            SELECT s.server, s.prev_ts, s.ts, s.prev_source, q.database, q.user_name, q.query_id,
                   any_value(q.fingerprint) AS fingerprint,
                   sum(q.calls) AS calls, sum(q.total_ms) AS total_ms, sum(q.rows) AS rows
            FROM queries q JOIN seq s USING (source_id)
            WHERE s.prev_ts IS NOT NULL {where}
            GROUP BY ALL),
        prev AS (
            SELECT source_id, database, user_name, query_id, sum(calls) AS calls, sum(total_ms) AS total_ms,
                   sum(rows) AS rows
            FROM queries WHERE kind = 'snapshot' GROUP BY ALL)
        SELECT c.prev_ts AS ts_start, c.ts AS ts_end,
               date_diff('millisecond', c.prev_ts, c.ts) / 1000.0 AS interval_s,
               c.database, c.user_name, c.query_id, c.fingerprint,
               CASE WHEN p.calls IS NULL OR c.calls < p.calls THEN c.calls ELSE c.calls - p.calls END AS calls,
               CASE WHEN p.calls IS NULL OR c.calls < p.calls THEN c.total_ms
                    ELSE c.total_ms - p.total_ms END AS total_ms,
               CASE WHEN p.calls IS NULL OR c.calls < p.calls THEN c.rows ELSE c.rows - p.rows END AS rows,
               CASE WHEN (CASE WHEN p.calls IS NULL OR c.calls < p.calls THEN c.calls
                               ELSE c.calls - p.calls END) > 0
                    THEN (CASE WHEN p.calls IS NULL OR c.calls < p.calls THEN c.total_ms
                               ELSE c.total_ms - p.total_ms END)
                         / (CASE WHEN p.calls IS NULL OR c.calls < p.calls THEN c.calls
                                 ELSE c.calls - p.calls END) END AS mean_ms
        FROM cur c
        LEFT JOIN prev p ON p.source_id = c.prev_source AND p.database IS NOT DISTINCT FROM c.database
                        AND p.user_name IS NOT DISTINCT FROM c.user_name AND p.query_id = c.query_id
        ORDER BY ts_end, total_ms DESC""").df()


# ------------------------------------------------------------------------------------------ CLI

def register_ingest(subparsers: argparse._SubParsersAction) -> None:
    """Add ``perfkit ingest pg-stat-statements``."""
    stats = subparsers.add_parser(
        KIND, help="one pg_stat_statements snapshot from a live server → queries",
        description="Store one snapshot of pg_stat_statements (cumulative counters); take snapshots "
                    "periodically and use kit.ingest.pg_stat_statements.pg_stat_deltas for per-interval "
                    "activity.")
    stats.add_argument("--dsn", required=True, help="libpq connection string or postgresql:// URL")
    add_common_args(stats)

    def run_stats(args: argparse.Namespace) -> int:
        return run_ingest_cli(args, lambda con, _p: snapshot_pg_stat_statements(con, args.dsn))

    stats.set_defaults(func=run_stats)
