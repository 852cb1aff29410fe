"""Resource compression: what each static text asset weighs under gzip, brotli and zstd at the levels servers
use, how fast each level compresses on this machine, which responses the access log shows were served
uncompressed, and what compressing exactly those responses would have saved.

Method.

1. Sizes: each distinct compressible asset (``assets`` joined with ``asset_content`` by sha256; content types
   in ``COMPRESSIBLE_PREFIXES``) is compressed once per level of ``CODECS`` (gzip 1/6/9, brotli 4/5/11,
   zstd 3/19) with the Python bindings of zlib, brotli and zstd. Large asset sets are sampled: the most
   served assets (requests x size) first, up to ``FAST_SAMPLE_BYTES`` of content for the fast levels and
   ``SLOW_SAMPLE_BYTES`` for brotli 11 and zstd 19 (about 1 MB/s); an asset beyond a level's sample gets
   its size from its size at the same codec's fast level (brotli 5, zstd 3; the raw size for the fast
   levels) times the ratio between the two on the sampled assets of its content type (all types when none
   was sampled; each type's most served asset that fits the cap is in the sample), and ``estimated`` says
   which. Incompressible types keep their stored size.
2. Speed: compression MB/s (10^6 bytes of input per CPU second of the compressing thread, single core)
   per level over that level's sample, on this machine; work runs on ``threads`` threads (the codecs release
   the GIL) and each call's thread CPU time is summed.
3. Served uncompressed (DuckDB SQL, :data:`SERVED_SQL`): a 200 response of a compressible asset whose
   ``bytes_sent`` is at least midway between the asset's raw size and its largest compressed size (gzip 1)
   was sent uncompressed; one from 90 % of its smallest compressed size to its largest compressed size plus
   ``HEADER_ALLOWANCE_BYTES`` (and below that midpoint) was sent compressed; any other (an aborted
   transfer, a range, an unknown encoding) is ``other`` and counts in neither share. Headers in
   ``bytes_sent`` (nginx ``$bytes_sent`` rather than ``$body_bytes_sent``) add a few hundred bytes, which
   the midpoint and the allowance absorb. The query runs on the window's 200s of the assets grouped per
   (path, service, route, bytes_sent): one scan of ``requests``, or none when the optimization analyses give
   their shared grouped requests (:mod:`kit.analysis.request_groups`); the same numbers as SERVED_SQL alone.
4. Savings are counted on the uncompressed responses only: per response, raw size minus the level's size.
   Lighthouse's audit ``uses-text-compression`` skips an asset whose gzip saving is under
   ``LIGHTHOUSE_MIN_SAVING_BYTES`` (1,400) or under ``LIGHTHOUSE_MIN_SAVING_SHARE`` (10 %) of its size;
   such assets are listed but their savings do not count in an opportunity.

Limits: only static assets the warehouse holds (``perfkit ingest assets``) are measured; dynamic responses
(HTML, API JSON) have no stored body. ``bytes_sent`` is the only evidence of the encoding (the log holds no
``Content-Encoding``); a response truncated near the compressed size would count as compressed. Which
clients accept brotli is not in the log: the opportunity's interval runs from gzip -6 (clients without
``br``) to brotli 11.
"""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import brotli
import duckdb
import pandas as pd
import zstandard

from kit.analysis.opportunity import Opportunity, Saving, opportunity
from kit.analysis.request_groups import RequestGroups
from kit.analysis.window import Window

COMPRESSIBLE_PREFIXES = ("text/", "application/javascript", "application/json", "image/svg+xml",
                         "application/xml", "application/wasm", "application/manifest+json")
# Lighthouse, audit uses-text-compression (core/audits/byte-efficiency/uses-text-compression.js:
# IGNORE_THRESHOLD_IN_BYTES = 1400, IGNORE_THRESHOLD_IN_PERCENT = 0.1): an uncompressed response is
# flagged only when gzip saves at least 1,400 bytes AND at least 10 % of its size.
LIGHTHOUSE_MIN_SAVING_BYTES = 1400
LIGHTHOUSE_MIN_SAVING_SHARE = 0.10
FAST_SAMPLE_BYTES = 8 * 2**20    # content compressed at the fast levels (most served assets first)
SLOW_SAMPLE_BYTES = 256 * 2**10  # ... at brotli 11 and zstd 19 (about 1 MB/s; the rest scaled from brotli 5, zstd 3)
COMPRESSED_TOLERANCE = 0.9       # bytes_sent >= 0.9 x the smallest compressed size: a complete compressed body
HEADER_ALLOWANCE_BYTES = 1024    # ... and <= the largest compressed size + response headers
ASSET_SIZES_VIEW = "asset_compressed_sizes"  # the relation SERVED_SQL reads (registered per call)


