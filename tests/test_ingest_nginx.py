"""A real nginx (proxy_cache in front of a deliberately slow upstream), loaded by wrk, writing a text log
(combined + rt/urt/ucs) and a JSON log (escape=json): both ingested, and the counts by status and by
cache status equal those counted independently from the raw files."""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from kit.ingest.access_log import ingest_access_log
from kit.warehouse import connect
from tests.nginx_proxy import QuietOrigin, run_nginx, serve_origin

pytestmark = pytest.mark.integration

UPSTREAM_DELAY_S = 0.004

KV_FORMAT = ('\'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
             '"$http_user_agent" rt=$request_time urt=$upstream_response_time ucs=$upstream_cache_status\'')
JSON_FORMAT = ("escape=json '{\"time\":\"$time_iso8601\",\"remote_addr\":\"$remote_addr\",\"request\":\"$request\","
               "\"status\":\"$status\",\"body_bytes_sent\":\"$body_bytes_sent\",\"request_time\":\"$request_time\","
               "\"upstream_response_time\":\"$upstream_response_time\","
               "\"upstream_cache_status\":\"$upstream_cache_status\",\"http_user_agent\":\"$http_user_agent\"}'")

WRK_SCRIPT = """
math.randomseed(42)
request = function()
  local n = math.random(1, 100)
  local path
  if n <= 70 then path = "/item/" .. math.random(1, 30)
  elseif n <= 80 then path = "/missing/" .. n .. "?token=secret" .. n
  elseif n <= 85 then path = "/error/" .. n
  else path = "/nocache/" .. n end
  return wrk.format(nil, path)
end
"""


class SlowHandler(QuietOrigin):
    """Sleeps a few ms; /missing → 404, /error → 500, others 200 with a small body."""

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        time.sleep(UPSTREAM_DELAY_S)
        status = 404 if self.path.startswith("/missing") else 500 if self.path.startswith("/error") else 200
        body = (f"payload for {self.path}\n" * 8).encode()
        self.reply(status, body)


@pytest.fixture(scope="module")
def nginx_logs(tmp_path_factory) -> tuple[Path, Path]:
    assert shutil.which("wrk"), "wrk missing: install wrk"
    prefix = tmp_path_factory.mktemp("nginx")
    (prefix / "cache").mkdir()

    def http_block(port: int, upstream_port: int) -> str:
        return f"""
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=c:1m max_size=20m inactive=10m;
    log_format kv {KV_FORMAT};
    log_format js {JSON_FORMAT};
    upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        access_log {prefix}/access.log kv;
        access_log {prefix}/access.json js;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / {{
            proxy_pass http://backend;
            proxy_cache c;
            proxy_cache_valid 200 1s;
        }}
        location /nocache/ {{ proxy_pass http://backend; }}
    }}"""

    with serve_origin(SlowHandler) as upstream, \
            run_nginx(prefix, lambda port: http_block(port, upstream)) as port:
        script = prefix / "paths.lua"
        script.write_text(WRK_SCRIPT)
        run = subprocess.run(["wrk", "-t1", "-c8", "-d3s", "-s", str(script), f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
    return prefix / "access.log", prefix / "access.json"


def independent_counts_text(path: Path) -> tuple[collections.Counter, collections.Counter, float, int]:
    """Status and cache-status counts, total request time (s) and line count from the raw text log."""
    status: collections.Counter = collections.Counter()
    cache: collections.Counter = collections.Counter()
    total_rt = 0.0
    lines = path.read_text().splitlines()
    for line in lines:
        after_request = line.split('"')[2].split()
        status[int(after_request[0])] += 1
        fields = dict(token.split("=", 1) for token in line.rsplit('"', 1)[1].split() if "=" in token)
        cache[None if fields["ucs"] == "-" else fields["ucs"]] += 1
        total_rt += float(fields["rt"])
    return status, cache, total_rt, len(lines)


def test_text_and_json_logs_match_independent_counts(nginx_logs, tmp_path):
    text_log, json_log = nginx_logs
    status, cache, total_rt, n_lines = independent_counts_text(text_log)
    assert n_lines > 200, "wrk produced too few requests to be meaningful"
    assert cache["HIT"] > 0 and cache["MISS"] > 0 and cache[None] > 0 and status[404] > 0 and status[500] > 0

    con = connect(tmp_path / "w.duckdb")
    try:
        text = ingest_access_log(con, text_log, service="text")
        assert text.fmt.startswith("combined_kv (detected")
        assert (text.lines_in, text.rows_loaded, text.rows_rejected) == (n_lines, n_lines, 0)
        assert dict(con.execute("SELECT status, count(*) FROM requests WHERE service = 'text' "
                                "GROUP BY ALL").fetchall()) == status
        assert dict(con.execute("SELECT cache_status, count(*) FROM requests WHERE service = 'text' "
                                "GROUP BY ALL").fetchall()) == cache
        assert con.execute("SELECT sum(latency_ms) FROM requests WHERE service = 'text'").fetchone()[0] == (
            pytest.approx(total_rt * 1000))
        # the upstream sleeps UPSTREAM_DELAY_S: every MISS waited at least that long upstream
        slowest_miss = con.execute("SELECT min(upstream_ms) FROM requests WHERE service = 'text' "
                                   "AND cache_status = 'MISS'").fetchone()[0]
        assert slowest_miss >= UPSTREAM_DELAY_S * 1000 - 0.5
        assert con.execute("SELECT count(*) FROM requests WHERE query LIKE '%secret%'").fetchone() == (0,)
        assert con.execute("SELECT count(DISTINCT route) FROM requests WHERE route LIKE '/item/%'").fetchone() == (1,)

        records = [json.loads(line) for line in json_log.read_text().splitlines()]
        j = ingest_access_log(con, json_log, service="json")
        assert j.fmt.startswith("nginx-json (detected")
        assert (j.rows_loaded, j.rows_rejected) == (len(records), 0)
        assert dict(con.execute("SELECT status, count(*) FROM requests WHERE service = 'json' "
                                "GROUP BY ALL").fetchall()) == collections.Counter(int(r["status"]) for r in records)
        assert dict(con.execute("SELECT cache_status, count(*) FROM requests WHERE service = 'json' "
                                "GROUP BY ALL").fetchall()) == collections.Counter(
            r["upstream_cache_status"] or None for r in records)
        # both logs describe the same requests
        assert len(records) == n_lines
    finally:
        con.close()
