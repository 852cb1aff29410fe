"""The shared ingest core: exactly-once loading of one source per transaction.

Every ingest kind supplies a *loader* that inserts its rows (tagged with ``source.source_id``) and a
``rejects`` row for each bad input line; :func:`ingest_file` wraps it with the guarantees:

- **exactly once**: the file's sha256 is recorded in ``ingest_log``; the same bytes again (same kind)
  are a no-op reported as ``unchanged``. The hash is taken before loading when an earlier ingest could
  have the same bytes (same size); otherwise the loader may take it while it reads the file (one read,
  not two), and the check is made with it before the transaction commits;
- **replace**: ``replace=True`` deletes the earlier source(s) of the same path or bytes and loads anew,
  in the same transaction, so readers see the old rows or the new ones, never a mix;
- **append**: a plain file whose first ``size_bytes`` hash equals an earlier ingest of the same path
  (a grown log) loads only the lines after the ones already ingested (``appended``);
- **accounted**: ``lines_in == rows_loaded + rows_rejected + rows_skipped`` or the ingest fails;
- **crash-safe**: one DuckDB transaction per source; a killed process leaves no partial rows.

Bad input raises :class:`kit.errors.IngestError` (a ``ValueError``), naming file, line and field where
known; a missing file :class:`kit.errors.InputNotFoundError` (a ``FileNotFoundError``).
"""

from __future__ import annotations

import argparse
import bz2
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import duckdb

from kit import parquet_warehouse
from kit.config import DEFAULT_DB
from kit.errors import IngestError, InputNotFoundError, WarehouseError
from kit.results import to_jsonable
from kit.warehouse import Source, begin_source, connect, delete_source, finish_source, sql_string, transaction

__all__ = [
    "PROGRESS_MIN_BYTES",
    "IngestError",
    "IngestSummary",
    "LoadCounts",
    "Loader",
    "LiveLoader",
    "add_common_args",
    "add_file_ingest_parser",
    "add_path_args",
    "FileDigest",
    "expand_paths",
    "first_lines",
    "given_options",
    "ingest_file",
    "ingest_live",
    "lines_relation_sql",
    "lines_table",
    "open_text",
    "readable_path",
    "refresh_request_rollup",
    "run_ingest_cli",
    "sql_string",
]

PROGRESS_MIN_BYTES = 5 * 1024 * 1024   # files larger than this get a progress bar in the CLI
PROGRESS_MIN_ROLLUP_ROWS = 20_000_000   # and a rollup refresh of a warehouse with more requests than this
DEFAULT_INGEST_MEMORY = "1GB"          # DuckDB memory_limit of `perfkit ingest` ($PERFKIT_INGEST_MEMORY)
RAW_MAX_CHARS = 2000                   # rejects.raw is truncated to this many characters
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst", ".xz")


@dataclass(frozen=True)
class LoadCounts:
    """What a loader reports for one source (counts of input lines/records)."""

    lines_in: int
    rows_loaded: int
    rows_rejected: int
    rows_skipped: int = 0          # lines deliberately skipped: comments, headers, blank lines
    fmt: str | None = None         # the format used (given or detected)
    formats_tried: tuple[str, ...] = field(default=())   # for the "no parsable line" error
    sha256: str | None = None      # of the file's bytes when the loader read all of them as stored (else None)
    size_bytes: int | None = None  # how many bytes that was


@dataclass(frozen=True)
class IngestSummary:
    """What an ingest returns and the CLI prints (one line, or JSON with ``--json``)."""

    kind: str
    path: str
    status: str                    # loaded | unchanged | replaced | appended
    source_id: int | None
    fmt: str | None
    lines_in: int
    rows_loaded: int
    rows_rejected: int
    rows_skipped: int
    seconds: float

    def line(self) -> str:
        """One human-readable line: what was loaded, from where, how much."""
        if self.status == "unchanged":
            return (f"{self.kind} {self.path}: unchanged (already ingested as source {self.source_id}); "
                    "nothing loaded")
        rate = f", {self.lines_in / self.seconds:,.0f} lines/s" if self.seconds > 0 and self.lines_in else ""
        fmt = f" [{self.fmt}]" if self.fmt else ""
        return (f"{self.kind} {self.path}{fmt}: {self.status} as source {self.source_id}: "
                f"{self.lines_in:,} lines in = {self.rows_loaded:,} loaded + {self.rows_rejected:,} rejected"
                f" + {self.rows_skipped:,} skipped in {self.seconds:.2f} s{rate}")

    def to_json(self) -> str:
        """The summary as one line of JSON."""
        return json.dumps(to_jsonable(self), sort_keys=True)


