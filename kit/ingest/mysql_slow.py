"""MySQL / MariaDB / Percona Server slow query logs → ``queries`` (kind ``mysql-slow``).

Parsed in DuckDB: every line is classified, an entry starts at a ``#`` header line that follows a
non-header line, entry ids are a running sum of those starts (a window function), and the lines of an
entry are aggregated with ``string_agg``. One entry becomes one ``queries`` row (``kind = 'event'``,
``calls = 1``, ``total_ms = Query_time × 1000``, ``session_id`` = the connection's thread id from
``# Thread_id:`` or the ``Id:`` of ``# User@Host:``).

An entry opens at a ``# Time:`` or ``# User@Host:`` line that does not follow another ``# `` header
line; lines starting with ``# `` (or a lone ``#``) are header lines, all others belong to the statement
(``# administrator command: X`` is the statement ``administrator command: X``; ``use db;`` and
``SET timestamp=N;`` lines set the database and time).

**How lines are counted.** A slow-log entry spans several lines, so ``lines_in`` counts *records*:
each entry counts once (loaded, or rejected with the line number of its first line), and each line
outside any entry counts once on its own: the server banner (``mysqld, Version: ...``, ``Tcp port:``,
``Time Id Command Argument``) and blank lines are skipped, any other stray line is rejected. So
``lines_in = rows_loaded + rows_rejected + rows_skipped``.

**Time.** ``SET timestamp=N`` (epoch seconds) wins; else ``# Time:`` (``071015 21:43:52`` taken as UTC,
or ISO 8601 with a zone). MySQL prints ``# Time`` only when the second changes, so an entry without
either takes the previous entry's time (the next one's for entries before the first time). A file with
no time at all is rejected entry by entry unless ``assume_time`` is given.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

import duckdb

from kit.ingest.core import (
    RAW_MAX_CHARS,
    IngestSummary,
    LoadCounts,
    add_common_args,
    add_file_ingest_parser,
    given_options,
    ingest_file,
    lines_relation_sql,
    readable_path,
    run_ingest_cli,
    sql_string,
)
from kit.ingest.fingerprint import install_macros
from kit.warehouse import Source

__all__ = ["KIND", "ingest_mysql_slow", "load_mysql_slow", "register_ingest"]

KIND = "mysql-slow"

_BANNER = (r"^\S+, Version: .*started with:$|^Tcp port: [0-9]+ +Unix socket: |"
           r"^Time +Id +Command +Argument *$")
_SET_TS = r"(?i)^SET +(?:[a-z_]+ *= *[0-9]+ *, *)*timestamp *= *([0-9]+) *;? *$"
_USE = r"(?i)^use +`?([^ `;]+)`? *;? *$"
_ADMIN = r"^# (administrator command: .*?);? *$"


def load_mysql_slow(con: duckdb.DuckDBPyConnection, source: Source, path: Path, skip_lines: int = 0, *,
                    assume_time: datetime | str | None = None) -> LoadCounts:
    """Load one slow log's entries after its first ``skip_lines`` lines; see the module docstring."""
    install_macros(con)
    assume = "NULL" if assume_time is None else f"CAST({sql_string(str(assume_time))} AS TIMESTAMPTZ)"
    sid = int(source.source_id)
    with readable_path(path) as readable:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _pk_slow_lines AS "
            f"SELECT line_no, coalesce(line, '') AS line FROM ({lines_relation_sql(readable)}) "
            f"WHERE line_no > {int(skip_lines)}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pk_slow_class AS
        WITH c AS (
            SELECT line_no, line,
                   regexp_matches(line, {sql_string(_BANNER)}) AS banner,
                   regexp_matches(line, '^#( |$)') AND NOT starts_with(line, '# administrator command:')
                       AS meta,
                   regexp_matches(line, '^# (Time|User@Host):') AS opener
            FROM _pk_slow_lines),
        s AS (
            SELECT *, opener AND NOT coalesce(lag(meta) OVER (ORDER BY line_no), false) AS starts FROM c)
        SELECT *, sum(starts::INTEGER) OVER (ORDER BY line_no ROWS UNBOUNDED PRECEDING) AS entry FROM s""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pk_slow_entries AS
        WITH t AS (
            SELECT *,
                   NOT meta AND regexp_matches(line, {sql_string(_SET_TS)}) AS set_ts,
                   NOT meta AND regexp_matches(line, {sql_string(_USE)}) AS use_db
            FROM _pk_slow_class WHERE entry > 0 AND NOT banner),
        g AS (
            SELECT entry, min(line_no) AS first_line,
                   string_agg(line, chr(10) ORDER BY line_no) AS raw,
                   string_agg(line, chr(10) ORDER BY line_no) FILTER (WHERE meta) AS header,
                   string_agg(regexp_replace(line, {sql_string(_ADMIN)}, '\\1'), chr(10) ORDER BY line_no)
                       FILTER (WHERE NOT meta AND NOT set_ts AND NOT use_db) AS body,
                   max(try_cast(regexp_extract(line, {sql_string(_SET_TS)}, 1) AS BIGINT))
                       FILTER (WHERE set_ts) AS epoch_s,
                   last(regexp_extract(line, {sql_string(_USE)}, 1) ORDER BY line_no)
                       FILTER (WHERE use_db) AS use_name,
                   last(line ORDER BY line_no) FILTER (WHERE use_db) AS use_line
            FROM t GROUP BY entry),
        f AS (
            SELECT *,
                   coalesce(
                       CASE WHEN epoch_s IS NOT NULL THEN try(to_timestamp(epoch_s)) END,
                       try_cast(regexp_extract(header, '# Time: ([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[^ \\n]+)', 1)
                                AS TIMESTAMPTZ),
                       CAST(try_strptime(regexp_replace(
                           regexp_extract(header, '# Time: ([0-9]{{6}} +[0-9]{{1,2}}:[0-9]{{2}}:[0-9]{{2}})', 1),
                           ' +', ' '), '%y%m%d %H:%M:%S') AS TIMESTAMPTZ)) AS own_ts,
                   regexp_extract(header, 'Query_time: *([^ \\n]*)', 1) AS query_time_text,
                   coalesce(regexp_matches(header, 'Query_time:'), false) AS has_qt,
                   nullif(trim(body, chr(10) || ' ' || chr(9)), '') AS statement
            FROM g)
        SELECT *,
               coalesce(own_ts,
                        last_value(own_ts IGNORE NULLS) OVER (ORDER BY entry ROWS UNBOUNDED PRECEDING),
                        first_value(own_ts IGNORE NULLS) OVER (
                            ORDER BY entry ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING),
                        {assume}) AS ts,
               try_cast(query_time_text AS DOUBLE) AS query_s,
               coalesce(statement, CASE WHEN use_line IS NOT NULL THEN 'use ' || use_name END) AS stmt,
               CASE
                   WHEN NOT has_qt THEN 'Query_time'
                   WHEN try_cast(query_time_text AS DOUBLE) IS NULL THEN 'Query_time'
                   WHEN statement IS NULL AND use_line IS NULL THEN 'statement'
               END AS bad_field
        FROM f""")
    con.execute("""
        UPDATE _pk_slow_entries SET bad_field = 'ts' WHERE bad_field IS NULL AND ts IS NULL""")
    con.execute(f"""
        INSERT INTO queries (ts, db_system, database, user_name, kind, fingerprint, query_id, sample, calls,
                             total_ms, rows, rows_examined, lock_ms, session_id, source_id)
        SELECT ts, 'mysql',
               coalesce(use_name, nullif(regexp_extract(header, 'Schema: ([^ \\n]+)', 1), '')),
               nullif(coalesce(nullif(regexp_extract(header, '# User@Host: [^\\[\\n]*\\[([^\\]]*)\\]', 1), ''),
                               regexp_extract(header, '# User@Host: ([^\\[ \\n]+)', 1)), ''),
               'event', fp, pk_query_id(fp), left(trim(red, ' '), 2000), 1, query_s * 1000.0,
               try_cast(regexp_extract(header, 'Rows_sent: *([0-9]+)', 1) AS BIGINT),
               try_cast(regexp_extract(header, 'Rows_examined: *([0-9]+)', 1) AS BIGINT),
               try_cast(regexp_extract(header, 'Lock_time: *([0-9.]+)', 1) AS DOUBLE) * 1000.0,
               nullif(coalesce(nullif(regexp_extract(header, 'Thread_id: *([0-9]+)', 1), ''),
                               regexp_extract(header, '# User@Host: [^\n]* Id: *([0-9]+)', 1)), ''),
               {sid}
        FROM (SELECT *, pk_fingerprint_redacted_mysql(stmt, red) AS fp
              FROM (SELECT *, pk_redacted_full_mysql(stmt) AS red FROM _pk_slow_entries WHERE bad_field IS NULL))
        ORDER BY entry""")
    con.execute(f"""
        INSERT INTO rejects (source_id, line_no, field, reason, raw)
        SELECT {sid}, first_line, bad_field,
               CASE bad_field
                   WHEN 'Query_time' THEN CASE WHEN query_time_text = '' OR query_time_text IS NULL
                       THEN 'slow-log entry has no "# Query_time:" header line'
                       ELSE 'Query_time is not a number: ' || query_time_text END
                   WHEN 'statement' THEN 'slow-log entry has a header but no statement'
                   ELSE 'no "# Time:" or "SET timestamp=" anywhere in the file (give assume_time)'
               END, left(raw, {RAW_MAX_CHARS})
        FROM _pk_slow_entries WHERE bad_field IS NOT NULL ORDER BY entry""")
    con.execute(f"""
        INSERT INTO rejects (source_id, line_no, field, reason, raw)
        SELECT {sid}, line_no, 'header', 'line outside any slow-log entry (before the first "#" header)',
               left(line, {RAW_MAX_CHARS})
        FROM _pk_slow_class WHERE entry = 0 AND NOT banner AND trim(line) <> '' ORDER BY line_no""")
    row = con.execute("""
        SELECT (SELECT count(*) FROM _pk_slow_entries),
               (SELECT count(*) FROM _pk_slow_entries WHERE bad_field IS NULL),
               (SELECT count(*) FROM _pk_slow_entries WHERE bad_field IS NOT NULL),
               (SELECT count(*) FROM _pk_slow_class WHERE entry = 0 AND NOT banner AND trim(line) <> ''),
               (SELECT count(*) FROM _pk_slow_class WHERE banner OR (entry = 0 AND trim(line) = ''))
        """).fetchone()
    assert row is not None
    entries, loaded, bad_entries, stray, skipped = (int(v) for v in row)
    for table in ("_pk_slow_lines", "_pk_slow_class", "_pk_slow_entries"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return LoadCounts(lines_in=entries + stray + skipped, rows_loaded=loaded,
                      rows_rejected=bad_entries + stray, rows_skipped=skipped, fmt="mysql-slow",
                      formats_tried=("mysql-slow",))


def ingest_mysql_slow(con: duckdb.DuckDBPyConnection, path: str | Path, *, replace: bool = False,
                      assume_time: str | None = None) -> IngestSummary:
    """Ingest one slow log (plain or compressed) exactly once into ``queries``."""
    def loader(c: duckdb.DuckDBPyConnection, source: Source, p: Path, skip: int) -> LoadCounts:
        return load_mysql_slow(c, source, p, skip, assume_time=assume_time)

    return ingest_file(con, KIND, path, loader, replace=replace, options=given_options(assume_time=assume_time))


def register_ingest(subparsers: argparse._SubParsersAction) -> None:
    parser = add_file_ingest_parser(
        subparsers, KIND,
        help="MySQL/MariaDB slow query logs → queries",
        description="Load MySQL, MariaDB or Percona Server slow query logs (plain, .gz, .bz2, .zst, .xz; "
                    "globs for rotated logs). Each entry becomes one query event with its fingerprint.")
    parser.add_argument("--assume-time", default=None, metavar="ISO",
                        help="time for entries when the file has no '# Time:' or 'SET timestamp=' at all")
    add_common_args(parser)

    def run(args: argparse.Namespace) -> int:
        return run_ingest_cli(args, lambda con, p: ingest_mysql_slow(
            con, p, replace=args.replace, assume_time=args.assume_time))  # type: ignore[arg-type]

    parser.set_defaults(func=run)
