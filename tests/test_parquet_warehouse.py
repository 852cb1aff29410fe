"""The Parquet warehouse (issue 15 item 1), through real ``perfkit ingest`` processes.

The reference is today's DuckDB warehouse: the same real logs ingested into a DuckDB file and into a
Parquet warehouse must give the same rows in every table (counts, sums, sorted EXCEPT ALL both ways).
The guarantees are checked against what a reader sees (``kit.warehouse.connect(ROOT, read_only=True)``):
exactly once, replace, append, line accounting, SIGKILL at random moments, concurrent ingests.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit import parquet_warehouse as pw
from kit.errors import WarehouseError
from kit.ingest.parquet import DIRECT
from kit.warehouse import connect, schema_columns

from .conftest import SHARED_DATASETS
from .test_ingest_clf_fast import clf_lines

ROOT_DIR = Path(__file__).resolve().parents[1]
ACCESS = SHARED_DATASETS / "access_logs"
ELASTIC = ACCESS / "elastic_apache" / "elastic_examples_apache_logs.log"

# (kind, extra arguments, file): every large table, NULL ts (a text cache trace), MAP labels (time series)
SOURCES = [
    ("access-log", [], ELASTIC),
    ("access-log", [], ACCESS / "netdata_weblog" / "common.log"),
    ("access-log", [], ACCESS / "netdata_weblog" / "u_ex221107.log"),
    ("access-log", [], ACCESS / "netdata_squid" / "access.log"),
    ("mysql-slow", [], SHARED_DATASETS / "db" / "percona_slowlogs" / "slow024.txt"),
    ("postgres-log", [], SHARED_DATASETS / "db" / "pgbadger_logs" / "light.postgres.log.bz2"),
    ("trace", ["--format", "text"], SHARED_DATASETS / "cache_traces" / "caffeine" / "lirs" / "loop.trace.gz"),
    ("timeseries", ["--label", "host=a"],
     SHARED_DATASETS / "timeseries" / "nab" / "data" / "realAWSCloudwatch" / "ec2_cpu_utilization_24ae8d.csv"),
]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT_DIR), "PERFKIT_SALT": "parquet-test-salt"}


def _ingest_cmd(kind: str, db: Path, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "kit.cli", "ingest", kind, "--db", str(db), "--json", *map(str, args)]


def perfkit_ingest(kind: str, db: Path, *args: str | Path) -> list[dict]:
    """Run ``perfkit ingest`` in a real process; its JSON summaries."""
    done = subprocess.run(_ingest_cmd(kind, db, *args), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def visible(root: Path, sql: str) -> list[tuple]:
    con = connect(root, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _keyed(table: str, prefix: str = "") -> str:
    """The table's rows with source_id replaced by the source's kind and path (ids differ between
    warehouses); ingest_log without its ids and clock times."""
    if table == "ingest_log":
        return f"SELECT * EXCLUDE (source_id, started_at, finished_at) FROM {prefix}ingest_log"
    if table == "asset_content":
        return f"SELECT * FROM {prefix}asset_content"
    return (f"SELECT t.* EXCLUDE (source_id), l.kind AS _kind, l.path AS _path FROM {prefix}{table} t "
            f"JOIN {prefix}ingest_log l USING (source_id)")


def _summary(con: duckdb.DuckDBPyConnection, table: str, prefix: str) -> tuple:
    numeric = [c for c, t in schema_columns()[table] if t in ("BIGINT", "DOUBLE", "SMALLINT", "UBIGINT", "INTEGER")
               and c != "source_id"]
    sums = "".join(f", sum({c})::HUGEINT" if t != "DOUBLE" else f", round(sum({c}), 6)"
                   for c, t in schema_columns()[table] if c in numeric)
    return con.execute(f"SELECT count(*){sums} FROM {prefix}{table}").fetchone()  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- same rows

def test_parquet_warehouse_holds_the_same_rows_as_a_duckdb_file(tmp_path: Path) -> None:
    duck, root = tmp_path / "w.duckdb", tmp_path / "parquet"
    for kind, args, path in SOURCES:
        perfkit_ingest(kind, duck, *args, path)
        perfkit_ingest(kind, root, "--warehouse-format", "parquet", *args, path)
    con = connect(root, read_only=True)
    con.execute(f"ATTACH '{duck}' AS d (READ_ONLY)")
    for table in pw.TABLES:
        reference, mine = _summary(con, table, "d."), _summary(con, table, "")
        assert mine == reference, table
        for a, b in (("", "d."), ("d.", "")):
            extra = con.execute(f"SELECT count(*) FROM ({_keyed(table, a)} EXCEPT ALL {_keyed(table, b)})").fetchone()
            assert extra == (0,), (table, a or "parquet", "rows missing from the other")
        # same column names and types as the DuckDB schema
        assert ([r[:2] for r in con.execute(f"DESCRIBE {table}").fetchall()]
                == [r[:2] for r in con.execute(f"DESCRIBE d.{table}").fetchall()])
    # every large table and a NULL day were exercised
    assert all(_summary(con, t, "")[0] > 0 for t in pw.PARTITIONED)
    assert (root / "cache_requests" / f"day={pw.NULL_DAY}").is_dir()
    # the files hold the schema's columns and no `day` column; every file is committed
    files = pw.committed_files(root)
    on_disk = {p for t in pw.TABLES for p in (root / t).rglob("*.parquet")}
    assert on_disk == {p for fs in files.values() for p in fs}
    for table, paths in files.items():
        for path in paths[:1]:       # the raw file, read without the views' casts
            described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}', hive_partitioning=false)")
            assert [r[:2] for r in described.fetchall()] == list(schema_columns()[table]), table
    with pytest.raises(duckdb.Error):
        con.execute("INSERT INTO requests SELECT * FROM d.requests LIMIT 1")
    con.close()
    with pytest.raises(WarehouseError, match="read_only=True"):
        connect(root)


# ---------------------------------------------------------------------------------------------- guarantees

def test_exactly_once_replace_append_and_line_accounting(tmp_path: Path) -> None:
    root, log = tmp_path / "w", tmp_path / "access.log"
    lines = ELASTIC.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:4000]) + b"this line is not a log line\n")
    first = perfkit_ingest("access-log", root, "--warehouse-format", "parquet", log)[0]
    assert (first["status"], first["rows_loaded"], first["rows_rejected"]) == ("loaded", 4000, 1)
    again = perfkit_ingest("access-log", root, log)[0]           # detected by its marker
    assert (again["status"], again["source_id"]) == ("unchanged", first["source_id"])
    with log.open("ab") as handle:                                # the log grows
        handle.write(b"".join(lines[4000:6000]))
    grown = perfkit_ingest("access-log", root, log)[0]
    assert (grown["status"], grown["rows_loaded"]) == ("appended", 2000)
    assert visible(root, "SELECT count(*) FROM requests") == [(6000,)]
    replaced = perfkit_ingest("access-log", root, "--replace", log)[0]
    assert (replaced["status"], replaced["rows_loaded"], replaced["rows_rejected"]) == ("replaced", 6000, 1)
    assert visible(root, "SELECT count(*), count(DISTINCT source_id) FROM requests") == [(6000, 1)]
    log_rows = visible(root, "SELECT source_id, lines_in, rows_loaded, rows_rejected, rows_skipped FROM ingest_log")
    assert log_rows == [(replaced["source_id"], 6001, 6000, 1, 0)]
    assert visible(root, "SELECT line_no, reason IS NOT NULL, raw FROM rejects") == [
        (4001, True, "this line is not a log line")]
    commits = pw.read_log(root).commits
    assert set(commits[-1].replaces) == {first["source_id"], grown["source_id"]}
    # vacuum drops the replaced files once past the grace period (not before); readers see the same
    old_files = [root / f for c in commits if c.source_id in (first["source_id"], grown["source_id"])
                 for fs in c.files.values() for f in fs]
    assert old_files and pw.vacuum(root).replaced_removed == 0 and all(f.exists() for f in old_files)
    assert pw.vacuum(root, older_than_s=0).replaced_removed == len(old_files)
    assert not any(f.exists() for f in old_files)
    assert visible(root, "SELECT count(*) FROM requests") == [(6000,)]


def test_a_failure_between_rename_and_commit_leaves_nothing_visible(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Failure injection: the data files are in place but the commit record is never created."""
    from kit.ingest import parquet as ingest_parquet
    from kit.ingest.access_log import ingest_access_log

    root = tmp_path / "w"

    def fail(target: Path, data: bytes, mode: int = 0o644) -> bool:
        raise OSError("injected: disk full at commit")

    monkeypatch.setattr(ingest_parquet, "publish", fail)
    with pytest.raises(OSError, match="injected"):
        ingest_parquet.ingest(root, lambda con: ingest_access_log(con, ELASTIC))
    assert any((root / "requests").rglob("*.parquet"))            # renamed into place, not committed
    assert visible(root, "SELECT count(*) FROM requests") == [(0,)]
    monkeypatch.undo()
    assert perfkit_ingest("access-log", root, ELASTIC)[0]["status"] == "loaded"
    assert visible(root, "SELECT count(*) FROM requests") == [(9999,)]
    assert pw.vacuum(root, older_than_s=0).orphans_removed > 0
    assert visible(root, "SELECT count(*) FROM requests") == [(9999,)]


