"""The demo's ``profiles``: one on-CPU folded-stack profile per service per day at 15:00, plus hourly api
profiles around release api 2.14.0 (4 before its deploy, one per hour while it ran, 4 after the rollback),
so the release can be compared on several profiles per side. All drawn from the profiles' own rng stream, in
an order that keeps the daily profiles and the one at the regression's midpoint as they were."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from kit import warehouse
from kit.demo.incidents import DemoIncident

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


def write_profiles(con: Any, src: Any, start: datetime, days: int, seed: int,
                    incidents: tuple[DemoIncident, ...]) -> None:
    """One CPU profile per service per day (folded stacks with sample counts; busier services, more samples)
    and the hourly api profiles around release 2.14.0."""
    rng = np.random.default_rng([seed, 5])
    ts, svc, prof, stack, samples = [], [], [], [], []

    def add(when: datetime, service: str, stacks: tuple[tuple[str, float], ...], *, jitter: bool = True,
            end: datetime | None = None) -> None:
        if when < start or (end is not None and when >= end):
            return
        w = np.array([x for _, x in stacks])
        if jitter:
            w = w * rng.gamma(50.0, 1 / 50.0, size=len(w))
        counts = rng.multinomial(int(60_000 * _PROFILE_SHARE[service]), w / w.sum())
        for (s, _), c in zip(stacks, counts, strict=True):
            if c:
                ts.append(when)
                svc.append(service)
                prof.append(f"{service}-cpu-{when:%Y%m%dT%H%M}")
                stack.append(s)
                samples.append(int(c))

    for d in range(days):
        when = start + timedelta(days=d, hours=15)
        for service, stacks in _STACKS.items():
            add(when, service, stacks, jitter=False)
    # an extra api profile taken during the latency regression shows the N+1 queries of release 2.14.0
    reg = next((i for i in incidents if i.type == "latency_regression"), None)
    if reg is not None:
        mid = reg.start + (reg.end - reg.start) / 2
        regressed = (*_STACKS["api"], (
            "main;gunicorn.worker;app.handle;views.product_detail;serializers.ProductSerializer.to_representation;"
            "serializers.ProductSerializer.get_variants;orm.query;psycopg.execute", 30.0), (
            "main;gunicorn.worker;app.handle;views.product_detail;serializers.ProductSerializer.to_representation;"
            "serializers.ProductSerializer.get_variants;orm.Model.from_db", 12.0))
        add(mid, "api", regressed, jitter=False)  # drawn first: the same rows as before more profiles existed
        # hourly api profiles around the release (4 h before the deploy, during it, 4 h after the rollback),
        # so a before/after comparison has several profiles per side; weights jittered per profile (real
        # profiles vary by more than sampling noise)
        hour = timedelta(hours=1)
        end = start + timedelta(days=days)
        for k in range(-4, 0):
            add(reg.start + k * hour + hour / 2, "api", _STACKS["api"], end=end)
        at = reg.start + hour / 2
        while at < reg.end:
            if at != mid:
                add(at, "api", regressed, end=end)
            at += hour
        for k in range(4):
            add(reg.end + k * hour + hour / 2, "api", _STACKS["api"], end=end)
    con.register("p_src", pa.table({"ts": pa.array(ts, pa.timestamp("us", tz="UTC")), "service": svc,
                                    "profile": prof, "stack": stack, "samples": pa.array(samples, pa.int64())}))
    con.execute(f"INSERT INTO profiles SELECT ts, service, profile, stack, samples, {src.source_id} FROM p_src")
    con.unregister("p_src")
    warehouse.finish_source(con, src, lines_in=None, rows_loaded=len(ts))
