"""Performance_Optimization_Strategy.md from hand-made results (ranking, numbers, escaping, gaps) and from
the demo warehouse (the fixes of its four planted incidents)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import mistune
import pytest

from kit.analysis.opportunity import Saving, opportunity
from kit.analysis.optimizations import (
    WindowTotals,
    cache_opportunity,
    finding_opportunities,
    rank_opportunities,
)
from kit.config import RunConfig
from kit.report.optimization import build_optimization_strategy
from kit.results import to_jsonable
from tests.conftest import outputs_under_hash_seeds

BOTTLENECKS = {
    "routes_analysed": 40, "routes_for_half": 3, "top_share": 0.6,
    "top": [
        {"service": "web", "route": "/p/{id}<script>alert(1)</script>", "requests": 1000,
         "time_share": 0.40, "p50_ms": 100.0, "p95_ms": 400.0, "p99_ms": 900.0, "error_rate": 0.001},
        {"service": "api", "route": "/cart|x", "requests": 500, "time_share": 0.20,
         "p50_ms": 50.0, "p95_ms": 200.0, "p99_ms": 300.0, "error_rate": 0.0},
    ],
}
EVIL_ROUTE = "/p/{id}<script>alert(1)</script>|x"


def finding(route: str, cause_kind: str, cause_detail: str, cost_share: float, confidence: str = "high") -> dict:
    """One latency finding as results/bottlenecks.json holds it (the fields the ranking reads)."""
    return {"kind": "latency_shift", "scope": {"service": "web", "route": route}, "title": f"latency shift {route}",
            "onset": "2026-11-17T10:00:00+00:00", "end": "2026-11-17T15:00:00+00:00", "bucket_s": 300,
            "metric": "latency_ms", "before": 50.0, "after": 160.0, "effect": 110.0, "ci_low": 100.0,
            "ci_high": 120.0, "p_value": 1e-20, "confidence": confidence, "cost_share": cost_share,
            "causes": [{"kind": cause_kind, "ref": "ev-1", "detail": cause_detail, "strength": 0.9, "lag_s": 0.0}],
            "sql": {"before": "SELECT 1", "after": "SELECT 2"}, "effect_unit": "ms", "cost_basis": "request_time"}


FINDINGS = {"bucket_s": 300, "method": "test", "window_start": "2026-11-16T00:00:00+00:00",
            "window_end": "2026-11-23T00:00:00+00:00", "series_sql": "", "notes": [], "items": [
                finding(EVIL_ROUTE, "deploy", "deploy web 1.2 <b>", 0.02),
                finding("/cart", "query", "database time up", 0.08),          # 0.08 / medium 2 = 0.04
                finding("/home", "unknown", "no event fits", 0.30),           # no cause: not a fix
                finding("/load", "campaign", "campaign", 0.20, "low"),        # low confidence: not a fix
            ]}
# request time 1,000 s, 10,000 requests, 100 of them 5xx, 10 MB sent
TOTALS = WindowTotals(request_ms=1_000_000.0, requests=10_000, errors_5xx=100, bytes_sent=10_000_000)


def area_opportunity(title: str, share: float, addresses: list[str] | None = None) -> object:
    """An optimization area's opportunity (compression-like: bytes saved of all bytes served)."""
    return opportunity("compression", title, change="compress it", evidence="3 MB saved", effect="fewer bytes",
                       verify="compare bytes_sent", risk="low", effort="low",
                       saving=Saving(share * TOTALS.bytes_sent, "bytes", "all bytes served", share),
                       addresses=addresses)


def cache(before: float, after: float) -> dict:
    """The parts of notebook 40's ``cache`` result the ranking reads: byte hit ratio today and expected."""
    return {"sizing": {"recommended_byte_hit_ratio": after}, "observed": {"byte_hit_ratio": before}}


