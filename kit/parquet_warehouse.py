"""The Parquet warehouse: the DuckDB warehouse's tables as Parquet files in a directory, filled by many
``perfkit ingest`` processes at once, read by DuckDB (views) and by Spark (:func:`committed_files`).

Layout of a warehouse ``ROOT`` (shared with the Spark reader; do not change it lightly)::

    ROOT/perfkit-warehouse.json                          marker: {"format": "perfkit-parquet", "version": 1}
    ROOT/perfkit-warehouse.salt                          the client-hash salt (never in the data)
    ROOT/<large table>/day=YYYY-MM-DD/<source_id>_<i>.parquet   requests, metrics, queries, cache_requests;
                                                         day = UTC date of ts, NULL ts: day=__HIVE_DEFAULT_PARTITION__
    ROOT/<small table>/<source_id>.parquet               ingest_log, rejects, assets, asset_content, profiles, events
    ROOT/_commits/<version, 20 digits>.json              one commit record per ingested source
    ROOT/_staging/<source_id>/                           an ingest in progress (or killed): never read

Every file holds every schema column (same names and types as :mod:`kit.warehouse`; TIMESTAMPTZ as
UTC timestamps); ``day`` is the only Hive key and is not a data column.

Method: an ingest loads its source into a scratch in-memory DuckDB warehouse with the existing
loaders and :func:`kit.ingest.core.ingest_file` (so exactly-once, replace, append of grown logs and
line accounting are today's code), seeded with the committed ``ingest_log``; it writes the new
source's rows as Parquet into its staging directory, fsyncs and renames them into place, then commits
by creating the next commit record ``_commits/<version>.json`` with ``os.link`` (fails if it exists):
that link is the one moment the rows become visible. A process that finds its version taken reads the
newer commits; if one touched the same kind and file (same sha256 or path) or replaced the same
sources, it deletes its files and starts over (optimistic concurrency, as in Delta Lake's log), which
turns a race on the same file into ``unchanged``; otherwise it takes the next version.

Visible = the commits no other commit replaces (``replaces`` lists the source ids a ``--replace``
superseded; a grown log's new lines are a source of their own, as in the DuckDB file). Source ids are
unique without a shared database: milliseconds since the epoch << 20 | 20 random bits (time-ordered
like the DuckDB sequence; an id already in the log is drawn again, and two ingests drawing the same id
in the same millisecond conflict at commit, so one starts over).

Limits: readers read every commit record, and each ingest every visible ``ingest_log`` file
(thousands: fine; millions would want a checkpoint). Several machines need a shared POSIX file
system with atomic ``link()`` (NFS, CephFS, Lustre); an object store would need a put-if-absent commit
instead (not done). Orphans of killed ingests (staging directories, renamed but uncommitted data
files) are invisible and removed by :func:`vacuum` (``perfkit vacuum``) once older than its grace
period; ingests never remove them (a young one may be a running ingest's).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from kit.errors import WarehouseError

MARKER = "perfkit-warehouse.json"
SALT_FILE = "perfkit-warehouse.salt"
FORMAT = "perfkit-parquet"
FORMAT_VERSION = 1
COMMITS = "_commits"
STAGING = "_staging"
NULL_DAY = "__HIVE_DEFAULT_PARTITION__"       # DuckDB writes and reads it as NULL, as Spark and Hive do
PARTITIONED = ("requests", "metrics", "queries", "cache_requests")
UNPARTITIONED = ("ingest_log", "rejects", "assets", "asset_content", "profiles", "events")
TABLES = (*PARTITIONED, *UNPARTITIONED)
MAX_ATTEMPTS = 8                              # an ingest starts over at most this often on conflicts
VACUUM_GRACE_S = 3600.0                       # orphans younger than this may belong to a running ingest


@dataclass(frozen=True)
class Commit:
    """One commit record: a source whose files became visible at ``version``."""

    version: int
    source_id: int
    kind: str
    path: str | None                      # ingest_log.path (resolved file, or a live source's label)
    sha256: str | None
    replaces: tuple[int, ...]             # source ids this commit supersedes
    files: dict[str, tuple[str, ...]]     # table -> data files, relative to the warehouse root


@dataclass(frozen=True)
class Snapshot:
    """The commit log as read at one moment: ``version`` is the last commit's (0 for none)."""

    version: int
    commits: tuple[Commit, ...]

    def visible(self) -> list[Commit]:
        """The commits whose rows readers see: every commit that no other commit replaces."""
        replaced = {sid for c in self.commits for sid in c.replaces}
        return [c for c in self.commits if c.source_id not in replaced]


