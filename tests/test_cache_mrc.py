"""Exact LRU curves against a slow per-size LRU simulation and against libcachesim; SHARDS error bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.cachesim.mrc import exact_lru, shards
from kit.cachesim.trace import zipf_trace
from tests.cache_reference import slow_lru

CLOUD = Path("cache_traces/libcachesim/cloudPhysicsIO.oracleGeneral.bin")
WEB07 = Path("cache_traces/caffeine/cache2k/web07.trace.xz")


def _small_trace(seed: int, n: int = 4000, objects: int = 300):
    rng = np.random.default_rng(seed)
    ids = rng.zipf(1.2, n) % objects
    sizes = rng.integers(1, 60, objects)[ids]
    return ids, sizes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_curve_equals_per_size_simulation(seed: int) -> None:
    ids, sizes = _small_trace(seed)
    res = exact_lru(ids, sizes)
    for cap in (1, 2, 3, 7, 20, 64, 150, 299, 1000):
        want = slow_lru(ids.tolist(), sizes.tolist(), cap, by_bytes=False)
        got = res.objects.at(cap)
        assert (got[0][0], got[1][0]) == pytest.approx(want, abs=1e-12), cap
    assert res.bytes is not None
    biggest = int(sizes.max())
    for cap in (biggest, biggest + 1, 100, 333, 1000, 2500, 10_000, 100_000):
        if cap < biggest:
            continue
        want = slow_lru(ids.tolist(), sizes.tolist(), cap)
        got = res.bytes.at(cap)
        assert (got[0][0], got[1][0]) == pytest.approx(want, abs=1e-12), cap


def test_window_compaction_changes_nothing() -> None:
    ids, sizes = _small_trace(5, n=20_000, objects=500)
    a, b = exact_lru(ids, sizes), exact_lru(ids, sizes, window=1)   # window=1: compacts on every slot
    assert a.bytes is not None and b.bytes is not None
    assert np.array_equal(a.objects.miss_ratio, b.objects.miss_ratio)
    assert np.array_equal(a.bytes.capacity, b.bytes.capacity)
    assert np.array_equal(a.bytes.byte_miss_ratio, b.bytes.byte_miss_ratio)
    want = slow_lru(ids.tolist(), sizes.tolist(), 40, by_bytes=False)
    assert b.objects.at(40)[0][0] == pytest.approx(want[0], abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=80), st.integers(1, 14), st.integers(0, 3))
def test_exact_curve_property(keys: list[int], capacity: int, size_seed: int) -> None:
    ids = np.array(keys)
    sizes = (np.arange(13) * (size_seed + 1) % 7 + 1)[ids]
    res = exact_lru(ids, sizes)
    want = slow_lru(ids.tolist(), sizes.tolist(), capacity, by_bytes=False)
    assert res.objects.at(capacity)[0][0] == pytest.approx(want[0], abs=1e-12)
    cap_b = int(sizes.max()) + capacity * 3
    assert res.bytes is not None
    assert res.bytes.at(cap_b)[0][0] == pytest.approx(slow_lru(ids.tolist(), sizes.tolist(), cap_b)[0], abs=1e-12)


def test_exact_bytes_equal_libcachesim_lru_on_cloudphysics(shared_datasets: Path) -> None:
    import libcachesim as lcs

    path = shared_datasets / CLOUD
    rec = np.fromfile(path, np.dtype([("t", "<u4"), ("id", "<u8"), ("sz", "<u4"), ("nv", "<i8")]))
    res = exact_lru(rec["id"], rec["sz"])
    assert res.bytes is not None
    params = lcs.ReaderInitParam()
    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE, params)
    for cap in (70_000, 1 << 20, 5 << 20, 10 << 20, 50 << 20, 200 << 20, 1 << 32):
        want = lcs.LRU(cap, hashpower=17).process_trace(reader)
        got = res.bytes.at(cap)
        assert got[0][0] == pytest.approx(want[0], abs=1e-12), cap
        assert got[1][0] == pytest.approx(want[1], abs=1e-12), cap


def test_exact_objects_equal_libcachesim_lru_on_cache2k(shared_datasets: Path, tmp_path: Path) -> None:
    import libcachesim as lcs

    from kit.cachesim.trace import write_oracle_general
    from kit.ingest.trace import read_trace

    trace = read_trace(shared_datasets / WEB07, "u32be")
    res = exact_lru(trace.obj_id, None)
    file = write_oracle_general(trace, tmp_path / "web07.bin")
    params = lcs.ReaderInitParam(ignore_obj_size=True)
    reader = lcs.TraceReader(str(file), lcs.TraceType.ORACLE_GENERAL_TRACE, params)
    for cap in (1, 10, 100, 500, 2000, 5000, 20_000):
        want = lcs.LRU(cap, hashpower=16).process_trace(reader)[0]
        assert res.objects.at(cap)[0][0] == pytest.approx(want, abs=1e-12), cap


@pytest.fixture(scope="module")
def zipf_20m():
    """The issue's SHARDS setting: 20M requests, Zipf(0.9) over 1M objects, and its exact curve."""
    trace = zipf_trace(20_000_000, 1_000_000, 0.9, seed=7)
    return trace, exact_lru(trace.obj_id, None, bytes_curve=False)


