"""SLOs and error budgets: the SLO model, Sloth / OpenSLO spec loading, SLIs over the warehouse.

An SLO is an objective (a ratio in (0, 1)) for an SLI over a rolling window (``window_days``):

- availability SLI: share of requests with status < 500 (Occurrences budgeting), or of time slices whose
  good-request share reaches ``timeslice_target`` (Timeslices budgeting);
- latency SLI: share of requests faster than ``latency_threshold_ms``.

Specs come from the run parameters (``slos_from_parameters``) or from spec files
(``load_slo_specs``): Sloth ``prometheus/v1`` (objective in percent, SLI as PromQL ``events`` or ``raw``
error ratio, period 30 days unless given) and OpenSLO ``v1alpha`` (``ratioMetrics``) / ``v1``
(``ratioMetric`` / ``thresholdMetric``, ``timeWindow``, ``budgetingMethod``).

Budgets when the history is shorter than the window (the demo has 7 days, the window is 30): the
budget of a window is ``(1 - objective) x`` the events the window would hold at the history's mean
traffic rate (``total x window / history``); so a burn rate of 1 sustained over 7 days consumes 7/30
of the budget, and ``consumed`` is the share of the *window's* budget that the history used. Once the
history is at least one window long, the burn-down is the exact rolling window. Timeslices budgets
count slices: ``(1 - objective) x window / slice``, with empty slices counted as good.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import yaml

from kit.errors import DataError, ParameterError, SloSpecError

__all__ = [
    "AlertingSpec", "BurnPoint", "SloReport", "SloSpec", "SloSpecError", "SloStatus", "TargetProposal",
    "budget_note", "budget_series", "default_queries", "evaluate_slo", "format_duration", "history_bounds",
    "load_slo_specs", "minute_series", "parse_duration_s", "propose_target", "saturation_candidates",
    "saturation_minutes", "sli_sql", "slo_report", "slos_from_parameters", "write_rule_files",
]

DEFAULT_PERIOD_DAYS = 30.0
TARGET_LADDER = (0.5, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995, 0.99999)


@dataclass(frozen=True)
class AlertingSpec:
    """Sloth-style alerting options of one SLO (names, labels, annotations of page and ticket alerts)."""

    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    page_labels: dict[str, str] = field(default_factory=dict)
    page_annotations: dict[str, str] = field(default_factory=dict)
    page_disabled: bool = False
    ticket_labels: dict[str, str] = field(default_factory=dict)
    ticket_annotations: dict[str, str] = field(default_factory=dict)
    ticket_disabled: bool = False


@dataclass(frozen=True)
class SloSpec:
    """One SLO. ``objective`` is a ratio; ``objective_percent`` keeps the percent form Sloth computes
    with (so generated thresholds match Sloth's floats). PromQL queries hold ``{{.window}}``."""

    name: str
    service: str
    objective: float
    objective_percent: float
    window_days: float = DEFAULT_PERIOD_DAYS
    sli_kind: str = "availability"            # availability | latency | raw
    error_query: str | None = None            # PromQL, bad events per second over {{.window}}
    total_query: str | None = None            # PromQL, all events per second over {{.window}}
    error_ratio_query: str | None = None      # PromQL, error ratio over {{.window}} (raw SLIs)
    latency_threshold_ms: float | None = None
    budgeting_method: str = "Occurrences"     # Occurrences | Timeslices | RatioTimeslices
    timeslice_window_s: float | None = None
    timeslice_target: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    alerting: AlertingSpec = field(default_factory=AlertingSpec)
    description: str = ""
    source: str = "parameters"                # spec file path, or "parameters"
    spec_version: str = "parameters"          # prometheus/v1, openslo/v1alpha, openslo/v1, parameters
    objective_source: str = "given"           # given | spec | proposed
    proposal_note: str = ""
    warehouse_service: str | None = None      # service filter on requests (None = all services)
    evaluable: bool = True                    # can the SLI be computed from the requests table?

    @property
    def slo_id(self) -> str:
        """Sloth's id: ``<service>-<slo name>``."""
        return f"{self.service}-{self.name}"

    @property
    def error_budget_ratio(self) -> float:
        """1 - objective, computed from the percent form like Sloth: (100 - percent) / 100."""
        return (100.0 - self.objective_percent) / 100.0


@dataclass(frozen=True)
class TargetProposal:
    """A target proposed from the history, with the numbers it rests on."""

    target: float
    basis: str
    achieved: float | None
    typical_day_error_ratio: float | None


@dataclass(frozen=True)
class BurnPoint:
    """One point of a burn-down: share of the window's error budget consumed/remaining at ``ts``."""

    ts: datetime
    consumed_ratio: float
    remaining_ratio: float
    burn_rate_1h: float | None


@dataclass(frozen=True)
class SloStatus:
    """An SLO evaluated over the history: SLI achieved, error budget, consumed and remaining."""

    name: str
    service: str
    slo_id: str
    sli_kind: str
    sli: dict[str, Any]
    objective: float
    objective_source: str
    proposal_note: str
    window_days: float
    budgeting_method: str
    timeslice_window_s: float | None
    timeslice_target: float | None
    latency_threshold_ms: float | None
    total_events: int
    bad_events: int
    achieved: float | None
    error_budget_ratio: float
    budget_events: float | None
    consumed_ratio: float | None
    remaining_ratio: float | None
    mean_burn_rate: float | None
    history_days: float
    source: str
    burndown: tuple[BurnPoint, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class SloReport:
    """What notebook 20 saves as ``slo``: SLOs, alert plan, backtest and the written rule files."""

    window_days: float
    history: dict[str, Any]
    budget_note: str
    slos: tuple[SloStatus, ...]
    alerts: Any
    backtest: Any
    rules_file: str = ""
    rules_test_file: str = ""
    promtool: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- durations

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|M|Q|y|Y)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400,
           "Q": 90 * 86400, "y": 365 * 86400, "Y": 365 * 86400}
