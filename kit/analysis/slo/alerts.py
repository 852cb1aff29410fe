"""Multi-window, multi-burn-rate alert rules (Google SRE workbook) as Prometheus rule files, with a
generated promtool unit-test file.

Window specs follow Sloth's ``AlertWindows``: each alert pair says "page/ticket when
``error_budget_percent`` of the period's budget is consumed within ``long_window``" and its burn-rate
factor is ``error_budget_percent / 100 x period / long_window`` (Sloth's formula). The Google 30-day
spec gives 14.4x (1h/5m), 6x (6h/30m), 3x (1d/2h) and 1x (3d/6h); the 28-day spec is built in too; any
other period keeps the 30-day spec's windows and budget percents, so the factors scale with the
period exactly as Sloth computes them (a custom ``AlertWindows`` file can be loaded instead).

The rule file mirrors Sloth's output (same recording names ``slo:sli_error:ratio_rate<w>``, same
labels ``sloth_id/sloth_service/sloth_slo/sloth_window``, same alert expressions) so Sloth's Grafana
dashboards work on it. Deliberate differences from Sloth:

- no ``cmd`` label (Sloth's CLI adds extra labels on request) and the info rule is ``perfkit_slo_info``
  (labels ``perfkit_version``/``perfkit_spec`` instead of ``sloth_mode/sloth_spec/sloth_version``);
- an optional minimum-traffic guard (off unless ``min_bad_events`` is set; on for SLOs built from the
  warehouse): each window pair also needs ``ceil(min_bad_events / threshold)`` events in its long
  window, recorded as ``slo:sli_total:events<w>`` — so a quiet service cannot page on one error;
- optional saturation alerts (``saturation_rules``) in their own group;
- OpenSLO specs get page and ticket alerts too (Sloth generates none for OpenSLO, which has no alerting
  section); their alert name is ``<service>-<slo>-page`` / ``-ticket``;
- specs whose period has no window spec of its own keep the 30-day budget percents with factors
  rescaled (Sloth refuses such periods unless given an AlertWindows file, which perfkit also accepts).

Everything else — the recording rules per window, the period recording, the meta recordings, the alert
expressions and their labels and annotations — matches Sloth's output for all its examples (checked by
``tests/test_alerts.py`` with whitespace-normalized expressions and thresholds to 1e-9).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kit.analysis.slo.spec import SloSpec, format_duration, parse_duration_s
from kit.errors import SloSpecError

__all__ = [
    "GOOGLE_28D", "GOOGLE_30D", "AlertPlan", "AlertRule", "AlertWindow", "SaturationRule", "alert_plan",
    "load_alert_windows", "promtool_tests", "rule_groups", "rules_yaml", "saturation_rules", "window_specs",
]


@dataclass(frozen=True)
class AlertWindow:
    """One window pair: ``severity`` page or ticket, ``speed`` quick or slow, windows in seconds."""

    severity: str
    speed: str
    long_window_s: float
    short_window_s: float
    error_budget_percent: float
    period_s: float

    @property
    def burn_rate(self) -> float:
        """Sloth's factor: error_budget_percent / 100 x period / long window."""
        return self.error_budget_percent / 100.0 * self.period_s / self.long_window_s

    @property
    def long_window(self) -> str:
        return format_duration(self.long_window_s)

    @property
    def short_window(self) -> str:
        return format_duration(self.short_window_s)

    def as_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "speed": self.speed, "long_window": self.long_window,
                "short_window": self.short_window, "error_budget_percent": self.error_budget_percent,
                "burn_rate": self.burn_rate, "long_window_s": self.long_window_s,
                "short_window_s": self.short_window_s}


def _spec(period_days: float, rows: list[tuple[str, str, float, str, str]]) -> tuple[AlertWindow, ...]:
    return tuple(AlertWindow(sev, speed, parse_duration_s(long), parse_duration_s(short), pct,
                             period_days * 86400.0) for sev, speed, pct, short, long in rows)


_GOOGLE_ROWS = [("page", "quick", 2.0, "5m", "1h"), ("page", "slow", 5.0, "30m", "6h"),
                ("ticket", "quick", 10.0, "2h", "1d"), ("ticket", "slow", 10.0, "6h", "3d")]
GOOGLE_30D = _spec(30, _GOOGLE_ROWS)
GOOGLE_28D = _spec(28, _GOOGLE_ROWS)