def test_shards_fixed_rate_error_bounds(zipf_20m) -> None:
    trace, exact = zipf_20m
    rate = 0.01
    caps = np.unique(np.round(np.geomspace(100 / rate, exact.unique_objects, 200)))
    want = exact.objects.at(caps)[0]
    errors = []
    for seed in range(5):
        res = shards(trace.obj_id, None, rate=rate, seed=seed, bytes_curve=False)
        assert res.sample_rate == pytest.approx(rate, rel=1e-4)
        err = np.abs(res.objects.at(caps)[0] - want)
        errors.append(err.max())
        assert err.max() <= 0.03, (seed, err.max())
        # the reported error estimate covers the measured error
        assert err.max() <= res.max_error_estimate
        band = res.objects.error_estimate[np.clip(np.searchsorted(res.objects.capacity, caps, "right") - 1, 0, None)]
        assert (err <= band).mean() >= 0.9
    assert float(np.median(errors)) <= 0.015


def test_shards_fixed_size(zipf_20m) -> None:
    trace, exact = zipf_20m
    res = shards(trace.obj_id, None, rate=None, s_max=8192, seed=1, bytes_curve=False)
    assert res.variant == "shards-fixed-size"
    assert res.sampled_objects <= 8192
    caps = np.unique(np.round(np.geomspace(100 / res.sample_rate, exact.unique_objects, 100)))
    err = np.abs(res.objects.at(caps)[0] - exact.objects.at(caps)[0])
    assert err.max() <= 0.03
    assert err.max() <= res.max_error_estimate


def test_shards_byte_curve() -> None:
    trace = zipf_trace(2_000_000, 100_000, 0.9, seed=3, size_bytes=(100, 10_000))
    exact = exact_lru(trace.obj_id, trace.size_bytes)
    assert exact.bytes is not None
    # at R = 1 the sampled byte curve is the exact one (scaling and adjustment are identities)
    full = shards(trace.obj_id, trace.size_bytes, rate=1.0, seed=0)
    assert full.bytes is not None
    caps = np.geomspace(20_000, float(exact.bytes.capacity[-1]), 60)
    assert np.allclose(full.bytes.at(caps)[0], exact.bytes.at(caps)[0], atol=1e-9)
    assert np.allclose(full.bytes.at(caps)[1], exact.bytes.at(caps)[1], atol=1e-9)
    # at R = 0.05 (about 5,000 sampled objects) within 0.05 over capacities >= 100/R mean objects
    res = shards(trace.obj_id, trace.size_bytes, rate=0.05, seed=0)
    assert res.bytes is not None
    caps = np.geomspace(100 / 0.05 * float(trace.size_bytes.mean()), float(exact.bytes.capacity[-1]), 50)
    assert np.abs(res.bytes.at(caps)[0] - exact.bytes.at(caps)[0]).max() <= 0.05
    assert np.abs(res.bytes.at(caps)[1] - exact.bytes.at(caps)[1]).max() <= 0.05


def test_shards_rate_one_is_exact() -> None:
    ids, sizes = _small_trace(9)
    res = shards(ids.astype(np.uint64), None, rate=1.0, bytes_curve=False)
    exact = exact_lru(ids, None, bytes_curve=False)
    caps = np.arange(1, 300)
    assert np.allclose(res.objects.at(caps)[0], exact.objects.at(caps)[0], atol=1e-12)
