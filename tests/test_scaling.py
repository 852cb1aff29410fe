"""The scaling analysis on data with a known answer: USL recovery (several α, β with noise), the
declines (too few load levels, straight-line data), the knee of a hand-made curve, and the demo (every
service gets a model and caveats; the marketing campaign is among the load levels used)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from kit.analysis.scaling import analyse_scaling, find_knee, fit_usl, usl_throughput
from kit.analysis.window import resolve_window
from kit.report.render import check_markdown, render_markdown
from kit.results import to_jsonable
from kit.warehouse import connect

DEMO = Path("/work/main/data/demo.duckdb")


def _sweep(alpha: float, beta: float, levels: np.ndarray, noise: float, seed: int, per_level: int = 20):
    """Observations of a USL system: per level, ``per_level`` buckets with multiplicative noise on both
    throughput and (independently) the measured concurrency."""
    rng = np.random.default_rng(seed)
    n = np.repeat(levels, per_level).astype(float)
    x = usl_throughput(n, 120.0, alpha, beta) * (1 + noise * rng.standard_normal(n.size))
    n_meas = n * (1 + noise / 2 * rng.standard_normal(n.size))
    return n_meas, x, np.repeat(np.arange(levels.size), per_level)


@pytest.mark.parametrize("alpha,beta", [(0.05, 0.001), (0.1, 0.0005), (0.02, 0.002), (0.3, 0.001)])
def test_fit_recovers_alpha_beta_and_the_peak(alpha, beta):
    levels = np.arange(1, 81, 4)
    n, x, lab = _sweep(alpha, beta, levels, noise=0.03, seed=int(alpha * 1000 + beta * 1e5))
    fit = fit_usl(n, x, lab, n_boot=100)
    assert fit.verdict, fit.reason
    assert fit.alpha == pytest.approx(alpha, rel=0.10)
    assert fit.beta == pytest.approx(beta, rel=0.10)
    true_peak = math.sqrt((1 - alpha) / beta)          # Gunther's N*, computed here independently
    assert abs(fit.peak_concurrency - true_peak) <= 4  # one load step
    assert fit.alpha_ci[0] <= alpha <= fit.alpha_ci[1] or abs(fit.alpha - alpha) < 0.05 * alpha
    # the peak throughput is X(N*) of the true curve, within 5 %
    assert fit.peak_throughput_rps == pytest.approx(float(usl_throughput(true_peak, 120.0, alpha, beta)), rel=0.05)


def test_too_few_load_levels_give_no_verdict():
    n, x, lab = _sweep(0.05, 0.001, np.array([1, 10, 20, 30, 40]), noise=0.01, seed=1)
    fit = fit_usl(n, x, lab, n_boot=50)
    assert not fit.verdict and "load levels" in fit.reason


def test_straight_line_data_give_no_verdict():
    rng = np.random.default_rng(4)
    n = np.repeat(np.arange(1, 41, 3), 20).astype(float)
    x = 7.5 * n * (1 + 0.03 * rng.standard_normal(n.size))
    fit = fit_usl(n, x, n, n_boot=100)
    assert not fit.verdict
    assert "straight line" in fit.reason or "reaches zero" in fit.reason


def test_knee_of_a_hand_made_curve():
    # flat at 100 ms up to load 10, then rising steeply (20 ms per unit): the knee is at 10
    load = np.arange(1, 21, dtype=float)
    latency = np.where(load <= 10, 100 + 0.5 * load, 105 + 20 * (load - 10))
    assert find_knee(load, latency) == pytest.approx(10, abs=1)
    assert find_knee(load, 100 + 0 * load) is None


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    target = tmp_path_factory.mktemp("scaling") / "demo.duckdb"
    shutil.copy(DEMO, target)
    con = connect(target, read_only=True)
    window = resolve_window(con)
    yield con, window, analyse_scaling(con, window)
    con.close()


def test_demo_states_model_and_caveats_for_every_service(demo):
    con, _window, analysis = demo
    services = {r[0] for r in con.execute("SELECT DISTINCT service FROM requests").fetchall()}
    assert {s.service for s in analysis.services} == services
    for s in analysis.services:
        assert s.latency_model and s.caveats and s.fit.reason
        assert len(s.levels) >= 6
        assert s.autoscaling.min_instances >= 2 and s.autoscaling.hpa["kind"] == "HorizontalPodAutoscaler"
        assert [sc.factor for sc in s.scenarios] == [1.5, 2.0, 3.0]
        # instances from the deploy events (independently read)
        inst = con.execute("SELECT json_extract_string(details, '$.instances')::INT FROM events WHERE kind = "
                           "'deploy' AND service = ? ORDER BY ts_start DESC LIMIT 1", [s.service]).fetchone()[0]
        assert s.headroom.instances == inst


def test_demo_campaign_minutes_are_among_the_load_levels(demo):
    con, window, analysis = demo
    web = next(s for s in analysis.services if s.service == "web")
    assert web.evidence, "the campaign was not found"
    ev = web.evidence[0]
    assert ev["start"].startswith("2026-11-18T12:00") and ev["buckets"] == 24 and ev["buckets_used"] == 24
    # independently: every campaign bucket's per-instance concurrency lies inside a used level's range
    rows = con.execute("""
        SELECT sum(latency_ms) / 1000.0 / 300 / 3 FROM requests WHERE service = 'web'
          AND coalesce(cache_status, '') <> 'HIT'
          AND ts >= TIMESTAMPTZ '2026-11-18 12:00:00+00' AND ts < TIMESTAMPTZ '2026-11-18 14:00:00+00'
        GROUP BY time_bucket(INTERVAL 5 MINUTE, ts)""").fetchall()
    assert len(rows) == 24
    for (n,) in rows:
        assert any(lv.n_low - 1e-12 <= n <= lv.n_high + 1e-12 for lv in web.levels), n
    # the campaign is high load: about twice the median bucket, and mostly in the top levels
    assert ev["load_ratio"] > 1.8 and ev["top_level_share"] >= 0.5


def test_partial_renders_the_json_form(demo):
    _con, _window, analysis = demo
    data = to_jsonable(analysis)
    text = render_markdown_partial(data)
    check_markdown(text, "scaling partial")
    for s in analysis.services:
        assert s.service in text
    assert "HorizontalPodAutoscaler" in text or "autoscaling/v2" in text
    assert "No verdict" in text or "no verdict" in text or all(s.fit.verdict for s in analysis.services)


def render_markdown_partial(data: dict) -> str:
    """Render partials/scaling.md.j2's ``section`` through the kit's renderer (escaping environment)."""
    from kit.report.render import environment

    template = environment().from_string('{% from "partials/scaling.md.j2" import section %}{{ section(s) }}')
    assert render_markdown  # the same environment render_markdown uses
    return template.render(s=data)


def test_metrics_framework_scaling_block_validates(demo):
    import json

    import jsonschema

    from kit.config import RunConfig
    from kit.report.monitoring import build_metrics_framework
    from kit.report.render import validate_document
    from kit.results import dumps

    _con, _window, analysis = demo
    scaling = json.loads(dumps(analysis))
    document = build_metrics_framework({"scaling": scaling}, RunConfig(db=":memory:", title="t", as_of="2026-11-23"))
    validate_document(document, "Metrics_Framework_Specifications")
    block = document["scaling"]
    assert [s["service"] for s in block["services"]] == [s.service for s in analysis.services]
    for item, s in zip(block["services"], analysis.services, strict=True):
        assert item["autoscaling"]["min_instances"] == s.autoscaling.min_instances
        assert item["autoscaling"]["tolerance"] == 0.1
        names = {m["name"] for m in item["capacity_metrics"]}
        assert {"requests_per_instance", "concurrency_per_instance", "latency_p95", "cpu_utilization"} <= names
    broken = json.loads(json.dumps(document))
    broken["scaling"]["services"][0]["autoscaling"]["metric"] = "vibes"
    with pytest.raises(jsonschema.ValidationError):
        validate_document(broken, "Metrics_Framework_Specifications")
    assert "scaling" not in build_metrics_framework({}, RunConfig(db=":memory:", title="t", as_of="2026-11-23"))
