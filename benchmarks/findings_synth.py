"""Seeded synthetic warehouses with planted incidents, for scoring the bottleneck detector
(``kit.analysis.findings``) against known truth (``benchmarks/bench_findings.py``).

``generate_warehouse(path, seed=..., days=..., requests=...)`` writes a warehouse with the kit's schema
(``kit.warehouse``): ``requests``, ``metrics``, ``queries`` and ``events``, and returns a
:class:`SynthWarehouse` holding the planted incidents (the ground truth). The truth is also written to
``events`` as kind ``incident`` (for people reading the warehouse; the detector must never read them).

Traffic: 12 routes in 3 services (``api``, ``web``, ``static``) with fixed shares of traffic; a daily
cycle (trough ~08:00 UTC at ~0.35x, peak ~20:00 UTC), weekends at ~0.75x (eased in and out over 4 h),
and ordinary load peaks (smooth bumps of 1.3-1.6x lasting about 1-2 h, 1 in 2 days) under which latency
rises a little (queueing). Latency is lognormal per route with a 1 % Pareto tail; cacheable routes answer HIT from
the edge in a few ms (``upstream_ms`` NULL) and MISS from the origin; 0.2 % 5xx and 2 % 404 at all times.
Requests per (route, minute) are Poisson; rows are expanded in DuckDB (``unnest(range(n))``) with
counter-based random numbers (DuckDB ``hash`` of one 64-bit key packing cell, request, seed and
stream), so a seed gives the same warehouse on any number of threads, and no Python loop runs per row.

Metrics (every 60 s, every 5 min beyond 10 days): ``pg_stat_activity_count{state=active|idle}``,
``pg_settings_max_connections`` (100), per-service ``process_cpu_seconds_total``. Queries:
pg_stat_statements-like cumulative snapshots every 10 min of 6 fingerprints. Events: deploys and config
pushes that cause nothing (about 1.5 a day), the cause events of the incidents, and the incidents.

Incident kinds (``PlantedIncident.kind`` uses the detector's finding kinds):

===================  ==================================================  ==========================
kind                 what changes                                        scope
===================  ==================================================  ==========================
latency_shift        origin latency x factor, as a step or a ramp of      one route, or one service
                     10-40 min (the whole distribution moves)
variance_change      lognormal sigma x factor, median unchanged           one route
error_burst          a share of responses get one 5xx status              one route x one status
throughput_change    request rate x (1 - drop)                            one route
cache_hit_drop       edge hit ratio falls by some points (misses go to     one cacheable route, or
                     the slower origin)                                   service ``static``
saturation           DB connections ramp to 90-99 % of max_connections    service ``api`` (its
                     while DB-backed routes slow; one fingerprint's        DB-backed routes)
                     mean time rises x10-30 in ``queries``
===================  ==================================================  ==========================

MINIMUM EFFECT SIZE committed to (``above_minimum``; about 20 % of incidents are planted below it, at
40-97 % of the minimum effect, and neither count for recall nor against precision): on a scope serving at least
``MIN_RATE_PER_MIN`` = 20 requests/min on average during the incident, lasting at least 30 min (error
bursts 15 min):

- latency_shift: p50 and p95 +50 % (factor >= 1.5; drawn up to 4x) of the requests the origin serves (on
  cacheable routes edge hits keep their time; the rate counted is then that of MISS/BYPASS requests, and
  so for variance changes and saturation);
- variance_change: sigma x1.8 (p95/p50 spread x2.2 for a route of sigma 0.5), median unchanged;
- error_burst: >= 5 % of the route's responses with that status (drawn up to 40 %);
- throughput_change: rate -40 % (drawn up to -90 %);
- cache_hit_drop: hit ratio -25 percentage points (drawn up to -80, floored at 0);
- saturation: connections >= 90 % of the limit and DB-backed latency +50 % (drawn up to 4x).

Causes: 75 % of incidents get a cause event shortly before onset (0-8 min; a ``deploy`` of the service,
or a ``config`` push for cache and error incidents) on the same service, half of the time naming the
incident's route. Saturation always has the fingerprint whose time rose as a ``query`` cause as well.
About a quarter of the incidents overlap another one in time (on another scope).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

KINDS = ("latency_shift", "variance_change", "error_burst", "throughput_change", "cache_hit_drop", "saturation")
MIN_RATE_PER_MIN = 20.0
MIN_DURATION_MIN = 30
MIN_ERROR_DURATION_MIN = 15
MINIMUM = {  # kind -> minimum size (units in the module docstring)
    "latency_shift": 1.5, "variance_change": 1.8, "error_burst": 0.05, "throughput_change": 0.40,
    "cache_hit_drop": 0.25, "saturation": 1.5,
}
MINIMUM_TEXT = ("latency p50/p95 +50 %, sigma x1.8 (median unchanged), one 5xx status on >= 5 % of responses, "
                "throughput -40 %, hit ratio -25 points, DB connections >= 90 % of the limit with latency +50 %; "
                f"lasting >= {MIN_DURATION_MIN} min (error bursts {MIN_ERROR_DURATION_MIN} min) "
                f"on a scope with >= {MIN_RATE_PER_MIN:g} requests/min")
MAXIMUM = {"latency_shift": 4.0, "variance_change": 2.6, "error_burst": 0.40, "throughput_change": 0.90,
           "cache_hit_drop": 0.80, "saturation": 4.0}
MAX_CONNECTIONS = 100.0
END = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday: every history ends here
_U64 = 18446744073709551616.0


@dataclass(frozen=True)
class SynthRoute:
    route: str
    service: str
    share: float        # share of all requests
    median_ms: float    # origin latency median
    sigma: float        # lognormal sigma of origin latency
    hit_ratio: float    # edge cache hit ratio (0 = not cacheable: cache_status BYPASS)
    db: bool            # served with database queries (slowed by DB saturation)


ROUTES: tuple[SynthRoute, ...] = (
    SynthRoute("/api/v1/products/{id}", "api", 0.16, 45, 0.50, 0.0, True),
    SynthRoute("/api/v1/cart", "api", 0.09, 60, 0.45, 0.0, True),
    SynthRoute("/api/v1/users/{id}/orders", "api", 0.05, 90, 0.60, 0.0, True),
    SynthRoute("/api/v1/search", "api", 0.08, 120, 0.55, 0.0, False),
    SynthRoute("/api/v1/admin/reports", "api", 0.01, 400, 0.70, 0.0, True),
    SynthRoute("/", "web", 0.10, 80, 0.40, 0.50, False),
    SynthRoute("/product/{id}", "web", 0.12, 110, 0.45, 0.40, False),
    SynthRoute("/category/{name}", "web", 0.06, 130, 0.50, 0.45, False),
    SynthRoute("/checkout", "web", 0.03, 250, 0.50, 0.0, False),
    SynthRoute("/static/js/{name}.js", "static", 0.12, 25, 0.40, 0.93, False),
    SynthRoute("/static/img/{id}.jpg", "static", 0.15, 35, 0.50, 0.90, False),
    SynthRoute("/static/css/{name}.css", "static", 0.03, 20, 0.40, 0.95, False),
)
SERVICES = ("api", "web", "static")
FINGERPRINTS = (
    "SELECT * FROM products WHERE id = ?",
    "SELECT * FROM carts WHERE id = ?",
    "SELECT o.* FROM orders o JOIN order_items oi ON oi.order_id = o.id WHERE o.user_id = ? ORDER BY o.created_at",
    "SELECT * FROM users WHERE id = ?",
    "UPDATE carts SET updated_at = ? WHERE id = ?",
    "SELECT count(*) FROM orders WHERE created_at >= ? AND status = ?",
)
_FP_MEAN_MS = (0.4, 0.3, 6.0, 0.25, 0.6, 45.0)
_FP_CALLS_PER_DB_REQUEST = (1.0, 0.8, 0.1, 0.5, 0.3, 0.01)


@dataclass(frozen=True)
class CauseEvent:
    """A planted cause: an ``events`` row (kind deploy/config) or a query fingerprint (kind query)."""

    kind: str               # deploy, config, query
    ts: datetime | None     # event time (None for a query cause)
    service: str | None
    route: str | None
    what: str               # the event's unique ``what`` text, or the fingerprint


@dataclass(frozen=True)
class PlantedIncident:
    """One planted incident (ground truth)."""

    kind: str               # one of KINDS (the detector's finding kind for it)
    service: str
    route: str | None       # None: the whole service
    status: int | None      # error bursts: the status planted
    onset: datetime         # first minute of the change (start of the ramp for gradual ones)
    end: datetime           # first minute after it
    shape: str              # step or gradual
    ramp_min: int           # minutes to full size (0 for steps)
    size: float             # in the kind's unit (module docstring)
    rate_per_min: float     # mean requests/min of the scope during the incident (expected; for latency
                            # kinds only the requests the origin serves)
    above_minimum: bool
    causes: tuple[CauseEvent, ...] = ()

    @property
    def cause_event(self) -> CauseEvent | None:
        """The deploy/config event planted as its cause, if any."""
        return next((c for c in self.causes if c.kind in ("deploy", "config")), None)

    def describe(self) -> str:
        scope = self.route or f"service {self.service}"
        status = f" x {self.status}" if self.status else ""
        return (f"{self.kind} {self.shape} size {self.size:.2f} on {scope}{status} "
                f"{self.onset:%m-%d %H:%M}-{self.end:%H:%M} ({self.rate_per_min:.0f} req/min)")


@dataclass(frozen=True)
class SynthWarehouse:
    path: Path
    seed: int
    start: datetime
    end: datetime
    requests: int
    incidents: tuple[PlantedIncident, ...]
    events: tuple[dict, ...] = field(default=(), repr=False)   # every events row written (incl. incidents)


def _rates(rng: np.random.Generator, n_min: int, start: datetime, mean_per_min: float) -> np.ndarray:
    """Total requests/min expected per minute: daily and weekly cycle times smooth load peaks."""
    t = np.arange(n_min, dtype=np.float64)
    start_s = start.timestamp()
    hour = ((start_s / 60 + t) / 60) % 24
    weekday = ((start_s / 86400 + t / 1440 + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday (3)
    daily = 1.0 + 0.65 * np.sin(2 * np.pi * (hour - 14.0) / 24.0)     # trough 0.35x at 08:00, peak at 20:00
    weekend = np.convolve(np.pad((weekday >= 5).astype(np.float64), 120, mode="edge"), np.ones(240) / 240,
                          mode="same")[120:-120]                       # eased over 4 h around midnight
    weekly = 1.0 - 0.25 * weekend
    peaks = np.ones(n_min)
    for _ in range(max(1, n_min // 2880)):
        centre = rng.uniform(0.05, 0.95) * n_min
        width = rng.uniform(30, 60)
        peaks += rng.uniform(0.3, 0.6) * np.exp(-0.5 * ((t - centre) / width) ** 2)
    shape = daily * weekly * peaks
    return mean_per_min * shape / shape.mean()


def _draw_size(rng: np.random.Generator, kind: str, above: bool) -> float:
    lo, hi = MINIMUM[kind], MAXIMUM[kind]
    if above:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(lo * rng.uniform(0.6, 0.97)) if kind not in ("latency_shift", "variance_change", "saturation") \
        else float(1 + (lo - 1) * rng.uniform(0.4, 0.9))


def _plan(rng: np.random.Generator, start: datetime, n_min: int, rate: np.ndarray, count: int,
          versions: list[str]) -> list[PlantedIncident]:
    """Draw ``count`` incidents (kinds, scopes, windows, sizes, causes)."""
    weights = np.array([r.share for r in ROUTES]) ** 1.5   # busy routes more often
    weights /= weights.sum()
    incidents: list[PlantedIncident] = []
    kinds = list(rng.permutation(np.resize(np.array(KINDS), count)))
    for kind in kinds:
        kind = str(kind)
        route: SynthRoute | None = None
        service: str
        if kind == "saturation":
            service = "api"
        elif kind == "cache_hit_drop":
            cacheable = [r for r in ROUTES if r.hit_ratio > 0]
            if rng.random() < 0.3:
                service = "static"
            else:
                cw = np.array([r.share for r in cacheable]) ** 1.5
                route = cacheable[rng.choice(len(cacheable), p=cw / cw.sum())]
                service = route.service
        elif kind == "latency_shift" and rng.random() < 0.3:
            service = str(rng.choice(SERVICES))
        else:
            route = ROUTES[rng.choice(len(ROUTES), p=weights)]
            service = route.service
        minutes = int(np.exp(rng.uniform(np.log(MIN_ERROR_DURATION_MIN if kind == "error_burst"
                                                 else MIN_DURATION_MIN), np.log(180))))
        margin = max(60, n_min // 10)
        for _attempt in range(200):
            if incidents and rng.random() < 0.25:   # overlap an earlier incident
                other = incidents[int(rng.integers(len(incidents)))]
                onset_min = int((other.onset - start).total_seconds() // 60) + int(rng.integers(-20, 20))
            else:
                onset_min = int(rng.integers(margin, max(margin + 1, n_min - margin - minutes)))
            onset_min = int(np.clip(onset_min, margin, n_min - margin - minutes))
            onset = start + timedelta(minutes=onset_min)
            end = onset + timedelta(minutes=minutes)
            clash = any(i.service == service and i.onset - timedelta(hours=2) < end
                        and onset < i.end + timedelta(hours=2) for i in incidents)
            if not clash:
                break
        else:
            continue
        # latency changes show in the requests the origin serves: count only those (MISS, BYPASS)
        origin_only = kind in ("latency_shift", "variance_change", "saturation")
        scope_share = sum(r.share * ((1 - r.hit_ratio) if origin_only else 1.0) for r in ROUTES
                          if (r.route == route.route if route else r.service == service)
                          and (kind != "saturation" or r.db))
        rate_scope = float(rate[onset_min:onset_min + minutes].mean() * scope_share)
        above = bool(rng.random() < 0.8)
        size = _draw_size(rng, kind, above)
        above = above and rate_scope >= MIN_RATE_PER_MIN
        gradual = kind in ("latency_shift", "saturation") and rng.random() < 0.5
        ramp = int(rng.integers(10, 41)) if gradual else 0
        status = int(rng.choice([500, 502, 503, 504])) if kind == "error_burst" else None
        causes: list[CauseEvent] = []
        if rng.random() < 0.75:
            lag = timedelta(seconds=int(rng.integers(0, 8 * 60)))
            ev_kind = "config" if kind in ("cache_hit_drop",) or (kind == "error_burst" and rng.random() < 0.5) \
                else "deploy"
            ev_route = (route.route if route and rng.random() < 0.5 else None)
            version = versions.pop()
            what = (f"deploy {service} {version}" if ev_kind == "deploy"
                    else f"config push {service} {version}: " + ("cache rules" if kind == "cache_hit_drop"
                                                                  else "load balancer"))
            causes.append(CauseEvent(ev_kind, onset - lag, service, ev_route, what))
        if kind == "saturation":
            causes.append(CauseEvent("query", None, None, None, FINGERPRINTS[int(rng.choice([0, 2, 5]))]))
        incidents.append(PlantedIncident(kind, service, route.route if route else None, status, onset, end,
                                         "gradual" if gradual else "step", ramp, size, rate_scope, above,
                                         tuple(causes)))
    return sorted(incidents, key=lambda i: i.onset)


def _decoys(rng: np.random.Generator, start: datetime, n_min: int, incidents: list[PlantedIncident],
            versions: list[str]) -> list[dict]:
    """Deploys and config pushes that change nothing (none within 2 h before an incident on the service)."""
    out = []
    for _ in range(int(round(1.5 * n_min / 1440))):
        service = str(rng.choice(SERVICES))
        ts = start + timedelta(minutes=int(rng.integers(30, n_min - 30)), seconds=int(rng.integers(0, 60)))
        if any(i.service == service and i.onset - timedelta(hours=2) <= ts <= i.end for i in incidents):
            continue
        kind = "deploy" if rng.random() < 0.7 else "config"
        version = versions.pop()
        what = f"deploy {service} {version}" if kind == "deploy" else f"config push {service} {version}: timeouts"
        out.append({"ts_start": ts, "ts_end": ts + timedelta(minutes=5), "kind": kind, "service": service,
                    "route": None, "what": what, "details": {"version": version}})
    return out


def _effects(incidents: list[PlantedIncident], start: datetime, n_min: int) -> dict[str, np.ndarray]:
    """Per (minute, route) multipliers and probabilities from the incidents (vectorised over minutes)."""
    shape = (n_min, len(ROUTES))
    eff = {"lat": np.ones(shape), "sigma": np.ones(shape), "thr": np.ones(shape), "err_p": np.zeros(shape),
           "err_status": np.zeros(shape), "hit": np.array([[r.hit_ratio for r in ROUTES]] * n_min),
           "sat": np.zeros(n_min)}
    t = np.arange(n_min)
    for inc in incidents:
        a = int((inc.onset - start).total_seconds() // 60)
        b = int((inc.end - start).total_seconds() // 60)
        ramp = np.clip((t - a + 1) / max(inc.ramp_min, 1), 0, 1) if inc.ramp_min else np.ones(n_min)
        on = ((t >= a) & (t < b)) * ramp                                   # 0..1 per minute
        cols = [j for j, r in enumerate(ROUTES) if (inc.route == r.route if inc.route else r.service == inc.service)
                and (inc.kind != "saturation" or r.db)]
        for j in cols:
            if inc.kind in ("latency_shift", "saturation"):
                eff["lat"][:, j] *= 1 + (inc.size - 1) * on
            elif inc.kind == "variance_change":
                eff["sigma"][:, j] *= 1 + (inc.size - 1) * on
            elif inc.kind == "error_burst":
                eff["err_p"][:, j] = np.where(on > 0, inc.size, eff["err_p"][:, j])
                eff["err_status"][:, j] = np.where(on > 0, inc.status or 500, eff["err_status"][:, j])
            elif inc.kind == "throughput_change":
                eff["thr"][:, j] *= 1 - inc.size * on
            elif inc.kind == "cache_hit_drop":
                eff["hit"][:, j] = np.maximum(eff["hit"][:, j] - inc.size * on, 0.0)
        if inc.kind == "saturation":
            eff["sat"] = np.maximum(eff["sat"], on)
    return eff


def generate_warehouse(path: str | Path, *, seed: int, days: float = 3, requests: int = 2_000_000,
                       incidents: int | None = None, threads: int = 2) -> SynthWarehouse:
    """Write a new warehouse at ``path`` with about ``requests`` requests over ``days`` days ending at
    :data:`END`, and ``incidents`` planted incidents (default 2 a day; 0 = a clean history)."""
    from kit.warehouse import begin_source, connect, finish_source, transaction

    path = Path(path)
    if path.exists():
        path.unlink()
    rng = np.random.default_rng([seed, 11])
    n_min = int(round(days * 1440))
    start = END - timedelta(minutes=n_min)
    rate = _rates(rng, n_min, start, requests / n_min)
    count = int(round(2 * days)) if incidents is None else incidents
    versions = [f"{int(a)}.{int(b)}.{int(c)}" for a, b, c in
                rng.permutation(np.array([(a, b, c) for a in range(1, 5) for b in range(20) for c in range(10)]))]
    planted = _plan(rng, start, n_min, rate, count, versions)
    eff = _effects(planted, start, n_min)

    shares = np.array([r.share for r in ROUTES])
    load = rate / rate.mean()
    queueing = 1.0 + 0.08 * np.maximum(load - 1.0, 0.0) ** 1.5            # latency turns up at peaks
    expected = rate[:, None] * shares[None, :] * eff["thr"]
    counts = rng.poisson(expected)
    m_idx, r_idx = np.meshgrid(np.arange(n_min), np.arange(len(ROUTES)), indexing="ij")
    lat_mu = np.log(np.array([r.median_ms for r in ROUTES]))[None, :] + np.log(eff["lat"] * queueing[:, None])
    lat_sigma = np.array([r.sigma for r in ROUTES])[None, :] * eff["sigma"]
    cells = pd.DataFrame({
        "cell": np.arange(counts.size, dtype=np.int64), "minute": m_idx.ravel().astype(np.int64),
        "route_id": r_idx.ravel().astype(np.int16), "n": counts.ravel().astype(np.int64),
        "mu": lat_mu.ravel(), "sigma": lat_sigma.ravel(), "err_p": eff["err_p"].ravel(),
        "err_status": eff["err_status"].ravel().astype(np.int16), "hit_p": eff["hit"].ravel()})
    cells = cells[cells["n"] > 0]
    if counts.size >= 2**23 or counts.max() >= 2**21:  # the random-number key packs cell (23 bits), request (21)
        raise ValueError("too many minutes x routes or requests per route-minute for the random-number key")
    routes = pd.DataFrame({"route_id": np.arange(len(ROUTES), dtype=np.int16),
                           "route": [r.route for r in ROUTES], "service": [r.service for r in ROUTES],
                           "cacheable": [r.hit_ratio > 0 for r in ROUTES]})

    con = connect(path, threads=threads, memory_limit="1GB")
    con.execute("SET enable_progress_bar = false")
    start_us = int(start.timestamp() * 1e6)
    s = int(seed) & 0xFFFF

    def u(k: int) -> str:
        # one 64-bit key per (cell, request, seed, stream), hashed alone: DuckDB's hash of several
        # arguments gives streams correlated at about 0.5, which bends Box-Muller normals
        return f"(hash(c.key | {k}::UBIGINT) / {_U64!r})"

    with transaction(con):
        src = begin_source(con, "synthetic", f"findings_synth seed {seed}", options={"seed": seed})
        con.register("cells_src", cells)
        con.register("routes_src", routes)
        con.execute(f"""
            INSERT INTO requests (ts, service, host, method, route, path, status, latency_ms, upstream_ms,
                                  bytes_sent, cache_status, source_id)
            WITH c0 AS (SELECT cells_src.*, unnest(range(n)) AS i FROM cells_src),
            c AS (SELECT *, (cell::UBIGINT << 41) | (i::UBIGINT << 20) | ({s}::UBIGINT << 4) AS key FROM c0),
            d AS (
                SELECT c.minute, c.i, c.n, c.key, r.route, r.service, r.cacheable,
                       {u(1)} AS u1, greatest({u(2)}, 1e-12) AS u2, {u(3)} AS u3, {u(4)} AS u4,
                       {u(5)} AS u5, greatest({u(6)}, 1e-12) AS u6, {u(7)} AS u7,
                       c.mu, c.sigma, c.err_p, c.err_status, c.hit_p
                FROM c JOIN routes_src r USING (route_id)),
            e AS (
                SELECT *, exp(mu + sigma * sqrt(-2 * ln(u2)) * cos(2 * pi() * u3))
                          * CASE WHEN u5 < 0.01 THEN pow(u6, -1 / 1.5) ELSE 1 END AS origin,
                       cacheable AND u4 < hit_p AS hit,
                       CASE WHEN u7 < err_p THEN err_status
                            WHEN u7 < err_p + 0.002 THEN 500 + 3 * (c_n % 2)
                            WHEN u7 < err_p + 0.022 THEN 404 ELSE 200 END AS status
                FROM (SELECT *, (hash(key | 8::UBIGINT) % 1000)::BIGINT AS c_n FROM d))
            SELECT make_timestamp({start_us} + minute * 60000000
                       + ((i + u1) / n * 60000000)::BIGINT)::TIMESTAMPTZ,
                   service, service || '-' || (1 + c_n % 3)::VARCHAR, 'GET', route,
                   replace(replace(route, '{{id}}', c_n::VARCHAR), '{{name}}', 'n' || (c_n % 40)::VARCHAR),
                   status,
                   round(CASE WHEN hit THEN 1.5 + 4 * u6 ELSE origin + 1.5 END, 3),
                   CASE WHEN hit THEN NULL ELSE round(origin, 3) END,
                   CASE WHEN status >= 400 THEN 150 ELSE 2000 + c_n * 20 END,
                   CASE WHEN NOT cacheable THEN 'BYPASS' WHEN hit THEN 'HIT' ELSE 'MISS' END,
                   {src.source_id}
            FROM e ORDER BY minute, route, i""")
        con.unregister("cells_src")
        con.unregister("routes_src")
        n_rows = int(con.execute("SELECT count(*) FROM requests").fetchone()[0])  # type: ignore[index]
        finish_source(con, src, lines_in=None, rows_loaded=n_rows)
        _write_metrics(con, rng, start, n_min, counts, eff)
        _write_queries(con, rng, start, n_min, counts, planted)
        events = _write_events(con, rng, start, n_min, planted, versions)
    con.close()
    return SynthWarehouse(path, seed, start, END, n_rows, tuple(planted), tuple(events))


def _write_metrics(con, rng: np.random.Generator, start: datetime, n_min: int, counts: np.ndarray,
                   eff: dict[str, np.ndarray]) -> None:
    from kit.warehouse import begin_source, finish_source

    step = 1 if n_min <= 10 * 1440 else 5
    idx = np.arange(step - 1, n_min, step)
    ts = np.array([start + timedelta(minutes=int(m) + 1) for m in idx])
    db_cols = [j for j, r in enumerate(ROUTES) if r.db]
    db_load = counts[:, db_cols].sum(axis=1).astype(np.float64)
    db_load = db_load / max(np.quantile(db_load, 0.99), 1.0)
    active = 3 + 25 * db_load * np.exp(rng.normal(0, 0.12, n_min))
    target = MAX_CONNECTIONS * rng.uniform(0.90, 0.99)
    active = np.rint(np.maximum(active, eff["sat"] * target))
    active = np.minimum(active, MAX_CONNECTIONS)
    idle = np.minimum(np.rint(20 + 6 * rng.random(n_min)), MAX_CONNECTIONS - active)
    rows = []
    pg = {"instance": "db-1:9187", "job": "postgres", "datname": "shop"}
    rows.append(("pg_stat_activity_count", {**pg, "state": "active"}, active[idx]))
    rows.append(("pg_stat_activity_count", {**pg, "state": "idle"}, idle[idx]))
    rows.append(("pg_settings_max_connections", {"instance": "db-1:9187", "job": "postgres"},
                 np.full(len(idx), MAX_CONNECTIONS)))
    for service in SERVICES:
        cols = [j for j, r in enumerate(ROUTES) if r.service == service]
        n = counts[:, cols].sum(axis=1).astype(np.float64)
        util = np.clip(0.05 + 0.6 * n / max(np.quantile(n, 0.999), 1.0), 0.01, 0.98)
        util = util * np.exp(rng.normal(0, 0.05, n_min))
        cpu = np.round(np.cumsum(util * 2 * 60) + rng.uniform(500, 5000), 2)
        rows.append(("process_cpu_seconds_total", {"job": service, "service": service}, cpu[idx]))
    frame = pd.DataFrame({
        "ts": pd.to_datetime(np.tile(ts, len(rows)), utc=True),
        "name": np.repeat([r[0] for r in rows], len(idx)),
        "labels": [r[1] for r in rows for _ in idx],
        "value": np.concatenate([r[2] for r in rows]).astype(np.float64)})
    frame["labels"] = frame["labels"].map(json.dumps)
    src = begin_source(con, "synthetic-metrics", "findings_synth metrics")
    con.register("m_src", frame)
    con.execute(f"""INSERT INTO metrics SELECT ts, name,
                    CAST(json_transform(labels::JSON, '"MAP(VARCHAR, VARCHAR)"') AS MAP(VARCHAR, VARCHAR)),
                    value, {src.source_id} FROM m_src ORDER BY ts, name""")
    con.unregister("m_src")
    finish_source(con, src, lines_in=None, rows_loaded=len(frame))


def _write_queries(con, rng: np.random.Generator, start: datetime, n_min: int, counts: np.ndarray,
                   planted: list[PlantedIncident]) -> None:
    """Cumulative pg_stat_statements snapshots every 10 min; a saturation's fingerprint slows x10-30."""
    from kit.warehouse import begin_source, finish_source

    snap = 10
    n_b = n_min // snap
    db_cols = [j for j, r in enumerate(ROUTES) if r.db]
    db_req = counts[: n_b * snap, db_cols].sum(axis=1).reshape(n_b, snap).sum(axis=1).astype(np.float64)
    b_start = np.array([start + timedelta(minutes=snap * b) for b in range(n_b)])
    F = len(FINGERPRINTS)
    calls = rng.poisson(np.outer(_FP_CALLS_PER_DB_REQUEST, db_req)).astype(np.float64)
    mean_ms = np.array(_FP_MEAN_MS)[:, None] * np.exp(rng.normal(0, 0.08, (F, n_b)))
    for inc in planted:
        query = next((c for c in inc.causes if c.kind == "query"), None)
        if query is None:
            continue
        f = FINGERPRINTS.index(query.what)
        on = np.array([(bs + timedelta(minutes=snap) > inc.onset) and bs < inc.end for bs in b_start])
        mean_ms[f] = np.where(on, mean_ms[f] * rng.uniform(10, 30) + 50, mean_ms[f])
        calls[f] = np.where(on, calls[f] * 1.5 + 2, calls[f])
    base = rng.integers(10_000, 1_000_000, F)[:, None].astype(np.float64)
    cum_calls = np.cumsum(calls, axis=1) + base
    cum_ms = np.round(np.cumsum(calls * mean_ms, axis=1) + base * mean_ms[:, :1], 3)
    ts = np.array([start + timedelta(minutes=snap * (b + 1)) for b in range(n_b)])
    frame = pd.DataFrame({"ts": pd.to_datetime(np.tile(ts, F), utc=True),
                          "fingerprint": np.repeat(FINGERPRINTS, n_b),
                          "query_id": np.repeat([f"q{i:02d}" for i in range(F)], n_b),
                          "calls": cum_calls.ravel().astype(np.int64), "total_ms": cum_ms.ravel()})
    src = begin_source(con, "synthetic-queries", "findings_synth queries")
    con.register("q_src", frame)
    con.execute(f"""INSERT INTO queries (ts, db_system, database, user_name, kind, fingerprint, query_id, sample,
                                         calls, total_ms, source_id)
                    SELECT ts, 'postgresql', 'shop', 'shop_app', 'snapshot', fingerprint, query_id, fingerprint,
                           calls, total_ms, {src.source_id} FROM q_src ORDER BY ts, fingerprint""")
    con.unregister("q_src")
    finish_source(con, src, lines_in=None, rows_loaded=len(frame))


