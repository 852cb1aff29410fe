"""Figures: ``plot_*`` functions return plotly Figures (never ``.show()``) in one theme.

``setup_notebook()`` selects the renderer that embeds plotly.js once, so charts draw offline in the
exported HTML."""

from __future__ import annotations

import re

import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import NotebookRenderer

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


_MATHJAX_FROM_CDN = re.compile(r'<script src="https://cdn[^"]*mathjax[^"]*"></script>')


class OfflineNotebookRenderer(NotebookRenderer):
    """plotly's ``notebook`` renderer (plotly.js embedded once) without the MathJax script it always
    loads from a CDN, so exported reports fetch nothing from the network."""

    def to_mimebundle(self, fig_dict: dict) -> dict:
        bundle = super().to_mimebundle(fig_dict)
        bundle["text/html"] = _MATHJAX_FROM_CDN.sub("", bundle["text/html"])
        return bundle


pio.renderers["perfkit_notebook"] = OfflineNotebookRenderer(connected=False)


def setup_notebook() -> None:
    """Use the renderers that show charts in JupyterLab and draw offline in nbconvert HTML."""
    pio.renderers.default = "plotly_mimetype+perfkit_notebook"
