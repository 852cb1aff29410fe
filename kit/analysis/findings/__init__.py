"""Bottleneck identification: what changed, where, when and why, with evidence (issue #11).

``find_bottlenecks(con, window)`` returns ranked ``Findings``:

1. **Series.** One DuckDB aggregate gives, per service, route and time bucket, additive sums (requests,
   5xx, Σ ln latency, Σ ln² latency, Σ latency, cache statuses, hits); routes are summed into services.
   The bucket is the finest of 1 s … 1 d that keeps a series ≤ 2,500 points (≤ 5 min up to 35 days) and
   gives the busiest service ≥ 20 requests per median bucket (a 10-minute log: seconds; a week or a
   month: 5 min).
2. **Expected level.** When the window spans ≥ 2 days, each bucket is compared with the median of the
   same clock time on the other days: daily and weekly cycles and the load they bring cancel. Traffic is
   measured as a share of its parent (a service of all services, a route of its service), so a weekend
   or a holiday that lowers everything moves no share. Shorter windows compare with the series' own
   first segment. Latency series use the requests the service answered itself (edge cache hits are a
   different population whose share varies). Residuals are divided by a noise scale that a level shift
   does not inflate (MAD of the lag-1 and lag-12 differences, the larger), never below the bucket's
   sampling noise.
3. **Change points.** ruptures ``KernelCPD`` with the linear kernel: exact PELT for the least-squares
   (mean-shift) cost, compiled, ~10 ms for 2,000 points (ruptures' pure-Python ``Pelt`` takes ~14 s).
   Penalty 3·ln n per change point: the BIC penalty for a mean shift in a unit-variance series is about
   2·ln n; residuals of request buckets have heavier tails than a Gaussian, so it is made 50 % stiffer
   (fewer, surer change points). A cheap screen (no 3-, 12- or 48-bucket mean reaching a strength of 5)
   skips series with nothing to find. Segments off in the harmful direction (latency or spread up, 5xx
   up, hit ratio down, traffic down) that are short and sharp (|mean| ≥ 3 σ, |mean|·√len ≥ 6) or long
   and steady (|mean| ≥ 1 σ, |mean|·√len ≥ 10) are changes; adjacent ones merge.
4. **Where.** Detections of one service that overlap in time form one change, named by its most telling kind
   (5xx, then hit ratio, traffic, latency, spread; but a latency shift on a route comes before a traffic
   drop of its whole service, which clients waiting for slower answers cause). Its scope is the narrowest
   that explains it, as in Adtributor: each route's explanatory power is its share of the service's excess
   (extra ln-latency, extra spread, extra 5xx or lost hits at the expected rate, lost requests); one route
   with ≥ 60 % is the scope, else the routes that reach 80 % together, written as their common path prefix
   (``/static/*``) when they share one, else the service. Errors name their status class and codes; latency
   says whether the upstream or the service's own time moved. A change whose latency rose while a resource
   sat at ≥ 85 % of its limit (``pg_stat_activity_count`` of ``pg_settings_max_connections``, ...) is a
   saturation; saturations of several services that start within 3 buckets are one, scoped to the route
   whose path names the slow query's tables (``/api/v1/users/{id}/orders`` for ``... FROM orders ... WHERE
   user_id = ?``).
5. **How much.** Request-level samples (≤ 1,500 a side, repeatable) of the changed interval against the same
   clock interval on the other days (or the stretch before the onset): Hodges–Lehmann shift with its
   distribution-free 95 % interval and the Mann–Whitney p-value for latency and saturation; Newcombe's
   interval for differences of proportions (5xx, hit ratio); a Poisson rate ratio for traffic; a
   bootstrap of the IQR ratio for spread. ``cost_share`` (``cost_basis`` says of what): the finding's
   excess request time over all request time in the window, its excess 5xx over all 5xx, lost hits or
   lost requests over all requests.
6. **Why.** ``events`` of every kind except ``incident`` (the detector never reads incident rows, which
   are ground truth for scoring), full weight within max(5 min, 2 buckets) before the onset, on the same
   service and route; metrics that moved with it (symptoms: at most 0.7, a saturated resource 0.8);
   query fingerprints whose time rose (weighted by how well database time explains the kind: fully for
   latency and saturation, 0.6 for 5xx and spread, 0.3 otherwise); profile frames that grew. When
   nothing fits, or no candidate reaches a strength of 0.4 (e.g. a deploy aimed at another route), the
   first cause is ``unknown``.
7. **Confidence.** high: segment strength ≥ 12, p < 1e-6 and a relative effect that matters (latency
   ≥ +25 %, 5xx ≥ +2 points, hit ratio ≥ −10 points, traffic ≤ −30 %, spread ≥ +25 %); medium: strength
   ≥ 8 and p < 1e-3; otherwise low. Low also when the change starts with the window (no onset seen) or
   when the service's traffic is ≥ 30 % above its usual level (a load peak: a capacity question, not a
   regression; the load is named as a cause).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np

from kit.analysis.findings import causes as _causes
from kit.analysis.findings import effects as _effects
from kit.analysis.findings import series as _series
from kit.analysis.findings.evidence import (
    FindingEvidence,
    finding_evidence,
    findings_frame,
    findings_table,
    window_events,
)
from kit.analysis.findings.model import CAUSE_KINDS, FINDING_KINDS, Cause, Finding, Findings
from kit.analysis.window import Window, services_sql
from kit.engine import Queryable, as_engine

__all__ = ["CAUSE_KINDS", "FINDING_KINDS", "Cause", "Finding", "FindingEvidence", "Findings", "find_bottlenecks",
           "finding_evidence", "findings_frame", "findings_table", "window_events"]

SAMPLE_ROWS = 1500  # per side: HL over 2.25 M pairwise differences, ~0.1 s
WEAK_CAUSE = 0.4  # when no candidate is at least this strong, the top cause is "unknown"
MIN_REPORTED_STRENGTH = 8.0  # the medium-confidence bar: weaker changes are not reported
ROUTE_MIN_REQUESTS = 200  # routes with fewer requests in the window get no series of their own


@dataclass(frozen=True)
class _Detection:
    scope: tuple[tuple[str, str], ...]
    kind: str
    start: int
    stop: int
    level: float
    strength: float

    @property
    def service(self) -> str:
        return dict(self.scope)["service"]

    @property
    def route(self) -> str | None:
        return dict(self.scope).get("route")


_PRIORITY = {"error_burst": 0, "cache_hit_drop": 1, "throughput_change": 2, "latency_shift": 3,
             "variance_change": 4}
_DIRECTION = {"latency_shift": 1, "variance_change": 1, "error_burst": 1, "cache_hit_drop": -1,
              "throughput_change": -1}


def find_bottlenecks(con: duckdb.DuckDBPyConnection, window: Window, *, services: tuple[str, ...] | list[str] = (),
                     engine: Queryable | None = None) -> Findings:
    """Detect, locate, size and explain the changes in ``window`` (see the module docstring). ``engine``
    builds the bucketed series (default: DuckDB on ``con``)."""
    heavy = as_engine(engine if engine is not None else con)
    services = tuple(services)
    has = _coverage(con, window, services)
    method = ("PELT (ruptures KernelCPD, linear kernel), penalty 3·ln n, on residuals against the same clock "
              "time on other days; Hodges–Lehmann / Mann–Whitney, Newcombe, Poisson intervals")
    if not has["requests"]:
        return Findings((), 0, method, window.start, window.end, "",
                        ("Not analysed: change detection, because the window holds no requests.",))
    bucket_s = _series.choose_bucket(heavy, window, services)
    origin = datetime.fromtimestamp(_series.bucket_origin(window, bucket_s), window.start.tzinfo)
    n_buckets = max(1, math.ceil((window.end - origin).total_seconds() / bucket_s))
    sql = _series.series_sql(window, bucket_s, services)
    frame = heavy.frame(sql)
    scopes = _series.scope_series(frame, n_buckets)
    notes: list[str] = []
    if n_buckets < _series.MIN_BUCKETS:
        return Findings((), bucket_s, method, window.start, window.end, sql,
                        (f"Not analysed: the window holds only {n_buckets} buckets of {bucket_s} s.",))
    offset = origin.timestamp()
    seasonal = window.seconds >= 2 * 86400 and 86400 % bucket_s == 0
    if not seasonal:
        notes.append("The window spans under two days: changes are measured against the series' first segment "
                      "(no daily cycle removed).")
    detections: list[_Detection] = []
    signals: dict[tuple[tuple[tuple[str, str], ...], str], np.ndarray] = {}
    services_n = {s.scope[0][1]: s.n for s in scopes if len(s.scope) == 1}
    total_n = np.sum(list(services_n.values()), axis=0)
    routes_of = {name: sum(1 for t in scopes if len(t.scope) == 2 and t.scope[0][1] == name) for name in services_n}
    for s in scopes:
        if len(s.scope) == 2 and s.n.sum() < ROUTE_MIN_REQUESTS:
            continue
        service = s.scope[0][1]
        if len(s.scope) == 1:
            parent = total_n if len(services_n) > 1 else None
        else:
            parent = services_n[service] if routes_of[service] > 1 else None
        for kind, z in _signals(s, has, bucket_s, offset, seasonal, parent).items():
            if kind == "throughput_change":  # a log starts and ends inside a bucket: too few requests there
                z = _without_partial_edges(z, origin, bucket_s, window)
            signals[(s.scope, kind)] = z
            reference = 0.0 if seasonal else _series.first_segment_level(z)
            for seg in _series.anomalous_segments(z, _DIRECTION[kind], reference):
                detections.append(_Detection(s.scope, kind, seg.start, seg.stop, seg.level, seg.strength))
    by_scope = {s.scope: s for s in scopes}
    groups = [g for g in _group(detections) if _worth_reporting(g, by_scope, bucket_s, offset, seasonal)]
    totals = (float(frame["s_lat"].sum()), float(frame["n5xx"].sum()), float(frame["n"].sum()))
    findings = [_finding(con, window, origin, bucket_s, group, by_scope, signals, has, seasonal, sql, totals)
                for group in groups]
    findings = _merge_saturation(con, window, bucket_s, findings, by_scope)
    order = {"high": 0, "medium": 1, "low": 2}
    findings.sort(key=lambda f: (order[f.confidence], -(f.cost_share or 0.0), -f.strength))
    return Findings(tuple(findings), bucket_s, method, window.start, window.end, sql, tuple(notes))


def _coverage(con: duckdb.DuckDBPyConnection, window: Window, services: tuple[str, ...]) -> dict[str, bool]:
    """Which request fields hold data in the window (no read of ``events``)."""
    row = con.execute(f"SELECT count(*), count(latency_ms), count(upstream_ms), count(cache_status), "
                      f"count(status) FROM requests WHERE {window.sql()} AND {services_sql(services)}").fetchone()
    assert row is not None
    return {"requests": row[0] > 0, "latency": row[1] > 0, "upstream": row[2] > 0, "cache_status": row[3] > 0,
            "status": row[4] > 0}


def _signals(s: _series.ScopeSeries, has: dict[str, bool], bucket_s: int, offset: float,
             seasonal: bool, parent: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Standardized residual series of one scope, per finding kind it can show. Traffic is measured as a
    share of ``parent`` (all services for a service, the service for a route) when there is one."""
    out: dict[str, np.ndarray] = {}

    def z_of(x: np.ndarray, floor: np.ndarray | float, counts: bool = False) -> np.ndarray:
        return _series.standardized_residual(x, bucket_s, offset, seasonal, floor, counts)[0]

    def residual(x: np.ndarray, counts: bool = False) -> np.ndarray:
        base = _series.seasonal_baseline(x, bucket_s, offset, counts) if seasonal else None
        if base is None:
            finite = x[np.isfinite(x)]
            base = np.full_like(x, float(np.median(finite)) if len(finite) else 0.0)
        return x - base

    with np.errstate(all="ignore"):
        if has["latency"] and s.n_lat.sum() >= 50:
            mean = np.where(s.n_lat >= 3, s.s_ln / np.maximum(s.n_lat, 1), np.nan)
            total = s.n_lat.sum()
            sd = math.sqrt(max(s.s_ln2.sum() / total - (s.s_ln.sum() / total) ** 2, 1e-6))
            out["latency_shift"] = z_of(mean, sd / np.sqrt(np.maximum(s.n_lat, 1)))
            spread = np.where(s.n_lat >= 10, np.sqrt(np.maximum(s.s_ln2 / np.maximum(s.n_lat, 1) - mean ** 2, 0)),
                              np.nan)
            out["variance_change"] = z_of(spread, sd / np.sqrt(2 * np.maximum(s.n_lat, 1)))
        if has["status"] and s.n.sum() >= 100:
            rate = np.where(s.n >= 1, s.n5xx / np.maximum(s.n, 1), np.nan)
            p0 = max(float(s.n5xx.sum() / s.n.sum()), 0.5 / max(float(np.median(s.n)), 1.0), 1e-4)
            out["error_burst"] = z_of(rate, np.sqrt(p0 * (1 - p0) / np.maximum(s.n, 1)))
        if has["cache_status"] and s.n_cache.sum() >= 100 and s.n_hit.sum() / max(s.n_cache.sum(), 1) >= 0.2:
            hit = np.where(s.n_cache >= 5, s.n_hit / np.maximum(s.n_cache, 1), np.nan)
            h0 = float(s.n_hit.sum() / s.n_cache.sum())
            out["cache_hit_drop"] = z_of(hit, np.sqrt(max(h0 * (1 - h0), 0.01) / np.maximum(s.n_cache, 1)))
        if float(np.median(s.n)) >= 5 and parent is None:  # the only scope at its level: its own traffic
            expected = s.n - residual(s.n, counts=True)
            out["throughput_change"] = _series.robust_z(np.log1p(s.n) - np.log1p(expected),
                                                        1.0 / np.sqrt(np.maximum(s.n, 1)))
        elif float(np.median(s.n)) >= 5 and parent is not None:
            # share of the parent's traffic: a weekend or a holiday lowers every scope alike and moves no share
            share = np.where((parent > 0) & (s.n > 0), s.n / np.maximum(parent, 1), np.nan)
            out["throughput_change"] = z_of(np.log(share), 1.0 / np.sqrt(np.maximum(s.n, 1)))
    return out


