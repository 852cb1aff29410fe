"""Access-log ingest on the shared real logs and on hand-made lines, checked against independent counts
(plain Python over the raw files) and hand-computed values."""

from __future__ import annotations

import bz2
import collections
import gzip
import json
import lzma
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from kit.cli import main as perfkit
from kit.ingest.access_log import ingest_access_log
from kit.ingest.core import IngestError
from kit.ingest.log_formats import detect_format, get_format, parse_nginx_log_format
from kit.ingest.routes import RouteRule, parse_route_rule, redact_query, route_of, route_sql
from kit.warehouse import connect

NETDATA_FULL_FORMAT = ('$host:$server_port $remote_addr - - [$time_local] "$request" $status $body_bytes_sent '
                       '$request_length $request_time $upstream_response_time $scheme $ssl_protocol $ssl_cipher '
                       '$side $drink $custom')


@pytest.fixture(scope="module")
def logs(shared_datasets: Path) -> Path:
    return shared_datasets / "access_logs"


def rows(con, sql: str, *params) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def raw_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------------------------------------- real logs

def test_elastic_apache_all_load_but_the_truncated_line(con, logs):
    path = logs / "elastic_apache" / "elastic_examples_apache_logs.log"
    lines = raw_lines(path)
    summary = ingest_access_log(con, path)
    assert summary.fmt.startswith("combined (detected")
    assert (summary.lines_in, summary.rows_loaded, summary.rows_rejected) == (10_000, 9_999, 1)
    assert rows(con, "SELECT line_no, field, reason, raw FROM rejects") == [
        (8899, "line", "does not match the combined format", lines[8898])]
    good = [line for i, line in enumerate(lines) if i != 8898]
    # independent: statuses and bytes from splitting on quotes
    status = collections.Counter(int(line.split('"')[2].split()[0]) for line in good)
    assert dict(rows(con, "SELECT status, count(*) FROM requests GROUP BY ALL")) == status
    sizes = [line.split('"')[2].split()[1] for line in good]
    assert rows(con, "SELECT sum(bytes_sent) FROM requests")[0][0] == sum(int(s) for s in sizes if s != "-")
    stamps = [datetime.strptime(line.split("[", 1)[1].split("]", 1)[0], "%d/%b/%Y:%H:%M:%S %z") for line in good]
    assert rows(con, "SELECT min(ts), max(ts) FROM requests")[0] == (min(stamps), max(stamps))
    methods = collections.Counter(line.split('"')[1].split()[0] for line in good)
    assert dict(rows(con, "SELECT method, count(*) FROM requests GROUP BY ALL")) == methods
    # paths never keep a query string; client addresses are not stored in clear
    assert rows(con, "SELECT count(*) FROM requests WHERE contains(path, '?')") == [(0,)]
    assert rows(con, "SELECT count(*) FROM requests WHERE client_hash = '83.149.9.216'") == [(0,)]
    clients = {line.split()[0] for line in good}
    assert rows(con, "SELECT count(DISTINCT client_hash) FROM requests") == [(len(clients),)]


def test_netdata_common_rejects_exactly_the_unmatched_lines(con, logs):
    path = logs / "netdata_weblog" / "common.log"
    lines = raw_lines(path)
    unmatched = [i + 1 for i, line in enumerate(lines) if line.startswith("Unmatched!")]
    summary = ingest_access_log(con, path, format="common")
    assert (summary.lines_in, summary.rows_rejected, summary.rows_loaded) == (
        len(lines), len(unmatched), len(lines) - len(unmatched))
    assert [r[0] for r in rows(con, "SELECT line_no FROM rejects ORDER BY 1")] == unmatched
    assert rows(con, "SELECT DISTINCT reason FROM rejects") == [("does not match the common format",)]
    status = collections.Counter(int(line.split('"')[2].split()[0]) for line in lines
                                 if not line.startswith("Unmatched!"))
    assert dict(rows(con, "SELECT status, count(*) FROM requests GROUP BY ALL")) == status
    # +0100 in the log → UTC
    assert rows(con, "SELECT min(ts) FROM requests")[0][0] == datetime(2009, 3, 22, 8, 30, 31, tzinfo=UTC)


