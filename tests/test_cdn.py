"""CDN analysis (kit.analysis.cdn): hit ratios against hand counts, fragmentation on a planted log, the
replay's gain against a plain dict-based unbounded cache, a real Squid log ingested by the kit, and the
planted demo causes (the Vary: Cookie push, utm_* fragmentation)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import duckdb
import pytest

from kit.analysis.cdn import analyse_cdn
from kit.analysis.window import Window, resolve_window
from kit.errors import DataError
from kit.ingest.access_log import ingest_access_log
from kit.report.render import environment
from kit.results import to_jsonable
from kit.viz.cdn import plot_byte_hit_ratio_by_class

T0 = datetime(2026, 1, 1, tzinfo=UTC)
COLS = "ts, service, method, route, path, query, status, bytes_sent, content_type, cache_status, client_hash, source_id"


def insert(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """rows: (seconds after T0, service, method, route, path, query, status, bytes, content_type, cache_status,
    client)."""
    con.executemany(f"INSERT INTO requests ({COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                    [(T0 + timedelta(seconds=r[0]), *r[1:]) for r in rows])


def window_of(con: duckdb.DuckDBPyConnection) -> Window:
    return resolve_window(con)


def test_hit_ratios_by_class_and_route_match_hand_counts(con):
    insert(con, [
        (1, "s", "GET", "/a.js", "/a.js", None, 200, 100, "application/javascript", "HIT", "c1"),
        (2, "s", "GET", "/a.js", "/a.js", None, 200, 100, None, "MISS", "c2"),           # class from extension
        (3, "s", "GET", "/a.js", "/a.js", None, 304, 0, "application/javascript", "REVALIDATED", "c1"),
        (4, "s", "GET", "/a.js", "/a.js", None, 200, 100, "application/javascript", "stale", "c3"),
        (5, "s", "GET", "/i.png", "/i.png", None, 200, 1000, "image/png", "EXPIRED", "c1"),
        (6, "s", "GET", "/i.png", "/i.png", None, 200, 1000, "image/png", "UPDATING", "c2"),
        (7, "w", "GET", "/p", "/p", None, 200, 50, "text/html", "BYPASS", "c1"),
        (8, "w", "GET", "/p", "/p", None, 200, 50, "text/html", None, "c1"),               # no status
        (9, "w", "GET", "/p", "/p", None, 200, 50, "text/html", "PASS", "c2"),              # Varnish/Fastly
        (10, "w", "GET", "/p", "/p", None, 200, 50, "text/html", "HIT", "c2"),
    ])
    a = analyse_cdn(con, window_of(con))
    cls = {r["content_class"]: r for r in to_jsonable(a.by_class)}
    # js: hits = HIT, REVALIDATED (304, 0 bytes), STALE = 3; misses = MISS = 1
    assert cls["js"]["hits"] == 3 and cls["js"]["misses"] == 1
    assert cls["js"]["hit_ratio"] == pytest.approx(3 / 4)
    assert cls["js"]["byte_hit_ratio"] == pytest.approx(200 / 300)
    # images: UPDATING hit, EXPIRED miss
    assert cls["images"]["hit_ratio"] == pytest.approx(1 / 2)
    assert cls["images"]["expired_share"] == pytest.approx(1 / 2)
    # html: 1 hit, no miss, 2 bypasses, 1 without status
    assert cls["html"]["hit_ratio"] == pytest.approx(1.0)
    assert cls["html"]["offload"] == pytest.approx(1 / 3)
    assert cls["html"]["byte_offload"] == pytest.approx(50 / 150)
    assert cls["html"]["no_status"] == 1
    t = a.totals
    assert (t["hits"], t["misses"], t["bypasses"]) == (5, 2, 2)
    assert t["byte_hit_ratio"] == pytest.approx((100 + 0 + 100 + 1000 + 50) / (100 + 0 + 100 + 1000 + 50 + 100 + 1000))
    routes = {r["route"]: r for r in to_jsonable(a.by_route)}
    assert routes["/a.js"]["hit_ratio"] == pytest.approx(3 / 4)
    assert routes["/p"]["offload"] == pytest.approx(1 / 3)


def test_no_cache_status_is_a_clear_error(con):
    insert(con, [(1, "s", "GET", "/a", "/a", None, 200, 1, "text/html", None, "c")])
    with pytest.raises(DataError, match="cache_status"):
        analyse_cdn(con, window_of(con))


def _norm(query: str | None) -> str:
    """Independent normalisation: parameters in order, utm_*/gclid/fbclid dropped, the rest sorted."""
    kept = sorted(f"{k}={v}" if v or "=" in p else k for p in (query or "").split("&") if p
                  for k, v in [parse_qsl(p, keep_blank_values=True)[0] if "=" in p else (p, "")]
                  if not (k.lower().startswith("utm_") or k.lower() in ("gclid", "fbclid")))
    return "&".join(kept)


def _planted(seed: int = 5, n: int = 3000) -> list[tuple]:
    """Pages keyed by path and a content parameter, carrying tracking parameters in shuffled order."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        page = rng.randrange(40)
        params = [f"color={rng.choice('rgb')}"] if page % 2 else []
        if page % 4 == 1:
            params.append(f"size={rng.choice('sml')}")
        if rng.random() < 0.4:
            params += [f"utm_source={rng.choice(['news', 'ads', 'x'])}", "utm_medium=email"]
        if rng.random() < 0.1:
            params.append(f"gclid={rng.randrange(5)}")
        rng.shuffle(params)
        size = 500 + 10 * page
        rows.append((i, "web", "GET", "/p/{id}", f"/p/{page}", "&".join(params) or None, 200, size,
                     "text/html", rng.choice(["HIT", "MISS", "HIT"]), f"c{rng.randrange(50)}"))
    return rows


