"""Figure for the compression section (notebook 50): size ratio against compression speed per codec level."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def plot_compression_tradeoff(codecs: pd.DataFrame) -> go.Figure:
    """One point per codec level of ``CompressionAnalysis.codecs``: compressed/raw size ratio over all the
    compressible files (lower is smaller) against compression speed in MB/s on one core (log scale; right
    is faster), coloured by codec, labelled with the level, marker by use (dynamic: per response; static:
    pre-compressed once)."""
    frame = codecs.dropna(subset=["ratio", "mb_per_s"]).assign(level_text=lambda f: f["level"].astype(str))
    fig = px.scatter(frame, x="mb_per_s", y="ratio", color="codec", symbol="use", text="level_text", log_x=True,
                     hover_data={"label": True, "assets": True, "input_bytes": True, "output_bytes": True,
                                 "cpu_seconds": ":.3f", "level_text": False},
                     title="Static text assets: size after compression vs compression speed (this machine)")
    fig.update_traces(textposition="top center", marker={"size": 11})
    fig.update_layout(xaxis_title="compression speed, MB/s on one core (log)",
                      yaxis_title="compressed size / raw size", yaxis_tickformat=".0%", hovermode="closest")
    return fig
