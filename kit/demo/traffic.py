"""The request generator: per-route parameters as numpy arrays, the CDN cache state across chunks, and one
chunk of requests as columns (routes, objects, status, latency, sizes, cache status, query strings, clients)."""

from __future__ import annotations

import math

import numpy as np

from kit.demo.catalog import CACHE_PROFILES, HOSTS, SERVICES, US_PER_MIN, Route
from kit.demo.clients import BOT_UAS, QUERY_KINDS
from kit.demo.incidents import REGRESSION_ROUTE
from kit.demo.sampling import coprime_step, hash_normal, zipf_rank


class RouteArrays:
    """Per-route parameters as numpy arrays (index = route id)."""

    def __init__(self, routes: tuple[Route, ...], seed: int, names: dict[str, list[str]],
                 name_sizes: dict[str, np.ndarray]):
        n = len(routes)
        self.svc = np.array([SERVICES.index(r.service) for r in routes], dtype=np.int64)
        self.n_obj = np.array([r.n_objects for r in routes], dtype=np.int64)
        self.zipf_a = np.array([r.zipf_a if abs(r.zipf_a - 1) > 1e-3 else 1.001 for r in routes])
        self.lat_mu = np.log([r.latency_ms for r in routes])
        self.lat_sigma = np.array([r.latency_sigma for r in routes])
        self.size_mu = np.log([max(r.size_bytes, 1.0) for r in routes])
        self.size_sigma = np.array([r.size_sigma for r in routes])
        self.method_cum = np.cumsum(np.array([r.methods for r in routes]), axis=1)
        self.method_cum /= self.method_cum[:, -1:]
        cache_names = list(CACHE_PROFILES)
        self.cache = np.array([cache_names.index(r.cache) for r in routes])
        self.cache_cum = np.cumsum(np.array([CACHE_PROFILES[r.cache] for r in routes]), axis=1)
        self.db = np.array([r.db for r in routes])
        self.qkind = np.array([QUERY_KINDS.index(r.query) if r.query else -1 for r in routes])
        self.query_p = np.array([r.query_p for r in routes])
        self.p4 = np.array([r.p4xx for r in routes])
        # cacheable JSON answers conditional requests (ETag) with 304 now and then
        self.p3 = np.array([r.p3xx if r.p3xx or r.cache != "api" else 0.03 for r in routes])
        self.code3 = np.array([r.code3 for r in routes])
        self.static = self.svc == SERVICES.index("static")
        self.dynamic_size = np.array([r.ctype in ("html", "json", "xml") and r.service != "static"
                                      for r in routes])
        self.json = np.array([r.ctype == "json" for r in routes])
        self.named = np.array([r.names is not None for r in routes])
        self.perm_a = np.array([coprime_step(r.n_objects, seed * 131 + i) for i, r in enumerate(routes)])
        self.perm_b = np.array([(seed * 977 + i * 31) % r.n_objects for i, r in enumerate(routes)])
        self.p5 = np.where(self.svc == SERVICES.index("checkout"), 0.002, 0.0011)
        self.p5 = np.where(self.static, 0.0004, self.p5)  # origin errors, only on CDN misses
        # sizes of named objects come from the real asset content
        self.name_off = np.zeros(n, dtype=np.int64)
        flat: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        offset = 1
        for i, r in enumerate(routes):
            if r.names in name_sizes:
                self.name_off[i] = offset
                flat.append(name_sizes[r.names][: r.n_objects])
                offset += r.n_objects
        self.name_size = np.concatenate(flat)
        self.has_name_size = np.array([r.names in name_sizes for r in routes])
        self.obj_off = np.concatenate([[0], np.cumsum(self.n_obj)[:-1]]).astype(np.int64)
        # routes whose cache status follows a simulated cache (cacheable, keyed by path alone)
        self.track = np.array([r.cache != "bypass" and r.query_p < 0.5 for r in routes])
        self.regression_route = next(i for i, r in enumerate(routes) if r.template == REGRESSION_ROUTE)
        self.route_key = np.arange(n, dtype=np.uint64) * np.uint64(1 << 40) + np.uint64(seed) * np.uint64(
            (1 << 56) + 1)


class CdnState:
    """Which objects the CDN holds (one flag per object of every cacheable route), across chunks."""

    def __init__(self, arr: RouteArrays, warm_share: float = 0.03):
        self.seen = np.zeros(int(arr.obj_off[-1] + arr.n_obj[-1]), dtype=bool)
        for r in np.flatnonzero(arr.track):  # the most popular objects are cached before the history starts
            k = max(1, math.ceil(warm_share * arr.n_obj[r]))
            warm = (np.arange(k) * arr.perm_a[r] + arr.perm_b[r]) % arr.n_obj[r]
            self.seen[arr.obj_off[r] + warm] = True