@dataclass(frozen=True)
class Codec:
    """One codec at one level: ``use`` is where servers run it (dynamic: per response; static: once at
    build time, served pre-compressed), ``why`` where that level comes from."""

    codec: str
    level: int
    use: str
    why: str
    slow: bool = False
    peer: int | None = None   # a slow level's sizes beyond its sample scale this level's of the same codec

    @property
    def peer_column(self) -> str:
        return f"{self.codec}_{self.peer}_bytes" if self.peer is not None else ""

    @property
    def label(self) -> str:
        return f"{self.codec}-{self.level}"

    @property
    def column(self) -> str:
        return f"{self.codec}_{self.level}_bytes"


CODECS: tuple[Codec, ...] = (
    Codec("gzip", 1, "dynamic", "nginx gzip_comp_level default"),
    Codec("gzip", 6, "dynamic", "zlib's default level; Lighthouse's estimate"),
    Codec("gzip", 9, "static", "gzip -9, pre-compressed .gz (gzip_static)"),
    Codec("brotli", 4, "dynamic", "on-the-fly level of CDNs (Cloudflare)"),
    Codec("brotli", 5, "dynamic", "on-the-fly level of CDNs and nginx setups (ngx_brotli's default is 6)"),
    Codec("brotli", 11, "static", "brotli -q 11, pre-compressed .br (brotli_static)", slow=True,
          peer=5),
    Codec("zstd", 3, "dynamic", "zstd's default level"),
    Codec("zstd", 19, "static", "zstd -19, pre-compressed", slow=True, peer=3),
)
STATIC_CODEC = Codec("brotli", 11, "static", "")     # what the opportunity recommends for static assets
DYNAMIC_CODEC = Codec("brotli", 5, "dynamic", "")    # ... and on the fly
FALLBACK_CODEC = Codec("gzip", 6, "dynamic", "")     # for clients without br (the saving's low end)
TYPE_NAMES = {"application/javascript": "JavaScript", "text/javascript": "JavaScript", "text/css": "CSS",
              "image/svg+xml": "SVG", "application/json": "JSON", "text/html": "HTML", "text/plain": "text",
              "application/xml": "XML", "text/xml": "XML", "application/wasm": "WebAssembly",
              "application/manifest+json": "web manifests"}

