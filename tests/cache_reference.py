"""The tests' independent reference for cache simulations: one LRU cache simulated request by request
in plain Python, slow and obviously right."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence


def slow_lru(keys: Sequence[Hashable], sizes: Sequence[int], capacity: int, *, by_bytes: bool = True,
             times: Sequence[float] | None = None, ttl: float = 0.0,
             admit: Sequence[bool] | None = None) -> tuple[float, float]:
    """(miss ratio, byte miss ratio) of an LRU cache of ``capacity`` (bytes, or objects when not
    ``by_bytes``) over requests ``keys`` with ``sizes``, with libcachesim's rule that an object larger
    than the cache is not admitted. ``ttl`` > 0 (with ``times``): an entry filled at f hits until f + ttl
    inclusive. ``admit``: per request, whether a miss may enter the cache (a bypassed request misses)."""
    cache: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()
    used = hits = hit_bytes = total_bytes = 0
    for i, (key, size) in enumerate(zip(keys, sizes, strict=True)):
        now = times[i] if times is not None else 0.0
        total_bytes += size
        if key in cache:
            held, filled = cache[key]
            if ttl > 0 and now > filled + ttl:
                del cache[key]
                used -= held if by_bytes else 1
            else:
                cache.move_to_end(key)
                hits += 1
                hit_bytes += size
                continue
        need = size if by_bytes else 1
        if need > capacity or (admit is not None and not admit[i]):
            continue
        while used + need > capacity:
            _, (old, _) = cache.popitem(last=False)
            used -= old if by_bytes else 1
        cache[key] = (size, now)
        used += need
    return 1 - hits / len(keys), 1 - hit_bytes / total_bytes
