"""PostgreSQL server logs → ``queries`` (kind ``postgres-log``); ``pg_stat_statements`` snapshots are
:mod:`kit.ingest.pg_stat_statements`.

**Server logs** written with ``log_min_duration_statement`` (or ``log_duration`` + statements on the
same line): ``stderr`` (any ``log_line_prefix``; give it with ``log_line_prefix=`` for exact parsing,
else a heuristic finds the leading timestamp, ``user=``/``db=`` or ``user@db`` and the severity),
``csvlog`` and ``jsonlog`` (also CloudNativePG's JSON wrapping a csvlog ``record``); and stderr-style
messages wrapped by a log service: ``syslog`` (``Feb 11 13:15:39 host postgres[10808]: [3-1] db=,user=
LOG:  ...``, or an RFC 3339 timestamp; ``#011`` read as a tab), ``logplex`` (Heroku:
``2019-03-14T00:22:56+00:00 app[postgres.4882]: [GREEN] [15-1]  sql_error_code = 00000 LOG:  ...``) and
``cloudsql`` (a Google Cloud Logging JSON export: ``timestamp`` and ``textPayload`` ``[24667]: [1-1] ...``);
plain or compressed. The format is detected from the first lines when not
given. Parsing runs in DuckDB; stderr continuation lines (a multi-line statement, a multi-line
``DETAIL: parameters``) are joined to their entry with a running-sum entry id and ``string_agg``.
In the wrapped formats the running sum is per process and ``[N-M]`` entry number (PostgreSQL's syslog
sequence: entry N of that process, line M of it), so interleaved processes do not mix; a line with its
own prefix and severity (a ``DETAIL``/``HINT`` of the same entry) is an entry of its own, as in stderr.
Syslog timestamps have no year and no zone: the year is ``year=`` (``--year``) when given, else the
file's modification year, or the year before for a date more than a day after the modification time
(a log spanning New Year); the zone is ``assume_tz``. A syslog line of another program (no ``[N-M]``,
no PostgreSQL message) is skipped.

One ``duration: X ms statement|execute|query|fastpath function call: SQL`` entry becomes one row
(``kind = 'event'``, ``calls = 1``, ``total_ms = X``, ``session_id`` from csvlog/jsonlog's
``session_id`` or a stderr prefix's ``%c``, NULL otherwise). The ``parse`` and ``bind`` phases of the extended
protocol are *skipped* (their ``execute`` is the execution; counting all three would triple the calls),
as are all other messages (connections, checkpoints, errors, ``DETAIL`` lines...).

**How lines are counted.** ``lines_in`` counts log *entries* (an entry with its continuation lines
counts once; for csvlog an entry is a CSV record, whose line number in rejects is the record number),
plus each stray line before the first entry (rejected) or blank there (skipped); in the wrapped
formats, each line without a wrapper or continuing an entry that is not in the file (rejected), and
each syslog line of another program (skipped).
``lines_in = rows_loaded + rows_rejected + rows_skipped``.

**Time zones**: zone names PostgreSQL writes (``UTC``, ``CET``, ``CEST``, ``MSK``, numeric offsets...)
are honoured; a timestamp without a zone is taken in ``assume_tz`` (default UTC).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import duckdb

from kit.ingest.core import (
    RAW_MAX_CHARS,
    IngestError,
    IngestSummary,
    LoadCounts,
    add_common_args,
    add_file_ingest_parser,
    first_lines,
    given_options,
    ingest_file,
    lines_relation_sql,
    readable_path,
    run_ingest_cli,
    sql_string,
)
from kit.ingest.fingerprint import install_macros
from kit.warehouse import Source

__all__ = ["FORMATS", "KIND_LOG", "detect_format", "ingest_postgres_log", "load_postgres_log", "prefix_regex",
           "register_ingest"]

KIND_LOG = "postgres-log"
FORMATS = ("stderr", "csvlog", "jsonlog", "syslog", "logplex", "cloudsql")

_SEVERITIES = ("LOG|ERROR|WARNING|FATAL|PANIC|DETAIL|HINT|CONTEXT|STATEMENT|NOTICE|INFO|QUERY|LOCATION|"
               "DEBUG[1-5]?")
_TS = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
       r"(?: ?[A-Za-z]{1,5}|[+-][0-9]{2}(?::?[0-9]{2})?)?")
_DURATION = (r"(?s)^duration: ([0-9.]+) ms +(statement|execute [^:]*|parse [^:]*|bind [^:]*|query|"
             r"fastpath function call): ?(.*)$")
_LOADED_PHASES = ("statement", "execute", "query", "fastpath function call")

# Zone abbreviations PostgreSQL writes that DuckDB's ICU parser does not know, as UTC offsets.
_TZ_OFFSETS = {"CEST": "+02", "EEST": "+03", "MSK": "+03", "MSD": "+04", "BST": "+01", "WEST": "+01",
               "IST": "+0530", "JST": "+09", "KST": "+09", "AEST": "+10", "AEDT": "+11", "NZST": "+12",
               "NZDT": "+13", "SGT": "+08", "HKT": "+08", "BRT": "-03", "ART": "-03", "WIB": "+07"}


# ------------------------------------------------------------------------------------------ helpers

def _ts_sql(expr: str, assume_tz: str) -> str:
    """SQL turning a PostgreSQL log timestamp text into TIMESTAMPTZ (NULL when unparsable)."""
    mapping = ", ".join(f"'{k}': '{v}'" for k, v in _TZ_OFFSETS.items())
    zone = f"regexp_extract({expr}, ' ([A-Za-z]{{2,5}})$', 1)"
    fixed = (f"CASE WHEN map_extract(MAP {{{mapping}}}, {zone}) <> [] "
             f"THEN regexp_replace({expr}, ' [A-Za-z]{{2,5}}$', '') || map_extract(MAP {{{mapping}}}, {zone})[1] "
             f"ELSE {expr} END")
    no_zone = f"NOT regexp_matches({expr}, '([A-Za-z]|[+-][0-9]{{2}}(:?[0-9]{{2}})?)$')"
    return (f"CASE WHEN {expr} IS NULL THEN NULL "
            f"WHEN {no_zone} THEN timezone({sql_string(assume_tz)}, try_cast({expr} AS TIMESTAMP)) "
            f"ELSE coalesce(try_strptime({fixed}, '%Y-%m-%d %H:%M:%S.%g %Z'), "
            f"try_strptime({fixed}, '%Y-%m-%d %H:%M:%S %Z'), try_cast({fixed} AS TIMESTAMPTZ)) END")


_PREFIX_ESCAPES = {
    "a": r".*?", "u": r"[^ ]*?", "d": r"[^ ]*?", "r": r"[^ ]*?", "h": r"[^ ]*?", "b": r".*?",
    "p": r"[0-9]+", "P": r"[0-9]*", "t": _TS, "m": _TS, "n": r"[0-9.]+", "i": r".*?", "e": r"[0-9A-Z]{5}",
    "c": r"[0-9a-f]+\.[0-9a-f]+", "l": r"[0-9]+", "s": _TS, "v": r"[0-9/]*", "x": r"[0-9]+", "Q": r"-?[0-9]+",
}


def prefix_regex(log_line_prefix: str) -> tuple[str, dict[str, int]]:
    """RE2 pattern for a whole stderr line with this ``log_line_prefix`` (groups: the prefix fields, then
    severity and message) and the group numbers of ``ts``, ``user``, ``db``, ``session`` (``%c``),
    ``severity``, ``message``."""
    parts: list[str] = []
    groups: dict[str, int] = {}
    count = 0
    optional = False
    i = 0
    while i < len(log_line_prefix):
        ch = log_line_prefix[i]
        if ch == "%" and i + 1 < len(log_line_prefix):
            code = log_line_prefix[i + 1]
            i += 2
            while code.isdigit() or code == "-":      # padding such as %-10u
                if i >= len(log_line_prefix):
                    break
                code = log_line_prefix[i]
                i += 1
            if code == "%":
                parts.append("%")
            elif code == "q":
                parts.append("(?:")
                optional = True
            elif code in _PREFIX_ESCAPES:
                count += 1
                parts.append("(" + _PREFIX_ESCAPES[code] + ")")
                name = {"t": "ts", "m": "ts", "u": "user", "d": "db", "c": "session"}.get(code)
                if name and name not in groups:
                    groups[name] = count
            else:
                parts.append(".*?")
            continue
        parts.append(re.escape(ch))
        i += 1
    if optional:
        parts.append(")?")
    groups["severity"] = count + 1
    groups["message"] = count + 2
    return "(?s)^" + "".join(parts) + r" *(" + _SEVERITIES + r"): +(.*)$", groups


_HEURISTIC = r"(?s)^(" + _TS + r")(.*?)(" + _SEVERITIES + r"): +(.*)$"

# Wrapped formats: a wrapper (syslog header, logplex header, Cloud Logging JSON) around PostgreSQL's
# ``[N-M] `` syslog sequence (entry N of the process, line M of the entry), then a stderr-style message.
_SEQ_BODY = r"(?:\[([0-9]+)-([0-9]+)\] ?)?(.*)$"
_SYSLOG_TS = (r"[A-Z][a-z]{2} +[0-9]{1,2} [0-9]{2}:[0-9]{2}:[0-9]{2}|"
              r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:Z|[+-][0-9]{2}:?[0-9]{2})?")
_SYSLOG = r"(?s)^(" + _SYSLOG_TS + r") +([^ ]+) +([^ \[:]+)\[([0-9]+)\]: +" + _SEQ_BODY
_LOGPLEX = (r"(?s)^([0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]+) +(?:[^ ]+ +)?app\[([^\]]+)\]:? +\[([^\]]+)\] +"
            r"\[([0-9]+)-([0-9]+)\] ?(.*)$")
_CLOUDSQL = r"(?s)^(?:[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ [A-Z]+ )?\[([0-9]+)\]: +\[([0-9]+)-([0-9]+)\] ?(.*)$"
_WRAPPED_MESSAGE = r"(?s)^(.*?)\b(" + _SEVERITIES + r"): +(.*)$"


def detect_format(path: str | Path) -> str:
    """One of :data:`FORMATS`, from the first non-empty line (``stderr`` when nothing else fits)."""
    for line in first_lines(path, 20, 2000):
        text = line.strip()
        if not text:
            continue
        if text.startswith("{"):
            return "cloudsql" if '"textPayload"' in text else "jsonlog"
        if re.match(_LOGPLEX, text):
            return "logplex"
        if re.match(_SYSLOG, text):
            return "syslog"
        if re.match(r'^"?' + _TS + r'"?,', text):
            return "csvlog"
        return "stderr"
    return "stderr"


def _prefix_user_sql(prefix: str) -> str:
    """SQL for the user named in a log line prefix (``user=NAME`` or ``NAME@db``), NULL when absent."""
    return (f"nullif(coalesce(nullif(regexp_extract({prefix}, 'user=([^, ]*)', 1), ''), "
            f"regexp_extract({prefix}, '([A-Za-z0-9_.-]+)@[A-Za-z0-9_.$-]+', 1)), '')")


def _prefix_db_sql(prefix: str) -> str:
    """SQL for the database named in a log line prefix (``db=NAME`` or ``user@NAME``), NULL when absent."""
    return (f"nullif(coalesce(nullif(regexp_extract({prefix}, 'db=([^, ]*)', 1), ''), "
            f"regexp_extract({prefix}, '[A-Za-z0-9_.-]+@([A-Za-z0-9_.$-]+)', 1)), '')")


# ------------------------------------------------------------------------------------------ entries

def _stderr_entries(con: duckdb.DuckDBPyConnection, path: Path, skip_lines: int,
                    log_line_prefix: str | None) -> None:
    """Fill ``_pk_pg_entries`` (line_no, ts_text, user_name, database, severity, message, raw) and
    ``_pk_pg_stray`` (line_no, line) from a stderr log."""
    if log_line_prefix:
        pattern, groups = prefix_regex(log_line_prefix)
    else:
        pattern, groups = _HEURISTIC, {"ts": 1, "severity": 3, "message": 4}
    pat = sql_string(pattern)
    with readable_path(path) as readable:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _pk_pg_lines AS "
            f"SELECT line_no, coalesce(line, '') AS line FROM ({lines_relation_sql(readable)}) "
            f"WHERE line_no > {int(skip_lines)}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pk_pg_class AS
        SELECT *, sum(starts::INTEGER) OVER (ORDER BY line_no ROWS UNBOUNDED PRECEDING) AS entry,
               starts AND coalesce(lead(starts) OVER (ORDER BY line_no), true) AS single
        FROM (SELECT *, regexp_matches(line, {pat}) AS starts FROM _pk_pg_lines)""")
    n_groups = groups["message"]
    names = "[" + ", ".join(f"'g{i}'" for i in range(1, n_groups + 1)) + "]"

    def grp(name: str) -> str:
        return f"nullif(parts.g{groups[name]}, '')" if name in groups else "NULL::VARCHAR"

    user_sql = grp("user") if "user" in groups else _prefix_user_sql("parts.g2")
    db_sql = grp("db") if "db" in groups else _prefix_db_sql("parts.g2")
    # Single-line entries (the vast majority) need no aggregation.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pk_pg_entries AS
        WITH g AS (
            SELECT line_no, line AS first_line, line AS raw, NULL::VARCHAR AS continuation
            FROM _pk_pg_class WHERE single
            UNION ALL
            SELECT min(line_no), arg_min(line, line_no), string_agg(line, chr(10) ORDER BY line_no),
                   string_agg(regexp_replace(line, '^\t', ''), chr(10) ORDER BY line_no) FILTER (WHERE NOT starts)
            FROM _pk_pg_class WHERE entry > 0 AND NOT single GROUP BY entry),
        p AS (SELECT *, regexp_extract(first_line, {pat}, {names}) AS parts FROM g)
        SELECT line_no, {grp('ts')} AS ts_text, {user_sql} AS user_name, {db_sql} AS database,
               {grp('session')} AS session_id, {grp('severity')} AS severity,
               {grp('message')} || coalesce(chr(10) || continuation, '') AS message, raw
        FROM p""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _pk_pg_stray AS
        SELECT line_no, line, trim(line) = '' AS skip FROM _pk_pg_class WHERE entry = 0""")


def _csv_entries(con: duckdb.DuckDBPyConnection, path: Path, skip_lines: int) -> None:
    names = ["log_time", "user_name", "database_name", "process_id", "connection_from", "session_id",
             "session_line_num", "command_tag", "session_start_time", "virtual_transaction_id",
             "transaction_id", "error_severity", "sql_state_code", "message", "detail", "hint",
             "internal_query", "internal_query_pos", "context", "query", "query_pos", "location",
             "application_name", "backend_type", "leader_pid", "query_id"]
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    with readable_path(path) as readable:
        compression = {".gz": "gzip", ".zst": "zstd"}.get(readable.suffix.lower(), "none")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _pk_pg_csv AS
            SELECT row_number() OVER () + {int(skip_lines)} AS line_no, *
            FROM read_csv({sql_string(readable)}, columns={columns}, header=false, auto_detect=false,
                          null_padding=true, parallel=false, strict_mode=false, quote='"', escape='"', delim=',',
                          skip={int(skip_lines)}, compression='{compression}', max_line_size=100000000)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _pk_pg_entries AS
        SELECT line_no, log_time AS ts_text, nullif(user_name, '') AS user_name,
               nullif(database_name, '') AS database, nullif(session_id, '') AS session_id,
               error_severity AS severity, message,
               concat_ws(',', log_time, user_name, database_name, process_id, error_severity, message) AS raw
        FROM _pk_pg_csv""")
    con.execute("CREATE OR REPLACE TEMP TABLE _pk_pg_stray AS "
                "SELECT 0::BIGINT AS line_no, '' AS line, false AS skip LIMIT 0")


