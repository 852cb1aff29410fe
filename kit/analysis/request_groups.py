"""One grouped pass over the window's requests that the optimization analyses share.

Method: the window's requests are grouped by their raw columns service, route, method, status, path,
query, content_type, cache_status and ``asset_bytes`` (``bytes_sent`` of a status-200 response to a path in
``assets``, NULL for every other response, so that only the static assets' responses split by size), with
per group the requests ``n``, ``bytes`` (sum of ``bytes_sent``, NULL as 0), ``bytes1`` (the same with at
least 1 per response), ``latency_ms`` (sum; NULL when no response of the group logged one), the least and
greatest ``client_hash`` (``client_lo``, ``client_hi``) and ``bytes_sent`` (``bytes_lo``, ``bytes_hi``, NULL
as 0), which tell whether two clients asked and whether the responses had one size (all four NULL when the
window holds at most one client: :func:`two_clients`). The groups
are built as the CDN study builds its own (:func:`kit.analysis.cdn._groups_build_sql`): grouped by the
64-bit hash of those columns with the ``rowid`` of one request per group, whose columns are then read.
From that temporary table:

- the per-route traffic of :data:`TRAFFIC_SQL` (:func:`route_traffic`: requests, request time, 5xx
  responses, bytes sent per service and route) is a sum over the groups;
- the CDN study's groups ``g`` are the groups with a path, regrouped by the values ``g`` derives;
- the compression study's 200s of the assets per (path, service, route, bytes_sent) are the groups with
  status 200 and an asset path, ``asset_bytes`` being their ``bytes_sent``.

One scan of the requests instead of three. Measured on 100M requests (2 threads, a loaded machine, CPU-s,
medians of 3): the CDN study's own grouping 5.6, the same with the latency sum and the rows without a path
6.0, with the assets' sizes in the key 7.6 (the membership test of ``assets`` runs on every request); the
per-route scan and the compression study's scan it replaces about 1.9 and 1.7: about 1.5 CPU-s less in all.
Widening the key by ``bytes_sent`` for every 200, not only the assets', would split dynamic responses by
size (as many groups as sizes).

Limits: two distinct column tuples sharing a 64-bit hash would be merged (odds about groups² / 2⁶⁵, the
CDN study's assumption too). Needs ``requests`` to be a table (a view has no ``rowid``: then the requests
are grouped by the columns themselves, the same rows). Request-time sums add in another order than a
direct scan's, so they can differ in the last digits. Built without the assets (``assets=False``, what the
CDN study does on its own), ``asset_bytes`` is NULL throughout and the membership test is not run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pandas as pd

from kit.analysis.window import Window

TRAFFIC_SQL = ("SELECT service, route, count(*) AS requests, coalesce(sum(latency_ms), 0) AS request_ms, "
               "count(*) FILTER (WHERE status >= 500) AS errors_5xx, coalesce(sum(bytes_sent), 0) AS bytes_sent "
               "FROM requests WHERE ts >= ? AND ts < ? GROUP BY ALL")
# TRAFFIC_SQL's numbers summed over the grouped requests, same types
TRAFFIC_FROM_GROUPS_SQL = ("SELECT service, route, sum(n)::BIGINT AS requests, coalesce(sum(latency_ms), 0) AS "
                           "request_ms, coalesce(sum(n) FILTER (WHERE status >= 500), 0)::BIGINT AS errors_5xx, "
                           "coalesce(sum(bytes), 0)::HUGEINT AS bytes_sent FROM {table} GROUP BY ALL")

_RAW_COLS = "service, route, method, status, path, query, content_type, cache_status"
_SUMS = ("count(*) AS n, sum(coalesce(bytes_sent, 0)) AS bytes, sum(greatest(coalesce(bytes_sent, 0), 1)) AS bytes1, "
         "sum(latency_ms) AS latency_ms")
# the least and greatest client and size per group; NULL when the window holds at most one client (then no
# group has two clients, and the ~0.8 s the string aggregates cost at 100M requests are saved)
CLIENT_AGGREGATES = ("min(client_hash) AS client_lo, max(client_hash) AS client_hi, "
                     "min(coalesce(bytes_sent, 0)) AS bytes_lo, max(coalesce(bytes_sent, 0)) AS bytes_hi")
_NO_CLIENTS = ("NULL::VARCHAR AS client_lo, NULL::VARCHAR AS client_hi, NULL::BIGINT AS bytes_lo, "
               "NULL::BIGINT AS bytes_hi")


@dataclass(frozen=True)
class RequestGroups:
    """The shared grouped requests of ``window``: the temporary table ``table`` with columns service, route,
    method, status, path, query, content_type, cache_status (raw, as logged), asset_bytes, n, bytes,
    bytes1, latency_ms, client_lo, client_hi, bytes_lo and bytes_hi (module docstring). Valid while
    :func:`request_groups`' block runs."""

    table: str
    window: Window
    assets: bool = True   # asset_bytes filled (else NULL throughout)

    def of(self, window: Window) -> str:
        """The table name, after checking that the groups are of ``window``."""
        if (window.start, window.end) != (self.window.start, self.window.end):
            raise ValueError(f"the shared request groups are of {self.window.label()}, not {window.label()}")
        return self.table


