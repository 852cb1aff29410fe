"""Performance_Optimization_Strategy.md: opportunities ranked by estimated impact and effort, each
with its evidence from the run's results and how to verify it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kit.analysis.coverage import coverage_of, gap_text
from kit.config import RunConfig
from kit.report.render import render_markdown
from kit.report.text import fmt_bytes, fmt_pct, md_code, md_escape

EFFORT_WEIGHT = {"low": 1.0, "medium": 2.0, "high": 4.0}


@dataclass(frozen=True)
class Opportunity:
    """One optimization: ``impact_share`` is the share of the relevant total (request time or bytes
    served) it addresses; rank = impact_share / effort weight."""

    area: str
    title: str
    evidence: str
    impact: str
    impact_share: float
    effort: str
    verify: str

    @property
    def score(self) -> float:
        return self.impact_share / EFFORT_WEIGHT[self.effort]


def bottleneck_opportunities(bottlenecks: dict[str, Any], top: int = 3) -> list[Opportunity]:
    """The routes that consume the most request time."""
    found = []
    for row in bottlenecks.get("top", [])[:top]:
        route = f"{md_escape(row['service'])} {md_code(row['route'])}"
        found.append(Opportunity(
            area="code",
            title=f"Cut the latency of {route}",
            evidence=(f"{row['requests']:,} requests consumed {fmt_pct(row['time_share'])} of all request time "
                      f"(p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms)."),
            impact=f"up to {fmt_pct(row['time_share'])} of request time",
            impact_share=float(row["time_share"]),
            effort="medium",
            verify="profile the route's handler, ship the fix behind a flag, compare p95 and time share "
                   "in the next run's 30_bottlenecks report",
        ))
    return found


def compression_opportunities(compression: dict[str, Any], served_bytes_total: int | None) -> list[Opportunity]:
    """Static text assets served uncompressed."""
    saved = int(compression.get("saved_gzip_bytes") or 0)
    if saved <= 0:
        return []
    base = served_bytes_total or compression.get("served_bytes") or 1
    types = ", ".join(md_escape(r["content_type"]) for r in compression.get("by_type", [])[:3]
                      if r.get("saved_gzip_bytes", 0) > 0)
    return [Opportunity(
        area="compression",
        title="Serve text assets compressed (gzip now, zstd/brotli where clients accept it)",
        evidence=(f"{fmt_bytes(compression['served_bytes'])} of static assets were served in the window; gzip -6 "
                  f"would have saved {fmt_bytes(saved)}, zstd -19 {fmt_bytes(compression['saved_zstd_bytes'])} "
                  f"(largest savings: {types})."),
        impact=f"{fmt_pct(saved / base)} of all bytes served",
        impact_share=saved / base,
        effort="low",
        verify="enable gzip/zstd at the CDN or web server for text types, then compare bytes_sent per path",
    )]


def cache_opportunity(plan: dict[str, Any] | None) -> list[Opportunity]:
    """The caching plan's CDN layer: the byte hit ratio it expects over the one measured today."""
    layers = [layer for layer in (plan or {}).get("layers", []) if layer.get("layer") == "cdn"]
    expected = layers[0].get("expected", {}) if layers else {}
    after = (expected.get("byte_hit_ratio") or {}).get("value")
    before = (expected.get("current_byte_hit_ratio") or {}).get("value")
    if after is None or before is None or after <= before:
        return []
    gain = float(after) - float(before)
    return [Opportunity(
        area="caching",
        title="Implement the caching plan (Caching_Implementation_Plan.json)",
        evidence=md_escape((plan or {}).get("summary", {}).get("headline", "see the caching plan")),
        impact=(f"CDN byte hit ratio {fmt_pct(float(before))} → {fmt_pct(float(after))}: "
                f"{fmt_pct(gain / (1 - float(before)))} less origin traffic"),
        impact_share=gain,
        effort="medium",
        verify="roll out per the plan's steps and watch the hit-ratio metrics and alerts it lists",
    )]


def cache_trace_summary(study: dict[str, Any] | None) -> str:
    """What notebook 40 found in a loaded cache trace (``cache_trace`` result), as one paragraph."""
    if not study:
        return ""
    t, sizing = study["trace"], study["sizing"]
    rec = sizing["recommended_capacity_bytes"]
    rows = study["policies"]["rows"]
    nearest = min({r["capacity_bytes"] for r in rows}, key=lambda c: abs(c - rec)) if rows else None
    at = sorted((r for r in rows if r["capacity_bytes"] == nearest and r["policy"] != "belady"),
                key=lambda r: (r["miss_ratio"], r["policy"]))
    best = (f" At the nearest simulated size, {fmt_bytes(nearest)}, the best online policy is "
            f"{md_escape(at[0]['policy'])} (hit ratio {fmt_pct(1 - at[0]['miss_ratio'])}; "
            f"{study['policies']['method']})." if at else "")
    return (f"The loaded cache trace {md_code(t['name'])} ({t['requests']:,} requests, {t['unique_objects']:,} "
            f"objects, footprint {fmt_bytes(t['unique_bytes'])}) reaches at most "
            f"{fmt_pct(sizing['max_hit_ratio'])} hit ratio with an unbounded cache; {fmt_bytes(rec)} of LRU cache "
            f"gives {fmt_pct(sizing['recommended_hit_ratio'])} ({md_escape(sizing['recommendation_basis'])}).{best}")


def build_optimization_strategy(results: dict[str, Any], config: RunConfig, as_of: str,
                                caching_plan: dict[str, Any] | None = None,
                                caching_summary: str | None = None) -> str:
    """Render Performance_Optimization_Strategy.md from the results of notebooks 30, 40 and 50."""
    bottlenecks = results.get("bottlenecks") or {}
    optimizations = results.get("optimizations") or {}
    compression = optimizations.get("compression") or {}
    opportunities = (bottleneck_opportunities(bottlenecks) + compression_opportunities(
        compression, optimizations.get("served_bytes_total")) + cache_opportunity(caching_plan))
    opportunities.sort(key=lambda o: (-o.score, o.title))
    trace_summary = cache_trace_summary(results.get("cache_trace"))
    missing = {
        "bottlenecks": gap_text(results, "requests", "latency",
                                fallback="Not computed in this run (notebook 30_bottlenecks did not run)."),
        "caching": " ".join(filter(None, (gap_text(results, "cacheable", fallback=(
            "Not computed in this run (notebook 40_cache_simulation did not run).")), trace_summary))),
        "compression": gap_text(results, "assets", fallback="No static asset could be compressed further."),
    }
    return render_markdown(
        "Performance_Optimization_Strategy.md.j2",
        title=config.title, as_of=as_of, config=config, opportunities=opportunities,
        bottlenecks=bottlenecks, top=bottlenecks.get("top") or [], compression=compression,
        by_type=compression.get("by_type") or [], not_covered=optimizations.get("not_covered") or [],
        caching_summary=None if coverage_of(results).gap("cacheable") else caching_summary, missing=missing,
    )
