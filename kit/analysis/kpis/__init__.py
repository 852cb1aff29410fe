"""Key performance indicators over the warehouse, computed in DuckDB SQL.

The queries over ``requests`` run on the engine passed where a connection was (``kit.engine``: DuckDB,
or Spark over a Parquet warehouse, the same SQL text transpiled; ``kpi_report(con, engine=...)``).

RED (rate, errors, duration) per service and per route, by time bucket and over the window; Apdex(T);
availability; peak and sustained throughput; latency histogram and heatmap; USE (utilization,
saturation, errors) of resources from ``metrics``; the instrumentation gaps; and a period-over-period
comparison. Every headline KPI carries its definition as SQL and, for the recommended Prometheus
instrumentation, as PromQL.

Percentiles: exact by default with ``quantile_cont`` (linear interpolation between the two closest
ranks, the same as ``numpy.percentile``'s default ``linear`` method). When the window holds more than
``exact_max_rows`` requests, the whole-window percentiles come from a log-spaced latency histogram
(``histogram_quantiles``: 1 % buckets, DDSketch-style) instead: each estimate is within
``HIST_RELATIVE_ERROR`` = 0.4975 % of the exact ``quantile_cont`` value (tested against numpy), and the
histogram is a plain GROUP BY that spills under a memory limit. DuckDB's ``approx_quantile`` (t-digest),
used here before, only bounds the *rank* error: across a gap in a bimodal tail its *value* can be far
off. The report states which method was used.
That switch applies to the whole-window tables (a few
groups holding every value); the per-bucket series stay exact at any size: they are computed in
bucket-aligned time slices of at most ``SERIES_SLICE_ROWS`` requests (``red_series_frame``,
``latency_series_frame``), so ``quantile_cont`` never holds more than one slice's values (we measured
``approx_quantile`` over 1.3M route-minutes at 50M rows: 41 s and 8.9 GB, against about 3 s and
0.9 GB exact in slices; DuckDB's holistic aggregates do not spill, so the slices are also what keeps
100M rows within a 2 GB ``memory_limit``).

Speed (benchmarks/bench_kpis.py): grouping by ``epoch_us`` integer buckets instead of ``time_bucket`` on
TIMESTAMPTZ (time-zone aware) made the per-route, per-minute query ~1.5x faster at 50M rows; slicing
helps most when the requests table is stored in time order, as ingestion from logs leaves it (each
slice then reads only its own row groups); in random order every slice scans the whole table.

Saved JSON (``kit.results.save_result(results_dir, "kpis", report, compact=True)``, the one save path of
every notebook): the long per-bucket lists ``KpiReport.json_columns`` are stored column-wise with floats
rounded to 4 significant digits, series over long windows use coarser buckets (``series_step_s``: at most
1000 points overall, 400 per service, 200 per route and heatmap columns), and the file is written without
indentation: ~0.8 MB for the 7-day, 1M-request demo (was 8.7 MB).

Definitions used everywhere:
- error rate 5xx = requests with status >= 500 / all requests; 4xx are reported apart (client errors);
- availability = 1 - error rate 5xx (request based);
- Apdex(T) = (satisfied + tolerating / 2) / total, satisfied = latency <= T, tolerating =
  T < latency <= 4T; a 5xx response counts as frustrated whatever its latency;
- peak throughput = the busiest 1-minute rate; sustained throughput = p95 of the 1-minute rates over
  every minute of the window (empty minutes count as 0).

Modules, one concept each (every public name is exported here too):
``model`` the result dataclasses; ``sql`` shared SQL building blocks; ``quantiles`` the quantile function
and the log-histogram quantiles; ``red`` RED tables, series and throughput; ``histogram`` the latency
histogram and heatmap; ``headline`` the headline KPIs with SQL and PromQL definitions; ``use`` the USE
catalog and signals from metrics; ``gaps`` the instrumentation gaps of the requests; ``compare`` period
over period; ``report`` ``kpi_report``, which ties them together.
"""

from __future__ import annotations

from kit.analysis.kpis.compare import compare_headline, compare_periods
from kit.analysis.kpis.gaps import REQUEST_FIELDS, instrumentation_gaps
from kit.analysis.kpis.headline import headline, status_label
from kit.analysis.kpis.histogram import (
    HIST_BINS_PER_DECADE,
    HIST_MAX_EXP,
    HIST_MIN_EXP,
    latency_heatmap,
    latency_histogram,
)
from kit.analysis.kpis.model import (
    Comparison,
    ComparisonRow,
    Definition,
    Gap,
    HeatCell,
    HistogramBin,
    Kpi,
    KpiReport,
    MetricInfo,
    RedRow,
    SaturationPoint,
    SeriesPoint,
    Throughput,
    UseSignal,
)
from kit.analysis.kpis.quantiles import (
    EXACT_MAX_ROWS,
    HIST_GAMMA,
    HIST_MIN_MS,
    HIST_RELATIVE_ERROR,
    LOG_HISTOGRAM,
    QUANTILE_NAMES,
    QUANTILES,
    histogram_quantiles,
    quantile_function,
    series_quantile_function,
)
from kit.analysis.kpis.red import (
    HEATMAP_MAX_COLUMNS,
    SERIES_MAX_POINTS,
    SERIES_SLICE_ROWS,
    SERIES_STEPS_S,
    SERVICE_SERIES_MAX_POINTS,
    latency_series_frame,
    red_series,
    red_series_frame,
    red_table,
    series_step_s,
    throughput,
)
from kit.analysis.kpis.report import LATENCY_KPIS, kpi_report
from kit.analysis.kpis.sql import MIN_RATE_SECONDS, rate_seconds
from kit.analysis.kpis.use import USE_CATALOG, metric_inventory, use_signals

__all__ = [
    # model
    "Comparison", "ComparisonRow", "Definition", "Gap", "HeatCell", "HistogramBin", "Kpi", "KpiReport", "MetricInfo",
    "RedRow", "SaturationPoint", "SeriesPoint", "Throughput", "UseSignal",
    # the report and its parts
    "kpi_report", "LATENCY_KPIS", "headline", "status_label", "compare_periods", "compare_headline",
    "red_table", "red_series", "red_series_frame", "latency_series_frame", "series_step_s", "throughput",
    "latency_histogram", "latency_heatmap", "metric_inventory", "use_signals", "USE_CATALOG",
    "instrumentation_gaps", "REQUEST_FIELDS", "rate_seconds", "MIN_RATE_SECONDS",
    # quantiles
    "quantile_function", "series_quantile_function", "histogram_quantiles", "QUANTILES", "QUANTILE_NAMES",
    "EXACT_MAX_ROWS", "LOG_HISTOGRAM", "HIST_GAMMA", "HIST_MIN_MS", "HIST_RELATIVE_ERROR",
    # resolution of the series and the histogram
    "SERIES_MAX_POINTS", "SERVICE_SERIES_MAX_POINTS", "HEATMAP_MAX_COLUMNS", "SERIES_STEPS_S", "SERIES_SLICE_ROWS",
    "HIST_BINS_PER_DECADE", "HIST_MIN_EXP", "HIST_MAX_EXP",
]
