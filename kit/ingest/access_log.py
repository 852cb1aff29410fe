"""Web server, proxy and CDN access logs → ``requests`` (parsed inside DuckDB, vectorized).

Formats (``--format``; detected from a sample of lines when absent): ``common``, ``combined``,
``combined_kv``, ``nginx-json``, ``w3c``, ``squid`` and any NGINX ``log_format`` (``--log-format``); the
catalogue, the ``log_format`` parser and detection are :mod:`kit.ingest.log_formats`.

Column rules: timestamps become UTC ``TIMESTAMPTZ``; ``$request_time`` (s) → ``latency_ms``;
``$upstream_response_time`` → ``upstream_ms`` as the SUM of its comma/colon-separated parts (the total
time spent waiting on upstreams, retries included; ``-`` parts count as nothing); Squid elapsed and IIS
``time-taken`` are already milliseconds, CloudFront ``time-taken`` is seconds. ``cache_status`` comes
from ``$upstream_cache_status`` (upper-cased) or the Squid result code (see ``SQUID_CACHE_SQL``).
``path`` is the request target without its query string; ``query`` is redacted
(:func:`kit.ingest.routes.redact_query_sql`); ``route`` is templated; the client address is stored as a
salted hash only. ``bytes_sent`` is the body size (``$body_bytes_sent``; ``-`` = 0). ``service`` is
never NULL: ``--service``, else the row's virtual host (``host``, lower-cased), else the file's name without
compression, rotation and ``.log`` suffixes; how it was chosen is recorded in ``ingest_log.options``
(:mod:`kit.ingest.services`).

Every line becomes a ``requests`` row, a ``rejects`` row (field and reason named) or — blank lines and
W3C ``#`` directives — a skipped line, so ``lines_in = rows_loaded + rows_rejected + rows_skipped``.

Two paths give the same rows (tested on the shared logs and with hypothesis):

- **fast** (common/combined/combined_kv, plain files without carriage returns or a BOM): a compiled
  reader (:mod:`kit.ingest.clf_fast`, numba, parallel over lines) turns each chunk of lines into typed
  Arrow columns, route templates included, while DuckDB stores the previous chunk; one INSERT per chunk
  stores them, hashing only the clients new to the file (the reader redacts ASCII query strings
  itself). The reader is strict; every line it does not take (blank, malformed, escaped quotes, invalid
  UTF-8, absolute URIs, exotic values) is kept with its line number and goes through the general path.
- **general**: every line numbered in a temporary table, then matched by the format's RE2 regex (with a
  split-on-quotes shortcut for the CLF family). Invalid UTF-8 is read with U+FFFD replacements.
"""

from __future__ import annotations

import argparse
import codecs
import functools
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kit.ingest.core import (
    COMPRESSED_SUFFIXES,
    RAW_MAX_CHARS,
    FileDigest,
    IngestError,
    IngestSummary,
    LoadCounts,
    add_common_args,
    add_file_ingest_parser,
    first_lines,
    ingest_file,
    lines_table,
    readable_path,
    run_ingest_cli,
    sql_string,
)
from kit.ingest.log_formats import (
    AUTO_FORMATS,
    FORMAT_NAMES,
    LogFormat,
    detect_format,
    get_format,
    json_keys_from_sample,
    sample_lines,
)
from kit.ingest.parquet import DayFiles, direct_directory, scratch_warehouse
from kit.ingest.routes import RouteRule, client_hash_sql, parse_route_rule, redact_query_sql, route_sql
from kit.ingest.services import record_service_naming, service_sql
from kit.parquet_warehouse import salt_file as parquet_salt_file
from kit.warehouse import Source

if TYPE_CHECKING:  # numba: clf_fast is imported when an access log is read, not for every CLI call
    from kit.ingest.clf_fast import ClfChunk

__all__ = [
    "ingest_access_log",
    "load_access_log",
    "make_loader",
    "register_ingest",
    "warehouse_salt",
]

KIND = "access-log"
T = TypeVar("T")
ServiceSql = Callable[[str | None], str]   # SQL for the service column, given SQL for the host (or None)
CLF_TIME = "%d/%b/%Y:%H:%M:%S %z"


# ---------------------------------------------------------------------------------------------- SQL

def _v(expr: str) -> str:
    """NULL for missing, empty or '-' values."""
    return f"nullif(nullif({expr}, ''), '-')"


# The standard NGINX tail ' rt=.. urt=.. ucs=..' split on spaces into kvl (both CLF fast paths read it).
_KV_STD = ("len(kvl) = 4 AND starts_with(kvl[2], 'rt=') AND starts_with(kvl[3], 'urt=') "
           "AND starts_with(kvl[4], 'ucs=')")
_FAST_PRE = r"\S+ \S+ \S+ \[[^\]]*\] "    # part 1 of a well-formed CLF line (before the first quote)
_FAST_MID = r" \d{3} (?:\d+|-)"              # part 3: status and bytes


