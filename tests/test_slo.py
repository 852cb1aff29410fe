"""SLO budgets on hand-computed cases, spec loading (Sloth, OpenSLO) and clear spec errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from kit.analysis.slo import SloSpec, SloSpecError, evaluate_slo, load_slo_specs, minute_series, propose_target
from kit.warehouse import connect

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture()
def small_warehouse():
    """2 days, one request every 6 s (10 per minute, 28,800 in all); the first 12 requests are 5xx,
    requests 100..129 take 1,000 ms (the rest 50 ms)."""
    con = connect(":memory:")
    con.execute("""INSERT INTO requests (ts, service, status, latency_ms, source_id)
        SELECT TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * INTERVAL 6 SECOND, 'svc',
               CASE WHEN i < 12 THEN 500 ELSE 200 END, CASE WHEN i BETWEEN 100 AND 129 THEN 1000 ELSE 50 END, 1
        FROM range(28800) t(i)""")
    yield con
    con.close()


def _spec(**kw) -> SloSpec:
    base = dict(name="avail", service="svc", objective=0.999, objective_percent=99.9, window_days=30.0,
                warehouse_service="svc")
    base.update(kw)
    return SloSpec(**base)


def test_occurrences_budget_hand_computed(small_warehouse):
    end = START + timedelta(days=2)
    status = evaluate_slo(small_warehouse, _spec(), START, end)
    assert status.total_events == 28800 and status.bad_events == 12
    assert status.achieved == pytest.approx(1 - 12 / 28800)
    # window budget = 0.001 x (28,800 requests x 30 d / 2 d) = 432 bad requests
    assert status.budget_events == pytest.approx(432.0)
    assert status.consumed_ratio == pytest.approx(12 / 432)
    assert status.remaining_ratio == pytest.approx(1 - 12 / 432)
    assert status.mean_burn_rate == pytest.approx((12 / 28800) / 0.001)
    assert "normalized" in status.note


def test_latency_sli_counts_slow_requests(small_warehouse):
    spec = _spec(name="lat", sli_kind="latency", latency_threshold_ms=500.0, objective=0.99, objective_percent=99.0)
    status = evaluate_slo(small_warehouse, spec, START, START + timedelta(days=2))
    assert status.bad_events == 30
    assert status.budget_events == pytest.approx(0.01 * 28800 * 15)


def test_timeslices_budget_hand_computed(small_warehouse):
    # 1-minute slices, a slice is good when >= 95% of its 10 requests are good: minutes 0 (10 bad) and
    # 1 (2 bad) are bad slices. Budget = 0.001 x 43,200 slices in 30 days = 43.2 slices.
    spec = _spec(budgeting_method="Timeslices", timeslice_window_s=60.0, timeslice_target=0.95)
    status = evaluate_slo(small_warehouse, spec, START, START + timedelta(days=2))
    assert status.bad_events == 2 and status.total_events == 2880
    assert status.budget_events == pytest.approx(43.2)
    assert status.consumed_ratio == pytest.approx(2 / 43.2)


def test_rolling_window_shorter_than_history(small_warehouse):
    # a 1-day window: at the end only day 2 is in the window, and it has no errors
    spec = _spec(window_days=1.0)
    status = evaluate_slo(small_warehouse, spec, START, START + timedelta(days=2))
    assert status.consumed_ratio == pytest.approx(0.0)
    first_day = [p for p in status.burndown if p.ts == START + timedelta(hours=24)][0]
    assert first_day.consumed_ratio == pytest.approx(12 / (0.001 * 14400))


def test_minute_series_is_dense(small_warehouse):
    total, bad = minute_series(small_warehouse, _spec(), START, START + timedelta(days=2))
    assert len(total) == 2880 and total.sum() == 28800 and (total == 10).all()
    assert bad[:2].tolist() == [10, 2] and bad[2:].sum() == 0


def test_propose_target_uses_a_typical_day_with_headroom():
    total = np.full(3 * 1440, 100, dtype=np.int64)
    bad = np.zeros(3 * 1440, dtype=np.int64)
    # daily error ratios 0.0004, 0.0004, 0.01 -> median 0.0004 -> 2 x 0.0004 <= 0.001 -> 99.9%
    bad[0:58] = 1
    bad[1440:1498] = 1
    bad[2880:2880 + 1440] = 1
    proposal = propose_target(total, bad)
    assert proposal.target == 0.999
    assert "proposed from the history" in proposal.basis


def test_sloth_and_openslo_specs_load(shared_datasets):
    k8s = load_slo_specs(shared_datasets / "slo/sloth/examples/kubernetes-apiserver.yml")
    assert [(s.name, s.objective_percent, s.sli_kind) for s in k8s] == [
        ("requests-availability", 99.9, "availability"), ("requests-latency", 99.0, "latency")]
    assert k8s[1].latency_threshold_ms == pytest.approx(400.0)
    assert len(load_slo_specs(shared_datasets / "slo/sloth/examples/multifile.yml")) == 2
    occ = load_slo_specs(shared_datasets / "slo/openslo/budgeting-method_occurences-slo.yaml")
    assert occ[0].window_days == pytest.approx(14.0) and occ[0].sli_kind == "latency"
    assert occ[0].latency_threshold_ms == 500 and occ[0].objective == pytest.approx(0.99)
    ts = load_slo_specs(shared_datasets / "slo/openslo/treat-low-traffic-as-equally-important_timeslices-slo.yaml")
    assert ts[0].budgeting_method == "Timeslices" and ts[0].timeslice_target == 0.95
    assert ts[0].timeslice_window_s == 60 and ts[0].window_days == pytest.approx(7.0)
    v1alpha = load_slo_specs(shared_datasets / "slo/sloth/examples/openslo-getting-started.yml")
    assert v1alpha[0].name == "sloth-slo-my-service-0" and v1alpha[0].window_days == 30


def test_bad_spec_names_file_line_and_field(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text('version: "prometheus/v1"\nservice: "x"\nslos:\n  - name: "a"\n    objective: "lots"\n'
                    '    sli:\n      raw:\n        error_ratio_query: "x"\n')
    with pytest.raises(SloSpecError, match=r"bad\.yml:5: field 'slos\.0\.objective'"):
        load_slo_specs(path)
    path.write_text('version: "prometheus/v1"\nservice: "x"\nslos:\n  - name: "a"\n    objective: 99\n')
    with pytest.raises(SloSpecError, match=r"bad\.yml:4: field 'slos\.0'.*missing required field 'sli'"):
        load_slo_specs(path)


def test_the_slo_package_exports_every_public_name_of_its_modules() -> None:
    import importlib

    import kit.analysis.slo as slo

    for name in ("spec", "loaders", "sli", "parameters", "saturation", "alerts", "backtest", "report"):
        module = importlib.import_module(f"kit.analysis.slo.{name}")
        assert set(module.__all__) <= set(slo.__all__), name
        assert all(getattr(slo, n) is getattr(module, n) for n in module.__all__), name
    assert all(hasattr(slo, n) for n in slo.__all__)
