"""Every exception the kit raises on purpose, under one root: :class:`PerfkitError`.

A ``PerfkitError`` is a problem with the user's input, parameters, data or environment; the ``perfkit``
command prints its message on one line and exits non-zero. Anything else that escapes is a bug and keeps
its traceback. Each kind also keeps a built-in second base (``ValueError``, ``RuntimeError``,
``FileNotFoundError``) so that code catching those keeps working.

This module imports nothing heavy: the CLI, papermill workers and ``kit`` itself load it for free.
:func:`render_tree` draws the hierarchy shown in ``kit``'s docstring.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "DataError",
    "IngestError",
    "InputNotFoundError",
    "EngineError",
    "NotebookFailed",
    "ParameterError",
    "PerfkitError",
    "PrometheusError",
    "SloSpecError",
    "TraceFormatError",
    "WarehouseError",
    "WarehouseLockedError",
    "render_tree",
]


class PerfkitError(Exception):
    """A user-facing error: the CLI prints its message and exits non-zero."""


class ParameterError(PerfkitError, ValueError):
    """A run parameter or CLI argument is unknown, mistyped or inconsistent."""


class DataError(PerfkitError, ValueError):
    """The warehouse (or a trace) lacks the data an analysis needs; the message says what to load."""


class DatabaseAdviceError(PerfkitError, RuntimeError):
    """The live database cannot be reached or lacks what index advice needs"""


class InputNotFoundError(PerfkitError, FileNotFoundError):
    """An input file named by the user does not exist."""


class IngestError(PerfkitError, ValueError):
    """Bad input: the message names the file, and the line and field where known."""

    def __init__(self, message: str, *, path: str | Path | None = None, line_no: int | None = None,
                 field: str | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line_no is not None:
                where += f", line {line_no}"
            if field is not None:
                where += f", field {field}"
            where += ": "
        super().__init__(where + message)
        self.path = None if path is None else str(path)
        self.line_no = line_no
        self.field = field


class PrometheusError(IngestError):
    """The Prometheus server refused or failed a query (auth, HTTP, PromQL)."""


class TraceFormatError(PerfkitError, ValueError):
    """A trace that cannot be read: names the file and the line/record and field."""


class SloSpecError(PerfkitError, ValueError):
    """An SLO spec file is invalid; the message names the file, the line and the field."""


class WarehouseError(PerfkitError, RuntimeError):
    """A warehouse cannot be opened or used."""


class WarehouseLockedError(WarehouseError):
    """Another process holds the warehouse open for writing."""


class EngineError(PerfkitError, RuntimeError):
    """The analysis engine cannot run: pyspark or Java missing, or the warehouse is not one it reads."""


class NotebookFailed(PerfkitError, RuntimeError):
    """A notebook raised during a run; the message names the notebook and the failing cell."""


def _summary(cls: type) -> str:
    """The first clause of a class's docstring (up to the first ``.``, ``:`` or ``;``)."""
    doc = " ".join((cls.__doc__ or "").split())
    return re.split(r"[.:;](?:\s|$)", doc, maxsplit=1)[0]


def _label(cls: type, parent: type) -> str:
    """``Name (ValueError)``: the class and the bases it has besides its parent in the tree."""
    extra = [b.__name__ for b in cls.__bases__ if b is not parent]
    return f"{cls.__name__} ({', '.join(extra)})" if extra else cls.__name__


def render_tree(root: type = PerfkitError) -> str:
    """The hierarchy under ``root`` as box-drawing text, one class a line with its docstring's summary;
    only classes defined in ``root``'s module, siblings in definition order."""
    rows: list[tuple[str, str]] = [(root.__name__, _summary(root))]

    def walk(parent: type, prefix: str) -> None:
        subclasses: list[type] = type.__subclasses__(parent)
        children = [c for c in subclasses if c.__module__ == root.__module__]
        for i, child in enumerate(children):
            last = i == len(children) - 1
            rows.append((f"{prefix}{'└── ' if last else '├── '}{_label(child, parent)}", _summary(child)))
            walk(child, prefix + ("     " if last else "│    "))

    walk(root, " ")
    width = max(len(name) for name, _ in rows) + 2
    return "\n".join(f"{name:<{width}}{summary}".rstrip() for name, summary in rows)
