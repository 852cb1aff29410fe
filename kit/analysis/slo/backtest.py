"""Alert backtest: replay the burn-rate alert logic over the history at 1-minute resolution.

For each SLO the per-minute (total, bad) counts give, at the end of every minute ``i``, the error ratio
over each window ``(i - w, i]`` (exact event counts; Prometheus' ``rate()`` approximates the same
ratio). A window pair fires when both ratios exceed ``burn_rate x error budget`` (and, with the guard,
the long window holds enough events) — the same condition as the generated PromQL. All of it is numpy
cumulative sums over the minute arrays, no per-row loops.

Policies compared side by side (Google SRE workbook, "Alerting on SLOs"):

- ``threshold``: error ratio over 10 minutes above the error budget (workbook recipe 1);
- ``burn_rate_1h``: one window, 1 hour at the quick page's burn rate (recipe 4);
- ``mwmbr``: the multi-window multi-burn-rate page and ticket alerts (recipe 6);
- ``saturation``: cause-based alerts (DB connection pool, cache hit ratio) when given;
- ``mwmbr+saturation``: the chosen set (``mwmbr`` alone when there are no saturation signals).

Scoring against ``events`` rows of kind ``incident``: an alert episode (a run of firing minutes) counts
as a true positive when it overlaps ``[ts_start, ts_end + grace]`` of an incident on its service;
precision = true episodes / episodes; recall = caught / budget-burning incidents (the SLO's error
ratio over the incident above the error budget, i.e. a mean burn rate > 1; each incident also carries
its share of the window's budget);
detection delay = end of the first firing minute - incident start;
reset time = how long the first catching alert kept firing after the incident's recorded end (the end of
its last episode overlapping the incident - the incident end), 0 when it had stopped before: the workbook's
"how long after an issue is resolved does the alert continue to fire" is never negative. An alert that
stops before the incident ends (its short window recovered while the incident was still recorded as on,
or traffic too thin to keep the ratio up) is counted apart: ``cleared_early_s`` per incident, and
``cleared_early`` incidents per policy; a signed mean would let one early stop cancel another alert's
long tail. Firing runs separated by at most ``MERGE_GAP_MINUTES`` quiet minutes are one episode (as
Alertmanager would notify once).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from kit.analysis.slo.alerts import AlertWindow, window_specs
from kit.analysis.slo.sli import rolling_sum
from kit.analysis.slo.spec import SloSpec

__all__ = [
    "POLICIES", "BacktestReport", "Episode", "IncidentScore", "NabReport", "NabSeriesScore", "PolicyScore",
    "backtest_slos", "episodes_from_mask", "load_incidents", "nab_score", "pair_mask", "policy_masks",
]

POLICIES = {
    "threshold": "error ratio over 10 min > error budget (single threshold)",
    "burn_rate_1h": "error ratio over 1 h > 14.4x budget (single-window burn rate)",
    "mwmbr": "multi-window multi-burn-rate: page 1h/5m 14.4x or 6h/30m 6x; ticket 1d/2h 3x or 3d/6h 1x",
}
CHOSEN = "mwmbr"
GRACE_S = 3600.0
Hit = tuple[float, float, str, str]  # (delay_s, episode end - incident end in s, severity, alert) of one detection
MERGE_GAP_MINUTES = 5  # quiet minutes that still count as the same alert episode (Alertmanager's group_interval)


@dataclass(frozen=True)
class Episode:
    """A run of firing minutes: [start, end) in UTC."""

    slo_id: str
    policy: str
    severity: str
    start: datetime
    end: datetime
    incident: str | None


@dataclass(frozen=True)
class PolicyScore:
    """One policy (optionally one SLO and severity) scored over the history."""

    policy: str
    description: str
    slo: str | None
    severity: str | None
    episodes: int
    per_week: float
    pages_per_week: float
    tickets_per_week: float
    true_episodes: int | None  # None without incidents to score against
    precision: float | None
    recall: float | None
    caught: int
    incidents: int
    mean_delay_s: float | None
    max_delay_s: float | None
    mean_reset_s: float | None  # mean time the alert kept firing after an incident's end (>= 0)
    cleared_early: int = 0      # caught incidents whose alert had stopped before the incident ended


@dataclass(frozen=True)
class IncidentScore:
    """A recorded incident against the chosen policy."""

    what: str
    type: str | None
    service: str | None
    route: str | None
    ts_start: datetime
    ts_end: datetime
    slo: str | None
    burns_budget: bool                  # mean burn rate over the incident > 1
    burn_rate: float | None             # mean burn rate over the incident (error ratio / budget)
    budget_consumed_ratio: float | None  # share of the window's budget the incident consumed
    peak_burn_rate: float | None
    detected: bool
    severity: str | None
    delay_s: float | None
    reset_s: float | None               # how long the alert kept firing after the incident's end (>= 0)
    alert: str | None = None            # the first alert that fired: "<slo_id> page|ticket" or a saturation alert
    cleared_early_s: float | None = None  # how long before the incident's end the alert had stopped (0: it had not)


@dataclass(frozen=True)
class BacktestReport:
    """Backtest of all policies; ``timeline`` holds 1-hour burn rates at ``timeline_step_s`` per SLO."""

    resolution_s: int
    weeks: float
    chosen_policy: str
    grace_s: float
    policies: tuple[PolicyScore, ...]
    by_rule: tuple[PolicyScore, ...]
    incidents: tuple[IncidentScore, ...]
    episodes: tuple[Episode, ...]
    timeline: tuple[dict[str, Any], ...]
    note: str


# --------------------------------------------------------------------------------------------- core

def _ratio(total: np.ndarray, bad: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    t = rolling_sum(total, width)
    b = rolling_sum(bad, width)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(t > 0, b / np.maximum(t, 1), 0.0), t


def pair_mask(total: np.ndarray, bad: np.ndarray, budget: float, window: AlertWindow, step_s: float = 60.0,
              min_events: int | None = None) -> np.ndarray:
    """Minutes (steps) at whose end one window pair fires."""
    long_w = max(1, int(round(window.long_window_s / step_s)))
    short_w = max(1, int(round(window.short_window_s / step_s)))
    threshold = window.burn_rate * budget
    long_r, long_t = _ratio(total, bad, long_w)
    short_r, _ = _ratio(total, bad, short_w)
    mask = (long_r > threshold) & (short_r > threshold)
    if min_events:
        mask &= long_t >= math.ceil(min_events / threshold - 1e-9)
    return mask


def policy_masks(total: np.ndarray, bad: np.ndarray, budget: float, windows: tuple[AlertWindow, ...], *,
                 step_s: float = 60.0, min_bad_events: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Firing masks ``{policy: {severity: bool array}}`` for the three policies."""
    out: dict[str, dict[str, np.ndarray]] = {}
    ten = max(1, int(round(600 / step_s)))
    ratio10, _ = _ratio(total, bad, ten)
    out["threshold"] = {"page": ratio10 > budget}
    quick = next(w for w in windows if w.severity == "page" and w.speed == "quick")
    hour = max(1, int(round(quick.long_window_s / step_s)))
    ratio1h, _ = _ratio(total, bad, hour)
    out["burn_rate_1h"] = {"page": ratio1h > quick.burn_rate * budget}
    mw: dict[str, np.ndarray] = {}
    for severity in ("page", "ticket"):
        masks = [pair_mask(total, bad, budget, w, step_s, _guard(w, budget, min_bad_events))
                 for w in windows if w.severity == severity]
        mw[severity] = np.logical_or.reduce(masks) if masks else np.zeros(len(total), dtype=bool)
    out["mwmbr"] = mw
    return out


