"""PostgreSQL ingest: the shared pgBadger logs (stderr, csvlog, jsonlog, compressed, time zones,
multi-line parameters) and a real PostgreSQL 15 with pg_stat_statements loaded by pgbench."""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.ingest.core import IngestError
from kit.ingest.pg_stat_statements import pg_stat_deltas, redact_dsn, snapshot_pg_stat_statements
from kit.ingest.postgres import detect_format, ingest_postgres_log, prefix_regex
from kit.warehouse import connect
from tests.conftest import PG_BIN, as_postgres, assert_lines_accounted_for, free_port
from tests.conftest import postgres_server as _postgres_server

_TIMED = re.compile(r"LOG: +duration: [0-9.]+ ms +(statement|execute [^:]*|query): ")


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


def test_jsonlog(con, shared_datasets):
    s = ingest_postgres_log(con, _pgb(shared_datasets, "cnpg.log.gz"))
    assert s.fmt == "jsonlog" and s.rows_loaded > 0


# ------------------------------------------------------------- syslog / Heroku logplex / Cloud SQL wrappers

_SYSLOG_LINE = re.compile(r"^[A-Z][a-z]{2} +\d+ [\d:]{8} (\S+) ([^ \[:]+)\[(\d+)\]: \[(\d+)-(\d+)\] ?(.*)$")
_LOGPLEX_LINE = re.compile(r"^\S+ (?:\S+ )?app\[([^\]]+)\]:? \[(\w+)\] \[(\d+)-(\d+)\] ?(.*)$")
_OWN_SEVERITY = re.compile(r"^\S.*?\b(LOG|ERROR|WARNING|FATAL|PANIC|DETAIL|HINT|CONTEXT|STATEMENT|NOTICE):  |"
                           r"^ sql_error_code = \w{5} [A-Z]+:  ")
_TIMED_MESSAGE = re.compile(r"\bLOG: +duration: [0-9.]+ ms +(statement|execute [^:]*|query): ?")


def _wrapped_entries(lines, wrapper: re.Pattern) -> list[list[str]]:
    """Entries (lists of message lines) of a syslog/logplex file, joined by process + [N-M] entry number."""
    entries: list[list[str]] = []
    current: dict[tuple, list[str]] = {}
    for line in lines:
        m = wrapper.match(line.rstrip("\n"))
        if not m:
            continue
        *proc, n, seq, body = m.groups()
        key = (*proc, n)
        body = body.replace("#011", "\t")
        if seq == "1" or key not in current or _OWN_SEVERITY.match(body):
            current[key] = [body]
            entries.append(current[key])
        else:
            current[key].append(body.removeprefix("\t"))
    return entries


def _count_timed_entries(entries: list[list[str]]) -> int:
    """Independent count: entries whose message is a timed statement with a non-empty statement."""
    count = 0
    for first, *rest in entries:
        m = _TIMED_MESSAGE.search(first)
        if m and " ".join([first[m.end():], *rest]).strip():
            count += 1
    return count


@pytest.mark.parametrize("name", ["pg-syslog.1.bz2", "pg-syslog.2.gz"])
def test_syslog_loads_every_timed_entry(con, shared_datasets, name):
    path = _pgb(shared_datasets, name)
    assert detect_format(path) == "syslog"
    s = ingest_postgres_log(con, path, year=2019)
    assert s.fmt == "syslog"
    assert s.lines_in == s.rows_loaded + s.rows_rejected + s.rows_skipped
    with _open(path) as handle:
        lines = handle.readlines()
    entries = _wrapped_entries(lines, _SYSLOG_LINE)
    assert s.rows_loaded == _count_timed_entries(entries) > 50_000
    others = sum(1 for line in lines if not _SYSLOG_LINE.match(line))   # systemd's lines: skipped
    assert s.rows_rejected == 0 and s.lines_in == len(entries) + others


