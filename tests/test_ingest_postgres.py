"""PostgreSQL ingest: the shared pgBadger logs (stderr, csvlog, jsonlog, compressed, time zones,
multi-line parameters) and a real PostgreSQL 15 with pg_stat_statements loaded by pgbench."""

from __future__ import annotations

import bz2
import csv
import gzip
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.ingest.core import IngestError
from kit.ingest.postgres import (
    detect_format,
    ingest_postgres_log,
    pg_stat_deltas,
    prefix_regex,
    redact_dsn,
    snapshot_pg_stat_statements,
)
from kit.warehouse import connect

PG_BIN = Path("/usr/lib/postgresql/15/bin")
_TIMED = re.compile(r"LOG: +duration: [0-9.]+ ms +(statement|execute [^:]*|query): ")


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    c = connect(":memory:")
    yield c
    c.close()


def _pgb(shared: Path, name: str) -> Path:
    return shared / "db" / "pgbadger_logs" / name


def _open(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", errors="replace")
    if path.suffix == ".bz2":
        return bz2.open(path, "rt", errors="replace")
    return open(path, errors="replace")


def _count_timed_stderr(path: Path) -> int:
    """Independent count: stderr lines with a duration and a non-empty statement/execute."""
    with _open(path) as handle:
        return sum(1 for line in handle if (m := _TIMED.search(line)) and line[m.end():].strip())


@pytest.mark.parametrize("name", ["light.postgres.log.bz2", "multiline_param.log", "stmt_type.log",
                                  "queryid.log.gz"])
def test_stderr_logs_load_every_timed_statement(con, shared_datasets, name):
    path = _pgb(shared_datasets, name)
    s = ingest_postgres_log(con, path)
    assert s.fmt == "stderr"
    assert s.lines_in == s.rows_loaded + s.rows_rejected + s.rows_skipped
    assert s.rows_loaded == _count_timed_stderr(path)


def test_multiline_statement_and_parameters(con, shared_datasets):
    ingest_postgres_log(con, _pgb(shared_datasets, "queryid.log.gz"))
    # the psql \d query spans several tab-indented continuation lines: all joined into one statement
    row = con.execute("SELECT fingerprint, total_ms, user_name, database FROM queries "
                      "WHERE total_ms = 25.450").fetchone()
    assert row[0].startswith('select n.nspname as "schema", c.relname as "name", case c.relkind when ? then')
    assert row[0].endswith("order by ?,?")
    assert (row[2], row[3]) == ("postgres", "stackoverflow")


def test_csvlog_records_and_time_zone(con, shared_datasets):
    path = _pgb(shared_datasets, "anonymize.log")
    assert detect_format(path) == "csvlog"
    s = ingest_postgres_log(con, path)
    with open(path, newline="") as handle:
        records = list(csv.reader(handle))
    expected = sum(1 for r in records if re.match(r"duration: [0-9.]+ ms +(statement|execute)", r[13]))
    assert s.lines_in == len(records) and s.rows_loaded == expected == 5
    first = con.execute("SELECT ts, user_name, database, total_ms FROM queries ORDER BY rowid LIMIT 1").fetchone()
    # '2021-01-22 10:03:22.785 CET' is 09:03:22.785 UTC
    assert first[0].strftime("%Y-%m-%d %H:%M:%S.%f") == "2021-01-22 09:03:22.785000"
    assert first[1:] == ("aaaa", "aaaa", 26.120)


def test_rds_prefix_time_zones_and_rejects(con, shared_datasets):
    s = ingest_postgres_log(con, _pgb(shared_datasets, "pg-timezones.log"))
    assert s.rows_loaded == 2
    rows = con.execute("SELECT ts, user_name, database, fingerprint FROM queries ORDER BY ts").fetchall()
    assert rows[0][0].strftime("%H:%M:%S") == "17:00:00" and rows[0][1:3] == ("user", "my_db")
    assert rows[1][3] == "update t1 set c1=?"
    # MSK is not known to ICU: the kit maps it to +03
    ingest_postgres_log(con, _pgb(shared_datasets, "stmt_type.log"))
    msk = con.execute("SELECT min(ts) FROM queries WHERE fingerprint = 'begin'").fetchone()[0]
    assert msk.strftime("%Y-%m-%d %H:%M:%S") == "2019-10-21 09:03:31"


def test_rds_empty_statements_are_rejected_with_line_numbers(con, shared_datasets):
    s = ingest_postgres_log(con, _pgb(shared_datasets, "rds.log.bz2"))
    assert s.rows_loaded == _count_timed_stderr(_pgb(shared_datasets, "rds.log.bz2"))
    rejects = con.execute("SELECT line_no, field FROM rejects ORDER BY line_no").fetchall()
    assert rejects == [(8, "statement"), (9, "statement"), (10, "statement")]


def test_jsonlog_and_unsupported_syslog(con, shared_datasets):
    s = ingest_postgres_log(con, _pgb(shared_datasets, "cnpg.log.gz"))
    assert s.fmt == "jsonlog" and s.rows_loaded > 0
    with pytest.raises(IngestError, match="no parsable line"):
        ingest_postgres_log(con, _pgb(shared_datasets, "pg-syslog.2.gz"))


def test_prefix_regex_and_dsn_redaction():
    pattern, groups = prefix_regex("%m [%p] %q%u@%d ")
    m = re.match(pattern, "2024-01-02 03:04:05.678 UTC [42] bob@shop LOG:  duration: 1.5 ms  statement: select 1")
    assert m and m.group(groups["user"]) == "bob" and m.group(groups["db"]) == "shop"
    assert m.group(groups["message"]).startswith("duration: 1.5 ms")
    assert redact_dsn("postgresql://u:secret@h:5/db") == "postgresql://u@h:5/db"
    assert "secret" not in redact_dsn("host=h password=secret dbname=x")


_LINES = st.one_of(
    st.sampled_from(["2024-01-02 03:04:05 UTC [1] LOG:  duration: 1.5 ms  statement: select 1",
                     "2024-01-02 03:04:05 UTC [1] LOG:  duration: x ms  statement: select 1",
                     "2024-01-02 03:04:05 XYZ [1] LOG:  duration: 2 ms  execute s1: select $1",
                     "\tcontinued line", "2024-01-02 03:04:05 UTC [1] DETAIL:  parameters: $1 = '1'", ""]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=40))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_LINES, max_size=25))