def test_netdata_full_with_a_verbatim_nginx_log_format(con, logs):
    path = logs / "netdata_weblog" / "full.log"
    lines = raw_lines(path)
    good = [line for line in lines if not line.startswith("Unmatched!")]
    summary = ingest_access_log(con, path, log_format=f"log_format full '{NETDATA_FULL_FORMAT}';")
    assert (summary.fmt, summary.rows_loaded, summary.rows_rejected) == ("nginx", len(good), len(lines) - len(good))
    after = [line.split('"')[2].split() for line in good]          # status bytes length rt urt scheme ...
    assert rows(con, "SELECT sum(latency_ms), sum(upstream_ms) FROM requests")[0] == pytest.approx(
        (sum(float(a[3]) for a in after) * 1000, sum(float(a[4]) for a in after) * 1000))
    hosts = collections.Counter(line.split()[0].rsplit(":", 1)[0] for line in good)
    assert dict(rows(con, "SELECT host, count(*) FROM requests GROUP BY ALL")) == hosts
    assert "2001:db8:1ce::1" in hosts                                # IPv6 host before ':port'


def test_iis_w3c_skips_directives(con, logs):
    path = logs / "netdata_weblog" / "u_ex221107.log"
    lines = raw_lines(path)
    data = [line.split(" ") for line in lines if not line.startswith("#")]
    summary = ingest_access_log(con, path)
    assert summary.fmt.startswith("w3c")
    assert (summary.rows_loaded, summary.rows_rejected, summary.rows_skipped) == (
        len(data), 0, sum(line.startswith("#") for line in lines))
    assert rows(con, "SELECT sum(latency_ms) FROM requests")[0][0] == sum(float(d[-1]) for d in data)
    assert dict(rows(con, "SELECT status, count(*) FROM requests GROUP BY ALL")) == collections.Counter(
        int(d[11]) for d in data)
    queries = collections.Counter(None if d[5] == "-" else d[5] for d in data)
    assert dict(rows(con, "SELECT query, count(*) FROM requests GROUP BY ALL")) == queries
    assert rows(con, "SELECT min(ts) FROM requests")[0][0] == datetime(2022, 11, 7, 14, 29, 6, tzinfo=UTC)
    assert rows(con, "SELECT count(*) FROM requests WHERE bytes_sent IS NOT NULL") == [(0,)]  # no sc-bytes


def test_squid_native(con, logs):
    path = logs / "netdata_squid" / "access.log"
    lines = raw_lines(path)
    good = [line.split() for line in lines if not line.startswith("Unmatched!")]
    summary = ingest_access_log(con, path)
    assert summary.fmt.startswith("squid")
    assert (summary.rows_loaded, summary.rows_rejected) == (len(good), len(lines) - len(good))
    assert rows(con, "SELECT sum(latency_ms), sum(bytes_sent) FROM requests")[0] == (
        sum(float(g[1]) for g in good), sum(int(g[4]) for g in good))
    codes = collections.Counter(g[3].split("/")[0] for g in good)
    expected_cache = collections.Counter()
    for code, n in codes.items():
        expected_cache["STALE" if "STALE" in code else "HIT" if "HIT" in code else
                       "MISS" if "MISS" in code else None] += n
    assert dict(rows(con, "SELECT cache_status, count(*) FROM requests GROUP BY ALL")) == dict(expected_cache)
    assert dict(rows(con, "SELECT status, count(*) FROM requests GROUP BY ALL")) == collections.Counter(
        int(g[3].split("/")[1]) for g in good)
    first = good[0]
    assert rows(con, "SELECT min(ts) FROM requests")[0][0] == datetime.fromtimestamp(
        min(float(g[0]) for g in good), UTC)
    assert rows(con, "SELECT count(*) FROM requests WHERE host = 'localhost' AND path = '/counters'")[0][0] == sum(
        g[6] == "cache_object://localhost/counters" for g in good)
    del first


