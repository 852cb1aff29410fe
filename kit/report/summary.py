"""The summary each strategy document starts with: the five things a reader must know, each with its
numbers, drawn from the results the run saved.

Method: every bullet reads one result (nothing is re-computed) and says what it found in one or two
sentences; numbers go through ``kit.fmt``. Monitoring: the headline KPIs against their targets, the error
budget of the tightest SLO, the top finding, the alert rules with their backtest precision and recall, and
the instrumentation gaps. Optimization: the top opportunity, the next two, the database headline with the first
code-profile change, the CDN (or caching) headline with the first CDN change, and the scaling headroom
of the tightest service.

Limits: when a result is missing, its bullet says which notebook did not run (and has no number) rather
than dropping out, so a document always has five bullets. The text is plain (not Markdown, not
escaped): the renderer escapes it like every other value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kit import fmt
from kit.analysis.findings import text as finding_text
from kit.analysis.opportunity import saving_text

__all__ = ["Bullet", "monitoring_summary", "optimization_summary"]

FINGERPRINT_SHOWN = 80  # characters of a query fingerprint in a summary bullet


@dataclass(frozen=True)
class Bullet:
    """One thing a reader must know: ``label`` (what it is about, kit-written) and ``text`` (plain text
    with the numbers, escaped by the renderer)."""

    label: str
    text: str


def _missing(notebook: str) -> str:
    return f"not computed in this run (notebook {notebook} did not run)."


def _short(text: Any, limit: int = FINGERPRINT_SHOWN) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------- monitoring


def _kpi_text(kpi_rows: Sequence[Mapping[str, Any]]) -> str:
    """Availability, p99 latency and Apdex against their targets; the peak rate."""
    by_name = {r["name"]: r for r in kpi_rows}
    parts = []
    for name, label in (("availability", "availability"), ("latency_p99_ms", "p99 latency"), ("apdex", "Apdex")):
        row = by_name.get(name)
        if row is None or row.get("value") is None:
            continue
        value = fmt.quantity(row["value"], row["unit"]) if row["unit"] != "score 0-1" else fmt.num(row["value"])
        target = row.get("target")
        if target is None:
            parts.append(f"{label} {value}")
            continue
        lower = row.get("better") == "lower"
        met = row["value"] <= target if lower else row["value"] >= target
        shown = fmt.quantity(target, row["unit"]) if row["unit"] != "score 0-1" else fmt.num(target)
        proposed = " proposed" if str(row.get("target_basis", "")).startswith("proposed") else ""
        parts.append(f"{label} {value} against a{proposed} target of {'≤' if lower else '≥'} {shown} "
                     f"({'met' if met else 'missed'})")
    peak = by_name.get("peak_rps_1m")
    if peak and peak.get("value") is not None:
        parts.append(f"peak {fmt.num(peak['value'])} req/s in one minute")
    return "; ".join(parts) + "." if parts else "no headline KPI has a value in this window."


def _budget_text(slo: Mapping[str, Any] | None) -> str:
    """The SLO with the least error budget left, and how many SLOs are missed."""
    slos = [s for s in (slo or {}).get("slos") or [] if s.get("remaining_ratio") is not None]
    if not slos:
        return _missing("20_slos_alerting") if not slo else "no SLO has an error budget in this run."
    tightest = min(slos, key=lambda s: (s["remaining_ratio"], str(s.get("slo_id") or s.get("name"))))
    missed = sum(1 for s in slos if s.get("achieved") is not None and s.get("objective") is not None
                 and s["achieved"] < s["objective"])
    service = tightest.get("service")
    where = f" of {service}" if service and service not in ("all", "*") else ""
    return (f"{fmt.counted(len(slos), 'SLO')}, {missed} missed; the tightest, {tightest.get('name')}{where} "
            f"(objective {fmt.pct(tightest.get('objective'), 5, significant=True)}, achieved "
            f"{fmt.pct(tightest.get('achieved'), 5, significant=True)}), has used "
            f"{fmt.pct(tightest.get('consumed_ratio'), 1)} of its error budget "
            f"({fmt.pct(tightest['remaining_ratio'], 1)} left).")


def _finding_text(bottlenecks: Mapping[str, Any] | None) -> str:
    findings = (bottlenecks or {}).get("findings")
    if not isinstance(findings, Mapping):
        return _missing("30_bottlenecks")
    items = findings.get("items") or []
    if not items:
        return "no change in this window reached the detector's threshold (0 findings)."
    top = items[0]
    causes = [c for c in top.get("causes") or [] if c.get("kind") != "unknown"]
    cause = f"probable cause {causes[0]['kind']}: {causes[0]['detail']}" if causes else "cause unknown"
    title = top.get("title") or str(top.get("kind", "")).replace("_", " ")
    more = f" ({fmt.counted(len(items) - 1, 'more finding')} in the findings table)" if len(items) > 1 else ""
    return (f"{title} from {fmt.timestamp(top.get('onset'))}: {top.get('metric')} "
            f"{finding_text.value_text(top.get('before'), top.get('effect_unit'))} → "
            f"{finding_text.value_text(top.get('after'), top.get('effect_unit'))}, "
            f"{finding_text.effect_text(top)}; {finding_text.cost_text(top)}; {cause}{more}.")


def _alerts_text(slo: Mapping[str, Any] | None) -> str:
    if not slo:
        return _missing("20_slos_alerting")
    alerts = slo.get("alerts") or {}
    rules, saturation = len(alerts.get("rules") or []), len(alerts.get("saturation") or [])
    text = (f"{fmt.counted(rules, 'burn-rate alert rule')} and {fmt.counted(saturation, 'saturation alert')} "
            "(Prometheus rules in slo_rules.yml)")
    backtest = slo.get("backtest") or {}
    chosen = next((p for p in backtest.get("policies") or [] if p.get("policy") == backtest.get("chosen_policy")),
                  None)
    if chosen is None:
        return text + "; no alert backtest in this run."
    return (f"{text}; replayed over {fmt.counted(backtest.get('weeks'), 'week')} of history, the chosen rules "
            f"caught {chosen.get('caught', fmt.NA)} of {fmt.counted(chosen.get('incidents'), 'recorded incident')} "
            f"(recall {fmt.pct(chosen.get('recall'), 0)}, precision {fmt.pct(chosen.get('precision'), 0)}, "
            f"{fmt.num(chosen.get('per_week'))} alerts a week).")


def _gaps_text(kpis: Mapping[str, Any] | None) -> str:
    """How many instrumentation gaps, in which areas, and the biggest: the first of notebook 10's list,
    which puts missing request fields and Prometheus request metrics (they block whole KPIs or live
    alerts) before the USE cells no metric covers."""
    if not kpis:
        return _missing("10_kpis")
    gaps = kpis.get("gaps") or []
    if not gaps:
        return "0 instrumentation gaps: every USE signal and request field perfkit looks for is present."
    resources = sorted({str(g.get("resource")) for g in gaps})
    first = gaps[0]
    return (f"{fmt.counted(len(gaps), 'instrumentation gap')} across {fmt.counted(len(resources), 'area')} "
            f"({', '.join(resources)}); the biggest: {first.get('what')} (collect {first.get('collect')}).")


def monitoring_summary(results: Mapping[str, Any], kpi_rows: Sequence[Mapping[str, Any]] | None) -> list[Bullet]:
    """The five bullets of the monitoring document. ``kpi_rows``: the KPI rows of the monitoring model
    (each KPI with its ``target`` and ``target_basis``), None without a ``kpis`` result."""
    kpis, slo = results.get("kpis"), results.get("slo")
    return [
        Bullet("Headline KPIs", _kpi_text(kpi_rows) if kpi_rows else _missing("10_kpis")),
        Bullet("Error budget", _budget_text(slo)),
        Bullet("Top finding", _finding_text(results.get("bottlenecks"))),
        Bullet("Alerts", _alerts_text(slo)),
        Bullet("Biggest instrumentation gap", _gaps_text(kpis)),
    ]


# ----------------------------------------------------------------------------------------- optimization


def _opportunity_text(o: Mapping[str, Any], rank: int) -> str:
    saving = o.get("saving")
    shown = saving_text(saving) if isinstance(saving, Mapping) else "saving not estimated"
    return f"#{rank} {o.get('title')}: saves {shown}; effort {o.get('effort')}"


def _top_text(ranking: Sequence[Mapping[str, Any]], optimizations: Mapping[str, Any] | None) -> str:
    if not optimizations:
        return _missing("50_optimizations")
    if not ranking:
        return "0 opportunities could be quantified from this run's results."
    return (_opportunity_text(ranking[0], 1)
            + f"; {fmt.counted(len(ranking), 'opportunity', 'opportunities')} ranked in all.")


def _next_text(ranking: Sequence[Mapping[str, Any]], optimizations: Mapping[str, Any] | None) -> str:
    if not optimizations:
        return _missing("50_optimizations")
    if len(ranking) < 2:
        return f"no other opportunity ({fmt.counted(len(ranking), 'opportunity', 'opportunities')} in all)."
    return "; ".join(_opportunity_text(o, i) for i, o in enumerate(ranking[1:3], start=2)) + "."


def _first_in_area(optimizations: Mapping[str, Any] | None, area: str) -> str | None:
    """The best-ranked opportunity of ``area`` as "#rank title (saves ...)", None when there is none."""
    for rank, o in enumerate((optimizations or {}).get("ranking") or [], start=1):
        if o.get("area") == area:
            saving = o.get("saving")
            shown = f"saves {saving_text(saving)}" if isinstance(saving, Mapping) else "saving not estimated"
            return f"#{rank} {o.get('title')} ({shown})"
    return None


def _database_text(optimizations: Mapping[str, Any] | None) -> str:
    if not optimizations:
        return _missing("50_optimizations")
    parts = []
    db = optimizations.get("database") or {}
    digest = db.get("digest") or []
    if digest:
        top = digest[0]
        spent = fmt.duration((db.get("total_ms") or 0) / 1000)
        parts.append(f"{fmt.count(db.get('total_calls'))} statements took {spent} "
                     f"of database time; the top fingerprint, {_short(top.get('fingerprint'))}, took "
                     f"{fmt.pct(top.get('share_of_db_time'), 1)} of it; "
                     f"{fmt.counted(len(db.get('regressions') or []), 'regression')}, "
                     f"{fmt.counted(len(db.get('nplus1') or []), 'N+1 pattern')}")
    profiles = optimizations.get("profiles") or {}
    code = _first_in_area(optimizations, "code")
    tops = [(s.get("service"), s["top_self"][0]) for s in profiles.get("services") or [] if s.get("top_self")]
    if code:
        parts.append(f"the first code change in the ranking is {code}")
    elif tops:
        service, frame = max(tops, key=lambda t: (t[1].get("self_share") or 0, str(t[0])))
        parts.append(f"in the code profiles the hottest frame is {_short(frame.get('frame'))} in {service} "
                     f"({fmt.pct(frame.get('self_share'), 1)} of its samples as self time)")
    if not parts:
        return "no query statistics and no profiles in the window."
    return "; ".join(parts) + "."


def _cdn_text(optimizations: Mapping[str, Any] | None, caching_headline: str | None) -> str:
    cdn = (optimizations or {}).get("cdn") or {}
    totals = cdn.get("totals") or {}
    if totals:
        text = (f"the edge answered {fmt.count(totals.get('requests'))} requests with a hit ratio of "
                f"{fmt.pct(totals.get('hit_ratio'), 1)} (byte hit ratio {fmt.pct(totals.get('byte_hit_ratio'), 1)})")
        first = _first_in_area(optimizations, "cdn")
        return text + (f"; the first CDN change in the ranking is {first}." if first else
                       "; no CDN change is projected to save origin traffic.")
    if caching_headline:
        return f"no CDN log in the window; the caching plan: {caching_headline}"
    return _missing("50_optimizations") if not optimizations else "no CDN log in the window."


def _scaling_text(scaling: Mapping[str, Any] | None) -> str:
    if not scaling:
        return _missing("60_scaling")
    grown = [v for v in scaling.get("services") or [] if (v.get("headroom") or {}).get("growth") is not None]
    if not grown:
        return "no service has a capacity limit the history can show (no knee, USL peak or SLO limit reached)."
    tight = min(grown, key=lambda v: (v["headroom"]["growth"], str(v.get("service"))))
    h = tight["headroom"]
    peak = f"{fmt.num(h.get('peak_rps'))} req/s on {fmt.counted(h.get('instances'), 'instance')}"
    if h["growth"] < 1:
        text = (f"the tightest service, {tight.get('service')}, has no headroom: its sustained peak ({peak}) is "
                f"already past {h.get('limited_by')}, which allows {fmt.num(h['growth'], 2)}× of today's load")
    else:
        text = (f"the tightest service, {tight.get('service')}, can grow {fmt.num(h['growth'], 2)}× from today's "
                f"sustained peak ({peak}) before {h.get('limited_by')}")
    if h.get("first_to_saturate"):
        text += f"; the first resource to saturate is {h['first_to_saturate']}"
    if h.get("at_risk"):
        text += "; the latency SLO is at risk at today's peak"
    return text + "."


def optimization_summary(results: Mapping[str, Any], caching_headline: str | None = None) -> list[Bullet]:
    """The five bullets of the optimization document; ``caching_headline`` (the caching plan's) stands in
    for the CDN bullet when the warehouse has no CDN log."""
    optimizations = results.get("optimizations")
    ranking = (optimizations or {}).get("ranking") or []
    return [
        Bullet("Top opportunity", _top_text(ranking, optimizations)),
        Bullet("Next", _next_text(ranking, optimizations)),
        Bullet("Database and code", _database_text(optimizations)),
        Bullet("CDN" if ((optimizations or {}).get("cdn") or {}).get("totals") or not caching_headline
               else "Caching", _cdn_text(optimizations, caching_headline)),
        Bullet("Scaling headroom", _scaling_text(results.get("scaling"))),
    ]