def test_random_stderr_lines_are_accounted_for(tmp_path, lines):
    path = tmp_path / "pg.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    c = connect(":memory:")
    try:
        s = ingest_postgres_log(c, path, fmt="stderr", replace=True)
        assert s.lines_in == s.rows_loaded + s.rows_rejected + s.rows_skipped
        assert c.execute("SELECT count(*) FROM rejects").fetchone()[0] == s.rows_rejected
    except IngestError as exc:
        assert "no parsable line" in str(exc)
    finally:
        c.close()


# ------------------------------------------------------------------------------ a real PostgreSQL 15

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=check, capture_output=True,
                          text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def postgres_server():
    """PostgreSQL 15 in a temp dir on 127.0.0.1 with pg_stat_statements and every statement logged to
    stderr, csvlog and jsonlog files; stopped afterwards."""
    assert (PG_BIN / "initdb").exists(), "PostgreSQL 15 binaries missing (apt-get install postgresql-15)"
    root = Path(tempfile.mkdtemp(prefix="perfkit-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data, logs, port = root / "data", root / "logs", _free_port()
    _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(f"""
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{root}'
shared_preload_libraries = 'pg_stat_statements'
logging_collector = on
log_destination = 'stderr,csvlog,jsonlog'
log_directory = '{logs}'
log_filename = 'pg'
log_min_duration_statement = 0
log_line_prefix = '%m [%p] %q%u@%d '
""")
    _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "server.log"), "start")
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    try:
        _as_postgres(str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-c",
                     "CREATE EXTENSION pg_stat_statements")
        yield {"dsn": dsn, "port": port, "logs": logs, "root": root}
    finally:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


