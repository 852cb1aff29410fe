"""The demo's Prometheus-style ``metrics``: per-instance CPU, memory and in-flight requests, database
connections, and per-service request counters and latency histograms equal to counts of ``requests``."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from kit import warehouse
from kit.demo.catalog import HOSTS, SERVICES, US_PER_MIN, Route
from kit.demo.incidents import DemoIncident, other_events, window_mask

_LE_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_MEMORY_BASE = {"web": 420e6, "api": 610e6, "static": 150e6, "search": 1.4e9, "checkout": 380e6}
_MAX_CONNECTIONS = 100


class _Series:
    """Collects metric series sampled on one shared time grid, then inserts them in one statement."""

    def __init__(self, n_steps: int):
        self.n_steps = n_steps
        self.names: list[str] = []
        self.labels: list[dict[str, str]] = []
        self.values: list[np.ndarray] = []

    def add(self, name: str, labels: dict[str, str], values: np.ndarray) -> None:
        assert values.shape == (self.n_steps,)
        self.names.append(name)
        self.labels.append(labels)
        self.values.append(np.asarray(values, dtype=np.float64))

    def insert(self, con: Any, ts_us: np.ndarray, source_id: int) -> int:
        """Insert every series (labels built once per series and joined, which is far faster than per row)."""
        k = len(self.names)
        keys = [sorted(lab) for lab in self.labels]
        con.register("series_src", pa.table({
            "sid": pa.array(np.arange(k, dtype=np.int32)), "name": self.names,
            "keys": pa.array(keys, pa.list_(pa.string())),
            "vals": pa.array([[lab[x] for x in ks] for lab, ks in zip(self.labels, keys, strict=True)],
                             pa.list_(pa.string())),
        }))
        con.execute("CREATE TEMP TABLE series AS SELECT sid, name, map(keys, vals) AS labels FROM series_src")
        con.unregister("series_src")
        con.register("values_src", pa.table({
            "sid": pa.array(np.repeat(np.arange(k, dtype=np.int32), self.n_steps)),
            "ts": pa.array(np.tile(ts_us, k)).cast(pa.timestamp("us", tz="UTC")),
            "value": pa.array(np.concatenate(self.values)),
        }))
        con.execute(f"INSERT INTO metrics SELECT v.ts, s.name, s.labels, v.value, {int(source_id)} "
                    "FROM values_src v JOIN series s USING (sid)")
        con.unregister("values_src")
        con.execute("DROP TABLE series")
        return k * self.n_steps


def write_metrics(con: Any, src: Any, start: datetime, n_minutes: int, incidents: tuple[DemoIncident, ...],
                   routes: tuple[Route, ...], host_list: list[str], seed: int, days: int) -> None:
    """Prometheus-style samples that follow the requests table (scrape step 60 s up to 7 days)."""
    step = 1 if days <= 7 else math.ceil(days / 7)
    n_b = math.ceil(n_minutes / step)
    start_us = int(start.timestamp() * 1e6)
    step_us = step * US_PER_MIN
    ts_us = start_us + (np.arange(n_b, dtype=np.int64) + 1) * step_us  # sample at the end of each step
    rng = np.random.default_rng([seed, 3])
    hosts_sql = "[" + ",".join(f"'{h}'" for h in host_list) + "]"
    svc_sql = "[" + ",".join(f"'{s}'" for s in SERVICES) + "]"
    bucket_sql = f"((epoch_us(q.ts) - {start_us}) // {step_us})"
    hm = con.execute(f"""
        SELECT list_position({hosts_sql}, q.host) - 1 AS h, {bucket_sql} AS b, count(*) AS n,
               sum(q.latency_ms) AS lat_sum, count(*) FILTER (WHERE r.db AND q.cache_status <> 'HIT') AS n_db
        FROM requests q JOIN dim_routes r ON r.template = q.route GROUP BY ALL""").fetchnumpy()
    H = len(host_list)
    n = np.zeros((H, n_b))
    lat = np.zeros((H, n_b))
    n_db = np.zeros((H, n_b))
    h_i, b_i = hm["h"].astype(np.int64), hm["b"].astype(np.int64)
    n[h_i, b_i] = hm["n"]
    lat[h_i, b_i] = hm["lat_sum"]
    n_db[h_i, b_i] = hm["n_db"]
    host_svc = np.array([SERVICES.index(next(s for s in SERVICES if h in HOSTS[s])) for h in host_list])
    out = _Series(n_b)

    # per instance: CPU (counter), resident memory, in-flight requests
    cores = 2.0
    util = np.zeros((H, n_b))
    for s in range(len(SERVICES)):
        rows_s = host_svc == s
        ref = np.quantile(n[rows_s], 0.999) or 1.0
        util[rows_s] = 0.035 + 0.62 * n[rows_s] / ref
    util = np.clip(util * np.exp(rng.normal(0, 0.06, util.shape)), 0.01, 0.98)
    db_inc = next(i for i in incidents if i.type == "db_saturation")
    in_db = window_mask(ts_us, db_inc)
    cpu_s = np.cumsum(util * cores * 60.0 * step, axis=1) + rng.uniform(500, 5000, (H, 1))
    deploys: dict[str, list[int]] = {s: [] for s in SERVICES}
    for e in other_events(start, days, incidents):
        if e["kind"] == "deploy":
            deploys[e["service"]].append(int(e["ts_start"].timestamp() * 1e6))
    mem = np.zeros((H, n_b))
    for h in range(H):
        svc = SERVICES[host_svc[h]]
        dep = np.array(sorted(deploys[svc]) or [start_us - 2 * 86400 * 10**6], dtype=np.int64)
        last = dep[np.clip(np.searchsorted(dep, ts_us, side="right") - 1, 0, None)]
        last = np.where(ts_us < dep[0], start_us - 86400 * 10**6 * (1 + h % 3), last)
        age_h = (ts_us - last) / 3.6e9
        mem[h] = _MEMORY_BASE[svc] * (1 + 0.3 * np.minimum(age_h / 96.0, 1.0)) + 60e6 * util[h]
    mem = np.rint(mem * np.exp(rng.normal(0, 0.01, mem.shape)))
    inflight = np.round(lat / (60_000.0 * step), 3)
    for h, host in enumerate(host_list):
        labels = {"instance": host, "job": SERVICES[host_svc[h]], "service": SERVICES[host_svc[h]]}
        out.add("process_cpu_seconds_total", labels, np.round(cpu_s[h], 2))
        out.add("process_resident_memory_bytes", labels, mem[h])
        out.add("http_server_requests_in_flight", labels, inflight[h])

    # database: connections by state, at max_connections during the saturation window
    db_load = n_db.sum(axis=0)
    db_load = db_load / (np.quantile(db_load, 0.999) or 1.0)
    active = 2 + 16 * db_load * np.exp(rng.normal(0, 0.15, n_b))
    w0, w1 = db_inc.start.timestamp() * 1e6, db_inc.end.timestamp() * 1e6
    ramp = np.clip((ts_us - w0) / max((w1 - w0) / 6, 1), 0, 1)
    active = np.rint(np.where(in_db, np.maximum(active, ramp * (_MAX_CONNECTIONS - 3)), active))
    idle = np.where(in_db, _MAX_CONNECTIONS - active, np.rint(28 + 6 * rng.random(n_b)))
    idle = np.minimum(idle, _MAX_CONNECTIONS - active)
    pg = {"instance": "db-1:9187", "job": "postgres"}
    out.add("pg_stat_activity_count", {**pg, "datname": "shop", "state": "active"}, active)
    out.add("pg_stat_activity_count", {**pg, "datname": "shop", "state": "idle"}, idle)
    out.add("pg_settings_max_connections", pg, np.full(n_b, float(_MAX_CONNECTIONS)))

    # per service: http_requests_total{service, code} and the latency histogram (cumulative counters)
    codes = con.execute(f"""
        SELECT list_position({svc_sql}, q.service) - 1 AS s, {bucket_sql} AS b, q.status AS code, count(*) AS n
        FROM requests q GROUP BY ALL""").fetchnumpy()
    c_s, c_code, c_b = (codes[k].astype(np.int64) for k in ("s", "code", "b"))
    for s_idx, code in sorted(set(zip(c_s.tolist(), c_code.tolist(), strict=True))):
        sel = (c_s == s_idx) & (c_code == code)
        d = np.zeros(n_b)
        d[c_b[sel]] = codes["n"][sel]
        svc = SERVICES[s_idx]
        out.add("http_requests_total", {"code": str(code), "job": svc, "service": svc}, np.cumsum(d))
    le_filters = ", ".join(f"count(*) FILTER (WHERE q.latency_ms <= {le * 1000:g}) AS le{i}"
                           for i, le in enumerate(_LE_S))
    hist = con.execute(f"""
        SELECT list_position({svc_sql}, q.service) - 1 AS s, {bucket_sql} AS b, count(*) AS n,
               sum(q.latency_ms) / 1000.0 AS sum_s, {le_filters}
        FROM requests q GROUP BY ALL""").fetchnumpy()
    s_i, b_i = hist["s"].astype(np.int64), hist["b"].astype(np.int64)
    for s_idx, svc in enumerate(SERVICES):
        sel = s_i == s_idx
        for col, le in [*((f"le{i}", f"{v:g}") for i, v in enumerate(_LE_S)), ("n", "+Inf")]:
            d = np.zeros(n_b)
            d[b_i[sel]] = hist[col][sel]
            out.add("http_request_duration_seconds_bucket", {"job": svc, "le": le, "service": svc}, np.cumsum(d))
        for col, name in (("n", "http_request_duration_seconds_count"),
                          ("sum_s", "http_request_duration_seconds_sum")):
            d = np.zeros(n_b)
            d[b_i[sel]] = hist[col][sel]
            out.add(name, {"job": svc, "service": svc}, np.round(np.cumsum(d), 3))
    warehouse.finish_source(con, src, lines_in=None, rows_loaded=out.insert(con, ts_us, src.source_id))
