"""Eviction-policy comparison through libcachesim, size-threshold admission, and TTL expiry.

libcachesim replays an oracleGeneral file written from the trace (its C reader, so the replay runs at
C speed). Its reader keeps a raw pointer to its ``ReaderInitParam``: if that Python object is garbage
collected while the reader lives, the process crashes. :class:`Replay` holds both for its lifetime.

TTL: the PyPI build of libcachesim ignores TTLs, so expiry is simulated here (numba): an object
filled at ``t0`` hits until ``t0 + ttl`` seconds (inclusive, libCacheSim's rule), then the next
request is a miss that refills it; expired objects keep their space until evicted or refilled.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np

from kit.cachesim.trace import Trace, write_oracle_general

# kit name -> (libcachesim class name, constructor kwargs, description)
POLICIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "lru": ("LRU", {}, "least recently used"),
    "fifo": ("FIFO", {}, "first in, first out"),
    "clock": ("Clock", {}, "CLOCK (second chance, 1-bit)"),
    "arc": ("ARC", {}, "adaptive replacement cache"),
    "lfu": ("LFU", {}, "least frequently used"),
    "lfuda": ("LFUDA", {}, "LFU with dynamic aging (libcachesim 0.3.5 can hang with tiny object-count caches)"),
    "twoq": ("TwoQ", {}, "2Q; left out at caches under 4x the largest object (libcachesim never admits an "
             "object larger than its A1in queue)"),
    "s3fifo": ("S3FIFO", {}, "S3-FIFO (small, main and ghost FIFO queues); left out at caches under 10x the "
               "largest object (libcachesim never admits an object larger than its small queue)"),
    "sieve": ("Sieve", {}, "SIEVE"),
    "tinylfu": ("WTinyLFU", {}, "W-TinyLFU (window LRU + SLRU main, count-min admission); window 1 % of the "
                "cache, widened to hold the largest object (libcachesim never admits an object larger than "
                "the window); left out where that needs a window over half the cache"),
    "gdsf": ("GDSF", {}, "greedy dual size frequency (size-aware)"),
    "lhd": ("LHD", {}, "least hit density (randomized: runs differ slightly)"),
    "belady": ("Belady", {}, "Belady/OPT: evicts the object used furthest in the future (the bound for "
                          "equal sizes; a reference only when sizes vary)"),
    "beladysize": ("BeladySize", {}, "size-aware Belady (sampled)"),
}


def _lcs() -> Any:
    import libcachesim

    return libcachesim


class Replay:
    """A trace written as oracleGeneral and opened by libcachesim's reader; keeps the reader's
    parameter object referenced for as long as the reader lives. Use as a context manager."""

    def __init__(self, trace: Trace, *, ignore_obj_size: bool = False, directory: str | Path | None = None):
        lcs = _lcs()
        self._tmp = tempfile.TemporaryDirectory(prefix="perfkit-replay-", dir=directory)
        self.path = write_oracle_general(trace, Path(self._tmp.name) / "trace.oracleGeneral.bin")
        self.params = lcs.ReaderInitParam(ignore_obj_size=ignore_obj_size)   # must outlive the reader
        self.reader = lcs.TraceReader(str(self.path), lcs.TraceType.ORACLE_GENERAL_TRACE, self.params)
        self.requests = len(trace)
        self.unique_objects = int(len(np.unique(trace.obj_id))) if len(trace) else 0
        # the largest object in the simulator's unit (every object is 1 with ignore_obj_size)
        self.largest_object = 1 if ignore_obj_size or not len(trace) else int(trace.size_bytes.max())

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the reader, then release its parameters and the temporary file."""
        if getattr(self, "reader", None) is not None:
            # the reader's destructor closes it (calling close() too frees it twice); drop the reader
            # first, its parameters after
            self.reader = None
            self.params = None
            self._tmp.cleanup()

    def hashpower(self) -> int:
        """Hash-table size for libcachesim caches: just above the number of objects (the default,
        2^24 buckets, costs ~0.1 s per cache to allocate)."""
        return max(10, min(26, math.ceil(math.log2(max(self.unique_objects, 2))) + 1))

    def run(self, policy: str, capacity: int, *, admit_below_bytes: int | None = None) -> tuple[float, float]:
        """(object miss ratio, byte miss ratio) of ``policy`` with ``capacity`` (bytes, or objects when
        opened with ``ignore_obj_size``), replaying the whole trace."""
        lcs = _lcs()
        if policy not in POLICIES:
            raise ValueError(f"unknown cache policy {policy!r}; known: {', '.join(POLICIES)}")
        cls_name, kwargs, _ = POLICIES[policy]
        if not admits_largest(policy, capacity, self.largest_object):
            raise ValueError(f"{policy} cannot admit the trace's largest object ({self.largest_object}) at "
                             f"capacity {capacity}: libcachesim would report misses it never simulated")
        if policy == "tinylfu":
            kwargs = {**kwargs, "window_size": tinylfu_window(capacity, self.largest_object)}
        admissioner = None if admit_below_bytes is None else lcs.SizeAdmissioner(int(admit_below_bytes))
        cache = getattr(lcs, cls_name)(int(capacity), hashpower=self.hashpower(), admissioner=admissioner,
                                       **kwargs)
        mr, bmr = cache.process_trace(self.reader)
        return float(mr), float(bmr)


