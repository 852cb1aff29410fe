"""Scaling figures: throughput against concurrency with the USL fit and its 95 % bootstrap band, and p95
against load with the knee marked. Both read the JSON form of ``ScalingAnalysis`` (or the dataclass),
per service, so the notebook and the documents draw the same data."""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit.results import to_jsonable
from kit.viz import LEGEND_BELOW, PALETTE

__all__ = ["plot_latency_knee", "plot_usl", "scaling_figures"]


def _service(analysis: Any, service: str) -> dict[str, Any]:
    data = analysis if isinstance(analysis, dict) else to_jsonable(analysis)
    for s in data.get("services", []):
        if s["service"] == service:
            return s
    raise KeyError(f"no scaling analysis for service {service!r}")


def _esc(text: object) -> str:
    return html.escape(str(text))


def plot_usl(analysis: Any, service: str) -> go.Figure:
    """Per-instance throughput (requests/s) against concurrency (requests in flight, Little's law): the
    load levels (marker size ~ buckets), the USL fit and its 95 % bootstrap band, the predicted peak."""
    s = _service(analysis, service)
    fit, levels = s["fit"], s["levels"]
    fig = go.Figure()
    band = fit.get("band") or []
    if band:
        xs = [p["concurrency"] for p in band]
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=[p["high"] for p in band] + [p["low"] for p in band][::-1],
                                 fill="toself", fillcolor="rgba(37,99,235,0.15)", line={"width": 0},
                                 name="95 % bootstrap band", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=xs, y=[p["mid"] for p in band], mode="lines", line={"color": PALETTE[0]},
                                 name="USL fit" + ("" if fit["verdict"] else " (no verdict)")))
    fig.add_trace(go.Scatter(
        x=[lv["concurrency"] for lv in levels], y=[lv["throughput_rps"] for lv in levels], mode="markers",
        marker={"color": PALETTE[1], "size": [6 + min(14, lv["buckets"] ** 0.5) for lv in levels]},
        name="load levels (measured)"))
    if fit["verdict"] and fit.get("peak_concurrency") is not None:
        fig.add_trace(go.Scatter(x=[fit["peak_concurrency"]], y=[fit["peak_throughput_rps"]], mode="markers",
                                 marker={"symbol": "star", "size": 14, "color": PALETTE[3]}, name="predicted peak"))
    verdict = (f"α={fit['alpha']:.3g}, β={fit['beta']:.3g}" if fit["verdict"] else "no verdict")
    fig.update_layout(title=f"{_esc(service)}: throughput against concurrency per instance ({verdict})",
                      xaxis_title="requests in flight per instance (Little's law)",
                      yaxis_title="requests/s per instance", hovermode="closest")
    return fig


def plot_latency_knee(analysis: Any, service: str) -> go.Figure:
    """Median p95 (ms) of each load level against per-instance throughput, with the knee, the latency SLO
    threshold and today's sustained peak marked; CPU utilization of the levels on a second axis."""
    s = _service(analysis, service)
    levels = sorted(s["levels"], key=lambda lv: lv["throughput_rps"])
    knee, head = s["knee"], s["headroom"]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=[lv["throughput_rps"] for lv in levels], y=[lv["p95_ms"] for lv in levels],
                             mode="lines+markers", name="p95 (median of buckets)", line={"color": PALETTE[0]}))
    util = [lv["utilization"].get("cpu") for lv in levels]
    if any(u is not None for u in util):
        fig.add_trace(go.Scatter(x=[lv["throughput_rps"] for lv in levels], y=util, mode="lines",
                                 name="CPU utilization", line={"color": PALETTE[2], "dash": "dot"}), secondary_y=True)
        fig.update_yaxes(title_text="CPU utilization", tickformat=".0%", secondary_y=True)
    if knee["found"]:
        fig.add_vline(x=knee["load_rps"], line_dash="dash", line_color=PALETTE[1],
                      annotation_text=f"knee {knee['load_rps']:.3g} req/s")
    fig.add_hline(y=head["slo_p95_ms"], line_dash="dot", line_color="#dc2626",
                  annotation_text=f"SLO p95 {head['slo_p95_ms']:g} ms")
    fig.add_vline(x=head["peak_per_instance_rps"], line_dash="dot", line_color=PALETTE[7],
                  annotation_text="today's peak", annotation_position="bottom right")
    fig.update_layout(title=f"{_esc(service)}: p95 against load per instance", hovermode="closest", legend=LEGEND_BELOW,
                      xaxis_title="requests/s per instance")
    fig.update_yaxes(title_text="p95 (ms)", secondary_y=False)
    return fig


def scaling_figures(analysis: Any) -> dict[str, go.Figure]:
    """Both figures for every service, keyed ``scaling_usl_<service>`` and ``scaling_knee_<service>``."""
    data = analysis if isinstance(analysis, dict) else to_jsonable(analysis)
    out: dict[str, go.Figure] = {}
    for s in data.get("services", []):
        out[f"scaling_usl_{s['service']}"] = plot_usl(data, s["service"])
        out[f"scaling_knee_{s['service']}"] = plot_latency_knee(data, s["service"])
    return out
