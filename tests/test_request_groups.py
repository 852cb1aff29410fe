"""The shared grouped requests (kit.analysis.request_groups): the groups against a Python group-by of the rows,
and what the areas compute from them (route_traffic's frame, the compression study, the CDN study) against
the same functions scanning ``requests`` on their own (TRAFFIC_SQL, the compression study's and the CDN
study's own scans, whose SQL the results show), on a planted log with edge cases (NULL path, route, status,
bytes and latency, non-asset paths, an asset's 304s and 5xx) and on the demo."""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from kit.analysis import request_groups as rg
from kit.analysis.cdn import analyse_cdn
from kit.analysis.compression import analyse_compression
from kit.analysis.database import analyse_database
from kit.analysis.optimizations import optimization_opportunities
from kit.analysis.request_groups import (
    ROLLUP,
    TRAFFIC_SQL,
    build_request_groups,
    drop_request_groups,
    refresh_rollup,
    request_groups,
    rollup_days,
    route_traffic,
    uncovered,
)
from kit.analysis.window import Window, resolve_window
from kit.results import to_jsonable
from kit.warehouse import begin_source, delete_source
from tests.conftest import same_within

T0 = datetime(2026, 1, 5, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=2))
ASSETS = {"/s/app.js": ("application/javascript", b"function f(){return 1;}\n" * 400),
          "/s/site.css": ("text/css", b"body{margin:0;padding:0}\n" * 300),
          "/s/logo.png": ("image/png", bytes(range(256)) * 20)}
COLS = ("ts, service, method, route, path, query, status, latency_ms, bytes_sent, content_type, cache_status, "
        "client_hash, source_id")