def test_fragmentation_found_on_planted_log(con):
    rows = _planted()
    insert(con, rows)
    a = analyse_cdn(con, window_of(con))
    frag = to_jsonable(a.fragmentation)
    assert len(frag) == 1 and frag[0]["route"] == "/p/{id}"
    raw = {(r[4], r[5] or "") for r in rows}
    srt = {(r[4], "&".join(sorted((r[5] or "").split("&"))) if r[5] else "") for r in rows}
    norm = {(r[4], _norm(r[5])) for r in rows}
    assert (frag[0]["raw_keys"], frag[0]["sorted_keys"], frag[0]["normalized_keys"]) == (len(raw), len(srt), len(norm))
    assert frag[0]["tracked_requests"] == sum(1 for r in rows if r[5] and ("utm_" in r[5] or "gclid" in r[5]))
    kinds = {p["name"]: p["kind"] for p in to_jsonable(a.parameters)}
    assert kinds["utm_source"] == kinds["gclid"] == "tracking" and kinds["color"] == "content"
    opp = next(o for o in a.opportunities if "query string" in o.title)
    assert "route:web /p/{id}" in opp.addresses and opp.saving.unit == "bytes"


def test_replay_gain_matches_a_dict_cache(con):
    rows = _planted(seed=9, n=4000)
    insert(con, rows)
    a = analyse_cdn(con, window_of(con))   # no caching plan: unbounded replay

    def dict_cache(key_of):
        seen, hits, hit_bytes = set(), 0, 0
        for r in sorted(rows, key=lambda r: r[0]):
            k = key_of(r)
            if k in seen:
                hits, hit_bytes = hits + 1, hit_bytes + max(r[7], 1)
            seen.add(k)
        return hits, hit_bytes

    raw = dict_cache(lambda r: (r[4], r[5] or ""))
    norm = dict_cache(lambda r: (r[4], _norm(r[5])))
    scen = {s["name"]: s for s in a.replay["scenarios"]}
    assert a.replay["bounded"] is False
    assert (scen["today"]["hits"], scen["today"]["hit_bytes"]) == pytest.approx(raw)
    assert (scen["normalize_query"]["hits"], scen["normalize_query"]["hit_bytes"]) == pytest.approx(norm)
    opp = next(o for o in a.opportunities if "query string" in o.title)
    assert opp.saving.value == pytest.approx(norm[1] - raw[1])
    assert opp.saving.share == pytest.approx((norm[1] - raw[1]) / sum(r[7] for r in rows))
    # with the caching plan's capacity the replay is bounded and can only lose hits
    small = analyse_cdn(con, window_of(con), cache={"sizing": {"recommended_capacity_bytes": 3000.0}})
    s2 = {s["name"]: s for s in small.replay["scenarios"]}
    assert small.replay["bounded"] and s2["today"]["hits"] < scen["today"]["hits"]


