"""perfkit: turn a service's performance history (a DuckDB warehouse) into a monitoring and
optimization strategy, through thin parameterized notebooks.

Exceptions::

    RuntimeError
     ├── WarehouseError            cannot open or use a warehouse
     │    └── WarehouseLockedError another process is writing to it
     ├── ParameterError            a run parameter is unknown, mistyped or inconsistent
     └── NotebookFailed            a notebook of a run failed (names the notebook and cell)
"""

from kit.config import ParameterError, RunConfig
from kit.warehouse import WarehouseError, WarehouseLockedError, connect

__version__ = "0.1.0"

__all__ = [
    "ParameterError",
    "RunConfig",
    "WarehouseError",
    "WarehouseLockedError",
    "__version__",
    "connect",
]
