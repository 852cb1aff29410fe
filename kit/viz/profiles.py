"""Figures for code profiles. Every ``plot_*`` takes a ``ProfileAnalysis`` or its saved JSON and returns a
plotly Figure: an icicle chart of one service's stacks (root on top, width = samples) and a diff chart of
the frame shares before and after a change, the frames with a verdict highlighted."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from kit.results import to_jsonable

__all__ = ["as_dict", "flame_frame", "plot_diff", "plot_icicle"]

_CHANGED = {"grew": "#dc2626", "appeared": "#991b1b", "shrank": "#2563eb", "vanished": "#1e3a8a"}


def as_dict(result: Any) -> dict[str, Any]:
    """The result as plain JSON values."""
    return result if isinstance(result, dict) else to_jsonable(result)


def flame_frame(result: Any, service: str) -> pd.DataFrame:
    """The flame-chart nodes of one service (columns path, parent, frame, depth, samples)."""
    flame = as_dict(result)["flame"]
    frame = pd.DataFrame(flame) if flame else pd.DataFrame(columns=["service", "path", "parent", "frame",
                                                                    "depth", "samples"])
    return frame[frame["service"] == service].reset_index(drop=True)


def plot_icicle(result: Any, service: str | None = None) -> go.Figure:
    """Icicle chart of a service's folded stacks (the busiest service when none is given): each box is a
    stack prefix, its width the samples of the stacks through it; hover shows the share of the service's
    samples. Nodes under 0.2 % of the samples are left out (the analysis drops them)."""
    r = as_dict(result)
    if service is None:
        service = r["services"][0]["service"] if r["services"] else ""
    nodes = flame_frame(r, service)
    roots = nodes.loc[nodes["depth"] == 1, "samples"].sum() if len(nodes) else 0
    # a node's parent may have been dropped as too small only if the node is too; keep the tree consistent
    kept = set(nodes["path"])
    nodes = nodes[(nodes["parent"] == "") | nodes["parent"].isin(kept)]
    fig = go.Figure(go.Icicle(
        ids=nodes["path"], labels=nodes["frame"], parents=nodes["parent"], values=nodes["samples"],
        branchvalues="total", customdata=(nodes["samples"] / roots if roots else nodes["samples"] * 0),
        hovertemplate="%{label}<br>%{value:,} samples (%{customdata:.1%} of the service)<extra></extra>",
        tiling={"orientation": "v"}, root={"color": "#f3f4f6"}))
    fig.update_layout(title=f"Profile of {service}: stacks root first, width = samples", margin={"t": 80, "l": 10,
                                                                                               "r": 10, "b": 10})
    return fig


def plot_diff(result: Any, index: int | None = None, top: int = 20) -> go.Figure:
    """Mean inclusive share per profile before and after one change (``diffs[index]``; by default the first
    comparison with a verdict of growth), with the 95 % interval of the difference; frames with a verdict in
    colour, the others grey."""
    r = as_dict(result)
    diffs = r["diffs"]
    if index is None:
        index = next((i for i, d in enumerate(diffs)
                      if any(f["verdict"] in ("grew", "appeared") for f in d["frames"])), 0)
    fig = go.Figure()
    if not diffs:
        fig.update_layout(title="No before/after comparison (no deploy or finding with profiles on both sides)")
        return fig
    d = diffs[index]
    frames = d["frames"][:top][::-1]
    names = [f["frame"] for f in frames]
    colours = [_CHANGED.get(f["verdict"], "#9ca3af") for f in frames]
    fig.add_trace(go.Bar(y=names, x=[f["before_share"] for f in frames], orientation="h", name="before",
                         marker_color="#d1d5db"))
    fig.add_trace(go.Bar(
        y=names, x=[f["after_share"] for f in frames], orientation="h", name="after", marker_color=colours,
        customdata=[[f["verdict"], f["change"], f["low"], f["high"]] for f in frames],
        hovertemplate="%{y}<br>after %{x:.1%}<br>%{customdata[0]}: %{customdata[1]:+.1%} "
                      "(95 % interval %{customdata[2]:+.1%} to %{customdata[3]:+.1%})<extra></extra>"))
    verdict = "" if d["has_verdicts"] else " — no verdict (too few profiles)"
    fig.update_layout(
        barmode="group", xaxis_tickformat=".0%", xaxis_title="mean inclusive share of the service's samples",
        yaxis_title="frame",
        title=f"{d['service']}: {d['label']} — {d['profiles_before']} profiles before, {d['profiles_after']} "
              f"after{verdict}", height=max(350, 28 * len(frames) + 120),
        legend={"orientation": "h", "y": -0.15})
    return fig
