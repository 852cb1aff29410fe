"""Which quantile function a KPI query uses, and the log-histogram quantiles used above
``EXACT_MAX_ROWS`` requests (DDSketch-style, within ``HIST_RELATIVE_ERROR`` of the exact value)."""

from __future__ import annotations

import math

from kit.analysis.kpis.sql import sql_float
from kit.engine import Queryable, as_engine

__all__ = ["EXACT_MAX_ROWS", "HIST_GAMMA", "HIST_MIN_MS", "HIST_RELATIVE_ERROR", "LOG_HISTOGRAM", "QUANTILES",
           "QUANTILE_NAMES", "histogram_quantiles", "quantile_function", "series_quantile_function"]

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99, 0.999)
QUANTILE_NAMES: tuple[str, ...] = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms")
EXACT_MAX_ROWS = 20_000_000
# Above EXACT_MAX_ROWS the whole-window percentiles come from a log-spaced histogram (DDSketch-style):
# bucket k = floor(ln(x) / ln(HIST_GAMMA)) holds [GAMMA^k, GAMMA^(k+1)) and stands for 2 GAMMA^(k+1) /
# (GAMMA + 1), which is within HIST_RELATIVE_ERROR of every value of the bucket. The estimate interpolates
# between the representatives of the two ranks quantile_cont would interpolate between, so it is within
# HIST_RELATIVE_ERROR (0.4975 %) of the exact quantile_cont value. Latencies below HIST_MIN_MS count as
# HIST_MIN_MS / 2 (absolute error below 0.5 µs).
LOG_HISTOGRAM = "log_histogram"
HIST_GAMMA = 1.01
HIST_RELATIVE_ERROR = (HIST_GAMMA - 1) / (HIST_GAMMA + 1)
HIST_MIN_MS = 0.001


def quantile_function(rows: int, exact_max_rows: int = EXACT_MAX_ROWS) -> str:
    """``quantile_cont`` (exact) up to ``exact_max_rows`` rows, ``log_histogram`` (relative error at most
    ``HIST_RELATIVE_ERROR``, see ``histogram_quantiles``) above."""
    return "quantile_cont" if rows <= exact_max_rows else LOG_HISTOGRAM


def histogram_quantiles(con: Queryable, where_sql: str, group_sql: str = "'all'",
                        quantiles: tuple[float, ...] = QUANTILES) -> dict[tuple, list[float]]:
    """Latency quantiles (ms) per group of ``group_sql`` (a comma-separated list of expressions) over
    ``requests WHERE where_sql``, from a log-spaced histogram: within ``HIST_RELATIVE_ERROR`` of
    ``quantile_cont`` (linear interpolation at rank q (n - 1)). A plain GROUP BY with few groups, so it is
    fast and spills to disk under a memory limit, unlike the holistic quantile aggregates.

    Returns {group key tuple: [one value per quantile]}."""
    ln_gamma = sql_float(math.log(HIST_GAMMA))
    n_keys = len(_split_top_level(group_sql))
    keys = ", ".join(f"g{i}" for i in range(n_keys))
    qs = ", ".join(f"({i}, {sql_float(q)})" for i, q in enumerate(quantiles))
    rep = (f"CASE WHEN {{k}} IS NULL THEN NULL WHEN {{k}} = -2147483648 THEN {sql_float(HIST_MIN_MS / 2)} "
           f"ELSE 2 * pow({sql_float(HIST_GAMMA)}, {{k}} + 1) / {sql_float(HIST_GAMMA + 1)} END")
    sql = f"""
        WITH h AS (
            SELECT {", ".join(f"{g} AS g{i}" for i, g in enumerate(_split_top_level(group_sql)))},
                   CASE WHEN latency_ms < {sql_float(HIST_MIN_MS)} THEN -2147483648
                        ELSE floor(ln(latency_ms) / {ln_gamma})::INTEGER END AS k, count(*) AS c
            FROM requests WHERE ({where_sql}) AND latency_ms IS NOT NULL GROUP BY ALL),
        cum AS (
            SELECT {keys}, k, sum(c) OVER (PARTITION BY {keys} ORDER BY k ROWS UNBOUNDED PRECEDING) AS upto,
                   sum(c) OVER (PARTITION BY {keys}) AS n
            FROM h),
        ranks AS (
            SELECT {keys}, i, min(k) FILTER (WHERE upto > floor(q * (n - 1))) AS k_lo,
                   min(k) FILTER (WHERE upto > ceil(q * (n - 1))) AS k_hi,
                   any_value(q * (n - 1) - floor(q * (n - 1))) AS frac
            FROM cum, (VALUES {qs}) AS qs(i, q) GROUP BY ALL)
        SELECT {keys}, i, {rep.format(k="k_lo")} + frac * ({rep.format(k="k_hi")} - {rep.format(k="k_lo")}) AS v
        FROM ranks"""
    found: dict[tuple, list[float]] = {}
    for row in as_engine(con).rows(sql):  # one row per group and quantile: a few dozen
        found.setdefault(tuple(row[:-2]), [math.nan] * len(quantiles))[int(row[-2])] = row[-1]
    return found


def _split_top_level(sql: str) -> list[str]:
    """Split a comma-separated list of SQL expressions at top-level commas."""
    parts, depth, current = [], 0, ""
    for char in sql:
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += (char == "(") - (char == ")")
        current += char
    return [*parts, current.strip()]


def series_quantile_function(qfunc: str) -> str:
    """The quantile function of the per-bucket series when the whole-window tables use ``qfunc``: the
    series stay exact (``quantile_cont`` in time slices), the histogram path is for whole-window tables only."""
    return "quantile_cont" if qfunc == LOG_HISTOGRAM else qfunc