def test_squid_log_ratios_match_its_result_codes(con, shared_datasets):
    path = shared_datasets / "access_logs" / "netdata_squid" / "access.log"
    ingest_access_log(con, path, salt="t")
    a = analyse_cdn(con, window_of(con))

    def outcome(code: str) -> str | None:   # Squid result code -> outcome, as the Squid docs define them
        if "STALE" in code or "REFRESH_UNMODIFIED" in code or "REFRESH_IGNORED" in code:
            return "hit"
        if "REFRESH" in code or ("MISS" in code and "HIT" not in code):
            return "miss"
        if "HIT" in code:
            return "hit"
        if "TUNNEL" in code or "DENIED" in code:
            return "bypass"
        return None

    counts = {"hit": 0, "miss": 0, "bypass": 0}
    hit_bytes = miss_bytes = 0
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) < 7 or not f[0].replace(".", "").isdigit():
            continue
        o = outcome(f[3].split("/")[0])
        if o:
            counts[o] += 1
            hit_bytes += int(f[4]) if o == "hit" else 0
            miss_bytes += int(f[4]) if o == "miss" else 0
    assert counts["hit"] > 0   # the sample holds STALE hits (UDP_CLIENT_STALE_MEM) and uncached NONE codes
    t = a.totals
    assert (t["hits"], t["misses"], t["bypasses"]) == (counts["hit"], counts["miss"], counts["bypass"])
    assert t["byte_hit_ratio"] == pytest.approx(hit_bytes / (hit_bytes + miss_bytes))
    assert t["no_status"] == t["requests"] - sum(counts.values())
    json.dumps(to_jsonable(a))


@pytest.fixture(scope="module")
def demo(demo_warehouse):
    return demo_warehouse(requests=60_000, days=7, seed=7)


def test_demo_shows_the_vary_push_and_utm_fragmentation(demo):
    con = duckdb.connect(str(demo), read_only=True)
    try:
        a = analyse_cdn(con, resolve_window(con))
    finally:
        con.close()
    (ev,) = [v for v in a.vary if "Vary: Cookie" in v["what"]]
    assert ev["hit_ratio_during"] < 0.5 * ev["hit_ratio_baseline"]
    assert {r["route"] for r in ev["routes"]} >= {"/static/js/{name}.js", "/static/css/{name}.css"}
    vary = next(o for o in a.opportunities if "Vary" in o.title)
    assert f"config:{ev['what']}" in vary.addresses and "Accept-Encoding" in vary.title
    assert vary.saving.low is not None and vary.saving.low <= vary.saving.value <= vary.saving.high
    frag = {r["route"]: r for r in to_jsonable(a.fragmentation)}
    assert "/product/{id}" in frag and frag["/"]["normalized_keys"] == 1
    assert any(p["name"].startswith("utm_") and p["kind"] == "tracking" for p in to_jsonable(a.parameters))
    j = to_jsonable(a)
    text = environment().from_string('{% from "partials/cdn.md.j2" import section %}{{ section(cdn) }}').render(cdn=j)
    assert "Vary" in text and "/product/{id}" in text and "Normalise the CDN cache key" in text
    fig = plot_byte_hit_ratio_by_class(j)
    assert len(fig.data) == 1 + len(j["replay"]["scenarios"])


