"""Optimization opportunities ranked by estimated saving over effort.

Notebook 50 runs the optimization analyses (resource compression here; the database, CDN and code-profile
analyses as they exist) and ranks their opportunities together with the fixes of what notebooks 30 (the
bottleneck findings with a named cause) and 40 (the CDN cache the simulation recommends) found; the
ranking it saves (``results/optimizations.json``) is the one the optimization strategy prints.

Ranking: fixes of findings come first (undoing a change that made things worse, with its cause named,
comes before new work), then every other opportunity; within each group the order is the score, the
estimated saving's share of its basis (request time, database time, bytes served, 5xx responses) divided
by the effort weight (low 1, medium 2, high 4). An area's opportunity that addresses a finding's cause (an
index for the query behind a saturation, the frames that grew with a release) replaces that finding's
generic fix: it names what to change, and the finding is its evidence. A route alone is not an
opportunity (issue #12): a route appears only with what in it costs the time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import duckdb
import pandas as pd

from kit import fmt, warehouse
from kit.analysis.cdn import CdnAnalysis, analyse_cdn
from kit.analysis.compression import CompressionAnalysis, analyse_compression
from kit.analysis.coverage import NEEDS
from kit.analysis.database import DatabaseAnalysis, analyse_database
from kit.analysis.database.advice import IndexAdvice, advise_indexes
from kit.analysis.findings.text import cost_basis_text, cost_text, effect_text, value_text
from kit.analysis.opportunity import Opportunity, Saving, opportunity
from kit.analysis.profiles import ProfileAnalysis, analyse_profiles
from kit.analysis.request_groups import build_request_groups, drop_request_groups, route_traffic
from kit.analysis.window import Window
from kit.errors import DataError

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
REF_CAUSES = ("query", "metric", "profile")  # causes named by their ref (a fingerprint, a metric, a frame)
# The KPI that shows a finding's kind (Performance_Monitoring_Strategy.md, section 1).
KPI_BY_KIND = {"latency_shift": "latency_p95_ms", "variance_change": "latency_p99_ms", "error_burst": "error_rate_5xx",
               "throughput_change": "request_rate_rps", "cache_hit_drop": "CDN cache hit ratio",
               "saturation": "latency_p95_ms and the saturated resource", "slow_query_regression": "latency_p95_ms"}
# A finding's cost basis: the unit of its saving and the window total it is a share of.
BASIS_UNIT = {"request_time": "ms", "errors_5xx": "responses", "requests_missed": "requests"}


@dataclass(frozen=True)
class WindowTotals:
    """Totals of the window the savings are shares of: request time (ms), requests, 5xx responses and
    bytes sent."""

    request_ms: float
    requests: int
    errors_5xx: int
    bytes_sent: int

    def of_basis(self, basis: str) -> float:
        """The total a finding's cost basis is a share of (``BASIS_UNIT``'s keys; else requests)."""
        return {"request_time": self.request_ms, "errors_5xx": float(self.errors_5xx)}.get(basis, float(self.requests))


def window_totals(traffic: pd.DataFrame) -> WindowTotals:
    """The window's totals: the sums of its requests per route
    (:func:`kit.analysis.request_groups.route_traffic`)."""
    return WindowTotals(float(traffic["request_ms"].sum()), int(traffic["requests"].sum()),
                        int(traffic["errors_5xx"].sum()), int(traffic["bytes_sent"].sum()))


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


def cause_keys(item: Mapping[str, Any]) -> list[str]:
    """The ``Opportunity.addresses`` keys of a finding's named causes: ``query:<fingerprint>``,
    ``profile:<frame>``, ``metric:<name>`` by ref; ``deploy:<what>``, ``config:<what>`` ... by the event."""
    keys = []
    for cause in item.get("causes") or []:
        kind = str(cause.get("kind", "unknown"))
        if kind != "unknown":
            keys.append(f"{kind}:{cause['ref'] if kind in REF_CAUSES else cause['detail']}")
    return keys


def finding_summary(item: Mapping[str, Any], index: int) -> str:
    """A finding in one sentence with its numbers and where its SQL is."""
    scope = ", ".join(f"{k} {v}" for k, v in scope_pairs(item["scope"]))
    end = fmt.timestamp(item["end"]) if item.get("end") else "the end of the window (still on)"
    unit = str(item.get("effect_unit") or "")
    return (f"{str(item['kind']).replace('_', ' ')} ({item['confidence']} confidence) on {scope} from "
            f"{fmt.timestamp(item['onset'])} to {end}: {item['metric']} {value_text(item.get('before'), unit)} → "
            f"{value_text(item.get('after'), unit)}, {effect_text(item)}; it cost {cost_text(item)}. The SQL "
            f"behind each number is findings.items[{index}].sql in results/bottlenecks.json "
            f"({', '.join(sorted(item.get('sql') or {}))}).")


def _finding_saving(item: Mapping[str, Any], totals: WindowTotals) -> Saving:
    """The finding's cost in its basis's unit; the interval scales it by the effect's 95 % interval."""
    basis = str(item.get("cost_basis") or "")
    share = float(item["cost_share"])
    value = share * totals.of_basis(basis)
    effect, low, high = item.get("effect"), item.get("ci_low"), item.get("ci_high")
    unit = BASIS_UNIT.get(basis, "requests")
    if item.get("effect_unit") not in ("ms", "share") or not effect or low is None or high is None or low / effect <= 0:
        return Saving(value, unit, cost_basis_text(basis), share)
    return Saving(value, unit, cost_basis_text(basis), share, value * low / effect, value * high / effect)


