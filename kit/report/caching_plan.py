"""``Caching_Implementation_Plan.json`` from notebook 40's results (``results["cache"]``).

Per layer (browser, CDN, application, database; one builder each): key design, policy, capacity, TTL
rules per content class, admission, invalidation, expected hit ratio and byte hit ratio with the
simulation behind them, metrics and alert thresholds, rollout steps and risks. Every number comes from
the results and names its source (``source`` fields: the path in ``results["cache"]`` and the method).
Validated against ``schemas/Caching_Implementation_Plan.schema.json``; the short section of
``Performance_Optimization_Strategy.md`` is the partial ``templates/partials/caching_summary.md.j2``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kit.analysis.coverage import gap_text
from kit.config import RunConfig
from kit.fmt import NA, count, pct, size
from kit.report.render import render_markdown

__all__ = ["OFFLINE_POLICIES", "PLAN_VERSION", "PlanBasis", "application_layer", "browser_layer", "build_caching_plan",
           "caching_summary_markdown", "caching_summary_model", "cdn_layer", "database_layer", "plan_basis",
           "policy_table_at"]

PLAN_VERSION = "1.0"
_CURVE_POINTS = 40
OFFLINE_POLICIES = ("belady", "beladysize")  # know the future: bounds, not choices


def _num(value: Any, source: str, unit: str = "ratio") -> dict[str, Any]:
    return {"value": None if value is None else float(value), "unit": unit, "source": source}


# freshness caps (a policy choice, not data): dynamic content must not stay stale for long without purges
MAX_TTL_S = {"html": 3600, "api": 300}


def _ttl_rule(cls: dict[str, Any], keep_share: float = 0.9) -> dict[str, Any]:
    """Smallest simulated TTL that keeps ``keep_share`` of the class's no-expiry hit ratio (else the longest),
    capped for dynamic classes by :data:`MAX_TTL_S`."""
    by_ttl = {int(k): v for k, v in cls["hit_ratio_by_ttl"].items()}
    byte_by_ttl = {int(k): v for k, v in cls["byte_hit_ratio_by_ttl"].items()}
    full = by_ttl.get(0, max(by_ttl.values()))
    finite = sorted(t for t in by_ttl if t > 0)
    chosen = next((t for t in finite if by_ttl[t] >= keep_share * full), finite[-1] if finite else 0)
    cap = MAX_TTL_S.get(cls["content_class"])
    capped = cap is not None and chosen > cap
    if cap is not None and capped:
        chosen = max((t for t in finite if t <= cap), default=chosen)
    return {
        "content_class": cls["content_class"],
        "ttl_s": chosen,
        "hit_ratio_at_ttl": _num(by_ttl.get(chosen), f"cache.ttl_by_class[{cls['content_class']}]"
                                                     f".hit_ratio_by_ttl['{chosen}'] (LRU+TTL simulation)"),
        "byte_hit_ratio_at_ttl": _num(byte_by_ttl.get(chosen), f"cache.ttl_by_class[{cls['content_class']}]"
                                                               f".byte_hit_ratio_by_ttl['{chosen}']"),
        "no_expiry_hit_ratio": _num(full, f"cache.ttl_by_class[{cls['content_class']}].hit_ratio_by_ttl['0']"),
        "reuse_time_p50_s": _num(cls.get("reuse_time_p50_s"), "reuse time between requests of an object "
                                                               "(cache.ttl_by_class)", "s"),
        "current_hit_ratio": _num(cls.get("current_hit_ratio"), "requests.cache_status of the class"),
        "rule": (f"the smallest of the simulated TTLs keeping >= {keep_share:.0%} of the class's no-expiry hit "
                 f"ratio ({', '.join(str(t) for t in finite)} s tried)"
                 + (f", capped at {cap} s for freshness (longer needs purge on write)" if capped else "")),
        "requests": int(cls["requests"]),
    }


def policy_table_at(cache: dict[str, Any], capacity: float) -> tuple[float, list[dict[str, Any]]]:
    """The simulated grid size nearest ``capacity`` (bytes) and the policies there, best first:
    policy, hit_ratio, byte_hit_ratio, sample_rate (from ``cache["policies"]``, a cache or trace result)."""
    caps = cache["policies"]["capacities"]
    at = min(caps, key=lambda c: abs(c - capacity)) if caps else capacity
    rows = sorted((r for r in cache["policies"]["rows"] if r["capacity_bytes"] == at),
                  key=lambda r: r["miss_ratio"])
    return at, [{"policy": r["policy"], "hit_ratio": 1 - r["miss_ratio"], "byte_hit_ratio": 1 - r["byte_miss_ratio"],
                 "sample_rate": r.get("sample_rate", cache["policies"]["sample_rate"])} for r in rows]


@dataclass(frozen=True)
class PlanBasis:
    """What every layer reads from the simulation: the main key, the recommended CDN capacity (bytes),
    the policy table at the nearest grid size (``table_at`` bytes), the best online policy's row, the
    LRU and Belady rows there, and the TTL rule per content class."""

    key: str
    recommended_bytes: float
    table_at: float
    table: list[dict[str, Any]]
    online: list[dict[str, Any]]
    best: dict[str, Any]
    lru_row: dict[str, Any] | None
    opt_row: dict[str, Any] | None
    ttl: dict[str, dict[str, Any]]


def plan_basis(cache: dict[str, Any]) -> PlanBasis:
    """The choices the layers share, made once."""
    sizing = cache["sizing"]
    rec = sizing["recommended_capacity_bytes"]
    at, table = policy_table_at(cache, rec)
    online = [r for r in table if r["policy"] not in OFFLINE_POLICIES]
    best = online[0] if online else {"policy": "lru", "hit_ratio": sizing["recommended_hit_ratio"],
                                     "byte_hit_ratio": sizing["recommended_byte_hit_ratio"]}
    return PlanBasis(
        key=cache["main_key"], recommended_bytes=rec, table_at=at, table=table, online=online, best=best,
        lru_row=next((r for r in table if r["policy"] == "lru"), None),
        opt_row=next((r for r in table if r["policy"] == "belady"), None),
        ttl={c["content_class"]: _ttl_rule(c) for c in cache["ttl_by_class"]})


def _curve(points: dict[str, Any], n: int = _CURVE_POINTS) -> list[dict[str, float]]:
    caps = points["capacity"]
    step = max(1, len(caps) // n)
    idx = list(range(0, len(caps), step))
    if idx and idx[-1] != len(caps) - 1:
        idx.append(len(caps) - 1)
    return [{"capacity": caps[i], "hit_ratio": 1 - points["miss_ratio"][i],
             "byte_hit_ratio": 1 - points["byte_miss_ratio"][i]} for i in idx]


def browser_layer(cache: dict[str, Any], basis: PlanBasis) -> dict[str, Any]:
    """Private client caches: Cache-Control rules per content class, from the per-client repeat analysis."""
    browser_d = cache["browser"]
    key = basis.key
    static_rule = basis.ttl.get("static")
    browser = {
        "layer": "browser",
        "scope": "private caches of each client (Cache-Control on responses)",
        "key_design": {"key": f"{key} per client (the URL)", "normalization": ["versioned static URLs"],
                       "alternatives": [], "rationale": "the browser keys by URL; versioning makes long TTLs safe"},
        "policy": {"name": "browser-managed", "source": "not configurable"},
        "capacity": {"bytes": _num(None, "client-managed"), "knee_bytes": _num(None, "n/a", "bytes"),
                     "target_bytes": _num(None, "n/a", "bytes")},
        "ttl_rules": [
            {**static_rule, "header": f"Cache-Control: public, max-age={max(int(static_rule['ttl_s']), 86400)}, "
                                      "immutable (with versioned URLs)"} if static_rule else None,
            {"content_class": "html", "ttl_s": 0, "header": "Cache-Control: no-cache (revalidate with ETag)",
             "rule": "personalized or fast-changing pages revalidate; 304s save bytes, not round trips"},
            {"content_class": "api", "ttl_s": 0, "header": "Cache-Control: private, no-cache (ETag)",
             "rule": "revalidate; public catalogue endpoints may use max-age from the CDN rule"},
        ],
        "admission": {"rule": "n/a (the client caches what headers allow)", "threshold_bytes": None},
        "invalidation": ["new asset versions get new URLs", "ETag/Last-Modified revalidation for HTML and API"],
        "expected": {
            "hit_ratio": _num(browser_d.get("repeat_ratio"), f"cache.browser: {browser_d.get('source', '')}"),
            "byte_hit_ratio": _num(browser_d.get("repeat_byte_ratio"), "cache.browser.repeat_byte_ratio"),
            "static_hit_ratio": _num(browser_d.get("static_repeat_ratio"), "cache.browser.static_repeat_ratio"),
            "reuse_time_p50_s": _num(browser_d.get("reuse_time_p50_s"), "cache.browser.reuse_time_p50_s", "s"),
        },
        "simulation": {"method": "per-client repeat analysis (unbounded private cache)", "curve": [],
                       "curve_unit": "none", "policy_table": []},
        "metrics": [{"name": "browser_revalidations_304_ratio", "definition": "304 responses / conditional requests",
                     "alert": None},
                    {"name": "static_requests_per_page_view", "definition": "static requests reaching the CDN per "
                                                                            "HTML page view", "alert": None}],
        "rollout": ["version static asset URLs (content hash) in the build",
                    "send long max-age + immutable on versioned assets", "add ETags to HTML and API responses"],
        "risks": ["unversioned assets with long max-age cannot be updated until they expire"],
    }
    browser["ttl_rules"] = [r for r in browser["ttl_rules"] if r]
    return browser


def cdn_layer(cache: dict[str, Any], basis: PlanBasis) -> dict[str, Any]:
    """The shared edge cache: key design, the simulated policy and capacity, TTLs, admission, cost."""
    sizing, cost, observed, lat = cache["sizing"], cache["sizing"]["cost"], cache["observed"], cache["latency"]
    key, rec, at, table, best = basis.key, basis.recommended_bytes, basis.table_at, basis.table, basis.best
    lru_row, opt_row, ttl = basis.lru_row, basis.opt_row, basis.ttl
    keys = {k["key"]: k for k in cache["keys"]}
    admission = [a for a in cache["admission"] if a["threshold_bytes"] is not None]
    no_adm = next((a for a in cache["admission"] if a["threshold_bytes"] is None), None)
    adm_best = min(admission, key=lambda a: a["miss_ratio"]) if admission else None
    use_admission = bool(adm_best and no_adm and adm_best["miss_ratio"] < no_adm["miss_ratio"] - 0.005
                         and adm_best["byte_miss_ratio"] <= no_adm["byte_miss_ratio"] + 0.05)
    target_cost = cost.get("target") or {}
    src_curve = f"cache.keys[{key}].bytes ({keys[key]['bytes']['method']} LRU curve, key {key})"
    return {
        "layer": "cdn",
        "scope": "shared edge cache in front of the origin for cacheable GET/HEAD responses",
        "key_design": {
            "key": key,
            "normalization": ["lower-case host", "drop tracking parameters (utm_*, fbclid, gclid)",
                              "sort remaining query parameters", "vary only on Accept-Encoding"],
            "alternatives": [{"key": k["key"], "unique_objects": k["unique_objects"],
                              "max_hit_ratio": _num(k["reuse_ratio"], f"cache.keys[{k['key']}].reuse_ratio "
                                                                     "(infinite cache)")}
                             for k in cache["keys"]],
            "rationale": ("path_query splits objects by query string; route merges distinct objects and is only "
                          "valid where the response does not depend on the identifier"),
        },
        "policy": {"name": best["policy"], "source": f"cache.policies at {size(at)} (nearest grid size to the "
                                                      f"recommended capacity): lowest miss ratio among online "
                                                      f"policies; {cache['policies']['method']}; "
                                                      f"{cache['policies'].get('left_out', '')}"},
        "capacity": {"bytes": _num(rec, f"cache.sizing.recommended_capacity_bytes: {sizing['recommendation_basis']}",
                                   "bytes"),
                     "knee_bytes": _num(sizing["knee_bytes"], "cache.sizing.knee_bytes (Kneedle on the exact curve)",
                                        "bytes"),
                     "target_bytes": _num(sizing["target_capacity_bytes"],
                                          f"cache.sizing.target_capacity_bytes for hit ratio "
                                          f"{sizing['target_hit_ratio']}", "bytes")},
        "ttl_rules": list(ttl.values()),
        "admission": ({"rule": f"do not cache objects of {size(adm_best['threshold_bytes'])} or more",
                       "threshold_bytes": adm_best["threshold_bytes"],
                       "hit_ratio_with": _num(1 - adm_best["miss_ratio"], "cache.admission (libcachesim LRU + "
                                                                          "SizeAdmissioner)"),
                       "hit_ratio_without": _num(1 - no_adm["miss_ratio"], "cache.admission")}
                      if use_admission and adm_best and no_adm else
                      {"rule": "admit every cacheable response (size thresholds tried did not raise the hit ratio "
                               "without a large byte-hit-ratio loss)", "threshold_bytes": None,
                       "tried": cache["admission"]}),
        "invalidation": ["static assets: content-hashed (versioned) URLs, never purged",
                         "HTML and API: purge by surrogate key (product id, category) on writes; TTL bounds "
                         "staleness otherwise", "serve stale-while-revalidate during origin errors"],
        "expected": {
            "hit_ratio": _num(sizing["recommended_hit_ratio"], f"{src_curve} at the recommended capacity"),
            "byte_hit_ratio": _num(sizing["recommended_byte_hit_ratio"], f"{src_curve} at the recommended capacity"),
            "best_policy_hit_ratio": _num(best["hit_ratio"], f"cache.policies ({best['policy']}) at {size(at)}"),
            "belady_hit_ratio": _num(opt_row["hit_ratio"] if opt_row else None,
                                     "Belady/OPT in cache.policies (the bound for equal sizes; with varying sizes a "
                                     "reference that size-aware policies can beat)"),
            "current_hit_ratio": _num(observed.get("hit_ratio"), observed.get("source", "")),
            "current_byte_hit_ratio": _num(observed.get("byte_hit_ratio"), observed.get("source", "")),
            "origin_offload_gb_per_month": _num(target_cost.get("origin_offload_gb_per_month"),
                                                "cache.sizing.cost.target (trace scaled to 30 days)", "GB/month"),
            "latency_saved_s_per_month": _num(target_cost.get("latency_saved_s_per_month"),
                                              f"hits x (miss - hit latency); {lat.get('source')}", "s/month"),
        },
        "simulation": {
            "method": keys[key]["bytes"]["method"],
            "curve": _curve(keys[key]["bytes"]),
            "curve_unit": "bytes",
            "policy_table": table,
            "policy_table_capacity_bytes": at,
            "lru_hit_ratio_at_table_capacity": None if lru_row is None else lru_row["hit_ratio"],
        },
        "cost": {
            "memory_cost_per_gb_month": cost["memory_cost_per_gb_month"],
            "egress_cost_per_gb": cost["egress_cost_per_gb"],
            "at_recommended": target_cost or None,
            "best_net": cost.get("best_net"),
            "source": "cache.sizing.cost (parameters memory_cost_per_gb_month, egress_cost_per_gb)",
        },
        "metrics": [
            {"name": "cdn_cache_hit_ratio", "definition": "HIT / all cacheable responses, 5-minute windows",
             "alert": {"condition": "below", "threshold": _alert_floor(sizing["recommended_hit_ratio"]),
                       "for": "30m", "severity": "warning",
                       "source": "expected hit ratio minus 10 points (cache.sizing.recommended_hit_ratio)"}},
            {"name": "cdn_byte_hit_ratio", "definition": "bytes served from cache / bytes served",
             "alert": {"condition": "below", "threshold": _alert_floor(sizing["recommended_byte_hit_ratio"]),
                       "for": "30m", "severity": "warning",
                       "source": "expected byte hit ratio minus 10 points"}},
            {"name": "origin_egress_bytes", "definition": "bytes fetched from the origin per minute",
             "alert": None},
            {"name": "cdn_evictions_per_second", "definition": "evictions before expiry (capacity pressure)",
             "alert": None},
        ],
        "rollout": ["shadow: compute the new key and log the would-be hit/miss next to cache_status",
                    f"apply the key design and the TTL rules to static assets first "
                    f"({ttl.get('static', {}).get('ttl_s', 'n/a')} s)",
                    f"size the cache at {size(rec)} and switch policy to {best['policy']} where the CDN "
                    f"offers it (else keep LRU: {pct(None if lru_row is None else lru_row['hit_ratio'])} "
                    f"at {size(at)})",
                    "extend to HTML and API with surrogate-key purges, one route group at a time",
                    "compare measured hit ratios to the expected ones for a week; resize from the curve"],
        "risks": ["stale content served after writes if purges are missed (bounded by the TTL)",
                  "cache key too coarse (route) serves the wrong object; too fine (raw query) fragments it",
                  "cold start after deploys or purges: the miss-ratio curve is the steady state",
                  "the trace covers only the analysed window; traffic growth moves the knee"],
    }


def application_layer(cache: dict[str, Any], basis: PlanBasis) -> dict[str, Any]:
    """The in-process or shared response cache, sized by entry count (exact LRU)."""
    app = cache["application"]
    app_method = app.get("method", "exact LRU by entry count")
    key, online, best, trace = basis.key, basis.online, basis.best, cache["trace"]
    api_rule, html_rule = basis.ttl.get("api"), basis.ttl.get("html")
    return {
        "layer": "application",
        "scope": "in-process or shared (Redis/Memcached) cache of rendered HTML fragments and API responses",
        "key_design": {"key": f"{key} + the request parameters the response depends on (user/locale when "
                              "personalized)", "normalization": ["sorted parameters", "explicit version prefix"],
                       "alternatives": [], "rationale": "entries are responses; key on what the handler reads"},
        "policy": {"name": "tinylfu" if any(r["policy"] == "tinylfu" for r in online[:3]) else best["policy"],
                   "source": "cache.policies ranking (frequency-aware policies resist one-hit wonders: "
                             f"{pct(trace['one_hit_wonder_ratio'])} of objects are requested once)"},
        "capacity": {"entries": _num(app.get("recommended_entries"), "cache.application.recommended_entries "
                                                                     f"({app_method})", "entries"),
                     "bytes": _num(app.get("recommended_memory_bytes"),
                                   "entries x mean response size (cache.application)", "bytes"),
                     "knee_bytes": _num(None if app.get("knee_entries") is None
                                        else app["knee_entries"] * app.get("mean_response_bytes", 0),
                                        "knee entries x mean response size", "bytes"),
                     "target_bytes": _num(None if app.get("target_entries") is None
                                          else app["target_entries"] * app.get("mean_response_bytes", 0),
                                          "entries for the target hit ratio x mean response size", "bytes")},
        "ttl_rules": [r for r in (api_rule, html_rule) if r],
        "admission": {"rule": "admit on second request (TinyLFU doorkeeper) to keep one-hit wonders out",
                      "threshold_bytes": None},
        "invalidation": ["delete keys on writes to the entity (write-through)", "version prefix bump on deploys "
                                                                               "that change response shape"],
        "expected": {"hit_ratio": _num(app.get("recommended_hit_ratio"), f"cache.application: {app.get('source')}"),
                     "byte_hit_ratio": _num(None, "not simulated by bytes for this layer"),
                     "max_hit_ratio": _num(app.get("max_hit_ratio"), "cache.application.max_hit_ratio")},
        "simulation": {"method": app_method, "curve": _curve(app["curve"]) if app.get("curve") else [],
                       "curve_unit": "entries", "policy_table": []},
        "metrics": [{"name": "app_cache_hit_ratio", "definition": "hits / lookups",
                     "alert": {"condition": "below", "threshold": _alert_floor(app.get("recommended_hit_ratio")),
                               "for": "15m", "severity": "warning",
                               "source": "expected application hit ratio minus 10 points"}},
                    {"name": "app_cache_memory_bytes", "definition": "memory used by the cache",
                     "alert": {"condition": "above", "threshold": 0.9, "for": "15m", "severity": "info",
                               "source": "share of the configured capacity"}}],
        "rollout": ["cache the read-heavy API routes first (see the database layer's top queries)",
                    "measure hit ratio per route; extend to HTML fragments"],
        "risks": ["serving one user's personalized response to another if the key omits the user",
                  "thundering herd on expiry: use request coalescing"],
    }


def database_layer(cache: dict[str, Any], basis: PlanBasis) -> dict[str, Any]:
    """Buffer cache and result caching of the heaviest read statements (observed, not simulated)."""
    db = cache["database"]
    api_rule = basis.ttl.get("api")
    return {
        "layer": "database",
        "scope": "database buffer cache and query-result caching of the heaviest read statements",
        "key_design": {"key": "statement fingerprint + bound parameters", "normalization": ["fingerprint"],
                       "alternatives": [], "rationale": "the same statement shape with the same parameters"},
        "policy": {"name": "database-managed buffer pool; LRU/TTL for result caches", "source": "not simulated"},
        "capacity": {"bytes": _num(None, "not simulated: no per-parameter query trace"),
                     "knee_bytes": _num(None, "n/a", "bytes"), "target_bytes": _num(None, "n/a", "bytes")},
        "ttl_rules": [{"content_class": "read queries", "ttl_s": (api_rule or {}).get("ttl_s", 60),
                       "rule": "same TTL as the API responses they feed (cache.ttl_by_class api)"}],
        "admission": {"rule": "cache only the top read fingerprints listed", "threshold_bytes": None,
                      "fingerprints": db.get("top_read_queries", [])},
        "invalidation": ["invalidate result keys on writes to the tables they read"],
        "expected": {"hit_ratio": _num(db.get("buffer_hit_ratio"), db.get("buffer_hit_source", "no query statistics")),
                     "byte_hit_ratio": _num(None, "not measured"),
                     "top_read_share_of_db_time": _num(db.get("top_read_share_of_db_time"),
                                                       "cache.database (queries snapshots)")},
        "simulation": {"method": "observed (pg_stat_statements-style snapshots), not simulated", "curve": [],
                       "curve_unit": "none", "policy_table": []},
        "metrics": [{"name": "db_buffer_hit_ratio", "definition": "shared_blks_hit / (hit + read)",
                     "alert": {"condition": "below", "threshold": _alert_floor(db.get("buffer_hit_ratio"), 0.05),
                               "for": "30m", "severity": "warning",
                               "source": "observed buffer hit ratio minus 5 points"}}],
        "rollout": ["add result caching for the top read fingerprints behind a flag",
                    "watch database time share of those fingerprints fall"],
        "risks": ["stale reads after writes if invalidation misses a table"],
    }


def build_caching_plan(results: dict[str, Any], config: RunConfig) -> dict[str, Any]:
    """The plan (a JSON-ready dict). Without ``results["cache"]`` the plan says so (status incomplete)."""
    cache = results.get("cache")
    base = {"plan_version": PLAN_VERSION, "system": config.title, "as_of": config.as_of}
    if not cache:
        return {**base, "status": "incomplete",
                "summary": {"headline": gap_text(results, "cacheable", fallback=(
                    "no cache simulation results: run notebook 40_cache_simulation"))},
                "parameters": {}, "trace": None, "layers": []}
    basis = plan_basis(cache)
    sizing, observed, trace = cache["sizing"], cache["observed"], cache["trace"]
    rec, best = basis.recommended_bytes, basis.best
    offload = (sizing["cost"].get("target") or {}).get("byte_hit_ratio", sizing["recommended_byte_hit_ratio"])
    trace_rate = float(cache["parameters"].get("trace_sample_rate") or 1.0)
    how = ("exact simulation" if trace_rate >= 1 else
           f"SHARDS estimate from a spatial sample of keys at R={trace_rate:.4f}")
    headline = (f"CDN cache of {size(rec)} keyed by {basis.key}: expected hit ratio "
                f"{pct(sizing['recommended_hit_ratio'])} and byte hit ratio "
                f"{pct(sizing['recommended_byte_hit_ratio'])} with LRU ({how}; today "
                f"{pct(observed.get('hit_ratio'))} / {pct(observed.get('byte_hit_ratio'))}); "
                f"{best['policy']} simulated best at {size(basis.table_at)} ({pct(best['hit_ratio'])})")
    return {
        **base,
        "status": "complete",
        "summary": {"headline": headline, "expected_hit_ratio": sizing["recommended_hit_ratio"],
                    "expected_byte_hit_ratio": sizing["recommended_byte_hit_ratio"],
                    "origin_byte_offload": offload, "recommended_cdn_capacity_bytes": rec,
                    "source": f"cache.sizing (LRU curve: {how}) and cache.observed (cache_status in the logs)"},
        "parameters": {k: cache["parameters"].get(k) for k in ("cache_key", "start", "end", "policies",
                                                               "target_hit_ratio", "memory_cost_per_gb_month",
                                                               "egress_cost_per_gb")},
        "trace": {k: trace.get(k) for k in ("requests", "unique_objects", "total_bytes", "unique_bytes",
                                            "one_hit_wonder_ratio", "zipf_alpha", "reuse_ratio", "duration_s",
                                            "reuse_distance_quantiles", "reuse_time_s_quantiles", "source")},
        "latency": cache["latency"],
        "layers": [browser_layer(cache, basis), cdn_layer(cache, basis), application_layer(cache, basis),
                   database_layer(cache, basis)],
    }


def _alert_floor(expected: float | None, margin: float = 0.10) -> float | None:
    return None if expected is None else round(max(0.0, float(expected) - margin), 4)


def caching_summary_model(plan: dict[str, Any]) -> dict[str, Any]:
    """What the caching section of ``Performance_Optimization_Strategy.md`` shows (partial
    ``partials/caching_summary.md.j2``): the headline, one row per layer, the CDN's TTL rules and cost."""
    complete = plan.get("status") == "complete"
    rows = []
    for layer in plan.get("layers", []) if complete else []:
        cap = layer["capacity"]
        capacity = size(cap["bytes"]["value"]) if cap.get("bytes", {}).get("value") is not None else NA
        if "entries" in cap and cap["entries"]["value"] is not None:
            capacity = f"{count(cap['entries']['value'])} entries (~{capacity})"
        exp = layer["expected"]
        rows.append([layer["layer"], layer["key_design"]["key"], layer["policy"]["name"], capacity,
                     pct(exp["hit_ratio"]["value"]), pct(exp["byte_hit_ratio"]["value"])])
    cdn = next((la for la in plan.get("layers", []) if la["layer"] == "cdn"), None) if complete else None
    return {"headline": (plan.get("summary") or {}).get("headline", ""), "complete": complete, "rows": rows,
            "cdn_ttl_rules": cdn["ttl_rules"] if cdn else None,
            "at_recommended": ((cdn or {}).get("cost") or {}).get("at_recommended") or None}


def caching_summary_markdown(plan: dict[str, Any]) -> str:
    """The caching section alone as Markdown, as the optimization strategy includes it."""
    return render_markdown("partials/caching_summary.md.j2", caching=caching_summary_model(plan))
