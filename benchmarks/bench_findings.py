"""Benchmark: the bottleneck detector (``kit.analysis.findings.find_bottlenecks``) scored against planted
truth, and its speed against the per-route per-minute KPI query on the same warehouse.

Five parts, each printed as target vs measured with PASS/FAIL:

1. Synthetic warehouses (``benchmarks/findings_synth.py``, one per seed; its docstring states the minimum
   effect size committed to): recall of incidents above the minimum, precision, onset error in buckets,
   cause accuracy. Only findings of confidence high or medium count (low ones are hints).
   - an incident is FOUND by a finding of an accepted kind (``ACCEPTED``), on its scope (same route; for a
     service-wide incident the service or one of its routes; for an error burst the same status or its
     class where the finding names one), overlapping its window widened by 2 buckets;
   - a finding is a TRUE positive when it overlaps (same widening) any planted incident, above the minimum or
     not, of any kind, on an overlapping scope (same service, and the same route when both name one):
     the side effects of an incident (a cache outage slows its route) are not false alarms;
   - onset error = |finding onset - planted onset| / finding bucket, for the best match of each found
     incident (planted onset = first minute of the change; the start of the ramp for gradual ones);
   - cause: the finding's top cause (``causes[0]``) has the kind of a planted cause and names its unique
     text (the event's ``what``, or the fingerprint) in ``ref`` or ``detail``; counted over every
     above-minimum incident with a planted cause (a missed incident has no right cause). A saturation has
     two planted causes, the fingerprint whose time rose and, mostly, the deploy before it: either counts.
2. A clean week (7 days, ordinary seasonality and load peaks, harmless deploys): no finding above low.
3. The demo (``kit.demo.build_demo``): 4 of 4 planted incidents found, each with its cause as top cause
   (deploy api 2.14.0; the keepalive config push; the orders-by-user query; the Vary: Cookie config push).
4. Speed: all findings on a 30-day warehouse vs ``kit.analysis.kpis.latency_series_frame(con, window, "1m",
   "route")`` (the per-route per-minute KPI query), same process, same warehouse, best of ``--repeat``
   alternating runs; the ratio is printed (target <= 3x at 100M requests).

``--detector oracle`` scores a detector that reads the truth (every line must PASS: checks the scorer) and
``--detector none`` one that finds nothing (recall 0: checks that the scorer can fail).

    .venv/bin/python benchmarks/bench_findings.py                    # small: 3 seeds x 2M requests, demo 1M,
                                                                     # speed on 30 days x 2M (a few minutes)
    .venv/bin/python benchmarks/bench_findings.py --full               # full size: 10 seeds x 7 days x 10M,
                                                                     # 100M for speed (~30 GB disk, hours)
    .venv/bin/python benchmarks/bench_findings.py --only synth --seeds 5 -v   # one part, list misses and FPs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import findings_synth as synth  # noqa: E402

ACCEPTED = {  # planted kind -> finding kinds that count as finding it
    "latency_shift": {"latency_shift"},
    "variance_change": {"variance_change", "latency_shift"},
    "error_burst": {"error_burst"},
    "throughput_change": {"throughput_change"},
    "cache_hit_drop": {"cache_hit_drop"},
    "saturation": {"saturation", "slow_query_regression", "latency_shift"},
}
COUNTED = ("high", "medium")
SERVICE_OF = {r.route: r.service for r in synth.ROUTES}
DB_ROUTES = {r.route for r in synth.ROUTES if r.db}
TARGETS = {"recall": 0.95, "precision": 0.90, "onset_buckets": 2.0, "onset_share": 1.0, "cause": 0.90,
           "speed_ratio": 3.0}


# ------------------------------------------------------------------------------------------------------
# Matching
# ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Truth:
    """What the scorer needs to know of a planted incident (synthetic or demo)."""

    kind: str
    service: str
    route: str | None
    status: int | None
    onset: datetime
    end: datetime
    above_minimum: bool = True
    causes: tuple[tuple[str, str], ...] = ()   # planted causes (kind, unique text): the top cause must be one
    label: str = ""
    routes_of_scope: frozenset[str] = frozenset()   # for service-wide incidents: the routes it touches
    day: int = 0                      # day of the history the onset falls on (0 = the first)


def _finding_scope(finding: Any) -> tuple[str | None, str | None]:
    scope = dict(finding.scope or {})
    route = scope.get("route")
    service = scope.get("service") or SERVICE_OF.get(route or "")
    return service, route


def _bucket(finding: Any) -> float:
    return float(getattr(finding, "bucket_s", 60) or 60)


def _overlaps(finding: Any, truth: Truth) -> bool:
    b = timedelta(seconds=2 * _bucket(finding))
    f_end = finding.end or finding.onset + timedelta(seconds=_bucket(finding))
    return finding.onset < truth.end + b and truth.onset - b < f_end


def _scope_found(finding: Any, truth: Truth) -> bool:
    """Strict: the finding names the incident's scope (or a route of a service-wide incident)."""
    service, route = _finding_scope(finding)
    if service is not None and service != truth.service:
        return False
    if truth.route is not None:
        if route != truth.route:
            return False
    elif route is not None and truth.routes_of_scope and route not in truth.routes_of_scope:
        return False
    if truth.status is not None:
        scope = dict(finding.scope or {})
        named = scope.get("status") or scope.get("status_class")
        if named is not None and str(named) not in (str(truth.status), f"{str(truth.status)[0]}xx"):
            return False
    return service is not None or route is not None


