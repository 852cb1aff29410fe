"""Optimization opportunities ranked by estimated impact over effort, and the areas not covered yet.

Notebook 50 quantifies resource compression itself and ranks it together with what notebooks 30
(the routes that consume the most request time) and 40 (the CDN cache the simulation recommends) found;
the ranking it saves (``results/optimizations.json``) is the one the optimization strategy prints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

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

EFFORT_WEIGHT = {"low": 1.0, "medium": 2.0, "high": 4.0}  # score = impact share / effort weight
TOP_ROUTES = 3  # the routes with the most request time that become code opportunities


@dataclass(frozen=True)
class RouteCost:
    """Evidence of a code opportunity: a route's requests, its share of all request time, its latency (ms)."""

    service: str
    route: str
    requests: int
    time_share: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class CompressionSaving:
    """Evidence of the compression opportunity: static asset bytes served in the window, what gzip -6
    and zstd -19 would have saved, all bytes served, and the content types that save the most."""

    served_bytes: int
    saved_gzip_bytes: int
    saved_zstd_bytes: int
    all_bytes: int
    top_types: list[str]


@dataclass(frozen=True)
class CacheGain:
    """Evidence of the caching opportunity: the CDN byte hit ratio measured today and the one the
    simulation expects at the recommended capacity."""

    byte_hit_ratio_now: float
    byte_hit_ratio_expected: float
    origin_traffic_cut: float  # share of today's origin bytes the cache would no longer fetch


@dataclass(frozen=True)
class Opportunity:
    """One optimization. ``impact_share`` is the share of the relevant total (request time, bytes served,
    or byte hit ratio points) it addresses, an upper bound; ``score`` = impact_share / effort weight;
    ``title`` is plain text; ``evidence`` holds the numbers behind it (by ``area``: code → RouteCost,
    compression → CompressionSaving, caching → CacheGain)."""

    area: str
    title: str
    impact_share: float
    effort: str
    score: float
    evidence: RouteCost | CompressionSaving | CacheGain


def _opportunity(area: str, title: str, impact_share: float, effort: str,
                 evidence: RouteCost | CompressionSaving | CacheGain) -> Opportunity:
    return Opportunity(area, title, impact_share, effort, impact_share / EFFORT_WEIGHT[effort], evidence)


def bottleneck_opportunities(bottlenecks: Mapping[str, Any] | None, top: int = TOP_ROUTES) -> list[Opportunity]:
    """The routes that consume the most request time (the ``bottlenecks`` result of notebook 30)."""
    found = []
    for row in (bottlenecks or {}).get("top", [])[:top]:
        cost = RouteCost(str(row["service"]), str(row["route"]), int(row["requests"]), float(row["time_share"]),
                         float(row["p50_ms"]), float(row["p95_ms"]), float(row["p99_ms"]))
        found.append(_opportunity("code", f"Cut the latency of {cost.service} {cost.route}", cost.time_share,
                                  "medium", cost))
    return found


def compression_opportunities(compression: Mapping[str, Any], served_bytes_total: int | None) -> list[Opportunity]:
    """Static text assets served uncompressed (a ``CompressionOpportunity`` as saved JSON)."""
    saved = int(compression.get("saved_gzip_bytes") or 0)
    if saved <= 0:
        return []
    base = served_bytes_total or compression.get("served_bytes") or 1
    types = [str(r["content_type"]) for r in compression.get("by_type", [])[:3] if r.get("saved_gzip_bytes", 0) > 0]
    saving = CompressionSaving(int(compression["served_bytes"]), saved, int(compression["saved_zstd_bytes"]),
                               int(base), types)
    return [_opportunity("compression", "Serve text assets compressed (gzip now, zstd/brotli where clients "
                                        "accept it)", saved / base, "low", saving)]


def cache_opportunity(cache: Mapping[str, Any] | None) -> list[Opportunity]:
    """The CDN cache notebook 40 recommends (its ``cache`` result): the byte hit ratio it expects over
    the one measured today, when it is higher."""
    after = ((cache or {}).get("sizing") or {}).get("recommended_byte_hit_ratio")
    before = ((cache or {}).get("observed") or {}).get("byte_hit_ratio")
    if after is None or before is None or after <= before:
        return []
    gain = float(after) - float(before)
    return [_opportunity("caching", "Implement the caching plan (Caching_Implementation_Plan.json)", gain, "medium",
                         CacheGain(float(before), float(after), gain / (1 - float(before))))]


def rank_opportunities(*found: list[Opportunity]) -> list[Opportunity]:
    """All opportunities, best score first (ties by title)."""
    return sorted((o for group in found for o in group), key=lambda o: (-o.score, o.title))


@dataclass(frozen=True)
class OptimizationResults:
    window: Window
    served_bytes_total: int                       # all bytes sent in the window
    compression: CompressionOpportunity
    ranking: list[Opportunity] = field(default_factory=list)
    not_covered: list[dict[str, str]] = field(default_factory=lambda: [dict(a) for a in NOT_COVERED])


def optimization_opportunities(con: duckdb.DuckDBPyConnection, window: Window,
                               bottlenecks: Mapping[str, Any] | None = None,
                               cache: Mapping[str, Any] | None = None) -> OptimizationResults:
    """Quantify what can be quantified today (compression) against the bytes served in the window, and
    rank it with the route costs of ``bottlenecks`` (notebook 30's result) and the CDN cache of ``cache``
    (notebook 40's result), either of which may be missing."""
    from kit.results import to_jsonable

    row = con.execute("SELECT coalesce(sum(bytes_sent), 0) FROM requests WHERE ts >= ? AND ts < ?",
                      [window.start, window.end]).fetchone()
    found = OptimizationResults(window, int(row[0]) if row else 0, compression_opportunity(con, window))
    ranking = rank_opportunities(bottleneck_opportunities(bottlenecks),
                                 compression_opportunities(to_jsonable(found.compression), found.served_bytes_total),
                                 cache_opportunity(cache))
    return replace(found, ranking=ranking)
