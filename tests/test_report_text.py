"""Text from logs is inert in documents."""

from __future__ import annotations

import re
from html import unescape

import mistune
import pytest

from kit.fmt import pct, size
from kit.report.text import md_escape

HOSTILE = [
    "<script>alert(1)</script>",
    "/search?q=<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "| col | injected |",
    "**bold** _it_ `code`",
    "line\nbreak\r\n<b>x</b>",
    "/it's/#anchor",
    "![x](http://e.example/x.png)",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_the_same_visible_text_and_no_markup(text: str) -> None:
    html = mistune.html(f"| a |\n|---|\n| {md_escape(text)} |\n")
    assert "<script" not in html and "<img" not in html and "<a " not in html and "<b>" not in html
    assert "<strong>" not in html and "<em>" not in html and "<code>" not in html
    assert html.count("<td") == 1  # the | inside the value did not open new cells
    visible = html.split("<td>")[1].split("</td>")[0]
    assert unescape(visible) == re.sub(r"[\r\n]+", " ", text).strip()  # the reader sees the text as it was


def test_formatting_helpers() -> None:
    assert pct(0.01234) == "1.23%"
    assert pct(0.99767, 5, significant=True) == "99.767%"
    assert size(1536) == "1.5 KiB"
    assert size(512) == "512 B"
    assert size(3 * 1024**3) == "3.0 GiB"
    assert size(None) == "n/a"


def test_number_duration_and_time_formats() -> None:
    from kit import fmt

    assert fmt.num(1234.5) == "1,234" and fmt.num(0.012345) == "0.0123" and fmt.num(5) == "5"
    # small magnitudes in plain decimals, never scientific notation (a reader's document shows no e-05)
    assert fmt.num(4.46e-05) == "0.0000446" and fmt.num(1.1e-4) == "0.00011" and fmt.num(-3.2e-5) == "-0.000032"
    assert fmt.num(7.26e-24) == "≈0" and fmt.num(0.0) == "0"
    for exponent in range(-12, 13):
        for mantissa in (1.0, 2.5, 9.99):
            assert "e" not in fmt.num(mantissa * 10.0 ** exponent), (mantissa, exponent)
    assert fmt.count(63788) == "63,788"
    assert fmt.duration(45) == "45 s" and fmt.duration(1140) == "19.0 min" and fmt.duration(9000) == "2.5 h"
    assert fmt.quantity(0.99767, "ratio") == "99.767%" and fmt.quantity(1234.56, "ms") == "1,234.6 ms"
    assert fmt.timestamp("2026-11-16T01:00:00+01:00") == "2026-11-16 00:00:00 UTC"
    assert fmt.day("2026-11-23T00:00:00+00:00") == "2026-11-23" and fmt.day("not a date") == "not a date"


@pytest.mark.parametrize("text", [*HOSTILE, "a`b", "``x``", "`lead"])
def test_code_span_shows_the_text_verbatim_in_one_cell(text: str) -> None:
    from kit.report.text import md_code

    html = mistune.html(f"| a |\n|---|\n| {md_code(text)} |\n")
    assert html.count("<td") == 1 and "<script" not in html
    inner = html.split("<code>")[1].split("</code>")[0]
    # GFM shows "\|" as "|" inside a table's code span; mistune keeps the backslash: both are the text
    assert unescape(inner).replace("\\|", "|") == re.sub(r"\s+", " ", text).strip()