SERVED_SQL = f"""-- {ASSET_SIZES_VIEW}(path, content_type, size_bytes, compressible, min_bytes, max_bytes,
-- <codec>_<level>_bytes): each asset's sizes, from kit.analysis.compression.compressed_sizes
WITH r AS (
    SELECT r.path, r.service, r.route, r.bytes_sent, s.compressible, s.size_bytes, s.min_bytes, s.max_bytes,
           r.bytes_sent >= (s.size_bytes + s.max_bytes) / 2 AS raw
    FROM requests r JOIN {ASSET_SIZES_VIEW} s USING (path)
    WHERE r.ts >= $start AND r.ts < $end AND r.status = 200)
SELECT path, service, route, count(*) AS responses,
       count(*) FILTER (WHERE compressible AND raw) AS uncompressed,
       count(*) FILTER (WHERE compressible AND NOT raw AND bytes_sent >= {COMPRESSED_TOLERANCE} * min_bytes
                          AND bytes_sent <= max_bytes + {HEADER_ALLOWANCE_BYTES}) AS compressed,
       count(*) FILTER (WHERE bytes_sent IS NULL OR NOT compressible) AS unknown,
       coalesce(sum(bytes_sent), 0) AS served_bytes,
       coalesce(sum(bytes_sent) FILTER (WHERE compressible AND raw), 0) AS uncompressed_bytes
FROM r GROUP BY ALL ORDER BY path, service, route"""
TOTAL_SQL = "SELECT coalesce(sum(bytes_sent), 0) FROM requests WHERE ts >= $start AND ts < $end"
_SENT_VIEW = "compression_sent_200s"
_SERVED_FROM_SENT = f"""WITH r AS (
    SELECT r.path, r.service, r.route, r.bytes_sent, r.n, s.compressible, s.size_bytes, s.min_bytes, s.max_bytes,
           r.bytes_sent >= (s.size_bytes + s.max_bytes) / 2 AS raw
    FROM {_SENT_VIEW} r JOIN {ASSET_SIZES_VIEW} s USING (path))
SELECT path, service, route, sum(n)::BIGINT AS responses,
       coalesce(sum(n) FILTER (WHERE compressible AND raw), 0)::BIGINT AS uncompressed,
       coalesce(sum(n) FILTER (WHERE compressible AND NOT raw AND bytes_sent >= {COMPRESSED_TOLERANCE} * min_bytes
                               AND bytes_sent <= max_bytes + {HEADER_ALLOWANCE_BYTES}), 0)::BIGINT AS compressed,
       coalesce(sum(n) FILTER (WHERE bytes_sent IS NULL OR NOT compressible), 0)::BIGINT AS unknown,
       coalesce(sum(bytes_sent * n), 0) AS served_bytes,
       coalesce(sum(bytes_sent * n) FILTER (WHERE compressible AND raw), 0) AS uncompressed_bytes
FROM r GROUP BY ALL ORDER BY path, service, route"""


@dataclass(frozen=True)
class CompressionAnalysis:
    """Compression of the static assets over ``window``; sizes in bytes, speeds in MB/s (10^6 bytes/s).

    ``codecs``: codec, level, label, use, why; over the level's sample: assets, input_bytes, output_bytes,
    sample_ratio (output/input), cpu_seconds, mb_per_s; and ratio, size/raw over all distinct compressible
    contents (estimated sizes included), comparable between levels.
    ``assets``: per asset path, content_type, size_bytes, compressible, one ``<codec>_<level>_bytes`` column
    per level, estimated (a level's size estimated beyond its sample), min_bytes, max_bytes, lighthouse_ok
    (passes both Lighthouse thresholds), responses (status 200), uncompressed, compressed, other (neither:
    aborted, ranges), unknown (no bytes_sent, or an incompressible type), uncompressed_share, served_bytes,
    uncompressed_bytes and ``saved_<codec>_<level>_bytes`` (on the uncompressed responses).
    ``by_type``: the same summed per content type (sizes over its assets, shares over its responses,
    ``<codec>_<level>_ratio``, skipped_assets); its ``saved_*`` count only assets that pass Lighthouse's
    thresholds. ``by_route``: content_types, service, route, responses, uncompressed, compressed,
    uncompressed_share and the savings (Lighthouse-eligible assets) per route.
    ``served_bytes_total``: all bytes sent in the window (the opportunities' basis)."""

    window: Window
    codecs: pd.DataFrame
    assets: pd.DataFrame
    by_type: pd.DataFrame
    by_route: pd.DataFrame
    served_bytes_total: int
    sampled_assets: int            # distinct compressible contents compressed at the fast levels
    compressible_assets: int       # distinct compressible contents
    thresholds: dict[str, float] = field(default_factory=lambda: {
        "min_saving_bytes": LIGHTHOUSE_MIN_SAVING_BYTES, "min_saving_share": LIGHTHOUSE_MIN_SAVING_SHARE,
        "fast_sample_bytes": FAST_SAMPLE_BYTES, "slow_sample_bytes": SLOW_SAMPLE_BYTES})
    opportunities: list[Opportunity] = field(default_factory=list)
    sql: dict[str, str] = field(default_factory=dict)


def is_compressible(content_type: str | None) -> bool:
    """Text-like content types (``COMPRESSIBLE_PREFIXES``; parameters such as charset ignored)."""
    return (content_type or "").split(";")[0].strip().lower().startswith(COMPRESSIBLE_PREFIXES)


