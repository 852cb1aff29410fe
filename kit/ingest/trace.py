"""Cache traces → ``cache_requests`` (and → :class:`kit.cachesim.trace.Trace` for the ``perfkit cache`` CLI).

Formats:

- ``oracleGeneral``: libCacheSim binary, 24-byte little-endian records (uint32 time, uint64 id,
  uint32 size, int64 next access); ``.zst`` compressed too.
- ``csv``: delimited text (no quoted fields), header optional; ``columns`` maps ``time``, ``id``,
  ``size`` (and optionally ``op``, ``ttl``) to header names or 1-based positions, e.g.
  ``time=time,id=lbn,size=size`` or ``time=2,id=5,size=4``; guessed from the header when omitted.
- ``text``: one key per line (integers are ids; any other key is hashed and kept as ``key``).
- ``timeidsize``: ``time id size`` per line, whitespace separated.
- ``u32be`` / ``u64be``: binary streams of 4- / 8-byte big-endian keys (Caffeine's cache2k, corda and
  scarab traces), ``.xz``/``.gz`` compressed too.

Text lines that do not parse become ``rejects`` naming line and field (the CLI reader raises on the
first one instead)."""

from __future__ import annotations

import argparse
import gzip
import lzma
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from kit.errors import InputNotFoundError, TraceFormatError

if TYPE_CHECKING:   # kit.cachesim loads numba: imported where a trace is read, not for every CLI call
    from kit.cachesim.trace import Trace

FORMATS = ("oracleGeneral", "csv", "text", "timeidsize", "u32be", "u64be")
TEXT_FORMATS = ("csv", "text", "timeidsize")
_ID_NAMES = ("obj_id", "id", "key", "lbn", "object", "obj", "object_id")
_SIZE_NAMES = ("obj_size", "size", "size_bytes", "bytes", "object_size")
_TIME_NAMES = ("clock_time", "time", "ts", "timestamp", "t")


def _read_bytes(path: Path) -> bytes:
    suffix = path.suffix.lower()
    if suffix == ".xz":
        return lzma.open(path, "rb").read()
    if suffix == ".gz":
        return gzip.open(path, "rb").read()
    if suffix == ".zst":
        import zstandard

        with open(path, "rb") as raw:
            return zstandard.ZstdDecompressor().stream_reader(raw).read()
    return path.read_bytes()


@dataclass(frozen=True)
class BinaryRecords:
    """Parsed records of a binary trace, plus a trailing partial record if any."""

    time_s: np.ndarray | None
    obj_id: np.ndarray
    size_bytes: np.ndarray | None
    partial_bytes: int       # bytes left over after the last whole record (0 = clean)
    record_bytes: int


def read_binary(path: str | Path, fmt: str) -> BinaryRecords:
    """Records of an oracleGeneral, u32be or u64be file."""
    p = Path(path)
    data = _read_bytes(p)
    width = {"oracleGeneral": 24, "u32be": 4, "u64be": 8}[fmt]
    whole = len(data) // width
    partial = len(data) - whole * width
    buf = memoryview(data)[: whole * width]
    if fmt == "oracleGeneral":
        from kit.cachesim.trace import ORACLE_DTYPE

        rec = np.frombuffer(buf, ORACLE_DTYPE)
        return BinaryRecords(rec["clock_time"].astype(np.float64), rec["obj_id"].astype(np.uint64),
                             rec["obj_size"].astype(np.int64), partial, width)
    ids = np.frombuffer(buf, ">u4" if fmt == "u32be" else ">u8").astype(np.uint64)
    return BinaryRecords(None, ids, None, partial, width)


