"""SLO spec files: Sloth ``prometheus/v1`` and OpenSLO ``v1alpha`` / ``v1`` (multi-document YAML).

Sloth: objective in percent, SLI as PromQL ``events`` (error and total queries) or ``raw`` (error ratio),
period 30 days unless given. OpenSLO: ``ratioMetrics`` (v1alpha) or ``ratioMetric`` / ``thresholdMetric``
(v1), ``timeWindow``, ``budgetingMethod``. Errors are ``SloSpecError`` naming file, line and field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from kit.analysis.slo.spec import DEFAULT_PERIOD_DAYS, AlertingSpec, SloSpec, parse_duration_s
from kit.errors import SloSpecError

__all__ = ["load_slo_specs"]

_OPENSLO_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400,
                  "month": 30 * 86400, "quarter": 90 * 86400, "year": 365 * 86400}


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

