"""One exception tree (kit.errors): the tree kit's docstring draws, every exception of the kit under
PerfkitError, and the CLI printing a PerfkitError as one line while a bug keeps its traceback."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import kit
import kit.errors
from kit.cli import main
from kit.errors import PerfkitError

# Exceptions that never leave their module: control flow, not errors a caller or a user sees.
INTERNAL_SIGNALS = {"kit.ingest.clf_fast.NotForFastPath", "kit.ingest.core._Unchanged"}
# Faults of the kit itself, not of the user's input: they must keep their traceback, so not PerfkitError.
KIT_FAULTS = {"kit.report.render.BrokenDocumentError"}
BUILTIN_BASES = (ValueError, RuntimeError, FileNotFoundError)


def _tree_classes() -> dict[str, type]:
    return {name: obj for name, obj in vars(kit.errors).items()
            if inspect.isclass(obj) and issubclass(obj, PerfkitError)}


def _doc_tree() -> list[str]:
    """The lines of the ``Exceptions::`` block of kit's docstring, dedented."""
    doc = kit.__doc__ or ""
    block = doc[doc.index("Exceptions"):].split("::\n", 1)[1]
    return [line[4:] for line in block.strip("\n").splitlines()]


def test_docstring_draws_the_tree_of_kit_errors() -> None:
    assert "\n".join(_doc_tree()) == kit.errors.render_tree()
    # and, independently of render_tree: the same classes, parents and built-in second bases
    classes = _tree_classes()
    seen: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    stack: list[str] = []
    for line in _doc_tree():
        label = line.split("── ", 1)[-1].split("  ", 1)[0].strip()
        name, _, extra = label.partition(" (")
        depth = line.index("── ") // 5 + 1 if "── " in line else 0
        del stack[depth:]
        seen[name] = (stack[-1] if stack else None, tuple(e for e in extra.rstrip(")").split(", ") if e))
        stack.append(name)
    assert set(seen) == set(classes)
    for name, cls in classes.items():
        parent = next((b.__name__ for b in cls.__bases__ if issubclass(b, PerfkitError)), None)
        extra = tuple(b.__name__ for b in cls.__bases__ if not issubclass(b, PerfkitError))
        assert seen[name] == (parent, () if cls is PerfkitError else extra), name


def test_every_kind_keeps_a_builtin_base_and_the_old_import_paths() -> None:
    for name, cls in _tree_classes().items():
        if cls is not PerfkitError:
            assert issubclass(cls, BUILTIN_BASES), name   # `except ValueError` callers keep working
    from kit.analysis.slo import SloSpecError
    from kit.config import ParameterError
    from kit.ingest.core import IngestError
    from kit.ingest.prometheus import PrometheusError
    from kit.ingest.trace import TraceFormatError
    from kit.runner import NotebookFailed
    from kit.warehouse import WarehouseError, WarehouseLockedError

    for cls in (SloSpecError, ParameterError, IngestError, PrometheusError, TraceFormatError, NotebookFailed,
                WarehouseError, WarehouseLockedError):
        assert cls.__module__ == "kit.errors" and getattr(kit.errors, cls.__name__) is cls
    assert kit.ParameterError is ParameterError and kit.PerfkitError is PerfkitError
    err = IngestError("bad value", path="x.log", line_no=3, field="status")
    assert str(err) == "x.log, line 3, field status: bad value" and err.line_no == 3


def test_every_exception_class_of_the_kit_derives_from_perfkit_error() -> None:
    found = []
    for info in pkgutil.walk_packages(kit.__path__, "kit."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found.append(obj)
    outside = [f"{c.__module__}.{c.__qualname__}" for c in found if c.__module__ != "kit.errors"]
    assert set(outside) == INTERNAL_SIGNALS | KIT_FAULTS   # exceptions are defined in kit.errors only
    assert not [c for c in found if f"{c.__module__}.{c.__qualname__}" in KIT_FAULTS and issubclass(c, PerfkitError)]
    stray = [c.__qualname__ for c in found if c.__module__ == "kit.errors" and not issubclass(c, PerfkitError)]
    assert stray == []
    assert len([c for c in found if c.__module__ == "kit.errors"]) == len(_tree_classes())


def test_cli_prints_a_perfkit_error_as_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(kit.__file__).resolve().parent.parent)}
    proc = subprocess.run([sys.executable, "-m", "kit.cli", "kpi", "--db", str(tmp_path / "none.duckdb"),
                           "--apdex-t-ms", "0"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == "perfkit: error: --apdex-t-ms must be > 0\n"


def test_cli_data_and_warehouse_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kit.warehouse import connect

    db = tmp_path / "empty.duckdb"
    connect(db).close()
    assert main(["kpi", "--db", str(db)]) == 1   # DataError: the warehouse holds no data
    err = capsys.readouterr().err
    assert err.startswith("perfkit: error: the warehouse holds no data") and err.count("\n") == 1
    assert main(["kpi", "--db", str(tmp_path / "missing.duckdb")]) == 1   # WarehouseError
    assert capsys.readouterr().err.startswith("perfkit: error: warehouse ")
    assert main(["cache", "mrc", "--trace", str(tmp_path / "none.bin"), "--format", "oracleGeneral",
                 "--sizes", "12 parsecs"]) == 1   # InputNotFoundError (a FileNotFoundError)
    assert capsys.readouterr().err == f"perfkit: error: no such trace file: {tmp_path / 'none.bin'}\n"


def test_cli_lets_a_bug_keep_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import kit.commands.kpi

    def broken(args: object) -> int:
        raise KeyError("a real bug")

    monkeypatch.setattr(kit.commands.kpi, "_kpi", broken)
    with pytest.raises(KeyError, match="a real bug"):
        main(["kpi"])
    monkeypatch.setattr(kit.commands.kpi, "_kpi", lambda args: (_ for _ in ()).throw(ValueError("bug")))
    with pytest.raises(ValueError, match="bug"):   # a plain ValueError is a bug too, no longer swallowed
        main(["kpi"])
