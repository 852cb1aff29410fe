"""Access-log formats: the catalogue of built-in formats, the NGINX ``log_format`` parser and format
detection. :mod:`kit.ingest.access_log` turns a :class:`LogFormat` into SQL and loads the rows.

==============  ==============================================================================
``common``      Apache/NGINX common log format: ``%h %l %u %t "%r" %>s %b``
``combined``    common + ``"referer" "user-agent"`` (trailing extra fields tolerated)
``combined_kv`` combined + trailing ``key=value`` fields: ``rt=$request_time
                urt=$upstream_response_time ucs=$upstream_cache_status`` (long names accepted too)
``nginx-json``  one JSON object per line (NGINX ``escape=json``); keys mapped by name
``w3c``         W3C extended / IIS / CloudFront (``#Fields:`` header; header lines are skipped)
``squid``       Squid native: ``time elapsed client code/status bytes method URL user hier mime``
``nginx``       any NGINX ``log_format`` given verbatim with ``--log-format`` (known variables mapped)
==============  ==============================================================================
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from kit.errors import ParameterError
from kit.ingest.core import first_lines, sql_string

__all__ = [
    "AUTO_FORMATS",
    "BUILTIN_FORMATS",
    "FORMAT_NAMES",
    "JSON_KEY_ALIASES",
    "NGINX_VARIABLES",
    "LogFormat",
    "detect_format",
    "get_format",
    "json_keys_from_sample",
    "parse_nginx_log_format",
    "sample_lines",
]

SAMPLE_LINES = 200


@dataclass(frozen=True)
class LogFormat:
    """How to read one log format. ``regex`` is anchored RE2 whose named groups use canonical names
    (client, time, request, method, target, path, query, status, bytes, user_agent, rt, urt, ucs,
    host, content_type, code, kv); ``check`` is the same without captures (a fast DFA test)."""

    name: str
    kind: str = "regex"                       # regex | json | w3c
    regex: str = ""
    check: str = ""
    fast: str = ""                            # "" or "clf": split-on-quotes extraction (access_log)
    fast_parts: int = 0                       # clf: number of '"'-separated parts of a well-formed line
    fast_tail: str = ""                       # clf: RE2 the part after the last quote must match
    time_kind: str = "clf"                    # clf | iso | epoch | auto
    latency_ms_per_unit: float = 1000.0       # request time unit → ms
    upstream_ms_per_unit: float = 1000.0
    json_keys: tuple[tuple[str, str], ...] = ()   # (canonical, json key) for nginx-json
    source_text: str = ""                     # the log_format as given
    groups: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind == "regex" and not self.groups:
            object.__setattr__(self, "groups", tuple(re.findall(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>", self.regex)))


def _nocap(regex: str) -> str:
    """The regex with its named groups turned into non-capturing ones (for DFA matching)."""
    return re.sub(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>", "(?:", regex)


def _qf(name: str) -> str:
    return rf'"(?P<{name}>(?:[^"\\]|\\.)*)"'


_CLF_HEAD = rf"(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]*)\] {_qf('request')} (?P<status>\d{{3}}) (?P<bytes>\d+|-)"
_COMBINED = rf"{_CLF_HEAD} {_qf('referer')} {_qf('user_agent')}"
_KV_KEYS = r"(?:rt|urt|ucs|request_time|upstream_response_time|upstream_cache_status)="


def _regex_format(name: str, regex: str, **kw: Any) -> LogFormat:
    return LogFormat(name=name, regex=regex, check=_nocap(regex), **kw)


BUILTIN_FORMATS: dict[str, LogFormat] = {
    "common": _regex_format("common", rf"^{_CLF_HEAD}$", fast="clf", fast_parts=3),
    "combined": _regex_format("combined", rf"^{_COMBINED}(?P<kv>(?:\s.*)?)$", fast="clf", fast_parts=7,
                              fast_tail=r"(?:\s.*)?"),
    "combined_kv": _regex_format("combined_kv", rf"^{_COMBINED}(?P<kv>\s.*{_KV_KEYS}.*)$", fast="clf",
                                 fast_parts=7, fast_tail=rf"\s.*{_KV_KEYS}.*"),
    "squid": _regex_format(
        "squid",
        r"^(?P<time>\d+(?:\.\d+)?)\s+(?P<rt>-?\d+) (?P<client>\S+) (?P<code>[A-Za-z_]+)/(?P<status>\d{3}) "
        r"(?P<bytes>\d+) (?P<method>\S+) (?P<target>\S+) \S+ \S+ (?P<content_type>\S+)(?:\s.*)?$",
        time_kind="epoch", latency_ms_per_unit=1.0),
    "nginx-json": LogFormat(name="nginx-json", kind="json", time_kind="auto"),
    "w3c": LogFormat(name="w3c", kind="w3c", time_kind="w3c", latency_ms_per_unit=1.0),
}
FORMAT_NAMES = (*BUILTIN_FORMATS, "nginx")
AUTO_FORMATS = ("nginx-json", "w3c", "squid", "combined_kv", "combined", "common")

# ---------------------------------------------------------------------------------------------- nginx log_format

# nginx variable → canonical field
NGINX_VARIABLES: dict[str, str] = {
    "remote_addr": "client", "realip_remote_addr": "client",
    "time_local": "time", "time_iso8601": "time", "msec": "time",
    "request": "request", "request_method": "method", "request_uri": "target",
    "uri": "path", "document_uri": "path", "args": "query", "query_string": "query",
    "status": "status", "body_bytes_sent": "bytes", "bytes_sent": "bytes_total",
    "request_time": "rt", "upstream_response_time": "urt", "upstream_cache_status": "ucs",
    "host": "host", "http_host": "host", "server_name": "host",
    "http_user_agent": "user_agent", "http_referer": "referer",
    "sent_http_content_type": "content_type",
}
_TIME_KIND = {"time_local": "clf", "time_iso8601": "iso", "msec": "epoch"}
_VAR_PATTERN = {
    "status": r"\d{3}", "body_bytes_sent": r"\d+|-", "bytes_sent": r"\d+|-", "msec": r"[0-9.]+",
    "request_time": r"[0-9.]+|-", "time_iso8601": r"[^ \"]+",
    "upstream_response_time": r"-|[0-9.]+(?:(?:, | : )(?:[0-9.]+|-))*",
}

# JSON keys recognized in nginx-json lines (first present wins), per canonical field
JSON_KEY_ALIASES: dict[str, tuple[str, ...]] = {
    "time": ("time_iso8601", "time_local", "time", "timestamp", "@timestamp", "msec", "ts"),
    "client": ("remote_addr", "realip_remote_addr", "client", "client_ip", "remote_ip", "ip"),
    "request": ("request",),
    "method": ("request_method", "method"),
    "target": ("request_uri", "url"),
    "path": ("uri", "path"),
    "query": ("args", "query_string", "query"),
    "status": ("status", "status_code"),
    "bytes": ("body_bytes_sent", "bytes_sent", "bytes", "size"),
    "rt": ("request_time", "rt", "duration"),
    "urt": ("upstream_response_time", "urt"),
    "ucs": ("upstream_cache_status", "ucs", "cache_status", "cache"),
    "host": ("host", "http_host", "server_name"),
    "user_agent": ("http_user_agent", "user_agent"),
    "content_type": ("sent_http_content_type", "content_type"),
}


def _directive_strings(text: str) -> tuple[str, bool]:
    """The format string of a ``log_format`` directive (quoted parts joined) and whether escape=json."""
    body = text.strip().rstrip(";").strip()
    if not body.startswith("log_format"):
        return text.strip(), False
    rest = body[len("log_format"):].strip()
    parts = rest.split(None, 1)
    rest = parts[1] if len(parts) > 1 else ""
    escape_json = False
    m = re.match(r"escape=(\w+)\s*", rest)
    if m:
        escape_json = m.group(1) == "json"
        rest = rest[m.end():]
    strings = re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", rest)
    if strings:
        return "".join(a or b for a, b in strings), escape_json
    return rest.strip(), escape_json


def parse_nginx_log_format(text: str) -> LogFormat:
    """A LogFormat from an NGINX ``log_format`` directive or its format string, verbatim.

    Known variables map to columns (``NGINX_VARIABLES``); others are matched and ignored. A JSON
    template (``escape=json``, ``{"k":"$var",...}``) gives an ``nginx-json`` format with its key mapping.
    ValueError when the format has no time variable ($time_local, $time_iso8601, $msec)."""
    fmt, escape_json = _directive_strings(text)
    if fmt.lstrip().startswith("{"):
        pairs = re.findall(r'"([^"]+)"\s*:\s*"?\$\{?([A-Za-z0-9_]+)\}?', fmt)
        keys: list[tuple[str, str]] = []
        seen: set[str] = set()
        for key, var in pairs:
            canon = NGINX_VARIABLES.get(var)
            if canon == "bytes_total":
                canon = "bytes" if not any(v == "body_bytes_sent" for _, v in pairs) else None
            if canon and canon not in seen:
                keys.append((canon, key))
                seen.add(canon)
        if "time" not in seen:
            raise ParameterError(f"log_format {text!r}: no time variable ($time_local, $time_iso8601 or $msec)")
        return LogFormat(name="nginx-json", kind="json", time_kind="auto", json_keys=tuple(keys),
                         source_text=text)
    del escape_json
    tokens = re.split(r"(\$\{[A-Za-z0-9_]+\}|\$[A-Za-z0-9_]+)", fmt)
    regex = "^"
    used: set[str] = set()
    time_kind = ""
    has_body_bytes = "$body_bytes_sent" in fmt or "${body_bytes_sent}" in fmt
    for i, token in enumerate(tokens):
        if i % 2 == 0:
            regex += re.escape(token)
            continue
        var = token.strip("${}")
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        nxt = following[:1]
        if nxt == '"':
            pattern = r'(?:[^"\\]|\\.)*'
        elif var in _VAR_PATTERN:
            pattern = _VAR_PATTERN[var]
        elif nxt == "]":
            pattern = r"[^\]]*"
        else:
            pattern = r"\S*"
        if var == "time_local" and nxt != '"':
            pattern = r"[^\]]+" if nxt == "]" else r"\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}"
        canon = NGINX_VARIABLES.get(var)
        if canon == "bytes_total":
            canon = None if has_body_bytes else "bytes"
        if canon and canon not in used:
            used.add(canon)
            if canon == "time":
                time_kind = _TIME_KIND[var]
            regex += f"(?P<{canon}>{pattern})"
        else:
            regex += f"(?:{pattern})"
    regex += "$"
    if "time" not in used:
        raise ParameterError(f"log_format {text!r}: no time variable ($time_local, $time_iso8601 or $msec); "
                             "requests need a timestamp")
    try:
        re.compile(regex)
    except re.error as exc:  # pragma: no cover - the construction escapes literals
        raise ParameterError(f"log_format {text!r}: cannot build a pattern: {exc}") from None
    return _regex_format("nginx", regex, time_kind=time_kind, source_text=text)


def get_format(name: str | None, log_format: str | None = None) -> LogFormat | None:
    """The LogFormat for ``--format``/``--log-format`` (None = detect). ValueError on an unknown name."""
    if log_format:
        return parse_nginx_log_format(log_format)
    if not name or name == "auto":
        return None
    if name not in BUILTIN_FORMATS:
        raise ParameterError(f"unknown access-log format {name!r}; known: {', '.join(FORMAT_NAMES)} "
                             "(use --log-format for an NGINX log_format string)")
    return BUILTIN_FORMATS[name]


# ---------------------------------------------------------------------------------------------- detection

def sample_lines(path: Path, n: int = SAMPLE_LINES) -> list[str]:
    """The first ``n`` non-blank lines of ``path`` (plain or compressed): what detection reads."""
    return [line for line in first_lines(path, n * 2, max_chars=100_000) if line.strip()][:n]


def detect_format(con: duckdb.DuckDBPyConnection, lines: Sequence[str]) -> tuple[LogFormat | None, dict[str, int]]:
    """The best format for sample ``lines`` (the most lines matching; ties → the more specific format)
    and the match count of every format tried."""
    scores: dict[str, int] = {}
    data = [line for line in lines if line.strip()]
    if not data:
        return None, scores
    con.execute("CREATE OR REPLACE TEMP TABLE _al_sample (line VARCHAR)")
    con.executemany("INSERT INTO _al_sample VALUES (?)", [[line] for line in data])
    for name in AUTO_FORMATS:
        fmt = BUILTIN_FORMATS[name]
        if fmt.kind == "json":
            row = con.execute("SELECT count(*) FILTER (WHERE starts_with(ltrim(line), '{') "
                              "AND json_valid(line)) FROM _al_sample").fetchone()
        elif fmt.kind == "w3c":
            row = con.execute("SELECT CASE WHEN count(*) FILTER (WHERE starts_with(line, '#Fields:')) > 0 "
                              "THEN count(*) ELSE 0 END FROM _al_sample").fetchone()
        else:
            row = con.execute(f"SELECT count(*) FILTER (WHERE regexp_full_match(line, {sql_string(fmt.check)})) "
                              "FROM _al_sample").fetchone()
        scores[name] = int(row[0]) if row else 0
    con.execute("DROP TABLE IF EXISTS _al_sample")
    best = max(AUTO_FORMATS, key=lambda n: (scores[n], -AUTO_FORMATS.index(n)))
    if scores[best] == 0:
        return None, scores
    return BUILTIN_FORMATS[best], scores


def json_keys_from_sample(lines: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(canonical field, JSON key) for the keys of ``JSON_KEY_ALIASES`` present in sample nginx-json lines."""
    keys: set[str] = set()
    for line in lines[:50]:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            keys.update(obj)
    return tuple((canon, next(k for k in aliases if k in keys))
                 for canon, aliases in JSON_KEY_ALIASES.items() if any(k in keys for k in aliases))
