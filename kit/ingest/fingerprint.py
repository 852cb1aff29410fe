"""Statement fingerprints: the shape of a SQL statement, so that executions of the same query group together
across PostgreSQL and MySQL sources.

One ordered list of regular-expression rewrites (``RULES``) is the single definition. It is applied two
ways that give identical results (a test checks it): :func:`fingerprint` / :func:`redact` in Python for
single statements, and :func:`fingerprint_sql` / :func:`install_macros` as a DuckDB expression chain for
vectorized use over millions of log entries. The patterns use only the syntax shared by Python ``re``
and RE2 (DuckDB): no look-around, no back-references, explicit whitespace classes.

What a fingerprint folds (modelled on pt-query-digest's ``fingerprint``):

- comments (``/* ... */``, ``-- ...``, and ``# ...`` lines) are removed;
- string literals (``'...'``, MySQL ``"..."``, ``x'..'``/``b'..'``/``E'..'``, PostgreSQL ``$$...$$``),
  numbers (integers, decimals, exponents, hex, binary, a sign in front), ``true``/``false``/``null``,
  PostgreSQL ``$1`` parameters and 32-hex-digit hashes inside identifiers become ``?``;
- ``IN (...)`` and ``VALUES (...), (...)`` lists of literals collapse to ``in(?+)`` / ``values(?+)``;
- ``LIMIT ?, ?`` / ``LIMIT ? OFFSET ?`` become ``limit ?``; ``ASC`` before a comma/parenthesis/end is dropped;
- case is lowered and whitespace collapsed to single spaces (trimmed);
- ``CALL proc(...)`` becomes ``call proc``, ``USE db`` becomes ``use ?``, MySQL ``administrator command:``
  lines are kept as they are.

Digits glued to letters stay (``t1``, ``prices2``, ``rt_5min``); digits after an underscore go
(``foo_1`` → ``foo_?``, the sharded-table convention). Dialect ``postgresql`` keeps ``"quoted"``
identifiers and treats backslashes in ``'...'`` as ordinary characters; dialect ``mysql`` folds
``"..."`` as strings.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import duckdb

from kit.warehouse import sql_string

__all__ = ["RULES", "Rule", "fingerprint", "fingerprint_sql", "install_macros", "query_id",
           "query_id_sql", "redact", "redact_sql"]

DIALECTS = ("postgresql", "mysql")

_WS = r"[ \t\r\n\f\v]"
_NUM = r"(?:0x[0-9a-f]+|0b[01]+|[0-9]+\.?[0-9]*(?:e[+-]?[0-9]+)?|\.[0-9]+(?:e[+-]?[0-9]+)?)"


@dataclass(frozen=True)
class Rule:
    """One rewrite: replace every match of ``pattern`` by ``replacement`` (``\\1`` = group 1)."""

    name: str
    pattern: str
    replacement: str
    dialects: tuple[str, ...] = DIALECTS
    redact: bool = False  # also part of the (case-preserving) redaction of samples


# The order matters: comments before strings (a quote inside a comment), strings before numbers.
RULES: tuple[Rule, ...] = (
    Rule("block comments", r"(?s)/\*.*?\*/", " ", redact=True),
    # A line comment runs to the end of the line and holds no quote (else it is inside a string).
    Rule("line comments", r"--[^'\"\r\n]*(\r|\n|$)", r" \1", redact=True),
    Rule("hash comments", r"#[^'\"\r\n]*(\r|\n|$)", r" \1", ("mysql",), redact=True),
    Rule("dollar strings", r"(?s)\$\$.*?\$\$", "?", ("postgresql",), redact=True),
    Rule("strings", r"(?i)(?:\b[xbne])?'(?:[^'\\]|\\.|'')*'", "?", ("mysql",), redact=True),
    Rule("escape strings", r"(?i)\be'(?:[^'\\]|\\.|'')*'", "?", ("postgresql",), redact=True),
    Rule("strings", r"(?i)(?:\b[xbn])?'(?:[^']|'')*'", "?", ("postgresql",), redact=True),
    Rule("double-quoted strings", r'"(?:[^"\\]|\\.|"")*"', "?", ("mysql",), redact=True),
    Rule("unclosed strings", r"(?s)'.*", "?", redact=True),
    Rule("parameters", r"\$[0-9]+", "?", ("postgresql",), redact=True),
    Rule("md5 hashes", r"(?i)([._-])[0-9a-f]{32}", r"\1?", redact=True),
    # Two passes: a match consumes the character after the number, which may precede the next one.
    Rule("numbers", r"(?i)(^|[^a-z0-9])[+-]?" + _NUM + r"([^a-z0-9]|$)", r"\1?\2", redact=True),
    Rule("numbers (2nd pass)", r"(?i)(^|[^a-z0-9])[+-]?" + _NUM + r"([^a-z0-9]|$)", r"\1?\2", redact=True),
    # Runs of two or more, or one non-space: a lone space is already right, and rewriting each one
    # was the most expensive rule of the chain.
    Rule("whitespace", _WS + r"{2,}|[\t\r\n\f\v]", " ", redact=True),
    Rule("trailing semicolons", r"[ ;]+$", "", redact=True),
    # Fingerprint-only rules come last, so a fingerprint is these rules applied to the full redaction.
    Rule("booleans and null", r"(?i)\b(?:true|false|null)\b", "?"),
    Rule("lists", r"(?i)\b(in|values?)(?:[ ,]*\([ ?,]*\))+", r"\1(?+)"),
    Rule("limit", r"(?i)\blimit \?(?: ?, ?\?| offset \?)?", "limit ?"),
    Rule("order by asc", r"(?i) asc( ?,| ?\)| ?$| limit)", r"\1"),
)

_SPECIAL_ADMIN = r"^administrator command: "
_SPECIAL_CALL = r"(?i)^" + _WS + r"*(call" + _WS + r"+[^ \t\r\n\f\v(]+)" + _WS + r"*\("
_SPECIAL_USE = r"(?i)^" + _WS + r"*use" + _WS + r"+[^ \t\r\n\f\v]+" + _WS + r"*;?" + _WS + r"*$"

_COMPILED: dict[tuple[str, bool], list[tuple[re.Pattern[str], str]]] = {}


def _check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")


def _rules(dialect: str, redacting: bool) -> list[Rule]:
    _check_dialect(dialect)
    return [r for r in RULES if dialect in r.dialects and (r.redact or not redacting)]


def _compiled(dialect: str, redacting: bool) -> list[tuple[re.Pattern[str], str]]:
    key = (dialect, redacting)
    if key not in _COMPILED:
        _COMPILED[key] = [(re.compile(r.pattern, re.ASCII), r.replacement)
                          for r in _rules(dialect, redacting)]
    return _COMPILED[key]


def _apply(statement: str, dialect: str, redacting: bool) -> str:
    text = statement
    for pattern, replacement in _compiled(dialect, redacting):
        text = pattern.sub(replacement, text)
    return text


def fingerprint(statement: str | None, dialect: str = "postgresql") -> str | None:
    """The normalized shape of one statement (``None`` stays ``None``)."""
    if statement is None:
        return None
    if re.match(_SPECIAL_ADMIN, statement):
        return statement
    call = re.match(_SPECIAL_CALL, statement, re.ASCII)
    if call:
        return call.group(1).lower()
    if re.match(_SPECIAL_USE, statement, re.ASCII):
        return "use ?"
    # str.lower() also folds non-ASCII letters, like DuckDB's lower().
    return _apply(statement, dialect, redacting=False).lower().strip(" ")


def redact(statement: str | None, dialect: str = "postgresql", max_chars: int = 2000) -> str | None:
    """The statement with comments removed, literals replaced by ``?`` and whitespace collapsed, case
    kept; truncated to ``max_chars``."""
    if statement is None:
        return None
    return _apply(statement, dialect, redacting=True).strip(" ")[:max_chars]


def query_id(fp: str | None) -> str | None:
    """Stable id of a fingerprint: the first 16 hex digits of its MD5."""
    return None if fp is None else hashlib.md5(fp.encode()).hexdigest()[:16]


# --- DuckDB -----------------------------------------------------------------------------------------

def _chain(expr: str, rules: list[Rule]) -> str:
    for rule in rules:
        expr = f"regexp_replace({expr}, {sql_string(rule.pattern)}, {sql_string(rule.replacement)}, 'g')"
    return expr


def fingerprint_sql(expr: str, dialect: str = "postgresql") -> str:
    """A DuckDB SQL expression computing :func:`fingerprint` of the VARCHAR expression ``expr``."""
    return _specials(expr, f"trim(lower({_chain(expr, _rules(dialect, False))}), ' ')")


def redact_sql(expr: str, dialect: str = "postgresql", max_chars: int = 2000) -> str:
    """A DuckDB SQL expression computing :func:`redact` of ``expr``."""
    return f"left(trim({_chain(expr, _rules(dialect, True))}, ' '), {int(max_chars)})"


def query_id_sql(expr: str) -> str:
    """A DuckDB SQL expression computing :func:`query_id` of a fingerprint expression."""
    return f"left(md5({expr}), 16)"


def _specials(expr: str, otherwise: str) -> str:
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL "
        f"WHEN regexp_matches({expr}, {sql_string(_SPECIAL_ADMIN)}) THEN {expr} "
        f"WHEN regexp_matches({expr}, {sql_string(_SPECIAL_CALL)}) "
        f"THEN lower(regexp_extract({expr}, {sql_string(_SPECIAL_CALL)}, 1)) "
        f"WHEN regexp_matches({expr}, {sql_string(_SPECIAL_USE)}) THEN 'use ?' "
        f"ELSE {otherwise} END"
    )


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create temporary macros on ``con``, for each dialect suffix ``pg`` and ``mysql``:
    ``pk_fingerprint_<d>(q)``, ``pk_redact_<d>(q)`` (= :func:`fingerprint`, :func:`redact`), and for bulk
    use the cheaper pair ``pk_redacted_full_<d>(q)`` (redaction, untrimmed and untruncated) +
    ``pk_fingerprint_redacted_<d>(q, r)`` (the fingerprint of ``q`` given ``r = pk_redacted_full_<d>(q)``);
    plus ``pk_query_id(fp)``."""
    for dialect, suffix in (("postgresql", "pg"), ("mysql", "mysql")):
        fp_expr = fingerprint_sql("q", dialect)
        con.execute(f"CREATE OR REPLACE TEMP MACRO pk_fingerprint_{suffix}(q) AS {fp_expr}")
        con.execute(f"CREATE OR REPLACE TEMP MACRO pk_redact_{suffix}(q) AS {redact_sql('q', dialect)}")
        con.execute(f"CREATE OR REPLACE TEMP MACRO pk_redacted_full_{suffix}(q) AS "
                    f"{_chain('q', _rules(dialect, True))}")
        finish = [r for r in _rules(dialect, False) if not r.redact]
        con.execute(f"CREATE OR REPLACE TEMP MACRO pk_fingerprint_redacted_{suffix}(q, r) AS "
                    + _specials("q", f"trim(lower({_chain('r', finish)}), ' ')"))
    con.execute(f"CREATE OR REPLACE TEMP MACRO pk_query_id(fp) AS {query_id_sql('fp')}")
