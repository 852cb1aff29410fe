"""SLIs over the warehouse, error budgets and their burn-down.

- availability SLI: share of requests with status < 500 (Occurrences budgeting), or of time slices whose
  good-request share reaches ``timeslice_target`` (Timeslices budgeting);
- latency SLI: share of requests faster than ``latency_threshold_ms``.

Budgets when the history is shorter than the window (the demo has 7 days, the window is 30): the
budget of a window is ``(1 - objective) x`` the events the window would hold at the history's mean
traffic rate (``total x window / history``); so a burn rate of 1 sustained over 7 days consumes 7/30
of the budget, and ``consumed`` is the share of the *window's* budget that the history used. Once the
history is at least one window long, the burn-down is the exact rolling window. Timeslices budgets
count slices: ``(1 - objective) x window / slice``, with empty slices counted as good.

Per-minute series are dense numpy arrays (one entry per minute of the history); the aggregation runs
in DuckDB and the rolling sums are numpy cumulative sums (``rolling_sum``, shared with the backtest).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np

from kit.analysis.slo.spec import SloSpec
from kit.engine import Queryable, as_engine
from kit.errors import DataError, ParameterError
from kit.warehouse import sql_string

__all__ = [
    "TARGET_LADDER", "BurnPoint", "SliDoc", "SloStatus", "TargetProposal", "budget_note", "budget_series",
    "evaluate_slo", "history_bounds", "minute_series", "propose_target", "rolling_sum", "sli_sql",
]

TARGET_LADDER = (0.5, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995, 0.99999)


@dataclass(frozen=True)
class TargetProposal:
    """A target proposed from the history, with the numbers it rests on."""

    target: float
    basis: str
    achieved: float | None
    typical_day_error_ratio: float | None


@dataclass(frozen=True)
class BurnPoint:
    """One point of a burn-down: share of the window's error budget consumed/remaining at ``ts``."""

    ts: datetime
    consumed_ratio: float
    remaining_ratio: float
    burn_rate_1h: float | None


@dataclass(frozen=True)
class SliDoc:
    """How an SLI is measured: in words, as DuckDB SQL over ``requests`` (None for raw PromQL SLIs) and
    as the spec's PromQL (error or error-ratio query, total query)."""

    description: str
    sql: str | None
    promql_error: str | None
    promql_total: str | None


@dataclass(frozen=True)
class SloStatus:
    """An SLO evaluated over the history: SLI achieved, error budget, consumed and remaining."""

    name: str
    service: str
    slo_id: str
    sli_kind: str
    sli: SliDoc
    objective: float
    objective_source: str
    proposal_note: str
    window_days: float
    budgeting_method: str
    timeslice_window_s: float | None
    timeslice_target: float | None
    latency_threshold_ms: float | None
    total_events: int
    bad_events: int
    achieved: float | None
    error_budget_ratio: float
    budget_events: float | None
    consumed_ratio: float | None
    remaining_ratio: float | None
    mean_burn_rate: float | None
    history_days: float
    source: str
    burndown: tuple[BurnPoint, ...] = ()
    note: str = ""



def sli_sql(spec: SloSpec) -> str:
    """DuckDB SQL of the SLI's per-request badness: a boolean expression over ``requests``."""
    if spec.sli_kind == "latency":
        return f"latency_ms > {float(spec.latency_threshold_ms or 0.0)!r}"
    return "status >= 500"


def _where(spec: SloSpec, start: datetime, end: datetime) -> str:
    clause = f"ts >= TIMESTAMPTZ '{start.isoformat()}' AND ts < TIMESTAMPTZ '{end.isoformat()}'"
    if spec.warehouse_service:
        clause += f" AND service = {sql_string(spec.warehouse_service)}"
    if spec.sli_kind == "latency":
        clause += " AND latency_ms IS NOT NULL"
    return clause


def history_bounds(con: duckdb.DuckDBPyConnection, start: str | None = None, end: str | None = None
                   ) -> tuple[datetime, datetime]:
    """The analysed history [start, end) in UTC; defaults: first request, last request + 1 ms, both
    aligned outwards to whole minutes."""
    row = con.execute("SELECT min(ts), max(ts) FROM requests").fetchone()
    if row is None or row[0] is None:
        from kit.analysis.coverage import NEEDS

        raise DataError(f"nothing to evaluate SLOs on. {NEEDS['requests'].sentence()}")
    first = _parse(start) or row[0].astimezone(UTC)
    last = _parse(end) or (row[1].astimezone(UTC) + timedelta(milliseconds=1))
    first = first.replace(second=0, microsecond=0)
    if last.second or last.microsecond:
        last = last.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if last <= first:
        raise ParameterError(f"end ({last.isoformat()}) must be after start ({first.isoformat()})")
    return first, last


