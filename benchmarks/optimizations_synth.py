"""A 30-day synthetic warehouse for timing the optimization analyses (``benchmarks/bench_optimizations.py``):
requests, query-log entries, static assets and code profiles, at the issue's scale (100M requests, 10M
``queries`` rows) or smaller.

``generate(path, requests=..., queries=...)`` writes it and returns an :class:`OptimizationsWarehouse`.

- ``requests``, ``metrics``, ``events`` and 6 fingerprints' snapshots: ``findings_synth.generate_warehouse``
  (30 days ending at ``findings_synth.END``, 12 planted incidents; its docstring describes the traffic).
  Static responses then get the sizes of the assets below (``UPDATE ... FROM``): JavaScript is sent
  uncompressed, 90 % of the CSS responses gzip -6 compressed, images at their size.
- ``assets`` + ``asset_content``: the paths the requests name, 40 JavaScript and 40 CSS files of plausible
  compressible text (``kit.demo.assets.text_blob``; lognormal sizes, medians 40 KB and 15 KB, the largest
  JS 400 KB; about the demo's 2.5 MB of text) and 200 JPEG images of incompressible bytes.
- ``queries``: ``FINGERPRINTS`` (120 shapes over 15 tables, e.g. ``SELECT * FROM orders WHERE user_id = ?``,
  plus the 6 of findings_synth) as pg_stat_statements-like cumulative snapshots every 10 minutes for every
  fingerprint (``kind = 'snapshot'``) and, for the rest of the ``queries`` rows, single executions
  (``kind = 'event'``: skewed popularity, a lognormal duration around the fingerprint's median, rows,
  blocks). One fingerprint, ``N_PLUS_ONE``, comes in bursts of 25 executions 0.2 ms apart (an N+1 loop),
  5 % of the events.
- ``profiles``: one on-CPU folded-stack profile per service (``api``, ``web``) per hour, 48 stacks each
  (views x leaf frames; one hot frame, ``pricing._match_rules``).

Rows are generated in DuckDB SQL from ``range()`` with ``hash``-based random numbers (no Python loop per
row); a seed gives the same warehouse.
"""

from __future__ import annotations

import gzip
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import findings_synth as synth  # noqa: E402

DAYS = 30
FULL = (100_000_000, 10_000_000)   # requests, queries rows: the scale
SMALL = (10_000_000, 1_000_000)
SNAPSHOT_MIN = 10
_U64 = 18446744073709551616.0

_TABLES = ("products", "users", "orders", "order_items", "carts", "cart_items", "reviews", "inventory", "prices",
           "sessions", "payments", "shipments", "categories", "coupons", "addresses")
_SHAPES = (  # (template, median ms, rows per call)
    ("SELECT * FROM {t} WHERE id = ?", 0.3, 1),
    ("SELECT * FROM {t} WHERE user_id = ? ORDER BY created_at DESC LIMIT ?", 2.5, 20),
    ("SELECT count(*) FROM {t} WHERE created_at >= ? AND status = ?", 40.0, 1),
    ("UPDATE {t} SET updated_at = ? WHERE id = ?", 0.6, 1),
    ("INSERT INTO {t} (user_id, status, created_at) VALUES (?, ?, ?) RETURNING id", 1.2, 1),
    ("SELECT a.* FROM {t} a JOIN users u ON u.id = a.user_id WHERE a.id IN (?)", 3.0, 12),
    ("DELETE FROM {t} WHERE id = ?", 0.8, 1),
    ("SELECT * FROM {t} WHERE product_id = ? AND deleted_at IS NULL", 0.9, 4),
)
_SHAPED = tuple((shape.format(t=t), ms * (1 + (i % 7) / 3), rows)
                for i, t in enumerate(_TABLES) for shape, ms, rows in _SHAPES)
FINGERPRINTS: tuple[tuple[str, float, int], ...] = (  # fingerprint, median ms, rows per call
    *_SHAPED, *((fp, ms, 1) for fp, ms in zip(synth.FINGERPRINTS, synth._FP_MEAN_MS, strict=True)
                if fp not in {f for f, _, _ in _SHAPED}))
