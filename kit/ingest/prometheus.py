"""Prometheus → ``metrics`` (kind ``prometheus``): a range query against a live server's HTTP API, or
exposition-format / OpenMetrics text files.

**Range queries** (:func:`ingest_prometheus_range`): ``/api/v1/query_range`` between ``start`` and
``end`` every ``step`` seconds. Prometheus refuses more than 11,000 points per series, so the range is
split into chunks of at most ``max_points`` steps that neither overlap nor leave gaps. Each request is
retried with exponential backoff on connection errors, timeouts, 429 and 5xx; authentication failures
(401/403) and PromQL errors (400/422, with Prometheus' own message) fail at once with a clear message.
A bearer token can come from ``token=`` or the ``PERFKIT_PROMETHEUS_TOKEN`` environment variable, basic
auth from ``user:password@`` in the URL. Responses are unpacked in DuckDB (``json_transform`` +
``unnest``), not sample by sample in Python. Counted per *sample*: ``lines_in`` = samples returned;
a sample whose value is not a number is rejected.

**Text files** (:func:`ingest_prometheus_file`): one sample per line, ``name{label="v",...} value
[timestamp]`` with optional OpenMetrics exemplar; ``# HELP/TYPE/UNIT/EOF`` comments and blank lines are
skipped, malformed lines rejected (field ``name``, ``labels``, ``value`` or ``timestamp``).
Timestamps above 10^11 are milliseconds (Prometheus text format), otherwise seconds (OpenMetrics);
samples without one take ``at`` (default: the file's modification time).
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from kit.errors import ParameterError, PrometheusError
from kit.ingest.core import (
    RAW_MAX_CHARS,
    IngestSummary,
    LoadCounts,
    add_common_args,
    finish_staged_lines,
    given_options,
    ingest_file,
    ingest_live,
    lines_relation_sql,
    readable_path,
    run_ingest_cli,
    sql_string,
)
from kit.warehouse import Source

__all__ = ["KIND", "MAX_POINTS", "PrometheusError", "RangeChunk", "ingest_prometheus_file",
           "ingest_prometheus_range", "load_exposition", "parse_time", "range_chunks", "register_ingest"]

KIND = "prometheus"
MAX_POINTS = 11_000          # Prometheus' limit of points per series in one range query


@dataclass(frozen=True)
class RangeChunk:
    """One request's share of a range query: ``start_s`` to ``end_s`` inclusive (epoch seconds)."""

    start_s: float
    end_s: float