def _json_entries(con: duckdb.DuckDBPyConnection, path: Path, skip_lines: int) -> None:
    with readable_path(path) as readable:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _pk_pg_lines AS "
            f"SELECT line_no, coalesce(line, '') AS line, try(CAST(line AS JSON)) AS j "
            f"FROM ({lines_relation_sql(readable)}) WHERE line_no > {int(skip_lines)}")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _pk_pg_entries AS
        SELECT line_no, coalesce(j->>'timestamp', r->>'log_time') AS ts_text,
               coalesce(j->>'user', r->>'user_name') AS user_name,
               coalesce(j->>'dbname', r->>'database_name') AS database,
               nullif(coalesce(j->>'session_id', r->>'session_id'), '') AS session_id,
               coalesce(j->>'error_severity', r->>'error_severity', '?') AS severity,
               coalesce(r->>'message', j->>'message') AS message, line AS raw
        FROM (SELECT *, j->'record' AS r FROM _pk_pg_lines) WHERE j IS NOT NULL""")
    con.execute("CREATE OR REPLACE TEMP TABLE _pk_pg_stray AS "
                "SELECT line_no, line, trim(line) = '' AS skip FROM _pk_pg_lines WHERE j IS NULL")


def _syslog_ts_sql(expr: str, year: int | None, mtime: float) -> str:
    """SQL turning a syslog timestamp into text ``_ts_sql`` reads: RFC 3339 as it is; a BSD ``Mon dd
    hh:mm:ss`` (no year, no zone) gets ``year``, or else the year that puts it at most a day after
    ``mtime`` (epoch s), so a December line in a file last written in January lands in the year before.
    An unparsable one stays as it was (its entry is then rejected on ``ts``)."""
    bsd = f"regexp_replace({expr}, ' +', ' ', 'g')"
    fmt = "'%b %d %H:%M:%S %Y'"
    if year is not None:
        guess = f"try_strptime({bsd} || ' {int(year)}', {fmt})"
    else:
        modified = f"CAST(to_timestamp({float(mtime)}) AS TIMESTAMP)"
        this_year = f"try_strptime({bsd} || ' ' || year({modified}), {fmt})"
        last_year = f"try_strptime({bsd} || ' ' || (year({modified}) - 1), {fmt})"
        guess = (f"CASE WHEN {this_year} IS NULL OR {this_year} > {modified} + INTERVAL 1 DAY "
                 f"THEN {last_year} ELSE {this_year} END")
    return (f"CASE WHEN regexp_matches({expr}, '^[0-9]{{4}}-') THEN {expr} "
            f"ELSE coalesce(strftime({guess}, '%Y-%m-%d %H:%M:%S'), {expr}) END")


def _wrapped_lines(con: duckdb.DuckDBPyConnection, fmt: str, readable: Path, skip_lines: int,
                   year: int | None, mtime: float) -> None:
    """Fill ``_pk_pg_w`` (line_no, raw, ts_text, proc, n, m, body, inherit): one row per line of a
    syslog / logplex / Cloud Logging file, unwrapped. ``proc`` names the writing process (NULL when the
    line has no wrapper), ``n``/``m`` its ``[N-M]`` sequence, ``inherit`` marks a line without one that
    continues whatever line came before it (Cloud SQL exports continuation lines that way)."""
    lines = f"SELECT line_no, coalesce(line, '') AS line FROM ({lines_relation_sql(readable)}) " \
            f"WHERE line_no > {int(skip_lines)}"
    if fmt == "syslog":
        names = "['ts', 'host', 'prog', 'pid', 'n', 'm', 'body']"
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _pk_pg_w AS
            SELECT line_no, line AS raw, {_syslog_ts_sql('p.ts', year, mtime)} AS ts_text,
                   CASE WHEN p.pid <> '' THEN p.host || ' ' || p.prog || '[' || p.pid || ']' END AS proc,
                   try_cast(p.n AS BIGINT) AS n, try_cast(p.m AS BIGINT) AS m,
                   replace(p.body, '#011', chr(9)) AS body, false AS inherit
            FROM (SELECT *, regexp_extract(line, {sql_string(_SYSLOG)}, {names}) AS p FROM ({lines}))""")
    elif fmt == "logplex":
        names = "['ts', 'app', 'color', 'n', 'm', 'body']"
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _pk_pg_w AS
            SELECT line_no, line AS raw, nullif(p.ts, '') AS ts_text,
                   CASE WHEN p.app <> '' THEN p.app || ' ' || p.color END AS proc,
                   try_cast(p.n AS BIGINT) AS n, try_cast(p.m AS BIGINT) AS m, p.body, false AS inherit
            FROM (SELECT *, regexp_extract(line, {sql_string(_LOGPLEX)}, {names}) AS p FROM ({lines}))""")
    else:
        names = "['pid', 'n', 'm', 'body']"
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _pk_pg_w AS
            SELECT line_no, line AS raw, j->>'timestamp' AS ts_text,
                   CASE WHEN p.pid <> '' THEN coalesce(j->'resource'->'labels'->>'database_id', '')
                                              || '[' || p.pid || ']' END AS proc,
                   try_cast(p.n AS BIGINT) AS n, try_cast(p.m AS BIGINT) AS m,
                   CASE WHEN p.pid <> '' THEN p.body ELSE text END AS body,
                   p.pid = '' AND text IS NOT NULL AS inherit
            FROM (SELECT *, regexp_extract(coalesce(text, ''), {sql_string(_CLOUDSQL)}, {names}) AS p
                  FROM (SELECT *, j->>'textPayload' AS text
                        FROM (SELECT *, try(CAST(line AS JSON)) AS j FROM ({lines}))))""")


