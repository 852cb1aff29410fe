"""``perfkit vacuum --db ROOT [--older-than S] [--json]``: remove what no reader of a Parquet warehouse
sees (killed ingests' staging files and uncommitted data files, replaced sources' files) once older
than the grace period (see :func:`kit.parquet_warehouse.vacuum`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from kit.parquet_warehouse import VACUUM_GRACE_S

    parser = subparsers.add_parser(
        "vacuum", help="clean a Parquet warehouse: files of killed ingests and of replaced sources",
        description="Delete the files no reader of a Parquet warehouse sees: staging directories of killed "
                    "ingests, data files no commit lists, and the files of sources a --replace superseded, "
                    "once older than --older-than seconds (a younger one may belong to a running ingest or "
                    "to a reader that opened its views before the replace). Ingests ignore such files, so "
                    "vacuuming is never needed for correctness, only for space.")
    parser.add_argument("--db", metavar="ROOT", required=True, help="the Parquet warehouse directory")
    parser.add_argument("--older-than", metavar="SECONDS", type=float, default=VACUUM_GRACE_S,
                        help="grace period in seconds (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.set_defaults(func=_vacuum)


def _vacuum(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from kit.parquet_warehouse import vacuum

    result = vacuum(args.db, older_than_s=args.older_than)
    if args.json:
        print(json.dumps(asdict(result), sort_keys=True))
    else:
        print(f"{args.db}: removed {result.staging_removed} staging director(ies), {result.orphans_removed} "
              f"uncommitted and {result.replaced_removed} replaced data file(s), {result.bytes_freed:,} bytes")
    return 0
