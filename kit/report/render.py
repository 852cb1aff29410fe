"""Jinja rendering for Markdown documents and JSON Schema validation for JSON documents."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import jsonschema

from kit.report.text import fmt_bytes, fmt_num, fmt_pct, md_code, md_escape


@cache
def environment() -> jinja2.Environment:
    """Templates from ``kit/report/templates``; filters: md (escape text), code (code span), num, pct, bytes."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kit.report", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # Markdown, not HTML: every value from the data goes through the md filter
    )
    env.filters.update(md=md_escape, code=md_code, num=fmt_num, pct=fmt_pct, bytes=fmt_bytes)
    return env


def render_markdown(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with the given context; collapses runs of blank lines."""
    text = environment().get_template(template).render(**context)
    lines: list[str] = []
    for line in text.splitlines():
        if line.strip() or (lines and lines[-1].strip()):
            lines.append(line.rstrip())
    return "\n".join(lines).strip() + "\n"


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
