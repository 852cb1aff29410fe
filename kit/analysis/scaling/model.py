"""The typed results of the scaling analysis (frozen dataclasses; plain values, JSON via
``kit.results.to_jsonable``). Rates are requests per second (``_rps``), latencies milliseconds (``_ms``),
concurrency in requests in flight (Little's law), utilizations ratios in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LoadLevel:
    """One load level: the time buckets whose per-instance concurrency fell in [n_low, n_high)."""

    concurrency: float          # mean per-instance concurrency of its buckets (Little's law)
    throughput_rps: float       # mean per-instance throughput of its buckets
    p95_ms: float | None        # median over its buckets of the bucket's p95 latency
    mean_ms: float | None       # request-weighted mean latency
    buckets: int
    requests: int
    n_low: float
    n_high: float
    utilization: dict[str, float] = field(default_factory=dict)  # resource -> mean utilization


@dataclass(frozen=True)
class UslFit:
    """Universal Scalability Law X(N) = λN / (1 + α(N−1) + βN(N−1)), N in units of ``n_ref`` in-flight
    requests per instance, X in requests per second per instance. ``verdict`` False: the numbers are
    shown for information only, ``reason`` says why."""

    lam: float | None
    alpha: float | None
    beta: float | None
    lam_ci: tuple[float, float] | None
    alpha_ci: tuple[float, float] | None
    beta_ci: tuple[float, float] | None
    n_ref: float                               # concurrency unit N is counted in (1 unless levels are < 1)
    peak_concurrency: float | None             # N* = n_ref * sqrt((1 − α) / β), in requests in flight
    peak_concurrency_ci: tuple[float, float] | None
    peak_throughput_rps: float | None          # X(N*)
    peak_throughput_ci: tuple[float, float] | None
    levels: int
    rss: float | None                          # weighted sum of squared relative residuals, USL
    rss_line: float | None                     # same, straight line X = a + bN
    aicc: float | None
    aicc_line: float | None
    r2: float | None
    bootstrap: int
    verdict: bool
    reason: str
    band: tuple[dict[str, float], ...] = ()    # concurrency, low, mid, high (95 % bootstrap band)


@dataclass(frozen=True)
class Knee:
    """Where p95 latency turns up on the measured curve (Kneedle), cross-checked with the USL."""

    found: bool
    load_rps: float | None          # per-instance throughput at the knee
    concurrency: float | None
    p95_ms: float | None
    utilization: dict[str, float]   # resource -> utilization at the knee (interpolated between levels)
    usl_knee_rps: float | None      # knee of the USL-implied latency curve over the same range
    usl_peak_ratio: float | None    # knee load / USL peak throughput
    agreement: str
    method: str


@dataclass(frozen=True)
class ResourceLimit:
    """A resource's utilization against load: linear (Theil–Sen) in per-instance throughput over the
    load levels, and the growth of today's peak that brings it to its limit."""

    resource: str
    metric: str
    at_peak: float | None
    limit: float
    growth_to_limit: float | None
    slope_per_rps: float | None
    shared: bool                    # shared by several services (the database pool)


@dataclass(frozen=True)
class Headroom:
    """Today's peak against the limits: the growth factor each limit allows (1.5 = 50 % more traffic)."""

    instances: int
    instances_source: str
    peak_minute_rps: float            # busiest minute, whole service (origin requests)
    peak_minute_at: str | None
    p95_minute_rps: float             # 95th percentile of minute throughputs
    peak_rps: float                   # sustained peak: 99th percentile of bucket throughputs (growth starts here)
    peak_per_instance_rps: float
    slo_p95_ms: float
    slo_load_rps: float | None        # per-instance throughput where p95 reaches the SLO threshold
    slo_load_basis: str               # measured, extrapolated (latency model), or none
    growth_to_knee: float | None
    growth_to_usl_peak: float | None
    growth_to_slo: float | None
    growth: float | None              # the smallest of the three (from the sustained peak)
    limited_by: str
    resources: tuple[ResourceLimit, ...]
    first_to_saturate: str | None
    at_risk: bool                     # growth < 1.2 or the SLO is already broken at today's peak


@dataclass(frozen=True)
class Autoscaling:
    """A HorizontalPodAutoscaler-style target for one service, and the same as prose."""

    metric: str                     # cpu_utilization or requests_per_instance
    target_value: float             # ratio for utilization, requests/s for requests_per_instance
    target_unit: str
    requests_per_instance_rps: float | None
    safe_load_rps: float | None     # per-instance load the target keeps a margin under
    margin: float
    tolerance: float
    scale_up_stabilization_s: int
    scale_down_stabilization_s: int
    min_instances: int
    max_instances: int
    basis: str
    hpa: dict[str, Any]
    prose: str


@dataclass(frozen=True)
class Scenario:
    """Today's peak times ``factor``: the latency predicted at today's instance count, the instances
    needed to stay at the autoscaling target, and what breaks first."""

    factor: float
    load_rps: float                 # whole service
    per_instance_rps: float         # at today's instance count
    p95_ms: float | None            # predicted at today's instance count (None: beyond capacity)
    p95_ms_scaled: float | None     # predicted with instances_needed
    instances_needed: int
    breaks_first: str
    model: str


@dataclass(frozen=True)
class ServiceScaling:
    service: str
    levels: tuple[LoadLevel, ...]
    fit: UslFit
    knee: Knee
    headroom: Headroom
    autoscaling: Autoscaling
    scenarios: tuple[Scenario, ...]
    latency_model: str
    evidence: tuple[dict[str, Any], ...]   # high-load events (campaigns) and the buckets they gave
    caveats: tuple[str, ...]


@dataclass(frozen=True)
class ScalingAnalysis:
    window_start: str
    window_end: str
    bucket_s: int
    slo_p95_ms: float
    slo_source: str
    margin: float
    services: tuple[ServiceScaling, ...]
    method: str
    notes: tuple[str, ...]
    sql: dict[str, str]
