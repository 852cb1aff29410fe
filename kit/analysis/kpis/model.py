"""The KPI results: frozen dataclasses that ``kpi_report`` and its parts return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

__all__ = ["Comparison", "ComparisonRow", "Definition", "Gap", "HeatCell", "HistogramBin", "Kpi", "KpiReport",
           "MetricInfo", "RedRow", "SaturationPoint", "SeriesPoint", "Throughput", "UseSignal"]


@dataclass(frozen=True)
class Definition:
    """How a KPI is computed: DuckDB SQL over the warehouse, and PromQL over the recommended metrics."""

    sql: str
    promql: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Kpi:
    """One headline KPI over the window, with the previous window's value when there is one."""

    name: str
    unit: str
    value: float | None
    description: str
    better: str  # "lower" or "higher"
    definition: Definition
    previous: float | None = None
    change_pct: float | None = None


@dataclass(frozen=True)
class RedRow:
    """RED and Apdex for one group (a service, a route, or everything) over the window."""

    group: str
    service: str | None
    requests: int
    rate_rps: float
    errors_5xx: int
    error_rate_5xx: float
    errors_4xx: int
    error_rate_4xx: float
    availability: float
    apdex: float | None
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    bytes_sent: int | None


@dataclass(frozen=True)
class SeriesPoint:
    """RED for one group in one time bucket (rate over the bucket's length)."""

    bucket_start: datetime
    group: str
    requests: int
    rate_rps: float
    errors_5xx: int
    error_rate_5xx: float
    errors_4xx: int
    apdex: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class HistogramBin:
    """Requests of a group whose latency falls in [lo_ms, hi_ms)."""

    group: str
    lo_ms: float
    hi_ms: float
    count: int


@dataclass(frozen=True)
class HeatCell:
    """Requests in one time bucket and one latency bin (only non-empty cells are listed)."""

    bucket_start: datetime
    lo_ms: float
    hi_ms: float
    count: int


@dataclass(frozen=True)
class Throughput:
    """Peak and sustained request rates from 1-minute counts over every minute of the window."""

    mean_rps: float
    median_rps_1m: float
    sustained_rps_p95_1m: float
    peak_rps_1m: float
    peak_minute: datetime | None
    minutes: int


@dataclass(frozen=True)
class UseSignal:
    """One USE signal found in ``metrics``: summary of its per-bucket mean across series."""

    resource: str
    kind: str  # utilization, saturation or errors
    metric: str
    unit: str
    series: int
    samples: int
    mean: float | None
    p95: float | None
    max: float | None
    latency_corr: float | None  # Pearson correlation of the bucket mean with the bucket's p95 latency
    definition: Definition


@dataclass(frozen=True)
class Gap:
    """A signal the warehouse lacks: what is missing and what to collect instead."""

    resource: str
    kind: str
    what: str
    collect: str
    metric: str | None = None  # the recommended metric name, when there is one


@dataclass(frozen=True)
class SaturationPoint:
    """One time bucket: a resource signal's mean next to the overall latency."""

    bucket_start: datetime
    metric: str
    value: float | None
    p95_ms: float | None
    requests: int


@dataclass(frozen=True)
class ComparisonRow:
    name: str
    unit: str
    current: float | None
    previous: float | None
    change_pct: float | None
    better: str
    verdict: str  # better, worse, same, n/a


@dataclass(frozen=True)
class Comparison:
    """This window against the one before it (same length)."""

    basis: str
    current_start: datetime
    current_end: datetime
    previous_start: datetime
    previous_end: datetime
    previous_requests: int
    rows: tuple[ComparisonRow, ...]


@dataclass(frozen=True)
class KpiReport:
    """Everything notebook 10 shows; saved as ``results/kpis.json``."""

    # long per-bucket lists saved column-wise, with rounded floats (see ``kit.results.to_jsonable``)
    json_columns: ClassVar[tuple[str, ...]] = ("series_overall", "series_by_service", "series_by_route",
                                               "histogram", "heatmap", "saturation_latency")

    window_start: datetime
    window_end: datetime
    window_seconds: float
    services: tuple[str, ...]
    bucket: str
    bucket_seconds: int
    apdex_t_ms: float
    requests: int
    quantile_method: str
    kpis: tuple[Kpi, ...]
    overall: RedRow
    by_service: tuple[RedRow, ...]
    by_route: tuple[RedRow, ...]
    series_overall: tuple[SeriesPoint, ...]
    series_by_service: tuple[SeriesPoint, ...]
    series_by_route: tuple[SeriesPoint, ...]
    top_routes: tuple[str, ...]
    throughput: Throughput
    histogram: tuple[HistogramBin, ...]
    heatmap_bucket_seconds: int
    heatmap: tuple[HeatCell, ...]
    route_series_bucket_seconds: int
    use: tuple[UseSignal, ...]
    metrics: tuple[MetricInfo, ...]
    status_label: str  # label of the HTTP status on http_requests_total (PromQL definitions use it)
    saturation_latency: tuple[SaturationPoint, ...]
    gaps: tuple[Gap, ...]
    comparison: Comparison
    series_bucket_seconds: int  # bucket of series_overall (the requested one unless the window is long)
    service_series_bucket_seconds: int  # bucket of series_by_service and saturation_latency
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class MetricInfo:
    """One metric name present in ``metrics`` over the window."""

    name: str
    type: str  # counter (``*_total``), histogram part, or gauge: guessed from the name
    unit: str
    labels: tuple[str, ...]
    series: int
    samples: int
    interval_s: float | None  # median time between two samples of one series