def _extract_sql(fmt: LogFormat, lines_sql: str, skip_lines: int, sample: Sequence[str]) -> str:
    """SQL giving (line_no, line, ok, client, time, request, method, target, path, query, status,
    bytes, rt, urt, ucs, host, user_agent, content_type, code, skip) — all raw VARCHAR."""
    canon = ("client", "time", "request", "method", "target", "path", "query", "status", "bytes",
             "rt", "urt", "ucs", "host", "user_agent", "content_type", "code", "kv")
    if fmt.kind == "regex":
        groups = list(fmt.groups)
        slow = (f"CASE WHEN regexp_full_match(line, {sql_string(fmt.check)}) "
                f"THEN regexp_extract(line, {sql_string(fmt.regex)}, {groups}) END")
        if fmt.fast != "clf":
            select = ", ".join(f"m.{c} AS {c}" if c in groups else f"NULL AS {c}" for c in canon)
            return (f"SELECT line_no, line, m IS NOT NULL AS ok, {select}, (line IS NULL OR trim(line) = '') AS skip "
                    f"FROM (SELECT line_no, line, {slow} AS m FROM ({lines_sql}) WHERE line_no > {skip_lines})")
        # Fast path for the CLF family: split the line on '"' once; a line whose parts have the
        # well-formed shape (checked by short DFA matches) is read from the parts, any other line goes
        # through the full capturing regex (which also accepts backslash-escaped quotes).
        n = fmt.fast_parts
        shape = (f"len(p) = {n} AND regexp_full_match(p[1], {sql_string(_FAST_PRE)}) "
                 f"AND regexp_full_match(p[3], {sql_string(_FAST_MID + (' ' if n > 3 else ''))})")
        if n > 3:
            shape += f" AND p[5] = ' ' AND regexp_full_match(p[7], {sql_string(fmt.fast_tail)})"
        kv_std = _KV_STD
        fast_cols = {
            "client": "pw[1]",
            "time": "substr(p[1], off + 2, length(p[1]) - off - 3)",
            "request": "p[2]",
            "status": "mw[2]",
            "bytes": "mw[3]",
        }
        if "user_agent" in groups:
            fast_cols["user_agent"] = "p[6]"
        if "kv" in groups:
            fast_cols["kv"] = f"CASE WHEN NOT ({kv_std}) THEN p[7] END"
            fast_cols["rt"] = f"CASE WHEN {kv_std} THEN substr(kvl[2], 4) END"
            fast_cols["urt"] = f"CASE WHEN {kv_std} THEN substr(kvl[3], 5) END"
            fast_cols["ucs"] = f"CASE WHEN {kv_std} THEN substr(kvl[4], 5) END"
        cols: list[str] = []
        for c in canon:
            slow_col = f"m.{c}" if c in groups else "NULL"
            if c in fast_cols:
                cols.append(f"CASE WHEN fast_ok THEN {fast_cols[c]} ELSE {slow_col} END AS {c}")
            else:
                cols.append(f"{slow_col} AS {c}")
        kvl = "string_split(p[7], ' ')" if "kv" in groups else "NULL::VARCHAR[]"
        inner = (
            f"SELECT line_no, line, fast_ok, p, pw, mw, kvl, "
            f"length(pw[1]) + length(pw[2]) + length(pw[3]) + 3 AS off, "
            f"CASE WHEN NOT fast_ok THEN {slow} END AS m FROM ("
            f"SELECT line_no, line, fast_ok, p, "
            f"CASE WHEN fast_ok THEN string_split(p[1], ' ') END AS pw, "
            f"CASE WHEN fast_ok THEN string_split(p[3], ' ') END AS mw, "
            f"CASE WHEN fast_ok THEN {kvl} END AS kvl FROM ("
            f"SELECT line_no, line, p, coalesce({shape}, false) AS fast_ok FROM ("
            f"SELECT line_no, line, string_split(line, '\"') AS p "
            f"FROM ({lines_sql}) WHERE line_no > {skip_lines})))")
        return (f"SELECT line_no, line, (fast_ok OR m IS NOT NULL) AS ok, {', '.join(cols)}, "
                f"(line IS NULL OR trim(line) = '') AS skip FROM ({inner})")
    if fmt.kind == "json":
        keys = fmt.json_keys or json_keys_from_sample(sample)
        key_of = dict(keys)
        paths = [f'$."{key_of[c]}"' for c in canon if c in key_of]
        index = {c: i + 1 for i, c in enumerate(c for c in canon if c in key_of)}
        json_cols = [f"CASE WHEN ok THEN j[{index[c]}] END AS {c}" if c in index else f"NULL AS {c}" for c in canon]
        paths_sql = "[" + ", ".join(sql_string(p) for p in paths) + "]" if paths else "['$.x']"
        return (f"SELECT line_no, line, ok, {', '.join(json_cols)}, (line IS NULL OR trim(line) = '') AS skip "
                f"FROM (SELECT line_no, line, ok, CASE WHEN ok THEN json_extract_string(line, {paths_sql}) END AS j "
                f"FROM (SELECT line_no, line, CASE WHEN starts_with(ltrim(line), '{{') AND json_valid(line) "
                f"THEN json_type(line) = 'OBJECT' ELSE false END AS ok FROM ({lines_sql})) "
                f"WHERE line_no > {skip_lines})")
    # w3c: each data line is read with the field list of the last '#Fields:' line before it
    w3c = {
        "client": "c-ip", "method": "cs-method", "path": "cs-uri-stem", "query": "cs-uri-query",
        "status": "sc-status", "bytes": "sc-bytes", "rt": "time-taken", "user_agent": "cs(User-Agent)",
        "host": "cs-host", "ucs": "x-edge-result-type", "content_type": "sc-content-type",
    }

    def val(name: str) -> str:
        return f"parts[list_position(fields, {sql_string(name)})]"

    w3c_cols: list[str] = []
    for c in canon:
        if c == "time":
            w3c_cols.append(f"CASE WHEN ok THEN {val('date')} || ' ' || {val('time')} END AS time")
        elif c == "host":
            w3c_cols.append(f"CASE WHEN ok THEN coalesce({val('cs-host')}, {val('cs(Host)')}) END AS host")
        elif c in w3c:
            w3c_cols.append(f"CASE WHEN ok THEN {val(w3c[c])} END AS {c}")
        elif c == "code":
            w3c_cols.append("CASE WHEN ok AND list_contains(fields, 'x-edge-location') THEN 'cloudfront' END AS code")
        else:
            w3c_cols.append(f"NULL AS {c}")
    return (
        f"SELECT line_no, line, ok, {', '.join(w3c_cols)}, skip, fields IS NULL AS no_header, "
        f"len(parts) AS n_parts, len(fields) AS n_fields FROM ("
        f"SELECT *, NOT skip AND fields IS NOT NULL AND len(parts) = len(fields) AS ok FROM ("
        f"SELECT line_no, line, skip, fields, "
        f"CASE WHEN NOT skip THEN string_split(line, CASE WHEN contains(line, chr(9)) THEN chr(9) ELSE ' ' END) "
        f"END AS parts FROM ("
        f"SELECT line_no, line, (line IS NULL OR trim(line) = '' OR starts_with(line, '#')) AS skip, "
        f"last_value(CASE WHEN starts_with(line, '#Fields:') THEN "
        f"string_split(trim(regexp_replace(substr(line, 9), '\\s+', ' ', 'g')), ' ') END IGNORE NULLS) "
        f"OVER (ORDER BY line_no ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS fields "
        f"FROM ({lines_sql})) WHERE line_no > {skip_lines}))")


