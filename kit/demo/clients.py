"""Query strings, clients and user agents of the demo requests."""

from __future__ import annotations

import hashlib

import numpy as np

from kit.demo.assets import WORDS

QUERY_KINDS = ("asset_version", "utm", "listing", "search", "suggest", "paging", "token", "reco", "signed",
                "postcode", "geo")


def query_lists(seed: int) -> dict[str, list[str]]:
    w = WORDS
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


USER_AGENTS: tuple[tuple[str, float], ...] = (
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


BOT_UAS = np.array([i for i, (ua, _) in enumerate(USER_AGENTS) if "bot" in ua.lower()])
