"""The curated public API and the CLI's help."""

from __future__ import annotations

import kit
from kit.cli import build_parser, main


def test_public_api_is_exactly_all() -> None:
    public = {n for n in dir(kit) if not n.startswith("_") and n not in {"config", "warehouse", "annotations"}}
    public -= {m for m in public if getattr(getattr(kit, m), "__file__", None)}  # sub-modules imported by others
    assert public == set(kit.__all__) - {"__version__"}


def test_every_command_has_help(capsys) -> None:  # type: ignore[no-untyped-def]
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"run", "params", "ingest"} <= set(commands)
    for name, sub in commands.items():
        assert sub.format_help().strip(), name
    assert main([]) == 2