N_PLUS_ONE = "SELECT * FROM reviews WHERE product_id = ? AND deleted_at IS NULL"
BURST = 25            # executions per N+1 burst
BURST_SHARE = 0.05    # of the events
_VIEWS = ("product_detail", "product_list", "user_orders", "cart", "checkout", "search", "session", "home")
_LEAVES = ("pricing._match_rules", "orm.query;psycopg.execute", "json.dumps", "templates.render;jinja2.render",
           "serializers.to_representation", "cache.get;redis.read_response")


@dataclass(frozen=True)
class OptimizationsWarehouse:
    path: Path
    requests: int
    queries: int
    query_events: int
    query_snapshots: int
    assets: int
    profile_rows: int
    seconds: float
    rollup_seconds: float   # of the seconds: the per-day grouped requests the ingest keeps (refresh_rollup)


def _u(key: str, stream: int) -> str:
    """A uniform [0, 1) from a 64-bit key and a stream number (DuckDB hash)."""
    return f"(hash(({key})::UBIGINT * 16 + {stream}) / {_U64!r})"


def _assets(con, seed: int) -> pd.DataFrame:
    """Write the assets the requests name; returns path, content type, raw and gzip -6 size."""
    from kit.demo.assets import binary_blob, text_blob, write_assets
    from kit.warehouse import begin_source

    rng = np.random.default_rng([seed, 23])
    rows: list[tuple[str, str, bytes]] = []
    js = np.minimum(np.rint(40_000 * np.exp(0.9 * rng.standard_normal(40))), 400_000).astype(int)
    js[0] = 400_000
    css = np.maximum(np.rint(15_000 * np.exp(0.7 * rng.standard_normal(40))), 800).astype(int)
    for k in range(40):
        rows.append((f"/static/js/n{k}.js", "application/javascript", text_blob(rng, "js", int(js[k]))))
        rows.append((f"/static/css/n{k}.css", "text/css", text_blob(rng, "css", int(css[k]))))
    for k in range(200):
        rows.append((f"/static/img/{k}.jpg", "image/jpeg", binary_blob(rng, "jpg", int(rng.integers(4000, 60000)))))
    write_assets(con, begin_source(con, "synthetic-assets", "optimizations_synth assets"), rows)
    return pd.DataFrame({"path": [p for p, _, _ in rows], "content_type": [c for _, c, _ in rows],
                         "size_bytes": [len(b) for _, _, b in rows],
                         "gzip_bytes": [len(gzip.compress(b, 6, mtime=0)) for _, _, b in rows]})


def _serve_assets(con, assets: pd.DataFrame) -> None:
    """Static 200 responses take their asset's size: JS raw, 90 % of CSS gzip -6, images raw."""
    con.register("asset_sizes", assets)
    con.execute(f"""
        UPDATE requests SET bytes_sent = CASE
            WHEN s.content_type = 'text/css' AND {_u("epoch_us(requests.ts)", 1)} < 0.9 THEN s.gzip_bytes
            ELSE s.size_bytes END
        FROM asset_sizes s WHERE requests.path = s.path AND requests.status = 200""")
    con.unregister("asset_sizes")


