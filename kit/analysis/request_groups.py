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

Per-day rollup: ``perfkit ingest`` ends by bringing :data:`ROLLUP` up to date (:func:`refresh_rollup`): the
same groups per UTC day, with each group's first and last request time, regrouped for the days the new
requests fall in (every day when requests went away or the assets changed). A day whose groups (a
HyperLogLog estimate, from a first scan) outnumber half its requests is not rolled up
(:data:`MAX_GROUP_SHARE`): its rollup would be about the requests again, costing at ingest what it saves
later. A window takes the rolled-up days whose requests it holds whole from there, groups only the requests
of the rest of it, and regroups the union by the columns (:func:`from_rollup_sql`). What the rollup was
built from (the requests' count and greatest ``source_id``, the assets' count and the hash of their paths)
is stored with it; when any differs, it is ignored (:func:`rollup_days`): an ingest that did not refresh it
(a library call, a failed run) costs speed, never correctness. Rows changed in place, same count and
sources, would go unseen: no kit command does that. Measured on 100M requests over 30 days (2 cores):
437,876 day groups, built in 9.2 s (18.2 CPU-s) at once, 0.3 s per day of 3.3M requests on average; the grouped
pass of a 30-day window then takes 0.08 to 0.11 s instead of about 4. A Parquet warehouse (``requests`` a
view) has none.

Limits: two distinct column tuples sharing a 64-bit hash would be merged (odds about groups² / 2⁶⁵, the
CDN study's assumption too). Needs ``requests`` to be a table (a view has no ``rowid``: then the requests
are grouped by the columns themselves, the same rows). Request-time sums add in another order than a
direct scan's, so they can differ in the last digits. Built without the assets (``assets=False``, what the
CDN study does on its own), ``asset_bytes`` is NULL throughout and the membership test is not run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from kit.analysis.window import Window
from kit.warehouse import has_table, transaction

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
    return _hashed_sql(window.sql(), assets=assets, clients=clients)


def _hashed_sql(where: str, *, assets: bool = True, clients: bool = True, by_day: bool = False) -> str:
    """The requests matching ``where`` grouped by the 64-bit hash of their columns (:func:`build_sql`), each
    group's columns read back by the rowid of one of its requests; ``by_day``: also by UTC day (``day``, days
    since the epoch; :func:`rollup_sql`), with each group's first and last ``ts`` (``ts_lo``, ``ts_hi``)."""
    day = f"epoch_us(ts) // {_DAY_US}"
    key = _day_key(day, assets=assets) if by_day else f"hash({_RAW_COLS}, {_asset_bytes(assets=assets)})"
    return f"""WITH hg AS (SELECT {f"{day} AS day, " if by_day else ""}{key} AS h, min(rowid) AS rid, {_SUMS},
         {CLIENT_AGGREGATES if clients else _NO_CLIENTS}{", min(ts) AS ts_lo, max(ts) AS ts_hi" if by_day else ""}
  FROM requests WHERE {where} GROUP BY {"day, " if by_day else ""}h)
SELECT {"hg.day, " if by_day else ""}q.service, q.route, q.method, q.status, q.path, q.query, q.content_type,
       q.cache_status, {_asset_bytes("q.", assets=assets)} AS asset_bytes, hg.n, hg.bytes, hg.bytes1, hg.latency_ms,
       hg.client_lo, hg.client_hi, hg.bytes_lo, hg.bytes_hi{", hg.ts_lo, hg.ts_hi" if by_day else ""}
FROM requests q JOIN hg ON q.rowid = hg.rid"""


def build_sql_by_columns(window: Window, *, assets: bool = True, clients: bool = True) -> str:
    """The same rows grouped by the columns (for a view ``requests``, which has no rowid)."""
    return (f"SELECT {_RAW_COLS}, {_asset_bytes(assets=assets)} AS asset_bytes, {_SUMS}, "
            f"{CLIENT_AGGREGATES if clients else _NO_CLIENTS} "
            f"FROM requests WHERE {window.sql()} GROUP BY ALL")


def build_request_groups(con: duckdb.DuckDBPyConnection, window: Window, *, assets: bool = True,
                         rollup: bool = True) -> RequestGroups:
    """Build the window's grouped requests in a temporary table (one scan of ``requests``, or of the days the
    per-day rollup does not hold: :func:`rollup_days`); the caller drops it with :func:`drop_request_groups`
    (or uses :func:`request_groups`). ``assets=False``: without ``asset_bytes`` (what the compression study
    needs), so without the test of each path against ``assets``; ``rollup=False``: from the requests alone."""
    table = f"request_groups_{abs(hash((window.start, window.end, assets))) % 10**8}"
    clients = two_clients(con, window)
    days = rollup_days(con, window) if rollup else None
    if days:
        sql = from_rollup_sql(window, days, assets=assets, clients=clients)
    elif has_table(con, "requests"):
        sql = build_sql(window, assets=assets, clients=clients)
    else:   # requests is a view (no rowid): group by the columns
        sql = build_sql_by_columns(window, assets=assets, clients=clients)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {sql}")
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
def request_groups(con: duckdb.DuckDBPyConnection, window: Window, *, assets: bool = True, rollup: bool = True
                   ) -> Iterator[RequestGroups]:
    """The window's grouped requests for the block (:func:`build_request_groups`); dropped after it."""
    groups = build_request_groups(con, window, assets=assets, rollup=rollup)
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


