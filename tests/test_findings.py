"""Bottleneck findings (issue #11): hand-made warehouses with known change points, the rule that the
detector never reads ``incident`` events, the demo's four planted incidents with their causes, a clean
week, the effect intervals against references, and real data (an Apache log, the NAB series)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from kit.analysis.findings import Findings, find_bottlenecks, findings_table
from kit.analysis.findings.effects import hodges_lehmann, proportion_difference, rate_ratio
from kit.analysis.findings.series import series_changes
from kit.analysis.window import Window, resolve_window
from kit.report.render import validate_document
from kit.warehouse import connect
from tests.conftest import SHARED_DATASETS

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOURS = 3
LATENCY_ONSET = T0 + timedelta(minutes=100)
SHIFT_MS = 40.0
BURST = (T0 + timedelta(minutes=60), T0 + timedelta(minutes=80))
BURST_RATE = 0.2


def _requests(seed: int = 1, *, latency_step: bool = True, burst: bool = True) -> pd.DataFrame:
    """Three hours of a service 'shop': route /a (~5 req/s, lognormal latency around 50 ms, +40 ms from
    LATENCY_ONSET) and /b (~3 req/s, 0.5 % 5xx, 20 % 503 during BURST)."""
    rng = np.random.default_rng(seed)
    span = HOURS * 3600
    frames = []
    for route, rate in (("/a", 5.0), ("/b", 3.0)):
        n = rng.poisson(rate * span)
        offset = np.sort(rng.random(n) * span)
        ts = pd.to_datetime(T0) + pd.to_timedelta(offset, unit="s")
        latency = np.exp(np.log(50.0) + 0.4 * rng.standard_normal(n))
        status = np.where(rng.random(n) < 0.005, 500, 200)
        if route == "/a" and latency_step:
            latency = latency + np.where(ts >= LATENCY_ONSET, SHIFT_MS, 0.0)
        if route == "/b" and burst:
            inside = (ts >= BURST[0]) & (ts < BURST[1])
            status = np.where(inside & (rng.random(n) < BURST_RATE), 503, status)
        frames.append(pd.DataFrame({"ts": ts, "service": "shop", "route": route, "status": status,
                                    "latency_ms": latency}))
    return pd.concat(frames, ignore_index=True)


def _warehouse(frame: pd.DataFrame, *, latency: bool = True) -> duckdb.DuckDBPyConnection:
    con = connect(":memory:")
    con.register("frame", frame)
    lat = "latency_ms" if latency else "NULL"
    con.execute(f"INSERT INTO requests (ts, service, host, method, route, path, status, latency_ms, source_id) "
                f"SELECT ts, service, 'h1', 'GET', route, route, status, {lat}, 1 FROM frame")
    con.unregister("frame")
    con.execute("INSERT INTO events (ts_start, ts_end, kind, service, route, what, source_id) VALUES "
                "(?, ?, 'deploy', 'shop', NULL, 'deploy shop 1.2.0', 1)",
                [LATENCY_ONSET - timedelta(seconds=20), LATENCY_ONSET + timedelta(minutes=2)])
    return con


@pytest.fixture(scope="module")
def shop() -> duckdb.DuckDBPyConnection:
    con = _warehouse(_requests())
    yield con
    con.close()


def _window(con: duckdb.DuckDBPyConnection) -> Window:
    return resolve_window(con)


def test_latency_step_found_on_its_route_with_onset_effect_and_cause(shop: duckdb.DuckDBPyConnection) -> None:
    found = find_bottlenecks(shop, _window(shop))
    latency = [f for f in found.items if f.kind == "latency_shift"]
    assert len(latency) == 1, findings_table(found)
    f = latency[0]
    assert f.scope == {"service": "shop", "route": "/a"}
    assert abs((f.onset - LATENCY_ONSET).total_seconds()) <= 2 * found.bucket_s
    assert f.end is None  # still on at the end of the window
    assert f.ci_low <= SHIFT_MS <= f.ci_high
    assert f.confidence == "high"
    assert f.causes[0].kind == "deploy" and "1.2.0" in f.causes[0].detail


def test_error_burst_found_with_onset_end_and_effect(shop: duckdb.DuckDBPyConnection) -> None:
    found = find_bottlenecks(shop, _window(shop))
    bursts = [f for f in found.items if f.kind == "error_burst"]
    assert len(bursts) == 1, findings_table(found)
    f = bursts[0]
    assert f.scope["route"] == "/b" and f.scope["status"] == "5xx"
    assert abs((f.onset - BURST[0]).total_seconds()) <= 2 * found.bucket_s
    assert f.end is not None and abs((f.end - BURST[1]).total_seconds()) <= 2 * found.bucket_s
    planted = BURST_RATE * 0.995  # 503 replaces a 200 (a 500 stays a 500)
    assert f.ci_low <= planted <= f.ci_high
    assert f.causes[0].kind == "unknown"  # nothing in events or elsewhere explains it


def test_no_change_means_no_finding_above_low_confidence() -> None:
    con = _warehouse(_requests(seed=5, latency_step=False, burst=False))
    found = find_bottlenecks(con, _window(con))
    assert [f for f in found.items if f.confidence != "low"] == [], findings_table(found)


def test_without_latency_there_are_no_latency_findings_but_bursts_are_found() -> None:
    con = _warehouse(_requests(), latency=False)
    found = find_bottlenecks(con, _window(con))
    kinds = {f.kind for f in found.items}
    assert "error_burst" in kinds
    assert not kinds & {"latency_shift", "variance_change"}


def test_json_matches_schema_and_sql_reproduces_the_counts(shop: duckdb.DuckDBPyConnection) -> None:
    found = find_bottlenecks(shop, _window(shop))
    document = found.to_dict()
    validate_document(json.loads(json.dumps(document, allow_nan=False)), "bottleneck_findings")
    burst = next(f for f in found.items if f.kind == "error_burst")
    k1, n1 = shop.execute(burst.sql["after"]).fetchone()
    assert k1 / n1 == pytest.approx(burst.after)


class _Recorder:
    """A connection stand-in that records every statement it runs."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con, self.statements = con, []

    def execute(self, sql: str, params: object = None) -> duckdb.DuckDBPyConnection:
        self.statements.append(sql)
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)


