"""SLO, error-budget, alert-rule and backtest sections for the strategy documents.

Input is the ``slo`` result the notebook ``20_slos_alerting`` saved (``kit.results.load_result(dir, "slo")``,
the JSON of ``kit.analysis.slo.SloReport``). Two entry points:

- ``slo_section_markdown(slo_result) -> str``: Markdown (SLOs and budgets, alert rules, backtest tables);
  every value that came from data or specs (service, route, SLO names, expressions) is escaped.
- ``slo_catalog(slo_result) -> {"slos": [...], "alerts": [...]}``: items for
  ``Metrics_Framework_Specifications.json`` (schema ``$defs/slo`` and ``$defs/alert``).
"""

from __future__ import annotations

from kit.report.text import md_code, md_table
from kit.report.text import md_escape as md_text

__all__ = ["slo_catalog", "slo_section_markdown"]

def _pct(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.{digits}g}%"


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _window_days_text(days: float | None) -> str:
    if days is None:
        return "n/a"
    return f"{days:g}d"


def _slo_rows(slos: list[dict]) -> list[str]:
    rows = []
    for slo in slos:
        objective = _pct(slo.get("objective"), 5)
        if slo.get("objective_source") == "proposed":
            objective += " (proposed)"
        method = slo.get("budgeting_method") or "Occurrences"
        budget = _num(slo.get("budget_events"))
        if method == "Timeslices":
            budget += " bad slices"
        rows.append([
            md_text(slo.get("name", "")), md_text(slo.get("service") or "all"),
            f"{md_text(slo.get('sli_kind', ''))}: {md_text((slo.get('sli') or {}).get('description', ''))}",
            f"{objective} over {_window_days_text(slo.get('window_days'))} ({md_text(method)})",
            _pct(slo.get("achieved"), 5), budget, _pct(slo.get("consumed_ratio"), 3),
            _pct(slo.get("remaining_ratio"), 3)])
    return md_table(["SLO", "service", "SLI", "objective", "achieved", "budget (bad events / window)", "consumed",
                     "remaining"], rows)


def _alert_rows(alerts: dict) -> list[str]:
    rows = []
    for rule in alerts.get("rules", []):
        windows = ", ".join(f"{w[0]}/{w[1]}" for w in rule.get("windows", []))
        burns = ", ".join(f"{b:g}×" for b in rule.get("burn_rates", []))
        thresholds = ", ".join(f"{t:.4g}" for t in rule.get("thresholds", []))
        rows.append([md_text(rule.get("name", "")), md_text(rule.get("slo", "")),
                     md_text(rule.get("severity", "")), windows, burns, thresholds])
    return md_table(["alert", "SLO", "severity", "windows (long/short)", "burn rate", "error-ratio threshold"], rows)


def _policy_rows(policies: list[dict]) -> list[str]:
    rows = [[md_text(p.get("policy", "")), _num(p.get("episodes")), _num(p.get("per_week")),
             _pct(p.get("precision")), _pct(p.get("recall")), _duration(p.get("mean_delay_s")),
             _duration(p.get("max_delay_s")), _duration(p.get("mean_reset_s"))] for p in policies]
    return md_table(["policy", "alert episodes", "per week", "precision", "recall", "mean delay", "max delay",
                     "mean reset"], rows)


def _incident_rows(incidents: list[dict]) -> list[str]:
    rows = []
    for inc in incidents:
        caught = (inc.get("alert") or inc.get("severity")) if inc.get("detected") else "not caught"
        rows.append([md_text(inc.get("what", "")), md_text(inc.get("type") or ""),
                     md_text(inc.get("service") or "all"), md_text(inc.get("ts_start", "")),
                     md_text(inc.get("slo") or ""), _num(inc.get("burn_rate")), _pct(inc.get("budget_consumed_ratio")),
                     "yes" if inc.get("burns_budget") else "no", md_text(caught or ""),
                     _duration(inc.get("delay_s")), _duration(inc.get("reset_s"))])
    return md_table(["incident", "type", "service", "start (UTC)", "SLO", "mean burn", "budget consumed",
                     "burns budget", "first alert", "delay", "reset"], rows)


