"""Which service each request belongs to, when the log does not say, and how the name was chosen.

Access logs seldom name the service they record, yet the analyses work per service. So every row that
``perfkit ingest access-log`` stores gets a service at ingest time, by the first rule that applies:

1. ``option``: the ``--service`` given for the file;
2. ``virtual host``: the row's ``host`` column, lower-cased (host names ignore case). It is set from
   nginx ``$host`` / ``$http_host`` / ``$server_name``, W3C ``cs-host`` / ``cs(Host)``, JSON host keys
   or the host of an absolute request URI (a proxy's ``GET http://host/path``), where the log has them;
3. ``file name``: the file name without its compression, rotation and ``.log`` suffixes
   (:func:`service_from_file_name`), so all rotations of a log form one service.

The rule is applied per row, so a log with two virtual hosts gives two services. A row with no host in
such a log gets the file name. The loader records the outcome in ``ingest_log.options``, as
``"service_from"`` and ``"services"`` (see :func:`record_service_naming`).
:func:`service_naming` reads the record back for the overview and the documents.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from kit.ingest.core import COMPRESSED_SUFFIXES, sql_string

__all__ = [
    "FILE_NAME",
    "MIXED",
    "NOT_RECORDED",
    "OPTION",
    "VIRTUAL_HOST",
    "ServiceNaming",
    "record_service_naming",
    "service_from_file_name",
    "service_naming",
    "service_sql",
]

OPTION = "option"                  # --service
VIRTUAL_HOST = "virtual host"      # the row's host
FILE_NAME = "file name"            # the file's stem
MIXED = "mixed"                    # service_from of a source whose rows were named by more than one rule
NOT_RECORDED = "not recorded"      # rows of a source with no record (built before this record, or a demo)

_NUMBER = re.compile(r"\.\d{1,4}$")                                     # logrotate: access.log.1
_DATE = re.compile(r"[-_.](?:\d{8}(?:\d{2})?|\d{4}-\d{2}-\d{2}(?:[-_T]\d{2})?)$")  # -20240101, .2024-01-01
_LOG = re.compile(r"(?:[._]log|\.txt|\.jsonl?|\.ndjson)$", re.IGNORECASE)   # access.log, Apache's access_log
_IIS = re.compile(r"^((?:u_)?(?:ex|nc|in))\d{6}(?:\d{2})?$", re.IGNORECASE)  # IIS daily files: u_ex221107


def service_from_file_name(path: str | Path) -> str:
    """The service name a log file gives: its name less, in this order, a compression suffix (.gz .bz2
    .zst .xz), a rotation number (``.1``) or date stamp (``-20240101``, ``.2024-01-01``), an extension
    (``.log``, ``_log``, ``.txt``, ``.json``, ``.jsonl``, ``.ndjson``) and a date stamp again; an IIS
    daily name (``u_ex221107``) loses its date.
    ``access.log.1.gz`` → ``access``; ``access_log-20240101`` → ``access``; ``access-20240101.log`` →
    ``access``; ``u_ex221107.log`` → ``u_ex``; ``10.0.0.1.log`` → ``10.0.0.1``. The whole file name
    when nothing would be left."""
    name = Path(path).name
    suffix = next((s for s in COMPRESSED_SUFFIXES if name.lower().endswith(s)), "")
    stem = name[:len(name) - len(suffix)]
    for step in ((_NUMBER, _DATE), (_LOG,), (_DATE,)):
        for regex in step:
            if m := regex.search(stem):
                stem = stem[:m.start()]
                break
    if m := _IIS.match(stem):
        stem = m.group(1)
    return stem if stem.strip(" .-_") else name


def service_sql(service: str | None, path: str | Path, host: str | None = None) -> str:
    """SQL for the ``service`` column of a row: the ``service`` option when given, else the lower-cased
    value of the SQL expression ``host`` (when the rows have one), else the file's name
    (:func:`service_from_file_name` of ``path``)."""
    if service:
        return sql_string(service)
    stem = sql_string(service_from_file_name(path))
    return f"coalesce(lower({host}), {stem})" if host else stem


def record_service_naming(con: duckdb.DuckDBPyConnection, source_id: int, service: str | None, *,
                          direct: Mapping[str, int] | None = None) -> dict:
    """Record in the source's ``ingest_log.options`` how its rows were named, and return the record:
    ``service_from`` (``option``, ``virtual host``, ``file name``, ``mixed`` when rows were named by
    more than one rule, or null when no row was loaded) and ``services``, a list of ``{"service",
    "from", "rows"}`` (most rows first). Call after the rows are stored, inside the ingest's transaction
    (the rule of :func:`service_sql` is recovered from each row: a host means ``virtual host``).
    ``direct``: rows of the source not in ``requests`` (written as Parquet by the loader itself, none
    with a host), by service."""
    how = f"CASE WHEN host IS NOT NULL THEN {sql_string(VIRTUAL_HOST)} ELSE {sql_string(FILE_NAME)} END"
    if service:
        how = sql_string(OPTION)
    stored = con.execute(f"SELECT service, {how} AS how, count(*) AS n FROM requests WHERE source_id = ? "
                         "GROUP BY ALL", [source_id]).fetchall()
    rows: Counter[tuple[str | None, str]] = Counter({(s, h): int(n) for s, h, n in stored})
    for name, n in (direct or {}).items():
        rows[(name, OPTION if service else FILE_NAME)] += n
    counts = sorted(((s, h, n) for (s, h), n in rows.items()), key=lambda c: (-c[2], c[0] is None, c[0] or "", c[1]))
    hows = {h for _, h, _ in counts}
    record = {
        "service_from": (hows.pop() if len(hows) == 1 else MIXED) if hows else (OPTION if service else None),
        "services": [{"service": s, "from": h, "rows": int(n)} for s, h, n in counts],
    }
    row = con.execute("SELECT options FROM ingest_log WHERE source_id = ?", [source_id]).fetchone()
    options = json.loads(row[0]) if row and row[0] else {}
    options.update(record)
    con.execute("UPDATE ingest_log SET options = ? WHERE source_id = ?", [json.dumps(options), source_id])
    return record


@dataclass(frozen=True)
class ServiceNaming:
    """One service of one source in ``requests``, and how its name was chosen.

    ``how``: ``option`` (``--service``), ``virtual host``, ``file name``, or ``not recorded`` (rows of a
    source that kept no record: a demo warehouse, whose builder names its services, or access logs
    ingested before the record existed — their ``service`` may be None; ``--replace`` names them).
    ``path``: the source's file (``ingest_log.path``); ``rows``: its rows with this service."""

    service: str | None
    how: str
    source_id: int
    kind: str
    path: str | None
    rows: int


