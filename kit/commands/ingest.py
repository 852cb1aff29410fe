"""``perfkit ingest <kind> ...``: every module in ``kit.ingest`` that defines ``register_ingest``
adds its kind here (``register_ingest(subparsers)`` adds one parser and sets ``func``)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import kit.ingest


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="load a source (logs, metrics, query stats, traces, assets, profiles, events) into the warehouse",
        description="Load a source into the warehouse, exactly once: re-ingesting the same file is a no-op, "
                    "--replace swaps it, and a grown log ingests only its new lines.")
    kinds = parser.add_subparsers(title="kinds", metavar="KIND")
    for info in sorted(pkgutil.iter_modules(kit.ingest.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"kit.ingest.{info.name}")
        if hasattr(module, "register_ingest"):
            module.register_ingest(kinds)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