def plant(con: duckdb.DuckDBPyConnection, seed: int = 1, n: int = 3000) -> list[tuple]:
    """Assets with content and requests with the edge cases; returns the requests as inserted
    (ts, service, method, route, path, query, status, latency_ms, bytes_sent, content_type, cache_status, client)."""
    src = begin_source(con, "synthetic", "test")
    for path, (ctype, blob) in ASSETS.items():
        sha = hashlib.sha256(blob).hexdigest()
        con.execute("INSERT INTO assets VALUES (?, ?, ?, ?, ?)", [path, ctype, len(blob), sha, src.source_id])
        con.execute("INSERT INTO asset_content VALUES (?, ?)", [sha, blob])
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ts = T0 + timedelta(seconds=rng.uniform(-600, 7800))     # some outside the window on both sides
        kind = rng.random()
        if kind < 0.45:   # an asset: raw or compressed sizes, a 304, a 5xx, NULL bytes or status
            path = rng.choice(list(ASSETS))
            ctype, blob = ASSETS[path]
            status = rng.choice([200, 200, 200, 200, 304, 503, None])
            sent = rng.choice([len(blob), len(blob) + 300, len(blob) // 5, 0, None]) if status != 304 else 0
            row = ("static", rng.choice(["GET", "get", None]), rng.choice(["/s/{f}", None]), path,
                   rng.choice([None, "v=2"]), status, rng.choice([1.5, 2.25, None]), sent, ctype)
        elif kind < 0.9:  # dynamic pages: varying sizes (never split by size), 5xx, NULL route
            page = rng.randrange(12)
            row = ("web", "GET", rng.choice(["/p/{id}", None]), f"/p/{page}",
                   rng.choice([None, "utm_source=x&a=1", "a=1"]), rng.choice([200, 200, 500, 502, 404, None]),
                   rng.uniform(1, 300), rng.choice([rng.randrange(100, 5000), None]), "text/html")
        else:             # no path at all (a malformed line), NULL route
            row = (rng.choice(["web", None]), "GET", rng.choice(["/x", None]), None, None,
                   rng.choice([200, 400, 500]), rng.choice([3.0, None]), rng.choice([10, None]), None)
        rows.append((ts, *row, rng.choice(["HIT", "MISS", "EXPIRED", "BYPASS", None]), f"c{rng.randrange(9)}"))
    con.executemany(f"INSERT INTO requests ({COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {src.source_id})",
                    rows)
    return rows


def _in_window(rows: list[tuple], window: Window) -> list[tuple]:
    return [r for r in rows if window.start <= r[0] < window.end]


def _groups_reference(rows: list[tuple]) -> dict[tuple, tuple]:
    """A Python group-by: (service, route, method, status, path, query, content_type, cache_status,
    asset_bytes) -> (n, bytes, bytes1, latency sum or None)."""
    acc: dict[tuple, list[Any]] = defaultdict(lambda: [0, 0, 0, None])
    for _ts, service, method, route, path, query, status, lat, sent, ctype, cache, _ in rows:
        asset_bytes = sent if status == 200 and path in ASSETS else None
        a = acc[(service, route, method, status, path, query, ctype, cache, asset_bytes)]
        a[0] += 1
        a[1] += sent or 0
        a[2] += max(sent or 0, 1)
        if lat is not None:
            a[3] = (a[3] or 0.0) + lat
    return {k: tuple(v) for k, v in acc.items()}


def _table_groups(con: duckdb.DuckDBPyConnection, table: str) -> dict[tuple, tuple]:
    got = con.execute(f"SELECT service, route, method, status, path, query, content_type, cache_status, asset_bytes, "
                      f"n, bytes, bytes1, latency_ms FROM {table}").fetchall()
    assert len({tuple(g[:9]) for g in got}) == len(got), "a group appears twice"
    return {tuple(g[:9]): (g[9], g[10], g[11], g[12]) for g in got}


def _same_groups(got: dict[tuple, tuple], want: dict[tuple, tuple]) -> None:
    assert got.keys() == want.keys()
    for key, (n, b, b1, lat) in want.items():
        g = got[key]
        assert (g[0], g[1], g[2]) == (n, b, b1), key
        assert (g[3] is None) == (lat is None) and (lat is None or g[3] == pytest.approx(lat)), key


def _traffic_sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.fillna({"service": "", "route": ""}).sort_values(["service", "route"]).reset_index(drop=True)


def _compression_view(found: Any) -> dict[str, Any]:
    """A compression result without what this machine's speed decides (speeds, CPU seconds, their text)."""
    data = to_jsonable(found)
    kept = ("title", "saving", "addresses", "sql", "evidence", "effect")
    ops = [{k: o[k] for k in kept} for o in data["opportunities"]]
    return {"assets": data["assets"], "by_type": data["by_type"], "by_route": data["by_route"], "opportunities": ops,
            "served_bytes_total": data["served_bytes_total"], "sampled": data["sampled_assets"],
            "sql": data["sql"]}


def _cdn_view(found: Any) -> dict[str, Any]:
    return {k: v for k, v in to_jsonable(found).items() if k not in ("seconds", "timings_s")}


def _areas_agree(con: duckdb.DuckDBPyConnection, window: Window) -> None:
    """route_traffic, the compression and the CDN studies give the same results from the shared groups as
    from their own scans, and the groups' table is gone after the block."""
    alone = {"traffic": route_traffic(con, window), "compression": analyse_compression(con, window, threads=1),
             "cdn": analyse_cdn(con, window)}
    with request_groups(con, window) as groups:
        traffic = route_traffic(con, window, groups)
        compression = analyse_compression(con, window, threads=1, groups=groups)
        cdn = analyse_cdn(con, window, groups=groups)
        table = groups.table
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table]).fetchone()[0]
    assert list(traffic.dtypes) == list(alone["traffic"].dtypes)
    assert same_within(to_jsonable(_traffic_sorted(traffic)), to_jsonable(_traffic_sorted(alone["traffic"])))
    assert same_within(_compression_view(compression), _compression_view(alone["compression"]))
    assert same_within(_cdn_view(cdn), _cdn_view(alone["cdn"]))
    assert not [k for k, v in cdn.sql.items() if "request_groups_" in v or "cdn_groups_" in v]


def test_groups_match_a_python_group_by_and_the_view_fallback(con) -> None:
    rows = plant(con)
    inside = _in_window(rows, WINDOW)
    want = _groups_reference(inside)
    groups = build_request_groups(con, WINDOW)
    try:
        _same_groups(_table_groups(con, groups.table), want)
    finally:
        drop_request_groups(con, groups)
    # edge cases are present in the window (else the test proves little)
    keys = list(want)
    assert any(k[4] is None for k in keys) and any(k[1] is None for k in keys) and any(k[3] is None for k in keys)
    assert any(k[8] is not None for k in keys) and any(k[3] == 200 and k[4] in ASSETS and k[8] is None for k in keys)
    con.execute("CREATE TABLE requests_t AS SELECT * FROM requests")
    con.execute("DROP TABLE requests")
    con.execute("CREATE VIEW requests AS SELECT * FROM requests_t")
    with request_groups(con, WINDOW) as on_view:
        _same_groups(_table_groups(con, on_view.table), want)