def _without_partial_edges(z: np.ndarray, origin: datetime, bucket_s: int, window: Window) -> np.ndarray:
    """``z`` with no value in the first and last bucket when the window covers them only in part (the
    first request falls after the bucket's start, the last before its end): their request counts are
    short by the part not covered, which is no change in traffic."""
    z = z.astype(float, copy=True)
    if window.start > origin:
        z[0] = np.nan
    if (window.end - origin).total_seconds() < len(z) * bucket_s:
        z[-1] = np.nan
    return z


def _rank(det: _Detection, group: list[_Detection]) -> int:
    """How telling ``det``'s kind is in ``group`` (lower names the change). A traffic drop of a whole
    service ranks after a latency shift on one of its routes: clients that wait for slower answers send
    fewer requests (a closed loop), so the drop is the route's slowdown seen from outside."""
    if det.kind == "throughput_change" and any(
            d.kind == "latency_shift" and len(d.scope) > len(det.scope) for d in group):
        return _PRIORITY["latency_shift"] + 1
    return _PRIORITY[det.kind]


def _group(detections: list[_Detection]) -> list[list[_Detection]]:
    """Detections of the same service whose intervals overlap (1-bucket tolerance) form one change."""
    groups: list[list[_Detection]] = []
    for det in sorted(detections, key=lambda d: (d.service, d.start)):
        for group in groups:
            if group[0].service == det.service and any(
                    det.start <= g.stop and g.start <= det.stop for g in group):
                group.append(det)
                break
        else:
            groups.append([det])
    return groups


