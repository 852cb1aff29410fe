"""The demo's ``queries``: pg_stat_statements-like cumulative snapshots of 32 fingerprints (31, plus the N+1
of api 2.14.0) and slow-query log events."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from kit import warehouse
from kit.demo.catalog import SERVICES, US_PER_MIN
from kit.demo.incidents import REGRESSION_ROUTE, SLOW_QUERY, DemoIncident, window_mask

# The N+1 of api 2.14.0's product serializer: one variant lookup per product request before the deploy,
# one per variant (~25) while 2.14.0 runs; ~4.5 ms each, so ~110 ms more per request.
NPLUS1_QUERY = "SELECT * FROM product_variants WHERE product_id = ?"
NPLUS1_CALLS_PER_REQUEST = (1.0, 25.0)   # outside / during the regression window
NPLUS1_MEAN_MS = 4.5

# fingerprint, service whose DB-backed requests issue it, calls per such request, mean ms, rows per call,
# blocks per call, share of blocks read from disk
_FINGERPRINTS: tuple[tuple[str, str, float, float, float, float, float], ...] = (
    ("SELECT * FROM products WHERE id = ?", "api", 1.0, 0.35, 1, 4, 0.01),
    ("SELECT * FROM products WHERE id = ?", "web", 1.0, 0.35, 1, 4, 0.01),
    ("SELECT id, name, price_cents, stock FROM products WHERE id IN (?)", "api", 0.6, 1.8, 12, 40, 0.02),
    ("SELECT * FROM product_images WHERE product_id = ? ORDER BY position", "web", 1.0, 0.6, 6, 8, 0.03),
    ("SELECT * FROM reviews WHERE product_id = ? ORDER BY created_at DESC LIMIT ? OFFSET ?", "api", 0.25, 3.5,
     20, 60, 0.08),
    ("SELECT avg(rating), count(*) FROM reviews WHERE product_id = ?", "web", 0.8, 2.2, 1, 45, 0.05),
    ("SELECT p.* FROM products p JOIN product_categories pc ON pc.product_id = p.id WHERE pc.category_id = ? "
     "ORDER BY p.popularity DESC LIMIT ? OFFSET ?", "web", 0.3, 9.0, 24, 300, 0.04),
    ("SELECT * FROM categories WHERE parent_id = ?", "web", 0.4, 0.25, 14, 3, 0.0),
    ("SELECT quantity FROM inventory WHERE product_id = ? AND warehouse_id = ?", "api", 0.9, 0.3, 1, 3, 0.01),
    ("SELECT * FROM prices WHERE product_id = ? AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)",
     "api", 0.7, 0.5, 1, 5, 0.01),
    ("SELECT * FROM promotions WHERE active AND starts_at <= ? AND ends_at > ?", "api", 0.3, 1.2, 8, 10, 0.0),
    ("SELECT * FROM sessions WHERE token_hash = ?", "api", 0.5, 0.2, 1, 3, 0.0),
    ("UPDATE sessions SET last_seen_at = ? WHERE id = ?", "api", 0.2, 0.6, 1, 4, 0.0),
    ("SELECT * FROM users WHERE id = ?", "api", 0.4, 0.25, 1, 4, 0.02),
    ("SELECT * FROM users WHERE email = ?", "web", 0.05, 0.4, 1, 5, 0.05),
    (SLOW_QUERY, "api", 0.06, 6.0, 18, 120, 0.06),
    ("SELECT * FROM orders WHERE id = ?", "api", 0.1, 0.3, 1, 4, 0.05),
    ("SELECT * FROM order_items WHERE order_id = ?", "web", 0.05, 0.5, 4, 6, 0.05),
    ("SELECT * FROM carts WHERE id = ?", "checkout", 1.0, 0.3, 1, 3, 0.0),
    ("SELECT ci.*, p.name, p.price_cents FROM cart_items ci JOIN products p ON p.id = ci.product_id "
     "WHERE ci.cart_id = ?", "checkout", 1.0, 0.9, 3, 12, 0.01),
    ("INSERT INTO cart_items (cart_id, product_id, quantity) VALUES (?, ?, ?) ON CONFLICT (cart_id, product_id) "
     "DO UPDATE SET quantity = cart_items.quantity + excluded.quantity", "checkout", 0.35, 1.1, 1, 8, 0.0),
    ("UPDATE carts SET updated_at = ? WHERE id = ?", "checkout", 0.4, 0.7, 1, 4, 0.0),
    ("INSERT INTO orders (user_id, cart_id, total_cents, status, created_at) VALUES (?, ?, ?, ?, ?) "
     "RETURNING id", "checkout", 0.05, 2.5, 1, 10, 0.0),
    ("INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES (?, ?, ?, ?)",
     "checkout", 0.12, 0.8, 1, 6, 0.0),
    ("UPDATE inventory SET quantity = quantity - ? WHERE product_id = ? AND quantity >= ?", "checkout", 0.12,
     1.6, 1, 6, 0.01),
    ("INSERT INTO payments (order_id, provider, amount_cents, status) VALUES (?, ?, ?, ?)", "checkout", 0.05,
     1.2, 1, 6, 0.0),
    ("SELECT * FROM shipping_rates WHERE country = ? AND weight_g <= ? ORDER BY weight_g LIMIT ?", "checkout",
     0.2, 0.8, 1, 5, 0.0),
    ("SELECT * FROM stores WHERE id = ?", "api", 0.03, 0.3, 1, 3, 0.0),
    ("SELECT count(*) FROM orders WHERE created_at >= ? AND status = ?", "api", 0.01, 45.0, 1, 2500, 0.15),
    ("SELECT * FROM audit_log WHERE entity = ? AND entity_id = ? ORDER BY ts DESC LIMIT ?", "api", 0.01, 28.0,
     50, 900, 0.3),
    ("BEGIN", "checkout", 0.5, 0.02, 0, 0, 0.0),
    ("COMMIT", "checkout", 0.5, 0.4, 0, 0, 0.0),
)


def _sample_of(fingerprint: str) -> str:
    """An example statement as a server log shows it, literals replaced by numbered parameters."""
    parts = fingerprint.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def _query_id(fingerprint: str) -> str:
    return str(int.from_bytes(hashlib.sha256(fingerprint.encode()).digest()[:8], "big", signed=True))


def write_queries(con: Any, src: Any, start: datetime, n_minutes: int, incidents: tuple[DemoIncident, ...],
                   seed: int, days: int) -> None:
    """pg_stat_statements-like cumulative snapshots every 10 min and slow-query (> 100 ms) log events."""
    snap_min = 10 if days <= 14 else 15
    start_us = int(start.timestamp() * 1e6)
    step_us = snap_min * US_PER_MIN
    n_b = math.ceil(n_minutes / snap_min)
    ts_us = start_us + (np.arange(n_b, dtype=np.int64) + 1) * step_us
    svc_sql = "[" + ",".join(f"'{s}'" for s in SERVICES) + "]"
    agg = con.execute(f"""
        SELECT list_position({svc_sql}, q.service) - 1 AS s, (epoch_us(q.ts) - {start_us}) // {step_us} AS b,
               count(*) AS n
        FROM requests q JOIN dim_routes r ON r.template = q.route
        WHERE r.db AND q.cache_status <> 'HIT' GROUP BY ALL""").fetchnumpy()
    db_req = np.zeros((len(SERVICES), n_b))
    db_req[agg["s"].astype(np.int64), agg["b"].astype(np.int64)] = agg["n"]
    rng = np.random.default_rng([seed, 4])
    db_inc = next(i for i in incidents if i.type == "db_saturation")
    in_db = window_mask(ts_us, db_inc)
    w0, w1 = db_inc.start.timestamp() * 1e6, db_inc.end.timestamp() * 1e6
    ramp = np.clip((ts_us - w0) / max((w1 - w0) / 3, 1), 0, 1)
    load = db_req.sum(axis=0) / (np.quantile(db_req.sum(axis=0), 0.99) or 1.0)

    # combine fingerprints issued by several services
    fps = list(dict.fromkeys(f[0] for f in _FINGERPRINTS))
    F = len(fps)
    calls = np.zeros((F, n_b))
    mean_ms = np.zeros((F, n_b))
    props: dict[str, tuple[float, float, float]] = {}
    sigma = 0.9
    for fp, svc, cpr, ms, rows, blks, read in _FINGERPRINTS:
        i = fps.index(fp)
        calls[i] += rng.poisson(db_req[SERVICES.index(svc)] * cpr)
        mean_ms[i] = ms
        props[fp] = (rows, blks, read)
    slow_i = fps.index(SLOW_QUERY)
    contention = np.where(in_db, 1.0 + 2.5 * ramp, 1.0) * (1.0 + 0.25 * load ** 3)
    mean_ms = mean_ms * contention[None, :] * np.exp(rng.normal(0, 0.08, (F, n_b)))
    mean_ms[slow_i] = np.where(in_db, 1800.0 * np.maximum(ramp, 0.3) * np.exp(rng.normal(0, 0.1, n_b)),
                               mean_ms[slow_i])
    calls[slow_i] = np.where(in_db, calls[slow_i] * 1.6 + 2, calls[slow_i])
    total_ms = calls * mean_ms
    rows_pc = np.array([props[fp][0] for fp in fps])
    blks_pc = np.array([props[fp][1] for fp in fps])
    read_share = np.array([props[fp][2] for fp in fps])
    rows_d = np.rint(calls * rows_pc[:, None] * np.exp(rng.normal(0, 0.1, (F, n_b))))
    blks = calls * blks_pc[:, None] * np.exp(rng.normal(0, 0.1, (F, n_b)))
    read_d = np.rint(blks * read_share[:, None] * np.where(in_db & (np.arange(F) == slow_i)[:, None], 8.0, 1.0))
    hit_d = np.rint(blks) - np.minimum(read_d, np.rint(blks))
    base = rng.integers(10_000, 2_000_000, F)[:, None]  # counts accumulated before the history starts
    cum = {"calls": np.cumsum(calls, axis=1) + base, "total_ms": np.round(np.cumsum(total_ms, axis=1)
                                                                         + base * mean_ms[:, :1], 3),
           "rows": np.cumsum(rows_d, axis=1) + base * rows_pc[:, None],
           "hit": np.cumsum(hit_d, axis=1) + base * blks_pc[:, None],
           "read": np.cumsum(read_d, axis=1) + np.rint(base * blks_pc[:, None] * read_share[:, None])}
    user = ["backoffice" if ("audit_log" in fp or "count(*)" in fp) else "shop_app" for fp in fps]
    snap = pa.table({
        "ts": pa.array(np.tile(ts_us, F)).cast(pa.timestamp("us", tz="UTC")),
        "user_name": pa.array([u for u in user for _ in range(n_b)]),
        "kind": pa.array(["snapshot"] * (F * n_b)),
        "fingerprint": pa.array([fp for fp in fps for _ in range(n_b)]),
        "calls": pa.array(cum["calls"].reshape(-1).astype(np.int64)),
        "total_ms": pa.array(cum["total_ms"].reshape(-1)),
        "rows": pa.array(cum["rows"].reshape(-1).astype(np.int64)),
        "hit": pa.array(cum["hit"].reshape(-1).astype(np.int64)),
        "read": pa.array(cum["read"].reshape(-1).astype(np.int64)),
    })

    # slow-query log events: executions above 100 ms (log_min_duration_statement = 100ms)
    mu = np.log(np.maximum(mean_ms, 1e-3)) - sigma ** 2 / 2
    z = (math.log(100.0) - mu) / sigma
    p_slow = 0.5 * (1 - np.vectorize(math.erf)(z / math.sqrt(2)))
    p_slow[slow_i] = np.where(in_db, 0.97, p_slow[slow_i])
    n_ev = np.minimum(rng.poisson(calls * p_slow), 2000).astype(np.int64)
    f_idx = np.repeat(np.repeat(np.arange(F), n_b), n_ev.reshape(-1))
    b_idx = np.repeat(np.tile(np.arange(n_b), F), n_ev.reshape(-1))
    E = len(f_idx)
    ev_ts = start_us + b_idx * step_us + rng.integers(0, step_us, E)
    dur = 100.0 * (1.0 + rng.pareto(2.2, E))
    slow_window = (f_idx == slow_i) & in_db[b_idx]
    dur = np.where(slow_window, np.maximum(100.0, 1500.0 * np.exp(0.5 * rng.standard_normal(E))), dur)
    order = np.argsort(ev_ts, kind="stable")
    ev = pa.table({
        "ts": pa.array(ev_ts[order]).cast(pa.timestamp("us", tz="UTC")),
        "user_name": pa.array(np.array(user, dtype=object)[f_idx[order]], pa.string()),
        "kind": pa.array(["event"] * E),
        "fingerprint": pa.array(np.array(fps, dtype=object)[f_idx[order]], pa.string()),
        "calls": pa.array(np.ones(E, dtype=np.int64)),
        "total_ms": pa.array(np.round(dur[order], 3)),
        "rows": pa.array(np.rint(rows_pc[f_idx[order]]).astype(np.int64)),
        "hit": pa.array(np.full(E, None), pa.int64()),
        "read": pa.array(np.full(E, None), pa.int64()),
    })
    snap = pa.concat_tables([snap, _nplus1_snapshots(con, start_us, step_us, ts_us, incidents, seed)])
    fps = [*fps, NPLUS1_QUERY]
    con.register("fp_src", pa.table({"fingerprint": fps, "query_id": [_query_id(f) for f in fps],
                                     "sample": [_sample_of(f) for f in fps]}))
    written = 0
    for table in (snap, ev):
        con.register("q_src", table)
        con.execute(f"""
            INSERT INTO queries (ts, db_system, database, user_name, kind, fingerprint, query_id, sample, calls,
                                 total_ms, rows, shared_blks_hit, shared_blks_read, source_id)
            SELECT q.ts, 'postgresql', 'shop', q.user_name, q.kind, q.fingerprint, f.query_id, f.sample, q.calls,
                   q.total_ms, q.rows, q.hit, q.read, {src.source_id}
            FROM q_src q JOIN fp_src f USING (fingerprint) ORDER BY q.ts, q.fingerprint""")
        con.unregister("q_src")
        written += table.num_rows
    con.unregister("fp_src")
    warehouse.finish_source(con, src, lines_in=None, rows_loaded=written)


def _nplus1_snapshots(con: Any, start_us: int, step_us: int, ts_us: np.ndarray,
                      incidents: tuple[DemoIncident, ...], seed: int) -> pa.Table:
    """Cumulative snapshots of :data:`NPLUS1_QUERY`: calls follow the product route's requests not served
    from cache, ~1 per request, ~25 during the latency regression (own rng stream: the other fingerprints'
    numbers do not change)."""
    rng = np.random.default_rng([seed, 4, 1])
    n_b = len(ts_us)
    agg = con.execute(f"""
        SELECT (epoch_us(ts) - {start_us}) // {step_us} AS b, count(*) AS n FROM requests
        WHERE route = ? AND coalesce(cache_status, '') <> 'HIT' GROUP BY ALL""", [REGRESSION_ROUTE]).fetchnumpy()
    req = np.zeros(n_b)
    keep = (agg["b"] >= 0) & (agg["b"] < n_b)
    req[agg["b"][keep].astype(np.int64)] = agg["n"][keep]
    reg = next(i for i in incidents if i.type == "latency_regression")
    cpr = np.where(window_mask(ts_us, reg), NPLUS1_CALLS_PER_REQUEST[1], NPLUS1_CALLS_PER_REQUEST[0])
    calls = rng.poisson(req * cpr).astype(np.float64)
    mean_ms = NPLUS1_MEAN_MS * np.exp(rng.normal(0, 0.08, n_b))
    rows = calls  # one row per lookup
    blks = np.rint(calls * 4 * np.exp(rng.normal(0, 0.1, n_b)))
    read = np.rint(blks * 0.01)
    base = int(rng.integers(10_000, 2_000_000))
    return pa.table({
        "ts": pa.array(ts_us).cast(pa.timestamp("us", tz="UTC")),
        "user_name": pa.array(["shop_app"] * n_b),
        "kind": pa.array(["snapshot"] * n_b),
        "fingerprint": pa.array([NPLUS1_QUERY] * n_b),
        "calls": pa.array((np.cumsum(calls) + base).astype(np.int64)),
        "total_ms": pa.array(np.round(np.cumsum(calls * mean_ms) + base * NPLUS1_MEAN_MS, 3)),
        "rows": pa.array((np.cumsum(rows) + base).astype(np.int64)),
        "hit": pa.array((np.cumsum(blks - read) + base * 4).astype(np.int64)),
        "read": pa.array((np.cumsum(read) + base // 25).astype(np.int64)),
    })
