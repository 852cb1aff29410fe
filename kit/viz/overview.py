"""Figures for notebooks 00 (data overview), 30 (bottlenecks) and 50 (optimizations)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from kit.analysis.opportunity import saving_text
from kit.viz import TIME_AXIS


def plot_requests_per_hour(per_hour: pd.DataFrame) -> go.Figure:
    """Stacked requests per hour by service."""
    fig = px.area(per_hour, x="hour", y="requests", color="service", title="Requests per hour by service")
    fig.update_layout(xaxis_title=TIME_AXIS, yaxis_title="requests / hour")
    return fig


def plot_field_completeness(completeness: dict[str, float]) -> go.Figure:
    """Share of requests in which each field is present."""
    frame = pd.DataFrame({"field": list(completeness), "present": list(completeness.values())})
    fig = px.bar(frame, x="present", y="field", orientation="h", range_x=[0, 1],
                 title="Field completeness in requests (share of rows with a value)")
    fig.update_layout(xaxis_tickformat=".0%", yaxis_title="field", xaxis_title="share of rows with a value",
                      hovermode="closest")
    return fig


def plot_time_share(top: pd.DataFrame) -> go.Figure:
    """Share of all request time consumed by the top routes."""
    frame = top.assign(label=top["service"] + " " + top["route"])
    fig = px.bar(frame, x="time_share", y="label", orientation="h", hover_data=["requests", "p95_ms", "p99_ms"],
                 title="Share of all request time, top routes")
    fig.update_layout(xaxis_tickformat=".1%", yaxis_title="service and route", xaxis_title="share of all request time",
                      yaxis={"autorange": "reversed"}, hovermode="closest")
    return fig


def opportunity_rows(ranking: Iterable[Any]) -> list[dict[str, Any]]:
    """The ranked opportunities (``kit.analysis.opportunity.Opportunity``) as table rows, in the order
    and with the numbers the optimization strategy prints: rank, area, what, estimated saving (an upper
    bound, with its share and interval), effort and score (saving share / effort weight)."""
    return [{"rank": i, "area": o.area, "opportunity": o.title, "estimated saving": saving_text(o.saving),
             "effort": o.effort, "score": round(o.score, 4)} for i, o in enumerate(ranking, start=1)]
