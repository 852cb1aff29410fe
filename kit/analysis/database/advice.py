"""Index advice on a live PostgreSQL (opt-in): EXPLAIN the top fingerprints, try their candidate indexes
as hypothetical indexes (hypopg), and propose one only when it cuts the plan's total cost by at least
half (Dexter's rule).

**Plans.** PostgreSQL 15 has no ``EXPLAIN (GENERIC_PLAN)``; each statement is ``PREPARE``d from its
``sample`` (``?`` and ``$n`` become parameters, literals stay) and explained with
``plan_cache_mode = force_generic_plan`` and NULL arguments, which yields the generic plan — the plan
the server uses for a prepared statement whatever the values, and what Dexter does on PostgreSQL < 16.
Costs are the planner's estimates; nothing is executed (no ANALYZE). Each EXPLAIN runs under
``statement_timeout`` and the whole step stops at ``total_budget_s`` (the fingerprints not reached are
listed). Candidates are the columns :mod:`kit.analysis.database.indexes` reads from the text; one that an
existing index already leads with (same leading columns) is skipped.

**Numbers.** Cost reduction = 1 − cost with the hypothetical index / cost without; time saved ≈ calls ×
mean time × cost reduction (the plan cost's share stands in for the time's share); size =
``hypopg_relation_size``; write overhead from ``pg_stat_user_tables``: writes = inserted + updated + deleted
tuples, against tuples read (``seq_tup_read + idx_tup_fetch``) since the statistics were reset; a table
whose writes are at least ``WRITE_HEAVY_RATIO`` (25 %) of its reads is called write-heavy, and every
proposal says what each write will cost.

**One proposal per index.** Fingerprints whose best candidate is the same index get one proposal that
serves them all (its total time saved is the sum). An index whose columns lead a longer proposed index on
the same table (``(a)`` and ``(a, b)``) is folded into the longer one when, EXPLAINed again with only the
longer hypothetical index, each of its statements still has its plan cost cut by at least half: a B-tree
on ``(a, b)`` serves the lookups by ``a``, and one index costs fewer writes than two. Otherwise both stay.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from kit.analysis.database.indexes import IndexCandidate, candidate_ddl, statement_shape
from kit.errors import DatabaseAdviceError

__all__ = ["IndexAdvice", "IndexProposal", "PlanCheck", "ServedStatement", "advise_indexes"]

MIN_COST_REDUCTION = 0.5
WRITE_HEAVY_RATIO = 0.25  # tuple writes / tuples read at or above which a table is called write-heavy


@dataclass(frozen=True)
class ServedStatement:
    """Another fingerprint that a proposed index serves: its plan cost without and with the index, the
    share cut and the database time saved (ms, calls × mean ms × that share)."""

    fingerprint: str
    cost_before: float
    cost_after: float
    cost_reduction: float
    saved_ms: float


@dataclass(frozen=True)
class IndexProposal:
    """An index worth creating: ``ddl``, the plan ``cost_before``/``cost_after`` and ``cost_reduction``
    (share) of ``fingerprint``, ``saved_ms`` (its calls × mean ms × reduction), ``size_bytes`` (hypopg's
    estimate), the table's ``writes``/``scans`` since the statistics were reset and ``write_heavy``, and
    ``write_cost`` in words; ``also_serves``: the other fingerprints the same index cuts by at least half,
    and ``total_saved_ms`` the time saved over all of them (see the module docstring)."""

    fingerprint: str
    table: str
    columns: tuple[str, ...]
    ddl: str
    cost_before: float
    cost_after: float
    cost_reduction: float
    saved_ms: float
    size_bytes: int
    writes: int
    reads: int
    write_heavy: bool
    write_cost: str
    also_serves: tuple[ServedStatement, ...] = ()
    total_saved_ms: float = 0.0

    def served(self) -> ServedStatement:
        """This proposal's own fingerprint as a served statement."""
        return ServedStatement(self.fingerprint, self.cost_before, self.cost_after, self.cost_reduction,
                               self.saved_ms)

    def serving(self, more: list[ServedStatement]) -> IndexProposal:
        """The same index, also serving ``more`` (their time saved added to the total)."""
        return replace(self, also_serves=(*self.also_serves, *more),
                       total_saved_ms=self.total_saved_ms + sum(m.saved_ms for m in more))


@dataclass(frozen=True)
class PlanCheck:
    """One fingerprint as explained: its plan's top node and cost, sequential scans in it, each candidate
    tried (``tried``: ddl → cost reduction, or the reason it was skipped), and the outcome in words."""

    fingerprint: str
    statement: str
    cost: float | None
    top_node: str | None
    seq_scans: tuple[str, ...]
    tried: dict[str, Any]
    outcome: str