def _scope_touches(finding: Any, truth: Truth) -> bool:
    """Lenient: the finding's scope overlaps the incident's (same service; same route when both name one)."""
    service, route = _finding_scope(finding)
    if service is not None and service != truth.service:
        return False
    return route is None or truth.route is None or route == truth.route


def _names(cause: Any, text: str) -> bool:
    blob = f"{getattr(cause, 'ref', '')} {getattr(cause, 'detail', '')}".lower()
    return text.lower() in blob


@dataclass
class Score:
    planted: int = 0
    found: int = 0
    found_any_confidence: int = 0
    kind_exact: int = 0
    findings: int = 0
    true_findings: int = 0
    onset_errors: list[float] = field(default_factory=list)
    with_cause: int = 0
    cause_right: int = 0
    cause_right_of_found: int = 0
    found_with_cause: int = 0
    no_cause: int = 0
    spurious_cause: int = 0
    per_kind: dict[str, list[int]] = field(default_factory=dict)
    per_day: dict[int, list[int]] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)
    wrong_causes: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(value, list):
                mine.extend(value)
            elif isinstance(value, dict):
                for k, v in value.items():
                    cur = mine.setdefault(k, [0, 0])
                    cur[0] += v[0]
                    cur[1] += v[1]
            else:
                setattr(self, name, mine + value)


def _describe(f: Any) -> str:
    top = f.causes[0] if f.causes else None
    cause = f"{top.kind}:{top.ref}" if top else "-"
    return (f"{f.kind} {f.confidence} {dict(f.scope)} {f.onset:%m-%d %H:%M:%S} bucket {_bucket(f):g}s "
            f"top cause {cause}")