def window_specs(period_days: float) -> tuple[AlertWindow, ...]:
    """Window specs for an SLO period: Google's for 30 and 28 days; for other periods the 30-day windows
    and budget percents with factors rescaled by Sloth's formula (``burn_rate`` property)."""
    if period_days <= 0:
        raise SloSpecError(f"SLO period must be positive, got {period_days} days")
    return _spec(period_days, _GOOGLE_ROWS)


def load_alert_windows(path: str | Path) -> tuple[AlertWindow, ...]:
    """A Sloth ``AlertWindows`` YAML file (``sloth.slok.dev/v1``) as window specs."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or data.get("kind") != "AlertWindows":
        raise SloSpecError(f"{path}: not a Sloth AlertWindows document (kind: AlertWindows)")
    spec = data.get("spec") or {}
    try:
        period_s = parse_duration_s(spec["sloPeriod"])
        out = []
        for severity in ("page", "ticket"):
            for speed in ("quick", "slow"):
                w = spec[severity][speed]
                out.append(AlertWindow(severity, speed, parse_duration_s(w["longWindow"]),
                                       parse_duration_s(w["shortWindow"]), float(w["errorBudgetPercent"]),
                                       period_s))
    except (KeyError, TypeError) as exc:
        raise SloSpecError(f"{path}: field {exc} missing in spec (sloPeriod, page/ticket quick/slow)") from None
    return tuple(out)


@dataclass(frozen=True)
class AlertRule:
    """One generated alert: the PromQL and the window pairs it combines."""

    name: str
    slo: str
    slo_id: str
    service: str
    severity: str                       # page | ticket (Sloth's sloth_severity)
    severity_label: str                 # the routing label value (critical, warning, ...)
    expr: str
    windows: tuple[tuple[str, str], ...]
    burn_rates: tuple[float, ...]
    thresholds: tuple[float, ...]       # error-ratio thresholds = burn_rate x error budget
    min_events: tuple[int, ...] = ()    # minimum-traffic guard per pair (events in the long window)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    for_: str | None = None
    warnings: tuple[str, ...] = ()      # e.g. a pair whose threshold is >= 1 and so can never fire


@dataclass(frozen=True)
class SaturationRule:
    """A saturation alert on a resource metric."""

    name: str
    expr: str
    severity: str
    for_: str
    description: str
    metric: str
    threshold: float
    direction: str = "above"            # fires when the signal is above (or below) the threshold


@dataclass(frozen=True)
class AlertPlan:
    """All alert rules for a set of SLOs and how they were built."""

    period_days: float
    windows: tuple[dict[str, Any], ...]
    rules: tuple[AlertRule, ...]
    saturation: tuple[SaturationRule, ...]
    min_traffic: dict[str, Any]
    custom_windows: tuple[AlertWindow, ...] = ()   # a loaded Sloth AlertWindows spec, if any


# ------------------------------------------------------------------------------------------ PromQL text

def _fmt(value: float) -> str:
    """A float as Go's %v writes it (shortest round-trip; 6 not 6.0)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _selector(spec: SloSpec) -> str:
    return (f'sloth_id="{spec.slo_id}", sloth_service="{spec.service}", sloth_slo="{spec.name}"')


def _window_query(query: str, window: str) -> str:
    return re.sub(r"\{\{\s*\.window\s*\}\}", window, query)


def _sli_expr(spec: SloSpec, window: str) -> str:
    if spec.error_ratio_query is not None:
        return "(" + _window_query(spec.error_ratio_query, window) + ")\n"
    if spec.error_query is None or spec.total_query is None:
        raise SloSpecError(f"{spec.source}: SLO {spec.slo_id}: no PromQL SLI (needs error and total queries, or "
                         "good/bad and total queries) - cannot generate Prometheus rules for it")
    return (f"({_window_query(spec.error_query, window).strip()})\n/\n"
            f"({_window_query(spec.total_query, window).strip()})\n")


def _base_labels(spec: SloSpec) -> dict[str, str]:
    return {**spec.labels, "sloth_id": spec.slo_id, "sloth_service": spec.service, "sloth_slo": spec.name}


def _windows_used(windows: tuple[AlertWindow, ...]) -> list[float]:
    used = {w.short_window_s for w in windows} | {w.long_window_s for w in windows}
    return sorted(used)


def _min_events(threshold: float, min_bad_events: int | None) -> int | None:
    if not min_bad_events:
        return None
    return int(math.ceil(min_bad_events / threshold - 1e-9))