SQUID_CACHE_SQL = """CASE
    WHEN code IS NULL THEN NULL
    WHEN contains(code, 'STALE') THEN 'STALE'
    WHEN contains(code, 'REFRESH_UNMODIFIED') OR contains(code, 'REFRESH_IGNORED') THEN 'REVALIDATED'
    WHEN contains(code, 'REFRESH') THEN 'EXPIRED'
    WHEN contains(code, 'HIT') THEN 'HIT'
    WHEN contains(code, 'MISS') THEN 'MISS'
    WHEN contains(code, 'TUNNEL') OR contains(code, 'DENIED') THEN 'BYPASS'
    ELSE NULL END"""
# CloudFront x-edge-result-type → cache status
EDGE_CACHE_SQL = """CASE lower(ucs) WHEN 'hit' THEN 'HIT' WHEN 'refreshhit' THEN 'REVALIDATED'
    WHEN 'miss' THEN 'MISS' WHEN 'limitexceeded' THEN NULL WHEN 'capacityexceeded' THEN NULL
    WHEN 'error' THEN NULL WHEN 'redirect' THEN NULL ELSE upper(ucs) END"""


def _time_sql(fmt: LogFormat) -> str:
    clf = f"try_strptime(t, {sql_string(CLF_TIME)})"
    iso = "try_cast(t AS TIMESTAMPTZ)"
    epoch = ("CASE WHEN try_cast(t AS DOUBLE) BETWEEN 0 AND 1e11 "
             "THEN to_timestamp(try_cast(t AS DOUBLE)) END")
    return {"clf": clf, "iso": iso, "epoch": epoch, "w3c": "try_cast(t AS TIMESTAMP)::TIMESTAMPTZ",
            "auto": f"coalesce({clf}, {iso}, {epoch})"}[fmt.time_kind]


def _seconds_list_sql(col: str) -> str:
    """SQL: the sum of the numbers in a comma/colon-separated list of upstream times (NULL if none)."""
    return (f"CASE WHEN {col} IS NULL THEN NULL "
            f"WHEN try_cast({col} AS DOUBLE) IS NOT NULL THEN try_cast({col} AS DOUBLE) "
            f"ELSE list_sum(list_transform(regexp_split_to_array({col}, '\\s*[,:]\\s*'), "
            f"lambda x: try_cast(nullif(x, '-') AS DOUBLE))) END")


