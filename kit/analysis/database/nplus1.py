"""N+1 detection: one statement issued many times where one batched statement would do.

Two detections, each naming its evidence:

- **events in bursts** (``evidence = "events of one session within <gap> ms"``, or ``"events within <gap>
  ms"`` where the log gave no session): executions of the same fingerprint in the same session (``session_id``:
  PostgreSQL csvlog/jsonlog ``session_id`` or ``%c``, MySQL thread id) — or, without one, by the same
  database user — whose consecutive log times are at most ``gap_ms`` apart form a burst; a fingerprint with
  at least ``min_bursts`` bursts of at least ``min_repeat`` executions is flagged. Without session ids two
  sessions running the same query concurrently can merge into one burst: at high rates that over-detects,
  which is why the count of bursts and their median size are reported.
- **aggregate signature from snapshots** (``evidence = "snapshots + requests + deploy"``): a single-key
  lookup (``SELECT ... FROM t WHERE col = ?``, one table, no join, aggregate or ORDER BY) returning about
  one row per call (``max_rows_per_call``), whose calls per request of the route it serves (the route
  whose path names the query's table, :func:`kit.analysis.findings.causes.route_of_query`; requests served
  from cache excluded) are high — at least ``min_calls_per_request`` — and, where a deploy of that route's
  service lies in the window, rose by ``min_jump``× at that deploy (before: back to the service's previous
  deploy or 6 h; after: to its next deploy or 6 h).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from kit.analysis.database.digest import deltas_sql, events_sql, held_deltas
from kit.analysis.database.indexes import statement_shape
from kit.analysis.window import Window
from kit.warehouse import sql_string

if TYPE_CHECKING:
    from kit.analysis.database.bursts import EventPass


def burst_sql(window: Window, gap_ms: float, min_repeat: int) -> str:
    """Per fingerprint: bursts of ≥ min_repeat executions ≤ gap_ms apart, their sizes and time.

    One sort of the events per session and fingerprint (told apart by the 64-bit hash ``h`` of their
    columns; sorting the statement texts themselves is what made this slow): an event opens a burst when
    the gap before it exceeds ``gap_ms`` (or it is the first) and closes one when the gap after it does (or
    it is the last). An event that does both is a burst of one; the others are paired in order (a burst's
    first and last events), its size and time from their row numbers and running sums. Calls, time and
    sessions per fingerprint come from a plain aggregate of the events. Gaps are differences of epoch
    microseconds (``date_diff`` on time-zoned timestamps goes through the calendar, per event). An execution
    logged without a time counts 0 ms in its burst's time (``ms``)."""
    g, k = float(gap_ms), int(min_repeat)
    part = "db_system, database, user_name, session_id, fingerprint"
    events = events_sql(window.start, window.end)
    singles = ("UNION ALL SELECT h, 1::BIGINT, total_ms, 0.0 FROM f WHERE opens AND closes" if k <= 1 else "")
    return f"""
WITH e AS (SELECT hash({part}) AS h, ts, coalesce(total_ms, 0) AS total_ms FROM ({events})),
w AS (SELECT h, ts, total_ms, (epoch_us(ts) - epoch_us(lag(ts) OVER k)) / 1000.0 AS gap_in,
             (epoch_us(lead(ts) OVER k) - epoch_us(ts)) / 1000.0 AS gap_out, row_number() OVER k AS rn,
             sum(total_ms) OVER (k ROWS UNBOUNDED PRECEDING) AS cum_ms
      FROM e WINDOW k AS (PARTITION BY h ORDER BY ts)),
f AS (SELECT *, gap_in IS NULL OR gap_in > {g} AS opens, gap_out IS NULL OR gap_out > {g} AS closes FROM w),
edge AS (SELECT *, lead(rn) OVER j AS last_rn, lead(cum_ms) OVER j AS last_cum, lead(ts) OVER j AS last_ts
         FROM f WHERE opens <> closes WINDOW j AS (PARTITION BY h ORDER BY rn)),
s AS (SELECT h, last_rn - rn + 1 AS n, last_cum - cum_ms + total_ms AS ms,
             date_diff('microsecond', ts, last_ts) / 1000.0 AS span_ms FROM edge WHERE opens {singles}),
who AS (SELECT h, any_value(db_system) AS db_system, any_value(database) AS database,
               any_value(fingerprint) AS fingerprint
        FROM (SELECT hash({part}) AS h, db_system, database, fingerprint FROM ({events}))
        WHERE h IN (SELECT h FROM s) GROUP BY h),
b AS (SELECT db_system, database, fingerprint, count(*) FILTER (WHERE n >= {k}) AS bursts,
             sum(n) FILTER (WHERE n >= {k}) AS calls_in_bursts, median(n) FILTER (WHERE n >= {k}) AS median_burst,
             max(n) AS max_burst, median(span_ms) FILTER (WHERE n >= {k}) AS median_burst_span_ms,
             sum(ms) FILTER (WHERE n >= {k}) AS ms_in_bursts
      FROM s JOIN who USING (h) GROUP BY ALL),
t AS (SELECT db_system, database, fingerprint, count(*) AS calls, sum(total_ms) AS total_ms,
             count(DISTINCT session_id) AS sessions FROM ({events}) GROUP BY ALL)
SELECT t.db_system, t.database, t.fingerprint, coalesce(b.bursts, 0) AS bursts, b.calls_in_bursts, b.median_burst,
       greatest(coalesce(b.max_burst, 1), 1) AS max_burst, b.median_burst_span_ms, b.ms_in_bursts, t.calls,
       t.total_ms, t.sessions
FROM t LEFT JOIN b ON t.db_system IS NOT DISTINCT FROM b.db_system AND t.database IS NOT DISTINCT FROM b.database
  AND t.fingerprint IS NOT DISTINCT FROM b.fingerprint
ORDER BY ms_in_bursts DESC NULLS LAST""".strip()


