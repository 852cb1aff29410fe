"""The DuckDB warehouse: connect, versioned schema, transactions and the ingest log.

Timestamps are UTC ``TIMESTAMPTZ``; durations are milliseconds (``*_ms``), sizes bytes (``*_bytes``).
Every data row carries the ``source_id`` of the ingest that brought it (``ingest_log.source_id``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from kit import parquet_warehouse
from kit.errors import WarehouseError, WarehouseLockedError

SCHEMA_VERSION = 2

# One entry per schema version: the statements that bring version N-1 to N.
_MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE SEQUENCE IF NOT EXISTS source_id_seq START 1",
        """CREATE TABLE IF NOT EXISTS ingest_log (
            source_id     BIGINT PRIMARY KEY,
            kind          VARCHAR NOT NULL,     -- access-log, prometheus, demo, ...
            path          VARCHAR,              -- file, glob member, URL or DSN (secrets removed)
            sha256        VARCHAR,              -- of the bytes ingested (NULL for live sources)
            size_bytes    BIGINT,
            format        VARCHAR,              -- detected or given input format
            lines_in      BIGINT,
            rows_loaded   BIGINT,
            rows_rejected BIGINT,
            rows_skipped  BIGINT,
            started_at    TIMESTAMPTZ NOT NULL,
            finished_at   TIMESTAMPTZ,
            options       JSON
        )""",
        """CREATE TABLE IF NOT EXISTS rejects (
            source_id BIGINT NOT NULL,
            line_no   BIGINT,                   -- 1-based line in the source file
            field     VARCHAR,                  -- the field that failed, where known
            reason    VARCHAR NOT NULL,
            raw       VARCHAR                   -- the input line, truncated to 2,000 characters
        )""",
        """CREATE TABLE IF NOT EXISTS requests (
            ts             TIMESTAMPTZ NOT NULL, -- request start (or log time), UTC
            service        VARCHAR,
            host           VARCHAR,
            method         VARCHAR,
            route          VARCHAR,              -- templated path: /product/{id}
            path           VARCHAR,              -- path without the query string
            query          VARCHAR,              -- query string with secret values REDACTED
            status         SMALLINT,
            latency_ms     DOUBLE,               -- total request time
            upstream_ms    DOUBLE,               -- time spent waiting for the upstream/origin
            bytes_sent     BIGINT,
            content_type   VARCHAR,
            cache_status   VARCHAR,              -- HIT, MISS, EXPIRED, BYPASS, STALE, ... (NULL if unknown)
            client_hash    VARCHAR,              -- salted hash of the client address
            user_agent     VARCHAR,
            source_id      BIGINT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS metrics (
            ts        TIMESTAMPTZ NOT NULL,
            name      VARCHAR NOT NULL,          -- Prometheus metric name
            labels    MAP(VARCHAR, VARCHAR),
            value     DOUBLE,
            source_id BIGINT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS queries (
            ts               TIMESTAMPTZ NOT NULL, -- event time, or snapshot time for statistics
            db_system        VARCHAR NOT NULL,     -- postgresql, mysql
            database         VARCHAR,
            user_name        VARCHAR,
            kind             VARCHAR NOT NULL,     -- event (one execution) or snapshot (cumulative stats)
            fingerprint      VARCHAR NOT NULL,     -- normalized statement shape
            query_id         VARCHAR,              -- stable id of the fingerprint (or the server's queryid)
            sample           VARCHAR,              -- one example statement, literals redacted
            calls            BIGINT,
            total_ms         DOUBLE,
            rows             BIGINT,
            rows_examined    BIGINT,
            lock_ms          DOUBLE,
            shared_blks_hit  BIGINT,
            shared_blks_read BIGINT,
            source_id        BIGINT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS cache_requests (
            ts         TIMESTAMPTZ,              -- request time (NULL when the trace has none)
            seq        BIGINT NOT NULL,          -- 0-based position in the trace
            trace      VARCHAR NOT NULL,         -- trace name
            obj_id     UBIGINT NOT NULL,         -- object id (hash of the key for textual keys)
            key        VARCHAR,                  -- textual key, when the trace has one
            size_bytes BIGINT,
            ttl_s      DOUBLE,
            op         VARCHAR,                  -- get, set, delete, ... (NULL = get)
            source_id  BIGINT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS assets (
            path         VARCHAR NOT NULL,       -- URL path the asset is served at
            content_type VARCHAR,
            size_bytes   BIGINT NOT NULL,
            sha256       VARCHAR NOT NULL,       -- key into asset_content
            source_id    BIGINT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS asset_content (
            sha256  VARCHAR PRIMARY KEY,
            content BLOB NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS profiles (
            ts        TIMESTAMPTZ,               -- when the profile was taken
            service   VARCHAR,
            profile   VARCHAR NOT NULL,          -- profile name (file stem)
            stack     VARCHAR NOT NULL,          -- folded stack, root first: a;b;c
            samples   BIGINT NOT NULL,
            source_id BIGINT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS events (
            ts_start  TIMESTAMPTZ NOT NULL,
            ts_end    TIMESTAMPTZ,
            kind      VARCHAR NOT NULL,          -- deploy, incident, config, ...
            service   VARCHAR,
            route     VARCHAR,
            what      VARCHAR NOT NULL,          -- one-line description
            details   JSON,
            source_id BIGINT NOT NULL
        )""",
    ],
    # 2: the session (PostgreSQL csvlog/jsonlog session_id or %c, MySQL slow-log thread Id) that ran a
    # statement event, so repeated statements can be grouped per session (N+1 detection); NULL when unknown
    2: ["ALTER TABLE queries ADD COLUMN IF NOT EXISTS session_id VARCHAR"],
}

# what a shared cache may store: GET/HEAD with status 200-399 (missing method/status count as GET/200)
CACHEABLE_SQL = "coalesce(upper(method), 'GET') IN ('GET', 'HEAD') AND coalesce(status, 200) BETWEEN 200 AND 399"

DATA_TABLES = ("requests", "metrics", "queries", "cache_requests", "assets", "profiles", "events")
CORE_TABLES = (*DATA_TABLES, "ingest_log", "rejects")


def connect(path: str | Path, *, read_only: bool = False, memory_limit: str | None = None,
            threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse at ``path`` (``:memory:`` for a scratch one), creating or upgrading its schema.

    A Parquet warehouse (a directory with ``perfkit-warehouse.json``, see :mod:`kit.parquet_warehouse`)
    opens (``read_only=True`` only; WarehouseError otherwise: ``perfkit ingest`` writes it) as a DuckDB
    connection with one view per table over its committed files.
    Raises WarehouseLockedError with a readable message when another process is writing to it, and
    WarehouseError when a read-only open finds no file or an older schema.
    """
    target = str(path)
    if target != ":memory:" and parquet_warehouse.is_parquet_warehouse(target):
        if not read_only:
            raise WarehouseError(
                f"{target} is a Parquet warehouse: it is written by `perfkit ingest KIND --db {target} ...` "
                "only (one commit per source); open it with read_only=True to analyse it")
        return parquet_warehouse.connect_views(target, schema_columns(), SCHEMA_VERSION,
                                               memory_limit=memory_limit, threads=threads)
    if read_only and target != ":memory:" and not Path(target).exists():
        raise WarehouseError(f"warehouse {target} does not exist (build one with `perfkit demo --db {target}`)")
    config: dict[str, Any] = {}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = threads
    try:
        con = duckdb.connect(target, read_only=read_only, config=config)
    except duckdb.IOException as exc:
        message = str(exc)
        if "lock" in message.lower():
            holder = message.split("Conflicting lock is held in", 1)[-1].split(". See also")[0].strip()
            raise WarehouseLockedError(
                f"warehouse {target} is open for writing by another process ({holder}); "
                "wait for it to finish or close it, then try again"
            ) from None
        raise WarehouseError(f"cannot open warehouse {target}: {message}") from None
    con.execute("SET TimeZone = 'UTC'")  # after connect: ICU (built in) is loaded lazily
    if read_only:
        version = schema_version(con)
        if version != SCHEMA_VERSION:
            con.close()
            raise WarehouseError(
                f"warehouse {target} has schema version {version}, this kit needs {SCHEMA_VERSION}; "
                "open it once without read_only to upgrade it"
            )
    else:
        migrate(con)
    return con


# session settings a second connection to the same database takes over from the first: the time zone changes
# answers (calendar buckets of TIMESTAMPTZ); the progress bar what the user sees
SESSION_SETTINGS = ("TimeZone", "enable_progress_bar")


@contextmanager
def cursor(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A second connection to ``con``'s database for another thread (DuckDB runs the two connections'
    queries at once), with ``con``'s :data:`SESSION_SETTINGS`; closed after the block. It sees the tables
    and views, not ``con``'s temporary tables or registered frames."""
    settings = con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                           f"({', '.join(sql_string(n) for n in SESSION_SETTINGS)})").fetchall()
    other = con.cursor()
    try:
        for name, value in settings:
            other.execute(f"SET {name} = {sql_string(str(value))}")
        yield other
    finally:
        other.close()


def table_columns(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[tuple[str, str], ...]]:
    """Table -> its (column, DuckDB type) in schema order, for every table of ``con``'s warehouse (one
    catalog query, not a DESCRIBE per table)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name <> 'schema_info' ORDER BY table_name, column_index").fetchall():
        out.setdefault(str(table), []).append((str(column), str(kind)))
    return {t: tuple(c) for t, c in out.items()}


@cache
def schema_columns() -> dict[str, tuple[tuple[str, str], ...]]:
    """Table -> its (column, DuckDB type) in schema order, for every table of the current schema."""
    con = duckdb.connect(":memory:")
    try:
        migrate(con)
        return table_columns(con)
    finally:
        con.close()


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``name`` is a table (not a view) of ``con``'s warehouse."""
    # duckdb_tables(), not information_schema.tables: the first query of the latter binds its views, 12 ms of a
    # fresh connection's 30
    row = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND database_name = "
                      "current_database() AND schema_name = 'main'", [name]).fetchone()
    return bool(row and row[0])


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version stored in the warehouse (0 for an empty database)."""
    if not has_table(con, "schema_info"):
        return 0
    row = con.execute("SELECT max(version) FROM schema_info").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema to SCHEMA_VERSION in one transaction; return the version found before."""
    before = schema_version(con)
    if before > SCHEMA_VERSION:
        raise WarehouseError(f"warehouse schema version {before} is newer than this kit ({SCHEMA_VERSION})")
    if before == SCHEMA_VERSION:
        return before
    with transaction(con):
        con.execute("CREATE TABLE IF NOT EXISTS schema_info (version INTEGER, applied_at TIMESTAMPTZ)")
        for version in range(before + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                con.execute(statement)
            con.execute("INSERT INTO schema_info VALUES (?, now())", [version])
    return before


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: all of it lands, or none of it."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")



@dataclass(frozen=True)
class Source:
    """One row of ingest_log while it is being written."""

    source_id: int
    kind: str
    path: str | None


def begin_source(con: duckdb.DuckDBPyConnection, kind: str, path: str | None = None, *,
                 sha256: str | None = None, size_bytes: int | None = None, fmt: str | None = None,
                 options: dict | None = None) -> Source:
    """Register a new source in ingest_log (call inside the ingest's transaction)."""
    row = con.execute("SELECT nextval('source_id_seq')").fetchone()
    assert row is not None
    source_id = int(row[0])
    con.execute(
        "INSERT INTO ingest_log (source_id, kind, path, sha256, size_bytes, format, started_at, options) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [source_id, kind, path, sha256, size_bytes, fmt, datetime.now(UTC), json.dumps(options or {})],
    )
    return Source(source_id, kind, path)


def finish_source(con: duckdb.DuckDBPyConnection, source: Source, *, lines_in: int | None,
                  rows_loaded: int, rows_rejected: int = 0, rows_skipped: int = 0) -> None:
    """Record a source's counts and finish time (call inside the ingest's transaction)."""
    con.execute(
        "UPDATE ingest_log SET lines_in = ?, rows_loaded = ?, rows_rejected = ?, rows_skipped = ?, "
        "finished_at = ? WHERE source_id = ?",
        [lines_in, rows_loaded, rows_rejected, rows_skipped, datetime.now(UTC), source.source_id],
    )


def delete_source(con: duckdb.DuckDBPyConnection, source_id: int) -> None:
    """Remove every row a source brought, its rejects and its ingest_log entry."""
    for table in (*DATA_TABLES, "rejects", "ingest_log"):
        con.execute(f"DELETE FROM {table} WHERE source_id = ?", [source_id])


def fingerprint(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """A summary that identifies the warehouse's content: row counts and the ingested sources' hashes."""
    counts = {table: int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
              for table in CORE_TABLES}
    sources = con.execute(
        "SELECT string_agg(coalesce(sha256, kind || ':' || coalesce(path, '')), ',' ORDER BY source_id) "
        "FROM ingest_log"
    ).fetchone()
    text = json.dumps(counts, sort_keys=True) + "|" + str(sources[0] if sources else "")
    return {"schema_version": schema_version(con), "row_counts": counts,
            "sha256": hashlib.sha256(text.encode()).hexdigest()}


def sql_string(value: str | Path) -> str:
    """A SQL string literal for ``value`` (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"