def _queries(con, start, n_min: int, total: int, seed: int) -> tuple[int, int]:
    """Snapshots of every fingerprint every 10 min, then single executions up to ``total`` rows in all."""
    from kit.warehouse import begin_source, finish_source

    existing = int(con.execute("SELECT count(*) FROM queries").fetchall()[0][0])
    fps = pd.DataFrame({"f": np.arange(len(FINGERPRINTS)), "fingerprint": [f for f, _, _ in FINGERPRINTS],
                        "median_ms": [m for _, m, _ in FINGERPRINTS], "rows_pc": [r for _, _, r in FINGERPRINTS]})
    fps["query_id"] = [f"q{synth.FINGERPRINTS.index(fp):02d}" if fp in synth.FINGERPRINTS else f"q{i:03d}"
                       for i, fp in zip(fps["f"], fps["fingerprint"], strict=True)]  # findings_synth's ids
    fps["snap"] = ~fps["fingerprint"].isin(synth.FINGERPRINTS)   # findings_synth already snapshots its own
    con.register("fp_src", fps)
    n_snap = n_min // SNAPSHOT_MIN
    snapshots = n_snap * int(fps["snap"].sum())
    events = max(total - existing - snapshots, 0)
    start_us = int(start.timestamp() * 1e6)
    span_us = n_min * 60_000_000
    src = begin_source(con, "synthetic-queries", "optimizations_synth queries")
    s = int(seed) & 0xFFFF
    con.execute(f"""
        INSERT INTO queries (ts, db_system, database, user_name, kind, fingerprint, query_id, sample, calls,
                             total_ms, rows, shared_blks_hit, shared_blks_read, source_id)
        WITH g AS (SELECT f, k, f * 1000003 + k + {s} * 7919 AS key
                   FROM (SELECT f FROM fp_src WHERE snap) a, range({n_snap}) b(k)),
        inc AS (SELECT g.f, g.k, 1 + floor(2000 * pow({_u("g.key", 1)}, 3))::BIGINT AS calls FROM g)
        SELECT make_timestamp({start_us} + (k + 1) * {SNAPSHOT_MIN * 60_000_000})::TIMESTAMPTZ, 'postgresql',
               'shop', 'shop_app', 'snapshot', p.fingerprint, p.query_id, p.fingerprint,
               sum(calls) OVER w + 1000 * (f + 1),
               round(sum(calls) OVER w * p.median_ms * 1.3, 3) + 1000 * (f + 1) * p.median_ms,
               sum(calls) OVER w * p.rows_pc, sum(calls) OVER w * 4, sum(calls) OVER w / 50, {src.source_id}
        FROM inc JOIN fp_src p USING (f)
        WINDOW w AS (PARTITION BY f ORDER BY k)
        ORDER BY 1, p.fingerprint""")
    n_fp = len(FINGERPRINTS)
    n_plus_one = int(fps.loc[fps["fingerprint"] == N_PLUS_ONE, "f"].iloc[0])
    bursts = int(events * BURST_SHARE) // BURST
    plain = events - bursts * BURST
    k1, k2 = f"i + {s}::BIGINT * 1000000007", f"i + {s}::BIGINT * 998244353"   # plain and burst streams
    con.execute(f"""
        INSERT INTO queries (ts, db_system, database, user_name, kind, fingerprint, query_id, sample, calls,
                             total_ms, rows, shared_blks_hit, shared_blks_read, source_id)
        WITH e AS (
            SELECT i, make_timestamp({start_us} + (i * {span_us / max(plain, 1)!r})::BIGINT)::TIMESTAMPTZ AS ts,
                   floor({n_fp} * pow({_u(k1, 2)}, 2.5))::BIGINT AS f,
                   {_u(k1, 3)} AS u1, greatest({_u(k1, 4)}, 1e-12) AS u2
            FROM range({plain}) t(i)
            UNION ALL
            SELECT i, make_timestamp({start_us} + ((i // {BURST}) * {span_us / max(bursts, 1)!r})::BIGINT
                                     + (i % {BURST}) * 200)::TIMESTAMPTZ,
                   {n_plus_one}, {_u(k2, 3)}, greatest({_u(k2, 4)}, 1e-12)
            FROM range({bursts * BURST}) t(i))
        SELECT e.ts, 'postgresql', 'shop', 'shop_app', 'event', p.fingerprint, p.query_id, p.fingerprint, 1,
               round(p.median_ms * exp(0.6 * sqrt(-2 * ln(u2)) * cos(2 * pi() * u1)), 3),
               greatest(round(p.rows_pc * (0.5 + u1)), 0)::BIGINT, 4 + floor(20 * u1)::BIGINT,
               floor(2 * u1 * u1)::BIGINT, {src.source_id}
        FROM e JOIN fp_src p USING (f) ORDER BY e.ts""")
    con.unregister("fp_src")
    finish_source(con, src, lines_in=None, rows_loaded=snapshots + events)
    return events, snapshots + existing


