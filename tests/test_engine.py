"""Same numbers on DuckDB and on Spark (``local[2]``): the heavy aggregations run on one Parquet warehouse
(a 3-day demo written as ``ROOT/<table>/day=YYYY-MM-DD/*.parquet``) through both engines, and each is
checked against an independent reference computed with numpy/pandas from the raw rows.

Counts and integer sums are identical; exact percentiles are the same order statistics interpolated with
the same weight, equal to 2 units in the last place (DuckDB's compiled interpolation may fuse the multiply-add,
Java's does not); floating sums agree to 1e-12 (addition order). Approximate percentiles are held to the
rank error each engine declares (``kit.engine.RANK_ERROR``), against the exact ranks."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from kit.analysis.bottlenecks import time_consumers
from kit.analysis.findings import series as findings_series
from kit.analysis.kpis import (
    HIST_RELATIVE_ERROR,
    histogram_quantiles,
    latency_heatmap,
    latency_histogram,
    red_series_frame,
    red_table,
    throughput,
)
from kit.analysis.kpis.sql import scope_sql
from kit.analysis.slo.sli import minute_series
from kit.analysis.slo.spec import SloSpec
from kit.analysis.window import Window, resolve_window
from kit.config import RunConfig
from kit.engine import (
    RANK_ERROR,
    DuckDBEngine,
    EngineError,
    SparkEngine,
    open_engine,
    spark_session,
    to_spark_sql,
)
from kit.errors import ParameterError
from kit.ingest.parquet import convert
from kit.parquet_warehouse import committed_files
from kit.warehouse import connect
from tests.conftest import PROJECT_ROOT

LARGE = ("requests", "metrics", "queries", "cache_requests")


@pytest.fixture(scope="module")
def warehouse(demo_warehouse: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parquet") / "wh"
    convert(demo_warehouse(requests=60_000, days=3, seed=7), root)  # the product's writer
    return root


@pytest.fixture(scope="module")
def engines(warehouse: Path) -> Iterator[tuple[DuckDBEngine, SparkEngine, duckdb.DuckDBPyConnection]]:
    files = committed_files(warehouse)
    con = connect(warehouse, read_only=True)  # the product's views over the committed files
    spark = SparkEngine(files, session=spark_session("local[2]"))  # one session per test process
    yield DuckDBEngine(con), spark, con
    con.close()


@pytest.fixture(scope="module")
def raw(engines: tuple[DuckDBEngine, SparkEngine, duckdb.DuckDBPyConnection]) -> pd.DataFrame:
    """The raw requests (the independent reference's input)."""
    return engines[2].execute("SELECT ts, service, route, status, latency_ms, bytes_sent, cache_status "
                              "FROM requests").df()


@pytest.fixture(scope="module")
def window(engines: tuple[DuckDBEngine, SparkEngine, duckdb.DuckDBPyConnection]) -> Window:
    return resolve_window(engines[2])


def exact_quantile(values: np.ndarray, q: float) -> float:
    values = np.sort(values[~np.isnan(values)])
    return float(np.quantile(values, q)) if len(values) else float("nan")


def same_ulp(a: Any, b: Any, maxulp: int = 2) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_max_ulp(a[~np.isnan(a)], b[~np.isnan(b)], maxulp=maxulp)


# --- transpilation ------------------------------------------------------------------------------------

def test_the_duckdb_only_functions_are_rewritten_for_spark() -> None:
    sql = to_spark_sql("SELECT quantile_cont(latency_ms, [0.5, 0.99]) AS q, quantile_disc(x, 0.9) AS d, "
                       "epoch_us(ts) // 60000000 AS b, "
                       "make_timestamptz(b * 60) AS t, epoch(ts) AS s, 0.5 * count(*) AS h, q[1] AS first "
                       ", CAST('0x' || substr(md5(path), 1, 15) AS BIGINT) AS id "
                       "FROM requests WHERE ts >= TIMESTAMPTZ '2024-01-01T00:00:00+00:00'")
    low = sql.lower()
    assert "percentile(latency_ms, array(" in low and "percentile_cont" not in low
    assert "unix_micros(ts) div 60000000" in low and "timestamp_micros(b * 60)" in low
    assert "unix_micros(ts) / cast(1e6 as double)" in low  # not UNIX_TIMESTAMP: that drops the fraction
    assert "cast(0.5 as double) * count(*)" in low  # Spark would keep DECIMAL arithmetic
    assert "percentile_disc(cast(0.9 as double)) within group (order by x nulls last)" in low
    assert "q[0]" in low  # lists from 1 in DuckDB, arrays from 0 in Spark
    assert "cast(conv(substring(md5(path), 1, 15), 16, 10) as bigint) as id" in low
    assert "cast('2024-01-01t00:00:00+00:00' as timestamp)" in low


def test_quantile_disc_and_median_mean_the_same_in_both_engines(engines) -> None:
    duck, spark, _ = engines
    values = ", ".join(f"({v})" for v in (5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 7.0))
    sql = (f"SELECT quantile_disc(x, 0.5), quantile_disc(x, 0.9), quantile_disc(x, 0.1), median(x), "
           f"quantile_cont(x, 0.9) FROM (VALUES {values}) AS t(x)")
    reference = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 9.0])
    expected = [float(np.quantile(reference, q, method="inverted_cdf")) for q in (0.5, 0.9, 0.1)] + [
        float(np.median(reference)), float(np.quantile(reference, 0.9))]
    assert [float(v) for v in duck.rows(sql)[0]] == pytest.approx(expected, rel=1e-15)
    assert [float(v) for v in spark.rows(sql)[0]] == pytest.approx(expected, rel=1e-15)