def slo_section_markdown(slo_result: dict) -> str:
    """The SLO / error budget / alerting / backtest section of the monitoring strategy, as Markdown
    (starts at heading level 2)."""
    out: list[str] = ["## Service level objectives and error budgets", ""]
    history = slo_result.get("history") or {}
    out.append(
        f"Window: rolling {_window_days_text(slo_result.get('window_days'))}. History analysed: "
        f"{md_text(history.get('start', 'n/a'))} to {md_text(history.get('end', 'n/a'))} "
        f"({_num(history.get('days'))} days)."
    )
    if slo_result.get("budget_note"):  # written by kit.analysis.slo, no data inside but numbers
        out += ["", str(slo_result["budget_note"]).replace("\n", " ")]
    slos = slo_result.get("slos", [])
    out += [""] + _slo_rows(slos)
    proposed = [s for s in slos if s.get("objective_source") == "proposed"]
    if proposed:
        out += ["", "Objectives marked *proposed* were not given; they were derived from the history:", ""]
        out += [f"- {md_text(s.get('name', ''))}: {md_text(s.get('proposal_note', ''))}" for s in proposed]

    alerts = slo_result.get("alerts") or {}
    out += ["", "## Alert rules", ""]
    out.append(
        "Multi-window, multi-burn-rate alerts (Google SRE workbook): an alert fires when the error ratio "
        "over both the long and the short window exceeds burn rate × error budget. Window set for a "
        f"{_num(alerts.get('period_days'))}-day SLO period:"
    )
    out += ["", *md_table(["severity", "long window", "short window", "budget consumed", "burn rate"], (
        [md_text(w.get("severity", "")), md_text(w.get("long_window", "")), md_text(w.get("short_window", "")),
         f"{_num(w.get('error_budget_percent'))}%", f"{_num(w.get('burn_rate'), 6)}×"]
        for w in alerts.get("windows", [])))]
    out += ["", *_alert_rows(alerts)]
    warnings = [(rule, w) for rule in alerts.get("rules", []) for w in rule.get("warnings") or []]
    if warnings:
        out += ["", "Window pairs that cannot fire:", ""]
        out += [f"- {md_text(rule.get('name', ''))} ({md_text(rule.get('severity', ''))}): {md_text(w)}"
                for rule, w in warnings]
    guard = alerts.get("min_traffic") or {}
    if guard:  # description written by kit.analysis.alerts
        out += ["", f"Minimum-traffic guard: {guard.get('description', '')}."]
    saturation = alerts.get("saturation", [])
    if saturation:
        out += ["", "Saturation alerts:", "", *md_table(["alert", "severity", "for", "expression"], (
            [md_text(s.get("name", "")), md_text(s.get("severity", "")), md_text(s.get("for") or ""),
             md_code(s.get("expr", ""))] for s in saturation))]
    files = [f for f in (slo_result.get("rules_file"), slo_result.get("rules_test_file")) if f]
    if files:
        out += ["", "Rule file and its promtool unit test (in the run's results folder): "
                + ", ".join(md_code(f) for f in files) + "."]

    backtest = slo_result.get("backtest") or {}
    if backtest:
        out += ["", "## Alert backtest", ""]
        out.append(
            "The same alert logic replayed over the warehouse history at "
            f"{_num(backtest.get('resolution_s'))}-second resolution "
            f"({_num(backtest.get('weeks'))} weeks), scored against the recorded incidents."
        )
        if backtest.get("note"):  # written by kit.analysis.backtest
            out += ["", str(backtest["note"]).replace("\n", " ")]
        out += ["", *_policy_rows(backtest.get("policies", []))]
        if backtest.get("incidents"):
            chosen = md_text(backtest.get("chosen_policy", ""))
            out += ["", f"Incidents and the chosen policy ({chosen}):", ""]
            out += _incident_rows(backtest["incidents"])
    return "\n".join(out) + "\n"


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
