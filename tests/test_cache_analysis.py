"""The cache study on a small demo warehouse, against independent references (SQL counts and a slow
LRU simulation in Python), the caching plan against its JSON Schema, and notebook 40 under papermill."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from kit.analysis.cache import analyze_cache, explorer_lookup
from kit.config import RunConfig
from kit.report.caching_plan import build_caching_plan, caching_summary_markdown
from kit.results import dumps, to_jsonable
from kit.warehouse import connect
from tests.cache_reference import slow_lru

SCHEMA = Path(__file__).resolve().parents[1] / "kit" / "report" / "schemas" / "Caching_Implementation_Plan.schema.json"


@pytest.fixture(scope="module")
def demo_db(demo_warehouse) -> Path:
    return demo_warehouse(requests=40_000, days=3, seed=11)


@pytest.fixture(scope="module")
def study(demo_db: Path):
    con = connect(demo_db, read_only=True)
    try:
        return analyze_cache(con, cache_key="path", size_points=12, policies=["lru", "fifo", "s3fifo", "belady"],
                             policy_sample_requests=10**9)
    finally:
        con.close()


def test_trace_and_curve_match_independent_reference(demo_db: Path, study) -> None:
    con = connect(demo_db, read_only=True)
    rows = con.execute(
        "SELECT path, coalesce(bytes_sent, 0) FROM requests WHERE coalesce(upper(method), 'GET') IN ('GET', 'HEAD') "
        "AND coalesce(status, 200) BETWEEN 200 AND 399 AND path IS NOT NULL ORDER BY ts").fetchall()
    con.close()
    keys = [r[0] for r in rows]
    sizes: dict[str, int] = {}
    for k, s in rows:
        sizes[k] = max(sizes.get(k, 1), int(s), 1)
    assert study.trace.requests == len(keys)
    assert study.trace.unique_objects == len(sizes)
    assert study.trace.one_hit_wonders == sum(1 for c in __import__("collections").Counter(keys).values() if c == 1)
    ex = study.explorer
    for i in (0, 3, len(ex["capacities_bytes"]) // 2, len(ex["capacities_bytes"]) - 1):
        cap = int(ex["capacities_bytes"][i])
        want = slow_lru(keys, [sizes[k] for k in keys], cap)
        hit, bhit = explorer_lookup(ex, "path", "lru", "0", i)
        assert (hit, bhit) == pytest.approx((1 - want[0], 1 - want[1]), abs=1e-12)
    want = slow_lru(keys, [sizes[k] for k in keys], int(study.sizing.recommended_capacity_bytes))
    assert study.sizing.recommended_hit_ratio == pytest.approx(1 - want[0], abs=1e-12)


def test_policy_rows_at_full_rate_and_bound(study) -> None:
    rows = study.policies["rows"]
    assert study.policies["sample_rate"] == 1.0
    by_cap: dict[float, dict[str, float]] = {}
    for r in rows:
        by_cap.setdefault(r["capacity_bytes"], {})[r["policy"]] = r["miss_ratio"]
    for cap, pols in by_cap.items():
        # (Belady is optimal only for equal sizes: with byte capacities a size-aware policy may beat it)
        # libcachesim's LRU on the full trace equals the exact curve at the same capacity
        i = study.capacity_grid_bytes.index(cap)
        assert 1 - pols["lru"] == pytest.approx(explorer_lookup(study.explorer, "path", "lru", "0", i)[0], abs=1e-12)


def test_result_json_is_small_and_plan_validates(study) -> None:
    result = json.loads(dumps(study))
    assert len(json.dumps(result)) < 1_500_000
    for k in result["keys"]:
        assert len(k["bytes"]["capacity"]) <= 200 and len(k["objects"]["capacity"]) <= 200
    plan = build_caching_plan({"cache": result}, RunConfig(title="Demo <shop>"))
    jsonschema.validate(json.loads(dumps(plan)), json.loads(SCHEMA.read_text()))
    assert [la["layer"] for la in plan["layers"]] == ["browser", "cdn", "application", "database"]
    cdn = plan["layers"][1]
    assert cdn["expected"]["hit_ratio"]["value"] == pytest.approx(study.sizing.recommended_hit_ratio)
    assert cdn["capacity"]["bytes"]["value"] == study.sizing.recommended_capacity_bytes

    def sources(node):
        if isinstance(node, dict):
            if {"value", "unit", "source"} <= set(node):
                yield node
            for v in node.values():
                yield from sources(v)
        elif isinstance(node, list):
            for v in node:
                yield from sources(v)

    assert all(s["source"] for s in sources(plan))
    md = caching_summary_markdown(plan)
    # the section's heading is the optimization document's own ("## 3. Caching"), not repeated here
    assert not md.lstrip().startswith("#") and "| cdn |" in md
    # a run without cache results still yields a valid (incomplete) plan
    empty = build_caching_plan({}, RunConfig())
    jsonschema.validate(json.loads(dumps(empty)), json.loads(SCHEMA.read_text()))
    assert empty["status"] == "incomplete"


def test_schema_rejects_a_plan_missing_a_layer(study) -> None:
    plan = json.loads(dumps(build_caching_plan({"cache": to_jsonable(study)}, RunConfig())))
    plan["layers"] = [la for la in plan["layers"] if la["layer"] != "database"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(plan, json.loads(SCHEMA.read_text()))


@pytest.mark.notebook
def test_notebook_40_runs_headless(demo_db: Path, tmp_path: Path) -> None:
    import nbformat
    import papermill

    from kit.analysis.coverage import data_coverage
    from kit.runner import prepare_notebook

    with connect(demo_db, read_only=True) as con:  # as perfkit run does: cells without their data are left out
        nbformat.write(prepare_notebook("40_cache_simulation", data_coverage(con)), tmp_path / "in.ipynb")
    results = tmp_path / "results"
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"db": str(demo_db), "results_dir": str(results),
                                           "cache_size_points": 12, "headless": True},
                               progress_bar=False, kernel_name="python3", execution_timeout=600)
    saved = json.loads((results / "cache.json").read_text())
    assert saved["main_key"] == "path" and len(saved["capacity_grid_bytes"]) == 12
    plan = build_caching_plan({"cache": saved}, RunConfig())
    jsonschema.validate(json.loads(dumps(plan)), json.loads(SCHEMA.read_text()))


def test_database_buffer_cache_from_snapshot_deltas(con) -> None:
    """The database layer sums the snapshot intervals: a counter reset (20 -> 5 calls) counts from zero and
    a second server's counters add, by hand: select 10 + 5 + 10 calls, 250 ms, hit 75, read 25; the
    update 10 calls, 100 ms, hit 100, read 300. The last value minus the first would say 15 calls."""
    from datetime import timedelta

    from kit import warehouse
    from kit.analysis.cache import _database
    from tests.test_database import T0, _snap

    select, update = "select * from t where k = ?", "update t set v = ? where k = ?"
    a, b = warehouse.begin_source(con, "server a"), warehouse.begin_source(con, "server b")
    for minute, calls in ((0, 10), (10, 20), (20, 5), (30, 15)):
        _snap(con, a, minute, select, calls, calls * 10.0, rows=calls, hit=calls * 3, read=calls)
    for minute, (calls, ms, hit, read) in ((0, (1000, 5000.0, 0, 0)), (10, (1010, 5100.0, 100, 300))):
        _snap(con, b, minute, update, calls, ms, rows=calls, hit=hit, read=read)
    whole = _database(con, None, None)
    assert whole["buffer_hit_ratio"] == pytest.approx(175 / 500)
    assert whole["top_read_queries"] == [{"fingerprint": select, "calls": 25, "total_ms": pytest.approx(250.0),
                                          "share_of_db_time": pytest.approx(250 / 350)}]
    # the window [T0 + 15 min, ...): the intervals ending at 20 and 30 min, the select's alone
    late = _database(con, (T0 + timedelta(minutes=15)).isoformat(), None)
    assert late["buffer_hit_ratio"] == pytest.approx(45 / 60)
    assert late["top_read_queries"][0]["calls"] == 15 and late["top_read_share_of_db_time"] == pytest.approx(1.0)
    assert _database(con, None, T0.isoformat())["note"] == "no query statistics in the window"
