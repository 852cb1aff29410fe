"""Database-log ingest speed and memory against the usual command-line analysers, on the same generated
files, in one run.

Generates a PostgreSQL stderr log (default 500,000 events: timed statements, executes followed by their
``DETAIL: parameters`` entry, multi-line statements, connection lines; about 750,000 lines) and a MySQL
slow query log (default 200,000 entries, about 1.3 million lines), ingests each into a fresh warehouse
(parsed, fingerprinted, redacted) in a child process, then lets the baseline parse the same file:
pgBadger (Debian ``pgbadger``, with as many jobs as perfkit has threads) for PostgreSQL, pt-query-digest
(Debian ``percona-toolkit``) for MySQL. When a baseline is not installed, a plain Python loop that only
counts the lines stands in as the floor, and the output says so. Prints input lines/s (lines of the
file, the same count for both), CPU microseconds per line and peak resident memory of each, and the
ratios.

    .venv/bin/python benchmarks/bench_db_ingest.py [--pg-entries 500000] [--mysql-entries 200000]
                                                   [--threads 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _measure import run_child

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PG_PREFIX = "%m [%p] %q%u@%d "

CHILD = """
import json, resource, sys, time
from kit.warehouse import connect
con = connect(sys.argv[2], threads=int(sys.argv[4]), memory_limit="1GB")   # as `perfkit ingest` does
start, cpu = time.perf_counter(), time.process_time()
if sys.argv[1] == "postgres":
    from kit.ingest.postgres import ingest_postgres_log
    summary = ingest_postgres_log(con, sys.argv[3], fmt="stderr", log_line_prefix=sys.argv[5])
else:
    from kit.ingest.mysql_slow import ingest_mysql_slow
    summary = ingest_mysql_slow(con, sys.argv[3])
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
con.close()
print(json.dumps({"seconds": seconds, "cpu": cpu, "loaded": summary.rows_loaded,
                  "rejected": summary.rows_rejected, "lines_in": summary.lines_in}))
"""

# the floor baseline: read and count the lines, nothing else
COUNT_LINES = """
import sys
n = 0
with open(sys.argv[1], encoding="utf-8", errors="replace") as handle:
    for _line in handle:
        n += 1
