"""The SLO model (``SloSpec`` and its alerting options) and the duration text specs are written in.

``objective`` is a ratio in (0, 1); ``objective_percent`` keeps the percent form Sloth computes with.
Durations are Prometheus/OpenSLO text (``5m``, ``1h``, ``30d``, ``2w``; OpenSLO ``M`` = 30 days) and
seconds in code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kit.errors import SloSpecError

__all__ = ["DEFAULT_PERIOD_DAYS", "AlertingSpec", "SloSpec", "format_duration", "parse_duration_s"]

DEFAULT_PERIOD_DAYS = 30.0


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


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|M|Q|y|Y)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400,
           "Q": 90 * 86400, "y": 365 * 86400, "Y": 365 * 86400}


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

