"""Query digest and regressions in DuckDB SQL over the warehouse's ``queries``.

**Two kinds of rows.** ``snapshot`` rows are cumulative counters (pg_stat_statements): a fingerprint's
activity in an interval is the difference between consecutive snapshots of the same series (a
``pg-stat-statements`` ingest's server label, else the source), per database, user and query id; a counter
that went down (reset, eviction) counts from zero, as in :func:`kit.ingest.pg_stat_statements.pg_stat_deltas`;
the first snapshot of a series is its baseline. An interval belongs to the window by its end. ``event``
rows are single executions (slow logs, PostgreSQL logs with ``log_min_duration_statement``).

**Digest** (pt-query-digest / pgBadger): per (db_system, database, fingerprint), ranked by total time.
Counts come from snapshots when the fingerprint has them (complete), else from events. p95/p99 and
variance-to-mean (V/M = variance / mean of per-execution time, pt-query-digest's measure of how uneven
a query is) need per-execution events: ``percentile_basis`` says whether they cover all executions, only
the logged ones (a duration threshold keeps the fast ones out, so they are upper-tail figures), or none
(means only).

**Regressions**: mean time per call in period B against period A, per fingerprint, with a 95 % interval
for the ratio from a Welch t-test on the log of per-unit means (a unit is a snapshot interval, or one
execution for event-only fingerprints), so noise does not rank; calls per second with a delta-method
interval on per-interval rates (snapshots) or a Poisson one (events, which understates overdispersion).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from kit.analysis.window import Window
from kit.warehouse import sql_string

KIND_PGSS = "pg-stat-statements"


def _lit(moment: datetime) -> str:
    return f"TIMESTAMPTZ '{moment.isoformat()}'"


_COUNTER_SERIES = "series, db_system, database, user_name, coalesce(query_id, fingerprint)"


def deltas_sql(start: datetime, end: datetime, *, fast: bool = False, since: datetime | None = None) -> str:
    """SQL of per-interval activity from snapshots (columns ts, p_ts, interval_s, db_system, database,
    user_name, fingerprint, sample, calls, total_ms, rows, hit, read) for intervals ending in [start, end).
    ``since``: read only the snapshots from then on (a bounded scan; an interval whose previous snapshot is
    older is left out, so ``since`` should lie a snapshot interval or more before ``start``).

    ``fast`` (what :func:`hold_deltas` runs; the rows are the same): each series name once per source rather
    than per snapshot row, the interval's milliseconds as a difference of epoch milliseconds (what
    ``date_diff('millisecond', ...)`` counts on time-zoned timestamps, without the calendar per row), the
    counters' series told apart by the 64-bit hash of their five names (the window sorts on one integer;
    two series would have to collide in 64 bits to merge), and the five previous counters as one ``lag`` of
    a struct."""
    if fast:
        snap = f"""SELECT q.*, l.series
  FROM queries q JOIN (SELECT source_id, CASE WHEN kind = '{KIND_PGSS}' THEN 'pgss:' || coalesce(path, '')
                       ELSE 'src:' || CAST(source_id AS VARCHAR) END AS series FROM ingest_log) l USING (source_id)"""
        lagged = f"""lagged_struct AS (
  SELECT s.*, k.series_prev_ts,
         lag({{'c': calls, 'm': total_ms, 'r': rows, 'h': shared_blks_hit, 'd': shared_blks_read}}) OVER w AS p
  FROM snap s JOIN seq k USING (series, ts)
  WINDOW w AS (PARTITION BY hash({_COUNTER_SERIES}) ORDER BY s.ts)),
lagged AS (SELECT * EXCLUDE (p), p.c AS p_calls, p.m AS p_ms, p.r AS p_rows, p.h AS p_hit, p.d AS p_read
            FROM lagged_struct)"""
        interval = "(epoch_us(ts) // 1000 - epoch_us(series_prev_ts) // 1000)"
    else:
        snap = f"""SELECT q.*, CASE WHEN l.kind = '{KIND_PGSS}' THEN 'pgss:' || coalesce(l.path, '')
                   ELSE 'src:' || CAST(q.source_id AS VARCHAR) END AS series
  FROM queries q JOIN ingest_log l USING (source_id)"""
        lagged = f"""lagged AS (
  SELECT s.*, k.series_prev_ts,
         lag(calls) OVER w AS p_calls, lag(total_ms) OVER w AS p_ms, lag(rows) OVER w AS p_rows,
         lag(shared_blks_hit) OVER w AS p_hit, lag(shared_blks_read) OVER w AS p_read
  FROM snap s JOIN seq k USING (series, ts)
  WINDOW w AS (PARTITION BY {_COUNTER_SERIES} ORDER BY s.ts))"""
        interval = "date_diff('millisecond', series_prev_ts, ts)"
    return f"""
