"""Backtest on a synthetic series with hand-computed detection delays, on the demo, and on NAB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from kit.analysis.slo import SloSpec
from kit.analysis.slo.backtest import backtest_slos, nab_score

START = datetime(2026, 1, 1, tzinfo=UTC)


def _synthetic():
    """7 days at 1,000 requests/min. Incident: 5% errors for 60 min from day 4 10:00 (recorded).
    Blip: 5% errors for 2 min on day 5 (not an incident)."""
    n = 7 * 1440
    total = np.full(n, 1000, dtype=np.int64)
    bad = np.zeros(n, dtype=np.int64)
    m0 = 4 * 1440 + 600
    bad[m0:m0 + 60] = 50
    bad[5 * 1440:5 * 1440 + 2] = 50
    spec = SloSpec(name="a", service="svc", objective=0.999, objective_percent=99.9, warehouse_service="svc")
    incident = {"ts_start": START + timedelta(minutes=m0), "ts_end": START + timedelta(minutes=m0 + 60),
                "service": "svc", "route": None, "what": "planted", "type": "error_burst"}
    return spec, total, bad, incident


def test_synthetic_delays_and_resets_are_hand_computed():
    spec, total, bad, incident = _synthetic()
    report = backtest_slos([(spec, (total, bad))], START, [incident])
    by = {p.policy: p for p in report.policies}
    # budget B = 0.001, error ratio r = 0.05. After k bad minutes a w-minute window holds r*k/w.
    # mwmbr page 1h/5m at 14.4x: r*k/60 > 0.0144 -> k > 17.28 -> fires after 18 min. It stops when the
    # 6h/30m pair at 6x stops: the 30-min window holds 29-j bad minutes j minutes after the end,
    # r*(29-j)/30 > 0.006 -> j <= 25 -> episode ends 26 min after the incident.
    assert by["mwmbr"].mean_delay_s == 18 * 60 and by["mwmbr"].mean_reset_s == 26 * 60
    # 10-min threshold at B: fires in the first minute; stops when r*(9-j)/10 <= B -> 9 min after.
    assert by["threshold"].mean_delay_s == 60 and by["threshold"].mean_reset_s == 9 * 60
    # 1 h at 14.4x: same 18 min; holds while r*(59-j)/60 > 0.0144 -> j <= 41 -> 42 min after.
    assert by["burn_rate_1h"].mean_delay_s == 18 * 60 and by["burn_rate_1h"].mean_reset_s == 42 * 60
    # the blip fires only the single threshold (r*2/10 = 0.01 > B; r*2/60 < 0.0144)
    assert by["threshold"].episodes == 2 and by["threshold"].precision == 0.5
    assert by["mwmbr"].episodes == 1 and by["mwmbr"].precision == 1.0 and by["mwmbr"].recall == 1.0
    # the 3d/6h ticket at 1x needs r*60/4320 = 0.00069 > 0.001: no ticket
    assert by["mwmbr"].tickets_per_week == 0
    inc = report.incidents[0]
    assert inc.burns_budget and inc.detected and inc.severity == "page"
    assert inc.budget_consumed_ratio == pytest.approx(50 * 60 / 43200)


def test_an_alert_that_stops_before_the_incident_ends_has_no_negative_reset():
    """The same 60 error minutes, but the incident is recorded as 120 min long (the errors stopped, the
    incident stayed open). Each alert's episode ends where the synthetic case says (26, 9 and 42 min after
    the last bad minute), so before the recorded end: the reset (firing after the end) is 0, not 26 - 60 =
    -34 min, and by how much it stopped early is counted apart."""
    spec, total, bad, incident = _synthetic()
    incident = {**incident, "ts_end": incident["ts_end"] + timedelta(minutes=60)}
    report = backtest_slos([(spec, (total, bad))], START, [incident])
    by = {p.policy: p for p in report.policies}
    for policy in ("mwmbr", "threshold", "burn_rate_1h"):
        assert by[policy].mean_reset_s == 0 and by[policy].cleared_early == 1 and by[policy].recall == 1.0
    inc = report.incidents[0]  # the chosen policy (mwmbr): its page stopped 60 - 26 = 34 min before the end
    assert inc.detected and inc.reset_s == 0 and inc.cleared_early_s == 34 * 60
    # the recorded incident as long as the errors: 26 min of firing after the end, nothing early
    plain = backtest_slos([(spec, (total, bad))], START, [_synthetic()[3]])
    assert plain.incidents[0].reset_s == 26 * 60 and plain.incidents[0].cleared_early_s == 0
    assert {p.policy: p.cleared_early for p in plain.policies}["mwmbr"] == 0


def test_quiet_traffic_guard_delays_the_page_to_the_slow_pair():
    spec, total, bad, incident = _synthetic()
    total = np.full_like(total, 10)  # 10 requests/min, 1 of them bad during the incident (10%)
    bad = np.where(bad > 0, 1, 0)
    bad[5 * 1440:5 * 1440 + 2] = 0
    plain = {p.policy: p for p in backtest_slos([(spec, (total, bad))], START, [incident]).policies}["mwmbr"]
    guarded = {p.policy: p for p in backtest_slos([(spec, (total, bad))], START, [incident],
                                                  min_bad_events=10).policies}["mwmbr"]
    # unguarded 1h/5m: k/600 > 0.0144 -> 9 min. Guarded: 1 h holds 600 < ceil(10/0.0144) = 695 events,
    # so only 6h/30m at 6x can fire (6 h holds 3,600 >= 1,667): k/3600 > 0.006 -> 22 min.
    assert plain.mean_delay_s == 9 * 60
    assert guarded.mean_delay_s == 22 * 60


def test_nab_scoring_runs_on_the_shared_series(shared_datasets):
    report = nab_score(shared_datasets / "timeseries/nab")
    assert len(report.series) >= 15
    by = {p["policy"]: p for p in report.policies}
    windows = sum(s.windows for s in report.series)
    for p in by.values():
        assert p["label_windows"] == windows and 0 <= p["recall"] <= 1
    # multiple windows are much quieter than a single threshold on the same signal
    assert by["mwmbr"]["false_episodes"] < by["threshold"]["false_episodes"]


def _brute_force_mask(total, bad, budget, windows, severity):
    """The alert condition evaluated minute by minute with explicit window sums (slow, obviously right)."""
    out = []
    for i in range(len(total)):
        fires = False
        for w in windows:
            if w.severity != severity:
                continue
            ok = True
            for seconds in (w.long_window_s, w.short_window_s):
                width = int(seconds // 60)
                lo = max(0, i - width + 1)
                t = int(total[lo:i + 1].sum())
                b = int(bad[lo:i + 1].sum())
                ok = ok and t > 0 and b / t > w.burn_rate * budget
            fires = fires or ok
        out.append(fires)
    return np.array(out)


def test_vectorized_masks_match_a_brute_force_replay():
    from kit.analysis.slo.alerts import window_specs
    from kit.analysis.slo.backtest import policy_masks

    rng = np.random.default_rng(7)
    n = 5 * 1440
    total = rng.poisson(40, n)
    rate = np.where(rng.random(n) < 0.02, 0.2, 0.0005)   # scattered bad minutes
    rate[3000:3090] = 0.05                                 # and one sustained burn
    bad = rng.binomial(total, rate)
    windows = window_specs(30)
    masks = policy_masks(total, bad, 0.001, windows)
    for severity in ("page", "ticket"):
        expected = _brute_force_mask(total, bad, 0.001, windows, severity)
        assert expected.any()
        assert (masks["mwmbr"][severity] == expected).all(), severity


@pytest.mark.integration
def test_backtest_and_the_generated_promql_agree_under_prometheus(tmp_path):
    """The replay and the rule file implement the same condition: feed the minute counts as Prometheus
    counters to promtool and expect the page alert exactly where the backtest fires (checked at minutes
    at least 3 minutes away from any change of the backtest's state, to leave rate()'s extrapolation out)."""
    import shutil
    import subprocess

    import yaml

    from kit.analysis.slo import AlertingSpec, default_queries
    from kit.analysis.slo.alerts import alert_plan, rules_yaml, window_specs
    from kit.analysis.slo.backtest import policy_masks

    n = 8 * 60
    total = np.full(n, 600, dtype=np.int64)
    bad = np.zeros(n, dtype=np.int64)
    bad[180:240] = 60            # 10% errors for an hour from 3 h
    bad[330:334] = 300           # a 4-minute 50% spike at 5.5 h
    error_q, total_q = default_queries("svc", "availability", None)
    spec = SloSpec(name="avail", service="svc", objective=0.999, objective_percent=99.9, error_query=error_q,
                   total_query=total_q, warehouse_service="svc",
                   alerting=AlertingSpec(name="SvcBurn", page_labels={"severity": "critical"}, ticket_disabled=True))
    page = policy_masks(total, bad, spec.error_budget_ratio, window_specs(30))["mwmbr"]["page"]
    assert page.any() and not page.all()
    stable = [i for i in range(3, n - 3) if (page[i - 3:i + 4] == page[i]).all()]
    picks = sorted({stable[k] for k in np.linspace(0, len(stable) - 1, 24).astype(int)})
    assert any(page[i] for i in picks) and not all(page[i] for i in picks)

    (tmp_path / "rules.yml").write_text(rules_yaml([spec], alert_plan([spec])))
    ok = np.concatenate(([0], np.cumsum(total - bad)))     # sample k = count of minutes 0..k-1
    err = np.concatenate(([0], np.cumsum(bad)))
    labels = {"sloth_id": "svc-avail", "sloth_service": "svc", "sloth_slo": "avail", "sloth_severity": "page",
              "severity": "critical"}
    annotations = {"summary": "svc avail SLO error budget burn rate is over expected.",
                   "title": "(page) svc avail SLO error budget burn rate is too fast."}
    checks = [{"eval_time": f"{i + 1}m", "alertname": "SvcBurn",
               "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}] if page[i] else []}
              for i in picks]
    doc = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'http_requests_total{service="svc", code="200"}', "values": " ".join(map(str, ok))},
            {"series": 'http_requests_total{service="svc", code="500"}', "values": " ".join(map(str, err))}],
        "alert_rule_test": checks}]}
    (tmp_path / "agree_test.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required"
    done = subprocess.run([promtool, "test", "rules", "agree_test.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
