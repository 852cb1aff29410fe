"""Figures for notebook 30's diagnosis: a timeline of findings and events, and per finding its series
with the onset marked and events overlaid, and the before/after latency distributions.

Text from the warehouse (routes, event descriptions) is escaped before it reaches a chart (HTML entities)
or Markdown (``kit.report.text.md_escape``)."""

from __future__ import annotations

import html
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from kit.analysis.findings import FindingEvidence, Findings, finding_evidence, window_events
from kit.analysis.window import Window
from kit.report.text import md_escape
from kit.viz import PALETTE, TIME_AXIS

CONFIDENCE_COLOURS = {"high": PALETTE[1], "medium": PALETTE[3], "low": PALETTE[7]}
EVENT_COLOURS = {"deploy": PALETTE[0], "config": PALETTE[4], "campaign": PALETTE[2]}


def _esc(text: object) -> str:
    return html.escape(str(text), quote=False)


def plot_findings_timeline(found: Findings, events: pd.DataFrame) -> go.Figure:
    """One bar per finding from onset to end (coloured by confidence) and the events as markers."""
    fig = go.Figure()
    end_of_window = found.window_end
    shown: set[str] = set()
    for i, f in enumerate(found.items):
        label = f"#{i + 1} {f.title}"
        fig.add_trace(go.Scatter(
            x=[f.onset, f.end or end_of_window], y=[_esc(label), _esc(label)], mode="lines+markers",
            line={"color": CONFIDENCE_COLOURS[f.confidence], "width": 10}, name=f.confidence,
            legendgroup=f.confidence, showlegend=f.confidence not in shown,
            hovertext=_esc(f"{f.kind}: {f.metric} {f.before:.4g} → {f.after:.4g}; cause: {f.causes[0].detail}"),
            hoverinfo="text"))
        shown.add(f.confidence)
    for kind, part in events.groupby("kind"):
        fig.add_trace(go.Scatter(
            x=part["ts_start"], y=["events"] * len(part), mode="markers", name=_esc(kind),
            marker={"symbol": "triangle-down", "size": 12, "color": EVENT_COLOURS.get(str(kind), PALETTE[5])},
            hovertext=[_esc(f"{k} {s or ''}: {w}") for k, s, w in zip(part["kind"], part["service"], part["what"],
                                                                      strict=True)],
            hoverinfo="text"))
    fig.update_layout(title="Findings (bars, onset → end) and events (▼)", hovermode="closest",
                      yaxis={"autorange": "reversed", "title": "finding"}, xaxis_title=TIME_AXIS,
                      height=max(300, 60 + 40 * (len(found.items) + 1)))
    return fig


def plot_finding_series(evidence: FindingEvidence) -> go.Figure:
    """The finding's metric per bucket in its scope, the changed interval shaded, events as lines."""
    f = evidence.finding
    fig = go.Figure(go.Scatter(x=evidence.series["bucket_start"], y=evidence.series["value"], mode="lines",
                               name=_esc(evidence.value_label), line={"color": PALETTE[0]}))
    end = f.end or evidence.series["bucket_start"].max()
    fig.add_vrect(x0=f.onset, x1=end, fillcolor=CONFIDENCE_COLOURS[f.confidence], opacity=0.15, line_width=0)
    fig.add_vline(x=f.onset, line={"color": CONFIDENCE_COLOURS[f.confidence], "dash": "dash"})
    for row in evidence.events.itertuples():
        fig.add_vline(x=row.ts_start, line={"color": EVENT_COLOURS.get(str(row.kind), PALETTE[5]), "dash": "dot"})
        fig.add_annotation(x=row.ts_start, y=1, yref="paper", text=_esc(f"{row.kind}: {row.what}")[:60],
                           showarrow=False, textangle=-90, xanchor="right", yanchor="top", font={"size": 10})
    fig.update_layout(title=_esc(f"{f.title}: {evidence.value_label} per {f.bucket_s} s"), xaxis_title=TIME_AXIS,
                      yaxis_title=_esc(evidence.value_label), showlegend=False)
    return fig