def test_ttl_evidence_names_only_the_ttls_config_events_state() -> None:
    """A class no config event states a TTL for holds None, which pandas turns into NaN once the column is
    filtered alongside a class that has one; the evidence must not read "TTL stated by config events: nan"."""
    import pandas as pd

    from kit.analysis.cdn import _ttl_opportunity

    rows = pd.DataFrame({"content_class": ["images", "js"], "expired": [10, 5], "lookups": [100, 50],
                         "hits_gained": [8, 4], "bytes_gained": [8000.0, 4000.0], "reuse_p50_s": [60.0, 90.0],
                         "reuse_p90_s": [600.0, 900.0], "stated_ttl": ["86400 s (TTL raised)", float("nan")],
                         "top_routes": [["/img"], ["/js"]]})
    sql = {"ttl_by_class": "SELECT 1", "ttl_gain": "SELECT 2"}
    found = _ttl_opportunity(rows, 31_536_000, True, sql, "all bytes served", lambda b: b / 1e6)
    assert found.evidence.endswith("; TTL stated by config events: 86400 s (TTL raised)")
    none_stated = _ttl_opportunity(rows.iloc[1:], 31_536_000, True, sql, "all bytes served", lambda b: b / 1e6)
    assert "TTL stated" not in none_stated.evidence and "nan" not in none_stated.evidence


def test_grouped_requests_match_a_python_group_by_and_the_view_fallback(con):
    """The study's groups ``g`` built from the rowid-based grouped requests (kit.analysis.request_groups,
    regrouped by kit.analysis.cdn._groups_from_shared_sql) are the groups a Python group-by of the rows gives
    (NULL route, method and status, mixed-case methods merged as ``g`` derives them); on a view (no rowid)
    the requests are grouped by the columns, same result."""
    from collections import Counter

    from kit.analysis.cdn import _groups_from_shared_sql
    from kit.analysis.request_groups import request_groups

    rows = _planted(seed=3, n=1500)
    rng = random.Random(4)
    rows = [(r[0], r[1], rng.choice(["GET", "get", None, "HEAD"]), rng.choice([r[3], None]), *r[4:6],
             rng.choice([200, None, 304]), *r[7:]) for r in rows]
    insert(con, rows)
    w = window_of(con)
    want: Counter = Counter()
    sizes: Counter = Counter()
    sizes1: Counter = Counter()
    for r in rows:
        key = (r[1], r[3] or r[4], (r[2] or "GET").upper(), r[6] or 200, r[4], r[5], r[8], r[9])
        want[key] += 1
        sizes[key] += r[7]
        sizes1[key] += max(r[7], 1)
    with request_groups(con, w, assets=False) as groups:
        got = con.execute(_groups_from_shared_sql(groups.table)).fetchall()
    assert {tuple(g[:8]): (g[8], g[9], g[10]) for g in got} == {k: (want[k], sizes[k], sizes1[k]) for k in want}
    assert len(got) == len(want)
    table = to_jsonable(analyse_cdn(con, w))
    con.execute("CREATE TABLE requests_t AS SELECT * FROM requests")
    con.execute("DROP TABLE requests")
    con.execute("CREATE VIEW requests AS SELECT * FROM requests_t")
    view = to_jsonable(analyse_cdn(con, w))
    for name in ("totals", "status_counts", "by_class", "by_route", "uncached", "fragmentation", "parameters", "ttl",
                 "replay"):
        assert view[name] == table[name], name


