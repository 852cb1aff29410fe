"""Scaling specifications: a capacity model per service, its headroom and autoscaling targets, from the
request history (``analyse_scaling``).

Method
------
- **Load and concurrency.** Per service, buckets (``bucket``, default the run's) of *origin* requests
  (CDN hits excluded): throughput X (requests/s) and concurrency N by Little's law, N = X × mean latency
  (the request-seconds per second), both divided by the instance count (the latest deploy event's
  ``details.instances``, else distinct hosts, else a parameter). Next to them: CPU utilization per
  instance (the USE catalog's CPU metric with a ``service``/``job`` label; counters as CPU s/s over
  ``cpu_cores``) and the database pool's active / max connections (``kit.analysis.slo.saturation``).
- **Load levels.** Buckets are binned by per-instance concurrency (log bins when it spans more than 4×)
  into up to 12 levels of at least 3 buckets (buckets under 20 requests are not used).
- **USL** (Gunther): X(N) = λN / (1 + α(N−1) + βN(N−1)) by bounded nonlinear least squares on the level
  means (α in [0, 1], β ≥ 0), 95 % percentile-bootstrap intervals (buckets resampled within levels), peak
  N* = √((1−α)/β) and X(N*). No verdict, with the reason, when there are fewer than 6 levels, when the
  interval of α or β reaches zero, or when the fit's AICc is not lower than a straight line's.
- **Knee**: Kneedle (``kneed``) on the levels' median p95 against per-instance throughput; cross-checked
  against the knee of the latency the USL implies (R = N / X(N)).
- **Latency model** for predictions: the USL's (p95 = R × the p95/mean ratio of the top levels) when it
  has a verdict; else an M/M/1-style queue R = S / (1 − X/μ) fitted by Theil–Sen on 1/R against X
  (justified for a single saturating resource with random service times); else none.
- **Headroom**: today's busiest minute (and the p95 of minutes) against the knee, the USL peak and the
  load where p95 reaches the latency SLO threshold (measured, else extrapolated by the model); resources
  extrapolated linearly (Theil–Sen over the levels) to 100 % to find the first to saturate.
- **Autoscaling**: a target a ``margin`` (20 %) under the safe per-instance load (the smallest of knee,
  SLO load and 80 % of the USL peak; else the highest level inside the SLO), as CPU utilization when CPU
  rises with load, else requests per instance; HPA (autoscaling/v2) with tolerance 0.1, scale-up and
  scale-down stabilization windows; minimum instances for today's busiest minute (never below 2).
- **Scenarios** 1.5×, 2×, 3× today's peak: p95 predicted at today's instance count and at the instances
  needed, and the first limit crossed.

Limits
------
Logs hold offered load, not a load test: levels are the loads that happened, concurrency is inferred
(Little's law holds for averages over a bucket, not for bursts inside it), and beyond the highest level
everything is extrapolation. Mixed traffic: a route mix that changes with load (a campaign on one page)
changes per-request cost. Instances are assumed equal and evenly loaded; a change of instance count
inside the window is not modelled (the latest deploy's count is used). Utilization is linear in load by
assumption. The USL describes one service in isolation; shared resources (the database) are extrapolated
assuming all services grow by the same factor.
"""

from __future__ import annotations

from kit.analysis.scaling.analysis import (
    GROWTH_FACTORS,
    ScalingOptions,
    analyse_scaling,
    load_levels,
    load_series,
    peak_minutes,
)
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
from kit.analysis.scaling.usl import MIN_LEVELS, find_knee, fit_usl, usl_latency_ms, usl_throughput

__all__ = [
    "GROWTH_FACTORS", "MIN_LEVELS", "Autoscaling", "Headroom", "Knee", "LoadLevel", "ResourceLimit",
    "ScalingAnalysis", "ScalingOptions", "Scenario", "ServiceScaling", "UslFit", "analyse_scaling", "find_knee",
    "fit_usl", "load_levels", "load_series", "peak_minutes", "save_scaling", "usl_latency_ms", "usl_throughput",
]


def save_scaling(results_dir: str, analysis: ScalingAnalysis) -> None:
    """Save the analysis as ``<results_dir>/scaling.json`` (nothing when ``results_dir`` is empty)."""
    if results_dir:
        from kit.results import save_result

        save_result(results_dir, "scaling", analysis)
