"""Index candidates from a statement's text alone (no live database): the columns a fingerprint filters,
joins and sorts on, parsed with ``sqlglot`` (PostgreSQL dialect; MySQL fingerprints parse the same way
for the clauses read here).

Per table: the columns compared for equality with a value (``col = ?``, ``col IN (?)``, ``col IS NULL``)
come first, then one range or sort column (``<``, ``>``, ``BETWEEN``, ``LIKE 'x%'``, else the first
``ORDER BY`` column of that table), as a B-tree serves them; a table reached only through a join gets its
join column. Limits: predicates under ``OR`` and expressions on columns (``lower(email) = ?``) are not
indexed (listed in ``notes``); an unqualified column in a multi-table statement is skipped; whether an
index already exists, and whether the planner would use it, only a live database can say
(:mod:`kit.analysis.database.advice`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IndexCandidate", "StatementShape", "candidate_ddl", "statement_shape"]


@dataclass(frozen=True)
class IndexCandidate:
    """A B-tree index on ``table`` (``columns`` in order) and why: ``equality``/``range``/``order``/``join``
    name the columns of each role."""

    table: str
    columns: tuple[str, ...]
    equality: tuple[str, ...] = ()
    range: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    join: tuple[str, ...] = ()

    @property
    def ddl(self) -> str:
        return candidate_ddl(self.table, self.columns)


@dataclass(frozen=True)
class StatementShape:
    """What a fingerprint reads: ``kind`` (select, update, delete, insert, other), ``tables``, the
    filter/join/sort columns per table, ``candidates`` (most useful first), ``single_key_lookup``
    (a SELECT from one table whose WHERE is only equalities with values: the N+1 shape), and ``notes``
    (what could not be read, e.g. a parse failure)."""

    kind: str
    tables: tuple[str, ...] = ()
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)
    joins: dict[str, tuple[str, ...]] = field(default_factory=dict)
    order_by: dict[str, tuple[str, ...]] = field(default_factory=dict)
    candidates: tuple[IndexCandidate, ...] = ()
    single_key_lookup: bool = False
    aggregate: bool = False
    notes: tuple[str, ...] = ()


def candidate_ddl(table: str, columns: tuple[str, ...] | list[str]) -> str:
    """``CREATE INDEX CONCURRENTLY <table>_<cols>_idx ON <table> (<cols>)`` (PostgreSQL)."""
    name = re.sub(r"[^a-z0-9_]+", "_", f"{table.split('.')[-1]}_{'_'.join(columns)}_idx".lower())[:63]
    return f"CREATE INDEX CONCURRENTLY {name} ON {table} ({', '.join(columns)})"


def _parseable(text: str) -> str:
    """A fingerprint made parseable: ``in(?+)`` / ``values(?+)`` lists back to one placeholder."""
    return re.sub(r"\(\s*\?\+\s*\)", "(?)", text).replace("$", "")


def _conjuncts(node: Any) -> Any:
    from sqlglot import exp

    if isinstance(node, exp.And):
        yield from _conjuncts(node.left)
        yield from _conjuncts(node.right)
    elif isinstance(node, exp.Paren):
        yield from _conjuncts(node.this)
    else:
        yield node


def statement_shape(fingerprint: str) -> StatementShape:
    """Parse one fingerprint (``?`` placeholders) and derive its index candidates; never raises."""
    import sqlglot
    from sqlglot import exp

    text = _parseable(fingerprint)
    try:
        tree = sqlglot.parse_one(text, read="postgres")
    except Exception as exc:  # noqa: BLE001 - sqlglot raises several error types; any means "not parsed"
        return StatementShape("other", notes=(f"not parsed: {str(exc).splitlines()[0][:120]}",))
    if tree is None:
        return StatementShape("other", notes=("empty statement",))
    kinds: dict[Any, str] = {exp.Select: "select", exp.Update: "update", exp.Delete: "delete", exp.Insert: "insert"}
    kind = kinds.get(type(tree), "other")
    if kind in ("insert", "other"):
        return StatementShape(kind)
    aliases: dict[str, str] = {}
    tables: list[str] = []
    for table in tree.find_all(exp.Table):
        name = table.name if not table.db else f"{table.db}.{table.name}"
        if not name:
            continue
        tables.append(name)
        aliases[table.alias_or_name] = name
        aliases[table.name] = name
    tables = list(dict.fromkeys(tables))
    notes: list[str] = []

    def owner(col: exp.Column) -> str | None:
        if col.table:
            return aliases.get(col.table)
        return tables[0] if len(tables) == 1 else None

    eq: dict[str, list[str]] = {}
    rng: dict[str, list[str]] = {}
    joins: dict[str, list[str]] = {}
    order: dict[str, list[str]] = {}

    def add(target: dict[str, list[str]], col: exp.Column) -> None:
        t = owner(col)
        if t is None:
            notes.append(f"column {col.sql()} not attributed to a table")
            return
        if col.name not in target.setdefault(t, []):
            target[t].append(col.name)

    def value_side(node: exp.Expression) -> bool:
        return not any(True for _ in node.find_all(exp.Column))

    where = tree.args.get("where")
    only_equalities = where is not None
    if where is not None:
        for pred in _conjuncts(where.this):
            left = pred.args.get("this")
            right = pred.args.get("expression")
            if isinstance(pred, exp.EQ | exp.Is) and isinstance(left, exp.Column) and right is not None \
                    and value_side(right):
                add(eq, left)
            elif isinstance(pred, exp.EQ) and isinstance(right, exp.Column) and left is not None \
                    and value_side(left):
                add(eq, right)
            elif isinstance(pred, exp.EQ) and isinstance(left, exp.Column) and isinstance(right, exp.Column):
                add(joins, left)
                add(joins, right)
                only_equalities = False
            elif isinstance(pred, exp.In) and isinstance(left, exp.Column):
                add(eq, left)
                only_equalities = False
            elif isinstance(pred, exp.GT | exp.GTE | exp.LT | exp.LTE | exp.Between) and isinstance(left, exp.Column):
                add(rng, left)
                only_equalities = False
            elif isinstance(pred, exp.Like) and isinstance(left, exp.Column) and isinstance(right, exp.Literal) \
                    and not str(right.this).startswith("%"):
                add(rng, left)
                only_equalities = False
            else:
                only_equalities = False
                if isinstance(pred, exp.Or):
                    notes.append("OR predicates not indexed: " + pred.sql()[:80])
                elif any(isinstance(c.parent, exp.Func) for c in pred.find_all(exp.Column)):
                    notes.append("expression on a column (needs an expression index): " + pred.sql()[:80])
    for join in tree.find_all(exp.Join):
        on = join.args.get("on")
        if on is None:
            continue
        for pred in _conjuncts(on):
            if isinstance(pred, exp.EQ) and isinstance(pred.this, exp.Column) and isinstance(pred.expression,
                                                                                               exp.Column):
                add(joins, pred.this)
                add(joins, pred.expression)
            elif isinstance(pred, exp.EQ) and isinstance(pred.this, exp.Column) and value_side(pred.expression):
                add(eq, pred.this)
    order_node = tree.args.get("order")
    if order_node is not None:
        for ordered in order_node.expressions:
            if isinstance(ordered.this, exp.Column):
                add(order, ordered.this)
    aggregate = any(True for _ in tree.find_all(exp.AggFunc))
    candidates: list[IndexCandidate] = []
    for t in tables:
        e, r, o, j = eq.get(t, []), rng.get(t, []), order.get(t, []), joins.get(t, [])
        if e or r:
            tail = r[:1] if r else [c for c in o if c not in e][:1]
            cols = tuple(dict.fromkeys([*e, *tail]))
            candidates.append(IndexCandidate(t, cols, tuple(e), tuple(r), tuple(c for c in tail if c in o),
                                             ()))
    driving = {c.table for c in candidates}
    for t in tables:
        j = joins.get(t, [])
        if j and t not in driving:
            candidates.append(IndexCandidate(t, (j[0],), join=(j[0],)))
    single = (kind == "select" and len(tables) == 1 and not list(tree.find_all(exp.Join)) and only_equalities
              and not order
              and bool(eq.get(tables[0] if tables else "", [])) and not aggregate)
    return StatementShape(kind, tuple(tables), {k: tuple(v) for k, v in {**eq, **{
        t: tuple(dict.fromkeys([*eq.get(t, []), *rng.get(t, [])])) for t in rng}}.items()},
        {k: tuple(v) for k, v in joins.items()}, {k: tuple(v) for k, v in order.items()},
        tuple(candidates), single, aggregate, tuple(dict.fromkeys(notes)))
