"""The cache study above TRACE_MAX_REQUESTS: the engine extracts a spatial sample of paths and the study
scales it back. On a synthetic warehouse of 240,000 requests over 24,000 paths (Zipf popularity), with the
threshold lowered to 48,000 requests (R ~ 0.2), against independent references: SQL counts, Python's md5
of each path, and the exact LRU curve of the full trace keyed by the path strings."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import duckdb
import numpy as np
import pandas as pd
import pytest

import kit.analysis.cache as cache_mod
from kit.analysis.cache import LEFT_OUT_REASON, analyze_cache, trace_sql
from kit.cachesim import Trace, exact_lru, spatial_sample
from kit.cachesim.trace import requests_filter
from kit.engine import to_spark_sql
from kit.warehouse import connect

N, PATHS, MAX = 240_000, 24_000, 48_000
KW = {"size_points": 6, "policies": ["lru"], "policy_sample_requests": 5_000}


@pytest.fixture(scope="module")
def wh() -> Iterator[duckdb.DuckDBPyConnection]:
    """240,000 cacheable requests over one day: Zipf(0.9) paths, each with a fixed size (1-40 kB) and one of
    three content types, a query string on a third of the requests, one route per 100 paths, 3,000 clients."""
    rng = np.random.default_rng(5)
    ranks = np.arange(1, PATHS + 1, dtype=np.float64)
    cdf = np.cumsum(ranks ** -0.9)
    p = rng.permutation(PATHS)[np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(N)), PATHS - 1)]
    size = rng.integers(1_000, 40_000, PATHS)
    ctype = np.array(["image/png", "text/html", "application/json"])[np.arange(PATHS) % 3]
    df = pd.DataFrame({
        "ts": pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(np.sort(rng.random(N)) * 86_400, "s"),
        "method": "GET", "route": pd.Series(p // 100).map(lambda r: f"/r{r}/{{id}}"),
        "path": pd.Series(p).map(lambda i: f"/p/{i}"),
        "query": np.where(rng.random(N) < 0.33, np.char.add("v=", rng.integers(0, 3, N).astype(str)), None),
        "status": 200, "bytes_sent": size[p], "content_type": ctype[p],
        "cache_status": np.where(rng.random(N) < 0.5, "HIT", "MISS"),
        "client_hash": np.char.add("c", rng.integers(0, 3_000, N).astype(str)), "source_id": 1})
    con = connect(":memory:")
    con.register("df", df)
    con.execute("INSERT INTO requests BY NAME SELECT * FROM df")
    con.unregister("df")
    yield con
    con.close()


@pytest.fixture(scope="module")
def full(wh):
    return analyze_cache(wh, **KW)


@pytest.fixture(scope="module")
def sampled(wh):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cache_mod, "TRACE_MAX_REQUESTS", MAX)
        return analyze_cache(wh, **KW)


def _path_id(path: str) -> int:
    return int(hashlib.md5(path.encode()).hexdigest()[:15], 16)


def test_below_the_threshold_nothing_is_sampled(wh, full) -> None:
    assert full.parameters["trace_sample_rate"] == 1.0 and full.parameters["keys_left_out"] == {}
    assert full.trace.sample_rate == 1.0 and [k.key for k in full.keys] == ["path", "path_query", "route"]
    assert full.keys[0].objects.method == "exact"
    with pytest.MonkeyPatch.context() as mp:   # at the threshold exactly: still the whole trace
        mp.setattr(cache_mod, "TRACE_MAX_REQUESTS", N)
        assert cache_mod.sample_threshold(N) is None and cache_mod.sample_threshold(N + 1) is not None


def test_the_extraction_keeps_the_paths_below_the_threshold(wh) -> None:
    """The sampled query's rows are exactly the requests of the paths whose md5 id (computed in Python) has its
    low 24 bits below T, with the same ids; the other keys' ids are those of the kept rows."""
    where = requests_filter(None, None, literal=True)[0]
    threshold = 3_000_000   # R ~ 0.18
    frame = cache_mod._load(wh, where, ("path", "path_query"), "path", threshold)
    raw = wh.execute("SELECT path, path || coalesce('?' || nullif(query, ''), '') AS pq FROM requests").df()
    ids = raw["path"].map(_path_id)
    kept = raw[(ids % 2**24 < threshold).to_numpy()]
    assert 0.1 < len(kept) / len(raw) < 0.3
    assert frame["h_path"].value_counts().sort_index().to_dict() == \
        kept["path"].map(_path_id).value_counts().sort_index().to_dict()
    assert frame["h_path_query"].value_counts().sort_index().to_dict() == \
        kept["pq"].map(_path_id).value_counts().sort_index().to_dict()


