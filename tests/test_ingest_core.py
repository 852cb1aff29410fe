"""The shared ingest core: exactly once, replace, append, accounting, crash safety, readers, CLI."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import hashlib
import json
import lzma
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
import zstandard

from kit.ingest.core import (
    IngestError,
    IngestSummary,
    LoadCounts,
    expand_paths,
    ingest_file,
    ingest_live,
    lines_relation_sql,
    lines_table,
    open_text,
    readable_path,
    run_ingest_cli,
)
from kit.warehouse import Source, connect

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def status_loader(con: duckdb.DuckDBPyConnection, source: Source, path: Path, skip: int) -> LoadCounts:
    """A tiny loader for the tests: lines ``2024-01-01T00:00:00Z 200`` → requests; ``#`` lines skipped;
    anything else → rejects (field status)."""
    with readable_path(path) as readable, lines_table(con, readable) as lines:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _t AS SELECT line_no, line, starts_with(coalesce(line, ''), '#') "
                    f"AS skip, try_cast(split_part(line, ' ', 1) AS TIMESTAMPTZ) AS ts, "
                    f"try_cast(split_part(line, ' ', 2) AS SMALLINT) AS status FROM ({lines}) WHERE line_no > {skip}")
    con.execute(f"INSERT INTO requests (ts, status, path, source_id) SELECT ts, status, line, {source.source_id} "
                "FROM _t WHERE NOT skip AND ts IS NOT NULL AND status IS NOT NULL")
    con.execute(f"INSERT INTO rejects SELECT {source.source_id}, line_no, 'status', 'bad line', line FROM _t "
                "WHERE NOT skip AND (ts IS NULL OR status IS NULL)")
    n, skipped, good = con.execute("SELECT count(*), count(*) FILTER (WHERE skip), count(*) FILTER "
                                   "(WHERE NOT skip AND ts IS NOT NULL AND status IS NOT NULL) FROM _t").fetchone()
    return LoadCounts(n, good, n - good - skipped, skipped, fmt="test", formats_tried=("test",))


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def table(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


# ---------------------------------------------------------------------------------------------- readers

@pytest.mark.parametrize("suffix,compress", [
    ("", lambda b: b), (".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress),
    (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_open_text_and_lines_table_read_every_format_alike(tmp_path, con, suffix, compress):
    text = "first line\n\nthird \x1f with unit separator\n  \nlast without newline"
    path = tmp_path / f"f.log{suffix}"
    path.write_bytes(compress(text.encode()))
    with open_text(path) as handle:
        assert handle.read() == text
    with readable_path(path) as readable, lines_table(con, readable) as lines:
        rows = table(con, f"SELECT line_no, line FROM ({lines}) ORDER BY line_no")
    expected = [(i + 1, line or None) for i, line in enumerate(text.split("\n"))]
    assert rows == expected


def test_lines_relation_numbers_lines_in_file_order(tmp_path, con):
    path = write(tmp_path / "n.log", [f"{i} x" for i in range(1, 200_001)])
    bad = table(con, f"SELECT count(*) FROM ({lines_relation_sql(path)}) "
                     "WHERE line_no <> split_part(line, ' ', 1)::BIGINT")
    assert bad == [(0,)]
    with lines_table(con, path) as lines:
        assert table(con, f"SELECT count(*), max(line_no) FROM ({lines}) "
                          "WHERE line_no = split_part(line, ' ', 1)::BIGINT") == [(200_000, 200_000)]


def test_expand_paths_sorts_globs_and_fails_loudly(tmp_path):
    for name in ("access.log.2", "access.log", "access.log.1"):
        (tmp_path / name).write_text("x\n")
    assert [p.name for p in expand_paths(str(tmp_path / "access.log*"))] == [
        "access.log", "access.log.1", "access.log.2"]
    assert expand_paths(tmp_path / "access.log") == [tmp_path / "access.log"]
    with pytest.raises(FileNotFoundError, match="no file matches"):
        expand_paths(str(tmp_path / "nothing*"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        expand_paths(tmp_path / "missing.log")
    with pytest.raises(IngestError, match="is a directory"):
        expand_paths(tmp_path)


# ---------------------------------------------------------------------------------------------- exactly once

def test_same_file_twice_is_unchanged(tmp_path, con):
    path = write(tmp_path / "a.log", ["2024-01-01T00:00:00Z 200", "2024-01-01T00:00:01Z 404"])
    first = ingest_file(con, "t", path, status_loader)
    assert (first.status, first.rows_loaded, first.lines_in) == ("loaded", 2, 2)
    again = ingest_file(con, "t", path, status_loader)
    assert again.status == "unchanged" and again.source_id == first.source_id and again.rows_loaded == 0
    assert "unchanged" in again.line()
    # the same bytes under another name are also the same source
    copy = tmp_path / "copy.log"
    copy.write_bytes(path.read_bytes())
    assert ingest_file(con, "t", copy, status_loader).status == "unchanged"
    assert table(con, "SELECT count(*) FROM requests") == [(2,)]
    assert table(con, "SELECT count(*), sum(lines_in), max(format) FROM ingest_log") == [(1, 2, "test")]


def test_replace_swaps_rows_and_a_failed_replace_keeps_the_old_ones(tmp_path, con):
    path = write(tmp_path / "a.log", ["2024-01-01T00:00:00Z 200", "bad", "2024-01-01T00:00:01Z 500"])
    first = ingest_file(con, "t", path, status_loader)
    assert (first.rows_loaded, first.rows_rejected) == (2, 1)
    replaced = ingest_file(con, "t", path, status_loader, replace=True)
    assert replaced.status == "replaced" and replaced.source_id != first.source_id
    assert table(con, "SELECT source_id, count(*) FROM requests GROUP BY ALL") == [(replaced.source_id, 2)]
    assert table(con, "SELECT source_id, line_no FROM rejects") == [(replaced.source_id, 2)]
    assert table(con, "SELECT source_id FROM ingest_log") == [(replaced.source_id,)]

    def broken(con, source, path, skip):
        status_loader(con, source, path, skip)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest_file(con, "t", path, broken, replace=True)
    assert table(con, "SELECT source_id, count(*) FROM requests GROUP BY ALL") == [(replaced.source_id, 2)]
    assert table(con, "SELECT count(*) FROM ingest_log") == [(1,)]


def test_grown_log_ingests_only_new_lines_with_absolute_line_numbers(tmp_path, con):
    path = write(tmp_path / "grow.log", ["2024-01-01T00:00:00Z 200", "2024-01-01T00:00:01Z 200"])
    assert ingest_file(con, "t", path, status_loader).status == "loaded"
    with open(path, "a") as handle:
        handle.write("2024-01-01T00:00:02Z 503\ngarbage\n# comment\n")
    grown = ingest_file(con, "t", path, status_loader)
    assert (grown.status, grown.lines_in, grown.rows_loaded, grown.rows_rejected, grown.rows_skipped) == (
        "appended", 3, 1, 1, 1)
    assert table(con, "SELECT status, count(*) FROM requests GROUP BY ALL ORDER BY 1") == [(200, 2), (503, 1)]
    assert table(con, "SELECT line_no, raw FROM rejects") == [(4, "garbage")]
    # unchanged after the append, and a second append continues from the right line
    assert ingest_file(con, "t", path, status_loader).status == "unchanged"
    with open(path, "a") as handle:
        handle.write("2024-01-01T00:00:03Z 201\n")
    third = ingest_file(con, "t", path, status_loader)
    assert (third.status, third.lines_in, third.rows_loaded) == ("appended", 1, 1)
    # a rewritten (not grown) file at the same path is a new source, loaded whole
    write(path, ["2024-02-01T00:00:00Z 200"])
    assert ingest_file(con, "t", path, status_loader).status == "loaded"
    assert table(con, "SELECT count(*) FROM requests") == [(5,)]


def test_line_accounting_is_enforced_and_nothing_lands(tmp_path, con):
    path = write(tmp_path / "a.log", ["2024-01-01T00:00:00Z 200"])

    def liar(con, source, path, skip):
        status_loader(con, source, path, skip)
        return LoadCounts(lines_in=5, rows_loaded=1, rows_rejected=0)

    with pytest.raises(IngestError, match=r"line accounting failed: 5 lines in"):
        ingest_file(con, "t", path, liar)
    assert table(con, "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM ingest_log)") == [(0, 0)]


def test_no_parsable_line_shows_first_lines_and_formats(tmp_path, con):
    path = write(tmp_path / "junk.log", ["hello world", "not a log", "still not"])
    with pytest.raises(IngestError) as info:
        ingest_file(con, "t", path, status_loader)
    message = str(info.value)
    assert str(path) in message and "no parsable line among 3" in message
    assert "formats tried: test" in message and "1: 'hello world'" in message and "2: 'not a log'" in message
    assert table(con, "SELECT count(*) FROM rejects") == [(0,)]


def test_summary_line_and_json():
    summary = IngestSummary("access-log", "/x.log", "loaded", 3, "combined", 10, 8, 1, 1, 0.5)
    assert summary.line() == ("access-log /x.log [combined]: loaded as source 3: 10 lines in = 8 loaded + "
                              "1 rejected + 1 skipped in 0.50 s, 20 lines/s")
    assert json.loads(summary.to_json())["rows_rejected"] == 1


def test_ingest_live_records_a_source_without_hash(con):
    def loader(con, source):
        con.execute("INSERT INTO events (ts_start, kind, what, source_id) VALUES "
                    f"(TIMESTAMPTZ '2024-01-01 00:00:00+00', 'deploy', 'v1', {source.source_id})")
        return LoadCounts(1, 1, 0, fmt="api")
    summary = ingest_live(con, "events", "http://127.0.0.1:1/api", loader)
    assert (summary.status, summary.rows_loaded) == ("loaded", 1)
    assert table(con, "SELECT kind, path, sha256, lines_in, format FROM ingest_log") == [
        ("events", "http://127.0.0.1:1/api", None, 1, "api")]


def test_cli_progress_bar_only_for_big_files(tmp_path, capsys):
    import argparse

    small = write(tmp_path / "small.log", ["2024-01-01T00:00:00Z 200"])
    big = tmp_path / "big.log"
    line = "2024-01-01T00:00:00Z 200 " + "x" * 100 + "\n"
    big.write_text(line * (6 * 1024 * 1024 // len(line) + 1))
    assert big.stat().st_size > 5 * 1024 * 1024
    db = tmp_path / "w.duckdb"

    def run(path: Path) -> tuple[str, str]:
        args = argparse.Namespace(db=str(db), paths=[str(path)], json=True, replace=False)
        assert run_ingest_cli(args, lambda con, p: ingest_file(con, "t", p, status_loader)) == 0
        captured = capsys.readouterr()
        return captured.out, captured.err

    out, err = run(small)
    assert json.loads(out)["rows_loaded"] == 1 and "%" not in err
    out, err = run(big)
    assert json.loads(out)["status"] == "loaded" and "big.log" in err and "%|" in err


# ---------------------------------------------------------------------------------------------- crash safety

CRASH_SCRIPT = textwrap.dedent("""
    import sys
    from kit.warehouse import connect
    from kit.ingest.access_log import make_loader
    from kit.ingest.log_formats import get_format
    from kit.ingest.core import ingest_file

    inner = make_loader(get_format("combined_kv"), salt="s")

    def loader(con, source, path, skip):
        print("IN-TRANSACTION", flush=True)
        return inner(con, source, path, skip)

    con = connect(sys.argv[1], threads=1)
    ingest_file(con, "access-log", sys.argv[2], loader)
    print("COMMITTED", flush=True)