_OPENSLO_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400,
                  "month": 30 * 86400, "quarter": 90 * 86400, "year": 365 * 86400}


def parse_duration_s(text: str | int | float) -> float:
    """Seconds in a duration such as ``5m``, ``1h``, ``30d``, ``2w`` (OpenSLO ``M`` = 30 days)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise SloSpecError(f"not a duration (like 5m, 1h, 30d, 2w): {text!r}")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def format_duration(seconds: float) -> str:
    """Prometheus duration text for whole seconds: 300 → 5m, 86400 → 1d (largest exact unit)."""
    seconds = int(round(seconds))
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size and unit != "w":
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --------------------------------------------------------------------------------------------- spec files

def _line_of(text: str, path: list[str | int]) -> int | None:
    """1-based line of the node at ``path`` in a YAML document (first document), if found."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in path:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


class _Doc:
    """One YAML document of a spec file, with error messages naming file, line and field."""

    def __init__(self, path: str, text: str, data: Any, offset_line: int) -> None:
        self.path, self.text, self.data, self.offset = path, text, data, offset_line

    def error(self, where: list[str | int], message: str) -> SloSpecError:
        line = _line_of(self.text, where)
        at = f"{self.path}:{self.offset + line}" if line else self.path
        fieldname = ".".join(str(p) for p in where) or "(document)"
        return SloSpecError(f"{at}: field '{fieldname}': {message}")

    def get(self, where: list[str | int], required: bool = True, kind: type | tuple[type, ...] | None = None
            ) -> Any:
        node: Any = self.data
        for i, key in enumerate(where):
            if isinstance(key, int):
                if not isinstance(node, list) or key >= len(node):
                    if required:
                        raise self.error(where[:i], "expected a list")
                    return None
                node = node[key]
            else:
                if not isinstance(node, dict):
                    raise self.error(where[:i], "expected a mapping")
                if key not in node:
                    if required:
                        raise self.error(where[:i], f"missing required field '{key}'")
                    return None
                node = node[key]
        if kind is not None and node is not None and not isinstance(node, kind):
            raise self.error(where, f"expected {getattr(kind, '__name__', kind)}, got {type(node).__name__}")
        return node