def test_traffic_from_groups_is_traffic_sql_and_a_hand_count(con) -> None:
    rows = _in_window(plant(con, seed=2), WINDOW)
    with request_groups(con, WINDOW) as groups:
        got = _traffic_sorted(route_traffic(con, WINDOW, groups))
    shown = _traffic_sorted(con.execute(TRAFFIC_SQL, [WINDOW.start, WINDOW.end]).df())
    assert same_within(to_jsonable(got), to_jsonable(shown))
    hand: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0, 0, 0])
    for _, service, _, route, _, _, status, lat, sent, *_ in rows:
        h = hand[(service or "", route or "")]
        h[0] += 1
        h[1] += lat or 0.0
        h[2] += int(status is not None and status >= 500)
        h[3] += sent or 0
    assert {(r.service, r.route): [r.requests, pytest.approx(r.request_ms), r.errors_5xx, r.bytes_sent]
            for r in got.itertuples()} == {k: v for k, v in hand.items()}


def test_areas_from_groups_match_their_own_scans_on_a_planted_log(con) -> None:
    plant(con, seed=3)
    _areas_agree(con, WINDOW)


def test_groups_of_another_window_are_refused(con) -> None:
    plant(con, seed=4, n=200)
    with request_groups(con, WINDOW) as groups, pytest.raises(ValueError, match="request groups"):
        analyse_compression(con, Window(WINDOW.start, WINDOW.end + timedelta(hours=1)), groups=groups)
    with request_groups(con, WINDOW, assets=False) as groups, pytest.raises(ValueError, match="with the assets"):
        analyse_compression(con, WINDOW, groups=groups)


def test_areas_from_groups_match_their_own_scans_on_the_demo(demo_warehouse) -> None:
    con = duckdb.connect(str(demo_warehouse(requests=60_000, days=7, seed=7)), read_only=True)
    try:
        window = resolve_window(con)
        _areas_agree(con, window)
        # and optimization_opportunities, which shares the groups, gives the standalone studies' results
        found = optimization_opportunities(con, window)
        assert found.cdn is not None
        assert same_within(_cdn_view(found.cdn), _cdn_view(analyse_cdn(con, window)))
        assert same_within(_compression_view(found.compression), _compression_view(analyse_compression(con, window)))
        # the database analysis runs in a thread on a second connection, beside the others: it is the one run
        # alone on this connection
        assert found.database is not None and found.database.opportunities
        assert same_within(to_jsonable(found.database), to_jsonable(analyse_database(con, window)))
        row = con.execute("SELECT count(*), count(*) FILTER (WHERE status >= 500), coalesce(sum(bytes_sent), 0) "
                          f"FROM requests WHERE {window.sql()}").fetchone()
        assert row is not None
        assert (found.totals.requests, found.totals.errors_5xx, found.totals.bytes_sent) == tuple(int(v) for v in row)
        assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0]
    finally:
        con.close()


def test_counter_reference_is_not_trivial() -> None:
    """The reference group-by splits an asset's 200s by size and nothing else by size."""
    ts = T0
    rows = [(ts, "s", "GET", "/r", "/s/app.js", None, 200, 1.0, 10, "t", None, "c"),
            (ts, "s", "GET", "/r", "/s/app.js", None, 200, 1.0, 20, "t", None, "c"),
            (ts, "s", "GET", "/r", "/p/1", None, 200, 1.0, 10, "t", None, "c"),
            (ts, "s", "GET", "/r", "/p/1", None, 200, 1.0, 20, "t", None, "c"),
            (ts, "s", "GET", "/r", "/s/app.js", None, 304, None, 0, "t", None, "c")]
    got = _groups_reference(rows)
    assert Counter(k[4] for k in got) == Counter({"/s/app.js": 3, "/p/1": 1})
    assert got[("s", "/r", "GET", 304, "/s/app.js", None, "t", None, None)] == (1, 0, 1, None)


# ------------------------------------------------------------------------------------------ per-day rollup
def _spread_over_days(con: duckdb.DuckDBPyConnection, rows: list[tuple], source_id: int) -> list[tuple]:
    """Move the ``i``-th planted request of ``source_id`` ``i % 3`` days later (in the table and in ``rows``)."""
    con.execute("CREATE TEMP TABLE shift AS SELECT rowid AS r, row_number() OVER (ORDER BY rowid) - 1 AS i "
                "FROM requests WHERE source_id = ?", [source_id])
    con.execute("UPDATE requests SET ts = ts + to_days(CAST(shift.i % 3 AS INTEGER)) FROM shift "
                "WHERE requests.rowid = shift.r")
    con.execute("DROP TABLE shift")
    return [(r[0] + timedelta(days=i % 3), *r[1:]) for i, r in enumerate(rows)]


