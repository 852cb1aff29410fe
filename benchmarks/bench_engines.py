"""Benchmark: the same analyses on three engine/storage pairs, side by side.

On one DuckDB warehouse file (``--db``, or one generated with ``optimizations_synth.py --requests N``),
converted once into a Parquet warehouse with ``kit.ingest.parquet.convert`` (``perfkit convert``; or
``--parquet`` an existing one), this times:

  (a) DuckDB on its own file                  ``kit.warehouse.connect(db)``
  (b) DuckDB on the Parquet warehouse         ``kit.warehouse.connect(root)``: views over the committed files
  (c) Spark on the Parquet warehouse          ``SparkEngine(committed_files(root), master=local[2])``; the
                                              light queries (window, coverage) stay on (b)'s DuckDB views

each running (1) the per-route per-minute KPI query, ``kit.analysis.kpis.latency_series_frame(con, window,
"1m", "route")`` (exact ``quantile_cont`` in time slices, as ``bench_kpis.py``), and (2) one heavier
analysis with the engine (``--analysis``: ``find_bottlenecks``, the findings from their bucketed series, or
``kpi_report``, the whole KPI report at 5 minutes, or ``run``, a whole ``perfkit run`` of notebooks 00 to 90,
one notebook at a time, with ``engine: spark`` for (c): seconds per notebook and CPU seconds of the run's
finished process tree, kernels and Spark JVMs included). Spark's session start (JVM, SparkSession, one view
per table) is timed apart and not in its query times; in a run each notebook's includes its own.

Every pair runs in its own subprocess, one after the other (never two at once), with ``--timeout`` seconds
each; a pair that runs out of time is killed and reported as such. Per step: wall seconds, CPU seconds
of the process tree (Python + DuckDB threads, or Python + the Spark JVM; from psutil, so
``cpu / wall`` is the cores actually used) and the peak RSS of the process tree (sampled every 50 ms).
Ratios are against (a), measured in the same run. The per-route per-minute results of (b) and (c) are
compared with (a): same (route, minute) groups, same counts, quantiles equal to 1e-9 relative.
On-disk sizes: the DuckDB file, the Parquet warehouse, and its ``requests`` files per row.

The issue's bar: (b) <= 2x (a) for the KPI query.

    .venv/bin/python benchmarks/bench_engines.py --rows 200000 --timeout 300      # tiny, ~1 min
    .venv/bin/python benchmarks/bench_engines.py --db /tmp/w10m.duckdb --parquet /tmp/w10m.parquet
    .venv/bin/python benchmarks/bench_engines.py --db W.duckdb --parquet W.parquet --analysis kpi_report
    .venv/bin/python benchmarks/bench_engines.py --db data/demo.duckdb --analysis run     # whole runs, ~15 min
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _measure import measure

PAIRS = {
    "a": "DuckDB on its own file",
    "b": "DuckDB on the Parquet warehouse",
    "c": "Spark local[2] on the Parquet warehouse",
}


def _tree_cpu() -> float:
    """User + system CPU seconds of this process and its live children (the Spark JVM is one)."""
    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class _Step:
    """Wall and tree-CPU seconds of the ``with`` block."""

    def __enter__(self) -> _Step:
        self.cpu0, self.t0 = _tree_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = _tree_cpu() - self.cpu0

    def json(self) -> dict:
        return {"wall_s": self.wall, "cpu_s": self.cpu}


def run_pair(pair: str, db: str, root: str, out: str, threads: int, analysis: str, master: str,
             memory_limit: str | None) -> dict:
    """One engine/storage pair in this process: the KPI query (its frame written to ``out``), then ``analysis``."""
    from kit.analysis.kpis import kpi_report
    from kit.analysis.kpis.red import latency_series_frame
    from kit.analysis.window import resolve_window
    from kit.engine import DuckDBEngine, Engine, SparkEngine, spark_session
    from kit.parquet_warehouse import committed_files
    from kit.warehouse import connect

    result: dict = {}
    con = connect(db if pair == "a" else root, read_only=True, threads=threads, memory_limit=memory_limit)
    con.execute("SET enable_progress_bar = false")
    engine: Engine
    if pair == "c":
        with _Step() as start:
            spark_session(master)
            engine = SparkEngine(committed_files(root), master=master)
        result["session"] = start.json()
    else:
        engine = DuckDBEngine(con)
    window = resolve_window(con)
    with _Step() as kpi:
        frame = latency_series_frame(engine, window, "1m", "route")
    result["kpi"] = {**kpi.json(), "groups": len(frame), "requests": int(frame["requests"].sum())}
    frame[["bucket_start", "group", "requests", "p50_ms", "p95_ms", "p99_ms"]].to_parquet(out)
    del frame
    if analysis == "run":   # the run's notebooks start their own engines: free this one's cores and memory
        con.close()
        if pair == "c":
            spark_session(master).stop()
        result["analysis"] = whole_run(pair, db if pair == "a" else root, Path(out).with_suffix(".run"), master)
        return result
    with _Step() as heavy:
        if analysis == "find_bottlenecks":
            from kit.analysis.findings import find_bottlenecks

            found = find_bottlenecks(con, window, engine=engine)
            summary = f"{len(found.items)} findings, buckets of {found.bucket_s} s"
        else:
            report = kpi_report(con, bucket="5m", engine=engine)
            summary = f"{len(report.by_route)} routes, percentiles {report.quantile_method.split(':')[0]}"
    result["analysis"] = {**heavy.json(), "summary": summary}
    return result


def whole_run(pair: str, warehouse: str, out: Path, master: str) -> dict:
    """``perfkit run`` of every notebook on ``warehouse`` (Spark for pair c), one notebook at a time
    (``--workers 1``, so each notebook's time is its own): wall seconds, CPU seconds of its process tree
    (kernels and Spark JVMs included, sampled by :func:`_measure.measure`) and the run's seconds per notebook."""
    params = out.with_suffix(".yml")
    engine = f"engine: spark\nspark: {{master: '{master}', options: {{}}}}\n" if pair == "c" else ""
    params.write_text(f"title: bench\n{engine}")
    cmd = [sys.executable, "-m", "kit.cli", "run", "--db", warehouse, "--params", str(params), "--out", str(out),
           "--workers", "1", "--quiet"]
    run = measure(cmd, 0.1, pss=False, quiet=True)
    if run.returncode != 0:
        raise subprocess.CalledProcessError(run.returncode, cmd)
    manifest = json.loads(next((out / "runs").iterdir()).joinpath("manifest.json").read_text())
    notebooks = {t["name"]: t["execute_s"] + t["export_s"] for t in manifest["timings"]}
    return {"wall_s": run.seconds, "cpu_s": run.cpu_seconds, "notebooks_s": notebooks,
            "summary": ", ".join(f"{name[:2]} {s:.0f} s" for name, s in notebooks.items())}


def _child(pair: str, args: argparse.Namespace, db: Path, root: Path, tmp: Path) -> dict:
    """Run one pair in a subprocess with a timeout; its JSON plus the sampled peak RSS of its process tree."""
    out, meta = tmp / f"{pair}.parquet", tmp / f"{pair}.json"
    cmd = [sys.executable, __file__, "--pair", pair, "--db", str(db), "--parquet", str(root), "--out", str(out),
           "--meta", str(meta), "--threads", str(args.threads), "--analysis", args.analysis, "--master", args.master]
    if args.memory_limit:
        cmd += ["--memory-limit", args.memory_limit]
    run = measure(cmd, 0.05, timeout_s=args.timeout, pss=False)
    if run.timed_out:
        return {"timeout": True, "wall_s": run.seconds}
    if run.returncode != 0:
        return {"failed": run.returncode, "wall_s": run.seconds}
    result = json.loads(meta.read_text())
    result.update(peak_rss_bytes=run.peak_bytes, process_wall_s=run.seconds, parquet=str(out))
    return result


def compare(a: str, b: str) -> str:
    """Whether two per-route per-minute results agree: groups, counts, quantiles to 1e-9 relative."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    only_a, only_b, counts, rel = con.execute(f"""
        SELECT count(*) FILTER (WHERE b."group" IS NULL), count(*) FILTER (WHERE a."group" IS NULL),
               count(*) FILTER (WHERE a.requests <> b.requests),
               max(greatest(abs(a.p50_ms - b.p50_ms) / b.p50_ms, abs(a.p95_ms - b.p95_ms) / b.p95_ms,
                            abs(a.p99_ms - b.p99_ms) / b.p99_ms))
        FROM read_parquet('{a}') a FULL JOIN read_parquet('{b}') b
          ON a."group" = b."group" AND a.bucket_start = b.bucket_start""").fetchall()[0]
    rel = float(rel or 0.0)
    ok = only_a == only_b == counts == 0 and rel <= 1e-9
    return (f"{'same' if ok else 'DIFFERENT'} (groups missing {only_a}/{only_b}, count mismatches {counts}, "
            f"max relative quantile difference {rel:.1e})")


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="DuckDB warehouse file to read (read-only); default: generate one (--rows)")
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="without --db: requests to generate with optimizations_synth.py (default 1M; "
                             "queries rows = rows / 10)")
    parser.add_argument("--parquet", help="Parquet warehouse: used as it is if it exists, else converted from --db "
                                          "and kept; default: a temporary one, deleted afterwards")
    parser.add_argument("--analysis", choices=("find_bottlenecks", "kpi_report", "run"),
                        default="find_bottlenecks",
                        help="the heavier analysis timed after the KPI query (default find_bottlenecks; run: a "
                             "whole `perfkit run`, one notebook at a time, seconds per notebook)")
    parser.add_argument("--pairs", default="abc", help="which of a, b, c to run (default abc)")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
    parser.add_argument("--memory-limit", help="DuckDB memory_limit, e.g. 4GB (default DuckDB's)")
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pair before it is killed "
                                                                    "(default 1800)")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    parser.add_argument("--pair", choices=tuple(PAIRS), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--meta", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pair:
        result = run_pair(args.pair, args.db, args.parquet, args.out, args.threads, args.analysis, args.master,
                          args.memory_limit)
        Path(args.meta).write_text(json.dumps(result))
        return 0

    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (cpu count {os.cpu_count()}, "
          f"DuckDB threads {args.threads}, Spark {args.master})")
    report: dict = {"load_before": load, "cpu_count": os.cpu_count(), "threads": args.threads,
                    "master": args.master, "analysis": args.analysis}
    with tempfile.TemporaryDirectory(prefix="bench_engines_") as tmp_name:
        tmp = Path(tmp_name)
        if args.db:
            db = Path(args.db)
        else:
            db = tmp / "bench.duckdb"
            t = time.perf_counter()
            subprocess.run([sys.executable, str(Path(__file__).with_name("optimizations_synth.py")), str(db),
                            "--requests", str(args.rows), "--queries", str(max(1, args.rows // 10)),
                            "--threads", str(args.threads)], check=True, stdout=subprocess.DEVNULL)
            print(f"generated {args.rows:,} requests (30 days) in {time.perf_counter() - t:.1f} s (not timed)")
        root = Path(args.parquet) if args.parquet else tmp / "parquet"
        if not (root / "perfkit-warehouse.json").exists():
            from kit.ingest.parquet import convert

            t = time.perf_counter()
            sources = convert(db, root)
            report["convert_s"] = time.perf_counter() - t
            print(f"converted {sources} sources to the Parquet warehouse {root} in {report['convert_s']:.1f} s")
        import duckdb

        con = duckdb.connect(str(db), read_only=True)
        rows = int(con.execute("SELECT count(*) FROM requests").fetchone()[0])  # type: ignore[index]
        con.close()
        sizes = {"duckdb_file": db.stat().st_size, "parquet_warehouse": dir_bytes(root),
                 "parquet_requests": dir_bytes(root / "requests"),
                 "parquet_requests_files": sum(1 for _ in (root / "requests").rglob("*.parquet"))}
        report.update(rows=rows, sizes=sizes)
        gib = 2**30
        print(f"requests: {rows:,} rows")
        print(f"on disk : DuckDB file {sizes['duckdb_file'] / gib:.3f} GiB; Parquet warehouse "
              f"{sizes['parquet_warehouse'] / gib:.3f} GiB, of which requests "
              f"{sizes['parquet_requests'] / gib:.3f} GiB in {sizes['parquet_requests_files']} files = "
              f"{sizes['parquet_requests'] / rows:.1f} bytes/request")

        results: dict[str, dict] = {}
        for pair in args.pairs:
            print(f"running ({pair}) {PAIRS[pair]} ...", flush=True)
            results[pair] = _child(pair, args, db, root, tmp)
        report["pairs"] = results

        base = results.get("a", {})
        print(f"\n{'':44}{'KPI query':>22}{args.analysis:>26}{'peak RSS':>11}")
        print(f"{'':44}{'wall   cpu  ratio':>22}{'wall   cpu  ratio':>26}")
        for pair, r in results.items():
            if "timeout" in r or "failed" in r:
                what = (f"killed after the {args.timeout:.0f} s timeout" if "timeout" in r
                        else f"failed (exit {r['failed']})")
                print(f"({pair}) {PAIRS[pair]:40}{what}")
                continue
            cells = []
            for step in ("kpi", "analysis"):
                ratio = f"{r[step]['wall_s'] / base[step]['wall_s']:5.2f}x" if step in base else "    -"
                cells.append(f"{r[step]['wall_s']:7.2f}{r[step]['cpu_s']:7.1f} {ratio}")
            print(f"({pair}) {PAIRS[pair]:40}{cells[0]:>22}{cells[1]:>26}{r['peak_rss_bytes'] / gib:8.2f} GiB")
            if "session" in r:
                print(f"    Spark session start (JVM, SparkSession, views): {r['session']['wall_s']:.2f} s wall, "
                      f"{r['session']['cpu_s']:.1f} s CPU (not in the times above)")
            print(f"    {r['kpi']['groups']:,} route-minutes; {args.analysis}: {r['analysis']['summary']}")
            if pair != "a" and base.get("parquet"):
                print(f"    per-route per-minute result vs (a): {compare(r['parquet'], base['parquet'])}")
        if "kpi" in base and "kpi" in results.get("b", {}):
            ratio = results["b"]["kpi"]["wall_s"] / base["kpi"]["wall_s"]
            report["b_over_a"] = ratio
            print(f"\nissue bar, KPI query (b) <= 2x (a): {ratio:.2f}x {'met' if ratio <= 2 else 'NOT met'}")
    load = os.getloadavg()
    report["load_after"] = load
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        for r in report["pairs"].values():
            r.pop("parquet", None)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
