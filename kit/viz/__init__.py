"""Figures: ``plot_*`` functions return plotly Figures (never ``.show()``) in one theme.

``setup_notebook()`` selects the renderer that embeds plotly.js once, so charts draw offline in the
exported HTML."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]

pio.templates["perfkit"] = go.layout.Template(
    layout=go.Layout(
        colorway=PALETTE,
        font={"family": "Inter, Segoe UI, Helvetica, Arial, sans-serif", "size": 13},
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        hovermode="x unified",
    )
)
pio.templates.default = "plotly_white+perfkit"


def setup_notebook() -> None:
    """Use the renderer that embeds plotly.js once and draws offline in nbconvert HTML."""
    pio.renderers.default = "plotly_mimetype+notebook"
