"""Shared fixtures: paths to the project's shared real datasets (read in place, never copied); a fresh
in-memory warehouse (``con``); demo warehouses built once per session (``demo_warehouse``); the
line-accounting check every ingest property test makes; one real ``perfkit run`` on a small demo shared by
the tests of a run's outputs (``finished_run``); waiting for a test service to answer; a throw-away
PostgreSQL 15 server (``postgres_server``); running
code under several string-hash seeds (for reproducible outputs). Before any test runs, the session stops
with one message when a system tool the tests use is missing (``tests/system_deps.py``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest

from kit.ingest.core import IngestError, IngestSummary
from kit.warehouse import connect
from tests import system_deps

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Missing system tools stop the run at once with the command that installs them, rather than failing
    or hanging the tests that start them. ``make test`` installs them first when it can."""
    absent = system_deps.missing(system_deps.tools_for("test"))
    if absent:
        print(system_deps.report(absent, as_root=os.geteuid() == 0), file=sys.stderr, flush=True)
        pytest.exit("missing system tools, see above", returncode=2)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` next to the project; the tests that use it fail when it is missing."""
    assert SHARED_DATASETS.is_dir(), f"shared datasets not found at {SHARED_DATASETS}"
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``demo_warehouse(requests=..., days=..., seed=...)``: the path of a demo warehouse of that size, built
    once per session; test modules asking for the same size share the file (open it read-only). Ask for
    the smallest demo the test needs."""
    built: dict[tuple[int, int, int], Path] = {}

    def demo(*, requests: int, days: int, seed: int) -> Path:
        key = (requests, days, seed)
        if key not in built:
            from kit.demo import build_demo

            path = tmp_path_factory.mktemp(f"demo-{requests}-{days}d-seed{seed}") / "demo.duckdb"
            summary = build_demo(path, requests=requests, days=days, seed=seed, progress=False)
            assert summary.requests == requests
            built[key] = path
        return built[key]

    return demo


@pytest.fixture(scope="session")
def small_demo(demo_warehouse: Callable[..., Path]) -> Path:
    """The demo warehouse ``finished_run`` analyses."""
    return demo_warehouse(requests=60_000, days=7, seed=7)


@pytest.fixture(scope="session")
def finished_run(small_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of one ``perfkit run`` (the real CLI, every notebook) on ``small_demo``, made once per
    session for the tests that check a run's outputs (tests/test_pipeline.py, tests/test_entry_page.py). Its
    first run is ``sorted((out / "runs").iterdir())[0]``; later tests may add runs to the folder."""
    out = tmp_path_factory.mktemp("outputs")
    result = subprocess.run([sys.executable, "-m", "kit.cli", "run", "--db", str(small_demo), "--out", str(out),
                             "--quiet"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture()
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh in-memory warehouse (current schema), closed after the test."""
    c = connect(":memory:")
    yield c
    c.close()


def assert_lines_accounted_for(ingest: Callable[[duckdb.DuckDBPyConnection], IngestSummary],
                               table: str) -> IngestSummary | None:
    """Run ``ingest`` on a fresh in-memory warehouse and check the ingest's line accounting against the
    tables: lines in = loaded + rejected + skipped, ``table`` holds the loaded rows and ``rejects`` the
    rejected lines, each with its line number, field and reason. An input with no parsable line may fail
    instead, with an error that says so (then None is returned)."""
    con = connect(":memory:")
    try:
        try:
            summary = ingest(con)
        except IngestError as exc:
            assert "no parsable line" in str(exc)
            return None
        assert summary.lines_in == summary.rows_loaded + summary.rows_rejected + summary.rows_skipped
        assert con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] == summary.rows_loaded
        assert con.execute("SELECT count(*), count(*) FILTER (WHERE line_no IS NULL OR field IS NULL "
                           "OR reason IS NULL) FROM rejects").fetchall()[0] == (summary.rows_rejected, 0)
        return summary
    finally:
        con.close()


def same_within(a: object, b: object, rel: float = 1e-9) -> bool:
    """Equal nested results (dicts, lists, scalars) with floats equal to ``rel`` relative: DuckDB's parallel
    sums add in a varying order, so the same analysis twice can differ in the last digits."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_within(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_within(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= rel * max(abs(a), abs(b))
    return a == b


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a service a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def as_postgres(*cmd: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
    """Run a command as the ``postgres`` system user (initdb and pg_ctl refuse to run as root)."""
    return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=check, capture_output=True,
                          text=True, timeout=120, **kw)


@contextmanager
def postgres_server(conf: str) -> Iterator[dict[str, Any]]:
    """PostgreSQL 15 in a temp dir on 127.0.0.1 (trust auth, superuser ``postgres``) with ``conf`` appended
    to postgresql.conf (``{root}`` and ``{logs}`` are replaced by its directories); yields ``dsn``,
    ``port``, ``logs``, ``root``; stopped and removed afterwards."""
    assert (PG_BIN / "initdb").exists(), "PostgreSQL 15 binaries missing (apt-get install postgresql-15)"
    root = Path(tempfile.mkdtemp(prefix="perfkit-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data, logs, port = root / "data", root / "logs", free_port()
    as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    with open(data / "postgresql.conf", "a") as handle:
        handle.write(f"""
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{root}'
""" + conf.replace("{root}", str(root)).replace("{logs}", str(logs)))
    as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "server.log"), "start")
    try:
        yield {"dsn": f"host=127.0.0.1 port={port} user=postgres dbname=postgres", "port": port, "logs": logs,
               "root": root}
    finally:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


def wait_until_ok(url: str, seconds: float) -> bool:
    """Poll ``url`` until it answers HTTP 200 (True) or ``seconds`` pass (False): a service started by a
    test is ready."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def outputs_under_hash_seeds(code: str, *args: str, seeds: tuple[str, ...] = ("1", "2", "3")) -> list[str]:
    """The standard output of ``python -c code args`` (run from the project root) under each
    PYTHONHASHSEED: equal outputs mean the result does not hang on set or dict-of-str order."""
    return [subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True,
                           cwd=PROJECT_ROOT, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in seeds]
