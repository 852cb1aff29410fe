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
  ``pricing.apply_promotions;pricing._match_rules`` in api) plus one taken during the regression.
- ``events``    deploys, three config changes, a marketing campaign (a 2x load peak) and the incidents.

Ground truth for the planted incidents lives in ``events`` (kind ``incident``; ``details.type`` is one
of ``latency_regression``, ``error_burst``, ``db_saturation``, ``cdn_cache_outage``); see
``plan_incidents`` for their windows.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["DEMO_END", "REGRESSION_ROUTE", "SLOW_QUERY", "DemoIncident", "DemoSummary", "Route", "build_demo",
           "demo_routes", "plan_incidents"]

DEMO_END = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday, 00:00 UTC: the history ends here
_US_PER_MIN = 60_000_000
_SUB_BATCH = 262_144  # rows generated and inserted per statement inside a chunk

SERVICES = ("web", "api", "static", "search", "checkout")
HOSTS: dict[str, tuple[str, ...]] = {
    "web": ("web-1", "web-2", "web-3"),
    "api": ("api-1", "api-2", "api-3", "api-4"),
    "static": ("static-1", "static-2"),
    "search": ("search-1", "search-2"),
    "checkout": ("checkout-1", "checkout-2"),
}
METHODS = ("GET", "POST", "PUT", "DELETE")
CACHE_STATUSES = ("HIT", "MISS", "EXPIRED", "BYPASS")
CONTENT_TYPES: dict[str, str] = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "js": "application/javascript",
    "css": "text/css",
    "png": "image/png",
    "jpg": "image/jpeg",
    "svg": "image/svg+xml",
    "woff2": "font/woff2",
    "ico": "image/x-icon",
    "txt": "text/plain; charset=utf-8",
    "xml": "application/xml",
}
# cache profiles: probabilities of HIT, MISS, EXPIRED, BYPASS for GET requests
_CACHE_PROFILES = {
    "static": (0.95, 0.025, 0.02, 0.005),
    "page": (0.55, 0.33, 0.05, 0.07),
    "api": (0.28, 0.52, 0.05, 0.15),
    "search": (0.12, 0.58, 0.02, 0.28),
    "bypass": (0.0, 0.0, 0.0, 1.0),
}


# ----------------------------------------------------------------------------------------------------
# Routes
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    """One route template and how its traffic behaves."""

    template: str
    service: str
    ctype: str                  # key of CONTENT_TYPES
    score: float                # popularity score: routes are ranked by it, weights follow Zipf by rank
    n_objects: int = 1          # distinct objects behind the placeholder (1 = literal path)
    names: str | None = None    # name list for the placeholder (None = numeric ids)
    zipf_a: float = 0.9         # popularity skew of objects within the route
    latency_ms: float = 50.0    # median origin latency
    latency_sigma: float = 0.6  # lognormal sigma of origin latency
    size_bytes: float = 2000.0  # median response size of one object
    size_sigma: float = 0.5     # lognormal sigma of object sizes
    methods: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)  # GET POST PUT DELETE
    cache: str = "bypass"       # key of _CACHE_PROFILES
    db: bool = False            # served with database queries
    query: str | None = None    # query-string kind
    query_p: float = 0.0        # share of requests with a query string
    p4xx: float = 0.01
    p3xx: float = 0.0
    code3: int = 304
    id_base: int = 1000


