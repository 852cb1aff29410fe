"""CDN analysis of the access logs: hit ratios per content class and route, a cacheability audit, and each
fix projected by replaying the window's requests.

Method.

- **Hit ratios** (DuckDB SQL). Each ``requests.cache_status`` is mapped to an outcome by
  :data:`STATUS_RULES` (nginx ``$upstream_cache_status``, Cloudflare, Varnish/Fastly, CloudFront
  ``x-edge-result-type`` and the Squid codes the kit normalises): *hit* (HIT, STALE, UPDATING,
  REVALIDATED...), *miss* (MISS, EXPIRED), *bypass* (BYPASS, PASS, DYNAMIC...: not looked up), *none*
  (no status logged). A 304 counts by its status like any response (a HIT 304 is the edge answering a
  conditional request from its copy); it has no body, so it weighs nothing in byte ratios.
  ``hit_ratio`` = hits / (hits + misses), ``byte_hit_ratio`` the same over ``bytes_sent``; ``offload``
  = hits / (hits + misses + bypasses), ``byte_offload`` likewise (share of edge traffic not fetched from
  the origin). Content classes come from ``content_type``, else the path's extension (:data:`CLASS_SQL`).
- **Audit**. Cacheable-but-not-cached: GET/HEAD responses with a status cacheable by default
  (RFC 9111 §4.2.2) that bypass the cache, on routes of a static class, or whose responses have one size
  for every client that asked for the same key (a proxy for "identical across clients": the log has no
  body hash) and whose route does not look personal (:data:`PERSONAL_ROUTE`). Key fragmentation:
  per route the distinct keys as logged (path + query), with parameters sorted, and with tracking
  parameters (:data:`TRACKING_PARAMS`) removed and the rest sorted; in an unbounded cache each extra key is
  one compulsory miss. ``Vary``: the log does not show request headers, so config ``events`` whose text
  mentions vary are checked instead: the hit ratio of the requests in the event's scope (service, route
  pattern) during the event against the 24 h around it. TTL: EXPIRED share and reuse intervals (time
  between two requests of one key) per class against TTLs the config events state.
- **Projection**. The window's cacheable lookups (GET/HEAD, status 200-399, outcome hit or miss, plus the
  bypassed requests of candidate routes) are replayed through kit.cachesim's LRU (``lru_ttl``, no expiry)
  keyed as today (path + query as logged) and with the proposed key; at the caching plan's recommended
  capacity when notebook 40's result is given, else with an unbounded cache. Traces above
  :data:`REPLAY_MAX_REQUESTS` are sampled spatially (SHARDS filter, capacity scaled) and counts scaled
  back. A longer TTL is projected in SQL: an EXPIRED request becomes a hit when the time since its key was
  last filled is within the proposed TTL (unbounded cache).
- **Cost**. One scan groups the window's requests by the columns outcome, class and keys derive from
  (route, method, status, path, query, content type, cache status); ratios, audits, key counts and the
  replay's totals come from those groups: the raw columns' groups of :mod:`kit.analysis.request_groups`
  (on a table grouped by their 64-bit hash, one row's values read per group; a view is grouped by the
  columns), regrouped by the values ``g`` derives. Within the optimization analyses those are the groups
  built once for all areas, so no scan here; the SQL shown is ``g``'s either way. Single requests are read only where
  order or identity matters: the replay's trace (joined to its group by a 64-bit hash of the path and the
  fewest group columns that tell the groups of those paths apart; above :data:`REPLAY_MAX_REQUESTS`
  lookups only the sampled keys' paths are read) and the Vary periods. Whether two clients asked for a key
  comes from the groups' least and greatest client. Reuse intervals and the TTL gains
  are computed on the replay's trace: exact up to :data:`REPLAY_MAX_REQUESTS` lookups, above it an
  estimate from the sampled keys (counts scaled by 1/R; ``ttl.reuse_sample_rate`` says R), while lookups
  and EXPIRED counts stay exact.

Limits: the replay knows neither cookies nor ``Vary``, so the Vary fix is measured from the log (event vs
baseline), not replayed; per-class numbers of a bounded replay run each class alone in the full capacity
(an upper bound); sizes are per key the largest ``bytes_sent`` seen (compressed or not, as logged).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from kit import fmt
from kit.analysis.opportunity import Opportunity, Saving, opportunity
from kit.analysis.request_groups import CLIENT_AGGREGATES, RequestGroups, request_groups
from kit.analysis.window import Window
from kit.cachesim.policies import lru_ttl, spatial_mask, spatial_sample
from kit.cachesim.trace import CACHE_KEYS, Trace
from kit.errors import DataError
from kit.warehouse import sql_string

__all__ = ["CLASS_SQL", "CONTENT_CLASSES", "CdnAnalysis", "STATUS_RULES", "TRACKING_PARAMS", "analyse_cdn",
           "normalized_query_sql", "outcome_sql"]

# --------------------------------------------------------------------------------------------- definitions
# (status as logged, upper-cased; outcome; who logs it and what it means)
STATUS_RULES: tuple[tuple[str, str, str], ...] = (
    ("HIT", "hit", "served from the edge's fresh copy (nginx, Cloudflare, Varnish, Fastly; CloudFront Hit; "
                   "Squid *HIT)"),
    ("STALE", "hit", "stale copy served, origin not asked (nginx proxy_cache_use_stale, Cloudflare; Squid *STALE*)"),
    ("UPDATING", "hit", "stale copy served while another request refreshes it (nginx, Cloudflare)"),
    ("REVALIDATED", "hit", "copy revalidated with the origin (304), body from the edge (nginx proxy_cache_revalidate, "
                           "Cloudflare; CloudFront RefreshHit; Squid REFRESH_UNMODIFIED)"),
    ("REFRESHHIT", "hit", "CloudFront x-edge-result-type RefreshHit when not normalised"),
    ("HIT-STALE", "hit", "Fastly: stale copy served"),
    ("HIT-CLUSTER", "hit", "Fastly: hit on another node of the POP"),
    ("MISS", "miss", "not in the cache, fetched from the origin and stored if cacheable"),
    ("EXPIRED", "miss", "in the cache but expired, fetched again (nginx, Cloudflare; Squid REFRESH_MODIFIED)"),
    ("MISS-CLUSTER", "miss", "Fastly: miss on the POP's other node too"),
    ("HITMISS", "miss", "Varnish hit-for-miss: looked up, object marked uncacheable for a while"),
    ("BYPASS", "bypass", "cache not consulted (nginx proxy_cache_bypass / no-cache rules, Cloudflare; Squid TUNNEL)"),
    ("PASS", "bypass", "Varnish/Fastly pass: not cacheable by the edge's rules"),
    ("HITPASS", "bypass", "Varnish hit-for-pass: remembered as uncacheable"),
    ("PIPE", "bypass", "Varnish pipe: raw connection to the origin"),
    ("DYNAMIC", "bypass", "Cloudflare: not eligible for caching"),
)
OUTCOMES = ("hit", "miss", "bypass", "none", "unknown")
STATIC_CLASSES = ("js", "css", "images", "fonts", "media")
CACHEABLE_BY_DEFAULT = (200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501)   # RFC 9111 §4.2.2
TRACKING_PARAMS = r"^(utm_[a-z0-9_]*|gclid|gclsrc|dclid|gbraid|wbraid|fbclid|msclkid|yclid|twclid|igshid|" \
                  r"mc_cid|mc_eid|_ga|_gl|_hsenc|_hsmi|mkt_tok|srsltid|li_fat_id|ttclid|epik|s_kwcid)$"
CACHE_BUSTER_PARAMS = r"^(v|ver|version|_|cb|cachebust|cache_bust|nocache|rnd|rand|t|ts|timestamp|hash|rev)$"
PERSONAL_ROUTE = r"(account|cart|checkout|login|logout|session|auth|token|user|order|wishlist|admin|profile|basket)"
REPLAY_MAX_REQUESTS = 2_000_000   # above this the replay samples keys spatially
TRACE_PATH_LIST = 2000            # a sampled trace's paths up to this many filter its scan as constants
VARY_BASELINE_H = 24              # hours on each side of a Vary event taken as its baseline
STANDARD_TTLS_S = (300, 3600, 86_400, 604_800, 2_592_000, 31_536_000)
IMMUTABLE_TTL_S = 31_536_000      # versioned static assets: one year, immutable
DYNAMIC_TTL_CAP_S = 3600          # html/api: the proposal covers the median reuse interval, at most an hour

_EXT = r"\.([a-z0-9]+)$"
CONTENT_CLASSES: dict[str, tuple[str, str]] = {     # class -> (content_type predicate, path extensions)
    "html": ("ct LIKE 'text/html%' OR ct LIKE 'application/xhtml%'", "html|htm|xhtml"),
    "js": ("ct LIKE '%javascript%' OR ct LIKE '%ecmascript%'", "js|mjs|cjs"),
    "css": ("ct LIKE 'text/css%'", "css"),
    "images": ("ct LIKE 'image/%'", "png|jpg|jpeg|gif|webp|avif|svg|ico|bmp|tif|tiff|heic"),
    "fonts": ("ct LIKE 'font/%' OR ct LIKE 'application/font%' OR ct LIKE 'application/x-font%' "
              "OR ct LIKE 'application/vnd.ms-fontobject%'", "woff|woff2|ttf|otf|eot"),
    "media": ("ct LIKE 'video/%' OR ct LIKE 'audio/%' OR ct LIKE 'application/vnd.apple.mpegurl%' "
              "OR ct LIKE 'application/dash+xml%'", "mp4|webm|m4s|m4a|m3u8|mpd|ts|mp3|ogg|wav|mov|flac|aac"),
    "api/json": ("ct LIKE '%json%' OR ct LIKE '%xml%'", "json|xml"),
}


def _class_sql() -> str:
    ct = "lower(content_type)"
    ext = f"regexp_extract(lower(path), '{_EXT}', 1)"
    by_type = " ".join(f"WHEN {pred.replace('ct ', ct + ' ')} THEN '{name}'"
                       for name, (pred, _) in CONTENT_CLASSES.items())
    by_ext = " ".join(f"WHEN {ext} IN ({', '.join(repr(e) for e in exts.split('|'))}) THEN '{name}'"
                      for name, (_, exts) in CONTENT_CLASSES.items())
    return f"CASE {by_type} {by_ext} ELSE 'other' END"


CLASS_SQL = _class_sql()


def outcome_sql(column: str = "cache_status") -> str:
    """SQL mapping a cache status to hit / miss / bypass / none (not logged) / unknown, per STATUS_RULES."""
    up = f"upper(trim({column}))"
    groups: dict[str, list[str]] = {}
    for status, outcome, _ in STATUS_RULES:
        groups.setdefault(outcome, []).append(status)
    whens = " ".join(f"WHEN {up} IN ({', '.join(repr(s) for s in st)}) THEN '{o}'" for o, st in groups.items())
    return (f"CASE WHEN {column} IS NULL OR {up} IN ('', '-', 'NONE') THEN 'none' {whens} "
            f"WHEN {up} LIKE 'HIT%' THEN 'hit' WHEN {up} LIKE 'MISS%' THEN 'miss' ELSE 'unknown' END")


def _params_sql(query: str = "query") -> str:
    return f"list_filter(string_split(coalesce({query}, ''), '&'), lambda x: x <> '')"


def normalized_query_sql(query: str = "query", *, drop_tracking: bool = True) -> str:
    """SQL: the query string with tracking parameters removed (when ``drop_tracking``) and the rest sorted."""
    params = _params_sql(query)
    if drop_tracking:
        params = (f"list_filter({params}, lambda x: NOT regexp_matches(lower(split_part(x, '=', 1)), "
                  f"'{TRACKING_PARAMS}'))")
    return f"array_to_string(list_sort({params}), '&')"


def _key(query_expr: str) -> str:
    """The key SQL: the path alone when the request has no query string (the common case, without the
    list work), else path ? the query as ``query_expr`` rewrites it (the same value either way)."""
    return (f"CASE WHEN query IS NULL OR query = '' THEN path "
            f"ELSE path || coalesce('?' || nullif({query_expr}, ''), '') END")


RAW_KEY_SQL = CACHE_KEYS["path_query"]
SORTED_KEY_SQL = _key(normalized_query_sql(drop_tracking=False))
NORMALIZED_KEY_SQL = _key(normalized_query_sql())


def _base_cte(window: Window) -> str:
    """``r``: the window's requests with outcome, content class and the three keys."""
    return (f"r AS (SELECT ts, service, coalesce(route, path) AS route, upper(coalesce(method, 'GET')) AS method, "
            f"coalesce(status, 200) AS status, path, query, coalesce(bytes_sent, 0) AS bytes, client_hash, "
            f"cache_status, {outcome_sql()} AS outcome, {CLASS_SQL} AS cls, {RAW_KEY_SQL} AS raw_key, "
            f"{SORTED_KEY_SQL} AS sorted_key, {NORMALIZED_KEY_SQL} AS norm_key "
            f"FROM requests WHERE {window.sql()} AND path IS NOT NULL)")


