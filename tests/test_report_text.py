"""Text from logs is inert in documents; secrets in query strings are redacted."""

from __future__ import annotations

import re
from html import unescape

import mistune
import pytest

from kit.report.text import fmt_bytes, fmt_pct, md_escape, redact_query

HOSTILE = [
    "<script>alert(1)</script>",
    "/search?q=<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "| col | injected |",
    "**bold** _it_ `code`",
    "line\nbreak\r\n<b>x</b>",
    "/it's/#anchor",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_the_same_visible_text_and_no_markup(text: str) -> None:
    html = mistune.html(f"| a |\n|---|\n| {md_escape(text)} |\n")
    assert "<script" not in html and "<img" not in html and "<a " not in html and "<b>" not in html
    assert "<strong>" not in html and "<em>" not in html and "<code>" not in html
    assert html.count("<td") == 1  # the | inside the value did not open new cells
    visible = html.split("<td>")[1].split("</td>")[0]
    assert unescape(visible) == re.sub(r"[\r\n]+", " ", text).strip()  # the reader sees the text as it was


@pytest.mark.parametrize(("query", "expected"), [
    ("q=shoes&token=abc123", "q=shoes&token=REDACTED"),
    ("api_key=XYZ&page=2", "api_key=REDACTED&page=2"),
    ("session_id=1;password=hunter2", "session_id=REDACTED;password=REDACTED"),
    ("page=2&sort=price", "page=2&sort=price"),
    ("?Auth=bearer", "?Auth=REDACTED"),
])
def test_redact_query(query: str, expected: str) -> None:
    assert redact_query(query) == expected


def test_formatting_helpers() -> None:
    assert fmt_pct(0.01234) == "1.23%"
    assert fmt_bytes(1536) == "1.5 KiB"
    assert fmt_bytes(512) == "512 B"
