"""Deploys, incidents and config changes from CSV or YAML → ``events`` (kind ``events``).

Recognized fields (CSV header or YAML keys, case-insensitive, first alias found wins):

- ``ts_start`` (aliases ``start``, ``ts``, ``time``, ``timestamp``, ``started_at``), required, ISO 8601
  (UTC when no zone) or epoch seconds;
- ``ts_end`` (``end``, ``ended_at``, ``resolved_at``), optional;
- ``kind`` (``type``, ``category``), required: deploy, incident, config, ...;
- ``what`` (``description``, ``title``, ``summary``, ``message``), required;
- ``service``, ``route``, optional; every other field goes to ``details`` (JSON).

YAML: a list of mappings, or a mapping with an ``events`` list. One record is one CSV row (line number
= file line, header = 1) or one YAML list item (number = position, 1-based); a record missing a
required field, or with an unparsable time or an end before its start, is rejected naming the field.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from kit.ingest.core import (
    RAW_MAX_CHARS,
    IngestError,
    IngestSummary,
    LoadCounts,
    add_common_args,
    add_file_ingest_parser,
    ingest_file,
    open_text,
    readable_path,
    run_ingest_cli,
    sql_string,
)
from kit.warehouse import Source

__all__ = ["ALIASES", "KIND", "ingest_events", "load_events", "register_ingest"]

KIND = "events"
ALIASES: dict[str, tuple[str, ...]] = {
    "ts_start": ("ts_start", "start", "ts", "time", "timestamp", "started_at"),
    "ts_end": ("ts_end", "end", "ended_at", "resolved_at"),
    "kind": ("kind", "type", "category"),
    "what": ("what", "description", "title", "summary", "message"),
    "service": ("service",),
    "route": ("route",),
}


def _ts_sql(expr: str) -> str:
    num = f"try_cast({expr} AS DOUBLE)"
    return (f"CASE WHEN {expr} IS NULL OR trim({expr}) = '' THEN NULL "
            f"WHEN {num} IS NOT NULL THEN try(to_timestamp({num})) "
            f"WHEN regexp_matches(trim({expr}), '([+-][0-9]{{2}}(:?[0-9]{{2}})?|Z)$') "
            f"THEN try_cast(trim({expr}) AS TIMESTAMPTZ) "
            f"ELSE timezone('UTC', try_cast(trim({expr}) AS TIMESTAMP)) END")


def _is_yaml(path: Path) -> bool:
    return any(path.name.lower().endswith(s) for s in (".yaml", ".yml", ".yaml.gz", ".yml.gz"))


def _records_table(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Fill ``_pk_ev_src`` (line_no, then every field as VARCHAR) from a CSV or YAML file."""
    if _is_yaml(path):
        with open_text(path) as handle:
            try:
                doc = yaml.safe_load(handle)
            except yaml.YAMLError as exc:
                raise IngestError(f"not valid YAML: {exc}", path=path) from None
        items = doc.get("events") if isinstance(doc, dict) else doc
        if items is None:
            items = []
        if not isinstance(items, list):
            raise IngestError("YAML must be a list of events or a mapping with an 'events' list", path=path)
        records = []
        for i, item in enumerate(items, start=1):
            record: dict[str, object] = {"line_no": i}
            if isinstance(item, dict):
                for key, value in item.items():
                    record[str(key)] = (None if value is None else
                                        value.isoformat() if hasattr(value, "isoformat") else
                                        json.dumps(value) if isinstance(value, list | dict) else str(value))
            else:
                record["__raw__"] = str(item)
            records.append(record)
        frame = pd.DataFrame(records if records else [{"line_no": 0}]).astype(object)
        frame = frame.where(frame.notna(), None)
        con.register("_pk_ev_frame", frame)
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE _pk_ev_src AS SELECT * FROM _pk_ev_frame "
                        + ("" if records else "WHERE false"))
        finally:
            con.unregister("_pk_ev_frame")
        cols = [r[0] for r in con.execute("DESCRIBE _pk_ev_src").fetchall()]
        casts = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' if c != "line_no" else "CAST(line_no AS BIGINT) AS line_no"
                          for c in cols)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _pk_ev_src AS SELECT {casts} FROM _pk_ev_src")
        return
    with readable_path(path) as readable:
        con.execute("CREATE OR REPLACE TEMP TABLE _pk_ev_src AS SELECT row_number() OVER () + 1 AS line_no, * "
                    f"FROM read_csv({sql_string(readable)}, header=true, all_varchar=true, parallel=false)")