def test_detector_never_reads_incident_events() -> None:
    con = _warehouse(_requests())
    insert = ("INSERT INTO events (ts_start, ts_end, kind, service, route, what, source_id) "
              "VALUES (?, ?, 'incident', ?, ?, ?, 2)")
    con.execute(insert, [LATENCY_ONSET, None, "shop", "/a", "latency regression on /a (ground truth)"])
    with_truth = find_bottlenecks(con, _window(con)).to_dict()
    con.execute("DELETE FROM events WHERE kind = 'incident'")
    con.execute(insert, [T0 + timedelta(minutes=5), T0 + timedelta(minutes=6), "other", "/x", "decoy incident"])
    assert find_bottlenecks(con, _window(con)).to_dict() == with_truth
    recorder = _Recorder(con)
    find_bottlenecks(recorder, _window(con))  # type: ignore[arg-type]
    reads = [s for s in recorder.statements if "events" in s.lower()]
    assert reads and all("kind <> 'incident'" in s for s in reads)


# ------------------------------------------------------------------------------------------------
# effects against references
# ------------------------------------------------------------------------------------------------

def test_hodges_lehmann_interval_covers_the_true_shift_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(200):
        x = rng.standard_exponential(60) * 30
        y = rng.standard_exponential(50) * 30 + 12.0
        e = hodges_lehmann(x, y)
        covered += e.ci_low <= 12.0 <= e.ci_high
    assert 0.90 <= covered / 200 <= 0.99


def test_hodges_lehmann_matches_brute_force_median_of_differences() -> None:
    x, y = np.array([1.0, 4.0, 9.0, 2.0]), np.array([5.0, 7.0, 20.0])
    assert hodges_lehmann(x, y).effect == pytest.approx(np.median([b - a for a in x for b in y]))


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a), method 10 (hybrid score):
    # 56/70 - 48/80 = 0.2000, 95 % CI 0.0524 to 0.3339
    e = proportion_difference(48, 80, 56, 70)
    assert (round(e.effect, 4), round(e.ci_low, 4), round(e.ci_high, 4)) == (0.2, 0.0524, 0.3339)


def test_rate_ratio_interval_is_symmetric_in_log_space() -> None:
    e = rate_ratio(400, 100.0, 200, 100.0)
    assert e.effect == pytest.approx(0.5)
    assert np.log(e.effect) - np.log(e.ci_low) == pytest.approx(np.log(e.ci_high) - np.log(e.effect))


# ------------------------------------------------------------------------------------------------
# the demo: four planted incidents with their causes; a clean week
# ------------------------------------------------------------------------------------------------

DEMO = {"requests": 150_000, "days": 7, "seed": 42}  # the size test_demo.py and test_slo_cli.py build too
EXPECTED = {  # planted type -> (finding kind, cause kind, text the cause must contain)
    "latency_regression": ("latency_shift", "deploy", "2.14.0"),
    "error_burst": ("error_burst", "config", "keepalive"),
    "db_saturation": ("saturation", "query", "orders o JOIN order_items"),
    "cdn_cache_outage": ("cache_hit_drop", "config", "Vary: Cookie"),
}