def _groups_of(con: duckdb.DuckDBPyConnection, window: Window, *, assets: bool = True) -> dict[tuple, tuple]:
    with request_groups(con, window, assets=assets) as groups:
        return _table_groups(con, groups.table)


def _without_asset_split(want: dict[tuple, tuple]) -> dict[tuple, tuple]:
    """The reference groups with the assets' 200s no longer split by size (``assets=False``)."""
    acc: dict[tuple, list[Any]] = defaultdict(lambda: [0, 0, 0, None])
    for key, (n, b, b1, lat) in want.items():
        a = acc[(*key[:8], None)]
        a[0], a[1], a[2] = a[0] + n, a[1] + b, a[2] + b1
        if lat is not None:
            a[3] = (a[3] or 0.0) + lat
    return {k: tuple(v) for k, v in acc.items()}


ALL_DAYS = Window(T0 - timedelta(days=1), T0 + timedelta(days=4))
CUT = Window(T0 + timedelta(hours=1), T0 + timedelta(days=2, hours=1))   # cuts the first and last day it meets


@pytest.fixture
def roll_every_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every day is rolled up, however many groups it has (the planted days have many for their size)."""
    monkeypatch.setattr(rg, "MAX_GROUP_SHARE", 1.0)


def test_rollup_groups_are_the_python_group_by_over_whole_and_cut_days(con, roll_every_day) -> None:
    planted = plant(con, seed=5)
    rows = _spread_over_days(con, planted, 1)
    done = refresh_rollup(con)
    assert done is not None and done.full and done.days == 4   # Jan 4 (from 23:50) to Jan 7 (to 02:10)
    assert refresh_rollup(con).days == 0                        # nothing new: nothing regrouped
    whole = rollup_days(con, ALL_DAYS)
    assert whole is not None and len(whole) == 4
    cut = rollup_days(con, CUT)
    assert cut == [int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).days) + 1]   # Jan 6 only: Jan 5 and 7 are cut
    assert [(w.start, w.end) for w in uncovered(CUT, cut)] == [(CUT.start, T0 + timedelta(days=1)),
                                                              (T0 + timedelta(days=2), CUT.end)]
    for window in (ALL_DAYS, CUT, WINDOW):
        want = _groups_reference(_in_window(rows, window))
        _same_groups(_groups_of(con, window), want)
        _same_groups(_groups_of(con, window, assets=False), _without_asset_split(want))
    # the rollup is really read: changed behind its back (its inputs unchanged), a whole day's groups change too
    con.execute(f"UPDATE {ROLLUP} SET n = n + 1000")
    assert min(v[0] for v in _groups_of(con, Window(T0 + timedelta(days=1), T0 + timedelta(days=2))).values()) > 1000


def test_an_out_of_date_rollup_is_not_read_and_a_refresh_regroups_what_changed(con, roll_every_day) -> None:
    rows = _spread_over_days(con, plant(con, seed=6, n=1500), 1)
    refresh_rollup(con)
    # a newer source: the rollup is out of date (not read) until refreshed, then only the new rows' day
    src = begin_source(con, "synthetic", "later")
    late = [(T0 + timedelta(days=2, hours=5), "web", "GET", "/p/{id}", "/p/1", None, 200, 5.0, 100, "text/html",
             "MISS", "c1")] * 3
    con.executemany(f"INSERT INTO requests ({COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {src.source_id})",
                    late)
    rows += late
    assert rollup_days(con, ALL_DAYS) is None
    _same_groups(_groups_of(con, ALL_DAYS), _groups_reference(_in_window(rows, ALL_DAYS)))
    done = refresh_rollup(con)
    assert done is not None and (done.full, done.days) == (False, 1)
    assert rollup_days(con, ALL_DAYS)
    _same_groups(_groups_of(con, ALL_DAYS), _groups_reference(_in_window(rows, ALL_DAYS)))
    # requests gone (a replaced source): every day is regrouped
    delete_source(con, src.source_id)
    rows = rows[:-3]
    assert rollup_days(con, ALL_DAYS) is None
    done = refresh_rollup(con)
    assert done is not None and done.full
    _same_groups(_groups_of(con, ALL_DAYS), _groups_reference(_in_window(rows, ALL_DAYS)))
    # the assets changed: their sizes key the groups, so every day is regrouped
    con.execute("DELETE FROM assets WHERE path = '/s/logo.png'")
    assert rollup_days(con, ALL_DAYS) is None
    done = refresh_rollup(con)
    assert done is not None and done.full
    got = _groups_of(con, ALL_DAYS)
    assert not any(k[4] == "/s/logo.png" and k[8] is not None for k in got)
    assert any(k[4] == "/s/app.js" and k[8] is not None for k in got)


def _small_log(path: Path) -> Path:
    path.write_text("".join(f'10.0.0.{i % 5} - - [05/Jan/2026:0{i % 3}:00:0{i % 10} +0000] "GET /p/{i % 4}?a={i % 2} '
                            f'HTTP/1.1" {200 if i % 7 else 500} {100 + i} "-" "ua"\n' for i in range(60)))
    return path


def test_perfkit_ingest_keeps_the_rollup_and_a_parquet_warehouse_has_none(tmp_path, con, roll_every_day) -> None:
    from kit.cli import main as perfkit
    from kit.warehouse import connect

    log = _small_log(tmp_path / "access.log")
    db = tmp_path / "w.duckdb"
    assert perfkit(["ingest", "access-log", str(log), "--db", str(db), "--service", "web"]) == 0
    w = connect(db, read_only=True)
    try:
        window = resolve_window(w)
        assert rollup_days(w, window) == [int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).days)]
        with request_groups(w, window) as held:
            from_rollup = _table_groups(w, held.table)
        with request_groups(w, window, rollup=False) as raw:
            assert _table_groups(w, raw.table) == from_rollup
        assert sum(v[0] for v in from_rollup.values()) == 60
    finally:
        w.close()
    con.execute("CREATE TABLE requests_t AS SELECT * FROM requests")
    con.execute("DROP TABLE requests")
    con.execute("CREATE VIEW requests AS SELECT * FROM requests_t")
    assert refresh_rollup(con) is None and rollup_days(con, WINDOW) is None


def test_a_day_of_nearly_unique_requests_is_not_rolled_up(con) -> None:
    """A day with few groups is rolled up, one where nearly every request is a group of its own is not (its
    rollup would be the requests again); the window's groups are right either way."""
    src = begin_source(con, "synthetic", "two days")
    few = [(T0 + timedelta(minutes=i), "web", "GET", "/p/{id}", f"/p/{i % 4}", None, 200, 1.0, 10, "text/html",
            "MISS", "c1") for i in range(400)]
    unique = [(T0 + timedelta(days=1, minutes=i), "web", "GET", "/p/{id}", f"/p/{i}", f"s={i}", 200, 1.0, 10,
               "text/html", "MISS", "c1") for i in range(400)]
    con.executemany(f"INSERT INTO requests ({COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {src.source_id})",
                    few + unique)
    done = refresh_rollup(con)
    assert done is not None and (done.days, done.rolled_up) == (2, 1) and "1 not rolled up" in done.line()
    window = Window(T0, T0 + timedelta(days=2))
    assert rollup_days(con, window) == [int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).days)]
    assert con.execute(f"SELECT count(*), count(DISTINCT day) FROM {ROLLUP}").fetchone() == (4, 1)
    _same_groups(_groups_of(con, window), _groups_reference(few + unique))