@pytest.mark.parametrize("name", ["custom.log", "custom_time_fields.log"])
def test_not_an_access_log_fails_with_first_lines_and_formats(con, logs, name):
    with pytest.raises(IngestError) as info:
        ingest_access_log(con, logs / "netdata_weblog" / name)
    message = str(info.value)
    assert name in message and "no line matches a known access-log format" in message
    for fmt in ("nginx-json", "w3c", "squid", "combined_kv", "combined", "common"):
        assert fmt in message
    assert "1: '" in message
    assert rows(con, "SELECT count(*) FROM ingest_log") == [(0,)]


@pytest.mark.parametrize("suffix,compress", [
    (".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress),
    (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_compressed_inputs_load_the_same(con, logs, tmp_path, suffix, compress):
    source = logs / "elastic_apache" / "elastic_examples_apache_logs.log"
    packed = tmp_path / f"access.log{suffix}"
    packed.write_bytes(compress(source.read_bytes()))
    summary = ingest_access_log(con, packed, salt="s")
    assert (summary.rows_loaded, summary.rows_rejected) == (9_999, 1)
    assert rows(con, "SELECT line_no FROM rejects") == [(8899,)]


# ---------------------------------------------------------------------------------------------- hand-made lines

KV_LINES = [
    '1.2.3.4 - - [10/Oct/2024:13:55:36 +0200] "GET /product/123?token=abc&q=1 HTTP/1.1" 200 512 "-" "curl/8" '
    'rt=0.250 urt=0.200 ucs=MISS',
    '1.2.3.4 - - [10/Oct/2024:13:55:37 +0200] "GET /product/123 HTTP/1.1" 200 512 "-" "curl/8" '
    'rt=0.001 urt=- ucs=HIT',
    '5.6.7.8 - bob [10/Oct/2024:13:55:38 +0200] "POST /api/v1/users/42/orders HTTP/2.0" 502 0 "-" "x" '
    'rt=1.5 urt=0.010, 0.020 : 0.005 ucs=-',
    '5.6.7.8 - - [10/Oct/2024:13:55:39 +0200] "GET /f/550e8400-e29b-41d4-a716-446655440000 HTTP/1.1" 304 - '
    '"-" "quote \\" inside" rt=0.003 urt=0.002 ucs=REVALIDATED',
    '9.9.9.9 - - [10/Oct/2024:13:55:40 +0200] "GET / HTTP/1.1" 200 12 "-" "x" rt=abc urt=0.1 ucs=HIT',
    '9.9.9.9 - - [32/Oct/2024:13:55:40 +0200] "GET / HTTP/1.1" 200 12 "-" "x" rt=0.1 urt=0.1 ucs=HIT',
    "",
]


def test_combined_kv_values_by_hand(con, tmp_path):
    path = tmp_path / "kv.log"
    path.write_text("\n".join(KV_LINES) + "\n")
    summary = ingest_access_log(con, path, service="shop", salt="pepper")
    assert summary.fmt.startswith("combined_kv")
    assert (summary.lines_in, summary.rows_loaded, summary.rows_rejected, summary.rows_skipped) == (7, 4, 2, 1)
    got = rows(con, "SELECT ts, service, method, route, path, query, status, latency_ms, upstream_ms, bytes_sent, "
                    "cache_status, user_agent FROM requests ORDER BY ts")
    t0 = datetime(2024, 10, 10, 11, 55, 36, tzinfo=UTC)
    assert got[0] == (t0, "shop", "GET", "/product/{id}", "/product/123", "token=REDACTED&q=1", 200,
                      pytest.approx(250.0), pytest.approx(200.0), 512, "MISS", "curl/8")
    assert got[1][7:11] == (pytest.approx(1.0), None, 512, "HIT")
    assert got[2][2:5] == ("POST", "/api/v1/users/{id}/orders", "/api/v1/users/42/orders")
    assert got[2][6:11] == (502, pytest.approx(1500.0), pytest.approx(35.0), 0, None)   # urt summed
    assert got[3][3] == "/f/{uuid}" and got[3][9] == 0 and got[3][11] == 'quote \\" inside'  # slow path
    assert rows(con, "SELECT line_no, field, reason FROM rejects ORDER BY 1") == [
        (5, "request_time", "unparsable request time 'abc'"),
        (6, "time", "unparsable time '32/Oct/2024:13:55:40 +0200'")]
    assert rows(con, "SELECT count(*) FROM requests WHERE source_id < 0") == [(0,)]   # no staging rows left
    hashes = rows(con, "SELECT DISTINCT client_hash FROM requests ORDER BY 1")
    assert len(hashes) == 2 and all(len(h[0]) == 16 for h in hashes)
    # the same address with another salt hashes differently
    other = tmp_path / "kv2.log"
    other.write_text(KV_LINES[0] + "\n")
    ingest_access_log(con, other, salt="other")
    assert rows(con, "SELECT count(DISTINCT client_hash) FROM requests WHERE path = '/product/123'") == [(2,)]


def test_nginx_json_lines(con, tmp_path):
    records = [
        {"time": "2024-10-10T13:55:36+02:00", "remote_addr": "1.2.3.4", "request": "GET /a/7?session=x HTTP/1.1",
         "status": "200", "body_bytes_sent": "10", "request_time": "0.120", "upstream_response_time": "0.100",
         "upstream_cache_status": "MISS", "http_user_agent": "ua \"quoted\""},
        {"time": "2024-10-10T13:55:37+02:00", "remote_addr": "1.2.3.4", "request": "GET /a/8 HTTP/1.1",
         "status": 404, "body_bytes_sent": 0, "request_time": 0.002, "upstream_response_time": "",
         "upstream_cache_status": "", "http_user_agent": ""},
    ]
    path = tmp_path / "access.json"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n{not json\n[1,2]\n")
    summary = ingest_access_log(con, path)
    assert summary.fmt.startswith("nginx-json")
    assert (summary.rows_loaded, summary.rows_rejected) == (2, 2)
    got = rows(con, "SELECT ts, path, route, query, status, latency_ms, upstream_ms, cache_status, bytes_sent, "
                    "user_agent FROM requests ORDER BY ts")
    assert got[0] == (datetime(2024, 10, 10, 11, 55, 36, tzinfo=UTC), "/a/7", "/a/{id}", "session=REDACTED", 200,
                      pytest.approx(120.0), pytest.approx(100.0), "MISS", 10, 'ua "quoted"')
    assert got[1][4:9] == (404, pytest.approx(2.0), None, None, 0)
    assert rows(con, "SELECT line_no, reason FROM rejects ORDER BY 1") == [
        (3, "not a JSON object"), (4, "not a JSON object")]


def test_cloudfront_w3c_tabs_seconds_and_edge_results(con, tmp_path):
    fields = ("date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
              "cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type time-taken")
    data = [
        ["2024-01-02", "03:04:05", "FRA2-C1", "100", "1.1.1.1", "GET", "d1.cloudfront.net", "/img/1.png", "200",
         "-", "Mozilla", "-", "-", "Hit", "0.002"],
        ["2024-01-02", "03:04:06", "FRA2-C1", "200", "1.1.1.2", "GET", "d1.cloudfront.net", "/img/2.png", "200",
         "-", "Mozilla", "v=1", "-", "Miss", "0.150"],
        ["2024-01-02", "03:04:07", "FRA2-C1", "0", "1.1.1.2", "GET", "d1.cloudfront.net", "/x", "502",
         "-", "Mozilla", "-", "-", "Error", "1.000"],
        ["short", "line"],
    ]
    path = tmp_path / "cf.log"
    path.write_text("#Version: 1.0\n#Fields: " + fields + "\n" + "\n".join("\t".join(d) for d in data) + "\n")
    summary = ingest_access_log(con, path)
    assert (summary.rows_loaded, summary.rows_rejected, summary.rows_skipped) == (3, 1, 2)
    assert rows(con, "SELECT cache_status, latency_ms, bytes_sent, host FROM requests ORDER BY ts") == [
        ("HIT", pytest.approx(2.0), 100, "d1.cloudfront.net"), ("MISS", pytest.approx(150.0), 200, "d1.cloudfront.net"),
        (None, pytest.approx(1000.0), 0, "d1.cloudfront.net")]
    assert rows(con, "SELECT line_no, reason FROM rejects") == [(6, "has 2 fields, the #Fields: header names 15")]
    # a grown W3C log: the new lines are read with the #Fields: header from the part already ingested
    with open(path, "a") as handle:
        handle.write("\t".join(data[0]).replace("03:04:05", "03:05:00") + "\n")
    grown = ingest_access_log(con, path)
    assert (grown.status, grown.lines_in, grown.rows_loaded) == ("appended", 1, 1)
    assert rows(con, "SELECT max(ts), count(*) FROM requests") == [(datetime(2024, 1, 2, 3, 5, tzinfo=UTC), 4)]


def test_grown_access_log_loads_only_new_lines(con, tmp_path):
    path = tmp_path / "access.log"
    path.write_text("\n".join(KV_LINES[:2]) + "\n")
    assert ingest_access_log(con, path, salt="s").rows_loaded == 2
    with open(path, "a") as handle:
        handle.write(KV_LINES[2] + "\n")
    grown = ingest_access_log(con, path, salt="s")
    assert (grown.status, grown.lines_in, grown.rows_loaded) == ("appended", 1, 1)
    assert ingest_access_log(con, path, salt="s").status == "unchanged"
    replaced = ingest_access_log(con, path, salt="s", replace=True)
    assert (replaced.status, replaced.rows_loaded) == ("replaced", 3)
    assert rows(con, "SELECT count(*) FROM requests") == [(3,)]


def test_cli_globs_rotated_logs_and_prints_summaries(tmp_path, capsys):
    for i, line in enumerate(KV_LINES[:3]):
        (tmp_path / (f"access.log.{i}" if i else "access.log")).write_text(line + "\n")
    db = tmp_path / "w.duckdb"
    assert perfkit(["ingest", "access-log", str(tmp_path / "access.log*"), "--db", str(db), "--service", "web",
                    "--route-rule", r"^/product/(\d+)$ => /product/{sku}"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 3 and all("loaded as source" in line and "combined_kv (detected" in line for line in out)
    assert perfkit(["ingest", "access-log", str(tmp_path / "access.log"), "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "unchanged"
    con = connect(db)
    try:
        assert rows(con, "SELECT route, service FROM requests ORDER BY ts") == [
            ("/product/{sku}", "web"), ("/product/{sku}", "web"), ("/api/v1/users/{id}/orders", "web")]
    finally:
        con.close()
    assert Path(f"{db}.salt").exists() and oct(Path(f"{db}.salt").stat().st_mode & 0o777) == "0o600"
    assert perfkit(["ingest", "access-log", str(tmp_path / "nope*"), "--db", str(db)]) == 1
    # rules from the parameters file
    params = tmp_path / "params.yaml"
    params.write_text("route_rules:\n  - '^/api/v1/users/(\\d+)/orders$ => /api/v1/users/{user}/orders'\n")
    other = tmp_path / "other.log"
    other.write_text(KV_LINES[2].replace("5.6.7.8", "5.6.7.9") + "\n")
    assert perfkit(["ingest", "access-log", str(other), "--db", str(db), "--params", str(params)]) == 0
    con = connect(db)
    try:
        assert rows(con, "SELECT route FROM requests WHERE source_id = (SELECT max(source_id) FROM requests)") == [
            ("/api/v1/users/{user}/orders",)]
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------- formats, routes

def test_parse_nginx_log_format_directive_and_json_template():
    fmt = parse_nginx_log_format(
        "log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '\n"
        "                '$status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_time';")
    assert set(fmt.groups) == {"client", "time", "request", "status", "bytes", "referer", "user_agent", "rt"}
    assert re.fullmatch(fmt.regex, '1.2.3.4 - - [10/Oct/2024:13:55:36 +0200] "GET / HTTP/1.1" 200 5 "-" "c u" 0.5')
    js = parse_nginx_log_format("log_format j escape=json '{\"t\":\"$time_iso8601\",\"s\":$status,"
                                "\"u\":\"$upstream_cache_status\"}';")
    assert (js.kind, dict(js.json_keys)) == ("json", {"time": "t", "status": "s", "ucs": "u"})
    with pytest.raises(ValueError, match="no time variable"):
        parse_nginx_log_format("$remote_addr $status")
    with pytest.raises(ValueError, match="unknown access-log format"):
        get_format("apache2")


def test_detection_prefers_the_most_specific_format(con):
    kv = KV_LINES[0]
    combined = kv.split(" rt=")[0]
    common = combined.rsplit(' "-"', 1)[0]
    for lines, expected in [([kv] * 3, "combined_kv"), ([combined] * 3, "combined"), ([common] * 3, "common"),
                            (['{"time":"2024-01-01T00:00:00Z"}'], "nginx-json")]:
        fmt, scores = detect_format(con, lines)
        assert fmt is not None and fmt.name == expected, scores


@pytest.mark.parametrize("path,expected", [
    ("/product/12345", "/product/{id}"), ("/a/1/2/3", "/a/{id}/{id}/{id}"), ("/img/42.jpg", "/img/{id}.jpg"),
    ("/u/550e8400-e29b-41d4-a716-446655440000/x", "/u/{uuid}/x"),
    ("/blob/d41d8cd98f00b204e9800998ecf8427e", "/blob/{hash}"), ("/v2/users", "/v2/users"),
    ("/words/deadbeefdeadbeefdead", "/words/deadbeefdeadbeefdead"), ("/", "/"), ("/x/0", "/x/{id}"),
])
def test_route_templates_sql_equals_hand_expectation(con, path, expected):
    assert route_of(path) == expected
    assert rows(con, f"SELECT {route_sql('p')} FROM (SELECT ?::VARCHAR AS p)", path) == [(expected,)]


def test_route_rules_come_first(con):
    rules = [parse_route_rule(r"^/user/([^/]+)$ => /user/{name}"), RouteRule(r"/blog/(\d+)/.*", r"/blog/\1/{slug}")]
    for path, expected in [("/user/bob", "/user/{name}"), ("/blog/2024/hello-world", "/blog/2024/{slug}"),
                           ("/user/1/x", "/user/{id}/x")]:
        assert route_of(path, rules) == expected
        assert rows(con, f"SELECT {route_sql('p', rules)} FROM (SELECT ?::VARCHAR AS p)", path) == [(expected,)]
    with pytest.raises(ValueError, match="PATTERN => TEMPLATE"):
        parse_route_rule("no arrow")
    with pytest.raises(ValueError, match="bad regular expression"):
        parse_route_rule("([ => x")


@pytest.mark.parametrize("query,expected", [
    ("a=1&token=xyz&b=2", "a=1&token=REDACTED&b=2"),
    ("API_KEY=1&Session=2&x=3", "API_KEY=REDACTED&Session=REDACTED&x=3"),
    ("password=p&&auth=", "password=REDACTED&&auth=REDACTED"),
    ("X-Amz-Signature=abc&q=shoes", "X-Amz-Signature=REDACTED&q=shoes"),
    ("q=shoes&page=2", "q=shoes&page=2"),
])
def test_query_redaction(query, expected):
    assert redact_query(query) == expected


# ---------------------------------------------------------------------------------------------- fast path

REQUEST_COLUMNS = ("ts, service, host, method, route, path, query, status, latency_ms, upstream_ms, bytes_sent, "
                   "content_type, cache_status, client_hash, user_agent")


@pytest.fixture()
def fast_calls(monkeypatch):
    """Records the (lines in, rejected, skipped) each call of the fast path returned (None = it declined
    the file)."""
    import kit.ingest.access_log as access_log

    calls: list = []
    real = access_log._load_fast

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(None if result is None else result[:3])
        return result
    monkeypatch.setattr(access_log, "_load_fast", spy)
    return calls


def both_paths(path: Path, **kwargs) -> tuple[tuple, tuple]:
    """(summary counts, requests rows, rejects rows) from the fast and from the general path."""
    out = []
    for fast in (True, False):
        c = connect(":memory:")
        try:
            s = ingest_access_log(c, path, salt="s", fast=fast, **kwargs)
            out.append(((s.fmt, s.lines_in, s.rows_loaded, s.rows_rejected, s.rows_skipped),
                        rows(c, f"SELECT {REQUEST_COLUMNS} FROM requests ORDER BY ALL"),
                        rows(c, "SELECT line_no, field, reason, raw FROM rejects ORDER BY ALL")))
        finally:
            c.close()
    return out[0], out[1]


@pytest.mark.parametrize("name,fmt,expected", [
    ("elastic_apache/elastic_examples_apache_logs.log", None, (10_000, 1)),
    ("netdata_weblog/common.log", "common", (500, 44)),
])
def test_fast_path_equals_general_path_on_real_logs(logs, fast_calls, name, fmt, expected):
    fast, general = both_paths(logs / name, format=fmt)
    assert fast_calls[0] is not None and fast_calls[0][:2] == expected   # the fast path read it (lines, rejects)
    assert fast == general
    assert fast[0][1:4] == (expected[0], expected[0] - expected[1], expected[1])


def test_fast_path_equals_general_path_on_benchmark_lines(tmp_path, fast_calls):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_ingest import generate

    path = tmp_path / "bench.log"
    generate(path, 3_000, seed=3)
    fast, general = both_paths(path, format="combined_kv")
    assert fast_calls[0] == (3_000, 0, 0)
    assert fast == general and len(fast[1]) == 3_000
    # spot values against the raw text: the first line's status, bytes, rt and ucs
    first = path.read_text().splitlines()[0]
    status, size = first.split('"')[2].split()
    kv = dict(item.split("=", 1) for item in first.rsplit('"', 1)[1].split())
    assert (status, size) in {(str(r[7]), str(r[10])) for r in fast[1]}
    assert any(r[8] == pytest.approx(float(kv["rt"]) * 1000) and r[12] == (None if kv["ucs"] == "-" else kv["ucs"])
               for r in fast[1] if str(r[10]) == size)


def test_fast_path_hashes_the_file_as_it_reads_it(tmp_path, fast_calls, monkeypatch):
    """The fast path reads a plain file once: the sha256 recorded is hashlib's of the whole file, and the
    ingest core does not hash it itself; a second ingest of it is `unchanged`."""
    import hashlib
    import sys

    import kit.ingest.access_log as access_log
    import kit.ingest.clf_fast as clf_fast
    import kit.ingest.core as core

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_ingest import generate

    path = tmp_path / "bench.log"
    generate(path, 5_000, seed=5)
    monkeypatch.setattr(clf_fast, "FIRST_CHUNK_BYTES", 1000)   # several chunks, each hashed in turn
    monkeypatch.setattr(access_log, "_INSERT_CHUNK_BYTES", 200_000)   # a DuckDB file's chunks
    hashed: list = []
    real = core._sha256_and_size
    monkeypatch.setattr(core, "_sha256_and_size", lambda p, limit=None: hashed.append(p) or real(p, limit))
    con = connect(":memory:")
    summary = ingest_access_log(con, path, format="combined_kv", salt="s")
    assert fast_calls == [(5_000, 0, 0)] and summary.rows_loaded == 5_000 and hashed == []
    data = path.read_bytes()
    assert con.execute("SELECT sha256, size_bytes FROM ingest_log").fetchall() == [
        (hashlib.sha256(data).hexdigest(), len(data))]
    assert ingest_access_log(con, path, format="combined_kv", salt="s").status == "unchanged"


def test_fast_path_numbers_rejects_by_file_line(tmp_path, fast_calls):
    good = KV_LINES[0]
    lines = [good] * 6
    lines[1] = KV_LINES[4]                       # rt=abc: well-formed shape, bad value
    lines[3] = "garbage"                         # no shape at all
    lines[4] = KV_LINES[3]                       # escaped quote: the general path loads it
    lines[5] = "  "                              # blank: skipped
    path = tmp_path / "mixed.log"
    path.write_text("\n".join(lines) + "\n" + good)   # and a last line without newline
    fast, general = both_paths(path, format="combined_kv")
    assert fast_calls[0] == (7, 2, 1)
    assert fast == general
    assert [(r[0], r[1]) for r in fast[2]] == [(2, "request_time"), (4, "line")]
    assert fast[0][1:] == (7, 4, 2, 1)


def test_grown_log_uses_the_fast_path_for_the_new_lines(con, tmp_path, fast_calls):
    path = tmp_path / "access.log"
    path.write_text("\n".join(KV_LINES[:2]) + "\n")
    ingest_access_log(con, path, salt="s")
    with open(path, "a") as handle:
        handle.write(KV_LINES[2] + "\ngarbage\n")
    grown = ingest_access_log(con, path, salt="s")
    assert fast_calls == [(2, 0, 0), (2, 1, 0)]
    assert (grown.status, grown.rows_loaded, grown.rows_rejected) == ("appended", 1, 1)
    assert rows(con, "SELECT line_no, raw FROM rejects") == [(4, "garbage")]


@pytest.mark.parametrize("content", [
    b"\xef\xbb\xbf" + KV_LINES[0].encode() + b"\n",                      # BOM
    (KV_LINES[0] + "\r\n" + KV_LINES[1] + "\r\n").encode(),              # CRLF
])
def test_fast_path_declines_files_whose_lines_the_general_path_strips(tmp_path, fast_calls, content):
    path = tmp_path / "odd.log"
    path.write_bytes(content)
    fast, general = both_paths(path, format="combined_kv")
    assert fast_calls[0] is None
    assert fast == general and fast[0][2] >= 1


def test_fast_path_skips_empty_lines_and_counts_them(tmp_path, fast_calls):
    path = tmp_path / "gaps.log"
    path.write_text(KV_LINES[0] + "\n\n" + KV_LINES[1] + "\n\n")
    fast, general = both_paths(path, format="combined_kv")
    assert fast_calls[0] == (4, 0, 2)
    assert fast == general and fast[0][1:] == (4, 2, 0, 2)


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".zst"])
def test_fast_path_reads_compressed_rotated_logs(tmp_path, fast_calls, suffix):
    import bz2
    import gzip

    import zstandard

    text = ("\n".join(KV_LINES[:6]) + "\n").encode()
    packed = {".gz": gzip.compress, ".bz2": bz2.compress, ".zst": zstandard.ZstdCompressor().compress}[suffix](text)
    path = tmp_path / f"access.log.1{suffix}"
    path.write_bytes(packed)
    fast, general = both_paths(path, format="combined_kv")
    assert fast_calls[0] is not None and fast_calls[0][0] == 6
    assert fast == general and fast[0][1:] == (6, 4, 2, 0)


def test_a_query_holding_a_url_is_not_an_absolute_uri(con, tmp_path):
    path = tmp_path / "redirect.log"
    path.write_text('1.2.3.4 - - [10/Oct/2024:13:55:36 +0200] "GET /r/7?to=https://example.org/x HTTP/1.1" 302 0\n'
                    '1.2.3.4 - - [10/Oct/2024:13:55:36 +0200] "GET http://shop.example/p/7?a=1 HTTP/1.1" 200 0\n')
    for fast in (True, False):
        c = connect(":memory:")
        ingest_access_log(c, path, format="common", salt="s", fast=fast)
        assert rows(c, "SELECT host, path, route, query FROM requests ORDER BY host NULLS FIRST") == [
            (None, "/r/7", "/r/{id}", "to=https://example.org/x"), ("shop.example", "/p/7", "/p/{id}", "a=1")]
        c.close()


def test_invalid_utf8_lines_are_read_with_replacement_characters(con, tmp_path, fast_calls):
    path = tmp_path / "latin.log"
    path.write_bytes(KV_LINES[0].encode() + b"\n" + KV_LINES[1].replace("/product/123", "/caf\xe9").encode("latin-1")
                     + b"\n" + b"\xff\xfe garbage\n" + KV_LINES[2].encode() + b"\n")
    summary = ingest_access_log(con, path, salt="s")
    assert fast_calls == [(4, 1, 0)]     # the compiled reader hands invalid UTF-8 to the general path
    assert (summary.lines_in, summary.rows_loaded, summary.rows_rejected) == (4, 3, 1)
    assert rows(con, "SELECT path FROM requests WHERE starts_with(path, '/caf')") == [("/caf\ufffd",)]
    assert rows(con, "SELECT line_no, raw FROM rejects") == [(3, "\ufffd\ufffd garbage")]