def _typed_sql(fmt: LogFormat, extract_sql: str, salt: str, service_of: ServiceSql,
               rules: Sequence[RouteRule]) -> str:
    """SQL over the extracted strings: typed columns plus reject_field / reject_reason. ``service_of``
    gives the service column from the host column (:func:`kit.ingest.services.service_sql`)."""
    kv_rt = "regexp_extract(kv, '(?:^|\\s)(?:rt|request_time)=\"?([^\\s\"]*)', 1)"
    kv_urt = ("regexp_extract(kv, '(?:^|\\s)(?:urt|upstream_response_time)=\"?"
              "(-|[0-9.]+(?:(?:, | : )(?:[0-9.]+|-))*)', 1)")
    kv_ucs = "regexp_extract(kv, '(?:^|\\s)(?:ucs|upstream_cache_status)=\"?([^\\s\"]*)', 1)"
    cache = (SQUID_CACHE_SQL if fmt.name == "squid"
             else f"CASE WHEN code = 'cloudfront' THEN ({EDGE_CACHE_SQL}) ELSE upper(ucs) END")
    rt_scale = fmt.latency_ms_per_unit
    stage1 = (
        f"SELECT line_no, line, ok, skip, time AS t, {_v('client')} AS client, "
        f"{_v('status')} AS status_s, CASE WHEN bytes = '-' THEN '0' ELSE nullif(bytes, '') END AS bytes_s, "
        f"{_v('coalesce(rt, ' + kv_rt + ')')} AS rt_s, "
        f"{_v('coalesce(urt, ' + kv_urt + ')')} AS urt_s, "
        f"{_v('coalesce(ucs, ' + kv_ucs + ')')} AS ucs, code, "
        f"{_v('host')} AS host, {_v('user_agent')} AS user_agent, {_v('content_type')} AS content_type, "
        f"coalesce({_v('method')}, CASE WHEN len(rp) BETWEEN 2 AND 3 THEN rp[1] END) AS method, "
        f"coalesce({_v('target')}, CASE WHEN len(rp) BETWEEN 2 AND 3 THEN rp[2] END) AS target, "
        f"{_v('path')} AS path0, {_v('query')} AS query0"
        f"{', no_header, n_parts, n_fields' if fmt.kind == 'w3c' else ''} "
        f"FROM (SELECT *, CASE WHEN request IS NOT NULL THEN string_split(request, ' ') END AS rp "
        f"FROM ({extract_sql}))")
    if fmt.kind == "w3c":
        rt_expr = "CASE WHEN code = 'cloudfront' THEN rt * 1000.0 ELSE rt END"
    else:
        rt_expr = f"rt * {rt_scale!r}"
    absolute = "regexp_matches(target, '^[A-Za-z][A-Za-z0-9+._-]*://')"   # absolute-form target (a proxy's)
    host_from_uri = "regexp_extract(target, '^[A-Za-z][A-Za-z0-9+._-]*://([^/?#]*)', 1)"
    path_from_uri = "regexp_extract(target, '^[A-Za-z][A-Za-z0-9+._-]*://[^/?#]*([^?#]*)', 1)"
    stage2 = (
        f"SELECT *, {_time_sql(fmt)} AS ts, try_cast(status_s AS SMALLINT) AS status, "
        f"try_cast(bytes_s AS BIGINT) AS bytes_sent, "
        f"try_cast(rt_s AS DOUBLE) AS rt, {_seconds_list_sql('urt_s')} AS urt, "
        f"CASE WHEN path0 IS NOT NULL THEN path0 "
        f"WHEN target IS NULL THEN NULL "
        f"WHEN {absolute} THEN coalesce(nullif({path_from_uri}, ''), '/') "
        f"ELSE split_part(target, '?', 1) END AS path, "
        f"CASE WHEN query0 IS NOT NULL THEN query0 WHEN contains(target, '?') "
        f"THEN nullif(substr(target, strpos(target, '?') + 1), '') END AS query_raw, "
        f"coalesce(host, CASE WHEN {absolute} THEN nullif({host_from_uri}, '') END) AS host2 "
        f"FROM ({stage1})")
    reason = (
        "CASE WHEN skip THEN NULL "
        "WHEN NOT ok THEN 'line' "
        "WHEN ts IS NULL THEN 'time' "
        "WHEN status_s IS NOT NULL AND status IS NULL THEN 'status' "
        "WHEN bytes_s IS NOT NULL AND bytes_sent IS NULL THEN 'bytes' "
        "WHEN rt_s IS NOT NULL AND rt IS NULL THEN 'request_time' "
        "WHEN urt_s IS NOT NULL AND urt IS NULL THEN 'upstream_response_time' END")
    return (
        f"SELECT line_no, line, skip, ts, {service_of('host2')}::VARCHAR AS service, "
        f"host2 AS host, method, path, query_raw, status, {rt_expr} AS latency_ms, "
        f"urt * {fmt.upstream_ms_per_unit!r} AS upstream_ms, bytes_sent, content_type, "
        f"({cache}) AS cache_status, client, user_agent, {reason} AS reject_field, t, status_s, bytes_s, "
        f"rt_s, urt_s{', no_header, n_parts, n_fields' if fmt.kind == 'w3c' else ''} FROM ({stage2})")


def _reason_sql(fmt: LogFormat) -> str:
    def show(col: str) -> str:
        return f"coalesce('''' || left({col}, 80) || '''', 'nothing')"

    not_matched = f"'does not match the {fmt.name} format'"
    if fmt.kind == "w3c":
        not_matched = ("CASE WHEN no_header THEN 'no #Fields: header before this line' ELSE "
                       "'has ' || n_parts || ' fields, the #Fields: header names ' || n_fields END")
    if fmt.kind == "json":
        not_matched = "'not a JSON object'"
    return (
        f"CASE reject_field WHEN 'line' THEN {not_matched} "
        f"WHEN 'time' THEN 'unparsable time ' || {show('t')} "
        f"WHEN 'status' THEN 'unparsable status ' || {show('status_s')} "
        f"WHEN 'bytes' THEN 'unparsable bytes ' || {show('bytes_s')} "
        f"WHEN 'request_time' THEN 'unparsable request time ' || {show('rt_s')} "
        f"WHEN 'upstream_response_time' THEN 'unparsable upstream time ' || {show('urt_s')} END")


# ---------------------------------------------------------------------------------------------- salt

_MEMORY_SALTS: dict[int, str] = {}


