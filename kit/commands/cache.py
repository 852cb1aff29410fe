"""``perfkit cache mrc`` (exact LRU or SHARDS miss-ratio curve) and ``perfkit cache compare`` (policies
through libcachesim) over a trace file or the warehouse's ``cache_requests``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from kit.errors import DataError, ParameterError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_sizes(text: str) -> list[float]:
    """``1000,64MiB,1.5GB`` → capacities (bytes or objects), ascending."""
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", part)
        if not m or m.group(2).lower() not in _UNITS:
            raise ParameterError(f"--sizes: cannot read {part!r} (use numbers with optional KB, MB, GB, KiB, MiB, GiB)")
        out.append(float(m.group(1)) * _UNITS[m.group(2).lower()])
    return sorted(out)


def _trace(args: argparse.Namespace) -> Any:
    from kit.cachesim.trace import Trace, normalize_sizes

    if args.sample_rate is not None and not 0 < args.sample_rate <= 1:
        raise ParameterError(f"--sample-rate must be in (0, 1], got {args.sample_rate:g}")
    if args.db:
        from kit.cachesim.trace import trace_from_cache_requests
        from kit.warehouse import connect

        con = connect(args.db, read_only=True)
        try:
            tr = trace_from_cache_requests(con, args.trace_name)
        finally:
            con.close()
        return tr, 0
    if not args.trace or not args.format:
        raise ParameterError("give --trace FILE --format FORMAT, or --db PATH (the warehouse's cache_requests)")
    from kit.ingest.trace import read_trace

    raw = read_trace(args.trace, args.format, columns=args.columns, delimiter=args.delimiter)
    sizes = normalize_sizes(raw.obj_id, raw.size_bytes)
    changed = int((sizes != raw.size_bytes).sum())
    return Trace(raw.name, raw.obj_id, sizes, raw.time_s, raw.key, raw.source), changed


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", help="trace file")
    p.add_argument("--format", choices=("oracleGeneral", "csv", "text", "timeidsize", "u32be", "u64be"),
                   help="trace format")
    p.add_argument("--columns", help="csv column mapping: time=..,id=..,size=.. (names or 1-based positions)")
    p.add_argument("--delimiter", default=",", help="csv delimiter")
    p.add_argument("--db", help="use the warehouse's cache_requests instead of a file")
    p.add_argument("--trace-name", help="with --db: which loaded trace (default: the only one)")
    p.add_argument("--sizes", help="comma-separated capacities (bytes with --bytes, else objects); "
                                   "suffixes KB MB GB KiB MiB GiB")
    p.add_argument("--json", action="store_true", help="print JSON")


def run_mrc(args: argparse.Namespace) -> int:
    import numpy as np

    from kit.cachesim.mrc import exact_lru, shards

    tr, changed = _trace(args)
    if len(tr) == 0:
        raise DataError("the trace has no requests")
    unit = "bytes" if args.bytes else "objects"
    if args.sample_rate is not None:
        res = shards(tr.obj_id, tr.size_bytes if args.bytes else None, rate=args.sample_rate,
                     bytes_curve=args.bytes, seed=args.seed)
        curve = res.bytes if args.bytes else res.objects
        method = res.variant
        extra = {"sample_rate": res.sample_rate, "sampled_requests": res.sampled_requests,
                 "max_error_estimate": res.max_error_estimate, "seed": res.seed}
        seconds = res.seconds
    else:
        ex = exact_lru(tr.obj_id, tr.size_bytes, bytes_curve=args.bytes)
        curve = ex.bytes if args.bytes else ex.objects
        method = "exact"
        extra = {"unique_objects": ex.unique_objects, "total_bytes": ex.total_bytes}
        seconds = ex.seconds
    assert curve is not None
    if args.sizes:
        caps = np.array(parse_sizes(args.sizes))
    else:
        lo = max(1.0, float(curve.exact_from_capacity), float(curve.capacity[0]) if len(curve.capacity) else 1.0)
        hi = max(lo, float(curve.capacity[-1]) if len(curve.capacity) else lo)
        caps = np.unique(np.round(np.geomspace(lo, hi, 32)))
    mr, bmr = curve.at(caps)
    points: list[dict[str, Any]] = []
    for i, (c, m, b) in enumerate(zip(caps, mr, bmr, strict=True)):
        pt: dict[str, Any] = {"capacity": float(c), "miss_ratio": float(m), "byte_miss_ratio": float(b)}
        if curve.error_estimate is not None:
            j = min(int(np.searchsorted(curve.capacity, c, side="right")) - 1, len(curve.capacity) - 1)
            pt["error_estimate"] = float(curve.error_estimate[max(j, 0)])
        if unit == "bytes" and c < curve.exact_from_capacity:
            pt["note"] = "below the largest object: a real LRU would not admit it; ideal-LRU value"
        points.append(pt)
        del i
    out = {"trace": tr.name, "requests": len(tr), "unit": unit, "method": method, "seconds": seconds,
           "sizes_normalized_requests": changed, **extra, "points": points}
    _print(out, args.json, ["capacity", "miss_ratio", "byte_miss_ratio"])
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from kit.cachesim.policies import POLICIES, compare_policies

    tr, changed = _trace(args)
    policies = [p.strip().lower() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ParameterError(f"unknown policy(ies) {', '.join(unknown)}; known: {', '.join(POLICIES)}")
    if not args.sizes:
        raise ParameterError("give --sizes (capacities in bytes, or objects with --objects)")
    unit = "objects" if args.objects else "bytes"
    table = compare_policies(tr, policies, parse_sizes(args.sizes), unit=unit, sample_rate=args.sample_rate or 1.0)
    rows = [{"policy": r.policy, "capacity": r.capacity, "miss_ratio": r.miss_ratio,
             "byte_miss_ratio": None if unit == "objects" else r.byte_miss_ratio, "sample_rate": r.sample_rate,
             "seconds": r.seconds} for r in table.rows]
    out = {"trace": tr.name, "requests": len(tr), "unit": unit, "simulator": "libcachesim",
           "sizes_normalized_requests": changed, "points": rows}
    _print(out, args.json, ["policy", "capacity", "miss_ratio", "byte_miss_ratio"])
    return 0


def _print(out: dict[str, Any], as_json: bool, cols: list[str]) -> None:
    from kit.results import to_jsonable

    if as_json:
        sys.stdout.write(json.dumps(to_jsonable(out), indent=2) + "\n")
        return
    head = {k: v for k, v in out.items() if k != "points"}
    print(" ".join(f"{k}={v}" for k, v in head.items()))
    print("  ".join(f"{c:>16}" for c in cols))
    for p in out["points"]:
        cells = []
        for c in cols:
            v = p.get(c)
            cells.append(f"{v:>16.6g}" if isinstance(v, float) else f"{v!s:>16}")
        print("  ".join(cells))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cache", help="cache simulation: miss-ratio curves and policy comparison",
                                   description="Cache simulation over a trace file or the warehouse's cache_requests.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    mrc = sub.add_parser("mrc", help="exact LRU miss-ratio curve (one pass), or SHARDS with --sample-rate")
    _common(mrc)
    mrc.add_argument("--bytes", action="store_true", help="capacities in bytes (default: objects)")
    mrc.add_argument("--sample-rate", type=float, help="SHARDS fixed-rate sampling rate R (e.g. 0.01)")
    mrc.add_argument("--seed", type=int, default=0, help="SHARDS hash seed")
    mrc.set_defaults(func=run_mrc)
    cmp_ = sub.add_parser("compare", help="compare eviction policies with libcachesim")
    _common(cmp_)
    cmp_.add_argument("--policies", required=True, help="comma-separated: lru,fifo,clock,arc,lfu,lfuda,twoq,"
                                                        "s3fifo,sieve,tinylfu,gdsf,lhd,belady,beladysize")
    cmp_.add_argument("--objects", action="store_true", help="capacities in objects (default: bytes)")
    cmp_.add_argument("--sample-rate", type=float, help="miniature simulation on a spatial sample at this rate")
    cmp_.set_defaults(func=run_compare)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
