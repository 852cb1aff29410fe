"""The Universal Scalability Law fit, its bootstrap, the straight-line comparison, the latency the fit
implies, and the knee of a measured latency curve (Kneedle).

USL (Gunther): X(N) = λN / (1 + α(N−1) + βN(N−1)); α contention (serialisation), β coherency
(crosstalk). Fitted by bounded nonlinear least squares (``scipy.optimize.least_squares``, λ ≥ 0,
0 ≤ α ≤ 1, β ≥ 0, several starts) on the load levels' mean throughput, each level weighted by the square
root of its bucket count, on relative residuals (throughput noise is multiplicative). Intervals:
percentile bootstrap (observations resampled within each level, levels kept). The fit is compared with
a straight line X = a + bN by AICc (small-sample AIC)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from kit import fmt
from kit.analysis.scaling.model import UslFit

__all__ = ["MIN_LEVELS", "find_knee", "fit_usl", "usl_latency_ms", "usl_throughput"]

MIN_LEVELS = 6               # fewer distinct load levels: no verdict
ZERO_SHARE = 0.02            # an interval whose low end is under 2 % of its high end "reaches zero"
AICC_BETTER = 0.0            # the USL must beat the straight line's AICc (by this much)


def usl_throughput(n: np.ndarray | float, lam: float, alpha: float, beta: float) -> np.ndarray:
    """X(N) = λN / (1 + α(N−1) + βN(N−1)), N in the fit's concurrency unit."""
    n = np.asarray(n, dtype=float)
    return lam * n / np.maximum(1.0 + alpha * (n - 1.0) + beta * n * (n - 1.0), 1e-12)


