"""Probable causes of a change: deploy/config events shortly before the onset (never ``incident`` rows),
metrics that moved with it, query fingerprints whose time rose, profile frames that grew."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

import duckdb
import numpy as np

from kit.analysis.database.digest import deltas_sql
from kit.analysis.findings.model import Cause

# the only events the detector reads: everything but the ground truth of incidents
EVENTS_SQL = """
SELECT ts_start, ts_end, kind, service, route, what
FROM events
WHERE kind <> 'incident' AND ts_start >= ? AND ts_start <= ?
ORDER BY ts_start
"""

# usage metric -> limit metric (the same resource's ceiling); utilization = sum(usage) / max(limit)
SATURATION_PAIRS = (
    ("pg_stat_activity_count", "pg_settings_max_connections", "database connections"),
    ("mysql_global_status_threads_connected", "mysql_global_variables_max_connections", "database connections"),
    ("process_open_fds", "process_max_fds", "file descriptors"),
)
SATURATED = 0.85  # utilization at or above this share of the limit counts as saturated


def event_causes(con: duckdb.DuckDBPyConnection, onset: datetime, end: datetime | None, bucket_s: int,
                 scope: dict[str, str]) -> tuple[list[Cause], str]:
    """Events that started within ``lead`` before the onset (or up to two buckets after it), scored by
    closeness in time (full within max(5 min, 2 buckets), then decaying with a 10-min scale) and scope:
    same service 1, no service 0.6, another service 0.25; a route that matches the scope's route (or its
    prefix) adds weight, another route takes most of it away; an event whose end matches the finding's
    end (a revert or rollback) is stronger."""
    lead = timedelta(seconds=max(1800, 6 * bucket_s))
    after = timedelta(seconds=2 * bucket_s)
    rows = con.execute(EVENTS_SQL, [onset - lead, onset + after]).fetchall()
    sql = EVENTS_SQL.replace("?", f"TIMESTAMPTZ '{(onset - lead).isoformat()}'", 1).replace(
        "?", f"TIMESTAMPTZ '{(onset + after).isoformat()}'", 1).strip()
    links = []
    for ts_start, ts_end, kind, service, route, what in rows:
        lag = (onset - ts_start).total_seconds()
        grace = max(300.0, 2 * bucket_s)  # a rollout takes minutes: full weight within the grace period
        closeness = math.exp(-max(lag - grace, 0.0) / max(600.0, 2 * bucket_s)) if lag >= 0 else 0.7
        if service and scope.get("service") == service:
            match = 1.0
        elif not service:
            match = 0.6
        else:
            match = 0.25
        if route and scope.get("route"):
            prefix = scope["route"].rstrip("*")
            # an event aimed at another route of the service is a weak suspect
            match *= 1.15 if route.rstrip("*").startswith(prefix) or prefix.startswith(route.rstrip("*")) else 0.3
        ends_together = 1.0
        if end is not None and ts_end is not None and kind != "deploy":
            ends_together = 1.2 if abs((ts_end - end).total_seconds()) <= 2 * bucket_s else 1.0
        strength = min(1.0, closeness * match * ends_together)
        if strength >= 0.1:
            links.append(Cause(_event_kind(kind), f"{kind}@{ts_start.isoformat()}", str(what),
                                   round(strength, 3), lag))
    return links, sql


def _event_kind(kind: str) -> str:
    return kind if kind in ("deploy", "config") else "config" if kind in ("feature_flag", "flag") else kind


def metric_causes(con: duckdb.DuckDBPyConnection, onset: datetime, stop: datetime, bucket_s: int,
                  service: str | None) -> tuple[list[Cause], dict[str, float], str]:
    """Metric series (name + labels; counters as rates) whose mean in [onset, stop) departs most from
    the preceding stretch (three times as long), in robust z units. Also returns the utilization of
    known saturation pairs during the change (name -> share of the limit)."""
    length = max((stop - onset).total_seconds(), 3 * bucket_s)
    before = onset - timedelta(seconds=3 * length)
    names = {str(r[0]) for r in con.execute(
        "SELECT DISTINCT name FROM metrics WHERE ts >= ? AND ts < ?", [before, stop]).fetchall()}
    counters = sorted(counter_names(names)) or [""]
    listed = ", ".join("'" + n.replace("'", "''") + "'" for n in counters)
    sql = f"""
WITH s AS (
  SELECT name, CAST(labels AS VARCHAR) AS labels, ts,
         CASE WHEN name IN ({listed})
              THEN (value - lag(value) OVER w) / nullif(epoch(ts) - epoch(lag(ts) OVER w), 0)
              ELSE value END AS v
  FROM metrics
  WHERE ts >= TIMESTAMPTZ '{before.isoformat()}' AND ts < TIMESTAMPTZ '{stop.isoformat()}'
    AND name NOT LIKE '%\\_bucket' ESCAPE '\\'
  WINDOW w AS (PARTITION BY name, labels ORDER BY ts))
