"""Database analysis and live index advice on a real PostgreSQL 15 (pg_stat_statements, hypopg): a
planted missing index (lookup by a non-indexed column of a 200k-row table), a sequential scan that no
index can serve (leading-wildcard LIKE), and an N+1 loop (a primary-key lookup per row); the statements
reach the warehouse through the kit's own ingest (pg_stat_statements snapshots and the csvlog)."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kit.analysis.database import analyse_database
from kit.analysis.database.advice import advise_indexes
from kit.analysis.window import Window
from kit.ingest.pg_stat_statements import snapshot_pg_stat_statements
from kit.ingest.postgres import ingest_postgres_log
from kit.report.render import environment
from kit.results import to_jsonable
from kit.warehouse import connect
from tests.conftest import postgres_server

MISSING = "select * from orders_big where customer_id = ?"
SCAN = "select sum(amount) from orders_big where note like ?"
NPLUS1 = "select * from customers where id = ?"
WRITTEN = "select * from counters where code = ?"


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """Start PostgreSQL, run the planted workload, ingest it; yield the warehouse, window and DSN."""
    import psycopg

    assert Path("/usr/lib/postgresql/15/lib/hypopg.so").exists(), "hypopg missing (postgresql-15-hypopg)"
    with postgres_server("""
shared_preload_libraries = 'pg_stat_statements'
logging_collector = on
log_destination = 'csvlog'
log_directory = '{logs}'
log_filename = 'pg'
log_min_duration_statement = 0
""") as server:
        dsn, logs, root = server["dsn"], server["logs"], server["root"]
        with psycopg.connect(dsn, autocommit=True) as pg:
            pg.execute("CREATE EXTENSION pg_stat_statements")
            pg.execute("CREATE TABLE customers (id int PRIMARY KEY, name text, email text)")
            pg.execute("INSERT INTO customers SELECT g, 'c' || g, 'c' || g || '@x.org' "
                       "FROM generate_series(1, 100000) g")
            pg.execute("CREATE TABLE orders_big (id int PRIMARY KEY, customer_id int, amount numeric, note text)")
            pg.execute("INSERT INTO orders_big SELECT g, (g * 7919) % 100000 + 1, g % 1000, md5(g::text) "
                       "FROM generate_series(1, 200000) g")
            # a write-heavy table with a lookup by a non-indexed column: four full updates per lookup batch
            pg.execute("CREATE TABLE counters (id int PRIMARY KEY, code text, n int)")
            pg.execute("INSERT INTO counters SELECT g, md5(g::text), 0 FROM generate_series(1, 60000) g")
            for _ in range(4):
                pg.execute("UPDATE counters SET n = n + 1")
            pg.execute("ANALYZE")
            pg.execute("SELECT pg_stat_statements_reset()")
        con = connect(tmp_path_factory.mktemp("w") / "w.duckdb")
        t0 = datetime.now(UTC)
        snapshot_pg_stat_statements(con, dsn)
        with psycopg.connect(dsn, autocommit=True) as pg:
            for i in range(40):                                     # the missing index
                pg.execute("SELECT * FROM orders_big WHERE customer_id = %s", [i * 37 + 1]).fetchall()
            for i in range(8):                                      # a scan no index serves
                pg.execute("SELECT sum(amount) FROM orders_big WHERE note LIKE %s", [f"%{i}a%"]).fetchall()
            for i in range(6):                                      # lookups on the write-heavy table
                pg.execute("SELECT * FROM counters WHERE code = %s", [f"x{i}"]).fetchall()
            for page in range(12):                                  # the N+1 loop
                ids = [r[0] for r in pg.execute("SELECT customer_id FROM orders_big WHERE id BETWEEN %s AND %s",
                                                [page * 25 + 1, page * 25 + 25]).fetchall()]
                for cid in ids:
                    pg.execute("SELECT * FROM customers WHERE id = %s", [cid]).fetchall()
                time.sleep(0.2)
        snapshot_pg_stat_statements(con, dsn)
        time.sleep(0.3)
        csv = logs / "pg.csv"
        assert csv.exists()
        shutil.copy(csv, root / "copy.csv")
        ingest_postgres_log(con, root / "copy.csv")
        window = Window(t0 - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1))
        yield {"con": con, "window": window, "dsn": dsn}
        con.close()


@pytest.mark.integration
def test_analysis_flags_missing_index_scan_and_nplus1(workload):
    a = analyse_database(workload["con"], workload["window"])
    d = a.digest.set_index("fingerprint")
    # counts from the pg_stat_statements deltas, exactly the executions of the workload
    assert d.loc[MISSING, "calls"] == 40 and d.loc[MISSING, "basis"] == "snapshots"
    assert d.loc[SCAN, "calls"] == 8
    assert d.loc[NPLUS1, "calls"] == 12 * 25
    # p95 from the csvlog's per-execution events: every execution was logged (log_min_duration_statement = 0)
    assert d.loc[MISSING, "percentile_basis"] == "all executions"
    # missing index: explained, candidate on the filtered column, an index opportunity
    sug = {s.fingerprint: s for s in a.indexes}
    assert sug[MISSING].explain and sug[MISSING].candidates[0].columns == ("customer_id",)
    assert any(o.addresses == [f"query:{MISSING}"] and "orders_big (customer_id)" in o.change for o in a.opportunities)
    # the scan: flagged for EXPLAIN as a scan with nothing to index
    assert sug[SCAN].explain and not sug[SCAN].candidates and "scan" in sug[SCAN].explain_reason
    # N+1: bursts of the primary-key lookup, one per page (12 pages of 25)
    n1 = {str(n["fingerprint"]): n for n in a.nplus1}
    assert NPLUS1 in n1 and n1[NPLUS1]["bursts"] == 12 and n1[NPLUS1]["median_burst"] == 25
    # the csvlog's session_id (schema 2) puts the bursts in one session: the loop's connection
    assert n1[NPLUS1]["evidence"] == "events of one session within 50 ms" and n1[NPLUS1]["sessions"] == 1
    assert MISSING not in n1 and SCAN not in n1
    assert any(o.addresses == [f"query:{NPLUS1}"] and o.title.startswith("Batch") for o in a.opportunities)


@pytest.mark.integration
def test_advise_indexes_proposes_the_right_index_only(workload):
    a = analyse_database(workload["con"], workload["window"])
    items = [{"fingerprint": r.fingerprint, "sample": r.sample, "calls": r.calls, "mean_ms": r.mean_ms}
             for r in a.digest.itertuples() if r.fingerprint in (MISSING, SCAN, NPLUS1, WRITTEN)]
    advice = advise_indexes(workload["dsn"] + " password=secret", items, statement_timeout_ms=2000,
                            total_budget_s=30)
    assert "secret" not in advice.dsn
    props = {p.table: p for p in advice.proposals}
    assert sorted((p.table, p.columns) for p in advice.proposals) == [("counters", ("code",)),
                                                                      ("orders_big", ("customer_id",))]
    prop = props["orders_big"]
    assert prop.cost_reduction >= 0.5 and prop.size_bytes > 0 and prop.saved_ms > 0
    # 200k inserts against ~50 scans of 200k rows: not write-heavy; counters: 60k inserts + 240k updates
    # against ~6 + 4 scans of 60k rows: write-heavy, and the proposal says so with the numbers
    assert not prop.write_heavy and props["counters"].write_heavy
    assert props["counters"].write_cost.startswith("WRITE-HEAVY TABLE: counters had 300,000 tuple writes")
    checks = {c.fingerprint: c for c in advice.checks}
    assert "orders_big" in checks[SCAN].seq_scans and checks[SCAN].tried == {}
    # customers.id is the primary key: no index proposed, the existing one is recognised
    assert all("skipped" in str(v) for v in checks[NPLUS1].tried.values()) or not checks[NPLUS1].tried


@pytest.mark.integration
def test_db_advice_cli(workload, tmp_path, capsys):
    """``perfkit db-advice`` on a copy of the warehouse: the proposal printed, the password never."""
    from kit.cli import main

    workload["con"].execute("CHECKPOINT")
    path = workload["con"].execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                                   ).fetchone()[0]
    copy = tmp_path / "copy.duckdb"
    shutil.copy(path, copy)
    w = workload["window"]
    code = main(["db-advice", "--db", str(copy), "--dsn", workload["dsn"] + " password=hunter2",
                 "--start", w.start.isoformat(), "--end", w.end.isoformat(), "--budget-s", "20"])
    out = capsys.readouterr().out
    assert code == 0 and "hunter2" not in out
    assert "CREATE INDEX CONCURRENTLY orders_big_customer_id_idx ON orders_big (customer_id);" in out
    assert "ON customers" not in out
    assert main(["db-advice", "--db", str(copy), "--dsn", workload["dsn"], "--start", w.start.isoformat(),
                 "--end", w.end.isoformat(), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {p["table"] for p in doc["proposals"]} == {"orders_big", "counters"}
    assert {"checks", "skipped", "dsn", "server_version"} <= set(doc)


@pytest.mark.integration
def test_one_proposal_per_index(workload):
    """Three lookups of one table: by tenant (twice, two texts) and by tenant ordered by time. Each text's
    best index is proposed once: the two tenant lookups share theirs, and it is folded into (tenant,
    created), which serves them too (re-EXPLAINed with only that index); the checks say which index serves
    the folded statements."""
    import psycopg

    with psycopg.connect(workload["dsn"], autocommit=True) as pg:
        pg.execute("CREATE TABLE events_big (id int PRIMARY KEY, tenant int, created int, payload text)")
        pg.execute("INSERT INTO events_big SELECT g, g % 2000, g, md5(g::text) FROM generate_series(1, 200000) g")
        pg.execute("ANALYZE events_big")
    by_tenant = "select * from events_big where tenant = ?"
    ids = "select id from events_big where tenant = ?"
    latest = "select * from events_big where tenant = ? order by created desc limit 10"
    items = [{"fingerprint": fp, "sample": fp, "calls": calls, "mean_ms": 10.0}
             for fp, calls in ((by_tenant, 100), (ids, 50), (latest, 20))]
    advice = advise_indexes(workload["dsn"], items, statement_timeout_ms=2000, total_budget_s=30)
    assert [(p.table, p.columns) for p in advice.proposals] == [("events_big", ("tenant", "created"))]
    prop = advice.proposals[0]
    assert prop.fingerprint == latest and {s.fingerprint for s in prop.also_serves} == {by_tenant, ids}
    assert all(s.cost_reduction >= 0.5 and s.cost_after < s.cost_before for s in prop.also_serves)
    # time saved: calls x mean ms x the cost cut under the proposed index, summed over the three
    expected = prop.saved_ms + sum(c * 10.0 * s.cost_reduction for s in prop.also_serves
                                   for fp, c in ((by_tenant, 100), (ids, 50)) if s.fingerprint == fp)
    assert prop.total_saved_ms == pytest.approx(expected, rel=1e-12)
    checks = {c.fingerprint: c.outcome for c in advice.checks}
    assert checks[by_tenant].startswith("served by the proposed CREATE INDEX CONCURRENTLY events_big_tenant_created")
    assert checks[ids].startswith("served by the proposed") and checks[latest].startswith("propose")
    # the document lists the index once, with the statements it serves
    db = to_jsonable(analyse_database(workload["con"], workload["window"])) | {"advice": to_jsonable(advice)}
    text = environment().from_string('{% from "partials/database.md.j2" import section %}{{ section(db) }}'
                                     ).render(db=db)
    lines = [line for line in text.splitlines() if line.startswith(f"- `{prop.ddl}`")]
    assert len(lines) == 1 and "over 3 statements" in lines[0], text