def results(cache_result: dict | None = None, findings: dict | None = FINDINGS) -> dict:
    """Results as notebooks 30 and 50 save them; the ranking is notebook 50's, from the analysis.
    ``findings=None``: a run older than the bottleneck findings."""
    bottlenecks = BOTTLENECKS if findings is None else {**BOTTLENECKS, "findings": findings}
    others = [area_opportunity("Compress JavaScript", 0.3), *cache_opportunity(cache_result, TOTALS)]
    ranking = rank_opportunities(finding_opportunities(bottlenecks, TOTALS), others)
    return {
        "bottlenecks": bottlenecks,
        "optimizations": {"served_bytes_total": 10_000_000, "compression": None,
                          "ranking": to_jsonable(ranking)},
    }


def plan() -> dict:
    return {"status": "incomplete", "summary": {"headline": "CDN 1 GiB"}, "layers": []}


def _table(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]


def test_opportunities_rank_by_impact_over_effort() -> None:
    # fixes first: query 0.08/2 = 0.04 > deploy 0.02/1; then compression 3e6/1e7 = 0.30 (low, /1) >
    # caching 0.95-0.5 = 0.45 (medium, /2) = 0.225; the finding without a cause and the low one are no fixes
    text = build_optimization_strategy(results(cache(0.5, 0.95)), RunConfig(), "2026-11-23", plan())
    table = _table(text)
    assert [row.split("|")[2].strip() for row in table] == ["database", "release", "compression", "caching"]
    # 8% of 1,000 s; the interval scales it by the effect's (100 to 120 ms around 110 ms)
    assert "| 80 s of all request time (8.00%; 95% interval 73 s to 87 s) |" in table[0]
    assert "| 20 s of all request time (2.00%; " in table[1]
    assert "| 2.9 MiB of all bytes served (30.00%) |" in table[2]
    assert "| 4.3 MiB of all bytes served (45.00%) |" in table[3]
    assert "/home" not in "".join(table) and "/load" not in "".join(table)
    # a larger cache gain still ranks below every fix; among the others it now beats compression (0.35 > 0.30)
    text = build_optimization_strategy(results(cache(0.2, 0.9)), RunConfig(), "2026-11-23", plan())
    assert [row.split("|")[2].strip() for row in _table(text)] == ["database", "release", "caching", "compression"]


def test_a_fix_names_its_cause_evidence_effect_verification_and_risk() -> None:
    text = build_optimization_strategy(results(), RunConfig(), "2026-11-23", plan())
    section = text[text.index("### 2. Fix or roll back"):text.index("### 3.")]
    assert "deploy web 1.2 &lt;b&gt; — latency +110 ms on web /p/{id}" in section
    assert "- **Change:** Fix or roll back deploy web 1.2 &lt;b&gt;." in section
    assert "50 ms → 160 ms, +110 ms (95% CI +100 to +120 ms)" in section
    assert "findings.items\\[0\\].sql in results/bottlenecks.json (after, before)" in section
    assert "- **Expected effect:** Latency\\_ms on this scope stays at about 50 ms instead of 160 ms; in a window " \
           "like this one that saves up to 2.00% of all request time." in section
    assert "perfkit findings --db &lt;warehouse&gt;" in section and "latency\\_p95\\_ms" in section
    assert "- **Risk:** Low: a rollback" in section
    assert "`findings.items[0].sql.after`, `findings.items[0].sql.before` (in `results/optimizations.json`" in section


def test_an_area_opportunity_for_a_findings_cause_replaces_its_generic_fix() -> None:
    """Advice that addresses a finding's cause leads that fix (ranked with the fixes), the finding is its
    evidence, a second one addressing the same cause corroborates it; unrelated advice stays behind."""
    fixes = finding_opportunities({"findings": FINDINGS}, TOTALS)
    specific = area_opportunity("Batch the variant lookups", 0.001, ["deploy:deploy web 1.2 <b>"])
    weaker = area_opportunity("Frame get_variants grew", 0.0005, ["deploy:deploy web 1.2 <b>", "profile:x"])
    other = area_opportunity("Compress JavaScript", 0.3)
    ranking = rank_opportunities(fixes, [other, weaker, specific])
    assert [o.title for o in ranking][:2] == [fixes[1].title, "Batch the variant lookups"]
    assert [o.title for o in ranking][2:] == ["Compress JavaScript"]
    lead = ranking[1]
    assert "It explains bottleneck finding 1: Latency shift" in lead.evidence
    assert "The compression analysis agrees: Frame get_variants grew." in lead.evidence
    assert lead.details["finding"] == 0 and "deploy:deploy web 1.2 <b>" in lead.addresses


