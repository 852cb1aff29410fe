"""``perfkit run`` (execute the notebooks, write reports and documents) and ``perfkit params``."""

from __future__ import annotations

import argparse
import sys

from kit import fmt
from kit.config import DEFAULT_OUT


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run", help="run the notebooks headlessly and write reports, results and the strategy documents",
        description="Execute notebooks 00..90 in order with papermill. Outputs are staged and swapped into "
                    "OUT/runs/<run_id> only when every notebook succeeds; OUT/latest, OUT/reports and "
                    "OUT/strategy point at the newest successful run.")
    run.add_argument("--params", metavar="FILE", help="YAML parameters file (see `perfkit params`)")
    run.add_argument("--db", metavar="PATH", help="warehouse to analyse (overrides the parameters file)")
    run.add_argument("--out", metavar="DIR", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    run.add_argument("--only", metavar="NAME", nargs="+",
                     help="run only these notebooks (names or prefixes such as 10 or kpis)")
    run.add_argument("--workers", type=int, default=2, metavar="N",
                     help="analysis notebooks executed at once, each in its own kernel (default: 2)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    params = subparsers.add_parser("params", help="print the default parameters file, every parameter explained")
    params.set_defaults(func=_params)


def _run(args: argparse.Namespace) -> int:
    from kit.config import RunConfig
    from kit.runner import NotebookFailed, export_notices, run

    config = RunConfig.load(args.params, db=args.db)
    try:
        result = run(config, out_dir=args.out, only=args.only, progress=not args.quiet, workers=args.workers)
    except NotebookFailed as exc:
        print(f"perfkit: run failed: {exc}", file=sys.stderr)
        print("perfkit: previous outputs were left intact", file=sys.stderr)
        return 1
    for t in result.timings:
        print(f"  {t.name:<22} execute {fmt.seconds(t.execute_s):>8}   export {fmt.seconds(t.export_s):>7}")
    print(f"run {result.run_id} done in {fmt.seconds(result.seconds)} -> {result.run_dir}")
    print(f"  start here: {args.out}/reports/index.html")
    print(f"  reports:  {args.out}/reports/   documents: {args.out}/strategy/")
    for notice in export_notices(result):
        print(f"  note: {notice}")
    return 0


def _params(args: argparse.Namespace) -> int:
    from kit.config import defaults_yaml

    sys.stdout.write(defaults_yaml())
    return 0