def _write_events(con, rng: np.random.Generator, start: datetime, n_min: int, planted: list[PlantedIncident],
                  versions: list[str]) -> list[dict]:
    from kit.warehouse import begin_source, finish_source

    rows = _decoys(rng, start, n_min, planted, versions)
    for inc in planted:
        ev = inc.cause_event
        if ev is not None:
            rows.append({"ts_start": ev.ts, "ts_end": ev.ts + timedelta(minutes=5) if ev.ts else None,
                         "kind": ev.kind, "service": ev.service, "route": ev.route, "what": ev.what,
                         "details": {"version": re.search(r"\d+\.\d+\.\d+", ev.what)[0]}})  # type: ignore[index]
        rows.append({"ts_start": inc.onset, "ts_end": inc.end, "kind": "incident", "service": inc.service,
                     "route": inc.route, "what": f"planted {inc.describe()}",
                     "details": {"type": inc.kind, "size": inc.size, "status": inc.status,
                                 "above_minimum": inc.above_minimum}})
    rows.sort(key=lambda e: e["ts_start"])
    src = begin_source(con, "synthetic-events", "findings_synth events")
    for e in rows:
        con.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [e["ts_start"], e["ts_end"], e["kind"], e["service"], e["route"], e["what"],
                     json.dumps(e["details"]), src.source_id])
    finish_source(con, src, lines_in=None, rows_loaded=len(rows))
    return rows


def _main() -> None:  # pragma: no cover - a quick look at one warehouse
    import argparse

    parser = argparse.ArgumentParser(description="Write one synthetic warehouse and print its incidents.")
    parser.add_argument("path")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=float, default=3)
    parser.add_argument("--requests", type=int, default=2_000_000)
    parser.add_argument("--incidents", type=int)
    args = parser.parse_args()
    w = generate_warehouse(args.path, seed=args.seed, days=args.days, requests=args.requests,
                           incidents=args.incidents)
    print(f"{w.requests:,} requests {w.start:%Y-%m-%d %H:%M} .. {w.end:%Y-%m-%d %H:%M}")
    for inc in w.incidents:
        cause = inc.cause_event.what if inc.cause_event else "-"
        print(f"  {'*' if inc.above_minimum else ' '} {inc.describe()}  cause: {cause}")


if __name__ == "__main__":
    _main()
