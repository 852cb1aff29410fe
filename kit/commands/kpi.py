"""``perfkit kpi --db PATH [--by service|route] [--bucket 1m] [--json]``: RED, Apdex and throughput
over the window, as a table or JSON (the same functions notebook 10 calls)."""

from __future__ import annotations

import argparse
import functools
import json
import sys

from kit import fmt
from kit.config import DEFAULT_DB
from kit.errors import ParameterError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "kpi", help="RED + Apdex per service or route over a window (table or JSON)",
        description="Request rate, 5xx and 4xx error rates, latency p50/p90/p95/p99/p99.9 (exact "
                    "quantile_cont; above --exact-max-rows requests, from a log-spaced histogram within 0.5 % "
                    "of the exact value), Apdex and availability per service or route over [--start, --end). "
                    "With --bucket, one row per group and time bucket with p50/p95/p99, always exact "
                    "(quantile_cont, computed in time slices at any size). The output names the method used.")
    parser.add_argument("--db", metavar="PATH", default=DEFAULT_DB, help="warehouse (default: %(default)s)")
    parser.add_argument("--by", choices=("service", "route", "all"), default="service",
                        help="group rows by service, route or not at all (default: %(default)s)")
    parser.add_argument("--bucket", metavar="SPEC", help="time bucket such as 1m, 5m, 1h: one row per bucket")
    parser.add_argument("--start", metavar="ISO", help="first instant (inclusive, UTC); default: first request")
    parser.add_argument("--end", metavar="ISO", help="end of the window (exclusive, UTC); default: after the last")
    parser.add_argument("--service", metavar="NAME", action="append", dest="services",
                        help="restrict to a service (repeatable)")
    parser.add_argument("--apdex-t-ms", type=float, default=300.0, help="Apdex threshold T in ms (default: 300)")
    parser.add_argument("--limit", type=int, default=50, help="rows printed in table mode (default: 50)")
    parser.add_argument("--exact-max-rows", type=int, default=None,
                        help="above this many requests the whole-window percentiles come from a log-spaced "
                             "histogram (relative error at most 0.5 %%) instead of exact quantile_cont; "
                             "per-bucket rows (--bucket) stay exact (default: 20,000,000)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_kpi)


def _kpi(args: argparse.Namespace) -> int:
    import pandas as pd

    from kit.analysis import kpis
    from kit.analysis.coverage import NEEDS
    from kit.analysis.kpis.sql import request_count
    from kit.analysis.window import resolve_window
    from kit.config import bucket_seconds
    from kit.results import to_jsonable
    from kit.warehouse import connect

    if args.apdex_t_ms <= 0:
        raise ParameterError("--apdex-t-ms must be > 0")
    if args.bucket:
        bucket_seconds(args.bucket)
    con = connect(args.db, read_only=True)
    try:
        window = resolve_window(con, args.start, args.end, args.services)
        n = request_count(con, window, args.services)
        qfunc = kpis.quantile_function(n, args.exact_max_rows or kpis.EXACT_MAX_ROWS)
        by = None if args.by == "all" else args.by
        common = {"services": args.services, "apdex_t_ms": args.apdex_t_ms, "qfunc": qfunc}
        if args.bucket:
            rows: tuple = kpis.red_series(con, window, args.bucket, by, **common)
            qfunc = kpis.series_quantile_function(qfunc)  # what the per-bucket percentiles used
        else:
            rows = kpis.red_table(con, window, by, **common)
        tput = kpis.throughput(con, window, services=args.services)
    finally:
        con.close()
    payload = {"window_start": window.start, "window_end": window.end, "requests": n,
               "quantile_function": qfunc, "apdex_t_ms": args.apdex_t_ms, "by": args.by,
               "bucket": args.bucket, "throughput": tput, "rows": rows}
    if args.json:
        json.dump(to_jsonable(payload), sys.stdout, indent=2, ensure_ascii=False, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    df = pd.DataFrame(to_jsonable(list(rows)))
    print(f"window {window.label()}  requests {fmt.count(n)}  percentiles: {qfunc}  "
          f"Apdex T={fmt.num(args.apdex_t_ms)} ms")
    print(f"throughput: mean {fmt.num(tput.mean_rps)} req/s, sustained (p95 of 1-min) "
          f"{fmt.num(tput.sustained_rps_p95_1m)}, peak 1-min {fmt.num(tput.peak_rps_1m)}")
    if df.empty:
        print("(no rows)" if n else NEEDS["requests"].sentence())
        return 0
    if df.get("p50_ms") is not None and df["p50_ms"].isna().all():
        print(NEEDS["latency"].sentence())
    columns = [c for c in ("bucket_start", "group", "service", "requests", "rate_rps", "error_rate_5xx",
                           "error_rate_4xx", "apdex", "p50_ms", "p95_ms", "p99_ms", "p999_ms")
               if c in df and df[c].notna().any()]
    shown = {c: fmt.count if c == "requests" else functools.partial(fmt.pct, digits=3)
             if c.startswith("error_rate") else functools.partial(fmt.num, digits=4)
             for c in columns if c not in ("bucket_start", "group", "service")}
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df[columns].head(args.limit).to_string(index=False, formatters=shown))
    if len(df) > args.limit:
        print(f"... {fmt.count(len(df) - args.limit)} more rows (use --limit or --json)")
    return 0