def test_sampled_trace_filtered_by_a_path_list_matches_the_subquery(con, monkeypatch):
    """Above REPLAY_MAX_REQUESTS the trace fetches only the sampled keys' requests, their paths filtering the
    scan: as a list of constants (up to TRACE_PATH_LIST paths) or the subquery; the replay and the TTL study
    are the same either way."""
    from kit.analysis import cdn

    insert(con, _planted(seed=11, n=4000))
    w = window_of(con)
    whole = to_jsonable(analyse_cdn(con, w))
    monkeypatch.setattr(cdn, "REPLAY_MAX_REQUESTS", 1000)
    listed = to_jsonable(analyse_cdn(con, w))
    # what sampling leaves exact: the lookups, EXPIRED counts and the replay's totals of the whole trace
    exact = ("content_class", "lookups", "expired", "expired_bytes")
    assert [{k: c[k] for k in exact} for c in listed["ttl"]] == [{k: c[k] for k in exact} for c in whole["ttl"]]
    assert (listed["replay"]["requests"], listed["replay"]["bytes"]) == \
        (whole["replay"]["requests"], whole["replay"]["bytes"]) and whole["replay"]["sample_rate"] == 1
    monkeypatch.setattr(cdn, "TRACE_PATH_LIST", 0)
    joined = to_jsonable(analyse_cdn(con, w))
    assert 0 < listed["replay"]["sample_rate"] < 1 and listed["replay"]["scenarios"]
    assert listed["replay"] == joined["replay"] and listed["ttl"] == joined["ttl"]


def test_shown_sql_reproduces_the_results_on_its_own(con):
    """Each SQL the result shows runs on the warehouse alone (no temporary table of the study left in it)
    and gives the numbers the study computed another way (grouped requests, the replay's trace); the study
    leaves no temporary table behind."""
    rng = random.Random(8)
    rows = _planted(seed=6, n=2500)
    for _ in range(1500):   # static classes with EXPIRED lookups, a bypassed static route seen by many clients
        k = rng.randrange(30)
        kind = rng.choice(["js", "png", "css"])
        ctype = {"js": "application/javascript", "png": "image/png", "css": "text/css"}[kind]
        status = rng.choice(["HIT", "HIT", "MISS", "EXPIRED"]) if k % 5 else "BYPASS"
        rows.append((rng.uniform(0, 2500), "static", rng.choice(["GET", "get", None]),
                     f"/{'s' if k % 5 else 'b'}/{{f}}.{kind}",
                     f"/s/{k}.{kind}", rng.choice([None, "v=3"]), rng.choice([200, 200, 304]), 2000 + k,
                     ctype, status, f"c{rng.randrange(20)}"))
    insert(con, rows)
    temp = "SELECT count(*) FROM duckdb_tables() WHERE temporary"
    before = con.execute(temp).fetchone()[0]
    a = analyse_cdn(con, window_of(con))
    assert con.execute(temp).fetchone()[0] == before
    sql = a.sql
    assert not [k for k, v in sql.items() if "cdn_" in v]

    def same(name: str, frame, on: list[str], cols: list[str]) -> None:
        shown = con.execute(sql[name]).df()
        assert len(shown) == len(frame), name
        got = to_jsonable(frame.sort_values(on)[on + cols].reset_index(drop=True))
        want = to_jsonable(shown.sort_values(on)[on + cols].reset_index(drop=True))
        for g, w in zip(got, want, strict=True):
            assert g == pytest.approx(w, nan_ok=True), (name, g, w)

    ratio = ["requests", "bytes", "hits", "misses", "bypasses", "no_status", "expired", "hit_ratio",
             "byte_hit_ratio", "offload"]
    shown_counts = con.execute(sql["status_counts"]).df()
    assert sorted(map(tuple, shown_counts.fillna("").to_numpy().tolist())) == \
        sorted(map(tuple, a.status_counts.fillna("").to_numpy().tolist()))
    totals = to_jsonable(con.execute(sql["totals"]).df())[0]
    assert {k: a.totals[k] for k in ratio} == pytest.approx({k: totals[k] for k in ratio})
    same("by_class", a.by_class, ["content_class"], ratio)
    same("by_route", a.by_route, ["service", "route"], ["content_class", *ratio])
    assert a.uncached["candidate"].any()
    same("uncached", a.uncached, ["service", "route"],
         ["content_class", "requests", "bytes", "bypasses", "hits", "misses", "same_size_share", "candidate"])
    same("fragmentation", a.fragmentation, ["service", "route"],
         ["requests", "bytes", "paths", "raw_keys", "normalized_keys", "tracked_requests"])
    same("parameters", a.parameters, ["name"], ["requests", "distinct_values", "routes", "example_route", "kind"])
    assert a.replay["sample_rate"] == 1
    same("ttl_by_class", a.ttl, ["content_class"],
         ["lookups", "expired", "expired_bytes", "reuses", "reuse_p50_s", "reuse_p90_s", "reuse_p99_s"])
    assert "ttl_gain" in sql
    gained = {c: h for c, h, _ in con.execute(sql["ttl_gain"]).fetchall()}
    assert gained and {c: int(h) for c, h in zip(a.ttl["content_class"], a.ttl["hits_gained"], strict=True)
                       if c in gained} == gained
    assert len(con.execute(sql["replay_trace"]).fetchall()) == a.replay["requests"]