# libcachesim (0.3.5) policies that hold a new object in a sub-queue first and refuse any object larger than
# that queue: the queue's share of the cache (S3-FIFO's small FIFO, 2Q's A1in; W-TinyLFU's window is
# sized per run by tinylfu_window). Found by replaying two alternating objects of f x capacity bytes
# (f = 0.005 ... 0.45): every other policy hits, these miss every request once f exceeds the share.
FIRST_QUEUE_SHARE: dict[str, float] = {"s3fifo": 0.10, "twoq": 0.25}
TINYLFU_WINDOW = 0.01        # W-TinyLFU's window share (Caffeine's and libcachesim's default)
TINYLFU_MAX_WINDOW = 0.5     # beyond this the policy is more window LRU than TinyLFU: left out


LEFT_OUT_NOTE = ("points where a policy would refuse objects that LRU of the same size admits are left out, not "
                 "shown as misses: W-TinyLFU where its window would need over half the cache to hold the "
                 "largest object, S3-FIFO below 10x and 2Q below 4x the largest object (libcachesim refuses any "
                 "object larger than the policy's first queue)")


def tinylfu_window(capacity: float, largest_object: int) -> float:
    """W-TinyLFU's window share of ``capacity``: 1 %, widened so that the window (whose size libcachesim
    truncates to an integer) holds the largest object. With the default 1 % a byte-capacity cache never
    admits an object over 1 % of its size, and an object-count cache under 100 objects admits nothing
    (its window rounds to 0): notebook 40's miss ratio of 1.0. Caffeine likewise moves its window (1 % to
    most of the cache) by hill climbing (Einziger et al., Adaptive Software Cache Management, Middleware'18)."""
    need = (largest_object + 1) / max(float(capacity), 1.0)
    return max(TINYLFU_WINDOW, need)


def admits_largest(policy: str, capacity: float, largest_object: int) -> bool:
    """Whether libcachesim's ``policy`` at ``capacity`` admits every object that LRU of that capacity
    admits, up to ``largest_object`` (same unit). A point where it does not is left out of the comparisons:
    its misses would be refusals, not evictions. (Every policy, LRU included, refuses objects larger than
    the whole cache: that is the cache, not the policy.)"""
    need = min(float(largest_object), float(capacity))
    if policy == "tinylfu":
        return tinylfu_window(capacity, int(need)) <= TINYLFU_MAX_WINDOW
    if policy not in FIRST_QUEUE_SHARE:
        return True
    return FIRST_QUEUE_SHARE[policy] * float(capacity) >= need


