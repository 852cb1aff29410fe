"""SLO, error-budget, alert-rule and backtest sections for the strategy documents.

Input is the ``slo`` result the notebook ``20_slos_alerting`` saved (``kit.results.load_result(dir, "slo")``,
the JSON of ``kit.analysis.slo.SloReport``). Two entry points:

- ``slo_section_model(slo_result) -> dict``: the rows and sentences of the Markdown section, as plain
  text formatted by ``kit.fmt`` (code spans marked); the partial ``templates/partials/slo.md.j2`` renders
  it and the renderer escapes every value. ``slo_section_markdown`` renders the partial alone.
- ``slo_catalog(slo_result) -> {"slos": [...], "alerts": [...]}``: items for
  ``Metrics_Framework_Specifications.json`` (schema ``$defs/slo`` and ``$defs/alert``).
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from kit import fmt
from kit.report.render import render_markdown
from kit.report.text import md_code

__all__ = ["reset_text", "slo_catalog", "slo_section_markdown", "slo_section_model"]


def _window_days_text(days: float | None) -> str:
    return fmt.NA if days is None else f"{days:g}d"


def _slo_rows(slos: list[dict]) -> list[list[str]]:
    rows = []
    for slo in slos:
        objective = fmt.pct(slo.get("objective"), 5, significant=True)
        if slo.get("objective_source") == "proposed":
            objective += " (proposed)"
        method = slo.get("budgeting_method") or "Occurrences"
        budget = fmt.num(slo.get("budget_events"))
        if method == "Timeslices":
            budget += " bad slices"
        rows.append([
            slo.get("name", ""), slo.get("service") or "all",
            f"{slo.get('sli_kind', '')}: {(slo.get('sli') or {}).get('description', '')}",
            f"{objective} over {_window_days_text(slo.get('window_days'))} ({method})",
            fmt.pct(slo.get("achieved"), 5, significant=True), budget,
            fmt.pct(slo.get("consumed_ratio"), 3, significant=True),
            fmt.pct(slo.get("remaining_ratio"), 3, significant=True)])
    return rows


def _alert_rows(alerts: dict) -> list[list[str]]:
    return [[rule.get("name", ""), rule.get("slo", ""), rule.get("severity", ""),
             ", ".join(f"{w[0]}/{w[1]}" for w in rule.get("windows", [])),
             ", ".join(f"{b:g}×" for b in rule.get("burn_rates", [])),
             ", ".join(f"{t:.4g}" for t in rule.get("thresholds", []))] for rule in alerts.get("rules", [])]


def _policy_rows(policies: list[dict]) -> list[list[str]]:
    return [[p.get("policy", ""), fmt.num(p.get("episodes")), fmt.num(p.get("per_week")),
             fmt.pct(p.get("precision"), 3, significant=True), fmt.pct(p.get("recall"), 3, significant=True),
             fmt.duration(p.get("mean_delay_s")), fmt.duration(p.get("max_delay_s")),
             fmt.duration(p.get("mean_reset_s")), fmt.count(p.get("cleared_early"))] for p in policies]


def reset_text(reset_s: float | None, cleared_early_s: float | None = None) -> str:
    """An incident's reset time: how long its alert kept firing after the incident's end, or, when the alert
    had stopped before the end, by how much (``0 s, stopped 5.0 min before the end``)."""
    if cleared_early_s:
        return f"{fmt.duration(reset_s or 0.0)}, stopped {fmt.duration(cleared_early_s)} before the end"
    return fmt.duration(reset_s)


def _incident_rows(incidents: list[dict]) -> list[list[str]]:
    rows = []
    for inc in incidents:
        caught = (inc.get("alert") or inc.get("severity")) if inc.get("detected") else "not caught"
        rows.append([inc.get("what", ""), inc.get("type") or "", inc.get("service") or "all",
                     fmt.timestamp(inc.get("ts_start", fmt.NA)), inc.get("slo") or "", fmt.num(inc.get("burn_rate")),
                     fmt.pct(inc.get("budget_consumed_ratio"), 3, significant=True),
                     "yes" if inc.get("burns_budget") else "no", caught or "",
                     fmt.duration(inc.get("delay_s")), reset_text(inc.get("reset_s"), inc.get("cleared_early_s"))])
    return rows


def _kit_note(text: str | None) -> Markup:
    """A note the analyses wrote themselves (kit.analysis.slo, alerts, backtest: prose and numbers, no text
    from data), kept as written on one line."""
    return Markup(str(text or "").replace("\n", " "))


def slo_section_model(slo_result: dict) -> dict[str, Any]:
    """What the SLO / error budget / alerting / backtest section shows: plain values (text from data
    unescaped), tables as rows of formatted cells."""
    history = slo_result.get("history") or {}
    alerts = slo_result.get("alerts") or {}
    backtest = slo_result.get("backtest") or {}
    slos = slo_result.get("slos", [])
    return {
        "window": _window_days_text(slo_result.get("window_days")),
        "history": {"start": fmt.timestamp(history.get("start", fmt.NA)),
                    "end": fmt.timestamp(history.get("end", fmt.NA)),
                    "days": fmt.counted(history.get("days"), "day")},
        "budget_note": _kit_note(slo_result.get("budget_note")),
        "slo_rows": _slo_rows(slos),
        "proposed": [(s.get("name", ""), s.get("proposal_note", ""))
                     for s in slos if s.get("objective_source") == "proposed"],
        "period_days": fmt.num(alerts.get("period_days")),
        "window_rows": [[w.get("severity", ""), w.get("long_window", ""), w.get("short_window", ""),
                         f"{fmt.num(w.get('error_budget_percent'))}%", f"{fmt.num(w.get('burn_rate'), 6)}×"]
                        for w in alerts.get("windows", [])],
        "alert_rows": _alert_rows(alerts),
        "warnings": [(rule.get("name", ""), rule.get("severity", ""), w)
                     for rule in alerts.get("rules", []) for w in rule.get("warnings") or []],
        "min_traffic": _kit_note((alerts.get("min_traffic") or {}).get("description")),
        "saturation_rows": [[s.get("name", ""), s.get("severity", ""), s.get("for") or "",
                             Markup(md_code(s.get("expr", "")))] for s in alerts.get("saturation", [])],
        "rule_files": [Markup(md_code(f)) for f in (slo_result.get("rules_file"), slo_result.get("rules_test_file"))
                       if f],
        "backtest": {
            "resolution_s": fmt.num(backtest.get("resolution_s")), "weeks": fmt.counted(backtest.get("weeks"), "week"),
            "note": _kit_note(backtest.get("note")),
            "policy_rows": _policy_rows(backtest.get("policies", [])),
            "chosen_policy": backtest.get("chosen_policy", ""),
            "incident_rows": _incident_rows(backtest.get("incidents") or []),
        } if backtest else None,
    }


def slo_section_markdown(slo_result: dict) -> str:
    """The SLO section alone as Markdown (starts at heading level 2), as the monitoring strategy
    includes it."""
    return render_markdown("partials/slo.md.j2", slo=slo_section_model(slo_result))


def _window_text(days: float | None) -> str:
    if days is None:
        return "30d"
    return f"{days:g}d" if float(days) >= 1 else f"{float(days) * 24:g}h"


def slo_catalog(slo_result: dict) -> dict:
    """``{"slos": [...], "alerts": [...]}`` for Metrics_Framework_Specifications.json."""
    slos = []
    for slo in slo_result.get("slos", []):
        sli = slo.get("sli") or {}
        slos.append({
            "name": slo.get("name"),
            "service": slo.get("service"),
            "objective": slo.get("objective"),
            "objective_source": slo.get("objective_source"),
            "window": _window_text(slo.get("window_days")),
            "budgeting_method": slo.get("budgeting_method") or "Occurrences",
            "timeslice_window_s": slo.get("timeslice_window_s"),
            "timeslice_target": slo.get("timeslice_target"),
            "sli": {
                "kind": slo.get("sli_kind"),
                "description": sli.get("description"),
                "sql": sli.get("sql"),
                "promql_error": sli.get("promql_error"),
                "promql_total": sli.get("promql_total"),
                "latency_threshold_ms": slo.get("latency_threshold_ms"),
            },
            "achieved": slo.get("achieved"),
            "error_budget": slo.get("error_budget_ratio"),
            "consumed": slo.get("consumed_ratio"),
            "remaining": slo.get("remaining_ratio"),
        })
    alerts_part = slo_result.get("alerts") or {}
    scores = {}
    for p in (slo_result.get("backtest") or {}).get("by_rule", []):
        scores[(p.get("slo"), p.get("severity"))] = p
    alerts = []
    for rule in alerts_part.get("rules", []):
        score = scores.get((rule.get("slo"), rule.get("severity")))
        alerts.append({
            "name": rule.get("name"),
            "slo": rule.get("slo"),
            "expr": rule.get("expr"),
            "severity": rule.get("severity"),
            "windows": [{"long": w[0], "short": w[1]} for w in rule.get("windows", [])],
            "burn_rate": max(rule.get("burn_rates") or [0]) or None,
            "burn_rates": rule.get("burn_rates"),
            "for": rule.get("for"),
            "backtest": None if score is None else {
                k: score.get(k) for k in ("episodes", "per_week", "precision", "recall",
                                          "mean_delay_s", "max_delay_s", "mean_reset_s")
            },
        })
    for s in alerts_part.get("saturation", []):
        alerts.append({"name": s.get("name"), "expr": s.get("expr"), "severity": s.get("severity"),
                       "windows": None, "burn_rate": None, "for": s.get("for"), "backtest": None})
    return {"slos": slos, "alerts": alerts}