def object_sizes(arr: RouteArrays, route: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """Deterministic size in bytes of object ``obj`` of route ``route`` (the same object, the same size)."""
    z = hash_normal(arr.route_key[route] + obj.astype(np.uint64))
    size = np.exp(arr.size_mu[route] + arr.size_sigma[route] * np.clip(z, -3, 3))
    named = arr.has_name_size[route]
    if named.any():
        size = np.where(named, arr.name_size[np.where(named, arr.name_off[route] + obj, 0)], size)
    return np.maximum(np.rint(size), 1).astype(np.int64)


def generate_chunk(rng: np.random.Generator, arr: RouteArrays, route_cdf: np.ndarray, ts_us: np.ndarray,
               load: np.ndarray, n_clients: int, n_query: np.ndarray, windows: dict[str, tuple[int, int]],
               start_us: int, ua_of_client: np.ndarray, cdn: CdnState) -> dict[str, np.ndarray]:
    """One chunk of requests as integer/float columns (strings are joined in SQL)."""
    n = len(ts_us)
    cid = zipf_rank(rng.random(n), np.full(n, float(n_clients)), np.full(n, 0.75))
    bot = np.isin(ua_of_client[cid], BOT_UAS)
    route = np.searchsorted(route_cdf, rng.random(n), side="right").clip(0, len(route_cdf) - 1)
    n_obj = arr.n_obj[route]
    rank = zipf_rank(rng.random(n), n_obj.astype(np.float64), arr.zipf_a[route])
    # crawlers walk the catalogue evenly (the long tail a cache must not be polluted by)
    rank = np.where(bot, np.floor(rng.random(n) * n_obj).astype(np.int64), rank)
    obj = (rank * arr.perm_a[route] + arr.perm_b[route]) % n_obj
    # temporal locality: a quarter of catalogue traffic goes to the day's trending items
    day = (ts_us - start_us) // (1440 * US_PER_MIN)
    trending = (n_obj >= 1000) & ~bot & (rng.random(n) < 0.25)
    t_rank = zipf_rank(rng.random(n), np.full(n, 300.0), np.full(n, 1.2))
    t_obj = (t_rank * 7919 + day * 104_729 + arr.perm_b[route]) % n_obj
    obj = np.where(trending, t_obj, obj)
    rank = np.where(trending, t_rank, rank)
    svc = arr.svc[route]
    host_first = np.array([sum(len(HOSTS[s]) for s in SERVICES[:i]) for i in range(len(SERVICES))])
    host_n = np.array([len(HOSTS[s]) for s in SERVICES])
    host = host_first[svc] + np.floor(rng.random(n) * host_n[svc]).astype(np.int64)
    method = (rng.random(n)[:, None] > arr.method_cum[route]).sum(axis=1).clip(0, 3)
    method = np.where(bot, 0, method)

    # CDN cache status: static tail objects miss more often; writes bypass
    u = rng.random(n)
    cum = arr.cache_cum[route]
    cache = (u[:, None] > cum).sum(axis=1).clip(0, 3)
    tail = arr.static[route] & (cache == 0)
    p_cold = 0.25 * (rank / np.maximum(n_obj, 1)) ** 1.5
    cold = tail & (rng.random(n) < p_cold)
    cache = np.where(cold, np.where(rng.random(n) < 0.8, 1, 2), cache)
    cache = np.where(method > 0, 3, cache)

    # latency: lognormal per route, load-dependent, with a heavy (Pareto) tail
    minute = (ts_us - start_us) // US_PER_MIN
    rho = 0.85 * load[minute]  # utilization of the busiest resource: latency turns up past ~0.6 (queueing)
    load_f = 1.0 + 0.25 * rho / (1.0 - rho)
    origin = np.exp(arr.lat_mu[route] + arr.lat_sigma[route] * rng.standard_normal(n)) * load_f
    origin = origin * np.where(method == 1, 1.35, 1.0)
    heavy = rng.random(n) < 0.012
    origin = np.where(heavy, origin * (1.0 + 4.0 * rng.pareto(1.4, n)), origin)
    edge = np.exp(np.log(2.5) + 0.5 * rng.standard_normal(n))
    hit = cache == 0

    # incidents
    def in_window(name: str) -> np.ndarray:
        a, b = windows[name]
        return (ts_us >= a) & (ts_us < b)

    w = in_window("latency_regression") & (route == arr.regression_route) & ~hit
    origin = np.where(w, origin * np.exp(np.log(4.0) + 0.1 * rng.standard_normal(n)), origin)
    outage = in_window("cdn_cache_outage") & arr.static[route]
    cache = np.where(outage & (cache == 0) & (rng.random(n) > 0.02), 1, cache)
    # a real cache: the first request for an object misses (objects popular before the history starts
    # are warm); during the outage static responses vary by cookie, so nothing new gets cached
    track = arr.track[route] & (cache != 3)
    key = (arr.obj_off[route] + obj)[track]
    first = np.zeros(len(key), dtype=bool)
    first[np.unique(key, return_index=True)[1]] = True
    cold = first & ~cdn.seen[key]
    cached = cache[track]
    cache[track] = np.where(cold, 1, cached)
    cdn.seen[key[~outage[track]]] = True
    hit = cache == 0
    origin = np.where(outage & ~hit, origin * 3.0 * np.exp(0.3 * rng.standard_normal(n)), origin)
    dbw = in_window("db_saturation") & arr.db[route] & ~hit
    a, b = windows["db_saturation"]
    ramp = np.clip((ts_us - a) / max(b - a, 1) * 4.0, 0, 1)  # builds up over the first quarter
    origin = np.where(dbw, origin * (1.0 + 3.0 * ramp * np.exp(0.4 * rng.standard_normal(n))), origin)
    origin = np.minimum(origin, 60_000.0)

    # status
    u = rng.random(n)
    p5, p4, p3 = arr.p5[route], arr.p4[route], arr.p3[route]
    status = np.full(n, 200, dtype=np.int64)
    is5 = u < p5
    is4 = (u >= p5) & (u < p5 + p4)
    is3 = (u >= p5 + p4) & (u < p5 + p4 + p3)
    c5 = np.array([500, 502, 503, 504])[np.searchsorted([0.45, 0.7, 0.9, 1.0], rng.random(n), side="right")
                                        .clip(0, 3)]
    c4 = np.array([404, 400, 401, 403, 422, 429, 499])[
        np.searchsorted([0.55, 0.67, 0.77, 0.83, 0.91, 0.96, 1.0], rng.random(n), side="right").clip(0, 6)]
    c4 = np.where(arr.static[route], 404, c4)
    status = np.where(is3, arr.code3[route], status)
    status = np.where(is3 & (status == 304) & (method > 0), 200, status)
    status = np.where(is4, c4, status)
    status = np.where(is5 & ~hit, c5, status)
    # error burst on api: 502/503 from the load balancer
    burst = in_window("error_burst") & (svc == SERVICES.index("api")) & ~hit & (rng.random(n) < 0.24)
    status = np.where(burst, np.array([502, 503, 500])[rng.integers(0, 3, n)], status)
    # DB saturation: timeouts
    db_err = dbw & (rng.random(n) < 0.045 * ramp)
    db_code = np.where(rng.random(n) < 0.7, 504, 500)
    status = np.where(db_err, db_code, status)
    origin = np.where(db_err & (db_code == 504), 30_000.0 * (1 + 0.01 * rng.random(n)), origin)
    origin = np.where(burst, np.where(status == 503, 1.0 + 2 * rng.random(n), origin * 0.3 + 5), origin)

    # sizes
    size = object_sizes(arr, route, obj)
    jitter = np.where(arr.dynamic_size[route], np.exp(0.08 * rng.standard_normal(n)), 1.0)
    bytes_sent = np.rint(size * jitter).astype(np.int64)
    err = status >= 400
    err_size = np.where(arr.json[route], 60 + rng.integers(0, 180, n), 150 + rng.integers(0, 450, n))
    err_size = np.where((status == 404) & ~arr.json[route] & ~arr.static[route], 9800 + rng.integers(0, 400, n),
                        err_size)
    bytes_sent = np.where(err, err_size, bytes_sent)
    bytes_sent = np.where((status == 304) | (status == 302) | (status == 303), 0, bytes_sent)
    bytes_sent = np.where(status == 499, 0, bytes_sent)
    err_html = err & ~arr.json[route]

    # transfer time at ~2-40 MB/s to the client, edge overhead
    xfer_ms = bytes_sent / np.exp(np.log(8e3) + 0.8 * rng.standard_normal(n))
    latency = np.where(hit, edge + xfer_ms, origin + 0.6 * edge + xfer_ms)
    upstream = np.where(hit, np.nan, origin)
    latency = np.round(latency, 3)
    upstream = np.round(upstream, 3)

    # query strings and clients
    qk = arr.qkind[route]
    has_q = (qk >= 0) & (rng.random(n) < arr.query_p[route])
    q_n = n_query[np.maximum(qk, 0)]
    qidx = zipf_rank(rng.random(n), q_n.astype(np.float64), np.full(n, 0.9))
    qidx = np.where(has_q, qidx, -1)
    return {
        "ts": ts_us, "route_id": route.astype(np.int32), "obj": obj.astype(np.int64),
        "host_id": host.astype(np.int16), "method_id": method.astype(np.int8), "status": status.astype(np.int16),
        "latency_ms": latency, "upstream_ms": upstream, "bytes_sent": bytes_sent,
        "cache_id": cache.astype(np.int8), "err_html": err_html, "qkind": qk.astype(np.int8),
        "qidx": qidx.astype(np.int32), "cid": cid.astype(np.int32),
    }
