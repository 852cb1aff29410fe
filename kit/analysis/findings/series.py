"""Bucketed series per scope (built in DuckDB), their residuals against the expected level, and the change
points and anomalous segments found in them (ruptures ``KernelCPD``, linear kernel: exact PELT for the
least-squares cost, in C)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import ruptures as rpt

from kit.analysis.window import Window, services_sql
from kit.engine import Queryable, as_engine

# bucket ladder (s): every value divides a day, so the same clock time lines up across days
BUCKET_LADDER = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
MAX_BUCKETS = 2500          # finest bucket that keeps a series at most this long
MIN_BUCKETS = 48            # fewer points than this: no change-point detection
MIN_BUSY_PER_BUCKET = 20    # the busiest service should see this many requests in a median bucket
DAY_S = 86400
NEAREST_DAYS = 6            # the expected level of a bucket: median of this many other days, the nearest
GLOBAL_CPD_MAX = 3000       # series up to this long get one change-point search over all of them (~20 ms)
CPD_MARGIN = 96             # longer ones: buckets of context around each screened region that the search sees
# latency series and samples use the requests the service answered itself: edge cache hits are a
# different population (answered in a few ms by the CDN) whose share varies and would blur a shift
ORIGIN_SERVED = "latency_ms > 0 AND coalesce(upper(cache_status), '') <> 'HIT'"

SERIES_SQL = """
SELECT service, route,
       (epoch_us(ts) - {t0_us}) // {bucket_us}                             AS b,
       count(*)                                                             AS n,
       count(*) FILTER (WHERE status >= 500)                                AS n5xx,
       count(latency_ms) FILTER (WHERE {origin_served})                     AS n_lat,
       sum(ln(latency_ms)) FILTER (WHERE {origin_served})                   AS s_ln,
       sum(ln(latency_ms) * ln(latency_ms)) FILTER (WHERE {origin_served})  AS s_ln2,
       sum(latency_ms)                                                      AS s_lat,
       count(cache_status)                                                  AS n_cache,
       count(*) FILTER (WHERE upper(cache_status) = 'HIT')                  AS n_hit