def score(findings: Sequence[Any], truths: Sequence[Truth], tag: str = "") -> Score:
    """Match findings against planted truth (module docstring)."""
    counted = [f for f in findings if f.confidence in COUNTED]
    s = Score(findings=len(counted))
    for f in counted:
        if any(_overlaps(f, t) and _scope_touches(f, t) for t in truths):
            s.true_findings += 1
        else:
            s.false_alarms.append(f"{tag} {_describe(f)}")
    for t in truths:
        if not t.above_minimum:
            continue
        s.planted += 1
        per = s.per_kind.setdefault(t.kind, [0, 0])
        per[1] += 1
        per_day = s.per_day.setdefault(t.day, [0, 0])
        per_day[1] += 1
        matches = [f for f in counted if f.kind in ACCEPTED[t.kind] and _overlaps(f, t) and _scope_found(f, t)]
        s.found_any_confidence += bool(matches) or any(
            f.kind in ACCEPTED[t.kind] and _overlaps(f, t) and _scope_found(f, t) for f in findings)
        has_event = bool(t.causes)
        if has_event:
            s.with_cause += 1
        else:
            s.no_cause += 1
        if not matches:
            near = [f for f in counted if _overlaps(f, t) and _scope_touches(f, t)]
            hint = f"; nearby: {_describe(near[0])}" if near else ""
            s.misses.append(f"{tag} {t.label}{hint}")
            continue
        best = min(matches, key=lambda f: (f.kind != t.kind, abs((f.onset - t.onset).total_seconds())))
        s.found += 1
        per[0] += 1
        per_day[0] += 1
        s.kind_exact += best.kind == t.kind
        err = abs((best.onset - t.onset).total_seconds()) / _bucket(best)
        s.onset_errors.append(err)
        if err > TARGETS["onset_buckets"]:
            s.late.append(f"{tag} {t.label}: onset {best.onset:%H:%M:%S} vs {t.onset:%H:%M:%S} "
                          f"({err:.1f} buckets of {_bucket(best):g}s)")
        top = best.causes[0] if best.causes else None
        if has_event:
            s.found_with_cause += 1
            right = top is not None and any(top.kind == kind and _names(top, text) for kind, text in t.causes)
            s.cause_right += right
            s.cause_right_of_found += right
            if not right:
                want = " or ".join(f"{kind} '{text[:50]}'" for kind, text in t.causes)
                s.wrong_causes.append(f"{tag} {t.label}: want {want}, got "
                                      + (f"{top.kind} '{top.ref}'" if top else "none"))
        elif top is not None and top.kind in ("deploy", "config"):  # an event named where none was planted
            s.spurious_cause += 1
    return s


def synth_truths(w: synth.SynthWarehouse) -> list[Truth]:
    out = []
    for inc in w.incidents:
        routes = frozenset(r.route for r in synth.ROUTES if r.service == inc.service
                           and (inc.kind != "saturation" or r.db)) if inc.route is None else frozenset()
        out.append(Truth(inc.kind, inc.service, inc.route, inc.status, inc.onset, inc.end, inc.above_minimum,
                         tuple((c.kind, c.what) for c in inc.causes), f"seed {w.seed}: {inc.describe()}", routes,
                         (inc.onset - w.start).days))
    return out


def demo_truths(incidents: Sequence[Any]) -> list[Truth]:
    """The demo's four incidents with the finding kinds, scopes and causes the issue names."""
    from kit.demo import SLOW_QUERY

    spec = {
        "latency_regression": ("latency_shift", "deploy", "api 2.14.0"),
        "error_burst": ("error_burst", "config", "keepalive"),
        "db_saturation": ("saturation", "query", SLOW_QUERY[:60]),
        "cdn_cache_outage": ("cache_hit_drop", "config", "Vary: Cookie"),
    }
    out = []
    for inc in incidents:
        kind, cause_kind, text = spec[inc.type]
        route = inc.route if inc.type == "latency_regression" else None
        out.append(Truth(kind, inc.service, route, None, inc.start, inc.end, True, ((cause_kind, text),),
                         f"demo {inc.type}"))
    return out


# ------------------------------------------------------------------------------------------------------
# Detectors
# ------------------------------------------------------------------------------------------------------

Detector = Callable[[Any, Any, Sequence[Truth]], Sequence[Any]]


def kit_detector(con: Any, window: Any, truths: Sequence[Truth]) -> Sequence[Any]:
    from kit.analysis.findings import find_bottlenecks

    return find_bottlenecks(con, window).items