@pytest.fixture(scope="module")
def demo_path(demo_warehouse: Callable[..., Path]) -> Path:
    return demo_warehouse(**DEMO)


@pytest.fixture(scope="module")
def demo_findings(demo_path: Path) -> Findings:
    con = connect(demo_path, read_only=True)
    try:
        return find_bottlenecks(con, resolve_window(con))
    finally:
        con.close()


def test_demo_finds_all_four_planted_incidents_with_their_causes(demo_findings: Findings) -> None:
    from kit.demo import SLOW_QUERY, plan_incidents

    bucket = timedelta(seconds=demo_findings.bucket_s)
    for incident in plan_incidents(DEMO["days"]):
        kind, cause_kind, text = EXPECTED[incident.type]
        match = [f for f in demo_findings.items if f.kind == kind and abs(f.onset - incident.start) <= 2 * bucket
                 and f.confidence in ("high", "medium")]
        assert len(match) == 1, f"{incident.type}:\n{findings_table(demo_findings)}"
        f = match[0]
        assert f.scope["service"] == incident.service
        if incident.route:
            assert f.scope.get("route") == incident.route
        assert f.end is not None and abs(f.end - incident.end) <= 2 * bucket
        assert any(c.kind == cause_kind and text in (c.detail + c.ref) for c in f.causes[:3]), f.causes
        if incident.type == "db_saturation":
            assert any(c.kind == "query" and c.ref == SLOW_QUERY for c in f.causes)
            assert any(c.kind == "metric" and "database connections" in c.detail for c in f.causes)


def test_demo_has_no_confident_finding_outside_the_planted_incidents(demo_findings: Findings) -> None:
    from kit.demo import plan_incidents

    margin = timedelta(hours=1)
    incidents = plan_incidents(DEMO["days"])
    stray = [f for f in demo_findings.items if f.confidence != "low" and not any(
        f.onset < i.end + margin and i.start - margin < (f.end or f.onset) for i in incidents)]
    assert stray == [], findings_table(demo_findings)


def test_clean_week_has_no_finding_above_low_confidence(demo_path: Path, tmp_path: Path) -> None:
    """The demo with each incident's requests replaced by the same clock hours of the day before (a
    week of ordinary traffic: daily and weekly cycles, the 2x campaign peak, deploys without effect)."""
    from kit.demo import plan_incidents

    clean = tmp_path / "clean.duckdb"
    shutil.copy(demo_path, clean)
    con = connect(clean)
    day = timedelta(days=1)
    for i in plan_incidents(DEMO["days"]):
        start, end = i.start - timedelta(minutes=30), i.end + timedelta(minutes=30)
        con.execute("DELETE FROM requests WHERE ts >= ? AND ts < ?", [start, end])
        con.execute("INSERT INTO requests SELECT ts + INTERVAL 1 DAY, * EXCLUDE (ts) FROM requests "
                    "WHERE ts >= ? AND ts < ?", [start - day, end - day])
    found = find_bottlenecks(con, resolve_window(con))
    con.close()
    assert [f for f in found.items if f.confidence != "low"] == [], findings_table(found)


# ------------------------------------------------------------------------------------------------
# real data
# ------------------------------------------------------------------------------------------------

NAB = SHARED_DATASETS / "timeseries" / "nab"


def _nab_series(name: str) -> tuple[pd.DatetimeIndex, np.ndarray, int]:
    frame = pd.read_csv(NAB / "data" / name, parse_dates=["timestamp"]).set_index("timestamp")["value"]
    step = int(frame.index.to_series().diff().median().total_seconds())
    resampled = frame.resample(f"{step}s", origin=frame.index.min()).mean()
    return pd.DatetimeIndex(resampled.index), resampled.to_numpy(dtype=float), step


@pytest.mark.skipif(not NAB.exists(), reason="shared NAB series not available")
def test_nab_request_latency_failures_are_found_without_false_alarms() -> None:
    """NAB realKnownCause/ec2_request_latency_system_failure: three labelled windows of a real EC2
    request-latency series. The detector core finds two of the three, and every change it reports lies
    in a labelled window (measured: 2 of 3 windows, 3 of 3 segments)."""
    name = "realKnownCause/ec2_request_latency_system_failure.csv"
    index, values, step = _nab_series(name)
    windows = [(pd.Timestamp(a), pd.Timestamp(b))
               for a, b in json.loads((NAB / "labels" / "combined_windows.json").read_text())[name]]
    segments = [(index[s.start], index[min(s.stop, len(index) - 1)])
                for d in (1, -1) for s in series_changes(values, step, index[0].timestamp(), d)]
    found = sum(any(s <= b and a <= e for s, e in segments) for a, b in windows)
    inside = sum(any(s <= b and a <= e for a, b in windows) for s, e in segments)
    assert found >= 2
    assert segments and inside == len(segments)


