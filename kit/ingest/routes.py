"""Request paths → route templates, query strings → redacted form, client addresses → salted hashes.

Everything here produces DuckDB SQL *expressions* (strings) over a column, so the work runs vectorized
inside DuckDB during ingest — never a Python loop per row. The Python twins (``route_of``,
``redact_query``) exist for documentation and tests of single values only.

Route templating, applied to each ``/``-separated segment of the path (without the query string):

- a UUID (8-4-4-4-12 hex)                   → ``{uuid}``
- a run of 16+ hex digits with at least one digit (md5/sha1/sha256, object ids) → ``{hash}``
- digits only, or digits with a file extension (``123.json``) → ``{id}`` (+ the extension)

User rules come first: ``RouteRule(pattern, template)`` — when the RE2 ``pattern`` matches the WHOLE path,
the route is ``template`` with ``\\1``… replaced by the pattern's groups (``^/user/([^/]+)$`` →
``/user/{name}``). Rules are written as ``"PATTERN => TEMPLATE"`` strings in the parameters file
(``route_rules``) or on the command line (``--route-rule``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from kit.errors import ParameterError
from kit.warehouse import sql_string

__all__ = [
    "SECRET_KEY_WORDS",
    "RouteRule",
    "client_hash_sql",
    "parse_route_rule",
    "redact_query",
    "redact_query_sql",
    "route_of",
    "route_sql",
]

# Query keys containing one of these words (case-insensitive) get their value replaced by REDACTED.
SECRET_KEY_WORDS = ("token", "key", "password", "passwd", "pwd", "secret", "session", "auth",
                    "signature", "credential", "jwt")
REDACTED = "REDACTED"

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_HEX = r"[0-9a-fA-F]+"
_ID = r"[0-9]+(\.[A-Za-z0-9]{1,8})?"
_EXT = r"(\.[A-Za-z0-9]{1,8})$"
_REDACT_REPLACEMENT = r"\1\2=" + REDACTED
_ID_REPLACEMENT = r"\1{id}\2\3"
HASH_MIN_CHARS = 16


@dataclass(frozen=True)
class RouteRule:
    """A user rule: when ``pattern`` (RE2) matches the whole path, the route is ``template``."""

    pattern: str
    template: str


def parse_route_rule(text: str) -> RouteRule:
    """``"PATTERN => TEMPLATE"`` → RouteRule; ValueError naming the rule when malformed or not a regex."""
    if "=>" not in text:
        raise ParameterError(f"route rule {text!r}: expected 'PATTERN => TEMPLATE'")
    pattern, template = (part.strip() for part in text.rsplit("=>", 1))
    if not pattern or not template:
        raise ParameterError(f"route rule {text!r}: pattern and template must both be non-empty")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ParameterError(f"route rule {text!r}: bad regular expression: {exc}") from None
    return RouteRule(pattern, template)


def _segment_sql(seg: str) -> str:
    """SQL: the template of one path segment ``seg`` (a lambda variable)."""
    return (
        f"CASE WHEN {seg} = '' THEN {seg} "
        f"WHEN regexp_full_match({seg}, {sql_string(_ID)}) "
        f"THEN '{{id}}' || coalesce(nullif(regexp_extract({seg}, {sql_string(_EXT)}, 1), ''), '') "
        f"WHEN length({seg}) = 36 AND regexp_full_match({seg}, {sql_string(_UUID)}) THEN '{{uuid}}' "
        f"WHEN length({seg}) >= {HASH_MIN_CHARS} AND regexp_full_match({seg}, {sql_string(_HEX)}) "
        f"AND regexp_matches({seg}, '[0-9]') THEN '{{hash}}' "
        f"ELSE {seg} END"
    )


_SEG_ID = r"(^|/)[0-9]+(\.[A-Za-z0-9]{1,8})?(/|$)"


def _builtin_route_sql(col: str) -> str:
    """SQL: the built-in templating of the path in column/expression ``col``. Paths without digits are
    their own route; paths with a 16+ character hex/UUID run go segment by segment (a list lambda);
    the common case (numeric ids only) is two passes of one regexp_replace (two, because adjacent
    segments share the slash the first pass consumed)."""
    once = f"regexp_replace({col}, {sql_string(_SEG_ID)}, {sql_string(_ID_REPLACEMENT)}, 'g')"
    twice = f"regexp_replace({once}, {sql_string(_SEG_ID)}, {sql_string(_ID_REPLACEMENT)}, 'g')"
    return (f"CASE WHEN NOT regexp_matches({col}, '[0-9]') THEN {col} "
            f"WHEN regexp_matches({col}, '[0-9a-fA-F-]{{16,}}') "
            f"THEN array_to_string(list_transform(string_split({col}, '/'), "
            f"lambda seg__: {_segment_sql('seg__')}), '/') "
            f"ELSE {twice} END")


def route_sql(col: str, rules: Sequence[RouteRule] = (), builtin: str | None = None) -> str:
    """SQL expression: the route template of the path in ``col`` (user rules first, then built-ins, or
    the expression ``builtin`` when the built-in templating was done already)."""
    builtin = builtin or _builtin_route_sql(col)
    if not rules:
        return builtin
    whens = " ".join(
        f"WHEN regexp_full_match({col}, {sql_string(rule.pattern)}) "
        f"THEN regexp_replace({col}, {sql_string('^(?:' + rule.pattern + ')$')}, {sql_string(rule.template)})"
        for rule in rules)
    return f"CASE {whens} ELSE {builtin} END"


def _secret_key_regex() -> str:
    words = "|".join(SECRET_KEY_WORDS)
    return r"(^|&)([^=&]*(?i:" + words + r")[^=&]*)=([^&]*)"


def redact_query_sql(col: str) -> str:
    """SQL expression: the query string in ``col`` with the values of secret-looking keys REDACTED
    (NULL stays NULL)."""
    return (f"CASE WHEN contains({col}, '=') "
            f"THEN regexp_replace({col}, {sql_string(_secret_key_regex())}, {sql_string(_REDACT_REPLACEMENT)}, 'g') "
            f"ELSE {col} END")


def client_hash_sql(col: str, salt: str) -> str:
    """SQL expression: a salted hash of the client address in ``col`` (16 hex characters of
    md5(salt || address); with a secret salt the address cannot be recovered by hashing candidate
    addresses); NULL or ``-`` addresses give NULL."""
    return (f"CASE WHEN {col} IS NULL OR {col} IN ('', '-') THEN NULL "
            f"ELSE left(md5({sql_string(salt)} || {col}), 16) END")


# ---------------------------------------------------------------------------------------------- Python twins

def route_of(path: str, rules: Sequence[RouteRule] = ()) -> str:
    """The route of one path (Python, for tests and docs; ingest uses :func:`route_sql`)."""
    for rule in rules:
        if re.fullmatch(rule.pattern, path):
            return re.sub("^(?:" + rule.pattern + ")$", rule.template, path)
    segments = path.split("/")
    out = []
    for seg in segments:
        if re.fullmatch(_UUID, seg):
            out.append("{uuid}")
        elif len(seg) >= 16 and re.fullmatch(r"[0-9a-fA-F]+", seg) and re.search(r"[0-9]", seg):
            out.append("{hash}")
        elif m := re.fullmatch(r"[0-9]+(\.[A-Za-z0-9]{1,8})?", seg):
            out.append("{id}" + (m.group(1) or ""))
        else:
            out.append(seg)
    return "/".join(out)


def redact_query(query: str) -> str:
    """One query string with secret values REDACTED (Python twin of :func:`redact_query_sql`)."""
    words = "|".join(SECRET_KEY_WORDS)
    return re.sub(r"(^|&)([^=&]*(?i:" + words + r")[^=&]*)=([^&]*)", r"\1\2=" + REDACTED, query)
