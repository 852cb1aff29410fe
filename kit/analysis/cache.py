"""Cache analysis of the warehouse: from the requests the service served, miss-ratio curves per key
design, policies, TTLs per content class, size admission, sizing and the cost model, the per-layer
evidence the caching plan needs, and the precomputed grid the notebook's widgets read.

Entry point: :func:`analyze_cache` → :class:`CacheResult` (JSON-serializable, curves ≤ 200 points).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from kit.cachesim.mrc import MissRatioCurve, exact_lru, shards
from kit.cachesim.policies import LEFT_OUT_NOTE, POLICIES, compare_policies, lru_ttl, size_admission, spatial_sample
from kit.cachesim.sizing import CostModel, capacity_for_hit_ratio, cost_model, knee
from kit.cachesim.trace import CACHE_KEYS, Trace, TraceStats, normalize_sizes, requests_filter, trace_stats
from kit.engine import DuckDBEngine, Queryable, as_engine
from kit.errors import DataError, ParameterError

__all__ = ["CONTENT_CLASSES", "CacheResult", "CurvePoints", "analyze_cache", "curve_points",
           "explorer_lookup"]

# content class -> SQL predicate on content_type / path
CONTENT_CLASSES: dict[str, str] = {
    "static": "(content_type ILIKE 'image/%' OR content_type ILIKE 'font/%' OR content_type ILIKE '%javascript%' "
              "OR content_type ILIKE 'text/css%' OR path ILIKE '/static/%')",
    "html": "content_type ILIKE 'text/html%'",
    "api": "(content_type ILIKE '%json%' OR path ILIKE '/api/%')",
}
CLASS_NAMES = [*CONTENT_CLASSES, "other"]   # the trace's class codes, in order
TTL_CHOICES_S = (0.0, 10.0, 60.0, 300.0, 3600.0, 86400.0)   # 0 = no expiry
EXACT_MAX_REQUESTS = 50_000_000        # above this the curves come from SHARDS
SHARDS_SAMPLE_REQUESTS = 1_000_000     # SHARDS in Python keeps about this many requests
# above this many cacheable requests in the window the engine extracts a spatial sample of keys (by path):
# every request of the paths whose id falls below a threshold, about this many requests
TRACE_MAX_REQUESTS = 10_000_000
SAMPLE_KEY = "path"
SAMPLED_KEYS = ("path", "path_query")  # the sample key and the key designs finer than it (a path sample
#                                        keeps every request of each of their keys)
LEFT_OUT_REASON = ("a spatial sample by path does not sample routes (a route holds many paths): left out of "
                   "the key-design comparison above TRACE_MAX_REQUESTS requests")
POLICY_SAMPLE_REQUESTS = 60_000        # policy grid runs on a spatial sample of about this many requests


@dataclass(frozen=True)
class CurvePoints:
    """A downsampled miss-ratio curve (≤ 200 points) for JSON and charts."""

    unit: str
    method: str
    sample_rate: float
    capacity: list[float]
    miss_ratio: list[float]
    byte_miss_ratio: list[float]
    error_estimate: list[float] | None
    exact_from_capacity: float


def curve_points(curve: MissRatioCurve, points: int = 200) -> CurvePoints:
    """The curve at ≤ ``points`` log-spaced capacities."""
    c = curve.downsample(points)
    return CurvePoints(c.unit, c.method, c.sample_rate, c.capacity.tolist(), c.miss_ratio.tolist(),
                       c.byte_miss_ratio.tolist(),
                       None if c.error_estimate is None else c.error_estimate.tolist(),
                       float(c.exact_from_capacity))


@dataclass(frozen=True)
class KeyCurves:
    """Exact LRU curves for one key design."""

    key: str
    requests: int
    unique_objects: int
    unique_bytes: int
    reuse_ratio: float
    objects: CurvePoints
    bytes: CurvePoints
    seconds: float


@dataclass(frozen=True)
class Sizing:
    """What the curves say about capacity (bytes unless named otherwise)."""

    knee_bytes: float
    knee_hit_ratio: float
    knee_byte_hit_ratio: float
    target_hit_ratio: float
    target_capacity_bytes: float | None     # None: the target is above what any capacity reaches
    max_hit_ratio: float                    # infinite cache (reuse ratio)
    max_byte_hit_ratio: float
    recommended_capacity_bytes: float
    recommended_hit_ratio: float
    recommended_byte_hit_ratio: float
    recommendation_basis: str
    cost: CostModel


@dataclass(frozen=True)
class ClassTtl:
    """Expiry effect on one content class (its requests alone, cache large enough to hold them all)."""

    content_class: str
    requests: int
    bytes: int
    reuse_time_p50_s: float | None
    reuse_time_p90_s: float | None
    hit_ratio_by_ttl: dict[str, float]       # "0" = no expiry
    byte_hit_ratio_by_ttl: dict[str, float]
    current_hit_ratio: float | None          # from requests.cache_status, where logged


@dataclass(frozen=True)
class CacheResult:
    """Everything notebook 40 computes; ``results["cache"]`` for the caching plan."""

    parameters: dict[str, Any]
    trace: TraceStats
    keys: list[KeyCurves]
    main_key: str
    capacity_grid_bytes: list[float]
    policies: dict[str, Any]                 # PolicyTable as JSON-ready dict
    ttl_grid: list[dict[str, float]]         # LRU at each grid capacity x TTL
    ttl_by_class: list[ClassTtl]
    admission: list[dict[str, Any]]
    sizing: Sizing
    latency: dict[str, Any]
    observed: dict[str, Any]                 # today's cache as logged (cache_status)
    browser: dict[str, Any]
    application: dict[str, Any]
    database: dict[str, Any]
    explorer: dict[str, Any]                 # the widgets' precomputed grid
    seconds: float
    timings_s: dict[str, float] = field(default_factory=dict)


def _curve_for(trace: Trace, total_requests: int | None = None, total_bytes: float | None = None
               ) -> tuple[MissRatioCurve, MissRatioCurve, str]:
    """LRU curves by objects and by bytes (capacities of the full population) and their method: exact,
    SHARDS above EXACT_MAX_REQUESTS, and SHARDS of the population of ``total_requests`` requests and
    ``total_bytes`` bytes when the trace is a spatial sample (``trace.sample_rate`` < 1; sampled again
    in Python to about SHARDS_SAMPLE_REQUESTS requests, the rates multiply)."""
    if trace.sample_rate < 1.0 or len(trace) > EXACT_MAX_REQUESTS:
        res = shards(trace.obj_id, trace.size_bytes, rate=min(1.0, SHARDS_SAMPLE_REQUESTS / len(trace)),
                     presampled_rate=trace.sample_rate, total_requests=total_requests, total_bytes=total_bytes)
        assert res.bytes is not None
        return res.objects, res.bytes, res.variant
    ex = exact_lru(trace.obj_id, trace.size_bytes)
    assert ex.bytes is not None
    return ex.objects, ex.bytes, "exact"


def _latency(con: duckdb.DuckDBPyConnection, where: str, params: list) -> dict[str, Any]:
    row = con.execute(
        f"SELECT median(latency_ms) FILTER (WHERE upper(cache_status) = 'HIT'), "
        f"median(latency_ms) FILTER (WHERE upper(cache_status) IN ('MISS', 'EXPIRED')), "
        f"count(*) FILTER (WHERE upper(cache_status) = 'HIT'), "
        f"count(*) FILTER (WHERE upper(cache_status) IN ('MISS', 'EXPIRED')), "
        f"median(latency_ms), median(latency_ms - upstream_ms) FILTER (WHERE upstream_ms IS NOT NULL) "
        f"FROM requests WHERE {where}", params).fetchone()
    assert row is not None
    hit, miss, nh, nm, med, edge = row
    if hit is not None and miss is not None and nh and nm:
        return {"hit_latency_ms": float(hit), "miss_latency_ms": float(miss),
                "source": f"median latency_ms of requests with cache_status HIT ({nh:,}) and MISS/EXPIRED "
                          f"({nm:,})"}
    if med is not None and edge is not None:
        return {"hit_latency_ms": float(edge), "miss_latency_ms": float(med),
                "source": "no cache_status logged: miss = median latency_ms, hit = median (latency_ms - upstream_ms)"}
    return {"hit_latency_ms": None, "miss_latency_ms": None, "source": "no latency data"}


def _browser(frame: Any, full: _TraceSize, trace_rate: float = 1.0) -> dict[str, Any]:
    """Per-client repeat requests (what a private browser cache could serve if responses were cacheable).
    On a spatial sample of keys at ``trace_rate`` < 1 the first requests of each (client, key) pair and
    their bytes are scaled by 1/rate and the repeats are the rest of ``full``'s exact totals (first requests
    per key are bounded by the clients, so they vary less from key to key than the repeats do); the static
    class's ratio and the reuse times are as sampled."""
    from kit.cachesim.trace import _prev_access_kernel

    sel = frame["has_client"].to_numpy(bool)
    n = int(sel.sum())
    if not n:
        return {"requests": 0, "source": "no client_hash in requests"}
    ids = frame["h_client"].to_numpy(np.int64).view(np.uint64)[sel]
    t = frame["t"].to_numpy(np.float64)[sel]
    sz = frame["sz"].to_numpy(np.float64)[sel]
    static = (frame["cls"] == "static").to_numpy(bool)[sel]
    codes, uniq = pd.factorize(ids)
    prev = _prev_access_kernel(codes.astype(np.int64), len(uniq))
    rep = prev >= 0
    gaps = t[rep] - t[prev[rep]]
    if trace_rate >= 1.0:
        repeats, byte_ratio = int(rep.sum()), float(sz[rep].sum() / max(sz.sum(), 1.0))
    else:
        repeats = max(0, int(round(full.client_requests - (~rep).sum() / trace_rate)))
        byte_ratio = max(0.0, 1.0 - float(sz[~rep].sum()) / trace_rate / max(full.client_bytes, 1.0))
    return {"requests": full.client_requests, "repeat_requests": repeats,
            "repeat_ratio": repeats / full.client_requests if trace_rate < 1.0 else float(rep.mean()),
            "repeat_byte_ratio": byte_ratio,
            "reuse_time_p50_s": float(np.percentile(gaps, 50)) if len(gaps) else None,
            "reuse_time_p90_s": float(np.percentile(gaps, 90)) if len(gaps) else None,
            "static_repeat_ratio": float(rep[static].mean()) if static.any() else None,
            "source": "requests grouped by (client_hash, cache key): a repeat is a second request of the same "
                      "object by the same client (upper bound of private-cache hits with long max-age)"}


