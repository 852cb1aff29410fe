"""Benchmark: the optimization analyses (``kit.analysis.optimizations.optimization_opportunities``) against
the per-route per-minute KPI query on the same 30-day warehouse.

Issue #12's target: on a 30-day warehouse with 100M requests and 10M query-log entries the analyses finish in
at most 2x the time of ``kit.analysis.kpis.latency_series_frame(con, window, "1m", "route")`` (the KPI query
``bench_kpis.py`` and ``bench_findings.py`` time). The warehouse is ``benchmarks/optimizations_synth.py``
(requests as ``findings_synth``, query snapshots and events, static assets with content, profiles); it is
generated first (not timed), ending as ``perfkit ingest`` ends: with the per-day rollup of the grouped requests
(``kit.analysis.request_groups.refresh_rollup``), whose seconds are printed. One more analyses run with the
rollup ignored is printed as information (what a Parquet warehouse, or a rollup out of date, costs). Both
are timed in the same process on the same read-only connection, best of ``--repeat`` alternating runs, and
the ratio is printed. The target is judged only at the issue's scale
(``--requests`` >= 100M); smaller warehouses print the ratio as information (a fixed cost, such as
compressing the assets at brotli 11, weighs more there).

Beside the total, each area's seconds within the same call are printed (the grouped pass over the requests
that the per-route traffic, compression and CDN share, the per-route traffic from it, the database,
compression, CDN and code-profile analyses, the checks for rows; "other" is the ranking) with the process's
peak resident memory while it ran (psutil, sampled every 50 ms; a sample counts for every area running), from
the fastest run. The database analysis runs in a thread beside all the other areas, so its seconds overlap
theirs; "other" is the total less the calling thread's areas and the database's time beyond theirs. DuckDB
runs with
``--memory-limit`` (default 8GB) so that the machine's other work keeps its memory.

    .venv/bin/python benchmarks/bench_optimizations.py            # small: 10M requests, 1M queries rows (minutes)
    .venv/bin/python benchmarks/bench_optimizations.py --full     # the issue's 100M / 10M (~25 GB of disk, long)
    .venv/bin/python benchmarks/bench_optimizations.py --db PATH  # time an existing warehouse (kept)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import optimizations_synth as synth  # noqa: E402

TARGET_RATIO = 2.0
TARGET_REQUESTS = synth.FULL[0]   # the target is judged at this size (issue #12)


# The functions optimization_opportunities calls, timed one by one (the names in its module).
AREAS = {"build_request_groups": "grouped requests (shared by traffic, compression, CDN)",
         "route_traffic": "requests per route (totals, route counts)", "window_totals": "window totals",
         "_has_rows": "rows in the window (queries, profiles)",
         "analyse_database": "database (in a thread beside the others)",
         "analyse_compression": "compression", "analyse_cdn": "CDN", "analyse_profiles": "code profiles"}


@dataclass
class AreaTimes:
    """Seconds and peak resident bytes per area (``AREAS``' keys; ``other`` is the rest of the call)."""

    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)


