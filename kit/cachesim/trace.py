"""Cache traces: one request per element (object id, size in bytes, time in seconds), built from the
warehouse's ``requests`` (key chosen by a parameter) or its loaded ``cache_requests``, plus statistics
(popularity and its Zipf fit, one-hit wonders, reuse time and reuse distance, working set over time)
and an oracleGeneral writer so libcachesim can replay any trace."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numba as nb
import numpy as np
import pandas as pd

from kit.cachesim.mrc import MissRatioCurve, object_stack_distances
from kit.errors import DataError
from kit.warehouse import CACHEABLE_SQL, sql_string

CACHE_KEYS = {
    "path": "path",
    "path_query": "path || coalesce('?' || nullif(query, ''), '')",
    "route": "coalesce(route, path)",
}

ORACLE_DTYPE = np.dtype([("clock_time", "<u4"), ("obj_id", "<u8"), ("obj_size", "<u4"),
                         ("next_access_vtime", "<i8")])


@dataclass(frozen=True)
class Trace:
    """A request trace: arrays of equal length (``obj_id`` uint64, ``size_bytes`` int64 >= 1,
    ``time_s`` float64 seconds or None). ``sample_rate`` is the share of the full key space it holds
    (< 1: a spatial sample, every request of the keys kept, e.g. extracted so by the engine)."""

    name: str
    obj_id: np.ndarray
    size_bytes: np.ndarray
    time_s: np.ndarray | None = None
    key: str = ""                 # how objects were keyed (path, path_query, route, or the trace format)
    source: str = ""              # where it came from (table and filter, or file)
    sample_rate: float = 1.0      # share of the full population's keys the trace holds
    # the seed of the SHARDS hash that sampled it (kit.cachesim.spatial_sample), None when not sampled or
    # sampled independently of that hash (the engine's md5 ids): a second sample with the same seed nests
    sample_seed: int | None = None

    def __post_init__(self) -> None:
        if len(self.obj_id) != len(self.size_bytes) or (self.time_s is not None
                                                        and len(self.time_s) != len(self.obj_id)):
            raise ValueError(f"trace {self.name!r}: arrays of different lengths")

    def __len__(self) -> int:
        return len(self.obj_id)

    def head(self, n: int) -> Trace:
        """The first ``n`` requests."""
        return Trace(self.name, self.obj_id[:n], self.size_bytes[:n],
                     None if self.time_s is None else self.time_s[:n], self.key, self.source, self.sample_rate,
                     self.sample_seed)


def normalize_sizes(obj_id: np.ndarray, size_bytes: np.ndarray) -> np.ndarray:
    """Per request, the largest size seen for its object (>= 1 byte): a cache stores one size per
    object, and a zero-byte response (304, HEAD) still takes an entry."""
    codes, uniq = pd.factorize(obj_id)
    if len(codes) == 0:
        return np.zeros(0, np.int64)
    biggest = pd.Series(np.asarray(size_bytes, np.int64)).groupby(codes, sort=True).max().to_numpy()
    return np.maximum(biggest[codes], 1)




def requests_filter(start: str | None, end: str | None, cacheable_only: bool = True, *,
                    literal: bool = False) -> tuple[str, list]:
    """SQL condition over ``requests`` (and its parameters): ``ts`` in [start, end) (ISO 8601; None = open)
    and, with ``cacheable_only``, :data:`CACHEABLE_SQL`. ``literal`` writes the times into the text (no
    parameters: the condition then runs on any engine)."""
    clauses = [CACHEABLE_SQL] if cacheable_only else []
    params: list = []
    for value, op in ((start, ">="), (end, "<")):
        if value:
            clauses.append(f"ts {op} CAST({sql_string(str(value)) if literal else '?'} AS TIMESTAMPTZ)")
            if not literal:
                params.append(value)
    return (" AND ".join(clauses) or "TRUE"), params


def trace_from_requests(con: duckdb.DuckDBPyConnection, cache_key: str = "path", *, start: str | None = None,
                        end: str | None = None, cacheable_only: bool = True) -> Trace:
    """The trace of ``requests`` keyed by ``cache_key`` (path, path_query or route), in time order.

    ``cacheable_only`` keeps GET/HEAD requests with status 200-399 (what a shared cache may store)."""
    if cache_key not in CACHE_KEYS:
        raise ValueError(f"cache_key must be one of {', '.join(CACHE_KEYS)}, got {cache_key!r}")
    where, params = requests_filter(start, end, cacheable_only)
    expr = CACHE_KEYS[cache_key]
    df = con.execute(
        f"SELECT epoch(ts) AS t, hash({expr}) AS id, coalesce(bytes_sent, 0) AS sz FROM requests "
        f"WHERE {where} AND {expr} IS NOT NULL ORDER BY ts", params).fetch_df()
    ids = df["id"].to_numpy(np.uint64)
    return Trace(f"requests:{cache_key}", ids, normalize_sizes(ids, df["sz"].to_numpy(np.int64)),
                 df["t"].to_numpy(np.float64), cache_key,
                 f"requests WHERE {where} (params {params})")


def trace_from_cache_requests(con: duckdb.DuckDBPyConnection, trace: str | None = None) -> Trace:
    """A trace loaded into ``cache_requests`` (the only one, or the one named ``trace``), in seq order."""
    names = [r[0] for r in con.execute("SELECT DISTINCT trace FROM cache_requests ORDER BY 1").fetchall()]
    if not names:
        raise DataError("the warehouse has no cache_requests: load one with `perfkit ingest trace`")
    if trace is None:
        if len(names) > 1:
            raise DataError(f"the warehouse holds several traces ({', '.join(names)}): name one")
        trace = names[0]
    if trace not in names:
        raise DataError(f"no trace {trace!r} in cache_requests (have: {', '.join(names)})")
    df = con.execute(
        "SELECT epoch(ts) AS t, obj_id AS id, coalesce(size_bytes, 1) AS sz FROM cache_requests "
        "WHERE trace = ? AND coalesce(op, 'get') IN ('get', 'read', 'GET') ORDER BY source_id, seq",
        [trace]).fetch_df()
    t = df["t"].to_numpy(np.float64)
    ids = df["id"].to_numpy(np.uint64)
    return Trace(trace, ids, normalize_sizes(ids, df["sz"].to_numpy(np.int64)),
                 None if np.isnan(t).all() else t, "obj_id", f"cache_requests WHERE trace = {trace!r}")


def write_oracle_general(trace: Trace, path: str | Path) -> Path:
    """Write the trace as a libCacheSim oracleGeneral binary (24-byte records with 1-based next access,
    -1 when never again), so libcachesim's C reader replays it."""
    n = len(trace)
    rec = np.empty(n, ORACLE_DTYPE)
    t = np.zeros(n) if trace.time_s is None else np.nan_to_num(trace.time_s)
    if n and (t.min() < 0 or t.max() >= 2**32):
        t = t - t.min()     # keep absolute seconds when they fit the uint32 field, else make them relative
    rec["clock_time"] = np.clip(np.nan_to_num(t), 0, 2**32 - 1).astype(np.uint32)
    rec["obj_id"] = trace.obj_id
    rec["obj_size"] = np.clip(trace.size_bytes, 1, 2**32 - 1).astype(np.uint32)
    rec["next_access_vtime"] = next_access(trace.obj_id)
    out = Path(path)
    rec.tofile(out)
    return out


