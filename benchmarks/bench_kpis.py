"""Benchmark: per-route, per-minute request count and p50/p95/p99 latency over N requests.

DuckDB (the KPI layer: ``kit.analysis.kpis.red_series`` and the bare SQL) against the same computation
in pandas, each engine in its own subprocess so its peak RSS is its own. Prints seconds, peak memory
and the pandas/DuckDB ratios measured in this run. The data are generated once in a temporary DuckDB
file (not timed): N rows over 7 days, 130 routes with skewed popularity, lognormal latencies.

    .venv/bin/python benchmarks/bench_kpis.py                  # 50,000,000 rows (issue target: <= 5 s, <= 1 GB)
    .venv/bin/python benchmarks/bench_kpis.py --rows 5000000   # smaller
    .venv/bin/python benchmarks/bench_kpis.py --rows 100000000 --memory-limit 2GB --skip-pandas
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START = "2024-01-01 00:00:00+00"


def generate(path: Path, rows: int, threads: int) -> None:
    from kit.warehouse import connect

    con = connect(path, threads=threads)
    con.execute("SET enable_progress_bar = false")
    con.execute(f"""
        INSERT INTO requests (ts, service, route, status, latency_ms, source_id)
        SELECT TIMESTAMPTZ '{START}' + to_microseconds((random() * 7 * 86400e6)::BIGINT),
               'shop', '/r/' || floor(pow(random(), 3) * 130)::INTEGER,
               CASE WHEN random() < 0.01 THEN 503 ELSE 200 END,
               exp(3.5 + sqrt(-2 * ln(greatest(random(), 1e-12))) * cos(2 * pi() * random())), 1
        FROM range({rows})""")
    con.close()


def run_duckdb(path: str, threads: int, memory_limit: str | None) -> dict:
    from kit.warehouse import connect

    con = connect(path, read_only=True, threads=threads, memory_limit=memory_limit)
    con.execute("SET enable_progress_bar = false")
    t = time.perf_counter()  # result kept in Arrow (columnar, like the pandas result), not Python tuples
    result = con.sql("""
        SELECT route, time_bucket(INTERVAL '1 minute', ts) AS minute, count(*) AS n,
               quantile_cont(latency_ms, [0.5, 0.95, 0.99]) AS q
        FROM requests GROUP BY ALL""").to_arrow_table()
    sql_s = time.perf_counter() - t
    sql_rows = con.sql("SELECT * FROM result ORDER BY route, minute LIMIT 3").fetchall()
    check = [(r[0], r[1].isoformat(), r[2], round(r[3][2], 6)) for r in sql_rows]
    return {"sql_s": sql_s, "groups": result.num_rows, "check": check, "peak_rss_bytes": _peak_rss()}


def run_kit(path: str, threads: int, memory_limit: str | None) -> dict:
    from kit.analysis import kpis
    from kit.analysis.window import resolve_window
    from kit.warehouse import connect

    con = connect(path, read_only=True, threads=threads, memory_limit=memory_limit)
    con.execute("SET enable_progress_bar = false")
    window = resolve_window(con)
    t = time.perf_counter()
    series = kpis.red_series(con, window, "1m", "route")
    return {"kit_s": time.perf_counter() - t, "groups": len(series), "peak_rss_bytes": _peak_rss()}


def run_pandas(path: str) -> dict:
    import numpy as np

    from kit.warehouse import connect

    con = connect(path, read_only=True)
    con.execute("SET enable_progress_bar = false")
    frame = con.execute("SELECT ts, route, latency_ms FROM requests").df()
    con.close()
    frame["route"] = frame["route"].astype("category")
    t = time.perf_counter()
    minute = frame["ts"].dt.floor("min")
    grouped = frame.groupby([frame["route"], minute], observed=True)["latency_ms"]
    counts = grouped.size()
    quantiles = grouped.quantile([0.5, 0.95, 0.99]).unstack()  # linear interpolation, as quantile_cont
    result = quantiles.assign(n=counts)
    seconds = time.perf_counter() - t
    first = result.reset_index().sort_values(["route", "ts"]).head(3)
    check = sorted((str(route), ts.isoformat(), int(n), round(float(p99), 6))
                   for route, ts, n, p99 in zip(first["route"], first["ts"], first["n"], first[0.99], strict=True))
    del frame, grouped
    return {"pandas_s": seconds, "groups": int(len(result)), "check": check, "peak_rss_bytes": _peak_rss(),
            "numpy": np.__version__}


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _child(engine: str, args: argparse.Namespace, path: Path) -> dict:
    cmd = [sys.executable, __file__, "--engine", engine, "--db", str(path), "--threads", str(args.threads)]
    if args.memory_limit:
        cmd += ["--memory-limit", args.memory_limit]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{engine} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000_000, help="requests to generate (default 50M)")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
    parser.add_argument("--memory-limit", help="DuckDB memory_limit, e.g. 2GB")
    parser.add_argument("--skip-pandas", action="store_true", help="DuckDB only (e.g. for 100M rows)")
    parser.add_argument("--engine", choices=("duckdb", "kit", "pandas"), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine == "duckdb":
        print(json.dumps(run_duckdb(args.db, args.threads, args.memory_limit)))
        return 0
    if args.engine == "kit":
        print(json.dumps(run_kit(args.db, args.threads, args.memory_limit)))
        return 0
    if args.engine == "pandas":
        print(json.dumps(run_pandas(args.db)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_kpis_") as tmp:
        path = Path(tmp) / "bench.duckdb"
        t = time.perf_counter()
        generate(path, args.rows, args.threads)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s "
              f"({path.stat().st_size / 2**20:,.0f} MiB on disk)")
        duck = _child("duckdb", args, path)
        print(f"DuckDB SQL           : {duck['sql_s']:7.2f} s  {duck['groups']:,} route-minutes")
        print(f"DuckDB SQL peak RSS  : {duck['peak_rss_bytes'] / 2**20:7.0f} MiB"
              + (f" (memory_limit {args.memory_limit})" if args.memory_limit else ""))
        kit = _child("kit", args, path)
        print(f"kit red_series 1m    : {kit['kit_s']:7.2f} s  {kit['groups']:,} rows (adds 4xx/5xx, Apdex, rate; "
              f"peak RSS {kit['peak_rss_bytes'] / 2**20:,.0f} MiB)")
        if args.skip_pandas:
            return 0
        pan = _child("pandas", args, path)
        print(f"pandas groupby       : {pan['pandas_s']:7.2f} s  {pan['groups']:,} route-minutes")
        print(f"pandas peak RSS      : {pan['peak_rss_bytes'] / 2**20:7.0f} MiB (includes the loaded frame)")
        same = pan["groups"] == duck["groups"] and [c[:3] for c in pan["check"]] == [c[:3] for c in duck["check"]]
        close = all(abs(a[3] - b[3]) <= 1e-6 * max(1.0, abs(a[3])) for a, b in zip(pan["check"], duck["check"],
                                                                                  strict=False))
        print(f"same groups and p99 on the first route-minutes: {same and close}")
        print(f"ratio time   pandas / DuckDB SQL : {pan['pandas_s'] / duck['sql_s']:5.1f}x")
        print(f"ratio time   pandas / kit        : {pan['pandas_s'] / kit['kit_s']:5.1f}x")
        print(f"ratio memory pandas / DuckDB     : {pan['peak_rss_bytes'] / duck['peak_rss_bytes']:5.1f}x")
        print(f"(cpu count {os.cpu_count()}, DuckDB threads {args.threads})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