# the columns the outcome, class and keys derive from, as ``g`` groups them; the trace joins requests to
# their group on the 64-bit hash of path and as few of the others as tell the groups apart (:func:`_narrow_key`)
_GROUP_EXPRS = (("service", "service"), ("route", "coalesce(route, path)"),
                ("method", "upper(coalesce(method, 'GET'))"), ("status", "coalesce(status, 200)"), ("path", "path"),
                ("query", "query"), ("content_type", "content_type"), ("cache_status", "cache_status"))
_GROUP_COLS = ", ".join(expr for _, expr in _GROUP_EXPRS)
_GROUP_SELECT = ", ".join(expr if expr == name else f"{expr} AS {name}" for name, expr in _GROUP_EXPRS)
_GROUP_EXPR = dict(_GROUP_EXPRS)
_GROUP_SELECT_NAMES = ", ".join(name for name, _ in _GROUP_EXPRS)
# the columns a narrow join key tries to leave out, first to last (text first; path is always in it)
_NARROWABLE = ("content_type", "query", "service", "route", "method", "status", "cache_status")


def _narrow_key(groups: pd.DataFrame) -> list[str]:
    """The columns of ``groups`` (``g``'s rows, unique on all of them) that still tell every row apart: path
    and, in turn, each other column unless the rows are unique without it (NULLs compare equal)."""
    key = ["path", *_NARROWABLE]
    for col in _NARROWABLE:
        rest = [c for c in key if c != col]
        if not groups.duplicated(subset=rest).any():
            key = rest
    return [c for c in _GROUP_EXPR if c in key]


def _groups_cte(window: Window) -> str:
    """``g``: the window's requests grouped by every column the outcome, class and keys derive from
    (:data:`_GROUP_COLS`), with their count ``n``, ``bytes`` and ``bytes1`` (bytes with at least 1 per
    response); ``gr``: the same rows with outcome, content class and the three keys. What does not need
    single requests (ratios, audits, key counts, the replay's totals) is computed from it."""
    return (f"g AS (SELECT {_GROUP_SELECT}, count(*) AS n, "
            f"sum(coalesce(bytes_sent, 0)) AS bytes, sum(greatest(coalesce(bytes_sent, 0), 1)) AS bytes1, "
            f"{CLIENT_AGGREGATES} FROM requests WHERE {window.sql()} AND path IS NOT NULL GROUP BY ALL), {_GR}")


def _groups_from_shared_sql(shared: str) -> str:
    """The rows of ``g`` (:func:`_groups_cte`, the same rows and integer sums) from the grouped requests
    ``shared`` (:mod:`kit.analysis.request_groups`: grouped by the raw columns, on a table by their 64-bit
    hash): those with a path, regrouped by the values ``g`` derives, computed once per group."""
    return (f"SELECT {_GROUP_SELECT}, sum(n)::BIGINT AS n, sum(bytes) AS bytes, sum(bytes1) AS bytes1, "
            f"min(client_lo) AS client_lo, max(client_hi) AS client_hi, min(bytes_lo) AS bytes_lo, "
            f"max(bytes_hi) AS bytes_hi FROM {shared} WHERE path IS NOT NULL GROUP BY ALL")


_GR = (f"gr AS (SELECT *, {outcome_sql()} AS outcome, {CLASS_SQL} AS cls, {RAW_KEY_SQL} AS raw_key, "
       f"{SORTED_KEY_SQL} AS sorted_key, {NORMALIZED_KEY_SQL} AS norm_key FROM g)")


def _count(where: str, name: str) -> str:
    """The requests of the rows of ``gr`` matching ``where`` (rows weighted by ``n``), as ``name``."""
    return f"coalesce(sum(n) FILTER (WHERE {where}), 0)::BIGINT AS {name}"


_RATIO_COLS = f"""sum(n)::BIGINT AS requests, sum(bytes) AS bytes,
    {_count("outcome = 'hit'", "hits")}, {_count("outcome = 'miss'", "misses")},
    {_count("outcome = 'bypass'", "bypasses")}, {_count("outcome = 'none'", "no_status")},
    {_count("upper(cache_status) = 'EXPIRED'", "expired")},
    coalesce(sum(bytes) FILTER (WHERE outcome = 'hit'), 0) AS hit_bytes,
    coalesce(sum(bytes) FILTER (WHERE outcome = 'miss'), 0) AS miss_bytes,
    coalesce(sum(bytes) FILTER (WHERE outcome = 'bypass'), 0) AS bypass_bytes"""
