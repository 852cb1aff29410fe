"""The SLO report sections: Markdown escapes text from data; the catalog matches the framework schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import mistune

from kit.report.slo_sections import slo_catalog, slo_section_markdown

SCHEMA = Path(__file__).resolve().parents[1] / "kit/report/schemas/Metrics_Framework_Specifications.schema.json"

RESULT = {
    "window_days": 30, "history": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-08T00:00:00+00:00",
                                   "days": 7.0},
    "budget_note": "normalized",
    "slos": [{"name": "requests-availability", "service": "api<script>|x", "slo_id": "api-requests-availability",
              "sli_kind": "availability", "sli": {"description": "no 5xx", "sql": "SELECT 1"},
              "objective": 0.999, "objective_source": "proposed", "proposal_note": "from *history*",
              "window_days": 30.0, "budgeting_method": "Occurrences", "achieved": 0.9995, "budget_events": 432.0,
              "consumed_ratio": 0.25, "remaining_ratio": 0.75, "error_budget_ratio": 0.001}],
    "alerts": {"period_days": 30.0,
               "windows": [{"severity": "page", "long_window": "1h", "short_window": "5m",
                            "error_budget_percent": 2.0, "burn_rate": 14.4}],
               "rules": [{"name": "ApiSloBurn", "slo": "requests-availability", "severity": "page",
                          "expr": "max(a > (14.4 * 0.001)) or b", "windows": [["1h", "5m"], ["6h", "30m"]],
                          "burn_rates": [14.4, 6.0], "thresholds": [0.0144, 0.006], "for": None}],
               "saturation": [], "min_traffic": {}},
    "backtest": {"resolution_s": 60, "weeks": 1.0, "chosen_policy": "mwmbr",
                 "policies": [{"policy": "mwmbr", "episodes": 2, "per_week": 2.0, "precision": 0.5, "recall": 1.0,
                               "mean_delay_s": 1140.0, "max_delay_s": 1140.0, "mean_reset_s": 180.0}],
                 "by_rule": [{"slo": "requests-availability", "severity": "page", "episodes": 2}],
                 "incidents": [{"what": "burst on /api/[x](javascript:alert(1)) it's", "type": "error_burst",
                                "service": "api", "ts_start": "2026-01-03T10:00:00+00:00", "slo": "api/x",
                                "burn_rate": 44.2, "budget_consumed_ratio": 0.031, "burns_budget": True,
                                "detected": True, "severity": "page", "delay_s": 1140.0, "reset_s": 180.0}]},
}


def test_markdown_escapes_values_from_data():
    text = slo_section_markdown(RESULT)
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "api&lt;script&gt;\\|x" in text  # the | would otherwise split the table cell
    assert "\\[x\\](javascript" in text  # brackets escaped: no link can form
    assert "<a " not in mistune.html(text)
    assert "it's" in text and "&#x27;" not in text  # quotes stay readable (no entity to break)
    assert "| 432 |" in text  # budget in whole events
    assert "99.9% (proposed)" in text and "19.0 min" in text


def test_times_read_as_the_kit_writes_them_and_an_early_stop_is_said():
    """ISO timestamps from the result show as ``YYYY-MM-DD HH:MM:SS UTC`` (kit.fmt.timestamp); an alert that
    stopped before its incident ended shows a reset of 0 and by how much (never a negative duration)."""
    incident = {**RESULT["backtest"]["incidents"][0], "ts_start": "2026-01-03T11:00:00+01:00", "reset_s": 0.0,
                "cleared_early_s": 300.0}
    result = {**RESULT, "backtest": {**RESULT["backtest"], "incidents": [incident]}}
    text = slo_section_markdown(result)
    assert "History analysed: 2026-01-01 00:00:00 UTC to 2026-01-08 00:00:00 UTC (7 days)" in text
    assert "| 2026-01-03 10:00:00 UTC |" in text  # 11:00 at +01:00
    assert "+00:00" not in text and "T10:00" not in text
    assert "| 0 s, stopped 5.0 min before the end |" in text
    assert "| 3.0 min |" in slo_section_markdown(RESULT)  # reset_s 180 without an early stop


def test_catalog_validates_against_the_framework_schema():
    schema = json.loads(SCHEMA.read_text())
    catalog = slo_catalog(RESULT)
    for kind, items in (("slo", catalog["slos"]), ("alert", catalog["alerts"])):
        sub = {"$defs": schema["$defs"], **schema["$defs"][kind]}
        for item in items:
            jsonschema.validate(item, sub)
    assert catalog["slos"][0]["window"] == "30d"
    assert catalog["alerts"][0]["burn_rate"] == 14.4
    assert catalog["alerts"][0]["backtest"]["episodes"] == 2
