"""``perfkit db-advice --db W --dsn DSN [--start T --end T] [--json]``: the database digest of the
warehouse, then live index advice on a PostgreSQL server (EXPLAIN with hypothetical indexes, hypopg)."""

from __future__ import annotations

import argparse
import sys

from kit.config import DEFAULT_DB


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "db-advice", help="index advice: EXPLAIN the top query fingerprints on a live PostgreSQL with hypopg",
        description="Rank the warehouse's query fingerprints by database time, pick those worth an EXPLAIN, and "
                    "on the PostgreSQL server at --dsn evaluate their candidate indexes as hypothetical indexes "
                    "(CREATE EXTENSION hypopg; nothing is created for real, no statement is executed). An index "
                    "is proposed only when it cuts the plan cost by at least half, with the time it would "
                    "save (calls x mean time x cost cut), its size and the table's write load. Each EXPLAIN is "
                    "bounded by --statement-timeout-ms and the whole step by --budget-s. Passwords in the DSN "
                    "are never printed; prefer ~/.pgpass or PGPASSWORD.")
    parser.add_argument("--db", metavar="PATH", default=DEFAULT_DB, help="warehouse (default: %(default)s)")
    parser.add_argument("--dsn", required=True, help="libpq connection string or postgresql:// URL of the server")
    parser.add_argument("--start", metavar="ISO", help="first instant (inclusive, UTC); default: first request")
    parser.add_argument("--end", metavar="ISO", help="end of the window (exclusive, UTC); default: after the last")
    parser.add_argument("--statement-timeout-ms", type=int, default=2000,
                        help="statement_timeout of each EXPLAIN (default: %(default)s)")
    parser.add_argument("--budget-s", type=float, default=60.0, help="time for the whole step (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the advice as JSON")
    parser.set_defaults(func=_advice)


def _advice(args: argparse.Namespace) -> int:
    from kit.analysis.database import analyse_database
    from kit.analysis.database.advice import advise_indexes
    from kit.analysis.window import resolve_window
    from kit.results import dumps
    from kit.warehouse import connect

    con = connect(args.db, read_only=True)
    try:
        window = resolve_window(con, args.start, args.end, None)
        analysis = analyse_database(con, window)
    finally:
        con.close()
    advice = advise_indexes(args.dsn, analysis, statement_timeout_ms=args.statement_timeout_ms,
                            total_budget_s=args.budget_s)
    if args.json:
        sys.stdout.write(dumps(advice))
        return 0
    print(f"window {window.label()}  server {advice.dsn} (PostgreSQL {advice.server_version})  "
          f"{len(advice.checks)} explained in {advice.elapsed_s:.1f} s")
    for p in advice.proposals:
        print(f"{p.ddl};\n  plan cost {p.cost_before:,.0f} -> {p.cost_after:,.0f} (-{p.cost_reduction:.0%}), "
              f"saves ~{p.total_saved_ms / 1000:,.1f} s of database time, size ~{p.size_bytes / 1e6:,.1f} MB\n"
              f"  {p.write_cost}")
        for s in p.also_serves:
            print(f"  also serves {s.fingerprint[:90]} (plan cost -{s.cost_reduction:.0%})")
    for c in advice.checks:
        print(f"- {c.fingerprint[:100]}: {c.outcome}")
    for fp, why in advice.skipped.items():
        print(f"- {fp[:100]}: skipped, {why}")
    if not advice.proposals:
        print("no index cuts a plan's cost by half")
    return 0