def _text_rows_sql(path: Path, fmt: str, columns: str | None, delimiter: str, con: duckdb.DuckDBPyConnection
                   ) -> tuple[str, int]:
    """SQL producing (line_no, t, key, size, op, ttl, bad_field, raw) for every non-blank line, and the
    number of header lines skipped."""
    from kit.ingest.core import lines_relation_sql

    lines = lines_relation_sql(path)
    if fmt == "text":
        return (f"SELECT line_no, NULL::DOUBLE AS t, trim(line) AS key, NULL::BIGINT AS size, NULL AS op, "
                f"NULL::DOUBLE AS ttl, NULL AS bad_field, line AS raw FROM ({lines}) "
                f"WHERE line IS NOT NULL AND trim(line) <> ''"), 0
    if fmt == "timeidsize":
        parts = "regexp_split_to_array(trim(line), '\\s+')"
        return (f"""SELECT line_no, try_cast(p[1] AS DOUBLE) AS t, p[2] AS key, try_cast(p[3] AS BIGINT) AS size,
                    NULL AS op, NULL::DOUBLE AS ttl,
                    CASE WHEN len(p) < 3 THEN 'size' WHEN try_cast(p[1] AS DOUBLE) IS NULL THEN 'time'
                         WHEN try_cast(p[3] AS BIGINT) IS NULL OR try_cast(p[3] AS BIGINT) < 0 THEN 'size'
                    END AS bad_field, line AS raw
                    FROM (SELECT line_no, line, {parts} AS p FROM ({lines})
                          WHERE line IS NOT NULL AND trim(line) <> '')"""), 0
    # csv
    first = con.execute(f"SELECT line FROM ({lines}) WHERE line IS NOT NULL LIMIT 1").fetchone()
    header_cells = [c.strip() for c in (first[0] if first else "").split(delimiter)]
    has_header = any(c and not _is_number(c) for c in header_cells) and not all(
        _is_number(c) for c in header_cells if c)
    mapping = _column_mapping(columns, header_cells if has_header else None, path)
    d = delimiter.replace("'", "''")

    def col(name: str) -> str:
        return f"trim(c[{mapping[name]}])" if name in mapping else "NULL"

    checks = []
    if "time" in mapping:
        checks.append(f"WHEN try_cast({col('time')} AS DOUBLE) IS NULL THEN 'time'")
    checks.append(f"WHEN coalesce({col('id')}, '') = '' THEN 'id'")
    if "size" in mapping:
        checks.append(f"WHEN try_cast({col('size')} AS BIGINT) IS NULL OR try_cast({col('size')} AS BIGINT) < 0 "
                      f"THEN 'size'")
    if "ttl" in mapping:
        checks.append(f"WHEN {col('ttl')} <> '' AND try_cast({col('ttl')} AS DOUBLE) IS NULL THEN 'ttl'")
    skip = 1 if has_header else 0
    return (f"""SELECT line_no, try_cast({col('time')} AS DOUBLE) AS t, {col('id')} AS key,
                try_cast({col('size')} AS BIGINT) AS size, {col('op')} AS op,
                try_cast(nullif({col('ttl')}, '') AS DOUBLE) AS ttl,
                CASE WHEN len(c) < {max(mapping.values())} THEN 'columns' {' '.join(checks)} END AS bad_field,
                line AS raw
                FROM (SELECT line_no, line, string_split(line, '{d}') AS c FROM ({lines})
                      WHERE line IS NOT NULL AND trim(line) <> '' AND line_no > {skip})"""), skip


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column_mapping(columns: str | None, header: list[str] | None, path: Path) -> dict[str, int]:
    """``time=..,id=..,size=..`` (names or 1-based positions) → 1-based positions."""
    lower = [h.lower() for h in header] if header else []
    mapping: dict[str, int] = {}
    if columns:
        for part in columns.split(","):
            if "=" not in part:
                raise TraceFormatError(f"{path}: --columns entry {part!r} must look like id=lbn or id=5")
            field, ref = (x.strip() for x in part.split("=", 1))
            if field not in ("time", "id", "size", "op", "ttl"):
                raise TraceFormatError(f"{path}: --columns field {field!r} must be time, id, size, op or ttl")
            if ref.isdigit():
                mapping[field] = int(ref)
            elif ref.lower() in lower:
                mapping[field] = lower.index(ref.lower()) + 1
            else:
                raise TraceFormatError(f"{path}: column {ref!r} for {field} is not in the header {header}")
    else:
        if not header:
            raise TraceFormatError(f"{path}: a CSV trace without a header needs --columns (e.g. time=1,id=2,size=3)")
        for field, names in (("id", _ID_NAMES), ("size", _SIZE_NAMES), ("time", _TIME_NAMES)):
            for name in names:
                if name in lower:
                    mapping[field] = lower.index(name) + 1
                    break
    if "id" not in mapping:
        raise TraceFormatError(f"{path}: no id column (header {header}); give --columns id=NAME")
    return mapping