def _alert_expr(spec: SloSpec, pairs: list[AlertWindow], guards: list[int | None]) -> str:
    sel = _selector(spec)
    budget = _fmt(spec.error_budget_ratio)
    parts = []
    for w, guard in zip(pairs, guards, strict=True):
        factor = _fmt(w.burn_rate)
        lines = [
            f"    max(slo:sli_error:ratio_rate{w.short_window}{{{sel}}} > ({factor} * {budget})) "
            "without (sloth_window)",
            "    and",
            f"    max(slo:sli_error:ratio_rate{w.long_window}{{{sel}}} > ({factor} * {budget})) "
            "without (sloth_window)",
        ]
        if guard is not None:
            lines += ["    and on(sloth_id, sloth_slo, sloth_service)",
                      f"    max(slo:sli_total:events{w.long_window}{{{sel}}} >= {guard}) without (sloth_window)"]
        parts.append("(\n" + "\n".join(lines) + "\n)")
    return "\nor\n".join(parts) + "\n"


def alert_plan(specs: list[SloSpec], *, windows: tuple[AlertWindow, ...] | None = None,
               min_bad_events: int | None = None, saturation: tuple[SaturationRule, ...] = ()
               ) -> AlertPlan:
    """Page and ticket alerts for each SLO. Custom ``windows`` (a Sloth AlertWindows spec) must have the
    SLOs' period, as Sloth requires."""
    rules: list[AlertRule] = []
    periods = {s.window_days for s in specs} or {30.0}
    period = next(iter(periods)) if len(periods) == 1 else max(periods)
    if windows:
        window_days = windows[0].period_s / 86400.0
        wrong = sorted({s.slo_id for s in specs if abs(s.window_days - window_days) > 1e-9})
        if wrong:
            raise SloSpecError(f"alert windows are for a {window_days:g}-day SLO period but SLO(s) "
                             f"{', '.join(wrong)} have another period (set it with --period-days)")
    for spec in specs:
        spec_windows = windows or window_specs(spec.window_days)
        for severity in ("page", "ticket"):
            disabled = spec.alerting.page_disabled if severity == "page" else spec.alerting.ticket_disabled
            if disabled:
                continue
            pairs = [w for w in spec_windows if w.severity == severity]
            thresholds = tuple(w.burn_rate * spec.error_budget_ratio for w in pairs)
            # the guard needs a total-events query (a per-second rate); raw error-ratio SLIs have none
            guards = [_min_events(t, min_bad_events if spec.total_query else None) for t in thresholds]
            labels, annotations = _alert_labels(spec, severity)
            warnings = tuple(
                f"{w.long_window}/{w.short_window} at {w.burn_rate:g}x needs an error ratio above {t:.3g}: it can "
                f"never fire with an objective of {spec.objective:.5g} (tighten the SLI or the objective)"
                for w, t in zip(pairs, thresholds, strict=True) if t >= 1.0)
            rules.append(AlertRule(
                name=spec.alerting.name or f"{spec.slo_id}-{severity}", slo=spec.name, slo_id=spec.slo_id,
                service=spec.service, severity=severity, severity_label=labels.get("severity", severity),
                expr=_alert_expr(spec, pairs, guards),
                windows=tuple((w.long_window, w.short_window) for w in pairs),
                burn_rates=tuple(w.burn_rate for w in pairs), thresholds=thresholds,
                min_events=tuple(g for g in guards if g is not None), labels=labels, annotations=annotations,
                warnings=warnings,
            ))
    window_rows = tuple(w.as_dict() for w in (windows or window_specs(period)))
    guard_doc: dict[str, Any] = {}
    if min_bad_events:
        guard_doc = {"min_bad_events": min_bad_events, "description": (
            f"each window pair fires only when its long window holds at least {min_bad_events} bad "
            "events' worth of traffic at the pair's threshold (min events = "
            f"ceil({min_bad_events} / threshold)), so a quiet service does not page on a single error")}
    return AlertPlan(period_days=float(period), windows=window_rows, rules=tuple(rules),
                     saturation=tuple(saturation), min_traffic=guard_doc, custom_windows=tuple(windows or ()))


