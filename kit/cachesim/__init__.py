"""Cache simulation: traces, exact LRU and SHARDS miss-ratio curves, libcachesim policy comparison,
TTL and admission effects, sizing and the cost model."""
