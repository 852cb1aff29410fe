"""Every ingested request gets a service: ``--service``, else its virtual host, else the file's name; the
rule used is recorded per source and read back by ``service_naming``. Expectations are hand-computed."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.cli import main as perfkit
from kit.ingest.access_log import ingest_access_log, load_access_log
from kit.ingest.log_formats import get_format
from kit.ingest.services import (
    FILE_NAME,
    MIXED,
    NOT_RECORDED,
    OPTION,
    VIRTUAL_HOST,
    ServiceNaming,
    service_from_file_name,
    service_naming,
)
from kit.warehouse import begin_source, connect, finish_source
from tests.test_ingest_clf_fast import clf_lines
from tests.test_ingest_properties import edits, mutate

HOST_FORMAT = '$host $remote_addr [$time_local] "$request" $status $body_bytes_sent'
COMBINED = '1.2.3.4 - - [10/Oct/2024:13:55:3{} +0000] "GET {} HTTP/1.1" 200 5 "-" "curl/8"'


def services(con) -> list[tuple]:
    return con.execute("SELECT service, count(*) FROM requests GROUP BY ALL ORDER BY ALL").fetchall()


def options(con, source_id: int) -> dict:
    row = con.execute("SELECT options FROM ingest_log WHERE source_id = ?", [source_id]).fetchone()
    return json.loads(row[0])


@pytest.mark.parametrize("name,expected", [
    ("access.log", "access"),
    ("access.log.1", "access"),
    ("access.log.1.gz", "access"),
    ("access.log.12.ZST", "access"),
    ("access_log", "access"),                        # Apache on RHEL
    ("access_log-20240101", "access"),               # logrotate dateext
    ("access.log-2024010112.bz2", "access"),         # dateext with an hour
    ("access-20240101.log", "access"),               # dateext with the extension kept last
    ("app.log.2024-01-01", "app"),
    ("shop.json", "shop"),
    ("api.v2.log.xz", "api.v2"),
    ("10.0.0.1.log", "10.0.0.1"),                    # only one rotation number is taken off
    ("u_ex221107.log", "u_ex"),                      # IIS daily files of one site are one service
    ("elastic_examples_apache_logs.log", "elastic_examples_apache_logs"),
    ("2024-01-01.log", "2024-01-01"),
    (".log", ".log"),                                # nothing would be left: the whole name
    ("/var/log/nginx/shop-1.log.3.gz", "shop-1"),    # the directory plays no part
])
def test_service_from_file_name(name, expected):
    assert service_from_file_name(name) == expected


def test_two_virtual_hosts_give_two_services(con, tmp_path):
    path = tmp_path / "edge.log"
    path.write_text(
        'shop.example 1.2.3.4 [10/Oct/2024:13:55:36 +0000] "GET /a HTTP/1.1" 200 5\n'
        'API.example 1.2.3.4 [10/Oct/2024:13:55:37 +0000] "GET /b HTTP/1.1" 500 0\n'
        'shop.example 1.2.3.5 [10/Oct/2024:13:55:38 +0000] "GET /c HTTP/1.1" 200 7\n')
    summary = ingest_access_log(con, path, log_format=HOST_FORMAT, salt="s")
    assert (summary.lines_in, summary.rows_loaded) == (3, 3)
    assert services(con) == [("api.example", 1), ("shop.example", 2)]      # host names are lower-cased
    assert con.execute("SELECT DISTINCT host FROM requests ORDER BY 1").fetchall() == [("API.example",),
                                                                                      ("shop.example",)]
    record = options(con, summary.source_id)
    assert record["service_from"] == VIRTUAL_HOST
    assert record["services"] == [{"service": "shop.example", "from": VIRTUAL_HOST, "rows": 2},
                                  {"service": "api.example", "from": VIRTUAL_HOST, "rows": 1}]
    assert record["format"] is None and record["log_format"] == HOST_FORMAT    # the other options are kept
    assert service_naming(con) == [
        ServiceNaming("shop.example", VIRTUAL_HOST, summary.source_id, "access-log", str(path.resolve()), 2),
        ServiceNaming("api.example", VIRTUAL_HOST, summary.source_id, "access-log", str(path.resolve()), 1)]


def test_a_row_without_host_gets_the_file_name(con, tmp_path):
    path = tmp_path / "edge.log.2"
    path.write_text('shop.example 1.2.3.4 [10/Oct/2024:13:55:36 +0000] "GET /a HTTP/1.1" 200 5\n'
                    '- 1.2.3.4 [10/Oct/2024:13:55:37 +0000] "GET /b HTTP/1.1" 200 5\n'
                    'not a line\n')
    summary = ingest_access_log(con, path, log_format=HOST_FORMAT, salt="s")
    assert (summary.rows_loaded, summary.rows_rejected) == (2, 1)
    assert services(con) == [("edge", 1), ("shop.example", 1)]
    assert options(con, summary.source_id)["service_from"] == MIXED
    assert [(n.service, n.how, n.rows) for n in service_naming(con)] == [
        ("edge", FILE_NAME, 1), ("shop.example", VIRTUAL_HOST, 1)]


@pytest.mark.parametrize("fast", [True, False])
def test_a_log_without_virtual_host_is_one_service_named_by_its_file(con, tmp_path, fast):
    path = tmp_path / "access.log.1.gz"
    path.write_bytes(gzip.compress(("\n".join(COMBINED.format(i, f"/p/{i}") for i in range(3)) + "\n").encode()))
    summary = ingest_access_log(con, path, salt="s", fast=fast)
    assert summary.rows_loaded == 3
    assert services(con) == [("access", 3)]
    assert con.execute("SELECT count(*) FROM requests WHERE host IS NULL").fetchone() == (3,)
    assert options(con, summary.source_id)["service_from"] == FILE_NAME
    assert [(n.service, n.how, n.rows) for n in service_naming(con)] == [("access", FILE_NAME, 3)]


@pytest.mark.parametrize("fast", [True, False])
def test_an_absolute_uri_names_its_row_by_host_on_both_paths(con, tmp_path, fast):
    path = tmp_path / "proxy.log"
    path.write_text("\n".join([COMBINED.format(0, "/a"), COMBINED.format(1, "http://Origin.example:8080/b?x=1"),
                               COMBINED.format(2, "/c")]) + "\n")
    summary = ingest_access_log(con, path, salt="s", fast=fast)
    assert summary.rows_loaded == 3
    assert con.execute("SELECT path, host, service FROM requests ORDER BY ts").fetchall() == [
        ("/a", None, "proxy"), ("/b", "Origin.example:8080", "origin.example:8080"), ("/c", None, "proxy")]
    assert options(con, summary.source_id)["services"] == [
        {"service": "proxy", "from": FILE_NAME, "rows": 2},
        {"service": "origin.example:8080", "from": VIRTUAL_HOST, "rows": 1}]


def test_json_and_w3c_host_fields(con, tmp_path):
    js = tmp_path / "cdn.jsonl"
    js.write_text("\n".join(json.dumps({"time": f"2024-10-10T13:55:3{i}Z", "request": "GET / HTTP/1.1",
                                        "status": 200, "http_host": host}) for i, host in
                            enumerate(["a.example", "b.example", "a.example", ""])) + "\n")
    w3c = tmp_path / "u_ex240102.log"
    w3c.write_text("#Fields: date time cs-method cs-uri-stem cs-host sc-status time-taken\n"
                   "2024-01-02 03:04:05 GET / www.example 200 5\n"
                   "2024-01-02 03:04:06 GET / - 200 5\n")
    first = ingest_access_log(con, js, salt="s")
    second = ingest_access_log(con, w3c, salt="s")
    assert [(n.source_id, n.service, n.how, n.rows) for n in service_naming(con)] == [
        (first.source_id, "a.example", VIRTUAL_HOST, 2), (first.source_id, "b.example", VIRTUAL_HOST, 1),
        (first.source_id, "cdn", FILE_NAME, 1),
        (second.source_id, "u_ex", FILE_NAME, 1), (second.source_id, "www.example", VIRTUAL_HOST, 1)]


def test_the_service_option_wins_over_host_and_file(con, tmp_path):
    path = tmp_path / "edge.log"
    path.write_text('shop.example 1.2.3.4 [10/Oct/2024:13:55:36 +0000] "GET /a HTTP/1.1" 200 5\n'
                    '- 1.2.3.4 [10/Oct/2024:13:55:37 +0000] "GET /b HTTP/1.1" 200 5\n')
    summary = ingest_access_log(con, path, log_format=HOST_FORMAT, service="web", salt="s")
    assert services(con) == [("web", 2)]
    assert options(con, summary.source_id)["service_from"] == OPTION
    assert [(n.service, n.how, n.rows) for n in service_naming(con)] == [("web", OPTION, 2)]


def test_cli_service_option_and_help(tmp_path, capsys):
    path = tmp_path / "access.log"
    path.write_text(COMBINED.format(0, "/a") + "\n")
    db = tmp_path / "w.duckdb"
    assert perfkit(["ingest", "access-log", "--db", str(db), "--service", "shop", str(path)]) == 0
    other = tmp_path / "api_log"
    other.write_text(COMBINED.format(1, "/b") + "\n")
    assert perfkit(["ingest", "access-log", "--db", str(db), str(other)]) == 0
    c = connect(db, read_only=True)
    try:
        assert [(n.service, n.how, n.rows) for n in service_naming(c)] == [("shop", OPTION, 1), ("api", FILE_NAME, 1)]
    finally:
        c.close()
    with pytest.raises(SystemExit):
        perfkit(["ingest", "access-log", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "virtual host" in help_text and "file name" in help_text


def test_exactly_once_append_and_replace_keep_the_record(con, tmp_path):
    path = tmp_path / "access.log"
    path.write_text(COMBINED.format(0, "/a") + "\n")
    first = ingest_access_log(con, path, salt="s")
    assert ingest_access_log(con, path, salt="s").status == "unchanged"
    assert [(n.source_id, n.service, n.rows) for n in service_naming(con)] == [(first.source_id, "access", 1)]
    with open(path, "a") as handle:
        handle.write(COMBINED.format(1, "/b") + "\n" + COMBINED.format(2, "http://other.example/c") + "\n")
    grown = ingest_access_log(con, path, salt="s")
    assert (grown.status, grown.rows_loaded) == ("appended", 2)
    assert [(n.source_id, n.service, n.how, n.rows) for n in service_naming(con)] == [
        (first.source_id, "access", FILE_NAME, 1),
        (grown.source_id, "access", FILE_NAME, 1), (grown.source_id, "other.example", VIRTUAL_HOST, 1)]
    assert options(con, grown.source_id)["service_from"] == MIXED
    replaced = ingest_access_log(con, path, salt="s", replace=True, service="web")
    assert replaced.status == "replaced"
    assert [(n.source_id, n.service, n.how, n.rows) for n in service_naming(con)] == [
        (replaced.source_id, "web", OPTION, 3)]
    assert services(con) == [("web", 3)]


def test_sources_without_a_record_are_counted_from_the_rows(con):
    con.execute("BEGIN TRANSACTION")
    old = begin_source(con, "access-log", "/old/access.log", options={"service": None})
    con.execute("INSERT INTO requests (ts, service, source_id) VALUES "
                "('2024-01-01 00:00:00+00', NULL, ?), ('2024-01-01 00:00:01+00', NULL, ?)",
                [old.source_id, old.source_id])
    finish_source(con, old, lines_in=2, rows_loaded=2)
    demo = begin_source(con, "demo", "demo://requests?seed=1")
    con.execute("INSERT INTO requests (ts, service, source_id) VALUES ('2024-01-01 00:00:00+00', 'api', ?), "
                "('2024-01-01 00:00:01+00', 'web', ?), ('2024-01-01 00:00:02+00', 'web', ?)",
                [demo.source_id] * 3)
    finish_source(con, demo, lines_in=None, rows_loaded=3)
    con.execute("COMMIT")
    assert service_naming(con) == [
        ServiceNaming(None, NOT_RECORDED, old.source_id, "access-log", "/old/access.log", 2),
        ServiceNaming("web", NOT_RECORDED, demo.source_id, "demo", "demo://requests?seed=1", 2),
        ServiceNaming("api", NOT_RECORDED, demo.source_id, "demo", "demo://requests?seed=1", 1)]


# ---------------------------------------------------------------------------------------------- fast = general

_CON = connect(":memory:")
_ROWS = ("SELECT ts, service, host, method, route, path, query, status, latency_ms, upstream_ms, bytes_sent, "
         "cache_status, client_hash, user_agent FROM requests WHERE source_id = ? ORDER BY ALL")
absolute = st.sampled_from(["http://a.example/x", "https://B.example:8443/y/1?q=2", "ftp://c/", "http://"])


def rows_with_service(fmt_name: str, lines: list[str], name: str, fast: bool) -> tuple:
    """(counts, requests rows with service and host, naming record) of one ingest of ``lines`` as file ``name``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes("\n".join(lines).encode("utf-8") + b"\n")
        _CON.execute("BEGIN TRANSACTION")
        try:
            source = begin_source(_CON, "access-log", str(path))
            counts = load_access_log(_CON, source, path, fmt=get_format(fmt_name), salt="s", fast=fast)
            got = _CON.execute(_ROWS, [source.source_id]).fetchall()
            record = options(_CON, source.source_id)
        finally:
            _CON.execute("ROLLBACK")
    return (counts.lines_in, counts.rows_loaded, counts.rows_rejected, counts.rows_skipped), got, record


