"""Making text from the data safe to put in Markdown/HTML documents, and number formatting.

(Secrets in query strings are redacted at ingest: ``kit.ingest.routes.redact_query``.)"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

# Inline Markdown syntax: emphasis, code, links/images (via the brackets), tables, headings, strikethrough.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def md_escape(value: Any) -> str:
    """Text from logs made inert in Markdown and HTML: entities for <, > and &; backslashes for
    Markdown's special characters; line breaks folded to spaces (safe inside table cells)."""
    text = html.escape(str(value), quote=False)  # entities for < > & only: quotes are harmless in text
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return re.sub(r"[\r\n]+", " ", text)


def md_code(value: Any, table: bool = True) -> str:
    """Text from logs as an inline code span: shown verbatim (CommonMark renders a code span's content
    as text, so no entities are needed), on one line, with a backtick fence longer than any backtick run
    inside so it cannot be closed early; ``table`` escapes ``|`` so a table cell is not split."""
    text = re.sub(r"\s+", " ", str(value)).strip()
    if table:
        text = text.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table as lines: ``header`` then ``rows``, cells already formatted and escaped."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def fmt_num(value: float | int | None, digits: int = 3) -> str:
    """Readable number: thousands separators, ``digits`` significant digits for fractions."""
    if value is None:
        return "n/a"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def fmt_pct(value: float | None, digits: int = 2) -> str:
    """A ratio as a percentage: 0.0123 → 1.23%."""
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def fmt_bytes(value: float | int | None) -> str:
    """Bytes in binary units: 1536 → 1.5 KiB."""
    if value is None:
        return "n/a"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TiB"