WITH snap AS (
  {snap}
  WHERE q.kind = 'snapshot' AND q.ts < {_lit(end)}{"" if since is None else f" AND q.ts >= {_lit(since)}"}),
seq AS (SELECT series, ts, lag(ts) OVER (PARTITION BY series ORDER BY ts) AS series_prev_ts
        FROM (SELECT DISTINCT series, ts FROM snap)),
{lagged},
d AS (
  SELECT ts, series_prev_ts AS p_ts, {interval} / 1000.0 AS interval_s,
         db_system, database, user_name, fingerprint, sample,
         (p_calls IS NULL OR calls < p_calls) AS fresh, calls, total_ms, rows, shared_blks_hit, shared_blks_read,
         p_calls, p_ms, p_rows, p_hit, p_read
  FROM lagged WHERE series_prev_ts IS NOT NULL)
SELECT ts, p_ts, interval_s, db_system, database, user_name, fingerprint, sample,
       CASE WHEN fresh THEN calls ELSE calls - p_calls END AS calls,
       CASE WHEN fresh THEN total_ms ELSE total_ms - p_ms END AS total_ms,
       CASE WHEN fresh THEN rows ELSE rows - p_rows END AS rows,
       CASE WHEN fresh THEN shared_blks_hit ELSE shared_blks_hit - p_hit END AS hit,
       CASE WHEN fresh THEN shared_blks_read ELSE shared_blks_read - p_read END AS read
FROM d WHERE ts >= {_lit(start)}""".strip()


def held_deltas(sql: str, table: str | None, start: datetime, end: datetime) -> str:
    """``sql`` reading the deltas of [start, end) from ``table`` (the window's deltas, computed once by
    :func:`hold_deltas`) instead of computing them: a delta depends only on earlier snapshots, so the
    window's deltas filtered to [start, end) are :func:`deltas_sql` ``(start, end)``."""
    if table is None:
        return sql
    computed = deltas_sql(start, end)
    if computed not in sql:   # a swap that found nothing would quietly compute the deltas again
        raise ValueError(f"held_deltas: the SQL does not compute the deltas of [{start}, {end})")
    return sql.replace(computed, f"SELECT * FROM {table} WHERE ts >= {_lit(start)} AND ts < {_lit(end)}")


def hold_deltas(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> str:
    """A temporary table of :func:`deltas_sql` ``(start, end)`` (one row per snapshot interval: thousands,
    not the window's requests; computed by :func:`deltas_sql`'s ``fast`` form); the caller drops it."""
    table = f"db_deltas_{abs(hash((start, end))) % 10**8}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {deltas_sql(start, end, fast=True)}")
    return table


def events_sql(start: datetime, end: datetime) -> str:
    """SQL of single executions (``kind = 'event'``) in [start, end)."""
    return (f"SELECT ts, db_system, database, user_name, session_id, fingerprint, sample, total_ms, rows, "
            f"rows_examined, lock_ms FROM queries WHERE kind = 'event' AND ts >= {_lit(start)} AND ts < {_lit(end)}")


_V_EVENTS = """v AS (SELECT db_system, coalesce(database, '') AS database, fingerprint, any_value(sample) AS v_sample,
             string_agg(DISTINCT user_name, ', ' ORDER BY user_name) AS v_users, count(*) AS events,
             sum(total_ms) AS v_ms, sum(rows) AS v_rows, sum(rows_examined) AS rows_examined, sum(lock_ms) AS lock_ms,
             quantile_cont(total_ms, [0.5, 0.95, 0.99]) AS pq, max(total_ms) AS max_ms,
             var_samp(total_ms) / nullif(avg(total_ms), 0) AS variance_to_mean
      FROM e GROUP BY ALL)"""


def _v_from(table: str) -> str:
    """``v`` of :func:`digest_sql` read from ``table``, the per-execution aggregate computed already
    (:func:`kit.analysis.database.bursts.event_digest`; its quantiles as three columns), with ``v``'s types."""
    return f"""v AS (SELECT db_system::VARCHAR AS db_system, database::VARCHAR AS database,
             fingerprint::VARCHAR AS fingerprint, v_sample::VARCHAR AS v_sample, v_users::VARCHAR AS v_users,
             events::BIGINT AS events, v_ms::DOUBLE AS v_ms, v_rows::HUGEINT AS v_rows,
             rows_examined::HUGEINT AS rows_examined, lock_ms::DOUBLE AS lock_ms,
             [p50_ms::DOUBLE, p95_ms::DOUBLE, p99_ms::DOUBLE] AS pq, max_ms::DOUBLE AS max_ms,
             variance_to_mean::DOUBLE AS variance_to_mean FROM {table})"""


