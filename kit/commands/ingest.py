"""``perfkit ingest <kind> ...``: each module of :data:`KIND_MODULES` adds its kinds here
(``register_ingest(subparsers)`` adds a parser per kind and sets ``func``). The list is explicit so that
the CLI imports only the loaders, not the helper modules (the compiled log reader loads numba)."""

from __future__ import annotations

import argparse
import importlib

KIND_MODULES = ("access_log", "assets", "events", "mysql_slow", "postgres", "pg_stat_statements", "profile",
                "prometheus", "timeseries", "trace")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="load a source (logs, metrics, query stats, traces, assets, profiles, events) into the warehouse",
        description="Load a source into the warehouse, exactly once: re-ingesting the same file is a no-op, "
                    "--replace swaps it, and a grown log ingests only its new lines.")
    kinds = parser.add_subparsers(title="kinds", metavar="KIND")
    for name in KIND_MODULES:
        importlib.import_module(f"kit.ingest.{name}").register_ingest(kinds)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