_RATIOS = """hits / nullif(hits + misses, 0) AS hit_ratio,
    hit_bytes / nullif(hit_bytes + miss_bytes, 0) AS byte_hit_ratio,
    hits / nullif(hits + misses + bypasses, 0) AS offload,
    hit_bytes / nullif(hit_bytes + miss_bytes + bypass_bytes, 0) AS byte_offload,
    expired / nullif(hits + misses, 0) AS expired_share"""



def _mode_cls(rows: str) -> str:
    """Per route of ``rows`` (``gr`` or a part of it) the content class most of its requests have (mode()
    over single requests)."""
    return (f"SELECT service, route, arg_max(cls, k) AS content_class FROM "
            f"(SELECT service, route, cls, sum(n) AS k FROM {rows} GROUP BY ALL) GROUP BY ALL")

# --------------------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class CdnAnalysis:
    """The CDN study of one window. Ratios are 0..1 (None where the denominator is 0), bytes are
    ``bytes_sent`` as logged, counts are requests in the window.

    ``definitions``: the status rules, formulas and key SQL; ``totals``: the window's ratios;
    ``status_counts``: per logged status; ``by_class`` / ``by_route``: ratios per content class / route
    (``by_route`` the top routes by bytes); ``uncached``: routes with cacheable responses that bypass the
    cache (``candidate`` marks those worth caching); ``fragmentation``: routes whose keys split by query
    string; ``parameters``: query parameter names with their kind; ``vary``: config events that changed
    ``Vary``, with the scope's hit ratios; ``ttl``: per class EXPIRED share, reuse intervals (from the
    replay's trace, sampled at ``reuse_sample_rate`` above REPLAY_MAX_REQUESTS lookups), stated TTL;
    ``replay``: the projection's method, capacity and scenarios; ``opportunities``: one per fix."""

    window: Window
    definitions: dict[str, Any]
    totals: dict[str, Any]
    status_counts: pd.DataFrame
    by_class: pd.DataFrame
    by_route: pd.DataFrame
    uncached: pd.DataFrame
    fragmentation: pd.DataFrame
    parameters: pd.DataFrame
    vary: list[dict[str, Any]]
    ttl: pd.DataFrame
    replay: dict[str, Any]
    opportunities: list[Opportunity]
    sql: dict[str, str]
    seconds: float
    timings_s: dict[str, float] = field(default_factory=dict)


def _definitions() -> dict[str, Any]:
    return {
        "statuses": [{"status": s, "outcome": o, "meaning": m} for s, o, m in STATUS_RULES],
        "fallbacks": "other statuses starting with HIT count as hit, with MISS as miss; NULL, '', '-' and NONE "
                     "are 'none' (no cache status logged, left out of every ratio); anything else is 'unknown' "
                     "(left out too, counted in status_counts)",
        "status_304": "a 304 counts by its cache status (HIT/REVALIDATED: the edge answered the conditional "
                      "request; MISS: the origin did); it has no body, so it weighs nothing in byte ratios",
        "hit_ratio": "hits / (hits + misses), requests looked up in the cache",
        "byte_hit_ratio": "bytes_sent of hits / bytes_sent of hits + misses",
        "offload": "hits / (hits + misses + bypasses): share of edge requests not sent to the origin",
        "byte_offload": "bytes_sent of hits / bytes_sent of hits + misses + bypasses",
        "expired_share": "EXPIRED / (hits + misses)",
        "content_class": "from content_type, else the path's extension (html, api/json, js, css, images, fonts, "
                         "media, other)",
        "cacheable_by_default": list(CACHEABLE_BY_DEFAULT),
        "tracking_params": TRACKING_PARAMS, "cache_buster_params": CACHE_BUSTER_PARAMS,
        "personal_route": PERSONAL_ROUTE,
        "outcome_sql": outcome_sql(), "class_sql": CLASS_SQL, "raw_key_sql": RAW_KEY_SQL,
        "sorted_key_sql": SORTED_KEY_SQL, "normalized_key_sql": NORMALIZED_KEY_SQL,
    }


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return con.execute(sql).df()


def _f(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return None if math.isnan(v) else v


# --------------------------------------------------------------------------------------------- entry point
def analyse_cdn(con: duckdb.DuckDBPyConnection, window: Window, *, cache: dict[str, Any] | None = None,
                top_routes: int = 40, groups: RequestGroups | None = None) -> CdnAnalysis:
    """The CDN study of ``requests`` in ``window``; ``cache`` is notebook 40's saved result (its
    recommended capacity sizes the replay; None = unbounded replay); ``groups``: the window's shared
    grouped requests (:mod:`kit.analysis.request_groups`) when the caller has them, from which ``g`` is
    regrouped without a scan of ``requests``. Raises DataError when the window holds no request with a
    cache status."""
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    sql: dict[str, str] = {}
    # Queries that need single requests (reuse intervals, the Vary periods, the replay's trace) read
    # ``requests`` through the CTE ``r``, computing only the columns they use; the others read
    # the grouped requests ``gr`` (:func:`_groups_cte`), held in a temporary table for the study: no copy of
    # the window, only its distinct (route, path, query, type, status, cache status) combinations; regrouped
    # from the shared grouped requests when the caller gives them (no scan of ``requests`` here).
    table = f"cdn_groups_{abs(hash((window.start, window.end))) % 10**8}"
    shown = _groups_cte(window)
    # the table holds ``gr``: outcome, class and keys computed once per group, not in every query that reads it
    def build(shared: str) -> None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS WITH g AS ({_groups_from_shared_sql(shared)}), "
                    f"{_GR} SELECT * FROM gr")

    if groups is None:   # on its own: the requests grouped for this study alone (no asset sizes)
        with request_groups(con, window, assets=False) as own:
            build(own.of(window))
    else:
        build(groups.of(window))
    grouped = f"gr AS (SELECT * FROM {table})"
    try:
        found = _analyse(con, window, cache, top_routes, _base_cte(window), grouped, sql, t_all, timings)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    shown_sql = {k: v.replace(grouped, shown) for k, v in found.sql.items()}
    return replace(found, sql=shown_sql,
                   opportunities=[replace(o, sql={k: v.replace(grouped, shown) for k, v in o.sql.items()})
                                  for o in found.opportunities])


