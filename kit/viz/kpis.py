"""Figures for notebook 10 (KPIs) and the monitoring dashboards.

Every ``plot_*`` takes a ``KpiReport`` or its saved JSON (``results["kpis"]``) and returns a plotly
Figure; the same functions draw the notebook charts and the static images of the documents."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kit import fmt
from kit.results import to_jsonable
from kit.viz import TIME_AXIS

__all__ = [
    "as_dict", "frame", "plot_overview", "plot_service_red", "plot_service_latency", "plot_route_drilldown",
    "plot_route_latency", "plot_latency_heatmap", "plot_latency_histogram", "plot_saturation_latency",
    "plot_comparison",
]


def as_dict(report: Any) -> dict[str, Any]:
    """The report as plain JSON values (a KpiReport goes through ``to_jsonable``, the saved shape; a loaded
    dict is returned as is)."""
    return report if isinstance(report, dict) else to_jsonable(report)


def frame(report: Any, key: str) -> pd.DataFrame:
    """One list of the report (``by_service``, ``series_overall``, ``heatmap`` …) as a DataFrame,
    with ``bucket_start`` parsed to UTC timestamps; a list of records or a {column: values} dict."""
    rows = as_dict(report).get(key) or []
    df = pd.DataFrame(rows)
    if "bucket_start" in df:
        df["bucket_start"] = pd.to_datetime(df["bucket_start"], utc=True)
    return df


def _bucket_label(r: dict[str, Any], key: str) -> str:
    """The bucket of a series as 5m / 1h / 1d (the requested ``bucket`` when the report predates ``key``)."""
    seconds = r.get(key)
    if not seconds:
        return str(r.get("bucket", ""))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _axis_label(column: str) -> str:
    """An axis title for a KPI column: ``p95_ms`` → "p95 latency (ms)", ``error_rate_5xx`` → "5xx error rate"."""
    if column.endswith("_ms"):
        return f"{column.removesuffix('_ms')} latency (ms)"
    return {"rate_rps": "requests/s", "error_rate_5xx": "5xx error rate", "error_rate_4xx": "4xx error rate",
            "apdex": "Apdex"}.get(column, column.replace("_", " "))


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False)
    return fig


def _lines_per_group(df: pd.DataFrame, column: str, legend: str, title: str, empty_title: str) -> go.Figure:
    """One line per ``group`` of ``column`` over ``bucket_start`` (log y for ``*_ms`` columns)."""
    if df.empty:
        return _empty(empty_title, "no requests")
    fig = px.line(df, x="bucket_start", y=column, color="group", title=title)
    fig.update_layout(xaxis_title=TIME_AXIS, yaxis_title=_axis_label(column), legend_title=legend)
    if column.endswith("_ms"):
        fig.update_yaxes(type="log")
    return fig


def plot_overview(report: Any) -> go.Figure:
    """Overall request rate, error rates (5xx and 4xx) and latency percentiles per time bucket."""
    r = as_dict(report)
    df = frame(r, "series_overall")
    if df.empty:
        return _empty("Overview", "no requests in the window")
    df["error_rate_4xx"] = df["errors_4xx"] / df["requests"]
    timed = bool(df["p50_ms"].notna().any())  # a log without request times has no latency panel
    titles = ("request rate (req/s)", "error rate", "latency (ms)")[:3 if timed else 2]
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=titles)
    fig.add_scatter(x=df["bucket_start"], y=df["rate_rps"], name="req/s", row=1, col=1)
    fig.add_scatter(x=df["bucket_start"], y=df["error_rate_5xx"], name="5xx", row=2, col=1)
    fig.add_scatter(x=df["bucket_start"], y=df["error_rate_4xx"], name="4xx", row=2, col=1)
    for col in ("p50_ms", "p95_ms", "p99_ms") if timed else ():
        fig.add_scatter(x=df["bucket_start"], y=df[col], name=col.removesuffix("_ms"), row=3, col=1)
    fig.update_yaxes(title_text="req/s", row=1, col=1)
    fig.update_yaxes(tickformat=".1%", title_text="share", row=2, col=1)
    if timed:
        fig.update_yaxes(type="log", title_text="ms (log)", row=3, col=1)
    fig.update_xaxes(title_text=TIME_AXIS, row=len(titles), col=1)
    fig.update_layout(title=f"Overview: RED per {_bucket_label(r, 'series_bucket_seconds')} bucket",
                      height=650 if timed else 450)
    return fig


def plot_service_red(report: Any) -> go.Figure:
    """Per service: p50/p95/p99 latency bars and the 5xx error rate."""
    df = frame(report, "by_service")
    if df.empty:
        return _empty("Per service", "no services")
    timed = bool(df["p50_ms"].notna().any())
    fig = make_subplots(rows=1, cols=2 if timed else 1,
                        subplot_titles=("latency (ms)", "5xx error rate") if timed else ("5xx error rate",))
    for col in ("p50_ms", "p95_ms", "p99_ms") if timed else ():
        fig.add_bar(x=df["group"], y=df[col], name=col.removesuffix("_ms"), row=1, col=1)
    fig.add_bar(x=df["group"], y=df["error_rate_5xx"], name="5xx rate", row=1, col=2 if timed else 1,
                showlegend=False)
    fig.update_yaxes(tickformat=".2%", title_text="5xx error rate", row=1, col=2 if timed else 1)
    if timed:
        fig.update_yaxes(title_text="latency (ms)", row=1, col=1)
    fig.update_xaxes(title_text="service")
    fig.update_layout(title="Per service: latency percentiles and 5xx error rate", barmode="group",
                      hovermode="closest")
    return fig


def plot_service_latency(report: Any, column: str = "p95_ms") -> go.Figure:
    """One line per service: ``column`` (p50_ms, p95_ms, p99_ms, rate_rps, error_rate_5xx) per bucket."""
    title = f"Per service: {column} per {_bucket_label(as_dict(report), 'service_series_bucket_seconds')} bucket"
    return _lines_per_group(frame(report, "series_by_service"), column, "service", title, "Per service")


def plot_route_drilldown(report: Any, top_n: int = 30) -> go.Figure:
    """Routes by traffic (x, log) against p99 latency (y, log); colour = 5xx error rate, size = time share."""
    df = frame(report, "by_route")
    if df.empty:
        return _empty("Per route", "no routes")
    df = df.nlargest(top_n, "requests").copy()
    df["time_ms"] = df["requests"] * df["mean_ms"].fillna(0)
    df["label"] = df["service"].fillna("") + " " + df["group"]
    fig = px.scatter(df, x="requests", y="p99_ms", color="error_rate_5xx", size="time_ms", hover_name="label",
                     hover_data=["p50_ms", "p95_ms", "error_rate_4xx", "apdex"], log_x=True, log_y=True,
                     color_continuous_scale="Reds", title=f"Per route drill-down: top {len(df)} routes by traffic")
    fig.update_layout(hovermode="closest", coloraxis_colorbar_tickformat=".1%", coloraxis_colorbar_title="5xx rate",
                      xaxis_title="requests in the window (log scale)", yaxis_title="p99 latency (ms, log scale)")
    return fig


def plot_route_latency(report: Any, column: str = "p95_ms") -> go.Figure:
    """The busiest routes' ``column`` per bucket, one line per route."""
    minutes = as_dict(report).get("route_series_bucket_seconds", 0) / 60
    return _lines_per_group(frame(report, "series_by_route"), column, "route",
                            f"Busiest routes: {column} per {minutes:g}-minute bucket", "Per route")