@nb.njit(cache=True)
def _next_access_kernel(codes: np.ndarray, n_obj: int) -> np.ndarray:
    n = codes.shape[0]
    nxt = np.full(n, -1, np.int64)
    seen = np.full(n_obj, -1, np.int64)
    for i in range(n - 1, -1, -1):
        o = codes[i]
        if seen[o] >= 0:
            nxt[i] = seen[o] + 1
        seen[o] = i
    return nxt


def next_access(obj_id: np.ndarray) -> np.ndarray:
    """Per request, the 1-based index of the object's next request (-1 if none), as oracleGeneral stores."""
    codes, uniq = pd.factorize(obj_id)
    return _next_access_kernel(codes.astype(np.int64), len(uniq))


@nb.njit(cache=True)
def _prev_access_kernel(codes: np.ndarray, n_obj: int) -> np.ndarray:
    n = codes.shape[0]
    prev = np.full(n, -1, np.int64)
    seen = np.full(n_obj, -1, np.int64)
    for i in range(n):
        o = codes[i]
        prev[i] = seen[o]
        seen[o] = i
    return prev


# --------------------------------------------------------------------------------------------- stats
@dataclass(frozen=True)
class TraceStats:
    """What a trace looks like to a cache."""

    name: str
    key: str
    source: str
    requests: int
    unique_objects: int
    total_bytes: int              # bytes requested
    unique_bytes: int             # footprint: each object once, at its size
    one_hit_wonders: int          # objects requested exactly once
    one_hit_wonder_ratio: float   # of unique objects
    max_object_bytes: int
    mean_object_bytes: float
    zipf_alpha: float | None      # slope of log(frequency) vs log(rank), fitted over the top ranks
    zipf_r2: float | None
    top_objects_share: dict[str, float]   # share of requests to the top 1%, 10% of objects
    reuse_time_s_quantiles: dict[str, float] | None   # p50, p90, p99 of time between reuses
    reuse_distance_quantiles: dict[str, float]        # p50, p90, p99 of LRU stack distance of reuses
    reuse_ratio: float            # share of requests that are reuses (infinite-cache hit ratio)
    duration_s: float | None
    working_set: list[dict[str, float]]   # per time bucket: start_s, requests, unique objects, unique bytes
    # rank-frequency curve at up to 64 log-spaced ranks: rank (1 = most requested), requests to that object
    rank_frequency: list[dict[str, int]] = field(default_factory=list)
    # < 1: estimated from a spatial sample of keys at this rate (counts, bytes and ranks scaled by 1/rate;
    # ratios, shares, quantiles and per-object frequencies as measured on the sample)
    sample_rate: float = 1.0