def finding_opportunities(bottlenecks: Mapping[str, Any] | None, totals: WindowTotals) -> list[Opportunity]:
    """One fix per finding of ``bottlenecks["findings"]`` (notebook 30's result) whose top cause is named
    (not ``unknown``) and whose confidence is medium or high; its saving is the finding's cost.
    Low-confidence findings (a load peak, a change that starts with the window) are not fixes."""
    findings = (bottlenecks or {}).get("findings") or {}
    window = f"{fmt.timestamp(findings.get('window_start'))} to {fmt.timestamp(findings.get('window_end'))}"
    found = []
    for index, item in enumerate(findings.get("items") or []):
        cause = (item.get("causes") or [{}])[0]
        if cause.get("kind", "unknown") == "unknown" or item.get("confidence") == "low" or \
                item.get("cost_share") is None:
            continue
        area, verb, effort, risk = FIX_BY_CAUSE.get(str(cause["kind"]), OTHER_CAUSE)
        scope = " ".join(str(item["scope"][k]) for k in ("service", "route", "status") if k in item["scope"])
        what = str(cause["ref"]) if cause["kind"] in REF_CAUSES else str(cause["detail"])
        short = what if len(what) <= TITLE_CAUSE_CHARS else what[:TITLE_CAUSE_CHARS - 1].rstrip() + "…"
        moved = change_text(item["kind"], item["metric"], item.get("effect"), str(item.get("effect_unit") or ""))
        unit = str(item.get("effect_unit") or "")
        kind = str(item["kind"]).replace("_", " ")
        named = f"{cause['detail']} ({cause['ref']})" if cause["kind"] in REF_CAUSES else str(cause["detail"])
        found.append(opportunity(
            area, f"{verb} {short} — {moved} on {scope} since {fmt.timestamp(item['onset'])}",
            change=f"{verb} {what}.",
            evidence=(f"{finding_summary(item, index)} Probable cause ({cause['kind']}, strength "
                      f"{fmt.num(float(cause['strength']), 2)}): {named}."),
            effect=(f"{item['metric']} on this scope stays at about {value_text(item.get('before'), unit)} instead "
                    f"of {value_text(item.get('after'), unit)}; in a window like this one that saves up to "
                    f"{cost_text(item, '')}."),
            verify=(f"after the fix, run perfkit findings --db <warehouse> --start <T> --end <T> over a window of "
                    f"the same length (this one: {window}) and check that no {kind} on this scope is left; "
                    f"watch the KPI {KPI_BY_KIND.get(str(item['kind']), 'latency_p95_ms')}."),
            risk=risk, effort=effort, saving=_finding_saving(item, totals),
            sql={f"findings.items[{index}].sql.{name}": str(sql)
                 for name, sql in sorted((item.get("sql") or {}).items())},
            addresses=cause_keys(item),
            details={"finding": index}))
    return found


