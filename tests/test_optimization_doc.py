"""Performance_Optimization_Strategy.md from hand-made results: ranking, numbers, escaping, gaps."""

from __future__ import annotations

import mistune

from kit.analysis.optimizations import (
    NOT_COVERED,
    bottleneck_opportunities,
    cache_opportunity,
    compression_opportunities,
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
COMPRESSION = {"served_bytes": 4_000_000, "saved_gzip_bytes": 3_000_000, "saved_zstd_bytes": 3_200_000,
               "by_type": [{"content_type": "application/javascript", "assets": 2, "size_bytes": 2000,
                            "gzip_bytes": 500, "zstd_bytes": 400, "requests": 2000, "saved_gzip_bytes": 3_000_000}]}


def cache(before: float, after: float) -> dict:
    """The parts of notebook 40's ``cache`` result the ranking reads: byte hit ratio today and expected."""
    return {"sizing": {"recommended_byte_hit_ratio": after}, "observed": {"byte_hit_ratio": before}}


def results(cache_result: dict | None = None) -> dict:
    """Results as notebooks 30 and 50 save them; the ranking is notebook 50's, from the analysis."""
    ranking = rank_opportunities(bottleneck_opportunities(BOTTLENECKS),
                                 compression_opportunities(COMPRESSION, 10_000_000), cache_opportunity(cache_result))
    return {
        "bottlenecks": BOTTLENECKS,
        "optimizations": {"served_bytes_total": 10_000_000, "compression": COMPRESSION,
                          "ranking": to_jsonable(ranking), "not_covered": [dict(a) for a in NOT_COVERED]},
    }


def plan() -> dict:
    return {"status": "incomplete", "summary": {"headline": "CDN 1 GiB"}, "layers": []}


def test_opportunities_rank_by_impact_over_effort() -> None:
    # compression 3e6/1e7 = 0.30 (low, /1) > caching 0.95-0.5 = 0.45 (medium, /2) = 0.225 > web 0.40/2 > api 0.10
    text = build_optimization_strategy(results(cache(0.5, 0.95)), RunConfig(), "2026-11-23", plan())
    table = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[2].strip() for row in table] == ["compression", "caching", "code", "code"]
    assert "30.00% of all bytes served" in table[0]
    assert "50.00% → 95.00%: 90.00% less origin traffic" in table[1]
    # a smaller cache gain (0.6 - 0.5 = 0.10, medium effort: 0.05) drops caching below both code rows
    text = build_optimization_strategy(results(cache(0.5, 0.6)), RunConfig(), "2026-11-23", plan())
    table = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[2].strip() for row in table] == ["compression", "code", "code", "caching"]


def test_log_text_is_inert_and_gaps_are_stated() -> None:
    text = build_optimization_strategy(results(), RunConfig(), "2026-11-23")
    html = mistune.html(text)
    assert "<script>" not in html and "<code>/p/{id}&lt;script&gt;alert(1)&lt;/script&gt;</code>" in html
    assert all(area["area"] in text for area in NOT_COVERED)
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
