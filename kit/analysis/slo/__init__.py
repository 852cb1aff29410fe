"""SLOs and error budgets, burn-rate alerts and their backtest.

An SLO is an objective (a ratio in (0, 1)) for an SLI over a rolling window (``window_days``). Specs come
from the run parameters (``slos_from_parameters``) or from Sloth / OpenSLO spec files
(``load_slo_specs``); they are evaluated over the warehouse's history (``evaluate_slo``), turned into
multi-window multi-burn-rate alert rules (``alert_plan``, ``rules_yaml``) and replayed against the
recorded incidents (``backtest_slos``). ``slo_report`` runs all of it for notebook 20.

Modules, each importing only those before it:

- ``spec``: the SLO model (``SloSpec``, ``AlertingSpec``) and duration text;
- ``loaders``: Sloth ``prometheus/v1`` and OpenSLO ``v1alpha`` / ``v1`` files;
- ``sli``: SLIs over the warehouse, per-minute series, error budgets and burn-down;
- ``parameters``: SLOs from the run parameters; ``saturation``: resource saturation signals;
- ``alerts``: Prometheus rule files and their promtool tests;
- ``backtest``: the alert policies replayed over the history (and on NAB series);
- ``report``: ``slo_report`` and ``write_rule_files`` (promtool).

The submodules never import this package's ``__init__``; this file only re-exports their public names.
"""

from kit.analysis.slo.alerts import (
    GOOGLE_28D,
    GOOGLE_30D,
    AlertPlan,
    AlertRule,
    AlertWindow,
    SaturationRule,
    alert_plan,
    load_alert_windows,
    promtool_tests,
    rule_groups,
    rules_yaml,
    saturation_rules,
    window_specs,
)
from kit.analysis.slo.backtest import (
    POLICIES,
    BacktestReport,
    Episode,
    IncidentScore,
    NabReport,
    NabSeriesScore,
    PolicyScore,
    backtest_slos,
    episodes_from_mask,
    load_incidents,
    nab_score,
    pair_mask,
    policy_masks,
)
from kit.analysis.slo.loaders import load_slo_specs
from kit.analysis.slo.parameters import default_queries, slos_from_parameters
from kit.analysis.slo.report import SloHistory, SloReport, slo_report, write_rule_files
from kit.analysis.slo.saturation import saturation_candidates, saturation_minutes
from kit.analysis.slo.sli import (
    TARGET_LADDER,
    BurnPoint,
    SliDoc,
    SloStatus,
    TargetProposal,
    budget_note,
    budget_series,
    evaluate_slo,
    history_bounds,
    minute_series,
    propose_target,
    rolling_sum,
    sli_sql,
)
from kit.analysis.slo.spec import DEFAULT_PERIOD_DAYS, AlertingSpec, SloSpec, format_duration, parse_duration_s
from kit.errors import SloSpecError

__all__ = [
    "DEFAULT_PERIOD_DAYS", "GOOGLE_28D", "GOOGLE_30D", "POLICIES", "TARGET_LADDER",
    "AlertPlan", "AlertRule", "AlertWindow", "AlertingSpec", "BacktestReport", "BurnPoint", "Episode",
    "IncidentScore", "NabReport", "NabSeriesScore", "PolicyScore", "SaturationRule", "SliDoc", "SloHistory",
    "SloReport", "SloSpec", "SloSpecError", "SloStatus", "TargetProposal",
    "alert_plan", "backtest_slos", "budget_note", "budget_series", "default_queries", "episodes_from_mask",
    "evaluate_slo", "format_duration", "history_bounds", "load_alert_windows", "load_incidents",
    "load_slo_specs", "minute_series", "nab_score", "pair_mask", "parse_duration_s", "policy_masks",
    "promtool_tests", "propose_target", "rolling_sum", "rule_groups", "rules_yaml", "saturation_candidates",
    "saturation_minutes", "saturation_rules", "sli_sql", "slo_report", "slos_from_parameters",
    "window_specs", "write_rule_files",
]