def _excess(s: _series.ScopeSeries, kind: str, start: int, stop: int, bucket_s: int, offset: float,
            seasonal: bool, per_request: bool = False) -> float:
    """A scope's additive excess in [start, stop) over its expected level: extra ln-latency, extra spread,
    extra 5xx, lost hits, lost requests; with ``per_request`` the mean excess per weight (the size of the
    change in the measure's unit: ln ratio, share of requests)."""
    if kind == "latency_shift":  # Σ ln latency over its expected level (robust to tails)
        measure = np.where(s.n_lat > 0, s.s_ln / np.maximum(s.n_lat, 1), np.nan)
        weight = s.n_lat
    elif kind == "variance_change":  # spread of ln latency over its expected level, weighted by requests
        with np.errstate(all="ignore"):
            mean = s.s_ln / np.maximum(s.n_lat, 1)
            measure = np.where(s.n_lat >= 2, np.sqrt(np.maximum(s.s_ln2 / np.maximum(s.n_lat, 1) - mean ** 2, 0)),
                               np.nan)
        weight = s.n_lat
    elif kind == "error_burst":  # extra 5xx: the 5xx share over its expected share, times requests
        measure = np.where(s.n > 0, s.n5xx / np.maximum(s.n, 1), np.nan)
        weight = s.n
    elif kind == "cache_hit_drop":  # lost hits: the expected hit ratio minus the ratio, times cache lookups
        measure = np.where(s.n_cache > 0, 1.0 - s.n_hit / np.maximum(s.n_cache, 1), np.nan)
        weight = s.n_cache
    else:
        measure = -s.n
        weight = np.ones_like(measure)
    base = _series.seasonal_baseline(measure, bucket_s, offset, kind == "throughput_change") if seasonal else None
    if base is None:
        ref = measure[max(0, start - 3 * (stop - start)):start]
        ref = ref[np.isfinite(ref)]
        base = np.full_like(measure, float(np.median(ref)) if len(ref) else 0.0)
    total = float(np.nansum((measure[start:stop] - base[start:stop]) * weight[start:stop]))
    if per_request:
        return total / max(float(np.sum(weight[start:stop])), 1.0)
    return total