def compressor(codec: Codec) -> Callable[[bytes], bytes]:
    """The compress function of ``codec`` at its level (gzip without a timestamp, as ``gzip -n``)."""
    if codec.codec == "gzip":
        return lambda blob: gzip.compress(blob, codec.level, mtime=0)
    if codec.codec == "brotli":
        return lambda blob: brotli.compress(blob, quality=codec.level)
    if codec.codec == "zstd":
        return lambda blob: zstandard.ZstdCompressor(level=codec.level).compress(blob)
    raise ValueError(f"unknown codec {codec.codec!r}")


def _timed(fn: Callable[[bytes], bytes], blob: bytes) -> tuple[int, float]:
    started = time.thread_time()
    size = len(fn(blob))
    return size, time.thread_time() - started


def _sample(sizes: list[int], types: list[str], cap: int) -> list[int]:
    """Indices of the contents (ordered most served first) taken greedily while they fit in ``cap`` bytes,
    plus, for each type left out, its first content that fits in ``cap`` on its own, so that every type
    has a measured ratio; the smallest content when none fits."""
    total = 0
    chosen: list[int] = []
    for i, size in enumerate(sizes):
        if total + size <= cap:
            total += size
            chosen.append(i)
    covered = {types[i] for i in chosen}
    for i, kind in enumerate(types):
        if kind not in covered and sizes[i] <= cap:
            covered.add(kind)
            chosen.append(i)
    if not chosen and sizes:
        chosen.append(min(range(len(sizes)), key=sizes.__getitem__))
    return sorted(chosen)


