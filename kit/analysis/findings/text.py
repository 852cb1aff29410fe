"""A finding's numbers as plain sentences, shared by the monitoring document's findings table and the
optimization document's fixes (the renderer registers these as template globals and escapes their text).

Each takes a finding as saved in ``results/bottlenecks.json`` (``findings.items[i]``, a mapping)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kit import fmt

COST_BASIS_TEXT = {"request_time": "all request time", "errors_5xx": "all 5xx responses (error budget)",
                   "requests_missed": "all requests (cache hits lost)"}


def value_text(value: float | None, unit: str) -> str:
    """A before/after value in the finding's unit: ms whole, shares as % with one decimal, else a number."""
    if unit == "ms":
        return fmt.ms(value, 0)
    if unit == "share":
        return fmt.pct(value, 1)
    return fmt.num(value)


def effect_text(item: Mapping[str, Any]) -> str:
    """The effect with its 95 % interval: "+110 ms (95% CI +104 to +116 ms)", "+26.1 points (...)", "×0.62"."""
    effect, low, high, unit = item.get("effect"), item.get("ci_low"), item.get("ci_high"), item.get("effect_unit")
    if effect is None:
        return "effect n/a"
    if unit == "ms":
        interval = f" (95% CI {low:+.0f} to {high:+.0f} ms)" if low is not None and high is not None else ""
        return f"{effect:+.0f} ms{interval}"
    if unit == "share":
        interval = f" (95% CI {low * 100:+.1f} to {high * 100:+.1f})" if low is not None and high is not None else ""
        return f"{effect * 100:+.1f} points{interval}"
    interval = f" (95% CI ×{fmt.num(low)} to ×{fmt.num(high)})" if low is not None and high is not None else ""
    return f"×{fmt.num(effect)}{interval}"


def cost_basis_text(basis: str) -> str:
    """What a finding's cost share is a share of."""
    return COST_BASIS_TEXT.get(basis, "all requests")


def cost_text(item: Mapping[str, Any], where: str = " in the window") -> str:
    """The finding's cost: "0.58% of all request time in the window"."""
    share = item.get("cost_share")
    if share is None:
        return fmt.NA
    return f"{fmt.pct(share)} of {cost_basis_text(str(item.get('cost_basis') or ''))}{where}"
