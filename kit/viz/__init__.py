"""Figures: ``plot_*`` functions return plotly Figures (never ``.show()``) in one theme.

``setup_notebook()`` selects the renderer that embeds plotly.js once, so charts draw offline in the
exported HTML."""

from __future__ import annotations

import re

import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import NotebookRenderer

from kit.fmt import NA

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


def table(rows: object, drop: tuple[str, ...] = (), digits: int | None = None) -> object:
    """A DataFrame for display: ``rows`` (records, a DataFrame or a Series) without the ``drop`` columns
    and without columns that are empty in every row, numbers rounded to ``digits`` decimals, and with
    ``kit.fmt.NA`` where a value does not exist, so no table shows ``nan``/``None``. An empty table becomes
    one sentence that says so."""
    import pandas as pd

    df = rows if isinstance(rows, pd.DataFrame | pd.Series) else pd.DataFrame(rows)
    if digits is not None:
        df = df.round(digits)
    if isinstance(df, pd.Series):
        return df.astype(object).where(df.notna(), NA).to_frame("value")
    if df.empty:
        return "Nothing to show: no rows."
    df = df.drop(columns=[c for c in drop if c in df.columns]).dropna(axis=1, how="all")
    return df.astype(object).where(df.notna(), NA)