def test_the_advice_for_a_findings_strongest_cause_leads() -> None:
    """A finding whose causes are a deploy (strongest) and a query (a knock-on rise): the advice for the
    deploy leads its fix even when the query's index advice scores higher, which corroborates it."""
    fixes = finding_opportunities({"findings": FINDINGS}, TOTALS)
    fix = replace(fixes[1], addresses=["deploy:deploy web 1.2 <b>", "query:select 1"])
    for_deploy = area_opportunity("Revert the serializer", 0.0001, ["deploy:deploy web 1.2 <b>"])
    for_query = area_opportunity("Index t (k)", 0.01, ["query:select 1"])
    lead = rank_opportunities([fix], [for_query, for_deploy])[0]
    assert lead.title == "Revert the serializer" and "agrees: Index t (k)." in lead.evidence


def test_results_without_findings_still_build() -> None:
    """An older run (no ``findings`` in bottlenecks.json): no fixes, the other opportunities and the time table."""
    text = build_optimization_strategy(results(cache(0.5, 0.95), findings=None), RunConfig(), "2026-11-23", plan())
    assert [row.split("|")[2].strip() for row in _table(text)] == ["compression", "caching"]
    assert "| web | `/p/{id}<script>alert(1)</script>` |" in text


def test_log_text_is_inert_and_gaps_are_stated() -> None:
    text = build_optimization_strategy(results(), RunConfig(), "2026-11-23")
    html = mistune.html(text)
    assert "<script>" not in html and "<code>/p/{id}&lt;script&gt;alert(1)&lt;/script&gt;</code>" in html
    assert "<b>" not in html
    # the hostile route of a finding: escaped in the title, a code span in the evidence, no extra table cell
    assert "Fix or roll back deploy web 1.2 &lt;b&gt; — latency +110 ms on web /p/{id}&lt;script&gt;" in text
    assert "route /p/{id}&lt;script&gt;alert(1)&lt;/script&gt;\\|x" in text
    header = next(line for line in text.splitlines() if line.startswith("| # |"))
    fix_row = next(line for line in text.splitlines() if line.startswith("| 2 |"))
    assert fix_row.replace("\\|", "").count("|") == header.count("|")
    assert "Not computed in this run (notebook 50_optimizations did not run)" in text  # database, CDN, profiles
    assert "Not computed in this run (notebook 40_cache_simulation did not run)" in text
    header = next(line for line in text.splitlines() if line.startswith("| Service |"))
    api_row = next(line for line in text.splitlines() if line.startswith("| api |"))
    assert api_row.count(" | ") == header.count(" | ")  # the | in the route did not add a column


def test_same_results_give_identical_text() -> None:
    """The same results give the same document, also in processes with other string-hash seeds."""
    code = ("from kit.config import RunConfig; from kit.report.optimization import build_optimization_strategy; "
            "from tests.test_optimization_doc import cache, plan, results; "
            "print(build_optimization_strategy(results(cache(0.5, 0.9)), RunConfig(), '2026-11-23', plan()))")
    texts = outputs_under_hash_seeds(code)
    assert texts[0] == texts[1] == texts[2]
    assert texts[0] == build_optimization_strategy(results(cache(0.5, 0.9)), RunConfig(), "2026-11-23", plan()) + "\n"


# ---------------------------------------------------------------------------------------- the demo

DEMO = {"requests": 150_000, "days": 7, "seed": 42}  # the size test_findings.py builds too