def _split_documents(path: str, text: str) -> list[_Doc]:
    docs: list[_Doc] = []
    # Split on document markers while keeping line offsets, so errors point at the right line.
    chunks: list[tuple[int, list[str]]] = [(0, [])]
    for i, line in enumerate(text.splitlines()):
        if line.strip() == "---":
            chunks.append((i + 1, []))
        else:
            chunks[-1][1].append(line)
    for offset, lines in chunks:
        chunk = "\n".join(lines)
        try:
            data = yaml.safe_load(chunk)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = offset + mark.line + 1 if mark is not None else offset + 1
            raise SloSpecError(f"{path}:{at}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
        if data is not None:
            docs.append(_Doc(path, chunk, data, offset))
    return docs


def _str_map(doc: _Doc, where: list[str | int]) -> dict[str, str]:
    value = doc.get(where, required=False)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(where, "expected a mapping of label names to values")
    return {str(k): str(v) for k, v in value.items()}


def _objective_percent(doc: _Doc, where: list[str | int], value: Any, percent: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise doc.error(where, f"objective must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise doc.error(where, f"objective must be a number, got {value!r}") from None
    if percent:
        if not 0 < number < 100:
            raise doc.error(where, f"objective must be a percent in (0, 100), got {number}")
        return number
    if not 0 < number < 1:
        raise doc.error(where, f"target must be a ratio in (0, 1), got {number}")
    return number * 100.0


def _infer_kind(error_query: str | None) -> tuple[str, float | None]:
    """Availability or latency from a PromQL error query: a ``le="x"`` bucket means latency (x s)."""
    if not error_query:
        return "raw", None
    le = re.search(r'le\s*=\s*"([0-9.eE+-]+)"', error_query)
    if le:
        return "latency", float(le.group(1)) * 1000.0
    if re.search(r"code|status", error_query):
        return "availability", None
    return "raw", None


def _sloth_doc(doc: _Doc, period_days: float) -> list[SloSpec]:
    service = doc.get(["service"], kind=str)
    labels = _str_map(doc, ["labels"])
    slos = doc.get(["slos"], kind=list)
    out: list[SloSpec] = []
    for i, _ in enumerate(slos):
        base: list[str | int] = ["slos", i]
        name = doc.get([*base, "name"], kind=str)
        percent = _objective_percent(doc, [*base, "objective"], doc.get([*base, "objective"]), percent=True)
        sli = doc.get([*base, "sli"], kind=dict)
        error_query = total_query = ratio_query = None
        if "events" in sli:
            error_query = doc.get([*base, "sli", "events", "error_query"], kind=str)
            total_query = doc.get([*base, "sli", "events", "total_query"], kind=str)
        elif "raw" in sli:
            ratio_query = doc.get([*base, "sli", "raw", "error_ratio_query"], kind=str)
        elif "plugin" in sli:
            raise doc.error([*base, "sli", "plugin"], "SLI plugins are not supported; use events or raw")
        else:
            raise doc.error([*base, "sli"], "expected 'events' (error_query, total_query) or 'raw'")
        kind, threshold_ms = _infer_kind(error_query)
        alerting = doc.get([*base, "alerting"], required=False) or {}
        a = [*base, "alerting"]
        spec = AlertingSpec(
            name=str(alerting.get("name", "")),
            labels=_str_map(doc, [*a, "labels"]),
            annotations=_str_map(doc, [*a, "annotations"]),
            page_labels=_str_map(doc, [*a, "page_alert", "labels"]),
            page_annotations=_str_map(doc, [*a, "page_alert", "annotations"]),
            page_disabled=bool((alerting.get("page_alert") or {}).get("disable", False)),
            ticket_labels=_str_map(doc, [*a, "ticket_alert", "labels"]),
            ticket_annotations=_str_map(doc, [*a, "ticket_alert", "annotations"]),
            ticket_disabled=bool((alerting.get("ticket_alert") or {}).get("disable", False)),
        )
        out.append(SloSpec(
            name=name, service=service, objective=percent / 100.0, objective_percent=percent,
            window_days=period_days, sli_kind=kind, error_query=error_query, total_query=total_query,
            error_ratio_query=ratio_query, latency_threshold_ms=threshold_ms,
            labels={**labels, **_str_map(doc, [*base, "labels"])}, alerting=spec,
            description=str(doc.get([*base, "description"], required=False) or ""),
            source=doc.path, spec_version="prometheus/v1", objective_source="spec",
            evaluable=kind != "raw",
        ))
    return out


def _openslo_window_days(doc: _Doc, version: str) -> tuple[float, bool]:
    if version == "openslo/v1alpha":
        windows = doc.get(["spec", "timeWindows"], required=False)
        if not windows:
            return DEFAULT_PERIOD_DAYS, True
        count = doc.get(["spec", "timeWindows", 0, "count"])
        unit = str(doc.get(["spec", "timeWindows", 0, "unit"])).lower()
        if unit not in _OPENSLO_UNITS:
            raise doc.error(["spec", "timeWindows", 0, "unit"], f"unknown unit {unit!r}")
        rolling = bool(doc.get(["spec", "timeWindows", 0, "isRolling"], required=False) or True)
        return float(count) * _OPENSLO_UNITS[unit] / 86400.0, rolling
    windows = doc.get(["spec", "timeWindow"], required=False)
    if not windows:
        return DEFAULT_PERIOD_DAYS, True
    duration = doc.get(["spec", "timeWindow", 0, "duration"])
    try:
        seconds = parse_duration_s(duration)
    except ValueError as exc:
        raise doc.error(["spec", "timeWindow", 0, "duration"], str(exc)) from None
    rolling = doc.get(["spec", "timeWindow", 0, "isRolling"], required=False)
    return seconds / 86400.0, bool(rolling) if rolling is not None else True


def _openslo_query(doc: _Doc, where: list[str | int]) -> str | None:
    node = doc.get(where, required=False)
    if not isinstance(node, dict):
        return None
    if "query" in node:
        return str(node["query"])
    spec = node.get("metricSource", {}).get("spec") if isinstance(node.get("metricSource"), dict) else None
    if isinstance(spec, dict) and "query" in spec:
        return str(spec["query"])
    return None


def _openslo_doc(doc: _Doc, version: str) -> list[SloSpec]:
    kind = doc.get(["kind"], kind=str)
    if kind != "SLO":
        return []
    meta_name = doc.get(["metadata", "name"], kind=str)
    service = doc.get(["spec", "service"], kind=str)
    method = str(doc.get(["spec", "budgetingMethod"], required=False) or "Occurrences")
    if method not in ("Occurrences", "Timeslices", "RatioTimeslices"):
        raise doc.error(["spec", "budgetingMethod"], f"must be Occurrences, Timeslices or RatioTimeslices, "
                                                     f"got {method!r}")
    window_days, rolling = _openslo_window_days(doc, version)
    objectives = doc.get(["spec", "objectives"], kind=list)
    out: list[SloSpec] = []
    for i, objective in enumerate(objectives):
        base: list[str | int] = ["spec", "objectives", i]
        if not isinstance(objective, dict):
            raise doc.error(base, "expected a mapping")
        target = objective.get("target", objective.get("targetPercent"))
        if target is None:
            raise doc.error(base, "missing required field 'target'")
        percent = _objective_percent(doc, [*base, "target"], target, percent="targetPercent" in objective)
        kind_name, threshold_ms = "availability", None
        good = bad = total = None
        if version == "openslo/v1alpha":
            good = _openslo_query(doc, [*base, "ratioMetrics", "good"])
            bad = _openslo_query(doc, [*base, "ratioMetrics", "bad"])
            total = _openslo_query(doc, [*base, "ratioMetrics", "total"])
            if "value" in objective and total is None:
                kind_name, threshold_ms = "latency", float(objective["value"])
        else:
            indicator: list[str | int] = ["spec", "indicator", "spec"]
            if doc.get([*indicator, "ratioMetric"], required=False) is not None:
                good = _openslo_query(doc, [*indicator, "ratioMetric", "good"])
                bad = _openslo_query(doc, [*indicator, "ratioMetric", "bad"])
                total = _openslo_query(doc, [*indicator, "ratioMetric", "total"])
            elif doc.get([*indicator, "thresholdMetric"], required=False) is not None:
                kind_name = "latency"
                value = objective.get("value")
                if value is None:
                    raise doc.error(base, "a thresholdMetric objective needs 'value' (the threshold)")
                threshold_ms = float(value)
            else:
                raise doc.error(indicator, "expected ratioMetric or thresholdMetric")
        ratio_query = None
        if total is not None and (good is not None or bad is not None):
            # Sloth's OpenSLO conversion: error ratio = 1 - good/total (or bad/total).
            if good is not None:
                ratio_query = f"1 - (\n  (\n    {good}\n  )\n  /\n  (\n    {total}\n  )\n)\n"
            else:
                ratio_query = f"(\n  {bad}\n)\n/\n(\n  {total}\n)\n"
        slice_s = objective.get("timeSliceWindow")
        out.append(SloSpec(
            name=f"{meta_name}-{i}" if version == "openslo/v1alpha" else
            (meta_name if len(objectives) == 1 else f"{meta_name}-{i}"),
            service=service, objective=percent / 100.0, objective_percent=percent,
            window_days=window_days, sli_kind=kind_name, error_ratio_query=ratio_query,
            latency_threshold_ms=threshold_ms, budgeting_method=method,
            timeslice_window_s=parse_duration_s(slice_s) if slice_s is not None else None,
            timeslice_target=(float(objective["timeSliceTarget"]) if "timeSliceTarget" in objective
                              else (percent / 100.0 if method == "RatioTimeslices" else None)),
            description=str(doc.get(["spec", "description"], required=False) or ""),
            source=doc.path, spec_version=version, objective_source="spec",
            proposal_note="" if rolling else "calendar window in the spec; evaluated as a rolling window",
        ))
    return out


def load_slo_specs(path: str | Path, *, period_days: float | None = None) -> list[SloSpec]:
    """Every SLO in a Sloth ``prometheus/v1`` or OpenSLO ``v1alpha``/``v1`` file (multi-document YAML).

    ``period_days`` sets the Sloth SLO period (Sloth's default: 30 days); OpenSLO files carry their own."""
    text = Path(path).read_text()
    out: list[SloSpec] = []
    for doc in _split_documents(str(path), text):
        if not isinstance(doc.data, dict):
            raise doc.error([], "expected a mapping (a Sloth or OpenSLO document)")
        version = doc.data.get("version") or doc.data.get("apiVersion")
        if version == "prometheus/v1":
            out.extend(_sloth_doc(doc, period_days or DEFAULT_PERIOD_DAYS))
        elif version in ("openslo/v1alpha", "openslo/v1"):
            out.extend(_openslo_doc(doc, str(version)))
        else:
            raise doc.error(["version" if "version" in doc.data else "apiVersion"],
                            f"unsupported spec version {version!r} (expected prometheus/v1, openslo/v1alpha "
                            "or openslo/v1)")
    return out


# --------------------------------------------------------------------------------------------- warehouse

def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sli_sql(spec: SloSpec) -> str:
    """DuckDB SQL of the SLI's per-request badness: a boolean expression over ``requests``."""
    if spec.sli_kind == "latency":
        return f"latency_ms > {float(spec.latency_threshold_ms or 0.0)!r}"
    return "status >= 500"


def _where(spec: SloSpec, start: datetime, end: datetime) -> str:
    clause = f"ts >= TIMESTAMPTZ '{start.isoformat()}' AND ts < TIMESTAMPTZ '{end.isoformat()}'"
    if spec.warehouse_service:
        clause += f" AND service = {_q(spec.warehouse_service)}"
    if spec.sli_kind == "latency":
        clause += " AND latency_ms IS NOT NULL"
    return clause


def history_bounds(con: duckdb.DuckDBPyConnection, start: str | None = None, end: str | None = None
                   ) -> tuple[datetime, datetime]:
    """The analysed history [start, end) in UTC; defaults: first request, last request + 1 ms, both
    aligned outwards to whole minutes."""
    row = con.execute("SELECT min(ts), max(ts) FROM requests").fetchone()
    if row is None or row[0] is None:
        from kit.analysis.coverage import NEEDS

        raise DataError(f"nothing to evaluate SLOs on. {NEEDS['requests'].sentence()}")
    first = _parse(start) or row[0].astimezone(UTC)
    last = _parse(end) or (row[1].astimezone(UTC) + timedelta(milliseconds=1))
    first = first.replace(second=0, microsecond=0)
    if last.second or last.microsecond:
        last = last.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if last <= first:
        raise ParameterError(f"end ({last.isoformat()}) must be after start ({first.isoformat()})")
    return first, last


def _parse(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def minute_series(con: duckdb.DuckDBPyConnection, spec: SloSpec, start: datetime, end: datetime
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Dense per-minute (total, bad) event counts of the SLI over [start, end), as int64 arrays
    (one entry per minute, zeros where there was no traffic). Aggregation runs in DuckDB."""
    n = int((end - start).total_seconds() // 60)
    rows = con.execute(
        f"SELECT CAST(floor(epoch(ts) / 60) AS BIGINT) - {int(start.timestamp() // 60)} AS i, "
        f"count(*) AS total, count(*) FILTER (WHERE {sli_sql(spec)}) AS bad "
        f"FROM requests WHERE {_where(spec, start, end)} GROUP BY 1"
    ).fetchnumpy()
    total = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=np.int64)
    idx = np.asarray(rows["i"], dtype=np.int64)
    keep = (idx >= 0) & (idx < n)
    total[idx[keep]] = np.asarray(rows["total"], dtype=np.int64)[keep]
    bad[idx[keep]] = np.asarray(rows["bad"], dtype=np.int64)[keep]
    return total, bad


def propose_target(total: np.ndarray, bad: np.ndarray, *, headroom: float = 1.5) -> TargetProposal:
    """Propose an objective from per-minute counts: the strictest ladder target (99%, 99.5%, 99.9%, ...)
    whose error budget is at least ``headroom`` x the error ratio of a typical day (the median of daily
    error ratios; the whole history when shorter than 2 days), so a normal day uses at most 1/headroom
    (2/3) of its budget while incidents still burn it. Targets below 90% come with a warning that the
    SLI itself (e.g. the latency threshold) is probably too strict for the service; 50% is the floor."""
    days = len(total) // 1440
    if days >= 2:
        t = total[: days * 1440].reshape(days, 1440).sum(axis=1)
        b = bad[: days * 1440].reshape(days, 1440).sum(axis=1)
        ratios = b[t > 0] / t[t > 0]
        typical = float(np.percentile(ratios, 50)) if len(ratios) else None
        basis_days = f"the median of {len(ratios)} daily error ratios"
    else:
        typical = float(bad.sum() / total.sum()) if total.sum() else None
        basis_days = "the error ratio of the whole (short) history"
    achieved = float(1 - bad.sum() / total.sum()) if total.sum() else None
    if typical is None:
        return TargetProposal(0.99, "no traffic in the history: default 99%", achieved, None)
    chosen = TARGET_LADDER[0]
    for target in TARGET_LADDER:
        if typical * headroom <= (1 - target) + 1e-15:
            chosen = target
    basis = (f"proposed from the history: {basis_days} is {typical:.3g}; the strictest target whose budget "
             f"is at least {headroom:g}x that is {chosen:.5g} (achieved over the whole history: "
             f"{achieved:.5g})" if achieved is not None else "")
    if chosen < 0.9:
        basis += ("; below 90%: the SLI is probably too strict for this service (for latency, raise "
                  "latency_threshold_ms or give this service its own threshold)")
    return TargetProposal(chosen, basis, achieved, typical)


def _rolling_sum(values: np.ndarray, width: int) -> np.ndarray:
    """Sum over the last ``width`` entries ending at each index (fewer at the start)."""
    c = np.concatenate(([0], np.cumsum(values, dtype=np.float64)))
    idx = np.arange(1, len(values) + 1)
    return c[idx] - c[np.maximum(idx - width, 0)]


def _timeslice_bad(total: np.ndarray, bad: np.ndarray, slice_minutes: int, target: float) -> np.ndarray:
    """Per-minute count of bad slices ending in that minute (1 at a slice's last minute when the slice's
    good share is below ``target``; empty slices are good)."""
    n = len(total) // slice_minutes * slice_minutes
    t = total[:n].reshape(-1, slice_minutes).sum(axis=1)
    b = bad[:n].reshape(-1, slice_minutes).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        good_share = np.where(t > 0, 1 - b / np.maximum(t, 1), 1.0)
    out = np.zeros(len(total), dtype=np.int64)
    out[np.arange(slice_minutes - 1, n, slice_minutes)] = (good_share < target).astype(np.int64)
    return out


def budget_series(total: np.ndarray, bad: np.ndarray, objective: float, window_minutes: int
                  ) -> np.ndarray:
    """Share of the window's error budget consumed at the end of each minute (Occurrences).

    Before a full window of history exists, the window's events are extrapolated from the history's
    mean rate (``total.sum() / len(total)`` per minute); afterwards it is the exact rolling window."""
    budget = 1.0 - objective
    rolled_bad = _rolling_sum(bad, window_minutes)
    rolled_total = _rolling_sum(total, window_minutes)
    idx = np.arange(1, len(total) + 1)
    mean_rate = total.sum() / max(len(total), 1)
    expected = np.where(idx >= window_minutes, rolled_total, mean_rate * window_minutes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected > 0, rolled_bad / (budget * expected), 0.0)


def evaluate_slo(con: duckdb.DuckDBPyConnection, spec: SloSpec, start: datetime, end: datetime, *,
                 burndown_step_minutes: int = 60, series: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> SloStatus:
    """Evaluate one SLO over [start, end): SLI achieved, error budget, consumed/remaining, burn-down.

    ``series`` (per-minute total and bad counts) may be passed to avoid recomputing it."""
    history_days = (end - start).total_seconds() / 86400.0
    window_minutes = int(round(spec.window_days * 1440))
    sli_doc = _sli_doc(spec)
    if not spec.evaluable:
        return SloStatus(
            name=spec.name, service=spec.service, slo_id=spec.slo_id, sli_kind=spec.sli_kind, sli=sli_doc,
            objective=spec.objective, objective_source=spec.objective_source, proposal_note=spec.proposal_note,
            window_days=spec.window_days, budgeting_method=spec.budgeting_method,
            timeslice_window_s=spec.timeslice_window_s, timeslice_target=spec.timeslice_target,
            latency_threshold_ms=spec.latency_threshold_ms, total_events=0, bad_events=0, achieved=None,
            error_budget_ratio=spec.error_budget_ratio, budget_events=None, consumed_ratio=None,
            remaining_ratio=None, mean_burn_rate=None, history_days=history_days, source=spec.source,
            note="raw PromQL SLI: cannot be computed from the requests table")
    total, bad = series if series is not None else minute_series(con, spec, start, end)
    n_total, n_bad = int(total.sum()), int(bad.sum())
    achieved = 1 - n_bad / n_total if n_total else None
    budget = spec.error_budget_ratio
    if spec.budgeting_method in ("Timeslices", "RatioTimeslices"):
        slice_minutes = max(1, int(round((spec.timeslice_window_s or 60) / 60)))
        target = spec.timeslice_target if spec.timeslice_target is not None else spec.objective
        slice_bad = _timeslice_bad(total, bad, slice_minutes, target)
        slices_in_window = window_minutes / slice_minutes
        budget_events = budget * slices_in_window
        consumed_series = _rolling_sum(slice_bad, window_minutes) / budget_events
        n_slices = len(total) // slice_minutes
        bad_slices = int(slice_bad.sum())
        achieved = 1 - bad_slices / n_slices if n_slices else None
        mean_burn = (bad_slices / n_slices) / budget if n_slices else None
        n_total, n_bad = n_slices, bad_slices
    else:
        budget_events = budget * (n_total * window_minutes / max(len(total), 1) if len(total) < window_minutes
                                  else float(_rolling_sum(total, window_minutes)[-1]))
        consumed_series = budget_series(total, bad, spec.objective, window_minutes)
        mean_burn = (n_bad / n_total) / budget if n_total else None
    burn_1h = _rolling_sum(bad, 60) / np.maximum(_rolling_sum(total, 60), 1) / budget
    step = max(1, burndown_step_minutes)
    points = tuple(
        BurnPoint(start + timedelta(minutes=int(i) + 1), float(consumed_series[i]),
                  float(1 - consumed_series[i]), float(burn_1h[i]))
        for i in range(step - 1, len(total), step)
    )
    consumed = float(consumed_series[-1]) if len(consumed_series) else None
    note = ""
    if len(total) < window_minutes:
        note = (f"history ({history_days:.3g} d) is shorter than the window ({spec.window_days:g} d): "
                "budget normalized to the window at the history's mean traffic rate")
    return SloStatus(
        name=spec.name, service=spec.service, slo_id=spec.slo_id, sli_kind=spec.sli_kind, sli=sli_doc,
        objective=spec.objective, objective_source=spec.objective_source, proposal_note=spec.proposal_note,
        window_days=spec.window_days, budgeting_method=spec.budgeting_method,
        timeslice_window_s=spec.timeslice_window_s, timeslice_target=spec.timeslice_target,
        latency_threshold_ms=spec.latency_threshold_ms, total_events=n_total, bad_events=n_bad,
        achieved=achieved, error_budget_ratio=budget, budget_events=budget_events, consumed_ratio=consumed,
        remaining_ratio=None if consumed is None else 1 - consumed, mean_burn_rate=mean_burn,
        history_days=history_days, source=spec.source, burndown=points, note=note)


def _sli_doc(spec: SloSpec) -> dict[str, Any]:
    if spec.sli_kind == "latency":
        description = f"requests faster than {spec.latency_threshold_ms:g} ms"
    elif spec.sli_kind == "availability":
        description = "requests answered without a 5xx status"
    else:
        description = "raw error-ratio query"
    where = "TRUE" if not spec.warehouse_service else f"service = {_q(spec.warehouse_service)}"
    return {
        "description": description,
        "sql": (f"SELECT 1 - count(*) FILTER (WHERE {sli_sql(spec)}) / count(*) FROM requests "
                f"WHERE {where}") if spec.evaluable else None,
        "promql_error": spec.error_query or spec.error_ratio_query,
        "promql_total": spec.total_query,
    }


# --------------------------------------------------------------------------------------------- parameters

def default_queries(service: str, kind: str, threshold_ms: float | None) -> tuple[str, str]:
    """PromQL (error, total) for a service's requests, in the naming an instrumented HTTP service exposes:
    ``http_requests_total{service, code}`` and ``http_request_duration_seconds`` (histogram)."""
    sel = f'service="{service}"'
    if kind == "latency":
        le = f"{(threshold_ms or 0) / 1000:g}"
        return (
            f"(\n  sum(rate(http_request_duration_seconds_count{{{sel}}}[{{{{.window}}}}]))\n  -\n"
            f"  sum(rate(http_request_duration_seconds_bucket{{{sel},le=\"{le}\"}}[{{{{.window}}}}]))\n)",
            f"sum(rate(http_request_duration_seconds_count{{{sel}}}[{{{{.window}}}}]))",
        )
    return (
        f"sum(rate(http_requests_total{{{sel},code=~\"5..\"}}[{{{{.window}}}}]))",
        f"sum(rate(http_requests_total{{{sel}}}[{{{{.window}}}}]))",
    )


def _alert_name(service: str, kind: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", service)
    camel = "".join(w[:1].upper() + w[1:] for w in words if w)
    return f"{camel or 'Service'}{'Latency' if kind == 'latency' else 'Availability'}SloBurn"


def slos_from_parameters(con: duckdb.DuckDBPyConnection, services: list[str], *, start: datetime,
                         end: datetime, availability_target: float | None, latency_threshold_ms: float,
                         latency_target: float | None, window_days: float
                         ) -> list[tuple[SloSpec, tuple[np.ndarray, np.ndarray]]]:
    """Availability and latency SLOs for each service (all services in the warehouse when empty), with
    their per-minute series; targets not given are proposed from the history (and the spec says so)."""
    if not services:
        services = [r[0] for r in con.execute(
            "SELECT DISTINCT service FROM requests WHERE service IS NOT NULL ORDER BY 1").fetchall()]
    if not services:
        from kit.analysis.coverage import NEEDS

        if not con.execute("SELECT count(*) FROM requests").fetchone()[0]:  # type: ignore[index]
            raise DataError(NEEDS["requests"].sentence())
        raise DataError("no request names its service, so no SLO can be defined: re-ingest the log with "
                        "`perfkit ingest access-log --replace` (which names the service) or pass --service")
    timed = {r[0] for r in con.execute(
        "SELECT service FROM requests WHERE latency_ms IS NOT NULL GROUP BY 1").fetchall()}
    out = []
    for service in services:
        kinds = (("availability", availability_target), ("latency", latency_target))
        for kind, target in kinds if service in timed else kinds[:1]:  # no request time: no latency SLO
            error_q, total_q = default_queries(service, kind, latency_threshold_ms)
            spec = SloSpec(
                name=f"requests-{kind}", service=service, objective=target or 0.99,
                objective_percent=(target or 0.99) * 100, window_days=window_days, sli_kind=kind,
                error_query=error_q, total_query=total_q,
                latency_threshold_ms=latency_threshold_ms if kind == "latency" else None,
                alerting=AlertingSpec(name=_alert_name(service, kind),
                                      labels={"category": kind},
                                      page_labels={"severity": "critical"},
                                      ticket_labels={"severity": "warning"}),
                objective_source="given", warehouse_service=service,
            )
            series = minute_series(con, spec, start, end)
            if target is None:
                proposal = propose_target(*series)
                spec = replace(spec, objective=proposal.target, objective_percent=proposal.target * 100,
                               objective_source="proposed", proposal_note=proposal.basis)
            out.append((spec, series))
    return out


def budget_note(window_days: float, history_days: float) -> str:
    """How budgets were computed, for the results and the documents."""
    if history_days >= window_days:
        return (f"Error budgets are computed over the exact rolling {window_days:g}-day window ending at the "
                "end of the history.")
    return (f"The history covers {history_days:.3g} days, less than the {window_days:g}-day SLO window. "
            "Budgets are normalized to the window: each window's budget is (1 - objective) x the requests "
            "the window would hold at the "
            "history's mean traffic rate; 'consumed' is the share of that budget the history used "
            f"(a burn rate of 1 sustained over the history consumes {history_days / window_days:.1%}). "
            "Timeslices budgets count the window's slices.")



# --------------------------------------------------------------------------------------------- the report

def saturation_candidates(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Resource saturation signals: the database connection pool (``pg_stat_activity_count`` /
    ``pg_settings_max_connections`` in ``metrics``), cache hit ratios of services that normally hit (from
    ``requests.cache_status``; alert when under half the median 15-min ratio) and gauges named
    ``*_utilization`` or ``*_saturation_ratio`` (limit 1). Each item: name, expr (PromQL), limit or
    threshold, p99 and max over the history."""
    names = {r[0] for r in con.execute("SELECT DISTINCT name FROM metrics").fetchall()}
    out: list[dict[str, Any]] = []
    if {"pg_stat_activity_count", "pg_settings_max_connections"} <= names:
        row = con.execute("""
            WITH a AS (SELECT ts, sum(value) AS active FROM metrics
                       WHERE name = 'pg_stat_activity_count' AND labels['state'] = 'active' GROUP BY ts),
                 m AS (SELECT ts, max(value) AS max_conn FROM metrics
                       WHERE name = 'pg_settings_max_connections' GROUP BY ts)
            SELECT quantile_cont(active / max_conn, 0.99), max(active / max_conn)
            FROM a JOIN m USING (ts)""").fetchone()
        out.append({"name": "db_connection_pool_utilization",
                    "expr": 'sum(pg_stat_activity_count{state="active"}) / max(pg_settings_max_connections)',
                    "limit": 1.0, "p99": row[0] if row else None, "max": row[1] if row else None})
    # caches: services whose responses carry a cache status and normally hit (median 15-min hit ratio
    # >= 30%); a collapse to under half of that median is an outage of the cache (CDN purge, bad key).
    hit = con.execute("""
        WITH m AS (SELECT service, time_bucket(INTERVAL 15 MINUTE, ts) AS b,
                          count(*) FILTER (WHERE cache_status = 'HIT') / count(*) AS hit_ratio
                   FROM requests WHERE cache_status IS NOT NULL AND method IN ('GET', 'HEAD') GROUP BY ALL
                   HAVING count(*) >= 20)
        SELECT service, median(hit_ratio) FROM m WHERE service IS NOT NULL GROUP BY 1 ORDER BY 1""").fetchall()
    for service, median_hit in hit:
        if median_hit is None or median_hit < 0.3:
            continue
        sel = f'service="{service}",method=~"GET|HEAD"'
        out.append({"name": f"cache_hit_ratio_{service}", "service": service, "direction": "below",
                    "threshold": round(0.5 * float(median_hit), 3),
                    "basis": f"half its median 15-min hit ratio {float(median_hit):.3g}",
                    "expr": (f'sum(rate(http_requests_total{{{sel},cache_status="HIT"}}[15m])) / '
                             f'sum(rate(http_requests_total{{{sel}}}[15m]))'),
                    "p99": None, "max": None})
    for name in sorted(n for n in names if n.endswith("_utilization") or n.endswith("_saturation_ratio")):
        row = con.execute("SELECT quantile_cont(value, 0.99), max(value) FROM metrics WHERE name = ?",
                          [name]).fetchone()
        out.append({"name": name, "expr": f"max by (instance) ({name})", "limit": 1.0,
                    "p99": row[0] if row else None, "max": row[1] if row else None})
    return out


def saturation_minutes(con: duckdb.DuckDBPyConnection, candidate: dict[str, Any], start: datetime,
                       end: datetime) -> np.ndarray:
    """Per-minute value of a saturation candidate over [start, end) (NaN where no sample), computed in
    DuckDB: the DB pool's active / max connections, or the max of a gauge over its series."""
    n = int((end - start).total_seconds() // 60)
    base = int(start.timestamp() // 60)
    window = f"ts >= TIMESTAMPTZ '{start.isoformat()}' AND ts < TIMESTAMPTZ '{end.isoformat()}'"
    if candidate.get("direction") == "below" and candidate["name"].startswith("cache_hit_ratio_"):
        rows = con.execute(
            f"SELECT CAST(floor(epoch(ts) / 60) AS BIGINT) - {base} AS i, count(*) AS n, "
            "count(*) FILTER (WHERE cache_status = 'HIT') AS h FROM requests "
            f"WHERE service = {_q(candidate['service'])} AND cache_status IS NOT NULL "
            f"AND method IN ('GET', 'HEAD') AND {window} GROUP BY 1").fetchnumpy()
        total = np.zeros(n)
        hits = np.zeros(n)
        idx = np.asarray(rows["i"], dtype=np.int64)
        keep = (idx >= 0) & (idx < n)
        total[idx[keep]] = np.asarray(rows["n"], dtype=np.float64)[keep]
        hits[idx[keep]] = np.asarray(rows["h"], dtype=np.float64)[keep]
        t15, h15 = _rolling_sum(total, 15), _rolling_sum(hits, 15)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(t15 >= 20, h15 / np.maximum(t15, 1), np.nan)
    if candidate["name"] == "db_connection_pool_utilization":
        sql = f"""
            WITH a AS (SELECT ts, sum(value) AS active FROM metrics WHERE name = 'pg_stat_activity_count'
                       AND labels['state'] = 'active' AND {window} GROUP BY ts),
                 m AS (SELECT ts, max(value) AS max_conn FROM metrics
                       WHERE name = 'pg_settings_max_connections' AND {window} GROUP BY ts)
            SELECT CAST(floor(epoch(ts) / 60) AS BIGINT) - {base} AS i, max(active / max_conn) AS v
            FROM a JOIN m USING (ts) GROUP BY 1"""
    else:
        sql = (f"SELECT CAST(floor(epoch(ts) / 60) AS BIGINT) - {base} AS i, max(value) AS v FROM metrics "
               f"WHERE name = {_q(candidate['name'])} AND {window} GROUP BY 1")
    rows = con.execute(sql).fetchnumpy()
    out = np.full(n, np.nan)
    idx = np.asarray(rows["i"], dtype=np.int64)
    keep = (idx >= 0) & (idx < n)
    out[idx[keep]] = np.asarray(rows["v"], dtype=np.float64)[keep]
    return out


def slo_report(con: duckdb.DuckDBPyConnection, *, start: str | None = None, end: str | None = None,
               services: list[str] | None = None, availability_target: float | None = None,
               latency_threshold_ms: float = 500.0, latency_target: float | None = None,
               slo_window_days: float = DEFAULT_PERIOD_DAYS, slo_specs: list[str] | None = None,
               min_bad_events: int = 10) -> tuple[SloReport, list[SloSpec], Any]:
    """Everything notebook 20 shows: SLOs from the parameters (or spec files), evaluated over the
    history; the alert plan; the backtest. Returns (report, specs, plan); write the rule files with
    ``write_rule_files``."""
    from kit.analysis.alerts import alert_plan, saturation_rules
    from kit.analysis.backtest import backtest_slos, load_incidents

    first, last = history_bounds(con, start, end)
    history_days = (last - first).total_seconds() / 86400.0
    pairs: list[tuple[SloSpec, tuple[np.ndarray, np.ndarray]]] = []
    if slo_specs:
        known = {r[0] for r in con.execute("SELECT DISTINCT service FROM requests").fetchall()}
        seen: set[str] = set()
        for path in slo_specs:
            for spec in load_slo_specs(path, period_days=slo_window_days):
                if spec.slo_id in seen:  # the same SLO in two files: Prometheus needs unique groups
                    continue
                seen.add(spec.slo_id)
                spec = replace(spec, warehouse_service=spec.service if spec.service in known else None)
                if spec.warehouse_service is None and spec.evaluable:
                    spec = replace(spec, proposal_note=(spec.proposal_note + "; " if spec.proposal_note else "")
                                   + f"service {spec.service!r} is not in the warehouse: SLI over all requests")
                series = minute_series(con, spec, first, last) if spec.evaluable else (
                    np.zeros(0, np.int64), np.zeros(0, np.int64))
                pairs.append((spec, series))
    else:
        pairs = slos_from_parameters(con, services or [], start=first, end=last,
                                     availability_target=availability_target,
                                     latency_threshold_ms=latency_threshold_ms, latency_target=latency_target,
                                     window_days=slo_window_days)
    statuses = tuple(evaluate_slo(con, spec, first, last, series=series) for spec, series in pairs)
    specs = [spec for spec, _ in pairs]
    promql_specs = [s for s in specs if s.error_ratio_query or (s.error_query and s.total_query)]
    saturation = saturation_rules(saturation_candidates(con))
    plan = alert_plan(promql_specs, min_bad_events=min_bad_events, saturation=saturation)
    incidents = load_incidents(con, first, last)
    candidates = {c["name"]: c for c in saturation_candidates(con)}
    saturation_series = [
        (rule.name, rule.threshold if rule.direction == "above" else -rule.threshold,
         int(parse_duration_s(rule.for_) // 60),
         saturation_minutes(con, candidates[rule.metric], first, last) * (1 if rule.direction == "above" else -1))
        for rule in saturation if rule.metric in candidates]
    backtest = backtest_slos([p for p in pairs if p[0].evaluable], first, incidents,
                             min_bad_events=min_bad_events, saturation=saturation_series)
    report = SloReport(
        window_days=float(slo_window_days),
        history={"start": first, "end": last, "days": history_days},
        budget_note=budget_note(float(slo_window_days), history_days), slos=statuses,
        alerts=_plan_doc(plan), backtest=backtest)
    return report, specs, plan


def _plan_doc(plan: Any) -> dict[str, Any]:
    """The alert plan as the JSON shape the report sections read (rules with ``for``, not ``for_``)."""
    rules = []
    for r in plan.rules:
        rules.append({"name": r.name, "slo": r.slo, "slo_id": r.slo_id, "service": r.service,
                      "severity": r.severity, "severity_label": r.severity_label, "expr": r.expr,
                      "windows": [list(w) for w in r.windows], "burn_rates": list(r.burn_rates),
                      "thresholds": list(r.thresholds), "min_events": list(r.min_events), "for": r.for_,
                      "labels": r.labels, "warnings": list(r.warnings)})
    saturation = [{"name": s.name, "expr": s.expr, "severity": s.severity, "for": s.for_,
                   "description": s.description, "metric": s.metric, "threshold": s.threshold,
                   "direction": s.direction}
                  for s in plan.saturation]
    return {"period_days": plan.period_days, "windows": list(plan.windows), "rules": rules,
            "saturation": saturation, "min_traffic": plan.min_traffic}


def write_rule_files(directory: str | Path, specs: list[SloSpec], plan: Any, *,
                     rules_name: str = "slo_rules.yml", run_promtool: bool = True,
                     promtool_test: bool = True) -> dict[str, Any]:
    """Write the rule file and its promtool test file into ``directory``; run ``promtool check rules``
    and (``promtool_test``) ``promtool test rules`` when promtool is installed. Returns paths and promtool's
    verdicts (``{"ok": bool | None, "output": str}`` under ``check`` and ``test``); ``rules_name`` and
    ``rules_test_name`` are the bare file names (what a result should record: run folders move)."""
    import shutil
    import subprocess

    from kit.analysis.alerts import promtool_tests, rules_yaml
    from kit.results import write_text_atomic

    folder = Path(directory)
    rules_path = folder / rules_name
    test_path = folder / (Path(rules_name).stem + "_test.yml")
    promql_specs = [s for s in specs if s.error_ratio_query or (s.error_query and s.total_query)]
    write_text_atomic(rules_path, rules_yaml(promql_specs, plan))
    write_text_atomic(test_path, promtool_tests(promql_specs, plan, rules_path.name))
    out: dict[str, Any] = {"rules_file": str(rules_path), "rules_test_file": str(test_path),
                           "rules_name": rules_path.name, "rules_test_name": test_path.name}
    binary = shutil.which("promtool")
    if run_promtool and binary:
        runs: list[tuple[str, list[str], Path | None]] = [("check", ["check", "rules", str(rules_path)], None)]
        if promtool_test:
            runs.append(("test", ["test", "rules", test_path.name], folder))
        for key, args, cwd in runs:
            done = subprocess.run([binary, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
            out[key] = {"ok": done.returncode == 0, "output": (done.stdout + done.stderr)[-2000:]}
    elif run_promtool:
        out["check"] = out["test"] = {"ok": None, "output": "promtool not installed"}
    return out