def _wrapped_entries(con: duckdb.DuckDBPyConnection, fmt: str, path: Path, skip_lines: int,
                     year: int | None) -> None:
    """Fill ``_pk_pg_entries`` and ``_pk_pg_stray`` from a syslog / logplex / Cloud Logging file.

    A line starts an entry when its message has a prefix and a severity and does not begin with a tab
    (PostgreSQL indents continuation lines with one); other lines join the latest entry of the same
    process and ``[N-M]`` entry number, so interleaved processes do not mix."""
    with readable_path(path) as readable:
        _wrapped_lines(con, fmt, readable, skip_lines, year, path.stat().st_mtime)
    group = "CASE WHEN proc IS NOT NULL THEN proc || '|' || coalesce(CAST(n AS VARCHAR), '') END"
    if fmt == "cloudsql":
        group = (f"CASE WHEN inherit THEN last_value({group} IGNORE NULLS) OVER (ORDER BY line_no "
                 f"ROWS UNBOUNDED PRECEDING) ELSE {group} END")
    msg = sql_string(_WRAPPED_MESSAGE)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pk_pg_class AS
        SELECT *, sum(starts::INTEGER) OVER (PARTITION BY grp ORDER BY line_no ROWS UNBOUNDED PRECEDING) AS entry,
               starts AND coalesce(lead(starts) OVER (PARTITION BY grp ORDER BY line_no), true) AS single
        FROM (SELECT *, grp IS NOT NULL AND NOT starts_with(body, chr(9)) AND regexp_matches(body, {msg})
                        AS starts
              FROM (SELECT *, {group} AS grp FROM _pk_pg_w))""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pk_pg_entries AS
        WITH g AS (
            SELECT line_no, ts_text, body AS first_body, raw, NULL::VARCHAR AS continuation
            FROM _pk_pg_class WHERE single
            UNION ALL
            SELECT min(line_no), arg_min(ts_text, line_no), arg_min(body, line_no),
                   string_agg(raw, chr(10) ORDER BY line_no),
                   string_agg(regexp_replace(body, '^\t', ''), chr(10) ORDER BY line_no) FILTER (WHERE NOT starts)
            FROM _pk_pg_class WHERE entry > 0 AND NOT single GROUP BY grp, entry),
        p AS (SELECT *, regexp_extract(first_body, {msg}, ['prefix', 'severity', 'message']) AS parts FROM g)
        SELECT line_no, ts_text, {_prefix_user_sql('parts.prefix')} AS user_name,
               {_prefix_db_sql('parts.prefix')} AS database, NULL::VARCHAR AS session_id,
               parts.severity AS severity,
               parts.message || coalesce(chr(10) || continuation, '') AS message, raw
        FROM p""")
    # a syslog line of another program (no [N-M], no PostgreSQL message) is skipped, not rejected
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _pk_pg_stray AS
        SELECT line_no, raw AS line, trim(raw) = '' OR (proc IS NOT NULL AND n IS NULL AND NOT inherit) AS skip
        FROM _pk_pg_class WHERE coalesce(entry, 0) = 0""")


