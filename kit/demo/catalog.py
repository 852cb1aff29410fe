"""The demo shop: its services, hosts, content types, CDN cache profiles and route templates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

DEMO_END = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday, 00:00 UTC: the history ends here
US_PER_MIN = 60_000_000  # microseconds per minute

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
CACHE_PROFILES = {
    "static": (0.95, 0.025, 0.02, 0.005),
    "page": (0.55, 0.33, 0.05, 0.07),
    "api": (0.28, 0.52, 0.05, 0.15),
    "search": (0.12, 0.58, 0.02, 0.28),
    "bypass": (0.0, 0.0, 0.0, 1.0),
}


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
    cache: str = "bypass"       # key of CACHE_PROFILES
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
