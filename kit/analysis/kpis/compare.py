"""Period over period: the headline KPIs of a window against those of another (usually the one before
it, of the same length)."""

from __future__ import annotations

import math

from kit.analysis.kpis.headline import headline
from kit.analysis.kpis.model import Comparison, ComparisonRow, Kpi
from kit.analysis.kpis.sql import request_count
from kit.analysis.window import Window
from kit.engine import Queryable

__all__ = ["compare_headline", "compare_periods"]

def _verdict(current: float | None, previous: float | None, better: str) -> tuple[float | None, str]:
    if current is None or previous is None:
        return None, "n/a"
    change = None if previous == 0 else 100.0 * (current - previous) / abs(previous)
    if math.isclose(current, previous, rel_tol=0.02, abs_tol=1e-12):
        return change, "same"
    improved = current < previous if better == "lower" else current > previous
    return change, "better" if improved else "worse"


def compare_periods(con: Queryable, current: Window, previous: Window, *, basis: str = "",
                    services: list[str] | tuple[str, ...] | None = None, apdex_t_ms: float = 300.0,
                    qfunc: str = "quantile_cont") -> Comparison:
    """Headline KPIs of ``current`` against ``previous``; change in percent of the previous value."""
    now = headline(con, current, services=services, apdex_t_ms=apdex_t_ms, qfunc=qfunc)
    return compare_headline(con, now, current, previous, basis=basis, services=services, apdex_t_ms=apdex_t_ms,
                            qfunc=qfunc)


def compare_headline(con: Queryable, now: tuple[Kpi, ...], current: Window, previous: Window, *,
                     basis: str, services: list[str] | tuple[str, ...] | None, apdex_t_ms: float,
                     qfunc: str) -> Comparison:
    """``now`` (the headline KPIs of ``current``) against the headline KPIs of ``previous``."""
    n_prev = request_count(con, previous, services)
    before = {k.name: k.value for k in headline(con, previous, services=services, apdex_t_ms=apdex_t_ms,
                                                 qfunc=qfunc)} if n_prev else {}
    rows = []
    for k in now:
        prev = before.get(k.name)
        change, verdict = _verdict(k.value, prev, k.better)
        rows.append(ComparisonRow(k.name, k.unit, k.value, prev, change, k.better, verdict))
    return Comparison(basis or "previous window of the same length", current.start, current.end,
                      previous.start, previous.end, n_prev, tuple(rows))