@dataclass(frozen=True)
class VacuumResult:
    """What :func:`vacuum` removed (counts of files or directories, and bytes)."""

    staging_removed: int
    orphans_removed: int
    replaced_removed: int
    bytes_freed: int


# ---------------------------------------------------------------------------------------------- layout

def is_parquet_warehouse(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding the Parquet warehouse marker."""
    return (Path(path) / MARKER).is_file()


def create(root: str | Path) -> Path:
    """Make ``root`` a Parquet warehouse (salt, then marker) unless it is one; safe to race (a racing
    creator's salt and temp files are allowed). Raises WarehouseError for a file or a non-empty
    directory that is not a warehouse."""
    p = Path(root)
    if p.exists() and not p.is_dir():
        raise WarehouseError(f"{p} is a file (a DuckDB warehouse?), not a Parquet warehouse directory")
    if not is_parquet_warehouse(p):
        if p.is_dir() and any(e.name != SALT_FILE and not e.name.startswith(".tmp-") for e in p.iterdir()):
            raise WarehouseError(f"{p} is a non-empty directory without {MARKER}: not a Parquet warehouse")
        p.mkdir(parents=True, exist_ok=True)
        publish(p / SALT_FILE, (secrets.token_hex(16) + "\n").encode(), mode=0o600)
        publish(p / MARKER, json.dumps({"format": FORMAT, "version": FORMAT_VERSION}).encode())
    _check_marker(p)
    return p


def _check_marker(root: Path) -> None:
    """Raise WarehouseError unless ``root`` holds a marker of the format and version this kit reads."""
    if not is_parquet_warehouse(root):
        raise WarehouseError(f"{root} is not a Parquet warehouse (no {MARKER})")
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, ValueError) as exc:
        raise WarehouseError(f"{root / MARKER}: unreadable warehouse marker ({exc})") from None
    if marker.get("format") != FORMAT or marker.get("version") != FORMAT_VERSION:
        raise WarehouseError(f"{root / MARKER}: format {marker.get('format')!r} version {marker.get('version')!r}, "
                             f"this kit reads {FORMAT!r} version {FORMAT_VERSION}")


def salt_file(root: str | Path) -> Path:
    """The file holding the warehouse's client-hash salt."""
    return Path(root) / SALT_FILE


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(target: Path, data: bytes, mode: int = 0o644) -> bool:
    """Create ``target`` with ``data`` all at once, or not at all if it exists (temp file, fsync,
    ``os.link``); True if this call created it."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        fsync_path(target.parent)
        return True
    finally:
        os.unlink(tmp)


# ---------------------------------------------------------------------------------------------- reading

def read_log(root: str | Path) -> Snapshot:
    """Every commit record of the warehouse, in version order."""
    directory = Path(root) / COMMITS
    commits = []
    names = sorted(n for n in os.listdir(directory) if n.endswith(".json")) if directory.is_dir() else []
    for name in names:
        record = json.loads((directory / name).read_text())
        commits.append(Commit(int(name[:-5]), int(record["source_id"]), record["kind"], record["path"],
                              record["sha256"], tuple(record["replaces"]),
                              {t: tuple(f) for t, f in record["files"].items()}))
    return Snapshot(commits[-1].version if commits else 0, tuple(commits))


def committed_files(root: str | Path) -> dict[str, list[Path]]:
    """Table -> the data files of committed, not replaced sources (absolute paths, every table listed,
    in commit order). What every reader uses: data files are never globbed."""
    p = Path(root).absolute()
    _check_marker(p)
    out: dict[str, list[Path]] = {t: [] for t in TABLES}
    for commit in read_log(p).visible():
        for table, files in commit.files.items():
            out[table].extend(p / f for f in files)
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_list(paths: Iterable[Path | str]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


Columns = dict[str, tuple[tuple[str, str], ...]]   # table -> (column, DuckDB type) in schema order


def table_sql(table: str, files: list[Path], columns: Columns) -> str:
    """A SELECT of ``table``'s rows in ``files`` with the schema's ``columns`` and types (no rows when
    there is no file); ``asset_content`` is content-addressed, so one row per sha256."""
    columns_ = columns[table]
    if not files:
        return "SELECT " + ", ".join(f"NULL::{t} AS {_quote(c)}" for c, t in columns_) + " WHERE false"
    select = ", ".join(f"{_quote(c)}::{t} AS {_quote(c)}" for c, t in columns_)
    distinct = "DISTINCT ON (sha256) " if table == "asset_content" else ""
    return (f"SELECT {distinct}{select} FROM read_parquet({_sql_list(files)}, hive_partitioning=false, "
            "union_by_name=true)")


def connect_views(root: str | Path, columns: Columns, schema_version: int, *, memory_limit: str | None = None,
                  threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection with one view per table over exactly the committed files (see
    :func:`committed_files`) with the schema's ``columns``, plus ``schema_info`` (``schema_version``);
    the analyses run on it unchanged (:func:`kit.warehouse.connect` calls this); temp tables work.
    Writes fail: DuckDB refuses INSERT/UPDATE/DELETE on a view, and any other write names the read-only
    database ``parquet_warehouse_read_only``. The views see the commits made before this call."""
    files = committed_files(root)
    config: dict[str, Any] = {}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = threads
    # DuckDB spills to "<catalog>.tmp" by default, next to a catalog deleted below: a sort or join larger
    # than the memory limit would fail. Its own directory instead, created by DuckDB only when it spills.
    config["temp_directory"] = str(Path(tempfile.gettempdir()) / f"perfkit-spill-{uuid.uuid4().hex}")
    with tempfile.TemporaryDirectory(prefix="perfkit-views-") as tmp:
        catalog = Path(tmp) / "parquet_warehouse_read_only.duckdb"
        build = duckdb.connect(str(catalog))
        try:
            for table in TABLES:
                build.execute(f"CREATE VIEW {table} AS {table_sql(table, files[table], columns)}")
            build.execute(f"CREATE VIEW schema_info AS SELECT {int(schema_version)}::INTEGER AS version, "
                          "NULL::TIMESTAMPTZ AS applied_at")
        finally:
            build.close()
        con = duckdb.connect(str(catalog), read_only=True, config=config)  # the catalog is read at open
    con.execute("SET TimeZone = 'UTC'")
    return con


# ---------------------------------------------------------------------------------------------- upkeep

def vacuum(root: str | Path, *, older_than_s: float = VACUUM_GRACE_S) -> VacuumResult:
    """Delete what no reader sees, once older than ``older_than_s`` seconds (a younger one may belong
    to a running ingest, or to a reader that opened its views before a replace): staging directories
    and temp commit files of killed ingests, data files no commit lists, and files of replaced
    sources (their commit records stay, as history)."""
    p = Path(root)
    _check_marker(p)
    cutoff = time.time() - older_than_s
    staging = orphans = replaced = freed = 0

    def old(path: Path) -> bool:
        try:
            return path.lstat().st_mtime < cutoff
        except FileNotFoundError:
            return False

    def remove(path: Path) -> int:
        size = path.stat().st_size
        path.unlink(missing_ok=True)
        return size

    if (p / STAGING).is_dir():
        for entry in (p / STAGING).iterdir():
            if old(entry):
                freed += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                shutil.rmtree(entry, ignore_errors=True)
                staging += 1
    snapshot = read_log(p)
    for tmp in (p / COMMITS).glob(".tmp-*") if (p / COMMITS).is_dir() else ():
        if old(tmp):
            freed += remove(tmp)
    listed = {f for c in snapshot.commits for fs in c.files.values() for f in fs}
    for table in TABLES:
        for path in (p / table).rglob("*.parquet") if (p / table).is_dir() else ():
            relative = str(path.relative_to(p))
            if relative not in listed and old(path):
                freed += remove(path)
                orphans += 1
    replacer = {sid: c.version for c in snapshot.commits for sid in c.replaces}   # replaced source -> by
    for commit in snapshot.commits:
        by = replacer.get(commit.source_id)
        if by is None or (p / COMMITS / f"{by:020d}.json").stat().st_mtime >= cutoff:
            continue
        for relative in (f for fs in commit.files.values() for f in fs):
            if (p / relative).exists():
                freed += remove(p / relative)
                replaced += 1
    return VacuumResult(staging, orphans, replaced, freed)
