"""A finding's evidence for people: a table of findings, and the data behind each finding's charts (its
series around the change, request samples before and after, the events in view; never ``incident`` rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import duckdb

from kit.analysis.findings import series as _series
from kit.analysis.findings.model import Finding, Findings
from kit.analysis.window import Window

_RANK = {"low": 0, "medium": 1, "high": 2}


def findings_frame(found: Findings, min_confidence: str = "low") -> Any:
    """One row per finding (what, where, when, how much, top cause) as a pandas DataFrame."""
    import pandas as pd

    rows = []
    for f in found.items:
        if _RANK[f.confidence] < _RANK[min_confidence]:
            continue
        top = f.causes[0]
        rows.append({"confidence": f.confidence, "kind": f.kind,
                     "scope": " ".join(f"{k}={v}" for k, v in f.scope.items()),
                     "onset": f.onset.strftime("%Y-%m-%d %H:%M:%S"),
                     "end": f.end.strftime("%Y-%m-%d %H:%M:%S") if f.end else "(ongoing)",
                     "before": f.before, "after": f.after, "effect": f.effect,
                     "ci95_low": f.ci_low, "ci95_high": f.ci_high, "unit": f.effect_unit,
                     "cost_share": f.cost_share, "cause": f"{top.kind}: {top.detail}"[:90],
                     "cause_strength": top.strength})
    return pd.DataFrame(rows)


def findings_table(found: Findings, min_confidence: str = "low") -> str:
    """The findings as a fixed-width text table (the CLI's default output)."""
    import pandas as pd

    frame = findings_frame(found, min_confidence)
    if frame.empty:
        return "No findings" + (f" at {min_confidence} confidence or above." if min_confidence != "low" else ".")
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 90,
                           "display.float_format", "{:.4g}".format):
        return str(frame.to_string(index=False))


EVENTS_OVERLAY_SQL = """
SELECT ts_start, ts_end, kind, service, route, what FROM events
WHERE kind <> 'incident' AND ts_start < ? AND coalesce(ts_end, ts_start) >= ?
ORDER BY ts_start"""


@dataclass(frozen=True)
class FindingEvidence:
    """What a finding's charts show: ``series`` (bucket_start, value) of its metric and scope
    around it, request-level ``before``/``after`` samples (latency findings; empty otherwise) and the
    non-incident ``events`` in view."""

    finding: Finding
    value_label: str
    series: Any
    before: Any
    after: Any
    events: Any


def window_events(con: duckdb.DuckDBPyConnection, window: Window) -> Any:
    """Deploys, config changes and other events in the window (never ``incident`` rows)."""
    return con.execute(EVENTS_OVERLAY_SQL, [window.end, window.start]).df()


def finding_evidence(con: duckdb.DuckDBPyConnection, window: Window, finding: Finding) -> FindingEvidence:
    """The data behind a finding's charts, from its own SQL (series restricted to its scope)."""
    import pandas as pd

    bucket_s = finding.bucket_s
    length = ((finding.end or window.end) - finding.onset).total_seconds()
    margin = timedelta(seconds=max(6 * 3600, 3 * length, 24 * bucket_s))
    view = Window(max(window.start, finding.onset - margin), min(window.end, (finding.end or window.end) + margin))
    value = {"latency_shift": "exp(sum(s_ln) / nullif(sum(n_lat), 0))", "saturation": "sum(n5xx) / sum(n)"
             if finding.metric.startswith("5xx") else "exp(sum(s_ln) / nullif(sum(n_lat), 0))",
             "variance_change": "sqrt(greatest(sum(s_ln2) / nullif(sum(n_lat), 0) - "
                                "pow(sum(s_ln) / nullif(sum(n_lat), 0), 2), 0))",
             "error_burst": "sum(n5xx) / sum(n)", "cache_hit_drop": "sum(n_hit) / nullif(sum(n_cache), 0)",
             "throughput_change": "sum(n)"}.get(finding.kind, "sum(n)")
    label = {"latency_shift": "geometric mean latency (ms)", "variance_change": "sd of ln latency",
             "error_burst": "5xx share", "cache_hit_drop": "hit ratio",
             "throughput_change": f"requests per {bucket_s} s"}.get(finding.kind, finding.metric)
    if finding.kind == "saturation":
        label = "5xx share" if finding.metric.startswith("5xx") else "geometric mean latency (ms)"
    scope = {k: v for k, v in finding.scope.items() if k in ("service", "route")}
    origin = _series.bucket_origin(view, bucket_s)
    sql = (f"SELECT to_timestamp({origin} + b * {bucket_s}) AS bucket_start, {value} AS value "
           f"FROM ({_series.series_sql(view, bucket_s, ())}) WHERE {_series.scope_sql(scope)} GROUP BY b ORDER BY b")
    series = con.execute(sql).df()
    before = after = pd.DataFrame({"latency_ms": []})
    if "latency_ms" in finding.sql.get("after", ""):
        before = con.execute(finding.sql["before"]).df()
        after = con.execute(finding.sql["after"]).df()
    return FindingEvidence(finding, label, series, before, after, window_events(con, view))
