"""Property tests: random and mutated lines fed to every access-log parser never crash the ingest and
every line is accounted for (loaded + rejected + skipped = lines in the file)."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.ingest.access_log import load_access_log
from kit.ingest.log_formats import get_format
from kit.warehouse import begin_source, connect

VALID = {
    "common": '1.2.3.4 - - [10/Oct/2024:13:55:36 +0200] "GET /a/1?x=1 HTTP/1.1" 200 512',
    "combined": '1.2.3.4 - - [10/Oct/2024:13:55:36 +0200] "GET /a/1 HTTP/1.1" 200 512 "-" "curl/8"',
    "combined_kv": ('1.2.3.4 - - [10/Oct/2024:13:55:36 +0200] "GET /a/1 HTTP/1.1" 200 512 "-" "curl/8" '
                    'rt=0.250 urt=0.010, 0.020 ucs=MISS'),
    "squid": "1576177221.686   3976 203.0.113.1 TCP_MISS/200 13564 GET http://x/a - HIER_DIRECT/1.2.3.4 text/plain",
    "nginx-json": ('{"time":"2024-10-10T13:55:36+02:00","remote_addr":"1.2.3.4","request":"GET /a HTTP/1.1",'
                   '"status":"200","request_time":"0.1","upstream_cache_status":"HIT"}'),
    "w3c": "2022-11-07 14:29:06 127.0.0.1 GET /us - 80 - 127.0.0.1 Go-http-client/1.1 - 404 0 2 130",
}
W3C_HEADER = ("#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
              "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken")
NGINX_FORMAT = '$remote_addr [$time_local] "$request" $status $request_time $upstream_response_time $host'
VALID["nginx"] = '1.2.3.4 [10/Oct/2024:13:55:36 +0200] "GET / HTTP/1.1" 200 0.5 0.010, 0.020 example.org'

FORMATS = sorted(VALID)
_counter = itertools.count()
_CON = connect(":memory:")


def mutate(line: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply (position, delete count, insert text) edits to a valid line."""
    for pos, cut, text in edits:
        pos %= len(line) + 1
        line = line[:pos] + text + line[pos + cut:]
    return line


line_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
                    max_size=200)
edits = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 5),
                           st.text(alphabet='0123456789 "[]-/=:.,{}\\abcxyzT+\t\x00\x1f', max_size=6)),
                 min_size=1, max_size=4)


def run(fmt_name: str, lines: list[str]) -> tuple[int, int, int, int]:
    """Ingest the lines with the named format; return (lines in file, loaded, rejected, skipped) after
    checking the tables agree with the counts."""
    fmt = get_format(None if fmt_name == "nginx" else fmt_name, NGINX_FORMAT if fmt_name == "nginx" else None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.log"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        _CON.execute("BEGIN TRANSACTION")          # rolled back: the warehouse stays empty between examples
        try:
            source = begin_source(_CON, "access-log", f"prop-{next(_counter)}")
            counts = load_access_log(_CON, source, path, fmt=fmt, salt="s")
            loaded = _CON.execute("SELECT count(*) FROM requests WHERE source_id = ?", [source.source_id]).fetchone()
            rejected = _CON.execute("SELECT count(*), count(DISTINCT line_no), min(line_no), max(line_no) "
                                    "FROM rejects WHERE source_id = ?", [source.source_id]).fetchone()
        finally:
            _CON.execute("ROLLBACK")
    assert loaded is not None and rejected is not None
    assert counts.rows_loaded == loaded[0] and counts.rows_rejected == rejected[0]
    assert rejected[0] == rejected[1], "one reject per line"
    if rejected[0]:
        assert 1 <= rejected[2] and rejected[3] <= len(lines)
    return len(lines), counts.rows_loaded, counts.rows_rejected, counts.rows_skipped


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("fmt_name", FORMATS)
@SETTINGS
@given(data=st.data())
def test_mutated_lines_are_all_accounted_for(fmt_name, data):
    valid = VALID[fmt_name]
    lines = data.draw(st.lists(st.one_of(st.just(valid), edits.map(lambda e: mutate(valid, e)), line_text),
                               min_size=1, max_size=12))
    if fmt_name == "w3c":
        lines = [W3C_HEADER, *lines]
    n, loaded, rejected, skipped = run(fmt_name, lines)
    assert loaded + rejected + skipped == n
    assert loaded >= sum(line == valid for line in lines)      # the untouched valid lines always load


@SETTINGS
@given(lines=st.lists(line_text, min_size=1, max_size=12))
def test_random_text_never_crashes_the_combined_parser(lines):
    n, loaded, rejected, skipped = run("combined", lines)
    assert loaded + rejected + skipped == n


# ---------------------------------------------------------------------------------------------- fast = general

FAST_FORMATS = ("common", "combined", "combined_kv")
KV_VARIANTS = [VALID["combined_kv"],
               VALID["combined_kv"].replace("urt=0.010, 0.020", "urt=-"),                    # standard rt/urt/ucs
               VALID["combined"] + " rt=0.5 urt=0.4 ucs=HIT",
               VALID["combined"] + ' ucs=MISS rt=0.5',                                      # other order
               VALID["combined"].replace("/a/1", "/x/0123456789abcdef0/550e8400-e29b-41d4-a716-446655440000")
               + " rt=1 urt=1 ucs=-"]
quote_edits = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 3),
                                 st.sampled_from(['"', '\\', '\\"', '\\\\', ' ', '""', '\t', '\r', ']', '[', '-',
                                                  '?token=1&a=2', '/123', 'x'])),
                       min_size=1, max_size=3)


def rows_of(fmt_name: str, lines: list[str], fast: bool) -> tuple:
    """(counts, requests rows, rejects rows) of one ingest with the fast path on or off."""
    fmt = get_format(fmt_name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.log"
        path.write_bytes("\n".join(lines).encode("utf-8") + b"\n")
        _CON.execute("BEGIN TRANSACTION")
        try:
            source = begin_source(_CON, "access-log", f"prop-{next(_counter)}")
            counts = load_access_log(_CON, source, path, fmt=fmt, salt="s", fast=fast)
            got = _CON.execute(
                "SELECT ts, method, route, path, query, status, latency_ms, upstream_ms, bytes_sent, cache_status, "
                "client_hash, user_agent FROM requests WHERE source_id = ? ORDER BY ALL",
                [source.source_id]).fetchall()
            rejected = _CON.execute("SELECT line_no, field, reason, raw FROM rejects WHERE source_id = ? "
                                    "ORDER BY ALL", [source.source_id]).fetchall()
        finally:
            _CON.execute("ROLLBACK")
    return (counts.lines_in, counts.rows_loaded, counts.rows_rejected, counts.rows_skipped), got, rejected


@pytest.mark.parametrize("fmt_name", FAST_FORMATS)
@SETTINGS
@given(data=st.data())
def test_fast_and_general_paths_give_identical_rows(fmt_name, data):
    bases = KV_VARIANTS if fmt_name == "combined_kv" else [VALID[fmt_name]]
    base = st.sampled_from(bases)
    lines = data.draw(st.lists(st.one_of(base, st.tuples(base, quote_edits).map(lambda t: mutate(*t)),
                                         st.tuples(base, edits).map(lambda t: mutate(*t)), line_text),
                               min_size=1, max_size=12))
    fast = rows_of(fmt_name, lines, fast=True)
    general = rows_of(fmt_name, lines, fast=False)
    assert fast == general
    assert sum(fast[0][1:]) == fast[0][0]
