"""Sizing from a miss-ratio curve: the knee, the capacity for a target hit ratio, and a cost model
(memory cost per GB-month against origin egress and latency saved)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kit.cachesim.mrc import MissRatioCurve

GB = 1e9
SECONDS_PER_MONTH = 30 * 86400


def knee(curve: MissRatioCurve) -> float:
    """Capacity at the knee (Kneedle on hit ratio against log capacity): where the curve is furthest
    above the chord from its first to its last point; diminishing returns set in past it."""
    cap = curve.capacity[curve.capacity >= max(1.0, float(curve.exact_from_capacity))]
    if len(cap) < 3:
        return float(curve.capacity[-1]) if len(curve.capacity) else 0.0
    grid = np.unique(np.geomspace(cap[0], cap[-1], 400))
    hit = 1.0 - curve.at(grid)[0]
    x = (np.log(grid) - np.log(grid[0])) / max(np.log(grid[-1]) - np.log(grid[0]), 1e-12)
    span = hit[-1] - hit[0]
    if span <= 0:
        return float(grid[0])
    y = (hit - hit[0]) / span
    return float(grid[int(np.argmax(y - x))])


def capacity_for_hit_ratio(curve: MissRatioCurve, target: float, *, byte: bool = False) -> float | None:
    """Smallest capacity whose (object or byte) hit ratio reaches ``target``; None if no capacity does
    (the trace's reuse ratio caps what any cache can reach)."""
    miss = curve.byte_miss_ratio if byte else curve.miss_ratio
    ok = np.nonzero(1.0 - miss >= target - 1e-12)[0]
    if not len(ok):
        return None
    return float(curve.capacity[max(int(ok[0]), 0)])


@dataclass(frozen=True)
class CostPoint:
    """Value of one capacity per month (currency units of the cost parameters)."""

    capacity_bytes: float
    hit_ratio: float
    byte_hit_ratio: float
    memory_cost_per_month: float
    egress_saved_per_month: float
    net_saving_per_month: float
    origin_offload_gb_per_month: float
    latency_saved_s_per_month: float    # hits x (miss latency - hit latency)


@dataclass(frozen=True)
class CostModel:
    """Cost curve and the capacities it recommends."""

    memory_cost_per_gb_month: float
    egress_cost_per_gb: float
    hit_latency_ms: float | None
    miss_latency_ms: float | None
    latency_source: str
    requests_per_month: float
    bytes_per_month: float
    scale_to_month: float               # trace duration -> 30 days
    points: list[CostPoint]
    best_net: CostPoint | None          # the capacity with the highest net saving (if any is positive)
    target: CostPoint | None            # the smallest capacity reaching the target hit ratio
    target_hit_ratio: float


def cost_model(curve: MissRatioCurve, *, requests: int, total_bytes: int, duration_s: float | None,
               memory_cost_per_gb_month: float, egress_cost_per_gb: float, target_hit_ratio: float,
               hit_latency_ms: float | None = None, miss_latency_ms: float | None = None,
               latency_source: str = "", points: int = 48) -> CostModel:
    """Per capacity of a byte curve: memory cost, egress saved, net, offload and latency saved per month.

    The trace is scaled to a 30-day month by its duration (as is when it has none)."""
    if curve.unit != "bytes":
        raise ValueError("the cost model needs a byte-capacity curve")
    scale = SECONDS_PER_MONTH / duration_s if duration_s and duration_s > 0 else 1.0
    lo = max(float(curve.exact_from_capacity), float(curve.capacity[0]), 1.0)
    grid = np.unique(np.geomspace(lo, max(float(curve.capacity[-1]), lo), points))
    mr, bmr = curve.at(grid)
    saved = (miss_latency_ms - hit_latency_ms) if (hit_latency_ms is not None
                                                   and miss_latency_ms is not None) else 0.0
    pts = []
    for cap, m, b in zip(grid, mr, bmr, strict=True):
        offload = total_bytes * (1 - b) * scale / GB
        mem = cap / GB * memory_cost_per_gb_month
        egress = offload * egress_cost_per_gb
        pts.append(CostPoint(float(cap), float(1 - m), float(1 - b), mem, egress, egress - mem, offload,
                             requests * (1 - m) * scale * max(saved, 0.0) / 1000.0))
    best = max(pts, key=lambda p: p.net_saving_per_month)
    cap_t = capacity_for_hit_ratio(curve, target_hit_ratio)
    target = None
    if cap_t is not None:
        m, b = curve.at(cap_t)
        offload = total_bytes * (1 - b[0]) * scale / GB
        mem = cap_t / GB * memory_cost_per_gb_month
        target = CostPoint(cap_t, float(1 - m[0]), float(1 - b[0]), mem, offload * egress_cost_per_gb,
                           offload * egress_cost_per_gb - mem, offload,
                           requests * (1 - m[0]) * scale * max(saved, 0.0) / 1000.0)
    return CostModel(memory_cost_per_gb_month, egress_cost_per_gb, hit_latency_ms, miss_latency_ms,
                     latency_source, requests * scale, total_bytes * scale, scale, pts,
                     best if best.net_saving_per_month > 0 else None, target, target_hit_ratio)