def test_syslog_row_by_hand(con, shared_datasets):
    # [7-1] .. [7-8] of process 10819: the psql \l query on 8 lines, continuations tab-escaped as #011;
    # 'Feb 11 13:15:40' in a log that says 'CET' is 12:15:40 UTC
    ingest_postgres_log(con, _pgb(shared_datasets, "pg-syslog.1.bz2"), year=2019, assume_tz="Europe/Paris")
    row = con.execute("SELECT ts, user_name, database, total_ms, fingerprint FROM queries "
                      "ORDER BY rowid LIMIT 1").fetchone()
    assert row[0].strftime("%Y-%m-%d %H:%M:%S") == "2019-02-11 12:15:40"
    assert row[1:4] == ("postgres", "postgres", 13.997)
    assert row[4] == ('select d.datname as "name", pg_catalog.pg_get_userbyid(d.datdba) as "owner", '
                      'pg_catalog.pg_encoding_to_char(d.encoding) as "encoding", d.datcollate as "collate", '
                      'd.datctype as "ctype", pg_catalog.array_to_string(d.datacl, ?) as "access privileges" '
                      'from pg_catalog.pg_database d order by ?')


def test_syslog_year_defaults_to_the_file_time(con, shared_datasets, tmp_path):
    path = _pgb(shared_datasets, "pg-syslog.2.gz")
    ingest_postgres_log(con, path)
    first = con.execute("SELECT min(ts) FROM queries").fetchone()[0]
    assert first.year == time.gmtime(path.stat().st_mtime).tm_year
    assert first.strftime("%m-%d %H:%M:%S") == "02-10 23:15:40"
    # a log spanning New Year, last written on 2 January: its December lines are of the year before
    log = tmp_path / "postgresql.log"
    log.write_text(
        "Dec 31 23:59:59 db1 postgres[7]: [1-1] db=shop,user=bob LOG:  duration: 2.5 ms  statement: select 1\n"
        "Jan  1 00:00:01 db1 postgres[7]: [2-1] db=shop,user=bob LOG:  duration: 1.5 ms  statement: select 2\n")
    stamp = time.mktime((2024, 1, 2, 12, 0, 0, 0, 0, -1))
    os.utime(log, (stamp, stamp))
    s = ingest_postgres_log(con, log)
    assert s.fmt == "syslog" and s.rows_loaded == 2
    got = [r[0].strftime("%Y-%m-%d %H:%M:%S") for r in con.execute(
        "SELECT ts FROM queries WHERE source_id = ? ORDER BY ts", [s.source_id]).fetchall()]
    assert got == ["2023-12-31 23:59:59", "2024-01-01 00:00:01"]


def test_logplex_loads_every_timed_entry(con, shared_datasets):
    path = _pgb(shared_datasets, "logplex.gz")
    assert detect_format(path) == "logplex"
    s = ingest_postgres_log(con, path)
    assert s.fmt == "logplex" and s.rows_rejected == 0
    assert s.lines_in == s.rows_loaded + s.rows_skipped
    with _open(path) as handle:
        entries = _wrapped_entries(handle, _LOGPLEX_LINE)
    assert s.rows_loaded == _count_timed_entries(entries) == 4
    assert s.lines_in == len(entries)
    # [921320-1..6] of postgres.5925: a 6-line execute; Heroku's prefix names no user or database
    row = con.execute("SELECT ts, user_name, database, total_ms, fingerprint FROM queries "
                      "WHERE total_ms > 80000").fetchone()
    assert row[0].strftime("%Y-%m-%d %H:%M:%S") == "2021-09-07 04:01:27"
    assert row[1:4] == (None, None, 85756.273)
    assert row[4] == ('update "checkers" set redundant_missions_count = ( select count(id) from missions '
                      'where missions.checker_id = checkers.id and missions.date < now() )')