@pytest.mark.parametrize("fmt_name", ["common", "combined", "combined_kv"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_and_general_paths_name_services_alike(fmt_name, data):
    good = clf_lines(fmt_name)
    proxied = st.tuples(good, absolute).map(lambda t: t[0].replace(' /', f' {t[1]}', 1))   # an absolute URI
    lines = data.draw(st.lists(st.one_of(good, proxied, st.tuples(good, edits).map(lambda t: mutate(*t))),
                               min_size=1, max_size=10))
    name = data.draw(st.sampled_from(["access.log", "shop_log.3", "edge-20240101.log"]))
    fast = rows_with_service(fmt_name, lines, name, fast=True)
    general = rows_with_service(fmt_name, lines, name, fast=False)
    assert fast == general
    counts, got, record = fast
    assert counts[0] == sum(counts[1:])
    assert all(service is not None for _, service, *_ in got)
    expected: dict[tuple[str, str], int] = {}
    for row in got:
        key = (row[2].lower(), VIRTUAL_HOST) if row[2] is not None else (service_from_file_name(name), FILE_NAME)
        assert row[1] == key[0]
        expected[key] = expected.get(key, 0) + 1
    assert sorted((e["service"], e["from"], e["rows"]) for e in record["services"]) == sorted(
        (s, h, n) for (s, h), n in expected.items())