def warehouse_salt(con: duckdb.DuckDBPyConnection) -> str:
    """The warehouse's secret salt for client hashes: ``$PERFKIT_SALT``, else a random salt kept in
    ``<warehouse file>.salt`` (created on first use, mode 600) or a Parquet warehouse's
    ``perfkit-warehouse.salt``, else (in-memory warehouse) one per connection. The salt is never written
    into the warehouse."""
    env = os.environ.get("PERFKIT_SALT")
    if env:
        return env
    parquet_root = scratch_warehouse(con)
    if parquet_root is not None:  # an ingest into a Parquet warehouse: the salt its creation stored
        return parquet_salt_file(parquet_root).read_text().strip()
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    db_path = row[0] if row else None
    if not db_path:
        return _MEMORY_SALTS.setdefault(id(con), secrets.token_hex(16))
    salt_file = Path(f"{db_path}.salt")
    if salt_file.exists():
        return salt_file.read_text().strip()
    value = secrets.token_hex(16)
    fd = os.open(salt_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


# ---------------------------------------------------------------------------------------------- loading

# ``requests`` rows as Arrow, with the warehouse schema's types
_REQUESTS_ARROW = pa.schema([
    ("ts", pa.timestamp("us", tz="UTC")), ("service", pa.large_string()), ("host", pa.large_string()),
    ("method", pa.large_string()), ("route", pa.large_string()), ("path", pa.large_string()),
    ("query", pa.large_string()), ("status", pa.int16()), ("latency_ms", pa.float64()),
    ("upstream_ms", pa.float64()), ("bytes_sent", pa.int64()), ("content_type", pa.large_string()),
    ("cache_status", pa.large_string()), ("client_hash", pa.large_string()),
    ("user_agent", pa.large_string()), ("source_id", pa.int64())])
_REQUEST_COLUMNS = ", ".join(_REQUESTS_ARROW.names)


def _insert_sql(typed: str, reason: str, sid: int, salt: str, route_rules: Sequence[RouteRule]) -> str:
    """One pass over ``typed`` straight into ``requests``: good rows with this source's id; rejected and
    skipped lines as staging rows under the NEGATIVE source id, carrying line number (bytes_sent), field
    (method), reason (query) and raw text (path). Callers move them to ``rejects`` (or re-read them) and
    delete them from ``requests`` in the same transaction, so no reader ever sees them (a temp table or
    a second parse would cost more than the whole parse)."""
    return (
        f"INSERT INTO requests ({_REQUEST_COLUMNS}) "
        "SELECT CASE WHEN bad THEN TIMESTAMPTZ '1970-01-01 00:00:00+00' ELSE ts END, "
        "CASE WHEN NOT bad THEN service END, CASE WHEN NOT bad THEN host END, "
        "CASE WHEN skip THEN '-skip-' WHEN bad THEN reject_field ELSE method END, "
        f"CASE WHEN NOT bad THEN {route_sql('path', route_rules)} END, "
        f"CASE WHEN bad THEN left(line, {RAW_MAX_CHARS}) ELSE path END, "
        f"CASE WHEN bad THEN {reason} ELSE {redact_query_sql('query_raw')} END, "
        "CASE WHEN NOT bad THEN status END, CASE WHEN NOT bad THEN latency_ms END, "
        "CASE WHEN NOT bad THEN upstream_ms END, CASE WHEN bad THEN line_no ELSE bytes_sent END, "
        "CASE WHEN NOT bad THEN content_type END, CASE WHEN NOT bad THEN cache_status END, "
        f"CASE WHEN NOT bad THEN {client_hash_sql('client', salt)} END, "
        "CASE WHEN NOT bad THEN user_agent END, "
        f"CASE WHEN bad THEN {-sid} ELSE {sid} END "
        f"FROM (SELECT *, skip OR reject_field IS NOT NULL AS bad FROM ({typed}))")


def _load_general(con: duckdb.DuckDBPyConnection, fmt: LogFormat, sid: int, lines_sql: str, skip_lines: int,
                  sample: Sequence[str], salt: str, service_of: ServiceSql,
                  route_rules: Sequence[RouteRule]) -> tuple[int, int, int]:
    """The general path over a ``(line_no, line)`` relation: rows into ``requests``, rejects into
    ``rejects``. Returns (lines in, rejected, skipped)."""
    typed = _typed_sql(fmt, _extract_sql(fmt, lines_sql, skip_lines, sample), salt, service_of, route_rules)
    row = con.execute(_insert_sql(typed, _reason_sql(fmt), sid, salt, route_rules)).fetchone()
    lines_in = int(row[0]) if row else 0
    counts = con.execute(
        "SELECT count(*) FILTER (WHERE method = '-skip-'), count(*) FILTER (WHERE method <> '-skip-') "
        "FROM requests WHERE source_id = ?", [-sid]).fetchone()
    assert counts is not None
    skipped, rejected = int(counts[0]), int(counts[1])
    con.execute("INSERT INTO rejects (source_id, line_no, field, reason, raw) "
                "SELECT ?, bytes_sent, method, query, path FROM requests "
                "WHERE source_id = ? AND method <> '-skip-' ORDER BY bytes_sent", [sid, -sid])
    con.execute("DELETE FROM requests WHERE source_id = ?", [-sid])
    return lines_in, rejected, skipped




def _fast_route_sql(route_rules: Sequence[RouteRule]) -> str:
    """SQL of a fast-path row's route: the user's rules over the compiled built-in templating."""
    return route_sql("path", route_rules, builtin="route") if route_rules else "route"


# the query strings the reader left for DuckDB's regex (non-ASCII ones) redacted
_FAST_QUERY_SQL = f"CASE WHEN query_regex THEN {redact_query_sql('query')} ELSE query END"


def _fast_insert_sql(table: str, fmt: LogFormat, sid: int, salt: str, service_of: ServiceSql,
                     route_rules: Sequence[RouteRule]) -> str:
    """SQL moving one chunk table of :func:`kit.ingest.clf_fast.read_clf_chunks` into ``requests``: the
    route (user rules over the compiled built-in templating), the redaction of the non-ASCII query
    strings the reader left (``query_regex``) and the service are added here (the reader takes no line
    with a host, so the service is the option or the file's); the client hashes come with the chunk
    (:class:`_ClientHashes`). :func:`_fast_rows` is the same in Arrow (each the faster for its consumer:
    DuckDB computes these columns in its own threads; the Parquet writer takes Arrow; a test holds them
    equal)."""
    return (
        f"INSERT INTO requests ({_REQUEST_COLUMNS}) "
        f"SELECT ts, {service_of(None)}, NULL, method, {_fast_route_sql(route_rules)}, path, {_FAST_QUERY_SQL}, "
        f"status, latency_s * {fmt.latency_ms_per_unit!r}, "
        f"upstream_s * {fmt.upstream_ms_per_unit!r}, bytes_sent, NULL, cache_status, "
        f"client_hash, user_agent, {int(sid)} FROM {table}")


# the columns whose row-group min/max a reader can prune by: the time (rows come in time order) and the
# columns constant within a file. The others (route, status, latency...) spread over every row group of a log,
# so their min/max never prune; computing them cost 0.06 of the writer's 0.84 CPU-s on the bench's 2M lines
_STATISTICS = ("ts", "service", "host", "source_id")
# columns written without a dictionary, in this encoding. The clients' hashes are mostly distinct within a row
# group (2M lines: writing them 0.18 -> 0.09 CPU-s, the column 14 % smaller, DuckDB reads it 1.4x as fast);
# times grow by small steps (deltas); paths and sizes mostly overflow a dictionary page and fall back to
# PLAIN anyway. On the bench's 2M lines these three cut writing from 0.94-1.00 to 0.85-0.91 CPU-s, the file
# 3.8 % smaller; DuckDB reads it as fast
_ENCODINGS = {"client_hash": "DELTA_LENGTH_BYTE_ARRAY", "ts": "DELTA_BINARY_PACKED", "path": "PLAIN",
              "bytes_sent": "PLAIN"}


# chunk size when the rows are stored by DuckDB: it inserts fewer, larger chunks faster (bench_ingest's 2M lines
# in 16 MB chunks, the reader's default: 490k-508k lines/s instead of 590k-630k)
_INSERT_CHUNK_BYTES = 48 << 20


def _fast_rows(con: duckdb.DuckDBPyConnection, chunk: pa.Table, name: str, fmt: LogFormat, sid: int, service: str,
               route_rules: Sequence[RouteRule]) -> pa.Table:
    """The ``requests`` rows of one chunk table (with its client hashes) as Arrow: what
    :func:`_fast_insert_sql` stores, for a Parquet warehouse's loader to write itself. DuckDB computes
    the route and query only when user route rules or non-ASCII query strings need its regexes."""
    n = chunk.num_rows
    route, query = chunk["route"], chunk["query"]
    if route_rules or pc.any(chunk["query_regex"]).as_py():
        con.register(name, chunk)
        try:
            fixed = con.sql(f"SELECT {_fast_route_sql(route_rules)} AS route, {_FAST_QUERY_SQL} AS query "
                            f"FROM {name}").to_arrow_table()
        finally:
            con.unregister(name)
        route, query = fixed["route"], fixed["query"]
    text_nulls = pa.nulls(n, pa.large_string())
    return pa.Table.from_arrays([
        chunk["ts"], pa.repeat(service, n).cast(pa.large_string()), text_nulls, chunk["method"], route,
        chunk["path"], query, chunk["status"], pc.multiply(chunk["latency_s"], float(fmt.latency_ms_per_unit)),
        pc.multiply(chunk["upstream_s"], float(fmt.upstream_ms_per_unit)), chunk["bytes_sent"], text_nulls,
        chunk["cache_status"], chunk["client_hash"], chunk["user_agent"], pa.repeat(int(sid), n).cast(pa.int64()),
    ], names=_REQUESTS_ARROW.names).cast(_REQUESTS_ARROW)


class _ClientHashes:
    """The salted hashes (:func:`kit.ingest.routes.client_hash_sql`) of a file's client addresses, by
    the reader's client code: each address is hashed once per file, not once per row."""

    def __init__(self, con: duckdb.DuckDBPyConnection, salt: str, name: str) -> None:
        self.con, self.salt, self.name = con, salt, name
        self.hashes = pa.array([], type=pa.string())

    def add_to(self, chunk: ClfChunk) -> pa.Table:
        """The chunk's table with its ``client_hash`` column (the new addresses hashed first)."""
        if len(chunk.new_clients):
            self.con.register(self.name, pa.table({"i": pa.array(np.arange(len(chunk.new_clients))),
                                                   "c": chunk.new_clients}))
            try:
                new = self.con.sql(f"SELECT {client_hash_sql('c', self.salt)}::VARCHAR AS h FROM {self.name} "
                                   "ORDER BY i").to_arrow_table()["h"]
            finally:
                self.con.unregister(self.name)
            self.hashes = pa.concat_arrays([self.hashes, *new.cast(pa.string()).chunks])
        # a dictionary array over the file's hashes: no per-row copy of the hash strings (DuckDB reads it
        # as a dictionary vector)
        codes = chunk.table["client_code"].combine_chunks().cast(pa.int32())
        return chunk.table.append_column("client_hash", pa.DictionaryArray.from_arrays(codes, self.hashes))


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
    """The items of ``items``, the next one produced in a background thread while the caller works on
    the current one (parsing chunk k+1 while DuckDB stores chunk k; both release the GIL)."""
    with ThreadPoolExecutor(1, thread_name_prefix="perfkit-read-ahead") as pool:
        ahead = pool.submit(next, items, None)
        while (item := ahead.result()) is not None:
            ahead = pool.submit(next, items, None)
            yield item


def _load_fast(con: duckdb.DuckDBPyConnection, fmt: LogFormat, sid: int, path: Path, skip_lines: int,
               sample: Sequence[str], salt: str, service_of: ServiceSql,
               route_rules: Sequence[RouteRule]) -> tuple[int, int, int, FileDigest | None, dict[str, int]] | None:
    """The fast path for common/combined/combined_kv: the compiled reader (:mod:`kit.ingest.clf_fast`)
    turns each chunk of lines into typed Arrow columns that one INSERT stores — or, in a Parquet
    warehouse's ingest, that :class:`kit.ingest.parquet.DayFiles` writes as Parquet (storing them in
    the scratch DuckDB and copying them out would cost more than parsing them); the lines it does not
    take are collected with their line numbers in a temp table and read by the general path. Returns
    (lines in, rejected, skipped, the sha256 of the whole file taken while reading it — None for a
    compressed file or a grown log's new lines, the rows written as Parquet by service), or None, with nothing
    inserted, when the file has carriage returns or a byte order mark (which the general path strips)."""
    from kit.ingest import clf_fast  # numba: imported when an access log is read, not for every CLI call

    chunk_table, others = f"_al_chunk_{sid}", f"_al_others_{sid}"
    insert = _fast_insert_sql(chunk_table, fmt, sid, salt, service_of, route_rules)
    client_hashes = _ClientHashes(con, salt, f"_al_clients_{sid}")
    digest = FileDigest() if not skip_lines and path.suffix.lower() not in COMPRESSED_SUFFIXES else None
    direct = direct_directory(con)      # a Parquet warehouse: its rows are written as Parquet right away
    writer = DayFiles(direct, "requests", sid, _REQUESTS_ARROW, statistics=_STATISTICS,
                                      encodings=_ENCODINGS) if direct is not None else None
    service = con.execute(f"SELECT {service_of(None)}").fetchone()[0]  # type: ignore[index]
    con.execute(f"CREATE TEMP TABLE {others} (line_no BIGINT, line VARCHAR)")
    try:
        lines = n_others = 0
        for chunk in _read_ahead(clf_fast.read_clf_chunks(path, clf_fast.KIND_BY_FORMAT[fmt.name], skip_lines,
                                                          chunk_bytes=clf_fast.CHUNK_BYTES if writer is not None
                                                          else _INSERT_CHUNK_BYTES, digest=digest)):
            if writer is not None:
                writer.add(_fast_rows(con, client_hashes.add_to(chunk), chunk_table, fmt, sid, service, route_rules))
            else:
                con.register(chunk_table, client_hashes.add_to(chunk))
                try:
                    con.execute(insert)
                finally:
                    con.unregister(chunk_table)
            lines += chunk.lines
            if chunk.others:
                n_others += len(chunk.others)
                con.execute(f"INSERT INTO {others} SELECT unnest(?::BIGINT[]), unnest(?::VARCHAR[])",
                            [[n for n, _ in chunk.others],
                             [raw.decode("utf-8", errors="replace") for _, raw in chunk.others]])
        if writer is not None:
            writer.close()
        rejected = skipped = 0
        if n_others:
            _, rejected, skipped = _load_general(con, fmt, sid, f"SELECT line_no, line FROM {others}", 0, sample,
                                                 salt, service_of, route_rules)
    except BaseException as failure:
        if writer is not None:
            writer.discard()
        if not isinstance(failure, clf_fast.NotForFastPath):
            raise
        con.execute("DELETE FROM requests WHERE source_id = ?", [sid])
        return None
    finally:
        con.execute(f"DROP TABLE IF EXISTS {others}")
    return lines, rejected, skipped, digest, {service: writer.rows} if writer is not None and writer.rows else {}


@contextmanager
def _valid_utf8(path: Path) -> Iterator[Path]:
    """``path`` itself when it is valid UTF-8 (or compressed: not checked), else a temporary copy with
    the invalid bytes replaced by U+FFFD, as :func:`kit.ingest.core.open_text` reads them. (DuckDB's
    line reader stops at invalid UTF-8, which would abort the ingest's transaction.)"""
    if path.suffix.lower() in COMPRESSED_SUFFIXES:
        yield path
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        yield path
        return
    except UnicodeDecodeError:
        pass
    fd, tmp = tempfile.mkstemp(prefix="perfkit-utf8-", suffix=".log")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out, open(path, encoding="utf-8", errors="replace",
                                                               newline="") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_access_log(con: duckdb.DuckDBPyConnection, source: Source, path: Path, skip_lines: int = 0, *,
                    fmt: LogFormat | None = None, service: str | None = None, salt: str | None = None,
                    route_rules: Sequence[RouteRule] = (), fast: bool = True) -> LoadCounts:
    """Parse one access log into ``requests`` and ``rejects`` (the ingest Loader; runs inside the
    transaction of :func:`kit.ingest.core.ingest_file`). ``fmt`` None = detect from the first lines.
    ``service`` None: each row is named by its virtual host, else by the file name ``path`` (see
    :mod:`kit.ingest.services`, which also records the naming in the source's options).
    ``fast`` False forces the general path (the fast one gives the same rows; see :func:`_load_fast`)."""
    sample = sample_lines(path)
    detected = ""
    tried: tuple[str, ...]
    if fmt is None:
        fmt, scores = detect_format(con, sample)
        tried = tuple(f"{n} ({scores.get(n, 0)}/{len(sample)} sample lines)" for n in AUTO_FORMATS)
        if fmt is None:
            shown = "\n".join(f"  {i + 1}: {line[:300]!r}" for i, line in enumerate(first_lines(path, 5)))
            raise IngestError(f"no line matches a known access-log format (tried {', '.join(tried)}); "
                              f"first lines:\n{shown}\n(give --format or --log-format)", path=path)
        detected = f" (detected: {scores[fmt.name]}/{len(sample)} sample lines)"
    else:
        tried = (fmt.name,)
    salt = salt if salt is not None else warehouse_salt(con)
    sid = source.source_id
    service_of = functools.partial(service_sql, service, path)
    result = None
    digest = None
    direct: dict[str, int] = {}
    if fast and fmt.fast == "clf":
        fast_result = _load_fast(con, fmt, sid, path, skip_lines, sample, salt, service_of, route_rules)
        if fast_result is not None:
            result = fast_result[:3]
            digest, direct = fast_result[3:]
    if result is None:
        with readable_path(path) as readable, _valid_utf8(readable) as text, lines_table(con, text) as lines_sql:
            result = _load_general(con, fmt, sid, lines_sql, skip_lines, sample, salt, service_of, route_rules)
    lines_in, rejected, skipped = result
    loaded = lines_in - skipped - rejected
    record_service_naming(con, sid, service, direct=direct)
    return LoadCounts(lines_in, loaded, rejected, skipped, fmt=fmt.name + detected, formats_tried=tried,
                      sha256=digest.hexdigest() if digest else None, size_bytes=digest.size if digest else None)


def make_loader(fmt: LogFormat | None = None, *, service: str | None = None, salt: str | None = None,
                route_rules: Sequence[RouteRule] = (), fast: bool = True):  # noqa: ANN201 - a Loader
    """A :data:`kit.ingest.core.Loader` bound to these options."""
    def loader(con: duckdb.DuckDBPyConnection, source: Source, path: Path, skip_lines: int) -> LoadCounts:
        return load_access_log(con, source, path, skip_lines, fmt=fmt, service=service, salt=salt,
                               route_rules=route_rules, fast=fast)
    return loader


def ingest_access_log(con: duckdb.DuckDBPyConnection, path: str | Path, *, format: str | None = None,
                      log_format: str | None = None, service: str | None = None, salt: str | None = None,
                      route_rules: Sequence[RouteRule | str] = (), replace: bool = False,
                      fast: bool = True) -> IngestSummary:
    """Ingest one access log file exactly once (see :func:`kit.ingest.core.ingest_file`).

    ``format``: a name from ``FORMAT_NAMES`` or None to detect; ``log_format``: an NGINX log_format
    string (overrides ``format``); ``route_rules``: RouteRule or ``"PATTERN => TEMPLATE"`` strings;
    ``fast`` False: the general path only (for comparisons; both give the same rows)."""
    fmt = get_format(format, log_format)
    rules = tuple(r if isinstance(r, RouteRule) else parse_route_rule(r) for r in route_rules)
    options = {"format": format, "log_format": log_format, "service": service,
               "route_rules": [f"{r.pattern} => {r.template}" for r in rules]}
    return ingest_file(con, KIND, path, make_loader(fmt, service=service, salt=salt, route_rules=rules, fast=fast),
                       replace=replace, options=options)


# ---------------------------------------------------------------------------------------------- CLI

def _route_rules_from_params(path: str | None) -> list[str]:
    """The ``route_rules`` of a parameters file (validated like every run parameter)."""
    if not path:
        return []
    from kit.config import RunConfig

    return list(RunConfig.load(path).route_rules)


def register_ingest(subparsers: argparse._SubParsersAction) -> None:
    """Add ``perfkit ingest access-log``."""
    parser = add_file_ingest_parser(
        subparsers, KIND,
        help="web/proxy/CDN access logs (common, combined, +rt/urt/ucs, nginx log_format, JSON, W3C, Squid)",
        description="Load access logs into `requests`. The format is detected from the first lines unless "
                    "--format or --log-format is given. Inputs may be plain, .gz, .bz2, .zst or .xz, files "
                    "or quoted globs (rotated logs).")
    parser.add_argument("--format", choices=[n for n in FORMAT_NAMES if n != "nginx"],
                        help="log format (default: detect)")
    parser.add_argument("--log-format", metavar="STRING",
                        help="an NGINX log_format directive or format string, verbatim")
    parser.add_argument("--service", help="service name stored with each request (default: each request's "
                                          "virtual host where the log has one, else the file name without "
                                          "compression, rotation and .log suffixes: access.log.1.gz → access)")
    parser.add_argument("--salt", help="salt for client address hashes (default: $PERFKIT_SALT or a random "
                                       "salt kept next to the warehouse in <db>.salt)")
    parser.add_argument("--route-rule", action="append", default=[], metavar="'PATTERN => TEMPLATE'",
                        help="a route rule tried before the built-in templating (repeatable)")
    parser.add_argument("--params", metavar="YAML", help="parameters file whose route_rules are used")
    add_common_args(parser)

    def run(args: argparse.Namespace) -> int:
        rules = [*_route_rules_from_params(args.params), *args.route_rule]

        def one(con: duckdb.DuckDBPyConnection, path: Path | None) -> IngestSummary:
            assert path is not None
            return ingest_access_log(con, path, format=args.format, log_format=args.log_format,
                                     service=args.service, salt=args.salt, route_rules=rules,
                                     replace=args.replace)
        return run_ingest_cli(args, one)

    parser.set_defaults(func=run)