@pytest.mark.skipif(not (SHARED_DATASETS / "access_logs" / "elastic_apache").exists(),
                    reason="shared Apache log not available")
def test_real_apache_log_without_request_times_gives_valid_findings() -> None:
    """10,000 real Apache combined lines over ~3 days, no request time: the detector runs on what there
    is (status and traffic), gives no latency finding, and its document passes the schema."""
    from kit.ingest.access_log import ingest_access_log

    log = SHARED_DATASETS / "access_logs" / "elastic_apache" / "elastic_examples_apache_logs.log"
    con = connect(":memory:")
    ingest_access_log(con, log)
    found = find_bottlenecks(con, resolve_window(con))
    validate_document(json.loads(json.dumps(found.to_dict(), allow_nan=False)), "bottleneck_findings")
    assert found.bucket_s >= 60
    assert not {f.kind for f in found.items} & {"latency_shift", "variance_change", "saturation"}


def test_short_log_ending_inside_a_second_keeps_its_latency_shift() -> None:
    """A 60-s load test (two routes, ~400 req/s) whose /a becomes 3x slower at 30 s, and whose log thins
    out in its last second and stops 100 ms into the next, as a wrk run does: the nearly empty last second
    is no traffic drop, and it does not turn the route's latency shift into a service-wide throughput
    change."""
    rng = np.random.default_rng(3)
    start = datetime(2026, 3, 2, 9, 0, 0, 400_000, tzinfo=UTC)   # starts inside a second, too
    span = 60.1 - 0.4
    n = rng.poisson(400 * span)
    offset = np.sort(rng.random(n) * span)
    closing = (offset >= span - 1.1) & (rng.random(n) < 0.3)   # wrk's connections finish in the last second
    offset = offset[~closing]
    n = len(offset)
    ts = pd.to_datetime(start) + pd.to_timedelta(offset, unit="s")
    route = np.where(rng.random(n) < 0.5, "/a", "/b")
    latency = 7.0 * np.exp(0.3 * rng.standard_normal(n))
    switched = start + timedelta(seconds=29.6)
    latency = np.where((route == "/a") & (ts >= switched), latency * 3, latency)
    con = _warehouse(pd.DataFrame({"ts": ts, "service": "shop", "route": route, "status": 200,
                                   "latency_ms": latency}))
    try:
        found = find_bottlenecks(con, _window(con))
    finally:
        con.close()
    assert found.bucket_s == 1
    confident = [f for f in found.items if f.confidence in ("high", "medium")]
    assert [(f.kind, f.scope.get("route")) for f in confident] == [("latency_shift", "/a")], found.items
    assert abs((confident[0].onset - switched).total_seconds()) <= 2


def test_query_cause_from_pg_stat_statements_snapshots(con) -> None:
    """Each live pg_stat_statements snapshot is its own ingest (one source per call, the same server
    path): the database time of a fingerprint is read across them, by hand. F runs 10 ms a minute until
    minute 40 and 100 ms a minute after, with a counter reset at minute 45 (its snapshot then holds only
    the 100 ms since the reset); G runs 50 ms a minute throughout. Stretch [40, 50) min against [10, 40):
    F 300 ms / 1800 s before, 10 + 9 x 100 = 910 ms / 600 s after; G no rise."""
    from kit import warehouse
    from kit.analysis.findings.causes import query_causes
    from kit.ingest.pg_stat_statements import KIND

    f_calls, f_ms, rows = 0, 0.0, []
    for minute in range(60):   # cumulative counters, one call a minute
        if minute == 45:
            f_calls, f_ms = 1, 100.0
        elif minute > 0:
            f_calls, f_ms = f_calls + 1, f_ms + (10.0 if minute <= 40 else 100.0)
        src = warehouse.begin_source(con, KIND, "host=db1")
        for fp, calls, ms in (("select f", f_calls, f_ms), ("select g", minute, 50.0 * minute)):
            rows.append((T0 + timedelta(minutes=minute), fp, calls, ms, src.source_id))
    con.executemany("INSERT INTO queries (ts, db_system, database, user_name, kind, fingerprint, calls, total_ms, "
                    "source_id) VALUES (?, 'postgresql', 'd', 'u', 'snapshot', ?, ?, ?, ?)", rows)
    causes, _ = query_causes(con, T0 + timedelta(minutes=40), T0 + timedelta(minutes=50), 60)
    assert [(c.kind, c.ref, c.strength) for c in causes] == [("query", "select f", 1.0)]
    before, after = 300 / 1800, 910 / 600
    ratio = after / before
    assert causes[0].detail == f"database time {before:.3g} → {after:.3g} ms/s (×{ratio:.1f}; 100% of the rise)"