def parse_time(value: str | float | datetime) -> float:
    """Epoch seconds from a number, an ISO 8601 string (UTC when no zone), ``now`` or ``now-1h``/``-30m``."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text.startswith("now"):
        rest = text[3:]
        if not rest:
            return time.time()
        if rest[0] in "+-" and rest[-1] in units and rest[1:-1].replace(".", "", 1).isdigit():
            delta = float(rest[1:-1]) * units[rest[-1]]
            return time.time() + (delta if rest[0] == "+" else -delta)
        raise ParameterError(f"cannot read time {value!r} (use ISO 8601, epoch seconds, now or now-1h)")
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(f"cannot read time {value!r} (use ISO 8601, epoch seconds, now or now-1h)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def range_chunks(start_s: float, end_s: float, step_s: float, max_points: int = MAX_POINTS) -> list[RangeChunk]:
    """Split ``[start_s, end_s]`` into chunks of at most ``max_points`` evaluation steps; consecutive
    chunks start one step after the previous one ends, so every step is evaluated exactly once."""
    if step_s <= 0:
        raise ParameterError("step must be > 0 seconds")
    if end_s < start_s:
        raise ParameterError("end must not be before start")
    total = int(math.floor((end_s - start_s) / step_s + 1e-9)) + 1
    chunks = []
    for first in range(0, total, max_points):
        last = min(first + max_points, total) - 1
        chunks.append(RangeChunk(start_s + first * step_s, start_s + last * step_s))
    return chunks


# ------------------------------------------------------------------------------------------ HTTP

def _request(url: str, params: dict[str, str], *, token: str | None, timeout_s: float, retries: int,
             backoff_s: float) -> bytes:
    parsed = urllib.parse.urlsplit(url)
    headers = {"Accept": "application/json", "User-Agent": "perfkit"}
    netloc = parsed.netloc
    if "@" in netloc:
        creds, netloc = netloc.rsplit("@", 1)
        headers["Authorization"] = "Basic " + base64.b64encode(urllib.parse.unquote(creds).encode()).decode()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    base = urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path.rstrip("/"), "", ""))
    full = f"{base}/api/v1/query_range?{urllib.parse.urlencode(params)}"
    label = base
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(urllib.request.Request(full, headers=headers), timeout=timeout_s) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            detail = body[:500]
            try:
                payload = json.loads(body)
                detail = f"{payload.get('errorType', '')}: {payload.get('error', '')}".strip(": ")
            except (ValueError, AttributeError):
                pass
            if exc.code in (401, 403):
                raise PrometheusError(f"authentication failed (HTTP {exc.code}); give a bearer token "
                                      "(PERFKIT_PROMETHEUS_TOKEN) or user:password@ in the URL",
                                      path=label) from None
            if exc.code in (400, 422):
                raise PrometheusError(f"query rejected (HTTP {exc.code}) {detail}", path=label,
                                      field="query") from None
            if exc.code == 429 or exc.code >= 500:
                last_error = f"HTTP {exc.code} {detail}"
                continue
            raise PrometheusError(f"HTTP {exc.code}: {detail}", path=label) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last_error = f"{type(exc).__name__}: {reason}"
            continue
    raise PrometheusError(f"no answer after {retries + 1} attempts ({last_error})", path=label)


def ingest_prometheus_range(con: duckdb.DuckDBPyConnection, url: str, query: str, start: str | float | datetime,
                            end: str | float | datetime, step: float | str, *, name: str | None = None,
                            max_points: int = MAX_POINTS, token: str | None = None, timeout_s: float = 30.0,
                            retries: int = 3, backoff_s: float = 0.5) -> IngestSummary:
    """Run a range query (chunked, retried) and store every returned sample in ``metrics`` in one
    transaction. ``name`` overrides the metric name (default: the series' ``__name__``, else the query)."""
    start_s, end_s = parse_time(start), parse_time(end)
    step_s = _step_seconds(step)
    chunks = range_chunks(start_s, end_s, step_s, max_points)
    token = token or os.environ.get("PERFKIT_PROMETHEUS_TOKEN") or None
    bodies: list[bytes] = []
    for chunk in chunks:
        body = _request(url, {"query": query, "start": _fmt(chunk.start_s), "end": _fmt(chunk.end_s),
                              "step": _fmt(step_s)}, token=token, timeout_s=timeout_s, retries=retries,
                        backoff_s=backoff_s)
        try:
            payload = json.loads(body)
        except ValueError:
            raise PrometheusError(f"answer is not JSON: {body[:200]!r}", path=url) from None
        if payload.get("status") != "success":
            raise PrometheusError(f"query failed: {payload.get('errorType')}: {payload.get('error')}",
                                  path=url, field="query")
        if payload.get("data", {}).get("resultType") != "matrix":
            raise PrometheusError(f"expected a matrix, got {payload.get('data', {}).get('resultType')}",
                                  path=url, field="query")
        bodies.append(json.dumps(payload["data"]).encode())
    override = sql_string(name) if name else "NULL"

    def loader(c: duckdb.DuckDBPyConnection, source: Source) -> LoadCounts:
        loaded = rejected = 0
        shape = sql_string('{"result":[{"metric":"MAP(VARCHAR,VARCHAR)","values":[["VARCHAR"]]}]}')
        for body in bodies:
            with tempfile.NamedTemporaryFile("wb", suffix=".json", prefix="perfkit-prom-") as tmp:
                tmp.write(body)
                tmp.flush()
                c.execute(f"""
                    CREATE OR REPLACE TEMP TABLE _pk_prom AS
                    WITH s AS (SELECT unnest(json_transform(json, {shape}).result) AS r
                               FROM read_json_objects({sql_string(tmp.name)}, format='unstructured')),
                    v AS (SELECT r.metric AS metric, unnest(r."values") AS pair FROM s)
                    SELECT metric, pair[1] AS ts_text, pair[2] AS value_text,
                           try(to_timestamp(try_cast(pair[1] AS DOUBLE))) AS ts_s,
                           try_cast(pair[2] AS DOUBLE) AS value
                    FROM v""")
            c.execute(f"""
                INSERT INTO metrics (ts, name, labels, value, source_id)
                SELECT ts_s, coalesce({override}, element_at(metric, '__name__')[1], {sql_string(query)}),
                       map_from_entries(list_filter(map_entries(metric), lambda e: e.key <> '__name__')),
                       value, {int(source.source_id)}
                FROM _pk_prom WHERE ts_s IS NOT NULL AND value IS NOT NULL""")
            c.execute(f"""
                INSERT INTO rejects (source_id, line_no, field, reason, raw)
                SELECT {int(source.source_id)}, NULL, CASE WHEN ts_s IS NULL THEN 'timestamp' ELSE 'value' END,
                       'sample is not a number', left(CAST(metric AS VARCHAR) || ' ' || coalesce(ts_text, '')
                                                      || ' ' || coalesce(value_text, ''), {RAW_MAX_CHARS})
                FROM _pk_prom WHERE ts_s IS NULL OR value IS NULL""")
            row = c.execute("SELECT count(*) FILTER (WHERE ts_s IS NOT NULL AND value IS NOT NULL), "
                            "count(*) FILTER (WHERE ts_s IS NULL OR value IS NULL) FROM _pk_prom").fetchone()
            assert row is not None
            loaded += int(row[0])
            rejected += int(row[1])
            c.execute("DROP TABLE _pk_prom")
        return LoadCounts(lines_in=loaded + rejected, rows_loaded=loaded, rows_rejected=rejected,
                          fmt="query_range")

    label = f"{_public_url(url)} query={query}"
    options = {"query": query, "start": start_s, "end": end_s, "step_s": step_s, "chunks": len(chunks)}
    return ingest_live(con, KIND, label, loader, options=options)


def _public_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _step_seconds(step: float | str) -> float:
    if isinstance(step, int | float):
        return float(step)
    text = step.strip()
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for unit in ("ms", "s", "m", "h", "d"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


# ------------------------------------------------------------------------------------------ text files

_SAMPLE = (r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?[ \t]+([^ \t#]+)(?:[ \t]+([0-9.eE+-]+))?"
           r"(?:[ \t]*#[ \t]*\{.*)?[ \t]*$")
_LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"'
_LABELS_OK = r'^[ \t]*(' + _LABEL + r'[ \t]*(,[ \t]*|$))*$'


def load_exposition(con: duckdb.DuckDBPyConnection, source: Source, path: Path, skip_lines: int = 0, *,
                    at: datetime | str | None = None) -> LoadCounts:
    """Load a Prometheus text-format / OpenMetrics file's samples into ``metrics``."""
    if at is None:
        at_s = Path(path).stat().st_mtime
    else:
        at_s = parse_time(at)
    sid = int(source.source_id)
    sample, label = sql_string(_SAMPLE), sql_string(_LABEL)
    with readable_path(path) as readable:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _pk_expo AS
            WITH l AS (SELECT line_no, coalesce(line, '') AS line FROM ({lines_relation_sql(readable)})
                       WHERE line_no > {int(skip_lines)}),
            c AS (SELECT *, trim(line) = '' OR starts_with(ltrim(line), '#') AS skip,
                         regexp_extract(line, {sample}, ['name', 'braces', 'labels', 'value', 'ts']) AS m
                  FROM l)
            SELECT line_no, line, skip, m.name AS name, m.labels AS labels_text,
                   try_cast(m.value AS DOUBLE) AS value, m.value AS value_text,
                   CASE WHEN m.ts = '' THEN NULL ELSE try_cast(m.ts AS DOUBLE) END AS ts_num, m.ts AS ts_text,
                   try(to_timestamp(CASE WHEN m.ts = '' THEN {at_s!r}
                                         WHEN abs(try_cast(m.ts AS DOUBLE)) > 1e11
                                         THEN try_cast(m.ts AS DOUBLE) / 1000.0
                                         ELSE try_cast(m.ts AS DOUBLE) END)) AS ts,
                   m.braces <> '' AND NOT regexp_matches(m.labels, {sql_string(_LABELS_OK)}) AS bad_labels
            FROM c""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _pk_expo_bad AS
        SELECT line_no, line,
               CASE WHEN name = '' THEN 'name' WHEN bad_labels THEN 'labels' WHEN value IS NULL THEN 'value'
                    ELSE 'timestamp' END AS field
        FROM _pk_expo
        WHERE NOT skip AND (name = '' OR bad_labels OR value IS NULL OR ts IS NULL)""")
    con.execute(f"""
        INSERT INTO metrics (ts, name, labels, value, source_id)
        SELECT ts, name,
               map(regexp_extract_all(labels_text, {label}, 1),
                   list_transform(regexp_extract_all(labels_text, {label}, 2),
                                  lambda v: replace(replace(replace(v, '\\"', '"'), '\\n', chr(10)), '\\\\', '\\'))),
               value, {sid}
        FROM _pk_expo WHERE NOT skip AND line_no NOT IN (SELECT line_no FROM _pk_expo_bad)
        ORDER BY line_no""")
    return finish_staged_lines(
        con, sid, "_pk_expo", "_pk_expo_bad",
        "CASE field WHEN 'name' THEN 'not a sample line (name{labels} value [timestamp])' "
        "WHEN 'labels' THEN 'malformed label set' WHEN 'value' THEN 'sample value is not a number' "
        "ELSE 'timestamp is not a number' END",
        fmt="exposition", formats_tried=("exposition", "openmetrics"))


def ingest_prometheus_file(con: duckdb.DuckDBPyConnection, path: str | Path, *, at: str | None = None,
                           replace: bool = False) -> IngestSummary:
    """Ingest one exposition/OpenMetrics text file exactly once into ``metrics``."""
    def loader(c: duckdb.DuckDBPyConnection, source: Source, p: Path, skip: int) -> LoadCounts:
        return load_exposition(c, source, p, skip, at=at)

    return ingest_file(con, KIND, path, loader, replace=replace, options=given_options(at=at))


# ------------------------------------------------------------------------------------------ CLI

def register_ingest(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        KIND, help="Prometheus range query (--url ...) or exposition/OpenMetrics files → metrics",
        description="Either query a live Prometheus (--url --query --start --end --step; long ranges are "
                    "split into chunks under the 11,000-points limit, retried with backoff) or load text "
                    "files in the exposition / OpenMetrics format (--file).")
    parser.add_argument("--url", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--query", help="PromQL expression")
    parser.add_argument("--start", help="ISO 8601, epoch seconds, or now-6h")
    parser.add_argument("--end", default="now", help="ISO 8601, epoch seconds, or now (default)")
    parser.add_argument("--step", default="60s", help="resolution, e.g. 15s, 1m (default 60s)")
    parser.add_argument("--name", default=None, help="metric name to store (default: __name__ or the query)")
    parser.add_argument("--file", dest="paths", action="append", default=None, metavar="PATH",
                        help="exposition/OpenMetrics text file or glob (repeatable)")
    parser.add_argument("--at", default=None, help="time for samples without a timestamp (default: file mtime)")
    add_common_args(parser)

    def run(args: argparse.Namespace) -> int:
        if args.paths:
            return run_ingest_cli(args, lambda con, p: ingest_prometheus_file(
                con, p, at=args.at, replace=args.replace))  # type: ignore[arg-type]
        if not (args.url and args.query and args.start):
            parser.error("give --file PATH, or --url, --query and --start (with --end and --step)")
        return run_ingest_cli(args, lambda con, _p: ingest_prometheus_range(
            con, args.url, args.query, args.start, args.end, args.step, name=args.name))

    parser.set_defaults(func=run)


