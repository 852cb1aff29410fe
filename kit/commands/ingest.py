"""``perfkit ingest <kind> ...``: each module of :data:`KIND_MODULES` adds its kinds here
(``register_ingest(subparsers)`` adds a parser per kind and sets ``func``). The list is explicit so that
the CLI imports only the loaders, not the helper modules (the compiled log reader loads numba)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from kit.errors import ParameterError

KIND_MODULES = ("access_log", "assets", "events", "mysql_slow", "postgres", "profile", "prometheus",
                "timeseries", "trace")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="load a source (logs, metrics, query stats, traces, assets, profiles, events) into the warehouse",
        description="Load a source into the warehouse, exactly once: re-ingesting the same file is a no-op, "
                    "--replace swaps it, and a grown log ingests only its new lines.")
    kinds = parser.add_subparsers(title="kinds", metavar="KIND")
    for name in KIND_MODULES:
        importlib.import_module(f"kit.ingest.{name}").register_ingest(kinds)
    access_log = kinds.choices.get("access-log")
    if access_log is not None:
        access_log.set_defaults(func=_checked_access_log_options(access_log.get_default("func")))
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _checked_access_log_options(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run`` after checking ``--log-format`` and ``--route-rule``: kit.ingest.access_log and
    kit.ingest.routes report a bad one as a plain ValueError, which the CLI would show as a bug."""

    def checked(args: argparse.Namespace) -> int:
        from kit.ingest.access_log import get_format
        from kit.ingest.routes import parse_route_rule

        try:
            for rule in args.route_rule:
                parse_route_rule(rule)
            if args.log_format:
                get_format(None, args.log_format)
        except ValueError as exc:
            raise ParameterError(str(exc)) from exc
        return run(args)

    return checked