def _alert_labels(spec: SloSpec, severity: str) -> tuple[dict[str, str], dict[str, str]]:
    a = spec.alerting
    extra = a.page_labels if severity == "page" else a.ticket_labels
    labels = {**a.labels, **extra, "sloth_severity": severity}
    extra_ann = a.page_annotations if severity == "page" else a.ticket_annotations
    annotations = {
        "summary": "{{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is over expected.",
        "title": f"({severity}) {{{{$labels.sloth_service}}}} {{{{$labels.sloth_slo}}}} SLO error budget "
                 "burn rate is too fast.",
        **a.annotations, **extra_ann,
    }
    return labels, annotations


# ------------------------------------------------------------------------------------------ rule file

class _Literal(str):
    """A string YAML writes as a literal block."""


def _literal_representer(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style=style)


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal_representer)


def rule_groups(specs: list[SloSpec], plan: AlertPlan, windows: tuple[AlertWindow, ...] | None = None
                ) -> list[dict[str, Any]]:
    """The rule groups (Sloth's three groups per SLO, plus saturation), as plain data."""
    groups: list[dict[str, Any]] = []
    guards_by_slo: dict[str, set[str]] = {}
    for rule in plan.rules:
        if rule.min_events:
            guards_by_slo.setdefault(rule.slo_id, set()).update(w[0] for w in rule.windows)
    for spec in specs:
        base = _base_labels(spec)
        sel = _selector(spec)
        recordings: list[dict[str, Any]] = []
        for seconds in _windows_used(windows or plan.custom_windows or window_specs(spec.window_days)):
            w = format_duration(seconds)
            recordings.append({"record": f"slo:sli_error:ratio_rate{w}", "expr": _Literal(_sli_expr(spec, w)),
                               "labels": {**base, "sloth_window": w}})
        for w in sorted(guards_by_slo.get(spec.slo_id, set()), key=parse_duration_s):
            total = spec.total_query or ""
            recordings.append({
                "record": f"slo:sli_total:events{w}",
                "expr": _Literal(f"({_window_query(total, w).strip()}) * {int(parse_duration_s(w))}\n"),
                "labels": {**base, "sloth_window": w}})
        period = format_duration(spec.window_days * 86400)
        recordings.append({"record": f"slo:sli_error:ratio_rate{period}", "expr": _Literal(
            f"sum_over_time(slo:sli_error:ratio_rate5m{{{sel}}}[{period}])\n/ ignoring (sloth_window)\n"
            f"count_over_time(slo:sli_error:ratio_rate5m{{{sel}}}[{period}])\n"),
            "labels": {**base, "sloth_window": period}})
        groups.append({"name": f"sloth-slo-sli-recordings-{spec.slo_id}", "rules": recordings})
        objective = _fmt(spec.objective_percent / 100.0)
        meta = [
            {"record": "slo:objective:ratio", "expr": f"vector({objective})", "labels": dict(base)},
            {"record": "slo:error_budget:ratio", "expr": f"vector(1-{objective})", "labels": dict(base)},
            {"record": "slo:time_period:days", "expr": f"vector({_fmt(spec.window_days)})", "labels": dict(base)},
            {"record": "slo:current_burn_rate:ratio", "expr": _Literal(
                f"slo:sli_error:ratio_rate5m{{{sel}}}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\n"
                f"slo:error_budget:ratio{{{sel}}}\n"), "labels": dict(base)},
            {"record": "slo:period_burn_rate:ratio", "expr": _Literal(
                f"slo:sli_error:ratio_rate{period}{{{sel}}}\n/ on(sloth_id, sloth_slo, sloth_service) "
                f"group_left\nslo:error_budget:ratio{{{sel}}}\n"), "labels": dict(base)},
            {"record": "slo:period_error_budget_remaining:ratio",
             "expr": f"1 - slo:period_burn_rate:ratio{{{sel}}}", "labels": dict(base)},
            {"record": "perfkit_slo_info", "expr": "vector(1)", "labels": {
                **base, "sloth_objective": _fmt(spec.objective_percent), "perfkit_spec": spec.spec_version}},
        ]
        groups.append({"name": f"sloth-slo-meta-recordings-{spec.slo_id}", "rules": meta})
        alerts = []
        for rule in plan.rules:
            if rule.slo_id != spec.slo_id:
                continue
            item: dict[str, Any] = {"alert": rule.name, "expr": _Literal(rule.expr)}
            if rule.for_:
                item["for"] = rule.for_
            item["labels"] = dict(rule.labels)
            item["annotations"] = dict(rule.annotations)
            alerts.append(item)
        if alerts:
            groups.append({"name": f"sloth-slo-alerts-{spec.slo_id}", "rules": alerts})
    if plan.saturation:
        groups.append({"name": "perfkit-saturation-alerts", "rules": [
            {"alert": s.name, "expr": _Literal(s.expr), "for": s.for_,
             "labels": {"severity": s.severity, "perfkit_kind": "saturation"},
             "annotations": {"summary": s.description}} for s in plan.saturation]})
    return groups


