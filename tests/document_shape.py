"""What a reader of a strategy document can rely on, as checks the document tests share: it starts
with the five-bullet summary (each bullet with a number), no heading text appears twice, no section is
empty (a heading followed directly by another), and no code block comes before the appendices."""

from __future__ import annotations

import re

SUMMARY_HEADING = "## Summary: five things to know"
_FENCE = re.compile(r"^(`{3,}|~{3,})")
_HEADING = re.compile(r"^(#{1,6}) (.*)$")


def lines_outside_code(text: str) -> list[tuple[int, str, bool]]:
    """Every line as (line number, text, inside a fenced code block); fence lines count as inside."""
    out, fence = [], ""
    for number, line in enumerate(text.splitlines(), start=1):
        opening = _FENCE.match(line)
        if fence:
            out.append((number, line, True))
            if line.strip() == fence:
                fence = ""
        elif opening:
            fence = opening.group(1)
            out.append((number, line, True))
        else:
            out.append((number, line, False))
    return out


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line number, level, text) of every Markdown heading outside code blocks."""
    found = []
    for number, line, in_code in lines_outside_code(text):
        match = None if in_code else _HEADING.match(line)
        if match:
            found.append((number, len(match.group(1)), match.group(2).strip()))
    return found


def summary_bullets(text: str) -> list[str]:
    """The bullets of the summary; asserts it is the document's first section (right after the title)."""
    levels = [(level, title) for _, level, title in headings(text)]
    assert levels[0][0] == 1, "the document starts with its title"
    assert f"{'#' * levels[1][0]} {levels[1][1]}" == SUMMARY_HEADING, f"first section is {levels[1]}"
    body = text.split(SUMMARY_HEADING + "\n", 1)[1].split("\n#", 1)[0]
    return [line[2:] for line in body.splitlines() if line.startswith("- ")]


def duplicated_headings(text: str) -> list[str]:
    seen: dict[str, int] = {}
    for _, _, title in headings(text):
        seen[title] = seen.get(title, 0) + 1
    return [title for title, n in seen.items() if n > 1]


def empty_sections(text: str) -> list[str]:
    """Headings followed (blank lines aside) directly by another heading, or by the end of the text."""
    content = [(line, in_code) for _, line, in_code in lines_outside_code(text) if line.strip() or in_code]
    empty = []
    for i, (line, in_code) in enumerate(content):
        if in_code or not _HEADING.match(line):
            continue
        following = content[i + 1] if i + 1 < len(content) else None
        if following is None or (not following[1] and _HEADING.match(following[0])):
            empty.append(line)
    return empty


def code_before_appendix(text: str) -> list[int]:
    """Line numbers of fenced code blocks that open before the first ``## Appendix`` heading."""
    appendix = next((n for n, level, title in headings(text) if level == 2 and title.startswith("Appendix")),
                    None)
    opened, fence = [], ""
    for number, line in enumerate(text.splitlines(), start=1):
        if appendix is not None and number >= appendix:
            break
        opening = _FENCE.match(line)
        if fence:
            if line.strip() == fence:
                fence = ""
        elif opening:
            fence = opening.group(1)
            opened.append(number)
    return opened


def check_shape(text: str, *, numbers: bool = True) -> list[str]:
    """Assert the reader's shape of a strategy document; return its summary bullets. ``numbers``: every
    bullet must carry a number (a run with every result)."""
    bullets = summary_bullets(text)
    assert len(bullets) == 5, bullets
    if numbers:
        without = [b for b in bullets if not re.search(r"\d", b.split(":**", 1)[-1])]
        assert not without, f"summary bullets without a number: {without}"
    assert not duplicated_headings(text), duplicated_headings(text)
    assert not empty_sections(text), empty_sections(text)
    assert not code_before_appendix(text), f"code blocks before the appendix at lines {code_before_appendix(text)}"
    return bullets