def test_cloudsql_export(con, shared_datasets, tmp_path):
    path = _pgb(shared_datasets, "cloudsql.log.gz")
    assert detect_format(path) == "cloudsql"
    s = ingest_postgres_log(con, path)
    with gzip.open(path, "rt") as handle:
        records = [json.loads(line) for line in handle]
    payloads = [r["textPayload"] for r in records]
    # this export holds connections, vacuums and checkpoints but no timed statement; its continuation
    # lines ('\tpages: ...' of an automatic vacuum) come as records of their own, without [pid]: [N-M]
    firsts = [t for t in payloads if re.match(r"^\[\d+\]: \[\d+-\d+\] ", t)]
    assert sum(1 for t in firsts if _TIMED_MESSAGE.search(t)) == 0 == s.rows_loaded
    assert s.lines_in == s.rows_skipped == len(firsts) == len(records) - sum(t.startswith("\t") for t in payloads)
    # a timed statement and its continuation record, in the export's own record layout
    template = records[0]
    lines = []
    for ts, text in (("2020-05-02T13:00:20.382318Z", "[24667]: [4-1] db=shop,user=bob LOG:  duration: 12.5 ms"
                      "  statement: SELECT * FROM orders WHERE id = 42"),
                     ("2020-05-02T13:00:20.382400Z", "\tAND status = 'paid'")):
        lines.append(json.dumps({**template, "timestamp": ts, "textPayload": text}))
    export = tmp_path / "cloudsql.json"
    export.write_text("\n".join(lines) + "\n")
    s = ingest_postgres_log(con, export)
    assert (s.fmt, s.lines_in, s.rows_loaded) == ("cloudsql", 1, 1)
    row = con.execute("SELECT ts, user_name, database, total_ms, fingerprint FROM queries "
                      "WHERE source_id = ?", [s.source_id]).fetchone()
    assert row[0].strftime("%Y-%m-%d %H:%M:%S.%f") == "2020-05-02 13:00:20.382318"
    assert row[1:] == ("bob", "shop", 12.5, "select * from orders where id = ? and status = ?")


_SYSLOG_LINES = st.one_of(
    st.sampled_from([
        "Feb 11 13:15:40 h postgres[1]: [7-1] db=d,user=u LOG:  duration: 1.5 ms  statement: select 1",
        "Feb 11 13:15:40 h postgres[1]: [7-2] #011from t",
        "Feb 11 13:15:40 h postgres[2]: [7-2] #011where x = 1",
        "Feb 11 13:15:40 h postgres[1]: [8-1] db=d,user=u LOG:  duration: x ms  statement: select 1",
        "Feb 30 13:15:40 h postgres[3]: [1-1] db=d,user=u LOG:  duration: 2 ms  execute s1: select $1",
        "Feb 11 13:15:40 h postgres[3]: [1-2] db=d,user=u DETAIL:  parameters: $1 = '1'",
        "Feb 11 13:15:40 h postgres[1]: [9-1] db=d,user=u LOG:  duration: 3 ms  statement: ",
        "Feb 11 13:15:41 h systemd[1]: Started PostgreSQL Cluster 11-main.", "#011orphan", ""]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=40))


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


@pytest.mark.parametrize("fmt,strategy,options", [("stderr", _LINES, {}),
                                                   ("syslog", _SYSLOG_LINES, {"year": 2024})])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_lines_are_accounted_for(tmp_path, fmt, strategy, options, data):
    lines = data.draw(st.lists(strategy, max_size=25))
    path = tmp_path / "pg.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_lines_accounted_for(lambda c: ingest_postgres_log(c, path, fmt=fmt, replace=True, **options), "queries")


# ------------------------------------------------------------------------------ a real PostgreSQL 15

@pytest.fixture(scope="module")
def postgres_server():
    """PostgreSQL 15 with pg_stat_statements and every statement logged to stderr, csvlog and jsonlog files."""
    with _postgres_server("""
shared_preload_libraries = 'pg_stat_statements'
logging_collector = on
log_destination = 'stderr,csvlog,jsonlog'
log_directory = '{logs}'
log_filename = 'pg'
log_min_duration_statement = 0
log_line_prefix = '%m [%p] %q%u@%d '
""") as server:
        as_postgres(str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(server["port"]), "-c",
                    "CREATE EXTENSION pg_stat_statements")
        yield server


def _pgbench(port: int, *args: str) -> None:
    as_postgres(str(PG_BIN / "pgbench"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", *args,
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
        snapshot_pg_stat_statements(con, f"host=127.0.0.1 port={free_port()} user=x password=hunter2",
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