def _pgbench(port: int, *args: str) -> None:
    _as_postgres(str(PG_BIN / "pgbench"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", *args,
                 "postgres")


@pytest.mark.integration
def test_pg_stat_statements_snapshots_and_log_formats(postgres_server, tmp_path):
    port = postgres_server["port"]
    _pgbench(port, "-i", "-s", "1", "-q")
    con = connect(tmp_path / "w.duckdb")
    first = snapshot_pg_stat_statements(con, postgres_server["dsn"])
    assert first.rows_loaded > 0 and first.kind == "pg-stat-statements"
    _pgbench(port, "-T", "3", "-c", "2", "-n")
    second = snapshot_pg_stat_statements(con, postgres_server["dsn"])
    assert second.rows_loaded > 0
    deltas = pg_stat_deltas(con)
    assert len(deltas) > 0 and (deltas["interval_s"] > 2.5).all()
    by_fp = deltas.groupby("fingerprint")["calls"].sum().sort_values(ascending=False)
    top = list(by_fp.index[:6])
    assert "update pgbench_accounts set abalance = abalance + ? where aid = ?" in top
    assert "select abalance from pgbench_accounts where aid = ?" in top
    # pgbench runs the 7 statements of its TPC-B-like script once per transaction
    n_accounts = by_fp["update pgbench_accounts set abalance = abalance + ? where aid = ?"]
    assert n_accounts == by_fp["select abalance from pgbench_accounts where aid = ?"] > 100

    # the server's own logs in three formats: same number of pgbench account updates in each
    time.sleep(1.5)
    logs = postgres_server["logs"]
    counts = {}
    for name, fmt in (("pg", "stderr"), ("pg.csv", "csvlog"), ("pg.json", "jsonlog")):
        copy = tmp_path / f"copy-{name}"
        shutil.copy(logs / name, copy)
        s = ingest_postgres_log(con, copy, log_line_prefix="%m [%p] %q%u@%d " if fmt == "stderr" else None)
        assert s.fmt == fmt and s.rows_loaded > 0
        assert s.lines_in == s.rows_loaded + s.rows_rejected + s.rows_skipped
        counts[fmt] = con.execute(
            "SELECT count(*) FROM queries WHERE source_id = ? AND fingerprint = "
            "'update pgbench_accounts set abalance = abalance + ? where aid = ?'", [s.source_id]).fetchone()[0]
        assert con.execute("SELECT count(DISTINCT user_name) FROM queries WHERE source_id = ? "
                           "AND user_name = 'postgres'", [s.source_id]).fetchone()[0] == 1
    with open(logs / "pg", errors="replace") as handle:
        raw = sum(1 for line in handle if "statement: UPDATE pgbench_accounts SET abalance" in line)
    assert counts["stderr"] == counts["csvlog"] == counts["jsonlog"] == raw >= n_accounts
    con.close()


@pytest.mark.integration
def test_snapshot_errors_are_clear(tmp_path):
    con = connect(":memory:")
    with pytest.raises(IngestError, match="cannot connect"):
        snapshot_pg_stat_statements(con, f"host=127.0.0.1 port={_free_port()} user=x password=hunter2",
                                    connect_timeout_s=2)
    con.close()


def test_grown_stderr_log_ingests_only_new_entries(con, shared_datasets, tmp_path):
    with _open(_pgb(shared_datasets, "light.postgres.log.bz2")) as handle:
        lines = handle.readlines()
    path = tmp_path / "pg.log"
    path.write_text("".join(lines[:300]))
    first = ingest_postgres_log(con, path)
    with open(path, "a") as out:
        out.write("".join(lines[300:]))
    second = ingest_postgres_log(con, path)
    assert second.status == "appended"
    assert first.rows_loaded + second.rows_loaded == _count_timed_stderr(path)
    assert ingest_postgres_log(con, path).status == "unchanged"
