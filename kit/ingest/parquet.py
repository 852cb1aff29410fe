"""``perfkit ingest`` into a Parquet warehouse (:mod:`kit.parquet_warehouse` has the layout and the
method): today's loaders run on a scratch in-memory DuckDB warehouse, then the new source's rows are
written as Parquet, renamed into place and committed by one atomic link of a commit record. A loader
whose rows are already Arrow (the access-log reader) may instead write them as Parquet itself
(:class:`DayFiles` into :func:`direct_directory`), skipping the scratch table and the copy out of it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kit.errors import IngestError, WarehouseError
from kit.parquet_warehouse import (
    CHECKPOINT_EVERY,
    COMMITS,
    MAX_ATTEMPTS,
    PARTITIONED,
    STAGING,
    TABLES,
    Commit,
    Snapshot,
    commit_record,
    create,
    fsync_path,
    ingest_log_sql,
    publish,
    read_log,
    write_checkpoint,
)
from kit.warehouse import connect, schema_columns, sql_string, table_columns

if TYPE_CHECKING:
    from kit.ingest.core import IngestSummary

_SCRATCH_ROOTS: dict[int, tuple[Path, Path]] = {}   # id(scratch connection) -> (its warehouse, direct
#                                                     directory), while an ingest runs
DIRECT = "direct"                   # under an ingest's stage: the files its loader wrote itself


def scratch_warehouse(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The Parquet warehouse whose ingest ``con`` is the scratch database of (None for any other)."""
    found = _SCRATCH_ROOTS.get(id(con))
    return found[0] if found else None


def direct_directory(con: duckdb.DuckDBPyConnection) -> Path | None:
    """Where the loader of a Parquet-warehouse ingest on the scratch ``con`` may write Parquet files of
    its source's rows itself, in the warehouse's layout (``<table>/day=<YYYY-MM-DD>/<name>.parquet``):
    they are committed with the rows the scratch tables hold. None on any other connection."""
    found = _SCRATCH_ROOTS.get(id(con))
    return found[1] if found else None


_flush = getattr(os, "fdatasync", os.fsync)   # the file's data to disk (macOS has no fdatasync)