def rules_yaml(specs: list[SloSpec], plan: AlertPlan, windows: tuple[AlertWindow, ...] | None = None) -> str:
    """The Prometheus rule file text (``windows``: custom window specs, as given to ``alert_plan``)."""
    header = "# Generated by perfkit (kit.analysis.slo.alerts): SLO recording rules and burn-rate alerts.\n"
    body = yaml.dump({"groups": rule_groups(specs, plan, windows)}, Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, width=1000, allow_unicode=True)
    return header + body


# ------------------------------------------------------------------------------------------ saturation

def saturation_rules(metric_summaries: list[dict[str, Any]], *, for_: str = "5m") -> tuple[SaturationRule, ...]:
    """Saturation alerts for resource signals: ``metric_summaries`` items have ``name``, optional ``expr``
    (PromQL of the signal), ``p99`` / ``max`` over the history and optional ``limit`` (1.0 for ratios).
    The threshold is 90% of the limit when known, else 1.2 x the history's p99. Items with
    ``direction: below`` and an explicit ``threshold`` (e.g. a cache hit ratio collapsing) fire when the
    signal drops under it."""
    out = []
    for m in metric_summaries:
        name = str(m["name"])
        limit = m.get("limit")
        below = m.get("direction") == "below"
        if m.get("threshold") is not None:
            threshold, basis = float(m["threshold"]), str(m.get("basis") or "given threshold")
        elif limit:
            threshold, basis = 0.9 * float(limit), "90% of its limit"
        else:
            threshold, basis = 1.2 * float(m.get("p99") or 0), "1.2x its p99 over the history"
        if threshold <= 0:
            continue
        alert = "Saturation" + "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))
        op, word = ("<", "below") if below else (">", "above")
        out.append(SaturationRule(
            name=alert, expr=f"{m.get('expr') or name} {op} {_fmt(round(threshold, 6))}\n", severity="warning",
            for_=for_, description=f"{name} {word} {threshold:.4g} for {for_} ({basis})",
            metric=name, threshold=threshold, direction="below" if below else "above"))
    return tuple(out)


# ------------------------------------------------------------------------------------------ promtool tests

