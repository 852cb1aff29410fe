"""The warehouse schema: created and versioned on connect, transactional, clear when locked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from kit import warehouse
from kit.warehouse import (
    CORE_TABLES,
    SCHEMA_VERSION,
    WarehouseError,
    WarehouseLockedError,
    begin_source,
    connect,
    delete_source,
    finish_source,
    schema_version,
    transaction,
)


def columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
                       [table]).fetchall()
    return dict(rows)


def test_connect_creates_every_core_table_with_units_in_names(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert set(CORE_TABLES) <= tables
    requests = columns(con, "requests")
    assert requests["ts"] == "TIMESTAMP WITH TIME ZONE"
    assert {"latency_ms", "upstream_ms", "bytes_sent", "source_id", "route", "cache_status"} <= set(requests)
    assert "size_bytes" in columns(con, "cache_requests") and "size_bytes" in columns(con, "assets")
    assert columns(con, "metrics")["labels"] == "MAP(VARCHAR, VARCHAR)"
    assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)


def test_schema_is_versioned_and_reconnect_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    connect(path).close()
    con = connect(path)
    assert schema_version(con) == SCHEMA_VERSION
    assert con.execute("SELECT count(*) FROM schema_info").fetchone() == (SCHEMA_VERSION,)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    con = connect(path)
    con.execute("INSERT INTO schema_info VALUES (?, now())", [SCHEMA_VERSION + 1])
    con.close()
    with pytest.raises(WarehouseError, match="newer than this kit"):
        connect(path)


def test_read_only_open_of_a_missing_file_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="does not exist.*perfkit demo"):
        connect(tmp_path / "nope.duckdb", read_only=True)


def test_transaction_rolls_back_everything_on_error(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    with pytest.raises(RuntimeError), transaction(con):
        source = begin_source(con, "test", "x.log")
        con.execute("INSERT INTO events (ts_start, kind, what, source_id) VALUES (now(), 'deploy', 'v1', ?)",
                    [source.source_id])
        raise RuntimeError("boom")
    assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM ingest_log").fetchone() == (0,)


def test_delete_source_removes_its_rows_only(tmp_path: Path) -> None:
    con = connect(tmp_path / "w.duckdb")
    ids = []
    for name in ("a", "b"):
        with transaction(con):
            source = begin_source(con, "events", name)
            con.execute("INSERT INTO events (ts_start, kind, what, source_id) VALUES (now(), 'deploy', ?, ?)",
                        [name, source.source_id])
            finish_source(con, source, lines_in=1, rows_loaded=1)
            ids.append(source.source_id)
    delete_source(con, ids[0])
    assert con.execute("SELECT what FROM events").fetchall() == [("b",)]
    assert con.execute("SELECT path, rows_loaded FROM ingest_log").fetchall() == [("b", 1)]


def test_opening_a_warehouse_another_process_writes_gives_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from kit.warehouse import connect
            con = connect({str(path)!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseLockedError, match=r"open for writing by another process .*PID \d+"):
            connect(path)
        result = subprocess.run([sys.executable, "-m", "kit.cli", "run", "--db", str(path), "--quiet"],
                                capture_output=True, text=True)
        assert result.returncode == 1
        assert "open for writing by another process" in result.stderr and "Traceback" not in result.stderr
    finally:
        holder.communicate("")


def test_a_cursor_keeps_the_session_time_zone_and_runs_beside_its_connection(tmp_path: Path) -> None:
    con = warehouse.connect(tmp_path / "w.duckdb")
    try:
        con.execute("SET TimeZone = 'Asia/Kathmandu'")   # +05:45: a day bucket differs from UTC's
        con.execute("CREATE TEMP TABLE mine AS SELECT 1 AS x")
        day = "SELECT time_bucket(INTERVAL 1 DAY, TIMESTAMPTZ '2026-01-01 20:00:00+00')::VARCHAR"
        with warehouse.cursor(con) as other:
            assert other.execute("SELECT current_setting('TimeZone')").fetchone() == ("Asia/Kathmandu",)
            assert other.execute(day).fetchone() == con.execute(day).fetchone()
            assert other.execute("SELECT count(*) FROM requests").fetchone() == (0,)
            with pytest.raises(duckdb.CatalogException):   # the caller's temporary tables stay its own
                other.execute("SELECT * FROM mine")
        with pytest.raises(duckdb.ConnectionException):    # closed after the block
            other.execute("SELECT 1")
    finally:
        con.close()