class DayFiles:
    """One source's rows of a partitioned table written straight from Arrow, one Parquet file per UTC
    day (``<directory>/<table>/day=<YYYY-MM-DD>/<source id>_direct.parquet``, zstd, a row group per
    :meth:`add` and day) by one background thread, so the caller prepares the next rows while the last
    ones are compressed and written. Rows keep their order within a day."""

    def __init__(self, directory: Path, table: str, source_id: int, schema: pa.Schema,
                 statistics: Sequence[str] | None = None, encodings: Mapping[str, str] | None = None) -> None:
        """``statistics``: the columns whose min/max each row group records (default all; a reader skips
        row groups by them, and for long distinct strings they cost more than they save). ``encodings``:
        columns written without a dictionary, in the given Parquet encoding (default: every column with a
        dictionary)."""
        self.root, self.table, self.source_id, self.schema = directory / table, table, int(source_id), schema
        self.statistics: bool | list[str] = list(statistics) if statistics is not None else True
        self.encodings = dict(encodings or {})
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.descriptors: dict[str, int] = {}    # day -> a read-only descriptor of its file, to flush it by
        self.rows = 0                            # rows written
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="perfkit-parquet-writer")
        self.pending: Future | None = None

    def _write(self, rows: pa.Table) -> None:
        if rows["ts"].null_count:
            raise ValueError(f"DayFiles writes rows with a time only ({self.table})")
        micros = rows["ts"].combine_chunks().cast(pa.int64()).to_numpy()
        days = np.floor_divide(micros, 86_400_000_000)
        if not len(days):
            return
        distinct = days[:1] if days.min() == days.max() else np.unique(days)   # mostly one day: no sort
        for day in distinct:
            part = rows if len(distinct) == 1 else rows.filter(pa.array(days == day))
            name = str(np.datetime64(int(day), "D"))
            writer = self.writers.get(name)
            if writer is None:
                path = self._path(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(path, self.schema,
                                          compression="zstd", store_schema=False,
                                          write_statistics=self.statistics,
                                          use_dictionary=[n for n in self.schema.names if n not in self.encodings],
                                          column_encoding=self.encodings or None)
                self.writers[name] = writer
                self.descriptors[name] = os.open(path, os.O_RDONLY)
            writer.write_table(part, row_group_size=max(1, part.num_rows))
            # flushed to disk here, while the caller prepares the next rows: the commit's fsync of the file then
            # waits for its last row group only (on the bench's 45 MB file, 23 ms less at the end)
            _flush(self.descriptors[name])
        self.rows += rows.num_rows

    def _path(self, day: str) -> Path:
        return self.root / f"day={day}" / f"{self.source_id}_direct.parquet"

    def _wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def add(self, rows: pa.Table) -> None:
        """Queue ``rows`` (of ``schema``; ``ts`` a UTC timestamp, never null) for writing, after the previous
        ones."""
        self._wait()
        self.pending = self.pool.submit(self._write, rows.cast(self.schema))

    def close(self) -> None:
        """Finish writing (``rows`` then counts every row added)."""
        try:
            self._wait()
        finally:
            for writer in self.writers.values():
                writer.close()
            for descriptor in self.descriptors.values():
                os.close(descriptor)
            self.pool.shutdown()

    def discard(self) -> None:
        """Stop and delete what was written."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - discarding after a failure: the first error is the one to show
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def new_source_id() -> int:
    """A 63-bit source id unique across processes: milliseconds since the epoch << 20 | 20 random bits."""
    return (time.time_ns() // 1_000_000) << 20 | secrets.randbits(20)


def _scratch(root: Path, snapshot: Snapshot, source_id: int, stage: Path,
             memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB warehouse holding the committed ``ingest_log`` (what exactly-once needs),
    whose next source id is ``source_id``, spilling into ``stage``."""
    con = connect(":memory:", memory_limit=memory_limit)
    con.execute(f"SET temp_directory = {sql_string(stage / 'spill')}")
    con.execute("DROP SEQUENCE source_id_seq")
    con.execute(f"CREATE SEQUENCE source_id_seq START {int(source_id)}")
    # the columns from the scratch warehouse itself: schema_columns() would open and migrate another DuckDB
    con.execute(f"INSERT INTO ingest_log BY NAME {ingest_log_sql(root, snapshot, table_columns(con))}")
    return con


def _export(con: duckdb.DuckDBPyConnection, root: Path, stage: Path, source_id: int) -> dict[str, tuple[str, ...]]:
    """Write the source's rows of every table as Parquet under ``stage``, fsync them and rename them,
    with the files the loader wrote itself under ``stage / DIRECT``, into place under ``root``; return
    table -> files relative to ``root``."""
    sid = int(source_id)
    written: list[tuple[Path, Path]] = []    # (file, its path relative to the warehouse)
    for table in TABLES:
        where = (f" WHERE sha256 IN (SELECT sha256 FROM assets WHERE source_id = {sid})"
                 if table == "asset_content" else f" WHERE source_id = {sid}")
        if not con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table}{where} LIMIT 1)").fetchone()[0]:  # type: ignore[index]
            continue
        if table in PARTITIONED:
            con.execute(f"COPY (SELECT *, strftime(ts, '%Y-%m-%d') AS day FROM {table}{where}) "
                        f"TO {sql_string(stage / table)} (FORMAT parquet, PARTITION_BY (day), "
                        f"FILENAME_PATTERN '{sid}_{{i}}')")
        else:
            (stage / table).mkdir()
            con.execute(f"COPY (SELECT * FROM {table}{where}) TO {sql_string(stage / table / f'{sid}.parquet')} "
                        "(FORMAT parquet)")
        written.extend((f, f.relative_to(stage)) for f in sorted((stage / table).rglob("*.parquet")))
    written.extend((f, f.relative_to(stage / DIRECT)) for f in sorted((stage / DIRECT).rglob("*.parquet")))
    files: dict[str, list[str]] = {}
    directories: set[Path] = set()
    for path, relative in written:
        fsync_path(path)
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)
        directories.add(target.parent)
        files.setdefault(relative.parts[0], []).append(str(relative))
    for directory in directories:
        fsync_path(directory)
    return {t: tuple(f) for t, f in files.items()}


def _conflicts(mine: Commit, other: Commit) -> bool:
    """Whether ``other`` (committed after my snapshot) invalidates what my ingest decided."""
    if other.source_id == mine.source_id or set(other.replaces) & set(mine.replaces):
        return True
    if other.kind != mine.kind or mine.sha256 is None:
        return False
    return other.sha256 == mine.sha256 or other.path == mine.path


def _try_commit(root: Path, after: int, commit: Commit) -> Commit | None:
    """Publish ``commit`` at the first free version after version ``after`` (the last one its ingest
    read); None on a conflict."""
    record = json.dumps({**commit_record(commit), "committed_at": time.time()}, sort_keys=True).encode()
    directory = root / COMMITS
    directory.mkdir(exist_ok=True)
    version = after + 1
    while True:
        target = directory / f"{version:020d}.json"
        if publish(target, record):
            return Commit(version, commit.source_id, commit.kind, commit.path, commit.sha256, commit.replaces,
                          commit.files)
        other = json.loads(target.read_text())
        theirs = Commit(version, int(other["source_id"]), other["kind"], other["path"], other["sha256"],
                        tuple(other["replaces"]), {})
        if _conflicts(commit, theirs):
            return None
        version += 1


