"""Optimization opportunities that notebook 50 quantifies today, and the areas it does not cover yet."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from kit.analysis.compression import CompressionOpportunity, compression_opportunity
from kit.analysis.window import Window

NOT_COVERED = (
    {"area": "CDN", "why": "per-POP and per-content-class hit ratios, TTL and cache-key advice are not analysed yet; "
                           "the caching plan's CDN layer is the current guidance."},
    {"area": "Database", "why": "ranking query fingerprints by total time, regressions and "
                                "index advice are not analysed yet."},
    {"area": "Code profiles", "why": "hot-path attribution of folded stacks is not analysed yet."},
    {"area": "Scaling", "why": "capacity headroom, the utilization where latency turns up and autoscaling "
                               "thresholds are not analysed yet."},
)


@dataclass(frozen=True)
class OptimizationResults:
    window: Window
    served_bytes_total: int                       # all bytes sent in the window
    compression: CompressionOpportunity
    not_covered: list[dict[str, str]] = field(default_factory=lambda: [dict(a) for a in NOT_COVERED])


def optimization_opportunities(con: duckdb.DuckDBPyConnection, window: Window) -> OptimizationResults:
    """Quantify what can be quantified today (compression) against the bytes served in the window."""
    row = con.execute("SELECT coalesce(sum(bytes_sent), 0) FROM requests WHERE ts >= ? AND ts < ?",
                      [window.start, window.end]).fetchone()
    return OptimizationResults(window, int(row[0]) if row else 0, compression_opportunity(con, window))