def cache_opportunity(cache: Mapping[str, Any] | None, totals: WindowTotals) -> list[Opportunity]:
    """The CDN cache notebook 40 recommends (its ``cache`` result): the byte hit ratio it expects over
    the one measured today, when it is higher; the saving is the origin bytes it no longer fetches."""
    sizing = (cache or {}).get("sizing") or {}
    after = sizing.get("recommended_byte_hit_ratio")
    before = ((cache or {}).get("observed") or {}).get("byte_hit_ratio")
    if after is None or before is None or after <= before:
        return []
    gain = float(after) - float(before)
    capacity = sizing.get("recommended_capacity_bytes")
    return [opportunity(
        "caching", "Implement the caching plan (Caching_Implementation_Plan.json)",
        change=f"size the CDN cache at {fmt.size(capacity)} as the caching plan says, with its key and TTLs.",
        evidence=(f"the CDN byte hit ratio is {fmt.pct(before)} today; the simulation expects {fmt.pct(after)} at "
                  f"the recommended capacity ({fmt.size(capacity)})."),
        effect=f"{fmt.pct(gain / (1 - float(before)))} less origin traffic.",
        verify="roll out per the plan's steps and watch the hit-ratio metrics and alerts it lists.",
        risk="medium: a larger cache costs memory or CDN spend; stale content is bounded by the plan's TTLs.",
        effort="medium", saving=Saving(gain * totals.bytes_sent, "bytes", "all bytes served", gain))]


def attach_to_findings(fixes: Sequence[Opportunity], others: Sequence[Opportunity]
                       ) -> tuple[list[Opportunity], list[Opportunity]]:
    """Replace each finding's generic fix by the area opportunities that address one of its causes (the one
    addressing its strongest cause leads, the best scored among those; the others corroborate it in its
    evidence), keeping the finding as evidence. Returns the fixes and the opportunities left over."""
    left = list(others)
    merged = []
    for fix in fixes:
        keys = set(fix.addresses)
        rank = {key: i for i, key in reversed(list(enumerate(fix.addresses)))}   # causes strongest first

        def order(o: Opportunity, rank: dict[str, int] = rank) -> tuple[int, float, str]:
            return min(rank[a] for a in o.addresses if a in rank), -o.score, o.title

        matching = sorted((o for o in left if keys & set(o.addresses)), key=order)
        if not matching:
            merged.append(fix)
            continue
        lead, *rest = matching
        left = [o for o in left if o not in matching]
        also = "".join(f" The {o.area} analysis agrees: {o.title}." for o in rest)
        finding = int(str(fix.details["finding"]))
        merged.append(replace(
            lead, evidence=f"{lead.evidence}{also} It explains bottleneck finding {finding + 1}: "
                           f"{fix.evidence}",
            verify=f"{lead.verify.rstrip('.')}; and {fix.verify}",
            sql={**lead.sql, **fix.sql}, addresses=sorted(set(lead.addresses) | keys),
            details={**lead.details, "finding": finding, "corroborated_by": [o.title for o in rest]}))
    return merged, left


def rank_opportunities(fixes: Sequence[Opportunity], others: Sequence[Opportunity]) -> list[Opportunity]:
    """Fixes of findings first, then the others; best score first within each group (ties by title)."""
    fixes, others = attach_to_findings(fixes, others)
    by_score = sorted(fixes, key=lambda o: (-o.score, o.title))
    return by_score + sorted(others, key=lambda o: (-o.score, o.title))


@dataclass(frozen=True)
class OptimizationResults:
    """Notebook 50's result: the window's totals, each area's analysis (None when the warehouse lacks its
    data; ``gaps`` says why), the ranking of all their opportunities, and the areas not analysed."""

    window: Window
    totals: WindowTotals
    compression: CompressionAnalysis
    database: DatabaseAnalysis | None = None
    database_advice: IndexAdvice | None = None    # live EXPLAIN with hypothetical indexes (``database_dsn``)
    cdn: CdnAnalysis | None = None
    profiles: ProfileAnalysis | None = None
    ranking: list[Opportunity] = field(default_factory=list)
    gaps: list[dict[str, str]] = field(default_factory=list)

    def gap(self, area: str) -> str:
        """Why ``area`` has no analysis in this window (its data is missing or outside the window)."""
        return gap_reason(self.gaps, area) or f"No {area} analysis in this window."


T = TypeVar("T")


def gap_reason(gaps: Sequence[Mapping[str, str]], area: str) -> str | None:
    """The reason ``gaps`` (``OptimizationResults.gaps``, or its saved JSON) gives for ``area``, if any."""
    return next((str(g["why"]) for g in gaps if g.get("area") == area), None)