def _guard(w: AlertWindow, budget: float, min_bad_events: int | None) -> int | None:
    return min_bad_events if min_bad_events else None


def episodes_from_mask(mask: np.ndarray, merge_gap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in ``mask``; runs separated by at most
    ``merge_gap`` quiet steps count as one episode (a flapping alert is one notification)."""
    padded = np.concatenate(([False], mask.astype(bool), [False]))
    diff = np.diff(padded.astype(np.int8))
    starts, ends = np.flatnonzero(diff == 1), np.flatnonzero(diff == -1)
    if merge_gap > 0 and len(starts) > 1:
        keep = np.concatenate(([True], starts[1:] - ends[:-1] > merge_gap))
        starts = starts[keep]
        ends = ends[np.concatenate((keep[1:], [True]))]
    return starts, ends


# --------------------------------------------------------------------------------------------- incidents

def load_incidents(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """``events`` rows of kind ``incident`` overlapping [start, end), oldest first."""
    rows = con.execute(
        "SELECT ts_start, coalesce(ts_end, ts_start + INTERVAL 1 HOUR), service, route, what, details "
        "FROM events WHERE kind = 'incident' AND ts_start < ? AND coalesce(ts_end, ts_start) >= ? "
        "ORDER BY ts_start", [end, start]).fetchall()
    out = []
    for ts_start, ts_end, service, route, what, details in rows:
        info = details if isinstance(details, dict) else (json.loads(details) if details else {})
        out.append({"ts_start": ts_start.astimezone(UTC), "ts_end": ts_end.astimezone(UTC), "service": service,
                    "route": route, "what": what, "type": (info or {}).get("type")})
    return out


# --------------------------------------------------------------------------------------------- backtest

def backtest_slos(slos: list[tuple[SloSpec, tuple[np.ndarray, np.ndarray]]], start: datetime,
                  incidents: list[dict[str, Any]], *, min_bad_events: int | None = None,
                  windows: tuple[AlertWindow, ...] | None = None, grace_s: float = GRACE_S,
                  timeline_step_minutes: int = 10,
                  saturation: list[tuple[str, float, int, np.ndarray]] | None = None) -> BacktestReport:
    """Replay all policies over each SLO's per-minute series and score them against ``incidents``.

    ``saturation`` items are (alert name, threshold, ``for`` in minutes, per-minute values): the alert
    fires once the value has been above the threshold for ``for`` consecutive minutes. When given, the
    chosen rule set is the burn-rate alerts plus these (policy ``mwmbr+saturation``)."""
    n = len(slos[0][1][0]) if slos else 0
    weeks = n / (7 * 1440) if n else 0.0
    step = timedelta(minutes=1)
    episodes: list[Episode] = []
    # detections[policy][incident index] -> list of (delay_s, episode end - incident end, severity, alert)
    detections: dict[str, dict[int, list[Hit]]] = {p: {} for p in POLICIES}
    burning: dict[int, tuple[float, str]] = {}   # incident -> (max burn over the incident, slo)
    peaks: dict[int, float] = {}
    consumed: dict[int, float] = {}
    rule_stats: dict[tuple[str, str, str], list[Episode]] = {}
    timeline = []
    for spec, (total, bad) in slos:
        if not spec.evaluable:
            continue
        budget = spec.error_budget_ratio
        spec_windows = windows or window_specs(spec.window_days)
        masks = policy_masks(total, bad, budget, spec_windows, min_bad_events=min_bad_events)
        burn_1h = _ratio(total, bad, 60)[0] / budget
        burn_5m = _ratio(total, bad, 5)[0] / budget
        k = timeline_step_minutes
        m = len(total) // k * k
        timeline.append({
            "slo_id": spec.slo_id, "slo": spec.name, "service": spec.service, "start": start, "step_s": 60 * k,
            "burn_rate_1h": np.round(burn_1h[k - 1:m:k], 4).tolist(),
            "burn_rate_5m_max": np.round(burn_5m[:m].reshape(-1, k).max(axis=1), 4).tolist() if m else [],
        })
        relevant = [j for j, inc in enumerate(incidents)
                    if inc["service"] is None or spec.warehouse_service is None
                    or inc["service"] == spec.warehouse_service]
        for j in relevant:
            inc = incidents[j]
            a = max(0, int((inc["ts_start"] - start).total_seconds() // 60))
            b = min(len(total), int(math.ceil((inc["ts_end"] - start).total_seconds() / 60)))
            if b <= a:
                continue
            t_sum, b_sum = int(total[a:b].sum()), int(bad[a:b].sum())
            burn = (b_sum / t_sum) / budget if t_sum else 0.0
            peak = float(burn_5m[a:b].max()) if b > a else 0.0
            share = burn * (b - a) / (spec.window_days * 1440)
            if share > consumed.get(j, -1.0):
                burning[j] = (burn, spec.name if spec.service is None else f"{spec.service}/{spec.name}")
                peaks[j] = peak
                consumed[j] = share
        for policy, by_severity in masks.items():
            for severity, mask in by_severity.items():
                starts, ends = episodes_from_mask(mask, MERGE_GAP_MINUTES)
                for s_idx, e_idx in zip(starts, ends, strict=True):
                    ep_start, ep_end = start + step * int(s_idx), start + step * int(e_idx)
                    matched = _match(incidents, relevant, ep_start, ep_end, step, grace_s, detections[policy],
                                     severity, f"{spec.slo_id} {severity}")
                    ep = Episode(spec.slo_id, policy, severity, ep_start, ep_end,
                                 None if matched is None else incidents[matched]["what"])
                    episodes.append(ep)
                    rule_stats.setdefault((policy, spec.name if not spec.service else spec.slo_id, severity),
                                          []).append(ep)
    chosen = CHOSEN
    policy_names = dict(POLICIES)
    if saturation:
        detections["saturation"] = {}
        for name, threshold, for_minutes, values in saturation:
            above = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf) > threshold
            mask = rolling_sum(above.astype(np.int64), max(1, for_minutes)) >= max(1, for_minutes)
            starts, ends = episodes_from_mask(mask, MERGE_GAP_MINUTES)
            for s_idx, e_idx in zip(starts, ends, strict=True):
                ep_start, ep_end = start + step * int(s_idx), start + step * int(e_idx)
                matched = _match(incidents, range(len(incidents)), ep_start, ep_end, step, grace_s,
                                 detections["saturation"], "warning", name)
                episodes.append(Episode(name, "saturation", "warning", ep_start, ep_end,
                                        None if matched is None else incidents[matched]["what"]))
        chosen = f"{CHOSEN}+saturation"
        policy_names["saturation"] = "resource saturation alerts only (cause-based)"
        policy_names[chosen] = "the chosen rules: multi-window multi-burn-rate plus saturation alerts"
        merged: dict[int, list[Hit]] = {}
        for source in (detections[CHOSEN], detections["saturation"]):
            for j, hits in source.items():
                merged.setdefault(j, []).extend(hits)
        detections[chosen] = merged
    burning_set = {j for j, (burn, _) in burning.items() if burn > 1.0}
    policies = []
    for policy, description in policy_names.items():
        if policy == chosen and chosen != CHOSEN:
            eps = [e for e in episodes if e.policy in (CHOSEN, "saturation")]
            policies.append(_score(policy, description, None, None, eps, detections[policy], burning_set, weeks))
            continue
        eps = [e for e in episodes if e.policy == policy]
        policies.append(_score(policy, description, None, None, eps, detections[policy], burning_set, weeks))
    by_rule = []
    for (policy, slo_id, severity), eps in sorted(rule_stats.items()):
        if policy != CHOSEN:
            continue
        spec_service = next((s.warehouse_service for s, _ in slos if s.slo_id == slo_id), None)
        related = {j for j in burning_set if incidents[j]["service"] in (None, spec_service)}
        det = {j: [d for d in v if d[2] == severity] for j, v in detections[policy].items()}
        by_rule.append(_score(policy, POLICIES[policy], slo_id, severity, eps,
                              {j: v for j, v in det.items() if v}, related, weeks))
    incident_rows = []
    for j, inc in enumerate(incidents):
        # the first alert to fire (page before ticket on ties) sets the delay and its reset time
        hits = sorted(detections[chosen].get(j, []), key=lambda d: (d[0], d[2] != "page"))
        worst = burning.get(j)
        inc_burn, inc_slo = (worst[0], worst[1]) if worst else (None, None)
        first = hits[0] if hits else None
        overrun = _overrun(hits, first[3]) if first else None
        incident_rows.append(IncidentScore(
            what=inc["what"], type=inc.get("type"), service=inc["service"], route=inc.get("route"),
            ts_start=inc["ts_start"], ts_end=inc["ts_end"], slo=inc_slo, burns_budget=j in burning_set,
            burn_rate=inc_burn, budget_consumed_ratio=consumed.get(j), peak_burn_rate=peaks.get(j), detected=bool(hits),
            severity=first[2] if first else None,
            delay_s=first[0] if first else None,
            reset_s=None if overrun is None else max(0.0, overrun),
            alert=first[3] if first else None,
            cleared_early_s=None if overrun is None else max(0.0, -overrun)))
    note = ("Replayed at 1-minute resolution with exact per-window event counts. An episode is a true "
            f"positive when it overlaps an incident on its service (up to {grace_s / 60:g} min after its end); "
            "an incident burns budget when the SLO's error ratio over it exceeds the error budget "
            "(mean burn rate > 1); "
            "delay and reset are those of the first alert that fired for it; reset is how long it kept firing "
            "after the incident's recorded end (0 when it had stopped before; such incidents are counted apart).")
    if not incidents:
        note += " The warehouse has no incident events: precision and recall cannot be computed."
        policies = [replace(p, precision=None, true_episodes=None) for p in policies]  # not 0: unknown
    return BacktestReport(resolution_s=60, weeks=weeks, chosen_policy=chosen, grace_s=grace_s,
                          policies=tuple(policies), by_rule=tuple(by_rule), incidents=tuple(incident_rows),
                          episodes=tuple(episodes), timeline=tuple(timeline), note=note)


def _match(incidents: list[dict[str, Any]], candidates: Any, ep_start: datetime, ep_end: datetime,
           step: timedelta, grace_s: float, detections: dict[int, list[Hit]],
           severity: str, alert: str) -> int | None:
    """The first incident an episode overlaps (up to ``grace_s`` after its end); records the detection."""
    for j in candidates:
        inc = incidents[j]
        if ep_start <= inc["ts_end"] + timedelta(seconds=grace_s) and ep_end > inc["ts_start"]:
            first = max(ep_start, inc["ts_start"])
            delay = (first + step - inc["ts_start"]).total_seconds() if ep_start >= inc["ts_start"] else 0.0
            detections.setdefault(j, []).append((delay, (ep_end - inc["ts_end"]).total_seconds(), severity, alert))
            return int(j)
    return None


def _score(policy: str, description: str, slo: str | None, severity: str | None, eps: list[Episode],
           detections: dict[int, list[Hit]], burning: set[int], weeks: float) -> PolicyScore:
    true_eps = sum(1 for e in eps if e.incident is not None)
    caught = [j for j in burning if detections.get(j)]
    firsts = [min(detections[j], key=lambda d: (d[0], d[2] != "page")) for j in caught]
    delays = [f[0] for f in firsts]
    overruns = [_overrun(detections[j], f[3]) for j, f in zip(caught, firsts, strict=True)]
    resets = [max(0.0, o) for o in overruns]
    per_week = (len(eps) / weeks) if weeks else 0.0
    return PolicyScore(
        policy=policy, description=description, slo=slo, severity=severity, episodes=len(eps), per_week=per_week,
        pages_per_week=sum(1 for e in eps if e.severity == "page") / weeks if weeks else 0.0,
        tickets_per_week=sum(1 for e in eps if e.severity == "ticket") / weeks if weeks else 0.0,
        true_episodes=true_eps, precision=true_eps / len(eps) if eps else None,
        recall=len(caught) / len(burning) if burning else None, caught=len(caught), incidents=len(burning),
        mean_delay_s=float(np.mean(delays)) if delays else None, max_delay_s=float(max(delays)) if delays else None,
        mean_reset_s=float(np.mean(resets)) if resets else None, cleared_early=sum(1 for o in overruns if o < 0))


def _overrun(hits: list[Hit], alert: str) -> float:
    """Seconds from the incident's end to the end of ``alert``'s last episode on it (negative: it stopped
    before the incident ended)."""
    return max(h[1] for h in hits if h[3] == alert)


# --------------------------------------------------------------------------------------------- NAB

@dataclass(frozen=True)
class NabSeriesScore:
    """One NAB series: label windows detected by each policy, false episodes, delay from window start."""

    series: str
    samples: int
    step_s: float
    windows: int
    detected: dict[str, int]
    false_episodes: dict[str, int]
    true_episodes: dict[str, int]
    mean_delay_s: dict[str, float | None]


@dataclass(frozen=True)
class NabReport:
    """Policies scored on the labelled NAB series (sum over series)."""

    series: tuple[NabSeriesScore, ...]
    policies: tuple[dict[str, Any], ...]
    method: str


def nab_score(nab_dir: str | Path, *, objective: float = 0.99, probation: float = 0.15) -> NabReport:
    """Score the policies on the NAB series under ``nab_dir`` (``data/**.csv`` and
    ``labels/combined_windows.json``). Each sample is an event; it is bad when its value leaves the
    [0.5%, 99.5%] quantile band of the probationary first 15% (NAB's convention), so the probation
    period itself burns the budget of a 99% objective at rate 1. A label window is detected when an
    episode overlaps it; episodes overlapping no window are false positives."""
    root = Path(nab_dir)
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    series_scores = []
    for rel, wins in sorted(labels.items()):
        path = root / "data" / rel
        if not path.exists():
            continue
        con = duckdb.connect()
        rows = con.execute(
            "SELECT epoch(CAST(timestamp AS TIMESTAMP)) AS t, value FROM read_csv(?, header=true) ORDER BY 1",
            [str(path)]).fetchnumpy()
        con.close()
        t, v = np.asarray(rows["t"], dtype=np.float64), np.asarray(rows["value"], dtype=np.float64)
        if len(t) < 10:
            continue
        step_s = float(np.median(np.diff(t)))
        grid = np.round((t - t[0]) / step_s).astype(np.int64)
        n = int(grid[-1]) + 1
        k = max(1, int(len(v) * probation))
        lo, hi = np.quantile(v[:k], [0.005, 0.995])
        total = np.zeros(n, dtype=np.int64)
        bad = np.zeros(n, dtype=np.int64)
        np.add.at(total, grid, 1)
        np.add.at(bad, grid, ((v < lo) | (v > hi)).astype(np.int64))
        masks = policy_masks(total, bad, 1 - objective, window_specs(30), step_s=step_s)
        win_idx = []
        for a, b in wins:
            ta = datetime.fromisoformat(a).replace(tzinfo=UTC).timestamp()
            tb = datetime.fromisoformat(b).replace(tzinfo=UTC).timestamp()
            win_idx.append((int((ta - t[0]) // step_s), int(math.ceil((tb - t[0]) / step_s))))
        detected, false_eps, true_eps, delays = {}, {}, {}, {}
        for policy, by_sev in masks.items():
            mask = np.logical_or.reduce(list(by_sev.values()))
            starts, ends = episodes_from_mask(mask)
            hit = 0
            win_delays: list[float] = []
            for a, b in win_idx:
                over = (starts < b) & (ends > a)
                if over.any():
                    hit += 1
                    win_delays.append(max(0, int(starts[over].min()) - a + 1) * step_s)
            overlaps_any = np.zeros(len(starts), dtype=bool)
            for a, b in win_idx:
                overlaps_any |= (starts < b) & (ends > a)
            detected[policy], false_eps[policy] = hit, int((~overlaps_any).sum())
            true_eps[policy] = int(overlaps_any.sum())
            delays[policy] = float(np.mean(win_delays)) if win_delays else None
        series_scores.append(NabSeriesScore(rel, len(v), step_s, len(wins), detected, false_eps, true_eps,
                                            delays))
    policies = []
    for policy, description in POLICIES.items():
        windows_total = sum(s.windows for s in series_scores)
        n_hits = sum(s.detected[policy] for s in series_scores)
        n_true = sum(s.true_episodes[policy] for s in series_scores)
        n_false = sum(s.false_episodes[policy] for s in series_scores)
        delay_list = [x for s in series_scores if (x := s.mean_delay_s[policy]) is not None]
        policies.append({"policy": policy, "description": description, "label_windows": windows_total,
                         "detected": n_hits, "recall": n_hits / windows_total if windows_total else None,
                         "false_episodes": n_false,
                         "precision": n_true / (n_true + n_false) if n_true + n_false else None,
                         "mean_delay_from_window_start_s": float(np.mean(delay_list)) if delay_list else None})
    return NabReport(series=tuple(series_scores), policies=tuple(policies), method=(
        f"bad sample = outside the [0.5%, 99.5%] band of the first {probation:.0%}; objective {objective:g}; "
        "30-day Google windows; recall = label windows with an overlapping episode; precision = episodes "
        "overlapping a label window / all episodes"))