# --- KPIs ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("by", [None, "service", "route"])
def test_red_table_is_the_same_on_both_engines_and_matches_numpy(engines, raw, window, by) -> None:
    duck, spark, _ = engines
    a, b = red_table(duck, window, by), red_table(spark, window, by)
    assert [(r.group, r.service, r.requests, r.errors_5xx, r.errors_4xx, r.bytes_sent) for r in a] == \
           [(r.group, r.service, r.requests, r.errors_5xx, r.errors_4xx, r.bytes_sent) for r in b]
    names = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms")
    same_ulp([[getattr(r, n) for n in names] for r in a], [[getattr(r, n) for n in names] for r in b])
    same_ulp([r.apdex for r in a], [r.apdex for r in b])
    np.testing.assert_allclose([r.mean_ms for r in a], [r.mean_ms for r in b], rtol=1e-12)
    # independent reference: pandas group counts and numpy percentiles of the raw rows
    keys = {None: [], "service": ["service"], "route": ["route", "service"]}[by]
    groups = raw.groupby(keys, dropna=False) if keys else [(("all",), raw)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        row = next(r for r in a if (r.group, r.service)[:len(key)] == tuple(key)) if keys else a[0]
        assert row.requests == len(part) and row.errors_5xx == int((part.status >= 500).sum())
        lat = part.latency_ms.to_numpy(dtype=float)
        for n, q in zip(names, (0.5, 0.9, 0.95, 0.99, 0.999), strict=True):
            assert getattr(row, n) == pytest.approx(exact_quantile(lat, q), rel=1e-12, nan_ok=True)


def test_per_route_per_minute_series_are_the_same_on_both_engines(engines, raw, window) -> None:
    duck, spark, _ = engines
    a = red_series_frame(duck, window, "1m", "route")
    b = red_series_frame(spark, window, "1m", "route")
    assert len(a) > 10_000
    assert a["bucket_start"].tolist() == b["bucket_start"].tolist()
    assert a["group"].tolist() == b["group"].tolist()
    for column in ("requests", "errors_5xx", "errors_4xx"):
        assert a[column].tolist() == b[column].tolist(), column
    for column in ("p50_ms", "p95_ms", "p99_ms", "apdex", "rate_rps", "error_rate_5xx"):
        same_ulp(a[column], b[column])
    # reference: one busy route's minutes with pandas
    route = raw.route.value_counts().index[0]
    part = raw[raw.route == route].copy()
    part["minute"] = part.ts.dt.floor("60s")
    ref = part.groupby("minute").latency_ms.agg(["size", lambda x: exact_quantile(x.to_numpy(float), 0.95)])
    mine = a[a["group"] == route].set_index("bucket_start")
    assert mine["requests"].tolist() == ref["size"].tolist()
    np.testing.assert_allclose(mine["p95_ms"].to_numpy(float), ref.iloc[:, 1].to_numpy(float), rtol=1e-12)


def test_throughput_is_the_same_on_both_engines_and_matches_a_minute_grid(engines, raw, window) -> None:
    duck, spark, _ = engines
    a, b = throughput(duck, window), throughput(spark, window)
    assert a == b
    start = pd.Timestamp(window.start).floor("60s")
    grid = pd.date_range(start, pd.Timestamp(window.end) - pd.Timedelta(microseconds=1), freq="60s")
    counts = raw.ts.dt.floor("60s").value_counts().reindex(grid, fill_value=0).to_numpy()
    assert a.minutes == len(grid) and a.peak_rps_1m == counts.max() / 60
    assert a.sustained_rps_p95_1m == pytest.approx(np.quantile(counts, 0.95) / 60, rel=1e-12)
    assert a.median_rps_1m == pytest.approx(np.median(counts) / 60, rel=1e-12)
    assert a.peak_minute == grid[int(np.argmax(counts))].to_pydatetime()


def test_histogram_and_heatmap_are_the_same_on_both_engines_and_match_numpy(engines, raw, window) -> None:
    duck, spark, _ = engines
    histogram, heatmap = latency_histogram(duck, window, "service"), latency_heatmap(duck, window, 3600)
    assert latency_histogram(spark, window, "service") == histogram
    assert latency_heatmap(spark, window, 3600) == heatmap
    # reference: numpy's bin of each raw latency (10 per decade, clamped to 0.1 ms ... 100 s), pandas counts
    timed = raw[raw.latency_ms.notna()]
    k = np.clip(np.floor(10 * np.log10(np.maximum(timed.latency_ms.to_numpy(float), 1e-9))), -10, 49).astype(int)

    def edges(i: int) -> tuple[float, float]:
        return float(f"{10 ** (i / 10):.6g}"), float(f"{10 ** ((i + 1) / 10):.6g}")

    by_service = pd.Series(k).groupby([timed.service.to_numpy(), k]).size()
    assert [(h.group, h.lo_ms, h.hi_ms, h.count) for h in histogram] == [
        (s, *edges(i), int(n)) for (s, i), n in by_service.items()]
    by_hour = pd.Series(k).groupby([timed.ts.dt.floor("3600s").to_numpy(), k]).size()
    assert [(c.bucket_start, c.lo_ms, c.hi_ms, c.count) for c in heatmap] == [
        (pd.Timestamp(t).to_pydatetime(), *edges(i), int(n)) for (t, i), n in by_hour.items()]


def test_log_histogram_quantiles_are_within_their_relative_error_on_both_engines(engines, raw, window) -> None:
    duck, spark, _ = engines
    qs = (0.5, 0.9, 0.99, 0.999)
    for engine in (duck, spark):
        found = histogram_quantiles(engine, scope_sql(window, None), "service", qs)
        assert set(found) == {(s,) for s in raw.service.unique()}
        for (service,), values in found.items():
            lat = raw.latency_ms[raw.service == service].to_numpy(float)
            for q, v in zip(qs, values, strict=True):
                exact = exact_quantile(lat, q)
                assert abs(v - exact) <= HIST_RELATIVE_ERROR * exact * (1 + 1e-9), (engine.name, service, q)


def test_approximate_percentiles_are_within_the_rank_error_each_engine_declares(engines, raw, window) -> None:
    duck, spark, _ = engines
    names = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms")
    for engine in (duck, spark):
        rows = red_table(engine, window, "service", qfunc="approx_quantile")
        for row in rows:
            lat = np.sort(raw.latency_ms[raw.service == row.group].dropna().to_numpy(float))
            n = len(lat)
            for name, q in zip(names, (0.5, 0.9, 0.95, 0.99, 0.999), strict=True):
                v = getattr(row, name)
                below, upto = np.searchsorted(lat, v, "left"), np.searchsorted(lat, v, "right")
                # the value's ranks [below, upto] reach within the declared rank error of q n
                err = RANK_ERROR[engine.name] * n + 1
                assert below - err <= q * n <= upto + err, (engine.name, row.group, name, below / n, upto / n)


# --- SLO event counts, time share, findings' series ----------------------------------------------------

@pytest.mark.parametrize("kind", ["availability", "latency"])
def test_slo_minute_counts_are_the_same_on_both_engines(engines, raw, kind) -> None:
    duck, spark, con = engines
    spec = SloSpec(name=f"requests-{kind}", service="api", objective=0.99, objective_percent=99.0,
                   window_days=30, sli_kind=kind, latency_threshold_ms=200.0 if kind == "latency" else None,
                   warehouse_service="api")
    start = datetime(2026, 11, 20, tzinfo=UTC)
    end = datetime(2026, 11, 23, tzinfo=UTC)
    total_a, bad_a = minute_series(duck, spec, start, end)
    total_b, bad_b = minute_series(spark, spec, start, end)
    assert np.array_equal(total_a, total_b) and np.array_equal(bad_a, bad_b)
    part = raw[raw.service == "api"]
    if kind == "latency":
        part = part[part.latency_ms.notna()]
    assert int(total_a.sum()) == len(part) > 0
    bad = (part.latency_ms > 200.0) if kind == "latency" else (part.status >= 500)
    assert int(bad_a.sum()) == int(bad.sum())
    minute = ((part.ts - pd.Timestamp(start)).dt.total_seconds() // 60).astype(int)
    assert np.array_equal(np.bincount(minute, minlength=len(total_a)), total_a)


def test_time_share_is_the_same_on_both_engines(engines, raw, window) -> None:
    duck, spark, _ = engines
    a, b = time_consumers(duck, window, top_n=1000).top, time_consumers(spark, window, top_n=1000).top
    assert a[["service", "route", "requests"]].values.tolist() == b[["service", "route", "requests"]].values.tolist()
    for column in ("p50_ms", "p95_ms", "p99_ms"):
        same_ulp(a[column], b[column])
    for column in ("total_time_s", "time_share", "error_rate"):
        np.testing.assert_allclose(a[column], b[column], rtol=1e-12)
    timed = raw[raw.latency_ms.notna()]
    assert a["total_time_s"].sum() == pytest.approx(timed.latency_ms.sum() / 1000, rel=1e-12)
    # reference: pandas per route (requests, total seconds, p95), in the ranking's order
    ref = timed.groupby(["service", "route"]).latency_ms.agg(
        ["size", "sum", lambda x: exact_quantile(x.to_numpy(float), 0.95)])
    ref = ref.loc[list(zip(a.service, a.route, strict=True))]
    assert len(ref) == len(a) and a["requests"].tolist() == ref["size"].tolist()
    np.testing.assert_allclose(a["total_time_s"], ref["sum"] / 1000, rtol=1e-12)
    np.testing.assert_allclose(a["p95_ms"].astype(float), ref.iloc[:, 2].to_numpy(float), rtol=1e-12)
    assert (np.diff(a["total_time_s"].to_numpy(float)) <= 0).all()  # ranked by time consumed


def test_the_findings_input_series_are_the_same_on_both_engines(engines, raw, window) -> None:
    duck, spark, _ = engines
    bucket_s = findings_series.choose_bucket(duck, window, ())
    assert findings_series.choose_bucket(spark, window, ()) == bucket_s
    sql = findings_series.series_sql(window, bucket_s, ()) + " ORDER BY service, route, b"
    a, b = duck.frame(sql), spark.frame(sql)
    assert a[["service", "route", "b"]].values.tolist() == b[["service", "route", "b"]].values.tolist()
    for column in ("n", "n5xx", "n_lat", "n_cache", "n_hit"):
        assert a[column].astype(int).tolist() == b[column].astype(int).tolist(), column
    for column in ("s_ln", "s_ln2", "s_lat"):
        np.testing.assert_allclose(a[column].astype(float), b[column].astype(float), rtol=1e-12)
    assert int(a["n"].sum()) == len(raw)
    origin = pd.Timestamp(findings_series.bucket_origin(window, bucket_s), unit="s", tz="UTC")
    expected = ((raw.ts - origin).dt.total_seconds() // bucket_s).astype(int).value_counts().sort_index()
    assert a.groupby("b")["n"].sum().astype(int).tolist() == expected.tolist()


def test_a_table_without_files_is_named_in_the_error(engines) -> None:
    with pytest.raises(EngineError, match="no Parquet files"):
        engines[1].rows("SELECT count(*) FROM cache_requests")  # the demo holds no cache_requests rows


def test_the_spark_driver_gets_a_heap_the_cache_trace_fits_in(engines) -> None:
    # Spark's 1 GiB default lost the task results of the cache trace of a 10M-request warehouse (local mode)
    conf = engines[1].spark.sparkContext.getConf()
    assert conf.get("spark.driver.memory") == "4g"
    assert engines[1].spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory() > 3 * 2**30


def test_a_spark_jvm_started_by_someone_else_with_a_small_heap_is_named(tmp_path: Path) -> None:
    # the heap is fixed when the JVM starts: a notebook that started Spark itself (1 GiB default here
    # 512m) before perfkit gets that heap, and is told so rather than failing later on a large trace
    code = ("import warnings; from pyspark.sql import SparkSession; "
            "s = SparkSession.builder.master('local[1]').config('spark.driver.memory', '512m')"
            ".config('spark.ui.enabled', 'false').getOrCreate(); "
            "from kit.engine import spark_session; "
            "warnings.simplefilter('error'); spark_session()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          timeout=300)
    assert done.returncode != 0
    assert "RuntimeWarning" in done.stderr and "spark.driver.memory=4g" in done.stderr, done.stderr[-2000:]


def test_spark_is_imported_only_when_chosen() -> None:
    # nor sqlglot: a DuckDB run transpiles nothing
    code = ("import sys, duckdb; import kit.engine, kit.analysis.kpis, kit.analysis.cache, kit.analysis.slo; "
            "import kit.analysis.findings, kit.analysis.bottlenecks; "
            "from kit.engine import open_engine; open_engine(duckdb.connect(), 'duckdb'); "
            "assert 'pyspark' not in sys.modules, 'pyspark imported'; "
            "assert 'sqlglot' not in sys.modules, 'sqlglot imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr


# --- parameters ---------------------------------------------------------------------------------------

def test_engine_parameters_are_checked(tmp_path: Path) -> None:
    assert RunConfig().engine == "duckdb" and RunConfig().spark["master"] == "local[2]"
    with pytest.raises(ParameterError, match="engine"):
        RunConfig(engine="presto")
    with pytest.raises(ParameterError, match="spark"):
        RunConfig(spark={"masters": "local[1]"})
    con = duckdb.connect()
    assert isinstance(open_engine(con, "duckdb"), DuckDBEngine)
    with pytest.raises(ParameterError, match="not a Parquet warehouse"):
        open_engine(con, "spark", db=str(tmp_path / "demo.duckdb"))


# --- the cache-trace extraction and what the spatial sampling makes of it -----------------------------

def test_the_cache_trace_is_the_same_on_both_engines(engines, raw) -> None:
    from kit.analysis.cache import _load
    from kit.cachesim.trace import requests_filter

    duck, spark, _ = engines
    where, _ = requests_filter(None, None, literal=True)
    a = _load(duck, where, ("path", "path_query", "route"), "path")
    b = _load(spark, where, ("path", "path_query", "route"), "path")
    assert len(a) > 1000 and list(a.columns) == list(b.columns)
    for column in a.columns:
        assert a[column].tolist() == b[column].tolist(), column
    # ids are md5 prefixes: the same path, the same id; another path, another id (on these rows)
    # the paths in the trace's order (time, then id: 15 lowercase hex digits sort as their integers do; rows
    # of one time and one id have one path), so row i of both is the same request
    paths = duck.frame(f"SELECT path FROM requests WHERE {where} AND path IS NOT NULL "
                       "ORDER BY ts, left(md5(path), 15)").path
    assert pd.Series(a["h_path"].to_numpy()).groupby(paths.to_numpy()).nunique().max() == 1
    assert a["h_path"].nunique() == paths.nunique()
    # reference: Python's md5 of each path, its first 15 hex digits as an integer, counted per path
    ids = {p: int(hashlib.md5(p.encode()).hexdigest()[:15], 16) for p in paths.unique()}
    assert {int(k): v for k, v in a["h_path"].value_counts().items()} == \
        {int(k): v for k, v in paths.map(ids).value_counts().items()}


def test_the_cache_study_is_the_same_on_both_engines(engines) -> None:
    from kit.analysis.cache import analyze_cache
    from kit.results import to_jsonable

    duck, spark, con = engines
    kw: dict[str, Any] = {"policies": ["lru", "s3fifo"], "size_points": 6, "policy_sample_requests": 5_000}
    a = to_jsonable(analyze_cache(con, engine=duck, **kw))
    b = to_jsonable(analyze_cache(con, engine=spark, **kw))
    assert a["policies"]["sample_rate"] < 1  # the spatial sampling is exercised

    def without_timings(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_timings(v) for k, v in value.items()
                    if k not in ("timings_s", "seconds", "policy_seconds", "compute_s")}
        return [without_timings(v) for v in value] if isinstance(value, list) else value

    assert without_timings(a) == without_timings(b)


def test_the_sampled_cache_trace_and_its_count_are_the_same_on_both_engines(engines) -> None:
    """Above TRACE_MAX_REQUESTS the trace query keeps the paths whose id's low 24 bits fall below a threshold:
    Spark keeps the same rows with the same ids, and the count query gives the same totals."""
    from kit.analysis.cache import _load, _trace_size
    from kit.cachesim.trace import requests_filter

    duck, spark, _ = engines
    where, _ = requests_filter(None, None, literal=True)
    assert _trace_size(duck, where) == _trace_size(spark, where)
    a = _load(duck, where, ("path", "path_query"), "path", 2**22)
    b = _load(spark, where, ("path", "path_query"), "path", 2**22)
    assert 0 < len(a) < _trace_size(duck, where).requests and list(a.columns) == list(b.columns)
    for column in a.columns:
        assert a[column].tolist() == b[column].tolist(), column
    assert (a["h_path"] % 2**24 < 2**22).all()