def demo_routes() -> tuple[Route, ...]:
    """The shop's route templates, most popular first (ranked by score)."""
    R = Route
    rs: list[Route] = [
        # ---- static assets (CDN) --------------------------------------------------------------------
        R("/static/img/products/{id}.jpg", "static", "jpg", 100, 20000, zipf_a=0.95, latency_ms=35,
          size_bytes=62000, size_sigma=0.55, cache="static", p4xx=0.004, p3xx=0.05, id_base=100000),
        R("/static/js/{name}.js", "static", "js", 95, 24, names="js", zipf_a=1.1, latency_ms=25,
          cache="static", p4xx=0.001, p3xx=0.08, query="asset_version", query_p=0.5),
        R("/static/css/{name}.css", "static", "css", 80, 10, names="css", zipf_a=1.2, latency_ms=22,
          cache="static", p4xx=0.001, p3xx=0.08, query="asset_version", query_p=0.5),
        R("/static/img/thumbs/{id}.jpg", "static", "jpg", 70, 20000, zipf_a=0.95, latency_ms=30,
          size_bytes=9000, size_sigma=0.4, cache="static", p4xx=0.004, p3xx=0.05, id_base=100000),
        R("/static/img/icons/{name}.svg", "static", "svg", 55, 30, names="svg", zipf_a=1.0, latency_ms=15,
          cache="static", p4xx=0.001, p3xx=0.1),
        R("/static/fonts/{name}.woff2", "static", "woff2", 45, 8, names="woff2", zipf_a=1.1, latency_ms=20,
          cache="static", p4xx=0.001, p3xx=0.1),
        R("/static/img/{name}.png", "static", "png", 40, 20, names="png", zipf_a=1.0, latency_ms=20,
          cache="static", p4xx=0.002, p3xx=0.06),
        R("/favicon.ico", "static", "ico", 30, latency_ms=8, size_bytes=15086, size_sigma=0.0,
          cache="static", p4xx=0.0, p3xx=0.2),
        R("/static/img/banners/{id}.jpg", "static", "jpg", 22, 40, zipf_a=1.3, latency_ms=40,
          size_bytes=180000, size_sigma=0.35, cache="static", p4xx=0.002, id_base=1),
        R("/static/manifest.json", "static", "json", 12, latency_ms=6, size_bytes=900, size_sigma=0.0,
          cache="static", p4xx=0.0, p3xx=0.2),
        # ---- web pages ------------------------------------------------------------------------------
        R("/product/{id}", "web", "html", 92, 20000, zipf_a=0.95, latency_ms=140, size_bytes=52000,
          size_sigma=0.25, cache="page", db=True, query="utm", query_p=0.06, p4xx=0.02, p3xx=0.02,
          id_base=100000),
        R("/", "web", "html", 85, latency_ms=110, size_bytes=61000, size_sigma=0.05, cache="page", db=True,
          query="utm", query_p=0.12, p4xx=0.0, p3xx=0.03),
        R("/category/{slug}", "web", "html", 75, 300, names="category", zipf_a=1.0, latency_ms=170,
          size_bytes=70000, size_sigma=0.2, cache="page", db=True, query="listing", query_p=0.35,
          p4xx=0.005, p3xx=0.02),
        R("/brand/{slug}", "web", "html", 35, 200, names="brand", zipf_a=1.0, latency_ms=150,
          size_bytes=58000, size_sigma=0.2, cache="page", db=True, query="listing", query_p=0.2, p4xx=0.01),
        R("/deals", "web", "html", 33, latency_ms=160, size_bytes=66000, size_sigma=0.05, cache="page",
          db=True, query="utm", query_p=0.3),
        R("/login", "web", "html", 31, latency_ms=60, size_bytes=14000, size_sigma=0.02,
          methods=(0.7, 0.3, 0, 0), cache="bypass", db=True, p4xx=0.04, p3xx=0.25, code3=302),
        R("/account", "web", "html", 27, latency_ms=120, size_bytes=24000, size_sigma=0.1, cache="bypass",
          db=True, p4xx=0.01, p3xx=0.15, code3=302),
        R("/account/orders", "web", "html", 24, latency_ms=210, size_bytes=31000, size_sigma=0.15,
          cache="bypass", db=True, p4xx=0.01, p3xx=0.1, code3=302),
        R("/account/orders/{id}", "web", "html", 18, 60000, zipf_a=0.6, latency_ms=150, size_bytes=27000,
          size_sigma=0.15, cache="bypass", db=True, p4xx=0.02, id_base=5000000),
        R("/new", "web", "html", 20, latency_ms=150, size_bytes=64000, size_sigma=0.05, cache="page", db=True),
        R("/wishlist", "web", "html", 17, latency_ms=130, size_bytes=28000, size_sigma=0.2, cache="bypass",
          db=True, p3xx=0.1, code3=302),
        R("/register", "web", "html", 14, latency_ms=70, size_bytes=16000, size_sigma=0.02,
          methods=(0.75, 0.25, 0, 0), cache="bypass", db=True, p4xx=0.05, p3xx=0.2, code3=302),
        R("/help/{slug}", "web", "html", 13, 60, names="help", zipf_a=1.1, latency_ms=45, size_bytes=21000,
          size_sigma=0.3, cache="page", p4xx=0.01),
        R("/blog/{slug}", "web", "html", 12, 400, names="blog", zipf_a=1.0, latency_ms=55, size_bytes=38000,
          size_sigma=0.35, cache="page", query="utm", query_p=0.3, p4xx=0.01),
        R("/store/{id}", "web", "html", 10, 120, zipf_a=0.8, latency_ms=90, size_bytes=22000,
          size_sigma=0.1, cache="page", db=True, id_base=1),
        R("/gift-cards", "web", "html", 8, latency_ms=80, size_bytes=30000, size_sigma=0.02, cache="page"),
        R("/faq", "web", "html", 7, latency_ms=40, size_bytes=33000, size_sigma=0.02, cache="page"),
        R("/contact", "web", "html", 6, latency_ms=45, size_bytes=15000, size_sigma=0.02,
          methods=(0.9, 0.1, 0, 0), cache="page"),
        R("/about", "web", "html", 5, latency_ms=35, size_bytes=19000, size_sigma=0.02, cache="page"),
        R("/terms", "web", "html", 3, latency_ms=30, size_bytes=41000, size_sigma=0.02, cache="page"),
        R("/privacy", "web", "html", 3, latency_ms=30, size_bytes=39000, size_sigma=0.02, cache="page"),
        R("/sitemap.xml", "web", "xml", 4, latency_ms=300, size_bytes=480000, size_sigma=0.02, cache="page",
          db=True),
        R("/robots.txt", "web", "txt", 4, latency_ms=5, size_bytes=420, size_sigma=0.0, cache="page"),
        R("/health", "web", "json", 9, latency_ms=2, latency_sigma=0.3, size_bytes=15, size_sigma=0.0,
          p4xx=0.0),
        # ---- checkout (never cached) ---------------------------------------------------------------
        R("/cart", "checkout", "html", 29, latency_ms=160, size_bytes=26000, size_sigma=0.2, db=True,
          p3xx=0.02, code3=302),
        R("/checkout", "checkout", "html", 16, latency_ms=220, size_bytes=29000, size_sigma=0.1, db=True,
          p3xx=0.05, code3=302),
        R("/checkout/shipping", "checkout", "html", 11, latency_ms=240, size_bytes=24000, size_sigma=0.1,
          methods=(0.55, 0.45, 0, 0), db=True, p4xx=0.02, p3xx=0.3, code3=303),
        R("/checkout/payment", "checkout", "html", 9, latency_ms=380, latency_sigma=0.7, size_bytes=22000,
          size_sigma=0.1, methods=(0.5, 0.5, 0, 0), db=True, p4xx=0.03, p3xx=0.3, code3=303),
        R("/checkout/review", "checkout", "html", 8, latency_ms=260, size_bytes=25000, size_sigma=0.1,
          db=True, p4xx=0.01),
        R("/checkout/confirm", "checkout", "html", 7, latency_ms=650, latency_sigma=0.7, size_bytes=18000,
          size_sigma=0.1, methods=(0.1, 0.9, 0, 0), db=True, p4xx=0.02, p3xx=0.5, code3=303),
        R("/checkout/complete/{id}", "checkout", "html", 6, 400000, zipf_a=0.3, latency_ms=180,
          size_bytes=20000, size_sigma=0.1, db=True, id_base=9000000),
        R("/api/v1/cart/{id}", "checkout", "json", 38, 300000, zipf_a=0.55, latency_ms=45, size_bytes=2400,
          size_sigma=0.7, methods=(0.8, 0.0, 0.2, 0.0), db=True, p4xx=0.01, id_base=7000000),
        R("/api/v1/cart/{id}/items", "checkout", "json", 28, 300000, zipf_a=0.55, latency_ms=60,
          size_bytes=2600, size_sigma=0.6, methods=(0.15, 0.6, 0.1, 0.15), db=True, p4xx=0.02,
          id_base=7000000),
        R("/api/v1/cart/{id}/coupon", "checkout", "json", 5, 300000, zipf_a=0.5, latency_ms=70,
          size_bytes=600, size_sigma=0.4, methods=(0.0, 0.9, 0.0, 0.1), db=True, p4xx=0.25,
          id_base=7000000),
        R("/api/v1/checkout/{id}", "checkout", "json", 10, 300000, zipf_a=0.4, latency_ms=120,
          size_bytes=3100, size_sigma=0.4, methods=(0.5, 0.3, 0.2, 0.0), db=True, p4xx=0.02,
          id_base=7000000),
        R("/api/v1/checkout/{id}/payment", "checkout", "json", 7, 300000, zipf_a=0.3, latency_ms=850,
          latency_sigma=0.75, size_bytes=700, size_sigma=0.3, methods=(0.0, 1.0, 0.0, 0.0), db=True,
          p4xx=0.04, id_base=7000000),
        R("/api/v1/orders", "checkout", "json", 7, latency_ms=240, size_bytes=1300, size_sigma=0.3,
          methods=(0.2, 0.8, 0.0, 0.0), db=True, p4xx=0.02),
        R("/api/v1/payments/{id}/callback", "checkout", "json", 5, 400000, zipf_a=0.2, latency_ms=90,
          size_bytes=60, size_sigma=0.1, methods=(0.0, 1.0, 0.0, 0.0), db=True, query="signed",
          query_p=1.0, p4xx=0.01, id_base=3000000),
        R("/api/v1/shipping/estimate", "checkout", "json", 6, latency_ms=140, size_bytes=800,
          size_sigma=0.3, methods=(0.3, 0.7, 0.0, 0.0), query="postcode", query_p=0.3),
        R("/api/v1/addresses/validate", "checkout", "json", 4, latency_ms=110, size_bytes=400,
          size_sigma=0.3, methods=(0.0, 1.0, 0.0, 0.0), p4xx=0.08),
        # ---- search ----------------------------------------------------------------------------------
        R("/search", "search", "html", 50, latency_ms=210, latency_sigma=0.7, size_bytes=56000,
          size_sigma=0.3, cache="search", query="search", query_p=0.97, p4xx=0.003),
        R("/api/v1/search/suggest", "search", "json", 60, latency_ms=35, latency_sigma=0.6, size_bytes=1100,
          size_sigma=0.5, cache="search", query="suggest", query_p=1.0, p4xx=0.002),
        R("/api/v1/search", "search", "json", 36, latency_ms=160, latency_sigma=0.7, size_bytes=14000,
          size_sigma=0.6, cache="search", query="search", query_p=1.0, p4xx=0.004),
        R("/api/v1/search/facets", "search", "json", 15, latency_ms=120, size_bytes=5200, size_sigma=0.5,
          cache="search", query="search", query_p=1.0),
        R("/api/v1/search/trending", "search", "json", 9, latency_ms=25, size_bytes=1800, size_sigma=0.1,
          cache="api"),
        R("/api/v1/search/history", "search", "json", 5, latency_ms=30, size_bytes=900, size_sigma=0.4,
          methods=(0.8, 0.0, 0.0, 0.2)),
        R("/search/{slug}", "search", "html", 8, 2000, names="term", zipf_a=1.0, latency_ms=190,
          size_bytes=52000, size_sigma=0.3, cache="search", query="listing", query_p=0.2),
        R("/api/v1/search/spellcheck", "search", "json", 3, latency_ms=20, size_bytes=300, size_sigma=0.3,
          query="suggest", query_p=1.0),
        # ---- api (JSON for the app) ---------------------------------------------------------------
        R("/api/v1/products/{id}", "api", "json", 90, 20000, zipf_a=0.95, latency_ms=38, size_bytes=4200,
          size_sigma=0.45, cache="api", db=True, p4xx=0.02, id_base=100000),
        R("/api/v1/products/{id}/stock", "api", "json", 65, 20000, zipf_a=0.95, latency_ms=18,
          size_bytes=180, size_sigma=0.2, db=True, p4xx=0.01, id_base=100000),
        R("/api/v1/products/{id}/reviews", "api", "json", 48, 20000, zipf_a=0.95, latency_ms=55,
          size_bytes=9000, size_sigma=0.9, cache="api", db=True, query="paging", query_p=0.3,
          id_base=100000),
        R("/api/v1/products/{id}/related", "api", "json", 44, 20000, zipf_a=0.95, latency_ms=85,
          size_bytes=7000, size_sigma=0.4, cache="api", db=True, id_base=100000),
        R("/api/v1/products/{id}/prices", "api", "json", 39, 20000, zipf_a=0.95, latency_ms=30,
          size_bytes=420, size_sigma=0.3, db=True, id_base=100000),
        R("/api/v1/session", "api", "json", 58, latency_ms=12, size_bytes=350, size_sigma=0.2,
          methods=(0.85, 0.1, 0.0, 0.05), query="token", query_p=0.15, p4xx=0.03),
        R("/api/v1/recommendations", "api", "json", 42, latency_ms=95, latency_sigma=0.7,
          size_bytes=11000, size_sigma=0.4, db=True, query="reco", query_p=0.8),
        R("/api/v1/categories", "api", "json", 34, latency_ms=20, size_bytes=24000, size_sigma=0.0,
          cache="api", db=True),
        R("/api/v1/categories/{id}/products", "api", "json", 41, 300, zipf_a=1.0, latency_ms=75,
          size_bytes=18000, size_sigma=0.4, cache="api", db=True, query="listing", query_p=0.5, id_base=1),
        R("/api/v1/banners", "api", "json", 26, latency_ms=15, size_bytes=3200, size_sigma=0.05, cache="api",
          db=True),
        R("/api/v1/config", "api", "json", 25, latency_ms=6, size_bytes=2100, size_sigma=0.0, cache="api"),
        R("/api/v1/events", "api", "json", 47, latency_ms=8, latency_sigma=0.5, size_bytes=2, size_sigma=0.0,
          methods=(0.0, 1.0, 0.0, 0.0), p4xx=0.004),
        R("/api/v1/users/{id}", "api", "json", 23, 80000, zipf_a=0.6, latency_ms=28, size_bytes=1600,
          size_sigma=0.3, methods=(0.9, 0.0, 0.1, 0.0), db=True, query="token", query_p=0.1, p4xx=0.03,
          id_base=2000000),
        R("/api/v1/users/{id}/orders", "api", "json", 19, 80000, zipf_a=0.6, latency_ms=70, size_bytes=5200,
          size_sigma=0.9, db=True, query="paging", query_p=0.4, p4xx=0.02, id_base=2000000),
        R("/api/v1/orders/{id}", "api", "json", 15, 60000, zipf_a=0.6, latency_ms=45, size_bytes=3600,
          size_sigma=0.4, db=True, p4xx=0.02, id_base=5000000),
        R("/api/v1/wishlist/{id}", "api", "json", 13, 80000, zipf_a=0.6, latency_ms=35, size_bytes=2300,
          size_sigma=0.7, methods=(0.6, 0.3, 0.0, 0.1), db=True, id_base=2000000),
        R("/api/v1/auth/token", "api", "json", 21, latency_ms=95, latency_sigma=0.4, size_bytes=900,
          size_sigma=0.05, methods=(0.0, 1.0, 0.0, 0.0), db=True, p4xx=0.06),
        R("/api/v1/auth/refresh", "api", "json", 16, latency_ms=25, size_bytes=850, size_sigma=0.05,
          methods=(0.0, 1.0, 0.0, 0.0), db=True, query="token", query_p=0.2, p4xx=0.05),
        R("/api/v1/stores/{id}", "api", "json", 6, 120, zipf_a=0.8, latency_ms=20, size_bytes=1400,
          size_sigma=0.2, cache="api", db=True, id_base=1),
        R("/api/v1/stores/nearby", "api", "json", 5, latency_ms=60, size_bytes=3800, size_sigma=0.3,
          query="geo", query_p=1.0, db=True),
        R("/api/v1/promotions", "api", "json", 14, latency_ms=22, size_bytes=4100, size_sigma=0.1,
          cache="api", db=True),
        R("/api/v1/notifications", "api", "json", 12, latency_ms=30, size_bytes=1200, size_sigma=0.6,
          methods=(0.9, 0.0, 0.1, 0.0), db=True),
        R("/api/v2/products/{id}", "api", "json", 20, 20000, zipf_a=0.95, latency_ms=32, size_bytes=3900,
          size_sigma=0.45, cache="api", db=True, p4xx=0.02, id_base=100000),
        R("/api/v2/feed", "api", "json", 18, latency_ms=110, latency_sigma=0.7, size_bytes=16000,
          size_sigma=0.4, db=True, query="paging", query_p=0.6),
        R("/api/v1/reviews", "api", "json", 4, latency_ms=130, size_bytes=600, size_sigma=0.2,
          methods=(0.0, 1.0, 0.0, 0.0), db=True, p4xx=0.05),
        R("/api/v1/newsletter/subscribe", "api", "json", 3, latency_ms=50, size_bytes=120, size_sigma=0.1,
          methods=(0.0, 1.0, 0.0, 0.0), db=True, p4xx=0.08),
    ]
    # a REST back-office / partner surface: many low-traffic templates (the long tail of routes)
    resources = ("brands", "coupons", "returns", "shipments", "invoices", "addresses", "payments",
                 "gift-cards", "loyalty", "subscriptions", "suppliers", "warehouses", "inventory",
                 "price-rules", "tax-rates", "carriers", "refunds", "tickets", "segments", "campaigns",
                 "webhooks", "audit-log", "exports", "media")
    for i, res in enumerate(resources):
        score = 2.0 / (1 + 0.15 * i)
        rs.append(R(f"/api/v1/admin/{res}", "api", "json", score, latency_ms=90 + 7 * i, latency_sigma=0.8,
                    size_bytes=9000 + 900 * i, size_sigma=0.7, methods=(0.85, 0.15, 0.0, 0.0), db=True,
                    query="paging", query_p=0.5, p4xx=0.03))
        rs.append(R(f"/api/v1/admin/{res}/{{id}}", "api", "json", score * 0.7, 5000, zipf_a=0.7,
                    latency_ms=45 + 5 * i, latency_sigma=0.7, size_bytes=1500 + 100 * i, size_sigma=0.5,
                    methods=(0.7, 0.0, 0.25, 0.05), db=True, query="token", query_p=0.05, p4xx=0.04,
                    id_base=1))
    return tuple(sorted(rs, key=lambda r: -r.score))