def test_the_sampled_query_and_the_count_transpile_to_spark() -> None:
    sql = to_spark_sql(trace_sql("TRUE", ("path", "path_query"), "path", 123_456))
    assert "% 16777216 < 123456" in sql and "CONV(SUBSTRING(MD5(path), 1, 15), 16, 10)" in sql
    assert "HASH(" not in sql.upper().replace("_HASH", "")


def test_sampled_counts_match_the_full_trace(wh, full, sampled) -> None:
    rate = sampled.parameters["trace_sample_rate"]
    assert 0.15 < rate < 0.25 and sampled.trace.sample_rate == rate
    assert MAX * 0.8 < sampled.parameters["trace_sampled_requests"] < MAX * 1.2
    n, nbytes, paths = wh.execute("SELECT count(*), sum(bytes_sent), count(DISTINCT path) FROM requests").fetchone()
    assert sampled.trace.requests == full.trace.requests == n
    assert sampled.trace.unique_objects == pytest.approx(paths, rel=0.05)
    assert full.trace.total_bytes == nbytes   # one size per path: the per-object sizes are the bytes sent
    assert sampled.trace.total_bytes == pytest.approx(nbytes, rel=0.03)
    assert sampled.trace.unique_bytes == pytest.approx(full.trace.unique_bytes, rel=0.05)
    assert sampled.trace.one_hit_wonders == pytest.approx(full.trace.one_hit_wonders, rel=0.1)
    for key in ("path", "path_query"):
        s, f = (next(k for k in study.keys if k.key == key) for study in (sampled, full))
        assert s.requests == n and s.unique_objects == pytest.approx(f.unique_objects, rel=0.05)
        assert s.unique_bytes == pytest.approx(f.unique_bytes, rel=0.05)
    assert sampled.policies["requests"] == n
    for s, f in zip(sampled.ttl_by_class, full.ttl_by_class, strict=True):
        assert (s.content_class, s.requests, s.bytes) == (f.content_class, f.requests, f.bytes)
    assert sampled.trace.reuse_ratio == pytest.approx(full.trace.reuse_ratio, abs=0.01)
    assert sampled.browser["requests"] == full.browser["requests"]
    assert sampled.browser["repeat_ratio"] == pytest.approx(full.browser["repeat_ratio"], abs=0.01)
    assert sampled.application["requests"] == full.application["requests"]
    assert sampled.application["unique_objects"] == pytest.approx(full.application["unique_objects"], rel=0.05)


