"""The latency distribution: counts per log-spaced latency bin, overall or per service, and per time
bucket (the heatmap)."""

from __future__ import annotations

from kit.analysis.kpis.model import HeatCell, HistogramBin
from kit.analysis.kpis.sql import bucket_sql, scope_sql
from kit.analysis.window import Window
from kit.engine import Queryable, as_engine

__all__ = ["HIST_BINS_PER_DECADE", "HIST_MAX_EXP", "HIST_MIN_EXP", "latency_heatmap", "latency_histogram"]

# Latency histogram: 10 log-spaced bins per decade from 0.1 ms to 100 s (outside values clamp to the ends).
HIST_BINS_PER_DECADE = 10
HIST_MIN_EXP, HIST_MAX_EXP = -1, 5


def _hist_bin_sql() -> str:
    lo, hi = HIST_MIN_EXP * HIST_BINS_PER_DECADE, HIST_MAX_EXP * HIST_BINS_PER_DECADE - 1
    return (f"least(greatest(floor({HIST_BINS_PER_DECADE} * log10(greatest(latency_ms, 1e-9)))::INTEGER, "
            f"{lo}), {hi})")


def _bin_edges(k: int) -> tuple[float, float]:
    return 10 ** (k / HIST_BINS_PER_DECADE), 10 ** ((k + 1) / HIST_BINS_PER_DECADE)


def latency_histogram(con: Queryable, window: Window, by: str | None = None, *,
                      services: list[str] | tuple[str, ...] | None = None) -> tuple[HistogramBin, ...]:
    """Counts of requests per log-spaced latency bin (10 per decade, 0.1 ms … 100 s), overall or per service."""
    group = by or "'all'"
    sql = f"""SELECT {group} AS grp, {_hist_bin_sql()} AS k, count(*) FROM requests
        WHERE {scope_sql(window, services)} AND latency_ms IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"""
    return tuple(HistogramBin(str(g), *_rounded_edges(k), int(n)) for g, k, n in as_engine(con).rows(sql))


def _rounded_edges(k: int) -> tuple[float, float]:
    lo, hi = _bin_edges(k)
    return float(f"{lo:.6g}"), float(f"{hi:.6g}")


def latency_heatmap(con: Queryable, window: Window, bucket_s: int, *,
                    services: list[str] | tuple[str, ...] | None = None) -> tuple[HeatCell, ...]:
    """Non-empty (time bucket × latency bin) counts, same bins as the histogram."""
    index_sql, start_sql = bucket_sql(bucket_s)
    sql = f"""SELECT {start_sql}, k, n FROM (
            SELECT {index_sql} AS b, {_hist_bin_sql()} AS k, count(*) AS n
            FROM requests WHERE {scope_sql(window, services)} AND latency_ms IS NOT NULL GROUP BY 1, 2)
        ORDER BY 1, 2"""
    return tuple(HeatCell(b, *_rounded_edges(k), int(n)) for b, k, n in as_engine(con).rows(sql))