FROM requests
WHERE {window} AND {services}
GROUP BY ALL
"""


def choose_bucket(con: Queryable, window: Window, services: tuple[str, ...] | list[str]) -> int:
    """The finest ladder bucket (s) that keeps series at most ``MAX_BUCKETS`` long (windows up to 35 days:
    at most 5 minutes) and gives the busiest
    service at least ``MIN_BUSY_PER_BUCKET`` requests in a median bucket (coarser when the data is thin)."""
    seconds = max(window.seconds, 1.0)
    # up to 35 days stay at 5 minutes or finer (a month: 8,640 points), so short incidents keep a few buckets
    limit = max(MAX_BUCKETS, seconds / 300) if seconds <= 35 * DAY_S else MAX_BUCKETS
    candidates = [b for b in BUCKET_LADDER if seconds / b <= limit] or [BUCKET_LADDER[-1]]
    row = as_engine(con).rows(
        f"SELECT max(n) FROM (SELECT service, count(*) AS n FROM requests WHERE {window.sql()} AND "
        f"{services_sql(services)} GROUP BY service)")[0]
    busiest = float(row[0]) if row and row[0] else 0.0
    for b in candidates:
        if busiest * b / seconds >= MIN_BUSY_PER_BUCKET or seconds / b <= MIN_BUCKETS:
            return b
    return candidates[-1]


def bucket_origin(window: Window, bucket_s: int) -> float:
    """Epoch seconds of bucket 0: the window start floored to a multiple of the bucket (round clock times)."""
    return float(int(window.start.timestamp() // bucket_s) * bucket_s)


def series_sql(window: Window, bucket_s: int, services: tuple[str, ...] | list[str]) -> str:
    """The aggregate every series comes from: one row per service, route and bucket number ``b``."""
    # integer bucket numbers on epoch_us: the same in DuckDB and Spark (no float seconds); ts >= the origin
    return SERIES_SQL.format(t0_us=int(bucket_origin(window, bucket_s)) * 1_000_000, bucket_us=bucket_s * 1_000_000,
                             window=window.sql(),
                             origin_served=ORIGIN_SERVED,
                             services=services_sql(services)).strip()


@dataclass(frozen=True)
class ScopeSeries:
    """Additive per-bucket sums of one scope (arrays of length ``n_buckets``)."""

    scope: tuple[tuple[str, str], ...]
    n: np.ndarray
    n5xx: np.ndarray
    n_lat: np.ndarray
    s_ln: np.ndarray
    s_ln2: np.ndarray
    s_lat: np.ndarray
    n_cache: np.ndarray
    n_hit: np.ndarray


def scope_series(frame: pd.DataFrame, n_buckets: int) -> list[ScopeSeries]:
    """Service-level and route-level series from the aggregate (routes summed into their service)."""
    columns = ["n", "n5xx", "n_lat", "s_ln", "s_ln2", "s_lat", "n_cache", "n_hit"]
    frame = frame.copy()
    frame["service"] = frame["service"].fillna("(none)")
    frame["route"] = frame["route"].fillna("(none)")
    frame[columns] = frame[columns].astype(float).fillna(0.0)
    out: list[ScopeSeries] = []
    for keys, group_cols in ((("service",), ["service"]), (("service", "route"), ["service", "route"])):
        grouped = frame.groupby([*group_cols, "b"], sort=True)[columns].sum()
        for key, part in grouped.groupby(level=list(range(len(group_cols)))):
            values = key if isinstance(key, tuple) else (key,)
            b = part.index.get_level_values("b").to_numpy()
            keep = (b >= 0) & (b < n_buckets)
            arrays = {}
            for c in columns:
                full = np.zeros(n_buckets)
                full[b[keep]] = part[c].to_numpy()[keep]
                arrays[c] = full
            out.append(ScopeSeries(tuple(zip(keys, (str(v) for v in values), strict=True)), **arrays))
    return out


def seasonal_baseline(x: np.ndarray, bucket_s: int, offset_s: float, scale_days: bool) -> np.ndarray | None:
    """Expected value of each bucket: the median of the same clock time on the other days of the window
    (None when the window spans fewer than 2 whole days). With ``scale_days`` (counts), each day's
    baseline is scaled by that day's median ratio to it, so a weekend or a lighter day is not a change."""
    per_day = DAY_S // bucket_s if DAY_S % bucket_s == 0 else 0
    if not per_day or len(x) < 2 * per_day:
        return None
    lead = int(round((offset_s % DAY_S) / bucket_s))  # buckets of the first (partial) day
    n_days = -(-(lead + len(x)) // per_day)
    flat = np.full(n_days * per_day, np.nan)
    flat[lead:lead + len(x)] = x
    grid = flat.reshape(n_days, per_day)
    # the other days nearest in time (at most NEAREST_DAYS): a month costs no more than a week, and a slow
    # trend is followed
    others = _nearest_days(n_days)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        baseline = np.nanmedian(grid[others], axis=1)  # (day, other day, bucket) -> (day, bucket)
        if scale_days:
            ratio = np.where(baseline > 0, grid / baseline, np.nan)
            enough = np.isfinite(ratio).sum(axis=1) >= per_day // 4
            scale = np.where(enough, np.nanmedian(ratio, axis=1), 1.0)
            baseline = baseline * np.where(np.isfinite(scale), scale, 1.0)[:, None]
    return baseline.ravel()[lead:lead + len(x)]


@cache
def _nearest_days(n_days: int) -> np.ndarray:
    """For each day, the other days nearest to it (at most ``NEAREST_DAYS``), as a (day, other) index."""
    return np.array([sorted((e for e in range(n_days) if e != d), key=lambda e: (abs(e - d), e))
                     [:min(NEAREST_DAYS, n_days - 1)] for d in range(n_days)])


def robust_z(residual: np.ndarray, floor: np.ndarray | float) -> np.ndarray:
    """Residuals over a noise scale that a level shift does not inflate: 1.4826 × MAD of the lag-k
    differences / √2, the larger of k = 1 and k = 12 buckets (so noise that wanders slowly, as metrics
    often do, is not taken for change), never below ``floor`` (the sampling noise of a bucket)."""
    finite = residual[np.isfinite(residual)]
    scale = 0.0
    for lag in (1, 12):
        if len(finite) > lag + 3:
            diffs = finite[lag:] - finite[:-lag]
            scale = max(scale, 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / np.sqrt(2))
    if scale == 0 and len(finite) > 4:  # quantized or mostly constant series: MAD is 0, use the sd of changes
        scale = float(np.std(np.diff(finite))) / np.sqrt(2)
    scale_arr = np.maximum(scale, floor)
    return residual / np.where(scale_arr > 0, scale_arr, np.nan)


@dataclass(frozen=True)
class Segment:
    """Buckets [start, stop) of a series whose mean standardized residual is ``level``."""

    start: int
    stop: int
    level: float

    @property
    def strength(self) -> float:
        """|mean z| × √length: how far the segment's mean is from the reference, in standard errors."""
        return abs(self.level) * float(np.sqrt(self.stop - self.start))


def penalty(n: int) -> float:
    """PELT penalty per change point for a unit-variance series of ``n`` points: 3·ln n, a BIC-like
    penalty (2·ln n) made 50 % stiffer because bucket residuals have heavier tails than a Gaussian."""
    return 3.0 * float(np.log(max(n, 3)))


def change_points(z: np.ndarray, min_size: int = 2) -> list[int]:
    """Change points of ``z`` (NaN filled with 0, the expected residual): exact PELT, least squares."""
    clean = np.nan_to_num(np.clip(z, -25, 25), nan=0.0)
    if len(clean) < 2 * min_size + 1:
        return [len(clean)]
    algo = rpt.KernelCPD(kernel="linear", min_size=min_size).fit(clean.reshape(-1, 1))
    return [int(b) for b in algo.predict(pen=penalty(len(clean)))]


def anomalous_segments(z: np.ndarray, direction: int, reference: float = 0.0) -> list[Segment]:
    """Runs of segments whose mean z departs from ``reference`` in ``direction`` (+1 up, -1 down): short
    and sharp (|mean| ≥ 3, strength ≥ 6) or long and steady (|mean| ≥ 1, strength ≥ 10); adjacent ones
    merge. A cheap screen first: a series where no 3-, 12- or 48-bucket mean reaches a strength of 5
    skips the change-point search; series longer than ``GLOBAL_CPD_MAX`` are searched only around what the
    screen flagged."""
    clean = np.nan_to_num(np.clip(z, -25, 25), nan=0.0) - reference
    if len(clean) < 3:
        return []
    signed = clean * direction
    if not any(len(signed) >= w and np.convolve(signed, np.ones(w) / w, mode="valid").max() * np.sqrt(w) >= 5
               for w in (3, 12, 48)):
        return []
    bounds = [0, *(change_points(z) if len(z) <= GLOBAL_CPD_MAX else _local_change_points(z, signed))]
    bad: list[Segment] = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        seg = Segment(a, b, _mean(z[a:b], reference))
        level = seg.level * direction
        if (level >= 3 and seg.strength >= 6) or (level >= 1 and seg.strength >= 10):
            if bad and bad[-1].stop == a:
                prev = bad.pop()
                seg = Segment(prev.start, b, _mean(z[prev.start:b], reference))
            bad.append(seg)
    return bad


def _local_change_points(z: np.ndarray, signed: np.ndarray) -> list[int]:
    """Change points searched only around the regions the screen flagged (each widened by ``CPD_MARGIN``
    buckets; overlapping regions join), so a month of 5-minute buckets costs a few short searches. The
    region edges are boundaries too; the result ends with ``len(z)`` like ``change_points``."""
    hot = np.zeros(len(signed), dtype=bool)
    for w in (3, 12, 48):
        if len(signed) >= w:
            strength = np.convolve(signed, np.ones(w) / w, mode="valid") * np.sqrt(w)
            for i in np.flatnonzero(strength >= 5):
                hot[i:i + w] = True
    idx = np.flatnonzero(hot)
    if not len(idx):
        return [len(z)]
    regions: list[list[int]] = []
    for i in idx:
        a, b = max(0, int(i) - CPD_MARGIN), min(len(z), int(i) + 1 + CPD_MARGIN)
        if regions and a <= regions[-1][1]:
            regions[-1][1] = max(regions[-1][1], b)
        else:
            regions.append([a, b])
    points: set[int] = set()
    for a, b in regions:
        points.update({a, b})
        points.update(a + p for p in change_points(z[a:b]))
    return sorted(p for p in points if 0 < p <= len(z)) if len(z) in points else \
        sorted(p for p in points if 0 < p) + [len(z)]


def _mean(z: np.ndarray, reference: float) -> float:
    finite = np.clip(z[np.isfinite(z)], -25, 25)
    return float(finite.mean() - reference) if len(finite) else 0.0


def first_segment_level(z: np.ndarray) -> float:
    """Mean z of the series before its first change point (the reference when there is no seasonality)."""
    bounds = change_points(z)
    clean = np.nan_to_num(np.clip(z, -25, 25), nan=0.0)
    return float(clean[: bounds[0]].mean()) if bounds else 0.0


def standardized_residual(x: np.ndarray, bucket_s: int, offset_s: float, seasonal: bool,
                          floor: np.ndarray | float, counts: bool = False) -> tuple[np.ndarray, bool]:
    """``x`` minus its expected level (the same clock time on other days when ``seasonal`` and the series
    spans two days, else its median), over ``robust_z``'s noise scale; also whether the expected level
    was seasonal (then the reference level of the residual is 0, else its first segment)."""
    base = seasonal_baseline(x, bucket_s, offset_s, counts) if seasonal else None
    used = base is not None
    if base is None:
        finite = x[np.isfinite(x)]
        base = np.full_like(x, float(np.median(finite)) if len(finite) else 0.0, dtype=float)
    return robust_z(x - base, floor), used


def series_changes(x: np.ndarray, bucket_s: int, offset_s: float = 0.0, direction: int = 1,
                   floor: float = 0.0) -> list[Segment]:
    """Anomalous segments of one plain series (a metric, a NAB series): the detector's core on its own.
    Without a sampling-noise floor, the floor is half the IQR-based spread of the series (so a quantized
    series that flips between two levels is not a stream of changes)."""
    values = np.asarray(x, dtype=float)
    finite = values[np.isfinite(values)]
    if len(finite) > 4:
        q1, q3 = np.quantile(finite, [0.25, 0.75])
        floor = max(floor, 0.5 * float(q3 - q1) / 1.349)
    z, used = standardized_residual(values, bucket_s, offset_s, True, floor)
    return anomalous_segments(z, direction, 0.0 if used else first_segment_level(z))


def scope_sql(scope: dict[str, str]) -> str:
    """A WHERE fragment for a finding's service and route (a route ending in ``*`` is a prefix)."""
    parts = []
    for key in ("service", "route"):
        if key in scope:
            value = scope[key]
            if value.endswith("*"):
                parts.append(f"{key} LIKE '" + value[:-1].replace("'", "''") + "%'")
            else:
                parts.append(f"{key} = '" + value.replace("'", "''") + "'")
    return " AND ".join(parts) or "TRUE"
