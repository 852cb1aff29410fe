"""Saving and loading the analyses' typed results as JSON under a run's ``results/`` folder.

Analyses return frozen dataclasses; ``to_jsonable`` turns them (and numpy/pandas values inside) into
plain JSON values, so the export stage and the CLI read exactly what the notebook reader saw. A dataclass
may name long list fields in a ``json_columns`` class variable: those are stored column-wise
({column: [values]}, which ``pandas.DataFrame`` reads as it reads a list of records) with floats rounded to
``COLUMN_SIGNIFICANT_DIGITS`` significant digits, where repeating every key would dominate the size.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

COLUMN_SIGNIFICANT_DIGITS = 4  # floats of the column-wise lists: 4 significant digits (<= 0.005 % off)


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses, numpy scalars/arrays, pandas objects and datetimes to JSON values.

    NaN and infinities become None (JSON has no such numbers). The non-empty lists a dataclass names in
    ``json_columns`` become {column: [values]} with floats rounded to ``COLUMN_SIGNIFICANT_DIGITS``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for key in getattr(value, "json_columns", ()):
            rows = out.get(key)
            if rows:
                out[key] = {column: [_round_significant(row[column]) for row in rows] for column in rows[0]}
        return out
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return [to_jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return to_jsonable(value.tolist())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if value is pd.NaT or value is pd.NA:
        return None
    return value


def _round_significant(value: object) -> object:
    return float(f"{value:.{COLUMN_SIGNIFICANT_DIGITS}g}") if isinstance(value, float) else value


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename, so readers never see half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def dumps(value: Any, *, compact: bool = False) -> str:
    """Stable JSON for a result: indented, or with ``compact`` on one line (for results with long
    column-wise lists, which indentation would spread over one line per value)."""
    layout: dict[str, Any] = {"separators": (",", ":")} if compact else {"indent": 2}
    return json.dumps(to_jsonable(value), sort_keys=True, ensure_ascii=False, allow_nan=False, **layout) + "\n"


def save_result(results_dir: str | Path, name: str, value: Any, *, compact: bool = False) -> Path:
    """Write one result as ``<results_dir>/<name>.json`` (atomic, ``dumps``) and return its path.

    With an empty ``results_dir`` (a notebook opened by hand) nothing is written."""
    if not str(results_dir):
        return Path()
    return write_text_atomic(Path(results_dir) / f"{name}.json", dumps(value, compact=compact))


def load_result(results_dir: str | Path, name: str) -> Any:
    """Read ``<results_dir>/<name>.json``; FileNotFoundError names the missing result."""
    path = Path(results_dir) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"result {name!r} not found at {path}: run the notebook that produces it first")
    return json.loads(path.read_text())


def load_results(results_dir: str | Path) -> dict[str, Any]:
    """Every ``<name>.json`` in the results folder, keyed by name; empty when ``results_dir`` is empty
    (a notebook opened by hand) or holds none yet."""
    if not str(results_dir):
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("*.json"))}