def _run_area(area: str, analyse: Callable[[], T], gaps: list[dict[str, str]]) -> T | None:
    """An area's analysis, or None with the reason in ``gaps`` when the warehouse lacks its data."""
    try:
        return analyse()
    except DataError as missing:
        gaps.append({"area": area, "why": str(missing)})
        return None


def _has_rows(con: duckdb.DuckDBPyConnection, table: str, window: Window, area: str, need: str,
              gaps: list[dict[str, str]]) -> bool:
    """Whether ``table`` has rows in the window; if not, the coverage gap of ``need`` goes into ``gaps``."""
    row = con.execute(f"SELECT count(*) FILTER (WHERE {window.sql()}), count(*) FROM {table}").fetchone()
    if row and row[0]:
        return True
    held = int(row[1]) if row else 0
    gaps.append({"area": area, "why": NEEDS[need].sentence() if not held else (
        f"The warehouse's {held:,} {table} rows lie outside the analysed window ({window.label()}): "
        "run with start and end parameters covering their period to analyse them.")})
    return False


def _request_areas(con: duckdb.DuckDBPyConnection, window: Window, cache: Mapping[str, Any] | None,
                   gaps: list[dict[str, str]], routed: Future[pd.DataFrame]
                   ) -> tuple[pd.DataFrame, WindowTotals, CompressionAnalysis, CdnAnalysis | None]:
    """The areas that read the requests: one grouped pass over the window's requests gives the per-route
    traffic (handed to ``routed`` as soon as it is known), the compression study's 200s of the assets and
    the CDN study's groups (:mod:`kit.analysis.request_groups`)."""
    groups = build_request_groups(con, window)
    try:
        traffic = route_traffic(con, window, groups)
        routed.set_result(traffic[traffic["route"].notna()])
        totals = window_totals(traffic)
        compression = analyse_compression(con, window, served_bytes_total=totals.bytes_sent, groups=groups)
        cdn = _run_area("CDN", lambda: analyse_cdn(con, window, cache=dict(cache) if cache else None,
                                                   groups=groups), gaps)
    finally:
        drop_request_groups(con, groups)
    return traffic, totals, compression, cdn


def optimization_opportunities(con: duckdb.DuckDBPyConnection, window: Window,
                               bottlenecks: Mapping[str, Any] | None = None,
                               cache: Mapping[str, Any] | None = None, *,
                               database_dsn: str | None = None) -> OptimizationResults:
    """Run the optimization analyses on the window and rank their opportunities with the fixes of the
    findings in ``bottlenecks`` (notebook 30's result) and the CDN cache of ``cache`` (notebook 40's
    result), either of which may be missing. With ``database_dsn`` the top query fingerprints are also
    EXPLAINed on that live PostgreSQL with hypothetical indexes (bounded per statement and in total)."""
    gaps: list[dict[str, str]] = []
    with warehouse.cursor(con) as own, ThreadPoolExecutor(1, thread_name_prefix="perfkit-database") as pool:
        # the database analysis (10M query rows: about half of the CPU) runs from the start on a second connection
        # beside the other areas, whose Python and single-threaded parts leave a core idle; it needs the requests
        # per route, from the grouped pass of _request_areas, only at its end (N+1 per request)
        routed: Future[pd.DataFrame] = Future()
        pending = pool.submit(analyse_database, own, window, bottlenecks=dict(bottlenecks) if bottlenecks else None,
                              route_counts=routed.result) \
            if _has_rows(con, "queries", window, "Database", "queries", gaps) else None
        try:
            traffic, totals, compression, cdn = _request_areas(con, window, cache, gaps, routed)
        except BaseException as failure:
            if not routed.done():      # the database analysis stops at its wait instead of waiting for ever
                routed.set_exception(failure)
            raise
        found_before = dict(bottlenecks) if bottlenecks else None
        profiles = analyse_profiles(con, window, bottlenecks=found_before, traffic=traffic) \
            if _has_rows(con, "profiles", window, "Code profiles", "profiles", gaps) else None
        database = pending.result() if pending is not None else None
    advice = advise_indexes(database_dsn, database) if database is not None and database_dsn else None
    areas = [*compression.opportunities, *cache_opportunity(cache, totals),
             *(cdn.opportunities if cdn else []), *(database.opportunities if database else []),
             *(profiles.opportunities if profiles else [])]
    ranking = rank_opportunities(finding_opportunities(bottlenecks, totals), areas)
    return OptimizationResults(window, totals, compression, database, advice, cdn, profiles, ranking, gaps)
