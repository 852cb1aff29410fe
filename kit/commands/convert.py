"""``perfkit convert --db FILE --to ROOT``: copy a DuckDB warehouse into a new Parquet warehouse, one
commit per source, source ids kept (see :func:`kit.ingest.parquet.convert`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert", help="copy a DuckDB warehouse into a new Parquet warehouse directory",
        description="Copy every finished source of a DuckDB warehouse file into a new (or empty) Parquet "
                    "warehouse directory, one commit per source, keeping the source ids, so both hold the same "
                    "rows (for example the demo, to analyse it with Spark). Later `perfkit ingest` runs can add "
                    "to it.")
    parser.add_argument("--db", metavar="FILE", required=True, help="the DuckDB warehouse to copy")
    parser.add_argument("--to", metavar="ROOT", required=True, help="the Parquet warehouse directory to create")
    parser.set_defaults(func=_convert)


def _convert(args: argparse.Namespace) -> int:
    import time

    from kit.ingest.parquet import convert

    started = time.perf_counter()
    n = convert(args.db, args.to)
    print(f"{args.db} -> {args.to}: {n} source(s) in {time.perf_counter() - started:.1f} s")
    return 0
