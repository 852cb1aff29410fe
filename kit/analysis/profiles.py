"""Code profiles (folded stacks in ``profiles``): top frames, before/after differentials, opportunities.

**Top frames.** Per service, over the profiles taken in the window (profiles without a time are counted
too; they never enter a differential): a frame's *self* samples are those of the stacks it ends (the leaf),
its *total* (inclusive) samples those of the stacks it appears in, counted once per stack even when the
stack recurses through it. Shares are of all samples of the service's profiles: a share of on-CPU time for
CPU profilers (py-spy's default, perf, async-profiler ``-e cpu``) or of wall time for wall-clock ones
(py-spy ``--idle``, async-profiler ``-e wall``); the folded format does not record which, so the document
says "samples". Computed in DuckDB (``string_split`` + ``unnest``).

**Routes.** A frame belongs to a route when its stack passes through a handler frame — a frame whose module
part is ``views``, ``handlers``, ``controllers``, ``endpoints`` or ``routes`` (``views.product_detail``) —
that names a route of the same service: the handler's name is split on ``_`` into resource words (plurals
folded, ``detail``/``retrieve``/``show``/``get`` and ``list``/``index`` kept as the kind of route) and the route
of the service whose literal path segments (without ``api`` and version segments) contain every resource
word wins, preferring a route ending in a parameter for a detail view and one not ending in one for a list
view, then one whose last literal segment is a resource word, then the fewest extra words, then the most
requests. No route is claimed when no handler frame is on
the stack or no route contains the words (``route_basis`` says which).

**Differentials.** Around each deploy (``events`` kind ``deploy``) of a profiled service, and around each
bottleneck finding's onset that no deploy diff already covers, the profiles of the service before the
change (back to the service's previous deploy or the window's start) are compared with those after it (up
to the next deploy or the window's end; for a finding, its end). Each profile's inclusive share of a frame
is one observation, so sampling noise and profile-to-profile variation both count. A frame *grew* or *shrank*
when Student's two-sample t-test (pooled variance) on the per-profile shares rejects equal means at 5 % after
Holm's correction over all frames of the comparison, and the mean share moved by at least ``MIN_CHANGE`` (one
percentage point); *appeared* / *vanished* when it grew from / shrank to zero. The reported interval is the
test's 95 % interval of the difference of mean shares. A verdict needs at least ``MIN_PROFILES`` (3) profiles
per side; with fewer the frames are listed with their shares and "no verdict". Why this test: with 3
profiles per side the smallest two-sided Mann-Whitney p-value is 0.1 (a rank test can never reject at 5 %),
a bootstrap interval under-covers at n = 3, and Welch's test falls to 2 degrees of freedom for a frame absent
on one side; under the null both sides come from the same process, so the pooled variance is the right one,
and per-profile shares of thousands of samples are close to normal. On synthetic profiles (18 % per-stack
jitter between profiles, 14 frames) the rate of comparisons with any verdict on noise alone is 3-6 % and a
frame appearing at 9 % of the samples is found in 39 of 40 runs with 3 profiles per side. Limits: shares are
relative, so one frame's growth shrinks every other frame's share a little (the one-point floor keeps that
dilution out of the verdicts unless it is large); profiles taken under different load compare work mix,
not absolute cost.

**Opportunities.** The frame whose inclusive share grew most after a deploy (not after a rollback), naming the
deploy, the frame and its route; and per service the top self-time frame that is application code (not a
runtime or third-party frame, ``is_library_frame``) with at least ``HOT_SELF_SHARE`` (10 %) of the samples.
Savings are in request time (ms) when the service has requests with ``latency_ms`` in the period: for a
regression, the share's growth (and its interval) × the request time after the deploy of the frame's route,
as a share of the samples of the route's handler frame (of the service's samples × the service's request
time when no route is known); for a hot
frame, half its self share × the service's request time in the window (the whole share is the upper bound).
That assumes request time is spent in proportion to samples, an overestimate for on-CPU profiles of services
that mostly wait. Without request times the saving is in samples, of the basis "sampled CPU time of
<service>".

**Cost.** The per-profile shares of every comparison come from one query (each side's rows are those of
:func:`profile_shares_sql`, the SQL the result shows for it); the window's request time per service and
route from the caller's per-route traffic (``traffic``, :func:`kit.analysis.request_groups.route_traffic`)
or one scan of ``requests``; the request times of the periods after deploys from one more scan,
restricted to those periods.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from kit import fmt
from kit.analysis.opportunity import Opportunity, Saving, opportunity
from kit.analysis.request_groups import route_traffic
from kit.analysis.window import Window, parse_instant

__all__ = ["HOT_SELF_SHARE", "MIN_CHANGE", "MIN_PROFILES", "FlameNode", "FrameDiff", "FrameStat", "ProfileAnalysis",
           "ProfileDiff", "ServiceProfile", "analyse_profiles", "diff_profiles", "flame_sql", "frame_route",
           "is_library_frame", "profile_shares", "profile_shares_sql", "top_frames", "top_frames_sql"]

MIN_PROFILES = 3      # profiles per side for a verdict
MIN_CHANGE = 0.01     # smallest change of a mean share (absolute) that gets a verdict
ALPHA = 0.05          # family-wise error rate per comparison (Holm)
HOT_SELF_SHARE = 0.10  # a frame with this self share of its service's samples is an opportunity
TOP_N = 15            # frames per service in the top tables
FLAME_MIN_SHARE = 0.002  # flame-chart nodes below this share of the service's samples are dropped
NO_SERVICE = "(no service)"

_HANDLER = re.compile(r"(?:^|\.)(?:views?|handlers?|controllers?|endpoints?|routes?)\.([A-Za-z_][A-Za-z0-9_]*)$")
_DETAIL = {"detail", "retrieve", "show", "get", "item"}
_LIST = {"list", "index", "all"}
_IGNORED = {"api", "page", "view", "handler", "v1", "v2", "v3"}


@dataclass(frozen=True)
class FrameStat:
    """One frame of one service: samples where it is the leaf (self) and where it is on the stack (total,
    once per stack), their shares of the service's samples, and the route its handler frame serves."""

    service: str
    frame: str
    self_samples: int
    total_samples: int
    self_share: float
    total_share: float
    profiles: int            # profiles the frame appears in
    route: str | None
    route_basis: str         # how the route was found, or why none was


