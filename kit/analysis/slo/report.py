"""The SLO report notebook 20 shows: SLOs evaluated over the history, the alert plan, the backtest; and
the rule files (with their promtool test file), checked by promtool when it is installed.

This module ties the others together and is the only one that imports them all:
``spec`` <- ``loaders`` <- ``sli`` <- ``parameters`` / ``saturation`` <- ``alerts`` <- ``backtest`` <- ``report``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from kit.analysis.slo.alerts import AlertPlan, alert_plan, promtool_tests, rules_yaml, saturation_rules
from kit.analysis.slo.backtest import BacktestReport, backtest_slos, load_incidents
from kit.analysis.slo.loaders import load_slo_specs
from kit.analysis.slo.parameters import slos_from_parameters
from kit.analysis.slo.saturation import saturation_candidates, saturation_minutes
from kit.analysis.slo.sli import SloStatus, budget_note, evaluate_slo, history_bounds, minute_series
from kit.analysis.slo.spec import DEFAULT_PERIOD_DAYS, SloSpec, parse_duration_s
from kit.engine import Queryable
from kit.results import write_text_atomic

__all__ = ["SloHistory", "SloReport", "slo_report", "write_rule_files"]


@dataclass(frozen=True)
class SloReport:
    """What notebook 20 saves as ``slo``: SLOs, alert plan, backtest and the written rule files.

    ``alerts`` is the alert plan in the JSON shape the report sections read (``_plan_doc``: rules carry
    ``for``, a Python keyword, so it stays a mapping)."""

    window_days: float
    history: SloHistory
    budget_note: str
    slos: tuple[SloStatus, ...]
    alerts: dict[str, Any]
    backtest: BacktestReport
    rules_file: str = ""
    rules_test_file: str = ""
    promtool: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SloHistory:
    """The analysed history [start, end) in UTC and its length in days."""

    start: datetime
    end: datetime
    days: float


def _with_promql(specs: list[SloSpec]) -> list[SloSpec]:
    """The specs that have PromQL to alert on (an error-ratio query, or error and total queries)."""
    return [s for s in specs if s.error_ratio_query or (s.error_query and s.total_query)]


def slo_report(con: duckdb.DuckDBPyConnection, *, start: str | None = None, end: str | None = None,
               services: list[str] | None = None, availability_target: float | None = None,
               latency_threshold_ms: float = 500.0, latency_target: float | None = None,
               slo_window_days: float = DEFAULT_PERIOD_DAYS, slo_specs: list[str] | None = None,
               min_bad_events: int = 10, engine: Queryable | None = None
               ) -> tuple[SloReport, list[SloSpec], AlertPlan]:
    """Everything notebook 20 shows: SLOs from the parameters (or spec files), evaluated over the
    history; the alert plan; the backtest. Returns (report, specs, plan); write the rule files with
    ``write_rule_files``. ``engine`` counts the SLI events per minute (default: DuckDB on ``con``)."""
    heavy = engine if engine is not None else con
    first, last = history_bounds(con, start, end)
    history_days = (last - first).total_seconds() / 86400.0
    pairs: list[tuple[SloSpec, tuple[np.ndarray, np.ndarray]]] = []
    if slo_specs:
        known = {r[0] for r in con.execute("SELECT DISTINCT service FROM requests").fetchall()}
        seen: set[str] = set()
        for path in slo_specs:
            for spec in load_slo_specs(path, period_days=slo_window_days):
                if spec.slo_id in seen:  # the same SLO in two files: Prometheus needs unique groups
                    continue
                seen.add(spec.slo_id)
                spec = replace(spec, warehouse_service=spec.service if spec.service in known else None)
                if spec.warehouse_service is None and spec.evaluable:
                    spec = replace(spec, proposal_note=(spec.proposal_note + "; " if spec.proposal_note else "")
                                   + f"service {spec.service!r} is not in the warehouse: SLI over all requests")
                series = minute_series(heavy, spec, first, last) if spec.evaluable else (
                    np.zeros(0, np.int64), np.zeros(0, np.int64))
                pairs.append((spec, series))
    else:
        pairs = slos_from_parameters(con, services or [], start=first, end=last,
                                     availability_target=availability_target,
                                     latency_threshold_ms=latency_threshold_ms, latency_target=latency_target,
                                     window_days=slo_window_days, engine=heavy)
    statuses = tuple(evaluate_slo(con, spec, first, last, series=series) for spec, series in pairs)
    specs = [spec for spec, _ in pairs]
    candidates = saturation_candidates(con)
    saturation = saturation_rules(candidates)
    plan = alert_plan(_with_promql(specs), min_bad_events=min_bad_events, saturation=saturation)
    incidents = load_incidents(con, first, last)
    by_name = {c["name"]: c for c in candidates}
    saturation_series = [
        (rule.name, rule.threshold if rule.direction == "above" else -rule.threshold,
         int(parse_duration_s(rule.for_) // 60),
         saturation_minutes(con, by_name[rule.metric], first, last) * (1 if rule.direction == "above" else -1))
        for rule in saturation if rule.metric in by_name]
    backtest = backtest_slos([p for p in pairs if p[0].evaluable], first, incidents,
                             min_bad_events=min_bad_events, saturation=saturation_series)
    report = SloReport(
        window_days=float(slo_window_days),
        history=SloHistory(start=first, end=last, days=history_days),
        budget_note=budget_note(float(slo_window_days), history_days), slos=statuses,
        alerts=_plan_doc(plan), backtest=backtest)
    return report, specs, plan


def _plan_doc(plan: AlertPlan) -> dict[str, Any]:
    """The alert plan as the JSON shape the report sections read (rules with ``for``, not ``for_``)."""
    rules = []
    for r in plan.rules:
        rules.append({"name": r.name, "slo": r.slo, "slo_id": r.slo_id, "service": r.service,
                      "severity": r.severity, "severity_label": r.severity_label, "expr": r.expr,
                      "windows": [list(w) for w in r.windows], "burn_rates": list(r.burn_rates),
                      "thresholds": list(r.thresholds), "min_events": list(r.min_events), "for": r.for_,
                      "labels": r.labels, "warnings": list(r.warnings)})
    saturation = [{"name": s.name, "expr": s.expr, "severity": s.severity, "for": s.for_,
                   "description": s.description, "metric": s.metric, "threshold": s.threshold,
                   "direction": s.direction}
                  for s in plan.saturation]
    return {"period_days": plan.period_days, "windows": list(plan.windows), "rules": rules,
            "saturation": saturation, "min_traffic": plan.min_traffic}


def write_rule_files(directory: str | Path, specs: list[SloSpec], plan: AlertPlan, *,
                     rules_name: str = "slo_rules.yml", run_promtool: bool = True,
                     promtool_test: bool = True) -> dict[str, Any]:
    """Write the rule file and its promtool test file into ``directory``; run ``promtool check rules``
    and (``promtool_test``) ``promtool test rules`` when promtool is installed. Returns paths and promtool's
    verdicts (``{"ok": bool | None, "output": str}`` under ``check`` and ``test``); ``rules_name`` and
    ``rules_test_name`` are the bare file names (what a result should record: run folders move)."""
    folder = Path(directory)
    rules_path = folder / rules_name
    test_path = folder / (Path(rules_name).stem + "_test.yml")
    promql_specs = _with_promql(specs)
    write_text_atomic(rules_path, rules_yaml(promql_specs, plan))
    write_text_atomic(test_path, promtool_tests(promql_specs, plan, rules_path.name))
    out: dict[str, Any] = {"rules_file": str(rules_path), "rules_test_file": str(test_path),
                           "rules_name": rules_path.name, "rules_test_name": test_path.name}
    binary = shutil.which("promtool")
    if run_promtool and binary:
        runs: list[tuple[str, list[str], Path | None]] = [("check", ["check", "rules", str(rules_path)], None)]
        if promtool_test:
            runs.append(("test", ["test", "rules", test_path.name], folder))
        for key, args, cwd in runs:
            done = subprocess.run([binary, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
            out[key] = {"ok": done.returncode == 0, "output": (done.stdout + done.stderr)[-2000:]}
    elif run_promtool:
        out["check"] = out["test"] = {"ok": None, "output": "promtool not installed"}
    return out
