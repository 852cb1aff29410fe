"""The seeded demo warehouse: a week in the life of a fictional web shop, with planted incidents.

``build_demo(db_path)`` writes a complete warehouse (every core table) generated with vectorized numpy
and DuckDB, streamed in chunks of requests so that very large histories run in bounded memory. The
history ends at a FIXED instant (``DEMO_END``), so the same seed gives the same content.

The shop has five services, each with 2-4 instances named in ``host``:

- ``web``      server-rendered HTML pages behind the CDN (anonymous pages partly cached),
- ``api``      JSON API used by the single-page app and the mobile app (mostly BYPASS / MISS),
- ``static``   JS, CSS, fonts, icons and product images served through the CDN (mostly HIT),
- ``search``   search pages and suggestions,
- ``checkout`` cart and checkout flow (POST-heavy, never cached).

What the tables hold (default: 1,000,000 requests over the 7 days 2026-11-16 .. 2026-11-23 UTC):

- ``requests``  132 route templates (Zipf popularity by rank, exponent ~1.05), Zipf-popular object ids
  inside each route plus a daily "trending" set and crawlers walking the long tail (so ``path`` is a
  realistic cache key with a stable size per static object); diurnal (trough ~04:00, peak ~20:00 UTC)
  and weekly (weekend ~0.7x) seasonality; per-route lognormal origin latency with a Pareto tail and a
  queueing knee at high load; status mix (~95% 2xx, 3-6% 3xx incl. 304, 1-3% 4xx, ~0.1% 5xx); CDN
  ``cache_status`` (static ~92% HIT, API mostly MISS/BYPASS, checkout BYPASS); ``upstream_ms`` is NULL
  for edge hits and <= ``latency_ms`` otherwise; redacted secrets in ``query``.
- ``metrics``   every 60 s (coarser beyond 7 days): per instance ``process_cpu_seconds_total``,
  ``process_resident_memory_bytes`` (grows between deploys), ``http_server_requests_in_flight``;
  ``pg_stat_activity_count{state}`` and ``pg_settings_max_connections``; per service
  ``http_requests_total{service,code}`` and ``http_request_duration_seconds_{bucket,sum,count}``,
  cumulative and equal to counts of the requests table.
- ``queries``   pg_stat_statements-like cumulative snapshots every 10 min of 31 fingerprints, and
  slow-query log events (> 100 ms).
- ``assets`` + ``asset_content``  ~140 static files with real content (compressible JS/CSS/SVG/JSON,
  incompressible PNG/JPEG/WOFF2/ICO bytes), at exactly the sizes the requests report.
- ``profiles``  one on-CPU folded-stack profile per service per day (hot spot:
  ``pricing.apply_promotions;pricing._match_rules`` in api) plus hourly api profiles around release 2.14.0
  (before its deploy, during the regression, after the rollback).
- ``events``    deploys, three config changes, a marketing campaign (a 2x load peak) and the incidents.

Ground truth for the planted incidents lives in ``events`` (kind ``incident``; ``details.type`` is one
of ``latency_regression``, ``error_burst``, ``db_saturation``, ``cdn_cache_outage``); see
``plan_incidents`` for their windows.

Modules, along the generator's seams: ``catalog`` the shop and its routes; ``incidents`` the planted
incidents and other events; ``sampling`` deterministic hashing and sampling helpers; ``assets`` static
files with real content; ``clients`` query strings and user agents; ``traffic`` the request generator;
``metrics``, ``queries``, ``profiles`` the tables derived from the requests; ``build`` ``build_demo``.
"""

from __future__ import annotations

from kit.demo.build import DemoSummary, build_demo
from kit.demo.catalog import DEMO_END, Route, demo_routes
from kit.demo.incidents import REGRESSION_ROUTE, SLOW_QUERY, DemoIncident, plan_incidents

__all__ = ["DEMO_END", "REGRESSION_ROUTE", "SLOW_QUERY", "DemoIncident", "DemoSummary", "Route", "build_demo",
           "demo_routes", "plan_incidents"]
