"""Numbers as people read them: the one place where the documents, the figures and the notebooks
format percentages, counts, durations and sizes.

Plain text only (no Markdown, no escaping: the document renderer escapes every value it prints).
``None`` is shown as ``n/a`` everywhere. Sizes use binary (IEC) units, KiB = 1024 bytes: cache
capacities and memory are configured in powers of two (Redis ``maxmemory``, nginx ``max_size``,
Varnish ``-s malloc``), and one unit everywhere means a number in a document reads the same in a
notebook and a chart."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

NA = "n/a"
TINY = 1e-6  # num() shows smaller magnitudes as ≈0
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def num(value: float | None, digits: int = 3) -> str:
    """A readable number, never in scientific notation: whole numbers from 1,000 up with thousands
    separators, smaller ones with ``digits`` significant digits, larger fractions rounded to whole units
    (1234.5 → 1,234; 0.01234 → 0.0123; 4.46e-05 → 0.0000446; below a millionth ≈0); NaN is ``n/a``."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return NA
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    if 0 < abs(value) < TINY:
        return "≈0"  # below a millionth: a reader needs no digits, and never scientific notation
    if 0 < abs(value) < 1e-3:
        fixed = f"{value:.{digits - 1 - math.floor(math.log10(abs(value)))}f}"  # 4.46e-05 -> 0.0000446
        return fixed.rstrip("0")
    text = f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,.0f}" if "e" in text and not math.isinf(value) else text  # 999.7 at 3 digits: 1,000


def count(value: float | None) -> str:
    """A count with thousands separators: 63788 → 63,788."""
    return NA if value is None else f"{value:,.0f}"


def pct(value: float | None, digits: int = 2, *, significant: bool = False) -> str:
    """A ratio as a percentage with ``digits`` decimals (0.0123 → 1.23%) or, with ``significant``,
    ``digits`` significant digits (0.99767, 5 → 99.767%; 0.995, 5 → 99.5%)."""
    if value is None:
        return NA
    return f"{value * 100:.{digits}g}%" if significant else f"{value * 100:.{digits}f}%"


def ms(value: float | None, digits: int = 1) -> str:
    """Milliseconds: 1234.56 → 1,234.6 ms."""
    return NA if value is None else f"{value:,.{digits}f} ms"


def seconds(value: float | None, digits: int = 1) -> str:
    """Seconds: 12.34 → 12.3 s."""
    return NA if value is None else f"{value:,.{digits}f} s"


def duration(value_s: float | None) -> str:
    """A duration in the unit that reads best: under 2 minutes in s, under 2 hours in min, else h
    (45 → 45 s, 1140 → 19.0 min, 9000 → 2.5 h)."""
    if value_s is None:
        return NA
    value_s = float(value_s)
    if value_s < 120:
        return f"{value_s:.0f} s"
    if value_s < 7200:
        return f"{value_s / 60:.1f} min"
    return f"{value_s / 3600:.1f} h"


def counted(value: float | None, singular: str, plural: str | None = None, digits: int = 3) -> str:
    """A number with its noun, the noun singular only when the number reads as exactly one
    (1 → "1 week", 2 → "2 weeks", 0.286 → "0.286 weeks", 1.0001 → "1 week"); ``plural`` defaults to
    ``singular + "s"``. The number is :func:`num` with ``digits`` significant digits."""
    number = num(value, digits)
    if value is None:
        return f"{number} {plural or singular + 's'}"
    return f"{number} {singular if number == '1' else (plural or singular + 's')}"


def size(value: float | None) -> str:
    """Bytes in binary units: 512 → 512 B, 1536 → 1.5 KiB, 957 MiB → 957.0 MiB."""
    if value is None:
        return NA
    amount = float(value)
    for unit in _BYTE_UNITS:
        if abs(amount) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def amount(value: float | None) -> str:
    """A money amount (in the cost parameters' currency): 1234.5 → 1,234.50."""
    return NA if value is None else f"{value:,.2f}"


def timestamp(value: object) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS UTC``; text that is not one is returned as it is."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def day(value: object) -> str:
    """A date, or the date of a timestamp, as ``YYYY-MM-DD``; text that is not one is returned as it is."""
    text = str(value)
    try:
        return datetime.fromisoformat(text).date().isoformat() if len(text) > 10 else \
            date.fromisoformat(text).isoformat()
    except ValueError:
        return text


def quantity(value: float | None, unit: str) -> str:
    """A KPI value in its unit: ratios as percentages (3 decimals), ``ms`` as milliseconds, else :func:`num`."""
    if value is None:
        return NA
    if unit == "ratio":
        return pct(value, 3)
    if unit == "ms":
        return ms(value)
    return num(value)
