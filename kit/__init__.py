"""perfkit: turn a service's performance history (a DuckDB warehouse) into a monitoring and
optimization strategy, through thin parameterized notebooks.

Exceptions (all in :mod:`kit.errors`; ``perfkit`` prints a ``PerfkitError`` as one line, anything else
is a bug and keeps its traceback)::

    PerfkitError                                 A user-facing error
     ├── ParameterError (ValueError)             A run parameter or CLI argument is unknown, mistyped or inconsistent
     ├── DataError (ValueError)                  The warehouse (or a trace) lacks the data an analysis needs
     ├── DatabaseAdviceError (RuntimeError)      The live database cannot be reached or lacks what index advice needs
     ├── InputNotFoundError (FileNotFoundError)  An input file named by the user does not exist
     ├── IngestError (ValueError)                Bad input
     │    └── PrometheusError                    The Prometheus server refused or failed a query (auth, HTTP, PromQL)
     ├── TraceFormatError (ValueError)           A trace that cannot be read
     ├── SloSpecError (ValueError)               An SLO spec file is invalid
     ├── WarehouseError (RuntimeError)           A warehouse cannot be opened or used
     │    └── WarehouseLockedError               Another process holds the warehouse open for writing
     ├── EngineError (RuntimeError)              The analysis engine cannot run
     └── NotebookFailed (RuntimeError)           A notebook raised during a run
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kit.config import RunConfig
    from kit.errors import ParameterError, PerfkitError, WarehouseError, WarehouseLockedError
    from kit.warehouse import connect

__version__ = "0.1.0"

# Imported on first use, so processes that only need a corner of the kit (papermill workers, the CLI's
# help) do not pay for DuckDB, pandas and numpy.
_LAZY = {"ParameterError": "kit.errors", "PerfkitError": "kit.errors", "RunConfig": "kit.config",
         "WarehouseError": "kit.errors", "WarehouseLockedError": "kit.errors", "connect": "kit.warehouse"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])

__all__ = [
    "ParameterError",
    "PerfkitError",
    "RunConfig",
    "WarehouseError",
    "WarehouseLockedError",
    "__version__",
    "connect",
]