def test_sampled_lru_curves_match_the_exact_curve_of_the_full_trace(wh, sampled) -> None:
    """SHARDS-like error (<= 0.03 absolute) at capacities above 100/R objects, against exact_lru of the whole
    trace keyed by the path strings; the byte curve at capacities above 100/R mean objects."""
    rows = wh.execute("SELECT path, bytes_sent FROM requests ORDER BY ts").df()
    codes = pd.factorize(rows["path"])[0]
    ex = exact_lru(codes, rows["bytes_sent"].to_numpy())
    assert ex.bytes is not None
    rate = sampled.parameters["trace_sample_rate"]
    curves = next(k for k in sampled.keys if k.key == "path")
    assert curves.objects.method == "shards-fixed-rate (sampled in the engine)"
    cap, mr = np.array(curves.objects.capacity), np.array(curves.objects.miss_ratio)
    sel = cap >= 100 / rate
    assert sel.sum() > 20
    assert np.abs(mr[sel] - ex.objects.at(cap[sel])[0]).max() <= 0.03
    bcap, bmr = np.array(curves.bytes.capacity), np.array(curves.bytes.byte_miss_ratio)
    sel = bcap >= 100 / rate * rows["bytes_sent"].mean()
    assert sel.sum() > 20
    assert np.abs(bmr[sel] - ex.bytes.at(bcap[sel])[1]).max() <= 0.03
    # the sizing read off the sampled curve: its hit ratio is what the exact curve gives at that capacity
    assert sampled.sizing.recommended_hit_ratio == pytest.approx(
        1 - ex.bytes.at(sampled.sizing.recommended_capacity_bytes)[0][0], abs=0.03)


def test_route_is_left_out_with_its_reason_and_never_sampled_as_main_key(wh, sampled) -> None:
    assert [k.key for k in sampled.keys] == ["path", "path_query"]
    assert sampled.parameters["keys_left_out"] == {"route": LEFT_OUT_REASON}
    assert "spatial sample" in sampled.parameters["trace_sampling"] and "R = 0.2" in sampled.trace.source
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cache_mod, "TRACE_MAX_REQUESTS", MAX)
        by_route = analyze_cache(wh, cache_key="route", keys=("route",), **KW)
    assert by_route.parameters["trace_sample_rate"] == 1.0 and by_route.trace.requests == N


def test_spatial_sample_rates_are_of_the_full_population() -> None:
    """spatial_sample(trace, rate) takes ``rate`` of the full population: on a sample by another hash (as the
    engine's md5 ids' low bits) the rates multiply; on its own earlier sample (same seed) the samples nest,
    so the result is the full trace's sample at ``rate``."""
    rng = np.random.default_rng(1)
    keys = rng.integers(1, 2**60, 20_000).astype(np.uint64)
    ids = keys[rng.integers(0, 20_000, 200_000)]
    whole = Trace("t", ids, np.ones(len(ids), np.int64))
    engine_like = ids % np.uint64(2**24) < np.uint64(2**23)
    half = Trace("t", ids[engine_like], np.ones(int(engine_like.sum()), np.int64), sample_rate=0.5)
    tenth = spatial_sample(half, 0.1)
    assert tenth.sample_rate == pytest.approx(0.1, rel=1e-6) and tenth.sample_seed == 0
    assert len(np.unique(tenth.obj_id)) / len(keys) == pytest.approx(0.1, rel=0.1)
    assert spatial_sample(half, 0.5) is half
    nested = spatial_sample(spatial_sample(whole, 0.5), 0.1)
    assert np.array_equal(nested.obj_id, spatial_sample(whole, 0.1).obj_id)
    assert nested.sample_rate == pytest.approx(0.1, rel=1e-6)


def test_the_caching_plan_of_a_sampled_study_validates_and_says_so(sampled) -> None:
    import json
    from pathlib import Path

    import jsonschema

    from kit.config import RunConfig
    from kit.report.caching_plan import build_caching_plan
    from kit.results import dumps, to_jsonable

    plan = json.loads(dumps(build_caching_plan({"cache": to_jsonable(sampled)}, RunConfig())))
    schema = Path(__file__).resolve().parents[1] / "kit" / "report" / "schemas" / \
        "Caching_Implementation_Plan.schema.json"
    jsonschema.validate(plan, json.loads(schema.read_text()))
    assert "spatial sample of keys at R=0.2" in plan["summary"]["headline"]
    assert plan["trace"]["requests"] == N and "spatial sample" in plan["trace"]["source"]
    app = next(la for la in plan["layers"] if la["layer"] == "application")
    assert app["simulation"]["method"].startswith("SHARDS")
