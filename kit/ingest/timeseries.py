"""Generic time series (CSV or Parquet) → ``metrics`` (kind ``timeseries``), with a column mapping.

A :class:`ColumnMapping` says which column holds the time (``time_col``; none → every row gets ``at``),
which columns hold values (``value_cols``; default: every other numeric column that is not a label),
which columns become labels (``label_cols``), constant labels, and the metric name (``name``; default
the file stem; with several value columns the stored name is ``<name>_<column>`` unless
``name_from_col``). Read and reshaped in DuckDB (``read_csv(all_varchar)`` / ``read_parquet`` +
``UNPIVOT``-like ``unnest``).

**How records are counted**: one input record is one (row, value column) *sample*, so
``lines_in = rows × value columns`` (+ 0 for the CSV header, which is not counted). A sample loads
when its time and value parse; an empty value (or only spaces) is skipped; an unparsable time or value is rejected with
the row's line number (CSV: the file line, header = line 1; Parquet: the row number) and the field.
Times: ISO 8601 text (zone honoured, UTC when absent) or epoch numbers in ``time_unit`` (s or ms;
``auto`` takes numbers above 10^11 as ms).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from kit.ingest.core import (
    RAW_MAX_CHARS,
    IngestError,
    IngestSummary,
    LoadCounts,
    add_common_args,
    add_file_ingest_parser,
    given_options,
    ingest_file,
    readable_path,
    run_ingest_cli,
    sql_string,
)
from kit.warehouse import Source

__all__ = ["KIND", "ColumnMapping", "ingest_timeseries", "load_timeseries", "register_ingest"]

KIND = "timeseries"
_TIME_NAMES = ("timestamp", "ts", "time", "datetime", "date", "period")


@dataclass(frozen=True)
class ColumnMapping:
    """How a table's columns map to metric samples (see the module docstring)."""

    time_col: str | None = None              # None: auto-detect among timestamp/ts/time/...; "" = no time
    value_cols: tuple[str, ...] = ()         # empty: every numeric column not used otherwise
    label_cols: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    name: str | None = None                  # default: the file stem
    name_from_col: bool = False              # several value columns: name = column name
    time_unit: str = "auto"                  # s, ms or auto (epoch numbers)
    at: str | None = None                    # time for every row when there is no time column


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def load_timeseries(con: duckdb.DuckDBPyConnection, source: Source, path: Path, skip_lines: int = 0, *,
                    mapping: ColumnMapping | None = None) -> LoadCounts:
    """Load one CSV/Parquet table of time series into ``metrics`` following ``mapping``."""
    m = mapping or ColumnMapping()
    is_parquet = path.suffix.lower() in (".parquet", ".pq")
    with readable_path(path) as readable:
        if is_parquet:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _pk_ts_src AS SELECT row_number() OVER () AS line_no, * "
                        f"FROM read_parquet({sql_string(readable)})")
        else:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _pk_ts_src AS SELECT row_number() OVER () + 1 AS line_no, * "
                f"FROM read_csv({sql_string(readable)}, header=true, all_varchar=true, parallel=false)")
    described = con.execute("DESCRIBE _pk_ts_src").fetchall()
    columns = {r[0]: r[1] for r in described if r[0] != "line_no"}
    lower = {c.lower(): c for c in columns}
    time_col = m.time_col
    if time_col is None:
        time_col = next((lower[n] for n in _TIME_NAMES if n in lower), "")
    for col in (*m.value_cols, *m.label_cols, *([time_col] if time_col else [])):
        if col not in columns:
            raise IngestError(f"no column {col!r}; columns are {', '.join(columns)}", path=path, field=col)
    if not time_col and m.at is None:
        raise IngestError(f"no time column (looked for {', '.join(_TIME_NAMES)}); give time_col or at",
                          path=path, field="time")
    values = list(m.value_cols)
    if not values:
        used = {time_col, *m.label_cols}
        for col, typ in columns.items():
            if col in used:
                continue
            if is_parquet:
                numeric = any(t in typ.upper() for t in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL"))
            else:
                row = con.execute(f"SELECT count(*) FILTER (WHERE {_ident(col)} IS NOT NULL AND "
                                  f"try_cast({_ident(col)} AS DOUBLE) IS NULL) FROM _pk_ts_src").fetchone()
                numeric = row is not None and row[0] == 0
            if numeric:
                values.append(col)
    if not values:
        raise IngestError(f"no numeric value column among {', '.join(columns)}; give value_cols",
                          path=path, field="value")
    base = m.name or path.name.split(".")[0]

    def metric_name(col: str) -> str:
        if m.name_from_col:
            return col
        return base if len(values) == 1 else f"{base}_{col}"

    if time_col:
        t = f"CAST({_ident(time_col)} AS VARCHAR)"
        unit = {"s": "1", "ms": "1000"}.get(m.time_unit)
        num = f"try_cast({t} AS DOUBLE)"
        epoch = (f"try(to_timestamp({num} / {unit}))" if unit else
                 f"try(to_timestamp(CASE WHEN abs({num}) > 1e11 THEN {num} / 1000.0 ELSE {num} END))")
        ts_sql = (f"CASE WHEN {num} IS NOT NULL THEN {epoch} "
                  f"WHEN regexp_matches({t}, '([+-][0-9]{{2}}(:?[0-9]{{2}})?|Z)$') THEN try_cast({t} AS TIMESTAMPTZ) "
                  f"ELSE timezone('UTC', try_cast({t} AS TIMESTAMP)) END")
    else:
        at = m.at or datetime.now(UTC).isoformat()
        ts_sql = f"CAST({sql_string(at)} AS TIMESTAMPTZ)"
    label_keys = [*m.labels.keys(), *m.label_cols]
    label_vals = [sql_string(v) for v in m.labels.values()] + [f"CAST({_ident(c)} AS VARCHAR)"
                                                               for c in m.label_cols]
    labels_sql = (f"map_from_entries(list_filter(list_zip([{', '.join(sql_string(k) for k in label_keys)}], "
                  f"[{', '.join(label_vals)}]), lambda e: e[2] IS NOT NULL))" if label_keys
                  else "MAP {}::MAP(VARCHAR, VARCHAR)")
    parts = [f"SELECT line_no, {sql_string(metric_name(c))} AS name, {sql_string(c)} AS col, "
             f"CAST({_ident(c)} AS VARCHAR) AS value_text, try_cast({_ident(c)} AS DOUBLE) AS value, "
             f"{ts_sql} AS ts, {labels_sql} AS labels, "
             f"{('CAST(' + _ident(time_col) + ' AS VARCHAR)') if time_col else 'NULL'} AS time_text "
             f"FROM _pk_ts_src WHERE line_no > {int(skip_lines)}" for c in values]
    con.execute("CREATE OR REPLACE TEMP TABLE _pk_ts AS " + " UNION ALL ".join(parts))
    sid = int(source.source_id)
    con.execute(f"""INSERT INTO metrics (ts, name, labels, value, source_id)
                    SELECT ts, name, labels, value, {sid} FROM _pk_ts
                    WHERE ts IS NOT NULL AND value IS NOT NULL ORDER BY line_no, col""")
    con.execute(f"""
        INSERT INTO rejects (source_id, line_no, field, reason, raw)
        SELECT {sid}, line_no, CASE WHEN ts IS NULL THEN {sql_string(time_col or 'time')} ELSE col END,
               CASE WHEN ts IS NULL THEN 'unparsable time: ' || coalesce(time_text, '(empty)')
                    ELSE 'value is not a number: ' || value_text END,
               left(coalesce(time_text, '') || ',' || coalesce(value_text, ''), {RAW_MAX_CHARS})
        FROM _pk_ts
        WHERE value_text IS NOT NULL AND trim(value_text) <> '' AND (ts IS NULL OR value IS NULL)
        ORDER BY line_no, col""")
    row = con.execute("""
        SELECT count(*),
               count(*) FILTER (WHERE ts IS NOT NULL AND value IS NOT NULL),
               count(*) FILTER (WHERE value_text IS NOT NULL AND trim(value_text) <> ''
                                AND (ts IS NULL OR value IS NULL))
        FROM _pk_ts""").fetchone()
    assert row is not None
    total, loaded, bad = (int(v) for v in row)
    con.execute("DROP TABLE _pk_ts")
    con.execute("DROP TABLE _pk_ts_src")
    return LoadCounts(lines_in=total, rows_loaded=loaded, rows_rejected=bad, rows_skipped=total - loaded - bad,
                      fmt="parquet" if is_parquet else "csv", formats_tried=("csv", "parquet"))


def ingest_timeseries(con: duckdb.DuckDBPyConnection, path: str | Path, mapping: ColumnMapping | None = None,
                      *, replace: bool = False) -> IngestSummary:
    """Ingest one CSV/Parquet time-series table exactly once into ``metrics``."""
    m = mapping or ColumnMapping()

    def loader(c: duckdb.DuckDBPyConnection, source: Source, p: Path, skip: int) -> LoadCounts:
        return load_timeseries(c, source, p, skip, mapping=m)

    return ingest_file(con, KIND, path, loader, replace=replace, options=given_options(**vars(m)))


def register_ingest(subparsers: argparse._SubParsersAction) -> None:
    parser = add_file_ingest_parser(
        subparsers, KIND,
        help="CSV/Parquet time series with a column mapping → metrics",
        description="Load CSV or Parquet tables of time series: one metric sample per (row, value column).")
    parser.add_argument("--time-col", default=None, help="time column (default: timestamp/ts/time/...)")
    parser.add_argument("--no-time", action="store_true", help="the table has no time column (use --at)")
    parser.add_argument("--value-col", action="append", default=[], help="value column (repeatable)")
    parser.add_argument("--label-col", action="append", default=[], help="column stored as a label (repeatable)")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="constant label")
    parser.add_argument("--name", default=None, help="metric name (default: file stem)")
    parser.add_argument("--name-from-col", action="store_true", help="name each metric after its value column")
    parser.add_argument("--time-unit", choices=("auto", "s", "ms"), default="auto", help="unit of epoch numbers")
    parser.add_argument("--at", default=None, help="time for every row when there is no time column")
    add_common_args(parser)

    def run(args: argparse.Namespace) -> int:
        labels = dict(item.split("=", 1) for item in args.label)
        mapping = ColumnMapping(time_col="" if args.no_time else args.time_col,
                                value_cols=tuple(args.value_col), label_cols=tuple(args.label_col),
                                labels=labels, name=args.name, name_from_col=args.name_from_col,
                                time_unit=args.time_unit, at=args.at)
        return run_ingest_cli(args, lambda con, p: ingest_timeseries(
            con, p, mapping, replace=args.replace))  # type: ignore[arg-type]

    parser.set_defaults(func=run)