# a size below half of what matters cannot become a medium/high finding: such changes are not reported
_ROUGH_MIN = {"latency_shift": math.log1p(0.125), "error_burst": 0.01, "cache_hit_drop": 0.05}


def _worth_reporting(group: list[_Detection], by_scope: dict, bucket_s: int, offset: float, seasonal: bool) -> bool:
    """Whether a change is strong enough (strength ≥ 8) and, where a rough size can be read off its series,
    big enough (half of what matters) to be worth its evidence queries."""
    if max(d.strength for d in group) < MIN_REPORTED_STRENGTH:
        return False
    for d in group:
        floor = _ROUGH_MIN.get(d.kind)
        if floor is None or d.start == 0:
            return True
        if _excess(by_scope[d.scope], d.kind, d.start, d.stop, bucket_s, offset, seasonal, True) >= floor:
            return True
    return False


def _locate(group: list[_Detection], primary: _Detection, by_scope: dict, bucket_s: int, offset: float,
            seasonal: bool) -> tuple[dict[str, str], float | None]:
    """The narrowest scope that explains the change (Adtributor-style explanatory power of routes)."""
    service = primary.service
    parent = by_scope[(("service", service),)]
    total = _excess(parent, primary.kind, primary.start, primary.stop, bucket_s, offset, seasonal)
    routes = [(k, s) for k, s in by_scope.items() if len(k) == 2 and k[0] == ("service", service)]
    if primary.route is not None and (total <= 0 or not routes):
        return {"service": service, "route": primary.route}, None
    if total <= 0:
        return {"service": service}, None
    powers = sorted(((_excess(s, primary.kind, primary.start, primary.stop, bucket_s, offset, seasonal) / total,
                      k[1][1]) for k, s in routes), reverse=True)
    if powers and powers[0][0] >= 0.6:
        return {"service": service, "route": powers[0][1]}, round(powers[0][0], 3)
    chosen, cumulative = [], 0.0
    for power, route in powers:
        if power <= 0:
            break
        chosen.append(route)
        cumulative += power
        if cumulative >= 0.8:
            break
    prefix = _common_prefix(chosen) if cumulative >= 0.8 and len(chosen) > 1 else None
    siblings = [k[1][1] for k, _ in routes if prefix and k[1][1].startswith(prefix.rstrip("*"))]
    if prefix and len(siblings) < len(routes):
        return {"service": service, "route": prefix}, round(cumulative, 3)
    return {"service": service}, 1.0