@dataclass(frozen=True)
class ServiceProfile:
    """The profiles of one service in the window and its top frames by self and by total samples."""

    service: str
    profiles: int
    samples: int
    first: datetime | None
    last: datetime | None
    top_self: list[FrameStat]
    top_total: list[FrameStat]


@dataclass(frozen=True)
class FlameNode:
    """One node of a service's flame/icicle tree: ``path`` is the stack prefix (root first, ``;``-joined),
    ``samples`` the samples of the stacks that start with it."""

    service: str
    path: str
    parent: str
    frame: str
    depth: int
    samples: int


@dataclass(frozen=True)
class FrameDiff:
    """A frame's mean inclusive share per profile before and after a change. ``change`` = after − before
    (absolute share), ``low``/``high`` its 95 % interval, ``p_value`` the t-test's two-sided p, ``p_holm``
    Holm-adjusted over the comparison's frames; ``verdict``: appeared, grew, shrank, vanished, no change, no
    verdict (too few profiles)."""

    frame: str
    before_share: float
    after_share: float
    change: float
    low: float | None
    high: float | None
    p_value: float | None
    p_holm: float | None
    before_self_share: float
    after_self_share: float
    verdict: str
    route: str | None


@dataclass(frozen=True)
class ProfileDiff:
    """A before/after comparison of one service's profiles around a change (``kind`` deploy or finding)."""

    service: str
    kind: str
    label: str               # events.what of the deploy, or the finding's title
    at: datetime
    before_start: datetime
    before_end: datetime
    after_start: datetime
    after_end: datetime
    profiles_before: int
    profiles_after: int
    has_verdicts: bool
    note: str
    frames: list[FrameDiff]
    addresses: list[str]
    findings: list[int]      # indexes of the bottleneck findings this comparison covers
    sql: str


@dataclass(frozen=True)
class ProfileAnalysis:
    """Top frames per service, the before/after comparisons, the flame-chart trees and the opportunities."""

    window_start: datetime
    window_end: datetime
    sample_basis: str
    services: list[ServiceProfile]
    diffs: list[ProfileDiff]
    opportunities: list[Opportunity]
    flame: list[FlameNode]
    method: str
    min_profiles: int
    min_change: float
    sql: dict[str, str]
    notes: list[str] = field(default_factory=list)
    json_columns = ("flame",)


# ---- SQL ------------------------------------------------------------------------------------------------

def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ts(moment: datetime) -> str:
    return f"TIMESTAMPTZ '{moment.isoformat()}'"


def _profiles_cte(window: Window | None, service: str | None = None) -> str:
    where = "TRUE" if window is None else f"(ts IS NULL OR ({window.sql('ts')}))"
    if service is not None:
        where += f" AND coalesce(service, '{NO_SERVICE}') = {_lit(service)}"
    return f"""p AS (
  SELECT coalesce(service, '{NO_SERVICE}') AS service, profile, ts, string_split(stack, ';') AS frames, samples
  FROM profiles WHERE {where})"""


def top_frames_sql(window: Window | None) -> str:
    """Self and total (once per stack) samples per service and frame, with shares of the service's samples."""
    return f"""WITH {_profiles_cte(window)},
svc AS (SELECT service, sum(samples) AS samples FROM p GROUP BY service),
self AS (SELECT service, frames[-1] AS frame, sum(samples) AS self_samples FROM p GROUP BY ALL),
per_profile AS (
  SELECT service, profile, frame, sum(samples) AS total_samples
  FROM (SELECT service, profile, samples, unnest(list_distinct(frames)) AS frame FROM p)
  GROUP BY ALL),
total AS (
  SELECT service, frame, sum(total_samples) AS total_samples, count(*) AS profiles FROM per_profile GROUP BY ALL)
SELECT t.service, t.frame, coalesce(s.self_samples, 0) AS self_samples, t.total_samples,
       coalesce(s.self_samples, 0) / v.samples AS self_share, t.total_samples / v.samples AS total_share,
       t.profiles
FROM total t JOIN svc v USING (service) LEFT JOIN self s USING (service, frame)
ORDER BY t.service, t.total_samples DESC, t.frame"""


def top_frames(con: duckdb.DuckDBPyConnection, window: Window | None = None) -> pd.DataFrame:
    """All frames per service: self/total samples and shares of the service's samples, profiles seen in."""
    return con.execute(top_frames_sql(window)).df()