def test_perfkit_rollup_brings_a_library_ingest_up_to_date(tmp_path, capsys, roll_every_day) -> None:
    from kit.cli import main as perfkit
    from kit.ingest.access_log import ingest_access_log
    from kit.warehouse import connect

    db = tmp_path / "w.duckdb"
    w = connect(db)
    ingest_access_log(w, _small_log(tmp_path / "access.log"), service="web")   # a library call: no rollup
    window = resolve_window(w)
    assert rollup_days(w, window) is None
    w.close()
    assert perfkit(["rollup", "--db", str(db)]) == 0 and "every day (1) regrouped" in capsys.readouterr().out
    assert perfkit(["rollup", "--db", str(db)]) == 0 and "up to date" in capsys.readouterr().out
    w = connect(db)
    try:
        assert rollup_days(w, window) == [int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).days)]
        w.execute("UPDATE requests SET route = '/q/{id}'")   # in place: the rollup cannot see it...
        assert {k[1] for k in _groups_of(w, window)} == {"/p/{id}"}
    finally:
        w.close()
    assert perfkit(["rollup", "--db", str(db), "--full"]) == 0   # ...until regrouped in full
    w = connect(db, read_only=True)
    try:
        assert {k[1] for k in _groups_of(w, window)} == {"/q/{id}"}
    finally:
        w.close()
    assert perfkit(["rollup", "--db", str(tmp_path / "nope.duckdb")]) == 1
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "nope.duckdb").exists()