def burst_nplus1(con: duckdb.DuckDBPyConnection, window: Window, *, gap_ms: float = 50.0, min_repeat: int = 10,
                 min_bursts: int = 3, held: EventPass | None = None) -> tuple[list[dict[str, object]], str]:
    """Fingerprints repeated in bursts (see the module docstring), as dicts with the burst numbers, and
    :func:`burst_sql` (what the result shows; the numbers come from the same detection in one pass over the
    events, :func:`kit.analysis.database.bursts.burst_frame`; ``held``: the window's events read already by
    :func:`kit.analysis.database.bursts.event_pass`)."""
    from kit.analysis.database.bursts import burst_frame  # numba: loaded where bursts are looked for

    sql = burst_sql(window, gap_ms, min_repeat)
    frame = burst_frame(con, events_sql(window.start, window.end), gap_ms, min_repeat, held=held)
    out: list[dict[str, object]] = []
    for row in frame.itertuples(index=False):
        if (row.bursts or 0) < min_bursts:
            continue
        shape = statement_shape(str(row.fingerprint))
        if shape.kind != "select":
            continue
        out.append({"fingerprint": row.fingerprint, "db_system": row.db_system, "database": row.database,
                    "evidence": ("events of one session" if row.sessions else "events") + f" within {gap_ms:g} ms",
                    "sessions": int(row.sessions), "bursts": int(row.bursts),
                    "calls_in_bursts": int(row.calls_in_bursts), "median_burst": float(row.median_burst),
                    "max_burst": int(row.max_burst), "median_burst_span_ms": float(row.median_burst_span_ms),
                    "ms_in_bursts": float(row.ms_in_bursts), "calls": int(row.calls),
                    "total_ms": float(row.total_ms), "mean_ms": float(row.total_ms) / max(int(row.calls), 1),
                    "single_key_lookup": shape.single_key_lookup,
                    "excess_calls": int(row.calls_in_bursts) - int(row.bursts)})
    return out, sql


