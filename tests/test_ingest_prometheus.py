"""Prometheus ingest: chunking, text-format parsing, and a real Prometheus (Debian ``prometheus``)
scraping itself plus a block backfilled with ``promtool tsdb create-blocks-from openmetrics``."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.ingest.prometheus import (
    PrometheusError,
    ingest_prometheus_file,
    ingest_prometheus_range,
    parse_time,
    range_chunks,
)
from tests.conftest import assert_lines_accounted_for, free_port, wait_until_ok


@given(start=st.integers(0, 10**9), n=st.integers(1, 50_000), step=st.integers(1, 3600),
       max_points=st.integers(1, 11_000))
def test_chunks_cover_every_step_exactly_once(start, n, step, max_points):
    end = start + (n - 1) * step
    chunks = range_chunks(start, end, step, max_points)
    points = [round((c.end_s - c.start_s) / step) + 1 for c in chunks]
    assert sum(points) == n and max(points) <= max_points
    assert chunks[0].start_s == start and chunks[-1].end_s == end
    assert all(b.start_s - a.end_s == step for a, b in zip(chunks, chunks[1:], strict=False))


def test_parse_time():
    assert parse_time("2024-01-01T00:00:00Z") == 1704067200
    assert parse_time("2024-01-01T01:00:00+01:00") == 1704067200
    assert parse_time("1704067200") == 1704067200
    assert abs(parse_time("now-1h") - (time.time() - 3600)) < 5
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_exposition_file_values_labels_and_rejects(con, tmp_path):
    path = tmp_path / "scrape.prom"
    path.write_text(
        "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
        'http_requests_total{code="200",path="/a\\"b"} 1027 1395066363000\n'
        'http_requests_total{code="400", path="/x"} 3 1395066363000\n'
        "process_cpu_seconds_total 12.47\n"
        'latency_seconds_bucket{le="+Inf"} +Inf\n'
        "\n"
        "not a sample\n"
        'broken{code=200} 1\n'
        "bad_value{} abc\n")
    s = ingest_prometheus_file(con, path, at="2024-01-01T00:00:00Z")
    assert (s.lines_in, s.rows_loaded, s.rows_rejected, s.rows_skipped) == (10, 4, 3, 3)
    rows = con.execute("SELECT epoch(ts), name, labels, value FROM metrics ORDER BY rowid").fetchall()
    assert rows[0] == (1395066363.0, "http_requests_total", {"code": "200", "path": '/a"b'}, 1027.0)
    assert rows[1][2] == {"code": "400", "path": "/x"}
    assert rows[2] == (1704067200.0, "process_cpu_seconds_total", {}, 12.47)
    assert rows[3][3] == float("inf")
    assert con.execute("SELECT line_no, field FROM rejects ORDER BY 1").fetchall() == [
        (8, "name"), (9, "labels"), (10, "value")]


_LINE = st.one_of(st.sampled_from(['up 1', 'up{job="a"} 0 1700000000', "# EOF", "", 'x{a="1",} 2',
                                   'y{a="b"} NaN', "z 1 notatime"]),
                  st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
                          max_size=30))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_LINE, max_size=25))
def test_random_exposition_lines_are_accounted_for(tmp_path, lines):
    path = tmp_path / "r.prom"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_lines_accounted_for(lambda c: ingest_prometheus_file(c, path, replace=True, at="2024-01-01T00:00:00Z"),
                               "metrics")


# ----------------------------------------------------------------- a fake server for HTTP failures

class _Fake(BaseHTTPRequestHandler):
    script: list[tuple[int, dict]] = []

    def do_GET(self):  # noqa: N802
        code, body = self.script.pop(0) if self.script else (200, {"status": "success", "data": {
            "resultType": "matrix", "result": [{"metric": {"__name__": "m", "a": "b"},
                                                "values": [[1700000000, "1.5"], [1700000060, "oops"]]}]}})
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def fake_server():
    server = HTTPServer(("127.0.0.1", 0), _Fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _Fake
    server.shutdown()
    server.server_close()


def test_retry_then_success_and_bad_sample_rejected(con, fake_server):
    url, handler = fake_server
    handler.script = [(503, {"status": "error", "error": "busy"}), (429, {})]
    s = ingest_prometheus_range(con, url, "m", 1700000000, 1700000060, 60, backoff_s=0.01)
    assert (s.rows_loaded, s.rows_rejected) == (1, 1)
    assert con.execute("SELECT name, labels, value FROM metrics").fetchall() == [("m", {"a": "b"}, 1.5)]
    ingest_prometheus_range(con, url, "rate(m[5m])", 1700000000, 1700000060, 60, name="m_rate")
    assert con.execute("SELECT count(*) FROM metrics WHERE name = 'm_rate'").fetchone()[0] == 1


def test_auth_and_promql_errors_are_clear(con, fake_server):
    url, handler = fake_server
    handler.script = [(401, {})]
    with pytest.raises(PrometheusError, match="authentication failed"):
        ingest_prometheus_range(con, url, "m", 0, 60, 60, backoff_s=0.01)
    handler.script = [(400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 4"})]
    with pytest.raises(PrometheusError, match="bad_data: parse error at char 4"):
        ingest_prometheus_range(con, url, "sum(", 0, 60, 60, backoff_s=0.01)
    assert con.execute("SELECT count(*) FROM ingest_log").fetchone()[0] == 0


# ------------------------------------------------------------------------------- a real Prometheus

T0 = 1_700_000_040          # first backfilled sample (a whole minute), Nov 2023
N_KNOWN = 12_500            # > 11,000 points: the range query must be chunked
STEP = 60


def _known_value(series: str, i: int) -> float:
    return (i % 97) * 0.25 + (1000.0 if series == "b" else 0.0)


@pytest.fixture(scope="module")
def prometheus_server(tmp_path_factory):
    """Prometheus on 127.0.0.1 scraping itself every second, its data dir holding a backfilled block of
    two gauge series with known values; stopped afterwards."""
    for binary in ("prometheus", "promtool"):
        assert shutil.which(binary), f"{binary} missing (apt-get install prometheus)"
    root = tmp_path_factory.mktemp("prom")
    data = root / "data"
    om = root / "known.om"
    with open(om, "w") as out:
        out.write("# HELP perfkit_known A backfilled gauge with known values.\n# TYPE perfkit_known gauge\n")
        for series in ("a", "b"):
            for i in range(N_KNOWN):
                out.write(f'perfkit_known{{series="{series}"}} {_known_value(series, i)} {T0 + i * STEP}\n')
        out.write("# EOF\n")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
                   check=True, capture_output=True, timeout=300)
    port = free_port()
    config = root / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                      f"  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
    proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={data}",
                             "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(root / "prometheus.log", "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_ok(f"{url}/-/ready", 30):
            raise RuntimeError("Prometheus did not become ready: " + (root / "prometheus.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.integration
def test_range_query_of_a_self_scraping_prometheus(con, prometheus_server):
    deadline = time.time() + 30         # wait for a few scrapes
    while time.time() < deadline:
        with urllib.request.urlopen(f"{prometheus_server}/api/v1/query?query=count_over_time(up[1m])") as r:
            result = json.load(r)["data"]["result"]
        if result and float(result[0]["value"][1]) >= 3:
            break
        time.sleep(0.5)
    end = time.time()
    s = ingest_prometheus_range(con, prometheus_server, "up", end - 10, end, 1)
    assert s.rows_loaded >= 3 and s.rows_rejected == 0
    rows = con.execute("SELECT DISTINCT name, labels['job'], value FROM metrics").fetchall()
    assert rows == [("up", "self", 1.0)]


@pytest.mark.integration
@pytest.mark.parametrize("max_points", [11_000, 4_000])
def test_backfilled_block_values_are_ingested_exactly(con, prometheus_server, max_points):
    end = T0 + (N_KNOWN - 1) * STEP
    s = ingest_prometheus_range(con, prometheus_server, "perfkit_known", T0, end, STEP, max_points=max_points)
    assert s.rows_loaded == 2 * N_KNOWN and s.rows_rejected == 0
    got = con.execute("SELECT labels['series'], CAST(epoch(ts) AS BIGINT), value FROM metrics "
                      "WHERE name = 'perfkit_known'").fetchall()
    expected = {(series, T0 + i * STEP, _known_value(series, i)) for series in ("a", "b") for i in range(N_KNOWN)}
    assert len(got) == len(expected) and set(got) == expected


@pytest.mark.integration
def test_real_promql_error_and_unreachable_server(con, prometheus_server):
    with pytest.raises(PrometheusError, match="bad_data"):
        ingest_prometheus_range(con, prometheus_server, "sum(", T0, T0 + 60, 60)
    with pytest.raises(PrometheusError, match="no answer after 2 attempts"):
        ingest_prometheus_range(con, f"http://127.0.0.1:{free_port()}", "up", T0, T0 + 60, 60, retries=1,
                                backoff_s=0.01, timeout_s=2)


@pytest.mark.integration
def test_openmetrics_file_loads_the_same_values(con, prometheus_server, tmp_path):
    path = tmp_path / "small.om"
    path.write_text("# TYPE perfkit_known gauge\n" + "".join(
        f'perfkit_known{{series="a"}} {_known_value("a", i)} {T0 + i * STEP}\n' for i in range(100)) + "# EOF\n")
    s = ingest_prometheus_file(con, path)
    assert (s.rows_loaded, s.rows_skipped) == (100, 2)
    ingest_prometheus_range(con, prometheus_server, 'perfkit_known{series="a"}', T0, T0 + 99 * STEP, STEP)
    diff = con.execute("""
        SELECT count(*) FROM (SELECT ts, value FROM metrics WHERE source_id = ? EXCEPT
                              SELECT ts, value FROM metrics WHERE source_id <> ?)""",
                       [s.source_id, s.source_id]).fetchone()[0]
    assert diff == 0
