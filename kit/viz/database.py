"""Figure for the database section: the top fingerprints by database time, stacked by period."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from kit.results import to_jsonable

__all__ = ["plot_top_fingerprints"]


def plot_top_fingerprints(analysis: Any, periods: Any = None, top: int = 10) -> go.Figure:
    """Horizontal bars: database time (s) of the top fingerprints of a DatabaseAnalysis (or its JSON);
    ``periods``, when given, is a frame or records with ``fingerprint``, ``period`` and ``total_ms``
    (e.g. the digest of two windows) and stacks the bars by period."""
    data = analysis if isinstance(analysis, dict) else to_jsonable(analysis)
    rows = list(data.get("digest") or [])[:top]
    names = [str(r["fingerprint"]) for r in rows]
    labels = [n if len(n) <= 60 else n[:57] + "..." for n in names]
    fig = go.Figure()
    if periods is not None:
        recs = periods.to_dict("records") if hasattr(periods, "to_dict") else list(periods)
        for period in dict.fromkeys(str(r["period"]) for r in recs):
            ms = {str(r["fingerprint"]): float(r["total_ms"] or 0) for r in recs if str(r["period"]) == period}
            fig.add_bar(y=labels, x=[ms.get(n, 0.0) / 1000 for n in names], name=period, orientation="h",
                        hovertext=names)
        fig.update_layout(barmode="stack")
    else:
        fig.add_bar(y=labels, x=[float(r["total_ms"] or 0) / 1000 for r in rows], orientation="h", hovertext=names,
                    name="database time")
    fig.update_layout(title="Top query fingerprints by database time", xaxis_title="database time (s)",
                      yaxis={"autorange": "reversed", "title": "query fingerprint"},
                      height=120 + 32 * max(len(rows), 1), margin={"l": 420})
    return fig
