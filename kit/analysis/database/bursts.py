"""The burst detection of :func:`kit.analysis.database.nplus1.burst_sql` in one pass over the events.

:func:`burst_sql` sorts the events per partition (session and fingerprint: the 64-bit hash ``h`` of
``db_system, database, user_name, session_id, fingerprint``) with window functions, twice, and scans the
events three times. Here one query fetches ``h``, the time (epoch µs) and ``total_ms`` of every event in
the table's order, a second one the partitions' names with their calls and time, and a numba kernel walks
the events once in time order keeping, per partition, the burst it is in: an event more than ``gap_ms``
after the partition's previous one closes that burst and opens a new one. The events need no sort when
the table holds them in time order within each partition (a log is written in time order); otherwise a
stable argsort of the times comes first. Ties in time do not change a burst's size, time or span, so the
result is :func:`burst_sql`'s (an execution without a time counts 0 ms in its burst; floats to rounding:
a burst's time is summed directly rather than as a difference of running sums). Memory: 24 bytes per
event for the arrays, held while the kernel runs.

The same two reads (:func:`event_pass`) also give the digest its per-execution figures
(:func:`event_digest`), so the analysis reads the window's events once: the per-partition sums add up to
the per-fingerprint ones, and p50/p95/p99 (DuckDB's ``quantile_cont``) and the variance-to-mean come from
the per-event times grouped by fingerprint (a counting sort, then one selection per fingerprint). Floats
agree with the digest SQL to rounding (sums in another order); the arrays are held from the digest to the
burst pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numba
import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["EventPass", "burst_frame", "event_digest", "event_pass"]

_PART = "db_system, database, user_name, session_id, fingerprint"


@numba.njit(cache=True)
def _codes(h: np.ndarray, uniq: np.ndarray) -> np.ndarray:
    """The index of each of ``h`` in ``uniq`` (sorted, distinct; every ``h`` is in it), by an open-addressing
    table on the hash's low bits."""
    size = 1
    while size < 2 * uniq.size:
        size *= 2
    mask = np.uint64(size - 1)
    slot_key = np.zeros(size, dtype=np.uint64)
    slot_code = np.full(size, -1, dtype=np.int64)
    for j in range(uniq.size):
        s = uniq[j] & mask
        while slot_code[s] >= 0:
            s = (s + np.uint64(1)) & mask
        slot_key[s] = uniq[j]
        slot_code[s] = j
    out = np.empty(h.size, dtype=np.int64)
    for i in range(h.size):
        s = h[i] & mask
        while slot_key[s] != h[i] or slot_code[s] < 0:
            s = (s + np.uint64(1)) & mask
        out[i] = slot_code[s]
    return out


@numba.njit(cache=True)
def _in_time_order(code: np.ndarray, t: np.ndarray, n_codes: int) -> bool:
    last = np.full(n_codes, np.iinfo(np.int64).min, dtype=np.int64)
    for i in range(code.size):
        c = code[i]
        if t[i] < last[c]:
            return False
        last[c] = t[i]
    return True


