"""The ``perfkit`` command: finds the sub-command modules in ``kit.commands`` and dispatches.

A :class:`kit.errors.PerfkitError` (bad input, parameters or data) is printed as one line
``perfkit: error: <message>`` with exit code 1; any other exception is a bug and keeps its traceback."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import kit.commands
from kit import __version__
from kit.errors import PerfkitError


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="perfkit",
        description="Turn a service's performance history into a monitoring and optimization strategy.",
    )
    parser.add_argument("--version", action="version", version=f"perfkit {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(kit.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"kit.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PerfkitError as exc:
        print(f"perfkit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("perfkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