def _expand(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def _series_name(name: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _values(phases: list[tuple[float, int]]) -> str:
    return " ".join(" ".join([_fmt(v)] * n) for v, n in phases)


def _phase_value(k: int, window_s: float, short: set[float]) -> float:
    """Error ratio, in error budgets, fed to a window in test phase ``k``: 0.5, 2, 20, then 20 on short
    windows of at most 5 minutes only (a spike the long windows must veto)."""
    if k == 3:
        return 20.0 if window_s in short and window_s <= 300 else 0.0
    return (0.5, 2.0, 20.0)[k]


def _expected(rule: AlertRule, spec: SloSpec) -> dict[str, Any]:
    labels = {**_base_labels(spec), **rule.labels}
    return {"exp_labels": dict(labels),
            "exp_annotations": {k: _expand(v, labels) for k, v in rule.annotations.items()}}


def promtool_tests(specs: list[SloSpec], plan: AlertPlan, rules_file: str) -> str:
    """A promtool unit-test file for the rule file ``rules_file`` (path as the test file will see it).

    Per SLO it feeds the recorded error ratios ``slo:sli_error:ratio_rate<w>`` directly (phases of
    0.5x, 2x and 20x the error budget, then a short-window-only spike) and expects: nothing; the slow
    ticket only; page and ticket; nothing (the long windows veto the spike). SLOs built by perfkit with
    the standard ``http_requests_total`` counters also get an end-to-end case through the recording
    rules from raw counters. The guard's ``slo:sli_total:events<w>`` series are fed large values."""
    tests: list[dict[str, Any]] = []
    recorded_series: list[dict[str, Any]] = []
    recorded_checks: list[dict[str, Any]] = []
    counter_specs: list[tuple[SloSpec, dict[str, AlertRule]]] = []
    for spec in specs:
        rules = {r.severity: r for r in plan.rules if r.slo_id == spec.slo_id}
        if not rules:
            continue
        budget = spec.error_budget_ratio
        base = _base_labels(spec)
        windows = sorted({parse_duration_s(w) for r in rules.values() for p in r.windows for w in p})
        short = {parse_duration_s(p[1]) for r in rules.values() for p in r.windows}
        phase = 20  # minutes per phase
        series = []
        for seconds in windows:
            w = format_duration(seconds)
            values = _values([(_phase_value(k, seconds, short) * budget, phase) for k in range(4)])
            series.append({"series": _series_name(f"slo:sli_error:ratio_rate{w}", {**base, "sloth_window": w}),
                           "values": values})
        for rule in rules.values():
            for w in dict.fromkeys(p[0] for p in rule.windows) if rule.min_events else ():   # ordered, unique
                series.append({"series": _series_name(f"slo:sli_total:events{w}", {**base, "sloth_window": w}),
                               "values": f"1e12+0x{4 * phase}"})
        alert_tests: list[dict[str, Any]] = []
        for rule in rules.values():
            pairs = [(parse_duration_s(lw), parse_duration_s(sw), b) for (lw, sw), b in
                     zip(rule.windows, rule.burn_rates, strict=True)]
            for k in range(4):
                fires = any(_phase_value(k, lw, short) > b and _phase_value(k, sw, short) > b
                            for lw, sw, b in pairs)
                alert_tests.append({"eval_time": f"{(k + 1) * phase - 1}m", "alertname": rule.name,
                                    "exp_alerts": [_expected(rule, spec)] if fires else []})
        recorded_series.extend(series)
        recorded_checks.extend(alert_tests)
        if spec.total_query and spec.warehouse_service and spec.sli_kind == "availability":
            counter_specs.append((spec, rules))
    # Alerts sharing a name (Sloth gives page and ticket the same name, and specs may reuse a name across
    # SLOs) are checked together: promtool compares all firing alerts of that name at that time.
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for t in recorded_checks:
        key = (str(t["eval_time"]), str(t["alertname"]))
        if key in merged:
            merged[key]["exp_alerts"].extend(t["exp_alerts"])
        else:
            merged[key] = {**t, "exp_alerts": list(t["exp_alerts"])}
    recorded_checks = list(merged.values())
    if recorded_series:
        tests.append({"name": "burn-rate phases on recorded error ratios (0.5x, 2x, 20x budget, short spike)",
                      "interval": "1m", "input_series": recorded_series,
                      "alert_rule_test": sorted(recorded_checks, key=lambda c: int(c["eval_time"][:-1]))})
    if counter_specs:
        tests.append(_counter_test(counter_specs))
    doc = {"rule_files": [rules_file], "evaluation_interval": "1m", "tests": tests}
    return ("# Generated by perfkit: promtool unit tests for the SLO rules (promtool test rules FILE).\n"
            + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000))


def _counter_test(items: list[tuple[SloSpec, dict[str, AlertRule]]]) -> dict[str, Any]:
    """End to end from ``http_requests_total`` counters, per service: 2 h of clean traffic (600
    requests/min), then errors at 25x the error budget (at most 90%) for an hour: nothing at 2 h; page
    and ticket at 3 h (recording rules, traffic guard and alerts all evaluated by Prometheus)."""
    series: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for spec, _rules in items:
        service = spec.warehouse_service or spec.service
        ratio = min(0.9, 25 * spec.error_budget_ratio)
        errors_per_min = int(math.ceil(600 * ratio / (1 - ratio)))
        series += [
            {"series": _series_name("http_requests_total", {"service": service, "code": "200"}),
             "values": "0+600x240"},
            {"series": _series_name("http_requests_total", {"service": service, "code": "500"}),
             "values": f"0+0x120 {errors_per_min}+{errors_per_min}x119"},
        ]
    for minute, fires in ((120, False), (180, True)):
        by_name: dict[str, list[dict[str, Any]]] = {}
        for spec, rules in items:
            for rule in rules.values():
                by_name.setdefault(rule.name, [])
                if fires:
                    by_name[rule.name].append(_expected(rule, spec))
        for name, expected in by_name.items():
            checks.append({"eval_time": f"{minute}m", "alertname": name, "exp_alerts": expected})
    return {"name": "end to end from http_requests_total counters", "interval": "1m",
            "input_series": series, "alert_rule_test": checks}
