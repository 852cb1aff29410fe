"""Code profiles: self/total frames against hand-computed and pure-Python references, the before/after verdicts
on synthetic profiles (planted growth found, noise not, no verdict on one profile per side), the route
heuristic, and the demo's N+1 regression named after deploy api 2.14.0."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kit.analysis.profiles import (
    MIN_PROFILES,
    _batched_shares,
    _request_ms_sql,
    _requests_ms,
    analyse_profiles,
    diff_profiles,
    frame_route,
    profile_shares,
    top_frames,
)
from kit.analysis.window import Window, resolve_window
from kit.ingest.profile import ingest_profile
from kit.report.render import check_markdown, environment
from kit.results import to_jsonable
from kit.viz.profiles import plot_diff, plot_icicle
from kit.warehouse import connect
from tests.conftest import same_within

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = Window(T0 - timedelta(days=10), T0 + timedelta(days=10), "parameters")


def _frames(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[int, int, float, float]]:
    f = top_frames(con, None)
    return {(r.service, r.frame): (r.self_samples, r.total_samples, r.self_share, r.total_share)
            for r in f.itertuples()}


# ---- self / total ---------------------------------------------------------------------------------------

def test_self_and_total_on_a_hand_computed_file_with_recursion(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "hand.folded"
    path.write_text("# py-spy\nmain;a;b;a 3\nmain;a;c 2\n\nmain;d 5\nx 1\nmain;a;b;a 4\n")
    ingest_profile(con, path, service="svc", at="2026-03-01T00:00:00Z")
    got = _frames(con)
    n = 15  # 3 + 2 + 5 + 1 + 4
    # by hand: a is on 3 stacks (9 samples), counted once in 'main;a;b;a' although it appears twice there;
    # self time of a = the two 'main;a;b;a' lines (7), b has none (never a leaf)
    expected = {"main": (0, 14), "a": (7, 9), "b": (0, 7), "c": (2, 2), "d": (5, 5), "x": (1, 1)}
    assert {k[1] for k in got} == set(expected)
    for frame, (self_s, total_s) in expected.items():
        assert got[("svc", frame)][:2] == (self_s, total_s), frame
        assert got[("svc", frame)][2] == pytest.approx(self_s / n)
        assert got[("svc", frame)][3] == pytest.approx(total_s / n)


def _random_folded(rng: np.random.Generator, lines: int) -> str:
    names = [f"mod{i}.fn{i}" for i in range(12)] + ["recurse", "views.product_detail", "psycopg.execute"]
    out = []
    for _ in range(lines):
        depth = int(rng.integers(1, 9))
        stack = ["main", *[names[int(j)] for j in rng.integers(0, len(names), depth)]]  # repeats = recursion
        out.append(f"{';'.join(stack)} {int(rng.integers(1, 500))}")
    return "\n".join(out) + "\n"


def test_self_and_total_match_a_pure_python_computation(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    con = connect(":memory:")
    texts = {}
    for service in ("api", "web"):
        texts[service] = _random_folded(rng, 400)
        (tmp_path / f"{service}.folded").write_text(texts[service])
        ingest_profile(con, tmp_path / f"{service}.folded", service=service, at="2026-03-01T00:00:00Z")
    got = _frames(con)
    for service, text in texts.items():
        self_c: Counter[str] = Counter()
        total_c: Counter[str] = Counter()
        n = 0
        for line in text.splitlines():
            stack, count = line.rsplit(" ", 1)
            frames, c = stack.split(";"), int(count)
            n += c
            self_c[frames[-1]] += c
            for frame in set(frames):
                total_c[frame] += c
        mine = {frame: v for (s, frame), v in got.items() if s == service}
        assert set(mine) == set(total_c)
        for frame in total_c:
            assert mine[frame][0] == self_c[frame] and mine[frame][1] == total_c[frame], frame
            assert mine[frame][3] == pytest.approx(total_c[frame] / n)
    con.close()


# ---- differentials --------------------------------------------------------------------------------------

BASE = {"main;app;views.home;render": 30.0, "main;app;views.home;db.query": 10.0, "main;app;views.list;json.dumps": 8.0,
        "main;app;views.list;db.query": 6.0, "main;app;auth.check": 5.0, "main;gc": 2.0, "main;app;log.emit": 3.0,
        "main;app;views.item;render": 12.0, "main;app;views.item;cache.get": 4.0}
PLANTED = "main;app;views.item;slow.loop;db.query"


def _insert(con: duckdb.DuckDBPyConnection, rng: np.random.Generator, when: datetime, weights: dict[str, float],
            samples: int = 4000, jitter: float = 30.0) -> None:
    stacks = list(weights)
    w = np.array([weights[s] for s in stacks]) * rng.gamma(jitter, 1 / jitter, len(stacks))
    counts = rng.multinomial(samples, w / w.sum())
    name = f"svc-{when:%Y%m%dT%H%M}"
    con.executemany("INSERT INTO profiles VALUES (?, 'svc', ?, ?, ?, 0)",
                    [[when, name, s, int(c)] for s, c in zip(stacks, counts, strict=True) if c])


def _synthetic(seed: int, n_before: int, n_after: int, planted: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    con = connect(":memory:")
    after_w = dict(BASE, **({PLANTED: planted} if planted else {}))
    for i in range(n_before):
        _insert(con, rng, T0 - timedelta(hours=i + 1), BASE)
    for i in range(n_after):
        _insert(con, rng, T0 + timedelta(hours=i), after_w)
    before = profile_shares(con, "svc", T0 - timedelta(days=1), T0)
    after = profile_shares(con, "svc", T0, T0 + timedelta(days=1))
    con.close()
    return before, after


@pytest.mark.parametrize("per_side", [3, 5])
def test_planted_growth_is_found_with_several_profiles_per_side(per_side: int) -> None:
    before, after = _synthetic(1, per_side, per_side, planted=8.0)  # ~9 % of the samples after
    frames, ok = diff_profiles(before, after)
    assert ok
    verdict = {f.frame: f for f in frames}
    assert verdict["slow.loop"].verdict == "appeared"
    assert verdict["views.item"].verdict == "grew"
    true_share = 8.0 / (sum(BASE.values()) + 8.0)
    assert verdict["slow.loop"].low <= true_share <= verdict["slow.loop"].high
    # the reported p-value is the pooled two-sample t-test's (independent reference: scipy)
    f = verdict["views.item"]
    by_profile = [part[part["frame"] == "views.item"]["total_share"].to_numpy() for part in (before, after)]
    assert f.p_value == pytest.approx(stats.ttest_ind(by_profile[1], by_profile[0]).pvalue, rel=1e-6)
    assert f.change == pytest.approx(by_profile[1].mean() - by_profile[0].mean())


def test_planted_growth_is_found_in_most_runs_with_three_profiles_per_side() -> None:
    found = sum(next(f for f in diff_profiles(*_synthetic(seed, 3, 3, planted=8.0))[0]
                     if f.frame == "slow.loop").verdict == "appeared" for seed in range(300, 320))
    assert found >= 17, found


def test_noise_only_gives_no_verdict_of_change_at_the_nominal_rate() -> None:
    seeds = range(100, 140)
    flagged = []
    for seed in seeds:
        frames, ok = diff_profiles(*_synthetic(seed, 3 + seed % 3, 3 + seed % 4, planted=0.0))
        assert ok
        flagged.append(any(f.verdict != "no change" for f in frames))
    # Holm keeps the family-wise rate at 5 %: 40 seeds, expected 2; 7 or more has probability < 1 %
    assert sum(flagged) <= 6, sum(flagged)


def test_one_profile_per_side_gives_no_verdict() -> None:
    before, after = _synthetic(3, 1, 1, planted=8.0)
    frames, ok = diff_profiles(before, after)
    assert not ok and frames
    assert {f.verdict for f in frames} == {"no verdict"}
    slow = next(f for f in frames if f.frame == "slow.loop")
    assert slow.after_share > 0.05 and slow.low is None  # the shares are shown, without an interval
    frames, ok = diff_profiles(*_synthetic(3, MIN_PROFILES - 1, 10, planted=8.0))
    assert not ok and {f.verdict for f in frames} == {"no verdict"}


def test_holm_adjustment_matches_a_direct_computation() -> None:
    before, after = _synthetic(5, 4, 4, planted=3.0)
    frames, _ = diff_profiles(before, after)
    p = sorted((f.p_value, f.p_holm) for f in frames if f.p_value is not None)
    m = len(p)
    running = 0.0
    for i, (raw, adjusted) in enumerate(p):
        running = max(running, min(1.0, (m - i) * raw))
        assert adjusted == pytest.approx(running)


# ---- routes ---------------------------------------------------------------------------------------------

def test_handler_frames_map_to_the_route_their_name_describes() -> None:
    routes = {"/api/v1/products/{id}": 900, "/api/v2/products/{id}": 200, "/api/v1/products/{id}/stock": 650,
              "/api/v1/categories/{id}/products": 410, "/api/v1/users/{id}/orders": 190, "/api/v1/session": 580}
    assert frame_route("views.product_detail", routes)[0] == "/api/v1/products/{id}"
    assert frame_route("views.product_list", routes)[0] == "/api/v1/categories/{id}/products"
    assert frame_route("views.user_orders", routes)[0] == "/api/v1/users/{id}/orders"
    assert frame_route("app.handlers.session", routes)[0] == "/api/v1/session"
    route, why = frame_route("pricing._match_rules", routes)
    assert route is None and "handler" in why
    route, why = frame_route("views.wishlist_detail", routes)
    assert route is None and "wishlist" in why


# ---- analysis on a warehouse with findings --------------------------------------------------------------

def test_findings_attach_to_their_deploy_or_get_their_own_comparison() -> None:
    rng = np.random.default_rng(11)
    con = connect(":memory:")
    for i in range(4):
        _insert(con, rng, T0 - timedelta(hours=i + 1), BASE)
        _insert(con, rng, T0 + timedelta(hours=i), dict(BASE, **{PLANTED: 8.0}))
    con.execute("INSERT INTO events VALUES (?, NULL, 'deploy', 'svc', NULL, 'deploy svc 1.1', NULL, 0)", [T0])
    later = T0 + timedelta(days=3)
    con.execute("INSERT INTO events VALUES (?, NULL, 'deploy', 'svc', NULL, 'deploy svc 1.2', NULL, 0)",
                [later - timedelta(hours=6)])
    for i in range(3):
        _insert(con, rng, later - timedelta(hours=i + 1), BASE)
        _insert(con, rng, later + timedelta(hours=i), BASE)
    findings = {"findings": {"items": [
        {"onset": (T0 + timedelta(minutes=5)).isoformat(), "end": None, "scope": {"service": "svc"}, "title": "a",
         "causes": [{"kind": "deploy", "ref": "deploy@x", "detail": "deploy svc 1.1", "strength": 0.9}]},
        {"onset": later.isoformat(), "end": (later + timedelta(hours=3)).isoformat(),
         "scope": {"service": "svc", "route": "/item/{id}"}, "title": "latency shift", "causes": []}]}}
    a = analyse_profiles(con, WINDOW, bottlenecks=findings)
    deploy = next(d for d in a.diffs if d.label == "deploy svc 1.1")
    assert deploy.findings == [0] and deploy.has_verdicts
    assert {f.frame for f in deploy.frames if f.verdict in ("grew", "appeared")} >= {"slow.loop", "views.item"}
    own = next(d for d in a.diffs if d.kind == "finding")
    assert own.findings == [1] and own.profiles_before == 3 and own.profiles_after == 3
    assert not any(f.verdict in ("grew", "appeared", "shrank", "vanished") for f in own.frames)
    # no requests: the saving is in samples, of the service's sampled time
    opp = next(o for o in a.opportunities if "deploy:deploy svc 1.1" in o.addresses)
    assert opp.saving.unit == "samples" and opp.saving.basis == "sampled CPU time of svc"
    assert "profile:slow.loop" in opp.addresses
    json.dumps(to_jsonable(a))
    con.close()


# ---- the demo -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(demo_warehouse: Callable[..., Path]) -> duckdb.DuckDBPyConnection:
    path = demo_warehouse(requests=150_000, days=7, seed=42)  # the size test_demo.py and test_findings.py build
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def test_demo_names_the_n_plus_one_frames_grown_after_deploy_api_2_14_0(demo: duckdb.DuckDBPyConnection) -> None:
    a = analyse_profiles(demo, resolve_window(demo))
    d = next(d for d in a.diffs if d.service == "api" and "api 2.14.0" in d.label and "rollback" not in d.label)
    assert d.has_verdicts and d.profiles_before >= MIN_PROFILES and d.profiles_after >= MIN_PROFILES
    grown = {f.frame: f for f in d.frames if f.verdict in ("grew", "appeared")}
    assert {"serializers.ProductSerializer.get_variants", "orm.query"} <= set(grown)
    assert grown["serializers.ProductSerializer.get_variants"].route == "/api/v1/products/{id}"
    # and they went away with the rollback
    back = next(d for d in a.diffs if d.service == "api" and "rollback from 2.14.0" in d.label)
    assert next(f for f in back.frames if f.frame == "serializers.ProductSerializer.get_variants").verdict == "vanished"
    # the opportunity names the frame, the deploy and the route, with a saving in request time
    o = next(o for o in a.opportunities if any(x.startswith("deploy:deploy api 2.14.0") for x in o.addresses))
    assert "serializers.ProductSerializer.get_variants" in o.title and "N+1" in o.title
    assert {"profile:serializers.ProductSerializer.get_variants", "route:api /api/v1/products/{id}"} <= set(o.addresses)
    assert o.saving.unit == "ms" and o.saving.low is not None and o.saving.low <= o.saving.value <= o.saving.high
    # the SQL reproduces the request time it is based on: the route's, in proportion to the frame's growth
    # as a share of the route's handler frame
    request_ms = demo.execute(o.sql["request_time_after"]).fetchone()[0]
    f = grown["serializers.ProductSerializer.get_variants"]
    handler = next(x for x in d.frames if x.frame == "views.product_detail")
    assert o.saving.value == pytest.approx(f.change / handler.after_share * request_ms)
    # independent reference: the route's extra request time during the release over its mean latency in
    # the day before the deploy is of the same order (the profile is on-CPU, so it sees part of the waits)
    excess = demo.execute("""
        WITH r AS (SELECT ts, latency_ms FROM requests
                   WHERE service = 'api' AND route = '/api/v1/products/{id}' AND ts >= ? AND ts < ?)
        SELECT sum(latency_ms) FILTER (WHERE ts >= ?) - count(*) FILTER (WHERE ts >= ?)
               * avg(latency_ms) FILTER (WHERE ts < ?) FROM r""",
        [d.at - timedelta(days=1), d.after_end, d.at, d.at, d.at]).fetchone()[0]
    assert 1 / 3 < o.saving.value / excess < 3, (o.saving.value, excess)
    # the hot frame of the demo is an opportunity too; library frames are not
    hot = {o.details["frame"] for o in a.opportunities if o.details.get("kind") == "hot_frame"}
    assert "pricing._match_rules" in hot and not hot & {"ngx_linux_sendfile", "urllib3.urlopen"}


def test_demo_document_section_and_figures(demo: duckdb.DuckDBPyConnection) -> None:
    a = analyse_profiles(demo, resolve_window(demo))
    p = json.loads(json.dumps(to_jsonable(a)))
    text = environment().from_string('{% from "partials/profiles.md.j2" import section %}{{ section(p) }}').render(p=p)
    check_markdown(text)
    assert "`serializers.ProductSerializer.get_variants` | appeared" in text
    assert "`pricing._match_rules`" in text and "No verdict (fewer than 3 profiles" in text
    icicle = plot_icicle(p, "api")
    ids = set(icicle.data[0].ids)
    assert all(parent == "" or parent in ids for parent in icicle.data[0].parents)
    root = [v for i, v in zip(icicle.data[0].ids, icicle.data[0].values, strict=True) if i == "main"]
    assert root == [next(s["samples"] for s in p["services"] if s["service"] == "api")]
    diff = plot_diff(p)
    assert "api 2.14.0" in diff.layout.title.text


def test_flame_nodes_are_the_samples_of_the_stacks_through_each_prefix() -> None:
    rng = np.random.default_rng(3)
    con = connect(":memory:")
    for i in range(3):
        _insert(con, rng, T0 + timedelta(hours=i), BASE)
    expected: Counter[str] = Counter()
    for stack, samples in con.execute("SELECT stack, samples FROM profiles").fetchall():
        frames = stack.split(";")
        for depth in range(1, len(frames) + 1):
            expected[";".join(frames[:depth])] += samples
    a = analyse_profiles(con, WINDOW)
    assert {n.path: n.samples for n in a.flame} == dict(expected)
    assert all(n.parent == ";".join(n.path.split(";")[:-1]) for n in a.flame)
    con.close()


def test_the_shared_route_pass_gives_what_the_profiles_own_scan_gives(demo: duckdb.DuckDBPyConnection) -> None:
    """``optimization_opportunities`` hands the profiles analysis the window's per-route traffic and request
    time from one pass; the analysis alone scans the requests itself: both give the same result."""
    from kit.analysis.optimizations import window_totals
    from kit.analysis.request_groups import route_traffic

    window = resolve_window(demo)
    traffic = route_traffic(demo, window)
    own = to_jsonable(analyse_profiles(demo, window))
    assert any(o["details"]["kind"] == "hot_frame" for o in own["opportunities"])  # they use the service's time
    for shared in (analyse_profiles(demo, window, request_ms_total=window_totals(traffic).request_ms,
                                    route_counts=traffic[traffic["route"].notna()]),
                   analyse_profiles(demo, window, traffic=traffic)):
        shared_json = to_jsonable(shared)
        assert same_within(shared_json, own), [k for k in own if not same_within(shared_json[k], own[k])]


def test_request_times_of_the_opportunities_are_what_their_shown_sql_gives(demo: duckdb.DuckDBPyConnection) -> None:
    """The opportunities' request times come from one scan (several filtered sums) or from the caller's
    per-route traffic; each is the number its shown SQL (``sql["request_time_*"]``) gives run on its own."""
    from kit.analysis.request_groups import route_traffic

    window = resolve_window(demo)
    a = analyse_profiles(demo, window, traffic=route_traffic(demo, window))
    checked = 0
    for o in a.opportunities:
        d = o.details
        if d["kind"] == "hot_frame":
            ms = demo.execute(o.sql["request_time_service"]).fetchone()[0]
            assert o.saving.value == pytest.approx(d["self_share"] * ms / 2, rel=1e-9)
        else:
            ms = demo.execute(o.sql["request_time_after"]).fetchone()[0]
            assert o.saving.low is not None and 0 < o.saving.value and ms > 0
        total = demo.execute(o.sql["request_time_window"]).fetchone()[0]
        assert o.saving.share == pytest.approx(o.saving.value / total, rel=1e-9)
        checked += 1
    assert checked >= 3
    # and the batched sums against the single ones, on periods of several services and routes
    periods = {("api", None, window.start, window.end), ("api", "/api/v1/products/{id}", window.start,
                                                         window.start + timedelta(days=2)),
               ("web", None, window.start + timedelta(days=1), window.end), ("nobody", None, window.start, window.end)}
    got = _requests_ms(demo, periods)
    for (service, route, start, end), ms in got.items():
        alone = demo.execute(_request_ms_sql(service, start, end, route)).fetchone()[0]
        assert ms == pytest.approx(alone or 0.0, rel=1e-9), (service, route)
    assert got[("nobody", None, window.start, window.end)] == 0.0


def test_batched_profile_shares_are_what_the_shown_sql_gives_per_period() -> None:
    """The comparisons' per-profile shares come from one query over all periods; each period's rows are those
    of ``profile_shares`` (the SQL the document shows), also for a profile whose stacks carry two times, a
    profile without a service and periods that overlap."""
    rng = np.random.default_rng(11)
    con = connect(":memory:")
    for i in range(6):
        _insert(con, rng, T0 + timedelta(hours=i), BASE if i < 3 else dict(BASE, **{PLANTED: 5.0}))
    # one profile name taken at two times (split by a period boundary), and one without a service
    con.execute("UPDATE profiles SET ts = ts + INTERVAL 90 MINUTE WHERE profile = ? AND stack LIKE '%render'",
                [f"svc-{T0 + timedelta(hours=1):%Y%m%dT%H%M}"])
    con.execute("INSERT INTO profiles SELECT ts, NULL, profile || '-x', stack, samples, 0 FROM profiles "
                "WHERE ts < ?", [T0 + timedelta(hours=2)])
    periods = [("svc", T0, T0 + timedelta(hours=2)), ("svc", T0 + timedelta(hours=2), T0 + timedelta(hours=6)),
               ("svc", T0 + timedelta(minutes=30), T0 + timedelta(hours=5)),
               ("(no service)", T0, T0 + timedelta(days=1)), ("svc", T0 - timedelta(days=3), T0 - timedelta(days=2))]
    got = _batched_shares(con, periods)
    assert len(got) == len(periods) and len(got[-1]) == 0 and all(len(g) for g in got[:-1])
    for period, part in zip(periods, got, strict=True):
        ref = profile_shares(con, *period)
        key = ["profile", "frame"]
        pd.testing.assert_frame_equal(part.sort_values(key).reset_index(drop=True),
                                      ref.sort_values(key).reset_index(drop=True), check_dtype=False)
        # and the verdicts from them are those from the shown SQL's rows
        assert diff_profiles(part, got[1]) == diff_profiles(ref, profile_shares(con, *periods[1]))
    con.close()


def test_diff_matrices_are_a_profile_by_frame_pivot() -> None:
    """diff_profiles' per-profile matrices: its mean shares are those of a pandas pivot (missing = 0) of
    the same rows in any order."""
    before, after = _synthetic(9, 4, 5, planted=6.0)
    shuffled = after.sample(frac=1.0, random_state=1)
    frames, _ = diff_profiles(before, shuffled)
    for part, column in ((before, "before_share"), (after, "after_share")):
        wide = part.pivot_table(index="profile", columns="frame", values="total_share", aggfunc="sum").fillna(0.0)
        for f in frames:
            mean = wide[f.frame].mean() if f.frame in wide else 0.0
            assert getattr(f, column) == pytest.approx(mean, rel=1e-12, abs=1e-15), f.frame
    selfs = after.pivot_table(index="profile", columns="frame", values="self_share", aggfunc="sum").fillna(0.0)
    for f in frames:
        assert f.after_self_share == pytest.approx(selfs[f.frame].mean() if f.frame in selfs else 0.0, abs=1e-15)

