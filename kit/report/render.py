"""The one way documents are rendered: Markdown from Jinja templates (with partials in
``templates/partials``), JSON validated against the JSON Schemas in ``schemas``.

Escaping happens here and only here. The Jinja environment escapes every value a template prints
(``{{ ... }}``) with :func:`kit.report.text.md_escape`, so text from logs and specs is inert whatever the
template does with it. What is already Markdown is marked with :func:`markdown` (kit-written prose with
code spans, such as the coverage gap sentences) or made by the ``code`` filter and ``code_block`` (code
spans and fences that cannot be closed from inside); such fragments are printed as they are. Numbers go
through the ``kit.fmt`` filters (``num``, ``count``, ``counted``, ``pct``, ``ms``, ``duration``, ``size``, ``amount``,
``timestamp``, ``day``, ``quantity``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import jsonschema
from markupsafe import Markup

from kit import fmt
from kit.analysis.findings import text as finding_text
from kit.analysis.opportunity import saving_text
from kit.report.text import code_block, md_code, md_escape

__all__ = ["BrokenDocumentError", "check_markdown", "environment", "load_schema", "markdown", "render_markdown",
           "validate_document"]


class BrokenDocumentError(ValueError):
    """A rendered Markdown document breaks its structure (a kit bug, not a data problem)."""


def markdown(text: str) -> Markup:
    """Mark ``text`` as Markdown that is safe as it is (written by the kit, or escaped already): the
    renderer prints it without escaping. Never use it on text that came from data."""
    return Markup(text)


def _escape_value(value: Any) -> Markup:
    """The environment's ``finalize``: every printed value is escaped, except marked Markdown."""
    if isinstance(value, Markup):
        return value
    return Markup(md_escape(value))


def _join(values: Iterable[Any], separator: str = "") -> str:
    """``join`` that returns plain text (Jinja's own returns pre-escaped HTML when autoescaping)."""
    return separator.join(str(v) for v in values)


def _link_target(path: str) -> Markup:
    """A relative path the kit chose (a figure file) as a ``<...>`` link destination."""
    return Markup(str(path).replace(">", "%3E").replace("<", "%3C"))


def _gaps(coverage: Any, *needs: str) -> Markup:
    """The coverage gap sentences for ``needs`` (``kit.analysis.coverage.Coverage``), kit-written Markdown."""
    return Markup(" ".join(gap.sentence() for gap in coverage.gaps(*needs)))


@cache
def environment() -> jinja2.Environment:
    """Templates from ``kit/report/templates``; every printed value escaped unless marked Markdown."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kit.report", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # Autoescaping (with markupsafe.Markup as the "already safe" marker) makes macros, includes and
        # blocks return marked text; finalize turns every other value into escaped Markdown first.
        autoescape=True,
        finalize=_escape_value,
    )
    env.filters.update(
        code=lambda value, table=True: Markup(md_code(value, table)), url=_link_target, join=_join,
        num=fmt.num, count=fmt.count, pct=fmt.pct, ms=fmt.ms, duration=fmt.duration, size=fmt.size,
        amount=fmt.amount, counted=fmt.counted, timestamp=fmt.timestamp, day=fmt.day, quantity=fmt.quantity,
    )
    env.globals.update(code_block=lambda text, language="": Markup(code_block(text, language)), gaps=_gaps,
                       finding_value=finding_text.value_text, finding_effect=finding_text.effect_text,
                       finding_cost=finding_text.cost_text, saving_text=saving_text)
    return env


def render_markdown(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with the given context; collapses runs of blank lines and strips
    trailing spaces. The result is checked with :func:`check_markdown`."""
    text = environment().get_template(template).render(**context)
    lines: list[str] = []
    for line in text.splitlines():
        if line.strip() or (lines and lines[-1].strip()):
            lines.append(line.rstrip())
    document = "\n".join(lines).strip() + "\n"
    check_markdown(document, template)
    return document


_CELL_BORDER = re.compile(r"(?<!\\)\|")
_FENCE = re.compile(r"^(`{3,})")


def check_markdown(text: str, name: str = "document") -> None:
    """Raise :class:`BrokenDocumentError` naming the line when a table row has more or fewer cells than
    its header (an unescaped ``|`` from the data would do that) or a code fence is never closed."""
    fence = ""
    header_cells = 0
    for number, line in enumerate(text.splitlines(), start=1):
        opening = _FENCE.match(line)
        if fence:
            if line.strip() == fence:
                fence = ""
            continue
        if opening:
            fence, header_cells = opening.group(1), 0
            continue
        if not line.startswith("|"):
            header_cells = 0
            continue
        cells = len(_CELL_BORDER.split(line)) - 2
        if line.startswith("|---") or line.startswith("|:--") or line.startswith("|--:"):
            continue
        if header_cells == 0:
            header_cells = cells
        elif cells != header_cells:
            raise BrokenDocumentError(f"{name}, line {number}: table row has {cells} cells, its header "
                                      f"{header_cells}: {line[:120]}")
    if fence:
        raise BrokenDocumentError(f"{name}: code fence {fence} is never closed")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in ``kit/report/schemas`` (``name`` without ``.schema.json``)."""
    text = resources.files("kit.report").joinpath("schemas", f"{name}.schema.json").read_text()
    return json.loads(text)


def validate_document(document: Any, schema_name: str) -> None:
    """Raise jsonschema.ValidationError (with the failing path) when the document breaks its schema."""
    schema = load_schema(schema_name)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator_class(schema).validate(document)
