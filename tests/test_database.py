"""Database analysis on a small hand-made warehouse: digest numbers computed by hand (snapshot deltas
with a counter reset, events' percentiles and V/M), a regression with its interval, N+1 bursts, index
candidates from the SQL text, and the demo's planted N+1 and missing index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kit import warehouse
from kit.analysis.database import analyse_database, statement_shape
from kit.analysis.window import Window
from kit.report.render import environment
from kit.results import to_jsonable
from tests.conftest import same_within

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A = "select * from a where x = ?"
B = "select * from b where y = ?"
C = "select * from c where z = ?"


def _snap(con, src, minute, fp, calls, ms, rows=None, hit=None, read=None):
    con.execute("INSERT INTO queries (ts, db_system, database, user_name, kind, fingerprint, query_id, sample, calls, "
                "total_ms, rows, shared_blks_hit, shared_blks_read, source_id) VALUES (?, 'postgresql', 'd', 'u', "
                "'snapshot', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [T0 + timedelta(minutes=minute), fp, fp, fp, calls, ms, rows, hit, read, src.source_id])


def _event(con, src, seconds, fp, ms):
    con.execute("INSERT INTO queries (ts, db_system, database, user_name, kind, fingerprint, sample, calls, total_ms, "
                "rows, source_id) VALUES (?, 'postgresql', 'd', 'u', 'event', ?, ?, 1, ?, 1, ?)",
                [T0 + timedelta(seconds=seconds), fp, fp, ms, src.source_id])


@pytest.fixture()
def small(con):
    src = warehouse.begin_source(con, "test")
    for m, (ca, ma, cb, mb) in enumerate([(10, 100, 5, 50), (20, 200, 5, 60), (35, 500, 2, 30)]):
        _snap(con, src, m * 10, A, ca, ma, rows=ca, hit=ca * 3, read=ca)
        _snap(con, src, m * 10, B, cb, mb, rows=cb, hit=cb, read=0)
    for s, ms in [(60, 1.0), (61, 2.0), (62, 3.0), (63, 10.0)]:
        _event(con, src, s, C, ms)
    return con


def test_digest_numbers_by_hand(small):
    a = analyse_database(small, Window(T0, T0 + timedelta(hours=1)))
    d = a.digest.set_index("fingerprint")
    # A: deltas 20-10, 35-20 calls and 200-100, 500-200 ms (the first snapshot is the baseline)
    assert d.loc[A, "calls"] == 25 and d.loc[A, "total_ms"] == pytest.approx(400)
    assert d.loc[A, "mean_ms"] == pytest.approx(16)
    assert d.loc[A, "read_share"] == pytest.approx(15 / 60)  # read 5+10 of hit+read 15*3+15
    # B: no change, then a reset (2 < 5) counts from zero: 0 + 2 calls, 10 + 30 ms
    assert d.loc[B, "calls"] == 2 and d.loc[B, "total_ms"] == pytest.approx(40)
    # C: events only: 4 calls, 16 ms; p95 by linear interpolation 3 + 0.85 * 7; V/M = var_samp / mean
    assert d.loc[C, "calls"] == 4 and d.loc[C, "basis"] == "events"
    assert d.loc[C, "p95_ms"] == pytest.approx(8.95)
    assert d.loc[C, "variance_to_mean"] == pytest.approx((50 / 3) / 4)
    assert d.loc[C, "percentile_basis"] == "all executions"
    assert d.loc[A, "percentile_basis"].startswith("means only")
    assert a.total_ms == pytest.approx(456)
    assert d.loc[A, "share_of_db_time"] == pytest.approx(400 / 456)
    assert list(a.digest["fingerprint"]) == [A, B, C]  # ranked by total time
    from kit.viz.database import plot_top_fingerprints

    fig = plot_top_fingerprints(a)
    assert list(fig.data[0].x) == pytest.approx([0.4, 0.04, 0.016])  # seconds, same order
    periods = [{"fingerprint": A, "period": "p1", "total_ms": 100.0}, {"fingerprint": A, "period": "p2",
                                                                         "total_ms": 300.0}]
    assert [list(t.x)[0] for t in plot_top_fingerprints(a, periods).data] == [0.1, 0.3]


def test_regression_interval_and_bursts(con):
    src = warehouse.begin_source(con, "test")
    calls = ms = 0
    for m in range(1, 41):  # 10 calls per minute; 1 ms each for 20 minutes, then 5 ms (noise ±10 %)
        calls += 10
        ms += 10 * (1.0 if m <= 20 else 5.0) * (1 + 0.1 * ((m * 7) % 3 - 1))
        _snap(con, src, m, A, calls, ms)
        _snap(con, src, m, B, calls, calls * 2.0)  # steady
    for burst in range(4):  # 4 bursts of 15 executions 2 ms apart: an N+1 from the log
        for i in range(15):
            _event(con, src, 300 + burst * 60 + i * 0.002, C, 1.5)
    a = analyse_database(con, Window(T0, T0 + timedelta(minutes=41)))
    assert "fingerprint" in a.regressions.columns, a.regressions.columns
    regs = a.regressions.set_index("fingerprint")
    assert A in regs.index and B not in regs.index
    assert regs.loc[A, "ratio_low"] < 5 < regs.loc[A, "ratio_high"] * 1.2 and regs.loc[A, "regressed"]
    assert not regs.loc[A, "calls_jumped"]
    n1 = {n["fingerprint"]: n for n in a.nplus1}
    assert n1[C]["bursts"] == 4 and n1[C]["median_burst"] == 15
    text = environment().from_string('{% from "partials/database.md.j2" import section %}{{ section(db) }}').render(
        db=to_jsonable(a))
    assert "N+1" in text and "select * from c where z = ?" in text


def test_index_candidates_from_the_text():
    shape = statement_shape("select o.id from orders o join order_items oi on oi.order_id = o.id "
                            "where o.user_id = ? order by o.created_at desc")
    assert [(c.table, c.columns) for c in shape.candidates] == [("orders", ("user_id", "created_at")),
                                                                ("order_items", ("order_id",))]
    assert statement_shape("select * from t where k = ?").single_key_lookup
    assert not statement_shape("select count(*) from t where note like ?").candidates


def test_a_scan_that_finds_no_rows_is_still_explained():
    """2803 blocks read per call for 0 rows is a scan (0 rows counts as 1: 2803 >= 20 blocks per row);
    the same statement reading 3 blocks for 1 row is a cheap lookup."""
    from types import SimpleNamespace

    from kit.analysis.database import _explain_reason
    shape = statement_shape("select * from counters where code = ?")
    row = dict(share_of_db_time=0.01, mean_ms=0.4, rows_per_call=0.0, examined_per_row=float("nan"))
    explain, reason = _explain_reason(SimpleNamespace(**row, blocks_per_call=2803.0), shape)
    assert explain and "2803 blocks read per call for 0.0 rows" in reason
    explain, reason = _explain_reason(SimpleNamespace(**row | {"rows_per_call": 1.0}, blocks_per_call=3.0), shape)
    assert not explain and reason.startswith("cheap")


def test_an_index_that_leads_another_is_folded_into_it(con):
    """Lookups by r.k and by r.k ordered by t (both scans: 200 blocks per row, slow) get one opportunity,
    the index (k, t), saving what both would (no interval history: half of each one's time, 20-90 %);
    the same lookup on another table keeps its own."""
    by_k, latest, other = ("select * from r where k = ?", "select * from r where k = ? order by t desc limit ?",
                           "select * from s where k = ?")
    src = warehouse.begin_source(con, "test")
    for m in range(3):
        for fp, calls, ms in ((by_k, 10, 100), (latest, 5, 500), (other, 10, 100)):
            c = calls * (m + 1)
            _snap(con, src, m * 10, fp, c, ms * (m + 1), rows=c, hit=c * 100, read=c * 100)
    a = analyse_database(con, Window(T0, T0 + timedelta(hours=1)))
    index = [o for o in a.opportunities if o.title.startswith("Index")]
    assert sorted(o.title.split(" for ")[0] for o in index) == ["Index r (k, t)", "Index s (k)"]
    folded = next(o for o in index if o.title.startswith("Index r"))
    assert folded.title.endswith("(and 1 more statement)")
    assert folded.addresses == [f"query:{latest}", f"query:{by_k}"]
    # deltas: by_k 20 calls / 200 ms, latest 10 / 1000 ms, other 20 / 200 ms: 1400 ms in all
    assert folded.saving.value == pytest.approx(0.5 * (1000 + 200))
    assert (folded.saving.low, folded.saving.high) == pytest.approx((0.2 * 1200, 0.9 * 1200))
    assert folded.saving.share == pytest.approx(600 / 1400) and folded.score == pytest.approx(600 / 1400)
    assert folded.change.count("CREATE INDEX") == 1
    assert folded.change.startswith("CREATE INDEX CONCURRENTLY r_k_t_idx ON r (k, t);")
    assert folded.details["also_serves"] == [by_k]


def test_demo_shows_the_nplus1_and_the_orders_index(demo_warehouse):
    from kit.demo.incidents import SLOW_QUERY
    from kit.demo.queries import NPLUS1_QUERY

    con = warehouse.connect(demo_warehouse(requests=150_000, days=7, seed=3), read_only=True)
    from kit.analysis.window import resolve_window

    a = analyse_database(con, resolve_window(con, None, None, None))
    n1 = {n["fingerprint"]: n for n in a.nplus1}
    assert NPLUS1_QUERY in n1 and "api 2.14.0" in n1[NPLUS1_QUERY]["deploy"]
    assert n1[NPLUS1_QUERY]["calls_per_request_before"] < 2 < 15 < n1[NPLUS1_QUERY]["calls_per_request_after"]
    index = [o for o in a.opportunities if o.addresses == [f"query:{SLOW_QUERY}"]]
    assert index and index[0].details["columns"] == ["user_id", "created_at"]
    assert [o.addresses[0] for o in a.opportunities[:2]] == [f"query:{SLOW_QUERY}", f"query:{NPLUS1_QUERY}"] or \
        {o.addresses[0] for o in a.opportunities[:2]} == {f"query:{SLOW_QUERY}", f"query:{NPLUS1_QUERY}"}


def test_mysql_slow_log_thread_id_is_the_session(con, shared_datasets):
    import re

    from kit.ingest.mysql_slow import ingest_mysql_slow

    path = shared_datasets / "db" / "go_mysql_slowlogs" / "slow011.log"
    ingest_mysql_slow(con, path)
    ids = set(re.findall(r"^# User@Host: .* Id: *([0-9]+)", path.read_text(errors="replace"), re.M))
    got = {r[0] for r in con.execute("SELECT DISTINCT session_id FROM queries").fetchall()}
    assert ids and got == ids


def test_periods_around_a_finding_onset(con):
    """A bottlenecks result adds a before/after comparison at each finding's onset: the calls of A jump
    ×5 at minute 30 (of 40), which the first-half/second-half split (at 20) dilutes but the onset catches."""
    src = warehouse.begin_source(con, "test")
    calls = 0
    for m in range(1, 41):
        calls += 10 if m <= 30 else 50
        _snap(con, src, m, A, calls, calls * 1.0)
    onset = (T0 + timedelta(minutes=30)).isoformat()
    found = {"findings": {"items": [{"kind": "latency_shift", "onset": onset, "end": None,
                                     "scope": {"service": "api"}, "causes": []}]}}
    a = analyse_database(con, Window(T0, T0 + timedelta(minutes=41)), bottlenecks=found)
    at_onset = a.regressions[a.regressions["period"].str.contains("onset")]
    row = at_onset[at_onset["fingerprint"] == A].iloc[0]
    assert row["calls_jumped"] and row["rate_ratio_low"] < 5 < row["rate_ratio_high"]
    assert not row["regressed"]  # 1 ms per call throughout


def test_the_shared_route_pass_gives_what_the_database_own_scan_gives(demo_warehouse):
    """``optimization_opportunities`` hands the database analysis the window's requests per route from one
    pass; the analysis alone scans the requests itself: both give the same N+1 signatures and opportunities."""
    from kit.analysis.request_groups import route_traffic
    from kit.analysis.window import resolve_window
    from kit.results import to_jsonable

    con = warehouse.connect(demo_warehouse(requests=150_000, days=7, seed=3), read_only=True)
    window = resolve_window(con, None, None, None)
    traffic = route_traffic(con, window)
    shared = to_jsonable(analyse_database(con, window, route_counts=traffic[traffic["route"].notna()]))
    own = to_jsonable(analyse_database(con, window))
    assert shared["nplus1"] and same_within(shared, own), [k for k in own if not same_within(shared[k], own[k])]


def _records(frame, key):
    """A frame as records sorted by ``key``, NaN/NA as None (for same_within)."""
    import pandas as pd

    rows = frame.sort_values(key, na_position="first", kind="stable").to_dict("records")
    return [{k: (None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else
                 float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v) for k, v in r.items()}
            for r in rows]


@pytest.mark.parametrize("shuffled", [False, True])
def test_the_burst_pass_gives_what_burst_sql_gives(con, shuffled):
    """The numba pass over the events (:func:`kit.analysis.database.bursts.burst_frame`) against the SQL the
    result shows (:func:`burst_sql`, window functions), on events made to trip it: two sessions and no
    session, a NULL database, executions without a time (0 ms in their burst, wherever ties put them), ties
    in time, gaps exactly at the threshold and just over it, and the rows stored out of time order (the
    sorting path)."""
    import random

    from kit.analysis.database.bursts import burst_frame
    from kit.analysis.database.digest import events_sql
    from kit.analysis.database.nplus1 import burst_sql

    src = warehouse.begin_source(con, "test")
    rng = random.Random(5)
    rows = []
    for fp, database, session, user in [(A, "d", "s1", "u"), (A, "d", "s2", "u"), (B, None, None, "u"),
                                        (B, None, None, "v"), (C, "d", "s1", "w")]:
        t = 0.0
        for _ in range(400):
            t += rng.choice([0.0, 0.001, 0.002, 0.002, 0.0020001, 0.005, 0.3, 1.0])   # s; 2 ms = the gap
            ms = None if rng.random() < 0.03 else round(rng.uniform(0.1, 9.0), 3)
            rows.append((T0 + timedelta(seconds=t), database, user, session, fp, ms))
    if shuffled:
        rng.shuffle(rows)
    con.executemany("INSERT INTO queries (ts, db_system, database, user_name, session_id, kind, fingerprint, sample, "
                    "calls, total_ms, rows, source_id) VALUES (?, 'postgresql', ?, ?, ?, 'event', ?, ?, 1, ?, 1, ?)",
                    [(ts, db, u, s, fp, fp, ms, src.source_id) for ts, db, u, s, fp, ms in rows])
    window = Window(T0, T0 + timedelta(hours=1))
    key = ["db_system", "database", "fingerprint"]
    for gap_ms, k in [(2.0, 10), (2.0, 3), (5.0, 1), (0.0, 2)]:
        shown = con.execute(burst_sql(window, gap_ms, k)).df()
        fast = burst_frame(con, events_sql(window.start, window.end), gap_ms, k)
        assert list(fast.columns) == list(shown.columns)
        assert int(shown["bursts"].sum()) > 0 or k == 10
        assert same_within(_records(fast, key), _records(shown, key)), (gap_ms, k)
        ranked = shown["ms_in_bursts"].notna()
        assert list(fast["fingerprint"][: ranked.sum()].map(str)) == list(shown["fingerprint"][ranked].map(str)) \
            or len(set(shown["ms_in_bursts"][ranked])) < ranked.sum()


def test_the_fast_paths_give_what_the_shown_sql_gives(demo_warehouse):
    """On the demo (its planted N+1): the per-route requests per snapshot interval from cumulative minute
    counts give what each route's ``per_request_sql`` (shown in the result) gives on its own, and the burst
    pass what ``burst_sql`` gives."""
    from kit.analysis.database.bursts import burst_frame
    from kit.analysis.database.digest import digest, events_sql
    from kit.analysis.database.nplus1 import _per_request_frames, _routes, burst_sql, candidate_routes, per_request_sql
    from kit.analysis.window import resolve_window

    con = warehouse.connect(demo_warehouse(requests=150_000, days=7, seed=3), read_only=True)
    window = resolve_window(con, None, None, None)
    frame, _ = digest(con, window)
    routes = list(_routes(con, window)["route"])
    by_route: dict[str, list[str]] = {}
    for fp in frame["fingerprint"].head(40):
        for route in candidate_routes(str(fp), routes):
            by_route.setdefault(route, []).append(str(fp))
    assert len(by_route) >= 2
    frames = _per_request_frames(con, window, by_route, None)
    for route, fps in by_route.items():
        shown = con.execute(per_request_sql(window, fps, route)).df()
        assert shown["requests"].sum() > 0
        assert same_within(_records(frames[route], ["fingerprint", "ts"]), _records(shown, ["fingerprint", "ts"]))
    key = ["db_system", "database", "fingerprint"]
    shown = con.execute(burst_sql(window, 50.0, 10)).df()
    fast = burst_frame(con, events_sql(window.start, window.end), 50.0, 10)
    assert same_within(_records(fast, key), _records(shown, key))


def test_held_deltas_are_the_shown_deltas(con):
    """:func:`hold_deltas` (series named per source, intervals from epoch milliseconds) holds exactly the rows
    of the shown :func:`deltas_sql`: two pg_stat_statements servers and a plain source, snapshot times off
    the millisecond (so a calendar count and a difference could part), a counter reset, and a window that
    starts between snapshots."""
    from kit.analysis.database.digest import deltas_sql, hold_deltas

    pg = [warehouse.begin_source(con, "pg-stat-statements", path=name) for name in ("db1:5432", "db1:5432", "db2")]
    plain = warehouse.begin_source(con, "test")
    offsets = [0.0, 0.0009, 0.0011, 0.0019, 0.0001, 0.00015]
    for i in range(12):
        for j, src in enumerate([*pg, plain]):
            at = T0 + timedelta(minutes=i, seconds=offsets[(i + j) % len(offsets)])
            calls = (i * 7 + j) if i != 6 else 3   # a reset at the 7th snapshot
            con.execute("INSERT INTO queries (ts, db_system, database, user_name, kind, fingerprint, query_id, "
                        "sample, calls, total_ms, rows, shared_blks_hit, shared_blks_read, source_id) VALUES "
                        "(?, 'postgresql', 'd', 'u', 'snapshot', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [at, A if j % 2 else B, str(j % 2), "s", calls, calls * 1.5, calls, calls, 1, src.source_id])
    start, end = T0 + timedelta(minutes=2, seconds=30), T0 + timedelta(minutes=11)
    table = hold_deltas(con, start, end)
    order = "ORDER BY ts, p_ts, fingerprint, calls, total_ms"
    held = con.execute(f"SELECT * FROM {table} {order}").df()
    shown = con.execute(f"SELECT * FROM ({deltas_sql(start, end)}) {order}").df()
    assert len(held) > 20 and sorted(set(held["interval_s"])) != [60.0]
    assert _records(held, ["ts"]) == _records(shown, ["ts"])


def test_the_digest_from_the_events_read_once_gives_what_the_shown_sql_gives(con):
    """The digest computed with the per-execution aggregate from :func:`event_pass` / :func:`event_digest`
    (one read of the events shared with the burst pass; quantiles, V/M, sums in numpy) against the shown
    :func:`digest_sql` run on its own, on events made to trip it: a NULL database, two users of one
    fingerprint, sessions, executions without a time, rows/rows_examined/lock_ms missing for a whole
    fingerprint, one execution only (no variance), a mean of 0 (no V/M), odd and even counts (the
    quantiles' interpolation), and snapshots of one fingerprint beside (the digest's join)."""
    import random

    from kit.analysis.database.bursts import event_digest, event_pass
    from kit.analysis.database.digest import digest, digest_sql, events_sql

    src = warehouse.begin_source(con, "test")
    rng = random.Random(11)
    D = "select * from d where w = ?"
    E = "update e set v = ? where k = ?"
    rows = []
    for fp, database, users, sessions, n, examined in [(A, "d", ["u", "v"], ["s1", "s2", None], 301, True),
                                                        (B, None, ["u"], [None], 40, False),
                                                        (C, "d", ["w"], ["s3"], 1, True),
                                                        (D, "d2", ["u"], [None], 5, False),
                                                        (E, "d", ["u", None], ["s1"], 64, True)]:
        for _ in range(n):
            ms = None if rng.random() < 0.05 else (0.0 if fp == D else round(rng.lognormvariate(0, 1), 4))
            rows.append((T0 + timedelta(seconds=rng.uniform(0, 3000)), database, rng.choice(users),
                         rng.choice(sessions), fp, ms, rng.randint(0, 3) if examined else None,
                         rng.randint(1, 50) if examined else None, rng.uniform(0, 1) if examined else None))
    con.executemany("INSERT INTO queries (ts, db_system, database, user_name, session_id, kind, fingerprint, sample, "
                    "calls, total_ms, rows, rows_examined, lock_ms, source_id) VALUES (?, 'mysql', ?, ?, ?, 'event', "
                    "?, ?, 1, ?, ?, ?, ?, ?)",
                    [(ts, db, u, s, fp, fp, ms, r, ex, lk, src.source_id) for ts, db, u, s, fp, ms, r, ex, lk in rows])
    for m, calls in enumerate([0, 30, 70]):
        _snap(con, src, m * 10, A, calls, calls * 2.0, rows=calls)
    window = Window(T0, T0 + timedelta(hours=1))
    key = ["db_system", "database", "fingerprint"]
    shown = con.execute(digest_sql(window)).df()
    fast, _ = digest(con, window, events=event_digest(event_pass(con, events_sql(window.start, window.end))))
    assert len(shown) == 6 and shown["p95_ms"].notna().sum() >= 4 and shown["variance_to_mean"].isna().any()
    assert shown["users"].str.contains(", ").any()
    for f, s in zip(_records(fast[list(shown.columns)], key), _records(shown, key), strict=True):
        assert same_within(f, s), {k: (f[k], s[k]) for k in f if not same_within(f[k], s[k])}


def test_regressions_reading_only_the_event_only_fingerprints_give_the_shown_sql(small):
    """``regressions`` with the held deltas and the window's event fingerprints (the events of fingerprints
    that have snapshots in the period are not read; none at all when every one has) against the shown
    :func:`regression_sql` on its own: an event-only fingerprint (C), events of a snapshotted one (A), and a
    period with no event-only fingerprint."""
    from kit.analysis.database.digest import Period, hold_deltas, regressions

    src = warehouse.begin_source(small, "test")
    for s in range(0, 1500, 60):
        _event(small, src, s, A, 5.0 + s / 100)
        _event(small, src, s + 1, C, 1.0 + s / 50)
    start, end = T0, T0 + timedelta(hours=1)
    table = hold_deltas(small, start, end)
    periods = [Period("p", T0, T0 + timedelta(minutes=12), end), Period("q", T0, T0 + timedelta(minutes=12),
                                                                             T0 + timedelta(minutes=25))]
    for period in periods:
        shown, sql = regressions(small, period)
        fast, fast_sql = regressions(small, period, deltas=table, event_fingerprints={A, C})
        assert fast_sql == sql and {A, C} <= set(shown["fingerprint"])
        assert same_within(to_jsonable(fast), to_jsonable(shown))
    only_snapshotted, _ = regressions(small, periods[0], deltas=table, event_fingerprints={A})
    assert C not in set(only_snapshotted["fingerprint"]) and C in set(regressions(small, periods[0])[0]["fingerprint"])