def compressed_sizes(contents: pd.DataFrame, codecs: tuple[Codec, ...] = CODECS, *, threads: int | None = None,
                     fast_cap: int = FAST_SAMPLE_BYTES, slow_cap: int = SLOW_SAMPLE_BYTES
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compress distinct contents (columns sha256, content_type, content; ordered most served first) at every
    level: (sizes per sha256 with one ``<codec>_<level>_bytes`` column per level and ``estimated``, the per
    level speed table). Contents beyond a level's sample are estimated from its ratio on the sample's
    contents of the same type (module docstring)."""
    blobs = [bytes(b) for b in contents["content"]]
    lengths = [len(b) for b in blobs]
    types = contents["content_type"].fillna("").str.split(";").str[0].str.strip().tolist()
    jobs = [(c, i) for c in codecs for i in _sample(lengths, types, slow_cap if c.slow else fast_cap)]
    jobs.sort(key=lambda job: (not job[0].slow, -lengths[job[1]]))  # longest first: the pool ends together
    workers = threads or min(2, os.cpu_count() or 1)
    fns = {c: compressor(c) for c in codecs}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(lambda job: _timed(fns[job[0]], blobs[job[1]]), jobs))
    out = pd.DataFrame({"sha256": contents["sha256"].to_numpy(), "content_type": types, "size_bytes": lengths,
                        "estimated": False})
    speed = []
    for c in sorted(codecs, key=lambda c: c.slow):  # a slow level's peer is measured first
        got = {i: r for (cc, i), r in zip(jobs, done, strict=True) if cc == c}
        measured = pd.Series({i: float(s) for i, (s, _) in got.items()}, dtype="float64")
        col = pd.Series(float("nan"), index=out.index, dtype="float64")
        col.loc[measured.index] = measured
        missing = col.isna()
        if missing.any():
            # the ratio to the peer level (or to the raw size) on the sample's contents of the same type
            peer = out[c.peer_column] if c.peer_column in out else out["size_bytes"]
            sample = out.loc[measured.index].assign(peer=peer.loc[measured.index])
            by_type = measured.groupby(sample["content_type"]).sum() / sample.groupby("content_type")["peer"].sum()
            overall = measured.sum() / max(sample["peer"].sum(), 1)
            ratio = out.loc[missing, "content_type"].map(by_type).astype("float64").fillna(overall)
            col.loc[missing] = (peer.loc[missing] * ratio).round()
            out.loc[missing, "estimated"] = True
        out[c.column] = col.astype("int64")
        seconds = sum(t for _, t in got.values())
        input_bytes = int(out.loc[measured.index, "size_bytes"].sum())
        speed.append({"codec": c.codec, "level": c.level, "label": c.label, "use": c.use, "why": c.why,
                      "assets": len(got), "input_bytes": input_bytes, "output_bytes": int(measured.sum()),
                      "sample_ratio": float(measured.sum() / input_bytes) if input_bytes else None,
                      "ratio": float(out[c.column].sum() / out["size_bytes"].sum()) if len(out) else None,
                      "cpu_seconds": seconds, "mb_per_s": input_bytes / seconds / 1e6 if seconds > 0 else None})
    order = {c.label: i for i, c in enumerate(codecs)}
    speed.sort(key=lambda r: order[str(r["label"])])
    return out.drop(columns=["content_type", "size_bytes"]), pd.DataFrame(speed)


def _type_name(content_type: str) -> str:
    base = content_type.split(";")[0].strip()
    return TYPE_NAMES.get(base, base)


def analyse_compression(con: duckdb.DuckDBPyConnection, window: Window, *, served_bytes_total: int | None = None,
                        threads: int | None = None, groups: RequestGroups | None = None) -> CompressionAnalysis:
    """Sizes and speeds per codec level, responses served uncompressed and their savings, and one
    opportunity per content type worth compressing (module docstring). ``served_bytes_total``: all bytes
    sent in the window when the caller has it (else one more scan of ``requests``); ``groups``: the window's
    shared grouped requests (:mod:`kit.analysis.request_groups`) when the caller has them (else one scan)."""
    params = {"start": window.start, "end": window.end}
    assets = con.execute("SELECT path, content_type, size_bytes, sha256 FROM assets ORDER BY path").df()
    assets["compressible"] = [is_compressible(t) for t in assets["content_type"]]
    # most served first (requests x size), so that a capped sample holds what matters
    # the 200s of the assets' paths per route and size sent (a temporary table of those groups, read twice:
    # the counts here and SERVED_SQL's numbers below): one scan of the window's requests, or the shared groups
    if groups is not None:
        if not groups.assets:
            raise ValueError("the compression study needs request groups built with the assets (assets=True)")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_SENT_VIEW} AS SELECT path, service, route, asset_bytes AS bytes_sent, "
            f"sum(n)::BIGINT AS n FROM {groups.of(window)} WHERE status = 200 AND path IN (SELECT path FROM assets) "
            "GROUP BY ALL")
    else:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_SENT_VIEW} AS SELECT path, service, route, bytes_sent, count(*) AS n "
            "FROM requests WHERE ts >= $start AND ts < $end AND status = 200 AND path IN (SELECT path FROM assets) "
            "GROUP BY ALL", params)
    try:
        return _analyse(con, window, assets, served_bytes_total, threads, params)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_SENT_VIEW}")


def _analyse(con: duckdb.DuckDBPyConnection, window: Window, assets: pd.DataFrame, served_bytes_total: int | None,
             threads: int | None, params: dict[str, Any]) -> CompressionAnalysis:
    """:func:`analyse_compression` once the 200s of the assets are grouped in ``_SENT_VIEW``."""
    counts = con.execute(f"SELECT path, sum(n)::BIGINT AS n FROM {_SENT_VIEW} GROUP BY path").df()
    weight = (assets.merge(counts, on="path", how="left").fillna({"n": 0})
              .assign(w=lambda f: f["n"] * f["size_bytes"]).groupby("sha256")["w"].sum())
    wanted = set(assets.loc[assets["compressible"], "sha256"])
    shas = [s for s in weight.sort_values(ascending=False, kind="stable").index if s in wanted]
    contents = con.execute(
        "SELECT a.sha256, any_value(a.content_type) AS content_type, any_value(c.content) AS content "
        "FROM assets a JOIN asset_content c USING (sha256) WHERE a.sha256 IN (SELECT unnest($shas)) "
        "GROUP BY a.sha256", {"shas": shas}).df() if shas else pd.DataFrame(columns=["sha256", "content_type",
                                                                                      "content"])
    contents = contents.set_index("sha256").loc[shas].reset_index() if shas else contents
    sizes, codecs = compressed_sizes(contents, threads=threads)
    table = assets.merge(sizes, on="sha256", how="left")
    for c in CODECS:  # incompressible (or contentless) assets keep their size
        table[c.column] = table[c.column].fillna(table["size_bytes"]).astype("int64")
    table["estimated"] = table["estimated"].astype("boolean").fillna(False).astype(bool)
    cols = [c.column for c in CODECS]
    table["min_bytes"] = table[cols].min(axis=1)
    table["max_bytes"] = table[cols].max(axis=1)
    gz6 = table[FALLBACK_CODEC.column]
    table["lighthouse_ok"] = (table["compressible"] & (table["size_bytes"] - gz6 >= LIGHTHOUSE_MIN_SAVING_BYTES)
                              & ((table["size_bytes"] - gz6) >= LIGHTHOUSE_MIN_SAVING_SHARE * table["size_bytes"]))

    con.register(ASSET_SIZES_VIEW, table.drop(columns=["sha256"]))
    try:   # SERVED_SQL (what the result shows) on the requests grouped above: the same numbers
        served = con.execute(_SERVED_FROM_SENT).df()
    finally:
        con.unregister(ASSET_SIZES_VIEW)
    if served_bytes_total is None:
        row = con.execute(TOTAL_SQL, params).fetchone()
        served_bytes_total = int(row[0]) if row else 0

    counted = ["responses", "uncompressed", "compressed", "unknown", "served_bytes", "uncompressed_bytes"]
    per_path = served.groupby("path")[counted].sum().reset_index()
    table = table.drop(columns=["sha256"]).merge(per_path, on="path", how="left")
    table[counted] = table[counted].fillna(0).astype("int64")
    table["other"] = table["responses"] - table["uncompressed"] - table["compressed"] - table["unknown"]
    for c in CODECS:
        table[f"saved_{c.column}"] = (table["size_bytes"] - table[c.column]) * table["uncompressed"]
    table["uncompressed_share"] = _share(table["uncompressed"], table["uncompressed"] + table["compressed"])
    table = table.sort_values([f"saved_{STATIC_CODEC.column}", "path"], ascending=[False, True]).reset_index(drop=True)

    by_type = _by_type(table)
    by_route = _by_route(served, table)
    codecs = codecs if len(codecs) else pd.DataFrame([{"codec": c.codec, "level": c.level, "label": c.label,
                                                       "use": c.use, "why": c.why} for c in CODECS])
    found = CompressionAnalysis(window, codecs, table, by_type, by_route, int(served_bytes_total),
                                len(contents), len(shas),
                                sql={"served_uncompressed": SERVED_SQL, "all_bytes": TOTAL_SQL})
    return replace(found, opportunities=compression_opportunities(found, served))


def _share(part: pd.Series, whole: pd.Series) -> pd.Series:
    return (part / whole.where(whole > 0)).astype("float64")


def _by_type(table: pd.DataFrame) -> pd.DataFrame:
    """Per content type: sizes over its assets; responses and savings (savings of Lighthouse-eligible assets)."""
    frame = table.assign(content_type=table["content_type"].fillna("(none)"))
    ok = frame["lighthouse_ok"]
    saved = {f"saved_{c.column}": (f"saved_{c.column}", "sum") for c in CODECS}
    sums = {c.column: (c.column, "sum") for c in CODECS}
    agg = (frame.assign(**{f"saved_{c.column}": frame[f"saved_{c.column}"].where(ok, 0) for c in CODECS},
                        skipped=~ok & frame["compressible"])
           .groupby("content_type")
           .agg(compressible=("compressible", "any"), assets=("path", "count"), skipped_assets=("skipped", "sum"),
                size_bytes=("size_bytes", "sum"), **sums, responses=("responses", "sum"),
                uncompressed=("uncompressed", "sum"), compressed=("compressed", "sum"), other=("other", "sum"),
                served_bytes=("served_bytes", "sum"), **saved)
           .reset_index())
    agg["uncompressed_share"] = _share(agg["uncompressed"], agg["uncompressed"] + agg["compressed"])
    for c in CODECS:
        agg[f"{c.codec}_{c.level}_ratio"] = _share(agg[c.column], agg["size_bytes"])
    return agg.sort_values([f"saved_{STATIC_CODEC.column}", "content_type"], ascending=[False, True]) \
        .reset_index(drop=True)


def _by_route(served: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per (service, route): responses of compressible assets, how many uncompressed, what they would save."""
    cols = ["service", "route", "responses", "uncompressed", "compressed", "uncompressed_share",
            *(f"saved_{c.column}" for c in CODECS)]
    if served.empty:
        return pd.DataFrame(columns=["content_types", *cols])
    per_asset = table.set_index("path")
    frame = served.join(per_asset[["content_type", "lighthouse_ok", *(c.column for c in CODECS)]], on="path")
    frame = frame.join(per_asset["size_bytes"], on="path")
    for c in CODECS:
        frame[f"saved_{c.column}"] = ((frame["size_bytes"] - frame[c.column]) * frame["uncompressed"]) \
            .where(frame["lighthouse_ok"], 0)
    frame[["service", "route"]] = frame[["service", "route"]].fillna("")
    agg = (frame.groupby(["service", "route"])
           .agg(content_types=("content_type", lambda s: sorted(set(s.dropna()))), responses=("responses", "sum"),
                uncompressed=("uncompressed", "sum"), compressed=("compressed", "sum"),
                **{f"saved_{c.column}": (f"saved_{c.column}", "sum") for c in CODECS})
           .reset_index())
    agg["uncompressed_share"] = _share(agg["uncompressed"], agg["uncompressed"] + agg["compressed"])
    return agg.sort_values([f"saved_{STATIC_CODEC.column}", "service", "route"], ascending=[False, True, True]) \
        .reset_index(drop=True)[["content_types", *cols]]


def _speed(found: CompressionAnalysis, codec: Codec) -> float | None:
    row = found.codecs[(found.codecs["codec"] == codec.codec) & (found.codecs["level"] == codec.level)]
    value = row["mb_per_s"].iloc[0] if len(row) and "mb_per_s" in row else None
    return float(value) if value is not None and pd.notna(value) else None


def compression_opportunities(found: CompressionAnalysis, served: pd.DataFrame) -> list[Opportunity]:
    """One opportunity per content type whose Lighthouse-eligible assets were served uncompressed: serve them
    brotli (pre-compressed at level 11, on the fly at level 5) with gzip -6 for clients without ``br``.
    Saving: bytes over the window, brotli 11 (value and high) down to gzip 6 (low), of all bytes served."""
    out = []
    days = max((found.window.end - found.window.start).total_seconds() / 86400, 1e-9)
    br5 = _speed(found, DYNAMIC_CODEC)
    br11 = _speed(found, STATIC_CODEC)
    gz6 = _speed(found, FALLBACK_CODEC)
    base = found.served_bytes_total or int(found.by_type["served_bytes"].sum()) or 1
    for row in found.by_type.itertuples(index=False):
        value = int(getattr(row, f"saved_{STATIC_CODEC.column}"))
        if not row.compressible or value <= 0:
            continue
        ctype = str(row.content_type)
        name = _type_name(ctype)
        mine = found.assets[(found.assets["content_type"] == row.content_type) & found.assets["lighthouse_ok"]
                            & (found.assets["uncompressed"] > 0)]
        paths = mine["path"].tolist()
        routes = served[served["path"].isin(paths) & (served["uncompressed"] > 0)][["service", "route"]] \
            .drop_duplicates().fillna("").sort_values(["service", "route"])
        addresses = [f"route:{s} {r}" for s, r in routes.itertuples(index=False)]
        low = int(getattr(row, f"saved_{FALLBACK_CODEC.column}"))
        raw_uncompressed = int((mine["size_bytes"] * mine["uncompressed"]).sum())
        cpu_br5 = raw_uncompressed / (br5 * 1e6) if br5 else None
        cpu_gz6 = raw_uncompressed / (gz6 * 1e6) if gz6 else None
        build_s = int(mine["size_bytes"].sum()) / (br11 * 1e6) if br11 else None
        largest = mine.iloc[0] if len(mine) else None
        cpu_text = (f"compressing these responses on the fly would cost about {_secs(cpu_br5 / days)} CPU-seconds a "
                    f"day at brotli 5 ({br5:,.0f} MB/s on one core, measured here) or {_secs(cpu_gz6 / days)} at "
                    f"gzip 6 ({gz6:,.0f} MB/s)" if cpu_br5 is not None and cpu_gz6 is not None and br5 and gz6
                    else "the CPU cost of on-the-fly compression was not measured")
        build_text = (f"pre-compressing the {len(mine)} files at brotli 11 takes about {_secs(build_s)} CPU-seconds "
                      f"per build ({br11:,.2f} MB/s)" if build_s is not None and br11 else "")
        details = {
            "content_type": ctype, "assets": int(row.assets), "eligible_assets": len(mine),
            "skipped_assets": int(row.skipped_assets), "responses": int(row.responses),
            "uncompressed": int(row.uncompressed), "uncompressed_share": _float(row.uncompressed_share),
            "raw_bytes_uncompressed": raw_uncompressed,
            "saved_bytes": {c.label: int(getattr(row, f"saved_{c.column}")) for c in CODECS},
            "cpu_seconds_per_day": {"brotli-5": None if cpu_br5 is None else cpu_br5 / days,
                                    "gzip-6": None if cpu_gz6 is None else cpu_gz6 / days},
            "build_cpu_seconds": build_s, "paths": paths[:10],
        }
        out.append(opportunity(
            "compression",
            f"Compress {name} with brotli (pre-compress at build, level 11; dynamic level 5; gzip -6 fallback)",
            change=(f"Build: write a .br (brotli -q 11) and a .gz (gzip -9 -n) next to each {ctype} file. nginx "
                    f"(ngx_brotli): `brotli_static on; gzip_static on;` in the location serving them, and for "
                    f"anything not pre-compressed `brotli on; brotli_comp_level 5; brotli_types {ctype}; gzip on; "
                    f"gzip_comp_level 6; gzip_types {ctype}; gzip_vary on;`. CDN: enable brotli/gzip compression "
                    f"for {ctype} (Cloudflare: Compression Rules; CloudFront: 'Compress objects automatically' on "
                    "the cache behavior, with the Accept-Encoding normalisation of its cache policy)."),
            evidence=(f"{int(row.uncompressed):,} of {int(row.uncompressed) + int(row.compressed):,} complete 200 "
                      f"responses of {ctype} ({_pct(row.uncompressed_share)}) had bytes_sent at the raw file size, "
                      f"i.e. were sent uncompressed; {len(mine)} of its {int(row.assets)} files pass Lighthouse's "
                      f"thresholds (gzip saves >= {LIGHTHOUSE_MIN_SAVING_BYTES:,} bytes and >= "
                      f"{LIGHTHOUSE_MIN_SAVING_SHARE:.0%}); on those responses brotli 11 would have saved "
                      f"{value:,} bytes, gzip 6 {low:,} bytes"
                      + (f"; the largest saving: {largest['path']} ({int(largest['size_bytes']):,} bytes raw, "
                         f"{int(largest[STATIC_CODEC.column]):,} at brotli 11)" if largest is not None else "") + "."),
            effect=(f"{value:,} fewer bytes sent over the window ({value / base:.2%} of all bytes served), "
                    f"{low:,} if clients only accept gzip; faster loads of pages that wait on these files."),
            verify=(f"After the change, run the served_uncompressed SQL of this opportunity over a window of the same "
                    f"length: for "
                    f"{', '.join(paths[:3])}{' ...' if len(paths) > 3 else ''} bytes_sent should be near the "
                    "brotli 11 (or gzip) size in the asset table, and the uncompressed share near 0; check one "
                    f"response with `curl -sI -H 'Accept-Encoding: br,gzip' <url>` for `Content-Encoding: br`."),
            risk=("low for static files served pre-compressed: no per-request CPU; "
                  + (build_text + "; " if build_text else "") + cpu_text + ". BREACH: never compress on the fly "
                  "responses that reflect user input next to a secret (CSRF tokens in HTML); static files carry "
                  "none. Send `Vary: Accept-Encoding` so caches keep the encodings apart."),
            effort="low",
            saving=Saving(float(value), "bytes", "all bytes served", value / base, low=float(low), high=float(value)),
            sql={"served_uncompressed": SERVED_SQL, "all_bytes": TOTAL_SQL},
            addresses=addresses, details=details))
    return sorted(out, key=lambda o: (-o.score, o.title))


def _secs(value: float) -> str:
    return f"{value:,.2g}" if value < 100 else f"{value:,.0f}"


def _float(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]


def _pct(value: object) -> str:
    number = _float(value)
    return "n/a" if number is None else f"{number:.1%}"