# ----------------------------------------------------------------------------------------------------
# Incidents and other events
# ----------------------------------------------------------------------------------------------------

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


def _campaign_window(start: datetime, days: int,
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


def _other_events(start: datetime, days: int, incidents: tuple[DemoIncident, ...]) -> list[dict[str, Any]]:
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
    campaign = _campaign_window(start, days, incidents)
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


# ----------------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------------

def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a fast, well-mixed deterministic hash of uint64 values."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _unit(x: np.ndarray) -> np.ndarray:
    """Deterministic uniforms in (0, 1) from integer keys."""
    return ((_mix64(x) >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def _hash_normal(key: np.ndarray) -> np.ndarray:
    """Deterministic standard normals from integer keys (Box-Muller on two hashed uniforms)."""
    k = key.astype(np.uint64)
    with np.errstate(over="ignore"):
        u1 = _unit(k * np.uint64(2) + np.uint64(1))
        u2 = _unit(k * np.uint64(2) + np.uint64(2))
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _zipf_rank(u: np.ndarray, n: np.ndarray, a: np.ndarray) -> np.ndarray:
    """0-based Zipf(a) ranks among n items by inverting the continuous power-law CDF (a != 1)."""
    one_minus = 1.0 - a
    x = (1.0 + u * ((n + 1.0) ** one_minus - 1.0)) ** (1.0 / one_minus)
    return np.minimum(np.floor(x).astype(np.int64) - 1, np.asarray(n).astype(np.int64) - 1).clip(0)


def _coprime_step(n: int, key: int) -> int:
    """A multiplier coprime with n, for a cheap permutation rank -> (rank * step + offset) mod n."""
    step = 1 + (key * 7919) % max(n - 1, 1)
    while math.gcd(step, n) != 1:
        step += 1
    return step


_HOURLY = np.array([0.30, 0.22, 0.17, 0.14, 0.13, 0.15, 0.22, 0.35, 0.50, 0.60, 0.66, 0.70,
                    0.74, 0.72, 0.70, 0.70, 0.72, 0.78, 0.88, 0.97, 1.00, 0.92, 0.72, 0.48])
_WEEKDAY = np.array([1.0, 1.02, 1.0, 0.99, 0.95, 0.74, 0.70])  # Monday .. Sunday


def _minute_rates(start: datetime, n_minutes: int, rng: np.random.Generator) -> np.ndarray:
    """Relative request rate per minute: diurnal x weekly x slow random drift."""
    minutes = np.arange(n_minutes)
    t0 = start.hour * 60 + start.minute
    tod = ((minutes + t0) % 1440) / 60.0
    h = np.floor(tod).astype(int)
    frac = tod - h
    diurnal = _HOURLY[h] * (1 - frac) + _HOURLY[(h + 1) % 24] * frac
    dow = (start.weekday() + (minutes + t0) // 1440) % 7
    drift_h = np.exp(np.cumsum(rng.normal(0, 0.03, n_minutes // 60 + 2)) * 0.5)
    drift = np.interp(minutes / 60.0, np.arange(len(drift_h)), drift_h)
    noise = np.exp(rng.normal(0, 0.05, n_minutes))
    return diurnal * _WEEKDAY[dow] * drift * noise


# ----------------------------------------------------------------------------------------------------
# Static assets with real content
# ----------------------------------------------------------------------------------------------------

_WORDS = ("cart", "price", "product", "user", "order", "item", "list", "grid", "modal", "button", "image",
          "search", "filter", "sort", "page", "header", "footer", "menu", "banner", "review", "rating",
          "stock", "promo", "badge", "card", "slider", "tab", "panel", "form", "input", "label", "toast")


def _text_blob(rng: np.random.Generator, kind: str, size: int) -> bytes:
    """Plausible, compressible text of about ``size`` bytes (JS, CSS, SVG or JSON)."""
    w = _WORDS
    parts: list[str] = []
    total = 0
    pick = rng.integers(0, len(w), size=(size // 40 + 8, 4))
    nums = rng.integers(0, 1000, size=(size // 40 + 8, 3))
    tok = [t.as_py() for t in _hex16(rng.integers(0, 2**63, size=size // 100 + 8).astype(np.uint64))]
    i = 0
    if kind == "js":
        parts.append(f'"use strict";\n(self.webpackChunkshop=self.webpackChunkshop||[]).push([[{nums[0, 0]}],{{\n')
    elif kind == "css":
        parts.append(":root{--brand:#1f6feb;--ink:#1b1f23;--muted:#6a737d}\n")
    elif kind == "svg":
        parts.append('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24">\n')
    while total < size:
        a, b, c, d = (w[j] for j in pick[i % len(pick)])
        x, y, z = nums[i % len(nums)]
        if kind == "js":
            s = (f"function {a}{b.title()}{x}(e,t){{const n=e.{c}||[];if(!n.length)return null;"
                 f"var k=\"{tok[i % len(tok)]}\";"
                 f"return n.filter(r=>r.{d}>{y}).map(r=>({{id:r.id,{a}:r.{b},key:k,value:t*{z}}}))}}\n")
        elif kind == "css":
            s = (f".{a}-{b}__{c}{{display:flex;margin:{x % 32}px {y % 24}px;padding:{z % 16}px;"
                 f"color:#{tok[i % len(tok)][:6]};border-radius:{x % 9}px}}\n")
        elif kind == "svg":
            s = f'  <path d="M{x % 24}.{y % 10} {z % 24}.{x % 10}L{y % 24} {z % 24}Z" fill="#{x:03x}{z:03x}"/>\n'
        else:  # json
            s = f'{{"id":{x},"{a}":"{b}-{c}","{d}":{y},"active":true}},\n'
        parts.append(s)
        total += len(s)
        i += 1
    text = "".join(parts)
    tail = {"js": "}]);\n", "css": "\n", "svg": "</svg>\n", "json": ""}[kind]
    return (text[: max(size - len(tail), 0)] + tail).encode()


_MAGIC = {"png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
          "woff2": b"wOF2\x00\x01\x00\x00", "ico": b"\x00\x00\x01\x00\x01\x00"}


def _binary_blob(rng: np.random.Generator, kind: str, size: int) -> bytes:
    """Incompressible bytes with the right magic header (already-compressed image/font formats)."""
    head = _MAGIC[kind]
    return head + rng.integers(0, 256, size=max(size - len(head), 0), dtype=np.uint8).tobytes()


_NAME_LISTS: dict[str, tuple[str, int, float]] = {  # names kind -> (content kind, median size, sigma)
    "js": ("js", 60000, 1.0), "css": ("css", 24000, 0.7), "svg": ("svg", 1400, 0.6),
    "woff2": ("woff2", 26000, 0.25), "png": ("png", 14000, 0.9),
}
_JS_NAMES = ("app", "vendor", "runtime", "product-page", "checkout", "cart", "search", "account", "home",
             "polyfills", "analytics", "reviews", "gallery", "recommendations", "i18n-en", "i18n-de",
             "consent", "payments", "maps", "chat-widget", "wishlist", "category", "brand", "sw-register")
_CSS_NAMES = ("main", "vendor", "product", "checkout", "account", "search", "home", "print", "critical",
              "theme-dark")
_FONT_NAMES = ("inter-regular", "inter-medium", "inter-semibold", "inter-bold", "inter-italic",
               "mono-regular", "icons", "display-black")
_SVG_NAMES = ("logo", "cart", "search", "user", "heart", "star", "star-half", "chevron-left",
              "chevron-right", "close", "menu", "truck", "return", "lock", "check", "info", "warning",
              "facebook", "instagram", "x", "youtube", "visa", "mastercard", "paypal", "apple-pay",
              "gift", "tag", "filter", "grid", "list")
_PNG_NAMES = ("hero-winter", "hero-sale", "logo@2x", "logo-white", "app-store", "google-play",
              "newsletter", "placeholder", "loader", "trust-badge", "delivery-map", "gift-wrap",
              "size-chart", "team", "store-front", "apple-touch-icon", "og-image", "payment-methods",
              "award-2026", "sprite")


def _word_names(prefix: str, n: int) -> list[str]:
    w = _WORDS
    return [f"{w[i % len(w)]}-{w[(i * 7 + 3) % len(w)]}" + (f"-{i // len(w)}" if i >= len(w) else "")
            + ("" if not prefix else "") for i in range(n)]


def _name_lists(seed: int) -> dict[str, list[str]]:
    h = hashlib.sha256(str(seed).encode()).hexdigest()
    return {
        "js": [f"{n}.{hashlib.sha1((n + h).encode()).hexdigest()[:8]}" for n in _JS_NAMES],
        "css": [f"{n}.{hashlib.sha1((n + h).encode()).hexdigest()[:8]}" for n in _CSS_NAMES],
        "woff2": list(_FONT_NAMES), "svg": list(_SVG_NAMES), "png": list(_PNG_NAMES),
        "category": _word_names("c", 300), "brand": [f"brand-{i:03d}" for i in range(200)],
        "help": [f"{w}-help-{i}" for i, w in enumerate(_WORDS * 2)][:60],
        "blog": [f"2026/{1 + i % 12:02d}/{_WORDS[i % len(_WORDS)]}-guide-{i}" for i in range(400)],
        "term": _word_names("t", 2000),
    }


# ----------------------------------------------------------------------------------------------------
# Query strings, clients, user agents
# ----------------------------------------------------------------------------------------------------

_QUERY_KINDS = ("asset_version", "utm", "listing", "search", "suggest", "paging", "token", "reco", "signed",
                "postcode", "geo")


def _query_lists(seed: int) -> dict[str, list[str]]:
    w = _WORDS
    terms = [f"{w[i % len(w)]}+{w[(i * 5 + 1) % len(w)]}" if i % 3 else w[i % len(w)] for i in range(600)]
    return {
        "asset_version": [f"v={hashlib.sha1(f'{seed}-{i}'.encode()).hexdigest()[:8]}" for i in range(4)],
        "utm": [f"utm_source={s}&utm_medium={m}&utm_campaign={c}"
                for s in ("newsletter", "google", "facebook", "instagram", "partner")
                for m in ("email", "cpc", "social") for c in ("bf2026", "winter", "retarget")],
        "listing": [f"sort={s}&page={p}" for p in range(1, 9)
                    for s in ("relevance", "price_asc", "price_desc", "newest", "rating")],
        "search": [f"q={t}&page={p}" for t in terms for p in (1, 2)],
        "suggest": [f"q={t[: 1 + i % 6]}" for i, t in enumerate(terms)],
        "paging": [f"page={p}&per_page={n}" for p in range(1, 11) for n in (20, 50)],
        "token": ["token=REDACTED", "access_token=REDACTED&lang=en", "session=REDACTED", "api_key=REDACTED"],
        "reco": [f"context={c}&limit={n}" for c in ("home", "product", "cart", "email") for n in (8, 12, 24)],
        "signed": ["sig=REDACTED&ts=REDACTED", "signature=REDACTED&provider=stripe",
                   "signature=REDACTED&provider=paypal"],
        "postcode": [f"country={c}&postcode=REDACTED" for c in ("de", "fr", "nl", "at", "gb", "it")],
        "geo": [f"lat={48 + i * 0.5:.1f}&lon={2 + i * 0.7:.1f}&radius=25" for i in range(12)],
    }


_USER_AGENTS: tuple[tuple[str, float], ...] = (
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", 0.27),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Mobile/15E148 Safari/604.1", 0.2),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Mobile Safari/537.36", 0.15),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15", 0.1),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 0.06),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", 0.05),
    ("ShopApp/4.12.0 (iOS 18.1; iPhone15,2) CFNetwork/1568 Darwin/24.1.0", 0.06),
    ("ShopApp/4.12.0 (Android 14; SM-S918B) okhttp/4.12.0", 0.05),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 0.02),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 0.01),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", 0.01),
    ("curl/8.5.0", 0.005),
    ("python-requests/2.32.3", 0.005),
    ("Prometheus/2.53.0 blackbox-exporter", 0.005),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 "
     "Safari/537.36", 0.005),
)


_BOT_UAS = np.array([i for i, (ua, _) in enumerate(_USER_AGENTS) if "bot" in ua.lower()])

# ----------------------------------------------------------------------------------------------------
# The build
# ----------------------------------------------------------------------------------------------------

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


class _Arrays:
    """Per-route parameters as numpy arrays (index = route id)."""

    def __init__(self, routes: tuple[Route, ...], seed: int, names: dict[str, list[str]],
                 name_sizes: dict[str, np.ndarray]):
        n = len(routes)
        self.svc = np.array([SERVICES.index(r.service) for r in routes], dtype=np.int64)
        self.n_obj = np.array([r.n_objects for r in routes], dtype=np.int64)
        self.zipf_a = np.array([r.zipf_a if abs(r.zipf_a - 1) > 1e-3 else 1.001 for r in routes])
        self.lat_mu = np.log([r.latency_ms for r in routes])
        self.lat_sigma = np.array([r.latency_sigma for r in routes])
        self.size_mu = np.log([max(r.size_bytes, 1.0) for r in routes])
        self.size_sigma = np.array([r.size_sigma for r in routes])
        self.method_cum = np.cumsum(np.array([r.methods for r in routes]), axis=1)
        self.method_cum /= self.method_cum[:, -1:]
        cache_names = list(_CACHE_PROFILES)
        self.cache = np.array([cache_names.index(r.cache) for r in routes])
        self.cache_cum = np.cumsum(np.array([_CACHE_PROFILES[r.cache] for r in routes]), axis=1)
        self.db = np.array([r.db for r in routes])
        self.qkind = np.array([_QUERY_KINDS.index(r.query) if r.query else -1 for r in routes])
        self.query_p = np.array([r.query_p for r in routes])
        self.p4 = np.array([r.p4xx for r in routes])
        # cacheable JSON answers conditional requests (ETag) with 304 now and then
        self.p3 = np.array([r.p3xx if r.p3xx or r.cache != "api" else 0.03 for r in routes])
        self.code3 = np.array([r.code3 for r in routes])
        self.static = self.svc == SERVICES.index("static")
        self.dynamic_size = np.array([r.ctype in ("html", "json", "xml") and r.service != "static"
                                      for r in routes])
        self.json = np.array([r.ctype == "json" for r in routes])
        self.named = np.array([r.names is not None for r in routes])
        self.perm_a = np.array([_coprime_step(r.n_objects, seed * 131 + i) for i, r in enumerate(routes)])
        self.perm_b = np.array([(seed * 977 + i * 31) % r.n_objects for i, r in enumerate(routes)])
        self.p5 = np.where(self.svc == SERVICES.index("checkout"), 0.002, 0.0011)
        self.p5 = np.where(self.static, 0.0004, self.p5)  # origin errors, only on CDN misses
        # sizes of named objects come from the real asset content
        self.name_off = np.zeros(n, dtype=np.int64)
        flat: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        offset = 1
        for i, r in enumerate(routes):
            if r.names in name_sizes:
                self.name_off[i] = offset
                flat.append(name_sizes[r.names][: r.n_objects])
                offset += r.n_objects
        self.name_size = np.concatenate(flat)
        self.has_name_size = np.array([r.names in name_sizes for r in routes])
        self.obj_off = np.concatenate([[0], np.cumsum(self.n_obj)[:-1]]).astype(np.int64)
        # routes whose cache status follows a simulated cache (cacheable, keyed by path alone)
        self.track = np.array([r.cache != "bypass" and r.query_p < 0.5 for r in routes])
        self.regression_route = next(i for i, r in enumerate(routes) if r.template == REGRESSION_ROUTE)
        self.route_key = np.arange(n, dtype=np.uint64) * np.uint64(1 << 40) + np.uint64(seed) * np.uint64(
            (1 << 56) + 1)


class _CdnState:
    """Which objects the CDN holds (one flag per object of every cacheable route), across chunks."""

    def __init__(self, arr: _Arrays, warm_share: float = 0.03):
        self.seen = np.zeros(int(arr.obj_off[-1] + arr.n_obj[-1]), dtype=bool)
        for r in np.flatnonzero(arr.track):  # the most popular objects are cached before the history starts
            k = max(1, math.ceil(warm_share * arr.n_obj[r]))
            warm = (np.arange(k) * arr.perm_a[r] + arr.perm_b[r]) % arr.n_obj[r]
            self.seen[arr.obj_off[r] + warm] = True


def object_sizes(arr: _Arrays, route: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """Deterministic size in bytes of object ``obj`` of route ``route`` (the same object, the same size)."""
    z = _hash_normal(arr.route_key[route] + obj.astype(np.uint64))
    size = np.exp(arr.size_mu[route] + arr.size_sigma[route] * np.clip(z, -3, 3))
    named = arr.has_name_size[route]
    if named.any():
        size = np.where(named, arr.name_size[np.where(named, arr.name_off[route] + obj, 0)], size)
    return np.maximum(np.rint(size), 1).astype(np.int64)


def _gen_chunk(rng: np.random.Generator, arr: _Arrays, route_cdf: np.ndarray, ts_us: np.ndarray,
               load: np.ndarray, n_clients: int, n_query: np.ndarray, windows: dict[str, tuple[int, int]],
               start_us: int, ua_of_client: np.ndarray, cdn: _CdnState) -> dict[str, np.ndarray]:
    """One chunk of requests as integer/float columns (strings are joined in SQL)."""
    n = len(ts_us)
    cid = _zipf_rank(rng.random(n), np.full(n, float(n_clients)), np.full(n, 0.75))
    bot = np.isin(ua_of_client[cid], _BOT_UAS)
    route = np.searchsorted(route_cdf, rng.random(n), side="right").clip(0, len(route_cdf) - 1)
    n_obj = arr.n_obj[route]
    rank = _zipf_rank(rng.random(n), n_obj.astype(np.float64), arr.zipf_a[route])
    # crawlers walk the catalogue evenly (the long tail a cache must not be polluted by)
    rank = np.where(bot, np.floor(rng.random(n) * n_obj).astype(np.int64), rank)
    obj = (rank * arr.perm_a[route] + arr.perm_b[route]) % n_obj
    # temporal locality: a quarter of catalogue traffic goes to the day's trending items
    day = (ts_us - start_us) // (1440 * _US_PER_MIN)
    trending = (n_obj >= 1000) & ~bot & (rng.random(n) < 0.25)
    t_rank = _zipf_rank(rng.random(n), np.full(n, 300.0), np.full(n, 1.2))
    t_obj = (t_rank * 7919 + day * 104_729 + arr.perm_b[route]) % n_obj
    obj = np.where(trending, t_obj, obj)
    rank = np.where(trending, t_rank, rank)
    svc = arr.svc[route]
    host_first = np.array([sum(len(HOSTS[s]) for s in SERVICES[:i]) for i in range(len(SERVICES))])
    host_n = np.array([len(HOSTS[s]) for s in SERVICES])
    host = host_first[svc] + np.floor(rng.random(n) * host_n[svc]).astype(np.int64)
    method = (rng.random(n)[:, None] > arr.method_cum[route]).sum(axis=1).clip(0, 3)
    method = np.where(bot, 0, method)

    # CDN cache status: static tail objects miss more often; writes bypass
    u = rng.random(n)
    cum = arr.cache_cum[route]
    cache = (u[:, None] > cum).sum(axis=1).clip(0, 3)
    tail = arr.static[route] & (cache == 0)
    p_cold = 0.25 * (rank / np.maximum(n_obj, 1)) ** 1.5
    cold = tail & (rng.random(n) < p_cold)
    cache = np.where(cold, np.where(rng.random(n) < 0.8, 1, 2), cache)
    cache = np.where(method > 0, 3, cache)

    # latency: lognormal per route, load-dependent, with a heavy (Pareto) tail
    minute = (ts_us - start_us) // _US_PER_MIN
    rho = 0.85 * load[minute]  # utilization of the busiest resource: latency turns up past ~0.6 (queueing)
    load_f = 1.0 + 0.25 * rho / (1.0 - rho)
    origin = np.exp(arr.lat_mu[route] + arr.lat_sigma[route] * rng.standard_normal(n)) * load_f
    origin = origin * np.where(method == 1, 1.35, 1.0)
    heavy = rng.random(n) < 0.012
    origin = np.where(heavy, origin * (1.0 + 4.0 * rng.pareto(1.4, n)), origin)
    edge = np.exp(np.log(2.5) + 0.5 * rng.standard_normal(n))
    hit = cache == 0

    # incidents
    def in_window(name: str) -> np.ndarray:
        a, b = windows[name]
        return (ts_us >= a) & (ts_us < b)

    w = in_window("latency_regression") & (route == arr.regression_route) & ~hit
    origin = np.where(w, origin * np.exp(np.log(4.0) + 0.1 * rng.standard_normal(n)), origin)
    outage = in_window("cdn_cache_outage") & arr.static[route]
    cache = np.where(outage & (cache == 0) & (rng.random(n) > 0.02), 1, cache)
    # a real cache: the first request for an object misses (objects popular before the history starts
    # are warm); during the outage static responses vary by cookie, so nothing new gets cached
    track = arr.track[route] & (cache != 3)
    key = (arr.obj_off[route] + obj)[track]
    first = np.zeros(len(key), dtype=bool)
    first[np.unique(key, return_index=True)[1]] = True
    cold = first & ~cdn.seen[key]
    cached = cache[track]
    cache[track] = np.where(cold, 1, cached)
    cdn.seen[key[~outage[track]]] = True
    hit = cache == 0
    origin = np.where(outage & ~hit, origin * 3.0 * np.exp(0.3 * rng.standard_normal(n)), origin)
    dbw = in_window("db_saturation") & arr.db[route] & ~hit
    a, b = windows["db_saturation"]
    ramp = np.clip((ts_us - a) / max(b - a, 1) * 4.0, 0, 1)  # builds up over the first quarter
    origin = np.where(dbw, origin * (1.0 + 3.0 * ramp * np.exp(0.4 * rng.standard_normal(n))), origin)
    origin = np.minimum(origin, 60_000.0)

    # status
    u = rng.random(n)
    p5, p4, p3 = arr.p5[route], arr.p4[route], arr.p3[route]
    status = np.full(n, 200, dtype=np.int64)
    is5 = u < p5
    is4 = (u >= p5) & (u < p5 + p4)
    is3 = (u >= p5 + p4) & (u < p5 + p4 + p3)
    c5 = np.array([500, 502, 503, 504])[np.searchsorted([0.45, 0.7, 0.9, 1.0], rng.random(n), side="right")
                                        .clip(0, 3)]
    c4 = np.array([404, 400, 401, 403, 422, 429, 499])[
        np.searchsorted([0.55, 0.67, 0.77, 0.83, 0.91, 0.96, 1.0], rng.random(n), side="right").clip(0, 6)]
    c4 = np.where(arr.static[route], 404, c4)
    status = np.where(is3, arr.code3[route], status)
    status = np.where(is3 & (status == 304) & (method > 0), 200, status)
    status = np.where(is4, c4, status)
    status = np.where(is5 & ~hit, c5, status)
    # error burst on api: 502/503 from the load balancer
    burst = in_window("error_burst") & (svc == SERVICES.index("api")) & ~hit & (rng.random(n) < 0.24)
    status = np.where(burst, np.array([502, 503, 500])[rng.integers(0, 3, n)], status)
    # DB saturation: timeouts
    db_err = dbw & (rng.random(n) < 0.045 * ramp)
    db_code = np.where(rng.random(n) < 0.7, 504, 500)
    status = np.where(db_err, db_code, status)
    origin = np.where(db_err & (db_code == 504), 30_000.0 * (1 + 0.01 * rng.random(n)), origin)
    origin = np.where(burst, np.where(status == 503, 1.0 + 2 * rng.random(n), origin * 0.3 + 5), origin)

    # sizes
    size = object_sizes(arr, route, obj)
    jitter = np.where(arr.dynamic_size[route], np.exp(0.08 * rng.standard_normal(n)), 1.0)
    bytes_sent = np.rint(size * jitter).astype(np.int64)
    err = status >= 400
    err_size = np.where(arr.json[route], 60 + rng.integers(0, 180, n), 150 + rng.integers(0, 450, n))
    err_size = np.where((status == 404) & ~arr.json[route] & ~arr.static[route], 9800 + rng.integers(0, 400, n),
                        err_size)
    bytes_sent = np.where(err, err_size, bytes_sent)
    bytes_sent = np.where((status == 304) | (status == 302) | (status == 303), 0, bytes_sent)
    bytes_sent = np.where(status == 499, 0, bytes_sent)
    err_html = err & ~arr.json[route]

    # transfer time at ~2-40 MB/s to the client, edge overhead
    xfer_ms = bytes_sent / np.exp(np.log(8e3) + 0.8 * rng.standard_normal(n))
    latency = np.where(hit, edge + xfer_ms, origin + 0.6 * edge + xfer_ms)
    upstream = np.where(hit, np.nan, origin)
    latency = np.round(latency, 3)
    upstream = np.round(upstream, 3)

    # query strings and clients
    qk = arr.qkind[route]
    has_q = (qk >= 0) & (rng.random(n) < arr.query_p[route])
    q_n = n_query[np.maximum(qk, 0)]
    qidx = _zipf_rank(rng.random(n), q_n.astype(np.float64), np.full(n, 0.9))
    qidx = np.where(has_q, qidx, -1)
    return {
        "ts": ts_us, "route_id": route.astype(np.int32), "obj": obj.astype(np.int64),
        "host_id": host.astype(np.int16), "method_id": method.astype(np.int8), "status": status.astype(np.int16),
        "latency_ms": latency, "upstream_ms": upstream, "bytes_sent": bytes_sent,
        "cache_id": cache.astype(np.int8), "err_html": err_html, "qkind": qk.astype(np.int8),
        "qidx": qidx.astype(np.int32), "cid": cid.astype(np.int32),
    }


def _hex16(x: np.ndarray) -> pa.Array:
    """16-character lowercase hex strings of uint64 values, vectorized."""
    raw = x.astype(">u8").view(np.uint8).reshape(-1, 8)
    lut = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((len(x), 16), dtype=np.uint8)
    out[:, 0::2] = lut[raw >> 4]
    out[:, 1::2] = lut[raw & 15]
    return pa.array(out.view("S16").ravel()).cast(pa.string())


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
    from kit import warehouse

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
    from kit import warehouse

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
    names = _name_lists(seed)
    rng_assets = np.random.default_rng([seed, 1])
    name_sizes: dict[str, np.ndarray] = {}
    asset_rows: list[tuple[str, str, bytes]] = []
    route_by_names = {r.names: r for r in routes if r.names}
    for key, (kind, median, sigma) in _NAME_LISTS.items():
        sizes = np.maximum(np.rint(median * np.exp(sigma * rng_assets.standard_normal(len(names[key])))), 200)
        sizes = sizes.astype(np.int64)
        if key == "js":
            sizes[: 3] = (310_000, 420_000, 9_000)  # app, vendor, runtime
        r = route_by_names[key]
        actual = []
        for name, size in zip(names[key], sizes, strict=True):
            blob = (_text_blob(rng_assets, kind, int(size)) if kind in ("js", "css", "svg")
                    else _binary_blob(rng_assets, kind, int(size)))
            path = r.template.replace("{name}", name)
            asset_rows.append((path, CONTENT_TYPES[r.ctype], blob))
            actual.append(len(blob))
        name_sizes[key] = np.array(actual, dtype=np.int64)
    arr = _Arrays(routes, seed, names, name_sizes)
    route_ids = {r.template: i for i, r in enumerate(routes)}
    # favicon, manifest and the most popular product images are assets too, sized like their requests
    fav = route_ids["/favicon.ico"]
    asset_rows.append(("/favicon.ico", CONTENT_TYPES["ico"], _binary_blob(
        rng_assets, "ico", int(object_sizes(arr, np.array([fav]), np.array([0]))[0]))))
    man = route_ids["/static/manifest.json"]
    asset_rows.append(("/static/manifest.json", CONTENT_TYPES["json"], _text_blob(
        rng_assets, "json", int(object_sizes(arr, np.array([man]), np.array([0]))[0]))))
    for tpl, count in (("/static/img/products/{id}.jpg", 30), ("/static/img/thumbs/{id}.jpg", 20)):
        rid = route_ids[tpl]
        r = routes[rid]
        top = (np.arange(count) * arr.perm_a[rid] + arr.perm_b[rid]) % r.n_objects
        sizes = object_sizes(arr, np.full(count, rid), top)
        for o, size in zip(top, sizes, strict=True):
            asset_rows.append((tpl.replace("{id}", str(int(o) + r.id_base)), CONTENT_TYPES["jpg"],
                               _binary_blob(rng_assets, "jpg", int(size))))

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
    qlists = _query_lists(seed)
    q_texts: list[str] = []
    q_off = np.zeros(len(_QUERY_KINDS), dtype=np.int64)
    for k, kind in enumerate(_QUERY_KINDS):
        q_off[k] = len(q_texts)
        q_texts += qlists[kind]
    n_query = np.array([len(qlists[k]) for k in _QUERY_KINDS])
    host_list = [h for s in SERVICES for h in HOSTS[s]]
    ct_list = list(dict.fromkeys(CONTENT_TYPES.values()))
    ct_of_route = np.array([ct_list.index(CONTENT_TYPES[r.ctype]) for r in routes])
    ct_html = ct_list.index(CONTENT_TYPES["html"])
    numeric = (arr.n_obj > 1) & ~arr.named
    id_base = np.array([r.id_base for r in routes], dtype=np.int64)
    n_clients = int(min(max(requests // 12, 2000), 1_000_000))
    rng_clients = np.random.default_rng([seed, 2])
    ua_p = np.array([p for _, p in _USER_AGENTS])
    ua_of_client = rng_clients.choice(len(_USER_AGENTS), size=n_clients, p=ua_p / ua_p.sum()).astype(np.int32)
    with np.errstate(over="ignore"):
        client_keys = np.arange(n_clients, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    d = {
        "route": pa.array([r.template for r in routes]), "service": pa.array(list(SERVICES)),
        "host": pa.array(host_list), "method": pa.array(list(METHODS)),
        "cache": pa.array(list(CACHE_STATUSES)), "name": pa.array(name_paths or [""]),
        "query": pa.array(q_texts), "ctype": pa.array(ct_list), "client": _hex16(_mix64(client_keys)),
        "ua": pa.array([u for u, _ in _USER_AGENTS]),
    }

    def dict_col(indices: np.ndarray, key: str) -> pa.DictionaryArray:
        idx = pa.array(indices.astype(np.int32), mask=indices < 0)
        return pa.DictionaryArray.from_arrays(idx, d[key])

    # ---- requests, in chunks of whole minutes ---------------------------------------------------
    weights = 1.0 / np.arange(1, len(routes) + 1) ** 1.05
    route_cdf = np.cumsum(weights) / weights.sum()
    rng_time = np.random.default_rng([seed, 0])
    rates = _minute_rates(start, n_minutes, rng_time)
    for inc in incidents:  # retries during the error burst add a little traffic
        if inc.type == "error_burst":
            a = int((inc.start - start).total_seconds() // 60)
            b = int((inc.end - start).total_seconds() // 60)
            rates[a:b] *= 1.08
    campaign = _campaign_window(start, days, incidents)
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

    cdn = _CdnState(arr)
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
        ts_us = start_us + minute_of * _US_PER_MIN + rng.integers(0, _US_PER_MIN, total)
        del minute_of
        ts_us.sort()
        # numpy work in sub-batches keeps memory flat
        cuts = [*range(0, total, _SUB_BATCH), total]
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            ts_part = ts_us[lo:hi]
            g = _gen_chunk(rng, arr, route_cdf, ts_part, load, n_clients, n_query, windows, start_us,
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
    _write_metrics(con, source("metrics"), start, n_minutes, incidents, routes, host_list, seed, days)
    _write_queries(con, source("queries"), start, n_minutes, incidents, seed, days)
    _write_assets(con, source("assets"), asset_rows)
    _write_profiles(con, source("profiles"), start, days, seed, incidents)
    _write_events(con, source("events"), start, days, incidents)
    con.execute("DROP TABLE dim_routes")
    rows = {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
            for t in (*warehouse.DATA_TABLES, "asset_content", "ingest_log")}
    return DemoSummary(path=target, seed=seed, requests=n_written, days=days, start=start, end=end,
                       routes=len(routes), services=SERVICES, rows=rows, incidents=incidents,
                       seconds=round(time.perf_counter() - t_start, 2))


# ----------------------------------------------------------------------------------------------------
# Derived tables: metrics, queries, assets, profiles, events
# ----------------------------------------------------------------------------------------------------

_LE_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_MEMORY_BASE = {"web": 420e6, "api": 610e6, "static": 150e6, "search": 1.4e9, "checkout": 380e6}
_MAX_CONNECTIONS = 100


def _window_mask(ts_us: np.ndarray, inc: DemoIncident) -> np.ndarray:
    return (ts_us > inc.start.timestamp() * 1e6) & (ts_us <= inc.end.timestamp() * 1e6)


def _finish(con: Any, src: Any, rows: int) -> None:
    from kit import warehouse

    warehouse.finish_source(con, src, lines_in=None, rows_loaded=rows)


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


def _write_metrics(con: Any, src: Any, start: datetime, n_minutes: int, incidents: tuple[DemoIncident, ...],
                   routes: tuple[Route, ...], host_list: list[str], seed: int, days: int) -> None:
    """Prometheus-style samples that follow the requests table (scrape step 60 s up to 7 days)."""
    step = 1 if days <= 7 else math.ceil(days / 7)
    n_b = math.ceil(n_minutes / step)
    start_us = int(start.timestamp() * 1e6)
    step_us = step * _US_PER_MIN
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
    in_db = _window_mask(ts_us, db_inc)
    cpu_s = np.cumsum(util * cores * 60.0 * step, axis=1) + rng.uniform(500, 5000, (H, 1))
    deploys: dict[str, list[int]] = {s: [] for s in SERVICES}
    for e in _other_events(start, days, incidents):
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
    _finish(con, src, out.insert(con, ts_us, src.source_id))


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


def _write_queries(con: Any, src: Any, start: datetime, n_minutes: int, incidents: tuple[DemoIncident, ...],
                   seed: int, days: int) -> None:
    """pg_stat_statements-like cumulative snapshots every 10 min and slow-query (> 100 ms) log events."""
    snap_min = 10 if days <= 14 else 15
    start_us = int(start.timestamp() * 1e6)
    step_us = snap_min * _US_PER_MIN
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
    in_db = _window_mask(ts_us, db_inc)
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
    _finish(con, src, written)


def _write_assets(con: Any, src: Any, asset_rows: list[tuple[str, str, bytes]]) -> None:
    """Static files with real content: ``assets`` rows plus their bytes in ``asset_content``."""
    digests = [hashlib.sha256(blob).hexdigest() for _, _, blob in asset_rows]
    con.register("a_src", pa.table({
        "path": [p for p, _, _ in asset_rows], "content_type": [c for _, c, _ in asset_rows],
        "size_bytes": pa.array([len(b) for _, _, b in asset_rows], pa.int64()), "sha256": digests,
        "content": pa.array([b for _, _, b in asset_rows], pa.binary()),
    }))
    con.execute(f"INSERT INTO assets SELECT path, content_type, size_bytes, sha256, {src.source_id} "
                "FROM a_src ORDER BY path")
    con.execute("INSERT INTO asset_content SELECT sha256, any_value(content) FROM a_src "
                "WHERE sha256 NOT IN (SELECT sha256 FROM asset_content) GROUP BY sha256 ORDER BY sha256")
    con.unregister("a_src")
    _finish(con, src, len(asset_rows))


# on-CPU folded stacks per service: (stack, relative weight); one clearly hot function (pricing rules in api);
# database waits are off-CPU, so psycopg frames are small here
_STACKS: dict[str, tuple[tuple[str, float], ...]] = {
    "api": (
        ("main;gunicorn.worker;app.handle;views.product_detail;serializers.ProductSerializer.to_representation;"
         "pricing.apply_promotions;pricing._match_rules", 45.0),
        ("main;gunicorn.worker;app.handle;views.product_detail;serializers.ProductSerializer.to_representation;"
         "pricing.apply_promotions;decimal.Decimal.quantize", 9.0),
        ("main;gunicorn.worker;app.handle;views.product_list;serializers.ProductSerializer.to_representation;"
         "pricing.apply_promotions;pricing._match_rules", 7.0),
        ("main;gunicorn.worker;app.handle;views.product_detail;orm.query;psycopg.execute", 3.0),
        ("main;gunicorn.worker;app.handle;views.product_detail;json.dumps", 5.0),
        ("main;gunicorn.worker;app.handle;views.product_list;orm.query;psycopg.execute", 2.0),
        ("main;gunicorn.worker;app.handle;views.product_list;json.dumps", 3.0),
        ("main;gunicorn.worker;app.handle;views.user_orders;orm.query;psycopg.execute", 2.0),
        ("main;gunicorn.worker;app.handle;views.session;auth.verify_token;jwt.decode;hmac.compare_digest", 3.0),
        ("main;gunicorn.worker;app.handle;views.recommendations;reco.score_candidates;numpy.dot", 4.0),
        ("main;gunicorn.worker;app.handle;middleware.logging;logging.Handler.emit", 2.0),
        ("main;gunicorn.worker;app.handle;middleware.metrics;prometheus_client.Histogram.observe", 1.0),
        ("main;gunicorn.worker;app.handle;views.events;kafka.producer.send", 2.0),
        ("main;gunicorn.worker;gc.collect", 1.5),
        ("main;gunicorn.worker;ssl.SSLSocket.recv", 1.0),
    ),
    "web": (
        ("main;gunicorn.worker;app.handle;views.product_page;templates.render;jinja2.Template.render;"
         "jinja2.runtime.Context.call", 14.0),
        ("main;gunicorn.worker;app.handle;views.product_page;orm.query;psycopg.execute", 3.0),
        ("main;gunicorn.worker;app.handle;views.category_page;orm.query;psycopg.execute", 3.0),
        ("main;gunicorn.worker;app.handle;views.category_page;templates.render;jinja2.Template.render", 7.0),
        ("main;gunicorn.worker;app.handle;views.home;cache.get;redis.Connection.read_response", 4.0),
        ("main;gunicorn.worker;app.handle;views.home;templates.render;jinja2.Template.render", 5.0),
        ("main;gunicorn.worker;app.handle;views.account;orm.query;psycopg.execute", 1.0),
        ("main;gunicorn.worker;app.handle;views.sitemap;xml.etree.ElementTree.tostring", 3.0),
        ("main;gunicorn.worker;app.handle;middleware.session;itsdangerous.URLSafeTimedSerializer.loads", 2.0),
        ("main;gunicorn.worker;app.handle;middleware.gzip;zlib.compress", 6.0),
        ("main;gunicorn.worker;gc.collect", 1.5),
    ),
    "search": (
        ("main;uvicorn.run;app.handle;search.query;elasticsearch.Elasticsearch.search;urllib3.urlopen", 18.0),
        ("main;uvicorn.run;app.handle;search.query;search.rank.rerank;numpy.argsort", 7.0),
        ("main;uvicorn.run;app.handle;search.suggest;search.trie.prefix_lookup", 6.0),
        ("main;uvicorn.run;app.handle;search.facets;elasticsearch.Elasticsearch.search;urllib3.urlopen", 5.0),
        ("main;uvicorn.run;app.handle;search.query;json.loads", 4.0),
        ("main;uvicorn.run;app.handle;templates.render;jinja2.Template.render", 4.0),
        ("main;uvicorn.run;gc.collect", 1.0),
    ),
    "checkout": (
        ("main;gunicorn.worker;app.handle;views.checkout_confirm;payments.stripe.create_intent;"
         "requests.Session.send;ssl.SSLSocket.recv", 12.0),
        ("main;gunicorn.worker;app.handle;views.cart_items;orm.query;psycopg.execute", 3.0),
        ("main;gunicorn.worker;app.handle;views.cart;pricing.apply_promotions;pricing._match_rules", 6.0),
        ("main;gunicorn.worker;app.handle;views.checkout_confirm;orm.transaction;psycopg.execute", 2.0),
        ("main;gunicorn.worker;app.handle;views.shipping_estimate;shipping.rates.lookup", 3.0),
        ("main;gunicorn.worker;app.handle;templates.render;jinja2.Template.render", 4.0),
        ("main;gunicorn.worker;gc.collect", 1.0),
    ),
    "static": (
        ("nginx;ngx_http_process_request;ngx_http_static_handler;ngx_output_chain;ngx_linux_sendfile", 20.0),
        ("nginx;ngx_http_process_request;ngx_http_gzip_body_filter;deflate", 2.0),
        ("nginx;ngx_http_process_request;ngx_ssl_write;SSL_write", 6.0),
        ("nginx;ngx_http_log_handler;ngx_write_fd", 1.0),
    ),
}


_PROFILE_SHARE = {"api": 0.4, "web": 0.25, "static": 0.1, "search": 0.12, "checkout": 0.13}


def _write_profiles(con: Any, src: Any, start: datetime, days: int, seed: int,
                    incidents: tuple[DemoIncident, ...]) -> None:
    """One CPU profile per service per day (folded stacks with sample counts; busier services, more samples)."""
    rng = np.random.default_rng([seed, 5])
    ts, svc, prof, stack, samples = [], [], [], [], []
    for d in range(days):
        when = start + timedelta(days=d, hours=15)
        for service, stacks in _STACKS.items():
            w = np.array([x for _, x in stacks])
            counts = rng.multinomial(int(60_000 * _PROFILE_SHARE[service]), w / w.sum())
            for (s, _), c in zip(stacks, counts, strict=True):
                if c:
                    ts.append(when)
                    svc.append(service)
                    prof.append(f"{service}-cpu-{when:%Y%m%dT%H%M}")
                    stack.append(s)
                    samples.append(int(c))
    # an extra api profile taken during the latency regression shows the N+1 queries of release 2.14.0
    reg = next((i for i in incidents if i.type == "latency_regression"), None)
    if reg is not None:
        when = reg.start + (reg.end - reg.start) / 2
        stacks = (*_STACKS["api"], (
            "main;gunicorn.worker;app.handle;views.product_detail;serializers.ProductSerializer.to_representation;"
            "serializers.ProductSerializer.get_variants;orm.query;psycopg.execute", 30.0), (
            "main;gunicorn.worker;app.handle;views.product_detail;serializers.ProductSerializer.to_representation;"
            "serializers.ProductSerializer.get_variants;orm.Model.from_db", 12.0))
        w = np.array([x for _, x in stacks])
        counts = rng.multinomial(int(60_000 * _PROFILE_SHARE["api"]), w / w.sum())
        for (stk, _), c in zip(stacks, counts, strict=True):
            if c:
                ts.append(when)
                svc.append("api")
                prof.append(f"api-cpu-{when:%Y%m%dT%H%M}")
                stack.append(stk)
                samples.append(int(c))
    con.register("p_src", pa.table({"ts": pa.array(ts, pa.timestamp("us", tz="UTC")), "service": svc,
                                    "profile": prof, "stack": stack, "samples": pa.array(samples, pa.int64())}))
    con.execute(f"INSERT INTO profiles SELECT ts, service, profile, stack, samples, {src.source_id} FROM p_src")
    con.unregister("p_src")
    _finish(con, src, len(ts))


def _write_events(con: Any, src: Any, start: datetime, days: int, incidents: tuple[DemoIncident, ...]) -> None:
    """Deploys, config changes and the planted incidents (ground truth)."""
    rows = _other_events(start, days, incidents)
    rows += [{"ts_start": i.start, "ts_end": i.end, "kind": "incident", "service": i.service, "route": i.route,
              "what": i.what, "details": i.details} for i in incidents]
    rows.sort(key=lambda e: (e["ts_start"], e["kind"], e["what"]))
    for e in rows:
        con.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [e["ts_start"], e["ts_end"], e["kind"], e["service"], e["route"], e["what"],
                     json.dumps(e["details"], sort_keys=True), src.source_id])
    _finish(con, src, len(rows))