_STRAY_REASONS = {
    "syslog": "not a PostgreSQL syslog line with a message, nor a continuation of an earlier entry of its process",
    "logplex": "not a Heroku logplex PostgreSQL line, nor a continuation of an earlier entry of its process",
    "cloudsql": "not a Cloud Logging JSON record with a PostgreSQL textPayload, nor a continuation of one",
}


def load_postgres_log(con: duckdb.DuckDBPyConnection, source: Source, path: Path, skip_lines: int = 0, *,
                      fmt: str | None = None, log_line_prefix: str | None = None,
                      assume_tz: str = "UTC", year: int | None = None) -> LoadCounts:
    """Load one PostgreSQL log's timed statements into ``queries``; see the module docstring (``year``:
    for syslog timestamps, which have none)."""
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise IngestError(f"unknown PostgreSQL log format {fmt!r}; expected one of {', '.join(FORMATS)}",
                          path=path)
    install_macros(con)
    if fmt == "stderr":
        _stderr_entries(con, path, skip_lines, log_line_prefix)
    elif fmt == "csvlog":
        _csv_entries(con, path, skip_lines)
    elif fmt == "jsonlog":
        _json_entries(con, path, skip_lines)
    else:
        _wrapped_entries(con, fmt, path, skip_lines, year)
    sid = int(source.source_id)
    phases = ", ".join(sql_string(p) for p in _LOADED_PHASES)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pk_pg_parsed AS
        SELECT *,
               CASE WHEN is_duration AND regexp_extract(phase_text, '^[a-z]+( function call)?', 0) IN ({phases})
                    THEN CASE WHEN ts IS NULL THEN 'ts'
                              WHEN duration_ms IS NULL THEN 'duration'
                              WHEN stmt IS NULL THEN 'statement' END
               END AS bad_field,
               is_duration AND regexp_extract(phase_text, '^[a-z]+( function call)?', 0) IN ({phases}) AS timed
        FROM (SELECT *, {_ts_sql('ts_text', assume_tz)} AS ts,
                     severity = 'LOG' AND regexp_matches(message, {sql_string(_DURATION)}) AS is_duration,
                     regexp_extract(message, {sql_string(_DURATION)}, 2) AS phase_text,
                     try_cast(regexp_extract(message, {sql_string(_DURATION)}, 1) AS DOUBLE) AS duration_ms,
                     nullif(trim(regexp_extract(message, {sql_string(_DURATION)}, 3)), '') AS stmt
              FROM _pk_pg_entries)""")
    con.execute(f"""
        INSERT INTO queries (ts, db_system, database, user_name, kind, fingerprint, query_id, sample, calls,
                             total_ms, session_id, source_id)
        SELECT ts, 'postgresql', database, user_name, 'event', fp, pk_query_id(fp), left(trim(red, ' '), 2000),
               1, duration_ms, session_id, {sid}
        FROM (SELECT *, pk_fingerprint_redacted_pg(stmt, red) AS fp
              FROM (SELECT *, pk_redacted_full_pg(stmt) AS red FROM _pk_pg_parsed
                    WHERE timed AND bad_field IS NULL))
        ORDER BY line_no""")
    con.execute(f"""
        INSERT INTO rejects (source_id, line_no, field, reason, raw)
        SELECT {sid}, line_no, bad_field,
               CASE bad_field WHEN 'ts' THEN 'unparsable timestamp: ' || coalesce(ts_text, '(none)')
                              WHEN 'duration' THEN 'unparsable duration'
                              ELSE 'duration entry without a statement' END, left(raw, {RAW_MAX_CHARS})
        FROM _pk_pg_parsed WHERE bad_field IS NOT NULL ORDER BY line_no""")
    con.execute(f"""
        INSERT INTO rejects (source_id, line_no, field, reason, raw)
        SELECT {sid}, line_no, 'line',
               {sql_string(_STRAY_REASONS.get(fmt, 'not a ' + fmt + ' log entry (no timestamp and severity '
                                                         'where expected)'))},
               left(line, {RAW_MAX_CHARS})
        FROM _pk_pg_stray WHERE NOT skip ORDER BY line_no""")
    row = con.execute("""
        SELECT (SELECT count(*) FROM _pk_pg_parsed),
               (SELECT count(*) FROM _pk_pg_parsed WHERE timed AND bad_field IS NULL),
               (SELECT count(*) FROM _pk_pg_parsed WHERE bad_field IS NOT NULL),
               (SELECT count(*) FROM _pk_pg_stray WHERE NOT skip),
               (SELECT count(*) FROM _pk_pg_stray WHERE skip)""").fetchone()
    assert row is not None
    entries, loaded, bad, stray, blank = (int(v) for v in row)
    for table in ("_pk_pg_lines", "_pk_pg_w", "_pk_pg_class", "_pk_pg_entries", "_pk_pg_stray", "_pk_pg_csv",
                  "_pk_pg_parsed"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return LoadCounts(lines_in=entries + stray + blank, rows_loaded=loaded, rows_rejected=bad + stray,
                      rows_skipped=entries - loaded - bad + blank, fmt=fmt, formats_tried=(fmt,))


def ingest_postgres_log(con: duckdb.DuckDBPyConnection, path: str | Path, *, fmt: str | None = None,
                        log_line_prefix: str | None = None, assume_tz: str = "UTC", year: int | None = None,
                        replace: bool = False) -> IngestSummary:
    """Ingest one PostgreSQL server log exactly once into ``queries`` (``year``: for syslog timestamps;
    default: the file's modification year, see :func:`load_postgres_log`)."""
    def loader(c: duckdb.DuckDBPyConnection, source: Source, p: Path, skip: int) -> LoadCounts:
        return load_postgres_log(c, source, p, skip, fmt=fmt, log_line_prefix=log_line_prefix,
                                 assume_tz=assume_tz, year=year)

    options = given_options(format=fmt, log_line_prefix=log_line_prefix, assume_tz=assume_tz, year=year)
    return ingest_file(con, KIND_LOG, path, loader, replace=replace, options=options)


# ------------------------------------------------------------------------------------------ CLI

def register_ingest(subparsers: argparse._SubParsersAction) -> None:
    """Add ``perfkit ingest postgres-log``."""
    log = add_file_ingest_parser(
        subparsers, KIND_LOG,
        help="PostgreSQL server logs (stderr, csvlog, jsonlog, syslog, logplex, cloudsql) → queries",
        description="Load PostgreSQL logs written with log_min_duration_statement: every 'duration: ... "
                    "statement/execute' entry becomes a query event with its fingerprint.")
    log.add_argument("--format", choices=FORMATS, default=None, help="log format (default: detected)")
    log.add_argument("--log-line-prefix", default=None,
                     help="the server's log_line_prefix, e.g. '%%m [%%p] %%q%%u@%%d ' (stderr logs)")
    log.add_argument("--assume-tz", default="UTC", help="zone for timestamps written without one")
    log.add_argument("--year", type=int, default=None,
                     help="year of syslog timestamps (they have none; default: the file's modification year, "
                          "or the year before for dates more than a day after it)")
    add_common_args(log)

    def run_log(args: argparse.Namespace) -> int:
        return run_ingest_cli(args, lambda con, p: ingest_postgres_log(
            con, p, fmt=args.format, log_line_prefix=args.log_line_prefix,  # type: ignore[arg-type]
            assume_tz=args.assume_tz, year=args.year, replace=args.replace))

    log.set_defaults(func=run_log)
