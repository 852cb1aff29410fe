"""Cache simulation benchmark: exact one-pass LRU curve and SHARDS against libcachesim LRU at 32 sizes,
on a synthetic Zipf(0.9) trace (default 20,000,000 requests over 1,000,000 objects), all in one run.

    .venv/bin/python benchmarks/bench_cache.py [--requests N] [--objects M] [--sizes 32]

Prints requests/s, the ratio against libcachesim measured in the same run, SHARDS error, peak memory
(RSS high-water mark) and whether numba compiled anything (a second run must not: ``cache=True``)."""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000_000)
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--sizes", type=int, default=32, help="libcachesim LRU runs (one per cache size)")
    ap.add_argument("--seeds", type=int, default=5, help="SHARDS hash seeds")
    ap.add_argument("--skip-libcachesim", action="store_true", help="skip the (slow) baseline")
    args = ap.parse_args(argv)

    import numba

    from kit.cachesim import mrc
    from kit.cachesim.policies import Replay, quiet_stderr
    from kit.cachesim.trace import zipf_trace

    t0 = time.perf_counter()
    trace = zipf_trace(args.requests, args.objects, 0.9, seed=7, with_time=False)
    n = len(trace)
    print(f"trace: {n:,} requests over {args.objects:,} objects, Zipf(0.9); generated in "
          f"{time.perf_counter() - t0:.1f} s; peak RSS {_peak_rss_mb():,.0f} MB")

    # numba: compile (or load from the on-disk cache) on a tiny input, and report which
    t0 = time.perf_counter()
    mrc.exact_lru(trace.obj_id[:1000], None, bytes_curve=False)
    mrc.shards(trace.obj_id[:1000], None, rate=0.5, bytes_curve=False)
    warm = time.perf_counter() - t0
    stats = mrc._stack_distances.stats
    compiled = getattr(stats, "cache_misses", None)
    print(f"numba warm-up {warm:.2f} s; cache hits {dict(stats.cache_hits)}, misses {dict(compiled or {})} "
          f"(a second run of this script should show no misses); numba {numba.__version__}")

    t0 = time.perf_counter()
    exact = mrc.exact_lru(trace.obj_id, None, bytes_curve=False)
    exact_s = time.perf_counter() - t0
    rss_exact = _peak_rss_mb()
    print(f"exact LRU curve (objects, every size): {exact_s:.2f} s = {n / exact_s:,.0f} requests/s; "
          f"peak RSS {rss_exact:,.0f} MB")

    rate = 0.01
    caps = np.unique(np.round(np.geomspace(100 / rate, exact.unique_objects, 200)))
    want = exact.objects.at(caps)[0]
    errors, times = [], []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        res = mrc.shards(trace.obj_id, None, rate=rate, seed=seed, bytes_curve=False)
        times.append(time.perf_counter() - t0)
        err = float(np.abs(res.objects.at(caps)[0] - want).max())
        errors.append(err)
        print(f"  SHARDS R={rate} seed {seed}: {times[-1]:.3f} s = {n / times[-1]:,.0f} requests/s; "
              f"max |error| over sizes >= 100/R = {err:.4f}; reported estimate {res.max_error_estimate:.4f}")
    best = min(times)
    print(f"SHARDS: best {n / best:,.0f} requests/s; max error {max(errors):.4f} (<= 0.03 required), "
          f"median {float(np.median(errors)):.4f} (<= 0.015 required)")

    if not args.skip_libcachesim:
        sizes = np.unique(np.round(np.geomspace(10, exact.unique_objects, args.sizes))).astype(int)
        with tempfile.TemporaryDirectory() as tmp, quiet_stderr(), Replay(trace, ignore_obj_size=True,
                                                                          directory=Path(tmp)) as replay:
            t0 = time.perf_counter()
            mismatches = 0
            for cap in sizes:
                got = replay.run("lru", int(cap))[0]
                if abs(got - float(exact.objects.at(cap)[0][0])) > 1e-12:
                    mismatches += 1
            lcs_s = time.perf_counter() - t0
        print(f"libcachesim LRU at {len(sizes)} sizes: {lcs_s:.1f} s = {n * len(sizes) / lcs_s:,.0f} "
              f"request-simulations/s; {mismatches} size(s) differ from the exact curve")
        print(f"ratio: exact one-pass curve is {lcs_s / exact_s:.1f}x faster than libcachesim LRU at "
              f"{len(sizes)} sizes (>= 10x required)")
    print(f"requirements: exact >= 2,000,000 requests/s: {n / exact_s >= 2e6}; SHARDS >= 30,000,000 "
          f"requests/s: {n / best >= 3e7}; peak RSS of trace + exact curve <= 1 GB: {rss_exact <= 1024} "
          f"({rss_exact:,.0f} MB; with the libcachesim baseline's 24-byte/request trace file: "
          f"{_peak_rss_mb():,.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
