"""The findings' typed results: ``Cause``, ``Finding`` and ``Findings`` (JSON via ``Findings.to_dict``,
shaped by ``kit/report/schemas/bottleneck_findings.schema.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FINDING_KINDS = ("latency_shift", "variance_change", "error_burst", "throughput_change", "cache_hit_drop",
                 "saturation", "slow_query_regression")
CAUSE_KINDS = ("deploy", "config", "metric", "query", "profile", "unknown")


@dataclass(frozen=True)
class Cause:
    """A probable cause: ``kind`` (deploy, config, metric, query, profile, unknown; other event kinds keep
    their own name, e.g. campaign), ``ref`` (event id, metric name, fingerprint or frame), ``strength``
    0..1 and ``lag_s`` (onset minus the cause's start, s; None when unknown)."""

    kind: str
    ref: str
    detail: str
    strength: float
    lag_s: float | None


@dataclass(frozen=True)
class Finding:
    """One change: ``kind`` in ``FINDING_KINDS``, ``scope`` (service, route, status, time, resource...),
    ``onset``/``end`` (end None: still on at the end of the window), ``metric`` and its ``before``/``after``
    values, ``effect`` with a 95 % interval, ``p_value``, ``confidence``, ``cost_share`` (see
    ``cost_basis``), ranked ``causes`` and ``sql`` (name -> query that reproduces each number)."""

    kind: str
    scope: dict[str, str]
    onset: datetime
    end: datetime | None
    bucket_s: int
    metric: str
    before: float
    after: float
    effect: float
    ci_low: float
    ci_high: float
    p_value: float | None
    confidence: str
    cost_share: float | None
    causes: tuple[Cause, ...]
    sql: dict[str, str]
    effect_unit: str = ""          # ms, share, ratio
    cost_basis: str = ""           # request_time, errors_5xx, requests
    strength: float = 0.0          # segment |mean z|·√len of the strongest series behind it
    explanatory_power: float | None = None  # share of the parent scope's excess that the scope explains
    related: tuple[str, ...] = ()  # other series that moved with it (kind:scope)
    detected_as: str = ""          # the kind of the series change behind it (a saturation's latency or 5xx)

    @property
    def title(self) -> str:
        where = " ".join(f"{k}={v}" for k, v in self.scope.items())
        return f"{self.kind.replace('_', ' ')} on {where}"


@dataclass(frozen=True)
class Findings:
    """Ranked findings of a window (high confidence first, then by cost share and strength)."""

    items: tuple[Finding, ...]
    bucket_s: int
    method: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    series_sql: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (timestamps ISO 8601, NaN as None); the shape of the ``findings`` schema."""
        from kit.results import to_jsonable

        out = to_jsonable(self)
        for item, finding in zip(out["items"], self.items, strict=True):
            item["title"] = finding.title
        return dict(out)