""")


def test_sigkill_mid_ingest_leaves_no_partial_rows(tmp_path):
    log = tmp_path / "big.log"
    line = ('10.0.0.{i} - - [26/Nov/2026:10:00:00 +0000] "GET /item/{i} HTTP/1.1" 200 512 "-" "wrk" '
            'rt=0.010 urt=0.009 ucs=HIT\n')
    with open(log, "w") as handle:
        for block in range(30):
            handle.write("".join(line.format(i=i) for i in range(block * 20_000, (block + 1) * 20_000)))
    db = tmp_path / "crash.duckdb"
    connect(db).close()                 # schema exists before the crash
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(db), str(log)], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "IN-TRANSACTION"
        time.sleep(0.3)                 # well inside the load of 600,000 lines (seconds)
        assert proc.poll() is None, f"ingest finished before the kill: {proc.stderr.read() if proc.stderr else ''}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    con = connect(db)
    try:
        assert table(con, "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM rejects), "
                          "(SELECT count(*) FROM ingest_log)") == [(0, 0, 0)]
        # and the file ingests cleanly afterwards
        from kit.ingest.access_log import ingest_access_log

        summary = ingest_access_log(con, log, format="combined_kv", salt="s")
        assert (summary.status, summary.rows_loaded, summary.rows_rejected) == ("loaded", 600_000, 0)
    finally:
        con.close()


def digest_loader(sha: str | None):
    """:func:`status_loader`, reporting that it read the whole file and that its sha256 is ``sha`` (None:
    the file's real one, computed here with hashlib)."""
    def loader(con: duckdb.DuckDBPyConnection, source: Source, path: Path, skip: int) -> LoadCounts:
        counts = status_loader(con, source, path, skip)
        data = path.read_bytes()
        return dataclasses.replace(counts, sha256=sha or hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    return loader


@pytest.fixture()
def up_front_hashes(monkeypatch):
    """The paths the ingest core hashed itself (not taking a loader's hash)."""
    import kit.ingest.core as core

    calls: list = []
    real = core._sha256_and_size

    def spy(path, limit=None):
        calls.append((Path(path).name, limit))
        return real(path, limit)
    monkeypatch.setattr(core, "_sha256_and_size", spy)
    return calls


def test_hash_taken_by_the_loader_is_recorded_and_the_file_not_hashed_again(tmp_path, con, up_front_hashes):
    path = write(tmp_path / "a.log", ["2024-01-01T00:00:00Z 200", "2024-01-01T00:00:01Z 500"])
    assert ingest_file(con, "test", path, digest_loader(None)).status == "loaded"
    assert up_front_hashes == []
    assert table(con, "SELECT sha256, size_bytes FROM ingest_log") == [
        (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)]
    # a loader that reports no hash: the core hashes the file after loading it
    other = write(tmp_path / "b.log", ["2024-01-01T00:00:02Z 200"])
    ingest_file(con, "test", other, status_loader)
    assert up_front_hashes == [("b.log", None)]
    # the same bytes again: an earlier ingest has the same size, so hashed first, and nothing loaded
    assert ingest_file(con, "test", path, digest_loader(None)).status == "unchanged"
    assert up_front_hashes[-1] == ("a.log", None)
    assert table(con, "SELECT count(*) FROM requests") == [(3,)]


def test_exactly_once_is_checked_again_before_commit(tmp_path, con, monkeypatch):
    """When the hash comes with the load (forced here, as if the file had changed after its size was
    taken), bytes ingested before are found before the commit: `unchanged` and nothing of the second
    load kept; with replace, the earlier source goes."""
    import kit.ingest.core as core

    lines = ["2024-01-01T00:00:00Z 200", "2024-01-01T00:00:01Z 500"]
    first = ingest_file(con, "test", write(tmp_path / "a.log", lines), status_loader)
    monkeypatch.setattr(core, "_hash_first", lambda *args: False)
    copy = write(tmp_path / "copy.log", lines)
    again = ingest_file(con, "test", copy, digest_loader(None))
    assert (again.status, again.source_id) == ("unchanged", first.source_id)
    assert table(con, "SELECT count(*) FROM requests") == [(2,)]
    assert table(con, "SELECT source_id FROM ingest_log") == [(first.source_id,)]
    replaced = ingest_file(con, "test", copy, digest_loader(None), replace=True)
    assert replaced.status == "replaced" and replaced.source_id != first.source_id
    assert table(con, "SELECT source_id, path FROM ingest_log") == [(replaced.source_id, str(copy.resolve()))]
    assert table(con, "SELECT DISTINCT source_id FROM requests") == [(replaced.source_id,)]


def test_a_file_changed_while_read_fails_and_loads_nothing(tmp_path, con):
    ingest_file(con, "test", write(tmp_path / "a.log", ["2024-01-01T00:00:00Z 200"]), status_loader)
    other = write(tmp_path / "b.log", ["2024-01-01T00:00:00Z 500"])   # same size: hashed before loading
    with pytest.raises(IngestError, match="changed while it was read"):
        ingest_file(con, "test", other, digest_loader("0" * 64))
    assert table(con, "SELECT count(*) FROM ingest_log") == [(1,)]
    assert table(con, "SELECT count(*) FROM requests") == [(1,)]