def _stage_text(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, columns: str | None,
                delimiter: str) -> tuple[int, int]:
    """Create temp table _trace_rows from a text trace; returns (lines in the file, header lines)."""
    from kit.ingest.core import lines_relation_sql, readable_path

    with readable_path(path) as readable:
        sql, skipped = _text_rows_sql(readable, fmt, columns, delimiter, con)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _trace_rows AS {sql}")
        row = con.execute(f"SELECT count(*) FROM ({lines_relation_sql(readable)})").fetchone()
    return int(row[0]) if row else 0, skipped


_KEY_TO_ID = ("CASE WHEN regexp_full_match(key, '[0-9]{1,19}') AND try_cast(key AS UBIGINT) IS NOT NULL "
              "THEN try_cast(key AS UBIGINT) ELSE hash(key) END")


def read_trace(path: str | Path, fmt: str, *, columns: str | None = None, delimiter: str = ",") -> Trace:
    """Read a trace file into arrays (sizes default to 1 byte; times to None). Raises TraceFormatError
    naming the file, line and field of the first bad line."""
    from kit.cachesim.trace import Trace

    p = Path(path)
    if fmt not in FORMATS:
        raise TraceFormatError(f"{p}: unknown trace format {fmt!r}; one of {', '.join(FORMATS)}")
    if not p.is_file():
        raise InputNotFoundError(f"no such trace file: {p}")
    if fmt not in TEXT_FORMATS:
        rec = read_binary(p, fmt)
        if rec.partial_bytes:
            raise TraceFormatError(
                f"{p}: record {len(rec.obj_id) + 1} (byte {len(rec.obj_id) * rec.record_bytes}), field record: "
                f"file ends inside a {rec.record_bytes}-byte record ({rec.partial_bytes} bytes left over)")
        sizes = np.ones(len(rec.obj_id), np.int64) if rec.size_bytes is None else rec.size_bytes
        if fmt == "oracleGeneral":   # libcachesim's reader skips zero-size requests: so do we
            keep = sizes > 0
            return Trace(p.name, rec.obj_id[keep], sizes[keep],
                         None if rec.time_s is None else rec.time_s[keep], fmt, str(p))
        return Trace(p.name, rec.obj_id, sizes, rec.time_s, fmt, str(p))
    con = duckdb.connect(":memory:")
    try:
        _stage_text(con, p, fmt, columns, delimiter)
        bad = con.execute("SELECT line_no, bad_field, raw FROM _trace_rows WHERE bad_field IS NOT NULL "
                          "ORDER BY line_no LIMIT 1").fetchone()
        if bad:
            raise TraceFormatError(f"{p}: line {bad[0]}, field {bad[1]}: cannot parse {str(bad[2])[:200]!r}")
        df = con.execute(f"SELECT t, {_KEY_TO_ID} AS id, size FROM _trace_rows ORDER BY line_no").fetch_df()
    finally:
        con.close()
    t = df["t"].to_numpy(np.float64)
    size = df["size"].to_numpy(np.float64)
    sizes = np.where(np.isnan(size), 1, size).astype(np.int64)
    return Trace(p.name, df["id"].to_numpy(np.uint64), sizes, None if np.isnan(t).all() else t, fmt, str(p))