def load_events(con: duckdb.DuckDBPyConnection, source: Source, path: Path, skip_lines: int = 0) -> LoadCounts:
    """Load one CSV/YAML file of events into ``events``."""
    _records_table(con, path)
    cols = [r[0] for r in con.execute("DESCRIBE _pk_ev_src").fetchall() if r[0] != "line_no"]
    lower = {c.lower(): c for c in cols}
    chosen: dict[str, str | None] = {}
    for target, names in ALIASES.items():
        chosen[target] = next((lower[n] for n in names if n in lower), None)

    def col(target: str) -> str:
        c = chosen[target]
        return "NULL::VARCHAR" if c is None else f'nullif(trim("{c}"), \'\')'

    used = {c for c in chosen.values() if c}
    extra = [c for c in cols if c not in used and c != "__raw__"]
    details = ("to_json(map_from_entries(list_filter(list_zip([" + ", ".join(sql_string(c) for c in extra)
               + "], [" + ", ".join(f'"{c}"' for c in extra) + "]), lambda e: e[2] IS NOT NULL)))"
               if extra else "NULL::JSON")
    raw = "concat_ws(',', " + ", ".join(f'"{c}"' for c in cols) + ")" if cols else "''"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pk_ev AS
        SELECT line_no, {_ts_sql(col('ts_start'))} AS ts_start, {col('ts_start')} AS start_text,
               {_ts_sql(col('ts_end'))} AS ts_end, {col('ts_end')} AS end_text,
               lower({col('kind')}) AS kind, {col('service')} AS service, {col('route')} AS route,
               {col('what')} AS what, {details} AS details, left({raw}, {RAW_MAX_CHARS}) AS raw
        FROM _pk_ev_src WHERE line_no > {int(skip_lines)}""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _pk_ev_bad AS
        SELECT line_no, raw,
               CASE WHEN start_text IS NULL THEN 'ts_start'
                    WHEN ts_start IS NULL THEN 'ts_start'
                    WHEN end_text IS NOT NULL AND ts_end IS NULL THEN 'ts_end'
                    WHEN ts_end < ts_start THEN 'ts_end'
                    WHEN kind IS NULL THEN 'kind'
                    WHEN what IS NULL THEN 'what' END AS field,
               CASE WHEN start_text IS NULL THEN 'missing start time'
                    WHEN ts_start IS NULL THEN 'unparsable start time: ' || start_text
                    WHEN end_text IS NOT NULL AND ts_end IS NULL THEN 'unparsable end time: ' || end_text
                    WHEN ts_end < ts_start THEN 'end before start'
                    WHEN kind IS NULL THEN 'missing kind (deploy, incident, config, ...)'
                    WHEN what IS NULL THEN 'missing description (what)' END AS reason
        FROM _pk_ev""")
    con.execute("DELETE FROM _pk_ev_bad WHERE field IS NULL")
    sid = int(source.source_id)
    con.execute(f"""
        INSERT INTO events (ts_start, ts_end, kind, service, route, what, details, source_id)
        SELECT ts_start, ts_end, kind, service, route, what, details, {sid}
        FROM _pk_ev WHERE line_no NOT IN (SELECT line_no FROM _pk_ev_bad) ORDER BY line_no""")
    con.execute(f"""INSERT INTO rejects (source_id, line_no, field, reason, raw)
                    SELECT {sid}, line_no, field, reason, raw FROM _pk_ev_bad ORDER BY line_no""")
    row = con.execute("SELECT (SELECT count(*) FROM _pk_ev), (SELECT count(*) FROM _pk_ev_bad)").fetchone()
    assert row is not None
    total, bad = int(row[0]), int(row[1])
    for table in ("_pk_ev", "_pk_ev_bad", "_pk_ev_src"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return LoadCounts(lines_in=total, rows_loaded=total - bad, rows_rejected=bad,
                      fmt="yaml" if _is_yaml(path) else "csv",
                      formats_tried=("csv", "yaml"))


def ingest_events(con: duckdb.DuckDBPyConnection, path: str | Path, *, replace: bool = False) -> IngestSummary:
    """Ingest one CSV/YAML events file exactly once into ``events``."""
    return ingest_file(con, KIND, path, load_events, replace=replace)


def register_ingest(subparsers: argparse._SubParsersAction) -> None:
    parser = add_file_ingest_parser(
        subparsers, KIND,
        help="deploys, incidents, config changes (CSV/YAML) → events",
        description="Load events from CSV (header row) or YAML (a list of mappings): ts_start, ts_end, kind, "
                    "service, route, what; other fields are kept as details.")
    add_common_args(parser)

    def run(args: argparse.Namespace) -> int:
        return run_ingest_cli(args, lambda con, p: ingest_events(con, p, replace=args.replace))  # type: ignore[arg-type]

    parser.set_defaults(func=run)