def service_naming(con: duckdb.DuckDBPyConnection) -> list[ServiceNaming]:
    """How the services in ``requests`` were named: one entry per source and service, in source order,
    then most rows first. From the record in ``ingest_log.options``; sources without one are counted
    from ``requests`` and reported as ``not recorded``."""
    out: list[ServiceNaming] = []
    unrecorded: list[tuple[int, str, str | None]] = []
    for sid, kind, path, options in con.execute(
            "SELECT source_id, kind, path, options FROM ingest_log WHERE finished_at IS NOT NULL "
            "AND source_id IN (SELECT DISTINCT source_id FROM requests) ORDER BY source_id").fetchall():
        recorded = (json.loads(options) if options else {}).get("services")
        if recorded is None:
            unrecorded.append((int(sid), kind, path))
            continue
        out.extend(ServiceNaming(e["service"], e["from"], int(sid), kind, path, int(e["rows"])) for e in recorded)
    if unrecorded:
        sources = {sid: (kind, path) for sid, kind, path in unrecorded}
        counts = con.execute(
            "SELECT source_id, service, count(*) AS n FROM requests WHERE source_id IN "
            f"({', '.join(str(s) for s in sources)}) GROUP BY ALL").fetchall()
        out.extend(ServiceNaming(service, NOT_RECORDED, int(sid), *sources[int(sid)], int(n))
                   for sid, service, n in counts)
        out.sort(key=lambda e: (e.source_id, -e.rows, e.service or "", e.how))
    return out
