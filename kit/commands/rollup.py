"""``perfkit rollup --db FILE [--full]``: bring a DuckDB warehouse's per-day rollup of the requests up to date
(:func:`kit.analysis.request_groups.refresh_rollup`), as ``perfkit ingest`` does after loading."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rollup", help="bring the per-day rollup of the requests up to date (perfkit ingest does it too)",
        description="Regroup the days of the requests that the per-day rollup (table request_day_groups) does "
                    "not hold yet, or all of them with --full. `perfkit ingest` does this after loading; run it "
                    "after loading requests some other way (the kit's Python functions, your own SQL). The "
                    "optimization analyses read the rollup for the days a window holds whole, and ignore a "
                    "rollup that is out of date: it changes their speed, never their numbers. A Parquet "
                    "warehouse has none.")
    parser.add_argument("--db", metavar="FILE", required=True, help="the DuckDB warehouse")
    parser.add_argument("--full", action="store_true",
                        help="regroup every day (after changing requests in place, which the rollup cannot see)")
    parser.set_defaults(func=_rollup)


def _rollup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kit.analysis.request_groups import refresh_rollup
    from kit.errors import WarehouseError
    from kit.parquet_warehouse import is_parquet_warehouse
    from kit.warehouse import connect

    if not Path(args.db).exists():   # a writable open would create an empty warehouse
        raise WarehouseError(f"warehouse {args.db} does not exist")
    if is_parquet_warehouse(args.db):
        print(f"{args.db} is a Parquet warehouse: it has no rollup (its analyses group the requests themselves)")
        return 0
    con = connect(args.db)
    try:
        done = refresh_rollup(con, full=args.full)
    finally:
        con.close()
    print(f"{args.db}: " + (done.line() if done is not None else "no requests table"))
    return 0
