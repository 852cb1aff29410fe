"""Database analysis of the warehouse's ``queries``: a digest ranked by total time (pt-query-digest,
pgBadger), regressions between periods, N+1 patterns, index candidates from the statement text, and the
opportunities they lead to. Live index advice on a PostgreSQL server is :mod:`kit.analysis.database.advice`.

Methods and limits are in the modules: :mod:`.digest` (snapshot deltas, percentiles, regressions),
:mod:`.nplus1` (bursts of events; the aggregate signature from snapshots), :mod:`.indexes` (columns
from the SQL text with sqlglot). Savings are database time (ms) over the window. An index's saving
without a live database is a heuristic — every snapshot interval brought back to the fingerprint's own
fast level (value: its 25th percentile of per-interval mean; low: the median; high: half the 10th
percentile) — and says so; ``advise_indexes`` replaces it with the planner's cost reduction. An N+1's
saving assumes one batched statement per request costs about what one lookup does: the excess calls ×
mean time, with 50 %–100 % of it as the interval. One index is proposed per leading-column family: an
index whose columns lead another candidate's on the same table is folded into it, with the savings summed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from kit import fmt
from kit.analysis.database.digest import Period, deltas_sql, digest, events_sql, held_deltas, hold_deltas, regressions
from kit.analysis.database.indexes import IndexCandidate, StatementShape, candidate_ddl, statement_shape
from kit.analysis.database.nplus1 import burst_nplus1, signature_nplus1
from kit.analysis.opportunity import EFFORT_WEIGHT, Opportunity, Saving, opportunity
from kit.analysis.window import Window, parse_instant

__all__ = ["DatabaseAnalysis", "IndexCandidate", "IndexSuggestion", "StatementShape", "analyse_database",
           "candidate_ddl", "statement_shape"]

TOP_FOR_INDEXES = 10
DIGEST_COLUMNS = ("fingerprint", "db_system", "database", "users", "basis", "calls", "total_ms", "mean_ms",
                  "p50_ms", "p95_ms", "p99_ms", "max_ms", "variance_to_mean", "rows_per_call", "examined_per_row",
                  "share_of_db_time", "read_share", "blocks_per_call", "events", "event_coverage",
                  "percentile_basis", "sample")


@dataclass(frozen=True)
class IndexSuggestion:
    """For one top fingerprint: its index ``candidates`` from the SQL text, whether to EXPLAIN it and why
    (``explain_reason``), and the text heuristics behind it."""

    fingerprint: str
    rank: int
    share_of_db_time: float
    mean_ms: float
    calls: float
    candidates: tuple[IndexCandidate, ...]
    explain: bool
    explain_reason: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatabaseAnalysis:
    """The database analysis of a window. ``digest``: one row per fingerprint (columns
    :data:`DIGEST_COLUMNS`), ranked by total time; ``total_ms``/``total_calls``: all database time and calls
    in it; ``regressions``: compared periods (first half vs second half, and around each finding's onset),
    only the rows whose time per call (``regressed``) or calls per second (``calls_jumped``) rose
    significantly; ``nplus1``: detections with their ``evidence``; ``indexes``: candidates for
    the top fingerprints and which to EXPLAIN; ``opportunities``; ``sql``: name → query; ``notes``: what
    the data could not show."""

    window_start: datetime
    window_end: datetime
    digest: pd.DataFrame
    total_ms: float
    total_calls: float
    sources: dict[str, int]
    regressions: pd.DataFrame
    nplus1: list[dict[str, Any]]
    indexes: list[IndexSuggestion]
    opportunities: list[Opportunity]
    sql: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _periods(window: Window, bottlenecks: dict[str, Any] | None) -> list[Period]:
    mid = window.start + (window.end - window.start) / 2
    periods = [Period("first half vs second half of the window", window.start, mid, window.end)]
    items = ((bottlenecks or {}).get("findings") or {}).get("items") or []
    seen: set[str] = set()
    for item in items:
        onset = parse_instant("onset", item.get("onset"))
        if onset is None or not window.start < onset < window.end or onset.isoformat() in seen:
            continue
        seen.add(onset.isoformat())
        end = parse_instant("end", item.get("end")) or window.end
        end = min(max(end, onset + (window.end - window.start) / 100), window.end)
        length = max(end - onset, (window.end - window.start) / 50)
        title = item.get("title") or (str(item.get("kind", "finding")).replace("_", " ") + " on " + " ".join(
            f"{k}={v}" for k, v in (item.get("scope") or {}).items()))
        periods.append(Period(f"before/after the onset of the finding '{title}' at {fmt.timestamp(onset.isoformat())}",
                              max(window.start, onset - length), onset, end))
    return periods


def _explain_reason(row: Any, shape: StatementShape) -> tuple[bool, str]:
    reasons = []
    if row.share_of_db_time >= 0.05:
        reasons.append(f"{row.share_of_db_time:.0%} of database time")
    if row.mean_ms >= 5:
        reasons.append(f"mean {fmt.num(row.mean_ms)} ms per call")
    if row.blocks_per_call == row.blocks_per_call and row.blocks_per_call is not None \
            and row.rows_per_call == row.rows_per_call and row.rows_per_call is not None \
            and row.blocks_per_call / max(row.rows_per_call, 1) >= 20:   # 0 rows found: still a scan
        reasons.append(f"{row.blocks_per_call:.0f} blocks read per call for {row.rows_per_call:.1f} rows "
                       "(a scan rather than a lookup)")
    if row.examined_per_row == row.examined_per_row and row.examined_per_row is not None \
            and row.examined_per_row >= 10:
        reasons.append(f"{row.examined_per_row:.0f} rows examined per row returned")
    if not shape.candidates:
        text = "no filter, join or sort column to index" + (f" ({'; '.join(shape.notes)})" if shape.notes else "")
        if reasons and shape.kind in ("select", "update", "delete"):
            return True, "; ".join(reasons) + f"; {text}: EXPLAIN shows what it scans"
        return False, text
    if not reasons:
        return False, "cheap per call and a small share of database time"
    return True, "; ".join(reasons)


def _strings(value: object) -> list[str]:
    """A JSON list of strings from an opportunity's details (empty when absent)."""
    return [str(v) for v in value] if isinstance(value, list) else []


def _one_per_index(found: list[tuple[IndexCandidate, Opportunity]]) -> list[Opportunity]:
    """The index opportunities with one per index: one whose columns lead another's on the same table (or
    are the same) is folded into it, since a B-tree serves the lookups by a prefix of its columns and one
    index costs fewer writes than two; the folded one's statement, evidence, saving and SQL are added."""
    kept: list[tuple[IndexCandidate, Opportunity, str]] = []   # (index, opportunity, its own title)
    for cand, opp in sorted(found, key=lambda f: (-len(f[0].columns), -f[1].saving.value)):
        host = next((i for i, (c, _, _) in enumerate(kept) if c.table == cand.table
                     and c.columns[:len(cand.columns)] == cand.columns), None)
        if host is None:
            kept.append((cand, opp, opp.title))
            continue
        c, o, title = kept[host]
        fp = opp.addresses[0].removeprefix("query:") if opp.addresses else opp.title
        a, b = o.saving, opp.saving
        saving = replace(a, value=a.value + b.value, share=a.share + b.share,
                         low=None if a.low is None or b.low is None else a.low + b.low,
                         high=None if a.high is None or b.high is None else a.high + b.high)
        more = len(o.addresses)
        kept[host] = (c, replace(
            o, title=f"{title} (and {more} more statement{'s' if more > 1 else ''})",
            change=o.change + f" The same index serves `{fp[:90]}`, whose lookup by {', '.join(cand.columns)} "
                              f"leads it: no separate index on {cand.table} ({', '.join(cand.columns)}).",
            evidence=o.evidence + f" Also `{fp[:90]}`: {opp.evidence}",
            effect=f"{o.effect} With the statements it also serves: about {saving.value / 1000:,.1f} s.",
            saving=saving, score=saving.share / EFFORT_WEIGHT[o.effort], addresses=[*o.addresses, *opp.addresses],
            details={**o.details, "also_serves": [*_strings(o.details.get("also_serves")), fp]},
            sql={**o.sql, **{f"{k} ({fp[:60]})": v for k, v in opp.sql.items() if k != "digest"}}), title)
    return [o for _, o, _ in kept]


def _scan_evidence(row: Any) -> bool:
    """Blocks per row or rows examined per row say the statement scans rather than looks up."""
    bpr = (row.blocks_per_call or 0) / max(row.rows_per_call or 0, 1) if row.blocks_per_call == row.blocks_per_call \
        else 0
    epr = row.examined_per_row if row.examined_per_row == row.examined_per_row and row.examined_per_row else 0
    return bool(bpr >= 20 or epr >= 10)


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _interval_means_sql(window: Window, fingerprint: str) -> str:
    return (f"WITH d AS ({deltas_sql(window.start, window.end)})\nSELECT ts, sum(calls) AS calls, sum(total_ms) AS ms, "
            f"sum(total_ms) / nullif(sum(calls), 0) AS mean_ms FROM d WHERE fingerprint = {_q(fingerprint)} "
            f"GROUP BY ts ORDER BY ts")


def _all_interval_means(con: duckdb.DuckDBPyConnection, window: Window, fingerprints: list[str],
                        deltas: str) -> dict[str, pd.DataFrame]:
    """:func:`_interval_means_sql`'s frame for each of ``fingerprints``, from the deltas held in ``deltas``
    (:func:`hold_deltas`)."""
    if not fingerprints:
        return {}
    fps = ", ".join(_q(f) for f in sorted(set(fingerprints)))
    frame = con.execute(held_deltas(
        f"WITH d AS ({deltas_sql(window.start, window.end)})\nSELECT fingerprint, ts, sum(calls) AS calls, "
        f"sum(total_ms) AS ms, sum(total_ms) / nullif(sum(calls), 0) AS mean_ms FROM d "
        f"WHERE fingerprint IN ({fps}) GROUP BY fingerprint, ts ORDER BY fingerprint, ts",
        deltas, window.start, window.end)).df()
    return {str(fp): part.drop(columns="fingerprint").reset_index(drop=True)
            for fp, part in frame.groupby("fingerprint", sort=False)}


def _index_opportunity(window: Window, row: Any, sug: IndexSuggestion, total_ms: float, digest_sql: str,
                       interval_means: dict[str, pd.DataFrame]) -> Opportunity | None:
    cand = sug.candidates[0]
    sql = _interval_means_sql(window, row.fingerprint)
    frame = interval_means.get(str(row.fingerprint), pd.DataFrame({"ts": [], "calls": [], "ms": [], "mean_ms": []}))
    if len(frame) >= 4 and frame["calls"].sum() > 0:
        means = frame["mean_ms"].dropna()
        targets = {"value": float(means.quantile(0.25)), "low": float(means.quantile(0.5)),
                   "high": float(means.quantile(0.10)) / 2}
        saved = {k: float((frame["ms"] - frame["calls"] * min(t, frame["mean_ms"].max())).clip(lower=0).sum())
                 for k, t in targets.items()}
        basis_text = ("every 10-minute interval brought back to the query's own fast level "
                      f"({fmt.num(targets['value'])} ms per call, its 25th percentile of interval means)")
    else:
        saved = {"value": row.total_ms * 0.5, "low": row.total_ms * 0.2, "high": row.total_ms * 0.9}
        basis_text = "no interval history: half of its time, 20 %–90 %"
    if saved["value"] <= 0:
        return None
    writes = "" if not any(w in row.fingerprint.lower() for w in ("insert", "update", "delete")) else " (it writes)"
    others = [c.ddl for c in sug.candidates[1:]]
    return opportunity(
        "database", f"Index {cand.table} ({', '.join(cand.columns)}) for `{row.fingerprint[:90]}`",
        change=cand.ddl + ";" + (" Also consider: " + "; ".join(others) + "." if others else "")
        + " Confirm first with EXPLAIN (ANALYZE, BUFFERS) on a production-like copy, or run "
          "`perfkit db-advice --dsn ...`, which tests it as a hypothetical index.",
        evidence=(f"{row.calls:,.0f} calls, {row.total_ms / 1000:,.1f} s of database time "
                  f"({row.share_of_db_time:.1%}), mean {fmt.num(row.mean_ms)} ms; {sug.explain_reason}. "
                  f"The query filters "
                  f"on {', '.join(cand.equality + cand.range) or 'its join column'}"
                  + (f" and sorts on {', '.join(cand.order)}" if cand.order else "") + "."),
        effect=f"saves about {saved['value'] / 1000:,.1f} s of database time over the window ({basis_text}).",
        verify=("after CREATE INDEX: EXPLAIN shows an Index Scan (or Bitmap Index Scan) on the new index; "
                "the fingerprint's mean time per call and shared blocks per call fall (re-run the digest SQL "
                "on snapshots taken after the change)."),
        risk=(f"every INSERT/UPDATE of {cand.table} also maintains the index{writes}: check pg_stat_user_tables "
              f"(n_tup_ins + n_tup_upd + n_tup_del) for {cand.table} before adding it to a write-heavy table; "
              "CONCURRENTLY avoids blocking writes while it builds but takes longer and can leave an INVALID "
              "index if it fails."),
        effort="low",
        saving=Saving(saved["value"], "ms", "database time", saved["value"] / total_ms if total_ms else 0.0,
                      saved["low"], saved["high"]),
        sql={"digest": digest_sql, "interval_means": sql},
        addresses=[f"query:{row.fingerprint}"],
        details={"table": cand.table, "columns": list(cand.columns), "ddl": cand.ddl, "estimate": basis_text,
                 "explain_reason": sug.explain_reason})


def _nplus1_opportunity(item: dict[str, Any], total_ms: float, sql: dict[str, str]) -> Opportunity | None:
    mean = float(item.get("after_mean_ms", item["mean_ms"]))
    excess = float(item["excess_calls"])
    value = excess * mean * 0.75
    if value <= 0:
        return None
    shape = statement_shape(str(item["fingerprint"]))
    table = shape.tables[0] if shape.tables else "the table"
    col = (shape.where.get(table) or ("key",))[0]
    where = f" on {item['route']} ({item['service']})" if item.get("route") else ""
    if item["evidence"].startswith("events"):
        evidence = (f"{item['bursts']} bursts of the same statement within {str(item['evidence']).split()[-2]} ms "
                    f"(median {item['median_burst']:.0f} executions, up to {item['max_burst']}); "
                    f"{item['calls_in_bursts']:,} of its {item['calls']:,} executions are in bursts, "
                    f"mean {fmt.num(mean)} ms each. Evidence: {item['evidence']}"
                    + (f" ({item['sessions']} sessions)." if item.get("sessions") else " (no session id in the log)."))
    else:
        evidence = (f"{item['calls']:,.0f} calls for {item['requests']:,.0f} requests{where} "
                    f"({fmt.num(item['calls_per_request'], 2)} per request), "
                    f"{fmt.num(item['rows_per_call'], 2)} rows per call, "
                    f"mean {fmt.num(mean)} ms.")
        if item.get("deploy"):
            evidence += (f" Calls per request went from {fmt.num(item['calls_per_request_before'], 2)} to "
                         f"{fmt.num(item['calls_per_request_after'])} at '{item['deploy']}' ({item['deploy_ts']}).")
        evidence += f" Evidence: {item['evidence']}."
    return opportunity(
        "database", f"Batch the N+1 lookup `{str(item['fingerprint'])[:80]}`{where}",
        change=(f"load the rows for all keys in one statement — `... FROM {table} WHERE {col} = ANY($1)` / "
                f"`{col} IN (...)`, or the ORM's prefetch (prefetch_related / includes / joinedload) — instead of "
                "one lookup per item in the loop" + (f" introduced by '{item['deploy']}'" if item.get("deploy")
                                                      else "") + "."),
        evidence=evidence,
        effect=(f"removes about {excess:,.0f} round trips, ~{value / 1000:,.1f} s of database time "
                "(75 % of their time; interval 50 %–100 %) and the same order of request latency."),
        verify=("calls per request of the fingerprint back to about 1 (snapshots after the fix), or no more "
                "bursts of it in the statement log; the route's p95 latency back to its level before."),
        risk="a batched IN list returns more rows per call; cap the list size (e.g. 1,000 keys) for large pages.",
        effort="medium",
        saving=Saving(value, "ms", "database time", value / total_ms if total_ms else 0.0,
                      excess * mean * 0.5, excess * mean),
        sql=sql, addresses=[f"query:{item['fingerprint']}"], details=dict(item))


def _rewrite_opportunity(row: Any, total_ms: float, digest_sql: str) -> Opportunity:
    value = row.total_ms * 0.5
    return opportunity(
        "database", f"Rewrite or cache the dominant query `{row.fingerprint[:90]}`",
        change=("no single index serves this statement: cache its result (it is read "
                f"{row.calls:,.0f} times), precompute it (a summary table or materialized view refreshed on a "
                "schedule), or narrow what it reads; EXPLAIN (ANALYZE, BUFFERS) shows where the time goes."),
        evidence=(f"{row.share_of_db_time:.0%} of database time ({row.total_ms / 1000:,.1f} s, {row.calls:,.0f} calls, "
                  f"mean {fmt.num(row.mean_ms)} ms"
                  + (f", {row.blocks_per_call:,.0f} blocks per call)." if pd.notna(row.blocks_per_call) else ").")),
        effect=f"halving its time saves ~{value / 1000:,.1f} s of database time (interval 20 %–90 % of its time).",
        verify="the fingerprint's share of database time in the digest falls after the change.",
        risk="a cached or precomputed result is stale until refreshed; decide the staleness the feature allows.",
        effort="high",
        saving=Saving(value, "ms", "database time", value / total_ms if total_ms else 0.0,
                      row.total_ms * 0.2, row.total_ms * 0.9),
        sql={"digest": digest_sql}, addresses=[f"query:{row.fingerprint}"])


def analyse_database(con: duckdb.DuckDBPyConnection, window: Window, *,
                     bottlenecks: dict[str, Any] | None = None, top: int = TOP_FOR_INDEXES,
                     route_counts: pd.DataFrame | Callable[[], pd.DataFrame] | None = None) -> DatabaseAnalysis:
    """The database analysis of ``window`` (see the module docstring); ``bottlenecks`` is notebook 30's
    saved result (its ``findings.items[*].onset`` add before/after comparisons); ``route_counts``: the
    window's requests per ``service``, ``route`` (``requests``) when the caller has them (else a scan), or
    a function returning them, called when they are needed (the caller may be computing them meanwhile)."""
    deltas = hold_deltas(con, window.start, window.end)   # read by the digest, regressions, N+1 and indexes
    try:
        return _analyse(con, window, bottlenecks, top, route_counts, deltas)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {deltas}")


def _analyse(con: duckdb.DuckDBPyConnection, window: Window, bottlenecks: dict[str, Any] | None, top: int,
             route_counts: pd.DataFrame | Callable[[], pd.DataFrame] | None, deltas: str) -> DatabaseAnalysis:
    notes: list[str] = []
    sql: dict[str, str] = {}
    from kit.analysis.database.bursts import event_digest, event_pass  # numba: loaded where it is used

    held = event_pass(con, events_sql(window.start, window.end))   # the events read once: digest and bursts
    frame, sql["digest"] = digest(con, window, deltas=deltas, events=event_digest(held))
    event_fps = set(held.names["fingerprint"].astype(str))
    sources = {str(k): int(v) for k, v in con.execute(
        f"SELECT kind, count(*) FROM queries WHERE {window.sql()} GROUP BY kind").fetchall()}
    total_ms = float(frame["total_ms"].sum()) if len(frame) else 0.0
    total_calls = float(frame["calls"].sum()) if len(frame) else 0.0
    if frame.empty:
        notes.append("no query statistics in the window (no pg_stat_statements snapshots or statement logs)")
    elif (frame["basis"] == "snapshots").all() and not sources.get("event"):
        notes.append("snapshots only: p95/p99 and variance-to-mean need per-execution events (a statement log); "
                     "only means are known")
    if sources.get("event") and not held.names["session_id"].notna().any():   # no event with a session id
        notes.append("the statement logs give no session id (csvlog/jsonlog, or %c in log_line_prefix, or MySQL's "
                     "thread Id do): N+1 from logs is detected as bursts of the same statement within milliseconds, "
                     "which concurrent sessions can imitate")
    # regressions
    reg_frames = []
    for i, period in enumerate(_periods(window, bottlenecks)):
        reg, sql[f"regression_{i}"] = regressions(con, period, deltas=deltas, event_fingerprints=event_fps)
        reg_frames.append(reg[reg["regressed"] | reg["calls_jumped"]].head(10))
    nonempty = [f for f in reg_frames if not f.empty]
    regs = pd.concat(nonempty, ignore_index=True) if nonempty else pd.DataFrame(
        columns=["fingerprint", "period", "mean_a_ms", "mean_b_ms", "ratio", "ratio_low", "ratio_high", "added_ms",
                 "regressed", "calls_jumped"])
    # N+1
    bursts, sql["nplus1_bursts"] = burst_nplus1(con, window, held=held)
    del held
    sigs, sig_sql = signature_nplus1(con, window, frame, deltas=deltas, route_counts=route_counts()
                                     if callable(route_counts) else route_counts) if len(frame) else ([], {})
    sql.update(sig_sql)
    seen = {str(b["fingerprint"]) for b in bursts}
    nplus1 = [*bursts, *[s for s in sigs if str(s["fingerprint"]) not in seen]]
    # index candidates for the top fingerprints
    indexes: list[IndexSuggestion] = []
    for rank, row in enumerate(frame.head(top).itertuples(index=False), start=1):
        shape = statement_shape(str(row.fingerprint))
        pk_like = tuple(c for c in shape.candidates if c.columns == ("id",))
        if pk_like:  # ``id`` is the primary key by convention: it has its index already
            shape = StatementShape(shape.kind, shape.tables, shape.where, shape.joins, shape.order_by,
                                   tuple(c for c in shape.candidates if c not in pk_like), shape.single_key_lookup,
                                   shape.aggregate, (*shape.notes, "an index on id is taken to exist (primary key)"))
        explain, reason = _explain_reason(row, shape)
        indexes.append(IndexSuggestion(str(row.fingerprint), rank, float(row.share_of_db_time or 0),
                                       float(row.mean_ms or 0), float(row.calls), shape.candidates, explain, reason,
                                       shape.notes))
    # opportunities
    opps: list[Opportunity] = []
    nplus1_fps = {str(n["fingerprint"]) for n in nplus1}
    regressed = set(regs["fingerprint"]) if len(regs) else set()
    by_fp = {str(r.fingerprint): r for r in frame.itertuples(index=False)}
    for item in nplus1:
        names = {k: v for k, v in sql.items() if k == "nplus1_bursts" and str(item["evidence"]).startswith("events")
                 or k == f"nplus1_per_request {item.get('route')}"}
        opp = _nplus1_opportunity(item, total_ms, {"digest": sql["digest"], **names})
        if opp:
            opps.append(opp)
    def wants_index(sug: IndexSuggestion) -> bool:
        return sug.fingerprint not in nplus1_fps and bool(sug.explain and sug.candidates) \
            and statement_shape(sug.fingerprint).kind in ("select", "update", "delete") \
            and (_scan_evidence(by_fp[sug.fingerprint]) or sug.fingerprint in regressed)

    interval_means = _all_interval_means(con, window, [s.fingerprint for s in indexes if wants_index(s)], deltas)
    index_opps: list[tuple[IndexCandidate, Opportunity]] = []
    for sug in indexes:
        row = by_fp[sug.fingerprint]
        if sug.fingerprint in nplus1_fps:
            continue
        if wants_index(sug):
            opp = _index_opportunity(window, row, sug, total_ms, sql["digest"], interval_means)
            if opp:
                index_opps.append((sug.candidates[0], opp))
        elif not sug.candidates and row.share_of_db_time >= 0.2 and statement_shape(sug.fingerprint).kind == "select":
            opps.append(_rewrite_opportunity(row, total_ms, sql["digest"]))
    opps.extend(_one_per_index(index_opps))
    opps.sort(key=lambda o: -o.saving.value)
    digest_out = frame[[c for c in DIGEST_COLUMNS if c in frame.columns]].reset_index(drop=True)
    return DatabaseAnalysis(window.start, window.end, digest_out, total_ms, total_calls, sources, regs, nplus1,
                            indexes, opps, sql, tuple(notes))
