"""KPIs against independent references: hand-computed small warehouses, numpy/pandas on the same rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.analysis import kpis
from kit.analysis.kpis.red import _slices
from kit.analysis.kpis.sql import bucket_sql
from kit.analysis.window import Window, resolve_window
from kit.cli import main
from kit.results import dumps, save_result, to_jsonable
from kit.viz import kpis as charts
from kit.warehouse import connect

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _insert_requests(con, rows: list[tuple]) -> None:
    """rows: (ts, service, route, status, latency_ms)."""
    frame = pd.DataFrame(rows, columns=["ts", "service", "route", "status", "latency_ms"])  # noqa: F841
    con.execute("INSERT INTO requests (ts, service, route, path, status, latency_ms, bytes_sent, source_id) "
                "SELECT ts, service, route, route, status, latency_ms, 100, 1 FROM frame")


@pytest.fixture()
def ten():
    """10 requests, one per minute from T0: latencies 10..90 and 400 ms; two 503, one 404."""
    con = connect(":memory:")
    lat = [10, 20, 30, 40, 50, 60, 70, 80, 90, 400]
    status = [200, 200, 200, 404, 200, 200, 503, 200, 200, 503]
    _insert_requests(con, [(T0 + timedelta(minutes=i), "shop", "/a", status[i], lat[i]) for i in range(10)])
    yield con
    con.close()


@pytest.fixture()
def random_wh():
    """5,000 lognormal latencies over 2 hours, three services, ~3 % 5xx: returns (con, DataFrame)."""
    rng = np.random.default_rng(7)
    n = 5000
    frame = pd.DataFrame({
        "ts": [T0 + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 7200, n))],
        "service": rng.choice(["api", "web", "search"], n),
        "route": rng.choice([f"/r/{i}" for i in range(8)], n),
        "status": rng.choice([200, 404, 503], n, p=[0.92, 0.05, 0.03]),
        "latency_ms": rng.lognormal(4, 1, n),
    })
    con = connect(":memory:")
    _insert_requests(con, list(frame.itertuples(index=False, name=None)))
    yield con, frame
    con.close()


def test_ten_requests_match_hand_computation(ten):
    window = Window(T0, T0 + timedelta(minutes=10))
    (row,) = kpis.red_table(ten, window, None, apdex_t_ms=50)
    assert row.requests == 10
    assert row.rate_rps == pytest.approx(10 / 600)
    assert row.errors_5xx == 2 and row.error_rate_5xx == pytest.approx(0.2)
    assert row.errors_4xx == 1 and row.error_rate_4xx == pytest.approx(0.1)
    assert row.availability == pytest.approx(0.8)
    # satisfied (<= 50 ms, not 5xx): 10, 20, 30, 40 (a 404), 50 -> 5; tolerating (50 < x <= 200, not 5xx):
    # 60, 80, 90 -> 3; frustrated: the two 503s. Apdex = (5 + 3/2) / 10.
    assert row.apdex == pytest.approx(0.65)
    # linear interpolation between closest ranks on the sorted values (rank = q * (n - 1))
    assert row.p50_ms == pytest.approx(55.0)
    assert row.p90_ms == pytest.approx(90 + 0.1 * 310)
    assert row.p99_ms == pytest.approx(90 + 0.91 * 310)
    assert row.mean_ms == pytest.approx(85.0)


def test_ten_requests_throughput_counts_every_minute(ten):
    # 11 minutes, ten with one request each and the last one empty
    tput = kpis.throughput(ten, Window(T0, T0 + timedelta(minutes=11)))
    assert tput.minutes == 11
    assert tput.peak_rps_1m == pytest.approx(1 / 60)
    assert tput.sustained_rps_p95_1m == pytest.approx(np.percentile([1] * 10 + [0], 95) / 60)
    assert tput.mean_rps == pytest.approx(10 / 660)


def test_throughput_peak_and_sustained_with_an_empty_minute():
    con = connect(":memory:")
    counts = [120, 0, 60, 30]
    rows = [(T0 + timedelta(minutes=m, seconds=0.25 * k), "s", "/", 200, 5.0)
            for m, c in enumerate(counts) for k in range(c)]
    _insert_requests(con, rows)
    tput = kpis.throughput(con, Window(T0, T0 + timedelta(minutes=4)))
    assert tput.peak_rps_1m == pytest.approx(2.0)
    assert tput.peak_minute == T0
    assert tput.sustained_rps_p95_1m == pytest.approx(np.percentile(counts, 95) / 60)
    assert tput.median_rps_1m == pytest.approx(np.median(counts) / 60)


def test_percentiles_per_service_match_numpy(random_wh):
    con, frame = random_wh
    window = resolve_window(con)
    rows = {r.group: r for r in kpis.red_table(con, window, "service")}
    for service, part in frame.groupby("service"):
        expected = np.percentile(part["latency_ms"], [50, 90, 95, 99, 99.9])  # numpy default: linear
        got = rows[service]
        assert [got.p50_ms, got.p90_ms, got.p95_ms, got.p99_ms, got.p999_ms] == pytest.approx(expected, rel=1e-9)
        assert got.requests == len(part)
        assert got.error_rate_5xx == pytest.approx((part["status"] >= 500).mean())
        assert got.error_rate_4xx == pytest.approx(((part["status"] >= 400) & (part["status"] < 500)).mean())


def test_route_rows_keep_services_apart(random_wh):
    con, frame = random_wh
    rows = kpis.red_table(con, resolve_window(con), "route")
    expected = frame.groupby(["route", "service"]).size()
    assert len(rows) == len(expected)
    for r in rows:
        assert r.requests == expected[(r.group, r.service)]


def test_bucketed_series_match_pandas(random_wh):
    con, frame = random_wh
    window = resolve_window(con)
    series = kpis.red_series(con, window, "15m", None)
    buckets = frame.assign(b=frame["ts"].dt.floor("15min")).groupby("b")
    expected_counts = buckets.size()
    assert [p.requests for p in series] == list(expected_counts)
    assert [pd.Timestamp(p.bucket_start) for p in series] == list(expected_counts.index)
    expected_p95 = buckets["latency_ms"].quantile(0.95)  # pandas default: linear
    assert [p.p95_ms for p in series] == pytest.approx(list(expected_p95), rel=1e-9)
    assert [p.rate_rps for p in series] == pytest.approx(list(expected_counts / 900))


def test_approximate_path_is_within_the_stated_relative_error(random_wh):
    con, frame = random_wh
    report = kpis.kpi_report(con, exact_max_rows=100)
    assert "log histogram" in report.quantile_method
    bound = kpis.HIST_RELATIVE_ERROR * (1 + 1e-9)
    names = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms")
    percents = [100 * q for q in kpis.QUANTILES]
    exact = np.percentile(frame["latency_ms"], percents)  # numpy linear = quantile_cont
    got = [getattr(report.overall, n) for n in names]
    assert got == pytest.approx(list(exact), rel=bound)
    assert got != pytest.approx(list(exact), rel=1e-9)  # an estimate indeed, not the exact path
    for row in report.by_route:
        part = frame[(frame["route"] == row.group) & (frame["service"] == row.service)]["latency_ms"]
        assert [getattr(row, n) for n in names] == pytest.approx(list(np.percentile(part, percents)), rel=bound)
    assert report.by_route[0].requests == len(frame[(frame["route"] == report.by_route[0].group)
                                                    & (frame["service"] == report.by_route[0].service)])
    # the per-bucket series stay exact
    assert [p.requests for p in report.series_overall] == [p.requests for p in kpis.kpi_report(con).series_overall]
    assert kpis.kpi_report(con).quantile_method.startswith("exact: quantile_cont")


@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.9, 0.99, 0.9975, 0.999, 1.0])  # 0.9975: rank across the gap
def test_histogram_quantiles_bound_on_a_gap_and_tiny_values(q):
    # a bimodal sample with a wide gap (where interpolating between ranks matters), values spanning
    # 1e-2..1e5 ms, and sub-microsecond values (counted as 0.0005 ms: absolute error < 0.5 µs)
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.lognormal(2, 0.3, 997), rng.uniform(5e4, 1e5, 3), [0.01, 0.0002, 0.0]])
    con = connect(":memory:")
    _insert_requests(con, [(T0 + timedelta(seconds=i), "s", "/a", 200, float(v)) for i, v in enumerate(values)])
    got = kpis.histogram_quantiles(con, "TRUE", "'all'", (q,))[("all",)][0]
    exact = float(np.percentile(values, 100 * q))
    assert abs(got - exact) <= kpis.HIST_RELATIVE_ERROR * exact + 0.0005 + 1e-12
    con.close()


def test_window_parameters_and_service_filter(random_wh):
    con, frame = random_wh
    start, end = T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)
    report = kpis.kpi_report(con, start.isoformat(), end.isoformat(), ["api"])
    part = frame[(frame["ts"] >= start) & (frame["ts"] < end) & (frame["service"] == "api")]
    assert report.requests == len(part)
    assert [r.group for r in report.by_service] == ["api"]
    assert report.overall.p99_ms == pytest.approx(np.percentile(part["latency_ms"], 99))
    assert report.window_seconds == 3600


def test_histogram_and_heatmap_count_every_request(random_wh):
    con, frame = random_wh
    report = kpis.kpi_report(con)
    overall = [b for b in report.histogram if b.group == "all"]
    assert sum(b.count for b in overall) == len(frame)
    one = float(frame["latency_ms"].iloc[0])
    (containing,) = [b for b in overall if b.lo_ms <= one < b.hi_ms]
    inside = (frame["latency_ms"] >= containing.lo_ms) & (frame["latency_ms"] < containing.hi_ms)
    assert containing.count == inside.sum()
    assert sum(c.count for c in report.heatmap) == len(frame)


def test_period_over_period_compares_equal_windows():
    con = connect(":memory:")
    before = [(T0 + timedelta(minutes=i), "s", "/", 503 if i % 10 == 0 else 200, 20.0) for i in range(60)]
    now = [(T0 + timedelta(hours=1, minutes=i), "s", "/", 503 if i % 5 == 0 else 200, 20.0) for i in range(60)]
    _insert_requests(con, before + now)
    report = kpis.kpi_report(con, (T0 + timedelta(hours=1)).isoformat(), (T0 + timedelta(hours=2)).isoformat())
    assert report.comparison.basis == "previous window of the same length"
    assert report.comparison.previous_requests == 60
    rows = {r.name: r for r in report.comparison.rows}
    assert rows["error_rate_5xx"].current == pytest.approx(12 / 60)
    assert rows["error_rate_5xx"].previous == pytest.approx(6 / 60)
    assert rows["error_rate_5xx"].change_pct == pytest.approx(100.0)
    assert rows["error_rate_5xx"].verdict == "worse"
    assert rows["availability"].verdict == "worse"
    kpi = {k.name: k for k in report.kpis}["error_rate_5xx"]
    assert kpi.previous == pytest.approx(0.1)


def test_whole_history_window_compares_its_halves(ten):
    report = kpis.kpi_report(ten)
    assert "compared with" in report.comparison.basis
    assert report.comparison.rows[0].current is not None


def test_use_signals_rates_counters_and_reports_gaps():
    con = connect(":memory:")
    _insert_requests(con, [(T0 + timedelta(seconds=10 * i), "s", "/", 200, 10.0 * (i + 1)) for i in range(6)])
    # counter with a reset: 0, 10, 20, 5 (reset), 15 every 10 s -> per-step rates 1, 1, 0.5, 1
    counter = [0, 10, 20, 5, 15]
    rows = [(T0 + timedelta(seconds=10 * i), "pg_connection_errors_total", {"instance": "db1"}, float(v))
            for i, v in enumerate(counter)]
    rows += [(T0 + timedelta(seconds=10 * i), "node_cpu_utilization_ratio", {"instance": "a"}, 0.5) for i in range(5)]
    rows += [(T0 + timedelta(seconds=10 * i), "node_cpu_utilization_ratio", {"instance": "b"}, 0.7) for i in range(5)]
    # a gauge whose name ends in _count, a limit, and histogram parts: only the gauge is a USE signal
    rows += [(T0 + timedelta(seconds=10 * i), "pg_stat_activity_count", {"state": "active"}, 5.0) for i in range(5)]
    rows += [(T0, "pg_settings_max_connections", {}, 100.0)]
    rows += [(T0, f"db_query_duration_seconds{part}", {}, 1.0) for part in ("_bucket", "_sum", "_count")]
    con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, 1)", rows)
    signals, points, gaps = kpis.use_signals(con, Window(T0, T0 + timedelta(hours=1)), "1h")
    by_metric = {s.metric: s for s in signals}
    assert by_metric["pg_connection_errors_total"].kind == "errors"
    assert by_metric["pg_connection_errors_total"].mean == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    cpu = by_metric["node_cpu_utilization_ratio"]
    assert (cpu.resource, cpu.kind, cpu.series, cpu.samples) == ("cpu", "utilization", 2, 10)
    assert cpu.mean == pytest.approx(0.6)
    assert (by_metric["pg_stat_activity_count"].resource, by_metric["pg_stat_activity_count"].kind) == (
        "db_connections", "utilization")
    assert not {"pg_settings_max_connections", "db_query_duration_seconds_count"} & set(by_metric)
    assert sorted({p.metric for p in points}) == ["node_cpu_utilization_ratio", "pg_stat_activity_count"]
    points = [p for p in points if p.metric == "node_cpu_utilization_ratio"]
    assert points[0].p95_ms == pytest.approx(np.percentile([10, 20, 30, 40, 50, 60], 95))
    missing = {(g.resource, g.kind) for g in gaps}
    assert ("memory", "utilization") in missing and ("cpu", "saturation") in missing
    assert ("cpu", "utilization") not in missing and ("db_connections", "errors") not in missing
    inventory = {m.name: m for m in kpis.metric_inventory(con, Window(T0, T0 + timedelta(hours=1)))}
    assert inventory["node_cpu_utilization_ratio"].series == 2
    assert inventory["node_cpu_utilization_ratio"].interval_s == pytest.approx(10.0)
    assert inventory["pg_connection_errors_total"].type == "counter"
    assert inventory["node_cpu_utilization_ratio"].labels == ("instance",)


def test_report_without_metrics_says_what_is_missing(ten):
    report = kpis.kpi_report(ten)
    assert report.use == () and report.saturation_latency == ()
    kinds = {(g.resource, g.kind) for g in report.gaps}
    assert ("cpu", "utilization") in kinds and ("requests", "prometheus") in kinds
    assert ("requests", "upstream_ms") in kinds  # never filled in this warehouse


def test_report_is_json_serializable_and_carries_definitions(random_wh):
    con, _ = random_wh
    report = kpis.kpi_report(con, bucket="1m")
    loaded = json.loads(dumps(report))
    assert loaded["requests"] == 5000 and loaded["bucket_seconds"] == 60
    for k in loaded["kpis"]:
        assert k["definition"]["sql"].startswith("SELECT")
        assert k["definition"]["promql"]
    p99 = next(k for k in loaded["kpis"] if k["name"] == "latency_p99_ms")
    assert "histogram_quantile(0.99" in p99["definition"]["promql"]
    # the SQL definition is runnable and gives the KPI's value
    (value,) = con.execute(p99["definition"]["sql"]).fetchone()
    assert value == pytest.approx(p99["value"])


def test_empty_or_bad_input_fails_clearly(ten):
    with pytest.raises(ValueError, match="holds no data: ingest a source"):
        kpis.kpi_report(connect(":memory:"))
    with pytest.raises(ValueError, match="no requests in the window"):
        kpis.kpi_report(ten, "2030-01-01", "2030-01-02")
    with pytest.raises(ValueError, match="'end'"):
        kpis.kpi_report(ten, "2024-01-02", "2024-01-01")
    with pytest.raises(ValueError, match="bucket"):
        kpis.kpi_report(ten, bucket="5 minutes")
    with pytest.raises(ValueError, match="start"):
        kpis.kpi_report(ten, "yesterday")


def test_cli_kpi_json_matches_hand_numbers(tmp_path, capsys):
    path = tmp_path / "w.duckdb"
    con = connect(path)
    lat = [10, 20, 30, 40, 50, 60, 70, 80, 90, 400]
    status = [200, 200, 200, 404, 200, 200, 503, 200, 200, 503]
    _insert_requests(con, [(T0 + timedelta(minutes=i), "shop", "/a", status[i], lat[i]) for i in range(10)])
    con.close()
    assert main(["kpi", "--db", str(path), "--json", "--apdex-t-ms", "50",
                 "--start", "2024-01-01T00:00:00Z", "--end", "2024-01-01T00:10:00Z"]) == 0
    out = json.loads(capsys.readouterr().out)
    (row,) = out["rows"]
    assert (row["group"], row["requests"], row["apdex"], row["p50_ms"]) == ("shop", 10, pytest.approx(0.65), 55.0)
    assert main(["kpi", "--db", str(path), "--by", "route", "--bucket", "5m"]) == 0
    text = capsys.readouterr().out
    assert "/a" in text and "quantile_cont" in text
    assert main(["kpi", "--db", str(tmp_path / "missing.duckdb")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cli_names_the_quantile_method_its_rows_used(tmp_path, capsys):
    # 10 requests over --exact-max-rows 5: the whole-window table uses the log histogram, while the
    # per-bucket rows stay exact and must say so (and equal the hand-computed exact median)
    path = tmp_path / "w.duckdb"
    con = connect(path)
    lat = [10, 20, 30, 40, 50, 60, 70, 80, 90, 400]
    _insert_requests(con, [(T0 + timedelta(minutes=i), "shop", "/a", 200, lat[i]) for i in range(10)])
    con.close()
    args = ["kpi", "--db", str(path), "--exact-max-rows", "5"]
    assert main(args) == 0
    assert "percentiles: log_histogram" in capsys.readouterr().out
    assert main([*args, "--bucket", "1h"]) == 0
    assert "percentiles: quantile_cont" in capsys.readouterr().out
    assert main([*args, "--bucket", "1h", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quantile_function"] == "quantile_cont"
    assert [row["p50_ms"] for row in out["rows"]] == [55.0]  # exact: (50 + 60) / 2


def test_requests_without_latency_leave_out_the_latency_kpis_and_say_why():
    from kit.analysis.coverage import NEEDS

    con = connect(":memory:")
    _insert_requests(con, [(T0 + timedelta(minutes=i), "shop", "/a", 200 if i % 5 else 503, None)
                           for i in range(3 * 24 * 60)])  # 3 days: the comparison is last day against the one before
    report = kpis.kpi_report(con)
    names = {k.name for k in report.kpis}
    assert names.isdisjoint(kpis.LATENCY_KPIS) and {"error_rate_5xx", "availability", "peak_rps_1m"} <= names
    assert {r.name for r in report.comparison.rows} == names
    assert report.kpis[[k.name for k in report.kpis].index("error_rate_5xx")].value == pytest.approx(0.2)
    (note,) = [n for n in report.notes if "left out" in n]
    assert note == f"{', '.join(kpis.LATENCY_KPIS)} left out: {NEEDS['latency'].sentence()}"
    con.execute("UPDATE requests SET latency_ms = 10 WHERE ts = (SELECT min(ts) FROM requests)")
    with_one = kpis.kpi_report(con)  # one request with a latency: the latency KPIs are measured
    assert set(kpis.LATENCY_KPIS) <= {k.name for k in with_one.kpis}
    assert not any("left out" in n for n in with_one.notes)


@pytest.mark.notebook
def test_notebook_10_runs_and_saves_what_kpi_report_computes(tmp_path, random_wh):
    import papermill as pm

    from kit.config import PROJECT_ROOT

    con, frame = random_wh
    path = tmp_path / "w.duckdb"
    file_con = connect(path)
    _insert_requests(file_con, list(frame.itertuples(index=False, name=None)))
    file_con.close()
    results = tmp_path / "results"
    pm.execute_notebook(str(PROJECT_ROOT / "notebooks" / "10_kpis.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"db": str(path), "results_dir": str(results), "bucket": "15m",
                                    "apdex_t_ms": 100.0}, kernel_name="python3", progress_bar=False,
                        cwd=str(tmp_path))
    saved = json.loads((results / "kpis.json").read_text())
    expected = kpis.kpi_report(con, bucket="15m", apdex_t_ms=100.0)
    assert saved["requests"] == expected.requests == 5000
    assert saved["overall"]["p99_ms"] == pytest.approx(expected.overall.p99_ms)
    assert saved["overall"]["apdex"] == pytest.approx(expected.overall.apdex)
    assert saved["bucket_seconds"] == 900


def test_sliced_series_equal_pandas_per_route_and_minute(random_wh):
    # slice_rows=700 cuts the 2 hours into 8 bucket-aligned slices queried one by one: every
    # (route, minute) must still carry the exact count and linear-interpolation quantiles of pandas
    con, frame = random_wh
    window = resolve_window(con)
    sliced = kpis.red_series(con, window, "1m", "route", slice_rows=700)
    whole = kpis.red_series(con, window, "1m", "route")
    assert sliced == whole
    groups = frame.assign(b=frame["ts"].dt.floor("1min")).groupby(["route", "b"])["latency_ms"]
    expected = groups.quantile([0.5, 0.95, 0.99]).unstack()
    counts = groups.size()
    assert len(sliced) == len(expected)
    for p in sliced:
        key = (p.group, pd.Timestamp(p.bucket_start))
        assert p.requests == counts[key]
        assert [p.p50_ms, p.p95_ms, p.p99_ms] == pytest.approx(list(expected.loc[key]), rel=1e-12)
    lean = kpis.latency_series_frame(con, window, "1m", "route", slice_rows=700)
    assert list(lean.columns) == ["bucket_start", "group", "requests", "p50_ms", "p95_ms", "p99_ms"]
    assert lean["requests"].tolist() == [p.requests for p in sliced]
    assert lean["p99_ms"].tolist() == [p.p99_ms for p in sliced]
    assert lean["bucket_start"].tolist() == [pd.Timestamp(p.bucket_start) for p in sliced]


def test_slices_are_bucket_aligned_and_cover_the_window():
    window = Window(T0 + timedelta(seconds=17), T0 + timedelta(hours=5, seconds=3))
    parts = _slices(window, 900, rows=100, slice_rows=30)
    assert parts[0].start == window.start and parts[-1].end == window.end
    assert all(a.end == b.start for a, b in zip(parts, parts[1:], strict=False))
    assert all(p.start.timestamp() % 900 == 0 for p in parts[1:])  # cuts on 15-minute boundaries
    assert 4 <= len(parts) <= 5
    assert _slices(window, 900, rows=30, slice_rows=30) == [window]


@pytest.mark.parametrize("seconds", [60, 300, 1500, 7 * 86400])
def test_integer_buckets_equal_time_bucket(seconds):
    # 1500 s does not divide a day and 7 days aligns to Mondays: both follow time_bucket's 2000-01-03 origin
    con = connect(":memory:")
    index_sql, start_sql = bucket_sql(seconds)
    rows = con.execute(f"""
        WITH t AS (SELECT TIMESTAMPTZ '1999-12-30 23:59:59.5+00' + to_microseconds(i * 7_777_777_777) AS ts
                   FROM range(400) r(i))
        SELECT count(*) FILTER (WHERE got IS DISTINCT FROM want), count(*) FROM (
            SELECT time_bucket(INTERVAL '{seconds} seconds', ts) AS want,
                   (SELECT {start_sql} FROM (SELECT {index_sql} AS b)) AS got FROM t)""").fetchall()[0]
    assert rows == (0, 400)


def test_series_step_keeps_long_windows_small():
    assert kpis.series_step_s(86400, 300, 1000) == 300  # 288 buckets: as requested
    assert kpis.series_step_s(7 * 86400, 300, 1000) == 900  # 2016 five-minute buckets: 672 of 15 min
    assert kpis.series_step_s(7 * 86400, 300, 200) == 3600
    assert kpis.series_step_s(7 * 86400, 7200, 200) == 7200  # never finer than the requested bucket


def test_saved_json_is_columnar_rounded_and_draws_the_same(random_wh):
    con, frame = random_wh
    report = kpis.kpi_report(con, bucket="15m")
    saved = to_jsonable(report)
    series = saved["series_overall"]
    assert isinstance(series, dict) and len(series["requests"]) == len(report.series_overall)
    assert series["requests"] == [p.requests for p in report.series_overall]
    # 4 significant digits: within 5e-4 relative of the exact value
    assert series["p95_ms"] == pytest.approx([p.p95_ms for p in report.series_overall], rel=5e-4)
    assert all(len(f"{v:.10g}".replace(".", "").lstrip("0")) <= 4 for v in series["p95_ms"])
    assert sum(saved["heatmap"]["count"]) == len(frame)
    assert saved["by_route"][0]["group"] == report.by_route[0].group  # small tables stay records
    df = charts.frame(saved, "series_overall")
    assert str(df["bucket_start"].dt.tz) == "UTC" and len(df) == len(report.series_overall)


def test_saved_json_is_compact_and_the_shape_every_reader_sees(random_wh, tmp_path):
    con, _ = random_wh
    report = kpis.kpi_report(con, bucket="1m")
    path = save_result(tmp_path, "kpis", report, compact=True)
    assert path == tmp_path / "kpis.json"
    assert "\n " not in path.read_text()  # no indentation
    # the notebook saves what the documents' tests build with dumps, and what the figures draw from
    assert json.loads(path.read_text()) == json.loads(dumps(report)) == to_jsonable(report)
    assert isinstance(json.loads(dumps(report))["heatmap"], dict)
    assert save_result("", "kpis", report) == Path()
