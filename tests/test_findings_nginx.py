"""A real nginx in front of a Python origin whose ``/item/`` route becomes 5x slower half-way through a wrk
run, with a deploy event recorded at that moment: ingested through the real CLI (``perfkit ingest
access-log``, ``perfkit ingest events``), the detector must report exactly one high/medium finding on
``/item/{id}``, a latency shift, with that deploy as its top cause and its onset within 2 buckets of the
switch, and nothing on ``/other/{id}``, which did not change (the no-slowdown control, over the same
run). A second control on the same log: with the deploy recorded on ``/other/{id}`` instead, the
``/item/{id}`` finding must not name it as its top cause. (Half of the log is no control: 25 one-second
buckets are too few for the detector to look for change points at all.)

wrk paces each connection (``delay()`` of 20 ms between requests), so the slowdown barely changes the
request rate: the change is in latency only. The run lasts ``DURATION_S`` seconds so that the detector's
finest bucket (1 s) gives at least 48 points."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kit.warehouse import connect
from tests.nginx_proxy import QuietOrigin, nginx_proxy, serve_origin

pytestmark = pytest.mark.integration

DURATION_S = 50
FAST_S = 0.004          # origin time of both routes before the switch
SLOW_S = 0.020          # origin time of /item/ after it
SLOW_ROUTE = "/item/{id}"
OTHER_ROUTE = "/other/{id}"
SERVICE = "shop"
DEPLOY_WHAT = "deploy shop 7.4.0 (item serializer rewrite)"
LOG_FORMAT = '$msec $remote_addr "$request" $status $body_bytes_sent $request_time $upstream_response_time'
PERFKIT = [sys.executable, "-m", "kit.cli"]

WRK_SCRIPT = """
math.randomseed(7)
request = function()
  if math.random() < 0.5 then
    return wrk.format(nil, "/item/" .. math.random(1, 50))
  end
  return wrk.format(nil, "/other/" .. math.random(1, 50))
end
delay = function() return 20 end
"""


class SwitchableOrigin(QuietOrigin):
    """Answers 200 after FAST_S, or SLOW_S for /item/ once ``slow`` is set (with +-30 % jitter)."""

    slow = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        base = SLOW_S if self.path.startswith("/item/") and self.slow.is_set() else FAST_S
        time.sleep(base * random.uniform(0.7, 1.3))
        body = f"payload for {self.path}\n".encode()
        self.reply(200, body)


@pytest.fixture(scope="module")
def slowed_run(tmp_path_factory) -> tuple[Path, datetime]:
    """(nginx access log of a wrk run, the instant /item/ became slow)."""
    assert shutil.which("wrk"), "wrk missing: install wrk"
    prefix = tmp_path_factory.mktemp("nginx-findings")
    SwitchableOrigin.slow.clear()
    switched: list[datetime] = []

    def switch() -> None:
        switched.append(datetime.now(UTC))
        SwitchableOrigin.slow.set()

    try:
        with serve_origin(SwitchableOrigin) as origin, nginx_proxy(prefix, origin, LOG_FORMAT) as port:
            script = prefix / "paced.lua"
            script.write_text(WRK_SCRIPT)
            timer = threading.Timer(DURATION_S / 2, switch)
            timer.start()
            run = subprocess.run(["wrk", "-t1", "-c8", f"-d{DURATION_S}s", "-s", str(script),
                                  f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                                 timeout=DURATION_S + 30)
            timer.cancel()
            assert run.returncode == 0, run.stderr
    finally:
        SwitchableOrigin.slow.clear()
    assert switched, "the origin was never switched"
    return prefix / "access.log", switched[0]


def _perfkit(*args: str) -> None:
    env = {**os.environ, "PERFKIT_SALT": "test"}
    done = subprocess.run([*PERFKIT, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, f"perfkit {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


def _findings(tmp: Path, log: Path, event_route: str | None, at: datetime):
    """Ingest ``log`` (and a deploy at ``at`` on ``event_route``, unless None) through the CLI into a new
    warehouse; the detector's findings on it."""
    from kit.analysis.findings import find_bottlenecks
    from kit.analysis.window import resolve_window

    db = tmp / "w.duckdb"
    _perfkit("ingest", "access-log", "--db", str(db), "--service", SERVICE, "--log-format", LOG_FORMAT, str(log))
    if event_route is not None:
        events = tmp / "events.csv"
        events.write_text("ts_start,kind,service,route,what,version\n"
                          f"{at.isoformat()},deploy,{SERVICE},{event_route},{DEPLOY_WHAT},7.4.0\n")
        _perfkit("ingest", "events", "--db", str(db), str(events))
    con = connect(db, read_only=True)
    try:
        return find_bottlenecks(con, resolve_window(con)).items
    finally:
        con.close()


def _on(findings, route: str) -> list:
    return [f for f in findings if f.confidence in ("high", "medium") and f.scope.get("route") == route]


def _names_deploy(cause) -> bool:
    return cause.kind == "deploy" and DEPLOY_WHAT in f"{cause.ref} {cause.detail}"


def test_slower_route_is_one_finding_with_its_deploy(slowed_run, tmp_path):
    log, switched = slowed_run
    lines = log.read_text().splitlines()
    assert len(lines) > 2500, f"wrk produced only {len(lines)} requests"
    findings = _findings(tmp_path, log, SLOW_ROUTE, switched)
    described = "\n".join(f"{f.kind} {f.confidence} {f.scope} {f.onset} {[c.ref for c in f.causes]}"
                          for f in findings)
    on_item = _on(findings, SLOW_ROUTE)
    assert len(on_item) == 1, f"want one high/medium finding on {SLOW_ROUTE}, got:\n{described}"
    finding = on_item[0]
    assert finding.kind == "latency_shift", described
    assert finding.causes and _names_deploy(finding.causes[0]), f"top cause is not the deploy:\n{described}"
    assert abs((finding.onset - switched).total_seconds()) <= 2 * finding.bucket_s, (
        f"onset {finding.onset} vs switch {switched} (bucket {finding.bucket_s} s)")
    assert not _on(findings, OTHER_ROUTE), f"{OTHER_ROUTE} did not change:\n{described}"


def test_deploy_on_another_route_is_not_the_cause(slowed_run, tmp_path):
    """Control: the same deploy recorded on /other/{id} must not be named as the cause of /item/{id}."""
    log, switched = slowed_run
    findings = _findings(tmp_path, log, OTHER_ROUTE, switched)
    on_item = _on(findings, SLOW_ROUTE)
    assert on_item, "the slowdown was not found at all"
    named = [(c.kind, c.ref, c.strength) for f in on_item for c in f.causes[:1] if _names_deploy(c)]
    assert not named, f"a deploy on {OTHER_ROUTE} named as the top cause of the {SLOW_ROUTE} slowdown: {named}"