class _RssSampler:
    """Samples this process's resident memory every ``interval_s`` in a thread, keeping the peak per label."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.active: list[str] = []   # the areas running (several at once: the database runs in a thread)
        self.peaks: dict[str, int] = {}
        self._interval = interval_s
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = int(self._proc.memory_info().rss)
            for label in list(self.active) or ["other"]:
                self.peaks[label] = max(self.peaks.get(label, 0), rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def _timed_areas(sampler: _RssSampler, times: AreaTimes) -> Iterator[None]:
    """Wrap the area functions in kit.analysis.optimizations so that each call adds its seconds to ``times``."""
    from kit.analysis import optimizations

    saved = {name: getattr(optimizations, name) for name in AREAS if hasattr(optimizations, name)}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            sampler.active.append(name)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times.seconds[name] = times.seconds.get(name, 0.0) + time.perf_counter() - t
                sampler.active.remove(name)
        return timed

    for name, fn in saved.items():
        setattr(optimizations, name, wrap(name, fn))
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(optimizations, name, fn)


BESIDE_DATABASE = tuple(a for a in AREAS if a != "analyse_database")   # run while the database's thread does


def calling_thread_seconds(seconds: dict[str, float]) -> float:
    """The areas' share of the call's wall time: the calling thread's areas, and the database's seconds
    beyond the areas it runs beside."""
    mine = sum(v for k, v in seconds.items() if k != "analyse_database")
    return mine + max(0.0, seconds.get("analyse_database", 0.0) - sum(seconds.get(k, 0.0) for k in BESIDE_DATABASE))


@contextmanager
def _without_rollup() -> Iterator[None]:
    """Within the block the grouped pass finds no rollup (as in a Parquet warehouse, or after an ingest that
    did not refresh it) and groups every request of the window."""
    from kit.analysis import request_groups

    held = request_groups.rollup_days
    request_groups.rollup_days = lambda con, window: None  # type: ignore[assignment]
    try:
        yield
    finally:
        request_groups.rollup_days = held


def rollup_state(path: Path) -> str:
    """What the warehouse's per-day rollup holds, in words."""
    from kit.analysis.request_groups import rollup_days
    from kit.analysis.window import resolve_window
    from kit.warehouse import connect

    con = connect(path, read_only=True)
    try:
        days = rollup_days(con, resolve_window(con))
    finally:
        con.close()
    return ("none or out of date: the grouped pass scans every request" if days is None
            else f"{len(days)} whole days of the window held")