def _routes(con: duckdb.DuckDBPyConnection, window: Window) -> pd.DataFrame:
    return con.execute(f"""SELECT route, any_value(service) AS service, count(*) AS n FROM requests
                           WHERE {window.sql()} AND route IS NOT NULL GROUP BY route ORDER BY n DESC LIMIT 2000""").df()


def _routes_of(route_counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`_routes` from requests per service and route (``service``, ``route``, ``requests``)."""
    rows = route_counts[route_counts["route"].notna()]
    out = rows.groupby("route", sort=False).agg(service=("service", "first"), n=("requests", "sum")).reset_index()
    return out.sort_values("n", ascending=False, kind="stable").head(2000).reset_index(drop=True)


def per_request_sql(window: Window, fingerprints: list[str], route: str) -> str:
    """Per snapshot interval: calls, time and rows of the fingerprints and requests of ``route`` (not
    served from cache)."""
    fps = ", ".join("'" + f.replace("'", "''") + "'" for f in fingerprints)
    r = route.replace("'", "''")
    return f"""
WITH d AS ({deltas_sql(window.start, window.end)}),
f AS (SELECT fingerprint, ts, any_value(p_ts) AS p_ts, sum(calls) AS calls, sum(total_ms) AS ms, sum(rows) AS rows
      FROM d WHERE fingerprint IN ({fps}) GROUP BY fingerprint, ts),
r AS (SELECT time_bucket(INTERVAL 1 MINUTE, ts) AS m, count(*) AS n FROM requests
      WHERE {window.sql()} AND route = '{r}' AND coalesce(upper(cache_status), '') NOT IN ('HIT', 'STALE')
      GROUP BY 1)
SELECT f.fingerprint, f.ts, f.p_ts, any_value(f.calls) AS calls, any_value(f.ms) AS ms, any_value(f.rows) AS rows,
       coalesce(sum(r.n), 0) AS requests
FROM f LEFT JOIN r ON r.m >= f.p_ts AND r.m < f.ts
GROUP BY f.fingerprint, f.ts, f.p_ts ORDER BY f.fingerprint, f.ts""".strip()


def route_minutes_sql(window: Window, routes: list[str]) -> str:
    """Requests of ``routes`` not served from cache per minute (``m``: epoch minutes, the minute
    :func:`per_request_sql`'s ``time_bucket`` gives, without a calendar computation per request)."""
    return f"""SELECT route, epoch_us(ts) // 60000000 AS m, count(*) AS n FROM requests
WHERE {window.sql()} AND route IN ({', '.join(sql_string(r) for r in routes)})
  AND coalesce(upper(cache_status), '') NOT IN ('HIT', 'STALE')
GROUP BY 1, 2"""


def _per_request_frames(con: duckdb.DuckDBPyConnection, window: Window, by_route: dict[str, list[str]],
                        deltas: str | None) -> dict[str, pd.DataFrame]:
    """:func:`per_request_sql`'s frame for every route at once: the snapshot intervals of all the
    fingerprints from one computation of the deltas, each route's requests per minute from one scan of
    ``requests`` (:func:`route_minutes_sql`), and each interval's requests — the minutes ``m`` with
    ``p_ts <= m < ts`` — as the difference of the route's cumulative per-minute counts at the two ends
    (binary search), instead of a range join per route."""
    if not by_route:
        return {}
    fps = ", ".join(sorted({sql_string(f) for v in by_route.values() for f in v}))
    f = con.execute(held_deltas(f"""
WITH d AS ({deltas_sql(window.start, window.end)})
SELECT fingerprint, ts, any_value(p_ts) AS p_ts, sum(calls) AS calls, sum(total_ms) AS ms, sum(rows) AS rows
FROM d WHERE fingerprint IN ({fps}) GROUP BY fingerprint, ts""", deltas, window.start, window.end)).df()
    f = f.sort_values(["fingerprint", "ts"], kind="stable").reset_index(drop=True)
    ts_us = _epoch_us(f["ts"])
    p_us = _epoch_us(f["p_ts"])
    minutes = con.execute(route_minutes_sql(window, list(by_route))).fetchnumpy()
    frames: dict[str, pd.DataFrame] = {}
    for route, route_fps in by_route.items():
        mine = np.asarray(minutes["route"], dtype=object) == route
        order = np.argsort(np.asarray(minutes["m"])[mine], kind="stable")
        m_us = np.asarray(minutes["m"])[mine][order].astype(np.int64) * 60_000_000
        cum = np.concatenate([[0], np.cumsum(np.asarray(minutes["n"])[mine][order].astype(np.int64))])
        rows = f["fingerprint"].isin(route_fps).to_numpy()
        requests = cum[np.searchsorted(m_us, ts_us[rows], "left")] - cum[np.searchsorted(m_us, p_us[rows], "left")]
        frames[route] = f[rows].assign(requests=np.maximum(requests, 0)).reset_index(drop=True)
    return frames


def _epoch_us(column: pd.Series) -> np.ndarray:
    """Epoch microseconds of a (time-zoned) timestamp column."""
    return np.asarray(pd.to_datetime(column, utc=True).dt.tz_localize(None).astype("datetime64[us]")
                      .astype(np.int64))


def candidate_routes(fingerprint: str, routes: list[str], limit: int = 5) -> list[str]:
    """Routes whose path names most of the statement's identifiers (one at least; ties all kept, so
    ``/product/{id}`` and ``/api/v1/products/{id}`` are both tried for a ``product_*`` table): the same
    scoring as :func:`kit.analysis.findings.causes.route_of_query`."""
    from kit.analysis.findings.causes import _tokens

    words = _tokens(fingerprint) - {"select", "from", "where", "join", "order", "limit", "offset", "and", "desc",
                                   "asc", "count"}
    scored = []
    for route in routes:
        parts = _tokens(route) - {"api", "static", "name", "slug"}
        hits = len(parts & words)
        if parts and hits >= 1:
            scored.append(((hits, hits / len(parts)), route))
    if not scored:
        return []
    best = max(score for score, _ in scored)
    return [r for score, r in scored if score == best][:limit]


def signature_nplus1(con: duckdb.DuckDBPyConnection, window: Window, digest_frame: pd.DataFrame, *,
                     min_calls_per_request: float = 5.0, min_jump: float = 3.0, max_rows_per_call: float = 2.0,
                     high_without_deploy: float = 30.0, top: int = 40, route_counts: pd.DataFrame | None = None,
                     deltas: str | None = None) -> tuple[list[dict[str, object]], dict[str, str]]:
    """The aggregate N+1 signature from snapshots (see the module docstring); SQL per route. Flagged: a
    jump at a deploy of the route's service (calls per request after ≥ ``min_calls_per_request`` and ≥
    ``min_jump`` × before), or, with no such deploy, calls per request ≥ ``high_without_deploy``."""
    sql: dict[str, str] = {}
    snap = digest_frame[(digest_frame["basis"] == "snapshots")].head(top)
    if snap.empty:
        return [], sql
    routes = _routes(con, window) if route_counts is None else _routes_of(route_counts)
    if routes.empty:
        return [], sql
    service_of = dict(zip(routes["route"], routes["service"], strict=True))
    by_route: dict[str, list[str]] = {}
    for row in snap.itertuples(index=False):
        if row.rows_per_call is None or not row.rows_per_call <= max_rows_per_call:
            continue
        if not statement_shape(str(row.fingerprint)).single_key_lookup:
            continue
        for route in candidate_routes(str(row.fingerprint), list(routes["route"])):
            by_route.setdefault(route, []).append(str(row.fingerprint))
    deploys = con.execute(f"""SELECT ts_start, service, what FROM events WHERE kind = 'deploy'
                              AND ts_start >= TIMESTAMPTZ '{window.start.isoformat()}'
                              AND ts_start < TIMESTAMPTZ '{window.end.isoformat()}' ORDER BY ts_start""").df()
    tried: dict[str, list[tuple[dict[str, object], str]]] = {}
    frames = _per_request_frames(con, window, by_route, deltas)
    for route, fps in by_route.items():
        query = per_request_sql(window, fps, route)   # what the result shows: the same numbers on its own
        frame = frames[route]
        service = service_of.get(route)
        svc_deploys = deploys[deploys["service"] == service] if service is not None else deploys.iloc[0:0]
        for fp, part in frame.groupby("fingerprint"):
            req = float(part["requests"].sum())
            if req <= 0:
                continue
            overall = float(part["calls"].sum()) / req
            best: dict[str, object] | None = None
            times = list(svc_deploys["ts_start"])
            for i, (ts, what) in enumerate(zip(svc_deploys["ts_start"], svc_deploys["what"], strict=True)):
                lo = max(times[i - 1] if i > 0 else window.start, ts - timedelta(hours=6))
                hi = min(times[i + 1] if i + 1 < len(times) else window.end, ts + timedelta(hours=6))
                before = part[(part["ts"] > lo) & (part["ts"] <= ts)]
                after = part[(part["ts"] > ts) & (part["ts"] <= hi)]
                if before["requests"].sum() <= 0 or after["requests"].sum() <= 0:
                    continue
                cb = float(before["calls"].sum()) / float(before["requests"].sum())
                ca = float(after["calls"].sum()) / float(after["requests"].sum())
                if ca >= min_calls_per_request and ca >= min_jump * max(cb, 1e-9) and (
                        best is None or ca / max(cb, 1e-9) > float(best["jump"])):  # type: ignore[arg-type]
                    calls_after = float(after["calls"].sum())
                    req_after = float(after["requests"].sum())
                    best = {"deploy": str(what), "deploy_ts": pd.Timestamp(ts).isoformat(),
                            "calls_per_request_before": cb, "calls_per_request_after": ca,
                            "jump": ca / max(cb, 1e-9), "after_start": pd.Timestamp(ts).isoformat(),
                            "after_end": pd.Timestamp(hi).isoformat(),
                            "excess_calls": calls_after - req_after * max(cb, 1.0),
                            "after_mean_ms": float(after["ms"].sum()) / max(calls_after, 1.0)}
            calls = float(part["calls"].sum())
            item: dict[str, object] = {
                "fingerprint": fp, "evidence": "snapshots + requests" + (" + deploy" if best else ""),
                "route": route, "service": service, "calls": calls, "requests": req,
                "calls_per_request": overall, "rows_per_call": float(part["rows"].sum()) / max(calls, 1.0),
                "mean_ms": float(part["ms"].sum()) / max(calls, 1.0), "single_key_lookup": True,
                "excess_calls": (best or {}).get("excess_calls", calls - req)}
            if best:
                item.update(best)
            tried.setdefault(str(fp), []).append((item, query))
    # of the routes tried for a fingerprint, the busiest one with a deploy jump (the most conservative
    # calls per request), else the busiest one when its calls per request are high without a deploy
    found: dict[str, dict[str, object]] = {}
    for fp, options in tried.items():
        jumped = [o for o in options if "deploy" in o[0]]
        pool = jumped or options
        item, query = max(pool, key=lambda o: float(o[0]["requests"]))  # type: ignore[arg-type]
        if not jumped and float(item["calls_per_request"]) < high_without_deploy:  # type: ignore[arg-type]
            continue
        found[fp] = item
        sql[f"nplus1_per_request {item['route']}"] = query
    out = list(found.values())
    out.sort(key=lambda x: -float(x["excess_calls"]) * float(x.get("after_mean_ms", x["mean_ms"])))  # type: ignore[arg-type]
    return out, sql