def test_sigkill_at_random_moments_leaves_all_or_nothing(tmp_path: Path) -> None:
    """kill -9 of real ingests at random moments, first of a first load, then of --replace swaps of a
    committed source: a reader sees all of the file's rows from one source (the old or the new) or, before
    anything was committed, none; never a part, two sources or, once committed, nothing; a later ingest
    succeeds. Half the kills are aimed at the writing phase (once the scratch tables' data files are
    staged, plus a random delay: during the COPY, the renames into place or around the commit), the other
    half anywhere (the access-log reader's own Parquet files are staged from its first chunk on)."""
    root, big = tmp_path / "w", tmp_path / "big.log"
    big.write_bytes(ELASTIC.read_bytes() * 20)                     # 200,000 lines, 199,980 loadable
    started = time.perf_counter()
    expected = perfkit_ingest("access-log", tmp_path / "clean", "--warehouse-format", "parquet", big)[0]["rows_loaded"]
    duration = time.perf_counter() - started
    assert expected == 20 * 9999                                   # one line of the log is rejected
    rng = random.Random(15)

    def kill_one(*extra: str, aim_at_writing: bool) -> bool:
        """Start an ingest and SIGKILL it; whether it was still running once it had staged a data file
        (writing, renaming into place, committing or just after: the last ~25 % of a clean run here)."""
        proc = subprocess.Popen(_ingest_cmd("access-log", root, "--warehouse-format", "parquet", *extra, big),
                                env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        def exported() -> bool:        # the scratch tables' files staged: the export has begun
            return any(DIRECT not in p.parts for p in (root / pw.STAGING).rglob("*.parquet"))

        if aim_at_writing:
            deadline = time.perf_counter() + 10 * duration
            while proc.poll() is None and time.perf_counter() < deadline and not exported():
                time.sleep(0.005)
            staged = exported()
            time.sleep(rng.uniform(0.0, 0.15) * duration)
        else:
            time.sleep(rng.uniform(0.2, 0.95) * duration)
            staged = exported()
        writing = staged and proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return writing

    def seen() -> tuple[int, int, int | None]:
        return visible(root, "SELECT count(*), count(DISTINCT source_id), max(source_id) FROM requests")[0]

    landed = []                                                    # kills that hit the writing phase
    for i in range(2):                                             # a first load
        landed.append(kill_one(aim_at_writing=i == 1))
        if pw.is_parquet_warehouse(root):
            assert seen()[:2] in ((0, 0), (expected, 1))
    if seen()[0] == 0:                                             # none committed: commit one to replace
        perfkit_ingest("access-log", root, "--warehouse-format", "parquet", big)
    for i in range(4):                                             # --replace swaps of a committed source
        before = seen()
        landed.append(kill_one("--replace", aim_at_writing=i % 2 == 0))
        after = seen()
        assert after[:2] == (expected, 1)
        assert after[2] in (before[2], pw.read_log(root).commits[-1].source_id)   # old, or this kill's
    assert any(landed), "no kill landed while an ingest was writing"
    summary = perfkit_ingest("access-log", root, "--warehouse-format", "parquet", big)[0]
    assert summary["status"] == "unchanged"
    assert seen()[:2] == (expected, 1)
    pw.vacuum(root, older_than_s=0)
    assert not any((root / pw.STAGING).iterdir())
    on_disk = {p for t in pw.TABLES for p in (root / t).rglob("*.parquet")}
    assert on_disk == {p for fs in pw.committed_files(root).values() for p in fs}


def test_concurrent_ingests_count_every_file_once(tmp_path: Path) -> None:
    root = tmp_path / "w"
    files = []
    lines = ELASTIC.read_bytes().splitlines(keepends=True)
    for i in range(4):                                             # four different files
        files.append(tmp_path / f"part{i}.log")
        files[-1].write_bytes(b"".join(lines[i * 2500:(i + 1) * 2500]))
    same = tmp_path / "same.log"                                   # and one that three processes race on
    same.write_bytes(b"".join(lines[:1000]))
    procs = [subprocess.Popen(_ingest_cmd("access-log", root, "--warehouse-format", "parquet", f), env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for f in [*files, same, same, same]]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    statuses = sorted(json.loads(out)["status"] for out, _ in results[4:])
    assert statuses == ["loaded", "unchanged", "unchanged"]
    rows = visible(root, "SELECT l.path, count(*) FROM requests r JOIN ingest_log l USING (source_id) GROUP BY 1")
    expected = {str(f.resolve()): 2500 for f in files} | {str(same.resolve()): 1000}
    expected[str(files[3].resolve())] = 2499                       # the one line of the log that is rejected
    assert dict(rows) == expected
    assert visible(root, "SELECT count(*), count(DISTINCT source_id) FROM ingest_log") == [(5, 5)]


def test_the_warehouse_format_is_checked(tmp_path: Path) -> None:
    (tmp_path / "f.duckdb").write_bytes(b"")
    done = subprocess.run(_ingest_cmd("access-log", tmp_path / "f.duckdb", "--warehouse-format", "parquet", ELASTIC),
                          env=_env(), capture_output=True, text=True)
    assert done.returncode == 1 and "is a file" in done.stderr
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "other").write_text("x")
    with pytest.raises(WarehouseError, match="not a Parquet warehouse"):
        pw.create(tmp_path / "d")
    with pytest.raises(WarehouseError, match="not a Parquet warehouse"):
        pw.vacuum(tmp_path / "d")
    done = subprocess.run([sys.executable, "-m", "kit.cli", "vacuum", "--db", str(tmp_path / "d")],
                          env=_env(), capture_output=True, text=True)
    assert done.returncode == 1 and "not a Parquet warehouse" in done.stderr
    assert (tmp_path / "d" / "other").exists()


def test_a_commit_that_loses_the_race_on_the_same_file_starts_over(tmp_path: Path) -> None:
    """Deterministic race: while one ingest loads, another ingest of the same file commits first; the
    first finds the conflicting commit, deletes its files, starts over and reports ``unchanged``."""
    from kit.ingest.access_log import ingest_access_log
    from kit.ingest.parquet import ingest

    root, log = tmp_path / "w", tmp_path / "a.log"
    log.write_bytes(b"".join(ELASTIC.read_bytes().splitlines(keepends=True)[:500]))
    calls = []

    def load(con: duckdb.DuckDBPyConnection):  # noqa: ANN202 - an IngestSummary
        calls.append(1)
        summary = ingest_access_log(con, log)
        if len(calls) == 1:                                      # the rival commits in between
            assert ingest(root, lambda c: ingest_access_log(c, log)).status == "loaded"
        return summary

    result = ingest(root, load)
    assert (result.status, len(calls)) == ("unchanged", 2)       # my first attempt lost, the second found it
    assert visible(root, "SELECT count(*) FROM requests") == [(500,)]
    assert len(pw.read_log(root).commits) == 1
    on_disk = {p for t in pw.TABLES for p in (root / t).rglob("*.parquet")}
    assert on_disk == {p for fs in pw.committed_files(root).values() for p in fs}   # the loser's files are gone


def test_spark_reads_the_committed_files_with_the_null_day(tmp_path: Path) -> None:
    """The layout contract for the Spark reader: Spark (local[2]) reads the committed files of a large
    table with ``day`` as the Hive key — NULL for the NULL-ts partition — and the same rows as DuckDB."""
    from kit.engine import spark_session

    root = tmp_path / "w"
    trace, log = SOURCES[6][2], SOURCES[1][2]
    perfkit_ingest("trace", root, "--warehouse-format", "parquet", "--format", "text", trace)
    perfkit_ingest("access-log", root, log)
    files = pw.committed_files(root)
    spark = spark_session()   # the process's session (its JVM's heap is fixed at start: kit.engine starts it)
    cache = spark.read.option("basePath", str(root / "cache_requests")).parquet(*map(str, files["cache_requests"]))
    got = cache.selectExpr("count(*)", "count(day)", "sum(seq)", "count(ts)").collect()[0]
    requests = spark.read.option("basePath", str(root / "requests")).parquet(*map(str, files["requests"]))
    requests.createOrReplaceTempView("parquet_test_requests")
    days = [(str(r[0]), r[1], r[2]) for r in spark.sql(
        "SELECT day, count(*), sum(bytes_sent) FROM parquet_test_requests GROUP BY day ORDER BY day").collect()]
    spark_ts = requests.selectExpr("min(ts)", "max(ts)").collect()[0]
    spark.catalog.dropTempView("parquet_test_requests")
    assert tuple(got) == visible(root, "SELECT count(*), 0, sum(seq), count(ts) FROM cache_requests")[0]
    assert got[0] > 0 and got[3] == 0                               # a trace without times: every day NULL
    assert days == [(str(d), n, b) for d, n, b in visible(
        root, "SELECT ts::DATE AS d, count(*), sum(bytes_sent) FROM requests GROUP BY d ORDER BY d")]
    assert [t.replace(tzinfo=None) for t in spark_ts] == [t.replace(tzinfo=None) for t in visible(
        root, "SELECT min(ts), max(ts) FROM requests")[0]]


def test_a_converted_demo_gives_the_same_rows_and_the_same_findings(small_demo: Path, tmp_path: Path) -> None:
    """``perfkit convert`` keeps every row and source id; an analysis (the bottleneck findings) run on
    the Parquet views returns exactly what it returns on the DuckDB file."""
    from kit.analysis.findings import find_bottlenecks
    from kit.analysis.window import resolve_window
    from kit.results import to_jsonable

    root = tmp_path / "w"
    done = subprocess.run([sys.executable, "-m", "kit.cli", "convert", "--db", str(small_demo), "--to", str(root)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = []
    for path in (small_demo, root):
        con = connect(path, read_only=True)
        window = resolve_window(con)
        found = find_bottlenecks(con, window)
        assert found.items                                       # the demo has injected changes to find
        results.append(json.dumps(to_jsonable(found), sort_keys=True, default=str))
        if path == root:
            con.execute(f"ATTACH '{small_demo}' AS d (READ_ONLY)")
            for table in pw.TABLES:
                for a, b in (("", "d."), ("d.", "")):
                    extra = con.execute(f"SELECT count(*) FROM (FROM {a}{table} EXCEPT ALL FROM {b}{table})").fetchone()
                    assert extra == (0,), (table, a or "parquet")
            assert con.execute("SELECT count(*) FROM requests").fetchone() == (60_000,)
        con.close()
    assert results[0] == results[1]


def test_a_query_larger_than_the_memory_limit_spills_on_the_views(tmp_path: Path) -> None:
    """The views' connection numbers 20M rows in hash order under a 64 MB memory limit: DuckDB must spill
    to a directory that exists (its default sat next to the view catalog, which is deleted once opened:
    'Failed to create directory'), and every row gets its own number."""
    pw.create(tmp_path / "w")
    con = connect(tmp_path / "w", read_only=True, memory_limit="64MB", threads=2)
    try:
        spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
        n, total = con.execute("SELECT count(*), sum(r) FROM (SELECT row_number() OVER (ORDER BY hash(i)) AS r "
                               "FROM range(20000000) t(i))").fetchone()
        assert (n, total) == (20_000_000, 20_000_000 * 20_000_001 // 2) and spill.exists()
    finally:
        con.close()
    assert not spill.exists() or not any(spill.iterdir())   # DuckDB removes its spill files


# ---------------------------------------------------------------------------------------------- direct files

@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_access_log_readers_own_parquet_files_hold_the_rows_a_duckdb_file_stores(tmp_path_factory, monkeypatch,
                                                                                    data) -> None:
    """A Parquet warehouse's access-log ingest writes the compiled reader's rows as Parquet itself
    (:class:`kit.ingest.parquet.DayFiles`); the reference is the same file ingested into a DuckDB file
    by the general path (regexes and SQL, not the compiled reader). Random lines of many days and zones,
    in many small chunks, with user route rules, non-ASCII query strings with secrets (redacted by
    DuckDB's regex), lines the reader hands to the general path and a rejected line: the same rows, each
    in the file of its own UTC day, with the schema's column types; the same line accounting and service
    naming."""
    from kit.ingest import clf_fast
    from kit.ingest.access_log import ingest_access_log
    from kit.ingest.parquet import ingest

    tmp = tmp_path_factory.mktemp("direct")
    monkeypatch.setattr(clf_fast, "CHUNK_BYTES", 2000)   # the chunk size of a Parquet warehouse's ingest
    monkeypatch.setattr(clf_fast, "FIRST_CHUNK_BYTES", 700)
    lines = data.draw(st.lists(clf_lines("combined_kv"), min_size=1, max_size=60))
    extra = ['10.0.0.9 - - [10/Oct/2024:13:55:36 +0000] "GET /a/7?Token=\u00e91&q=\u00fc HTTP/1.1" 200 5 "-" "x" '
             'rt=0.1 urt=- ucs=HIT',                                           # non-ASCII query: DuckDB redacts
             '10.0.0.9 - - [10/Oct/2024:13:55:37 +0000] "GET http://h.example/a/8 HTTP/1.1" 200 5 "-" "x" '
             'rt=0.1 urt=- ucs=HIT',                                           # absolute URI: the general path
             "not a log line"]                                                 # rejected
    for line in extra:
        lines.insert(data.draw(st.integers(0, len(lines))), line)
    # first, a chunk whose first and last rows are of one day and another day's row between them
    day = '1.2.3.4 - - [{}/Nov/2026:23:59:59 +0000] "GET /d HTTP/1.1" 200 1 "-" "-" rt=0.1 urt=- ucs=-'
    lines[:0] = [day.format(20), day.format(21)] + [day.format(20)] * 8
    log = tmp / "shop.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rules = ["^/a/[0-9]+$ => /a/{n}"]

    def load(con: duckdb.DuckDBPyConnection, fast: bool = True):  # noqa: ANN202 - an IngestSummary
        return ingest_access_log(con, log, format="combined_kv", salt="s", route_rules=rules, fast=fast)

    reference = load(connect(tmp / "w.duckdb"), fast=False)
    mine = ingest(tmp / "parquet", load)
    assert (mine.lines_in, mine.rows_loaded, mine.rows_rejected) == (
        reference.lines_in, reference.rows_loaded, reference.rows_rejected)
    con = connect(tmp / "parquet", read_only=True)
    con.execute(f"ATTACH '{tmp / 'w.duckdb'}' AS d (READ_ONLY)")
    for a, b in (("", "d."), ("d.", "")):
        extra_rows = con.execute(f"SELECT count(*) FROM ({_keyed('requests', a)} EXCEPT ALL "
                                 f"{_keyed('requests', b)})").fetchone()
        assert extra_rows == (0,), (a or "parquet", "rows missing from the other")
    assert (con.execute("SELECT options FROM ingest_log").fetchone()
            == con.execute("SELECT options FROM d.ingest_log").fetchone())
    files = pw.committed_files(tmp / "parquet")["requests"]
    direct = [f for f in files if f.name.endswith("_direct.parquet")]
    assert direct, "the reader wrote no file of its own"
    for path in files:
        day = path.parent.name.removeprefix("day=")
        raw = f"read_parquet('{path}', hive_partitioning=false)"
        assert [r[:2] for r in con.execute(f"DESCRIBE SELECT * FROM {raw}").fetchall()] == list(
            schema_columns()["requests"])
        assert con.execute(f"SELECT DISTINCT strftime(ts, '%Y-%m-%d') FROM {raw}").fetchall() == [(day,)]
    for path in direct:   # each row group records its time range, which a reader's time window prunes by
        file = pq.ParquetFile(path)
        for g in range(file.num_row_groups):
            stats = file.metadata.row_group(g).column(0).statistics
            times = file.read_row_group(g, columns=["ts"])["ts"]
            assert stats is not None and stats.has_min_max
            assert (stats.min, stats.max) == (pc.min(times).as_py(), pc.max(times).as_py())
    con.close()


# ---------------------------------------------------------------------------------------------- checkpoints

def _every_record(root: Path) -> list[tuple]:
    """The commit records as a kit without checkpoints reads them: every ``<version>.json``."""
    directory = root / pw.COMMITS
    out = []
    for name in sorted(n for n in os.listdir(directory) if n.endswith(".json") and n[:-5].isdigit()):
        r = json.loads((directory / name).read_text())
        out.append((int(name[:-5]), r["source_id"], r["kind"], r["path"], r["sha256"], tuple(r["replaces"]),
                    {t: tuple(f) for t, f in r["files"].items()}))
    return out


def test_checkpoints_of_the_commit_log_give_what_every_record_gives(tmp_path: Path, monkeypatch) -> None:
    """With a checkpoint every 3 versions: the records read, the views' rows, exactly-once against a
    checkpointed source and a replace of one are what the records alone give; the replaced source's
    ingest_log row leaves the view although the checkpoint's ingest_log file holds it."""
    from kit.ingest import parquet as ingest_parquet
    from kit.ingest.access_log import ingest_access_log

    monkeypatch.setattr(ingest_parquet, "CHECKPOINT_EVERY", 3)
    root = tmp_path / "w"
    lines = ELASTIC.read_bytes().splitlines(keepends=True)
    logs = []
    for i in range(7):
        logs.append(tmp_path / f"part{i}.log")
        logs[-1].write_bytes(b"".join(lines[i * 300:(i + 1) * 300]))

    def load(path: Path, replace: bool = False):  # noqa: ANN202 - an IngestSummary
        return ingest_parquet.ingest(root, lambda con: ingest_access_log(con, path, salt="s", replace=replace))

    ids = [load(f).source_id for f in logs]
    directory = root / pw.COMMITS
    assert sorted(n for n in os.listdir(directory) if not n.endswith(".json")) == [
        f"{v:020d}{suffix}" for v in (3, 6) for suffix in (pw.CHECKPOINT, pw.CHECKPOINT_LOG)]
    for name in (f"{6:020d}{pw.CHECKPOINT}", f"{6:020d}{pw.CHECKPOINT_LOG}"):   # readable by other ingests' users
        assert (directory / name).stat().st_mode & 0o777 == 0o644
    snapshot = pw.read_log(root)
    assert snapshot.checkpoint == 6
    assert [(c.version, c.source_id, c.kind, c.path, c.sha256, c.replaces, c.files)
            for c in snapshot.commits] == _every_record(root)
    assert load(logs[1]).status == "unchanged"                    # a source the checkpoint holds
    replaced = load(logs[1], replace=True)
    assert replaced.status == "replaced"
    expected = sorted([i for i in ids if i != ids[1]] + [replaced.source_id])
    assert [r[0] for r in visible(root, "SELECT source_id FROM ingest_log ORDER BY 1")] == expected
    assert visible(root, "SELECT count(*), count(DISTINCT source_id) FROM requests") == [
        (sum(len(f.read_bytes().splitlines()) for f in logs), 7)]
    # checkpoint 6's file, built from checkpoint 3's and the records after it, holds the six sources, the
    # replaced one too: the view leaves that one out
    held = duckdb.sql(f"SELECT list(source_id ORDER BY source_id) FROM "
                      f"'{directory / f'{6:020d}{pw.CHECKPOINT_LOG}'}'").fetchall()
    assert held == [(sorted(ids[:6]),)]
    assert load(logs[1]).status == "unchanged"                    # the replacing source, after the checkpoint


def test_convert_checkpoints_the_commit_log_as_ingests_do(tmp_path: Path, monkeypatch) -> None:
    """Converting a DuckDB warehouse of 7 sources with a checkpoint every 3 versions leaves checkpoints 3
    and 6, whose records are every record's, and views holding the file's ingest_log and requests."""
    from kit.ingest import parquet as ingest_parquet
    from kit.ingest.access_log import ingest_access_log

    monkeypatch.setattr(ingest_parquet, "CHECKPOINT_EVERY", 3)
    lines = ELASTIC.read_bytes().splitlines(keepends=True)
    db = tmp_path / "w.duckdb"
    con = connect(db)
    for i in range(7):
        log = tmp_path / f"part{i}.log"
        log.write_bytes(b"".join(lines[i * 200:(i + 1) * 200]))
        ingest_access_log(con, log, salt="s")
    expected = {t: sorted(con.execute(f"SELECT source_id, count(*) FROM {t} GROUP BY 1").fetchall())
                for t in ("ingest_log", "requests")}
    con.close()
    root = tmp_path / "w"
    assert ingest_parquet.convert(db, root) == 7
    directory = root / pw.COMMITS
    assert sorted(n for n in os.listdir(directory) if not n.endswith(".json")) == [
        f"{v:020d}{suffix}" for v in (3, 6) for suffix in (pw.CHECKPOINT, pw.CHECKPOINT_LOG)]
    snapshot = pw.read_log(root)
    assert snapshot.checkpoint == 6
    assert [(c.version, c.source_id, c.kind, c.path, c.sha256, c.replaces, c.files)
            for c in snapshot.commits] == _every_record(root)
    for table, rows in expected.items():
        assert sorted(visible(root, f"SELECT source_id, count(*) FROM {table} GROUP BY 1")) == rows
