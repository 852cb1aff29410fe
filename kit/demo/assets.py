"""Static assets with real content (compressible text, incompressible binary formats with the right magic
bytes), their names, and ``write_assets``, which stores them in ``assets`` and ``asset_content``."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa

from kit import warehouse
from kit.demo.sampling import hex16

WORDS = ("cart", "price", "product", "user", "order", "item", "list", "grid", "modal", "button", "image",
          "search", "filter", "sort", "page", "header", "footer", "menu", "banner", "review", "rating",
          "stock", "promo", "badge", "card", "slider", "tab", "panel", "form", "input", "label", "toast")


def text_blob(rng: np.random.Generator, kind: str, size: int) -> bytes:
    """Plausible, compressible text of about ``size`` bytes (JS, CSS, SVG or JSON)."""
    w = WORDS
    parts: list[str] = []
    total = 0
    pick = rng.integers(0, len(w), size=(size // 40 + 8, 4))
    nums = rng.integers(0, 1000, size=(size // 40 + 8, 3))
    tok = [t.as_py() for t in hex16(rng.integers(0, 2**63, size=size // 100 + 8).astype(np.uint64))]
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


def binary_blob(rng: np.random.Generator, kind: str, size: int) -> bytes:
    """Incompressible bytes with the right magic header (already-compressed image/font formats)."""
    head = _MAGIC[kind]
    return head + rng.integers(0, 256, size=max(size - len(head), 0), dtype=np.uint8).tobytes()


NAME_LISTS: dict[str, tuple[str, int, float]] = {  # names kind -> (content kind, median size, sigma)
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
    w = WORDS
    return [f"{w[i % len(w)]}-{w[(i * 7 + 3) % len(w)]}" + (f"-{i // len(w)}" if i >= len(w) else "")
            + ("" if not prefix else "") for i in range(n)]


def name_lists(seed: int) -> dict[str, list[str]]:
    h = hashlib.sha256(str(seed).encode()).hexdigest()
    return {
        "js": [f"{n}.{hashlib.sha1((n + h).encode()).hexdigest()[:8]}" for n in _JS_NAMES],
        "css": [f"{n}.{hashlib.sha1((n + h).encode()).hexdigest()[:8]}" for n in _CSS_NAMES],
        "woff2": list(_FONT_NAMES), "svg": list(_SVG_NAMES), "png": list(_PNG_NAMES),
        "category": _word_names("c", 300), "brand": [f"brand-{i:03d}" for i in range(200)],
        "help": [f"{w}-help-{i}" for i, w in enumerate(WORDS * 2)][:60],
        "blog": [f"2026/{1 + i % 12:02d}/{WORDS[i % len(WORDS)]}-guide-{i}" for i in range(400)],
        "term": _word_names("t", 2000),
    }


def write_assets(con: Any, src: Any, asset_rows: list[tuple[str, str, bytes]]) -> None:
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
    warehouse.finish_source(con, src, lines_in=None, rows_loaded=len(asset_rows))
