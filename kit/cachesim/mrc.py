"""Miss-ratio curves: the exact one-pass LRU curve (Mattson stack distances over a Fenwick tree) and
SHARDS (spatially hashed sampling, fixed-rate and fixed-size, with the adjusted correction).

Semantics match libcachesim's LRU: a request hits a cache of ``C`` objects when its stack distance
(distinct objects touched since its previous access, itself included) is ``<= C``; it hits a cache
of ``B`` bytes when the bytes of those objects plus its own size are ``<= B``. The byte curve is exact
for capacities at or above the largest object (libcachesim does not admit an object larger than the
cache, which an ideal LRU stack cannot express below that size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import pandas as pd

_HASH_BITS = 24
_HASH_MOD = 1 << _HASH_BITS


# --------------------------------------------------------------------------------------------- kernels
@nb.njit(cache=True, nogil=True, inline="always")
def _fenwick_sum(tree, btree, k, with_bytes):
    """(objects, bytes) marked at 1-based positions 1..k of the two Fenwick trees (bytes 0 unless
    ``with_bytes``)."""
    count = 0
    size = 0
    while k > 0:
        count += tree[k]
        if with_bytes:
            size += btree[k]
        k -= k & (-k)
    return count, size


@nb.njit(cache=True, nogil=True, inline="always")
def _fenwick_add(tree, btree, k, n, count, size, with_bytes):
    """Add ``count`` objects (and, ``with_bytes``, ``size`` bytes) at 1-based position ``k`` of the two
    Fenwick trees of ``n`` positions."""
    while k <= n:
        tree[k] += count
        if with_bytes:
            btree[k] += size
        k += k & (-k)


@nb.njit(cache=True, nogil=True)
def _compact(tree, btree, owner, psize, last, m_cap, want_bytes):
    """Renumber live positions 0..k-1 in access order and rebuild the Fenwick trees in O(M)."""
    k = 0
    for pos in range(m_cap):
        o = owner[pos]
        if o >= 0 and last[o] == pos:
            owner[k] = o
            psize[k] = psize[pos]
            last[o] = k
            k += 1
    for pos in range(k, m_cap):
        owner[pos] = -1
    for j in range(m_cap + 1):
        tree[j] = 0
        if want_bytes:
            btree[j] = 0
    for j in range(1, k + 1):
        tree[j] = 1
        if want_bytes:
            btree[j] = psize[j - 1]
    for j in range(1, m_cap + 1):
        parent = j + (j & (-j))
        if parent <= m_cap:
            tree[parent] += tree[j]
            if want_bytes:
                btree[parent] += btree[j]
    return k


@nb.njit(cache=True, nogil=True)
def _stack_distances(codes: np.ndarray, sizes: np.ndarray, n_obj: int, want_bytes: bool, window: int):
    """One pass: per-distance request counts/bytes, and (optionally) per-request byte distances.

    Returns (hist_req[d], hist_bytes[d]) for object stack distance d (index 0 = cold miss) and
    byte_dist[i] (-1 for a cold miss) when ``want_bytes``. Positions live in a window of
    ``window`` slots (at least objects + 1) that is compacted when full, so the trees stay cache-sized."""
    n = codes.shape[0]
    m_cap = max(min(n, window), n_obj + 1)
    tree = np.zeros(m_cap + 1, np.int32)
    btree = np.zeros(m_cap + 1 if want_bytes else 1, np.int64)
    owner = np.full(m_cap, -1, np.int64)
    psize = np.zeros(m_cap, np.int64)
    last = np.full(n_obj, -1, np.int64)
    hist_req = np.zeros(n_obj + 1, np.int64)
    hist_bytes = np.zeros(n_obj + 1, np.int64)
    byte_dist = np.full(n if want_bytes else 0, -1, np.int64)
    live = 0
    live_bytes = 0
    cur = 0
    for i in range(n):
        if cur == m_cap:
            cur = _compact(tree, btree, owner, psize, last, m_cap, want_bytes)
        o = codes[i]
        s = sizes[i]
        p = last[o]
        if p < 0:
            hist_req[0] += 1
            hist_bytes[0] += s
            live += 1
        else:
            # marks at positions <= p (p itself included) -> objects touched after p = live - that
            acc, bacc = _fenwick_sum(tree, btree, p + 1, want_bytes)
            d = live - acc + 1
            hist_req[d] += 1
            hist_bytes[d] += s
            old = psize[p]
            _fenwick_add(tree, btree, p + 1, m_cap, -1, -old, want_bytes)
            if want_bytes:
                byte_dist[i] = live_bytes - bacc + s
                live_bytes -= old
        _fenwick_add(tree, btree, cur + 1, m_cap, 1, s, want_bytes)
        if want_bytes:
            live_bytes += s
        owner[cur] = o
        psize[cur] = s
        last[o] = cur
        cur += 1
    return hist_req, hist_bytes, byte_dist


@nb.njit(cache=True, nogil=True)
def _splitmix(x: np.uint64, seed: np.uint64) -> np.uint64:
    z = x ^ (seed * np.uint64(0x9E3779B97F4A7C15))
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True, nogil=True)
def _shards_select(obj_id: np.ndarray, seed: int, threshold: int) -> np.ndarray:
    """Indices of requests whose key hash (mod 2^24) is below ``threshold`` (fixed-rate sampling)."""
    n = obj_id.shape[0]
    out = np.empty(n, np.int64)
    m = 0
    sd = np.uint64(seed)
    mask = np.uint64(_HASH_MOD - 1)
    t = np.uint64(threshold)
    for i in range(n):
        if (_splitmix(obj_id[i], sd) & mask) < t:
            out[m] = i
            m += 1
    return out[:m]


@nb.njit(cache=True, nogil=True)
def _hashes(obj_id: np.ndarray, seed: int) -> np.ndarray:
    n = obj_id.shape[0]
    out = np.empty(n, np.int64)
    sd = np.uint64(seed)
    mask = np.uint64(_HASH_MOD - 1)
    for i in range(n):
        out[i] = np.int64(_splitmix(obj_id[i], sd) & mask)
    return out


@nb.njit(cache=True, nogil=True)
def _heap_push(heap_h, heap_o, n, h, o):
    i = n
    heap_h[i] = h
    heap_o[i] = o
    while i > 0:
        parent = (i - 1) // 2
        if heap_h[parent] >= heap_h[i]:
            break
        heap_h[parent], heap_h[i] = heap_h[i], heap_h[parent]
        heap_o[parent], heap_o[i] = heap_o[i], heap_o[parent]
        i = parent
    return n + 1


@nb.njit(cache=True, nogil=True)
def _heap_pop(heap_h, heap_o, n):
    n -= 1
    heap_h[0] = heap_h[n]
    heap_o[0] = heap_o[n]
    i = 0
    while True:
        left = 2 * i + 1
        right = left + 1
        big = i
        if left < n and heap_h[left] > heap_h[big]:
            big = left
        if right < n and heap_h[right] > heap_h[big]:
            big = right
        if big == i:
            break
        heap_h[big], heap_h[i] = heap_h[i], heap_h[big]
        heap_o[big], heap_o[i] = heap_o[i], heap_o[big]
        i = big
    return n


@nb.njit(cache=True, nogil=True)
def _shards_fixed_size(codes: np.ndarray, hashes: np.ndarray, sizes: np.ndarray, n_obj: int, s_max: int):
    """Fixed-size SHARDS: keep at most ``s_max`` sampled objects, lowering the threshold by evicting the
    largest hash. Returns per sampled request: object code, stack distance (0 = cold), byte distance,
    size, and the sampling threshold in force when it was recorded; plus the final threshold."""
    n = codes.shape[0]
    tree = np.zeros(n + 1, np.int32)
    btree = np.zeros(n + 1, np.int64)
    last = np.full(n_obj, -1, np.int64)       # position (in sampled-request space) of last access
    last_size = np.zeros(n_obj, np.int64)
    heap_h = np.empty(s_max + 1, np.int64)
    heap_o = np.empty(s_max + 1, np.int64)
    hn = 0
    thr = np.int64(_HASH_MOD)
    out_o = np.empty(n, np.int64)
    out_d = np.empty(n, np.int64)
    out_b = np.empty(n, np.int64)
    out_s = np.empty(n, np.int64)
    out_t = np.empty(n, np.int64)
    m = 0
    live = 0
    live_bytes = 0
    for i in range(n):
        h = hashes[i]
        if h >= thr:
            continue
        o = codes[i]
        s = sizes[i]
        p = last[o]
        if p < 0:
            d = 0
            bd = -1
            live += 1
            hn = _heap_push(heap_h, heap_o, hn, h, o)
        else:
            acc, bacc = _fenwick_sum(tree, btree, p + 1, True)
            d = live - acc + 1
            bd = live_bytes - bacc + s
            old = last_size[o]
            _fenwick_add(tree, btree, p + 1, n, -1, -old, True)
            live_bytes -= old
        _fenwick_add(tree, btree, m + 1, n, 1, s, True)
        live_bytes += s
        last[o] = m
        last_size[o] = s
        out_o[m] = o
        out_d[m] = d
        out_b[m] = bd
        out_s[m] = s
        out_t[m] = thr
        m += 1
        while hn > s_max:
            # the largest sampled hash becomes the threshold; every object at or above it leaves the
            # sample (same-hash objects share fate)
            thr = heap_h[0]
            while hn > 0 and heap_h[0] >= thr:
                victim = heap_o[0]
                hn = _heap_pop(heap_h, heap_o, hn)
                old = last_size[victim]
                _fenwick_add(tree, btree, last[victim] + 1, n, -1, -old, True)
                live -= 1
                live_bytes -= old
                last[victim] = -1
    return out_o[:m], out_d[:m], out_b[:m], out_s[:m], out_t[:m], thr


@nb.njit(cache=True, nogil=True)
def _object_miss_grid(obj: np.ndarray, dist: np.ndarray, n_obj: int, grid: np.ndarray) -> np.ndarray:
    """misses[o, j]: requests of object o that miss at grid capacity grid[j] (dist <= 0 = cold)."""
    k = grid.shape[0]
    out = np.zeros((n_obj, k), np.int64)
    for i in range(obj.shape[0]):
        d = dist[i]
        o = obj[i]
        if d <= 0:
            for j in range(k):
                out[o, j] += 1
        else:
            for j in range(k):
                if grid[j] < d:
                    out[o, j] += 1
                else:
                    break
    return out


# --------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class MissRatioCurve:
    """A miss-ratio curve: per capacity (objects or bytes), object and byte miss ratios (0..1)."""

    unit: str                       # "objects" or "bytes"
    capacity: np.ndarray            # ascending capacities (objects or bytes)
    miss_ratio: np.ndarray          # share of requests that miss
    byte_miss_ratio: np.ndarray     # share of requested bytes that miss
    method: str = "exact"           # exact | shards-fixed-rate | shards-fixed-size
    sample_rate: float = 1.0
    error_estimate: np.ndarray | None = None   # absolute error band on miss_ratio (SHARDS)
    requests: int = 0
    sampled_requests: int = 0
    exact_from_capacity: float = 0.0  # below this capacity the curve may differ from a real cache

    def at(self, capacity: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Object and byte miss ratios at the given capacities (step function, exact between points)."""
        cap = np.atleast_1d(np.asarray(capacity, dtype=np.float64))
        if len(self.capacity) == 0:      # no reuse at all: everything misses
            return np.ones(len(cap)), np.ones(len(cap))
        idx = np.searchsorted(self.capacity, cap, side="right") - 1
        mr = np.where(idx >= 0, self.miss_ratio[np.clip(idx, 0, None)], 1.0)
        bmr = np.where(idx >= 0, self.byte_miss_ratio[np.clip(idx, 0, None)], 1.0)
        return mr, bmr

    def downsample(self, points: int = 200) -> MissRatioCurve:
        """The curve at ``points`` log-spaced capacities (for JSON and charts)."""
        if len(self.capacity) <= points:
            return self
        lo, hi = max(float(self.capacity[0]), 1.0), float(self.capacity[-1])
        grid = np.unique(np.concatenate([np.geomspace(lo, hi, points - 1), [hi]]))
        if self.unit == "objects":
            grid = np.unique(np.round(grid))
        mr, bmr = self.at(grid)
        err = None
        if self.error_estimate is not None:
            idx = np.clip(np.searchsorted(self.capacity, grid, side="right") - 1, 0, None)
            err = self.error_estimate[idx]
        return MissRatioCurve(self.unit, grid, mr, bmr, self.method, self.sample_rate, err,
                              self.requests, self.sampled_requests, self.exact_from_capacity)


