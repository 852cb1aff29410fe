"""Folded stacks → ``profiles`` (kind ``profile``).

The folded ("collapsed") format that py-spy (``record -f raw``), Brendan Gregg's
``stackcollapse-perf.pl`` over ``perf script``, and async-profiler (``-o collapsed``) write: one line
per distinct stack, frames root first separated by ``;``, then a space and the sample count::

    main;handle_request;render_template;escape 42

Parsed in DuckDB. Blank lines and ``#`` comment lines are skipped; a line without a trailing integer
count, with an empty stack, or with an empty frame (``a;;b``) is rejected (field ``samples`` or
``stack``). One line is one record: ``lines_in = rows_loaded + rows_rejected + rows_skipped``.
The profile name is the file name without its extensions unless given.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

import duckdb

from kit.ingest.core import (
    IngestSummary,
    LoadCounts,
    add_common_args,
    add_file_ingest_parser,
    finish_staged_lines,
    given_options,
    ingest_file,
    lines_relation_sql,
    readable_path,
    run_ingest_cli,
    sql_string,
)
from kit.warehouse import Source

__all__ = ["KIND", "ingest_profile", "load_folded", "register_ingest"]

KIND = "profile"
_FOLDED = r"^(.*[^ \t])[ \t]+([0-9]+)[ \t]*$"


def load_folded(con: duckdb.DuckDBPyConnection, source: Source, path: Path, skip_lines: int = 0, *,
                profile: str | None = None, service: str | None = None,
                at: datetime | str | None = None) -> LoadCounts:
    """Load one folded-stacks file into ``profiles``."""
    name = profile or Path(path).name.split(".")[0]
    ts = "NULL" if at is None else f"CAST({sql_string(str(at))} AS TIMESTAMPTZ)"
    sid = int(source.source_id)
    pattern = sql_string(_FOLDED)
    with readable_path(path) as readable:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _pk_folded AS
            SELECT line_no, line, trim(coalesce(line, '')) = '' OR starts_with(ltrim(line), '#') AS skip,
                   regexp_extract(line, {pattern}, 1) AS stack,
                   try_cast(regexp_extract(line, {pattern}, 2) AS BIGINT) AS samples
            FROM ({lines_relation_sql(readable)}) WHERE line_no > {int(skip_lines)}""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _pk_folded_bad AS
        SELECT line_no, line, CASE WHEN samples IS NULL THEN 'samples' ELSE 'stack' END AS field
        FROM _pk_folded
        WHERE NOT skip AND (samples IS NULL OR trim(stack) = '' OR regexp_matches(stack, '(^|;)[ \\t]*(;|$)'))""")
    con.execute(f"""
        INSERT INTO profiles (ts, service, profile, stack, samples, source_id)
        SELECT {ts}, {sql_string(service) if service else 'NULL'}, {sql_string(name)}, trim(stack), samples, {sid}
        FROM _pk_folded WHERE NOT skip AND line_no NOT IN (SELECT line_no FROM _pk_folded_bad)
        ORDER BY line_no""")
    return finish_staged_lines(
        con, sid, "_pk_folded", "_pk_folded_bad",
        "CASE field WHEN 'samples' THEN 'no sample count at the end of the line (frame;frame count)' "
        "ELSE 'empty stack or empty frame' END",
        fmt="folded", formats_tried=("folded",))


def ingest_profile(con: duckdb.DuckDBPyConnection, path: str | Path, *, profile: str | None = None,
                   service: str | None = None, at: str | None = None, replace: bool = False) -> IngestSummary:
    """Ingest one folded-stacks file exactly once into ``profiles``."""
    def loader(c: duckdb.DuckDBPyConnection, source: Source, p: Path, skip: int) -> LoadCounts:
        return load_folded(c, source, p, skip, profile=profile, service=service, at=at)

    return ingest_file(con, KIND, path, loader, replace=replace,
                       options=given_options(profile=profile, service=service, at=at))


def register_ingest(subparsers: argparse._SubParsersAction) -> None:
    parser = add_file_ingest_parser(
        subparsers, KIND,
        help="folded stacks (py-spy, perf + stackcollapse, async-profiler) → profiles",
        description="Load folded-stack profiles: one 'frame;frame;frame count' line per distinct stack.")
    parser.add_argument("--profile", default=None, help="profile name (default: the file name)")
    parser.add_argument("--service", default=None, help="service the profile belongs to")
    parser.add_argument("--at", default=None, help="when the profile was taken (ISO 8601)")
    add_common_args(parser)

    def run(args: argparse.Namespace) -> int:
        return run_ingest_cli(args, lambda con, p: ingest_profile(
            con, p, profile=args.profile, service=args.service, at=args.at,  # type: ignore[arg-type]
            replace=args.replace))

    parser.set_defaults(func=run)
