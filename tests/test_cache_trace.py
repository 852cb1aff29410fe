"""Trace readers against independent counts of the shared files, ingest into cache_requests, trace
statistics on hand-computed cases, and the ``perfkit cache`` CLI."""

from __future__ import annotations

import gzip
import json
import lzma
import struct
from pathlib import Path

import numpy as np
import pytest

from kit.cachesim.trace import Trace, trace_from_cache_requests, trace_stats
from kit.ingest.trace import TraceFormatError, ingest_trace, read_trace
from kit.warehouse import connect

LCS = Path("cache_traces/libcachesim")
CAF = Path("cache_traces/caffeine")


def test_oracle_general_counts_and_records(shared_datasets: Path) -> None:
    path = shared_datasets / LCS / "cloudPhysicsIO.oracleGeneral.bin"
    trace = read_trace(path, "oracleGeneral")
    data = path.read_bytes()
    assert len(trace) == len(data) // 24 == 113_872
    for i in (0, 1, 5000, len(data) // 24 - 1):
        t, obj, size, _ = struct.unpack_from("<IQIq", data, i * 24)
        assert (trace.time_s[i], trace.obj_id[i], trace.size_bytes[i]) == (t, obj, size)


def test_csv_equals_the_binary_version(shared_datasets: Path) -> None:
    csv_path = shared_datasets / LCS / "cloudPhysicsIO.csv"
    lines = csv_path.read_text().splitlines()
    by_name = read_trace(csv_path, "csv")                                   # header guessed: lbn is the id
    by_pos = read_trace(csv_path, "csv", columns="time=2,id=5,size=4")
    binary = read_trace(shared_datasets / LCS / "cloudPhysicsIO.oracleGeneral.bin", "oracleGeneral")
    assert len(by_name) == len(lines) - 1
    assert np.array_equal(by_name.obj_id, binary.obj_id)
    assert np.array_equal(by_pos.obj_id, binary.obj_id)
    assert by_name.time_s is not None and np.array_equal(by_name.time_s, binary.time_s)
    third = lines[3].split(",")
    assert by_name.size_bytes[2] == int(third[3]) and by_name.obj_id[2] == int(third[4])


def test_cache2k_u32be(shared_datasets: Path) -> None:
    path = shared_datasets / CAF / "cache2k" / "web07.trace.xz"
    raw = lzma.open(path).read()
    trace = read_trace(path, "u32be")
    assert len(trace) == len(raw) // 4
    keys = struct.unpack(">10I", raw[:40])
    assert trace.obj_id[:10].tolist() == list(keys)
    assert len(np.unique(trace.obj_id)) == len(set(struct.unpack(f">{len(raw) // 4}I", raw)))


def test_time_id_size_and_text(shared_datasets: Path) -> None:
    path = shared_datasets / CAF / "adapt_size" / "request.trace.xz"
    rows = [line.split() for line in lzma.open(path, "rt") if line.strip()]
    trace = read_trace(path, "timeidsize")
    assert len(trace) == len(rows)
    assert int(trace.size_bytes.sum()) == sum(int(r[2]) for r in rows)
    assert trace.obj_id[:5].tolist() == [int(r[1]) for r in rows[:5]]
    lirs = shared_datasets / CAF / "lirs" / "loop.trace.gz"
    keys = [line.strip() for line in gzip.open(lirs, "rt") if line.strip()]
    text = read_trace(lirs, "text")
    assert len(text) == len(keys)
    assert text.obj_id[:100].tolist() == [int(k) for k in keys[:100]]


def test_bad_lines_name_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "t.txt"
    bad.write_text("1 10 100\n2 11 200\n3 12 lots\n4 13 50\n")
    with pytest.raises(TraceFormatError, match=r"line 3, field size"):
        read_trace(bad, "timeidsize")
    partial = tmp_path / "p.bin"
    partial.write_bytes(b"\0" * 50)
    with pytest.raises(TraceFormatError, match=r"record 3"):
        read_trace(partial, "oracleGeneral")
    con = connect(":memory:")
    summary = ingest_trace(con, bad, "timeidsize")
    assert (summary.lines_in, summary.rows_loaded, summary.rows_rejected) == (4, 3, 1)
    assert con.execute("SELECT line_no, field FROM rejects").fetchall() == [(3, "size")]


def test_string_keys_are_hashed_and_kept(tmp_path: Path) -> None:
    f = tmp_path / "keys.txt"
    f.write_text("/a\n/b\n\n/a\n42\n")
    trace = read_trace(f, "text")
    assert len(trace) == 4
    assert trace.obj_id[0] == trace.obj_id[2] != trace.obj_id[1]
    assert trace.obj_id[3] == 42
    con = connect(":memory:")
    s = ingest_trace(con, f, "text", trace_name="k")
    assert (s.lines_in, s.rows_loaded, s.rows_skipped) == (5, 4, 1)
    assert con.execute("SELECT key FROM cache_requests ORDER BY seq").fetchall() == [("/a",), ("/b",), ("/a",), (None,)]


def test_ingest_exactly_once_and_read_back(shared_datasets: Path) -> None:
    path = shared_datasets / LCS / "cloudPhysicsIO.oracleGeneral.bin"
    con = connect(":memory:")
    first = ingest_trace(con, path, "oracleGeneral", trace_name="cp")
    again = ingest_trace(con, path, "oracleGeneral", trace_name="cp")
    assert (first.status, first.rows_loaded) == ("loaded", 113_872)
    assert again.status == "unchanged"
    back = trace_from_cache_requests(con)
    direct = read_trace(path, "oracleGeneral")
    assert np.array_equal(back.obj_id, direct.obj_id)
    assert np.array_equal(back.size_bytes, direct.size_bytes)   # constant per object in this trace


def test_trace_stats_hand_computed() -> None:
    # a b a c a b d : objects a(3) b(2) c(1) d(1); reuses: a@2 (dist 2), a@4 (dist 2), b@5 (dist 3)
    ids = np.array([1, 2, 1, 3, 1, 2, 4], np.uint64)
    sizes = np.array([10, 20, 10, 30, 10, 20, 40])
    t = np.array([0.0, 1.0, 3.0, 4.0, 4.5, 9.0, 10.0])
    st = trace_stats(Trace("h", ids, sizes, t), buckets=2)
    assert (st.requests, st.unique_objects, st.one_hit_wonders) == (7, 4, 2)
    assert st.unique_bytes == 100 and st.total_bytes == 140
    assert st.reuse_ratio == pytest.approx(3 / 7)
    assert st.reuse_distance_quantiles["p50"] == 2 and st.reuse_distance_quantiles["p99"] == 3
    assert st.reuse_time_s_quantiles is not None
    assert st.reuse_time_s_quantiles["p50"] == pytest.approx(np.percentile([3.0, 1.5, 8.0], 50))
    assert sum(w["requests"] for w in st.working_set) == 7


def test_cli_mrc_and_compare_json(shared_datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import libcachesim as lcs

    from kit.cli import main

    path = shared_datasets / LCS / "cloudPhysicsIO.oracleGeneral.bin"
    assert main(["cache", "mrc", "--trace", str(path), "--format", "oracleGeneral", "--bytes",
                 "--sizes", "1MiB,32MiB", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE, params := lcs.ReaderInitParam())
    for pt in out["points"]:
        want = lcs.LRU(int(pt["capacity"]), hashpower=17).process_trace(reader)
        assert (pt["miss_ratio"], pt["byte_miss_ratio"]) == pytest.approx(want, abs=1e-12)
    assert main(["cache", "compare", "--trace", str(path), "--format", "oracleGeneral", "--policies",
                 "lru,s3fifo", "--sizes", "4MiB", "--json"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    got = {p["policy"]: p["miss_ratio"] for p in cmp["points"]}
    assert got["s3fifo"] == pytest.approx(lcs.S3FIFO(4 << 20, hashpower=17).process_trace(reader)[0], abs=1e-12)
    del params
    assert main(["cache", "mrc", "--trace", str(path), "--format", "oracleGeneral", "--sample-rate", "0.1",
                 "--json"]) == 0
    sh = json.loads(capsys.readouterr().out)
    assert sh["method"] == "shards-fixed-rate" and all("error_estimate" in p for p in sh["points"])