ZIPF_RANKS = 1000  # the Zipf exponent is fitted over the most requested ranks


def trace_stats(trace: Trace, *, buckets: int = 24, zipf_ranks: int = ZIPF_RANKS,
                object_curve: MissRatioCurve | None = None, total_requests: int | None = None,
                total_bytes: int | None = None) -> TraceStats:
    """Statistics of a trace (vectorized). Reuse distances come from ``object_curve`` (the trace's exact
    LRU curve by object count, or a SHARDS curve scaled to the full population) when given, else from one
    stack-distance pass. On a spatial sample (``trace.sample_rate`` R < 1) the statistics describe the full
    population: counts, bytes and ranks scaled by 1/R, requests and requested bytes ``total_requests`` and
    ``total_bytes`` when known (else also scaled)."""
    n = len(trace)
    if n == 0:
        raise ValueError(f"trace {trace.name!r} is empty")
    codes, uniq = pd.factorize(trace.obj_id)
    codes = codes.astype(np.int64)
    u = len(uniq)
    counts = np.bincount(codes, minlength=u)
    obj_size = np.zeros(u, np.int64)
    obj_size[codes] = trace.size_bytes   # sizes are per object (normalized)
    freq = np.sort(counts)[::-1]
    ranks = np.arange(1, len(freq) + 1)
    top = min(zipf_ranks, len(freq))
    alpha = r2 = None
    if top >= 10:
        x, y = np.log(ranks[:top]), np.log(freq[:top])
        slope, icpt = np.polyfit(x, y, 1)
        pred = slope * x + icpt
        ss = float(((y - y.mean()) ** 2).sum())
        alpha, r2 = float(-slope), (1.0 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else None)
    cum = np.cumsum(freq) / n
    share = {f"top_{p}pct": float(cum[max(1, int(np.ceil(u * p / 100))) - 1]) for p in (1, 10)}
    prev = _prev_access_kernel(codes, u)
    reuse = prev >= 0
    q = (50, 90, 99)
    rt = None
    duration = None
    ws: list[dict[str, float]] = []
    if trace.time_s is not None and not np.isnan(trace.time_s).all():
        t = trace.time_s
        if reuse.any():
            gaps = t[reuse] - t[prev[reuse]]
            rt = {f"p{p}": float(v) for p, v in zip(q, np.percentile(gaps, q), strict=True)}
        duration = float(np.nanmax(t) - np.nanmin(t))
        edges = np.linspace(np.nanmin(t), np.nanmax(t) + 1e-9, buckets + 1)
        b = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, buckets - 1)
    else:
        edges = np.linspace(0, n, buckets + 1)
        b = np.minimum((np.arange(n) * buckets) // n, buckets - 1)
    # the distinct (bucket, object) pairs as one sorted integer each: a few bytes a request, where a frame's
    # drop_duplicates hashed two columns (most of this function's ~20 GB peak at 100M requests)
    pairs = np.unique(b.astype(np.int64) * u + codes)
    pair_bucket, pair_object = np.divmod(pairs, u)
    uo = np.bincount(pair_bucket, minlength=buckets)
    ub = np.bincount(pair_bucket, weights=obj_size[pair_object], minlength=buckets)
    nreq = np.bincount(b, minlength=buckets)
    ws = [{"start_s": float(edges[i]), "requests": int(nreq[i]), "unique_objects": int(uo[i]),
           "unique_bytes": float(ub[i])} for i in range(buckets)]
    n_reuse = int(reuse.sum())
    if object_curve is not None and n_reuse:
        # share of reuses with distance <= c is hits(c) / reuses; hits(c) = n * (1 - miss(c)); on a sample the
        # curve (of the full population) says itself how many reuses there are: its hits at infinite size
        frac = (n * (1.0 - object_curve.miss_ratio) / n_reuse if trace.sample_rate >= 1.0 else
                (1.0 - object_curve.miss_ratio) / max(1.0 - float(object_curve.miss_ratio[-1]), 1e-12))
        rdq = {f"p{p}": float(object_curve.capacity[min(int(np.searchsorted(frac, p / 100 - 1e-12)),
                                                            len(frac) - 1)]) for p in q}
    else:
        dist = object_stack_distances(trace.obj_id)
        rd = dist[dist > 0]
        rdq = ({f"p{p}": float(np.percentile(rd, p, method="inverted_cdf")) for p in q} if len(rd)
               else {f"p{p}": 0.0 for p in q})
    ohw = int((counts == 1).sum())
    rf = np.unique(np.geomspace(1, u, 64).round().astype(np.int64))
    rate = trace.sample_rate
    if rate >= 1.0:
        return TraceStats(trace.name, trace.key, trace.source, n, u, int(trace.size_bytes.sum()),
                          int(obj_size.sum()), ohw, ohw / u, int(obj_size.max()), float(obj_size.mean()),
                          alpha, r2, share, rt, rdq, float(reuse.mean()), duration, ws,
                          [{"rank": int(r), "requests": int(freq[r - 1])} for r in rf])

    def up(x: float) -> int:
        return int(round(x / rate))

    ws = [{"start_s": w["start_s"], "requests": up(w["requests"]), "unique_objects": up(w["unique_objects"]),
           "unique_bytes": float(w["unique_bytes"] / rate)} for w in ws]
    requests = up(n) if total_requests is None else total_requests
    # reuses are the requests that are not an object's first: from the scaled objects and the exact requests
    # (objects vary less from key to key than requests do under Zipf popularity)
    return TraceStats(trace.name, trace.key, trace.source, requests,
                      up(u), up(trace.size_bytes.sum()) if total_bytes is None else total_bytes,
                      up(obj_size.sum()), up(ohw), ohw / u, int(obj_size.max()), float(obj_size.mean()),
                      alpha, r2, share, rt, rdq, max(0.0, 1.0 - up(u) / requests), duration, ws,
                      [{"rank": max(1, up(r)), "requests": int(freq[r - 1])} for r in rf], rate)


def zipf_trace(n: int, n_objects: int, alpha: float = 0.9, *, seed: int = 0,
               size_bytes: tuple[int, int] | None = None, with_time: bool = True) -> Trace:
    """A synthetic trace: ``n`` requests over ``n_objects`` objects with Zipf(``alpha``) popularity
    (object ids are shuffled ranks); sizes uniform in ``size_bytes`` (per object) or 1; one request per
    millisecond when ``with_time``. Generated in chunks (memory: the id array and one chunk)."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, n_objects + 1, dtype=np.float64)
    cdf = np.cumsum(ranks ** -alpha)
    cdf /= cdf[-1]
    perm = rng.permutation(n_objects).astype(np.uint64) + np.uint64(1)
    obj_sizes = None if size_bytes is None else rng.integers(size_bytes[0], size_bytes[1] + 1, n_objects)
    ids = np.empty(n, np.uint64)
    sizes = np.empty(n, np.int64) if obj_sizes is not None else np.broadcast_to(np.int64(1), (n,))
    chunk = 1 << 21
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        idx = np.minimum(np.searchsorted(cdf, rng.random(hi - lo), side="right"), n_objects - 1)
        ids[lo:hi] = perm[idx]
        if obj_sizes is not None:
            sizes[lo:hi] = obj_sizes[idx]
    return Trace(f"zipf{alpha}-{n}x{n_objects}", ids, sizes,
                 np.arange(n, dtype=np.float64) / 1000.0 if with_time else None,
                 "synthetic", f"zipf_trace(n={n}, n_objects={n_objects}, alpha={alpha}, seed={seed})")
