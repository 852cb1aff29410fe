"""``perfkit findings --db W [--start T --end T] [--json]``: what changed, where, when and why (the
bottleneck findings of notebook 30) without running the notebooks, for CI jobs and chat-ops."""

from __future__ import annotations

import argparse
import sys

from kit.config import DEFAULT_DB


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "findings", help="ranked bottleneck findings: what changed, where, when and why (table or JSON)",
        description="Detect changes in the window (latency shifts, spread changes, 5xx bursts, traffic drops, "
                    "cache hit-ratio drops, saturation) per service and route, with onset and end, the effect "
                    "and its 95%% interval, confidence, the share of request time or errors it cost, and its "
                    "probable causes (deploy/config events, metrics, query fingerprints, profile frames). "
                    "Events of kind 'incident' are never read. --json prints the same document as the "
                    "'findings' key of results/bottlenecks.json.")
    parser.add_argument("--db", metavar="PATH", default=DEFAULT_DB, help="warehouse (default: %(default)s)")
    parser.add_argument("--start", metavar="ISO", help="first instant (inclusive, UTC); default: first request")
    parser.add_argument("--end", metavar="ISO", help="end of the window (exclusive, UTC); default: after the last")
    parser.add_argument("--service", metavar="NAME", action="append", dest="services",
                        help="restrict to a service (repeatable)")
    parser.add_argument("--min-confidence", choices=("low", "medium", "high"), default="low",
                        help="leave out findings below this confidence in the table (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON (schema-validated) instead of a table")
    parser.set_defaults(func=_findings)


def _findings(args: argparse.Namespace) -> int:
    from kit.analysis.findings import find_bottlenecks, findings_table
    from kit.analysis.window import resolve_window
    from kit.report.render import validate_document
    from kit.results import dumps
    from kit.warehouse import connect

    con = connect(args.db, read_only=True)
    try:
        window = resolve_window(con, args.start, args.end, args.services)
        found = find_bottlenecks(con, window, services=tuple(args.services or ()))
    finally:
        con.close()
    if args.json:
        document = found.to_dict()
        validate_document(document, "bottleneck_findings")
        sys.stdout.write(dumps(document))  # the same text as the 'findings' key of results/bottlenecks.json
        return 0
    print(f"window {window.label()}  bucket {found.bucket_s} s  findings {len(found.items)}")
    for note in found.notes:
        print(note)
    print(findings_table(found, args.min_confidence))
    return 0
