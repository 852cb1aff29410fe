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
"""

from __future__ import annotations

import duckdb
import numba
import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["burst_frame"]

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


def burst_frame(con: duckdb.DuckDBPyConnection, events: str, gap_ms: float, min_repeat: int) -> pd.DataFrame:
    """:func:`kit.analysis.database.nplus1.burst_sql`'s frame (``events``: the SQL of the window's events)."""
    names = con.execute(f"""SELECT hash({_PART}) AS h, {_PART}, count(*) AS calls, sum(total_ms) AS total_ms
FROM ({events}) GROUP BY ALL ORDER BY h""").df()
    cols = ["db_system", "database", "fingerprint", "bursts", "calls_in_bursts", "median_burst", "max_burst",
            "median_burst_span_ms", "ms_in_bursts", "calls", "total_ms", "sessions"]
    if names.empty:
        return pd.DataFrame(columns=cols)
    reader = con.sql(f"SELECT hash({_PART}) AS h, epoch_us(ts) AS t, total_ms FROM ({events})").to_arrow_reader(1 << 20)
    table = pa.Table.from_batches(list(reader), schema=reader.schema)
    h, t = (table.column(c).combine_chunks().to_numpy() for c in ("h", "t"))
    ms = np.nan_to_num(table.column("total_ms").combine_chunks().to_numpy(zero_copy_only=False).astype(np.float64))
    del table
    keys = names["h"].to_numpy(dtype=np.uint64)
    uniq, first_row = np.unique(keys, return_index=True)
    code = _codes(h, uniq)
    del h
    order = np.empty(0, dtype=np.int64) if _in_time_order(code, t, uniq.size) else np.argsort(t, kind="stable")
    b_code, b_n, b_ms, b_span, largest = _bursts(code, t, ms, order, uniq.size, float(gap_ms),
                                                 int(min_repeat))
    del code, t, ms, order
    key = ["db_system", "database", "fingerprint"]
    named = names.iloc[first_row].reset_index(drop=True)   # partition code → its names (any one, as any_value)
    totals = names.groupby(key, dropna=False, sort=False).agg(
        calls=("calls", "sum"), total_ms=("total_ms", lambda x: x.sum(min_count=1)),
        sessions=("session_id", "nunique")).reset_index()
    bursts = pd.DataFrame({"c": b_code, "n": b_n, "ms": b_ms, "span": b_span})
    bursts[key] = named.loc[b_code, key].to_numpy()
    per = bursts.groupby(key, dropna=False, sort=False).agg(
        bursts=("n", "size"), calls_in_bursts=("n", "sum"), median_burst=("n", "median"),
        median_burst_span_ms=("span", "median"), ms_in_bursts=("ms", lambda x: x.sum(min_count=1))).reset_index()
    tops = named[key].assign(max_burst=largest)
    tops = tops[tops["max_burst"] > 0].groupby(key, dropna=False, sort=False)["max_burst"].max().reset_index()
    out = totals.merge(tops, on=key, how="left").merge(per, on=key, how="left")
    out["bursts"] = out["bursts"].fillna(0).astype(np.int64)
    out["max_burst"] = out["max_burst"].fillna(1).clip(lower=1).astype(np.int64)
    out = out.sort_values("ms_in_bursts", ascending=False, na_position="last", kind="stable")
    return out[cols].reset_index(drop=True)
