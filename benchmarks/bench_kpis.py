"""Benchmark: per-route, per-minute request count and p50/p95/p99 latency over N requests.

The KPI layer (``kit.analysis.kpis.latency_series_frame(con, window, "1m", "route")``: exact
``quantile_cont``, queried in bucket-aligned time slices of at most ``SERIES_SLICE_ROWS`` requests, as a
DataFrame since 1.3M route-minutes are too many Python objects; ``--red`` also times ``red_series_frame``,
which adds rate, 5xx/4xx counts and Apdex) against the same
computation in pandas (groupby route and minute, ``quantile([0.5, 0.95, 0.99])``, linear interpolation
as ``quantile_cont``), plus DuckDB as one single query for reference. Each engine runs in its own
subprocess; its peak memory is the resident set of that process sampled every 20 ms with psutil while
the computation runs, so it includes Python and its imports, the loaded data (pandas) and DuckDB's
buffer pool; the peak of the whole process (also loading and writing the result) is printed apart. Both
results are written to Parquet (not timed) and compared group by group: same (route, minute) groups,
same counts, quantiles equal to 1e-9 relative.

Data (generated once, not timed, in a temporary DuckDB warehouse that is deleted afterwards): N requests
over 7 days in time order (as a warehouse loaded from access logs holds them; ``--shuffled`` stores them
in random order instead), 130 routes with skewed popularity (the busiest takes 20 %), lognormal latencies
(median 33 ms), 1 % 5xx.

    .venv/bin/python benchmarks/bench_kpis.py                  # 50,000,000 rows (issue target: <= 5 s, <= 1 GB)
    .venv/bin/python benchmarks/bench_kpis.py --rows 5000000   # smaller
    .venv/bin/python benchmarks/bench_kpis.py --rows 100000000 --memory-limit 2GB --skip-pandas --report
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

START = "2024-01-01 00:00:00+00"
SPAN_S = 7 * 86400
SQL_SINGLE = """
    SELECT route, minute, requests, q[1] AS p50, q[2] AS p95, q[3] AS p99 FROM (
        SELECT route, time_bucket(INTERVAL '1 minute', ts) AS minute, count(*) AS requests,
               quantile_cont(latency_ms, [0.5, 0.95, 0.99]) AS q
        FROM requests GROUP BY ALL)"""


def generate(path: Path, rows: int, threads: int, shuffled: bool) -> None:
    """N synthetic requests into a new warehouse at ``path`` (DuckDB ``range()`` + random functions)."""
    from kit.warehouse import connect

    con = connect(path, threads=threads, memory_limit="1GB")
    con.execute("SET enable_progress_bar = false")
    step_us = SPAN_S * 1e6 / rows
    order = "ORDER BY hash(i)" if shuffled else ""
    con.execute(f"""
        INSERT INTO requests (ts, service, route, status, latency_ms, bytes_sent, source_id)
        SELECT TIMESTAMPTZ '{START}' + to_microseconds((i * {step_us!r})::BIGINT),
               'shop', '/r/' || floor(pow(random(), 3) * 130)::INTEGER,
               CASE WHEN random() < 0.01 THEN 503 ELSE 200 END,
               exp(3.5 + sqrt(-2 * ln(greatest(random(), 1e-12))) * cos(2 * pi() * random())),
               1000, 1
        FROM range({rows}) AS t(i) {order}""")
    con.close()


class PeakRss:
    """Samples this process's resident set every 20 ms in a thread while in the ``with`` block: the peak
    during a computation (it includes what the process held before: Python, imports, loaded data)."""

    def __enter__(self) -> PeakRss:
        self.peak_bytes = psutil.Process().memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.02):
            self.peak_bytes = max(self.peak_bytes, me.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, psutil.Process().memory_info().rss)


def run_kit(db: str, out: str, threads: int, memory_limit: str | None, report: bool, red: bool) -> dict:
    """The KPI layer: latency_series_frame per route and minute (with ``red``, red_series_frame as well;
    with ``report``, the whole kpi_report)."""
    from kit.analysis import kpis
    from kit.analysis.window import resolve_window
    from kit.warehouse import connect

    con = connect(db, read_only=True, threads=threads, memory_limit=memory_limit)
    con.execute("SET enable_progress_bar = false")
    window = resolve_window(con)
    with PeakRss() as peak:
        t = time.perf_counter()
        frame = kpis.latency_series_frame(con, window, "1m", "route")
        seconds = time.perf_counter() - t
    result: dict = {"seconds": seconds, "groups": len(frame), "peak_bytes": peak.peak_bytes}
    if red:
        t = time.perf_counter()
        result["red_groups"] = len(kpis.red_series_frame(con, window, "1m", "route"))
        result["red_s"] = time.perf_counter() - t
    frame = frame.rename(columns={"group": "route", "bucket_start": "minute", "p50_ms": "p50", "p95_ms": "p95",
                                  "p99_ms": "p99"})
    frame[["route", "minute", "requests", "p50", "p95", "p99"]].to_parquet(out)
    del frame
    if report:
        t = time.perf_counter()
        full = kpis.kpi_report(con, bucket="5m")
        result["report_s"] = time.perf_counter() - t
        result["report_method"] = full.quantile_method
    return result


def run_sql(db: str, out: str, threads: int, memory_limit: str | None) -> dict:
    """DuckDB as one GROUP BY query over the whole table (no time slices), for reference."""
    import pyarrow.parquet as pq

    from kit.warehouse import connect

    con = connect(db, read_only=True, threads=threads, memory_limit=memory_limit)
    con.execute("SET enable_progress_bar = false")
    with PeakRss() as peak:
        t = time.perf_counter()
        table = con.sql(SQL_SINGLE).to_arrow_table()
        seconds = time.perf_counter() - t
    pq.write_table(table, out)
    return {"seconds": seconds, "groups": table.num_rows, "peak_bytes": peak.peak_bytes}


def run_pandas(db: str, out: str) -> dict:
    """The same computation in pandas: load the three columns (not timed), then groupby + quantile."""
    from kit.warehouse import connect

    con = connect(db, read_only=True)
    con.execute("SET enable_progress_bar = false")
    frame = con.execute("SELECT ts, route, latency_ms FROM requests").df()
    con.close()
    frame["route"] = frame["route"].astype("category")
    with PeakRss() as peak:
        t = time.perf_counter()
        minute = frame["ts"].dt.floor("min")
        grouped = frame.groupby([frame["route"], minute], observed=True)["latency_ms"]
        result = grouped.quantile([0.5, 0.95, 0.99]).unstack()  # linear interpolation, as quantile_cont
        result["requests"] = grouped.size()
        seconds = time.perf_counter() - t
    result.columns = [str(c) for c in result.columns]
    result = result.reset_index()
    result.columns = ["route", "minute", "p50", "p95", "p99", "requests"]
    result["route"] = result["route"].astype(str)
    result.to_parquet(out)
    return {"seconds": seconds, "groups": len(result), "peak_bytes": peak.peak_bytes}


def _child(engine: str, args: argparse.Namespace, db: Path, tmp: Path) -> dict:
    """Run one engine in a subprocess; its result JSON plus the psutil-sampled peak RSS of the process."""
    out, meta = tmp / f"{engine}.parquet", tmp / f"{engine}.json"
    cmd = [sys.executable, __file__, "--engine", engine, "--db", str(db), "--out", str(out), "--meta", str(meta),
           "--threads", str(args.threads)]
    if args.memory_limit:
        cmd += ["--memory-limit", args.memory_limit]
    cmd += ["--report"] * args.report + ["--red"] * args.red
    started = time.perf_counter()
    proc = subprocess.Popen(cmd)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, root.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"{engine} run failed (exit {proc.returncode})")
    result = json.loads(meta.read_text())
    result.update(process_peak_rss_bytes=peak, wall_s=time.perf_counter() - started, parquet=str(out))
    return result


def compare(a: str, b: str) -> tuple[int, int, int, float]:
    """(groups only in a, groups only in b, groups whose counts differ, max relative quantile difference)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    row = con.execute(f"""
        SELECT count(*) FILTER (WHERE b.route IS NULL), count(*) FILTER (WHERE a.route IS NULL),
               count(*) FILTER (WHERE a.requests <> b.requests),
               max(greatest(abs(a.p50 - b.p50) / b.p50, abs(a.p95 - b.p95) / b.p95, abs(a.p99 - b.p99) / b.p99))
        FROM read_parquet('{a}') a FULL JOIN read_parquet('{b}') b
          ON a.route = b.route AND a.minute::TIMESTAMPTZ = b.minute::TIMESTAMPTZ""").fetchall()[0]
    return int(row[0]), int(row[1]), int(row[2]), float(row[3] or 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000_000, help="requests to generate (default 50M)")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
    parser.add_argument("--memory-limit", help="DuckDB memory_limit for the measured runs, e.g. 2GB")
    parser.add_argument("--skip-pandas", action="store_true", help="DuckDB only (e.g. for 100M rows)")
    parser.add_argument("--skip-single", action="store_true", help="skip the single-query DuckDB reference")
    parser.add_argument("--report", action="store_true", help="also time the whole kpi_report on the data")
    parser.add_argument("--red", action="store_true", help="also time red_series_frame (adds rate, 5xx, Apdex)")
    parser.add_argument("--shuffled", action="store_true", help="store the requests in random order")
    parser.add_argument("--data", help="reuse (or create and keep) the generated warehouse at this path")
    parser.add_argument("--engine", choices=("kit", "sql", "pandas"), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--meta", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        if args.engine == "kit":
            result = run_kit(args.db, args.out, args.threads, args.memory_limit, args.report, args.red)
        elif args.engine == "sql":
            result = run_sql(args.db, args.out, args.threads, args.memory_limit)
        else:
            result = run_pandas(args.db, args.out)
        Path(args.meta).write_text(json.dumps(result))
        return 0

    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (cpu count {os.cpu_count()}, "
          f"DuckDB threads {args.threads}, memory_limit {args.memory_limit or 'default'})")
    with tempfile.TemporaryDirectory(prefix="bench_kpis_") as tmp_name:
        tmp = Path(tmp_name)
        db = Path(args.data) if args.data else tmp / "bench.duckdb"
        if not db.exists():
            t = time.perf_counter()
            generate(db, args.rows, args.threads, args.shuffled)
            print(f"generated {args.rows:,} requests ({'random' if args.shuffled else 'time'} order) in "
                  f"{time.perf_counter() - t:.1f} s, {db.stat().st_size / 2**20:,.0f} MiB on disk (not timed)")
        mib = 2**20
        kit = _child("kit", args, db, tmp)
        print(f"kit latency_series_frame  : {kit['seconds']:7.2f} s  peak RSS {kit['peak_bytes'] / mib:6.0f} MiB"
              f"  {kit['groups']:,} route-minutes (exact quantile_cont in time slices){_whole(kit)}")
        if "red_s" in kit:
            print(f"kit red_series_frame      : {kit['red_s']:7.2f} s  (adds rate, 5xx/4xx, Apdex; same process)")
        if "report_s" in kit:
            print(f"kit kpi_report (5m)        : {kit['report_s']:7.2f} s  (whole report; percentiles: "
                  f"{kit['report_method'].split(':')[0]})")
        if not args.skip_single:
            sql = _child("sql", args, db, tmp)
            print(f"DuckDB one query           : {sql['seconds']:7.2f} s  peak RSS "
                  f"{sql['peak_bytes'] / mib:6.0f} MiB  (reference: no slices, time_bucket){_whole(sql)}")
            print(f"  same result as kit       : {_verdict(compare(kit['parquet'], sql['parquet']))}")
        if not args.skip_pandas:
            pan = _child("pandas", args, db, tmp)
            print(f"pandas groupby + quantile  : {pan['seconds']:7.2f} s  peak RSS "
                  f"{pan['peak_bytes'] / mib:6.0f} MiB  (load not timed; RSS includes the loaded frame){_whole(pan)}")
            print(f"  same result as kit       : {_verdict(compare(kit['parquet'], pan['parquet']))}")
            print(f"ratio time   pandas / kit  : {pan['seconds'] / kit['seconds']:5.1f}x")
            print(f"ratio memory pandas / kit  : {pan['peak_bytes'] / kit['peak_bytes']:5.1f}x")
        if args.rows >= 50_000_000 and not args.memory_limit:
            ok = kit["seconds"] <= 5 and kit["peak_bytes"] <= 1e9
            print(f"issue target (<= 5 s, <= 1 GB at 50M rows): {'met' if ok else 'NOT met'}")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


def _whole(result: dict) -> str:
    return f"; process peak {result['process_peak_rss_bytes'] / 2**20:,.0f} MiB"


def _verdict(diff: tuple[int, int, int, float]) -> str:
    only_a, only_b, counts, rel = diff
    ok = only_a == only_b == counts == 0 and rel <= 1e-9
    return (f"{'yes' if ok else 'NO'} (groups missing {only_a}/{only_b}, count mismatches {counts}, "
            f"max relative quantile difference {rel:.1e})")


if __name__ == "__main__":
    sys.exit(main())