def _profiles(con, start, n_min: int, seed: int) -> int:
    """One profile per service per hour: views x leaves stacks with skewed samples."""
    from kit.warehouse import begin_source, finish_source

    stacks = pd.DataFrame({"stack": [f"main;gunicorn.worker;app.handle;views.{v};{leaf}"
                                     for v in _VIEWS for leaf in _LEAVES]})
    stacks["j"] = np.arange(len(stacks))
    stacks["weight"] = [40.0 if leaf == "pricing._match_rules" and v == "product_detail" else 1 + (j % 5)
                        for j, (v, leaf) in enumerate((v, leaf) for v in _VIEWS for leaf in _LEAVES)]
    con.register("st_src", stacks)
    src = begin_source(con, "synthetic-profiles", "optimizations_synth profiles")
    start_us = int(start.timestamp() * 1e6)
    hours = n_min // 60
    key = f"h * 1000 + s.j * 7 + length(svc) + {seed}"
    con.execute(f"""
        INSERT INTO profiles
        SELECT make_timestamp({start_us} + h * 3600000000)::TIMESTAMPTZ, svc, svc || '-' || h::VARCHAR, s.stack,
               greatest(round(s.weight * 50 * (0.5 + {_u(key, 5)})), 1)::BIGINT,
               {src.source_id}
        FROM range({hours}) t(h), (VALUES ('api'), ('web')) v(svc), st_src s ORDER BY 1, 2, 4""")
    con.unregister("st_src")
    n = 2 * hours * len(stacks)
    finish_source(con, src, lines_in=None, rows_loaded=n)
    return n


def generate(path: str | Path, *, requests: int = FULL[0], queries: int = FULL[1], seed: int = 7,
             threads: int = 2) -> OptimizationsWarehouse:
    """Write a new 30-day warehouse at ``path`` (module docstring)."""
    from kit.analysis.request_groups import refresh_rollup
    from kit.warehouse import connect, transaction

    started = time.perf_counter()
    w = synth.generate_warehouse(path, seed=seed, days=DAYS, requests=requests, incidents=12, threads=threads)
    n_min = int(round((w.end - w.start) / timedelta(minutes=1)))
    con = connect(w.path, threads=threads, memory_limit="8GB")
    con.execute("SET enable_progress_bar = false")
    try:
        with transaction(con):
            assets = _assets(con, seed)
            _serve_assets(con, assets)
            events, snapshots = _queries(con, w.start, n_min, queries, seed)
            profile_rows = _profiles(con, w.start, n_min, seed)
        n_queries = int(con.execute("SELECT count(*) FROM queries").fetchall()[0][0])
        rollup = refresh_rollup(con)   # as `perfkit ingest` does after loading
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return OptimizationsWarehouse(w.path, w.requests, n_queries, events, snapshots, len(assets), profile_rows,
                                  time.perf_counter() - started, rollup.seconds if rollup else 0.0)


def _main() -> None:  # pragma: no cover - build one warehouse and print what it holds
    import argparse

    parser = argparse.ArgumentParser(description="Write one 30-day warehouse for bench_optimizations.py.")
    parser.add_argument("path")
    parser.add_argument("--requests", type=int, default=FULL[0])
    parser.add_argument("--queries", type=int, default=FULL[1])
    parser.add_argument("--small", action="store_true", help=f"{SMALL[0]:,} requests, {SMALL[1]:,} queries rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.small:
        args.requests, args.queries = SMALL
    w = generate(args.path, requests=args.requests, queries=args.queries, seed=args.seed, threads=args.threads)
    print(f"{w.requests:,} requests, {w.queries:,} queries rows ({w.query_events:,} events, {w.query_snapshots:,} "
          f"snapshots), {w.assets} assets, {w.profile_rows:,} profile rows in {w.seconds:.0f} s: {w.path}")


if __name__ == "__main__":
    _main()
