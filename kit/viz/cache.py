"""Figures for notebook 40 (cache simulation). Every ``plot_*`` takes a ``CacheResult`` or its saved
JSON (``results["cache"]``) and returns a plotly Figure."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit import fmt
from kit.cachesim.trace import ZIPF_RANKS
from kit.results import to_jsonable
from kit.viz import LEGEND_BELOW, PALETTE, TIME_AXIS

__all__ = ["as_dict", "plot_key_curves", "plot_policies", "plot_ttl_by_class", "plot_cost", "plot_working_set",
           "plot_popularity", "plot_explorer", "readout_text", "cache_explorer"]


def as_dict(result: Any) -> dict[str, Any]:
    """The result as plain JSON values."""
    return result if isinstance(result, dict) else to_jsonable(result)


def plot_key_curves(result: Any) -> go.Figure:
    """Exact LRU hit ratio (object and byte) against capacity in bytes, one line per key design."""
    r = as_dict(result)
    fig = go.Figure()
    for i, k in enumerate(r["keys"]):
        c = k["bytes"]
        hit = [1 - m for m in c["miss_ratio"]]
        bhit = [1 - m for m in c["byte_miss_ratio"]]
        fig.add_trace(go.Scatter(x=c["capacity"], y=hit, name=f"{k['key']}: object hit ratio", mode="lines",
                                 legendgroup=k["key"], line={"color": _color(i)}))
        fig.add_trace(go.Scatter(x=c["capacity"], y=bhit, name=f"{k['key']}: byte hit ratio", mode="lines",
                                 legendgroup=k["key"], line={"color": _color(i), "dash": "dot"}))
    s = r["sizing"]
    fig.add_vline(x=s["recommended_capacity_bytes"], line_dash="dash", line_color="#4b5563",
                  annotation_text=f"recommended {fmt.size(s['recommended_capacity_bytes'])}")
    fig.update_layout(title="Exact LRU hit ratio by cache size and key design", xaxis_type="log",
                      xaxis_title="cache capacity (bytes, log scale)", yaxis_title="hit ratio", yaxis_range=[0, 1],
                      yaxis_tickformat=".0%")
    return fig


def plot_policies(result: Any, metric: str = "miss_ratio") -> go.Figure:
    """Miss ratio (or byte miss ratio) of each policy against capacity (libcachesim)."""
    r = as_dict(result)
    rows = r["policies"]["rows"]
    fig = go.Figure()
    for i, pol in enumerate(dict.fromkeys(row["policy"] for row in rows)):
        pts = sorted((row for row in rows if row["policy"] == pol), key=lambda x: x["capacity_bytes"])
        fig.add_trace(go.Scatter(x=[p["capacity_bytes"] for p in pts], y=[p[metric] for p in pts], name=pol,
                                 mode="lines+markers", line={"color": _color(i), "dash": "dash" if pol == "belady"
                                                             else "dot" if i >= len(PALETTE) else "solid"}))
    label = "byte miss ratio" if metric == "byte_miss_ratio" else "miss ratio"
    fig.update_layout(title=f"Eviction policies: {label} by cache size ({r['policies']['method']})",
                      xaxis_type="log", xaxis_title="cache capacity (bytes, log scale)", yaxis_title=label,
                      yaxis_tickformat=".0%")
    return fig


def plot_ttl_by_class(result: Any) -> go.Figure:
    """Hit ratio of each content class under each TTL (cache large enough that only expiry matters)."""
    r = as_dict(result)
    fig = go.Figure()
    for i, c in enumerate(r["ttl_by_class"]):
        ttls = list(c["hit_ratio_by_ttl"])
        fig.add_trace(go.Bar(x=[("none" if t == "0" else f"{t} s") for t in ttls],
                             y=[c["hit_ratio_by_ttl"][t] for t in ttls], name=c["content_class"],
                             marker_color=_color(i)))
    fig.update_layout(title="Hit ratio by TTL and content class (expiry only)", barmode="group",
                      xaxis_title="TTL", yaxis_title="hit ratio", yaxis_range=[0, 1], yaxis_tickformat=".0%")
    return fig


def plot_cost(result: Any) -> go.Figure:
    """Monthly memory cost, egress saved and net saving by capacity."""
    r = as_dict(result)
    pts = r["sizing"]["cost"]["points"]
    x = [p["capacity_bytes"] for p in pts]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=x, y=[p["memory_cost_per_month"] for p in pts], name="memory cost / month"))
    fig.add_trace(go.Scatter(x=x, y=[p["egress_saved_per_month"] for p in pts], name="egress saved / month"))
    fig.add_trace(go.Scatter(x=x, y=[p["net_saving_per_month"] for p in pts], name="net saving / month"))
    fig.add_trace(go.Scatter(x=x, y=[p["byte_hit_ratio"] for p in pts], name="byte hit ratio",
                             line={"dash": "dot"}), secondary_y=True)
    fig.update_xaxes(type="log", title_text="cache capacity (bytes, log scale)")
    fig.update_yaxes(title_text="currency units per month", secondary_y=False)
    fig.update_yaxes(title_text="byte hit ratio", range=[0, 1], tickformat=".0%", secondary_y=True)
    fig.update_layout(title="Cost model: memory against origin egress", legend=LEGEND_BELOW)
    return fig


def plot_working_set(result: Any) -> go.Figure:
    """Requests and unique objects per time bucket."""
    r = as_dict(result)
    ws = r["trace"]["working_set"]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    timed = bool(ws) and ws[0]["start_s"] > 1e8  # Unix seconds; a trace without times counts requests instead
    x = [datetime.fromtimestamp(w["start_s"], UTC) if timed else w["start_s"] for w in ws]
    fig.add_trace(go.Bar(x=x, y=[w["requests"] for w in ws], name="requests", opacity=0.5))
    fig.add_trace(go.Scatter(x=x, y=[w["unique_objects"] for w in ws], name="unique objects"), secondary_y=True)
    fig.update_yaxes(title_text="requests per bucket", secondary_y=False)
    fig.update_yaxes(title_text="unique objects per bucket", secondary_y=True)
    fig.update_layout(title=f"Working set over time ({len(ws)} buckets)", legend=LEGEND_BELOW,
                      xaxis_title=TIME_AXIS if timed else "request number (the trace has no times)")
    return fig


def plot_popularity(result: Any) -> go.Figure:
    """Rank–frequency plot on log–log axes: requests to the object of each popularity rank (1 = most
    requested), with the fitted Zipf line (slope −alpha, through the top object) when there is a fit."""
    r = as_dict(result)
    t = r["trace"]
    points = t.get("rank_frequency") or []
    fig = go.Figure(go.Scatter(x=[p["rank"] for p in points], y=[p["requests"] for p in points],
                               mode="lines+markers", name="objects by rank"))
    alpha = t["zipf_alpha"]
    fitted = [p for p in points if p["rank"] <= ZIPF_RANKS]
    if alpha is not None and fitted:
        # the fit is over the top ZIPF_RANKS ranks in log-log; a least-squares line passes through the mean of
        # log rank, ~ rank top/e: drawn through the observed point nearest it, over the fitted ranks only
        middle = max(fitted[-1]["rank"], 1) / math.e
        anchor = min(fitted, key=lambda p: abs(math.log(p["rank"] / middle)))
        ranks = [p["rank"] for p in fitted]
        fig.add_trace(go.Scatter(x=ranks, y=[anchor["requests"] * (rank / anchor["rank"]) ** -alpha for rank in ranks],
                                 mode="lines", name=f"Zipf fit, alpha {alpha:.2f}", line={"dash": "dash",
                                                                                          "color": _color(1)}))
    share = t["top_objects_share"]
    fig.update_layout(
        title=f"Popularity: rank against requests (top 1% of objects: {fmt.pct(share.get('top_1pct'), 1)} "
              f"of requests)", xaxis_type="log", yaxis_type="log", hovermode="closest",
        xaxis_title="object rank (1 = most requested, log scale)", yaxis_title="requests (log scale)")
    return fig


def plot_explorer(explorer: dict[str, Any], key: str, policy: str, ttl_s: str, index: int) -> go.Figure:
    """The widget chart: the chosen (key, policy, TTL) hit-ratio curve and a marker at the chosen size."""
    caps = explorer["capacities_bytes"]
    hit = explorer["hit_ratio"].get(key, {}).get(policy, {}).get(ttl_s, [None] * len(caps))
    bhit = explorer["byte_hit_ratio"].get(key, {}).get(policy, {}).get(ttl_s, [None] * len(caps))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=caps, y=hit, name="object hit ratio", mode="lines+markers"))
    fig.add_trace(go.Scatter(x=caps, y=bhit, name="byte hit ratio", mode="lines", line={"dash": "dot"}))
    if 0 <= index < len(caps) and hit[index] is not None:
        fig.add_trace(go.Scatter(x=[caps[index]], y=[hit[index]], name="chosen size", mode="markers",
                                 marker={"size": 14, "symbol": "diamond"}))
    ttl = "no expiry" if ttl_s == "0" else f"TTL {ttl_s} s"
    fig.update_layout(title=f"{policy} · key {key} · {ttl}", xaxis_type="log",
                      xaxis_title="capacity (bytes, log scale)",
                      yaxis_title="hit ratio", yaxis_range=[0, 1])
    return fig


def _color(i: int) -> str:
    from kit.viz import PALETTE

    return PALETTE[i % len(PALETTE)]


def readout_text(explorer: dict[str, Any], key: str, policy: str, ttl_s: str, index: int) -> str:
    """The readout line the widgets show (and the browser test reads)."""
    caps = explorer["capacities_bytes"]
    hit = explorer["hit_ratio"].get(key, {}).get(policy, {}).get(ttl_s, [None] * len(caps))[index]
    bhit = explorer["byte_hit_ratio"].get(key, {}).get(policy, {}).get(ttl_s, [None] * len(caps))[index]
    expiry = "no expiry" if ttl_s == "0" else f"TTL {ttl_s} s"
    where = f"{policy} at {fmt.size(caps[index])}, key {key}, {expiry}"
    if hit is None:
        return f"{where}: not simulated (policies and TTLs are simulated for the main key; TTLs for LRU)"
    return f"{where}: hit ratio {fmt.pct(hit, 1)}, byte hit ratio {fmt.pct(bhit, 1)}"


def cache_explorer(explorer: dict[str, Any], static: bool = False) -> Any:
    """ipywidgets UI over the precomputed grid: size slider, policy, TTL and key dropdowns, a readout
    (``.perfkit-cache-readout``) and the chart; nothing is simulated on change.

    ``static`` (headless runs) prints the readout and returns the chart for the middle size instead: a
    report has no kernel to drive the widgets, and an Output widget can stall papermill's kernel client."""
    import html

    if static:
        middle = len(explorer["capacities_bytes"]) // 2
        print(readout_text(explorer, explorer["main_key"], "lru", "0", middle)
              + " (open the notebook in JupyterLab to explore other sizes, policies, TTLs and keys)")
        return plot_explorer(explorer, explorer["main_key"], "lru", "0", middle)

    import ipywidgets as w
    from IPython.display import display

    caps = explorer["capacities_bytes"]
    main = explorer["main_key"]
    size = w.IntSlider(value=len(caps) // 2, min=0, max=len(caps) - 1, step=1, description="size step",
                       continuous_update=True, readout=False, layout=w.Layout(width="420px"))
    size_label = w.Label(fmt.size(caps[size.value]))
    policy = w.Dropdown(options=explorer["policies"], value="lru", description="policy")
    ttl = w.Dropdown(options=[("no expiry" if t == "0" else f"{t} s", t) for t in explorer["ttls_s"]], value="0",
                     description="TTL")
    key = w.Dropdown(options=explorer["keys"], value=main, description="key")
    readout = w.HTML()
    readout.add_class("perfkit-cache-readout")
    chart = w.Output()

    def refresh(_: Any = None) -> None:
        size_label.value = fmt.size(caps[size.value])
        text = readout_text(explorer, key.value, policy.value, ttl.value, size.value)
        readout.value = f"<b class='perfkit-readout-text'>{html.escape(text)}</b>"
        chart.clear_output(wait=True)
        with chart:
            display(plot_explorer(explorer, key.value, policy.value, ttl.value, size.value))

    for control in (size, policy, ttl, key):
        control.observe(refresh, names="value")
    refresh()
    return w.VBox([w.HBox([size, size_label]), w.HBox([policy, ttl, key]), readout, chart])
