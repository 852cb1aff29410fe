"""The compiled CLF reader (kit.ingest.clf_fast): on random well-formed lines it takes every line and gives
the same rows as the general (DuckDB regex + strptime + SQL templating) path; chunking never loses or
renumbers a line."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kit.ingest import clf_fast
from kit.ingest.routes import route_of
from tests.test_ingest_properties import rows_of

HEX = "0123456789abcdefABCDEF"
segment = st.one_of(
    st.integers(0, 10**12).map(str),
    st.tuples(st.integers(0, 999), st.sampled_from([".json", ".jpg", ".x", ".abcdefgh", ".abcdefghi", ".j-s"]))
    .map(lambda t: f"{t[0]}{t[1]}"),
    st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()),
    st.just("abcdefab-abcd-abcd-abcd-abcdefabcdef"),          # a UUID without digits: SQL keeps it
    st.text(HEX, min_size=14, max_size=40),
    st.text("abcxyz-_.~%é", max_size=8),
)
paths = st.lists(segment, min_size=1, max_size=5).map(lambda segs: "/" + "/".join(segs))
queries = st.one_of(st.just(""), st.just("?"), st.sampled_from(["?a=1", "?token=x&page=2", "?q=a%20b&Session_ID=7",
                                                                 "?x", "?a=1&a=2&API_KEY=k"]))
decimals = st.one_of(st.just("-"), st.just(""), st.integers(0, 10**9).map(str),
                     st.tuples(st.integers(0, 99_999), st.integers(0, 10**9), st.integers(1, 9))
                     .map(lambda t: f"{t[0]}.{str(t[1]).zfill(t[2])[:t[2]]}"))
times = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 12, 31))
offsets = st.tuples(st.sampled_from("+-"), st.integers(0, 14), st.integers(0, 59))


@st.composite
def clf_lines(draw, kind: str) -> str:
    t = draw(times)
    sign, zh, zm = draw(offsets)
    stamp = t.strftime("%d/%b/%Y:%H:%M:%S") + f" {sign}{zh:02d}{zm:02d}"
    client = draw(st.sampled_from(["1.2.3.4", "-", "2001:db8::1", "10.0.0.7"]))
    method = draw(st.sampled_from(["GET", "POST", "PURGE", "get"]))
    proto = draw(st.sampled_from([" HTTP/1.1", " HTTP/2.0", "", " "]))
    request = f"{method} {draw(paths)}{draw(queries)}{proto}"
    status = draw(st.integers(100, 599))
    size = draw(st.one_of(st.just("-"), st.integers(0, 10**15).map(str)))
    line = f'{client} - {draw(st.sampled_from(["-", "bob"]))} [{stamp}] "{request}" {status} {size}'
    if kind == "common":
        return line
    agent = draw(st.sampled_from(["-", "", "curl/8", "Mozilla/5.0 (X11; Linux) Gecko/20100101 Firefox/120.0 ü"]))
    line += f' "{draw(st.sampled_from(["-", "https://example.org/a?b=1"]))}" "{agent}"'
    if kind == "combined" and draw(st.booleans()):   # NGINX's default "main" adds X-Forwarded-For
        return line + draw(st.sampled_from(["", ' "-"', ' "203.0.113.9, 10.0.0.1"', ' x "q" \\"', " é"]))
    ucs = draw(st.sampled_from(["HIT", "miss", "-", "", "STALE"]))
    return line + f" rt={draw(decimals)} urt={draw(decimals)} ucs={ucs}"


def _read_all(path: Path, kind: int, **kw) -> tuple[pa.Table, list[tuple[int, bytes]], int]:
    chunks = list(clf_fast.read_clf_chunks(path, kind, **kw))
    table = pa.concat_tables([c.table for c in chunks]) if chunks else None
    return table, [o for c in chunks for o in c.others], sum(c.lines for c in chunks)


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("fmt", ["common", "combined", "combined_kv"])
@SETTINGS
@given(data=st.data())
def test_compiled_reader_takes_well_formed_lines_and_matches_the_general_path(tmp_path_factory, fmt, data):
    lines = data.draw(st.lists(clf_lines(fmt), min_size=1, max_size=10))
    path = tmp_path_factory.mktemp("clf") / "a.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, others, n = _read_all(path, {"common": 0, "combined": 1, "combined_kv": 2}[fmt])
    assert (n, others) == (len(lines), [])
    fast, general = rows_of(fmt, lines, fast=True), rows_of(fmt, lines, fast=False)
    assert fast == general
    assert fast[0] == (len(lines), len(lines), 0, 0)


def test_routes_follow_the_documented_rules(tmp_path):
    paths_in = ["/product/12345", "/a/1/2/3", "/img/7.jpg", "/x/0123456789abcdef0", "/w/deadbeefdeadbeef",
                "/u/550e8400-e29b-41d4-a716-446655440000", "/w/deadbeefdeadbeefzz", "/7.abcdefghi", "/", "//", "/a//1/"]
    lines = [f'1.2.3.4 - - [10/Oct/2024:13:55:36 +0200] "GET {p} HTTP/1.1" 200 1' for p in paths_in]
    path = tmp_path / "r.log"
    path.write_text("\n".join(lines) + "\n")
    table, others, _ = _read_all(path, clf_fast.KIND_COMMON)
    assert others == []
    assert table.column("route").to_pylist() == [route_of(p) for p in paths_in]


@pytest.mark.parametrize("chunk_bytes", [64, 200, 1000, 1 << 20])
@pytest.mark.parametrize("skip", [0, 1, 5])
@pytest.mark.parametrize("first_chunk_bytes", [30, 100, 4 << 20])   # a first chunk shorter than a line, too
def test_chunks_keep_every_line_and_its_number(tmp_path, monkeypatch, chunk_bytes, skip, first_chunk_bytes):
    monkeypatch.setattr(clf_fast, "FIRST_CHUNK_BYTES", first_chunk_bytes)
    good = '1.2.3.4 - - [10/Oct/2024:13:55:36 +0200] "GET /a/{} HTTP/1.1" 200 {}'
    lines = [good.format(i, i) if i % 4 else f"bad line {i}" for i in range(1, 40)]
    path = tmp_path / "c.log"
    path.write_text("\n".join(lines))            # no newline after the last line
    table, others, n = _read_all(path, clf_fast.KIND_COMMON, skip_lines=skip, chunk_bytes=chunk_bytes)
    assert n == len(lines) - skip
    assert [no for no, _ in others] == [i for i in range(skip + 1, 40) if i % 4 == 0]
    assert all(raw == f"bad line {no}".encode() for no, raw in others)
    assert table.column("bytes_sent").to_pylist() == [i for i in range(skip + 1, 40) if i % 4]
    assert table.column("path").to_pylist() == [f"/a/{i}" for i in range(skip + 1, 40) if i % 4]


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_reading_reports_the_fraction_of_the_file_read(tmp_path, suffix):
    import gzip

    from kit.ingest import core

    text = "".join(f'1.2.3.4 - - [10/Oct/2024:13:55:36 +0200] "GET /a/{i} HTTP/1.1" 200 {i}\n' for i in range(5000))
    path = tmp_path / f"p.log{suffix}"
    path.write_bytes(gzip.compress(text.encode(), mtime=0) if suffix else text.encode())
    seen = []
    for _ in clf_fast.read_clf_chunks(path, clf_fast.KIND_COMMON, chunk_bytes=20_000):
        seen.append(core._file_progress[-1]())
    assert core._file_progress == []          # removed when the reading ends
    assert len(seen) > 5 and seen == sorted(seen) and 0 < seen[0] < 1
    assert seen[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_the_last_chunks_shrink_so_that_the_consumer_finishes_soon_after_the_reader(tmp_path, monkeypatch, suffix):
    import gzip

    monkeypatch.setattr(clf_fast, "FIRST_CHUNK_BYTES", 1000)
    text = "".join(f'1.2.3.4 - - [10/Oct/2024:13:55:36 +0200] "GET /a/{i} HTTP/1.1" 200 {i}\n' for i in range(6000))
    path = tmp_path / f"t.log{suffix}"
    path.write_bytes(gzip.compress(text.encode(), mtime=0) if suffix else text.encode())
    sizes = [c.lines for c in clf_fast.read_clf_chunks(path, clf_fast.KIND_COMMON, chunk_bytes=40_000)]
    assert sum(sizes) == 6000
    full = max(sizes)                      # lines of a whole buffer (about 40,000 bytes)
    assert full == pytest.approx(40_000 / len(text.splitlines()[3000]), rel=0.05)
    tail = sizes[sizes.index(full):]
    assert tail[-1] <= full / 8             # the last chunk is small ...
    if not suffix:                          # ... and, with the file's size known exactly, the sizes halve
        assert all(a >= b for a, b in zip(tail, tail[1:], strict=False))


# query strings built from pieces that stress the redaction: secret words in any case and position, the
# separators, empty keys and values, and non-ASCII letters that RE2's case-insensitive match folds to ASCII
# (KELVIN SIGN → k, LONG S → s), which the reader leaves to the SQL regex
query_piece = st.sampled_from(["token", "TOKEN", "Api_Key", "pass", "passwd", "pwd", "jwt", "aUtH", "sig", "x",
                               "q", "1", "=", "&", "&&", "==", "%3D", "é", "\u212aey", "\u017fession", "-", ".", "ke",
                               "y", "SECRET", "credential"])
query_strings = st.lists(query_piece, min_size=1, max_size=8).map("".join)


@SETTINGS
@given(data=st.data())
def test_compiled_redaction_equals_the_sql_regex(tmp_path_factory, data):
    """Every query string the reader stores equals what the SQL regex (the general path's redaction, and
    the reference) makes of the raw query, for each line kind."""
    import duckdb

    from kit.ingest.routes import redact_query, redact_query_sql

    queries_in = data.draw(st.lists(query_strings, min_size=1, max_size=8))
    lines = [f'1.2.3.4 - - [10/Oct/2024:13:55:36 +0000] "GET /a?{q} HTTP/1.1" 200 1' for q in queries_in]
    path = tmp_path_factory.mktemp("redact") / "q.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table, others, _ = _read_all(path, clf_fast.KIND_COMMON)
    assert others == []
    con = duckdb.connect()
    con.register("chunk", table)
    got = [r[0] for r in con.execute(
        f"SELECT CASE WHEN query_regex THEN {redact_query_sql('query')} ELSE query END FROM chunk").fetchall()]
    con.register("raw", pa.table({"q": [q or None for q in queries_in]}))
    expected = [r[0] for r in con.execute(f"SELECT {redact_query_sql('q')} FROM raw").fetchall()]
    assert got == expected
    assert [g for g in got if g is not None] == [redact_query(q) for q in queries_in if q]   # Python's re agrees
    ascii_only = [q.isascii() for q in queries_in if q]
    assert table.column("query_regex").to_pylist() == [not a for a in ascii_only]


# client values: short strings, and dotted quads both canonical (looked up by their integer) and not
# (leading zeros, octets over 255, too few or many parts: looked up as strings)
_OCTETS = st.sampled_from(["0", "1", "9", "10", "99", "255", "256", "01", "00", "1000", ""])
_CLIENTS = st.one_of(st.text("ab1.:-\u00e9", min_size=1, max_size=4),
                     st.builds(lambda *o: ".".join(o), _OCTETS, _OCTETS, _OCTETS, _OCTETS),
                     st.sampled_from(["1.2.3", "1.2.3.4.5", "::1", "2001:db8::1", "255.255.255.255", " 1.2.3.4"]))


@SETTINGS
@example(values=["1.2.3.4", "01.2.3.4", "1.2.3.04", "1.2.3.4", "256.2.3.4", "0.0.0.0", "00.0.0.0", "1.2.3.4",
                 "1.2.3", "0.2.3.4", "1.2.3", "::1", "1.2.3.04"], cuts=[3, 9], skipped=set())
@given(values=st.lists(_CLIENTS, min_size=1, max_size=300),
       cuts=st.lists(st.integers(0, 300), max_size=4), skipped=st.sets(st.integers(0, 299)))
def test_client_dictionary_numbers_values_in_order_of_first_occurrence(values, cuts, skipped):
    """Over chunks (``cuts``), codes number the distinct values of the rows taken (the reader encodes its
    good lines only, not the ``skipped`` ones) in order of first occurrence, as a Python dict does, and each
    chunk hands out exactly the values it saw first, IPv4 addresses and other strings mixed; a dictionary
    made with room for two values grows and rehashes many times on the way."""
    import numpy as np

    encoded = [v.encode() for v in values]
    dictionary = clf_fast.Dictionary(capacity=2)
    codes, new = [], []
    bounds = sorted({0, len(values), *(c for c in cuts if c < len(values))})
    for lo, hi in itertools.pairwise(bounds):
        part = encoded[lo:hi]
        ends = np.cumsum([len(v) for v in part]).astype(np.int32)
        starts = (ends - [len(v) for v in part]).astype(np.int32)
        rows = np.array([i for i in range(hi - lo) if lo + i not in skipped], dtype=np.int64)
        got, fresh = dictionary.encode(np.frombuffer(b"".join(part), dtype=np.uint8), starts, ends, rows)
        codes += got.tolist()
        new += fresh.to_pylist()
    taken = [v for i, v in enumerate(values) if i not in skipped]
    order = list(dict.fromkeys(taken))
    assert codes == [order.index(v) for v in taken]
    assert new == order


def test_fast_ingest_hashes_each_client_and_redacts_each_query_across_chunks(tmp_path, monkeypatch):
    """Through the whole fast path, in many small chunks (clients first seen in one chunk recur in later
    ones, so their codes index hashes computed chunks before): each row's client hash is
    left(md5(salt || client), 16) computed by hashlib, NULL for ``-``, and its query is the Python twin's
    redaction of the raw one."""
    import hashlib

    from kit.ingest import access_log
    from kit.ingest.access_log import load_access_log
    from kit.ingest.log_formats import get_format
    from kit.ingest.routes import redact_query
    from kit.warehouse import begin_source, connect

    monkeypatch.setattr(access_log, "_INSERT_CHUNK_BYTES", 400)   # the chunk size of a DuckDB file's ingest
    monkeypatch.setattr(clf_fast, "FIRST_CHUNK_BYTES", 150)
    clients = ["10.0.0.1", "-", "2001:db8::1", "10.0.0.2", "192.168.1.10"] + [f"172.16.0.{i}" for i in range(40)]
    queries = ["token=abc&page=2", "a=1", "Session_ID=7&x=y=z", "q=é&api_key=k", "\u212aey=v&b=2", "x"]
    rows = [(clients[(i * 7) % len(clients)] if i % 3 else clients[i % 5], queries[i % len(queries)])
            for i in range(300)]
    path = tmp_path / "h.log"
    path.write_text("".join(f'{c} - - [10/Oct/2024:13:55:36 +0000] "GET /p/{i}?{q} HTTP/1.1" 200 {i}\n'
                            for i, (c, q) in enumerate(rows)), encoding="utf-8")
    assert len(list(clf_fast.read_clf_chunks(path, clf_fast.KIND_COMMON, chunk_bytes=400))) > 20

    con = connect(":memory:")
    source = begin_source(con, "access-log", "h")
    counts = load_access_log(con, source, path, fmt=get_format("common"), salt="pepper")
    assert (counts.rows_loaded, counts.rows_rejected) == (len(rows), 0)
    got = con.execute("SELECT bytes_sent, client_hash, query FROM requests ORDER BY bytes_sent").fetchall()

    def reference(client: str) -> str | None:
        return None if client == "-" else hashlib.md5(("pepper" + client).encode()).hexdigest()[:16]

    assert got == [(i, reference(c), redact_query(q)) for i, (c, q) in enumerate(rows)]
