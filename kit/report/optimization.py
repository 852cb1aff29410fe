"""Performance_Optimization_Strategy.md: the opportunities notebook 50 ranked (``results["optimizations"]
["ranking"]``, computed by ``kit.analysis.optimizations``), each with its evidence and how to verify it,
then where the request time goes, the caching plan's summary and the compression savings.

Document model first (``optimization_model``: plain values), rendering last (Jinja template
``Performance_Optimization_Strategy.md.j2`` with the partials ``opportunity``, ``caching_summary`` and
``cache_trace``); the renderer escapes every value that came from data. The document leads with five
summary bullets (``kit.report.summary``)."""

from __future__ import annotations

from typing import Any

from kit.analysis.coverage import coverage_of, gap_text
from kit.analysis.optimizations import gap_reason
from kit.config import RunConfig
from kit.report.caching_plan import OFFLINE_POLICIES, caching_summary_model, policy_table_at
from kit.report.render import markdown, render_markdown
from kit.report.summary import optimization_summary


def trace_model(study: dict[str, Any] | None) -> dict[str, Any] | None:
    """What notebook 40 found in a loaded cache trace (its ``cache_trace`` result): the trace, the
    sizing, and the best online policy at the simulated size nearest the recommended capacity."""
    if not study:
        return None
    table_at, table = policy_table_at(study, study["sizing"]["recommended_capacity_bytes"])
    best = next((r for r in table if r["policy"] not in OFFLINE_POLICIES), None)
    return {"trace": study["trace"], "sizing": study["sizing"], "table_at": table_at, "best": best,
            "method": study["policies"]["method"]}


def area_gap(optimizations: dict[str, Any], area: str, notebook: str) -> str:
    """Why an area has no section: the reason its analysis gave, or that its notebook did not run."""
    return gap_reason(optimizations.get("gaps") or [], area) or \
        markdown(f"Not computed in this run (notebook {notebook} did not run).")


def optimization_model(results: dict[str, Any], config: RunConfig, as_of: str,
                       caching_plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the document shows, from the results of notebooks 30, 40 and 50 and the caching plan."""
    bottlenecks = results.get("bottlenecks") or {}
    optimizations = results.get("optimizations") or {}
    caching_headline = ((caching_plan or {}).get("summary") or {}).get("headline")
    return {
        "title": config.title, "as_of": as_of, "config": config,
        "summary": optimization_summary(results, caching_headline),
        "opportunities": optimizations.get("ranking") or [],
        "caching_headline": caching_headline or "see the caching plan",
        "bottlenecks": bottlenecks, "top": bottlenecks.get("top") or [],
        "compression": optimizations.get("compression"), "profiles": optimizations.get("profiles"),
        "caching": None if caching_plan is None or coverage_of(results).gap("cacheable") else
        caching_summary_model(caching_plan),
        "trace": trace_model(results.get("cache_trace")),
        "cdn": optimizations.get("cdn"),
        "scaling": results.get("scaling"),
        "database": None if not optimizations.get("database") else
        {**optimizations["database"], "advice": optimizations.get("database_advice")},
        "missing": {
            "bottlenecks": markdown(gap_text(results, "requests", "latency", fallback=(
                "Not computed in this run (notebook 30_bottlenecks did not run)."))),
            "caching": markdown(gap_text(results, "cacheable", fallback=(
                "Not computed in this run (notebook 40_cache_simulation did not run)."))),
            "cdn": area_gap(optimizations, "CDN", "50_optimizations"),
            "database": area_gap(optimizations, "Database", "50_optimizations"),
            "profiles": area_gap(optimizations, "Code profiles", "50_optimizations"),
            "scaling": markdown(gap_text(results, "requests", fallback=(
                "Not computed in this run (notebook 60_scaling did not run)."))),
            "compression": markdown(gap_text(results, "assets", fallback=(
                "No static asset could be compressed further."))),
        },
    }


def build_optimization_strategy(results: dict[str, Any], config: RunConfig, as_of: str,
                                caching_plan: dict[str, Any] | None = None) -> str:
    """Render Performance_Optimization_Strategy.md from the results of notebooks 30, 40 and 50."""
    model = optimization_model(results, config, as_of, caching_plan)
    return render_markdown("Performance_Optimization_Strategy.md.j2", **model)