def plot_latency_heatmap(report: Any) -> go.Figure:
    """Requests per (time bucket × log-spaced latency bin): where the latency distribution moves."""
    r = as_dict(report)
    df = frame(r, "heatmap")
    if df.empty:
        return _empty("Latency heatmap", "no latency values")
    grid = df.pivot_table(index="lo_ms", columns="bucket_start", values="count", aggfunc="sum", fill_value=0)
    fig = go.Figure(go.Heatmap(x=grid.columns, y=[fmt.num(v) for v in grid.index], z=grid.values,
                               colorscale="Viridis", colorbar={"title": "requests"}))
    minutes = r["heatmap_bucket_seconds"] / 60
    fig.update_layout(title=f"Latency heatmap ({minutes:g}-minute columns, log-spaced latency bins)",
                      yaxis_title="latency ≥ (ms)", xaxis_title=TIME_AXIS, hovermode="closest")
    return fig


def plot_latency_histogram(report: Any) -> go.Figure:
    """Latency distribution per service (share of each service's requests per log-spaced bin)."""
    df = frame(report, "histogram")
    if df.empty:
        return _empty("Latency histogram", "no latency values")
    df = df.copy()
    df["share"] = df["count"] / df.groupby("group")["count"].transform("sum")
    fig = px.line(df, x="lo_ms", y="share", color="group", log_x=True, line_shape="hv",
                  title="Latency distribution (share of requests per bin)")
    fig.update_layout(xaxis_title="latency (ms, log scale)", yaxis_title="share of the service's requests",
                      yaxis_tickformat=".1%", hovermode="closest", legend_title="service")
    return fig


def plot_saturation_latency(report: Any) -> go.Figure:
    """Each utilization/saturation metric's bucket mean (x) against the bucket's p95 latency (y)."""
    df = frame(report, "saturation_latency")
    if df.empty:
        return _empty("Saturation vs latency", "no utilization or saturation metrics in the warehouse")
    fig = px.scatter(df, x="value", y="p95_ms", facet_col="metric", facet_col_wrap=3, log_y=True,
                     title="Saturation against latency (one point per bucket)", opacity=0.5)
    fig.update_xaxes(matches=None, title=None)
    fig.update_yaxes(tickformat="~s", title=None)
    fig.for_each_annotation(lambda a: a.update(text=a.text.removeprefix("metric=")))
    fig.update_layout(hovermode="closest", yaxis_title="p95 latency (ms)", xaxis_title="metric value (bucket mean)")
    return fig


def plot_comparison(report: Any) -> go.Figure:
    """Headline KPIs: change in percent against the previous period (green = better, red = worse)."""
    r = as_dict(report)
    rows = [row for row in r["comparison"]["rows"] if row["change_pct"] is not None]
    if not rows:
        return _empty("Period over period", "no previous period with data")
    df = pd.DataFrame(rows)
    colors = {"better": "#16a34a", "worse": "#dc2626", "same": "#9ca3af", "n/a": "#9ca3af"}
    fig = go.Figure(go.Bar(x=df["change_pct"], y=df["name"], orientation="h",
                           marker_color=[colors[v] for v in df["verdict"]]))
    fig.update_layout(title=f"Period over period ({r['comparison']['basis']})", xaxis_title="change (%)",
                      yaxis={"autorange": "reversed", "title": "KPI"}, hovermode="closest")
    return fig