@dataclass(frozen=True)
class IndexAdvice:
    """Live index advice: ``proposals`` (cost cut ≥ 50 %), ``checks`` per fingerprint, ``skipped``
    (fingerprint → why: budget, parse, error), the server (``dsn`` without password) and version."""

    dsn: str
    server_version: str
    proposals: list[IndexProposal]
    checks: list[PlanCheck]
    skipped: dict[str, str] = field(default_factory=dict)
    statement_timeout_ms: int = 0
    total_budget_s: float = 0.0
    elapsed_s: float = 0.0


def _parameterise(sample: str) -> tuple[str, int]:
    """``?`` placeholders (outside quotes) numbered as ``$n``; the number of parameters."""
    out, n, quote = [], 0, False
    for ch in sample:
        if ch == "'":
            quote = not quote
        if ch == "?" and not quote:
            n += 1
            out.append(f"${n}")
        else:
            out.append(ch)
    text = "".join(out)
    found = [int(m) for m in re.findall(r"\$([0-9]+)", text)]
    return text, max([n, *found]) if found or n else 0


def _plan(pg: Any, name: str, nparams: int, text: str) -> dict[str, Any]:
    """The generic plan of ``text``, prepared afresh (a cached plan would not see a hypothetical index)."""
    args = "(" + ", ".join(["NULL"] * nparams) + ")" if nparams else ""
    pg.execute(f"DEALLOCATE {name}")
    pg.execute(f"PREPARE {name} AS {text}")
    row = pg.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {name}{args}").fetchone()
    data = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    return dict(data[0]["Plan"])


def _walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = [node]
    for child in node.get("Plans", []) or []:
        out.extend(_walk(child))
    return out


def _items(target: Any) -> list[dict[str, Any]]:
    """Fingerprints to explain, most database time first, from an analysis or a list of dicts/strings."""
    if hasattr(target, "digest"):
        frame = target.digest
        wanted = {s.fingerprint for s in getattr(target, "indexes", []) if s.explain}
        rows = frame[frame["fingerprint"].isin(wanted)] if wanted else frame.head(10)
        return [{"fingerprint": r.fingerprint, "sample": r.sample, "calls": float(r.calls),
                 "mean_ms": float(r.mean_ms or 0)} for r in rows.itertuples(index=False)]
    out = []
    for item in target:
        if isinstance(item, str):
            out.append({"fingerprint": item, "sample": item, "calls": 0.0, "mean_ms": 0.0})
        else:
            out.append({"sample": item.get("fingerprint"), "calls": 0.0, "mean_ms": 0.0, **item})
    return out


