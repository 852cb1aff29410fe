"""Optimization opportunities ranked by estimated impact over effort, and the areas not covered yet.

Notebook 50 quantifies resource compression itself and ranks it together with what notebooks 30
(the bottleneck findings with a named cause: undo or fix that cause) and 40 (the CDN cache the simulation
recommends) found; the ranking it saves (``results/optimizations.json``) is the one the optimization
strategy prints. A route alone is not an opportunity (issue #12): a route appears only with what in it
costs the time, a finding and its cause."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import duckdb

from kit import fmt
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

# What to do about a finding, by the kind of its top cause: area, verb, effort, risk.
FIX_BY_CAUSE = {
    "deploy": ("release", "Fix or roll back", "low",
               "low: a rollback also takes out the release's other changes; a forward fix needs the route's "
               "profile before and after"),
    "config": ("configuration", "Fix or revert", "low",
               "low: the change may have been made for a reason; agree the revert with its owner"),
    "query": ("database", "Index or rewrite the query", "medium",
              "medium: an index costs write time and disk; build it concurrently and check the plan with EXPLAIN"),
    "metric": ("capacity", "Relieve", "medium",
               "medium: more capacity moves the limit, not what fills it; look for the load behind it first"),
    "profile": ("code", "Optimise the hot code path", "medium",
                "medium: a change on a hot path; compare the profile and p95 before and after"),
}
OTHER_CAUSE = ("operations", "Address", "medium", "medium: the cause is not a change perfkit knows how to undo")
SCOPE_ORDER = ("service", "route", "status", "resource")  # how a finding's scope reads
TITLE_CAUSE_CHARS = 100  # a longer cause (a query's text) is cut in the title; the evidence has it whole
# The KPI that shows a finding's kind (Performance_Monitoring_Strategy.md, section 1).
KPI_BY_KIND = {"latency_shift": "latency_p95_ms", "variance_change": "latency_p99_ms", "error_burst": "error_rate_5xx",
               "throughput_change": "request_rate_rps", "cache_hit_drop": "CDN cache hit ratio",
               "saturation": "latency_p95_ms and the saturated resource", "slow_query_regression": "latency_p95_ms"}


@dataclass(frozen=True)
class FindingFix:
    """Evidence of a fix: bottleneck finding ``finding`` (its index in ``findings.items`` of
    results/bottlenecks.json), what moved where and when, by how much (``effect`` with its 95 % interval,
    in ``effect_unit``), its ``cost_share`` of ``cost_basis``, the top cause, the ``window`` the finding
    was found in (for ``perfkit findings``), the SQL names that reproduce its numbers, the KPI to watch and
    the risk of the fix."""

    finding: int
    kind: str
    scope: list[tuple[str, str]]
    metric: str
    onset: datetime | str
    end: datetime | str | None
    before: float | None
    after: float | None
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    effect_unit: str
    confidence: str
    cost_share: float
    cost_basis: str
    cause_kind: str
    cause_ref: str
    cause_detail: str
    cause_strength: float
    window_start: str | None
    window_end: str | None
    sql: list[str]
    kpi: str
    risk: str


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
    or byte hit ratio points; for a fix, the finding's cost share of request time, of 5xx responses or
    of requests) it addresses, an upper bound; ``score`` = impact_share / effort weight; ``title`` is
    plain text; ``evidence`` holds the numbers behind it (compression → CompressionSaving, caching →
    CacheGain, the fix of a finding (areas of ``FIX_BY_CAUSE``) → FindingFix)."""

    area: str
    title: str
    impact_share: float
    effort: str
    score: float
    evidence: FindingFix | CompressionSaving | CacheGain


def _opportunity(area: str, title: str, impact_share: float, effort: str,
                 evidence: FindingFix | CompressionSaving | CacheGain) -> Opportunity:
    return Opportunity(area, title, impact_share, effort, impact_share / EFFORT_WEIGHT[effort], evidence)


