"""The shape of one optimization opportunity, shared by every area that proposes one (database, CDN, code
profiles, compression, caching, and the fixes of bottleneck findings).

An opportunity says what to change, the evidence, the expected effect, how to verify it after the change
and its risk, all as plain text the document escapes; its ``saving`` is the estimate it is ranked by:
how much request time, database time or bytes it saves over the analysed window, with a 95 % interval
where the estimate is uncertain, and that saving's share of the total it is part of. ``sql`` names the
queries that reproduce the evidence's numbers. ``addresses`` lists what the opportunity fixes as keys
(``query:<fingerprint>``, ``route:<service> <route>``, ``config:<event what>``, ``deploy:<event what>``,
``profile:<frame>``), so an area's specific advice can replace the generic fix of a bottleneck finding
with the same cause."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kit import fmt

EFFORTS = ("low", "medium", "high")
EFFORT_WEIGHT = {"low": 1.0, "medium": 2.0, "high": 4.0}  # score = saving share / effort weight
SAVING_UNITS = ("ms", "bytes", "requests", "responses", "samples")  # request or DB time in ms; bytes; counts;
# profiler samples (code profiles of a service without request times: basis "sampled CPU time of <service>")


@dataclass(frozen=True)
class Saving:
    """Estimated saving over the analysed window: ``value`` in ``unit`` (95 % interval ``low``–``high``,
    None where the estimate is exact or has no interval), ``share`` = value / the total of ``basis`` (for
    example "all request time", "all bytes served", "database time", "5xx responses") in the window."""

    value: float
    unit: str
    basis: str
    share: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Opportunity:
    """One optimization, ranked by ``score`` = ``saving.share`` / effort weight (low 1, medium 2, high 4).

    ``area``: database, cdn, code, compression, caching, release, configuration, capacity;
    ``title``: the change in one line, naming what it changes (a query, a route's cache key, a frame);
    ``change``: exactly what to do (an index DDL, a server setting, a code path); ``evidence``,
    ``effect``, ``verify``, ``risk``: plain sentences with the numbers; ``effort``: low, medium or high;
    ``details``: the area's own numbers for its section of the document (JSON values)."""

    area: str
    title: str
    change: str
    evidence: str
    effect: str
    verify: str
    risk: str
    effort: str
    saving: Saving
    score: float
    sql: dict[str, str] = field(default_factory=dict)
    addresses: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)


def opportunity(area: str, title: str, *, change: str, evidence: str, effect: str, verify: str, risk: str,
                effort: str, saving: Saving, sql: dict[str, str] | None = None, addresses: list[str] | None = None,
                details: dict[str, object] | None = None) -> Opportunity:
    """An Opportunity with its score computed; ``effort`` must be one of ``EFFORTS``."""
    if effort not in EFFORT_WEIGHT:
        raise ValueError(f"effort must be one of {EFFORTS}, not {effort!r}")
    if saving.unit not in SAVING_UNITS:
        raise ValueError(f"saving unit must be one of {SAVING_UNITS}, not {saving.unit!r}")
    change, evidence, effect, verify, risk = (sentence(t) for t in (change, evidence, effect, verify, risk))
    return Opportunity(area, title, change, evidence, effect, verify, risk, effort, saving,
                       saving.share / EFFORT_WEIGHT[effort], dict(sql or {}), list(addresses or []),
                       dict(details or {}))


def sentence(text: str) -> str:
    """``text`` stripped, starting with a capital and ending with a full stop when it has no end mark."""
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if not text or text[-1] in ".!?)" else f"{text}."


def _amount(value: float, unit: str) -> str:
    if unit == "ms":
        return fmt.duration(value / 1000)
    if unit == "bytes":
        return fmt.size(value)
    return f"{fmt.count(value)} samples" if unit == "samples" else fmt.count(value)  # the basis names the rest


def saving_text(saving: Saving | Mapping[str, Any]) -> str:
    """A saving as people read it: "2.1 h of all request time (0.58%; 95% interval 1.9 h to 2.3 h)"."""
    s = saving if isinstance(saving, Saving) else Saving(**saving)
    interval = (f"; 95% interval {_amount(s.low, s.unit)} to {_amount(s.high, s.unit)}"
                if s.low is not None and s.high is not None else "")
    return f"{_amount(s.value, s.unit)} of {s.basis} ({fmt.pct(s.share)}{interval})"
