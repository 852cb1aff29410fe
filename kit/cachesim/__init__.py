"""Cache simulation: traces, exact LRU and SHARDS miss-ratio curves, libcachesim policy comparison,
TTL and admission effects, sizing and the cost model.

The notebook-level study over the warehouse is :func:`kit.analysis.cache.analyze_cache`."""

from kit.cachesim.mrc import ExactLru, MissRatioCurve, ShardsResult, exact_lru, object_stack_distances, shards
from kit.cachesim.policies import (
    POLICIES,
    PolicyRow,
    PolicyTable,
    Replay,
    compare_policies,
    lru_ttl,
    size_admission,
    spatial_sample,
)
from kit.cachesim.sizing import CostModel, CostPoint, capacity_for_hit_ratio, cost_model, knee
from kit.cachesim.trace import (
    CACHE_KEYS,
    Trace,
    TraceStats,
    trace_from_cache_requests,
    trace_from_requests,
    trace_stats,
    write_oracle_general,
    zipf_trace,
)

__all__ = [
    "CACHE_KEYS", "POLICIES", "CostModel", "CostPoint", "ExactLru", "MissRatioCurve", "PolicyRow", "PolicyTable",
    "Replay", "ShardsResult", "Trace", "TraceStats", "capacity_for_hit_ratio", "compare_policies", "cost_model",
    "exact_lru", "knee", "lru_ttl", "object_stack_distances", "shards", "size_admission", "spatial_sample",
    "trace_from_cache_requests", "trace_from_requests", "trace_stats", "write_oracle_general", "zipf_trace",
]
