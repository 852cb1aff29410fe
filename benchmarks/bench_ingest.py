"""Access-log ingest speed and memory against GoAccess, on the same generated file, in one run.

Generates an N-line (default 2,000,000) combined log with ``rt= urt= ucs=`` fields, ingests it into a
fresh warehouse (typed, route-templated, redacted, hashed) in a child process, then lets GoAccess parse
the same file; then ingests it into a Parquet warehouse (``--warehouse-format parquet``, where the reader
writes its rows as Parquet itself). Prints lines/s for each, the ratios, each one's peak resident memory,
and CPU seconds per line (the machine is shared: wall time depends on the load, CPU time much less; on
two cores, 1,000,000 lines/s needs at most 2 CPU-s per million lines). ``--general`` also
times the general (regex) path on the same file, for the fast path's speed-up.

A second baseline is DuckDB's own storage cost: the same rows, already parsed and held in memory as
Arrow, inserted into a fresh warehouse (``INSERT ... SELECT *``, one transaction). No parser can ingest
faster than that floor; the ratio shows how much the parsing adds on top of it. The floor is measured
a second time with the repetitive strings as integer ids (dimension tables), the data model that would
lower it. The compiled parser is
warmed up (compiled or loaded from numba's cache) before timing, and that time is printed apart.

    .venv/bin/python benchmarks/bench_ingest.py [--lines 2000000] [--threads 2] [--keep DIR] [--general]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _measure import run_child

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kit.ingest.core import _sha256_and_size  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import resource, sys, time, json, tempfile, os
from kit.warehouse import connect
from kit.ingest.access_log import ingest_access_log
warm = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:   # compile (or load from cache) the parser outside the timing
    line = '1.2.3.4 - - [10/Oct/2024:13:55:36 +0000] "GET /a/1 HTTP/1.1" 200 5 "-" "c" rt=0.1 urt=- ucs=HIT\\n'
    open(os.path.join(tmp, "w.log"), "w").write(line)
    ingest_access_log(connect(":memory:"), os.path.join(tmp, "w.log"), format="combined_kv", salt="w")
warm = time.perf_counter() - warm
def load(con):
    return ingest_access_log(con, sys.argv[2], format="combined_kv", salt="bench", fast=sys.argv[4] != "general")
if sys.argv[4] == "parquet":   # a Parquet warehouse, as `perfkit ingest --warehouse-format parquet` does
    from kit.ingest.parquet import ingest
    start, cpu = time.perf_counter(), time.process_time()
    summary = ingest(sys.argv[1], load, memory_limit="1GB")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
else:
    from kit.analysis.request_groups import refresh_rollup
    con = connect(sys.argv[1], threads=int(sys.argv[3]), memory_limit="1GB")   # as `perfkit ingest` does
    start, cpu = time.perf_counter(), time.process_time()
    summary = load(con)
    refresh_rollup(con)   # the per-day grouped requests, which `perfkit ingest` refreshes after loading
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    con.close()
print(json.dumps({"seconds": seconds, "cpu": cpu, "loaded": summary.rows_loaded, "rejected": summary.rows_rejected,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "warm_up": warm}))
"""

FLOOR_CHILD = """
import sys, time, json, duckdb
from kit.warehouse import connect
src = duckdb.connect(sys.argv[1], read_only=True)
rows = src.sql("SELECT * EXCLUDE (source_id) FROM requests").fetch_arrow_table()
src.close()
def timed_insert(con, sql):
    # wall and CPU seconds of one committed INSERT
    start, cpu = time.perf_counter(), time.process_time()
    con.execute("BEGIN")
    con.execute(sql)
    con.execute("COMMIT")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    con.close()
    return wall, cpu
seconds, cpu = timed_insert(connect(sys.argv[2], threads=int(sys.argv[3]), memory_limit="1GB"),
                            "INSERT INTO requests SELECT *, 1 FROM rows")
# the same rows with the repetitive strings as integer ids into dimension tables (the data model issue 15
# approves; ids computed outside the timing): what storing them would cost
import pyarrow as pa, pyarrow.compute as pc
REPETITIVE = ("service", "host", "method", "route", "content_type", "cache_status", "client_hash", "user_agent")
for name in REPETITIVE:
    rows = rows.set_column(rows.column_names.index(name), name + "_id",
                           pc.dictionary_encode(rows[name]).combine_chunks().indices.cast(pa.uint32()))
con = duckdb.connect(sys.argv[2] + ".ids", config={"threads": int(sys.argv[3]), "memory_limit": "1GB"})
con.execute("CREATE TABLE requests_ids AS SELECT * FROM rows LIMIT 0")
seconds_ids, cpu_ids = timed_insert(con, "INSERT INTO requests_ids SELECT * FROM rows")
print(json.dumps({"seconds": seconds, "cpu": cpu, "ids_seconds": seconds_ids, "ids_cpu": cpu_ids}))
"""