def profile_shares_sql(service: str, start: datetime, end: datetime) -> str:
    """Per profile of ``service`` taken in [start, end): each frame's inclusive and self share of the
    profile's samples (the observations of a differential)."""
    return f"""WITH p AS (
  SELECT profile, ts, string_split(stack, ';') AS frames, samples
  FROM profiles
  WHERE coalesce(service, '{NO_SERVICE}') = {_lit(service)} AND ts >= {_ts(start)} AND ts < {_ts(end)}),
n AS (SELECT profile, min(ts) AS ts, sum(samples) AS samples FROM p GROUP BY profile),
total AS (SELECT profile, frame, sum(samples) AS total_samples
          FROM (SELECT profile, samples, unnest(list_distinct(frames)) AS frame FROM p) GROUP BY ALL),
self AS (SELECT profile, frames[-1] AS frame, sum(samples) AS self_samples FROM p GROUP BY ALL)
SELECT n.profile, n.ts, t.frame, t.total_samples / n.samples AS total_share,
       coalesce(s.self_samples, 0) / n.samples AS self_share
FROM total t JOIN n USING (profile) LEFT JOIN self s USING (profile, frame)
ORDER BY n.ts, n.profile, t.frame"""


def profile_shares(con: duckdb.DuckDBPyConnection, service: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Columns profile, ts, frame, total_share, self_share (see :func:`profile_shares_sql`)."""
    return con.execute(profile_shares_sql(service, start, end)).df()


def _batched_shares_sql(periods: list[tuple[str, datetime, datetime]]) -> str:
    """:func:`profile_shares_sql` for several (service, start, end) periods in one query, with the period's
    index in column ``period`` (a profile in two periods is in both). The stacks are summed per profile,
    time and frame once; the periods then sum those (integer sums, so the shares are the same)."""
    values = ", ".join(f"({i}, {_lit(service)}, {_ts(start)}, {_ts(end)})"
                       for i, (service, start, end) in enumerate(periods))
    return f"""WITH iv(period, service, t0, t1) AS (VALUES {values}),
p AS (
  SELECT coalesce(service, '{NO_SERVICE}') AS service, profile, ts, string_split(stack, ';') AS frames, samples
  FROM profiles WHERE ts >= {_ts(min(p[1] for p in periods))} AND ts < {_ts(max(p[2] for p in periods))}),
n0 AS (SELECT service, profile, ts, sum(samples) AS samples FROM p GROUP BY ALL),
total0 AS (SELECT service, profile, ts, frame, sum(samples) AS samples
           FROM (SELECT service, profile, ts, samples, unnest(list_distinct(frames)) AS frame FROM p) GROUP BY ALL),
self0 AS (SELECT service, profile, ts, frames[-1] AS frame, sum(samples) AS samples FROM p GROUP BY ALL),
n AS (SELECT period, profile, min(ts) AS ts, sum(samples) AS samples
      FROM n0 JOIN iv ON n0.service = iv.service AND n0.ts >= iv.t0 AND n0.ts < iv.t1 GROUP BY ALL),
total AS (SELECT period, profile, frame, sum(samples) AS total_samples
          FROM total0 JOIN iv ON total0.service = iv.service AND total0.ts >= iv.t0 AND total0.ts < iv.t1
          GROUP BY ALL),
self AS (SELECT period, profile, frame, sum(samples) AS self_samples
         FROM self0 JOIN iv ON self0.service = iv.service AND self0.ts >= iv.t0 AND self0.ts < iv.t1
         GROUP BY ALL)
SELECT t.period, n.profile, n.ts, t.frame, t.total_samples / n.samples AS total_share,
       coalesce(s.self_samples, 0) / n.samples AS self_share
FROM total t JOIN n USING (period, profile) LEFT JOIN self s USING (period, profile, frame)"""


def _batched_shares(con: duckdb.DuckDBPyConnection, periods: list[tuple[str, datetime, datetime]]
                    ) -> list[pd.DataFrame]:
    """:func:`profile_shares` of each (service, start, end) period, from one query."""
    columns = ["profile", "ts", "frame", "total_share", "self_share"]
    if not periods:
        return []
    found = con.execute(_batched_shares_sql(periods)).fetchnumpy()
    order = np.argsort(found["period"], kind="stable")
    table = pd.DataFrame({c: np.asarray(found[c], dtype=object if c in ("profile", "frame") else None)[order]
                          for c in columns})
    table["ts"] = table["ts"].dt.tz_localize("UTC")
    bounds = np.searchsorted(np.asarray(found["period"])[order], np.arange(len(periods) + 1))
    return [table.iloc[bounds[i]:bounds[i + 1]].reset_index(drop=True) for i in range(len(periods))]


def flame_sql(window: Window | None) -> str:
    """Samples per stack prefix per service (the nodes of a flame/icicle chart)."""
    return f"""WITH {_profiles_cte(window)},
stacks AS (SELECT service, frames, sum(samples) AS samples FROM p GROUP BY service, frames),
x AS (SELECT service, frames, samples, unnest(range(1, len(frames) + 1)) AS depth FROM stacks),
nodes AS (
  SELECT service, array_to_string(frames[1:depth], ';') AS path,
         coalesce(array_to_string(frames[1:depth - 1], ';'), '') AS parent, frames[depth] AS frame, depth,
         sum(samples) AS samples
  FROM x GROUP BY ALL)
SELECT n.*, n.samples / sum(samples) FILTER (WHERE depth = 1) OVER (PARTITION BY service) AS share
FROM nodes n ORDER BY service, path"""


# ---- routes ---------------------------------------------------------------------------------------------

def _words(text: str) -> list[str]:
    out = []
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        if w in _IGNORED or re.fullmatch(r"v\d+", w):
            continue
        out.append(w[:-3] + "y" if w.endswith("ies") and len(w) > 4 else w[:-1] if w.endswith("s") and len(w) > 3
                   else w)
    return out


def frame_route(frame: str, routes: dict[str, int]) -> tuple[str | None, str]:
    """The route (of ``routes``: route → requests) a handler frame such as ``views.product_detail`` serves,
    with the basis; (None, reason) when the frame is no handler or no route contains its words."""
    m = _HANDLER.search(frame)
    if not m:
        return None, "not a handler frame"
    words = _words(m.group(1))
    kind = "detail" if words and words[-1] in _DETAIL else "list" if words and words[-1] in _LIST else ""
    resource = {w for w in words if w not in _DETAIL | _LIST}
    if not resource:
        return None, f"handler {m.group(0).lstrip('.')!r} names no resource"
    best: tuple[Any, ...] | None = None
    for route, requests in routes.items():
        segments = [s for s in route.strip("/").split("/") if s]
        literal = set(_words(" ".join(s for s in segments if not s.startswith("{"))))
        if not resource <= literal:
            continue
        ends_param = bool(segments) and segments[-1].startswith("{")
        fits = 1 if (kind == "detail" and ends_param) or (kind == "list" and not ends_param) or not kind else 0
        literals = [s for s in segments if not s.startswith("{")]
        last = set(_words(literals[-1])) if literals else set()
        key = (fits, bool(last & resource), -len(literal - resource), requests, route)
        if best is None or key > best:
            best = key
    if best is None:
        return None, f"no route of the service contains {sorted(resource)}"
    return str(best[4]), f"handler {m.group(0).lstrip('.')!r} → route words {sorted(resource)}"


def _stack_routes(con: duckdb.DuckDBPyConnection, window: Window | None,
                  routes: dict[str, dict[str, int]]) -> dict[tuple[str, str], tuple[str | None, str]]:
    """(service, frame) → (route, basis): the route of the handler frame on the stacks through the frame when
    all of them agree; frames on several routes' stacks (main, app.handle) get none."""
    rows = con.execute(f"""WITH {_profiles_cte(window)}
SELECT DISTINCT service, list_distinct(frames) AS frames FROM p""").fetchall()
    handler_route: dict[tuple[str, str], tuple[str | None, str]] = {}
    seen: dict[tuple[str, str], set[str | None]] = {}
    basis: dict[tuple[str, str], str] = {}
    for service, frames in rows:
        handlers = [f for f in frames if _HANDLER.search(f)]
        route: str | None = None
        why = "no handler frame on its stacks"
        if handlers:
            key = (service, handlers[0])
            if key not in handler_route:
                handler_route[key] = frame_route(handlers[0], routes.get(service, {}))
            route, why = handler_route[key]
        for f in frames:
            seen.setdefault((service, f), set()).add(route)
            basis.setdefault((service, f), why)
    out: dict[tuple[str, str], tuple[str | None, str]] = {}
    for key, found in seen.items():
        if len(found) == 1:
            only = next(iter(found))
            out[key] = (only, basis[key])
        else:
            out[key] = (None, "on the stacks of several routes")
    return out


# ---- differentials --------------------------------------------------------------------------------------

def _holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (NaN stays NaN)."""
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if not len(ok):
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def _var(x: np.ndarray) -> np.ndarray:
    """Sample variance per column (0 for a single row)."""
    return x.var(axis=0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1])


def diff_profiles(before: pd.DataFrame, after: pd.DataFrame, *, min_profiles: int = MIN_PROFILES,
                  min_change: float = MIN_CHANGE, alpha: float = ALPHA,
                  routes: dict[str, str | None] | None = None) -> tuple[list[FrameDiff], bool]:
    """Frame verdicts from per-profile shares (rows of :func:`profile_shares`) before and after a change,
    sorted by the size of the change; the flag says whether verdicts were possible (≥ ``min_profiles``
    profiles per side)."""
    frames = sorted(set(before["frame"].tolist()) | set(after["frame"].tolist()))
    if not frames:
        return [], False

    index = pd.Index(frames)

    def matrices(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Profiles (sorted) x frames of the total and the self shares, 0 where a profile lacks a frame
        (a profile-by-frame pivot with sums; missing shares count as 0)."""
        rows, profiles = pd.factorize(part["profile"], sort=True)
        keep = rows >= 0
        rows, cols = rows[keep], index.get_indexer(part["frame"])[keep]
        out = []
        for column in ("total_share", "self_share"):
            m = np.zeros((len(profiles), len(frames)))
            values = part[column].to_numpy(dtype=float)[keep]
            np.add.at(m, (rows, cols), np.where(np.isnan(values), 0.0, values))
            out.append(m)
        return out[0], out[1]

    b, bs = matrices(before)
    a, as_ = matrices(after)
    nb, na = len(b), len(a)
    ok = nb >= min_profiles and na >= min_profiles
    mb = b.mean(axis=0) if nb else np.zeros(len(frames))
    ma = a.mean(axis=0) if na else np.zeros(len(frames))
    mbs = bs.mean(axis=0) if nb else np.zeros(len(frames))
    mas = as_.mean(axis=0) if na else np.zeros(len(frames))
    change = ma - mb
    low = high = p = np.full(len(frames), np.nan)
    if nb + na > 2 and nb and na:
        # Student's two-sample t with the pooled variance: under the null both sides come from the same
        # process, so their variances are equal; Welch's test would drop to n - 1 degrees of freedom for a
        # frame absent on one side (no variance there) and could not find a frame that appeared in 3 profiles
        dof = nb + na - 2.0
        pooled = ((nb - 1) * _var(b) + (na - 1) * _var(a)) / dof
        se = np.sqrt(pooled * (1 / nb + 1 / na))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se > 0, change / se, 0.0)
        p = np.where(se > 0, 2 * stats.t.sf(np.abs(t), dof), np.where(change == 0, 1.0, 0.0))
        q = float(stats.t.ppf(0.975, dof))
        low, high = change - q * se, change + q * se
    p_holm = _holm(p.copy()) if ok else np.full(len(frames), np.nan)
    out = []
    for i, frame in enumerate(frames):
        if not ok:
            verdict = "no verdict"
        elif p_holm[i] < alpha and abs(change[i]) >= min_change:
            if change[i] > 0:
                verdict = "appeared" if mb[i] == 0 else "grew"
            else:
                verdict = "vanished" if ma[i] == 0 else "shrank"
        else:
            verdict = "no change"
        out.append(FrameDiff(frame, float(mb[i]), float(ma[i]), float(change[i]), _num(low[i]), _num(high[i]),
                             _num(p[i]), _num(p_holm[i]), float(mbs[i]), float(mas[i]), verdict,
                             (routes or {}).get(frame)))
    out.sort(key=lambda d: (d.verdict in ("no change", "no verdict"), -abs(d.change), d.frame))
    return out, ok


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _changes(con: duckdb.DuckDBPyConnection, window: Window, services: set[str],
             bottlenecks: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The comparisons to make: one per deploy of a profiled service in the window, then one per finding
    (of a profiled service) that no deploy comparison covers (its onset within 30 min of that deploy)."""
    deploys = con.execute(f"""
SELECT ts_start, coalesce(service, '{NO_SERVICE}') AS service, what FROM events
WHERE kind = 'deploy' ORDER BY ts_start""").fetchall()
    by_service: dict[str, list[tuple[datetime, str]]] = {}
    for ts, service, what in deploys:
        by_service.setdefault(service, []).append((ts, str(what)))
    changes: list[dict[str, Any]] = []
    for service, items in by_service.items():
        if service not in services:
            continue
        for i, (ts, what) in enumerate(items):
            if not window.start <= ts < window.end:
                continue
            prev = items[i - 1][0] if i else window.start
            nxt = items[i + 1][0] if i + 1 < len(items) else window.end
            changes.append({"service": service, "kind": "deploy", "label": what, "at": ts,
                            "before": (max(prev, window.start), ts), "after": (ts, min(nxt, window.end)),
                            "addresses": [f"deploy:{what}"], "findings": [],
                            "rollback": "rollback" in what.lower()})
    items_f = ((bottlenecks or {}).get("findings") or {}).get("items") or []
    for index, finding in enumerate(items_f):
        scope = finding.get("scope") or {}
        service = scope.get("service")
        onset = parse_instant("onset", finding.get("onset"))
        if service not in services or onset is None:
            continue
        end = parse_instant("end", finding.get("end")) or window.end
        deploy_whats = {str(c.get("detail")) for c in finding.get("causes") or [] if c.get("kind") == "deploy"}
        covered = [c for c in changes if c["kind"] == "deploy" and c["service"] == service and (
            c["label"] in deploy_whats or abs((c["at"] - onset).total_seconds()) <= 1800)]
        if covered:
            covered[0]["findings"].append(index)
            continue
        length = max(end - onset, timedelta(hours=1))
        changes.append({"service": service, "kind": "finding", "label": str(finding.get("title") or "finding"),
                        "at": onset, "before": (max(onset - length, window.start), onset),
                        "after": (onset, min(end, window.end)), "findings": [index], "rollback": False,
                        "addresses": [f"route:{service} {scope['route']}"] if scope.get("route") else []})
    changes.sort(key=lambda c: (c["at"], c["service"]))
    return changes


# ---- the analysis ---------------------------------------------------------------------------------------

def analyse_profiles(con: duckdb.DuckDBPyConnection, window: Window, *,
                     bottlenecks: dict[str, Any] | None = None,
                     request_ms_total: float | None = None,
                     route_counts: pd.DataFrame | None = None,
                     traffic: pd.DataFrame | None = None) -> ProfileAnalysis:
    """Top frames per service, before/after comparisons around deploys and findings, flame-chart nodes and
    opportunities, over the profiles taken in ``window`` (see the module docstring for the method).
    ``traffic``: the window's requests and request time (ms) per ``service``, ``route`` (columns
    ``requests``, ``request_ms``; every route, null included: ``request_groups.route_traffic``'s frame), when
    the caller has it; else ``request_ms_total``: the window's request time (ms), and ``route_counts``: its
    requests per ``service``, ``route`` (``requests``; routes not null), when the caller has them. Without
    ``traffic`` one scan of ``requests`` gets them; request times of periods shorter than the window (after a
    deploy) take one more, filtered to those periods."""
    sql: dict[str, str] = {"top_frames": top_frames_sql(window), "flame": flame_sql(window)}
    frames = top_frames(con, window)
    notes: list[str] = []
    untimed = con.execute("SELECT count(DISTINCT profile) FROM profiles WHERE ts IS NULL").fetchone()
    if untimed and untimed[0]:
        notes.append(f"{fmt.counted(untimed[0], 'profile')} have no time: counted in the top frames, left out of the "
                     "before/after comparisons.")
    if traffic is None and (route_counts is None or request_ms_total is None):
        traffic = route_traffic(con, window)
    service_ms: dict[str, float] | None = None
    if traffic is not None:
        route_counts = traffic[traffic["route"].notna()]
        request_ms_total = float(traffic["request_ms"].sum())
        service_ms = {str(k): float(v) for k, v in traffic.groupby("service")["request_ms"].sum().items()}
    if route_counts is not None:
        by = route_counts.assign(service=route_counts["service"].fillna(NO_SERVICE))
        route_rows = list(by.groupby(["service", "route"], sort=False)["requests"].sum().items())
        route_rows = [(svc, rt, n) for (svc, rt), n in route_rows]
    else:
        route_rows = con.execute(f"""
SELECT coalesce(service, '{NO_SERVICE}'), route, count(*) FROM requests
WHERE {window.sql('ts')} AND route IS NOT NULL GROUP BY ALL""").fetchall()
    routes: dict[str, dict[str, int]] = {}
    for service, route, n in route_rows:
        routes.setdefault(str(service), {})[str(route)] = int(n)
    frame_routes = _stack_routes(con, window, routes) if not frames.empty else {}

    services: list[ServiceProfile] = []
    meta = con.execute(f"""WITH {_profiles_cte(window)}
SELECT service, count(DISTINCT profile), sum(samples), min(ts), max(ts) FROM p GROUP BY service
ORDER BY sum(samples) DESC""").fetchall()

    def stat(row: Any) -> FrameStat:
        route, why = frame_routes.get((row.service, row.frame), (None, "no handler frame on its stacks"))
        return FrameStat(row.service, row.frame, int(row.self_samples), int(row.total_samples),
                         float(row.self_share), float(row.total_share), int(row.profiles), route, why)

    for service, n_prof, n_samples, first, last in meta:
        f = frames[frames["service"] == service]
        top_self = [stat(r) for r in f[f["self_samples"] > 0].sort_values(
            ["self_samples", "frame"], ascending=[False, True]).head(TOP_N).itertuples()]
        top_total = [stat(r) for r in f.sort_values(["total_samples", "frame"], ascending=[False, True])
                     .head(TOP_N).itertuples()]
        services.append(ServiceProfile(service, int(n_prof), int(n_samples), first, last, top_self, top_total))

    flame_df = con.execute(flame_sql(window)).df()
    flame_df = flame_df[flame_df["share"] >= FLAME_MIN_SHARE]
    flame = [FlameNode(r.service, r.path, r.parent, r.frame, int(r.depth), int(r.samples))
             for r in flame_df.itertuples()]

    diffs: list[ProfileDiff] = []
    unprofiled: list[str] = []
    changes = _changes(con, window, {s.service for s in services}, bottlenecks)
    # every comparison's per-profile shares from one query (profile_shares of each side, as diff_sql shows)
    shares = _batched_shares(con, [(c["service"], *side) for c in changes for side in (c["before"], c["after"])])
    for i, change in enumerate(changes):
        service = change["service"]
        (b0, b1), (a0, a1) = change["before"], change["after"]
        before, after = shares[2 * i], shares[2 * i + 1]
        route_of = {f: r for (s, f), (r, _) in frame_routes.items() if s == service}
        result, ok = diff_profiles(before, after, routes=route_of)
        nb, na = before["profile"].nunique(), after["profile"].nunique()
        if nb == 0 and na == 0:
            unprofiled.append(f"{service} — {change['label']}")
            continue
        notes_d = [] if ok else [f"no verdict: {fmt.counted(nb, 'profile')} before and {na} after; a verdict needs "
                                 f"at least {MIN_PROFILES} per side"]
        if change.get("rollback"):
            notes_d.append("a rollback: frames that shrank here are the ones the rolled-back release had added")
        diff_sql = (f"-- before\n{profile_shares_sql(service, b0, b1)};\n"
                    f"-- after\n{profile_shares_sql(service, a0, a1)}")
        diffs.append(ProfileDiff(service, change["kind"], change["label"], change["at"], b0, b1, a0, a1,
                                 int(nb), int(na), ok, "; ".join(notes_d), result, change["addresses"],
                                 change["findings"], diff_sql))

    if unprofiled:
        notes.append(f"{fmt.counted(len(unprofiled), 'change')} without a profile of their service before or "
                     "after them: " + "; ".join(unprofiled) + ".")
    opportunities = _opportunities(con, window, services, diffs, sql, request_ms_total, service_ms)
    opportunities.sort(key=lambda o: -o.score)
    basis = ("samples of each service's profiles: on-CPU time for CPU profilers, wall time for wall-clock "
             "ones (the folded format does not say which)")
    return ProfileAnalysis(window.start, window.end, basis, services, diffs, opportunities, flame,
                           _METHOD, MIN_PROFILES, MIN_CHANGE, sql, notes)


_METHOD = (f"Self samples of a frame are those of the stacks it ends; total samples those of the stacks it is "
           f"on, counted once per stack even when the stack recurses through it; shares are of the service's "
           f"samples in the window. Before/after a deploy (or a bottleneck finding's onset) each profile's "
           f"share of a frame is one observation: a frame grew or shrank when a two-sample t-test on the per-profile "
           f"shares rejects equal means at 5 % after Holm's correction over the comparison's frames and the mean "
           f"share moved by at least {MIN_CHANGE:.0%}; the interval is the test's 95 % interval of the difference. "
           f"No verdict is given with fewer than {MIN_PROFILES} profiles per side. Routes come from handler "
           f"frames (views.product_detail) whose words a route of the same service contains. Shares are "
           f"relative: when one frame grows, the shares of the frames beside it shrink with no change of their "
           f"own, so a 'shrank' next to a large growth may be that dilution.")


_Period = tuple[str, str | None, datetime, datetime]   # service, route (None: all), start, end


def _requests_ms(con: duckdb.DuckDBPyConnection, periods: set[_Period]) -> dict[_Period, float]:
    """The request time (ms, :func:`_request_ms_sql`) of each (service, route, start, end) in one scan of
    ``requests`` (one filtered sum per period over the rows between the earliest start and the latest end)."""
    if not periods:
        return {}
    keys = sorted(periods, key=lambda k: (k[0], k[1] or "", k[2], k[3]))
    sums = ", ".join(f"sum(latency_ms) FILTER (WHERE {_request_filter(service, start, end, route)})"
                     for service, route, start, end in keys)
    row = con.execute(f"SELECT {sums} FROM requests WHERE ts >= {_ts(min(k[2] for k in keys))} "
                      f"AND ts < {_ts(max(k[3] for k in keys))}").fetchone()
    return {k: float(v) if v is not None else 0.0 for k, v in zip(keys, row or [None] * len(keys), strict=True)}


def _request_filter(service: str, start: datetime, end: datetime, route: str | None = None) -> str:
    """The requests of a service, or of one of its routes, in [start, end) (a WHERE condition)."""
    return (f"service = {_lit(service)} " + (f"AND route = {_lit(route)} " if route else "")
            + f"AND ts >= {_ts(start)} AND ts < {_ts(end)}")


def _request_ms_sql(service: str, start: datetime, end: datetime, route: str | None = None) -> str:
    return f"SELECT sum(latency_ms) AS request_ms FROM requests WHERE {_request_filter(service, start, end, route)}"


def _regression(d: ProfileDiff) -> tuple[FrameDiff, list[FrameDiff], str | None, FrameDiff | None] | None:
    """The frame a regression opportunity names (the one whose inclusive share grew most: get_variants rather
    than the driver call below it or the callers above it, whose shares grow by less or by the same), the
    frames that grew, its route and that route's handler frame; None for a rollback or nothing grown."""
    if d.kind == "deploy" and "rollback" in d.label.lower():
        return None
    grown = [f for f in d.frames if f.verdict in ("grew", "appeared")]
    if not grown:
        return None
    frame = max(grown, key=lambda f: (f.change, -len(f.frame)))
    route = frame.route or next((f.route for f in grown if f.route), None)
    handler = next((f for f in d.frames if route and f.route == route and _HANDLER.search(f.frame)
                    and f.after_share > 0), None)
    return frame, grown, route, handler


def _hot_frame(s: ServiceProfile) -> FrameStat | None:
    """The service's top self-time application frame when its self share is at least ``HOT_SELF_SHARE``."""
    hot = next((f for f in s.top_self if not is_library_frame(f.frame)), None)
    return None if hot is None or hot.self_share < HOT_SELF_SHARE else hot


def _opportunities(con: duckdb.DuckDBPyConnection, window: Window, services: list[ServiceProfile],
                   diffs: list[ProfileDiff], sql: dict[str, str], request_ms_total: float | None = None,
                   service_ms: dict[str, float] | None = None) -> list[Opportunity]:
    # the request times the opportunities need: the window's per service from ``service_ms`` when the
    # caller has it, the rest from one scan
    needed: set[_Period] = set()
    for d in diffs:
        picked = _regression(d)
        if picked is not None:
            needed.add((d.service, None, d.after_start, d.after_end))
            if picked[3] is not None and picked[2] is not None:
                needed.add((d.service, picked[2], d.after_start, d.after_end))
    hot = [(s, f) for s in services if (f := _hot_frame(s)) is not None]
    if service_ms is None:
        needed |= {(s.service, None, window.start, window.end) for s, _ in hot}
    times = _requests_ms(con, needed)
    if service_ms is not None:
        times |= {(s.service, None, window.start, window.end): service_ms.get(s.service, 0.0) for s, _ in hot}
    if request_ms_total is None:
        all_ms = con.execute(f"SELECT sum(latency_ms) FROM requests WHERE {window.sql('ts')}").fetchone()
        total_ms = float(all_ms[0]) if all_ms and all_ms[0] is not None else 0.0
    else:
        total_ms = float(request_ms_total)
    total_sql = f"SELECT sum(latency_ms) AS request_ms FROM requests WHERE {window.sql('ts')}"
    out: list[Opportunity] = []
    for d in diffs:
        picked = _regression(d)
        if picked is None:
            continue
        frame, grown, route, handler = picked
        children = [f.frame for f in grown if f is not frame]
        addresses = [*d.addresses, f"profile:{frame.frame}"]
        if route:
            addresses.append(f"route:{d.service} {route}")
        q = {"profile_diff": d.sql, "top_frames": sql["top_frames"]}
        # the route's request time when the frame's handler is known (the frame's growth as a share of the
        # handler's samples after the change), else the service's
        scale, scope = 1.0, f"{d.service}'s request time"
        period_ms = times[(d.service, None, d.after_start, d.after_end)]
        time_sql = _request_ms_sql(d.service, d.after_start, d.after_end)
        if handler is not None and route is not None:
            route_ms = times[(d.service, route, d.after_start, d.after_end)]
            if route_ms > 0:
                scale, period_ms = 1 / handler.after_share, route_ms
                time_sql = _request_ms_sql(d.service, d.after_start, d.after_end, route)
                scope = f"the request time of {route} (the frame's share of {handler.frame}'s samples)"
        if period_ms > 0 and total_ms > 0:
            grown_share = frame.change * scale
            value = grown_share * period_ms
            saving = Saving(value, "ms", "all request time", value / total_ms,
                            None if frame.low is None else max(0.0, frame.low) * scale * period_ms,
                            None if frame.high is None else frame.high * scale * period_ms)
            q["request_time_after"] = time_sql
            q["request_time_window"] = total_sql
            effect = (f"{frame.frame} takes {grown_share:.1%} more of the samples after the change; attributed to "
                      f"{scope} that is {value / 1000:,.0f} s over {d.after_start:%Y-%m-%d %H:%M}–"
                      f"{d.after_end:%Y-%m-%d %H:%M} UTC, assuming request time is spent in proportion to samples")
        else:
            samples = next((s.samples for s in services if s.service == d.service), 0)
            value = frame.change * samples
            saving = Saving(value, "samples", f"sampled CPU time of {d.service}", frame.change,
                            None if frame.low is None else max(0.0, frame.low) * samples,
                            None if frame.high is None else frame.high * samples)
            effect = f"{frame.change:.1%} of {d.service}'s sampled time comes back"
        what = d.label
        title = (f"Fix the regression in {frame.frame} that {what} introduced"
                 + (" (repeated queries per object: an N+1)" if _is_query_frame(frame.frame, children) else ""))
        change = (f"In {frame.frame}"
                  + (f" (route {route})" if route else "") + ": "
                  + ("batch the per-object queries (prefetch/select the related rows in one query, or "
                     "cache them per request) instead of querying once per object"
                     if _is_query_frame(frame.frame, children) else
                     "find what the release changed in this function and its callees and undo the extra work")
                  + f"; it grew after {what}.")
        evidence = (f"Inclusive share of {d.service}'s samples in {frame.frame}: {frame.before_share:.1%} over "
                    f"{d.profiles_before} profiles before → {frame.after_share:.1%} over {d.profiles_after} after "
                    f"(+{frame.change:.1%}, 95 % interval {_pp(frame.low)} to {_pp(frame.high)}, Holm p "
                    f"{fmt.num((frame.p_holm or 0), 2)}); frames that grew with it: "
                    + (", ".join(children) if children else "none"))
        verify = (f"After the fix, take ≥ {MIN_PROFILES} profiles of {d.service} under normal load and re-run "
                  f"the profile diff (sql['profile_diff'] with the new period as 'after'): {frame.frame} must "
                  f"get no 'grew' verdict against the profiles before {what}.")
        out.append(opportunity(
            "code", title, change=change, evidence=evidence, effect=effect, verify=verify,
            risk="low: the fix restores the behaviour of the previous release; check the response is unchanged",
            effort="low", saving=saving, sql=q, addresses=addresses,
            details={"service": d.service, "frame": frame.frame, "route": route, "change": d.label,
                     "before_share": frame.before_share, "after_share": frame.after_share,
                     "change_share": frame.change, "low": frame.low, "high": frame.high,
                     "grown_frames": [f.frame for f in grown], "kind": "regression"}))
    for s, f in hot:
        q = {"top_frames": sql["top_frames"]}
        period_ms = times[(s.service, None, window.start, window.end)]
        if period_ms > 0 and total_ms > 0:
            bound = f.self_share * period_ms
            saving = Saving(bound / 2, "ms", "all request time", bound / 2 / total_ms)
            q["request_time_service"] = _request_ms_sql(s.service, window.start, window.end)
            q["request_time_window"] = total_sql
            effect = (f"halving the frame's own time saves about {f.self_share / 2:.0%} of {s.service}'s request "
                      f"time ({bound / 2000:,.0f} s in the window), assuming request time is spent in proportion "
                      f"to samples; removing it all would save at most {bound / 1000:,.0f} s")
        else:
            saving = Saving(f.self_samples / 2, "samples", f"sampled CPU time of {s.service}", f.self_share / 2)
            effect = (f"halving the frame's own time gives back {f.self_share / 2:.0%} of {s.service}'s sampled "
                      f"time ({f.self_share:.0%} at most)")
        addresses = [f"profile:{f.frame}"] + ([f"route:{s.service} {f.route}"] if f.route else [])
        out.append(opportunity(
            "code", f"Make {f.frame} cheaper: {f.self_share:.0%} of {s.service}'s samples are in its own code",
            change=(f"Optimise the body of {f.frame} (its own code, not its callees): cache or precompute what "
                    f"it recomputes per call, or use a cheaper algorithm; profile it with line-level detail"),
            evidence=(f"{f.self_samples:,} of {s.samples:,} samples ({f.self_share:.1%}) of the "
                      f"{fmt.counted(s.profiles, s.service + ' profile')} end in {f.frame}; "
                      f"inclusive {f.total_share:.1%}"
                      + (f"; on route {f.route}" if f.route else "; called from several routes or none known")),
            effect=effect,
            verify=(f"After the change, take ≥ {MIN_PROFILES} profiles of {s.service} and re-run the profile "
                    f"diff against ≥ {MIN_PROFILES} profiles from before: {f.frame} must show 'shrank'."),
            risk="medium: changing hot code; keep its results identical (compare outputs on recorded inputs)",
            effort="medium", saving=saving, sql=q, addresses=addresses,
            details={"service": s.service, "frame": f.frame, "route": f.route, "self_share": f.self_share,
                     "total_share": f.total_share, "kind": "hot_frame"}))
    return out


# runtime and third-party frames: their cost is in how often the application calls them, so they are not
# proposed as code to optimise themselves (the database area covers driver time)
_LIBRARY = re.compile(
    r"^(?:ngx_|SSL_|ssl\.|psycopg|pymysql|MySQLdb|urllib3|requests\.|httpx|jinja2|django\.template|numpy|"
    r"pandas|zlib|gzip|json\.|orjson|decimal\.|gc\.|logging\.|hmac\.|jwt\.|kafka|redis|prometheus_client|"
    r"xml\.|itsdangerous|elasticsearch|socket\.|select\.|threading\.|asyncio\.|libc|__|\[)")


def is_library_frame(frame: str) -> bool:
    """A runtime or third-party frame (nginx, OpenSSL, drivers, template engines, the standard library)."""
    return bool(_LIBRARY.match(frame))


def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def _is_query_frame(frame: str, others: list[str]) -> bool:
    text = " ".join([frame, *others]).lower()
    return any(w in text for w in ("orm.query", "execute", "cursor", "sql"))