def _database(con: duckdb.DuckDBPyConnection, start: str | None, end: str | None) -> dict[str, Any]:
    """The database's buffer cache from the ``queries`` snapshots of [start, end) (the whole history when
    open): shared-buffer hit ratio, and the SELECTs with the most database time. Counters are the per-interval
    deltas of :func:`kit.analysis.database.digest.deltas_sql` (per source and series, a counter reset counted
    from zero), not the last value minus the first, which a reset or a second server would turn wrong."""
    from kit.analysis.database.digest import deltas_sql
    from kit.analysis.window import parse_instant

    out: dict[str, Any] = {"source": "queries"}
    lo, hi = parse_instant("start", start), parse_instant("end", end)
    if lo is None or hi is None:
        first, last = con.execute("SELECT min(ts), max(ts) FROM queries WHERE kind = 'snapshot'").fetchone() \
            or (None, None)
        if first is None:
            out["note"] = "no query statistics in the warehouse"
            return out
        lo, hi = lo or first, hi or last + timedelta(microseconds=1)
    per_fp = con.execute(f"""WITH d AS ({deltas_sql(lo, hi)})
        SELECT fingerprint, sum(calls) AS calls, sum(total_ms) AS ms, sum(hit) AS hit, sum(read) AS rd
        FROM d GROUP BY fingerprint ORDER BY ms DESC NULLS LAST, fingerprint""").df().fillna(
        {"fingerprint": "", "calls": 0, "ms": 0.0, "hit": 0, "rd": 0})
    hit, rd = float(per_fp["hit"].sum()), float(per_fp["rd"].sum())
    if hit + rd > 0:
        out["buffer_hit_ratio"] = hit / (hit + rd)
        out["buffer_hit_source"] = ("queries snapshots: shared_blks_hit / (hit + read), summed over the "
                                    "snapshot intervals (a counter reset counted from zero)")
    total_ms = float(per_fp["ms"].sum())
    top = per_fp[per_fp["fingerprint"].str.lstrip().str.upper().str.startswith("SELECT")].head(5)
    if total_ms > 0 and len(top):
        out["top_read_queries"] = [{"fingerprint": str(r.fingerprint)[:200], "calls": int(r.calls),
                                    "total_ms": float(r.ms), "share_of_db_time": float(r.ms) / total_ms}
                                   for r in top.itertuples(index=False)]
        out["top_read_share_of_db_time"] = float(top["ms"].sum()) / total_ms
    if len(out) == 1:
        out["note"] = "no query statistics in the window"
    return out


