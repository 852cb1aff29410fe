"""A real load sweep: wrk at increasing connection counts against a real nginx in front of a Python
origin whose throughput is limited by a lock (each request spends ~PARALLEL_S outside the lock and
~SERIAL_S inside it, both exponential), nginx's access log ingested through the CLI; the USL fitted on
the doubling sweep 1, 2, 4 ... 64 connections must predict the throughput of the levels in between
(3, 6, 12, 24, 48) within 15 %. (The lock makes a closed queueing network, which the USL approximates:
exact mean-value analysis of that network, fitted the same way, is off by at most 7 % at those levels.)

Concurrency is the kit's own (Little's law on the log: request-seconds per second); each load level is
the run's 1-s buckets of one connection count, its first and last second left out (ramp)."""

from __future__ import annotations

import math
import random
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.analysis.scaling import fit_usl, load_series, usl_throughput
from kit.analysis.window import resolve_window
from kit.warehouse import connect
from tests.nginx_proxy import QuietOrigin, nginx_proxy, serve_origin
from tests.test_findings_nginx import LOG_FORMAT, _perfkit

pytestmark = pytest.mark.integration

CONNECTIONS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
FIT_ON = (1, 2, 4, 8, 16, 32, 64)    # the sweep; the levels in between (3, 6, 12, 24, 48) are held out
# seconds per level: its middle LEVEL_S - 2 s hold ~(LEVEL_S - 2) / SERIAL_S requests, so a saturated level's
# throughput has a sampling error of about 1 / sqrt(that) (exponential hold times), and the fit's levels as
# much. With 10 ms holds that was 5 % at 6 s (three quiet runs: worst held-out level 10 %, 10 %, 8 % off) and
# 3.8 % at 9 s, which still failed once on a loaded machine (15.3 % off at 48 connections; the USL's own error
# is up to 7 %). Halving both times (their ratio, and so the network's curve, unchanged) doubles the requests
# per second: 2.7 % at 9 s
LEVEL_S = 9
PARALLEL_S = 0.001
SERIAL_S = 0.005
SERVICE = "locked"


class LockedOrigin(QuietOrigin):
    """Answers 200 after a parallel sleep and a sleep under one global lock (the serial part)."""

    lock = threading.Lock()
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16                 # one write per response (flushed by http.server) ...
    disable_nagle_algorithm = True     # ... and no Nagle / delayed-ACK stall of 40 ms on it

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        time.sleep(random.expovariate(1 / PARALLEL_S))
        with self.lock:
            time.sleep(random.expovariate(1 / SERIAL_S))
        body = b"ok\n"
        self.reply(200, body)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, list[tuple[int, datetime, datetime]]]:
    """(nginx access log of the sweep, [(connections, start, end)] of each level)."""
    assert shutil.which("wrk"), "wrk missing: install wrk"
    prefix = tmp_path_factory.mktemp("nginx-scaling")
    levels = []
    with serve_origin(LockedOrigin) as origin, nginx_proxy(prefix, origin, LOG_FORMAT, keepalive=64) as port:
        for c in CONNECTIONS:
            start = datetime.now(UTC)
            run = subprocess.run(["wrk", "-t1", f"-c{c}", f"-d{LEVEL_S}s", f"http://127.0.0.1:{port}/item"],
                                 capture_output=True, text=True, timeout=LEVEL_S + 30)
            assert run.returncode == 0, run.stderr
            levels.append((c, start, datetime.now(UTC)))
    return prefix / "access.log", levels


def _level_points(log: Path, levels, tmp: Path) -> pd.DataFrame:
    db = tmp / "w.duckdb"
    _perfkit("ingest", "access-log", "--db", str(db), "--service", SERVICE, "--log-format", LOG_FORMAT, str(log))
    con = connect(db, read_only=True)
    try:
        series = load_series(con, resolve_window(con), bucket="1s")
    finally:
        con.close()
    series["connections"] = 0
    for c, start, end in levels:
        inside = (series["b"] >= pd.Timestamp(start) + pd.Timedelta(seconds=1)) & \
                 (series["b"] + pd.Timedelta(seconds=1) <= pd.Timestamp(end) - pd.Timedelta(seconds=1))
        series.loc[inside, "connections"] = c
    return series[series["connections"] > 0]


def test_usl_fitted_on_a_doubling_sweep_predicts_the_levels_in_between(sweep, tmp_path):
    log, levels = sweep
    points = _level_points(log, levels, tmp_path)
    assert sorted(points["connections"].unique()) == list(CONNECTIONS), "a level has no complete bucket"
    fit_on = set(FIT_ON)
    train = points[points["connections"].isin(fit_on)]
    fit = fit_usl(train["concurrency"].to_numpy(), train["throughput_rps"].to_numpy(),
                  train["connections"].to_numpy(), n_boot=100)
    assert fit.lam is not None and fit.alpha is not None and fit.beta is not None
    held = points[~points["connections"].isin(fit_on)].groupby("connections")[["concurrency", "throughput_rps"]].mean()
    predicted = usl_throughput(held["concurrency"].to_numpy() / fit.n_ref, fit.lam, fit.alpha, fit.beta)
    error = np.abs(predicted / held["throughput_rps"].to_numpy() - 1)
    report = {int(c): (round(float(m), 1), round(float(p), 1)) for c, m, p in
              zip(held.index, held["throughput_rps"], predicted, strict=True)}
    print(f"held-out levels, measured vs predicted req/s: {report}")
    assert (error <= 0.15).all(), (f"measured vs predicted req/s per held-out level: {report}; fit λ={fit.lam:.3g} "
                                   f"α={fit.alpha:.3g} β={fit.beta:.3g} ({fit.reason})")
    # the lock caps throughput near 1 / SERIAL_S: the fitted curve must saturate, not grow linearly
    assert fit.alpha > 0.05
    # (the lock's hold times are exponential: over a level's ~LEVEL_S / SERIAL_S requests their mean is within
    # 4 standard errors of SERIAL_S, so the cap is 1 / SERIAL_S up to that sampling error; without the lock a
    # held-out level would run tens of times faster)
    assert held["throughput_rps"].max() < (1 + 4 / math.sqrt(LEVEL_S / SERIAL_S)) / SERIAL_S
