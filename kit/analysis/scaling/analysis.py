"""Per-service load series, load levels, knee, headroom, autoscaling targets and growth scenarios
(``analyse_scaling``). The method and its limits are in the package docstring (``kit.analysis.scaling``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import theilslopes

from kit import fmt
from kit.analysis.kpis.use import USE_CATALOG
from kit.analysis.scaling.model import (
    Autoscaling,
    Headroom,
    Knee,
    LoadLevel,
    ResourceLimit,
    ScalingAnalysis,
    Scenario,
    ServiceScaling,
    UslFit,
)
from kit.analysis.scaling.usl import MIN_LEVELS, find_knee, fit_usl, usl_latency_ms
from kit.analysis.window import Window, services_sql
from kit.config import RunConfig, bucket_seconds
from kit.errors import ParameterError
from kit.warehouse import sql_string

__all__ = ["GROWTH_FACTORS", "ScalingOptions", "analyse_scaling", "load_levels", "load_series", "peak_minutes"]

GROWTH_FACTORS = (1.5, 2.0, 3.0)
ORIGIN_SQL = "coalesce(upper(cache_status), '') <> 'HIT'"   # requests that reached the service


@dataclass(frozen=True)
class ScalingOptions:
    """Parameters of the scaling analysis (defaults stated in the documents)."""

    bucket: str = "5m"                 # bucket of the load series
    margin: float = 0.2                # target = (1 − margin) × the safe per-instance load
    tolerance: float = 0.1             # HPA tolerance (Kubernetes default)
    scale_up_stabilization_s: int = 60
    scale_down_stabilization_s: int = 300
    instances: int | None = None       # instance count when neither deploy events nor hosts give one
    cpu_cores: float = 1.0             # cores per instance: CPU utilization = CPU seconds/s / cores
    max_levels: int = 12
    min_buckets: int = 3               # buckets a load level needs
    min_requests: int = 20             # requests a bucket needs to count
    n_boot: int = 200
    min_instances_floor: int = 2       # never fewer instances (one failure must not take the service down)
    seed: int = 0


# ----------------------------------------------------------------------------------------------- series

def _bucket_sql(window: Window, seconds: int, services: list[str] | None) -> str:
    return f"""
        SELECT service, time_bucket(INTERVAL '{seconds} seconds', ts) AS b, count(*) AS requests,
               count(*) / {seconds}.0 AS throughput_rps,
               sum(latency_ms) / 1000.0 / {seconds}.0 AS concurrency,
               avg(latency_ms) AS mean_ms, quantile_cont(latency_ms, 0.95) AS p95_ms,
               count(DISTINCT host) AS hosts
        FROM requests
        WHERE {window.sql()} AND {services_sql(services)} AND service IS NOT NULL AND latency_ms IS NOT NULL
          AND {ORIGIN_SQL}
        GROUP BY ALL ORDER BY service, b"""


def load_series(con: duckdb.DuckDBPyConnection, window: Window, bucket: str = "5m",
                services: list[str] | None = None, by_host: bool = False) -> pd.DataFrame:
    """Per service (and host with ``by_host``) and bucket, over origin requests (CDN hits excluded):
    requests, throughput_rps (requests/s), concurrency (Little's law: throughput × mean latency = the
    request-seconds per second), mean_ms, p95_ms and hosts (distinct hosts seen). Computed in DuckDB."""
    seconds = bucket_seconds(bucket)
    sql = _bucket_sql(window, seconds, services)
    if by_host:
        sql = sql.replace("SELECT service,", "SELECT service, host,").replace("count(DISTINCT host) AS hosts",
                                                                            "1 AS hosts")
    return con.execute(sql).df()


def peak_minutes(con: duckdb.DuckDBPyConnection, window: Window, services: list[str] | None = None
                 ) -> dict[str, tuple[float, str | None, float]]:
    """Per service: (busiest minute's origin throughput in requests/s, that minute, the 95th percentile
    of minute throughputs), from DuckDB."""
    rows = con.execute(f"""
        WITH m AS (SELECT service, time_bucket(INTERVAL 1 MINUTE, ts) AS b, count(*) / 60.0 AS rps
                   FROM requests WHERE {window.sql()} AND {services_sql(services)} AND service IS NOT NULL
                     AND {ORIGIN_SQL} GROUP BY ALL)
        SELECT service, max(rps), arg_max(b, rps), quantile_cont(rps, 0.95) FROM m GROUP BY 1""").fetchall()
    return {s: (float(mx), at.isoformat() if at is not None else None, float(p95)) for s, mx, at, p95 in rows}


def _instances(con: duckdb.DuckDBPyConnection, window: Window, service: str, hosts: int,
               fallback: int | None) -> tuple[int, str]:
    row = con.execute(f"""
        SELECT TRY_CAST(json_extract_string(details, '$.instances') AS INTEGER), what FROM events
        WHERE kind = 'deploy' AND service = {sql_string(service)} AND ts_start < TIMESTAMPTZ '{window.end.isoformat()}'
          AND json_extract_string(details, '$.instances') IS NOT NULL
        ORDER BY ts_start DESC LIMIT 1""").fetchone()
    if row and row[0] and row[0] > 0:
        return int(row[0]), f"deploy event ({row[1]})"
    if hosts > 0:
        return hosts, "distinct hosts in the log"
    if fallback:
        return int(fallback), "parameter"
    return 1, "assumed 1 (no deploy event, no host in the log, no parameter)"


def _cpu_utilization(con: duckdb.DuckDBPyConnection, window: Window, seconds: int, cores: float) -> pd.DataFrame:
    """Per service and bucket: mean CPU utilization per instance from the USE catalog's CPU metrics that
    carry a service (or job) label; counters become rates (CPU seconds per second) divided by ``cores``."""
    pattern = next(c[2] for c in USE_CATALOG if c[0] == "cpu" and c[1] == "utilization")
    names = [r[0] for r in con.execute(
        f"SELECT DISTINCT name FROM metrics WHERE {window.sql()} AND "
        "coalesce(labels['service'], labels['job']) IS NOT NULL").fetchall()
             if re.search(pattern, r[0], re.IGNORECASE) and not re.search(r"max|limit", r[0])]
    if not names:
        return pd.DataFrame(columns=["service", "b", "cpu"])
    name = sorted(names, key=lambda n: (not n.endswith("_total"), n))[0]
    scale = 100.0 if name.endswith("_percent") else 1.0
    if name.endswith("_total"):
        value = f"(CASE WHEN step < 0 THEN value ELSE step END) / nullif(dt, 0) / {cores}"
    else:
        value = f"value / {scale}"
    return con.execute(f"""
        WITH raw AS (SELECT coalesce(labels['service'], labels['job']) AS service, hash(labels) AS sid, ts, value
                     FROM metrics WHERE name = {sql_string(name)} AND {window.sql()}),
             steps AS (SELECT service, sid, ts, value, value - lag(value) OVER w AS step,
                              epoch(ts - lag(ts) OVER w) AS dt FROM raw WINDOW w AS (PARTITION BY sid ORDER BY ts))
        SELECT service, time_bucket(INTERVAL '{seconds} seconds', ts) AS b, avg({value}) AS cpu, '{name}' AS metric
        FROM steps GROUP BY ALL""").df()


def _db_pool(con: duckdb.DuckDBPyConnection, window: Window, seconds: int) -> pd.DataFrame:
    """Per bucket: the database connection pool's utilization (active / max connections), when the
    warehouse holds ``pg_stat_activity_count`` and ``pg_settings_max_connections``."""
    from kit.analysis.slo.saturation import saturation_candidates, saturation_minutes

    pool = [c for c in saturation_candidates(con) if c["name"] == "db_connection_pool_utilization"]
    if not pool:
        return pd.DataFrame(columns=["b", "db_pool"])
    minutes = saturation_minutes(con, pool[0], window.start, window.end)
    frame = pd.DataFrame({"b": pd.date_range(window.start, periods=minutes.size, freq="min"), "db_pool": minutes})
    frame["b"] = frame["b"].dt.floor(f"{seconds}s")
    return frame.groupby("b", as_index=False)["db_pool"].mean()


# ------------------------------------------------------------------------------------------------ levels

def load_levels(frame: pd.DataFrame, max_levels: int = 12, min_buckets: int = 3) -> pd.Series:
    """Label each bucket (row of ``frame`` with a ``concurrency`` column) with its load level: bins of
    per-instance concurrency, equal width in log when the range spans more than a factor 4, else
    linear; bins with fewer than ``min_buckets`` buckets get -1 (not used)."""
    n = frame["concurrency"].to_numpy(dtype=float)
    ok = np.isfinite(n) & (n > 0)
    labels = np.full(n.size, -1)
    if ok.sum() < min_buckets:
        return pd.Series(labels, index=frame.index)
    lo, hi = float(n[ok].min()), float(n[ok].max())
    if hi <= lo:
        labels[ok] = 0
        return pd.Series(labels, index=frame.index)
    edges = np.geomspace(lo, hi, max_levels + 1) if hi / lo > 4 else np.linspace(lo, hi, max_levels + 1)
    idx = np.clip(np.searchsorted(edges, n, side="right") - 1, 0, max_levels - 1)
    counts = np.bincount(idx[ok], minlength=max_levels)
    labels = np.where(ok & (counts[idx] >= min_buckets), idx, -1)
    kept = np.unique(labels[labels >= 0])
    rank = np.full(max_levels, -1)
    rank[kept] = np.arange(kept.size)
    return pd.Series(np.where(labels >= 0, rank[np.maximum(labels, 0)], -1), index=frame.index)


def _levels(frame: pd.DataFrame, resources: list[str]) -> tuple[LoadLevel, ...]:
    out = []
    for _key, g in frame[frame["level"] >= 0].groupby("level"):
        util = {r: float(g[r].mean()) for r in resources if r in g and g[r].notna().any()}
        out.append(LoadLevel(
            concurrency=float(g["concurrency"].mean()), throughput_rps=float(g["throughput_rps"].mean()),
            p95_ms=float(g["p95_ms"].median()) if g["p95_ms"].notna().any() else None,
            mean_ms=float(np.average(g["mean_ms"], weights=g["requests"])),
            buckets=len(g), requests=int(g["requests"].sum()), n_low=float(g["concurrency"].min()),
            n_high=float(g["concurrency"].max()),
            utilization=util))
    return tuple(out)


# ------------------------------------------------------------------------------------------ latency model

@dataclass(frozen=True)
class _LatencyModel:
    """p95 (ms) as a function of per-instance throughput, and the capacity where it diverges."""

    name: str
    p95_over_mean: float
    fit: UslFit | None = None
    a: float | None = None         # queueing model: 1 / R = a − b·x (R in s)
    b: float | None = None
    flat_ms: float | None = None
    top_rps: float | None = None

    def p95(self, x: np.ndarray | float) -> np.ndarray:
        x = np.atleast_1d(np.asarray(x, dtype=float))
        if self.fit is not None:
            return self.p95_over_mean * usl_latency_ms(x, self.fit)
        if self.a is not None and self.b is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                r = 1.0 / (self.a - self.b * x)
            return np.where(r > 0, 1000.0 * self.p95_over_mean * r, np.nan)
        return np.where(x <= (self.top_rps or 0) * 1.0000001, self.flat_ms or np.nan, np.nan)

    @property
    def capacity_rps(self) -> float | None:
        if self.fit is not None:
            return self.fit.peak_throughput_rps
        if self.a is not None and self.b:
            return self.a / self.b
        return None


def _latency_model(levels: tuple[LoadLevel, ...], fit: UslFit) -> _LatencyModel:
    """USL-implied latency when the fit has a verdict; else an M/M/1-style queue fitted to the levels
    (1/R linear in throughput, R = S / (1 − x/μ)) when latency rises with load; else flat (no model)."""
    top = sorted(levels, key=lambda lv: lv.throughput_rps)[-max(1, len(levels) // 3):]
    ratios = [lv.p95_ms / lv.mean_ms for lv in top if lv.p95_ms and lv.mean_ms]
    k = float(np.median(ratios)) if ratios else 3.0
    if fit.verdict:
        return _LatencyModel("USL (Little's law on the fitted curve: R = N / X(N))", k, fit=fit)
    x = np.array([lv.throughput_rps for lv in levels])
    inv = np.array([1000.0 / lv.mean_ms if lv.mean_ms else np.nan for lv in levels])
    ok = np.isfinite(inv)
    if ok.sum() >= 3:
        slope, intercept, low, high = theilslopes(inv[ok], x[ok])
        if high < 0 and intercept > 0:  # 1/R falls with load: a queue
            return _LatencyModel("M/M/1-style queue fitted to the load levels (1/R = 1/S − x/(S·μ), "
                                 "Theil–Sen)", k, a=float(intercept), b=float(-slope))
    best = max(levels, key=lambda lv: lv.throughput_rps)
    return _LatencyModel("none: latency does not rise with load over the measured range (p95 held at the "
                         "highest level's; nothing predicted beyond it)", k, flat_ms=best.p95_ms,
                         top_rps=best.throughput_rps)


# ------------------------------------------------------------------------------------------------ pieces

def _interp_util(levels: tuple[LoadLevel, ...], load: float) -> dict[str, float]:
    out: dict[str, float] = {}
    keys = {k for lv in levels for k in lv.utilization}
    for key in sorted(keys):
        pts = sorted((lv.throughput_rps, lv.utilization[key]) for lv in levels if key in lv.utilization)
        if len(pts) >= 2:
            out[key] = float(np.interp(load, [p[0] for p in pts], [p[1] for p in pts]))
    return out


def _knee(levels: tuple[LoadLevel, ...], fit: UslFit, model: _LatencyModel) -> Knee:
    pts = [(lv.throughput_rps, lv.p95_ms, lv.concurrency) for lv in levels if lv.p95_ms is not None]
    pts.sort()
    method = ("Kneedle (kneed, convex increasing, S = 1) on the load levels' median p95 against per-instance "
              "throughput")
    if len(pts) < 4:
        return Knee(False, None, None, None, {}, None, None, "too few load levels for a knee", method)
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    load = find_knee(x, y)
    usl_knee = None
    if model.fit is not None:
        grid = np.linspace(x.min(), x.max(), 50)
        pred = model.p95(grid)
        usl_knee = find_knee(grid, pred) if np.isfinite(pred).sum() >= 4 else None
    peak = fit.peak_throughput_rps if fit.verdict else None
    ratio = load / peak if load is not None and peak else None
    if load is None:
        return Knee(False, None, None, None, {}, usl_knee, None,
                    "p95 does not turn up over the measured load range", method)
    if usl_knee is not None:
        agreement = ("the knee of the USL-implied latency curve agrees (within 25 %)"
                     if abs(usl_knee - load) <= 0.25 * load
                     else f"the USL-implied knee differs ({fmt.num(usl_knee)} req/s per instance)")
    elif model.fit is not None:
        agreement = "the USL-implied latency curve has no knee over the measured range"
    else:
        agreement = "none (the USL fit has no verdict)"
    i = int(np.argmin(np.abs(x - load)))
    return Knee(True, load, float(pts[i][2]), float(np.interp(load, x, y)), _interp_util(levels, load), usl_knee,
                ratio, agreement, method)


def _slo_load(levels: tuple[LoadLevel, ...], model: _LatencyModel, slo_ms: float) -> tuple[float | None, str]:
    pts = sorted((lv.throughput_rps, lv.p95_ms) for lv in levels if lv.p95_ms is not None)
    if not pts:
        return None, "none"
    if pts[0][1] > slo_ms:
        return None, "p95 is above the SLO threshold already at the lowest load level"
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if y1 > slo_ms >= y0:
            return float(x0 + (slo_ms - y0) * (x1 - x0) / (y1 - y0)), "measured (interpolated between load levels)"
    top = pts[-1][0]
    cap = model.capacity_rps
    grid = np.linspace(top, (cap if cap and cap > top else top * 10), 400)
    pred = model.p95(grid)
    over = np.flatnonzero(~np.isfinite(pred) | (pred > slo_ms))
    if over.size and over[0] > 0:
        return float(grid[over[0] - 1]), ("extrapolated beyond the highest load level with the latency model "
                                          f"({model.name})")
    return None, "the latency model does not reach the SLO threshold within 10× the highest load level"


def _resources(levels: tuple[LoadLevel, ...], peak_pi: float, metrics: dict[str, str]) -> tuple[ResourceLimit, ...]:
    out = []
    for key in sorted({k for lv in levels for k in lv.utilization}):
        pts = [(lv.throughput_rps, lv.utilization[key]) for lv in levels if key in lv.utilization]
        if len(pts) < 3:
            continue
        x = np.array([p[0] for p in pts])
        y = np.array([p[1] for p in pts])
        slope, intercept, *_ = theilslopes(y, x)
        at_peak = float(intercept + slope * peak_pi)
        growth = float((1.0 - intercept) / (slope * peak_pi)) if slope > 0 and peak_pi > 0 else None
        out.append(ResourceLimit(key, metrics.get(key, key), at_peak, 1.0, growth, float(slope), key == "db_pool"))
    return tuple(out)


def _hpa(service: str, metric: str, target: float, mn: int, mx: int, opts: ScalingOptions) -> dict[str, Any]:
    if metric == "cpu_utilization":
        spec_metric: dict[str, Any] = {"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": int(round(100 * target))}}}
    else:
        quantity = f"{target:.6f}".rstrip("0").rstrip(".")  # a Kubernetes quantity: plain decimals
        spec_metric = {"type": "Pods", "pods": {"metric": {"name": "http_requests_per_second"},
                                                "target": {"type": "AverageValue", "averageValue": quantity}}}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": service},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service},
                     "minReplicas": mn, "maxReplicas": mx, "metrics": [spec_metric],
                     "behavior": {
                         "scaleUp": {"stabilizationWindowSeconds": opts.scale_up_stabilization_s,
                                     "tolerance": opts.tolerance},
                         "scaleDown": {"stabilizationWindowSeconds": opts.scale_down_stabilization_s,
                                       "tolerance": opts.tolerance}}}}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


# --------------------------------------------------------------------------------------------- analysis

def opts_bucket_s(opts: ScalingOptions) -> int:
    return bucket_seconds(opts.bucket)


def _service(service: str, frame: pd.DataFrame, peak: tuple[float, str | None, float], instances: int,
             instances_source: str, slo_ms: float, opts: ScalingOptions, metrics: dict[str, str],
             campaigns: list[dict[str, Any]], origin_share: float,
             incidents: list[tuple[pd.Timestamp, pd.Timestamp]]) -> ServiceScaling:
    frame = frame.copy()
    seconds = pd.Timedelta(seconds=opts_bucket_s(opts))
    frame["incident"] = False
    for start, end in incidents:
        frame.loc[(frame["b"] + seconds > start) & (frame["b"] < end), "incident"] = True
    # the sustained peak: the 99th percentile of bucket throughputs (the busiest 1 % of buckets; the very
    # busiest bucket of a sparse log is mostly sampling noise)
    peak_bucket = float(frame["throughput_rps"].quantile(0.99)) if len(frame) else 0.0
    for col in ("throughput_rps", "concurrency"):
        frame[col] = frame[col] / instances
    usable = (frame["requests"] >= opts.min_requests) & ~frame["incident"]
    frame["level"] = load_levels(frame[usable], opts.max_levels, opts.min_buckets).reindex(frame.index,
                                                                                          fill_value=-1)
    resources = [r for r in ("cpu", "db_pool") if r in frame]
    levels = _levels(frame, resources)
    used = frame[frame["level"] >= 0]
    fit = fit_usl(used["concurrency"].to_numpy(), used["throughput_rps"].to_numpy(), used["level"].to_numpy(),
                  n_boot=opts.n_boot, seed=opts.seed)
    model = _latency_model(levels, fit) if levels else _LatencyModel("none", 3.0)
    knee = _knee(levels, fit, model)
    minute_rps, peak_at, p95_rps = peak
    peak_rps = peak_bucket  # at the levels' averaging interval
    peak_pi = peak_rps / instances
    slo_load, slo_basis = _slo_load(levels, model, slo_ms) if levels else (None, "none")
    res = _resources(levels, peak_pi, metrics)
    limits = {"the knee of p95": knee.load_rps, "the USL peak throughput": fit.peak_throughput_rps if fit.verdict
              else None, f"the latency SLO (p95 ≤ {slo_ms:g} ms)": slo_load}
    growths = {k: v / peak_pi for k, v in limits.items() if v is not None and peak_pi > 0}
    growth = min(growths.values()) if growths else None
    limited_by = min(growths, key=lambda k: growths[k]) if growths else "no limit found in the data"
    sat = [r for r in res if r.growth_to_limit is not None]
    first = min(sat, key=lambda r: r.growth_to_limit or math.inf).resource if sat else None
    slo_broken = "above the SLO threshold already" in slo_basis
    headroom = Headroom(instances, instances_source, minute_rps, peak_at, p95_rps, peak_rps, peak_pi, slo_ms, slo_load,
                        slo_basis,
                        growths.get("the knee of p95"), growths.get("the USL peak throughput"),
                        growths.get(f"the latency SLO (p95 ≤ {slo_ms:g} ms)"), growth, limited_by, res, first,
                        slo_broken or (growth is not None and growth < 1.2))
    # autoscaling: keep each instance a margin under the safe per-instance load
    candidates = [v for v in (knee.load_rps, slo_load,
                              0.8 * fit.peak_throughput_rps if fit.verdict and fit.peak_throughput_rps else None)
                  if v is not None]
    if candidates:
        safe, basis = min(candidates), "the smallest of the knee, the SLO load and 80 % of the USL peak"
    else:
        within = [lv.throughput_rps for lv in levels if lv.p95_ms is not None and lv.p95_ms <= slo_ms]
        top = max(within) if within else (max(lv.throughput_rps for lv in levels) if levels else peak_pi)
        safe, basis = top, ("the highest load level observed within the SLO (no knee, SLO crossing or USL "
                            "verdict: a floor, the real capacity may be higher)")
    target_rps = max((1 - opts.margin) * safe, 1e-9)
    cpu = next((r for r in res if r.resource == "cpu" and r.slope_per_rps and r.slope_per_rps > 0), None)
    if cpu is not None and cpu.at_peak is not None:
        intercept = cpu.at_peak - (cpu.slope_per_rps or 0) * peak_pi
        target_util = float(np.clip(intercept + (cpu.slope_per_rps or 0) * target_rps, 0.05, 0.95))
        metric, target, unit = "cpu_utilization", target_util, "ratio of requested CPU"
    else:
        metric, target, unit = "requests_per_instance", target_rps, "requests/s per instance"
    mn = max(opts.min_instances_floor, math.ceil(peak_rps / target_rps))
    mx = max(mn, math.ceil(max(GROWTH_FACTORS) * peak_rps / target_rps))
    what = (f"average CPU utilization {target:.0%} of the requested CPU" if metric == "cpu_utilization"
            else f"{fmt.num(target)} requests/s per instance")
    prose = (f"Scale {service} out when {what} is exceeded for more than {opts.scale_up_stabilization_s} s "
             f"and in when it stays {opts.tolerance:.0%} below it for {opts.scale_down_stabilization_s} s; "
             f"that is {fmt.num(target_rps)} requests/s per instance, {opts.margin:.0%} under the safe load of "
             f"{fmt.num(safe)} requests/s per instance ({basis}). Keep at least {mn} instances (today's sustained "
             f"peak, "
             f"{fmt.num(peak_rps)} requests/s, at the target) and allow up to {mx} (3× that peak).")
    autoscaling = Autoscaling(metric, target, unit, target_rps, safe, opts.margin, opts.tolerance,
                              opts.scale_up_stabilization_s, opts.scale_down_stabilization_s, mn, mx, basis,
                              _hpa(service, metric, target, mn, mx, opts), prose)
    scenarios = []
    breakpoints = dict(limits) | {f"{r.resource} utilization reaches {r.limit:.0%}": peak_pi * r.growth_to_limit
                                  for r in res if r.growth_to_limit is not None}
    for factor in GROWTH_FACTORS:
        load = factor * peak_rps
        per = load / instances
        needed = max(opts.min_instances_floor, math.ceil(load / target_rps))
        now = float(model.p95(per)[0])
        scaled = float(model.p95(load / needed)[0])
        broken = sorted((v, k) for k, v in breakpoints.items() if v is not None and v < per)
        if broken:
            breaks = f"{broken[0][1]} (at {fmt.num(broken[0][0])} requests/s per instance)"
        else:
            nearest = sorted((v, k) for k, v in breakpoints.items() if v is not None)
            breaks = "nothing the data shows" + (
                f"; nearest: {nearest[0][1]} at {fmt.num(nearest[0][0])} requests/s per instance" if nearest else "")
        scenarios.append(Scenario(factor, load, per, now if math.isfinite(now) else None,
                                  scaled if math.isfinite(scaled) else None, needed, breaks, model.name))
    # high-load evidence (campaigns): their buckets and the levels they fell in
    evidence = []
    for c in campaigns:
        inside = frame[(frame["b"] >= c["start"]) & (frame["b"] < c["end"])]
        rest = frame[~frame.index.isin(inside.index)]
        evidence.append({"what": c["what"], "start": c["start"].isoformat(), "end": c["end"].isoformat(),
                         "buckets": len(inside), "buckets_used": int((inside["level"] >= 0).sum()),
                         "levels": sorted({int(v) for v in inside["level"] if v >= 0}),
                         "load_ratio": float(inside["throughput_rps"].mean() / rest["throughput_rps"].median())
                         if len(inside) and len(rest) else None,
                         "top_level_share": float((inside["level"] >= max(0, frame["level"].max() - 2)).mean())
                         if len(inside) else None})
    caveats = [
        "Logs record the offered load: throughput rose with demand, not with a load test, so the fit describes "
        "how this service behaved at the loads it saw; beyond the highest level it is an extrapolation.",
        f"Origin requests only (CDN hits excluded: {1 - origin_share:.0%} of the service's requests); "
        "the SLO is checked on the origin p95, which is no better than the p95 users see.",
        f"Per instance: {fmt.counted(instances, 'instance')}, from {instances_source}; load assumed spread evenly.",
    ]
    if fit.n_ref < 1:
        caveats.append(f"Concurrency per instance is below 1 request in flight; N is counted in units of "
                       f"{fmt.num(fit.n_ref)} (the lowest level), so α and β are per that unit.")
    if fit.verdict and fit.peak_concurrency and levels and fit.peak_concurrency > 1.5 * max(lv.concurrency
                                                                                            for lv in levels):
        caveats.append(f"The USL peak ({fmt.num(fit.peak_concurrency)} in flight) lies "
                       f"{fit.peak_concurrency / max(lv.concurrency for lv in levels):.1f}× beyond the highest "
                       "measured concurrency: an extrapolation.")
    if not fit.verdict:
        caveats.append(f"No USL verdict: {fit.reason}.")
    if not knee.found:
        caveats.append(f"No knee: {knee.agreement}.")
    excluded = int(frame["incident"].sum())
    if excluded:
        caveats.append(f"{excluded} bucket(s) overlapping recorded incidents (of any service: they share the "
                       "database and the CDN) were left out of the levels (an incident's latency is not load).")
    if minute_rps > 1.5 * peak_rps:
        caveats.append(f"The busiest minute ({fmt.num(minute_rps)} requests/s) is {minute_rps / peak_rps:.1f}× the "
                       f"sustained peak (99th percentile of {opts.bucket} buckets): short bursts the autoscaler's "
                       "stabilization "
                       "window rides over.")
    if not evidence:
        caveats.append("No recorded high-load event (campaign) in the window: the highest loads are the daily peaks.")
    return ServiceScaling(service, levels, fit, knee, headroom, autoscaling, tuple(scenarios), model.name,
                          tuple(evidence), tuple(caveats))


def _slo_threshold(config: RunConfig, specs: list[Any] | None, service: str) -> float:
    for spec in specs or []:
        if getattr(spec, "sli_kind", "") == "latency" and getattr(spec, "latency_threshold_ms", None) and \
                getattr(spec, "warehouse_service", None) in (service, None):
            return float(spec.latency_threshold_ms)
    return float(config.latency_threshold_ms)


def analyse_scaling(con: duckdb.DuckDBPyConnection, window: Window, config: RunConfig | None = None,
                    options: ScalingOptions | None = None, specs: list[Any] | None = None) -> ScalingAnalysis:
    """The scaling analysis of every service with requests in the window (``config.services`` to
    restrict): load levels, USL fit, knee, headroom, autoscaling target and growth scenarios.

    The latency SLO threshold is the latency SLO spec's (``specs``: ``kit.analysis.slo`` SloSpec objects
    with ``sli_kind == 'latency'``; default: loaded from ``config.slo_specs``) or
    ``config.latency_threshold_ms``; p95 must stay under it."""
    config = config or RunConfig()
    if specs is None and config.slo_specs:
        from kit.analysis.slo.loaders import load_slo_specs

        specs = [spec for path in config.slo_specs for spec in load_slo_specs(path)]
    opts = options or ScalingOptions(bucket=config.bucket)
    if not 0 < opts.margin < 1:
        raise ParameterError(f"scaling margin must be in (0, 1), got {opts.margin}")
    seconds = bucket_seconds(opts.bucket)
    services = list(config.services) or None
    frame = load_series(con, window, opts.bucket, services)
    cpu = _cpu_utilization(con, window, seconds, opts.cpu_cores)
    metrics = {"cpu": str(cpu["metric"].iloc[0]) if len(cpu) else "", "db_pool":
               "pg_stat_activity_count{state=\"active\"} / pg_settings_max_connections"}
    if len(cpu):
        frame = frame.merge(cpu[["service", "b", "cpu"]], on=["service", "b"], how="left")
    pool = _db_pool(con, window, seconds)
    if len(pool) and pool["db_pool"].notna().any():
        frame = frame.merge(pool, on="b", how="left")
    peaks = peak_minutes(con, window, services)
    shares = dict(con.execute(f"""SELECT service, count(*) FILTER (WHERE {ORIGIN_SQL}) / count(*) FROM requests
                                  WHERE {window.sql()} AND {services_sql(services)} GROUP BY 1""").fetchall())
    incident_rows = con.execute(f"""
        SELECT service, ts_start, coalesce(ts_end, ts_start + INTERVAL 1 HOUR) FROM events WHERE kind = 'incident'
          AND ts_start < TIMESTAMPTZ '{window.end.isoformat()}'""").fetchall()
    events = con.execute(f"""
        SELECT what, service, ts_start, coalesce(ts_end, ts_start + INTERVAL 1 HOUR) FROM events
        WHERE (kind = 'campaign' OR json_extract_string(details, '$.type') = 'traffic_spike')
          AND ts_start < TIMESTAMPTZ '{window.end.isoformat()}'
          AND coalesce(ts_end, ts_start) >= TIMESTAMPTZ '{window.start.isoformat()}' ORDER BY ts_start""").fetchall()
    out = []
    slo_values = []
    for service, g in frame.groupby("service", sort=True):
        if service not in peaks:
            continue
        hosts = int(con.execute(f"SELECT count(DISTINCT host) FROM requests WHERE service = {sql_string(service)} "
                                f"AND {window.sql()}").fetchone()[0])  # type: ignore[index]
        instances, source = _instances(con, window, str(service), hosts, opts.instances)
        slo_ms = _slo_threshold(config, specs, str(service))
        slo_values.append(slo_ms)
        camp = [{"what": w, "start": pd.Timestamp(a), "end": pd.Timestamp(b)} for w, s, a, b in events
                if s in (service, None)]
        out.append(_service(str(service), g.reset_index(drop=True), peaks[service], instances, source, slo_ms, opts,
                            metrics, camp, float(shares.get(service, 1.0)),
                            [(pd.Timestamp(a), pd.Timestamp(b)) for _s, a, b in incident_rows]))
    method = (f"Buckets of {seconds} s of origin requests per service; per-instance throughput and concurrency "
              f"(Little's law) grouped into up to {opts.max_levels} load levels (≥ {opts.min_buckets} buckets "
              f"each); USL fitted by bounded least squares with {opts.n_boot} bootstrap resamples; a verdict needs "
              f"≥ {MIN_LEVELS} levels, α and β clear of zero and a better AICc than a straight line. Knee by "
              f"Kneedle on median p95 per level. Autoscaling target {opts.margin:.0%} under the safe load; HPA "
              f"tolerance {opts.tolerance:g}.")
    slo_source = "latency SLO spec" if specs and any(getattr(s, "sli_kind", "") == "latency" for s in specs) \
        else "parameter latency_threshold_ms"
    return ScalingAnalysis(window.start.isoformat(), window.end.isoformat(), seconds,
                           float(max(slo_values)) if slo_values else float(config.latency_threshold_ms), slo_source,
                           opts.margin, tuple(out), method,
                           ("Growth scenarios scale today's busiest minute; all services are assumed to grow by "
                            "the same factor (the database pool is shared).",),
                           {"load_series": _bucket_sql(window, seconds, services).strip()})
