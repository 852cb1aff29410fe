"""What the warehouse can support, and how a run leaves out what it cannot: coverage counts, gap
sentences, notebook preparation, the window of a warehouse without requests, the study of a loaded
cache trace (against the slow LRU reference)."""

from __future__ import annotations

import numpy as np
import pytest

from kit.analysis.cache import analyze_trace
from kit.analysis.coverage import NEEDS, coverage_of, data_coverage, gap_text
from kit.analysis.window import resolve_window
from kit.results import to_jsonable
from kit.runner import NEEDS_TAG, prepare_notebook
from kit.warehouse import connect
from tests.cache_reference import slow_lru


@pytest.fixture()
def untimed():
    """Three requests without request times (an Apache log), one of them a POST."""
    con = connect(":memory:")
    con.execute("INSERT INTO requests (ts, service, method, path, status, bytes_sent, source_id) VALUES "
                "('2024-01-01 00:00:00+00', 'web', 'GET', '/a', 200, 10, 1), "
                "('2024-01-01 00:01:00+00', 'web', 'GET', '/a', 304, 0, 1), "
                "('2024-01-01 00:02:00+00', 'web', 'POST', '/b', 500, 5, 1)")
    yield con
    con.close()


def test_coverage_counts_tables_and_request_fields(untimed) -> None:
    coverage = data_coverage(untimed)
    assert coverage.rows["requests"] == 3 and coverage.rows["queries"] == 0
    assert coverage.request_fields == {"latency_ms": 0, "upstream_ms": 0, "cache_status": 0, "bytes_sent": 3,
                                       "cacheable": 2}
    assert coverage.has("requests") and coverage.has("cacheable") and coverage.has("bytes")
    assert not coverage.has("latency") and not coverage.has("metrics") and not coverage.has("events")
    sentence = coverage.gap("latency").sentence()
    assert sentence.startswith("Not analysed: latency percentiles")
    assert "requests.latency_ms" in sentence and "perfkit ingest access-log" in sentence
    with pytest.raises(KeyError, match="unknown need"):
        coverage.has("latnecy")


def test_a_missing_table_is_named_once_for_all_that_depend_on_it() -> None:
    coverage = data_coverage(connect(":memory:"))
    assert coverage.empty
    gap = coverage.gap("cacheable")  # the analysis asked for, the data actually missing
    assert gap.what == NEEDS["cacheable"].what and gap.missing == NEEDS["requests"].missing
    assert coverage.gaps("requests", "latency", "cacheable", "queries") == [NEEDS["requests"], NEEDS["queries"]]


def test_documents_read_the_coverage_a_run_saved(untimed) -> None:
    results = {"overview": {"coverage": to_jsonable(data_coverage(untimed))}}
    assert coverage_of(results).gap("latency") == NEEDS["latency"]
    assert gap_text(results, "requests", fallback="notebook did not run") == "notebook did not run"
    assert gap_text(results, "queries", fallback="x").startswith("Not analysed: database query statistics")
    assert coverage_of({}).gaps(*NEEDS) == []  # old results: nothing is claimed missing


def test_prepare_notebook_replaces_cells_whose_data_is_missing(untimed) -> None:
    coverage = data_coverage(untimed)
    nb = prepare_notebook("10_kpis", coverage)
    tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
    assert f"{NEEDS_TAG}requests" in tags  # cells that only need requests stay
    assert not any(t in tags for t in (f"{NEEDS_TAG}latency", f"{NEEDS_TAG}metrics"))
    notes = [c.source for c in nb.cells if "perfkit-gap" in c.metadata.get("tags", [])]
    # one sentence per missing kind of data, however many cells needed it
    assert sum(NEEDS["latency"].missing in n for n in notes) == 1
    assert sum(NEEDS["metrics"].missing in n for n in notes) == 1
    everything = prepare_notebook("10_kpis", coverage_of({}))
    assert not any("perfkit-gap" in c.metadata.get("tags", []) for c in everything.cells)


def test_window_without_requests_comes_from_other_tables_then_ingests() -> None:
    con = connect(":memory:")
    con.execute("INSERT INTO queries (ts, db_system, kind, fingerprint, source_id) VALUES "
                "('2024-03-01 10:00:00+00', 'postgresql', 'event', 'select ?', 1), "
                "('2024-03-01 12:00:00+00', 'postgresql', 'event', 'select ?', 1)")
    window = resolve_window(con)
    assert window.seconds == pytest.approx(2 * 3600 + 0.001) and "queries" in window.basis
    with pytest.raises(ValueError, match="no requests for services web"):
        resolve_window(con, services=["web"])
    con.execute("DELETE FROM queries")
    con.execute("INSERT INTO cache_requests (seq, trace, obj_id, source_id) VALUES (0, 't', 1, 1)")  # no ts
    con.execute("INSERT INTO ingest_log (source_id, kind, started_at, finished_at) VALUES "
                "(1, 'trace', '2024-05-01 00:00:00+00', '2024-05-01 00:00:02+00')")
    assert resolve_window(con).basis.startswith("the ingest times")


def test_trace_study_matches_the_slow_lru_reference() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    ids = (rng.zipf(1.3, n) % 400).astype(np.uint64)
    sizes = (ids % 7 + 1).astype(np.int64) * 100  # one size per object
    con = connect(":memory:")
    con.execute("CREATE TEMP TABLE t AS SELECT * FROM (SELECT unnest(?) AS obj_id, unnest(?) AS size_bytes, "
                "generate_subscripts(?, 1) - 1 AS seq)", [ids.tolist(), sizes.tolist(), ids.tolist()])
    con.execute("INSERT INTO cache_requests (seq, trace, obj_id, size_bytes, source_id) "
                "SELECT seq, 'zipf', obj_id, size_bytes, 1 FROM t")
    study = analyze_trace(con, policies=["lru", "fifo"], size_points=6, target_hit_ratio=0.5)
    assert study.trace.requests == n and study.main_key
    curve = study.keys[0].bytes
    exact = [(c, m) for c, m in zip(curve.capacity, curve.miss_ratio, strict=True) if c >= curve.exact_from_capacity]
    assert len(exact) > 100
    for capacity, miss in exact[::25]:  # integer capacities: the curve's points are log-spaced reals
        expected, _ = slow_lru(ids.tolist(), sizes.tolist(), int(capacity))
        assert miss == pytest.approx(expected, abs=1e-9)
    rec = study.sizing["recommended_capacity_bytes"]
    expected, _ = slow_lru(ids.tolist(), sizes.tolist(), int(rec))
    assert study.sizing["recommended_hit_ratio"] == pytest.approx(1 - expected, abs=1e-9)
    assert study.sizing["recommended_hit_ratio"] >= 0.5


def test_an_analysis_run_without_its_data_says_what_to_ingest() -> None:
    """In JupyterLab nothing leaves out a cell whose data is missing: its error must say what to ingest."""
    from kit.analysis.cache import analyze_cache
    from kit.analysis.kpis import kpi_report
    from kit.analysis.slo import slo_report

    con = connect(":memory:")
    con.execute("INSERT INTO queries (ts, db_system, kind, fingerprint, source_id) VALUES "
                "('2024-03-01 10:00:00+00', 'postgresql', 'event', 'select ?', 1)")
    for analysis in (kpi_report, analyze_cache, slo_report):
        with pytest.raises(ValueError, match="To add it: `perfkit ingest access-log"):
            analysis(con)
