"""SLO figures: error-budget burn-down and the burn-rate timeline with alert firings.

Both read the ``slo`` result dict (``to_jsonable(SloReport)``), so notebooks and reports draw the same data."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go

from kit.viz import PALETTE

__all__ = ["plot_burn_rate_timeline", "plot_burndown"]


def plot_burndown(slo_result: dict[str, Any]) -> go.Figure:
    """Share of each SLO's window error budget remaining over the history (1 = untouched)."""
    fig = go.Figure()
    for i, slo in enumerate(slo_result.get("slos", [])):
        points = slo.get("burndown") or []
        if not points:
            continue
        fig.add_trace(go.Scatter(
            x=[p["ts"] for p in points], y=[p["remaining_ratio"] for p in points], mode="lines",
            name=f"{slo['service']} {slo['sli_kind']}", line={"color": PALETTE[i % len(PALETTE)]}))
    fig.add_hline(y=0, line_dash="dot", line_color="#dc2626")
    fig.update_layout(title=f"Error budget remaining ({slo_result.get('window_days', 30):g}-day window)",
                      yaxis_title="budget remaining (share)", yaxis_tickformat=".0%", xaxis_title="time (UTC)")
    return fig


def plot_burn_rate_timeline(slo_result: dict[str, Any], slo_id: str, *, policy: str = "mwmbr") -> go.Figure:
    """1-hour burn rate of one SLO, the page/ticket burn-rate factors, alert episodes (shaded) and
    incidents (markers)."""
    backtest = slo_result.get("backtest") or {}
    series = next((t for t in backtest.get("timeline", []) if t["slo_id"] == slo_id), None)
    fig = go.Figure()
    if series is None:
        return fig.update_layout(title=f"no timeline for {slo_id}")
    start = datetime.fromisoformat(series["start"])
    step = timedelta(seconds=series["step_s"])
    xs = [start + step * (i + 1) for i in range(len(series["burn_rate_1h"]))]
    fig.add_trace(go.Scatter(x=xs, y=series["burn_rate_5m_max"], name="burn rate 5 min (max per step)",
                             line={"color": "#93c5fd", "width": 1}))
    fig.add_trace(go.Scatter(x=xs, y=series["burn_rate_1h"], name="burn rate 1 h", line={"color": PALETTE[0]}))
    for w in (slo_result.get("alerts") or {}).get("windows", []):
        fig.add_hline(y=w["burn_rate"], line_dash="dash", line_width=1,
                      line_color="#dc2626" if w["severity"] == "page" else "#d97706",
                      annotation_text=f"{w['severity']} {w['long_window']}/{w['short_window']} {w['burn_rate']:g}x",
                      annotation_position="top left")
    for ep in backtest.get("episodes", []):
        if ep["slo_id"] != slo_id or ep["policy"] != policy:
            continue
        fig.add_vrect(x0=ep["start"], x1=ep["end"], line_width=0, opacity=0.25,
                      fillcolor="#dc2626" if ep["severity"] == "page" else "#d97706")
    service = series.get("service")
    for inc in backtest.get("incidents", []):
        if inc.get("service") not in (None, service):
            continue
        fig.add_vrect(x0=inc["ts_start"], x1=inc["ts_end"], line_width=1, line_dash="dot",
                      line_color="#4b5563", fillcolor="rgba(0,0,0,0)",
                      annotation_text=str(inc.get("type") or "incident"), annotation_position="top right")
    fig.update_layout(title=f"Burn rate and {policy} alert firings: {slo_id}", yaxis_type="log",
                      yaxis_title="burn rate (x budget)", xaxis_title="time (UTC)")
    return fig
