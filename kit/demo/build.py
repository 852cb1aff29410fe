"""``build_demo``: the whole demo warehouse, built aside and renamed into place; requests in chunks, then the
tables derived from them."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from kit import warehouse
from kit.analysis.request_groups import refresh_rollup
from kit.demo.assets import NAME_LISTS, binary_blob, name_lists, text_blob, write_assets
from kit.demo.catalog import CACHE_STATUSES, CONTENT_TYPES, DEMO_END, HOSTS, METHODS, SERVICES, US_PER_MIN, demo_routes
from kit.demo.clients import QUERY_KINDS, USER_AGENTS, query_lists
from kit.demo.incidents import CAMPAIGN_FACTOR, DemoIncident, campaign_window, plan_incidents, write_events
from kit.demo.metrics import write_metrics
from kit.demo.profiles import write_profiles
from kit.demo.queries import write_queries
from kit.demo.sampling import hex16, minute_rates, mix64
from kit.demo.traffic import CdnState, RouteArrays, generate_chunk, object_sizes

_SUB_BATCH = 262_144  # rows generated and inserted per statement inside a chunk


@dataclass(frozen=True)
class DemoSummary:
    """What ``build_demo`` wrote: where, from which parameters, how many rows, how long it took."""

    path: str
    seed: int
    requests: int
    days: int
    start: datetime
    end: datetime
    routes: int
    services: tuple[str, ...]
    rows: dict[str, int]
    incidents: tuple[DemoIncident, ...]
    seconds: float

    def line(self) -> str:
        """One-line human summary."""
        return (f"demo warehouse {self.path}: {self.rows.get('requests', 0):,} requests over {self.days} d "
                f"({self.start:%Y-%m-%d} .. {self.end:%Y-%m-%d} UTC), {self.routes} routes, "
                f"{self.rows.get('metrics', 0):,} metric samples, {self.rows.get('queries', 0):,} query rows, "
                f"{len(self.incidents)} planted incidents, seed {self.seed}, built in {self.seconds:.1f} s")


def _tmp_path(target: Path) -> Path:
    """Where the new warehouse is built: next to the target (same filesystem, so the rename is atomic)."""
    return target.with_name(f".{target.stem}.building-{os.getpid()}{target.suffix or '.duckdb'}")


def _remove_stale_builds(target: Path) -> None:
    """Delete temporary files of earlier builds of ``target`` whose process is gone (killed builds)."""
    prefix = f".{target.stem}.building-"
    for p in target.parent.glob(f"{prefix}*"):
        pid_text = p.name[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            _remove(p)
        except PermissionError:  # alive, owned by someone else
            pass


def _remove(path: Path) -> None:
    """Remove a file or a directory tree (DuckDB's spill folder ``<db>.tmp``), if present."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def build_demo(db_path: str | Path, *, requests: int = 1_000_000, days: int = 7, seed: int = 42,
               chunk_requests: int = 2_000_000, progress: bool = True) -> DemoSummary:
    """Build the demo warehouse at ``db_path`` (replacing any existing file atomically).

    ``requests`` requests over ``days`` days ending at ``DEMO_END``; the same ``seed`` gives the same
    content. Requests are generated and inserted ``chunk_requests`` at a time (bounded memory)."""
    if str(db_path) == ":memory:":
        raise ValueError("the demo warehouse needs a file path (it is built aside and renamed into place)")
    if requests < 1000:
        raise ValueError(f"requests must be >= 1000, got {requests}")
    if not 1 <= days <= 366:
        raise ValueError(f"days must be between 1 and 366, got {days}")
    if chunk_requests < 1000:
        raise ValueError(f"chunk_requests must be >= 1000, got {chunk_requests}")
    t_start = time.perf_counter()
    target = Path(db_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(target)
    _remove_stale_builds(target)
    for p in (tmp, Path(str(tmp) + ".wal")):
        p.unlink(missing_ok=True)
    try:
        con = warehouse.connect(tmp, memory_limit=os.environ.get("PERFKIT_DEMO_MEMORY", "256MB"), threads=2)
        try:
            summary = _build(con, str(target), requests=requests, days=days, seed=seed,
                             chunk_requests=chunk_requests, progress=progress, t_start=t_start)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        Path(str(target) + ".wal").unlink(missing_ok=True)
        os.replace(tmp, target)
    except BaseException:
        for p in (tmp, Path(str(tmp) + ".wal"), Path(str(tmp) + ".tmp")):
            _remove(p)
        raise
    return DemoSummary(**{**summary.__dict__, "seconds": round(time.perf_counter() - t_start, 2)})


def _build(con: Any, target: str, *, requests: int, days: int, seed: int, chunk_requests: int,
           progress: bool, t_start: float) -> DemoSummary:
    end = DEMO_END
    start = end - timedelta(days=days)
    start_us = int(start.timestamp() * 1_000_000)
    n_minutes = days * 1440
    routes = demo_routes()
    incidents = plan_incidents(days, end)
    windows = {i.type: (int(i.start.timestamp() * 1e6), int(i.end.timestamp() * 1e6)) for i in incidents}
    options = {"seed": seed, "requests": requests, "days": days, "end": end.isoformat()}

    def source(table: str) -> warehouse.Source:
        return warehouse.begin_source(con, "demo", f"demo://{table}?seed={seed}&requests={requests}&days={days}",
                                      fmt="demo", options={**options, "table": table})

    # ---- assets first: named static objects take their sizes from real content ------------------
    names = name_lists(seed)
    rng_assets = np.random.default_rng([seed, 1])
    name_sizes: dict[str, np.ndarray] = {}
    asset_rows: list[tuple[str, str, bytes]] = []
    route_by_names = {r.names: r for r in routes if r.names}
    for key, (kind, median, sigma) in NAME_LISTS.items():
        sizes = np.maximum(np.rint(median * np.exp(sigma * rng_assets.standard_normal(len(names[key])))), 200)
        sizes = sizes.astype(np.int64)
        if key == "js":
            sizes[: 3] = (310_000, 420_000, 9_000)  # app, vendor, runtime
        r = route_by_names[key]
        actual = []
        for name, size in zip(names[key], sizes, strict=True):
            blob = (text_blob(rng_assets, kind, int(size)) if kind in ("js", "css", "svg")
                    else binary_blob(rng_assets, kind, int(size)))
            path = r.template.replace("{name}", name)
            asset_rows.append((path, CONTENT_TYPES[r.ctype], blob))
            actual.append(len(blob))
        name_sizes[key] = np.array(actual, dtype=np.int64)
    arr = RouteArrays(routes, seed, names, name_sizes)
    route_ids = {r.template: i for i, r in enumerate(routes)}
    # favicon, manifest and the most popular product images are assets too, sized like their requests
    fav = route_ids["/favicon.ico"]
    asset_rows.append(("/favicon.ico", CONTENT_TYPES["ico"], binary_blob(
        rng_assets, "ico", int(object_sizes(arr, np.array([fav]), np.array([0]))[0]))))
    man = route_ids["/static/manifest.json"]
    asset_rows.append(("/static/manifest.json", CONTENT_TYPES["json"], text_blob(
        rng_assets, "json", int(object_sizes(arr, np.array([man]), np.array([0]))[0]))))
    for tpl, count in (("/static/img/products/{id}.jpg", 30), ("/static/img/thumbs/{id}.jpg", 20)):
        rid = route_ids[tpl]
        r = routes[rid]
        top = (np.arange(count) * arr.perm_a[rid] + arr.perm_b[rid]) % r.n_objects
        sizes = object_sizes(arr, np.full(count, rid), top)
        for o, size in zip(top, sizes, strict=True):
            asset_rows.append((tpl.replace("{id}", str(int(o) + r.id_base)), CONTENT_TYPES["jpg"],
                               binary_blob(rng_assets, "jpg", int(size))))

    # ---- dictionaries: every string column of requests is an Arrow dictionary (no joins) ----------
    placeholders = [("{name}" if "{name}" in r.template else "{slug}" if "{slug}" in r.template else "")
                    for r in routes]
    con.register("dim_routes_src", pa.table({
        "route_id": np.arange(len(routes), dtype=np.int32), "template": [r.template for r in routes],
        "service": [r.service for r in routes], "db": [r.db for r in routes]}))
    con.execute("CREATE TEMP TABLE dim_routes AS SELECT * FROM dim_routes_src")
    con.unregister("dim_routes_src")
    name_paths: list[str] = []
    name_off = np.full(len(routes), -1, dtype=np.int64)
    for i, r in enumerate(routes):
        if r.names:
            name_off[i] = len(name_paths)
            name_paths += [r.template.replace(placeholders[i], nm) for nm in names[r.names][: r.n_objects]]
    qlists = query_lists(seed)
    q_texts: list[str] = []
    q_off = np.zeros(len(QUERY_KINDS), dtype=np.int64)
    for k, kind in enumerate(QUERY_KINDS):
        q_off[k] = len(q_texts)
        q_texts += qlists[kind]
    n_query = np.array([len(qlists[k]) for k in QUERY_KINDS])
    host_list = [h for s in SERVICES for h in HOSTS[s]]
    ct_list = list(dict.fromkeys(CONTENT_TYPES.values()))
    ct_of_route = np.array([ct_list.index(CONTENT_TYPES[r.ctype]) for r in routes])
    ct_html = ct_list.index(CONTENT_TYPES["html"])
    numeric = (arr.n_obj > 1) & ~arr.named
    id_base = np.array([r.id_base for r in routes], dtype=np.int64)
    n_clients = int(min(max(requests // 12, 2000), 1_000_000))
    rng_clients = np.random.default_rng([seed, 2])
    ua_p = np.array([p for _, p in USER_AGENTS])
    ua_of_client = rng_clients.choice(len(USER_AGENTS), size=n_clients, p=ua_p / ua_p.sum()).astype(np.int32)
    with np.errstate(over="ignore"):
        client_keys = np.arange(n_clients, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    d = {
        "route": pa.array([r.template for r in routes]), "service": pa.array(list(SERVICES)),
        "host": pa.array(host_list), "method": pa.array(list(METHODS)),
        "cache": pa.array(list(CACHE_STATUSES)), "name": pa.array(name_paths or [""]),
        "query": pa.array(q_texts), "ctype": pa.array(ct_list), "client": hex16(mix64(client_keys)),
        "ua": pa.array([u for u, _ in USER_AGENTS]),
    }

    def dict_col(indices: np.ndarray, key: str) -> pa.DictionaryArray:
        idx = pa.array(indices.astype(np.int32), mask=indices < 0)
        return pa.DictionaryArray.from_arrays(idx, d[key])

    # ---- requests, in chunks of whole minutes ---------------------------------------------------
    weights = 1.0 / np.arange(1, len(routes) + 1) ** 1.05
    route_cdf = np.cumsum(weights) / weights.sum()
    rng_time = np.random.default_rng([seed, 0])
    rates = minute_rates(start, n_minutes, rng_time)
    for inc in incidents:  # retries during the error burst add a little traffic
        if inc.type == "error_burst":
            a = int((inc.start - start).total_seconds() // 60)
            b = int((inc.end - start).total_seconds() // 60)
            rates[a:b] *= 1.08
    campaign = campaign_window(start, days, incidents)
    if campaign:
        a = int((campaign[0] - start).total_seconds() // 60)
        b = int((campaign[1] - start).total_seconds() // 60)
        rates[a:b] *= CAMPAIGN_FACTOR * np.clip(np.arange(b - a) / 10.0, 0.5, 1.0)  # ramps up in 10 min
    load = rates / rates.max()
    counts = rng_time.multinomial(requests, rates / rates.sum())
    cum = np.cumsum(counts)
    bounds = [0]
    while bounds[-1] < n_minutes:
        done = int(cum[bounds[-1] - 1]) if bounds[-1] else 0
        nxt = int(np.searchsorted(cum, done + chunk_requests, side="right"))
        bounds.append(min(max(nxt, bounds[-1] + 1), n_minutes))
    chunks = list(zip(bounds[:-1], bounds[1:], strict=True))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=requests, unit="req", desc="demo requests", leave=False, dynamic_ncols=True)

    cdn = CdnState(arr)
    with warehouse.transaction(con):
        src_req = source("requests")
    n_written = 0
    for k, (m0, m1) in enumerate(chunks):
        rng = np.random.default_rng([seed, 1000 + k])
        c = counts[m0:m1]
        total = int(c.sum())
        if total == 0:
            continue
        minute_of = np.repeat(np.arange(m0, m1, dtype=np.int64), c)
        ts_us = start_us + minute_of * US_PER_MIN + rng.integers(0, US_PER_MIN, total)
        del minute_of
        ts_us.sort()
        # numpy work in sub-batches keeps memory flat
        cuts = [*range(0, total, _SUB_BATCH), total]
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            ts_part = ts_us[lo:hi]
            g = generate_chunk(rng, arr, route_cdf, ts_part, load, n_clients, n_query, windows, start_us,
                           ua_of_client, cdn)
            route, obj = g["route_id"], g["obj"]
            num_id = obj + id_base[route]
            chunk = pa.table({
                "ts": pa.array(ts_part).cast(pa.timestamp("us", tz="UTC")),
                "service": dict_col(arr.svc[route], "service"),
                "host": dict_col(g["host_id"], "host"),
                "method": dict_col(g["method_id"], "method"),
                "route": dict_col(route, "route"),
                "name": dict_col(np.where(arr.named[route], name_off[route] + obj, -1), "name"),
                "num_id": pa.array(num_id, mask=~numeric[route]),
                "query": dict_col(np.where(g["qidx"] >= 0, q_off[np.maximum(g["qkind"], 0)] + g["qidx"], -1), "query"),
                "status": pa.array(g["status"]),
                "latency_ms": pa.array(g["latency_ms"]),
                "upstream_ms": pa.array(g["upstream_ms"], mask=np.isnan(g["upstream_ms"])),
                "bytes_sent": pa.array(g["bytes_sent"]),
                "content_type": dict_col(np.where(g["err_html"], ct_html, ct_of_route[route]), "ctype"),
                "cache_status": dict_col(g["cache_id"], "cache"),
                "client_hash": dict_col(g["cid"], "client"),
                "user_agent": dict_col(ua_of_client[g["cid"]], "ua"),
            })
            del g, route, obj, num_id, ts_part
            con.register("chunk", chunk)
            con.execute(f"""
                INSERT INTO requests
                SELECT ts, service, host, method, route,
                       CASE WHEN name IS NOT NULL THEN name
                            WHEN num_id IS NOT NULL THEN replace(route, '{{id}}', CAST(num_id AS VARCHAR))
                            ELSE route END,
                       query, status, latency_ms, upstream_ms, bytes_sent, content_type, cache_status,
                       client_hash, user_agent, {src_req.source_id}
                FROM chunk""")
            con.unregister("chunk")
            del chunk
        con.execute("CHECKPOINT")  # keeps the final checkpoint (and its memory) small
        n_written += total
        if bar is not None:
            bar.update(total)
    if bar is not None:
        bar.close()
    with warehouse.transaction(con):
        warehouse.finish_source(con, src_req, lines_in=n_written, rows_loaded=n_written)

    # ---- everything else is derived from the requests --------------------------------------------
    write_metrics(con, source("metrics"), start, n_minutes, incidents, routes, host_list, seed, days)
    write_queries(con, source("queries"), start, n_minutes, incidents, seed, days)
    write_assets(con, source("assets"), asset_rows)
    write_profiles(con, source("profiles"), start, days, seed, incidents)
    write_events(con, source("events"), start, days, incidents)
    con.execute("DROP TABLE dim_routes")
    refresh_rollup(con)   # the per-day grouped requests, as `perfkit ingest` keeps them
    rows = {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
            for t in (*warehouse.DATA_TABLES, "asset_content", "ingest_log")}
    return DemoSummary(path=target, seed=seed, requests=n_written, days=days, start=start, end=end,
                       routes=len(routes), services=SERVICES, rows=rows, incidents=incidents,
                       seconds=round(time.perf_counter() - t_start, 2))