def _analyse(con: duckdb.DuckDBPyConnection, window: Window, cache: dict[str, Any] | None, top_routes: int,
             base: str, groups: str, sql: dict[str, str], t_all: float, timings: dict[str, float]) -> CdnAnalysis:
    """The study of the window's requests through the CTEs ``base`` (single requests, ``r``) and ``groups``
    (grouped, ``g`` and ``gr``)."""

    t0 = time.perf_counter()
    sql["status_counts"] = (f"WITH {groups} SELECT upper(cache_status) AS cache_status, outcome, "
                            f"sum(n)::BIGINT AS requests, sum(bytes) AS bytes FROM gr GROUP BY ALL "
                            f"ORDER BY requests DESC, cache_status NULLS LAST, outcome")
    status_counts = _rows(con, sql["status_counts"])
    logged = int(status_counts.loc[status_counts["outcome"] != "none", "requests"].sum()) if len(status_counts) else 0
    if logged == 0:
        from kit.analysis.coverage import NEEDS

        hint = NEEDS["cache_status"].sentence() if "cache_status" in NEEDS else (
            "Ingest an access log that records the cache status (nginx $upstream_cache_status, the CDN's "
            "x-cache / x-edge-result-type field, Squid result codes).")
        raise DataError(f"no request with a cache status in the window {window.label()}: the CDN analysis "
                        f"needs requests.cache_status. {hint}")
    sql["totals"] = f"WITH {groups}, t AS (SELECT {_RATIO_COLS} FROM gr) SELECT *, {_RATIOS} FROM t"
    totals = {k: (_f(v) if isinstance(v, float) else (int(v) if v is not None else None))
              for k, v in _rows(con, sql["totals"]).iloc[0].items()}
    sql["by_class"] = (f"WITH {groups}, t AS (SELECT cls AS content_class, {_RATIO_COLS} FROM gr GROUP BY cls) "
                       f"SELECT *, {_RATIOS} FROM t ORDER BY bytes DESC, content_class")
    by_class = _rows(con, sql["by_class"])
    sql["by_route"] = (f"WITH {groups}, m AS ({_mode_cls('gr')}), t AS (SELECT service, route, "
                       f"any_value(m.content_class) AS content_class, {_RATIO_COLS} FROM gr JOIN m USING (service, "
                       f"route) GROUP BY service, route) SELECT *, {_RATIOS} FROM t "
                       f"ORDER BY bytes DESC, service, route LIMIT {int(top_routes)}")
    by_route = _rows(con, sql["by_route"])
    timings["ratios_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    statuses = ", ".join(str(s) for s in CACHEABLE_BY_DEFAULT)
    # k: per key of the 200s looked up (outcome not 'none'), whether two clients asked for it (the least and
    # greatest client of its groups differ) and whether every response had one size: what count(DISTINCT)
    # >= 2 and = 1 would say, from the groups (a pass of requests per (path, query, client, size) took
    # minutes and 14 GB on the 100M-request demo, with about one group per request)
    pairs = """\
k AS (SELECT service, route, norm_key, sum(n) AS n, coalesce(min(client_lo) < max(client_hi), false) AS two_clients,
             min(bytes_lo) = max(bytes_hi) AS one_size
      FROM gr WHERE method IN ('GET', 'HEAD') AND status = 200 AND outcome <> 'none' GROUP BY ALL),
i AS (SELECT service, route, sum(n) FILTER (WHERE two_clients) AS multi,
             sum(n) FILTER (WHERE two_clients AND one_size) AS same FROM k GROUP BY ALL)"""
    rest = f"""c AS (SELECT * FROM gr WHERE method IN ('GET', 'HEAD') AND status IN ({statuses}) AND outcome <> 'none'),
m AS ({_mode_cls('c')}),
u AS (SELECT service, route, any_value(m.content_class) AS content_class, sum(n)::BIGINT AS requests,
             sum(bytes) AS bytes,
             {_count("outcome = 'bypass'", "bypasses")},
             coalesce(sum(bytes) FILTER (WHERE outcome = 'bypass'), 0) AS bypass_bytes,
             {_count("outcome = 'miss'", "misses")}, {_count("outcome = 'hit'", "hits")}
      FROM c JOIN m USING (service, route) GROUP BY service, route)
SELECT u.*, bypasses / requests AS bypass_share, coalesce(i.same, 0) / nullif(i.multi, 0) AS same_size_share,
       regexp_matches(lower(u.route), '{PERSONAL_ROUTE}') AS personal,
       bypass_share >= 0.5 AND (content_class IN ({', '.join(repr(c) for c in STATIC_CLASSES)})
           OR (coalesce(same_size_share, 0) >= 0.9 AND NOT personal)) AS candidate
FROM u LEFT JOIN i USING (service, route) WHERE bypasses > 0 ORDER BY candidate DESC, bypass_bytes DESC"""
    sql["uncached"] = f"WITH {groups},\n{pairs},\n{rest}"
    uncached = _rows(con, sql["uncached"])
    timings["uncached_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    look = "method IN ('GET', 'HEAD') AND status BETWEEN 200 AND 399 AND outcome IN ('hit', 'miss')"
    sql["fragmentation"] = f"""WITH {groups}
SELECT service, route, sum(n)::BIGINT AS requests, sum(bytes) AS bytes, count(DISTINCT path) AS paths,
       count(DISTINCT raw_key) AS raw_keys, count(DISTINCT sorted_key) AS sorted_keys,
       count(DISTINCT norm_key) AS normalized_keys,
       coalesce(sum(n) FILTER (WHERE list_has_any(list_transform({_params_sql()},
           lambda x: regexp_matches(lower(split_part(x, '=', 1)), '{TRACKING_PARAMS}')), [true])), 0)::BIGINT
           AS tracked_requests,
       count(DISTINCT raw_key) - count(DISTINCT norm_key) AS extra_keys,
       count(DISTINCT raw_key) - count(DISTINCT sorted_key) AS order_keys
FROM gr WHERE {look} GROUP BY ALL HAVING count(DISTINCT raw_key) > count(DISTINCT norm_key)
ORDER BY extra_keys DESC, service, route"""
    fragmentation = _rows(con, sql["fragmentation"])
    sql["parameters"] = f"""WITH {groups}, p AS (SELECT service, route, n, unnest({_params_sql()}) AS kv FROM gr
    WHERE {look})
SELECT lower(split_part(kv, '=', 1)) AS name, sum(n)::BIGINT AS requests, count(DISTINCT kv) AS distinct_values,
       count(DISTINCT service || ' ' || route) AS routes, min(service || ' ' || route) AS example_route,
       CASE WHEN regexp_matches(name, '{TRACKING_PARAMS}') THEN 'tracking'
            WHEN regexp_matches(name, '{CACHE_BUSTER_PARAMS}') AND count(DISTINCT kv) > 0.5 * sum(n)
                 THEN 'per-request cache buster'
            WHEN regexp_matches(name, '{CACHE_BUSTER_PARAMS}') THEN 'asset version'
            ELSE 'content' END AS kind
FROM p GROUP BY 1 ORDER BY requests DESC, name LIMIT 60"""
    parameters = _rows(con, sql["parameters"])
    timings["fragmentation_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    vary, vary_sql = _vary(con, window, base)
    sql.update(vary_sql)
    timings["vary_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cand = uncached.loc[uncached["candidate"].astype(bool), ["service", "route"]] if len(uncached) else uncached
    trace = _trace(con, window, base, groups, cand)
    timings["trace_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ttl, ttl_sql = _ttl(con, window, base, groups, look, trace)
    sql.update(ttl_sql)
    timings["ttl_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    replay, replay_sql = _replay(trace, cand, cache)
    sql.update(replay_sql)
    timings["replay_s"] = time.perf_counter() - t0

    all_bytes = float(totals["bytes"] or 0)
    opps = _opportunities(window, totals, fragmentation, parameters, uncached, vary, ttl, replay, sql, all_bytes)
    return CdnAnalysis(window, _definitions(), totals, status_counts, by_class, by_route, uncached, fragmentation,
                       parameters, vary, ttl, replay, opps, sql, time.perf_counter() - t_all, timings)


# --------------------------------------------------------------------------------------------- Vary
def _scope_sql(service: Any, route: Any) -> str:
    parts = []
    if isinstance(service, str) and service:
        parts.append("service = '" + service.replace("'", "''") + "'")
    if isinstance(route, str) and route:
        like = route.replace("'", "''").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
        parts.append(f"(path LIKE '{like}' ESCAPE '\\' OR route LIKE '{like}' ESCAPE '\\')")
    return " AND ".join(parts) or "TRUE"


def _vary(con: duckdb.DuckDBPyConnection, window: Window, base: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Config events that mention Vary, with the hit ratios of their scope during and around them."""
    ev_sql = ("SELECT ts_start, coalesce(ts_end, ts_start + INTERVAL 1 HOUR) AS ts_end, ts_end IS NULL AS open_end, "
              "service, route, what, CAST(details AS VARCHAR) AS details FROM events WHERE kind = 'config' "
              "AND (lower(what) LIKE '%vary%' OR lower(CAST(details AS VARCHAR)) LIKE '%vary%') "
              f"AND ts_start < TIMESTAMPTZ '{window.end.isoformat()}' "
              f"AND coalesce(ts_end, ts_start) >= TIMESTAMPTZ '{window.start.isoformat()}' ORDER BY ts_start")
    sqls = {"vary_events": ev_sql}
    try:
        events = con.execute(ev_sql).fetchall()
    except duckdb.CatalogException:
        return [], sqls
    out = []
    for i, (start, end, open_end, service, route, what, details) in enumerate(events):
        scope = _scope_sql(service, route)
        s, e = start.isoformat(), end.isoformat()
        phase = (f"CASE WHEN ts >= TIMESTAMPTZ '{s}' AND ts < TIMESTAMPTZ '{e}' THEN 'during' "
                 f"WHEN ts >= TIMESTAMPTZ '{s}' - INTERVAL {VARY_BASELINE_H} HOUR "
                 f"AND ts < TIMESTAMPTZ '{e}' + INTERVAL {VARY_BASELINE_H} HOUR THEN 'baseline' END")
        near = (f"ts >= TIMESTAMPTZ '{s}' - INTERVAL {VARY_BASELINE_H} HOUR "   # the rows with a phase: lets
                f"AND ts < TIMESTAMPTZ '{e}' + INTERVAL {VARY_BASELINE_H} HOUR")  # the scan skip the rest
        q = f"""WITH {base}, s AS (SELECT *, {phase} AS phase FROM r WHERE {near} AND {scope}
                AND method IN ('GET', 'HEAD') AND outcome IN ('hit', 'miss'))
SELECT phase, service, route, date_trunc('hour', ts) AS hour, count(*) AS lookups,
       count(*) FILTER (WHERE outcome = 'hit') AS hits, sum(bytes) AS bytes,
       coalesce(sum(bytes) FILTER (WHERE outcome = 'hit'), 0) AS hit_bytes
FROM s WHERE phase IS NOT NULL GROUP BY ALL"""
        sqls[f"vary_{i}"] = q
        df = con.execute(q).df()
        if df.empty:
            continue
        during, basel = df[df["phase"] == "during"], df[df["phase"] == "baseline"]
        if during.empty or basel.empty:
            continue

        def ratios(d: pd.DataFrame) -> tuple[float, float]:
            return (float(d["hits"].sum()) / max(float(d["lookups"].sum()), 1.0),
                    float(d["hit_bytes"].sum()) / max(float(d["bytes"].sum()), 1.0))

        hr_d, bhr_d = ratios(during)
        hr_b, bhr_b = ratios(basel)
        hourly = basel.groupby("hour")[["hit_bytes", "bytes", "hits", "lookups"]].sum()
        hourly = hourly[hourly["bytes"] > 0]
        sd_b = float((hourly["hit_bytes"] / hourly["bytes"]).std(ddof=1)) if len(hourly) > 2 else 0.0
        sd_h = float((hourly["hits"] / hourly["lookups"]).std(ddof=1)) if len(hourly) > 2 else 0.0
        n_d, b_d = float(during["lookups"].sum()), float(during["bytes"].sum())
        routes = []
        for (svc, rt), g in during.groupby(["service", "route"]):
            gb = basel[(basel["service"] == svc) & (basel["route"] == rt)]
            routes.append({"service": svc, "route": rt, "lookups": int(g["lookups"].sum()),
                           "bytes": int(g["bytes"].sum()),
                           "hit_ratio_during": float(g["hits"].sum()) / max(float(g["lookups"].sum()), 1.0),
                           "hit_ratio_baseline": (float(gb["hits"].sum()) / float(gb["lookups"].sum())
                                                  if len(gb) and gb["lookups"].sum() else None)})
        routes.sort(key=lambda x: -x["bytes"])
        extra_bytes = b_d * (bhr_b - bhr_d)
        out.append({
            "what": what, "service": service, "route_pattern": route, "start": start, "end": end,
            "open_end": bool(open_end), "details": details, "scope_sql": scope,
            "lookups_during": int(n_d), "bytes_during": int(b_d),
            "hit_ratio_during": hr_d, "byte_hit_ratio_during": bhr_d,
            "hit_ratio_baseline": hr_b, "byte_hit_ratio_baseline": bhr_b,
            "baseline": f"the same scope {VARY_BASELINE_H} h before and after the event",
            "extra_origin_requests": n_d * (hr_b - hr_d),
            "extra_origin_requests_low": n_d * max(hr_b - 1.96 * sd_h - hr_d, 0.0),
            "extra_origin_requests_high": n_d * min(hr_b + 1.96 * sd_h - hr_d, 1.0),
            "extra_origin_bytes": extra_bytes,
            "extra_origin_bytes_low": b_d * max(bhr_b - 1.96 * sd_b - bhr_d, 0.0),
            "extra_origin_bytes_high": b_d * min(bhr_b + 1.96 * sd_b - bhr_d, 1.0),
            "reverted": "revert" in f"{what} {details}".lower(),
            "routes": routes,
        })
    return out, sqls


# --------------------------------------------------------------------------------------------- TTL
def _ttl_events(con: duckdb.DuckDBPyConnection, window: Window) -> list[dict[str, Any]]:
    try:
        rows = con.execute(
            "SELECT ts_start, service, route, what, details->>'$.new' AS new, details->>'$.setting' AS setting "
            "FROM events WHERE kind = 'config' AND (lower(CAST(details AS VARCHAR)) LIKE '%ttl%' "
            "OR lower(what) LIKE '%ttl%' OR lower(CAST(details AS VARCHAR)) LIKE '%max-age%') "
            f"AND ts_start < TIMESTAMPTZ '{window.end.isoformat()}' ORDER BY ts_start").fetchall()
    except duckdb.Error:
        return []
    out = []
    for ts, service, route, what, new, setting in rows:
        seconds = None
        m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", str(new or ""))
        if m:
            seconds = int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        out.append({"ts": ts, "service": service, "route": route, "what": what, "setting": setting,
                    "ttl_s": seconds})
    return out


def _ttl(con: duckdb.DuckDBPyConnection, window: Window, base: str, groups: str, look: str, trace: _TraceSample
         ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per class: EXPIRED share of lookups, reuse interval quantiles (s) and the TTL config events state.
    Lookups and EXPIRED counts are exact; reuse intervals and the TTL gains come from the replay's trace,
    the whole trace up to :data:`REPLAY_MAX_REQUESTS` lookups, above it the keys sampled spatially at its
    rate (every request of a kept key; counts scaled back). Keys are told apart by the 64-bit hash of the
    normalised key (as in the replay). The SQL shown computes them from every request."""
    q = f"""WITH {base}, s AS (SELECT cls, outcome, cache_status, bytes,
        epoch(ts) - epoch(lag(ts) OVER (PARTITION BY hash(norm_key) ORDER BY ts)) AS gap FROM r WHERE {look})
SELECT cls AS content_class, count(*) AS lookups,
       count(*) FILTER (WHERE upper(cache_status) = 'EXPIRED') AS expired,
       coalesce(sum(bytes) FILTER (WHERE upper(cache_status) = 'EXPIRED'), 0) AS expired_bytes,
       expired / count(*) AS expired_share,
       count(gap) AS reuses, quantile_cont(gap, 0.5) AS reuse_p50_s, quantile_cont(gap, 0.9) AS reuse_p90_s,
       quantile_cont(gap, 0.99) AS reuse_p99_s
FROM s GROUP BY cls ORDER BY expired DESC, cls"""
    looked = ~trace.frame["extra"].to_numpy(bool)
    if trace.rate < 1:   # the requests of the sampled normalised keys (the others came for their raw key)
        looked &= np.isin(trace.frame["h_norm"].to_numpy(np.uint64), trace.kept_norm)
    look_rows = trace.frame[looked]
    con.register("cdn_ttl_sample", look_rows)
    try:
        df = con.execute(f"""WITH {groups},
c AS (SELECT cls AS content_class, sum(n)::BIGINT AS lookups,
             coalesce(sum(n) FILTER (WHERE upper(cache_status) = 'EXPIRED'), 0)::BIGINT AS expired,
             coalesce(sum(bytes) FILTER (WHERE upper(cache_status) = 'EXPIRED'), 0) AS expired_bytes
      FROM gr WHERE {look} GROUP BY cls),
s AS (SELECT cls, t - lag(t) OVER (PARTITION BY h_norm ORDER BY t) AS gap FROM cdn_ttl_sample),
q AS (SELECT cls, count(gap) AS reuses, quantile_cont(gap, 0.5) AS reuse_p50_s, quantile_cont(gap, 0.9) AS reuse_p90_s,
             quantile_cont(gap, 0.99) AS reuse_p99_s FROM s GROUP BY cls)
SELECT content_class, lookups, expired, expired_bytes, expired / lookups AS expired_share,
       round(coalesce(reuses, 0) / {trace.rate!r})::BIGINT AS reuses, reuse_p50_s, reuse_p90_s, reuse_p99_s,
       {trace.rate!r} AS reuse_sample_rate
FROM c LEFT JOIN q ON q.cls = c.content_class ORDER BY expired DESC, c.content_class""").df()
    finally:
        con.unregister("cdn_ttl_sample")
    events = _ttl_events(con, window)
    stated = []
    for cls in df["content_class"]:
        hit = next((e for e in reversed(events) if e["ttl_s"] and (_class_of_pattern(f"{e['route']} {e['what']}") == cls
                    or not e["route"])), None)
        stated.append(None if hit is None else f"{hit['ttl_s']} s ({hit['what']})")
    df["stated_ttl"] = stated
    sqls = {"ttl_by_class": q}
    proposed: dict[str, int] = {}
    for _, row in df.iterrows():
        cls = str(row["content_class"])
        if row["expired"] > 0 and row["reuses"] > 0:
            proposed[cls] = (IMMUTABLE_TTL_S if cls in STATIC_CLASSES
                             else min(_round_ttl(max(float(row["reuse_p50_s"] or 0), 300.0)), DYNAMIC_TTL_CAP_S))
    gains: dict[str, tuple[int, int]] = {}
    routes: dict[str, list[str]] = {}
    if proposed:
        sqls["ttl_gain"] = _ttl_gain_sql(base, look, proposed)
        values = ", ".join(f"('{c}', {float(t)})" for c, t in proposed.items())
        con.register("cdn_ttl_sample", look_rows)
        try:
            found = con.execute(f"""WITH p(cls, ttl_s) AS (VALUES {values}),
s AS (SELECT t, cls, sz, expired, max(CASE WHEN miss THEN t END) OVER (PARTITION BY h_norm ORDER BY t
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS filled FROM cdn_ttl_sample)
SELECT cls, count(*), coalesce(sum(sz), 0) FROM s JOIN p USING (cls)
WHERE expired AND filled IS NOT NULL AND t - filled <= p.ttl_s GROUP BY cls""").fetchall()
        finally:
            con.unregister("cdn_ttl_sample")
        gains = {c: (int(round(int(h or 0) / trace.rate)), int(round(int(b or 0) / trace.rate))) for c, h, b in found}
        for c, svc, rt in con.execute(
                f"""WITH {groups} SELECT cls, service, route FROM gr WHERE {look} AND upper(cache_status) = 'EXPIRED'
                    GROUP BY cls, service, route
                    QUALIFY row_number() OVER (PARTITION BY cls ORDER BY sum(n) DESC, service, route) <= 5
                    ORDER BY cls, sum(n) DESC, service, route""").fetchall():
            routes.setdefault(c, []).append(f"{svc} {rt}")
    classes = [str(c) for c in df["content_class"]]
    df["proposed_ttl_s"] = [proposed.get(c) for c in classes]
    df["hits_gained"] = [gains.get(c, (0, 0))[0] for c in classes]
    df["bytes_gained"] = [gains.get(c, (0, 0))[1] for c in classes]
    df["top_routes"] = [routes.get(c, []) for c in classes]
    return df, sqls


def _class_of_pattern(pattern: Any) -> str | None:
    """The content class a route pattern names by its path (``/static/img/*`` → images), or None."""
    p = str(pattern or "").lower()
    for name, key in (("images", r"/(img|images?)\b"), ("js", r"/js\b"), ("css", r"/css\b"),
                      ("fonts", r"/fonts?\b"), ("media", r"/(video|media)\b")):
        if re.search(key, p):
            return name
    return None


def _ttl_gain_sql(base: str, look: str, ttl_by_class: dict[str, int]) -> str:
    """Per class, EXPIRED lookups whose key was last filled (its previous MISS/EXPIRED) at most the class's
    proposed TTL (s) before: the hits that TTL adds in an unbounded cache."""
    values = ", ".join(f"('{c}', {float(t)})" for c, t in ttl_by_class.items())
    return f"""WITH {base}, p(cls, ttl_s) AS (VALUES {values}),
s AS (SELECT ts, cls, bytes, cache_status,
        max(CASE WHEN outcome = 'miss' THEN ts END) OVER (PARTITION BY hash(norm_key) ORDER BY ts
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS filled
    FROM r WHERE {look})
SELECT cls, count(*) AS hits_gained, coalesce(sum(bytes), 0) AS bytes_gained FROM s JOIN p USING (cls)
WHERE upper(cache_status) = 'EXPIRED' AND filled IS NOT NULL AND epoch(ts) - epoch(filled) <= p.ttl_s
GROUP BY cls"""


# --------------------------------------------------------------------------------------------- replay
@dataclass(frozen=True)
class _TraceSample:
    """The replay's trace: per key pair and class the whole trace's requests (``n``), bytes (``b``, at least 1
    per response) and hits (``keys``); the fetched requests (``frame``, in time order: all of them when
    ``rate`` is 1, else those of the keys SHARDS keeps at ``rate``, ``kept_norm`` the normalised keys kept)
    and the trace's SQL."""

    keys: pd.DataFrame
    frame: pd.DataFrame
    rate: float
    kept_norm: np.ndarray
    sql: str


_CLASS_NAMES = (*CONTENT_CLASSES, "other")


def _trace(con: duckdb.DuckDBPyConnection, window: Window, base: str, groups: str, cand: pd.DataFrame
           ) -> _TraceSample:
    """The cacheable lookups (GET/HEAD, status 200-399, hit or miss, plus the bypassed requests of the
    candidate routes ``cand``); above :data:`REPLAY_MAX_REQUESTS` only the requests of the keys SHARDS keeps
    are fetched (either key: as logged or normalised)."""
    if len(cand):
        pairs = " OR ".join("(service = '" + str(s).replace("'", "''") + "' AND route = '"
                            + str(rt).replace("'", "''") + "')"
                            for s, rt in zip(cand["service"], cand["route"], strict=True))
    else:
        pairs = "FALSE"
    where = f"""method IN ('GET', 'HEAD') AND status BETWEEN 200 AND 399
  AND (outcome IN ('hit', 'miss') OR (outcome = 'bypass' AND ({pairs})))"""
    q = f"""WITH {base} SELECT epoch(ts) AS t, hash(raw_key) AS h_raw, hash(norm_key) AS h_norm, bytes AS sz, cls,
       outcome = 'bypass' AS extra
FROM r WHERE {where} ORDER BY ts"""
    keys = con.execute(f"""WITH {groups} SELECT path, query, hash(raw_key) AS h_raw, hash(norm_key) AS h_norm, cls,
       outcome = 'bypass' AS extra, sum(n)::BIGINT AS n, sum(bytes1)::BIGINT AS b,
       coalesce(sum(n) FILTER (WHERE outcome = 'hit'), 0)::BIGINT AS hits
FROM gr WHERE {where} GROUP BY ALL""").df()
    n = int(keys["n"].sum())
    rate = min(1.0, REPLAY_MAX_REQUESTS / n) if n else 1.0
    # The requests are fetched by joining them to their group of ``gr`` on the hash of a few of its columns; the
    # group carries the keys' hashes, the class and the outcome: nothing else is computed per request.
    names = ", ".join(f"'{c}'" for c in _CLASS_NAMES)
    kept_norm = np.unique(keys["h_norm"].to_numpy(np.uint64))
    kept_sql = "TRUE"
    try:
        if n and rate < 1:
            kept = [spatial_sample(Trace(col, ids, np.ones(len(ids), np.int64)), rate).obj_id
                    for col in ("h_raw", "h_norm") for ids in [np.unique(keys[col].to_numpy(np.uint64))]]
            kept_norm = kept[1]
            con.register("cdn_kept_raw", pd.DataFrame({"h": kept[0]}))
            con.register("cdn_kept_norm", pd.DataFrame({"h": kept[1]}))
            kept_sql = "(h_raw IN (SELECT h FROM cdn_kept_raw) OR h_norm IN (SELECT h FROM cdn_kept_norm))"
        # m: the groups of the trace (of the kept keys when sampled) with the keys' hashes, class and outcome
        sel = f"{where.strip()} AND {kept_sql}" if kept_sql != "TRUE" else where.strip()
        head = f"""WITH {groups}, m AS (
  SELECT * FROM (SELECT *, hash(raw_key) AS h_raw, hash(norm_key) AS h_norm,
                        list_position([{names}], cls)::UTINYINT AS cls_code, outcome = 'bypass' AS extra,
                        outcome = 'miss' AS miss, coalesce(upper(cache_status) = 'EXPIRED', false) AS expired
                 FROM gr) WHERE {sel})"""
        # sampled: the kept keys' paths filter the scan (a few per cent of it); up to TRACE_PATH_LIST paths as a
        # list of constants (about a fifth less CPU than the semi-join on the subquery)
        paths = " AND path IN (SELECT DISTINCT path FROM m)" if kept_sql != "TRUE" else ""
        in_paths = "TRUE"
        if paths:
            kept_paths = [p for (p,) in con.execute(f"{head}\nSELECT DISTINCT path FROM m ORDER BY path").fetchall()]
            if len(kept_paths) <= TRACE_PATH_LIST:
                paths = " AND path IN (" + (", ".join(sql_string(p) for p in kept_paths) or "NULL") + ")"
            in_paths = "path IN (SELECT DISTINCT path FROM m)"
        # A request is joined to its group on the hash of the path and as few of the other group columns as
        # tell apart every group of the paths read (selected or not): each column the scan reads costs a pass
        # over all its vectors, even when a few per cent of the rows pass the path filter.
        read = con.execute(f"{head}\nSELECT {_GROUP_SELECT_NAMES} FROM gr WHERE {in_paths}").df()
        key = _narrow_key(read)
        fetch = f"""{head}
SELECT epoch(q.ts) AS t, m.h_raw, m.h_norm, coalesce(q.bytes_sent, 0) AS sz, m.cls_code, m.extra, m.miss, m.expired
FROM (SELECT ts, bytes_sent, hash({", ".join(_GROUP_EXPR[c] for c in key)}) AS k FROM requests
      WHERE {window.sql()} AND path IS NOT NULL{paths}) q
JOIN (SELECT *, hash({", ".join(key)}) AS k FROM m) m USING (k)"""
        df = con.execute(fetch).df()
    finally:   # the kept keys' views go with the fetch, also when a query before it fails
        if kept_sql != "TRUE":
            con.unregister("cdn_kept_raw")
            con.unregister("cdn_kept_norm")
    df = df.iloc[np.argsort(df["t"].to_numpy(np.float64), kind="stable")].reset_index(drop=True)
    # the class as a categorical (one byte per request: DuckDB reads it as an ENUM, numpy compares its codes)
    df["cls"] = pd.Categorical.from_codes(df.pop("cls_code").to_numpy(np.int64) - 1, categories=list(_CLASS_NAMES))
    return _TraceSample(keys, df, rate, kept_norm, q)


def _replay(trace: _TraceSample, cand: pd.DataFrame, cache: dict[str, Any] | None
            ) -> tuple[dict[str, Any], dict[str, str]]:
    """LRU replays (kit.cachesim.lru_ttl, no expiry) of today's key, the normalised key, and the normalised
    key with the candidate routes' bypassed requests cached; absolute hits and hit bytes per class."""
    keys, df, rate, q = trace.keys, trace.frame, trace.rate, trace.sql
    n = int(keys["n"].sum())
    if n == 0:
        return {"method": "no cacheable lookups to replay", "scenarios": []}, {"replay_trace": q}
    t = df["t"].to_numpy(np.float64)
    sz_raw = df["sz"].to_numpy(np.int64)
    cls = df["cls"].cat.codes.to_numpy()
    extra = df["extra"].to_numpy(bool)
    bounded = cache is not None and cache.get("sizing", {}).get("recommended_capacity_bytes")
    capacity = float(cache["sizing"]["recommended_capacity_bytes"]) if bounded and cache is not None else None

    sizes_all = np.maximum(sz_raw, 1)

    ids_raw = df["h_raw"].to_numpy(np.uint64)
    ids_norm = df["h_norm"].to_numpy(np.uint64)
    # the SHARDS filter of each key, once (the requests sampling each selection again would keep)
    kept_raw, kept_norm = spatial_mask(ids_raw, rate), spatial_mask(ids_norm, rate)

    def run(ids: np.ndarray, kept: np.ndarray, sel: np.ndarray) -> tuple[float, float]:
        """(hits, hit bytes) of the selected requests whose key ``kept`` (scaled back when sampled)."""
        if not sel.any():
            return 0.0, 0.0
        s = sel & kept
        tr = Trace("cdn", ids[s], sizes_all[s], t[s])
        if len(tr) == 0:
            return 0.0, 0.0
        cap = int(round(capacity * rate)) if capacity is not None else int(tr.size_bytes.sum()) + 1
        m, b = lru_ttl(tr, max(cap, 1), 0.0)
        return (1.0 - m) * len(tr) / rate, (1.0 - b) * float(tr.size_bytes.sum()) / rate

    base_sel = ~extra
    everything = np.ones(len(df), bool)
    scen = [("today", "key as logged (path + query)", ids_raw, kept_raw, base_sel),
            ("normalize_query", "path + query without tracking parameters, the rest sorted", ids_norm, kept_norm,
             base_sel)]
    if keys["extra"].any():
        scen.append(("cache_bypassed", "normalised key, and the candidate routes' bypassed responses cached",
                     ids_norm, kept_norm, everything))
    per_class = keys.groupby("cls")[["n", "b"]].sum()
    classes = sorted(str(c) for c in per_class.index)
    requests_all = float(n)
    bytes_all = float(keys["b"].sum())
    scenarios = []
    for name, desc, ids, kept, sel in scen:
        h, hb = run(ids, kept, sel)
        per_cls = {}
        for c in classes:
            csel = sel & (cls == _CLASS_NAMES.index(c))
            ch, chb = run(ids, kept, csel)
            creq = float(per_class.loc[c, "n"])
            cbytes = float(per_class.loc[c, "b"])
            per_cls[c] = {"hits": ch, "hit_bytes": chb, "requests": creq, "bytes": cbytes,
                          "hit_ratio": ch / creq if creq else None,
                          "byte_hit_ratio": chb / cbytes if cbytes else None}
        scenarios.append({"name": name, "key": desc, "hits": h, "hit_bytes": hb,
                          "hit_ratio": h / requests_all, "byte_hit_ratio": hb / bytes_all if bytes_all else None,
                          "origin_bytes": bytes_all - hb, "by_class": per_cls})
    method = ("LRU (kit.cachesim.lru_ttl, no expiry) at the caching plan's recommended capacity "
              f"{capacity:,.0f} bytes" if capacity is not None else
              "LRU (kit.cachesim.lru_ttl, no expiry) with an unbounded cache (capacity = every object once): "
              "only compulsory misses")
    if rate < 1:
        method += f"; keys sampled spatially at R={rate:.4f}, capacity scaled by R, counts scaled by 1/R"
    if capacity is not None:
        method += "; per-class figures replay each class alone in the full capacity (an upper bound)"
    looked = keys[~keys["extra"].astype(bool)]   # the lookups of ``look``: hit or miss
    observed = (int(looked["hits"].sum()), int(looked["n"].sum()))
    return ({"method": method, "capacity_bytes": capacity, "bounded": capacity is not None, "sample_rate": rate,
             "requests": int(n), "bytes": bytes_all,
             "bytes_basis": "bytes_sent as logged (at least 1 byte per response); a hit saves the bytes of that "
                            "response",
             "candidate_routes": [f"{s} {r}" for s, r in zip(cand.get("service", []), cand.get("route", []),
                                                              strict=True)],
             "observed_hit_ratio": (observed[0] / observed[1]) if observed and observed[1] else None,
             "scenarios": scenarios}, {"replay_trace": q})


# --------------------------------------------------------------------------------------------- opportunities
def _route_addr(service: Any, route: Any) -> str:
    return f"route:{service} {route}"


def _round_ttl(seconds: float) -> int:
    return next((s for s in STANDARD_TTLS_S if s >= seconds), STANDARD_TTLS_S[-1])


def _opportunities(window: Window, totals: dict[str, Any], frag: pd.DataFrame, params: pd.DataFrame,
                   uncached: pd.DataFrame, vary: list[dict[str, Any]], ttl: pd.DataFrame, replay: dict[str, Any],
                   sql: dict[str, str], all_bytes: float) -> list[Opportunity]:
    out: list[Opportunity] = []
    basis = "all bytes served"
    def share(v: float) -> float:
        return v / all_bytes if all_bytes else 0.0

    scen = {s["name"]: s for s in replay.get("scenarios", [])}
    today = scen.get("today")

    # 1. normalise the query string
    norm = scen.get("normalize_query")
    if today and norm and len(frag) and norm["hit_bytes"] > today["hit_bytes"]:
        gained_b = norm["hit_bytes"] - today["hit_bytes"]
        gained_r = norm["hits"] - today["hits"]
        top = frag.head(8)
        tracking = [str(x) for x in params.loc[params["kind"] == "tracking", "name"].head(8)] if len(params) else []
        routes_txt = ", ".join(f"{s} {r} ({int(a)} → {int(b)} keys)" for s, r, a, b in
                               zip(top["service"], top["route"], top["raw_keys"], top["normalized_keys"], strict=True))
        out.append(opportunity(
            "cdn", "Normalise the CDN cache key's query string: drop tracking parameters, sort the rest",
            change=("nginx: build the key from the path and a normalised query, e.g. `map $args $cache_args` that "
                    "strips `utm_*`, `gclid`, `fbclid`, `msclkid` and sorts the rest (njs or Lua), then "
                    "`proxy_cache_key $scheme$host$uri$cache_args;`; on a CDN: a cache-key policy with a query "
                    "string allow-list (CloudFront cache policy / Fastly `querystring.filter_except` + "
                    "`querystring.sort` / Cloudflare cache key 'query string: sort, exclude utm_*')"),
            evidence=(f"{int(frag['extra_keys'].sum()):,} extra cache keys on {len(frag)} routes come only from "
                      f"tracking parameters or parameter order ({routes_txt}); tracking parameters seen: "
                      f"{', '.join(tracking) or 'none'}; {int(frag['tracked_requests'].sum()):,} lookups carried one"),
            effect=(f"replay ({replay['method']}): hit ratio {today['hit_ratio']:.1%} → {norm['hit_ratio']:.1%}, "
                    f"byte hit ratio {today['byte_hit_ratio'] or 0:.1%} → {norm['byte_hit_ratio'] or 0:.1%}; "
                    f"{gained_r:,.0f} fewer origin requests and {gained_b:,.0f} fewer origin bytes in the window"),
            verify=("after the change, the distinct keys per route (fragmentation SQL) fall to the normalised count "
                    "and the routes' hit ratio (by_route SQL) rises; analytics still receive utm_* (they read "
                    "the client URL, not the cache key)"),
            risk="a parameter wrongly listed as tracking would serve one variant for different content",
            effort="low",
            saving=Saving(gained_b, "bytes", basis, share(gained_b)),
            sql={"fragmentation": sql["fragmentation"], "parameters": sql["parameters"],
                 "replay_trace": sql["replay_trace"]},
            addresses=[_route_addr(s, r) for s, r in zip(top["service"], top["route"], strict=True)],
            details={"requests_saved": gained_r, "origin_bytes_saved": gained_b, "saving_basis": "origin bytes",
                     "replay": replay["method"]}))

    # 2. Vary: Cookie
    for ev in vary:
        low, high = ev["extra_origin_bytes_low"], ev["extra_origin_bytes_high"]
        val = ev["extra_origin_bytes"]
        if val <= 0:
            continue
        scope = ev["route_pattern"] or ev["service"] or "the affected"
        out.append(opportunity(
            "cdn", f"Remove Cookie from Vary on {scope} responses (keep Accept-Encoding)",
            change=(f"send `Vary: Accept-Encoding` only on {scope} responses (nginx `proxy_hide_header Vary; "
                    f"add_header Vary Accept-Encoding;` or the origin's header), and add a config check that "
                    f"rejects `Vary: Cookie` on static paths so '{ev['what']}' cannot recur"),
            evidence=(f"during '{ev['what']}' ({fmt.timestamp(ev['start'])} – {fmt.timestamp(ev['end'])}) the scope's "
                      f"hit ratio was "
                      f"{ev['hit_ratio_during']:.1%} (byte {ev['byte_hit_ratio_during']:.1%}) against "
                      f"{ev['hit_ratio_baseline']:.1%} (byte {ev['byte_hit_ratio_baseline']:.1%}) {ev['baseline']}; "
                      f"{ev['lookups_during']:,} lookups on {len(ev['routes'])} routes"),
            effect=(f"{ev['extra_origin_requests']:,.0f} origin requests and {fmt.size(val)} from the origin (95 % "
                    f"{fmt.size(low)}–{fmt.size(high)}) that the cache would have served; the log has no cookie, "
                    f"so this is measured from the hit ratio drop, not replayed"),
            verify=(f"the scope's hit ratio stays at its baseline (vary SQL per hour); a response of {scope} "
                    f"carries `Vary: Accept-Encoding` only (curl -sI)"),
            risk="none for static responses that do not depend on cookies; keep Vary on personalised responses",
            effort="low",
            saving=Saving(val, "bytes", basis, share(val), low, high),
            sql={"vary_events": sql["vary_events"], **{k: v for k, v in sql.items() if k.startswith("vary_")}},
            addresses=[_route_addr(r["service"], r["route"]) for r in ev["routes"][:10]] + [f"config:{ev['what']}"],
            details={"event": ev["what"], "saving_basis": "origin bytes", "reverted": ev["reverted"]}))

    # 3. cache bypassed responses on candidate routes
    cb = scen.get("cache_bypassed")
    if cb and norm and cb["hit_bytes"] > norm["hit_bytes"]:
        cand = uncached[uncached["candidate"].astype(bool)]
        gained_b = cb["hit_bytes"] - norm["hit_bytes"]
        out.append(opportunity(
            "cdn", "Cache the bypassed responses of " + ", ".join(f"{s} {r}" for s, r in
                                                                 zip(cand["service"].head(3), cand["route"].head(3),
                                                                     strict=True)),
            change=("send `Cache-Control: public, max-age=<TTL>` (or `s-maxage`) on these routes and remove them "
                    "from the edge's bypass rules (nginx `proxy_cache_bypass` / `proxy_no_cache` conditions)"),
            evidence=(f"{int(cand['bypasses'].sum()):,} GET/HEAD responses with a cacheable status bypassed the cache "
                      f"on {len(cand)} routes ({int(cand['bypass_bytes'].sum()):,} bytes); they are static content "
                      f"or had one size for every client asking the same key"),
            effect=f"replay ({replay['method']}): {cb['hits'] - norm['hits']:,.0f} more hits, {gained_b:,.0f} "
                   f"fewer origin bytes",
            verify="BYPASS share of these routes (uncached SQL) falls to 0 and their hit ratio rises",
            risk="responses that differ per user must not be cached: check that the routes ignore cookies/auth",
            effort="medium",
            saving=Saving(gained_b, "bytes", basis, share(gained_b)),
            sql={"uncached": sql["uncached"], "replay_trace": sql["replay_trace"]},
            addresses=[_route_addr(s, r) for s, r in zip(cand["service"], cand["route"], strict=True)],
            details={"saving_basis": "origin bytes"}))

    # 4. TTLs too short: static classes together (one header rule), the others one by one
    rows = ttl[(ttl["expired_share"] >= 0.01) & (ttl["bytes_gained"] > 0)] if len(ttl) else ttl
    static = rows[rows["content_class"].isin(STATIC_CLASSES)] if len(rows) else rows
    if len(static):
        out.append(_ttl_opportunity(static, IMMUTABLE_TTL_S, True, sql, basis, share))
    for _, row in rows.iterrows():
        if row["content_class"] not in STATIC_CLASSES and share(float(row["bytes_gained"])) >= 1e-4:
            out.append(_ttl_opportunity(rows[rows["content_class"] == row["content_class"]],
                                        int(row["proposed_ttl_s"]), False, sql, basis, share))
    return [o for o in out if o is not None]


def _ttl_opportunity(rows: pd.DataFrame, new_ttl: int, immutable: bool, sql: dict[str, str], basis: str,
                     share: Any) -> Opportunity:
    classes = [str(c) for c in rows["content_class"]]
    names = ", ".join(classes)
    expired, lookups = int(rows["expired"].sum()), int(rows["lookups"].sum())
    gained, gained_b = int(rows["hits_gained"].sum()), float(rows["bytes_gained"].sum())
    reuse = "; ".join(f"{c}: p50 {float(p50 or 0):,.0f} s, p90 {float(p90 or 0):,.0f} s"
                      for c, p50, p90 in zip(classes, rows["reuse_p50_s"], rows["reuse_p90_s"], strict=True))
    # a class without a stated TTL holds None, which pandas may have turned into NaN (truthy): text only
    stated = sorted({x for x in rows["stated_ttl"] if isinstance(x, str) and x})
    routes = [r for rs in rows["top_routes"] for r in rs]
    return opportunity(
        "cdn", f"Raise the edge TTL of {names} responses to {new_ttl:,} s",
        change=(f"`Cache-Control: public, max-age={new_ttl}, immutable` on versioned {names} URLs (the file name "
                f"or `v=` changes with each release); nginx `proxy_cache_valid 200 {new_ttl}s;` for them"
                if immutable else
                f"`Cache-Control: public, s-maxage={new_ttl}, stale-while-revalidate=60` on {names} responses "
                f"(nginx `proxy_cache_valid 200 {new_ttl}s;` plus `proxy_cache_use_stale updating`)"),
        evidence=(f"{expired:,} of {lookups:,} lookups ({expired / max(lookups, 1):.1%}) were EXPIRED; reuse "
                  f"intervals {reuse}" + (f"; TTL stated by config events: {', '.join(stated)}" if stated else "")),
        effect=(f"{gained:,} of the {expired:,} EXPIRED refetches ({gained_b:,.0f} bytes) become hits: those whose "
                f"key was filled (MISS/EXPIRED) within {new_ttl:,} s (unbounded cache; SQL ttl_gain)"),
        verify=f"EXPIRED share of {names} (ttl_by_class SQL) falls toward 0; the Age of served objects rises",
        risk=("none for versioned URLs; an unversioned URL would serve old content until purged" if immutable
              else f"{names} content may be up to {new_ttl:,} s stale: purge on publish"),
        effort="low",
        saving=Saving(gained_b, "bytes", basis, share(gained_b)),
        sql={"ttl_by_class": sql["ttl_by_class"], "ttl_gain": sql["ttl_gain"]},
        addresses=["route:" + r for r in routes],
        details={"content_classes": classes, "ttl_s": new_ttl, "saving_basis": "origin bytes",
                 "hits_gained": gained})