def _common_prefix(routes: list[str]) -> str | None:
    parts = [r.strip("/").split("/") for r in routes]
    common: list[str] = []
    for segment in zip(*parts, strict=False):
        if len(set(segment)) == 1 and "{" not in segment[0]:
            common.append(segment[0])
        else:
            break
    return "/" + "/".join(common) + "/*" if common else None


def _intervals(window: Window, onset: datetime, stop: datetime, seasonal: bool) -> str:
    """SQL predicate of the baseline: the same clock interval on the nearest other days (at most
    ``NEAREST_DAYS``), or the stretch before."""
    if seasonal:
        spans: list[str] = []
        for d in sorted(range(-40, 41), key=abs)[1:]:  # the nearest other days, as the expected level uses
            a, b = onset + timedelta(days=d), stop + timedelta(days=d)
            if a >= window.start and b <= window.end and len(spans) < _series.NEAREST_DAYS:
                spans.append(f"(ts >= TIMESTAMPTZ '{a.isoformat()}' AND ts < TIMESTAMPTZ '{b.isoformat()}')")
        if spans:
            return "(" + " OR ".join(spans) + ")"
    length = max(stop - onset, timedelta(minutes=1))
    a = max(window.start, onset - 3 * length)
    return f"(ts >= TIMESTAMPTZ '{a.isoformat()}' AND ts < TIMESTAMPTZ '{onset.isoformat()}')"


