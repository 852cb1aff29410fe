"""``perfkit slo rules`` (spec file in, Prometheus rules and promtool test file out) and
``perfkit slo backtest`` (replay the alert policies over a warehouse)."""

from __future__ import annotations

import argparse
import json
import sys

from kit import fmt
from kit.errors import InputNotFoundError, ParameterError, SloSpecError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("slo", help="SLO alert rules and their backtest")
    sub = parser.add_subparsers(title="slo commands", metavar="SUBCOMMAND")
    rules = sub.add_parser("rules", help="Sloth or OpenSLO spec -> Prometheus rule file + promtool test file")
    rules.add_argument("--spec", required=True, help="Sloth prometheus/v1 or OpenSLO v1alpha/v1 YAML file")
    rules.add_argument("--out", required=True, help="rule file to write; the test file is written next to it")
    rules.add_argument("--period-days", type=float, default=None, help="SLO period for Sloth specs (default 30)")
    rules.add_argument("--min-bad-events", type=int, default=None,
                       help="minimum-traffic guard: bad events a window pair needs before it fires (default off)")
    rules.add_argument("--windows", default=None,
                       help="Sloth AlertWindows YAML (default: Google's windows for the period)")
    rules.add_argument("--no-promtool", action="store_true", help="do not run promtool check/test afterwards")
    rules.set_defaults(func=_rules)
    back = sub.add_parser("backtest", help="replay the alert policies over a warehouse's history")
    back.add_argument("--db", help="DuckDB warehouse (required unless --nab is given)")
    back.add_argument("--nab", metavar="DIR", help="also score the policies on a NAB checkout (data/, labels/)")
    back.add_argument("--window-days", type=float, default=30.0, help="SLO window in days")
    back.add_argument("--json", action="store_true", help="print the full result as JSON")
    back.set_defaults(func=_backtest)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _rules(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kit.analysis.slo import load_slo_specs, write_rule_files
    from kit.analysis.slo.alerts import alert_plan, load_alert_windows

    for name in (args.spec, args.windows):
        if name and not Path(name).is_file():
            raise InputNotFoundError(f"no such file: {name}")
    if args.period_days is not None and args.period_days <= 0:
        raise ParameterError(f"--period-days must be > 0, got {args.period_days:g}")
    specs = load_slo_specs(args.spec, period_days=args.period_days)
    if not specs:
        raise SloSpecError(f"{args.spec}: no SLOs found")
    windows = load_alert_windows(args.windows) if args.windows else None
    plan = alert_plan(specs, min_bad_events=args.min_bad_events, windows=windows)
    out = Path(args.out)
    result = write_rule_files(out.parent, specs, plan, rules_name=out.name, run_promtool=not args.no_promtool)
    print(f"wrote {result['rules_file']} ({len(specs)} SLOs, {len(plan.rules)} alerts)")
    print(f"wrote {result['rules_test_file']}")
    status = 0
    for key in ("check", "test"):
        verdict = result.get(key)
        if verdict and verdict["ok"] is False:
            print(f"promtool {key} FAILED:\n{verdict['output']}", file=sys.stderr)
            status = 1
        elif verdict and verdict["ok"]:
            print(f"promtool {key}: ok")
    return status


def _backtest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kit.analysis.slo import slo_report
    from kit.analysis.slo.backtest import nab_score
    from kit.results import dumps, to_jsonable
    from kit.warehouse import connect

    if args.nab and not (Path(args.nab) / "labels" / "combined_windows.json").is_file():
        raise InputNotFoundError(f"{args.nab}: not a NAB checkout (no labels/combined_windows.json)")
    nab = nab_score(args.nab) if args.nab else None
    if not args.db:
        if nab is None:
            raise ParameterError("give --db PATH (and/or --nab DIR)")
        print(json.dumps(to_jsonable(nab), indent=2) if args.json else _nab_table(nab))
        return 0
    con = connect(args.db, read_only=True)
    try:
        report, _, _ = slo_report(con, slo_window_days=args.window_days)
    finally:
        con.close()
    bt = report.backtest
    if args.json:
        data = json.loads(dumps(bt))
        data.pop("timeline", None)
        if nab is not None:
            data["nab"] = to_jsonable(nab)
        print(json.dumps(data, indent=2))
        return 0
    print(f"{fmt.num(bt.weeks)} weeks at {fmt.duration(bt.resolution_s)} resolution; "
          f"chosen policy: {bt.chosen_policy}")
    print(f"{'policy':<18}{'episodes':>9}{'per week':>10}{'precision':>11}{'recall':>8}{'delay':>10}{'reset':>10}")
    for p in bt.policies:
        print(f"{p.policy:<18}{fmt.count(p.episodes):>9}{fmt.num(p.per_week):>10}{_ratio(p.precision):>11}"
              f"{_ratio(p.recall):>8}{fmt.duration(p.mean_delay_s):>10}{fmt.duration(p.mean_reset_s):>10}")
    for inc in bt.incidents:
        caught = f"{inc.alert} after {fmt.duration(inc.delay_s)}" if inc.detected and inc.delay_s is not None \
            else "not caught"
        print(f"  {fmt.timestamp(inc.ts_start)} {inc.type or '':<20} {inc.slo or '':<32} "
              f"budget {_ratio(inc.budget_consumed_ratio):>7}  {caught}")
    if nab is not None:
        print(_nab_table(nab))
    return 0


def _ratio(value: float | None) -> str:
    """A precision, recall or budget share as the SLO document prints it (3 significant digits)."""
    return fmt.pct(value, 3, significant=True)


def _nab_table(nab: object) -> str:
    lines = [f"NAB ({getattr(nab, 'method', '')})",
             f"{'policy':<14}{'windows':>8}{'detected':>9}{'recall':>8}{'false ep.':>10}{'precision':>10}"]
    for p in getattr(nab, "policies", ()):
        lines.append(f"{p['policy']:<14}{fmt.count(p['label_windows']):>8}{fmt.count(p['detected']):>9}"
                     f"{_ratio(p['recall']):>8}{fmt.count(p['false_episodes']):>10}{_ratio(p['precision']):>10}")
    return "\n".join(lines)