def advise_indexes(dsn: str, analysis_or_fingerprints: Any, *, statement_timeout_ms: int = 2000,
                   total_budget_s: float = 60.0, min_cost_reduction: float = MIN_COST_REDUCTION,
                   connect_timeout_s: int = 10) -> IndexAdvice:
    """EXPLAIN each fingerprint (a DatabaseAnalysis's EXPLAIN list, or dicts with ``fingerprint``,
    ``sample``, ``calls``, ``mean_ms``, or fingerprint strings) on the server at ``dsn`` and try its
    candidate indexes as hypothetical indexes; see the module docstring. Raises DatabaseAdviceError when
    the server cannot be reached or hypopg cannot be created."""
    import psycopg

    from kit.ingest.pg_stat_statements import redact_dsn

    label = redact_dsn(dsn)
    t0 = time.monotonic()
    items = _items(analysis_or_fingerprints)
    try:
        pg = psycopg.connect(dsn, connect_timeout=connect_timeout_s, autocommit=True)
    except psycopg.OperationalError as exc:
        raise DatabaseAdviceError(f"cannot connect to {label}: {redact_dsn(str(exc).strip())}") from None
    proposals: list[IndexProposal] = []
    checks: list[PlanCheck] = []
    skipped: dict[str, str] = {}
    with pg:
        try:
            pg.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        except psycopg.Error as exc:
            raise DatabaseAdviceError(f"hypopg is not available on {label} (install postgresql-15-hypopg and "
                                      f"allow CREATE EXTENSION hypopg): {str(exc).strip()}") from None
        version = str(pg.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        pg.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
        pg.execute("SET plan_cache_mode = force_generic_plan")
        existing = _existing_indexes(pg)
        for i, item in enumerate(items):
            fp = str(item["fingerprint"])
            if time.monotonic() - t0 > total_budget_s:
                skipped[fp] = f"total budget of {total_budget_s:g} s used up"
                continue
            shape = statement_shape(fp)
            if shape.kind != "select" and shape.kind not in ("update", "delete"):
                skipped[fp] = f"{shape.kind} statement: not explained"
                continue
            text, nparams = _parameterise(str(item.get("sample") or fp))
            name = f"pk_advice_{i}"
            try:
                pg.execute(f"PREPARE {name} AS {text}")
            except psycopg.Error as exc:
                skipped[fp] = f"cannot prepare the sample: {str(exc).strip().splitlines()[0]}"
                continue
            try:
                checks_item, props = _check(pg, fp, name, nparams, text, shape.candidates, existing, item,
                                            min_cost_reduction, t0, total_budget_s)
                checks.append(checks_item)
                proposals.extend(props)
            except psycopg.errors.QueryCanceled:
                skipped[fp] = f"EXPLAIN exceeded statement_timeout ({statement_timeout_ms} ms)"
            except psycopg.Error as exc:
                skipped[fp] = f"EXPLAIN failed: {str(exc).strip().splitlines()[0]}"
            finally:
                try:
                    pg.execute(f"DEALLOCATE {name}")
                    pg.execute("SELECT hypopg_reset()")
                except psycopg.Error:
                    pass
        proposals, checks = _one_per_index(pg, proposals, checks, min_cost_reduction)
    return IndexAdvice(label, version, proposals, checks, skipped, statement_timeout_ms, total_budget_s,
                       time.monotonic() - t0)


def _existing_indexes(pg: Any) -> dict[str, list[tuple[str, ...]]]:
    """table → the column lists of its indexes (plain columns only)."""
    rows = pg.execute("""
        SELECT c.relname, array_agg(a.attname ORDER BY k.ord)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
        GROUP BY i.indexrelid, c.relname""").fetchall()
    out: dict[str, list[tuple[str, ...]]] = {}
    for table, cols in rows:
        out.setdefault(str(table), []).append(tuple(cols))
    return out


def _table_writes(pg: Any, table: str) -> tuple[int, int]:
    row = pg.execute("""SELECT coalesce(n_tup_ins + n_tup_upd + n_tup_del, 0),
                               coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
                        FROM pg_stat_user_tables WHERE relname = %s""", [table.split(".")[-1]]).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _check(pg: Any, fp: str, name: str, nparams: int, text: str, candidates: tuple[IndexCandidate, ...],
           existing: dict[str, list[tuple[str, ...]]], item: dict[str, Any], min_red: float, t0: float,
           budget: float) -> tuple[PlanCheck, list[IndexProposal]]:
    plan = _plan(pg, name, nparams, text)
    cost = float(plan["Total Cost"])
    seq = tuple(sorted({str(n.get("Relation Name")) for n in _walk(plan) if n.get("Node Type") == "Seq Scan"}))
    tried: dict[str, Any] = {}
    best: tuple[float, IndexCandidate, float, int] | None = None
    for cand in candidates:
        ddl = candidate_ddl(cand.table, cand.columns)
        have = existing.get(cand.table.split(".")[-1], [])
        if any(idx[:len(cand.columns)] == cand.columns or idx[:1] == cand.columns[:1] and len(cand.columns) == 1
               for idx in have):
            tried[ddl] = "skipped: an existing index already leads with these columns"
            continue
        if time.monotonic() - t0 > budget:
            tried[ddl] = "skipped: total budget used up"
            continue
        new_cost, uses, size = _with_hypothetical(pg, cand.table, cand.columns, name, nparams, text)
        reduction = 1 - new_cost / cost if cost > 0 else 0.0
        tried[ddl] = {"cost_after": new_cost, "cost_reduction": reduction, "used_by_plan": uses, "size_bytes": size}
        if uses and (best is None or reduction > best[0]):
            best = (reduction, cand, new_cost, size)
    proposals = []
    if best is not None and best[0] >= min_red:
        reduction, cand, new_cost, size = best
        writes, reads = _table_writes(pg, cand.table)
        heavy = writes >= WRITE_HEAVY_RATIO * max(reads, 1)
        saved = float(item.get("calls", 0)) * float(item.get("mean_ms", 0)) * reduction
        cost_text = (f"{cand.table} had {writes:,} tuple writes against {reads:,} tuples read since the statistics "
                     f"were reset: each INSERT, and each UPDATE of an indexed column, also writes the "
                     f"~{size / 1e6:,.1f} MB index")
        if heavy:
            cost_text = "WRITE-HEAVY TABLE: " + cost_text + "; measure write latency after creating it"
        proposals.append(IndexProposal(fp, cand.table, cand.columns, candidate_ddl(cand.table, cand.columns),
                                       cost, new_cost, reduction, saved, size, writes, reads, heavy, cost_text,
                                       total_saved_ms=saved))
        outcome = f"propose {candidate_ddl(cand.table, cand.columns)} (plan cost −{reduction:.0%})"
    elif best is not None:
        outcome = f"no index cuts the plan cost by {min_red:.0%} (best −{best[0]:.0%})"
    elif not candidates:
        outcome = "no column to index in the statement" + (f"; sequential scan on {', '.join(seq)}" if seq else "")
    else:
        outcome = "no candidate index is used by the planner, or an index on these columns already exists"
    return PlanCheck(fp, text, cost, str(plan.get("Node Type")), seq, tried, outcome), proposals


def _one_per_index(pg: Any, proposals: list[IndexProposal], checks: list[PlanCheck], min_red: float
                   ) -> tuple[list[IndexProposal], list[PlanCheck]]:
    """The proposals merged to one per index, and one per leading-column family where the longer index
    serves the shorter one's statements (module docstring), most time saved first; the checks of the
    statements folded into another index say which one serves them."""
    by_ddl: dict[str, list[IndexProposal]] = {}
    for p in sorted(proposals, key=lambda p: -p.saved_ms):
        by_ddl.setdefault(p.ddl, []).append(p)
    merged = [group[0].serving([q.served() for q in group[1:]]) for group in by_ddl.values()]
    statements = {c.fingerprint: c.statement for c in checks}
    served_by: dict[str, tuple[str, float]] = {}
    kept: list[IndexProposal] = []
    for p in sorted(merged, key=lambda p: (-len(p.columns), -p.total_saved_ms)):
        hosts = [i for i, q in enumerate(kept) if q.table == p.table and len(q.columns) > len(p.columns)
                 and q.columns[:len(p.columns)] == p.columns]
        for i in hosts:
            under = [_served_under(pg, kept[i], s, statements[s.fingerprint]) for s in (p.served(), *p.also_serves)]
            if all(u is not None and u.cost_reduction >= min_red for u in under):
                kept[i] = kept[i].serving([u for u in under if u is not None])
                served_by.update({u.fingerprint: (kept[i].ddl, u.cost_reduction) for u in under if u is not None})
                break
        else:
            kept.append(p)
    for p in kept:
        for s in p.also_serves:
            served_by.setdefault(s.fingerprint, (p.ddl, s.cost_reduction))
    checks = [replace(c, outcome=f"served by the proposed {served_by[c.fingerprint][0]} "
                                 f"(plan cost −{served_by[c.fingerprint][1]:.0%})")
              if c.fingerprint in served_by else c for c in checks]
    return sorted(kept, key=lambda p: -p.total_saved_ms), checks


def _with_hypothetical(pg: Any, table: str, columns: tuple[str, ...], name: str, nparams: int, text: str
                       ) -> tuple[float, bool, int]:
    """The prepared statement ``name`` planned with a hypothetical index on ``table`` (``columns``): the plan
    cost, whether the plan uses the index, and the index's estimated size in bytes; the index is dropped."""
    oid = int(pg.execute("SELECT indexrelid FROM hypopg_create_index(%s)",
                         [f"CREATE INDEX ON {table} ({', '.join(columns)})"]).fetchone()[0])
    try:
        after = _plan(pg, name, nparams, text)
        size = int(pg.execute("SELECT hypopg_relation_size(%s)", [oid]).fetchone()[0])
    finally:
        pg.execute("SELECT hypopg_drop_index(%s)", [oid])
    uses = any(str(oid) in str(n.get("Index Name", "")) for n in _walk(after))
    return float(after["Total Cost"]), uses, size


def _served_under(pg: Any, index: IndexProposal, statement: ServedStatement, text: str) -> ServedStatement | None:
    """``statement`` EXPLAINed again with only ``index`` (hypothetical): its cost and time saved under it,
    or None when the planner does not use it (or the EXPLAIN fails)."""
    import psycopg

    text, nparams = _parameterise(text)   # a check's statement: already numbered ($n), counted here
    name = "pk_advice_fold"
    try:
        pg.execute(f"PREPARE {name} AS {text}")   # _plan deallocates it first
        cost, uses, _ = _with_hypothetical(pg, index.table, index.columns, name, nparams, text)
    except psycopg.Error:
        return None
    finally:
        try:
            pg.execute(f"DEALLOCATE {name}")
        except psycopg.Error:
            pass
    if not uses:
        return None
    reduction = 1 - cost / statement.cost_before if statement.cost_before > 0 else 0.0
    per_share = statement.saved_ms / statement.cost_reduction if statement.cost_reduction > 0 else 0.0
    return ServedStatement(statement.fingerprint, statement.cost_before, cost, reduction, per_share * reduction)