SELECT name, labels,
       avg(v) FILTER (WHERE ts < TIMESTAMPTZ '{onset.isoformat()}')  AS before_mean,
       median(v) FILTER (WHERE ts < TIMESTAMPTZ '{onset.isoformat()}') AS before_median,
       stddev_samp(v) FILTER (WHERE ts < TIMESTAMPTZ '{onset.isoformat()}') AS before_sd,
       avg(v) FILTER (WHERE ts >= TIMESTAMPTZ '{onset.isoformat()}') AS after_mean,
       quantile_cont(v, 0.9) FILTER (WHERE ts >= TIMESTAMPTZ '{onset.isoformat()}') AS after_p90,
       count(v) FILTER (WHERE ts >= TIMESTAMPTZ '{onset.isoformat()}') AS after_n
FROM s WHERE v IS NOT NULL AND v >= 0
GROUP BY name, labels""".strip()
    frame = con.execute(sql).df()
    links: list[Cause] = []
    utilization: dict[str, float] = {}
    if frame.empty:
        return links, utilization, sql
    frame = frame[frame["after_n"] > 0]
    sd = frame["before_sd"].fillna(0.0).clip(lower=1e-9)
    scale = np.maximum(np.maximum(sd, 0.05 * frame["before_mean"].abs().fillna(0.0)),
                       0.01 * frame["after_mean"].abs().fillna(0.0) + 1e-12)  # z at most ±100
    frame = frame.assign(z=(frame["after_mean"] - frame["before_mean"]) / scale)
    for usage, limit, label in SATURATION_PAIRS:
        used = frame[frame["name"] == usage]
        cap = frame[frame["name"] == limit]
        if used.empty or cap.empty or not cap["after_mean"].max():
            continue
        states = used["labels"].str.extract(r"state=(\w+)")[0]
        active = used[states == "active"] if states.notna().any() else used
        share_after = float(active["after_p90"].sum() / cap["after_mean"].max())
        share_before = float(active["before_median"].sum() / cap["after_mean"].max())
        utilization[label] = share_after
        if share_after >= SATURATED and share_after - share_before >= 0.2:
            # the resource at its limit is the symptom; the query or deploy that filled it ranks above it
            links.append(Cause("metric", usage, f"{label}: {share_after:.0%} of the limit ({limit}) during "
                                   f"the change, {share_before:.0%} before", round(min(0.8, share_after), 3), 0.0))
    counter = frame["name"].isin(counters)
    events_moved = (frame["after_mean"] - frame["before_mean"]).abs() * length
    moved = frame[(frame["z"].abs() >= 4) & (~counter | (events_moved >= 20))].copy()
    if service:
        moved["own"] = moved["labels"].str.contains(re.escape(service))
    else:
        moved["own"] = False
    moved = moved.assign(rank=moved["z"].abs() * np.where(moved["own"], 1.5, 1.0)).sort_values("rank", ascending=False)
    seen: set[str] = {link.ref for link in links}
    for row in moved.itertuples():
        if row.name in seen or len(links) >= 4:
            continue
        seen.add(str(row.name))
        strength = 0.7 * min(1.0, abs(float(row.z)) / 20.0) * (1.0 if row.own else 0.7)  # symptoms, mostly
        links.append(Cause("metric", str(row.name), f"{row.name}{row.labels}: mean {row.before_mean:.4g} → "
                               f"{row.after_mean:.4g} ({row.z:+.1f} sd)", round(strength, 3), 0.0))
    return links, utilization, sql


def counter_names(names: set[str]) -> set[str]:
    """Prometheus counters among metric names: ``*_total``, and the ``_sum``/``_count`` pair of a histogram
    or summary (both present); gauges such as ``pg_stat_activity_count`` stay gauges."""
    out = {n for n in names if n.endswith("_total")}
    for n in names:
        if n.endswith("_sum") and n[:-4] + "_count" in names:
            out |= {n, n[:-4] + "_count"}
    return out


def query_causes(con: duckdb.DuckDBPyConnection, onset: datetime, stop: datetime,
                 bucket_s: int) -> tuple[list[Cause], str]:
    """Fingerprints whose database time per second rose in [onset, stop) against the preceding stretch
    (three times as long); snapshots count by their increase, events by their time. Strength: the share
    of the rise in all database time that the fingerprint accounts for."""
    length = max((stop - onset).total_seconds(), 3 * bucket_s)
    before = onset - timedelta(seconds=3 * length)
    # snapshots by their per-interval increase (per server series, a counter reset counted from zero; those
    # up to an hour before the stretch give its first interval's base), events by their time for the
    # fingerprints without snapshots (the digest's rule: a fingerprint in both is not counted twice); the
    # deltas are read twice, so computed once (MATERIALIZED)
    sql = f"""