Loader = Callable[[duckdb.DuckDBPyConnection, Source, Path, int], LoadCounts]


class FileDigest:
    """sha256 and byte count of a file's bytes, fed by a loader as it reads them (in order, all of them)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, block: bytes | memoryview) -> None:
        """Add the next bytes read (hashlib releases the GIL for blocks over 2 KiB)."""
        self._sha.update(block)
        self.size += len(block)

    def hexdigest(self) -> str:
        """The sha256, as :func:`_sha256_and_size` gives it."""
        return self._sha.hexdigest()
LiveLoader = Callable[[duckdb.DuckDBPyConnection, Source], LoadCounts]


# ---------------------------------------------------------------------------------------------- files

def _decompressing(source: Path | IO[bytes], suffix: str) -> io.BufferedIOBase:
    """A reader of the bytes of ``source`` (a path, which the reader opens and closes, or an open file,
    which it leaves open), decompressed by ``suffix`` (.gz / .bz2 / .zst / .xz; other suffixes: as is)."""
    if suffix == ".gz":
        return gzip.open(source, "rb")
    if suffix == ".bz2":
        return bz2.open(source, "rb")
    if suffix == ".xz":
        return lzma.open(source, "rb")
    owned = isinstance(source, Path)
    raw = open(source, "rb") if isinstance(source, Path) else source  # noqa: SIM115 - closed by the reader
    if suffix == ".zst":
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=owned))
    return cast(io.BufferedIOBase, raw)


@contextmanager
def open_measured(path: str | Path) -> Iterator[tuple[io.BufferedIOBase, Callable[[], float]]]:
    """The file's bytes, decompressed by its suffix, and a function giving the fraction of the file (as
    stored) read so far — for progress bars."""
    p = Path(path)
    size = max(p.stat().st_size, 1)
    with open(p, "rb") as raw, _decompressing(raw, p.suffix.lower()) as handle:
        yield handle, lambda: min(1.0, raw.tell() / size)


def open_binary(path: str | Path) -> io.BufferedIOBase:
    """Open a file for reading bytes, decompressing .gz / .bz2 / .zst / .xz transparently."""
    p = Path(path)
    return _decompressing(p, p.suffix.lower())


def open_text(path: str | Path) -> IO[str]:
    """Open a text file, decompressing .gz / .bz2 / .zst / .xz transparently (UTF-8, bad bytes replaced)."""
    return io.TextIOWrapper(cast(IO[bytes], open_binary(path)), encoding="utf-8", errors="replace")


def _has_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def expand_paths(pattern: str | Path) -> list[Path]:
    """The files a path or glob names (rotated logs: ``access.log*``), sorted; InputNotFoundError (a
    FileNotFoundError) if none."""
    text = str(pattern)
    if _has_glob(text):
        matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text)) if Path(m).is_file())
        if not matches:
            raise InputNotFoundError(f"no file matches {text}")
        return matches
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        raise IngestError("is a directory; give a file or a glob such as DIR/*.log", path=path)
    if not path.is_file():
        raise InputNotFoundError(f"no such file: {text}")
    return [path]


def first_lines(path: str | Path, n: int = 5, max_chars: int = 300) -> list[str]:
    """The first ``n`` lines of a (possibly compressed) text file, each cut to ``max_chars``."""
    lines: list[str] = []
    try:
        with open_text(path) as handle:
            for line in handle:
                lines.append(line.rstrip("\r\n")[:max_chars])
                if len(lines) >= n:
                    break
    except (OSError, EOFError, ValueError) as exc:
        lines.append(f"<unreadable: {exc}>")
    return lines


@contextmanager
def readable_path(path: str | Path) -> Iterator[Path]:
    """A path DuckDB's readers can open: the file itself when plain, .gz or .zst (DuckDB decompresses
    those), otherwise (.bz2, .xz) a temporary decompressed copy, streamed in bounded memory."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".bz2", ".xz"):
        yield p
        return
    opener = bz2.open if suffix == ".bz2" else lzma.open
    fd, tmp = tempfile.mkstemp(prefix="perfkit-ingest-", suffix=p.stem[-40:].replace("/", "_"))
    try:
        with os.fdopen(fd, "wb") as out, opener(p, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def lines_relation_sql(path: str | Path) -> str:
    """SQL for a relation ``(line_no BIGINT, line VARCHAR)``: every line of a plain/.gz/.zst text file,
    1-based, read in parallel by DuckDB (empty lines are NULL). Use with :func:`readable_path`."""
    p = Path(path)
    compression = {".gz": "gzip", ".zst": "zstd"}.get(p.suffix.lower(), "none")
    return (
        "SELECT row_number() OVER () AS line_no, line FROM read_csv("
        f"{sql_string(p)}, columns={{'line': 'VARCHAR'}}, delim='\x1f\x1e\x1d\x1c', quote='', escape='', "
        f"header=false, auto_detect=false, strict_mode=false, compression='{compression}')"
    )


_LINES_SEQ = iter(range(1, 1 << 62))


@contextmanager
def lines_table(con: duckdb.DuckDBPyConnection, path: str | Path) -> Iterator[str]:
    """Load every line of a plain/.gz/.zst text file into a temporary table (read in parallel, in file
    order) and yield SQL for the relation ``(line_no BIGINT, line VARCHAR)`` over it; the table is
    dropped afterwards. Prefer this to :func:`lines_relation_sql` for big files: ``row_number() OVER ()``
    forces a single-threaded pipeline, while the table's ``rowid`` (insertion order) keeps every later
    step parallel."""
    name = f"_lines_{next(_LINES_SEQ)}"
    body = lines_relation_sql(path).split(" FROM ", 1)[1]
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT line FROM {body}")
    try:
        # rowids of a fresh table are contiguous in insertion order, but inside a transaction they start
        # at a large base (transaction-local storage): number lines from the smallest one
        lo, hi, n = con.execute(f"SELECT min(rowid), max(rowid), count(*) FROM {name}").fetchone() or (0, 0, 0)
        if n and hi - lo + 1 == n:
            yield f"SELECT rowid - {int(lo) - 1} AS line_no, line FROM {name}"
        else:  # pragma: no cover - not seen; keep correctness at the price of a serial pipeline
            yield f"SELECT row_number() OVER (ORDER BY rowid) AS line_no, line FROM {name}"
    finally:
        try:
            con.execute(f"DROP TABLE IF EXISTS {name}")
        except duckdb.Error:  # an aborted transaction: its rollback removes the table
            pass


# ---------------------------------------------------------------------------------------------- hashing

def finish_staged_lines(con: duckdb.DuckDBPyConnection, source_id: int, lines: str, bad: str,
                        reason_sql: str, *, fmt: str, formats_tried: tuple[str, ...]) -> LoadCounts:
    """The common end of a line-staged loader: move the bad lines staged in temp table ``bad``
    (line_no, field, line) into ``rejects`` with the reason ``reason_sql`` computes from ``field``, count
    the lines of temp table ``lines`` (line_no, line, skip), drop both tables and return the counts."""
    con.execute(f"""
        INSERT INTO rejects (source_id, line_no, field, reason, raw)
        SELECT {int(source_id)}, line_no, field, {reason_sql}, left(line, {RAW_MAX_CHARS})
        FROM {bad} ORDER BY line_no""")
    row = con.execute(f"SELECT count(*), count(*) FILTER (WHERE skip), (SELECT count(*) FROM {bad}) "
                      f"FROM {lines}").fetchall()[0]
    total, skipped, rejected = (int(v) for v in row)
    con.execute(f"DROP TABLE {lines}")
    con.execute(f"DROP TABLE {bad}")
    return LoadCounts(lines_in=total, rows_loaded=total - skipped - rejected, rows_rejected=rejected,
                      rows_skipped=skipped, fmt=fmt, formats_tried=formats_tried)


def _sha256_and_size(path: Path, limit: int | None = None) -> tuple[str, int, int, bool]:
    """sha256 of the file's first ``limit`` bytes (all when None), bytes hashed, and — for a prefix
    (``limit`` given; the grown-log check) — the newlines in it and whether it ends with one (0 and
    False for a whole-file pass, which needs neither)."""
    digest = hashlib.sha256()
    remaining = limit
    size = newlines = 0
    last = b""
    with open(path, "rb") as handle:
        while remaining is None or remaining > 0:
            block = handle.read(1 << 22 if remaining is None else min(1 << 22, remaining))
            if not block:
                break
            digest.update(block)
            size += len(block)
            if remaining is not None:
                newlines += block.count(b"\n")
                last = block[-1:]
                remaining -= len(block)
    return digest.hexdigest(), size, newlines, last == b"\n"


def _find_previous(con: duckdb.DuckDBPyConnection, kind: str, path_key: str, sha: str) -> dict[str, Any]:
    """Earlier sources that matter: same bytes, and the largest earlier ingest of the same path."""
    same = con.execute(
        "SELECT source_id FROM ingest_log WHERE kind = ? AND sha256 = ? AND finished_at IS NOT NULL "
        "ORDER BY source_id LIMIT 1", [kind, sha]).fetchone()
    by_path = con.execute(
        "SELECT source_id, sha256, size_bytes FROM ingest_log WHERE kind = ? AND path = ? "
        "AND sha256 IS NOT NULL AND finished_at IS NOT NULL ORDER BY size_bytes DESC, source_id DESC",
        [kind, path_key]).fetchall()
    return {"same": None if same is None else int(same[0]), "by_path": by_path}


# ---------------------------------------------------------------------------------------------- ingest

def _check_counts(path: str, counts: LoadCounts, skip_lines: int) -> None:
    total = counts.rows_loaded + counts.rows_rejected + counts.rows_skipped
    if counts.lines_in != total:
        raise IngestError(
            f"line accounting failed: {counts.lines_in} lines in but {counts.rows_loaded} loaded + "
            f"{counts.rows_rejected} rejected + {counts.rows_skipped} skipped = {total} (a loader bug)",
            path=path)
    if counts.rows_loaded == 0 and counts.lines_in > counts.rows_skipped:
        shown = "\n".join(f"  {i + 1 + skip_lines}: {line!r}" for i, line in enumerate(
            first_lines(path, 5 + skip_lines)[skip_lines:]))
        tried = ", ".join(counts.formats_tried or ((counts.fmt,) if counts.fmt else ())) or "(none)"
        raise IngestError(
            f"no parsable line among {counts.lines_in} (formats tried: {tried}); first lines:\n{shown}",
            path=path)


class _Unchanged(Exception):  # noqa: N818 - control flow: roll the transaction back, report `unchanged`
    def __init__(self, source_id: int) -> None:
        super().__init__(source_id)
        self.source_id = source_id


def _hash_first(con: duckdb.DuckDBPyConnection, kind: str, size: int, compressed: bool, replace: bool,
                by_path: list) -> bool:
    """Whether the file's sha256 is needed before loading: for a compressed file (its loader reads other
    bytes than the stored ones), when an earlier ingest of this kind has the same size (the same bytes
    again: nothing to load), or when an earlier, smaller ingest of the same path may be its prefix (a grown
    log: only the new lines are loaded). Otherwise no earlier ingest can have the same bytes, and the
    hash can be taken while the loader reads the file (checked again before commit)."""
    if compressed or (not replace and any(old is not None and old < size for _, _, old in by_path)):
        return True
    same_size = con.execute("SELECT count(*) FROM ingest_log WHERE kind = ? AND size_bytes = ? "
                            "AND sha256 IS NOT NULL AND finished_at IS NOT NULL", [kind, size]).fetchone()
    return bool(same_size and same_size[0])


def ingest_file(con: duckdb.DuckDBPyConnection, kind: str, path: str | Path, loader: Loader, *,
                replace: bool = False, options: dict | None = None) -> IngestSummary:
    """Load one file exactly once, in one transaction (see the module docstring for the rules).

    ``loader(con, source, path, skip_lines)`` inserts the rows; it sees the file as given (compressed
    or not) and must skip its first ``skip_lines`` lines (non-zero for a grown log). A loader that read
    all of a plain file's bytes may return their sha256 and size in its counts: when no earlier ingest
    could have the same bytes (:func:`_hash_first`), the file is then not read a second time to hash it;
    the exactly-once check is made with that hash before the transaction commits."""
    started = time.perf_counter()
    p = Path(path)
    path_key = str(p.resolve())
    compressed = p.suffix.lower() in COMPRESSED_SUFFIXES
    try:
        with transaction(con):
            by_path = _find_previous(con, kind, path_key, "")["by_path"]
            sha: str | None = None
            size = p.stat().st_size
            if _hash_first(con, kind, size, compressed, replace, by_path):
                sha, size, _, _ = _sha256_and_size(p)
            prev = _find_previous(con, kind, path_key, sha or "")
            status = "loaded"
            skip_lines = 0
            if prev["same"] is not None and not replace:
                raise _Unchanged(prev["same"])
            if replace:
                doomed = {sid for sid, _, _ in prev["by_path"]}
                if prev["same"] is not None:
                    doomed |= {int(r[0]) for r in con.execute(
                        "SELECT source_id FROM ingest_log WHERE kind = ? AND sha256 = ?", [kind, sha]).fetchall()}
                for sid in sorted(doomed):
                    delete_source(con, sid)
                if doomed:
                    status = "replaced"
            elif not compressed:
                for _sid, old_sha, old_size in prev["by_path"]:
                    if old_size is None or old_size >= size:
                        continue
                    prefix_sha, _, newlines, ends_nl = _sha256_and_size(p, int(old_size))
                    if prefix_sha == old_sha:
                        # lines already ingested; an unterminated last line was ingested as it was then
                        skip_lines = newlines + (0 if ends_nl or old_size == 0 else 1)
                        status = "appended"
                        break
            source = begin_source(con, kind, path_key, sha256=sha, size_bytes=size if sha else None,
                                  options=options)
            counts = loader(con, source, p, skip_lines)
            _check_counts(str(p), counts, skip_lines)
            if sha is None:
                sha, size = ((counts.sha256, int(counts.size_bytes)) if counts.sha256 and counts.size_bytes is not None
                             else _sha256_and_size(p)[:2])
                # the exactly-once check, now that the bytes loaded are known (the same bytes may have
                # been ingested meanwhile, or the file replaced by such bytes after its size was taken)
                same = [int(r[0]) for r in con.execute(
                    "SELECT source_id FROM ingest_log WHERE kind = ? AND sha256 = ? AND source_id <> ? "
                    "ORDER BY source_id", [kind, sha, source.source_id]).fetchall()]
                if same and not replace:
                    raise _Unchanged(same[0])
                for sid in same:
                    delete_source(con, sid)
                    status = "replaced"
                con.execute("UPDATE ingest_log SET sha256 = ?, size_bytes = ? WHERE source_id = ?",
                            [sha, size, source.source_id])
            elif counts.sha256 is not None and counts.sha256 != sha:
                raise IngestError("the file changed while it was read (its sha256 before and after differ); "
                                  "ingest it again", path=str(p))
            con.execute("UPDATE ingest_log SET format = ? WHERE source_id = ?", [counts.fmt, source.source_id])
            finish_source(con, source, lines_in=counts.lines_in, rows_loaded=counts.rows_loaded,
                          rows_rejected=counts.rows_rejected, rows_skipped=counts.rows_skipped)
    except _Unchanged as unchanged:
        return IngestSummary(kind, path_key, "unchanged", unchanged.source_id, None, 0, 0, 0, 0,
                             time.perf_counter() - started)
    return IngestSummary(kind, path_key, status, source.source_id, counts.fmt, counts.lines_in,
                         counts.rows_loaded, counts.rows_rejected, counts.rows_skipped,
                         time.perf_counter() - started)


def ingest_live(con: duckdb.DuckDBPyConnection, kind: str, label: str, loader: LiveLoader,
                options: dict | None = None) -> IngestSummary:
    """Load a live source (an API or a DSN, no sha256) in one transaction; ``label`` must hold no secret."""
    started = time.perf_counter()
    with transaction(con):
        source = begin_source(con, kind, label, options=options)
        counts = loader(con, source)
        total = counts.rows_loaded + counts.rows_rejected + counts.rows_skipped
        if counts.lines_in != total:
            raise IngestError(f"record accounting failed: {counts.lines_in} in but {total} accounted for",
                              path=label)
        con.execute("UPDATE ingest_log SET format = ? WHERE source_id = ?", [counts.fmt, source.source_id])
        finish_source(con, source, lines_in=counts.lines_in, rows_loaded=counts.rows_loaded,
                      rows_rejected=counts.rows_rejected, rows_skipped=counts.rows_skipped)
    return IngestSummary(kind, label, "loaded", source.source_id, counts.fmt, counts.lines_in,
                         counts.rows_loaded, counts.rows_rejected, counts.rows_skipped,
                         time.perf_counter() - started)


def given_options(**options: Any) -> dict[str, Any]:
    """The options that were given (not None, empty or false), as an ingest records them in ``ingest_log``."""
    return {name: value for name, value in options.items() if value}


# ---------------------------------------------------------------------------------------------- CLI

def warehouse_format(db: str | Path, given: str | None) -> str:
    """``parquet`` or ``duckdb``: ``given``, checked against what ``db`` is, else detected (a directory
    with the Parquet warehouse marker is ``parquet``)."""
    is_parquet = str(db) != ":memory:" and parquet_warehouse.is_parquet_warehouse(db)
    if given == "duckdb" and (is_parquet or Path(db).is_dir()):
        raise WarehouseError(f"{db} is a directory (a Parquet warehouse?), not a DuckDB file; "
                             "drop --warehouse-format duckdb or give another --db")
    if given == "parquet" and Path(db).is_file():
        raise WarehouseError(f"{db} is a file (a DuckDB warehouse?); give a directory for a Parquet warehouse")
    return given or ("parquet" if is_parquet else "duckdb")


def _run_parquet_cli(args: argparse.Namespace,
                     fn: Callable[[duckdb.DuckDBPyConnection, Path | None], IngestSummary],
                     paths: list[Path | None]) -> int:
    """:func:`run_ingest_cli` for a Parquet warehouse: each path is one ingest committed on its own."""
    from kit.ingest.parquet import ingest

    memory = os.environ.get("PERFKIT_INGEST_MEMORY", DEFAULT_INGEST_MEMORY)
    for path in paths:
        big = path is not None and path.stat().st_size > PROGRESS_MIN_BYTES

        def load(con: duckdb.DuckDBPyConnection, path: Path | None = path, big: bool = big) -> IngestSummary:
            with _progress(con, str(path), big):
                return fn(con, path)

        summary = ingest(args.db, load, memory_limit=memory)
        print(summary.to_json() if getattr(args, "json", False) else summary.line(), flush=True)
    return 0


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--db PATH``, ``--replace`` and ``--json``, shared by every ingest kind."""
    parser.add_argument("--db", default=DEFAULT_DB,
                        help=f"warehouse: a DuckDB file, or a Parquet warehouse directory (default {DEFAULT_DB})")
    parser.add_argument("--warehouse-format", choices=("duckdb", "parquet"),
                        help="duckdb: one DuckDB file; parquet: a directory of day-partitioned Parquet files that "
                             "many ingests may fill at once (created if missing). Default: parquet when --db is "
                             "a directory holding perfkit-warehouse.json, else duckdb")
    parser.add_argument("--replace", action="store_true",
                        help="replace an earlier ingest of the same file (atomically)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary per source")


def add_path_args(parser: argparse.ArgumentParser,
                  help_text: str = "files or globs (quoted) to ingest") -> None:
    """The positional ``paths`` (files or globs) that :func:`run_ingest_cli` expands."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help=help_text)


def add_file_ingest_parser(subparsers: argparse._SubParsersAction, kind: str, *, help: str,  # noqa: A002
                           description: str) -> argparse.ArgumentParser:
    """The parser of ``perfkit ingest <kind>`` for a kind read from files, with its positional PATHs."""
    parser: argparse.ArgumentParser = subparsers.add_parser(kind, help=help, description=description)
    add_path_args(parser)
    return parser


_file_progress: list[Callable[[], float]] = []   # set by a loader that reads its file in chunks


@contextmanager
def reading_progress(fraction: Callable[[], float]) -> Iterator[None]:
    """Within the block, the CLI's progress bar shows ``fraction()`` (of the file read) instead of
    DuckDB's per-query progress (which restarts with every query of a chunked loader)."""
    _file_progress.append(fraction)
    try:
        yield
    finally:
        _file_progress.remove(fraction)


@contextmanager
def _progress(con: duckdb.DuckDBPyConnection, label: str, enabled: bool) -> Iterator[None]:
    """A tqdm bar (stderr) fed, while the block runs, by the loader's file fraction when it reports one
    (:func:`reading_progress`), else by DuckDB's query progress."""
    if not enabled:
        yield
        return
    from tqdm import tqdm

    stop = threading.Event()
    bar = tqdm(total=100, desc=label[-40:], unit="%", file=sys.stderr, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")

    def poll() -> None:
        while not stop.wait(0.2):
            try:
                pct = 100.0 * _file_progress[-1]() if _file_progress else con.query_progress()
            except Exception:  # noqa: BLE001 - progress is best effort
                return
            if pct >= 0:
                bar.n = min(100.0, pct)
                bar.refresh()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


def run_ingest_cli(args: argparse.Namespace,
                   fn: Callable[[duckdb.DuckDBPyConnection, Path | None], IngestSummary]) -> int:
    """Connect to ``args.db``, call ``fn(con, path)`` for each file of ``args.paths`` (globs expanded;
    ``fn(con, None)`` once when the kind takes no paths), print each summary; return the exit code.
    Files over 5 MB get a progress bar on stderr."""
    paths: list[Path | None] = []
    if getattr(args, "paths", None):
        for pattern in args.paths:
            paths.extend(expand_paths(pattern))
    else:
        paths.append(None)
    if warehouse_format(args.db, getattr(args, "warehouse_format", None)) == "parquet":
        return _run_parquet_cli(args, fn, paths)
    if args.db != ":memory:":
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    # bounded memory for any input size: DuckDB spills to disk beyond this (1 GB kept a 1.15 GB,
    # 6-million-line log under 1.2 GB resident)
    con = connect(args.db, memory_limit=os.environ.get("PERFKIT_INGEST_MEMORY", DEFAULT_INGEST_MEMORY))
    try:
        for path in paths:
            big = path is not None and path.stat().st_size > PROGRESS_MIN_BYTES
            with _progress(con, str(path), big):
                summary = fn(con, path)
            print(summary.to_json() if getattr(args, "json", False) else summary.line(), flush=True)
        refresh_request_rollup(con)
    finally:
        con.close()
    return 0


def refresh_request_rollup(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the warehouse's per-day grouped requests up to date after an ingest (the days the new requests
    fall in; :func:`kit.analysis.request_groups.refresh_rollup`), saying on stderr what it regrouped."""
    from kit.analysis.request_groups import refresh_rollup  # the analysis package: not needed by other commands

    rows = con.execute("SELECT count(*) FROM requests").fetchone()
    with _progress(con, "request rollup", bool(rows and rows[0] > PROGRESS_MIN_ROLLUP_ROWS)):
        done = refresh_rollup(con)
    if done is not None and done.days:
        print(done.line(), file=sys.stderr, flush=True)