@pytest.fixture(scope="module")
def demo_results(demo_warehouse: Callable[..., Path]) -> dict:
    """Notebooks 30 and 50's results on the demo, as they save them (cache result left out)."""
    from kit.analysis.bottlenecks import bottlenecks_document, time_consumers
    from kit.analysis.findings import find_bottlenecks
    from kit.analysis.optimizations import optimization_opportunities
    from kit.analysis.window import resolve_window
    from kit.warehouse import connect

    con = connect(demo_warehouse(**DEMO), read_only=True)
    try:
        window = resolve_window(con)
        bottlenecks = to_jsonable(bottlenecks_document(time_consumers(con, window), find_bottlenecks(con, window)))
        return {"bottlenecks": bottlenecks,
                "optimizations": to_jsonable(optimization_opportunities(con, window, bottlenecks))}
    finally:
        con.close()


def test_demo_top_five_fix_the_four_planted_incidents(demo_results: dict) -> None:
    """Issue #12: the first five name the missing index on orders by user, the N+1 in the product
    serializer, the Vary: Cookie on static responses and compressing JavaScript."""
    text = build_optimization_strategy(demo_results, RunConfig(), "2026-11-23")
    top = "\n".join(_table(text)[:5])
    assert "Index orders (user\\_id, created\\_at)" in top
    assert "N+1" in top and "product\\_variants" in top and "/api/v1/products/{id}" in top
    assert "Remove Cookie from Vary on /static/\\* responses" in top
    assert "Compress JavaScript" in top
    assert "Cut the latency of" not in text  # issue #12: a route alone is not an opportunity


def test_a_failing_grouped_pass_reaches_the_caller_and_stops_the_database_thread(
        demo_warehouse: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The database analysis starts before the grouped pass and waits for its requests per route: a failure
    of the pass (injected) must reach the caller instead of leaving that wait, and the call, hanging."""
    import threading

    import kit.analysis.optimizations as optimizations
    from kit.analysis.window import resolve_window
    from kit.warehouse import connect

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the grouped pass failed")

    monkeypatch.setattr(optimizations, "build_request_groups", broken)
    con = connect(demo_warehouse(**DEMO), read_only=True)
    raised: list[str] = []

    def call() -> None:
        try:
            optimizations.optimization_opportunities(con, resolve_window(con))
        except RuntimeError as exc:
            raised.append(str(exc))

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(90)
    assert not worker.is_alive(), "optimization_opportunities hangs after its grouped pass failed"
    assert raised == ["the grouped pass failed"]
    con.close()


def test_document_leads_with_the_summary_without_duplicated_or_empty_sections() -> None:
    """Issue 14: five summary bullets first; the caching section has one heading, no section is empty."""
    from tests.document_shape import check_shape

    text = build_optimization_strategy(results(cache(0.5, 0.9)), RunConfig(), "2026-11-23", plan())
    bullets = check_shape(text, numbers=False)  # no database, CDN or scaling result here
    ranking = results(cache(0.5, 0.9))["optimizations"]["ranking"]
    assert f"#1 {ranking[0]['title']}: saves" in bullets[0].replace("\\", "")
    assert f"{len(ranking)} opportunities ranked in all" in bullets[0]
    assert bullets[3].startswith("**Caching:** no CDN log in the window; the caching plan: CDN 1 GiB")
    assert text.count("Caching\n") == 1  # "## 6. Caching" and no second caching heading


def test_demo_document_leads_with_the_summary(demo_results: dict) -> None:
    from tests.document_shape import check_shape

    text = build_optimization_strategy(demo_results, RunConfig(), "2026-11-23")
    bullets = check_shape(text, numbers=False)  # notebook 60 (scaling) is not part of demo_results
    assert all(re.search(r"\d", b) for b in bullets[:4]), bullets
    assert "not computed in this run (notebook 60\\_scaling did not run)" in bullets[4]
    digest = demo_results["optimizations"]["database"]["digest"]
    assert f"took {digest[0]['share_of_db_time'] * 100:.1f}% of it" in bullets[2]