def test_narrow_key_keeps_the_columns_that_tell_groups_apart() -> None:
    """_narrow_key drops a column only when the groups stay unique without it (NULLs equal, as in hash())."""
    import pandas as pd

    from kit.analysis.cdn import _narrow_key

    base = {"service": "s", "route": "/r", "method": "GET", "status": 200, "path": "/p", "query": None,
            "content_type": None, "cache_status": "HIT"}
    one = pd.DataFrame([base, {**base, "path": "/q"}])
    assert _narrow_key(one) == ["path"]
    for col, other in (("service", "t"), ("route", "/x"), ("method", "HEAD"), ("status", 304), ("query", "a=1"),
                       ("content_type", "text/css"), ("cache_status", None)):
        frame = pd.DataFrame([base, {**base, col: other}, {**base, "path": "/q"}])
        assert _narrow_key(frame) == [c for c in base if c in (col, "path")], col
    # two columns differing together: one of them is enough, the other is left out
    both = pd.DataFrame([base, {**base, "status": 404, "cache_status": "MISS"}])
    assert len(_narrow_key(both)) == 2


def test_trace_rows_are_the_shown_per_request_sql(con, monkeypatch):
    """The replay's trace joins each request to its group on a narrow key (the path and the columns that tell
    the groups of the paths read apart); it must hold what the shown per-request SQL computes, also when
    groups of one path differ only in service, route, method, status, content type, query or cache status,
    sampled (the kept keys' paths filter the scan) or not."""
    import numpy as np

    from kit.analysis import cdn
    from kit.cachesim import Trace, spatial_sample

    rng = random.Random(12)
    rows = []
    for i in range(3000):
        k = rng.randrange(12)
        rows.append((i + rng.random(), rng.choice(["a", "b"]) if k % 3 == 0 else "a",
                     rng.choice(["GET", "get", None, "HEAD", "POST"]), rng.choice(["/f/{k}", None]) if k % 4 else "/f",
                     f"/f/{k}.js", rng.choice([None, "", "v=1", "utm_source=x&v=1"]) if k % 2 else None,
                     rng.choice([200, 200, 304, 404, None]), rng.randrange(0, 3000),
                     rng.choice(["application/javascript", None, "text/html"]) if k % 5 == 0 else None,
                     rng.choice(["HIT", "MISS", "EXPIRED", "BYPASS", None]), "c"))
    insert(con, rows)
    w = window_of(con)
    seen = []
    real_replay = cdn._replay

    def replay(trace, cand, cache):
        seen.append(trace)
        return real_replay(trace, cand, cache)

    monkeypatch.setattr(cdn, "_replay", replay)
    for limit in (cdn.REPLAY_MAX_REQUESTS, 700):
        monkeypatch.setattr(cdn, "REPLAY_MAX_REQUESTS", limit)
        analyse_cdn(con, w)
        trace = seen[-1]
        got = trace.frame[["t", "h_raw", "h_norm", "sz", "cls", "extra"]]
        want = con.execute(trace.sql).df()
        if trace.rate < 1:   # the requests of the keys SHARDS keeps (as logged or normalised)
            kept = [spatial_sample(Trace(c, ids, np.ones(len(ids), np.int64)), trace.rate).obj_id
                    for c in ("h_raw", "h_norm") for ids in [np.unique(want[c].to_numpy(np.uint64))]]
            want = want[want["h_raw"].isin(kept[0]) | want["h_norm"].isin(kept[1])]
        order = ["t", "h_raw", "h_norm"]
        assert len(got) == len(want) > 0, limit
        want = want.sort_values(order)[list(got.columns)]
        assert got.sort_values(order).to_numpy().tolist() == want.to_numpy().tolist()
    assert seen[-1].rate < 1 and seen[0].rate == 1