def digest_sql(window: Window, *, events_from: str | None = None) -> str:
    """The digest query: one row per (db_system, database, fingerprint), ranked by total time;
    ``events_from``: a relation holding the per-execution aggregate ``v`` already (:func:`_v_from`)."""
    return f"""
WITH d AS ({deltas_sql(window.start, window.end)}),
e AS ({events_sql(window.start, window.end)}),
s AS (SELECT db_system, coalesce(database, '') AS database, fingerprint, any_value(sample) AS s_sample,
             string_agg(DISTINCT user_name, ', ' ORDER BY user_name) AS s_users, sum(calls) AS s_calls,
             sum(total_ms) AS s_ms, sum(rows) AS s_rows, sum(hit) AS hit, sum(read) AS read,
             count(DISTINCT ts) AS intervals
      FROM d GROUP BY ALL HAVING sum(calls) > 0),
{_V_EVENTS if events_from is None else _v_from(events_from)},
j AS (SELECT coalesce(s.db_system, v.db_system) AS db_system, coalesce(s.database, v.database) AS database,
             coalesce(s.fingerprint, v.fingerprint) AS fingerprint, coalesce(s_sample, v_sample) AS sample,
             coalesce(s_users, v_users) AS users,
             CASE WHEN s_calls IS NOT NULL THEN 'snapshots' ELSE 'events' END AS basis,
             coalesce(s_calls, events) AS calls, coalesce(s_ms, v_ms) AS total_ms,
             coalesce(s_rows, v_rows) AS rows, rows_examined, lock_ms, hit, read, intervals, events,
             pq[1] AS p50_ms, pq[2] AS p95_ms, pq[3] AS p99_ms, max_ms, variance_to_mean
      FROM s FULL JOIN v ON s.db_system = v.db_system AND s.database = v.database
                        AND s.fingerprint = v.fingerprint)
SELECT db_system, nullif(database, '') AS database, fingerprint, sample, users, basis, calls, total_ms,
       total_ms / nullif(calls, 0) AS mean_ms, p50_ms, p95_ms, p99_ms, max_ms, variance_to_mean,
       rows / nullif(calls, 0) AS rows_per_call, rows_examined / nullif(rows, 0) AS examined_per_row,
       total_ms / nullif(sum(total_ms) OVER (), 0) AS share_of_db_time,
       read / nullif(hit + read, 0) AS read_share, (hit + read) / nullif(calls, 0) AS blocks_per_call,
       events, events / nullif(calls, 0) AS event_coverage, intervals, lock_ms
FROM j WHERE calls > 0
ORDER BY total_ms DESC, fingerprint""".strip()


def percentile_basis(events: float | None, coverage: float | None) -> str:
    """What the p95/p99 of a digest row stand for."""
    if events is None or events != events or not events:
        return "means only (no per-execution events)"
    if coverage is not None and coverage >= 0.95:
        return "all executions"
    return f"logged executions only ({coverage or 0:.1%} of calls; the log's duration threshold drops fast ones)"


def digest(con: duckdb.DuckDBPyConnection, window: Window, *, deltas: str | None = None,
           events: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str]:
    """The digest frame (see :func:`digest_sql`) with ``percentile_basis``, and its SQL; ``deltas``: a table
    of :func:`hold_deltas` to read the deltas from; ``events``: the per-execution aggregate ``v`` computed
    already from the events read once (:func:`kit.analysis.database.bursts.event_digest`), so that the
    digest does not scan the events again."""
    sql = digest_sql(window)
    if events is None:
        return _digest_frame(con.execute(held_deltas(sql, deltas, window.start, window.end)).df()), sql
    name = f"db_event_digest_{abs(hash((window.start, window.end))) % 10**8}"
    con.register(name, events)
    try:
        frame = con.execute(held_deltas(digest_sql(window, events_from=name), deltas, window.start, window.end)).df()
    finally:
        con.unregister(name)
    return _digest_frame(frame), sql