def _finding(con: duckdb.DuckDBPyConnection, window: Window, origin: datetime, bucket_s: int,
             group: list[_Detection], by_scope: dict, signals: dict, has: dict[str, bool], seasonal: bool,
             series_sql: str, totals: tuple[float, float, float]) -> Finding:
    offset = origin.timestamp()
    # the most telling kind among the detections that span at least half of the change: a blip at its
    # edge (a short traffic dip as a slow route settles) does not rename a long latency shift
    first, last = min(d.start for d in group), max(d.stop for d in group)
    spanning = [d for d in group if 2 * (d.stop - d.start) >= last - first] or group
    primary = min(spanning, key=lambda d: (_rank(d, spanning), -d.strength))
    same = [d for d in group if d.kind == primary.kind]
    start, stop = min(d.start for d in same), max(d.stop for d in same)
    primary = _Detection(primary.scope, primary.kind, start, stop, primary.level, max(d.strength for d in same))
    scope, power = _locate(group, primary, by_scope, bucket_s, offset, seasonal)
    onset = max(window.start, origin + timedelta(seconds=start * bucket_s))
    stop_at = min(window.end, origin + timedelta(seconds=stop * bucket_s))
    end = None if stop_at >= window.end - timedelta(seconds=bucket_s) else stop_at
    where = _series.scope_sql(scope)
    baseline = _intervals(window, onset, stop_at, seasonal)
    during = f"(ts >= TIMESTAMPTZ '{onset.isoformat()}' AND ts < TIMESTAMPTZ '{stop_at.isoformat()}')"
    sql: dict[str, str] = {"series": series_sql}
    links: list[Cause] = []
    ev, sql["events"] = _causes.event_causes(con, onset, end, bucket_s, scope)
    links += ev
    met, utilization, sql["metrics"] = _causes.metric_causes(con, onset, stop_at, bucket_s, scope.get("service"))
    links += met
    saturated = any(link.kind == "metric" and link.ref in {p[0] for p in _causes.SATURATION_PAIRS} for link in met)
    kind = primary.kind
    latency_rose = any(d.kind == "latency_shift" for d in group)
    if saturated and latency_rose and kind in ("latency_shift", "error_burst", "variance_change"):
        kind = "saturation"  # a resource at its limit while latency rose: measured as the scope's latency
    qry, sql["queries"] = _causes.query_causes(con, onset, stop_at, bucket_s)
    # database time explains slowness far better than errors, and hardly a cache or traffic change
    plausible = {"saturation": 1.0, "latency_shift": 1.0, "variance_change": 0.6, "error_burst": 0.6}.get(kind, 0.3)
    links += [Cause(q.kind, q.ref, q.detail, round(q.strength * plausible, 3), q.lag_s) for q in qry]
    prof, sql["profiles"] = _causes.profile_causes(con, onset, stop_at, scope.get("service"))
    links += prof
    load = _load_factor(by_scope, scope.get("service", ""), start, stop, bucket_s, offset, seasonal)
    if primary.kind in ("latency_shift", "variance_change", "error_burst") and load >= 1.3:
        links.append(Cause("metric", "requests per second",
                                       f"traffic ×{load:.2f} its usual level at this time", 0.8, 0.0))
    extra = ""
    if kind == "latency_shift" or (kind == "saturation" and has["latency"]) or kind == "variance_change":
        column = "latency_ms"
        sample = ("SELECT {col} FROM (SELECT {col} FROM requests WHERE {w} AND {when} AND "
                  f"{_series.ORIGIN_SERVED}) "
                  f"USING SAMPLE reservoir({SAMPLE_ROWS} ROWS) REPEATABLE (11)")
        sql["before"] = sample.format(col=column, w=where, when=baseline)
        sql["after"] = sample.format(col=column, w=where, when=during)
        x = con.execute(sql["before"]).df()[column].to_numpy()
        y = con.execute(sql["after"]).df()[column].to_numpy()
        if kind in ("latency_shift", "saturation"):
            eff = _effects.hodges_lehmann(x, y)
            unit, metric = "ms", "latency_ms of requests not served from cache (Hodges–Lehmann shift)"
            if has["upstream"]:
                extra = _upstream_split(con, where, baseline, during, sql)
        else:
            eff = _effects.spread_ratio(x, y)
            unit, metric = "ratio", "IQR of ln latency_ms (after/before)"
    elif kind in ("error_burst", "cache_hit_drop", "saturation"):
        if kind != "cache_hit_drop":
            num, den, metric = "count(*) FILTER (WHERE status >= 500)", "count(*)", "5xx share of requests"
        else:
            num, den, metric = ("count(*) FILTER (WHERE upper(cache_status) = 'HIT')", "count(cache_status)",
                                "cache hit ratio")
        sql["before"] = f"SELECT {num} AS k, {den} AS n FROM requests WHERE {where} AND {baseline}"
        sql["after"] = f"SELECT {num} AS k, {den} AS n FROM requests WHERE {where} AND {during}"
        k0, n0 = con.execute(sql["before"]).fetchone() or (0, 0)
        k1, n1 = con.execute(sql["after"]).fetchone() or (0, 0)
        eff = _effects.proportion_difference(float(k0), float(n0), float(k1), float(n1))
        unit = "share"
        if kind != "cache_hit_drop":
            sql["status_codes"] = (f"SELECT status, count(*) AS n FROM requests WHERE {where} AND {during} "
                                   "AND status >= 500 GROUP BY status ORDER BY n DESC")
            codes = con.execute(sql["status_codes"]).fetchall()
            scope = {**scope, "status": "5xx"}
            extra = "codes " + ", ".join(f"{c} ({n})" for c, n in codes[:4])
    else:
        sql["before"] = f"SELECT count(*) AS n FROM requests WHERE {where} AND {baseline}"
        sql["after"] = f"SELECT count(*) AS n FROM requests WHERE {where} AND {during}"
        c0 = float((con.execute(sql["before"]).fetchone() or (0,))[0])
        c1 = float((con.execute(sql["after"]).fetchone() or (0,))[0])
        seconds_after = (stop_at - onset).total_seconds()
        seconds_before = seconds_after * max(1, round(_baseline_seconds(baseline) / max(seconds_after, 1)))
        eff = _effects.rate_ratio(c0, seconds_before, c1, seconds_after)
        unit, metric = "ratio", "requests per second (after/before)"
    cost, basis = _cost(con, window, kind, where, eff, onset, stop_at, sql, totals)
    cause_list = tuple(sorted(links, key=lambda c: -c.strength)[:6])
    if not cause_list:
        cause_list = (Cause("unknown", "", "no event, metric, query or profile change fits", 0.0, None),)
    elif cause_list[0].strength < WEAK_CAUSE:
        cause_list = (Cause("unknown", "", "no strong suspect; the weak candidates that follow are listed for "
                            "completeness", 0.0, None), *cause_list[:5])
    confidence = "low" if start == 0 else _confidence(kind, primary.strength, eff, load)  # no onset seen
    related = tuple(sorted({f"{d.kind}:{'/'.join(v for _, v in d.scope)}" for d in group if d is not primary}))
    if extra:
        related = (extra, *related)
    return Finding(kind, scope, onset, end, bucket_s, metric, _num(eff.before), _num(eff.after), _num(eff.effect),
                   _num(eff.ci_low), _num(eff.ci_high), eff.p_value, confidence, cost, cause_list, sql,
                   unit, basis, round(primary.strength, 2), power, related, primary.kind)


