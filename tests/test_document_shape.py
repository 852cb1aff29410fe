"""The strategy documents lead with the answer (issue 14): a five-bullet summary with numbers drawn from
the results, the SQL and PromQL in appendices, no duplicated or empty sections, no "(1 weeks)"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kit import fmt
from kit.config import RunConfig
from kit.report import monitoring
from kit.report.optimization import build_optimization_strategy
from kit.report.summary import monitoring_summary, optimization_summary
from kit.results import load_results
from tests.document_shape import (
    check_shape,
    code_before_appendix,
    duplicated_headings,
    empty_sections,
    summary_bullets,
)

CONFIG = RunConfig(db=":memory:", as_of="2026-11-23")

# ------------------------------------------------------------------------------- the checks themselves

GOOD = """# Title

As of today.

## Summary: five things to know

- **A:** 1 thing.
- **B:** 2 things.
- **C:** 3 things.
- **D:** 4 things.
- **E:** 5 things.

## 1. Section

Text.

## Appendix A. Code

```sql
SELECT 1
```

```
# not a heading
```
"""


def test_the_shape_checks_pass_a_good_document_and_catch_each_defect() -> None:
    assert len(check_shape(GOOD)) == 5
    assert duplicated_headings(GOOD.replace("## 1. Section", "## Appendix A. Code")) == ["Appendix A. Code"]
    assert empty_sections(GOOD.replace("Text.\n", "")) == ["## 1. Section"]
    assert empty_sections(GOOD + "\n## Last\n") == ["## Last"]
    assert code_before_appendix(GOOD.replace("Text.", "```sql\nSELECT 2\n```")) == [15]
    with pytest.raises(AssertionError, match="first section"):
        summary_bullets(GOOD.replace("## Summary: five things to know", "## 1. Other"))
    with pytest.raises(AssertionError, match="without a number"):
        check_shape(GOOD.replace("3 things", "some things"))
    with pytest.raises(AssertionError):
        check_shape(GOOD.replace("- **E:** 5 things.\n", ""))


# ----------------------------------------------------------------------------------- plural wording


@pytest.mark.parametrize(("value", "expected"), [
    (1, "1 week"), (1.0, "1 week"), (2, "2 weeks"), (0.286, "0.286 weeks"), (1.5, "1.5 weeks"), (0, "0 weeks"),
    (None, "n/a weeks")])
def test_counted_is_singular_only_for_one(value: float | None, expected: str) -> None:
    assert fmt.counted(value, "week") == expected


def test_counted_takes_an_irregular_plural() -> None:
    assert fmt.counted(1, "opportunity", "opportunities") == "1 opportunity"
    assert fmt.counted(12, "opportunity", "opportunities") == "12 opportunities"
    assert fmt.counted(12345, "request") == "12,345 requests"


def test_the_backtest_and_history_spans_are_worded_in_the_right_number() -> None:
    from kit.report.slo_sections import slo_section_markdown
    from tests.test_slo_sections import RESULT

    for weeks, days, want_weeks, want_days in ((1.0, 7.0, "(1 week)", "(7 days)"), (2.0, 1.0, "(2 weeks)", "(1 day)")):
        result = {**RESULT, "backtest": {**RESULT["backtest"], "weeks": weeks},
                  "history": {**RESULT.get("history", {}), "days": days}}
        text = slo_section_markdown(result)
        assert want_weeks in text and want_days in text
    assert not re.search(r"\(1 (weeks|days)\)", text)


# ---------------------------------------------------------------------------------- the summary itself


def _slo(name: str, service: str, objective: float, achieved: float, consumed: float) -> dict:
    return {"name": name, "slo_id": f"{service}-{name}", "service": service, "objective": objective,
            "achieved": achieved, "consumed_ratio": consumed, "remaining_ratio": 1 - consumed}


SLO = {
    "slos": [_slo("availability", "web", 0.999, 0.9995, 0.5), _slo("availability", "api", 0.999, 0.9981, 1.9),
             _slo("latency", "api", 0.95, 0.97, 0.6)],
    "alerts": {"rules": [{"name": f"r{i}"} for i in range(4)], "saturation": [{"name": "s"}]},
    "backtest": {"weeks": 1.0, "chosen_policy": "mwmbr", "policies": [
        {"policy": "threshold", "caught": 3, "incidents": 3, "recall": 1.0, "precision": 0.1, "per_week": 80},
        {"policy": "mwmbr", "caught": 2, "incidents": 3, "recall": 2 / 3, "precision": 0.5, "per_week": 4}]},
}


def test_monitoring_summary_picks_the_tightest_slo_and_the_chosen_policy() -> None:
    bullets = {b.label: b.text for b in monitoring_summary({"slo": SLO}, None)}
    # api availability: 190% consumed is the least left (-90%); 1 of 3 SLOs below its objective
    assert "3 SLOs, 1 missed" in bullets["Error budget"]
    assert "availability of api" in bullets["Error budget"]
    assert "used 190.0% of its error budget (-90.0% left)" in bullets["Error budget"]
    alerts = bullets["Alerts"]
    assert "4 burn-rate alert rules and 1 saturation alert" in alerts
    assert "1 week of history" in alerts and "caught 2 of 3 recorded incidents" in alerts
    assert "recall 67%, precision 50%, 4 alerts a week" in alerts
    assert bullets["Headline KPIs"].startswith("not computed") and bullets["Top finding"].startswith("not computed")


def test_monitoring_summary_says_what_is_missing_without_results() -> None:
    text = monitoring.build_monitoring_strategy({}, CONFIG, {})
    bullets = check_shape(text, numbers=False)
    assert all("not computed in this run" in b for b in bullets), bullets


def test_optimization_summary_names_the_top_three_and_the_tightest_service() -> None:
    def item(title: str, value: float, share: float, area: str = "cdn") -> dict:
        return {"title": title, "area": area, "effort": "low",
                "saving": {"value": value, "unit": "bytes", "basis": "all bytes served", "share": share,
                           "low": None, "high": None}}

    scaling = {"services": [
        {"service": "web", "headroom": {"growth": 3.0, "peak_rps": 10.0, "instances": 2, "limited_by": "the knee"}},
        {"service": "api", "headroom": {"growth": 1.5, "peak_rps": 20.0, "instances": 1, "limited_by": "the knee",
                                        "first_to_saturate": "cpu"}}]}
    results = {"optimizations": {"ranking": [item("Do A", 2048, 0.2), item("Do B", 1024, 0.1),
                                             item("Do C", 512, 0.05, "code"), item("Do D", 1, 0.0, "code")]},
               "scaling": scaling}
    bullets = {b.label: b.text for b in optimization_summary(results)}
    assert bullets["Top opportunity"].startswith("#1 Do A: saves 2.0 KiB of all bytes served (20.00%)")
    assert "4 opportunities ranked in all" in bullets["Top opportunity"]
    assert "#2 Do B" in bullets["Next"] and "#3 Do C" in bullets["Next"] and "Do D" not in bullets["Next"]
    assert "the first code change in the ranking is #3 Do C (saves 512 B of all bytes served (5.00%))" \
        in bullets["Database and code"]
    head = bullets["Scaling headroom"]
    assert "api, can grow 1.5× " in head and "(20 req/s on 1 instance)" in head and "cpu" in head
    behind = {**scaling, "services": [{"service": "api", "headroom": {
        "growth": 0.5, "peak_rps": 20.0, "instances": 3, "limited_by": "the latency SLO", "at_risk": True}}]}
    text = {b.label: b.text for b in optimization_summary({**results, "scaling": behind})}["Scaling headroom"]
    assert "has no headroom" in text and "allows 0.5× of today's load" in text and "3 instances" in text


def test_optimization_summary_says_what_is_missing_without_results() -> None:
    text = build_optimization_strategy({}, CONFIG, "2026-11-23")
    bullets = check_shape(text, numbers=False)
    assert sum("not computed in this run" in b for b in bullets) == 5, bullets


def test_summary_text_from_the_data_is_escaped() -> None:
    evil = "Drop <script>alert(1)</script> *x* | y"
    from kit.results import to_jsonable
    from tests.test_optimization_doc import area_opportunity

    results = {"optimizations": {"ranking": to_jsonable([area_opportunity(evil, 0.1)])}}
    text = build_optimization_strategy(results, CONFIG, "2026-11-23")
    summary = "\n".join(summary_bullets(text))
    assert "<script>" not in summary and "&lt;script&gt;" in summary and "\\*x\\*" in summary and "\\|" in summary


# --------------------------------------------------------------------------------- the real documents


def test_a_full_runs_documents_lead_with_the_answer(finished_run: Path) -> None:
    """Both Markdown documents of a real ``perfkit run`` (every notebook, the small demo)."""
    run = sorted((finished_run / "runs").iterdir())[0]
    results = load_results(run / "results")
    strategy = run / "strategy"
    mon = (strategy / "Performance_Monitoring_Strategy.md").read_text()
    opt = (strategy / "Performance_Optimization_Strategy.md").read_text()
    mon_bullets = check_shape(mon)
    opt_bullets = check_shape(opt)
    # the numbers come from the results: the KPI value, the number of findings and opportunities
    kpis = {k["name"]: k for k in results["kpis"]["kpis"]}
    assert fmt.pct(kpis["availability"]["value"], 3) in mon_bullets[0]
    findings = results["bottlenecks"]["findings"]["items"]
    if len(findings) > 1:
        assert f"{len(findings) - 1} more finding" in mon_bullets[2]
    ranking = results["optimizations"]["ranking"]
    assert f"{len(ranking)} opportunities ranked in all" in opt_bullets[0]
    # the KPI SQL is in the appendix, one block per KPI, and still in the metrics JSON
    appendix = mon.split("## Appendix A.", 1)[1]
    assert appendix.count("```sql") == len(kpis)
    assert "(1 weeks)" not in mon and "(1 days)" not in mon