def scope_pairs(scope: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A finding's scope as (key, value) pairs in reading order: service, route, status, resource, others."""
    rank = {key: i for i, key in enumerate(SCOPE_ORDER)}
    return sorted(((str(k), str(v)) for k, v in scope.items()), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def change_text(kind: str, metric: str, effect: float | None, effect_unit: str) -> str:
    """What moved and by how much, plain text: "latency +110 ms", "5xx share +26.1 points",
    "cache hit ratio -84.7 points", "traffic ×0.62"."""
    name = "latency" if metric.startswith("latency") else metric
    if effect is None:
        return f"{name} changed"
    if effect_unit == "ms":
        return f"{name} {'+' if effect >= 0 else '-'}{fmt.ms(abs(effect), 0)}"
    if effect_unit == "share":
        return f"{name} {effect * 100:+.1f} points"
    return f"{name} ×{fmt.num(effect)}"


def finding_opportunities(bottlenecks: Mapping[str, Any] | None) -> list[Opportunity]:
    """One fix per finding of ``bottlenecks["findings"]`` (notebook 30's result) whose top cause is named
    (not ``unknown``) and whose confidence is medium or high; its impact is the finding's cost share.
    Low-confidence findings (a load peak, a change that starts with the window) are not fixes."""
    findings = (bottlenecks or {}).get("findings") or {}
    found = []
    for index, item in enumerate(findings.get("items") or []):
        cause = (item.get("causes") or [{}])[0]
        if cause.get("kind", "unknown") == "unknown" or item.get("confidence") == "low" or \
                item.get("cost_share") is None:
            continue
        area, verb, effort, risk = FIX_BY_CAUSE.get(str(cause["kind"]), OTHER_CAUSE)
        scope = " ".join(str(item["scope"][k]) for k in ("service", "route", "status") if k in item["scope"])
        what = str(cause["ref"]) if cause["kind"] in ("query", "metric", "profile") else str(cause["detail"])
        what = what if len(what) <= TITLE_CAUSE_CHARS else what[:TITLE_CAUSE_CHARS - 1].rstrip() + "…"
        title = (f"{verb} {what} — {change_text(item['kind'], item['metric'], item.get('effect'), item['effect_unit'])}"
                 f" on {scope} since {fmt.timestamp(item['onset'])}")
        fix = FindingFix(
            index, str(item["kind"]), scope_pairs(item["scope"]), str(item["metric"]),
            item["onset"], item.get("end"), item.get("before"), item.get("after"), item.get("effect"),
            item.get("ci_low"), item.get("ci_high"), str(item.get("effect_unit") or ""), str(item["confidence"]),
            float(item["cost_share"]), str(item.get("cost_basis") or ""), str(cause["kind"]), str(cause["ref"]),
            str(cause["detail"]), float(cause["strength"]), findings.get("window_start"), findings.get("window_end"),
            sorted(item.get("sql") or {}), KPI_BY_KIND.get(str(item["kind"]), "latency_p95_ms"), risk)
        found.append(_opportunity(area, title, fix.cost_share, effort, fix))
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
    """All opportunities: fixes of findings first (undoing a change that made things worse, with its
    cause named, comes before new work), then best score first within each group (ties by title)."""
    return sorted((o for group in found for o in group),
                  key=lambda o: (not isinstance(o.evidence, FindingFix), -o.score, o.title))


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
    rank it with the fixes of the findings in ``bottlenecks`` (notebook 30's result) and the CDN cache of ``cache``
    (notebook 40's result), either of which may be missing."""
    from kit.results import to_jsonable

    row = con.execute("SELECT coalesce(sum(bytes_sent), 0) FROM requests WHERE ts >= ? AND ts < ?",
                      [window.start, window.end]).fetchone()
    found = OptimizationResults(window, int(row[0]) if row else 0, compression_opportunity(con, window))
    ranking = rank_opportunities(finding_opportunities(bottlenecks),
                                 compression_opportunities(to_jsonable(found.compression), found.served_bytes_total),
                                 cache_opportunity(cache))
    return replace(found, ranking=ranking)