# ------------------------------------------------------------------------------------------ per-day rollup
ROLLUP = "request_day_groups"               # the groups of each rolled-up day (rollup_sql's columns)
ROLLUP_DAYS = "request_day_groups_days"     # every day with requests: its count, time span, whether rolled up
ROLLUP_INPUTS = "request_day_groups_inputs"  # what the rollup was built from (_INPUTS_SQL)
# a day whose groups (HyperLogLog estimate) outnumber this share of its requests is not rolled up: its rollup
# would hold nearly as many rows as the requests, costing at ingest (writing them) what it saves later
MAX_GROUP_SHARE = 0.5
_DAY_US = 86_400_000_000
_GROUP_COLS = ("service, route, method, status, path, query, content_type, cache_status, asset_bytes, n, bytes, "
               "bytes1, latency_ms, client_lo, client_hi, bytes_lo, bytes_hi")
_INPUTS_SQL = ("SELECT (SELECT count(*) FROM requests), (SELECT max(source_id) FROM requests), "
               "(SELECT count(*) FROM assets), (SELECT coalesce(bit_xor(hash(path)), 0) FROM assets)")


@dataclass(frozen=True)
class RollupRefresh:
    """What :func:`refresh_rollup` did: the UTC days it looked at again (``full``: every day), how many of
    them it rolled up (the others have too many groups: :data:`MAX_GROUP_SHARE`), in seconds."""

    days: int
    rolled_up: int
    full: bool
    seconds: float

    def line(self) -> str:
        if not self.days:
            return "request rollup: up to date"
        what = f"every day ({self.days})" if self.full else f"{self.days} day{'s' if self.days != 1 else ''}"
        rest = self.days - self.rolled_up
        return (f"request rollup: {what} regrouped in {self.seconds:.2f} s" + (
            f"; {rest} not rolled up (more than one group per {1 / MAX_GROUP_SHARE:g} requests)" if rest else ""))


def _day_key(day: str, *, assets: bool = True) -> str:
    """The 64-bit key of a request's group within its UTC day ``day`` (columns of ``requests``)."""
    return f"hash({day}, {_RAW_COLS}, {_asset_bytes(assets=assets)})"


def rollup_sql(where: str) -> str:
    """The requests matching ``where`` grouped per UTC day as :func:`build_sql` groups them (with the assets
    and the clients): the rows of :data:`ROLLUP`."""
    return _hashed_sql(where, by_day=True)


def _day_start(day: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)


def _regroup(con: duckdb.DuckDBPyConnection, days: Sequence[int] | None) -> tuple[int, int]:
    """Replace the rollup of ``days`` (every day when None) with the requests' (in the caller's transaction):
    each day's requests, time span and estimated groups first (one scan), then the groups of the days with
    few enough of them. Returns (days looked at, days rolled up)."""
    day = f"epoch_us(ts) // {_DAY_US}"
    where, of_days = "TRUE", "TRUE"
    if days is not None:
        listed = ", ".join(str(int(d)) for d in days)
        of_days = f"day IN ({listed})"
        where = f"{Window(_day_start(min(days)), _day_start(max(days) + 1)).sql()} AND {day} IN ({listed})"
    con.execute(f"DELETE FROM {ROLLUP} WHERE {of_days}")
    con.execute(f"DELETE FROM {ROLLUP_DAYS} WHERE {of_days}")
    con.execute(f"""INSERT INTO {ROLLUP_DAYS}
SELECT {day} AS day, count(*), approx_count_distinct({_day_key(day)}) <= {MAX_GROUP_SHARE!r} * count(*), min(ts),
       max(ts)
FROM requests WHERE {where} GROUP BY day""")
    state = con.execute(f"SELECT day, rolled_up FROM {ROLLUP_DAYS} WHERE {of_days} ORDER BY day").fetchall()
    held = [int(d) for d, rolled_up in state if rolled_up]
    if held:
        only = "" if len(held) == len(state) else f" AND {day} IN ({', '.join(map(str, held))})"
        con.execute(f"INSERT INTO {ROLLUP} {rollup_sql(where + only)}")
    return len(state), len(held)


def _inputs(con: duckdb.DuckDBPyConnection) -> tuple[tuple, tuple | None]:
    """What the rollup would be built from now, and what it was built from (None: never built, or its days
    do not add up to the requests it was built from)."""
    now = con.execute(_INPUTS_SQL).fetchone()
    before = con.execute(f"SELECT requests, max_source, assets, assets_hash FROM {ROLLUP_INPUTS}").fetchone()
    days = con.execute(f"SELECT coalesce(sum(requests), 0) FROM {ROLLUP_DAYS}").fetchone()
    assert now is not None and days is not None
    return tuple(now), tuple(before) if before is not None and before[0] == days[0] else None