def plot_finding_distributions(evidence: FindingEvidence) -> go.Figure:
    """Before/after latency distributions (log x axis) of a latency finding's samples; for other kinds,
    the before and after values as two bars with the 95 % interval of the change."""
    f = evidence.finding
    if len(evidence.after):
        fig = go.Figure()
        for name, frame, colour in (("before", evidence.before, PALETTE[7]), ("after", evidence.after, PALETTE[1])):
            values = frame.iloc[:, 0].to_numpy(dtype=float)
            values = values[values > 0]
            fig.add_trace(go.Histogram(x=np.log10(values), name=f"{name} (n={len(values)})", opacity=0.6,
                                       histnorm="probability", marker_color=colour, nbinsx=60))
        fig.update_layout(barmode="overlay", title="Latency before (same time, other days) and after the onset",
                          xaxis_title="log10 latency_ms", yaxis_title="share of requests", hovermode="closest")
        return fig
    fig = go.Figure(go.Bar(x=["before", "after"], y=[f.before, f.after], marker_color=[PALETTE[7], PALETTE[1]],
                           error_y={"type": "data", "array": [0, f.ci_high - f.effect],
                                    "arrayminus": [0, f.effect - f.ci_low]}))
    fig.update_layout(title=_esc(f"{f.metric}: before and after (error bar: 95 % interval of the change)"),
                      yaxis_title=_esc(f.metric), xaxis_title="period", hovermode="closest")
    return fig


def finding_markdown(index: int, evidence: FindingEvidence) -> str:
    """The heading and facts of one finding's section (text from the data escaped for Markdown)."""
    f = evidence.finding
    end = f.end.strftime("%Y-%m-%d %H:%M") if f.end else "still on at the end of the window"
    lines = [f"## {index}. {md_escape(f.title)} ({f.confidence} confidence)", "",
             f"- **when:** {f.onset:%Y-%m-%d %H:%M} → {end} UTC (buckets of {f.bucket_s} s)",
             f"- **how much:** {md_escape(f.metric)} {f.before:.4g} → {f.after:.4g}; "
             f"change {f.effect:.4g} {f.effect_unit} (95 % CI {f.ci_low:.4g} … {f.ci_high:.4g})"
             + (f", p = {f.p_value:.2g}" if f.p_value is not None else ""),
             f"- **cost:** {f.cost_share:.2%} of {f.cost_basis.replace('_', ' ')}" if f.cost_share is not None
             else "- **cost:** not measured for this kind",
             "- **probable causes:**"]
    lines += [f"    - {md_escape(c.kind)} (strength {c.strength:.2f}): {md_escape(c.detail)}" for c in f.causes]
    if f.related:
        lines.append("- **moved with it:** " + "; ".join(md_escape(r) for r in f.related[:6]))
    lines.append("- **reproduce:** the queries are in `results/bottlenecks.json` → `findings.items[].sql`")
    return "\n".join(lines)


def show_findings(con: duckdb.DuckDBPyConnection, window: Window, found: Findings, limit: int = 10) -> None:
    """Display one section per finding (heading and facts, series chart, distributions) in a notebook."""
    from IPython.display import Markdown, display

    if not found.items:
        display(Markdown("No change found in this window" + (": " + " ".join(found.notes) if found.notes else ".")))
        return
    for i, f in enumerate(found.items[:limit], start=1):
        evidence = finding_evidence(con, window, f)
        display(Markdown(finding_markdown(i, evidence)))
        display(plot_finding_series(evidence))
        display(plot_finding_distributions(evidence))


def timeline(con: duckdb.DuckDBPyConnection, window: Window, found: Findings) -> Any:
    """The timeline figure of the window's findings and events."""
    return plot_findings_timeline(found, window_events(con, window))