def _digest_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The digest query's frame with ``percentile_basis`` (nullable columns as float)."""
    for col in frame.columns:  # nullable integer columns → float (NaN), so NA never reaches a comparison
        if str(frame[col].dtype) in ("Int64", "Int32", "Float64"):
            frame[col] = frame[col].astype("float64")
    frame["percentile_basis"] = [percentile_basis(e, c) for e, c in
                                 zip(frame["events"], frame["event_coverage"], strict=True)]
    return frame


@dataclass(frozen=True)
class Period:
    """Two periods compared: A = [a_start, split), B = [split, b_end); ``label`` says where they came from."""

    label: str
    a_start: datetime
    split: datetime
    b_end: datetime


def regression_sql(period: Period, *, only: list[str] | None = None) -> str:
    """Per (fingerprint, side) units: n, calls, ms, mean and variance of log mean-per-call, rate stats.
    ``only``: the events read are those of these fingerprints (the ones without snapshots in the period,
    known already), not of every fingerprint the snapshots lack."""
    narrowed = "" if only is None else (
        f" AND fingerprint IN ({', '.join(map(sql_string, only))})" if only else " AND false")
    a, s, b = _lit(period.a_start), _lit(period.split), _lit(period.b_end)
    return f"""
WITH d AS ({deltas_sql(period.a_start, period.b_end)}),
su AS (SELECT fingerprint, ts >= {s} AS after, ts, any_value(interval_s) AS interval_s, sum(calls) AS calls,
              sum(total_ms) AS ms FROM d GROUP BY fingerprint, ts),
s AS (SELECT fingerprint, after, 'snapshots' AS basis, count(*) FILTER (WHERE calls > 0 AND ms > 0) AS n,
             sum(calls) AS calls, sum(ms) AS ms, sum(interval_s) AS seconds,
             avg(ln(ms / calls)) FILTER (WHERE calls > 0 AND ms > 0) AS lm,
             var_samp(ln(ms / calls)) FILTER (WHERE calls > 0 AND ms > 0) AS lv,
             count(*) AS n_rate, avg(calls / interval_s) AS rate, var_samp(calls / interval_s) AS rate_var
      FROM su GROUP BY ALL),
e AS (SELECT fingerprint, ts >= {s} AS after, 'events' AS basis, count(*) FILTER (WHERE total_ms > 0) AS n,
             count(*) AS calls, sum(total_ms) AS ms,
             CASE WHEN ts >= {s} THEN date_diff('millisecond', {s}, {b}) ELSE date_diff('millisecond', {a}, {s})
             END / 1000.0 AS seconds,
             avg(ln(total_ms)) FILTER (WHERE total_ms > 0) AS lm, var_samp(ln(total_ms)) FILTER (WHERE total_ms > 0)
             AS lv, NULL::BIGINT AS n_rate, NULL::DOUBLE AS rate, NULL::DOUBLE AS rate_var
      FROM ({events_sql(period.a_start, period.b_end)})
      WHERE fingerprint NOT IN (SELECT fingerprint FROM s){narrowed} GROUP BY ALL)
SELECT * FROM s UNION ALL SELECT * FROM e ORDER BY fingerprint, after""".strip()


