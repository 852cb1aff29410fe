"""A directory of static files → ``assets`` + content-addressed ``asset_content`` (kind ``assets``).

Each regular file under the directory becomes one ``assets`` row: the URL path it is served at
(``url_prefix`` + its path relative to the directory, ``/`` separators), its content type (from the
extension; ``application/octet-stream`` when unknown), size and sha256. Its bytes go to
``asset_content`` keyed by sha256, stored once however many files share them, so the compression
analysis can read them back; files above ``max_content_bytes`` are listed but their bytes not kept.

**Exactly once**: the directory's *manifest* (sorted relative paths with their sha256) is hashed; the
same manifest again is ``unchanged``, and ``replace=True`` swaps the earlier ingest of the same
directory atomically. Counted per *file*: ``lines_in`` = files found; an unreadable file is rejected
(field ``file``); symbolic links to directories are not followed.
"""

from __future__ import annotations

import argparse
import hashlib
import mimetypes
import os
import time
from pathlib import Path

import duckdb

from kit.ingest.core import IngestError, IngestSummary, LoadCounts, add_common_args, ingest_live, run_ingest_cli
from kit.warehouse import Source, delete_source

__all__ = ["KIND", "ingest_assets", "register_ingest", "scan_assets"]

KIND = "assets"
_EXTRA_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
                ".woff": "font/woff", ".woff2": "font/woff2", ".webp": "image/webp", ".avif": "image/avif",
                ".json": "application/json", ".wasm": "application/wasm", ".map": "application/json",
                ".ico": "image/vnd.microsoft.icon", ".txt": "text/plain", ".xml": "application/xml"}


def _content_type(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in _EXTRA_TYPES:
        return _EXTRA_TYPES[ext]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def scan_assets(root: str | Path) -> list[tuple[str, Path]]:
    """The regular files under ``root`` as (relative POSIX path, absolute path), sorted."""
    base = Path(root)
    if not base.is_dir():
        raise IngestError("not a directory", path=base)
    found: list[tuple[str, Path]] = []
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            full = Path(dirpath) / name
            if full.is_file():
                found.append((full.relative_to(base).as_posix(), full))
    return sorted(found)


def ingest_assets(con: duckdb.DuckDBPyConnection, root: str | Path, *, url_prefix: str = "/",
                  max_content_bytes: int = 20 * 1024 * 1024, replace: bool = False) -> IngestSummary:
    """Ingest a directory of static files exactly once (see the module docstring)."""
    started = time.perf_counter()
    base = Path(root).resolve()
    files = scan_assets(base)
    rows: list[tuple[str, str, int, str]] = []
    contents: dict[str, bytes] = {}
    bad: list[tuple[str, str]] = []
    manifest = hashlib.sha256()
    prefix = "/" + url_prefix.strip("/") + "/" if url_prefix.strip("/") else "/"
    for rel, full in files:
        try:
            data = full.read_bytes()
        except OSError as exc:
            bad.append((rel, f"unreadable: {exc.strerror or exc}"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        manifest.update(f"{rel}\t{digest}\n".encode())
        rows.append((prefix + rel, _content_type(full), len(data), digest))
        if len(data) <= max_content_bytes:
            contents[digest] = data
    manifest_sha = manifest.hexdigest()
    label = str(base)
    previous = con.execute("SELECT source_id FROM ingest_log WHERE kind = ? AND sha256 = ? "
                           "AND finished_at IS NOT NULL ORDER BY source_id LIMIT 1", [KIND, manifest_sha]).fetchone()
    if previous and not replace:
        return IngestSummary(KIND, label, "unchanged", int(previous[0]), None, 0, 0, 0, 0,
                             time.perf_counter() - started)
    if not files:
        raise IngestError("no files in the directory", path=base)

    replaced: list[int] = []

    def loader(c: duckdb.DuckDBPyConnection, source: Source) -> LoadCounts:
        if replace:
            for (sid,) in c.execute("SELECT source_id FROM ingest_log WHERE kind = ? AND (path = ? OR sha256 = ?) "
                                    "AND source_id <> ?", [KIND, label, manifest_sha, source.source_id]).fetchall():
                delete_source(c, int(sid))
                replaced.append(int(sid))
        c.execute("UPDATE ingest_log SET sha256 = ?, size_bytes = ? WHERE source_id = ?",
                  [manifest_sha, sum(r[2] for r in rows), source.source_id])
        if rows:
            c.executemany("INSERT INTO assets (path, content_type, size_bytes, sha256, source_id) "
                          "VALUES (?, ?, ?, ?, ?)", [(*r, source.source_id) for r in rows])
        if contents:
            c.executemany("INSERT INTO asset_content (sha256, content) VALUES (?, ?) ON CONFLICT DO NOTHING",
                          list(contents.items()))
        if bad:
            c.executemany("INSERT INTO rejects (source_id, line_no, field, reason, raw) VALUES (?, NULL, 'file', ?, ?)",
                          [(source.source_id, reason, rel) for rel, reason in bad])
        return LoadCounts(lines_in=len(files), rows_loaded=len(rows), rows_rejected=len(bad), fmt="directory")

    summary = ingest_live(con, KIND, label, loader, options={"url_prefix": prefix})
    if replaced:
        return IngestSummary(**{**summary.__dict__, "status": "replaced"})
    return summary


def register_ingest(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        KIND, help="a directory of static files → assets (+ content for compression analysis)",
        description="Load every file under a directory: URL path, content type, size, sha256 and content.")
    parser.add_argument("directory", help="directory of static files (e.g. the web root)")
    parser.add_argument("--url-prefix", default="/", help="URL path the directory is served at (default /)")
    parser.add_argument("--max-content-mb", type=float, default=20.0,
                        help="keep the bytes of files up to this size (default 20 MB)")
    add_common_args(parser)

    def run(args: argparse.Namespace) -> int:
        return run_ingest_cli(args, lambda con, _p: ingest_assets(
            con, args.directory, url_prefix=args.url_prefix,
            max_content_bytes=int(args.max_content_mb * 1024 * 1024), replace=args.replace))

    parser.set_defaults(func=run)