PATHS = ("/product/{n}", "/api/v1/users/{n}/orders", "/static/app.{h}.js", "/search?q=shoes&page={p}&token=t{n}",
         "/", "/cart/{n}?session=s{n}", "/img/{n}.jpg", "/blog/{u}")
AGENTS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
          "curl/8.5.0")


def generate(path: Path, n: int, seed: int = 7) -> None:
    """Write ``n`` combined + rt/urt/ucs lines (statuses, sizes, times drawn from a seeded generator)."""
    rng = random.Random(seed)
    with open(path, "w") as out:
        batch = []
        for i in range(n):
            template = PATHS[rng.randrange(len(PATHS))]
            target = template.format(n=rng.randrange(1, 100_000), h=f"{rng.getrandbits(64):016x}",
                                     p=rng.randrange(1, 20), u=f"{rng.getrandbits(128):032x}")
            status = rng.choice((200, 200, 200, 200, 304, 404, 500, 502))
            rt = rng.random() * 0.8
            ucs = rng.choice(("HIT", "HIT", "MISS", "EXPIRED", "-"))
            urt = "-" if ucs == "HIT" else f"{rt * 0.9:.3f}"
            sec = i // 50
            batch.append(f"10.{i % 7}.{i % 251}.{i % 97} - - [26/Nov/2026:{sec // 3600 % 24:02d}:{sec // 60 % 60:02d}:"
                         f"{sec % 60:02d} +0000] \"GET {target} HTTP/1.1\" {status} {rng.randrange(0, 60_000)} "
                         f"\"-\" \"{AGENTS[rng.randrange(3)]}\" rt={rt:.3f} urt={urt} ucs={ucs}\n")
            if len(batch) == 20_000:
                out.writelines(batch)
                batch.clear()
        out.writelines(batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="directory to keep the generated log in (reused if present)")
    parser.add_argument("--general", action="store_true", help="also time the general (regex) path")
    args = parser.parse_args()
    goaccess = shutil.which("goaccess")
    if not goaccess:
        print("goaccess not found: apt-get install goaccess", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        log = (args.keep or work) / f"access-{args.lines}.log"
        if not log.exists():
            log.parent.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            generate(log, args.lines)
            print(f"generated {args.lines:,} lines ({log.stat().st_size / 1e6:.0f} MB) in "
                  f"{time.perf_counter() - t:.1f} s")
        import json

        def warehouse_name(path_kind: str) -> str:
            """A DuckDB file, or the Parquet warehouse's directory."""
            return f"bench-{path_kind}" + ("" if path_kind == "parquet" else ".duckdb")

        def ingest(path_kind: str) -> tuple[dict, float, int, float]:
            db = work / warehouse_name(path_kind)
            child, wall, peak_kib, cpu = run_child([sys.executable, "-c", CHILD, str(db), str(log), str(args.threads),
                                                   path_kind], cwd=PROJECT_ROOT)
            if child.returncode:
                print(child.stderr, file=sys.stderr)
                raise SystemExit(1)
            result = json.loads(child.stdout.strip().splitlines()[-1])
            assert result["loaded"] == args.lines and result["rejected"] == 0, result
            rate = args.lines / result["seconds"]
            print(f"perfkit ingest ({path_kind:7s}): {result['seconds']:.2f} s  {rate:,.0f} lines/s  "
                  f"peak RSS {peak_kib / 1024:,.0f} MiB  ingest CPU {result['cpu']:.1f} s = "
                  f"{result['cpu'] / args.lines * 1e6:.2f} CPU-s per million lines "
                  f"({args.lines / result['cpu']:,.0f} lines per CPU-second; process CPU {cpu:.1f} s, "
                  f"wall {wall:.2f} s, threads={args.threads}; parser warm-up "
                  f"{result['warm_up']:.1f} s, not counted); load average {os.getloadavg()[0]:.1f}", flush=True)
            return result, wall, peak_kib, cpu

        def drop(path_kind: str) -> None:
            for leftover in work.glob(f"{warehouse_name(path_kind)}*"):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()

        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        result, wall, peak_kib, _ = ingest("fast")
        ours = args.lines / result["seconds"]
        cpu = result["cpu"]
        floor_child, *_ = run_child([sys.executable, "-c", FLOOR_CHILD, str(work / "bench-fast.duckdb"),
                                     str(work / "bench-floor.duckdb"), str(args.threads)], cwd=PROJECT_ROOT)
        if floor_child.returncode:
            print(floor_child.stderr, file=sys.stderr)
            return 1
        floor = json.loads(floor_child.stdout.strip().splitlines()[-1])
        drop("fast")
        drop("floor")                # and its .ids twin
        per_m = 1e6 / args.lines
        print(f"storage floor  : {floor['seconds']:.2f} s  {args.lines / floor['seconds']:,.0f} rows/s  "
              f"CPU {floor['cpu']:.1f} s = {floor['cpu'] * per_m:.2f} CPU-s per million rows (DuckDB inserting the "
              f"same rows, already parsed, from memory)")
        print(f"  with ids     : {floor['ids_seconds']:.2f} s  CPU {floor['ids_cpu']:.1f} s = "
              f"{floor['ids_cpu'] * per_m:.2f} CPU-s per million rows (the same rows with service, host, method, "
              f"route, content_type, cache_status, client_hash, user_agent as integer ids into dimension tables)")
        print(f"ratio ingest/storage floor: {result['seconds'] / floor['seconds']:.2f}x wall, "
              f"{cpu / floor['cpu']:.2f}x CPU (parsing, templating, redaction and hashing add the rest)", flush=True)
        t = time.perf_counter()
        _sha256_and_size(log)     # the exactly-once hash: the fast path takes it while reading (in the ingest CPU)
        sha = time.perf_counter() - t
        budget = args.lines / 1_000_000
        print(f"sha256 of file : {sha:.2f} s (taken by the reader thread while parsing, not a pass before it). "
              f"At 1,000,000 lines/s the budget is {budget:.2f} s: storage floor + sha256 take "
              f"{floor['seconds'] + sha:.2f} s of it, leaving {budget - floor['seconds'] - sha:.2f} s for parsing",
              flush=True)
        parquet, _, parquet_peak_kib, _ = ingest("parquet")
        parquet_rate = args.lines / parquet["seconds"]
        drop("parquet")
        print(f"Parquet warehouse / DuckDB file: {result['seconds'] / parquet['seconds']:.2f}x the lines/s, "
              f"{parquet['cpu'] / cpu:.2f}x the CPU (the reader's rows written as Parquet by a background thread, "
              "not stored in DuckDB)", flush=True)
        if args.general:
            general, *_ = ingest("general")
            drop("general")
            print(f"fast / general path: {general['seconds'] / result['seconds']:.2f}x wall, "
                  f"{general['cpu'] / cpu:.2f}x CPU", flush=True)
        ga, ga_wall, ga_peak_kib, ga_cpu = run_child(
            [goaccess, str(log), "--log-format", '%h %^[%d:%t %^] "%r" %s %b "%R" "%u" rt=%T %^',
             "--date-format", "%d/%b/%Y", "--time-format", "%H:%M:%S", "--no-global-config",
             "-o", str(work / "report.json")])
        if ga.returncode:
            print(ga.stderr, file=sys.stderr)
            return 1
        theirs = args.lines / ga_wall
        print(f"goaccess       : {ga_wall:.2f} s  {theirs:,.0f} lines/s  peak RSS {ga_peak_kib / 1024:,.0f} MiB  "
              f"CPU {ga_cpu:.1f} s = {args.lines / ga_cpu:,.0f} lines per CPU-second")
        for label, rate, seconds_cpu, peak in (("DuckDB file", ours, cpu, peak_kib),
                                               ("Parquet warehouse", parquet_rate, parquet["cpu"], parquet_peak_kib)):
            print(f"{label:17s}: ratio perfkit/goaccess {rate / theirs:.1f}x wall, {ga_cpu / seconds_cpu:.1f}x CPU "
                  f"(ingest CPU vs GoAccess process CPU); target >= 1,000,000 lines/s: "
                  f"{'met' if rate >= 1_000_000 else 'NOT met'} ({rate:,.0f}); peak < 1.5 GB: "
                  f"{'met' if peak < 1.5 * 1024 * 1024 else 'NOT met'}")
        print(f"load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