def _num(value: float) -> float:
    return float(value) if value is not None and math.isfinite(value) else float("nan")


def _baseline_seconds(predicate: str) -> float:
    import re

    stamps = re.findall(r"TIMESTAMPTZ '([^']+)'", predicate)
    pairs = zip(stamps[::2], stamps[1::2], strict=False)
    return sum((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() for a, b in pairs)


def _upstream_split(con: duckdb.DuckDBPyConnection, where: str, baseline: str, during: str,
                    sql: dict[str, str]) -> str:
    """Whether the upstream or the service's own time moved (medians of each, before → after)."""
    sql["upstream_split"] = (
        "SELECT " + f"{during} AS during, median(upstream_ms) AS upstream_ms, "
        "median(latency_ms - coalesce(upstream_ms, 0)) AS own_ms FROM requests "
        f"WHERE {where} AND ({baseline} OR {during}) AND latency_ms IS NOT NULL GROUP BY 1 ORDER BY 1")
    rows = con.execute(sql["upstream_split"]).fetchall()
    if len(rows) != 2 or rows[0][1] is None or rows[1][1] is None:
        return ""
    (_, up0, own0), (_, up1, own1) = rows
    moved = "upstream" if abs(up1 - up0) >= abs(own1 - own0) else "own"
    return f"{moved} time moved: upstream {up0:.0f} → {up1:.0f} ms, own {own0:.0f} → {own1:.0f} ms (medians)"


def _cost(con: duckdb.DuckDBPyConnection, window: Window, kind: str, where: str, eff: _effects.Effect,
          onset: datetime, stop: datetime, sql: dict[str, str], totals: tuple[float, float, float]
          ) -> tuple[float | None, str]:
    """The share of the window's request time, 5xx or requests the finding cost. ``totals`` (request ms,
    5xx, requests of the window) come from the series aggregate; ``sql['cost']`` reproduces them."""
    during = f"ts >= TIMESTAMPTZ '{onset.isoformat()}' AND ts < TIMESTAMPTZ '{stop.isoformat()}'"
    sql["cost"] = (f"SELECT (SELECT count(*) FROM requests WHERE {where} AND {during}) AS n_during, "
                   "sum(latency_ms) AS total_ms, count(*) FILTER (WHERE status >= 500) AS total_5xx, "
                   f"count(*) AS total_n FROM requests WHERE {window.sql()}")
    row = con.execute(f"SELECT count(*) FROM requests WHERE {where} AND {during}").fetchone()
    n_during = float(row[0]) if row else 0.0
    total_ms, total_5xx, total_n = totals
    if not math.isfinite(eff.effect):
        return None, ""
    if kind in ("latency_shift", "saturation") and total_ms:
        return round(max(eff.effect, 0.0) * n_during / total_ms, 6), "request_time"
    if kind == "error_burst" and total_5xx:
        return round(min(1.0, max(eff.effect, 0.0) * n_during / total_5xx), 6), "errors_5xx"
    if kind == "cache_hit_drop" and total_n:
        return round(max(-eff.effect, 0.0) * n_during / total_n, 6), "requests_missed"
    if kind == "throughput_change" and total_n and eff.effect > 0:
        return round(max(1 / eff.effect - 1, 0.0) * n_during / total_n, 6), "requests"
    return None, ""


def _load_factor(by_scope: dict, service: str, start: int, stop: int, bucket_s: int, offset: float,
                 seasonal: bool) -> float:
    """The service's requests in [start, stop) over its expected count there (1.0 = usual load)."""
    s = by_scope.get((("service", service),))
    if s is None or stop <= start:
        return 1.0
    base = _series.seasonal_baseline(s.n, bucket_s, offset, True) if seasonal else None
    if base is None:
        ref = s.n[max(0, start - 3 * (stop - start)):start]
        expected = float(np.mean(ref)) * (stop - start) if len(ref) else 0.0
    else:
        expected = float(np.nansum(base[start:stop]))
    return float(s.n[start:stop].sum() / expected) if expected > 0 else 1.0


_MATTERS = {"latency_shift": 0.25, "error_burst": 0.02, "cache_hit_drop": 0.10, "throughput_change": 0.30,
            "variance_change": 0.25, "saturation": 0.25}


def _confidence(kind: str, strength: float, eff: _effects.Effect, load: float) -> str:
    p = eff.p_value if eff.p_value is not None else 1.0
    if kind in ("latency_shift", "saturation"):
        size = eff.effect / max(eff.before, 1e-9) if math.isfinite(eff.effect) else 0.0
        if kind == "saturation" and eff.effect != eff.effect:
            size = 0.0
    elif kind in ("error_burst",):
        size = eff.effect
    elif kind == "cache_hit_drop":
        size = -eff.effect
    elif kind == "throughput_change":
        size = 1 - eff.effect if math.isfinite(eff.effect) else 0.0
    else:
        size = eff.effect - 1 if math.isfinite(eff.effect) else 0.0
    matters = size >= _MATTERS[kind]
    if load >= 1.3 and kind in ("latency_shift", "variance_change", "saturation"):
        return "low"  # a load peak: a capacity question, not a regression
    if strength >= 12 and p < 1e-6 and matters:
        return "high"
    if strength >= 8 and p < 1e-3 and matters:
        return "medium"
    return "low"


def _merge_saturation(con: duckdb.DuckDBPyConnection, window: Window, bucket_s: int, findings: list[Finding],
                      by_scope: dict) -> list[Finding]:
    """Saturation findings that overlap in time are one: the resource's, scoped to the route the slow query
    belongs to when a query cause names one; the others become related."""
    sat = [f for f in findings if f.kind == "saturation"]
    if len(sat) <= 1 and not any(c.kind == "query" for f in sat for c in f.causes):
        return findings
    rest = [f for f in findings if f.kind != "saturation"]
    merged: list[Finding] = []
    for f in sorted(sat, key=lambda f: -f.strength):
        host = next((m for m in merged if _overlap(m, f, window)), None)
        if host is None:
            merged.append(f)
        elif abs((f.onset - host.onset).total_seconds()) > 3 * bucket_s:
            # began well before or after the resource filled up: its own change, not this saturation
            causes = tuple(c for c in f.causes if c.ref not in {p[0] for p in _causes.SATURATION_PAIRS})
            rest.append(_with(f, kind=f.detected_as or f.kind, causes=causes or f.causes))
        else:  # the strongest keeps its numbers; the interval spans them all
            ends = [host.end, f.end]
            merged[merged.index(host)] = _with(
                host, related=(*host.related, f"saturation:{f.title}"), onset=min(host.onset, f.onset),
                end=None if None in ends else max(e for e in ends if e is not None))
    routes = [k[1][1] for k in by_scope if len(k) == 2]
    out = []
    for f in merged:
        query = next((c for c in f.causes if c.kind == "query"), None)
        route = _causes.route_of_query(query.ref, routes) if query else None
        scope = {"resource": "database", **f.scope}
        if route:
            service = next(k[0][1] for k in by_scope if len(k) == 2 and k[1][1] == route)
            scope = {"resource": "database", "service": service, "route": route}
        out.append(_with(f, scope=scope))
    return rest + out


def _overlap(a: Finding, b: Finding, window: Window) -> bool:
    a_end, b_end = a.end or window.end, b.end or window.end
    return a.onset <= b_end and b.onset <= a_end


def _with(f: Finding, **changes: Any) -> Finding:
    from dataclasses import replace

    return replace(f, **changes)
