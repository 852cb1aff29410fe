"""Generate a realistic, seeded performance history of a fictional web shop (requests, metrics, query
statistics, assets, profiles, deploys and planted incidents) into a DuckDB warehouse. The file is built
aside and swapped in only when complete; the same seed always gives the same content.
"""

from __future__ import annotations

import argparse

from kit.config import DEFAULT_DB
from kit.errors import ParameterError


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="build the seeded demo warehouse of a fictional web shop (with planted incidents)",
        description=__doc__)  # ``perfkit demo --help`` folds the docstring's lines into one paragraph
    parser.add_argument("--db", metavar="PATH", default=DEFAULT_DB,
                        help=f"warehouse file to (re)build (default: {DEFAULT_DB})")
    parser.add_argument("--requests", metavar="N", type=_positive_int, default=1_000_000,
                        help="number of HTTP requests to generate (default: 1000000; streamed in chunks, "
                             "so 100000000 runs in bounded memory)")
    parser.add_argument("--days", metavar="D", type=_positive_int, default=7,
                        help="length of the history in days, ending 2026-11-23T00:00Z (default: 7)")
    parser.add_argument("--seed", metavar="S", type=int, default=42,
                        help="random seed; the same seed gives the same warehouse content (default: 42)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from kit.demo import build_demo

    if args.requests < 1000:
        raise ParameterError(f"--requests must be >= 1000, got {args.requests}")
    if args.days > 366:
        raise ParameterError(f"--days must be between 1 and 366, got {args.days}")
    summary = build_demo(args.db, requests=args.requests, days=args.days, seed=args.seed,
                         progress=not args.quiet)
    print(summary.line())
    return 0