def _asset_bytes(alias: str = "", *, assets: bool = True) -> str:
    """``asset_bytes`` of a request (columns of ``alias``): bytes sent of a 200 to an asset path, else NULL."""
    if not assets:
        return "NULL"
    return f"CASE WHEN {alias}status = 200 AND {alias}path IN (SELECT path FROM assets) THEN {alias}bytes_sent END"


def build_sql(window: Window, *, assets: bool = True, clients: bool = True) -> str:
    """The grouped requests of ``window`` (a table ``requests``: grouped by hash, columns read by rowid);
    ``clients=False``: client_lo, client_hi, bytes_lo and bytes_hi NULL."""
    return f"""WITH hg AS (SELECT hash({_RAW_COLS}, {_asset_bytes(assets=assets)}) AS h, min(rowid) AS rid, {_SUMS},
         {CLIENT_AGGREGATES if clients else _NO_CLIENTS}
  FROM requests WHERE {window.sql()} GROUP BY h)
SELECT q.service, q.route, q.method, q.status, q.path, q.query, q.content_type, q.cache_status,
       {_asset_bytes("q.", assets=assets)} AS asset_bytes, hg.n, hg.bytes, hg.bytes1, hg.latency_ms, hg.client_lo,
       hg.client_hi, hg.bytes_lo, hg.bytes_hi
FROM requests q JOIN hg ON q.rowid = hg.rid"""


def build_sql_by_columns(window: Window, *, assets: bool = True, clients: bool = True) -> str:
    """The same rows grouped by the columns (for a view ``requests``, which has no rowid)."""
    return (f"SELECT {_RAW_COLS}, {_asset_bytes(assets=assets)} AS asset_bytes, {_SUMS}, "
            f"{CLIENT_AGGREGATES if clients else _NO_CLIENTS} "
            f"FROM requests WHERE {window.sql()} GROUP BY ALL")


def build_request_groups(con: duckdb.DuckDBPyConnection, window: Window, *, assets: bool = True) -> RequestGroups:
    """Build the window's grouped requests in a temporary table (one scan of ``requests``); the caller drops
    it with :func:`drop_request_groups` (or uses :func:`request_groups`). ``assets=False``: without
    ``asset_bytes`` (what the compression study needs), so without the test of each path against ``assets``."""
    table = f"request_groups_{abs(hash((window.start, window.end, assets))) % 10**8}"
    clients = two_clients(con, window)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {build_sql(window, assets=assets, clients=clients)}")
    except duckdb.BinderException:   # requests is a view (no rowid): group by the columns
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS "
                    f"{build_sql_by_columns(window, assets=assets, clients=clients)}")
    return RequestGroups(table, window, assets)


def two_clients(con: duckdb.DuckDBPyConnection, window: Window) -> bool:
    """Whether the window's requests hold two distinct clients: one client, then any other one, each scan
    stopping at its first row (a client column of NULLs only is skipped by its statistics), where
    ``min(client_hash) < max(client_hash)`` reads the whole column."""
    where = f"{window.sql()} AND client_hash IS NOT NULL"
    first = con.execute(f"SELECT client_hash FROM requests WHERE {where} LIMIT 1").fetchone()
    return first is not None and con.execute(
        f"SELECT 1 FROM requests WHERE {where} AND client_hash <> ? LIMIT 1", [first[0]]).fetchone() is not None


def drop_request_groups(con: duckdb.DuckDBPyConnection, groups: RequestGroups) -> None:
    """Drop the temporary table of :func:`build_request_groups`."""
    con.execute(f"DROP TABLE IF EXISTS {groups.table}")


@contextmanager
def request_groups(con: duckdb.DuckDBPyConnection, window: Window, *, assets: bool = True
                   ) -> Iterator[RequestGroups]:
    """The window's grouped requests for the block (:func:`build_request_groups`); dropped after it."""
    groups = build_request_groups(con, window, assets=assets)
    try:
        yield groups
    finally:
        drop_request_groups(con, groups)


def route_traffic(con: duckdb.DuckDBPyConnection, window: Window, groups: RequestGroups | None = None
                  ) -> pd.DataFrame:
    """Per service and route of the window's requests: the requests, request time (ms), 5xx responses and
    bytes sent (:data:`TRAFFIC_SQL`; from ``groups`` when given, without another scan)."""
    if groups is not None:
        return con.execute(TRAFFIC_FROM_GROUPS_SQL.format(table=groups.of(window))).df()
    return con.execute(TRAFFIC_SQL, [window.start, window.end]).df()