def oracle_detector(con: Any, window: Any, truths: Sequence[Truth]) -> Sequence[Any]:
    """Reads the truth: one exact finding per incident (checks that the scorer gives 100 %)."""
    out = []
    for t in truths:
        scope = {"service": t.service, **({"route": t.route} if t.route else {})}
        causes = tuple(SimpleNamespace(kind=kind, ref=text, detail="", strength=1.0, lag_s=60.0)
                       for kind, text in t.causes)
        out.append(SimpleNamespace(kind=t.kind, scope=scope, onset=t.onset, end=t.end, bucket_s=60,
                                   confidence="high", causes=causes))
    return out


def null_detector(con: Any, window: Any, truths: Sequence[Truth]) -> Sequence[Any]:
    return ()


DETECTORS: dict[str, Detector] = {"kit": kit_detector, "oracle": oracle_detector, "none": null_detector}


def _run(detector: Detector, path: Path, truths: Sequence[Truth]) -> tuple[Sequence[Any], float]:
    from kit.analysis.window import resolve_window
    from kit.warehouse import connect

    con = connect(path, read_only=True)
    try:
        window = resolve_window(con)
        t = time.perf_counter()
        found = detector(con, window, truths)
        return found, time.perf_counter() - t
    finally:
        con.close()


# ------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------

RESULTS: list[bool] = []


def line(name: str, target: str, measured: str, ok: bool | None) -> None:
    verdict = "" if ok is None else ("PASS" if ok else "FAIL")
    if ok is not None:
        RESULTS.append(ok)
    print(f"  {name:<40} {target:<12} {measured:<44} {verdict}")


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:5.1f} % ({k}/{n})" if n else "n/a (0/0)"