def time_both(path: Path, repeat: int, threads: int, memory_limit: str
              ) -> tuple[float, float, int, int, int, AreaTimes, int, float]:
    """Best-of-``repeat`` seconds of the KPI query and of the analyses (alternating), with the route-minutes,
    the opportunities ranked, the requests in the warehouse, the per-area times of the fastest analyses run,
    the peak resident bytes of the KPI query and the seconds of one more analyses run without the per-day
    rollup (information: what a Parquet warehouse or an out-of-date rollup costs)."""
    from kit.analysis import kpis
    from kit.analysis.optimizations import optimization_opportunities
    from kit.analysis.window import resolve_window
    from kit.warehouse import connect

    con = connect(path, read_only=True, threads=threads, memory_limit=memory_limit)
    con.execute("SET enable_progress_bar = false")
    try:
        window = resolve_window(con)
        requests = int(con.execute("SELECT count(*) FROM requests").fetchall()[0][0])
        kpi_s, mine_s = [], []
        groups = ranked = kpi_rss = 0
        best: AreaTimes | None = None
        for _ in range(repeat):
            with _RssSampler() as sampler:
                sampler.active.append("kpi")
                t = time.perf_counter()
                groups = len(kpis.latency_series_frame(con, window, "1m", "route"))
                kpi_s.append(time.perf_counter() - t)
            kpi_rss = max(kpi_rss, sampler.peaks.get("kpi", 0))
            times = AreaTimes()
            with _RssSampler() as sampler, _timed_areas(sampler, times):
                t = time.perf_counter()
                ranked = len(optimization_opportunities(con, window).ranking)
                mine_s.append(time.perf_counter() - t)
            times.seconds["other"] = mine_s[-1] - calling_thread_seconds(times.seconds)
            times.peak_rss.update(sampler.peaks)
            if mine_s[-1] == min(mine_s):
                best = times
        with _without_rollup():
            t = time.perf_counter()
            optimization_opportunities(con, window)
            raw_s = time.perf_counter() - t
    finally:
        con.close()
    return min(kpi_s), min(mine_s), groups, ranked, requests, best or AreaTimes(), kpi_rss, raw_s


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=synth.SMALL[0], help="requests (default 10M)")
    parser.add_argument("--queries", type=int, default=synth.SMALL[1], help="queries rows (default 1M)")
    parser.add_argument("--small", action="store_true",
                        help=f"{synth.SMALL[0]:,} requests and {synth.SMALL[1]:,} queries rows (the default)")
    parser.add_argument("--full", action="store_true",
                        help=f"the issue's scale: {synth.FULL[0]:,} requests and {synth.FULL[1]:,} queries rows")
    parser.add_argument("--db", help="time this existing warehouse instead of generating one")
    parser.add_argument("--repeat", type=int, default=2, help="alternating timed runs (best of; default 2)")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
    parser.add_argument("--memory-limit", default="8GB", help="DuckDB memory_limit of the timed connection "
                                                                 "(default 8GB)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tmp", help="directory for the generated warehouse (default: a temporary one)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the judged target FAILs")
    args = parser.parse_args(argv)
    if args.small:
        args.requests, args.queries = synth.SMALL
    if args.full:
        args.requests, args.queries = synth.FULL
    load = os.getloadavg()
    print(f"bench_optimizations: load average {load[0]:.2f} (cpu count {os.cpu_count()}); DuckDB threads "
          f"{args.threads}")
    with tempfile.TemporaryDirectory(prefix="bench_optimizations_", dir=args.tmp) as tmp:
        if args.db:
            path = Path(args.db)
            print(f"warehouse: {path} (existing)")
        else:
            w = synth.generate(Path(tmp) / "optimizations.duckdb", requests=args.requests, queries=args.queries,
                               seed=args.seed, threads=args.threads)
            path = w.path
            print(f"warehouse: {w.requests:,} requests over {synth.DAYS} days, {w.queries:,} queries rows "
                  f"({w.query_events:,} events, {w.query_snapshots:,} snapshots), {w.assets} assets, "
                  f"{w.profile_rows:,} profile rows; generated in {w.seconds:.0f} s, "
                  f"{path.stat().st_size / 2**20:,.0f} MiB (not timed), of which {w.rollup_seconds:.1f} s the "
                  "per-day rollup of the grouped requests (what `perfkit ingest` adds after loading)")
        print(f"request rollup: {rollup_state(path)}")
        base, mine, groups, ranked, requests, areas, kpi_rss, raw = time_both(path, args.repeat, args.threads,
                                                                               args.memory_limit)
    ratio = mine / base
    judged = requests >= TARGET_REQUESTS * 0.99
    gib = 2.0**30
    print(f"  baseline: per-route per-minute KPI query   {base:7.2f} s  ({groups:,} route-minutes)  "
          f"peak RSS {kpi_rss / gib:5.2f} GiB")
    print(f"  optimization_opportunities                 {mine:7.2f} s  ({ranked} opportunities ranked)  "
          f"peak RSS {max(areas.peak_rss.values(), default=0) / gib:5.2f} GiB")
    for name in [*AREAS, "other"]:
        if name in areas.seconds:
            label = AREAS.get(name, "other (ranking, advice)")
            print(f"    {label:<45}{areas.seconds[name]:7.2f} s  {areas.seconds[name] / base:5.2f}x KPI  "
                  + (f"peak RSS {areas.peak_rss[name] / gib:5.2f} GiB" if name in areas.peak_rss
                     else "peak RSS     - (no 50 ms sample)"))
    print(f"  without the per-day rollup (one run)       {raw:7.2f} s  {raw / base:5.2f}x KPI  (a Parquet warehouse, "
          "or a rollup out of date)")
    verdict = ("PASS" if ratio <= TARGET_RATIO else "FAIL") if judged else "not judged below 100M (--full)"
    print(f"  analyses / KPI query: {ratio:.2f}x   target <= {TARGET_RATIO:g}x at {TARGET_REQUESTS:,} requests "
          f"and 10M queries rows: {verdict}")
    return 1 if args.strict and judged and ratio > TARGET_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