# --------------------------------------------------------------------------------------------- ingest
def load_trace(con: duckdb.DuckDBPyConnection, source: object, path: Path, skip_lines: int, *, fmt: str,
               trace_name: str | None = None, columns: str | None = None, delimiter: str = ","):
    """Loader for :func:`kit.ingest.core.ingest_file`: rows into ``cache_requests``, bad lines into
    ``rejects``; returns LoadCounts (records of a binary trace count as lines)."""
    from kit.ingest.core import RAW_MAX_CHARS, LoadCounts

    sid = source.source_id  # type: ignore[attr-defined]
    name = trace_name or path.name
    base = con.execute("SELECT coalesce(max(seq) + 1, 0) FROM cache_requests WHERE trace = ?", [name]).fetchall()[0]
    seq0 = int(base[0]) if base else 0
    if fmt not in TEXT_FORMATS:
        rec = read_binary(path, fmt)
        n = len(rec.obj_id)
        frame = pd.DataFrame({
            "ts": pd.to_datetime(rec.time_s, unit="s", utc=True) if rec.time_s is not None
            else pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]"),
            "seq": np.arange(seq0, seq0 + n, dtype=np.int64), "obj_id": rec.obj_id,
            "size_bytes": rec.size_bytes if rec.size_bytes is not None else np.ones(n, np.int64)})
        con.register("_trace_frame", frame)
        try:
            con.execute("INSERT INTO cache_requests (ts, seq, trace, obj_id, key, size_bytes, ttl_s, op, source_id) "
                        "SELECT ts, seq, ?, obj_id, NULL, size_bytes, NULL, NULL, ? FROM _trace_frame", [name, sid])
        finally:
            con.unregister("_trace_frame")
        rejected = 0
        if rec.partial_bytes:
            rejected = 1
            con.execute("INSERT INTO rejects VALUES (?, ?, 'record', ?, NULL)",
                        [sid, n + 1, f"file ends inside a {rec.record_bytes}-byte record "
                                     f"({rec.partial_bytes} bytes left over)"])
        return LoadCounts(n + rejected, n, rejected, 0, fmt)
    n_lines, _header = _stage_text(con, path, fmt, columns, delimiter)
    con.execute(f"DELETE FROM _trace_rows WHERE line_no <= {int(skip_lines)}")
    con.execute(
        "INSERT INTO rejects SELECT ?, line_no, bad_field, 'cannot parse ' || bad_field, "
        f"left(raw, {RAW_MAX_CHARS}) FROM _trace_rows WHERE bad_field IS NOT NULL", [sid])
    con.execute(
        f"""INSERT INTO cache_requests (ts, seq, trace, obj_id, key, size_bytes, ttl_s, op, source_id)
            SELECT CASE WHEN t IS NULL THEN NULL ELSE to_timestamp(t) END,
                   ? + row_number() OVER (ORDER BY line_no) - 1, ?, {_KEY_TO_ID},
                   CASE WHEN regexp_full_match(key, '[0-9]{{1,19}}') THEN NULL ELSE key END,
                   size, ttl, lower(op), ?
            FROM _trace_rows WHERE bad_field IS NULL""", [seq0, name, sid])
    counts = con.execute("SELECT count(*) FILTER (WHERE bad_field IS NULL), count(*) FILTER (WHERE bad_field "
                         "IS NOT NULL) FROM _trace_rows").fetchone()
    con.execute("DROP TABLE _trace_rows")
    loaded, rejected = (int(counts[0]), int(counts[1])) if counts else (0, 0)
    lines_in = n_lines - skip_lines
    return LoadCounts(lines_in, loaded, rejected, lines_in - loaded - rejected, fmt)


def ingest_trace(con: duckdb.DuckDBPyConnection, path: str | Path, fmt: str, *, trace_name: str | None = None,
                 columns: str | None = None, delimiter: str = ",", replace: bool = False):
    """Ingest one trace file into ``cache_requests`` exactly once (see :mod:`kit.ingest.core`)."""
    from kit.ingest.core import ingest_file

    if fmt not in FORMATS:
        raise TraceFormatError(f"{path}: unknown trace format {fmt!r}; one of {', '.join(FORMATS)}")

    def loader(c: duckdb.DuckDBPyConnection, source: object, p: Path, skip: int):
        return load_trace(c, source, p, skip, fmt=fmt, trace_name=trace_name, columns=columns,
                          delimiter=delimiter)

    return ingest_file(con, "trace", path, loader, replace=replace,
                       options={"format": fmt, "trace": trace_name, "columns": columns})


def register_ingest(subparsers: argparse._SubParsersAction) -> None:
    """``perfkit ingest trace --format F [--name N] [--columns MAP] FILE...``"""
    from kit.ingest.core import add_common_args, add_path_args, run_ingest_cli

    parser = subparsers.add_parser("trace", help="cache trace (oracleGeneral, csv, text, timeidsize, u32be, u64be)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--format", required=True, choices=FORMATS, help="trace format")
    parser.add_argument("--name", help="trace name in cache_requests (default: the file name)")
    parser.add_argument("--columns", help="csv: time=..,id=..,size=.. (header names or 1-based positions)")
    parser.add_argument("--delimiter", default=",", help="csv delimiter (default ,)")
    add_path_args(parser)

    def run(args: argparse.Namespace) -> int:
        return run_ingest_cli(args, lambda con, p: ingest_trace(
            con, _given(p), args.format, trace_name=args.name, columns=args.columns, delimiter=args.delimiter,
            replace=args.replace))

    parser.set_defaults(func=run)


def _given(path: Path | None) -> Path:
    if path is None:
        raise TraceFormatError("perfkit ingest trace needs a FILE")
    return path