@dataclass(frozen=True)
class ExactLru:
    """Both exact LRU curves of one trace (by object count and, if computed, by bytes)."""

    objects: MissRatioCurve
    bytes: MissRatioCurve | None
    requests: int
    unique_objects: int
    total_bytes: int
    seconds: float


def _factorize(obj_id: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense 0-based object codes (int32 when they fit: half the memory on long traces)."""
    codes, uniques = pd.factorize(obj_id, sort=False)
    n_obj = len(uniques)
    del uniques
    return codes.astype(np.int32 if n_obj < 2**31 - 1 else np.int64), n_obj


def _object_curve(hist_req: np.ndarray, hist_bytes: np.ndarray, n: int, total_bytes: int,
                  method: str = "exact", rate: float = 1.0) -> MissRatioCurve:
    # capacity c (objects) hits every reuse with distance <= c
    hits = np.cumsum(hist_req[1:])
    hit_bytes = np.cumsum(hist_bytes[1:])
    cap = np.arange(1, len(hist_req), dtype=np.float64)
    return MissRatioCurve("objects", cap, 1.0 - hits / max(n, 1), 1.0 - hit_bytes / max(total_bytes, 1),
                          method, rate, None, n, n)


def _byte_curve(byte_dist: np.ndarray, sizes: np.ndarray, n: int, total_bytes: float,
                method: str = "exact", rate: float = 1.0, weight: np.ndarray | None = None,
                denom_req: float | None = None, denom_bytes: float | None = None) -> MissRatioCurve:
    reuse = byte_dist >= 0
    bd = byte_dist[reuse]
    sz = sizes[reuse].astype(np.float64)
    w = np.ones(len(bd)) if weight is None else weight[reuse]
    order = np.argsort(bd)
    bd, sz, w = bd[order], sz[order], w[order]
    last = np.r_[np.flatnonzero(bd[1:] != bd[:-1]), len(bd) - 1] if len(bd) else np.zeros(0, np.int64)
    cap = bd[last]
    hits = np.cumsum(w)[last] if len(bd) else np.zeros(0)
    hit_bytes = np.cumsum(w * sz)[last] if len(bd) else np.zeros(0)
    dr = float(n if denom_req is None else denom_req)
    db = float(total_bytes if denom_bytes is None else denom_bytes)
    return MissRatioCurve("bytes", cap.astype(np.float64), 1.0 - hits / max(dr, 1e-12),
                          1.0 - hit_bytes / max(db, 1e-12), method, rate, None, n, len(byte_dist),
                          float(sizes.max()) if len(sizes) else 0.0)


def exact_lru(obj_id: np.ndarray, size_bytes: np.ndarray | None = None, *, bytes_curve: bool = True,
              window: int | None = None) -> ExactLru:
    """Exact LRU miss-ratio curves of a trace in one pass (O(n log n)).

    ``obj_id`` any integer ids (one per request); ``size_bytes`` per request (default 1); ``window``
    position slots of the Fenwick trees (default 4 x objects; smaller only to test compaction)."""
    import time

    t0 = time.perf_counter()
    obj_id = np.ascontiguousarray(obj_id)
    n = len(obj_id)
    # without sizes every request weighs one byte; a broadcast view costs no memory
    sizes = (np.broadcast_to(np.int64(1), (n,)) if size_bytes is None
             else np.ascontiguousarray(size_bytes, dtype=np.int64))
    codes, n_obj = _factorize(obj_id)
    want_bytes = bool(bytes_curve and size_bytes is not None)
    window = max(4 * n_obj, 65536) if window is None else window
    hist_req, hist_bytes, byte_dist = _stack_distances(codes, sizes, n_obj, want_bytes, int(window))
    total_bytes = int(sizes.sum())
    objects = _object_curve(hist_req, hist_bytes, n, total_bytes)
    byte_curve = _byte_curve(byte_dist, sizes, n, total_bytes) if want_bytes else None
    return ExactLru(objects, byte_curve, n, n_obj, total_bytes, time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------- SHARDS
@dataclass(frozen=True)
class ShardsResult:
    """A SHARDS estimate: the adjusted curves, the rate used and the error estimate."""

    objects: MissRatioCurve
    bytes: MissRatioCurve | None
    variant: str          # fixed-rate | fixed-size
    sample_rate: float    # final rate R
    seed: int
    sampled_requests: int
    sampled_objects: int       # objects in the final sample set
    max_error_estimate: float   # max of the objects-curve error band over capacities >= 100/R
    seconds: float


def _error_band(obj: np.ndarray, dist_scaled: np.ndarray, n_obj: int, grid: np.ndarray, weight: np.ndarray,
                rate: float, n: int, curve: MissRatioCurve) -> np.ndarray:
    """Absolute error estimate of the adjusted miss ratio at ``grid`` capacities.

    Two terms: the sampling variance of a Horvitz-Thompson estimate over sampled objects (3 standard
    errors, from each sampled object's misses at each size), and the curve's change over the relative
    uncertainty 1/sqrt(c*R) of a scaled stack distance at capacity c."""
    d = np.where(dist_scaled > 0, np.ceil(dist_scaled), 0).astype(np.int64)
    # object-level misses at each grid size, weighted by the fixed-size rescaling where it applies
    misses = _object_miss_grid(obj, d, n_obj, grid.astype(np.int64))
    if not np.allclose(weight, 1.0):
        # approximate: weight each object's misses by its mean weight
        wsum = np.bincount(obj, weights=weight, minlength=n_obj)
        cnt = np.bincount(obj, minlength=n_obj)
        misses = misses * (wsum / np.maximum(cnt, 1))[:, None]
    var = (1.0 - rate) / (rate * rate) * np.sum(misses.astype(np.float64) ** 2, axis=0) / float(n) ** 2
    se = np.sqrt(var)
    delta = 1.0 / np.sqrt(np.maximum(grid * rate, 1.0))
    lo, _ = curve.at(grid / (1.0 + 2 * delta))
    hi, _ = curve.at(grid * (1.0 + 2 * delta))
    return 3.0 * se + np.abs(lo - hi) / 2.0


def shards(obj_id: np.ndarray, size_bytes: np.ndarray | None = None, *, rate: float | None = 0.01,
           s_max: int | None = None, seed: int = 0, bytes_curve: bool = True, error_points: int = 64,
           presampled_rate: float = 1.0, total_requests: int | None = None,
           total_bytes: float | None = None) -> ShardsResult:
    """SHARDS miss-ratio curve with the adjusted correction.

    Fixed-rate with ``rate`` (sample keys whose hash mod 2^24 < rate*2^24); fixed-size with ``s_max``
    (at most that many sampled objects; the rate falls as needed). Capacities are scaled by 1/R.

    ``presampled_rate`` < 1: the input is already a spatial sample of a population at that rate (every
    request of the keys kept, e.g. by the engine); the final rate R is the product of both rates and the
    curves describe the population of ``total_requests`` requests and ``total_bytes`` bytes (default:
    the input's, scaled by 1/presampled_rate), which the adjusted correction uses."""
    import time

    t0 = time.perf_counter()
    obj_id = np.ascontiguousarray(obj_id).astype(np.uint64, copy=False)
    sizes_all = (np.broadcast_to(np.int64(1), (len(obj_id),)) if size_bytes is None
                 else np.ascontiguousarray(size_bytes, dtype=np.int64))
    n = int(round(len(obj_id) / presampled_rate)) if total_requests is None else int(total_requests)
    if size_bytes is None:   # objects of 1 byte: the bytes are the requests
        total_bytes = n
    elif total_bytes is None:
        total_bytes = int(sizes_all.sum()) if presampled_rate >= 1.0 else float(sizes_all.sum()) / presampled_rate
    want_bytes = bool(bytes_curve and size_bytes is not None)
    if s_max is None:
        if rate is None or not 0 < rate <= 1:
            raise ValueError(f"SHARDS sample rate must be in (0, 1], got {rate}")
        threshold = max(1, int(round(rate * _HASH_MOD)))
        r = threshold / _HASH_MOD
        idx = _shards_select(obj_id, seed, threshold)
        codes, n_obj = _factorize(obj_id[idx])
        sizes = sizes_all[idx]
        byte_dist = _stack_distances(codes, sizes, n_obj, want_bytes, max(4 * n_obj, 65536))[2]
        ns = len(idx)
        dist = _per_request_distance(codes, n_obj)
        weight = np.ones(ns)
        variant = "shards-fixed-rate"
        final_objects = n_obj
    else:
        codes_all, n_obj_all = _factorize(obj_id)
        hashes = _hashes(obj_id, seed)
        o, dist, byte_dist, sizes, thr, final_thr = _shards_fixed_size(codes_all, hashes, sizes_all, n_obj_all,
                                                                     int(s_max))
        r = float(final_thr) / _HASH_MOD
        weight = float(final_thr) / thr.astype(np.float64)   # rescale counts recorded at higher rates
        codes, n_obj = _factorize(o)
        ns = len(o)
        variant = "shards-fixed-size"
        final_objects = int(len(np.unique(codes_all[hashes < final_thr])))
    if presampled_rate < 1.0:
        r *= presampled_rate
        variant += " (sampled in the engine)"
    # scaled distances; cold misses have distance 0 here
    rec_rate = r / weight
    dist_scaled = np.where(dist > 0, dist / rec_rate, 0.0)
    expected = n * r
    # adjusted correction: miss(c) = weighted sampled misses at c / (N R)
    reuse = dist > 0
    order = np.argsort(dist_scaled[reuse], kind="stable")
    ds = dist_scaled[reuse][order]
    w = weight[reuse][order]
    wb = (weight * sizes)[reuse][order]
    cold_w = float(weight[~reuse].sum())
    cold_b = float((weight * sizes)[~reuse].sum())
    sampled_w = float(weight.sum())
    hits = np.cumsum(w)
    hit_b = np.cumsum(wb)
    cap, first = np.unique(np.ceil(ds), return_index=True)
    lastix = np.r_[first[1:], len(ds)] - 1
    # requests the adjustment adds/removes as hits at the smallest distance: expected - sampled
    adj = expected - sampled_w
    adj_b = total_bytes * r - float((weight * sizes).sum())
    mr = 1.0 - (hits[lastix] + adj) / expected if len(ds) else np.zeros(0)
    bmr = 1.0 - (hit_b[lastix] + adj_b) / (total_bytes * r) if len(ds) else np.zeros(0)
    del cold_w, cold_b
    objects = MissRatioCurve("objects", cap, np.clip(mr, 0.0, 1.0), np.clip(bmr, 0.0, 1.0), variant, r,
                             None, n, ns)
    lo = 100.0 / r
    hi = max(float(cap[-1]) if len(cap) else lo, lo)
    grid = np.geomspace(max(1.0, min(lo, hi) / 10), hi, error_points)
    band = _error_band(codes, dist_scaled, n_obj, grid, weight, r, n, objects)
    idx = np.clip(np.searchsorted(grid, cap, side="left"), 0, len(grid) - 1)
    objects = MissRatioCurve("objects", cap, objects.miss_ratio, objects.byte_miss_ratio, variant, r,
                             band[idx], n, ns)
    byte_c = None
    if want_bytes:
        bscaled = np.where(byte_dist >= 0, byte_dist / rec_rate, -1.0)
        byte_c = _byte_curve(np.ceil(bscaled).astype(np.int64), sizes, n, total_bytes, variant, r,
                             weight=weight, denom_req=expected, denom_bytes=total_bytes * r)
        # the adjustment: expected - sampled requests count as hits at the smallest size
        byte_c = MissRatioCurve("bytes", byte_c.capacity,
                                np.clip(byte_c.miss_ratio - adj / expected, 0, 1),
                                np.clip(byte_c.byte_miss_ratio - adj_b / (total_bytes * r), 0, 1),
                                variant, r, None, n, ns, float(sizes_all.max()) if len(sizes_all) else 0.0)
    sel = grid >= lo
    max_err = float(band[sel].max()) if sel.any() else float(band.max())
    return ShardsResult(objects, byte_c, variant, r, seed, ns, final_objects, max_err, time.perf_counter() - t0)


@nb.njit(cache=True, nogil=True)
def _per_request_distance_kernel(codes: np.ndarray, n_obj: int) -> np.ndarray:
    n = codes.shape[0]
    tree = np.zeros(n + 1, np.int32)
    no_bytes = np.zeros(1, np.int64)
    last = np.full(n_obj, -1, np.int64)
    out = np.zeros(n, np.int64)
    live = 0
    for i in range(n):
        o = codes[i]
        p = last[o]
        if p < 0:
            live += 1
        else:
            acc, _ = _fenwick_sum(tree, no_bytes, p + 1, False)
            out[i] = live - acc + 1
            _fenwick_add(tree, no_bytes, p + 1, n, -1, 0, False)
        _fenwick_add(tree, no_bytes, i + 1, n, 1, 0, False)
        last[o] = i
    return out


def _per_request_distance(codes: np.ndarray, n_obj: int) -> np.ndarray:
    """Object stack distance of each request (0 = first access)."""
    return _per_request_distance_kernel(codes, n_obj)


def object_stack_distances(obj_id: np.ndarray) -> np.ndarray:
    """Per-request LRU stack distance (0 for a first access); for reuse-distance statistics."""
    codes, n_obj = _factorize(np.ascontiguousarray(obj_id))
    return _per_request_distance_kernel(codes, n_obj)