def refresh_rollup(con: duckdb.DuckDBPyConnection, *, full: bool = False) -> RollupRefresh | None:
    """Bring the per-day rollup up to date with ``requests`` and ``assets``, in one transaction: the days
    holding requests of sources newer than the rollup are regrouped, or every day when requests went away,
    the assets changed (their sizes key the groups) or ``full`` is set. None for a warehouse whose
    ``requests`` is a view (a Parquet warehouse: its analyses group the requests themselves)."""
    if not has_table(con, "requests"):
        return None
    started = time.perf_counter()
    with transaction(con):
        con.execute(f"CREATE TABLE IF NOT EXISTS {ROLLUP} AS {rollup_sql('FALSE')}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {ROLLUP_DAYS} (day BIGINT, requests BIGINT, rolled_up BOOLEAN, "
                    "ts_lo TIMESTAMPTZ, ts_hi TIMESTAMPTZ)")
        con.execute(f"CREATE TABLE IF NOT EXISTS {ROLLUP_INPUTS} (requests BIGINT, max_source BIGINT, "
                    "assets BIGINT, assets_hash UBIGINT, built_at TIMESTAMPTZ)")
        now, before = _inputs(con)
        if before == now and not full:
            return RollupRefresh(0, 0, False, time.perf_counter() - started)
        full = full or before is None or before[1] is None or before[2:] != now[2:]
        looked = rolled = 0
        if not full and before is not None:
            days = [int(d) for (d,) in con.execute(f"SELECT DISTINCT epoch_us(ts) // {_DAY_US} FROM requests "
                                                   "WHERE source_id > ? ORDER BY 1", [before[1]]).fetchall()]
            if days:
                looked, rolled = _regroup(con, days)
            counted = con.execute(f"SELECT coalesce(sum(requests), 0) FROM {ROLLUP_DAYS}").fetchone()
            full = not counted or int(counted[0]) != int(now[0])   # requests went away (a replaced source)
        if full:
            looked, rolled = _regroup(con, None)
        con.execute(f"DELETE FROM {ROLLUP_INPUTS}")
        con.execute(f"INSERT INTO {ROLLUP_INPUTS} VALUES (?, ?, ?, ?, now())", list(now))
    return RollupRefresh(looked, rolled, full, time.perf_counter() - started)


def rollup_days(con: duckdb.DuckDBPyConnection, window: Window) -> list[int] | None:
    """The rolled-up UTC days (epoch days) whose requests lie all in ``window``, from an up-to-date rollup
    (:func:`refresh_rollup`); None when the warehouse has none or it is out of date."""
    if not all(has_table(con, t) for t in (ROLLUP, ROLLUP_DAYS, ROLLUP_INPUTS)):
        return None
    now, before = _inputs(con)
    if before != now:
        return None
    return [int(d) for (d,) in con.execute(
        f"SELECT day FROM {ROLLUP_DAYS} WHERE rolled_up AND ts_lo >= ? AND ts_hi < ? ORDER BY day",
        [window.start, window.end]).fetchall()]


def uncovered(window: Window, days: Sequence[int]) -> list[Window]:
    """The parts of ``window`` outside the UTC ``days``, in time order."""
    out: list[Window] = []
    at = window.start
    for day in sorted(days):
        lo, hi = _day_start(day), _day_start(day + 1)
        if lo > at:
            out.append(Window(at, min(lo, window.end), window.basis))
        at = max(at, hi)
    if at < window.end:
        out.append(Window(at, window.end, window.basis))
    return [w for w in out if w.start < w.end]


def from_rollup_sql(window: Window, days: Sequence[int], *, assets: bool = True, clients: bool = True) -> str:
    """:func:`build_sql`'s rows from the rollup's ``days`` (whose requests all lie in ``window``) and the
    requests of the rest of the window, regrouped by the columns."""
    parts = [f"SELECT {_GROUP_COLS} FROM {ROLLUP} WHERE day IN ({', '.join(str(int(d)) for d in days)})"]
    parts += [f"SELECT {_GROUP_COLS} FROM ({build_sql(rest)})" for rest in uncovered(window, days)]
    union = "\n  UNION ALL ".join(parts)
    client_cols = ("min(client_lo) AS client_lo, max(client_hi) AS client_hi, min(bytes_lo) AS bytes_lo, "
                   "max(bytes_hi) AS bytes_hi") if clients else _NO_CLIENTS
    return f"""SELECT {_RAW_COLS}, {"asset_bytes" if assets else "NULL AS asset_bytes"},
       sum(n)::BIGINT AS n, sum(bytes) AS bytes, sum(bytes1) AS bytes1, sum(latency_ms) AS latency_ms, {client_cols}
FROM ({union}) GROUP BY ALL"""
