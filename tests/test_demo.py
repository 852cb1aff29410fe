"""The demo warehouse: its distributions and planted incidents are really in the data.

Every check below queries the built warehouse with SQL (or reads its bytes); none reads the generator's
own variables. One small demo (150k requests over 7 days) is built once for the session (``demo_warehouse``;
tests/test_slo_cli.py uses the same one)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zlib
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from kit import warehouse
from kit.demo import DEMO_END, build_demo, plan_incidents

N_REQUESTS = 150_000


@pytest.fixture(scope="module")
def demo_db(demo_warehouse) -> Path:
    return demo_warehouse(requests=N_REQUESTS, days=7, seed=42)


@pytest.fixture(scope="module")
def con(demo_db: Path) -> duckdb.DuckDBPyConnection:
    c = warehouse.connect(demo_db, read_only=True)
    yield c
    c.close()


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    row = con.execute(sql, params or []).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


def incident(con: duckdb.DuckDBPyConnection, kind: str) -> tuple:
    """(start, end, service, route, details) of the planted incident of this type, from ``events``."""
    rows = con.execute("SELECT ts_start, ts_end, service, route, details FROM events "
                       "WHERE kind = 'incident' AND details->>'type' = ?", [kind]).fetchall()
    assert len(rows) == 1, f"expected one {kind} incident, found {len(rows)}"
    s, e, svc, route, details = rows[0]
    return s, e, svc, route, json.loads(details)


# ---- schema, counts, provenance ---------------------------------------------------------------------

def test_schema_and_row_counts(con: duckdb.DuckDBPyConnection) -> None:
    assert warehouse.schema_version(con) == warehouse.SCHEMA_VERSION
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert set(warehouse.CORE_TABLES) <= tables
    assert not any(t.startswith("dim_") for t in tables), "build scratch tables left behind"
    assert one(con, "SELECT count(*) FROM requests") == N_REQUESTS
    assert 500_000 < one(con, "SELECT count(*) FROM metrics") <= 2_100_000
    assert one(con, "SELECT count(*) FROM queries WHERE kind = 'snapshot'") > 10_000
    assert one(con, "SELECT count(*) FROM queries WHERE kind = 'event'") > 20
    assert 50 <= one(con, "SELECT count(*) FROM assets") <= 200
    assert one(con, "SELECT count(*) FROM profiles") > 50
    assert one(con, "SELECT count(*) FROM events WHERE kind = 'deploy'") >= 5
    assert one(con, "SELECT count(*) FROM events WHERE kind = 'config'") >= 1
    assert one(con, "SELECT count(*) FROM events WHERE kind = 'incident'") == 4
    # history: 7 days ending at the fixed instant, timestamps in UTC
    lo, hi = one(con, "SELECT min(ts), max(ts) FROM requests")
    assert hi <= DEMO_END and (DEMO_END - lo).total_seconds() <= 7 * 86400
    assert (DEMO_END - lo).total_seconds() > 6.9 * 86400
    # time-ordered within the table (one chunk here)
    assert one(con, "SELECT count(*) FROM (SELECT ts < lag(ts) OVER () AS back FROM requests) WHERE back") == 0


def test_every_row_has_its_demo_source(con: duckdb.DuckDBPyConnection) -> None:
    log = con.execute("SELECT source_id, kind, path, options, rows_loaded, finished_at FROM ingest_log").fetchall()
    assert {r[1] for r in log} == {"demo"}
    by_table = {}
    for source_id, _kind, path, options, rows_loaded, finished in log:
        opts = json.loads(options)
        assert opts["seed"] == 42 and opts["requests"] == N_REQUESTS and opts["days"] == 7
        by_table[opts["table"]] = (source_id, rows_loaded)
        assert finished is not None and path.startswith("demo://")
    assert set(by_table) == {"requests", "metrics", "queries", "assets", "profiles", "events"}
    for table, (source_id, rows_loaded) in by_table.items():
        ids = con.execute(f"SELECT DISTINCT source_id FROM {table}").fetchall()
        assert ids == [(source_id,)], table
        assert one(con, f"SELECT count(*) FROM {table}") == rows_loaded, table


def test_columns_filled(con: duckdb.DuckDBPyConnection) -> None:
    nulls = con.execute("""
        SELECT count(*) FILTER (WHERE service IS NULL OR host IS NULL OR method IS NULL OR route IS NULL
                                OR path IS NULL OR status IS NULL OR latency_ms IS NULL OR bytes_sent IS NULL
                                OR content_type IS NULL OR cache_status IS NULL OR client_hash IS NULL
                                OR user_agent IS NULL)
        FROM requests""").fetchone()
    assert nulls == (0,)
    # every service has 2-4 instances, named after it
    for svc, hosts in con.execute("SELECT service, list(DISTINCT host) FROM requests GROUP BY 1").fetchall():
        assert 2 <= len(hosts) <= 4 and all(h.startswith(svc + "-") for h in hosts)
    assert one(con, "SELECT count(DISTINCT service) FROM requests") >= 5
    # paths are concrete: no template placeholders left
    assert one(con, "SELECT count(*) FROM requests WHERE path LIKE '%{%'") == 0
    assert one(con, "SELECT count(DISTINCT client_hash) FROM requests") > 5000
    assert one(con, "SELECT count(DISTINCT user_agent) FROM requests") >= 10


# ---- traffic shape -----------------------------------------------------------------------------------

def test_routes_follow_zipf(con: duckdb.DuckDBPyConnection) -> None:
    assert one(con, "SELECT count(DISTINCT route) FROM requests") >= 100
    slope = one(con, """
        SELECT regr_slope(ln(n), ln(rk)) FROM (
            SELECT count(*) AS n, row_number() OVER (ORDER BY count(*) DESC) AS rk FROM requests GROUP BY route)
        WHERE rk <= 100""")
    assert -1.6 < slope < -0.6, slope
    # objects inside a route are Zipf-popular too: the top 1% of products take a large share
    top_share = one(con, """
        WITH p AS (SELECT path, count(*) AS n FROM requests WHERE route = '/product/{id}' GROUP BY path),
             r AS (SELECT n, row_number() OVER (ORDER BY n DESC) AS rk, count(*) OVER () AS k FROM p)
        SELECT sum(n) FILTER (WHERE rk <= 200) / sum(n) FROM r""")
    assert 0.2 < top_share < 0.8, top_share


def test_objects_repeat_like_a_cache_workload(con: duckdb.DuckDBPyConnection) -> None:
    # share of requests whose path was already requested before (an infinite cache's hit ratio)
    reuse = one(con, "SELECT 1 - count(DISTINCT path) / count(*) FROM requests WHERE service = 'static'")
    assert 0.7 < reuse < 0.99, reuse
    overall = one(con, "SELECT 1 - count(DISTINCT path) / count(*) FROM requests")
    assert 0.5 < overall < 0.97, overall
    # the same object keeps its size (a cache key with a stable size)
    assert one(con, """SELECT count(*) FROM (SELECT path FROM requests WHERE service = 'static' AND status = 200
                       GROUP BY path HAVING count(DISTINCT bytes_sent) > 1)""") == 0


def test_diurnal_and_weekly_seasonality(con: duckdb.DuckDBPyConnection) -> None:
    hours = dict(con.execute("SELECT hour(ts), count(*) FROM requests GROUP BY 1").fetchall())
    peak = max(hours, key=hours.__getitem__)
    trough = min(hours, key=hours.__getitem__)
    assert 17 <= peak <= 22 and 1 <= trough <= 6, (peak, trough)
    assert hours[peak] / hours[trough] > 3
    weekend, weekday = con.execute("""
        SELECT avg(n) FILTER (WHERE dow IN (0, 6)), avg(n) FILTER (WHERE dow NOT IN (0, 6))
        FROM (SELECT dayofweek(ts) AS dow, date_trunc('day', ts) AS d, count(*) AS n FROM requests GROUP BY 1, 2)
        """).fetchone()
    assert weekend / weekday < 0.85


def test_latency_heavy_tails_per_route(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute("""
        SELECT route, quantile_cont(latency_ms, 0.99) / quantile_cont(latency_ms, 0.5) AS ratio
        FROM requests WHERE cache_status <> 'HIT' AND status < 400
        GROUP BY route HAVING count(*) >= 1000""").fetchall()
    assert len(rows) >= 15
    ratios = sorted(r[1] for r in rows)
    assert ratios[len(ratios) // 2] > 3, ratios
    assert all(r > 2 for r in ratios), rows
    assert one(con, "SELECT count(*) FROM requests WHERE upstream_ms > latency_ms") == 0
    assert one(con, "SELECT count(*) FROM requests WHERE latency_ms <= 0") == 0
    # edge hits have no upstream time; everything else has one
    assert one(con, "SELECT count(*) FROM requests WHERE (cache_status = 'HIT') <> (upstream_ms IS NULL)") == 0


def test_status_mix(con: duckdb.DuckDBPyConnection) -> None:
    share = dict(con.execute("""SELECT status // 100, count(*) / sum(count(*)) OVER () FROM requests
                                GROUP BY 1""").fetchall())
    assert share[2] > 0.85
    assert 0.01 < share[3] < 0.1
    assert 0.01 <= share[4] <= 0.03, share[4]
    outside = one(con, """
        SELECT avg((status >= 500)::INT) FROM requests r WHERE NOT EXISTS (
            SELECT 1 FROM events e WHERE e.kind = 'incident' AND r.ts >= e.ts_start AND r.ts < e.ts_end)""")
    assert 0.0003 <= outside <= 0.002, outside
    assert one(con, "SELECT count(*) FROM requests WHERE status = 304") > 1000
    assert one(con, "SELECT count(*) FROM requests WHERE status = 304 AND bytes_sent <> 0") == 0
    methods = dict(con.execute("SELECT method, count(*) FROM requests GROUP BY 1").fetchall())
    assert methods["GET"] / sum(methods.values()) > 0.85
    post_routes = {r[0] for r in con.execute("SELECT DISTINCT route FROM requests WHERE method = 'POST'").fetchall()}
    assert "/api/v1/cart/{id}/items" in post_routes and "/checkout/confirm" in post_routes


def test_sizes_by_content_type(con: duckdb.DuckDBPyConnection) -> None:
    med = dict(con.execute("""SELECT split_part(content_type, ';', 1), median(bytes_sent) FROM requests
                              WHERE status = 200 GROUP BY 1""").fetchall())
    assert 300 < med["application/json"] < 20_000
    assert 20_000 < med["text/html"] < 150_000
    assert 20_000 < med["application/javascript"] < 500_000
    assert 5_000 < med["text/css"] < 100_000
    assert 20_000 < med["image/jpeg"] < 300_000
    assert 300 < med["image/svg+xml"] < 10_000
    assert 10_000 < med["font/woff2"] < 100_000
    assert med["image/jpeg"] > med["application/json"] and med["text/html"] > med["application/json"]


def test_cache_status_by_service(con: duckdb.DuckDBPyConnection) -> None:
    mix = {svc: (hit, bypass, miss) for svc, hit, bypass, miss in con.execute("""
        SELECT service, avg((cache_status = 'HIT')::INT), avg((cache_status = 'BYPASS')::INT),
               avg((cache_status IN ('MISS', 'EXPIRED'))::INT)
        FROM requests GROUP BY 1""").fetchall()}
    assert mix["static"][0] > 0.7
    assert mix["api"][0] < 0.35 and mix["api"][1] + mix["api"][2] > 0.65
    assert mix["checkout"][1] == 1.0
    assert 0.3 < mix["web"][0] < 0.7
    assert one(con, "SELECT count(*) FROM requests WHERE method <> 'GET' AND cache_status <> 'BYPASS'") == 0
    statuses = {r[0] for r in con.execute("SELECT DISTINCT cache_status FROM requests").fetchall()}
    assert statuses == {"HIT", "MISS", "EXPIRED", "BYPASS"}


def test_cache_status_behaves_like_a_real_cache(con: duckdb.DuckDBPyConnection) -> None:
    # an infinite cache misses at least once per object: the observed hit ratio stays below that bound
    # (plus the few popular objects that were already cached when the history starts)
    for route in ("/static/img/products/{id}.jpg", "/product/{id}", "/static/js/{name}.js"):
        hit, bound = con.execute("""SELECT avg((cache_status = 'HIT')::INT), 1 - count(DISTINCT path) / count(*)
                                    FROM requests WHERE route = ? AND method = 'GET'""", [route]).fetchone()
        assert hit <= bound + 0.05, (route, hit, bound)
    # first requests of a product image are misses, except for the pre-warmed popular few
    first_hit, n_paths = con.execute("""
        SELECT avg((cache_status = 'HIT')::INT), count(*) FROM (
            SELECT path, arg_min(cache_status, ts) AS cache_status FROM requests
            WHERE route = '/static/img/products/{id}.jpg' GROUP BY path)""").fetchone()
    assert n_paths > 1000 and first_hit < 0.15, first_hit
    # popular objects hit more than rarely requested ones
    by_popularity = con.execute("""
        WITH p AS (SELECT path, count(*) AS n, avg((cache_status = 'HIT')::INT) AS hit FROM requests
                   WHERE route = '/static/img/products/{id}.jpg' GROUP BY path)
        SELECT avg(hit) FILTER (WHERE n >= 20), avg(hit) FILTER (WHERE n <= 2) FROM p""").fetchone()
    assert by_popularity[0] > by_popularity[1] + 0.3, by_popularity


def test_query_strings_are_redacted(con: duckdb.DuckDBPyConnection) -> None:
    with_query = one(con, "SELECT avg((query IS NOT NULL)::INT) FROM requests")
    assert 0.05 < with_query < 0.6
    assert one(con, "SELECT count(*) FROM requests WHERE query LIKE '%token=REDACTED%'") > 0
    assert one(con, "SELECT count(*) FROM requests WHERE query LIKE 'q=%'") > 1000
    # every secret-looking key carries the REDACTED value, nothing else
    leaked = one(con, r"""
        SELECT count(*) FROM (
            SELECT unnest(regexp_extract_all(query, '(?:token|session|api_key|sig|signature|postcode)=([^&]*)', 1))
                   AS value FROM requests WHERE query IS NOT NULL)
        WHERE value <> 'REDACTED'""")
    assert leaked == 0


def test_catalogue_popularity_drifts_day_to_day(con: duckdb.DuckDBPyConnection) -> None:
    # temporal locality: the top product pages of one day are only partly the top of the next
    overlaps = [r[0] for r in con.execute("""
        WITH d AS (SELECT date_trunc('day', ts) AS d, path, count(*) AS n FROM requests
                   WHERE route = '/product/{id}' GROUP BY ALL),
             t AS (SELECT d, path FROM (SELECT d, path, row_number() OVER (PARTITION BY d ORDER BY n DESC, path) AS rk
                                        FROM d) WHERE rk <= 50)
        SELECT count(*) / 50 FROM t a JOIN t b ON b.d = a.d + INTERVAL 1 day AND a.path = b.path GROUP BY a.d
        """).fetchall()]
    assert len(overlaps) == 6
    assert all(0.1 < o < 0.9 for o in overlaps), overlaps


def test_crawlers_walk_the_long_tail(con: duckdb.DuckDBPyConnection) -> None:
    (bot_share, bot_unique), (human_share, human_unique) = con.execute("""
        SELECT count(*) / sum(count(*)) OVER (), count(DISTINCT path) / count(*) FROM requests
        GROUP BY regexp_matches(user_agent, 'bot', 'i') ORDER BY 1""").fetchall()
    assert 0.01 < bot_share < 0.1
    assert bot_unique > 1.5 * human_unique
    assert one(con, "SELECT count(*) FROM requests WHERE user_agent ILIKE '%bot%' AND method <> 'GET'") == 0


def test_campaign_load_peak_slows_origins(con: duckdb.DuckDBPyConnection) -> None:
    s, e = con.execute("SELECT ts_start, ts_end FROM events WHERE kind = 'campaign'").fetchone()
    sql = """SELECT count(*), median(upstream_ms) FILTER (WHERE service IN ('web', 'static', 'search'))
             FROM requests WHERE ts >= ? AND ts < ?"""
    n_in, med_in = con.execute(sql, [s, e]).fetchone()
    # the same hours two days earlier (no incident, also a weekday)
    n_before, med_before = con.execute(sql, [s - timedelta(days=2), e - timedelta(days=2)]).fetchone()
    assert n_in / n_before > 1.6
    assert med_in / med_before > 1.3, (med_in, med_before)
    # the campaign is a load peak, not an incident: no error spike
    err = one(con, "SELECT avg((status >= 500)::INT) FROM requests WHERE ts >= ? AND ts < ?", [s, e])
    assert err < 0.003


# ---- metrics, queries, assets, profiles ------------------------------------------------------------

def test_metric_counters_match_requests(con: duckdb.DuckDBPyConnection) -> None:
    final = dict(con.execute("""
        SELECT labels['service'], sum(value) FROM metrics
        WHERE name = 'http_requests_total' AND ts = (SELECT max(ts) FROM metrics) GROUP BY 1""").fetchall())
    by_svc = dict(con.execute("SELECT service, count(*) FROM requests GROUP BY 1").fetchall())
    assert final == {k: float(v) for k, v in by_svc.items()}
    errors = one(con, """SELECT sum(value) FROM metrics WHERE name = 'http_requests_total'
                         AND labels['code'] LIKE '5%' AND ts = (SELECT max(ts) FROM metrics)""")
    assert errors == one(con, "SELECT count(*) FROM requests WHERE status >= 500")
    # counters never go down
    assert one(con, """SELECT count(*) FROM (
        SELECT value < lag(value) OVER (PARTITION BY name, labels ORDER BY ts) AS down FROM metrics
        WHERE name IN ('http_requests_total', 'http_request_duration_seconds_bucket', 'process_cpu_seconds_total'))
        WHERE down""") == 0
    # histogram: +Inf bucket == _count, buckets grow with le; one sample a minute per series
    inf, cnt = con.execute("""
        SELECT sum(value) FILTER (WHERE name = 'http_request_duration_seconds_bucket' AND labels['le'] = '+Inf'),
               sum(value) FILTER (WHERE name = 'http_request_duration_seconds_count')
        FROM metrics WHERE ts = (SELECT max(ts) FROM metrics)""").fetchone()
    assert inf == cnt == N_REQUESTS
    le_1s = one(con, """SELECT sum(value) FROM metrics WHERE name = 'http_request_duration_seconds_bucket'
                        AND labels['le'] = '1' AND ts = (SELECT max(ts) FROM metrics)""")
    assert le_1s == one(con, "SELECT count(*) FROM requests WHERE latency_ms <= 1000")
    step = one(con, """SELECT min(d) FROM (SELECT ts - lag(ts) OVER (PARTITION BY labels ORDER BY ts) AS d
                       FROM metrics WHERE name = 'process_resident_memory_bytes')""")
    assert step.total_seconds() == 60


def test_instance_metrics_follow_load(con: duckdb.DuckDBPyConnection) -> None:
    names = {r[0] for r in con.execute("SELECT DISTINCT name FROM metrics").fetchall()}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "http_server_requests_in_flight",
            "pg_stat_activity_count", "pg_settings_max_connections", "http_requests_total",
            "http_request_duration_seconds_bucket"} <= names
    hosts = {r[0] for r in con.execute("SELECT DISTINCT labels['instance'] FROM metrics "
                                       "WHERE name = 'process_cpu_seconds_total'").fetchall()}
    assert hosts == {r[0] for r in con.execute("SELECT DISTINCT host FROM requests").fetchall()}
    # CPU rate per hour correlates with the requests per hour on the same instance
    corr = one(con, """
        WITH cpu AS (SELECT labels['instance'] AS host, date_trunc('hour', ts - INTERVAL 1 second) AS h,
                            max(value) - min(value) AS cpu_s
                     FROM metrics WHERE name = 'process_cpu_seconds_total' GROUP BY 1, 2),
             req AS (SELECT host, date_trunc('hour', ts) AS h, count(*) AS n FROM requests GROUP BY 1, 2)
        SELECT corr(cpu_s, n) FROM cpu JOIN req USING (host, h) WHERE host = 'api-1'""")
    assert corr > 0.8, corr
    util = one(con, """SELECT max(d) / 120 FROM (SELECT value - lag(value) OVER (ORDER BY ts) AS d FROM metrics
                       WHERE name = 'process_cpu_seconds_total' AND labels['instance'] = 'web-1')""")
    assert 0.3 < util <= 1.0


def test_query_statistics(con: duckdb.DuckDBPyConnection) -> None:
    n_fp = one(con, "SELECT count(DISTINCT fingerprint) FROM queries WHERE kind = 'snapshot'")
    assert 20 <= n_fp <= 40
    assert one(con, "SELECT count(DISTINCT db_system) FROM queries") == 1
    assert one(con, "SELECT any_value(db_system) FROM queries") == "postgresql"
    # fingerprints are normalized: no numeric or string literals
    assert one(con, r"SELECT count(*) FROM queries WHERE regexp_matches(fingerprint, '= (\d+|''[^'']*'')')") == 0
    # snapshots are cumulative, every 10 minutes
    assert one(con, """SELECT count(*) FROM (SELECT calls < lag(calls) OVER (PARTITION BY fingerprint ORDER BY ts)
                       OR total_ms < lag(total_ms) OVER (PARTITION BY fingerprint ORDER BY ts) AS down
                       FROM queries WHERE kind = 'snapshot') WHERE down""") == 0
    step = one(con, """SELECT median(d) FROM (SELECT epoch(ts - lag(ts) OVER (PARTITION BY fingerprint ORDER BY ts))
                       AS d FROM queries WHERE kind = 'snapshot')""")
    assert 300 <= step <= 900
    assert one(con, "SELECT min(total_ms) FROM queries WHERE kind = 'event'") > 100
    assert one(con, "SELECT count(*) FROM queries WHERE shared_blks_hit IS NULL AND kind = 'snapshot'") == 0


def test_assets_have_real_content(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute("""SELECT a.path, a.content_type, a.size_bytes, a.sha256, c.content
                          FROM assets a JOIN asset_content c USING (sha256)""").fetchall()
    assert len(rows) == one(con, "SELECT count(*) FROM assets")
    kinds = {}
    for path, ctype, size, sha, content in rows:
        assert len(content) == size and hashlib.sha256(content).hexdigest() == sha, path
        ratio = len(content) / len(zlib.compress(content, 6))
        kinds.setdefault(ctype, []).append(ratio)
        if ctype in ("application/javascript", "text/css"):
            assert ratio > 2.5, (path, ratio)
        if ctype == "image/svg+xml":
            assert ratio > 1.5, (path, ratio)
        if ctype in ("image/jpeg", "image/png", "font/woff2"):
            assert ratio < 1.05, (path, ratio)
    assert {"application/javascript", "text/css", "image/svg+xml", "image/jpeg", "image/png",
            "font/woff2"} <= set(kinds)
    # the assets are what the static routes serve, at the sizes the requests report
    mismatched = one(con, """
        SELECT count(*) FROM assets a JOIN (SELECT path, any_value(bytes_sent) AS b FROM requests
                                           WHERE status = 200 GROUP BY path) r USING (path)
        WHERE r.b <> a.size_bytes""")
    assert mismatched == 0
    served = one(con, "SELECT count(*) FROM assets WHERE path IN (SELECT path FROM requests)")
    assert served >= 0.9 * len(rows)


def test_profiles_have_one_hot_function(con: duckdb.DuckDBPyConnection) -> None:
    leaf_sql = """SELECT split_part(stack, ';', -1) AS leaf, sum(samples) / sum(sum(samples)) OVER () AS share
                  FROM profiles {where} GROUP BY 1 ORDER BY 2 DESC LIMIT 2"""
    for where in ("", "WHERE service = 'api'"):
        (hot, share), (_, second) = con.execute(leaf_sql.format(where=where)).fetchall()
        assert hot == "pricing._match_rules" and share > 1.5 * second, (where, hot, share, second)
    inclusive = one(con, """SELECT sum(samples) FILTER (WHERE stack LIKE '%pricing.apply_promotions%') / sum(samples)
                            FROM profiles""")
    assert inclusive > 0.2
    # the profile taken during the latency regression shows its cause (N+1 queries in get_variants)
    s, e, *_ = incident(con, "latency_regression")
    by_profile = dict(con.execute("""
        SELECT ts >= ? AND ts < ?, sum(samples) FILTER (WHERE stack LIKE '%get_variants;orm.query%') / sum(samples)
        FROM profiles WHERE service = 'api' GROUP BY 1""", [s, e]).fetchall())
    assert by_profile[True] > 0.2 and by_profile[False] is None
    assert one(con, "SELECT count(DISTINCT service) FROM profiles") == 5
    assert one(con, "SELECT count(*) FROM profiles WHERE stack NOT LIKE '%;%' OR samples <= 0") == 0


# ---- planted incidents ------------------------------------------------------------------------------

def test_incidents_do_not_overlap_and_have_details(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute("""SELECT ts_start, ts_end, details FROM events WHERE kind = 'incident'
                          ORDER BY ts_start""").fetchall()
    types = {json.loads(d)["type"] for _, _, d in rows}
    assert types == {"latency_regression", "error_burst", "db_saturation", "cdn_cache_outage"}
    for (_, e1, _), (s2, _, _) in zip(rows, rows[1:], strict=False):
        assert e1 <= s2
    lo, hi = one(con, "SELECT min(ts), max(ts) FROM requests")
    assert all(lo <= s < e <= hi for s, e, _ in rows)


def test_plan_incidents_matches_the_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    # the public ground-truth helper describes exactly what the build stored
    stored = {json.loads(d)["type"]: (s, e, svc) for s, e, svc, d in con.execute(
        "SELECT ts_start, ts_end, service, details FROM events WHERE kind = 'incident'").fetchall()}
    planned = {i.type: (i.start, i.end, i.service) for i in plan_incidents(7)}
    assert stored == planned


def test_latency_regression_after_deploy(con: duckdb.DuckDBPyConnection) -> None:
    s, e, svc, route, details = incident(con, "latency_regression")
    deploys = con.execute("SELECT ts_start, details->>'rollback' FROM events WHERE kind = 'deploy' AND service = ? "
                          "AND ts_start IN (?, ?)", [svc, s, e]).fetchall()
    assert sorted(d[1] for d in deploys) == ["false", "true"], "regression must start at a deploy and end at a rollback"
    p95 = """SELECT quantile_cont(latency_ms, 0.95) FROM requests WHERE route = ? AND ts >= ? AND ts < ?"""
    during = one(con, p95, [route, s, e])
    day_before = one(con, p95, [route, s - timedelta(days=1), e - timedelta(days=1)])
    after = one(con, p95, [route, e, e + (e - s)])
    assert during / day_before > 3, (during, day_before)
    assert after / day_before < 1.5
    # other routes of the service are not affected
    other = one(con, p95.replace("route = ?", "service = ? AND route <> ?"), [svc, route, s, e]) / one(
        con, p95.replace("route = ?", "service = ? AND route <> ?"),
        [svc, route, s - timedelta(days=1), e - timedelta(days=1)])
    assert other < 1.5


def test_error_burst_fires_page_alerts(con: duckdb.DuckDBPyConnection) -> None:
    s, e, svc, _route, details = incident(con, "error_burst")
    inside, outside = con.execute("""
        SELECT avg((status >= 500)::INT) FILTER (WHERE ts >= ? AND ts < ?),
               avg((status >= 500)::INT) FILTER (WHERE ts < ? OR ts >= ?)
        FROM requests WHERE service = ?""", [s, e, s, e, svc]).fetchone()
    assert 0.15 <= inside <= 0.3, inside
    assert outside < 0.003
    # multi-window burn rate for a 99.9% objective: 1 h and 5 min windows ending at the burst end both > 14.4
    for window in ("1 hour", "5 minutes"):
        ratio = one(con, f"""SELECT avg((status >= 500)::INT) FROM requests
                             WHERE service = ? AND ts >= ?::TIMESTAMPTZ - INTERVAL {window} AND ts < ?""", [svc, e, e])
        assert ratio / 0.001 > 14.4, (window, ratio)
    # the same burst in the Prometheus counters
    burst = one(con, """
        WITH t AS (SELECT ts, sum(value) FILTER (WHERE labels['code'] LIKE '5%') AS err, sum(value) AS total
                   FROM metrics WHERE name = 'http_requests_total' AND labels['service'] = ? GROUP BY ts)
        SELECT (max(err) FILTER (WHERE ts <= ?) - max(err) FILTER (WHERE ts <= ?))
             / (max(total) FILTER (WHERE ts <= ?) - max(total) FILTER (WHERE ts <= ?)) FROM t""", [svc, e, s, e, s])
    assert burst > 0.15


def test_db_saturation_by_one_slow_query(con: duckdb.DuckDBPyConnection) -> None:
    s, e, _svc, _route, details = incident(con, "db_saturation")
    share_in, share_out, top_in = con.execute("""
        WITH d AS (SELECT ts, fingerprint,
                          total_ms - lag(total_ms) OVER (PARTITION BY fingerprint ORDER BY ts) AS dt
                   FROM queries WHERE kind = 'snapshot'),
             w AS (SELECT fingerprint, sum(dt) AS t FROM d WHERE ts > ? AND ts <= ? GROUP BY 1)
        SELECT sum(dt) FILTER (WHERE fingerprint = ? AND ts > ? AND ts <= ?)
                   / sum(dt) FILTER (WHERE ts > ? AND ts <= ?),
               sum(dt) FILTER (WHERE fingerprint = ? AND NOT (ts > ? AND ts <= ?))
                   / sum(dt) FILTER (WHERE NOT (ts > ? AND ts <= ?)),
               (SELECT fingerprint FROM w ORDER BY t DESC LIMIT 1)
        FROM d""", [s, e, details["fingerprint"], s, e, s, e, details["fingerprint"], s, e, s, e]).fetchone()
    assert top_in == details["fingerprint"]
    assert share_in > 0.5 and share_out < 0.15, (share_in, share_out)
    slow_events = one(con, """SELECT count(*) FILTER (WHERE fingerprint = ?) / count(*) FROM queries
                              WHERE kind = 'event' AND ts >= ? AND ts < ?""", [details["fingerprint"], s, e])
    assert slow_events > 0.5
    # connections at max_connections inside the window, well below outside
    max_conn = one(con, "SELECT max(value) FROM metrics WHERE name = 'pg_settings_max_connections'")
    inside, outside = con.execute("""
        WITH c AS (SELECT ts, sum(value) AS v FROM metrics WHERE name = 'pg_stat_activity_count' GROUP BY ts)
        SELECT max(v) FILTER (WHERE ts > ? AND ts <= ?), max(v) FILTER (WHERE ts <= ? OR ts > ?) FROM c""",
                                  [s, e, s, e]).fetchone()
    assert inside == max_conn and outside < 0.7 * max_conn
    # DB-backed routes slower and failing a little; static is not
    lat = dict(con.execute("""
        SELECT service, median(latency_ms) FILTER (WHERE ts >= ? AND ts < ?)
                        / median(latency_ms) FILTER (WHERE ts >= ?::TIMESTAMPTZ - INTERVAL 1 day
                                                     AND ts < ?::TIMESTAMPTZ - INTERVAL 1 day)
        FROM requests WHERE cache_status <> 'HIT' GROUP BY 1""", [s, e, s, e]).fetchall())
    assert lat["api"] > 2 and lat["checkout"] > 2 and lat["static"] < 1.5, lat
    err = one(con, """SELECT avg((status IN (500, 504))::INT) FROM requests
                      WHERE service IN ('api', 'checkout') AND cache_status <> 'HIT' AND ts >= ? AND ts < ?""", [s, e])
    assert 0.01 < err < 0.15


def test_cdn_cache_outage(con: duckdb.DuckDBPyConnection) -> None:
    s, e, svc, _route, details = incident(con, "cdn_cache_outage")
    hit_in, hit_out, up_in, up_out = con.execute("""
        SELECT avg((cache_status = 'HIT')::INT) FILTER (WHERE ts >= ? AND ts < ?),
               avg((cache_status = 'HIT')::INT) FILTER (WHERE ts < ? OR ts >= ?),
               median(upstream_ms) FILTER (WHERE ts >= ? AND ts < ?),
               median(upstream_ms) FILTER (WHERE ts < ? OR ts >= ?)
        FROM requests WHERE service = ?""", [s, e, s, e, s, e, s, e, svc]).fetchone()
    assert hit_in < 0.1 and hit_out > 0.7, (hit_in, hit_out)
    assert up_in > 2 * up_out
    # the cache recovers once the config is reverted: the hour after is close to the hour before
    ratio = """SELECT avg((cache_status = 'HIT')::INT) FROM requests WHERE service = ? AND ts >= ? AND ts < ?"""
    before = one(con, ratio, [svc, s - timedelta(hours=1), s])
    after = one(con, ratio, [svc, e, e + timedelta(hours=1)])
    assert after > before - 0.15 and after > 5 * hit_in
    assert (e - s).total_seconds() == 3600


# ---- determinism, CLI, atomic replace ----------------------------------------------------------------

def _content(path: Path) -> dict[str, object]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for table, order in (("requests", "ts, path, client_hash"), ("metrics", "ts, name, labels::VARCHAR"),
                             ("queries", "ts, kind, fingerprint, total_ms"), ("assets", "path"),
                             ("asset_content", "sha256"), ("profiles", "ts, service, stack"),
                             ("events", "ts_start, kind, what")):
            out[table] = con.sql(f"SELECT * FROM {table} ORDER BY {order}").to_arrow_table()
        return out
    finally:
        con.close()


def test_same_seed_same_content_other_seed_differs(tmp_path: Path) -> None:
    kw = {"requests": 20_000, "days": 2, "progress": False}
    build_demo(tmp_path / "a.duckdb", seed=5, **kw)
    build_demo(tmp_path / "b.duckdb", seed=5, **kw)
    build_demo(tmp_path / "c.duckdb", seed=6, **kw)
    a, b, c = (_content(tmp_path / f"{x}.duckdb") for x in "abc")
    for table in a:
        assert a[table].equals(b[table]), table
    assert not a["requests"].equals(c["requests"])
    assert not a["metrics"].equals(c["metrics"])
    assert not a["assets"].equals(c["assets"])


def test_chunking_does_not_change_shape(tmp_path: Path) -> None:
    s = build_demo(tmp_path / "chunked.duckdb", requests=30_000, days=3, seed=1, chunk_requests=4_000,
                   progress=False)
    con = duckdb.connect(str(tmp_path / "chunked.duckdb"), read_only=True)
    try:
        assert one(con, "SELECT count(*) FROM requests") == 30_000 == s.requests
        # chunks are whole minutes in time order, so the table is globally time-ordered
        assert one(con, "SELECT count(*) FROM (SELECT ts < lag(ts) OVER () AS back FROM requests) WHERE back") == 0
        assert one(con, "SELECT count(DISTINCT route) FROM requests") >= 90
        assert one(con, "SELECT count(*) FROM events WHERE kind = 'incident'") == 4
    finally:
        con.close()


def test_cli_builds_and_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kit.cli import main

    db = tmp_path / "sub" / "cli.duckdb"
    assert main(["demo", "--db", str(db), "--requests", "20000", "--days", "2", "--seed", "3", "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "20,000 requests" in out[0] and "seed 3" in out[0]
    con = warehouse.connect(db, read_only=True)
    try:
        assert one(con, "SELECT count(*) FROM requests") == 20_000
    finally:
        con.close()
    for bad in ("0", "zero"):
        with pytest.raises(SystemExit):
            main(["demo", "--db", str(db), "--requests", bad])
    assert "positive" in capsys.readouterr().err


def test_rebuild_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kit.demo.build as demo_build

    db = tmp_path / "w.duckdb"
    build_demo(db, requests=10_000, days=1, seed=1, progress=False)
    before = db.read_bytes()
    # leftovers of a killed build (dead pid) are cleaned up; a live build's file is left alone
    child = subprocess.Popen(["true"])
    child.wait()
    dead_pid = child.pid
    stale = tmp_path / f".w.building-{dead_pid}.duckdb"
    live = tmp_path / f".w.building-{os.getppid()}.duckdb"
    stale.write_bytes(b"x")
    stale_spill = tmp_path / f".w.building-{dead_pid}.duckdb.tmp"
    stale_spill.mkdir()
    (stale_spill / "spill.bin").write_bytes(b"z")
    live.write_bytes(b"y")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(demo_build, "write_events", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        build_demo(db, requests=12_000, days=1, seed=2, progress=False)
    assert db.read_bytes() == before, "a failed build must leave the existing warehouse untouched"
    assert not stale.exists() and not stale_spill.exists() and live.exists()
    live.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"], "temporary files left behind"
    monkeypatch.undo()
    build_demo(db, requests=12_000, days=1, seed=2, progress=False)
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert one(con, "SELECT count(*) FROM requests") == 12_000
        assert one(con, "SELECT count(*) FROM ingest_log") == 6
    finally:
        con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"]


def test_bad_parameters_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="requests"):
        build_demo(tmp_path / "x.duckdb", requests=10, progress=False)
    with pytest.raises(ValueError, match="days"):
        build_demo(tmp_path / "x.duckdb", days=0, progress=False)
    assert not (tmp_path / "x.duckdb").exists()
