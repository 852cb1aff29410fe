"""Figures for the CDN analysis (:mod:`kit.analysis.cdn`). Each takes a ``CdnAnalysis`` or its JSON form."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from kit.results import to_jsonable

__all__ = ["plot_byte_hit_ratio_by_class"]


def plot_byte_hit_ratio_by_class(result: Any) -> go.Figure:
    """Byte hit ratio (0..1) per content class: as logged, and in the replay of each scenario (today's key,
    then each fix), grouped bars."""
    r = result if isinstance(result, dict) else to_jsonable(result)
    classes = [c["content_class"] for c in r["by_class"]]
    fig = go.Figure()
    fig.add_bar(name="logged (cache_status)", x=classes, y=[c["byte_hit_ratio"] for c in r["by_class"]])
    for s in r["replay"].get("scenarios", []):
        per = s["by_class"]
        fig.add_bar(name=f"replay: {s['name'].replace('_', ' ')}", x=classes,
                    y=[(per.get(c) or {}).get("byte_hit_ratio") for c in classes])
    fig.update_layout(barmode="group", title="CDN byte hit ratio per content class: now and after each fix",
                      yaxis={"title": "byte hit ratio", "tickformat": ".0%", "range": [0, 1]},
                      xaxis={"title": "content class"}, legend={"orientation": "h", "y": -0.2},
                      annotations=[{"text": r["replay"].get("method", ""), "xref": "paper", "yref": "paper",
                                    "x": 0, "y": 1.08, "showarrow": False, "font": {"size": 10}}])
    return fig
