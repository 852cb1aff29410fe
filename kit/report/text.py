"""Making text from the data safe to put in Markdown/HTML documents (``kit.report.render`` applies
``md_escape`` to every value a template prints; numbers are formatted by ``kit.fmt``).

(Secrets in query strings are redacted at ingest: ``kit.ingest.routes.redact_query``.)"""

from __future__ import annotations

import html
import re
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


def code_block(text: str, language: str = "") -> str:
    """A fenced code block whose fence is longer than any backtick run inside (so it cannot be closed
    from the content); content is shown verbatim and never rendered as Markdown or HTML."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"
