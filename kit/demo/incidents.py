"""The planted incidents (ground truth) and the other events of the demo history: deploys, config
changes and a marketing campaign; ``write_events`` stores them in ``events``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from kit import warehouse
from kit.demo.catalog import DEMO_END, HOSTS


@dataclass(frozen=True)
class DemoIncident:
    """A planted incident (ground truth), as stored in ``events``."""

    type: str
    start: datetime
    end: datetime
    service: str
    route: str | None
    what: str
    details: dict[str, Any] = field(default_factory=dict)


REGRESSION_ROUTE = "/api/v1/products/{id}"
SLOW_QUERY = ("SELECT o.id, o.status, o.total_cents, o.created_at, oi.product_id, oi.quantity FROM orders o "
              "JOIN order_items oi ON oi.order_id = o.id WHERE o.user_id = ? ORDER BY o.created_at DESC")


def _incident_windows(start: datetime, days: int) -> list[tuple[datetime, datetime]]:
    """Start and end of the four incidents (regression, error burst, DB saturation, CDN outage)."""
    nominal = [timedelta(hours=5), timedelta(minutes=30), timedelta(minutes=45), timedelta(hours=1)]
    if days >= 4:
        day_of = [int(days * f) for f in (0.2, 0.45, 0.62, 0.8)]
        clock = [timedelta(hours=10), timedelta(hours=14, minutes=10), timedelta(hours=19, minutes=30),
                 timedelta(hours=11)]
        for i in range(1, 4):  # distinct days, so incidents never overlap
            day_of[i] = max(day_of[i], day_of[i - 1] + 1)
        return [(start + timedelta(days=d) + c, start + timedelta(days=d) + c + n)
                for d, c, n in zip(day_of, clock, nominal, strict=True)]
    span = timedelta(days=days)
    out = []
    for frac, dur in zip((0.12, 0.42, 0.6, 0.78), nominal, strict=True):
        s = start + span * frac
        s = s.replace(second=0, microsecond=0)
        out.append((s, s + min(dur, span * 0.14)))
    return out


def plan_incidents(days: int = 7, end: datetime = DEMO_END) -> tuple[DemoIncident, ...]:
    """The planted incidents of a demo history of ``days`` days ending at ``end`` (ground truth)."""
    start = end - timedelta(days=days)
    (r0, r1), (e0, e1), (d0, d1), (c0, c1) = _incident_windows(start, days)
    return (
        DemoIncident(
            "latency_regression", r0, r1, "api", REGRESSION_ROUTE,
            "latency regression on /api/v1/products/{id} after api deploy 2.14.0 (N+1 queries in the "
            "product serializer); ended by the rollback to 2.13.1",
            {"type": "latency_regression", "route": REGRESSION_ROUTE, "latency_factor": 4.0,
             "metric": "p95 latency_ms", "cause_deploy": "api 2.14.0", "fixed_by": "rollback to api 2.13.1"}),
        DemoIncident(
            "error_burst", e0, e1, "api", None,
            "error-rate burst on api: ~22% of responses 5xx (502/503) after a load-balancer config push "
            "disabled upstream keepalive; reverted",
            {"type": "error_burst", "error_ratio": 0.22, "status_codes": [502, 503, 500],
             "cause": "config: upstream keepalive disabled", "slo_objective": 0.999}),
        DemoIncident(
            "db_saturation", d0, d1, "api", "/api/v1/users/{id}/orders",
            "database saturation: one slow query (orders by user, missing index after a migration) "
            "holds every connection; DB-backed routes slow, some 500/504",
            {"type": "db_saturation", "fingerprint": SLOW_QUERY, "max_connections": 100,
             "slow_query_mean_ms": 1800.0, "latency_factor": 4.0, "error_ratio": 0.04,
             "status_codes": [504, 500]}),
        DemoIncident(
            "cdn_cache_outage", c0, c1, "static", "/static/*",
            "CDN cache outage: a config push added Vary: Cookie to static responses, so the CDN stops "
            "serving from cache (hit ratio ~0) and the origin slows under the load (upstream_ms up); reverted",
            {"type": "cdn_cache_outage", "hit_ratio_during": 0.02, "origin_latency_factor": 3.0,
             "cause": "config: Vary: Cookie on static responses"}),
    )


def campaign_window(start: datetime, days: int,
                     incidents: tuple[DemoIncident, ...]) -> tuple[datetime, datetime] | None:
    """A 2-hour marketing e-mail campaign that doubles traffic (a load peak, not an incident)."""
    if days < 4:
        return None
    s = start + timedelta(days=int(days * 0.33), hours=12)
    e = s + timedelta(hours=2)
    if any(s < i.end + timedelta(hours=1) and i.start - timedelta(hours=1) < e for i in incidents):
        return None
    return s, e


CAMPAIGN_FACTOR = 2.0


def other_events(start: datetime, days: int, incidents: tuple[DemoIncident, ...]) -> list[dict[str, Any]]:
    """Deploys and config changes (besides the incidents themselves)."""
    span = timedelta(days=days)
    reg, burst = incidents[0], incidents[1]
    events: list[dict[str, Any]] = []

    def deploy(ts: datetime, service: str, version: str, prev: str, rollback: bool = False,
               note: str = "") -> None:
        sha = hashlib.sha1(f"{service}{version}".encode()).hexdigest()[:10]
        what = f"deploy {service} {version}" + (f" (rollback from {prev})" if rollback else "") + note
        events.append({"ts_start": ts, "ts_end": ts + timedelta(minutes=6), "kind": "deploy",
                       "service": service, "route": None, "what": what,
                       "details": {"version": version, "previous_version": prev, "commit": sha,
                                   "rollback": rollback, "strategy": "rolling", "instances": len(HOSTS[service])}})

    fracs = [(0.04, "web", "5.8.0", "5.7.3"), (0.09, "search", "1.22.0", "1.21.4"),
             (0.33, "checkout", "3.4.0", "3.3.9"), (0.52, "web", "5.8.1", "5.8.0"),
             (0.57, "static", "2026.11.19", "2026.11.12"), (0.71, "search", "1.22.1", "1.22.0"),
             (0.92, "checkout", "3.4.1", "3.4.0")]
    windows = [(i.start - timedelta(hours=1), i.end + timedelta(hours=1)) for i in incidents]
    for frac, svc, ver, prev in fracs:
        ts = (start + span * frac).replace(minute=0, second=0, microsecond=0)
        ts = ts.replace(hour=min(max(ts.hour, 9), 16)) if days >= 2 else ts
        if any(a <= ts <= b for a, b in windows):
            ts = ts - timedelta(hours=2)
        if start < ts < start + span:
            deploy(ts, svc, ver, prev)
    deploy(reg.start, "api", "2.14.0", "2.13.1", note=" (product serializer refactor)")
    deploy(reg.end, "api", "2.13.1", "2.14.0", rollback=True)
    events.append({"ts_start": burst.start, "ts_end": burst.end, "kind": "config", "service": "api",
                   "route": None,
                   "what": "load balancer config push: upstream keepalive disabled for api (reverted)",
                   "details": {"component": "load-balancer", "setting": "upstream keepalive",
                               "old": "32", "new": "0", "reverted": True}})
    outage = incidents[3]
    events.append({"ts_start": outage.start, "ts_end": outage.end, "kind": "config", "service": "static",
                   "route": "/static/*",
                   "what": "CDN config push: Vary: Cookie added to /static responses (reverted)",
                   "details": {"component": "cdn", "setting": "vary", "old": "Accept-Encoding",
                               "new": "Accept-Encoding, Cookie", "reverted": True}})
    campaign = campaign_window(start, days, incidents)
    if campaign:
        events.append({"ts_start": campaign[0], "ts_end": campaign[1], "kind": "campaign", "service": "web",
                       "route": "/deals",
                       "what": f"marketing e-mail campaign 'Black Friday preview': traffic about x{CAMPAIGN_FACTOR:g} "
                               "for 2 h",
                       "details": {"type": "traffic_spike", "traffic_factor": CAMPAIGN_FACTOR,
                                   "utm_campaign": "bf2026", "channel": "email"}})
    ts = (start + span * 0.25).replace(minute=30, second=0, microsecond=0)
    events.append({"ts_start": ts, "ts_end": None, "kind": "config", "service": "static", "route": "/static/*",
                   "what": "CDN: default TTL for /static/img raised from 1 d to 7 d",
                   "details": {"component": "cdn", "setting": "default_ttl", "old": "86400", "new": "604800"}})
    return sorted(events, key=lambda e: (e["ts_start"], e["what"]))


def window_mask(ts_us: np.ndarray, inc: DemoIncident) -> np.ndarray:
    """Which of the timestamps ``ts_us`` (µs since the epoch) fall in (start, end] of ``inc``."""
    return (ts_us > inc.start.timestamp() * 1e6) & (ts_us <= inc.end.timestamp() * 1e6)


def write_events(con: Any, src: Any, start: datetime, days: int, incidents: tuple[DemoIncident, ...]) -> None:
    """Deploys, config changes and the planted incidents (ground truth)."""
    rows = other_events(start, days, incidents)
    rows += [{"ts_start": i.start, "ts_end": i.end, "kind": "incident", "service": i.service, "route": i.route,
              "what": i.what, "details": i.details} for i in incidents]
    rows.sort(key=lambda e: (e["ts_start"], e["kind"], e["what"]))
    for e in rows:
        con.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [e["ts_start"], e["ts_end"], e["kind"], e["service"], e["route"], e["what"],
                     json.dumps(e["details"], sort_keys=True), src.source_id])
    warehouse.finish_source(con, src, lines_in=None, rows_loaded=len(rows))