def test_same_size_share_counts_keys_two_clients_asked_for(con):
    """same_size_share of a bypassed route, by hand: requests of keys that two or more clients asked for, and
    of those the keys whose every response had one size. NULL clients count for no one; a key asked for by
    one client (however often) is left out; tracking parameters do not split a key."""
    def get(t, path, query, size, client):
        return (t, "s", "GET", "/r/{id}", path, query, 200, size, "application/json", "BYPASS", client)

    insert(con, [
        get(1, "/r/1", None, 10, "a"), get(2, "/r/1", "utm_source=x", 10, "b"),   # 2 clients, one size: same
        get(3, "/r/2", None, 10, "a"), get(4, "/r/2", None, 11, "b"),             # 2 clients, two sizes
        get(5, "/r/2", None, 10, None),
        get(6, "/r/3", None, 10, "a"), get(7, "/r/3", None, 12, "a"),             # one client: left out
        get(8, "/r/3", None, 10, None), get(9, "/r/4", None, 10, None),           # no client at all: left out
    ])
    row = to_jsonable(analyse_cdn(con, window_of(con)).uncached)[0]
    assert row["route"] == "/r/{id}" and row["bypasses"] == 9
    assert row["same_size_share"] == pytest.approx(2 / (2 + 3))


def test_two_clients_is_min_below_max(con):
    """two_clients (two early-stopping scans) says what ``min(client_hash) < max(client_hash)`` says: no client,
    one client many times (with NULLs between), two clients."""
    from kit.analysis.request_groups import two_clients

    def row(i, client):
        return (i, "s", "GET", "/a", "/a", None, 200, 1, None, "HIT", client)

    cases = [[row(1, None), row(2, None)], [row(3, "c1"), row(4, None), row(5, "c1")], [row(6, "c2")]]
    for rows in cases:
        insert(con, rows)
        w = window_of(con)
        ref = con.execute(f"SELECT coalesce(min(client_hash) < max(client_hash), false) FROM requests "
                          f"WHERE {w.sql()}").fetchone()[0]
        assert two_clients(con, w) is ref
    assert ref is True


def test_spatial_mask_keeps_what_spatial_sample_keeps() -> None:
    """The replay filters each selection with one SHARDS mask per key (kit.cachesim.spatial_mask); on any
    selection the masked requests are the ones spatial_sample of that selection keeps, in order, and a
    key is kept or dropped as a whole."""
    import numpy as np

    from kit.cachesim import Trace, spatial_sample
    from kit.cachesim.policies import spatial_mask

    rng = np.random.default_rng(3)
    ids = rng.integers(0, 5000, 40_000).astype(np.uint64)
    sel = rng.random(len(ids)) < 0.6
    for rate in (0.05, 0.3, 1.0):
        keep = spatial_mask(ids, rate)
        want = spatial_sample(Trace("x", ids[sel], np.ones(sel.sum(), np.int64)), rate).obj_id
        assert ids[sel & keep].tolist() == want.tolist()
        kept_keys = set(ids[keep].tolist())
        assert not kept_keys & set(ids[~keep].tolist())
        if rate < 1:
            assert 0.5 * rate < len(kept_keys) / len(np.unique(ids)) < 1.5 * rate