def _class_ttl(frame: Any, main: Trace, rate: float, full: _TraceSize) -> list[ClassTtl]:
    """Per content class: hit ratios under each TTL with a cache that holds the whole class (so only
    expiry decides), on the class's spatially sampled requests (about ``rate`` x ``full.requests`` of them,
    ``rate`` of the full population; ``main`` may be a spatial sample). Requests and bytes: ``full``'s."""
    out = []
    trace_rate = main.sample_rate
    hit = frame["cs_hit"].to_numpy(np.int8)   # 1 HIT, 0 another status, -1 none logged
    for cls in CONTENT_CLASSES:
        sel = (frame["cls"] == cls).to_numpy(bool)
        if not sel.any():
            continue
        assert main.time_s is not None
        tr = Trace(cls, main.obj_id[sel], main.size_bytes[sel], main.time_s[sel], sample_rate=trace_rate)
        small = spatial_sample(tr, min(trace_rate, rate * full.requests / full.class_requests[cls]))
        if len(small) < 100:
            small = tr
        st = trace_stats(small, buckets=4)
        cap = int(small.size_bytes.sum()) + 1
        hr, bhr = {}, {}
        for ttl in TTL_CHOICES_S:
            m, b = lru_ttl(small, cap, ttl)
            hr[str(int(ttl))], bhr[str(int(ttl))] = 1 - m, 1 - b
        logged = hit[sel][hit[sel] >= 0]
        cur = float((logged == 1).mean()) if len(logged) else None
        rt = st.reuse_time_s_quantiles or {}
        out.append(ClassTtl(cls, full.class_requests[cls], full.class_bytes[cls], rt.get("p50"),
                            rt.get("p90"), hr, bhr, cur))
    return out


def id64_sql(expr: str) -> str:
    """A 60-bit key id from SQL ``expr`` that DuckDB and Spark compute alike: the first 15 hex digits of
    ``md5(expr)`` as a BIGINT (``kit.engine`` rewrites DuckDB's hex cast into Spark's ``conv``). ``hash``
    differs between the engines, and the SHARDS sampling of the policy simulations hashes these ids:
    the same ids give the same sample. Costs ~1 s per million requests and key more than ``hash``."""
    return f"CAST('0x' || substr(md5({expr}), 1, 15) AS BIGINT)"