def _parse(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def minute_series(con: Queryable, spec: SloSpec, start: datetime, end: datetime
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Dense per-minute (total, bad) event counts of the SLI over [start, end), as int64 arrays
    (one entry per minute, zeros where there was no traffic). Aggregation runs in the engine (DuckDB or
    Spark); the minute index is integer arithmetic on ``epoch_us`` (the window lies after 1970)."""
    n = int((end - start).total_seconds() // 60)
    rows = as_engine(con).frame(
        f"SELECT epoch_us(ts) // 60000000 - {int(start.timestamp() // 60)} AS i, "
        f"count(*) AS total, count(*) FILTER (WHERE {sli_sql(spec)}) AS bad "
        f"FROM requests WHERE {_where(spec, start, end)} GROUP BY 1"
    )
    total = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=np.int64)
    idx = np.asarray(rows["i"], dtype=np.int64)
    keep = (idx >= 0) & (idx < n)
    total[idx[keep]] = np.asarray(rows["total"], dtype=np.int64)[keep]
    bad[idx[keep]] = np.asarray(rows["bad"], dtype=np.int64)[keep]
    return total, bad


def propose_target(total: np.ndarray, bad: np.ndarray, *, headroom: float = 1.5) -> TargetProposal:
    """Propose an objective from per-minute counts: the strictest ladder target (99%, 99.5%, 99.9%, ...)
    whose error budget is at least ``headroom`` x the error ratio of a typical day (the median of daily
    error ratios; the whole history when shorter than 2 days), so a normal day uses at most 1/headroom
    (2/3) of its budget while incidents still burn it. Targets below 90% come with a warning that the
    SLI itself (e.g. the latency threshold) is probably too strict for the service; 50% is the floor."""
    days = len(total) // 1440
    if days >= 2:
        t = total[: days * 1440].reshape(days, 1440).sum(axis=1)
        b = bad[: days * 1440].reshape(days, 1440).sum(axis=1)
        ratios = b[t > 0] / t[t > 0]
        typical = float(np.percentile(ratios, 50)) if len(ratios) else None
        basis_days = f"the median of {len(ratios)} daily error ratios"
    else:
        typical = float(bad.sum() / total.sum()) if total.sum() else None
        basis_days = "the error ratio of the whole (short) history"
    achieved = float(1 - bad.sum() / total.sum()) if total.sum() else None
    if typical is None:
        return TargetProposal(0.99, "no traffic in the history: default 99%", achieved, None)
    chosen = TARGET_LADDER[0]
    for target in TARGET_LADDER:
        if typical * headroom <= (1 - target) + 1e-15:
            chosen = target
    basis = (f"proposed from the history: {basis_days} is {typical:.3g}; the strictest target whose budget "
             f"is at least {headroom:g}x that is {chosen:.5g} (achieved over the whole history: "
             f"{achieved:.5g})" if achieved is not None else "")
    if chosen < 0.9:
        basis += ("; below 90%: the SLI is probably too strict for this service (for latency, raise "
                  "latency_threshold_ms or give this service its own threshold)")
    return TargetProposal(chosen, basis, achieved, typical)


def rolling_sum(values: np.ndarray, width: int) -> np.ndarray:
    """Sum over the last ``width`` entries ending at each index (fewer at the start)."""
    c = np.concatenate(([0], np.cumsum(values, dtype=np.float64)))
    idx = np.arange(1, len(values) + 1)
    return c[idx] - c[np.maximum(idx - width, 0)]


def _timeslice_bad(total: np.ndarray, bad: np.ndarray, slice_minutes: int, target: float) -> np.ndarray:
    """Per-minute count of bad slices ending in that minute (1 at a slice's last minute when the slice's
    good share is below ``target``; empty slices are good)."""
    n = len(total) // slice_minutes * slice_minutes
    t = total[:n].reshape(-1, slice_minutes).sum(axis=1)
    b = bad[:n].reshape(-1, slice_minutes).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        good_share = np.where(t > 0, 1 - b / np.maximum(t, 1), 1.0)
    out = np.zeros(len(total), dtype=np.int64)
    out[np.arange(slice_minutes - 1, n, slice_minutes)] = (good_share < target).astype(np.int64)
    return out


def budget_series(total: np.ndarray, bad: np.ndarray, objective: float, window_minutes: int
                  ) -> np.ndarray:
    """Share of the window's error budget consumed at the end of each minute (Occurrences).

    Before a full window of history exists, the window's events are extrapolated from the history's
    mean rate (``total.sum() / len(total)`` per minute); afterwards it is the exact rolling window."""
    budget = 1.0 - objective
    rolled_bad = rolling_sum(bad, window_minutes)
    rolled_total = rolling_sum(total, window_minutes)
    idx = np.arange(1, len(total) + 1)
    mean_rate = total.sum() / max(len(total), 1)
    expected = np.where(idx >= window_minutes, rolled_total, mean_rate * window_minutes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected > 0, rolled_bad / (budget * expected), 0.0)


def evaluate_slo(con: Queryable, spec: SloSpec, start: datetime, end: datetime, *,
                 burndown_step_minutes: int = 60, series: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> SloStatus:
    """Evaluate one SLO over [start, end): SLI achieved, error budget, consumed/remaining, burn-down.

    ``series`` (per-minute total and bad counts) may be passed to avoid recomputing it."""
    history_days = (end - start).total_seconds() / 86400.0
    window_minutes = int(round(spec.window_days * 1440))
    sli_doc = _sli_doc(spec)
    if not spec.evaluable:
        return SloStatus(
            name=spec.name, service=spec.service, slo_id=spec.slo_id, sli_kind=spec.sli_kind, sli=sli_doc,
            objective=spec.objective, objective_source=spec.objective_source, proposal_note=spec.proposal_note,
            window_days=spec.window_days, budgeting_method=spec.budgeting_method,
            timeslice_window_s=spec.timeslice_window_s, timeslice_target=spec.timeslice_target,
            latency_threshold_ms=spec.latency_threshold_ms, total_events=0, bad_events=0, achieved=None,
            error_budget_ratio=spec.error_budget_ratio, budget_events=None, consumed_ratio=None,
            remaining_ratio=None, mean_burn_rate=None, history_days=history_days, source=spec.source,
            note="raw PromQL SLI: cannot be computed from the requests table")
    total, bad = series if series is not None else minute_series(con, spec, start, end)
    n_total, n_bad = int(total.sum()), int(bad.sum())
    achieved = 1 - n_bad / n_total if n_total else None
    budget = spec.error_budget_ratio
    if spec.budgeting_method in ("Timeslices", "RatioTimeslices"):
        slice_minutes = max(1, int(round((spec.timeslice_window_s or 60) / 60)))
        target = spec.timeslice_target if spec.timeslice_target is not None else spec.objective
        slice_bad = _timeslice_bad(total, bad, slice_minutes, target)
        slices_in_window = window_minutes / slice_minutes
        budget_events = budget * slices_in_window
        consumed_series = rolling_sum(slice_bad, window_minutes) / budget_events
        n_slices = len(total) // slice_minutes
        bad_slices = int(slice_bad.sum())
        achieved = 1 - bad_slices / n_slices if n_slices else None
        mean_burn = (bad_slices / n_slices) / budget if n_slices else None
        n_total, n_bad = n_slices, bad_slices
    else:
        budget_events = budget * (n_total * window_minutes / max(len(total), 1) if len(total) < window_minutes
                                  else float(rolling_sum(total, window_minutes)[-1]))
        consumed_series = budget_series(total, bad, spec.objective, window_minutes)
        mean_burn = (n_bad / n_total) / budget if n_total else None
    burn_1h = rolling_sum(bad, 60) / np.maximum(rolling_sum(total, 60), 1) / budget
    step = max(1, burndown_step_minutes)
    points = tuple(
        BurnPoint(start + timedelta(minutes=int(i) + 1), float(consumed_series[i]),
                  float(1 - consumed_series[i]), float(burn_1h[i]))
        for i in range(step - 1, len(total), step)
    )
    consumed = float(consumed_series[-1]) if len(consumed_series) else None
    note = ""
    if len(total) < window_minutes:
        note = (f"history ({history_days:.3g} d) is shorter than the window ({spec.window_days:g} d): "
                "budget normalized to the window at the history's mean traffic rate")
    return SloStatus(
        name=spec.name, service=spec.service, slo_id=spec.slo_id, sli_kind=spec.sli_kind, sli=sli_doc,
        objective=spec.objective, objective_source=spec.objective_source, proposal_note=spec.proposal_note,
        window_days=spec.window_days, budgeting_method=spec.budgeting_method,
        timeslice_window_s=spec.timeslice_window_s, timeslice_target=spec.timeslice_target,
        latency_threshold_ms=spec.latency_threshold_ms, total_events=n_total, bad_events=n_bad,
        achieved=achieved, error_budget_ratio=budget, budget_events=budget_events, consumed_ratio=consumed,
        remaining_ratio=None if consumed is None else 1 - consumed, mean_burn_rate=mean_burn,
        history_days=history_days, source=spec.source, burndown=points, note=note)


def _sli_doc(spec: SloSpec) -> SliDoc:
    if spec.sli_kind == "latency":
        description = f"requests faster than {spec.latency_threshold_ms:g} ms"
    elif spec.sli_kind == "availability":
        description = "requests answered without a 5xx status"
    else:
        description = "raw error-ratio query"
    where = "TRUE" if not spec.warehouse_service else f"service = {sql_string(spec.warehouse_service)}"
    return SliDoc(
        description=description,
        sql=(f"SELECT 1 - count(*) FILTER (WHERE {sli_sql(spec)}) / count(*) FROM requests "
             f"WHERE {where}") if spec.evaluable else None,
        promql_error=spec.error_query or spec.error_ratio_query,
        promql_total=spec.total_query,
    )



def budget_note(window_days: float, history_days: float) -> str:
    """How budgets were computed, for the results and the documents."""
    if history_days >= window_days:
        return (f"Error budgets are computed over the exact rolling {window_days:g}-day window ending at the "
                "end of the history.")
    return (f"The history covers {history_days:.3g} days, less than the {window_days:g}-day SLO window. "
            "Budgets are normalized to the window: each window's budget is (1 - objective) x the requests "
            "the window would hold at the "
            "history's mean traffic rate; 'consumed' is the share of that budget the history used "
            f"(a burn rate of 1 sustained over the history consumes {history_days / window_days:.1%}). "
            "Timeslices budgets count the window's slices.")