WITH s AS MATERIALIZED (SELECT fingerprint, ts, total_ms AS ms
           FROM ({deltas_sql(before, stop, since=before - timedelta(hours=1))})),
d AS (SELECT * FROM s
      UNION ALL
      SELECT fingerprint, ts, total_ms AS ms FROM queries
      WHERE kind = 'event' AND ts >= TIMESTAMPTZ '{before.isoformat()}' AND ts < TIMESTAMPTZ '{stop.isoformat()}'
        AND fingerprint NOT IN (SELECT fingerprint FROM s))
SELECT fingerprint,
       coalesce(sum(ms) FILTER (WHERE ts >= TIMESTAMPTZ '{before.isoformat()}'
                                 AND ts < TIMESTAMPTZ '{onset.isoformat()}'), 0) / {3 * length} AS before_ms_per_s,
       coalesce(sum(ms) FILTER (WHERE ts >= TIMESTAMPTZ '{onset.isoformat()}'), 0) / {length} AS after_ms_per_s
FROM d GROUP BY fingerprint""".strip()
    frame = con.execute(sql).df()
    if frame.empty:
        return [], sql
    rise = (frame["after_ms_per_s"] - frame["before_ms_per_s"]).clip(lower=0)
    total = float(rise.sum())
    links = []
    if total <= 0:
        return [], sql
    frame = frame.assign(rise=rise, share=rise / total).sort_values("rise", ascending=False)
    for row in frame.head(3).itertuples():
        ratio = row.after_ms_per_s / max(row.before_ms_per_s, 1e-9)
        if row.share < 0.2 or ratio < 2:
            continue
        links.append(Cause("query", str(row.fingerprint),
                               f"database time {row.before_ms_per_s:.3g} → {row.after_ms_per_s:.3g} ms/s "
                               f"(×{min(ratio, 9999):.1f}; {row.share:.0%} of the rise)",
                               round(float(min(1.0, row.share)), 3), 0.0))
    return links, sql


def profile_causes(con: duckdb.DuckDBPyConnection, onset: datetime, stop: datetime,
                   service: str | None) -> tuple[list[Cause], str]:
    """Leaf frames whose share of samples is larger in profiles taken during the change than in the
    service's other profiles (growth ≥ 5 percentage points)."""
    svc = "TRUE" if not service else "service = '" + service.replace("'", "''") + "'"
    sql = f"""
WITH p AS (
  SELECT (ts >= TIMESTAMPTZ '{onset.isoformat()}' AND ts < TIMESTAMPTZ '{stop.isoformat()}') AS during,
         split_part(stack, ';', -1) AS frame, samples
  FROM profiles WHERE ts IS NOT NULL AND {svc}),
s AS (SELECT during, frame, sum(samples) AS samples FROM p GROUP BY ALL)
SELECT frame,
       coalesce(sum(samples) FILTER (WHERE during), 0) / nullif(sum(sum(samples) FILTER (WHERE during)) OVER (), 0)
           AS share_during,
       coalesce(sum(samples) FILTER (WHERE NOT during), 0)
           / nullif(sum(sum(samples) FILTER (WHERE NOT during)) OVER (), 0) AS share_other
FROM s GROUP BY frame""".strip()
    frame = con.execute(sql).df()
    if frame.empty or frame["share_during"].isna().all() or frame["share_other"].isna().all():
        return [], sql
    frame = frame.assign(growth=frame["share_during"].fillna(0) - frame["share_other"].fillna(0))
    links = []
    for row in frame.sort_values("growth", ascending=False).head(2).itertuples():
        if row.growth >= 0.05:
            links.append(Cause("profile", str(row.frame), f"share of CPU samples {row.share_other:.0%} → "
                                   f"{row.share_during:.0%}", round(float(min(1.0, 2 * row.growth)), 3), None))
    return links, sql


_STEM = re.compile(r"[a-z]+")


def _tokens(text: str) -> set[str]:
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in _STEM.findall(text.lower()) if len(w) > 2}


def route_of_query(fingerprint: str, routes: list[str]) -> str | None:
    """The route whose path names most of the query's identifiers (tables, columns; plural folded),
    e.g. ``/api/v1/users/{id}/orders`` for ``... FROM orders ... WHERE user_id = ?``; None when no route
    names two of them."""
    words = _tokens(fingerprint) - {"select", "from", "where", "join", "order", "limit", "offset", "and", "desc",
                                   "asc", "count"}
    words |= {"order"} if re.search(r"\borders?\b", fingerprint.lower()) else set()
    best, best_score = None, (1, 0.0)
    for route in routes:
        parts = _tokens(route) - {"api", "static", "name", "slug"}
        if not parts:
            continue
        hits = len(parts & words)
        score = (hits, hits / len(parts))
        if score > best_score:
            best, best_score = route, score
    return best
