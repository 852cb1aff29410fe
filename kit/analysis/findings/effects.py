"""Effect sizes with confidence intervals: the Hodges–Lehmann shift with its distribution-free interval and
the Mann–Whitney test (as Kayenta's canary judge), differences of proportions (Newcombe's hybrid score
interval), rate ratios (Poisson) and a bootstrap for spread ratios. All at 95 %."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Effect:
    """``after - before`` (or a ratio, as the caller says) with a 95 % interval and a two-sided p-value."""

    before: float
    after: float
    effect: float
    ci_low: float
    ci_high: float
    p_value: float | None


def hodges_lehmann(before: np.ndarray, after: np.ndarray) -> Effect:
    """Shift of ``after`` over ``before`` (same unit): the median of all pairwise differences, the
    distribution-free 95 % interval from their order statistics (normal approximation of the Mann–Whitney
    null distribution), and the Mann–Whitney two-sided p-value. ``before``/``after`` are the medians."""
    x = np.asarray(before, dtype=float)
    y = np.asarray(after, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        nan = float("nan")
        return Effect(float(np.median(x)) if n else nan, float(np.median(y)) if m else nan, nan, nan, nan, None)
    diffs = (y[:, None] - x[None, :]).ravel()
    nm = n * m
    k = int(math.floor(nm / 2.0 - Z95 * math.sqrt(nm * (n + m + 1) / 12.0)))
    k = min(max(k, 0), nm - 1)
    p = float(stats.mannwhitneyu(y, x, alternative="two-sided").pvalue)
    # order statistics by selection, not a full sort: k-th, the middle one(s), (nm-1-k)-th
    ranks = sorted({k, (nm - 1) // 2, nm // 2, nm - 1 - k})
    part = np.partition(diffs, ranks)
    median = 0.5 * (float(part[(nm - 1) // 2]) + float(part[nm // 2]))
    return Effect(float(np.median(x)), float(np.median(y)), median, float(part[k]), float(part[nm - 1 - k]), p)


def _wilson(successes: float, n: float) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = p + Z95 * Z95 / (2 * n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 * Z95 / (4 * n * n))
    denom = 1 + Z95 * Z95 / n
    return (centre - half) / denom, (centre + half) / denom


def proportion_difference(k_before: float, n_before: float, k_after: float, n_after: float) -> Effect:
    """``after - before`` of two proportions, Newcombe's hybrid score interval, two-proportion z-test."""
    p0 = k_before / n_before if n_before else float("nan")
    p1 = k_after / n_after if n_after else float("nan")
    if not n_before or not n_after:
        return Effect(p0, p1, float("nan"), float("nan"), float("nan"), None)
    l0, u0 = _wilson(k_before, n_before)
    l1, u1 = _wilson(k_after, n_after)
    d = p1 - p0
    low = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    pooled = (k_before + k_after) / (n_before + n_after)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_before + 1 / n_after))
    p = float(2 * stats.norm.sf(abs(d) / se)) if se > 0 else (1.0 if d == 0 else 0.0)
    return Effect(p0, p1, d, low, high, p)


def rate_ratio(count_before: float, seconds_before: float, count_after: float, seconds_after: float) -> Effect:
    """Requests per second before and after, their ratio ``after/before`` with a Poisson (log-normal
    approximation) 95 % interval and a two-sided p-value."""
    r0 = count_before / seconds_before if seconds_before else float("nan")
    r1 = count_after / seconds_after if seconds_after else float("nan")
    if count_before <= 0 or count_after <= 0:
        return Effect(r0, r1, r1 / r0 if r0 else float("nan"), float("nan"), float("nan"), None)
    log_ratio = math.log(r1 / r0)
    se = math.sqrt(1 / count_before + 1 / count_after)
    p = float(2 * stats.norm.sf(abs(log_ratio) / se))
    return Effect(r0, r1, math.exp(log_ratio), math.exp(log_ratio - Z95 * se), math.exp(log_ratio + Z95 * se), p)


def spread_ratio(before: np.ndarray, after: np.ndarray, resamples: int = 400, seed: int = 0) -> Effect:
    """Ratio of the interquartile ranges of log latency ``after/before`` (a variance-only change moves it,
    a pure shift does not), with a percentile bootstrap interval; p-value from the Fligner–Killeen test."""
    x = np.log(np.asarray(before, dtype=float).clip(1e-3))
    y = np.log(np.asarray(after, dtype=float).clip(1e-3))
    if len(x) < 10 or len(y) < 10:
        nan = float("nan")
        return Effect(nan, nan, nan, nan, nan, None)

    def iqr(a: np.ndarray, axis: int = -1) -> np.ndarray:
        q = np.quantile(a, [0.25, 0.75], axis=axis)
        return np.asarray(q[1] - q[0])

    rng = np.random.default_rng(seed)
    bx = x[rng.integers(0, len(x), (resamples, len(x)))]
    by = y[rng.integers(0, len(y), (resamples, len(y)))]
    ratios = iqr(by, axis=1) / np.maximum(iqr(bx, axis=1), 1e-9)
    i0, i1 = float(iqr(x)), float(iqr(y))
    p = float(stats.fligner(x, y).pvalue)
    return Effect(i0, i1, i1 / max(i0, 1e-9), float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975)), p)