def ingest(root: str | Path, load: Callable[[duckdb.DuckDBPyConnection], IngestSummary], *,
           memory_limit: str | None = None) -> IngestSummary:
    """Run one ingest into the Parquet warehouse at ``root`` (created if missing) and commit it.

    ``load(con)`` is today's ingest of one source on a DuckDB warehouse connection (for example
    ``lambda con: ingest_access_log(con, path)``) returning an :class:`kit.ingest.core.IngestSummary`;
    an ``unchanged`` result commits nothing. Returns the summary of the attempt that committed, its
    ``seconds`` covering everything (attempts lost to a conflict, writing, committing)."""
    started = time.perf_counter()
    p = create(root).absolute()
    for _attempt in range(MAX_ATTEMPTS):
        snapshot = read_log(p)
        source_id = new_source_id()
        while source_id in {c.source_id for c in snapshot.commits}:
            source_id = new_source_id()
        stage = p / STAGING / str(source_id)
        stage.mkdir(parents=True)
        files: dict[str, tuple[str, ...]] = {}
        try:
            con = _scratch(p, snapshot, source_id, stage, memory_limit)
            _SCRATCH_ROOTS[id(con)] = (p, stage / DIRECT)
            try:
                before = {int(r[0]) for r in con.execute("SELECT source_id FROM ingest_log").fetchall()}
                summary = load(con)
                if summary.status == "unchanged":
                    return summary
                row = con.execute("SELECT kind, path, sha256 FROM ingest_log WHERE source_id = ?",
                                  [source_id]).fetchone()
                if row is None:
                    raise IngestError(f"the ingest did not record source {source_id} (a loader bug)")
                after = {int(r[0]) for r in con.execute("SELECT source_id FROM ingest_log").fetchall()}
                files = _export(con, p, stage, source_id)
            finally:
                _SCRATCH_ROOTS.pop(id(con), None)
                con.close()
            commit = Commit(0, source_id, row[0], row[1], row[2], tuple(sorted(before - after)), files)
            done = _try_commit(p, snapshot.version, commit)
            if done is not None:
                if done.version % CHECKPOINT_EVERY == 0:
                    _checkpoint(p, done.version)
                return dataclasses.replace(summary, seconds=time.perf_counter() - started)
            for relative in (f for fs in files.values() for f in fs):
                (p / relative).unlink(missing_ok=True)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    raise IngestError(f"{MAX_ATTEMPTS} attempts lost the commit to concurrent ingests of the same source; "
                      "try again", path=str(root))


def _checkpoint(root: Path, version: int) -> None:
    """Write the commit log's checkpoint at ``version`` (after the commit: the rows are visible either
    way); a failure is reported, not raised, as readers then use the previous checkpoint."""
    try:
        write_checkpoint(root, version, schema_columns())
    except (OSError, duckdb.Error, WarehouseError) as exc:
        print(f"perfkit: the commit log's checkpoint at version {version} was not written ({exc}); readers use "
              "the one before it", file=sys.stderr)


def convert(db: str | Path, root: str | Path) -> int:
    """Copy the DuckDB warehouse file ``db`` into a new (or empty) Parquet warehouse ``root``, one
    commit per finished source of its ``ingest_log``, keeping the source ids, the commit log checkpointed
    as an ingest checkpoints it; return the sources copied. The salt is not copied (a later access-log
    ingest into ``root`` hashes clients with ``root``'s own salt unless ``$PERFKIT_SALT`` is set). Raises
    IngestError when rows belong to no finished source (they would be lost)."""
    p = create(root).absolute()
    version = read_log(p).version
    if version:
        raise IngestError("convert needs a new or empty Parquet warehouse", path=str(root))
    con = connect(db, read_only=True)
    try:
        sources = con.execute("SELECT source_id, kind, path, sha256 FROM ingest_log WHERE finished_at IS NOT NULL "
                              "ORDER BY source_id").fetchall()
        for table in [t for t in TABLES if t not in ("ingest_log", "asset_content")]:
            stray = con.execute(f"SELECT count(*) FROM {table} WHERE source_id NOT IN "
                                "(SELECT source_id FROM ingest_log WHERE finished_at IS NOT NULL)").fetchone()
            if stray and stray[0]:
                raise IngestError(f"{stray[0]} rows of {table} belong to no finished source", path=str(db))
        for source_id, kind, path, sha in sources:
            stage = p / STAGING / f"convert-{source_id}"
            stage.mkdir(parents=True)
            try:
                files = _export(con, p, stage, int(source_id))
            finally:
                shutil.rmtree(stage, ignore_errors=True)
            committed = _try_commit(p, version, Commit(0, int(source_id), kind, path, sha, (), files))
            if committed is None:
                raise IngestError(f"another process committed source {source_id} while converting", path=str(root))
            version = committed.version
            if version % CHECKPOINT_EVERY == 0:   # as ingests do: readers of a converted warehouse of many
                _checkpoint(p, version)            # sources read one checkpoint, not every record
    finally:
        con.close()
    return len(sources)
