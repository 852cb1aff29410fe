"""perfkit: turn a service's performance history (a DuckDB warehouse) into a monitoring and
optimization strategy, through thin parameterized notebooks.

Exceptions::

    RuntimeError
     ├── WarehouseError            cannot open or use a warehouse
     │    └── WarehouseLockedError another process is writing to it
     ├── ParameterError            a run parameter is unknown, mistyped or inconsistent
     └── NotebookFailed            a notebook of a run failed (names the notebook and cell)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kit.config import ParameterError, RunConfig
    from kit.warehouse import WarehouseError, WarehouseLockedError, connect

__version__ = "0.1.0"

# Imported on first use, so processes that only need a corner of the kit (papermill workers, the CLI's
# help) do not pay for DuckDB, pandas and numpy.
_LAZY = {"ParameterError": "kit.config", "RunConfig": "kit.config", "WarehouseError": "kit.warehouse",
         "WarehouseLockedError": "kit.warehouse", "connect": "kit.warehouse"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])

__all__ = [
    "ParameterError",
    "RunConfig",
    "WarehouseError",
    "WarehouseLockedError",
    "__version__",
    "connect",
]