def part_synth(args: argparse.Namespace, detector: Detector, tmp: Path) -> None:
    total = Score()
    seconds = 0.0
    rows = 0
    for seed in range(1, args.seeds + 1):
        w = synth.generate_warehouse(tmp / f"synth{seed}.duckdb", seed=seed, days=args.days,
                                     requests=args.requests, threads=args.threads)
        rows += w.requests
        truths = synth_truths(w)
        found, sec = _run(detector, w.path, truths)
        seconds += sec
        total.add(score(found, truths, f"[seed {seed}]"))
        if seed == 1:
            blind_same = _same_without_incident_events(detector, w.path, truths, found)
        w.path.unlink()
    print(f"\nsynthetic: {args.seeds} warehouses x {args.days:g} days, {rows:,} requests in all, "
          f"{total.planted} incidents above the minimum; detector {seconds:.1f} s in all")
    recall = total.found / total.planted if total.planted else 0.0
    line("findings same with incident rows deleted", "yes", "yes" if blind_same else "NO (reads them)", blind_same)
    line("  recall counting low confidence too", "", _pct(total.found_any_confidence, total.planted), None)
    precision = total.true_findings / total.findings if total.findings else 1.0
    line("recall (above minimum, high/medium)", f">= {TARGETS['recall']:.0%}", _pct(total.found, total.planted),
         recall >= TARGETS["recall"])
    line("precision (high/medium findings)", f">= {TARGETS['precision']:.0%}",
         _pct(total.true_findings, total.findings), precision >= TARGETS["precision"])
    errs = sorted(total.onset_errors)
    within = sum(e <= TARGETS["onset_buckets"] for e in errs)
    med = errs[len(errs) // 2] if errs else float("nan")
    line("onset within 2 buckets (found ones)", "100 %", _pct(within, len(errs)) + f", median {med:.1f}",
         bool(errs) and within == len(errs))
    cause = total.cause_right / total.with_cause if total.with_cause else 1.0
    line("right top cause (incidents with one)", f">= {TARGETS['cause']:.0%}",
         _pct(total.cause_right, total.with_cause), cause >= TARGETS["cause"])
    line("  of those found", "", _pct(total.cause_right_of_found, total.found_with_cause), None)
    line("finding kind exactly the planted one", "", _pct(total.kind_exact, total.found), None)
    line("deploy/config named with no planted cause", "", _pct(total.spurious_cause, total.no_cause), None)
    for kind in synth.KINDS:
        k, n = total.per_kind.get(kind, [0, 0])
        line(f"  recall {kind}", "", _pct(k, n), None)
    for day in sorted(total.per_day):
        k, n = total.per_day[day]
        line(f"  recall, onset on day {day + 1} of the history", "", _pct(k, n), None)
    if args.verbose:
        for title, items in (("missed", total.misses), ("false alarms", total.false_alarms),
                             ("wrong cause", total.wrong_causes), ("onset > 2 buckets", total.late)):
            if items:
                print(f"  {title}:")
                for item in items:
                    print(f"    {item}")


def _same_without_incident_events(detector: Detector, path: Path, truths: Sequence[Truth],
                                  found: Sequence[Any]) -> bool:
    """The detector never reads ``incident`` events: deleting them changes none of its findings."""
    import shutil

    from kit.warehouse import connect

    blind = path.with_name("blind.duckdb")
    shutil.copyfile(path, blind)
    con = connect(blind)
    con.execute("DELETE FROM events WHERE kind = 'incident'")
    con.close()
    again, _ = _run(detector, blind, truths)
    blind.unlink()

    def key(f: Any) -> tuple:
        return (f.kind, sorted(dict(f.scope).items()), f.onset, f.confidence, [(c.kind, c.ref) for c in f.causes])

    return [key(f) for f in found] == [key(f) for f in again]


def part_clean(args: argparse.Namespace, detector: Detector, tmp: Path) -> None:
    w = synth.generate_warehouse(tmp / "clean.duckdb", seed=1000 + args.seeds, days=7,
                                 requests=args.requests, incidents=0, threads=args.threads)
    found, sec = _run(detector, w.path, [])
    above = [f for f in found if f.confidence in COUNTED]
    print(f"\nclean week: {w.requests:,} requests over 7 days, seasonality, load peaks, "
          f"{sum(e['kind'] in ('deploy', 'config') for e in w.events)} harmless deploys/config pushes; "
          f"detector {sec:.1f} s")
    line("findings above low confidence", "0", f"{len(above)} (of {len(found)} findings)", not above)
    if args.verbose:
        for f in above:
            print(f"    {_describe(f)}")
    w.path.unlink()


def part_demo(args: argparse.Namespace, detector: Detector, tmp: Path) -> None:
    from kit.demo import build_demo

    path = tmp / "demo.duckdb"
    t = time.perf_counter()
    summary = build_demo(path, requests=args.demo_requests, days=7, seed=42, progress=False)
    built = time.perf_counter() - t
    truths = demo_truths(summary.incidents)
    found, sec = _run(detector, path, truths)
    print(f"\ndemo: {summary.requests:,} requests, 7 days (built in {built:.0f} s); detector {sec:.1f} s")
    s = score(found, truths, "[demo]")
    line("demo incidents found", "4 of 4", f"{s.found} of {s.planted}", s.found == 4)
    line("demo incidents with their cause on top", "4 of 4", f"{s.cause_right} of {s.with_cause}",
         s.cause_right == 4)
    line("demo false alarms (high/medium)", "", f"{s.findings - s.true_findings} of {s.findings}", None)
    if args.verbose:
        for item in s.misses + s.wrong_causes + s.false_alarms:
            print(f"    {item}")
        for f in found:
            print(f"    finding: {_describe(f)}")
    path.unlink()


SPEED_TARGET_REQUESTS = 100_000_000  # the speed target is judged on a warehouse this large (issue #11)


def part_speed(args: argparse.Namespace, detector: Detector, tmp: Path) -> None:
    from kit.analysis import kpis
    from kit.analysis.window import resolve_window
    from kit.warehouse import connect

    t = time.perf_counter()
    w = synth.generate_warehouse(tmp / "speed.duckdb", seed=7, days=30, requests=args.speed_requests,
                                 incidents=12, threads=args.threads)
    print(f"\nspeed: {w.requests:,} requests over 30 days, 12 incidents (generated in "
          f"{time.perf_counter() - t:.0f} s, {w.path.stat().st_size / 2**20:,.0f} MiB; not timed); "
          f"DuckDB threads {args.threads}")
    con = connect(w.path, read_only=True, threads=args.threads)
    con.execute("SET enable_progress_bar = false")
    try:
        window = resolve_window(con)
        kpi_s, find_s = [], []
        n_findings = n_groups = 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            n_groups = len(kpis.latency_series_frame(con, window, "1m", "route"))
            kpi_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            n_findings = len(detector(con, window, synth_truths(w)))
            find_s.append(time.perf_counter() - t)
    finally:
        con.close()
    base, mine = min(kpi_s), min(find_s)
    print(f"  baseline: per-route per-minute KPI query  {base:7.2f} s  ({n_groups:,} route-minutes)")
    print(f"  all findings                             {mine:7.2f} s  ({n_findings} findings)")
    judged = w.requests >= SPEED_TARGET_REQUESTS * 0.99
    line("findings time / KPI query time", f"<= {TARGETS['speed_ratio']:g}x" if judged else "(at 100M)",
         f"{mine / base:.2f}x", mine / base <= TARGETS["speed_ratio"] if judged else None)
    if not judged:
        print(f"  the target is set for {SPEED_TARGET_REQUESTS:,} requests (--speed-requests {SPEED_TARGET_REQUESTS} "
              "or --full); on small warehouses the detector's fixed cost (~0.7 s of Python) dominates the ratio")
    w.path.unlink()


PARTS = {"synth": part_synth, "clean": part_clean, "demo": part_demo, "speed": part_speed}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="synthetic warehouses, seeds 1..N (default 3)")
    parser.add_argument("--days", type=float, default=3, help="days per synthetic warehouse (default 3)")
    parser.add_argument("--requests", type=int, default=2_000_000,
                        help="requests per synthetic warehouse and in the clean week (default 2M)")
    parser.add_argument("--demo-requests", type=int, default=1_000_000, help="demo size (default 1M, as shipped)")
    parser.add_argument("--speed-requests", type=int, default=2_000_000,
                        help="requests in the 30-day speed warehouse (default 2M; the issue's target is at 100M)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply --requests, --demo-requests and --speed-requests (e.g. 0.25 for a quick run)")
    parser.add_argument("--full", action="store_true",
                        help="full size: 10 seeds x 7 days x 10M requests, speed on 100M (hours; ~30 GB of disk)")
    parser.add_argument("--repeat", type=int, default=2, help="alternating timed runs in the speed part (best of)")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
    parser.add_argument("--only", choices=sorted(PARTS), action="append", help="run only this part (repeatable)")
    parser.add_argument("--detector", choices=sorted(DETECTORS), default="kit",
                        help="kit (default); oracle reads the truth, none finds nothing (scorer checks)")
    parser.add_argument("--tmp", help="directory for the generated warehouses (default: a temporary one)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a line FAILs (default: figures only)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list misses, false alarms, wrong causes")
    args = parser.parse_args(argv)
    if args.full:
        args.seeds, args.days, args.requests, args.speed_requests = max(args.seeds, 10), 7, 10_000_000, 100_000_000
    args.requests = int(args.requests * args.scale)
    args.demo_requests = int(args.demo_requests * args.scale)
    args.speed_requests = int(args.speed_requests * args.scale)
    detector = DETECTORS[args.detector]
    load = os.getloadavg()
    print(f"bench_findings: detector {args.detector}; load average {load[0]:.2f} (cpu count {os.cpu_count()})")
    print(f"minimum effect committed to: {synth.MINIMUM_TEXT}")
    print(f"  {'measure':<40} {'target':<12} {'measured':<44} verdict")
    with tempfile.TemporaryDirectory(prefix="bench_findings_", dir=args.tmp) as tmp_name:
        for name in args.only or list(PARTS):
            PARTS[name](args, detector, Path(tmp_name))
    failed = RESULTS.count(False)
    print(f"\n{len(RESULTS) - failed} PASS, {failed} FAIL")
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
