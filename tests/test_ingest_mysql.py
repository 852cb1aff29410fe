"""MySQL/MariaDB slow-log ingest against the shared real slow logs (percona-toolkit, go-mysql)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.ingest.core import IngestError
from kit.ingest.mysql_slow import ingest_mysql_slow
from tests.conftest import assert_lines_accounted_for


def _count_prefix(path: Path, prefix: str) -> int:
    """Independent count: lines starting with ``prefix`` in the raw file."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return sum(1 for line in handle if line.startswith(prefix))


def _slowlogs(shared: Path) -> list[Path]:
    files = sorted((shared / "db" / "go_mysql_slowlogs").glob("*.log"))
    files += sorted((shared / "db" / "percona_slowlogs").glob("slow*.txt"))
    return files


def test_every_query_time_entry_is_loaded(con, shared_datasets):
    # slow016 begins mid-entry and slow017 with a stray statement: their fragments are rejected.
    for path in _slowlogs(shared_datasets):
        s = ingest_mysql_slow(con, path, assume_time="2020-01-01T00:00:00Z")
        if s.status == "unchanged":      # percona and go-mysql ship some identical files
            continue
        assert s.lines_in == s.rows_loaded + s.rows_rejected + s.rows_skipped
        expected = _count_prefix(path, "# Query_time:")
        assert s.rows_loaded == expected, path.name
    rejected = dict(con.execute(
        "SELECT regexp_extract(l.path, '[^/]+$'), count(*) FROM rejects r JOIN ingest_log l USING (source_id) "
        "GROUP BY 1").fetchall())
    assert rejected == {"slow016.log": 4, "slow017.log": 1}


def test_known_values_of_specific_entries(con, shared_datasets):
    ingest_mysql_slow(con, shared_datasets / "db" / "go_mysql_slowlogs" / "slow002.log")
    rows = con.execute(
        "SELECT ts, database, user_name, total_ms, lock_ms, rows, rows_examined, fingerprint "
        "FROM queries ORDER BY total_ms DESC").fetchall()
    assert len(rows) == 8
    ts, db, user, total_ms, lock_ms, sent, examined, fp = rows[0]
    assert total_ms == pytest.approx(726.052) and lock_ms == pytest.approx(0.091)
    assert (db, user, sent, examined) == ("db1", "SQL_SLAVE", 0, 62951)
    assert ts.timestamp() == 1197996507          # SET timestamp=1197996507
    assert fp == ("update db2.tuningdetail_?_? n inner join db1.gonzo a using(gonzo) "
                  "set n.column1 = a.column1, n.word3 = a.word3")
    # the first entry has only '# Time: 071218 11:48:27' (no zone: taken as UTC)
    first = con.execute("SELECT ts, fingerprint FROM queries WHERE total_ms < 0.02").fetchone()
    assert first[0].strftime("%Y-%m-%d %H:%M:%S") == "2007-12-18 11:48:27" and first[1] == "begin"


def test_admin_commands_schema_and_iso_time(con, shared_datasets):
    ingest_mysql_slow(con, shared_datasets / "db" / "percona_slowlogs" / "slow013.txt",
                      assume_time="2020-01-01T00:00:00Z")
    fps = [r[0] for r in con.execute("SELECT fingerprint FROM queries ORDER BY rowid").fetchall()]
    assert fps == ["set autocommit=?", "show status", "administrator command: Quit", "set autocommit=?",
                   "commit"]
    ingest_mysql_slow(con, shared_datasets / "db" / "go_mysql_slowlogs" / "slow026.log")
    row = con.execute("SELECT ts, database, total_ms, rows FROM queries WHERE fingerprint = 'select ?' "
                      "AND database = 'test'").fetchone()
    assert row[0].timestamp() == 1513132878 and row[2] == pytest.approx(1000.249) and row[3] == 1


def test_no_time_anywhere_rejects_unless_assumed(con, shared_datasets):
    path = shared_datasets / "db" / "percona_slowlogs" / "slow052.txt"
    with pytest.raises(IngestError, match="no parsable line"):
        ingest_mysql_slow(con, path)
    s = ingest_mysql_slow(con, path, assume_time="2020-01-01T00:00:00Z")
    assert s.rows_loaded == 200
    top = con.execute("SELECT fingerprint, count(*), round(sum(total_ms)) FROM queries GROUP BY 1 "
                      "ORDER BY 3 DESC").fetchall()
    assert [t[1] for t in top] == [100, 100]
    assert top[0][0] == "select very_variable_column from unsteady_table"


def test_empty_log_and_compressed_input(con, shared_datasets, tmp_path):
    s = ingest_mysql_slow(con, shared_datasets / "db" / "go_mysql_slowlogs" / "empty.log")
    assert (s.lines_in, s.rows_loaded) == (0, 0)
    import gzip
    src = shared_datasets / "db" / "go_mysql_slowlogs" / "slow010.log"
    gz = tmp_path / "slow010.log.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    assert ingest_mysql_slow(con, gz).rows_loaded == _count_prefix(src, "# Query_time:") == 36


_LINE = st.one_of(
    st.sampled_from(["# Time: 071015 21:43:52", "# User@Host: root[root] @ localhost []",
                     "# Query_time: 2  Lock_time: 0  Rows_sent: 1  Rows_examined: 0",
                     "# Query_time: x", "SET timestamp=1197996507;", "use db;", "select 1;", "", "#",
                     "# administrator command: Quit;", "Tcp port: 3306  Unix socket: /tmp/s",
                     "/usr/sbin/mysqld, Version: 5 (x). started with:"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
            max_size=40),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_LINE, max_size=30))
def test_random_lines_are_all_accounted_for(tmp_path, lines):
    path = tmp_path / "random.log"
    path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    assert_lines_accounted_for(
        lambda c: ingest_mysql_slow(c, path, replace=True, assume_time="2020-01-01T00:00:00Z"), "queries")


def test_grown_log_ingests_only_new_entries(con, shared_datasets, tmp_path):
    src = (shared_datasets / "db" / "go_mysql_slowlogs" / "slow010.log").read_text()
    lines = src.splitlines(keepends=True)
    cut = next(i for i in range(len(lines) // 2, len(lines)) if lines[i].startswith("# Time:"))
    path = tmp_path / "slow.log"
    path.write_text("".join(lines[:cut]))
    first = ingest_mysql_slow(con, path)
    with open(path, "a") as out:
        out.write("".join(lines[cut:]))
    second = ingest_mysql_slow(con, path)
    assert second.status == "appended"
    assert first.rows_loaded + second.rows_loaded == 36
    assert con.execute("SELECT count(*), round(sum(total_ms), 3) FROM queries").fetchone() == (
        36, round(sum(float(x.split()[2]) * 1000 for x in lines if x.startswith("# Query_time:")), 3))