def _trace_frame(con: Queryable, sql: str) -> pd.DataFrame:
    """The trace query's rows as a frame. On DuckDB the rows stream out in Arrow batches (not held by DuckDB
    and by pandas at once), and the connection's memory limit is lowered to a quarter of the machine's
    memory for the query (never raised), so that its sort spills to disk rather than crowd out the Python
    side that receives the rows: at 100M requests the two together ran past 24 GB."""
    engine = as_engine(con)
    if not isinstance(engine, DuckDBEngine):
        return engine.frame(sql)
    db = engine.con
    limit = str(db.execute("SELECT current_setting('memory_limit')").fetchone()[0])  # type: ignore[index]
    quarter = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    lowered = _bytes(limit) > quarter
    if lowered:
        db.execute(f"SET memory_limit = '{quarter // 2**20}MiB'")
    try:
        reader = db.sql(sql).to_arrow_reader(1 << 20)
        table = pa.Table.from_batches(list(reader), schema=reader.schema)
    finally:
        if lowered:
            db.execute(f"SET memory_limit = '{limit}'")
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _bytes(setting: str) -> float:
    """A DuckDB size setting ('18.6 GiB', '500.0 MiB', '4.0 GB') in bytes."""
    number, _, unit = setting.strip().partition(" ")
    scale = {"": 1, "bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
             "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    return float(number) * scale.get(unit, 1)


def _class_sql() -> str:
    """The content class of a request as its code in CLASS_NAMES (SQL over requests)."""
    cls = " ".join(f"WHEN {pred} THEN {i}" for i, pred in enumerate(CONTENT_CLASSES.values()))
    return f"CASE {cls} ELSE {len(CONTENT_CLASSES)} END"


@dataclass(frozen=True)
class _TraceSize:
    """The full trace's exact counts (bytes are bytes_sent, NULL as 0)."""

    requests: int
    bytes: int
    client_requests: int                  # requests with a client_hash
    client_bytes: int
    class_requests: dict[str, int]        # per content class (CLASS_NAMES)
    class_bytes: dict[str, int]


def _trace_size(con: Queryable, where: str) -> _TraceSize:
    """The trace :func:`_load` would extract in full, counted in one scan (portable SQL)."""
    per_class = ", ".join(f"count(*) FILTER (WHERE cls = {i}), sum(b) FILTER (WHERE cls = {i})"
                          for i in range(len(CLASS_NAMES)))
    row = [int(v or 0) for v in as_engine(con).rows(
        f"SELECT count(*), sum(b), count(*) FILTER (WHERE client_hash IS NOT NULL), "
        f"sum(b) FILTER (WHERE client_hash IS NOT NULL), {per_class} "
        f"FROM (SELECT {_class_sql()} AS cls, coalesce(bytes_sent, 0) AS b, client_hash FROM requests "
        f"WHERE {where} AND path IS NOT NULL) AS r")[0]]
    return _TraceSize(row[0], row[1], row[2], row[3], dict(zip(CLASS_NAMES, row[4::2], strict=True)),
                      dict(zip(CLASS_NAMES, row[5::2], strict=True)))


def sample_threshold(requests: int) -> int | None:
    """The threshold T on a path id's low 24 bits that keeps about TRACE_MAX_REQUESTS of ``requests``
    (rate T / 2^24), or None (no sampling) at or below TRACE_MAX_REQUESTS."""
    if requests <= TRACE_MAX_REQUESTS:
        return None
    threshold = max(1, int(TRACE_MAX_REQUESTS / requests * 2**24))
    return threshold if threshold < 2**24 else None


def _load(con: Queryable, where: str, keys: tuple[str, ...], cache_key: str, threshold: int | None = None) -> Any:
    """One scan of requests (:func:`trace_sql`) as a frame, time in epoch seconds and the class categorical."""
    frame = _trace_frame(con, trace_sql(where, keys, cache_key, threshold))
    frame.insert(0, "t", frame.pop("us").to_numpy(np.int64) / 1e6)  # epoch seconds
    frame["cls"] = pd.Categorical.from_codes(frame["cls"].to_numpy(np.int8), categories=CLASS_NAMES)
    return frame


def trace_sql(where: str, keys: tuple[str, ...], cache_key: str, threshold: int | None = None) -> str:
    """The trace query: time (epoch microseconds), an id per key design, the per-client key, size, content
    class, status of the requests matching ``where``.

    Portable SQL (DuckDB or Spark, ``kit.engine``); rows in time order, ties broken by every column, so
    both engines return the same trace. With ``threshold`` T only the requests whose path id has its low
    24 bits below T (a spatial sample of paths at T / 2^24, every request of a kept path): the path id is
    computed and filtered first, the other ids on the kept rows only."""
    src = f"requests WHERE {where} AND path IS NOT NULL"
    ids = {k: id64_sql(CACHE_KEYS[k]) for k in keys}
    if threshold is not None:
        src = (f"(SELECT ts, path, query, route, client_hash, bytes_sent, content_type, cache_status, "
               f"{id64_sql(CACHE_KEYS[SAMPLE_KEY])} AS h_sample FROM {src}) AS sampled "
               f"WHERE h_sample % {2**24} < {int(threshold)}")
        ids[SAMPLE_KEY] = "h_sample"
    cols = ", ".join(f"{ids[k]} AS h_{k}" for k in keys)
    client = id64_sql(f"coalesce(client_hash, '') || chr(1) || ({CACHE_KEYS[cache_key]})")
    order = ", ".join(["us", *(f"h_{k}" for k in keys), "h_client", "has_client", "sz", "cls", "cs_hit"])
    # the class and the cache status as small integers, not strings: at 100M requests two string columns
    # took ~25 bytes a request in pandas (and more while DuckDB's result was converted)
    return (f"SELECT epoch_us(ts) AS us, {cols}, {client} AS h_client, "
            f"client_hash IS NOT NULL AS has_client, coalesce(bytes_sent, 0) AS sz, "
            f"CAST({_class_sql()} AS TINYINT) AS cls, "
            f"CAST(CASE WHEN cache_status IS NULL THEN -1 WHEN upper(cache_status) = 'HIT' THEN 1 ELSE 0 END "
            f"AS TINYINT) AS cs_hit "
            f"FROM {src} ORDER BY {order}")


def analyze_cache(con: duckdb.DuckDBPyConnection, *, cache_key: str = "path", start: str | None = None,
                  end: str | None = None, policies: list[str] | None = None, size_points: int = 24,
                  target_hit_ratio: float = 0.9, memory_cost_per_gb_month: float = 4.0,
                  egress_cost_per_gb: float = 0.05, keys: tuple[str, ...] = tuple(CACHE_KEYS),
                  policy_sample_requests: int = POLICY_SAMPLE_REQUESTS, engine: Queryable | None = None
                  ) -> CacheResult:
    """The whole cache study of the warehouse's requests (GET/HEAD, status 200-399, in [start, end)).
    ``engine`` extracts the trace (default: DuckDB on ``con``); the simulations run here.

    Above TRACE_MAX_REQUESTS requests (counted first) the engine extracts a spatial sample of paths at
    R ~ TRACE_MAX_REQUESTS / requests (every request of a kept path) and every count, capacity and curve
    is scaled back to the full population (``parameters["trace_sample_rate"]`` = R, 1.0 when not
    sampled); the route key design, which a path sample does not sample, is then left out
    (``parameters["keys_left_out"]``). With ``cache_key="route"`` the trace is never sampled."""
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    policies = list(policies or ["lru", "fifo", "clock", "arc", "lfu", "twoq", "s3fifo", "sieve", "tinylfu",
                                 "gdsf", "belady"])
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ParameterError(f"unknown cache policy(ies) {', '.join(unknown)}; known: {', '.join(POLICIES)}")
    if cache_key not in keys:
        keys = (cache_key, *keys)
    where, params = requests_filter(start, end)

    t0 = time.perf_counter()
    source = engine if engine is not None else con
    literal_where = requests_filter(start, end, literal=True)[0]
    full = _trace_size(source, literal_where)
    n_full = full.requests
    threshold = sample_threshold(n_full) if cache_key in SAMPLED_KEYS else None
    keys_left_out: dict[str, str] = {}
    if threshold is not None:
        keys_left_out = {k: LEFT_OUT_REASON for k in keys if k not in SAMPLED_KEYS}
        keys = tuple(k for k in keys if k in SAMPLED_KEYS)
    trace_rate = 1.0 if threshold is None else threshold / 2**24
    frame = _load(source, literal_where, keys, cache_key, threshold)
    if frame.empty:
        from kit.analysis.coverage import NEEDS

        raise DataError(f"no cacheable requests (GET/HEAD, status 200-399) in the analysed window. "
                        f"{NEEDS['cacheable'].sentence()}")
    t_s = frame["t"].to_numpy(np.float64)
    raw_sz = frame["sz"].to_numpy(np.int64)
    sampling = None if threshold is None else (
        f"estimated from a spatial sample of keys: the requests of the paths whose id's low 24 bits fall "
        f"below {threshold} (R = {trace_rate:.4f}, {len(frame):,} of {n_full:,} requests), counts, bytes and "
        f"capacities scaled by 1/R")
    traces: dict[str, Trace] = {}
    total_bytes: dict[str, float] = {}   # per key: requested bytes at the per-object sizes, full population
    for k in keys:
        ids = frame[f"h_{k}"].to_numpy(np.int64).view(np.uint64)   # the same bits, no copy
        traces[k] = Trace(f"requests:{k}", ids, normalize_sizes(ids, raw_sz), t_s, k,
                          f"requests WHERE {where} (params {params})" + (f"; {sampling}" if sampling else ""),
                          trace_rate)
        total_bytes[k] = _full_bytes(traces[k], int(raw_sz.sum()), full.bytes)
    main = traces[cache_key]
    timings["load_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    curves: dict[str, tuple[MissRatioCurve, MissRatioCurve]] = {}
    key_curves = []
    for k, tr in traces.items():
        t1 = time.perf_counter()
        obj_c, byte_c, _ = _curve_for(tr, n_full, total_bytes[k])
        curves[k] = (obj_c, byte_c)
        first = np.unique(tr.obj_id, return_index=True)[1]
        unique_bytes = int(round(tr.size_bytes[first].sum() / trace_rate))
        key_curves.append(KeyCurves(k, n_full, int(round(len(first) / trace_rate)), unique_bytes,
                                    float(1 - obj_c.miss_ratio[-1]), curve_points(obj_c), curve_points(byte_c),
                                    time.perf_counter() - t1))
    timings["curves_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = trace_stats(main, object_curve=curves[cache_key][0], total_requests=n_full,
                        total_bytes=int(round(total_bytes[cache_key])))
    timings["stats_s"] = time.perf_counter() - t0
    obj_c, byte_c = curves[cache_key]

    grid = _capacity_grid(stats, size_points)

    t0 = time.perf_counter()
    rate = min(1.0, policy_sample_requests / n_full, trace_rate)   # of the full population
    table = compare_policies(main, policies, grid, unit="bytes", sample_rate=rate)
    table = replace(table, requests=n_full)
    timings["policies_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ttl_grid = []
    if main.time_s is not None:
        small = spatial_sample(main, rate)     # the same miniature trace as the policy table
        for ttl in TTL_CHOICES_S:
            for cap in grid:
                if ttl == 0:   # no expiry: the LRU curve (exact, or SHARDS on an engine sample)
                    mm, bb = byte_c.at(cap)
                    m, b = float(mm[0]), float(bb[0])
                else:
                    m, b = lru_ttl(small, max(1, int(round(cap * rate))), ttl)
                ttl_grid.append({"ttl_s": ttl, "capacity_bytes": float(cap), "miss_ratio": m,
                                 "byte_miss_ratio": b, "sample_rate": trace_rate if ttl == 0 else rate})
    timings["ttl_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ttl_cls = _class_ttl(frame, main, rate, full)
    timings["ttl_by_class_s"] = time.perf_counter() - t0

    # sizing and cost
    lat = _latency(con, where, params)
    duration = stats.duration_s
    cm = cost_model(byte_c, requests=n_full, total_bytes=int(round(total_bytes[cache_key])), duration_s=duration,
                    memory_cost_per_gb_month=memory_cost_per_gb_month, egress_cost_per_gb=egress_cost_per_gb,
                    target_hit_ratio=target_hit_ratio, hit_latency_ms=lat["hit_latency_ms"],
                    miss_latency_ms=lat["miss_latency_ms"], latency_source=lat["source"])
    k_cap, t_cap, rec, basis = recommend_capacity(byte_c, target_hit_ratio)
    k_m, k_b = byte_c.at(k_cap)
    r_m, r_b = byte_c.at(rec)
    sizing = Sizing(k_cap, float(1 - k_m[0]), float(1 - k_b[0]), target_hit_ratio, t_cap,
                    float(1 - byte_c.miss_ratio[-1]), float(1 - byte_c.byte_miss_ratio[-1]), float(rec),
                    float(1 - r_m[0]), float(1 - r_b[0]), basis, cm)

    t0 = time.perf_counter()
    sizes_sorted = np.sort(main.size_bytes)
    thresholds = sorted({int(np.quantile(sizes_sorted, q)) + 1 for q in (0.5, 0.9, 0.99)})
    admission = size_admission(spatial_sample(main, rate), max(1, int(round(rec * rate))), thresholds)
    for row in admission:
        row["capacity_bytes"] = float(rec)
        row["sample_rate"] = rate
    timings["admission_s"] = time.perf_counter() - t0

    obs = con.execute(
        f"SELECT count(*) FILTER (WHERE cache_status IS NOT NULL), "
        f"count(*) FILTER (WHERE upper(cache_status) = 'HIT'), "
        f"sum(bytes_sent) FILTER (WHERE upper(cache_status) = 'HIT'), "
        f"sum(bytes_sent) FILTER (WHERE cache_status IS NOT NULL) FROM requests WHERE {where}", params).fetchone()
    assert obs is not None
    observed = {"requests_with_status": int(obs[0] or 0),
                "hit_ratio": (obs[1] / obs[0]) if obs[0] else None,
                "byte_hit_ratio": (float(obs[2] or 0) / float(obs[3])) if obs[3] else None,
                "source": "requests.cache_status (HIT over all logged statuses) of cacheable requests"}

    t0 = time.perf_counter()
    browser = _browser(frame, full, trace_rate)
    app_sel = frame["cls"].isin(["html", "api"]).to_numpy()
    application: dict[str, Any] = {"source": f"requests of content class html or api (see CONTENT_CLASSES), "
                                              f"key {cache_key}, LRU by entry count "
                                              + ("(exact curve)" if threshold is None else
                                                 f"(SHARDS curve of the full population, {sampling})")}
    application["method"] = ("exact LRU by entry count" if threshold is None else
                             "SHARDS LRU by entry count (keys sampled in the engine)")
    if app_sel.any():
        app_curve, app_requests, app_objects = _entry_curve(main.obj_id[app_sel], trace_rate,
                                                            full.class_requests["html"] + full.class_requests["api"])
        mean_sz = float(raw_sz[app_sel].mean())
        t_entries = capacity_for_hit_ratio(app_curve, target_hit_ratio)
        k_entries = knee(app_curve)
        chosen = t_entries if t_entries is not None else k_entries
        m_app, _ = app_curve.at(chosen)
        application.update({
            "requests": app_requests, "unique_objects": app_objects,
            "max_hit_ratio": float(1 - app_curve.miss_ratio[-1]),
            "target_entries": t_entries, "knee_entries": k_entries, "recommended_entries": chosen,
            "recommended_hit_ratio": float(1 - m_app[0]), "mean_response_bytes": mean_sz,
            "recommended_memory_bytes": chosen * mean_sz, "curve": curve_points(app_curve, 120)})
    timings["layers_s"] = time.perf_counter() - t0

    database = _database(con, start, end)

    explorer = _explorer(curves, table, ttl_grid, grid, policies, list(traces), cache_key)
    return CacheResult(
        parameters={"cache_key": cache_key, "start": start, "end": end, "policies": policies,
                    "size_points": size_points, "target_hit_ratio": target_hit_ratio,
                    "memory_cost_per_gb_month": memory_cost_per_gb_month,
                    "egress_cost_per_gb": egress_cost_per_gb, "policy_sample_rate": rate,
                    "ttl_choices_s": list(TTL_CHOICES_S), "trace_sample_rate": trace_rate,
                    "trace_sampled_requests": len(main), "trace_sampling": sampling,
                    "keys_left_out": keys_left_out},
        trace=stats, keys=key_curves, main_key=cache_key, capacity_grid_bytes=grid.tolist(),
        policies=_policy_block(table, rate),
        ttl_grid=ttl_grid, ttl_by_class=ttl_cls, admission=admission, sizing=sizing, latency=lat,
        observed=observed, browser=browser, application=application, database=database, explorer=explorer,
        seconds=time.perf_counter() - t_all, timings_s=timings)


def _full_bytes(trace: Trace, raw_bytes: int, raw_bytes_full: int) -> float:
    """The full population's requested bytes at the per-object sizes of ``trace`` (``normalize_sizes``):
    the trace's own sum, or on a spatial sample a ratio estimate, the full bytes_sent ``raw_bytes_full``
    (exact, counted in the engine) times the sample's per-object over its raw bytes (``raw_bytes``)."""
    own = float(trace.size_bytes.sum())
    if trace.sample_rate >= 1.0:
        return own
    return raw_bytes_full * own / raw_bytes if raw_bytes > 0 else own / trace.sample_rate


def _entry_curve(obj_id: np.ndarray, trace_rate: float, total_requests: int) -> tuple[MissRatioCurve, int, int]:
    """LRU curve by entry count of the requests ``obj_id`` (a spatial sample at ``trace_rate`` of
    ``total_requests`` requests when < 1: SHARDS of the full population), with its requests and objects."""
    if trace_rate >= 1.0:
        ex = exact_lru(obj_id, None, bytes_curve=False)
        return ex.objects, ex.requests, ex.unique_objects
    res = shards(obj_id, None, rate=min(1.0, SHARDS_SAMPLE_REQUESTS / len(obj_id)), bytes_curve=False,
                 presampled_rate=trace_rate, total_requests=total_requests)
    return res.objects, total_requests, int(round(len(np.unique(obj_id)) / trace_rate))


def _policy_block(table: Any, rate: float) -> dict[str, Any]:
    """A PolicyTable as the JSON-ready ``policies`` block of a study, with the simulation method."""
    return {"unit": table.unit, "trace": table.trace, "requests": table.requests,
            "sample_rate": table.sample_rate, "capacities": table.capacities,
            "rows": [{"policy": r.policy, "capacity_bytes": r.capacity, "miss_ratio": r.miss_ratio,
                      "byte_miss_ratio": r.byte_miss_ratio, "sample_rate": r.sample_rate} for r in table.rows],
            "left_out": LEFT_OUT_NOTE,
            "method": ("libcachesim, full trace" if rate >= 1 else
                       f"libcachesim miniature simulation: keys sampled spatially at R={rate:.4f}, "
                       "capacities scaled by R")}


def _capacity_grid(stats: TraceStats, size_points: int) -> np.ndarray:
    """Log-spaced cache capacities in bytes, from the largest object to the footprint (every object once)."""
    lo = max(float(stats.max_object_bytes), 1.0)
    return np.unique(np.round(np.geomspace(lo, max(float(stats.unique_bytes), lo * 2), size_points)))


def recommend_capacity(byte_curve: MissRatioCurve, target_hit_ratio: float
                       ) -> tuple[float, float | None, float, str]:
    """(knee, capacity reaching the target object hit ratio or None, recommended capacity, why), all in
    the curve's capacity unit (bytes for a byte-capacity curve)."""
    k_cap = knee(byte_curve)
    t_cap = capacity_for_hit_ratio(byte_curve, target_hit_ratio)
    if t_cap is not None:
        return k_cap, t_cap, t_cap, f"smallest capacity reaching the target object hit ratio {target_hit_ratio:.0%}"
    reachable = float(1 - byte_curve.miss_ratio[-1])
    aim = 0.95 * reachable
    return k_cap, None, capacity_for_hit_ratio(byte_curve, aim) or k_cap, (
        f"the target hit ratio {target_hit_ratio:.0%} is above the trace's reuse ratio {reachable:.1%} "
        f"(what an infinite cache reaches): smallest capacity reaching 95% of it ({aim:.1%})")


@dataclass(frozen=True)
class TraceStudy:
    """Notebook 40's study of a cache trace loaded into ``cache_requests`` (``perfkit ingest trace``):
    the same curves, policy table and sizing as for the requests, without the request-only layers."""

    trace: TraceStats
    keys: list[KeyCurves]                    # one entry: the trace's own key
    main_key: str
    capacity_grid_bytes: list[float]
    policies: dict[str, Any]                 # as CacheResult.policies
    sizing: dict[str, Any]                   # knee, target and recommended capacity (bytes) with hit ratios
    seconds: float


def analyze_trace(con: duckdb.DuckDBPyConnection, *, trace: str | None = None, policies: list[str] | None = None,
                  size_points: int = 24, target_hit_ratio: float = 0.9,
                  policy_sample_requests: int = POLICY_SAMPLE_REQUESTS) -> TraceStudy:
    """Exact (or SHARDS) LRU curves, trace statistics, the policy comparison and sizing of the loaded trace
    ``trace`` (the largest one when None); capacities in bytes (objects of unknown size count 1 byte)."""
    from kit.cachesim.trace import trace_from_cache_requests

    t_all = time.perf_counter()
    if trace is None:
        biggest = con.execute("SELECT trace FROM cache_requests GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
                              ).fetchone()
        if biggest is None:
            raise DataError("the warehouse has no cache_requests: load one with `perfkit ingest trace`")
        trace = str(biggest[0])
    raw = trace_from_cache_requests(con, trace)
    tr = Trace(raw.name, raw.obj_id, normalize_sizes(raw.obj_id, raw.size_bytes), raw.time_s, raw.key, raw.source)
    obj_c, byte_c, _ = _curve_for(tr)
    stats = trace_stats(tr, object_curve=obj_c)
    grid = _capacity_grid(stats, size_points)
    rate = min(1.0, policy_sample_requests / len(tr))
    table = compare_policies(tr, list(policies or ["lru", "fifo", "s3fifo", "sieve", "arc", "belady"]), grid,
                             unit="bytes", sample_rate=rate)
    k_cap, t_cap, rec, basis = recommend_capacity(byte_c, target_hit_ratio)
    (k_m,), (k_b,) = byte_c.at(k_cap)
    (r_m,), (r_b,) = byte_c.at(rec)
    key = KeyCurves(tr.key or "obj_id", len(tr), stats.unique_objects, stats.unique_bytes, stats.reuse_ratio,
                    curve_points(obj_c), curve_points(byte_c), 0.0)
    return TraceStudy(
        trace=stats, keys=[key], main_key=key.key, capacity_grid_bytes=grid.tolist(),
        policies=_policy_block(table, rate),
        sizing={"knee_bytes": float(k_cap), "knee_hit_ratio": float(1 - k_m), "knee_byte_hit_ratio": float(1 - k_b),
                "target_hit_ratio": target_hit_ratio, "target_capacity_bytes": t_cap,
                "max_hit_ratio": float(1 - byte_c.miss_ratio[-1]),
                "recommended_capacity_bytes": float(rec), "recommended_hit_ratio": float(1 - r_m),
                "recommended_byte_hit_ratio": float(1 - r_b), "recommendation_basis": basis},
        seconds=time.perf_counter() - t_all)


def _explorer(curves: dict[str, tuple[MissRatioCurve, MissRatioCurve]], table: Any, ttl_grid: list[dict],
              grid: np.ndarray, policies: list[str], keys: list[str], main_key: str) -> dict[str, Any]:
    """hit[key][policy][ttl] -> object hit ratios at each grid capacity (None where not simulated):
    LRU without expiry is the exact curve of every key; other policies come from the policy table and TTLs
    from the LRU+TTL simulation, both for the main key."""
    hit: dict[str, dict[str, dict[str, list[float | None]]]] = {}
    byte_hit: dict[str, dict[str, dict[str, list[float | None]]]] = {}
    ttls = sorted({str(int(r["ttl_s"])) for r in ttl_grid} | {"0"}, key=int)
    for k in keys:
        hit[k], byte_hit[k] = {}, {}
        for p in policies:
            hit[k][p] = {t: [None] * len(grid) for t in ttls}
            byte_hit[k][p] = {t: [None] * len(grid) for t in ttls}
        if "lru" not in hit[k]:
            hit[k]["lru"] = {t: [None] * len(grid) for t in ttls}
            byte_hit[k]["lru"] = {t: [None] * len(grid) for t in ttls}
        m, b = curves[k][1].at(grid)
        hit[k]["lru"]["0"] = (1 - m).tolist()
        byte_hit[k]["lru"]["0"] = (1 - b).tolist()
    index = {float(c): i for i, c in enumerate(grid)}
    for r in table.rows:
        if r.policy == "lru":
            continue   # the exact curve is the LRU reference (the table's LRU is a sampled estimate)
        i = index[float(r.capacity)]
        hit[main_key][r.policy]["0"][i] = 1 - r.miss_ratio
        byte_hit[main_key][r.policy]["0"][i] = 1 - r.byte_miss_ratio
    for r in ttl_grid:
        if r["ttl_s"] == 0:
            continue
        i = index[float(r["capacity_bytes"])]
        hit[main_key]["lru"][str(int(r["ttl_s"]))][i] = 1 - r["miss_ratio"]
        byte_hit[main_key]["lru"][str(int(r["ttl_s"]))][i] = 1 - r["byte_miss_ratio"]
    return {"keys": keys, "policies": sorted(set(policies) | {"lru"}, key=lambda p: (p != "lru", p)),
            "ttls_s": ttls, "capacities_bytes": grid.tolist(), "hit_ratio": hit, "byte_hit_ratio": byte_hit,
            "main_key": main_key}


def explorer_lookup(explorer: dict[str, Any], key: str, policy: str, ttl_s: str, index: int
                    ) -> tuple[float | None, float | None]:
    """(object hit ratio, byte hit ratio) the widgets show for one choice (None: not simulated)."""
    try:
        return (explorer["hit_ratio"][key][policy][ttl_s][index], explorer["byte_hit_ratio"][key][policy][ttl_s][index])
    except (KeyError, IndexError):
        return None, None
