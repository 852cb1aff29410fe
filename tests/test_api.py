"""The curated public API and the CLI's help."""

from __future__ import annotations

import subprocess
import sys

import pytest

import kit
from kit.cli import build_parser, main


def test_public_api_is_exactly_all() -> None:
    namespace: dict = {}
    exec("from kit import *", namespace)  # noqa: S102 - the star import is what is being tested
    assert set(namespace) - {"__builtins__"} == set(kit.__all__)
    assert all(namespace[name] is not None for name in kit.__all__)
    assert kit.RunConfig.__module__ == "kit.config" and kit.connect.__module__ == "kit.warehouse"
    with pytest.raises(AttributeError):
        kit.not_a_name  # noqa: B018


def test_importing_the_runner_does_not_load_the_data_stack() -> None:
    code = "import sys, kit.runner; print(sorted({'duckdb', 'pandas', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # papermill workers stay small


def test_every_command_has_help(capsys) -> None:  # type: ignore[no-untyped-def]
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"run", "params", "ingest"} <= set(commands)
    for name, sub in commands.items():
        assert sub.format_help().strip(), name
    assert main([]) == 2


def test_ingest_cli_lists_every_loader_and_does_not_load_numba() -> None:
    import importlib
    import pkgutil

    import kit.ingest
    from kit.commands.ingest import KIND_MODULES

    loaders = {m.name for m in pkgutil.iter_modules(kit.ingest.__path__)
               if hasattr(importlib.import_module(f"kit.ingest.{m.name}"), "register_ingest")}
    assert set(KIND_MODULES) == loaders
    code = ("import sys; from kit.cli import build_parser; build_parser(); "
            "print(sorted({'kit.ingest.access_log', 'numba'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['kit.ingest.access_log']"   # the loaders are registered, numba is not loaded