print(n)
"""

TABLES = ("orders", "order_items", "customers", "products", "carts", "payments")
USERS = ("app", "app", "app", "report", "admin")


def _statement(rng: random.Random) -> str:
    """One SQL statement with literals (seeded); one in ten spans several tab-indented lines."""
    table = TABLES[rng.randrange(len(TABLES))]
    n = rng.randrange(1, 1_000_000)
    kind = rng.randrange(10)
    if kind < 5:
        return f"SELECT * FROM {table} WHERE id = {n}"
    if kind < 7:
        return f"UPDATE {table} SET updated_at = now(), qty = qty + {rng.randrange(1, 9)} WHERE id = {n}"
    if kind < 8:
        return f"INSERT INTO {table} (id, note) VALUES ({n}, 'note {rng.getrandbits(32):08x}')"
    if kind < 9:
        return (f"SELECT c.id, count(*)\n\tFROM {table} c\n\tJOIN orders o ON o.customer_id = c.id\n"
                f"\tWHERE c.created_at > '2026-11-{rng.randrange(1, 28):02d}'\n\tGROUP BY c.id")
    return f"DELETE FROM {table} WHERE id IN ({n}, {n + 1}, {n + 2})"


def generate_postgres(path: Path, entries: int, seed: int = 11) -> tuple[int, int]:
    """Write a stderr log with ``log_line_prefix = PG_PREFIX``; return (lines written, timed entries)."""
    rng = random.Random(seed)
    lines = timed = 0
    with open(path, "w") as out:
        batch: list[str] = []
        for i in range(entries):
            sec = i // 100
            prefix = (f"2026-11-26 {sec // 3600 % 24:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.{i % 1000:03d} UTC "
                      f"[{1000 + i % 97}] {USERS[i % len(USERS)]}@shop ")
            kind = rng.randrange(20)
            ms = f"{rng.expovariate(1 / 3):.3f}"
            if kind == 0:
                batch.append(f"{prefix}LOG:  connection received: host=10.0.0.{i % 250} port={40000 + i % 9999}\n")
                lines += 1
            elif kind < 5:
                table = TABLES[rng.randrange(len(TABLES))]
                batch.append(f"{prefix}LOG:  duration: {ms} ms  execute <unnamed>: SELECT * FROM {table} "
                             f"WHERE id = $1 AND status = $2\n")
                batch.append(f"{prefix}DETAIL:  parameters: $1 = '{rng.randrange(1, 10**6)}', $2 = 'paid'\n")
                lines += 2
                timed += 1
            else:
                sql = _statement(rng)
                text = f"{prefix}LOG:  duration: {ms} ms  statement: {sql}\n"
                batch.append(text)
                lines += text.count("\n")
                timed += 1
            if len(batch) >= 20_000:
                out.writelines(batch)
                batch.clear()
        out.writelines(batch)
    return lines, timed


def generate_mysql(path: Path, entries: int, seed: int = 13) -> int:
    """Write a MySQL 8 slow log (banner, then ``entries`` entries); return the lines written."""
    rng = random.Random(seed)
    lines = 3
    with open(path, "w") as out:
        out.write("/usr/sbin/mysqld, Version: 8.0.36 (MySQL Community Server - GPL). started with:\n"
                  "Tcp port: 3306  Unix socket: /var/run/mysqld/mysqld.sock\n"
                  "Time                 Id Command    Argument\n")
        batch: list[str] = []
        base = 1_795_651_200   # 2026-11-26T00:00:00Z
        for i in range(entries):
            sql = _statement(rng)
            sql = sql.replace("\t", "  ")
            ts = base + i // 50
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{i % 1_000_000:06d}Z"
            text = (f"# Time: {stamp}\n"
                    f"# User@Host: {USERS[i % len(USERS)]}[{USERS[i % len(USERS)]}] @ localhost []  Id: {i % 500}\n"
                    f"# Query_time: {rng.expovariate(1 / 0.002):.6f}  Lock_time: 0.000010 Rows_sent: "
                    f"{rng.randrange(0, 50)}  Rows_examined: {rng.randrange(0, 5000)}\n"
                    f"use shop;\nSET timestamp={ts};\n{sql};\n")
            batch.append(text)
            lines += text.count("\n")
            if len(batch) >= 20_000:
                out.writelines(batch)
                batch.clear()
        out.writelines(batch)
    return lines


def _report(label: str, lines: int, seconds: float, cpu: float, peak_kib: int) -> None:
    print(f"{label:28s}: {seconds:7.2f} s  {lines / seconds:>11,.0f} lines/s  {cpu / lines * 1e6:6.2f} CPU-us/line  "
          f"peak RSS {peak_kib / 1024:6,.0f} MiB", flush=True)


def bench(kind: str, log: Path, lines: int, expected: int, work: Path, threads: int,
          baseline: list[str] | None, baseline_name: str) -> None:
    """Ingest ``log`` with perfkit in a child process, then run the baseline on it; print both and the ratios."""
    db = work / f"bench-{kind}.duckdb"
    child, _wall, peak_kib, _cpu = run_child(
        [sys.executable, "-c", CHILD, kind, str(db), str(log), str(threads), PG_PREFIX], cwd=PROJECT_ROOT)
    if child.returncode:
        print(child.stderr, file=sys.stderr)
        raise SystemExit(1)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["loaded"] == expected and result["rejected"] == 0, (result, expected)
    for leftover in work.glob(f"bench-{kind}.duckdb*"):
        leftover.unlink()
    _report(f"perfkit {kind} (threads={threads})", lines, result["seconds"], result["cpu"], peak_kib)
    floor = baseline is None
    cmd = baseline or [sys.executable, "-c", COUNT_LINES, str(log)]
    base, b_wall, b_peak, b_cpu = run_child(cmd, cwd=work)
    if base.returncode:
        print(base.stderr[-2000:], file=sys.stderr)
        raise SystemExit(1)
    name = "python line count (floor)" if floor else baseline_name
    _report(name, lines, b_wall, b_cpu, b_peak)
    print(f"ratio perfkit/{name}: {b_wall / result['seconds']:.1f}x lines/s (wall), {b_cpu / result['cpu']:.1f}x "
          f"lines per CPU-second; {'the floor: no baseline installed' if floor else 'same file, same run'}",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-entries", type=int, default=500_000, help="PostgreSQL log events")
    parser.add_argument("--mysql-entries", type=int, default=200_000, help="slow-log entries")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads, and pgBadger jobs")
    parser.add_argument("--keep", type=Path, help="directory to keep the generated logs in")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-db-ingest-"))
    try:
        where = args.keep or work
        where.mkdir(parents=True, exist_ok=True)
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)

        pg_log = where / f"postgresql-{args.pg_entries}.log"
        t = time.perf_counter()
        pg_lines, pg_timed = generate_postgres(pg_log, args.pg_entries)
        print(f"generated PostgreSQL stderr log: {pg_lines:,} lines, {pg_timed:,} timed statements "
              f"({pg_log.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s", flush=True)
        pgbadger = shutil.which("pgbadger")
        if not pgbadger:
            print("pgbadger not found (apt-get install pgbadger): using the floor baseline", flush=True)
        bench("postgres", pg_log, pg_lines, pg_timed, work, args.threads,
              [pgbadger, "--format", "stderr", "--prefix", PG_PREFIX, "--jobs", str(args.threads), "--quiet",
               "--extension", "text", "--outfile", str(work / "pgbadger.txt"), str(pg_log)] if pgbadger else None,
              f"pgbadger (jobs={args.threads})")

        my_log = where / f"mysql-slow-{args.mysql_entries}.log"
        t = time.perf_counter()
        my_lines = generate_mysql(my_log, args.mysql_entries)
        print(f"generated MySQL slow log: {my_lines:,} lines, {args.mysql_entries:,} entries "
              f"({my_log.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s", flush=True)
        digest = shutil.which("pt-query-digest")
        if not digest:
            print("pt-query-digest not found (apt-get install percona-toolkit): using the floor baseline", flush=True)
        bench("mysql", my_log, my_lines, args.mysql_entries, work, args.threads,
              [digest, "--type", "slowlog", str(my_log)] if digest else None, "pt-query-digest")
        print(f"load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