@numba.njit(cache=True)
def _bursts(code: np.ndarray, t: np.ndarray, ms: np.ndarray, order: np.ndarray, n_codes: int, gap_ms: float,
            min_repeat: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bursts of ≥ ``min_repeat`` events (their partition code, size, time ms, span ms), and per partition
    the largest burst of two events or more (of one, when ``min_repeat`` <= 1; 0 when none). ``t``: epoch
    µs; ``order``: the events in time order (empty: as they are)."""
    last = np.zeros(n_codes, dtype=np.int64)
    first = np.zeros(n_codes, dtype=np.int64)
    count = np.zeros(n_codes, dtype=np.int64)
    total = np.zeros(n_codes, dtype=np.float64)
    largest = np.zeros(n_codes, dtype=np.int64)
    cap = code.size // max(min_repeat, 1) + 1
    out_code = np.empty(cap, dtype=np.int64)
    out_n = np.empty(cap, dtype=np.int64)
    out_ms = np.empty(cap, dtype=np.float64)
    out_span = np.empty(cap, dtype=np.float64)
    k = 0
    smallest = 2 if min_repeat > 1 else 1
    for j in range(code.size + n_codes):
        if j < code.size:
            i = order[j] if order.size else j
            c = code[i]
            if count[c] > 0 and (t[i] - last[c]) / 1000.0 <= gap_ms:
                count[c] += 1
                total[c] += ms[i]
                last[c] = t[i]
                continue
        else:   # the end: close every partition's last burst
            c = j - code.size
            i = -1
        n = count[c]
        if n >= smallest and n > largest[c]:
            largest[c] = n
        if n >= min_repeat and n > 0:
            out_code[k] = c
            out_n[k] = n
            out_ms[k] = total[c]
            out_span[k] = (last[c] - first[c]) / 1000.0
            k += 1
        if i >= 0:
            count[c] = 1
            total[c] = ms[i]
            first[c] = t[i]
            last[c] = t[i]
    return out_code[:k], out_n[:k], out_ms[:k], out_span[:k], largest


@dataclass(frozen=True)
class EventPass:
    """The window's events read once: ``names`` one row per partition (``h`` and :data:`_PART`, sorted by
    ``h``) with its ``calls``, ``total_ms``, ``rows``, ``rows_examined``, ``lock_ms`` (sums; NULL when
    none), ``max_ms`` and a ``sample``; per event (the table's order) its partition ``code`` (row of ``uniq``),
    ``t`` (epoch µs) and ``ms`` (``total_ms``, NaN when NULL). What :func:`burst_frame` and the digest's
    per-execution figures (:func:`event_digest`) are computed from."""

    names: pd.DataFrame
    uniq: np.ndarray
    first_row: np.ndarray
    code: np.ndarray
    t: np.ndarray
    ms: np.ndarray


def event_pass(con: duckdb.DuckDBPyConnection, events: str) -> EventPass:
    """Read the events of ``events`` (SQL) once: one aggregate per partition and one fetch of three numbers
    per event (see :class:`EventPass`)."""
    names = con.execute(f"""SELECT hash({_PART}) AS h, {_PART}, count(*) AS calls, sum(total_ms) AS total_ms,
       sum(rows) AS rows, sum(rows_examined) AS rows_examined, sum(lock_ms) AS lock_ms, max(total_ms) AS max_ms,
       any_value(sample) AS sample
FROM ({events}) GROUP BY ALL ORDER BY h""").df()
    empty = np.empty(0, dtype=np.int64)
    if names.empty:
        return EventPass(names, empty.astype(np.uint64), empty, empty, empty, empty.astype(np.float64))
    reader = con.sql(f"SELECT hash({_PART}) AS h, epoch_us(ts) AS t, total_ms FROM ({events})").to_arrow_reader(1 << 20)
    table = pa.Table.from_batches(list(reader), schema=reader.schema)
    h, t = (table.column(c).combine_chunks().to_numpy() for c in ("h", "t"))
    ms = table.column("total_ms").combine_chunks().to_numpy(zero_copy_only=False).astype(np.float64)
    del table
    keys = names["h"].to_numpy(dtype=np.uint64)
    uniq, first_row = np.unique(keys, return_index=True)
    code = _codes(h, uniq)
    return EventPass(names, uniq, first_row, code, t, ms)


@numba.njit(cache=True)
def _by_group(group: np.ndarray, code: np.ndarray, ms: np.ndarray, n_groups: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per group (``group[code[i]]`` of each event): the count, mean and sum of squared deviations of the
    non-NaN ``ms``, and those values laid out group after group (a counting sort)."""
    n = np.zeros(n_groups, dtype=np.int64)
    total = np.zeros(n_groups, dtype=np.float64)
    for i in range(code.size):
        if not np.isnan(ms[i]):
            g = group[code[i]]
            n[g] += 1
            total[g] += ms[i]
    mean = total / np.maximum(n, 1)
    dev2 = np.zeros(n_groups, dtype=np.float64)
    at = np.zeros(n_groups, dtype=np.int64)
    for g in range(1, n_groups):
        at[g] = at[g - 1] + n[g - 1]
    grouped = np.empty(n.sum(), dtype=np.float64)
    for i in range(code.size):
        if not np.isnan(ms[i]):
            g = group[code[i]]
            d = ms[i] - mean[g]
            dev2[g] += d * d
            grouped[at[g]] = ms[i]
            at[g] += 1
    return n, mean, dev2, grouped


_FINGERPRINT_KEY = ["db_system", "database", "fingerprint"]


def _sum_or_null(x: pd.Series) -> float:
    """SQL's sum: NaN (NULL) when no value, not 0."""
    return x.sum(min_count=1)


def event_digest(held: EventPass) -> pd.DataFrame:
    """The digest's per-execution aggregate (``v`` in :func:`kit.analysis.database.digest.digest_sql`) from
    the events read once: per (db_system, database ('' for NULL), fingerprint) the ``v_sample``, ``v_users``
    (distinct user names, ', '-joined, sorted), ``events``, ``v_ms``, ``v_rows``, ``rows_examined``,
    ``lock_ms``, ``p50_ms``/``p95_ms``/``p99_ms`` (DuckDB's ``quantile_cont``: linear between the order
    statistics around (n - 1) q), ``max_ms`` and ``variance_to_mean`` (sample variance / mean; NULLs left
    out as SQL does)."""
    cols = ["db_system", "database", "fingerprint", "v_sample", "v_users", "events", "v_ms", "v_rows",
            "rows_examined", "lock_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms", "variance_to_mean"]
    names = held.names
    if names.empty:
        return pd.DataFrame(columns=cols)
    parts = names.assign(database=names["database"].fillna(""))
    by = parts.groupby(_FINGERPRINT_KEY, sort=False, dropna=False)
    group = by.ngroup().to_numpy()[held.first_row]   # partition code → its group (``out``'s row, same order)

    out = by.agg(
        v_sample=("sample", "first"), events=("calls", "sum"), v_ms=("total_ms", _sum_or_null),
        v_rows=("rows", _sum_or_null), rows_examined=("rows_examined", _sum_or_null),
        lock_ms=("lock_ms", _sum_or_null), max_ms=("max_ms", "max"))
    users = parts[parts["user_name"].notna()].groupby(_FINGERPRINT_KEY, sort=False, dropna=False)["user_name"].agg(
        lambda x: ", ".join(sorted(set(x))))
    out["v_users"] = users.reindex(out.index)
    # per-execution quantiles and variance, by the group of each event's partition
    n_groups = by.ngroups
    n, mean, dev2, grouped = _by_group(group, held.code, held.ms, n_groups)
    starts = np.concatenate([[0], np.cumsum(n)])
    qs = np.full((n_groups, 3), np.nan)
    for k in range(n_groups):   # one vectorized selection per fingerprint (hundreds), not per event
        if not n[k]:
            continue
        ranks = [(n[k] - 1) * q for q in (0.5, 0.95, 0.99)]
        kth = sorted({int(np.floor(r)) for r in ranks} | {int(np.ceil(r)) for r in ranks})
        part = np.partition(grouped[starts[k]:starts[k + 1]], kth)
        for j, rn in enumerate(ranks):
            lo, hi = int(np.floor(rn)), int(np.ceil(rn))
            qs[k, j] = part[lo] if lo == hi else part[lo] + (rn - lo) * (part[hi] - part[lo])
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(n >= 2, dev2 / np.maximum(n - 1, 1), np.nan)
        vm = np.where((n > 0) & (mean != 0), var / mean, np.nan)
    out["p50_ms"], out["p95_ms"], out["p99_ms"] = qs[:, 0], qs[:, 1], qs[:, 2]
    out["variance_to_mean"] = vm
    for col in ("events", "v_rows", "rows_examined"):   # NULL, not NaN, where SQL's sum has no value
        out[col] = out[col].astype("Int64")
    for col in ("v_ms", "lock_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms", "variance_to_mean"):
        out[col] = out[col].astype("Float64")
    return out.reset_index()[cols]


def burst_frame(con: duckdb.DuckDBPyConnection, events: str, gap_ms: float, min_repeat: int, *,
                held: EventPass | None = None) -> pd.DataFrame:
    """:func:`kit.analysis.database.nplus1.burst_sql`'s frame (``events``: the SQL of the window's events;
    ``held``: those events read already by :func:`event_pass`)."""
    held = held if held is not None else event_pass(con, events)
    names = held.names
    cols = ["db_system", "database", "fingerprint", "bursts", "calls_in_bursts", "median_burst", "max_burst",
            "median_burst_span_ms", "ms_in_bursts", "calls", "total_ms", "sessions"]
    if names.empty:
        return pd.DataFrame(columns=cols)
    uniq, first_row, code, t = held.uniq, held.first_row, held.code, held.t
    ms = np.nan_to_num(held.ms)
    order = np.empty(0, dtype=np.int64) if _in_time_order(code, t, uniq.size) else np.argsort(t, kind="stable")
    b_code, b_n, b_ms, b_span, largest = _bursts(code, t, ms, order, uniq.size, float(gap_ms),
                                                 int(min_repeat))
    del ms, order
    key = _FINGERPRINT_KEY
    named = names.iloc[first_row].reset_index(drop=True)   # partition code → its names (any one, as any_value)
    totals = names.groupby(key, dropna=False, sort=False).agg(
        calls=("calls", "sum"), total_ms=("total_ms", _sum_or_null),
        sessions=("session_id", "nunique")).reset_index()
    bursts = pd.DataFrame({"c": b_code, "n": b_n, "ms": b_ms, "span": b_span})
    bursts[key] = named.loc[b_code, key].to_numpy()
    per = bursts.groupby(key, dropna=False, sort=False).agg(
        bursts=("n", "size"), calls_in_bursts=("n", "sum"), median_burst=("n", "median"),
        median_burst_span_ms=("span", "median"), ms_in_bursts=("ms", _sum_or_null)).reset_index()
    tops = named[key].assign(max_burst=largest)
    tops = tops[tops["max_burst"] > 0].groupby(key, dropna=False, sort=False)["max_burst"].max().reset_index()
    out = totals.merge(tops, on=key, how="left").merge(per, on=key, how="left")
    out["bursts"] = out["bursts"].fillna(0).astype(np.int64)
    out["max_burst"] = out["max_burst"].fillna(1).clip(lower=1).astype(np.int64)
    out = out.sort_values("ms_in_bursts", ascending=False, na_position="last", kind="stable")
    return out[cols].reset_index(drop=True)