def _rising_n(x: np.ndarray, lam: float, alpha: float, beta: float) -> np.ndarray:
    """N (fit units) on the rising branch where X(N) = x; NaN where x exceeds the peak. Solves
    xβN² + (xα − xβ − λ)N + x(1 − α) = 0 for its smaller root."""
    x = np.asarray(x, dtype=float)
    a, b, c = x * beta, x * alpha - x * beta - lam, x * (1.0 - alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        disc = b * b - 4 * a * c
        root = np.where(a > 1e-15, (-b - np.sqrt(disc)) / (2 * a), c / np.maximum(-b, 1e-15))
        root = np.where((disc < 0) | (b >= 0) & (a <= 1e-15) | ~(root > 0), np.nan, root)
    return root


def usl_latency_ms(x_rps: np.ndarray, fit: UslFit) -> np.ndarray:
    """Mean latency (ms) the fit implies at per-instance throughput ``x_rps`` by Little's law,
    R = N / X on the rising branch; NaN beyond the peak throughput."""
    if fit.lam is None or fit.alpha is None or fit.beta is None:
        return np.full(np.shape(x_rps), np.nan)
    x = np.asarray(x_rps, dtype=float)
    n = _rising_n(x, fit.lam, fit.alpha, fit.beta) * fit.n_ref
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1000.0 * n / x


def _fit_once(u: np.ndarray, x: np.ndarray, w: np.ndarray, start: np.ndarray | None = None
              ) -> tuple[np.ndarray, float]:
    """Best (λ, α, β) and weighted RSS over a few starts (or from ``start`` only)."""
    def resid(p: np.ndarray) -> np.ndarray:  # relative: noise on throughput is multiplicative
        return w * (usl_throughput(u, *p) - x) / x

    lam0 = float(x[np.argmin(u)] / u[np.argmin(u)])
    best: tuple[np.ndarray, float] | None = None
    starts = ([np.clip(start, [0, 0, 0], [np.inf, 1, np.inf])] if start is not None else
              [np.array([lam0, a0, b0]) for a0 in (0.01, 0.1, 0.5) for b0 in (1e-5, 1e-3, 3e-2)])
    for first in starts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = least_squares(resid, first, bounds=([0.0, 0.0, 0.0], [np.inf, 1.0, np.inf]),
                                x_scale="jac", method="trf", max_nfev=400)
        cost = float(np.sum(res.fun ** 2))
        if best is None or cost < best[1]:
            best = (res.x, cost)
    assert best is not None
    return best[0], best[1]


def _line_rss(u: np.ndarray, x: np.ndarray, w: np.ndarray) -> float:
    """Weighted RSS (relative residuals, as the USL's) of the best straight line X = a + bN."""
    ww = w / x
    design = np.column_stack([np.ones_like(u), u]) * ww[:, None]
    coef, *_ = np.linalg.lstsq(design, x * ww, rcond=None)
    return float(np.sum((design @ coef - x * ww) ** 2))


def _aicc(rss: float, n: int, k: int) -> float:
    if n - k - 1 <= 0:
        return math.inf
    return n * math.log(max(rss, 1e-300) / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _peak(lam: float, alpha: float, beta: float) -> tuple[float, float] | tuple[None, None]:
    if beta <= 0 or alpha >= 1:
        return None, None
    n_star = math.sqrt((1 - alpha) / beta)
    return n_star, float(usl_throughput(n_star, lam, alpha, beta))


def _level_means(n: np.ndarray, x: np.ndarray, level: np.ndarray, keys: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nn = np.array([n[level == k].mean() for k in keys])
    xx = np.array([x[level == k].mean() for k in keys])
    cnt = np.array([(level == k).sum() for k in keys], dtype=float)
    return nn, xx, cnt


def fit_usl(concurrency: np.ndarray, throughput: np.ndarray, level: np.ndarray | None = None, *,
            n_boot: int = 200, seed: int = 0, min_levels: int = MIN_LEVELS) -> UslFit:
    """Fit the USL to observations (one per time bucket) of per-instance concurrency (requests in flight)
    and throughput (requests/s), grouped into load levels by ``level`` (labels; None: each distinct
    concurrency value is a level). Fits the level means; bootstrap resamples observations within levels.

    No verdict (``verdict`` False, ``reason`` says why) with fewer than ``min_levels`` levels, a 95 %
    interval of α or β reaching zero, or an AICc no better than a straight line's."""
    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    lab = np.asarray(level) if level is not None else n
    ok = np.isfinite(n) & np.isfinite(x) & (n > 0) & (x > 0)
    n, x, lab = n[ok], x[ok], lab[ok]
    keys = np.unique(lab)
    empty: dict[str, Any] = dict(lam=None, alpha=None, beta=None, lam_ci=None, alpha_ci=None, beta_ci=None, n_ref=1.0,
                 peak_concurrency=None, peak_concurrency_ci=None, peak_throughput_rps=None,
                 peak_throughput_ci=None, levels=len(keys), rss=None, rss_line=None, aicc=None, aicc_line=None,
                 r2=None, bootstrap=0, verdict=False)
    if len(keys) < 3:
        return UslFit(**empty, reason=f"only {len(keys)} distinct load level(s): nothing to fit")
    nn, xx, cnt = _level_means(n, x, lab, keys)
    n_ref = float(min(1.0, nn.min()))
    u = nn / n_ref
    w = np.sqrt(cnt)
    params, rss = _fit_once(u, xx, w)
    rss_line = _line_rss(u, xx, w)
    lam, alpha, beta = (float(v) for v in params)
    tss = float(np.sum(w * w * (xx - np.average(xx, weights=w * w)) ** 2))
    r2 = 1 - rss / tss if tss > 0 else None
    # bootstrap: resample observations within each level
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(lab == k) for k in keys]
    boot = []
    for _ in range(n_boot):
        bn = np.array([n[rng.choice(g, g.size)].mean() for g in groups])
        bx = np.array([x[rng.choice(g, g.size)].mean() for g in groups])
        p, _c = _fit_once(bn / n_ref, bx, w, start=params)
        boot.append(p)
    b = np.array(boot) if boot else np.empty((0, 3))

    def ci(values: np.ndarray) -> tuple[float, float] | None:
        values = values[np.isfinite(values)]
        if values.size < max(10, n_boot // 2):
            return None
        return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))

    n_star, x_star = _peak(lam, alpha, beta)
    peaks = np.array([_peak(*p) if _peak(*p)[0] is not None else (np.nan, np.nan) for p in b], dtype=float) \
        if b.size else np.empty((0, 2))
    band: tuple[dict[str, float], ...] = ()
    if b.size:
        grid = np.linspace(0, max(nn.max(), (n_star or 0) * n_ref if n_star and n_star * n_ref < 3 * nn.max()
                                   else nn.max()) * 1.25, 60)[1:]
        curves = np.array([usl_throughput(grid / n_ref, *p) for p in b])
        mid = usl_throughput(grid / n_ref, lam, alpha, beta)
        band = tuple({"concurrency": float(g), "low": float(lo), "mid": float(m), "high": float(hi)}
                     for g, lo, m, hi in zip(grid, np.quantile(curves, 0.025, axis=0), mid,
                                             np.quantile(curves, 0.975, axis=0), strict=True))
    alpha_ci, beta_ci = ci(b[:, 1]) if b.size else None, ci(b[:, 2]) if b.size else None
    aicc, aicc_line = _aicc(rss, len(keys), 3), _aicc(rss_line, len(keys), 2)
    reasons = []
    if len(keys) < min_levels:
        reasons.append(f"only {len(keys)} distinct load levels (at least {min_levels} are needed)")
    for name, est, interval in (("α (contention)", alpha, alpha_ci), ("β (coherency)", beta, beta_ci)):
        if interval is None or interval[0] <= ZERO_SHARE * max(est, interval[1]) or est <= 1e-12:
            reasons.append(f"the 95 % interval of {name} reaches zero"
                           + (f" ({fmt.num(interval[0])} to {fmt.num(interval[1])})" if interval else ""))
    if not aicc < aicc_line - AICC_BETTER:
        reasons.append(f"the fit is no better than a straight line (AICc {aicc:.1f} against {aicc_line:.1f})")
    peak_ci = ci(peaks[:, 0]) if peaks.size else None
    thr_ci = ci(peaks[:, 1]) if peaks.size else None
    return UslFit(
        lam=lam, alpha=alpha, beta=beta, lam_ci=ci(b[:, 0]) if b.size else None, alpha_ci=alpha_ci,
        beta_ci=beta_ci, n_ref=n_ref,
        peak_concurrency=n_star * n_ref if n_star is not None else None,
        peak_concurrency_ci=(peak_ci[0] * n_ref, peak_ci[1] * n_ref) if peak_ci else None,
        peak_throughput_rps=x_star, peak_throughput_ci=thr_ci, levels=len(keys), rss=rss, rss_line=rss_line,
        aicc=aicc if math.isfinite(aicc) else None, aicc_line=aicc_line if math.isfinite(aicc_line) else None,
        r2=r2, bootstrap=len(boot), verdict=not reasons,
        reason="; ".join(reasons) if reasons else "fit accepted: at least "
        f"{min_levels} load levels, α and β clear of zero, better than a straight line by AICc",
        band=band)


def find_knee(load: np.ndarray, latency: np.ndarray) -> float | None:
    """The load where latency turns up on a measured, increasing-load curve: Kneedle (``kneed``,
    convex increasing, sensitivity S = 1) on the points sorted by load; None when there is no knee."""
    from kneed import KneeLocator

    x = np.asarray(load, dtype=float)
    y = np.asarray(latency, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 4 or np.ptp(y) <= 0:
        return None
    order = np.argsort(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        knee = KneeLocator(x[order], y[order], S=1.0, curve="convex", direction="increasing").knee
    return float(knee) if knee is not None else None