@dataclass(frozen=True)
class PolicyRow:
    """One simulated (policy, capacity) point."""

    policy: str
    capacity: float            # bytes or objects (see PolicyTable.unit)
    miss_ratio: float
    byte_miss_ratio: float
    seconds: float
    sample_rate: float = 1.0   # the miniature simulation's rate for this row


@dataclass(frozen=True)
class PolicyTable:
    """Policies at a grid of capacities, simulated by libcachesim on one trace (or its sample)."""

    unit: str                  # bytes | objects
    trace: str
    requests: int
    sample_rate: float         # 1.0 = full trace; < 1: spatially sampled miniature simulation
    capacities: list[float]    # full-scale capacities (a miniature cache is capacity * sample_rate)
    rows: list[PolicyRow]

    def best(self, capacity: float, *, exclude: tuple[str, ...] = ("belady", "beladysize")) -> PolicyRow:
        """The lowest miss ratio among real (online) policies at ``capacity``."""
        cands = [r for r in self.rows if r.capacity == capacity and r.policy not in exclude]
        if not cands:
            raise ValueError(f"no simulated point at capacity {capacity}")
        return min(cands, key=lambda r: (r.miss_ratio, r.byte_miss_ratio))

    def curve(self, policy: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(capacities, miss ratios, byte miss ratios) of one policy."""
        rows = sorted((r for r in self.rows if r.policy == policy), key=lambda r: r.capacity)
        return (np.array([r.capacity for r in rows]), np.array([r.miss_ratio for r in rows]),
                np.array([r.byte_miss_ratio for r in rows]))


# libcachesim's W-TinyLFU work grows with the capacity in bytes (its count-min sketch has one entry per
# byte of the main cache, and it ages the sketch every 32 x capacity requests, i.e. never in bytes): its
# miniature simulation is capped at this scaled capacity
SCALED_CAPACITY_CAP: dict[str, float] = {"tinylfu": 2e7}
# The smallest cache (in the simulator's units, after sampling) each libcachesim policy is simulated at:
# below these the PyPI build aborts the process (S3-FIFO under 10, W-TinyLFU under 5, LFUDA at 1) or
# returns a miss ratio of 1 (S3-FIFO under 20: its small FIFO rounds to nothing), found by replaying a
# 9-object loop at capacities 1-32. Smaller points are left out of the table, not estimated; so are points
# where a policy cannot admit the trace's largest object (:func:`admits_largest`).
MIN_SIMULATED_CAPACITY: dict[str, int] = {"s3fifo": 20, "tinylfu": 20, "lfuda": 2}


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence libcachesim's C-level warnings (written to file descriptor 2) while the block runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _sample_threshold(rate: float, seed: int, trace_rate: float, trace_seed: int | None) -> tuple[int, float]:
    """(hash threshold, its rate of the full population) of a spatial sample at ``rate`` of the full
    population taken from a trace that is already one at ``trace_rate``: with the same hash (``trace_seed``
    == ``seed``) the samples nest and the threshold is the rate's; otherwise (an independent hash) the rates
    multiply and the threshold is that of ``rate / trace_rate``."""
    from kit.cachesim.mrc import _HASH_MOD

    if trace_seed == seed:
        threshold = max(1, int(round(rate * _HASH_MOD)))
        return threshold, threshold / _HASH_MOD
    threshold = max(1, int(round(rate / trace_rate * _HASH_MOD)))
    return threshold, trace_rate * threshold / _HASH_MOD


def spatial_mask(obj_id: np.ndarray, rate: float, seed: int = 0, *, trace_rate: float = 1.0,
                 trace_seed: int | None = None) -> np.ndarray:
    """Per request, whether :func:`spatial_sample` keeps it (its key's hash falls below ``rate``): a mask to
    combine with other selections of one trace, instead of sampling each selection again. ``rate`` is of the
    full population; ``obj_id`` may already be a spatial sample of it (``trace_rate``, ``trace_seed`` as in
    :class:`Trace`)."""
    if rate >= trace_rate:
        return np.ones(len(obj_id), bool)
    from kit.cachesim.mrc import _shards_select

    keep = np.zeros(len(obj_id), bool)
    threshold = _sample_threshold(rate, seed, trace_rate, trace_seed)[0]
    keep[_shards_select(np.ascontiguousarray(obj_id, np.uint64), seed, threshold)] = True
    return keep


def spatial_sample(trace: Trace, rate: float, seed: int = 0) -> Trace:
    """The requests of keys whose hash falls below ``rate`` (SHARDS' filter): a spatial sample of the full
    population at ``rate`` (its ``sample_rate``), also when the trace is already a sample (``rate`` of the
    full population, not of the trace). The trace itself when ``rate`` >= ``trace.sample_rate``."""
    if rate >= trace.sample_rate:
        return trace
    from kit.cachesim.mrc import _shards_select

    threshold, kept = _sample_threshold(rate, seed, trace.sample_rate, trace.sample_seed)
    idx = _shards_select(np.ascontiguousarray(trace.obj_id, np.uint64), seed, threshold)
    return Trace(trace.name, trace.obj_id[idx], trace.size_bytes[idx],
                 None if trace.time_s is None else trace.time_s[idx], trace.key, trace.source, kept, seed)


def compare_policies(trace: Trace, policies: list[str], capacities: list[float] | np.ndarray, *,
                     unit: str = "bytes", sample_rate: float = 1.0, seed: int = 0,
                     scaled_capacity_cap: dict[str, float] | None = None) -> PolicyTable:
    """Simulate each policy at each capacity with libcachesim.

    ``sample_rate < 1`` runs a miniature simulation (Waldspurger et al., ATC'17): keep the requests of
    keys whose hash falls below the rate (the SHARDS filter) and scale every capacity by the rate. The rate
    is of the full population: on a trace that is already a spatial sample it is at most
    ``trace.sample_rate`` (lowered to it), and ``requests`` counts the full population (estimated).
    ``scaled_capacity_cap`` (policy -> bytes) lowers a policy's rate so that its largest scaled capacity
    stays below the cap (default: :data:`SCALED_CAPACITY_CAP` when sampling)."""
    if unit not in ("bytes", "objects"):
        raise ValueError(f"unit must be bytes or objects, got {unit!r}")
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown cache policy(ies) {', '.join(unknown)}; known: {', '.join(POLICIES)}")
    sample_rate = min(sample_rate, trace.sample_rate)
    caps = scaled_capacity_cap if scaled_capacity_cap is not None else (
        SCALED_CAPACITY_CAP if sample_rate < 1.0 else {})
    biggest = max(float(c) for c in capacities) if len(capacities) else 1.0
    rates: dict[str, float] = {}
    for pol in policies:
        rate = sample_rate
        if pol in caps and unit == "bytes" and biggest * rate > caps[pol]:
            rate = caps[pol] / biggest
        rates[pol] = rate
    rows = []
    with quiet_stderr():
        for rate in sorted(set(rates.values()), reverse=True):
            sim = spatial_sample(trace, rate, seed)
            with Replay(sim, ignore_obj_size=(unit == "objects")) as replay:
                for pol in [p for p in policies if rates[p] == rate]:
                    for cap in capacities:
                        scaled = max(1, int(round(float(cap) * rate)))
                        if (scaled < MIN_SIMULATED_CAPACITY.get(pol, 1)
                                or not admits_largest(pol, scaled, replay.largest_object)):
                            continue
                        t0 = time.perf_counter()
                        mr, bmr = replay.run(pol, scaled)
                        if unit == "objects":
                            bmr = float("nan")   # libcachesim counts each object as one byte here
                        rows.append(PolicyRow(pol, float(cap), mr, bmr, time.perf_counter() - t0, rate))
    order = {p: i for i, p in enumerate(policies)}
    rows.sort(key=lambda r: (r.capacity, order[r.policy]))
    return PolicyTable(unit, trace.name, int(round(len(trace) / trace.sample_rate)), sample_rate,
                       [float(c) for c in capacities], rows)


def size_admission(trace: Trace, capacity_bytes: int, thresholds: list[int], *, policy: str = "lru"
                   ) -> list[dict[str, float | None]]:
    """Miss ratios with a size-threshold admission filter (objects at or above the threshold bypass the
    cache), per threshold, at one capacity; libcachesim's SizeAdmissioner."""
    out: list[dict[str, float | None]] = []
    with quiet_stderr(), Replay(trace) as replay:
        mr0, bmr0 = replay.run(policy, capacity_bytes)
        out.append({"threshold_bytes": None, "miss_ratio": mr0, "byte_miss_ratio": bmr0})
        for th in thresholds:
            mr, bmr = replay.run(policy, capacity_bytes, admit_below_bytes=int(th))
            out.append({"threshold_bytes": float(th), "miss_ratio": mr, "byte_miss_ratio": bmr})
    return out


# --------------------------------------------------------------------------------------------- TTL
@nb.njit(cache=True)
def _push_head(prev: np.ndarray, nxt: np.ndarray, head: int, tail: int, o: int) -> tuple[int, int]:
    """Link object ``o`` (already unlinked) at the head of the LRU list; returns the new (head, tail)."""
    prev[o] = -1
    nxt[o] = head
    if head >= 0:
        prev[head] = o
    return o, (o if tail < 0 else tail)


@nb.njit(cache=True)
def _lru_ttl_kernel(codes: np.ndarray, sizes: np.ndarray, t: np.ndarray, ttl: np.ndarray, n_obj: int,
                    capacity: int):
    """Byte-capacity LRU with per-request TTL (seconds; <= 0 = no expiry). Returns (hits, hit bytes)."""
    prev = np.full(n_obj, -1, np.int64)
    nxt = np.full(n_obj, -1, np.int64)
    inside = np.zeros(n_obj, np.bool_)
    fill = np.zeros(n_obj, np.float64)
    osz = np.zeros(n_obj, np.int64)
    head = -1
    tail = -1
    used = 0
    hits = 0
    hit_bytes = 0
    for i in range(codes.shape[0]):
        o = codes[i]
        s = sizes[i]
        if inside[o]:
            # unlink
            p, q = prev[o], nxt[o]
            if p >= 0:
                nxt[p] = q
            else:
                head = q
            if q >= 0:
                prev[q] = p
            else:
                tail = p
            if ttl[i] > 0 and t[i] > fill[o] + ttl[i]:
                used -= osz[o]
                inside[o] = False
            else:
                hits += 1
                hit_bytes += s
                head, tail = _push_head(prev, nxt, head, tail, o)
                continue
        if s > capacity:
            continue
        while used + s > capacity:
            v = tail
            tail = prev[v]
            if tail >= 0:
                nxt[tail] = -1
            else:
                head = -1
            inside[v] = False
            used -= osz[v]
        inside[o] = True
        osz[o] = s
        fill[o] = t[i]
        used += s
        head, tail = _push_head(prev, nxt, head, tail, o)
    return hits, hit_bytes


def lru_ttl(trace: Trace, capacity_bytes: int, ttl_s: float | np.ndarray) -> tuple[float, float]:
    """(object miss ratio, byte miss ratio) of a byte-capacity LRU whose entries expire ``ttl_s``
    seconds after they were filled (a scalar, or one TTL per request, e.g. by content class)."""
    import pandas as pd

    if trace.time_s is None:
        raise ValueError(f"trace {trace.name!r} has no timestamps: TTL effects need them")
    codes, uniq = pd.factorize(trace.obj_id)
    n = len(trace)
    ttl = np.broadcast_to(np.asarray(ttl_s, np.float64), (n,)).copy()
    ttl[~np.isfinite(ttl)] = 0.0
    hits, hb = _lru_ttl_kernel(codes.astype(np.int64), trace.size_bytes.astype(np.int64),
                               trace.time_s.astype(np.float64), ttl, len(uniq), int(capacity_bytes))
    total = float(trace.size_bytes.sum())
    return 1.0 - hits / max(n, 1), 1.0 - hb / max(total, 1.0)