def regressions(con: duckdb.DuckDBPyConnection, period: Period, *, min_units: int = 3,
                min_ratio: float = 1.2, min_rate_ratio: float = 2.0, deltas: str | None = None,
                event_fingerprints: Collection[str] | None = None) -> tuple[pd.DataFrame, str]:
    """Fingerprints compared between the two periods of ``period``: ``mean_a_ms``/``mean_b_ms`` (time per
    call), ``ratio`` with 95 % ``ratio_low``/``ratio_high`` (from the log-scale Welch interval, re-centred on
    the ratio of means), ``p_value``, ``calls_per_s_a``/``_b`` with ``rate_ratio`` and its interval,
    ``added_ms`` (B's calls × the rise of the mean), ``regressed`` (the interval's low end above
    ``min_ratio``, at least ``min_units`` units a side) and ``calls_jumped`` (the calls-per-second ratio's
    low end above ``min_rate_ratio``), ranked by added_ms. ``event_fingerprints``: the fingerprints of the
    events in a window that holds the period, known already (with ``deltas``: the events of those without
    snapshots in the period are the only ones read, and none when there are none)."""
    from scipy import stats

    sql = regression_sql(period)
    only = None
    if deltas is not None and event_fingerprints is not None:
        snapshotted = {str(r[0]) for r in con.execute(
            f"SELECT DISTINCT fingerprint FROM {deltas} WHERE ts >= {_lit(period.a_start)} "
            f"AND ts < {_lit(period.b_end)}").fetchall()}
        only = sorted(set(event_fingerprints) - snapshotted)
    run = held_deltas(regression_sql(period, only=only), deltas, period.a_start, period.b_end)
    raw = con.execute(run).df()
    for col in raw.columns:
        if str(raw[col].dtype) in ("Int64", "Int32", "Float64"):
            raw[col] = raw[col].astype("float64")
    cols = ["fingerprint", "basis", "n_a", "n_b", "mean_a_ms", "mean_b_ms", "ratio", "ratio_low", "ratio_high",
            "p_value", "calls_a", "calls_b", "calls_per_s_a", "calls_per_s_b", "rate_ratio", "rate_ratio_low",
            "rate_ratio_high", "added_ms", "regressed", "calls_jumped", "period"]
    if raw.empty:
        return pd.DataFrame(columns=cols), sql
    a = raw[~raw["after"]].set_index("fingerprint")
    b = raw[raw["after"]].set_index("fingerprint")
    both = a.add_suffix("_a").join(b.add_suffix("_b"), how="inner")
    if both.empty:
        return pd.DataFrame(columns=cols), sql
    na, nb = both["n_a"].astype(float), both["n_b"].astype(float)
    va, vb = both["lv_a"].fillna(0).astype(float), both["lv_b"].fillna(0).astype(float)
    se2 = va / na.clip(lower=1) + vb / nb.clip(lower=1)
    se = np.sqrt(se2)
    dfree = se2 ** 2 / ((va / na.clip(lower=1)) ** 2 / (na - 1).clip(lower=1)
                        + (vb / nb.clip(lower=1)) ** 2 / (nb - 1).clip(lower=1)).replace(0, np.nan)
    dfree = dfree.fillna(na + nb - 2).clip(lower=1)
    diff = both["lm_b"].astype(float) - both["lm_a"].astype(float)
    tcrit = stats.t.ppf(0.975, dfree)
    mean_a = both["ms_a"] / both["calls_a"]
    mean_b = both["ms_b"] / both["calls_b"]
    ratio = mean_b / mean_a
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = np.where(se > 0, diff / se, np.sign(diff) * np.inf)
    p = 2 * stats.t.sf(np.abs(tstat), dfree)
    rate_a = both["calls_a"] / both["seconds_a"]
    rate_b = both["calls_b"] / both["seconds_b"]
    rate_ratio = rate_b / rate_a
    snap = both["basis_a"] == "snapshots"
    rel2 = np.where(snap, both["rate_var_a"].fillna(0) / (both["n_rate_a"].clip(lower=1) * both["rate_a"] ** 2)
                    + both["rate_var_b"].fillna(0) / (both["n_rate_b"].clip(lower=1) * both["rate_b"] ** 2),
                    1 / both["calls_a"].clip(lower=1) + 1 / both["calls_b"].clip(lower=1))
    rse = np.sqrt(np.asarray(rel2, dtype=float))
    out = pd.DataFrame({
        "fingerprint": both.index, "basis": both["basis_a"].to_numpy(), "n_a": na.to_numpy(), "n_b": nb.to_numpy(),
        "mean_a_ms": mean_a.to_numpy(), "mean_b_ms": mean_b.to_numpy(), "ratio": ratio.to_numpy(),
        "ratio_low": (ratio * np.exp(-tcrit * se)).to_numpy(), "ratio_high": (ratio * np.exp(tcrit * se)).to_numpy(),
        "p_value": p, "calls_a": both["calls_a"].to_numpy(), "calls_b": both["calls_b"].to_numpy(),
        "calls_per_s_a": rate_a.to_numpy(), "calls_per_s_b": rate_b.to_numpy(), "rate_ratio": rate_ratio.to_numpy(),
        "rate_ratio_low": (rate_ratio * np.exp(-1.96 * rse)).to_numpy(),
        "rate_ratio_high": (rate_ratio * np.exp(1.96 * rse)).to_numpy(),
        "added_ms": (both["calls_b"] * (mean_b - mean_a)).to_numpy(),
    })
    enough = (out["n_a"] >= min_units) & (out["n_b"] >= min_units)
    out["regressed"] = (out["ratio_low"] > min_ratio) & enough
    out["calls_jumped"] = (out["rate_ratio_low"] > min_rate_ratio) & enough
    out["period"] = period.label
    return out.sort_values(["regressed", "added_ms"], ascending=[False, False]).reset_index(drop=True), sql
