"""The Parquet warehouse: the DuckDB warehouse's tables as Parquet files in a directory, filled by many
``perfkit ingest`` processes at once, read by DuckDB (views) and by Spark (:func:`committed_files`).

Layout of a warehouse ``ROOT`` (shared with the Spark reader; do not change it lightly)::

    ROOT/perfkit-warehouse.json                          marker: {"format": "perfkit-parquet", "version": 1}
    ROOT/perfkit-warehouse.salt                          the client-hash salt (never in the data)
    ROOT/<large table>/day=YYYY-MM-DD/<source_id>_<i>.parquet   requests, metrics, queries, cache_requests;
                                                         day = UTC date of ts, NULL ts: day=__HIVE_DEFAULT_PARTITION__
    ROOT/<small table>/<source_id>.parquet               ingest_log, rejects, assets, asset_content, profiles, events
    ROOT/_commits/<version, 20 digits>.json              one commit record per ingested source
    ROOT/_commits/<version>.checkpoint                   every CHECKPOINT_EVERY versions: the records up to it
    ROOT/_commits/<version>.ingest_log.parquet           and the ingest_log rows of the sources visible at it
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

Checkpoints: the ingest (or ``convert``) that commits a version divisible by :data:`CHECKPOINT_EVERY`
then writes, with the same link-or-nothing publish, ``<version>.ingest_log.parquet`` (the ``ingest_log``
rows of the sources visible at that version, in one file) and then ``<version>.checkpoint`` (every commit
record up to it, in one JSON document). A reader takes the newest checkpoint and the commit records
after it; an ingest reads the checkpoint's ``ingest_log`` file, less the sources replaced since, and the
``ingest_log`` files of the commits after it. Commit records are immutable, so a checkpoint is a copy of
them, never a second truth; a missing one (its ingest was killed) only means the previous one is used.
The names do not end in ``.json``: a kit older than checkpoints ignores them and reads every record, as
before.

Limits: readers list every data file (thousands of sources: fine; compaction of small files is not
done). Several machines need a shared POSIX file
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
from collections.abc import Callable, Iterable
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
CHECKPOINT_EVERY = 100                        # versions between checkpoints of the commit log
CHECKPOINT = ".checkpoint"                    # <version, 20 digits>.checkpoint: the commit records up to it
CHECKPOINT_LOG = ".ingest_log.parquet"        # <version>.ingest_log.parquet: ingest_log visible at it


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
    """The commit log as read at one moment: ``version`` is the last commit's (0 for none);
    ``checkpoint`` the version of the checkpoint it started from (0: none)."""

    version: int
    commits: tuple[Commit, ...]
    checkpoint: int = 0

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


def publish(target: Path, data: bytes | Callable[[Path], None], mode: int = 0o644) -> bool:
    """Create ``target`` with ``data`` all at once, or not at all if it exists (temp file, fsync,
    ``os.link``); True if this call created it. ``data``: the bytes, or a function that writes the file
    at the path it is given."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
        if not isinstance(data, bytes):
            data(Path(tmp))
        os.chmod(tmp, mode)
        fsync_path(Path(tmp))
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
    """Every commit record of the warehouse, in version order: the newest checkpoint's, then those after it."""
    directory = Path(root) / COMMITS
    names = os.listdir(directory) if directory.is_dir() else []
    checkpoints = sorted(n for n in names if n.endswith(CHECKPOINT) and n[:-len(CHECKPOINT)].isdigit())
    base, commits = 0, []
    if checkpoints:
        base = int(checkpoints[-1][:-len(CHECKPOINT)])
        commits = [_commit(int(r["version"]), r) for r in json.loads((directory / checkpoints[-1]).read_text())]
    for name in sorted(n for n in names if n.endswith(".json") and n[:-5].isdigit() and int(n[:-5]) > base):
        commits.append(_commit(int(name[:-5]), json.loads((directory / name).read_text())))
    return Snapshot(commits[-1].version if commits else 0, tuple(commits), base)


def _commit(version: int, record: dict[str, Any]) -> Commit:
    return Commit(version, int(record["source_id"]), record["kind"], record["path"], record["sha256"],
                  tuple(record["replaces"]), {t: tuple(f) for t, f in record["files"].items()})


def commit_record(commit: Commit) -> dict[str, Any]:
    """The JSON record of ``commit`` (its version is the record's file name)."""
    return {"source_id": commit.source_id, "kind": commit.kind, "path": commit.path, "sha256": commit.sha256,
            "replaces": list(commit.replaces), "files": {t: list(f) for t, f in commit.files.items()}}


def write_checkpoint(root: str | Path, version: int, columns: Columns) -> None:
    """Publish the checkpoint of ``version`` (module docstring): its ``ingest_log`` file, then its records.
    Either may exist already (then it is kept: both are copies of immutable records)."""
    directory = Path(root) / COMMITS
    snapshot = read_log(root)
    upto = tuple(c for c in snapshot.commits if c.version <= version)
    if not upto or upto[-1].version != version or snapshot.checkpoint > version:
        raise WarehouseError(f"{root}: no commit {version} to checkpoint after checkpoint {snapshot.checkpoint}")
    then = Snapshot(version, upto, snapshot.checkpoint)   # the log at ``version``, from the previous checkpoint
    target = directory / f"{version:020d}{CHECKPOINT_LOG}"
    if not target.exists():
        def copy(tmp: Path) -> None:
            con = duckdb.connect(":memory:")
            try:
                con.execute(f"COPY ({ingest_log_sql(root, then, columns)}) TO '{tmp}' (FORMAT parquet)")
            finally:
                con.close()
        publish(target, copy)
    records = [{"version": c.version, **commit_record(c)} for c in upto]
    publish(directory / f"{version:020d}{CHECKPOINT}", json.dumps(records, sort_keys=True).encode())


def ingest_log_sql(root: str | Path, snapshot: Snapshot, columns: Columns) -> str:
    """A SELECT of the ``ingest_log`` rows of the sources visible in ``snapshot``: its checkpoint's file
    less the sources replaced since, and the files of the visible commits after the checkpoint."""
    p = Path(root)
    later = [c for c in snapshot.visible() if c.version > snapshot.checkpoint]
    rest = table_sql("ingest_log", [p / f for c in later for f in c.files.get("ingest_log", ())], columns)
    if not snapshot.checkpoint:
        return rest
    replaced = sorted({sid for c in snapshot.commits if c.version > snapshot.checkpoint for sid in c.replaces})
    base = table_sql("ingest_log", [p / COMMITS / f"{snapshot.checkpoint:020d}{CHECKPOINT_LOG}"], columns)
    keep = f" WHERE source_id NOT IN ({', '.join(map(str, replaced))})" if replaced else ""
    return f"SELECT * FROM ({base}){keep} UNION ALL {rest}"


def committed_files(root: str | Path) -> dict[str, list[Path]]:
    """Table -> the data files of committed, not replaced sources (absolute paths, every table listed,
    in commit order). What every reader uses: data files are never globbed."""
    p = Path(root).absolute()
    _check_marker(p)
    return _visible_files(p, read_log(p))


def _visible_files(root: Path, snapshot: Snapshot) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {t: [] for t in TABLES}
    for commit in snapshot.visible():
        for table, files in commit.files.items():
            out[table].extend(root / f for f in files)
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
    p = Path(root).absolute()
    _check_marker(p)
    snapshot = read_log(p)
    files = _visible_files(p, snapshot)
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
                select = ingest_log_sql(p, snapshot, columns) if table == "ingest_log" else \
                    table_sql(table, files[table], columns)
                build.execute(f"CREATE VIEW {table} AS {select}")
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
