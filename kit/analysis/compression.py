"""Resource compression: how many bytes text assets would save with gzip and zstd, weighted by how
often each asset was served in the window."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import duckdb
import pandas as pd
import zstandard

from kit.analysis.window import Window

COMPRESSIBLE_PREFIXES = ("text/", "application/javascript", "application/json", "image/svg+xml",
                         "application/xml", "application/wasm")


@dataclass(frozen=True)
class CompressionOpportunity:
    """Per asset and per content type: bytes as stored, gzip -6 and zstd -19 sizes, and the bytes
    served in the window that compression would have saved (sizes in bytes)."""

    window: Window
    assets: pd.DataFrame       # path, content_type, size_bytes, gzip_bytes, zstd_bytes, requests, saved_gzip_bytes
    by_type: pd.DataFrame      # content_type, assets, size_bytes, gzip_bytes, zstd_bytes, requests, saved_gzip_bytes
    served_bytes: int          # bytes served for these assets in the window
    saved_gzip_bytes: int      # of which gzip would have saved
    saved_zstd_bytes: int


def compression_opportunity(con: duckdb.DuckDBPyConnection, window: Window) -> CompressionOpportunity:
    """Compress each distinct asset once (content is small and few), join with request counts in SQL."""
    assets = con.execute(
        "SELECT a.path, a.content_type, a.size_bytes, a.sha256, c.content FROM assets a "
        "JOIN asset_content c USING (sha256) ORDER BY a.path").df()
    compressible = assets["content_type"].fillna("").str.startswith(COMPRESSIBLE_PREFIXES)
    zstd = zstandard.ZstdCompressor(level=19)
    sizes = {sha: (len(gzip.compress(bytes(blob), 6, mtime=0)), len(zstd.compress(bytes(blob))))
             for sha, blob in zip(assets.loc[compressible, "sha256"], assets.loc[compressible, "content"], strict=True)}
    pairs = [sizes.get(s, (n, n)) for s, n in zip(assets["sha256"], assets["size_bytes"], strict=True)]
    assets["gzip_bytes"] = [gz for gz, _ in pairs]  # incompressible types keep their size
    assets["zstd_bytes"] = [zs for _, zs in pairs]
    counts = con.execute(
        "SELECT path, count(*) AS requests FROM requests WHERE ts >= ? AND ts < ? AND status = 200 "
        "AND path IN (SELECT path FROM assets) GROUP BY path", [window.start, window.end]).df()
    table = assets.drop(columns=["content", "sha256"]).merge(counts, on="path", how="left").fillna({"requests": 0})
    table["requests"] = table["requests"].astype("int64")
    table["saved_gzip_bytes"] = (table["size_bytes"] - table["gzip_bytes"]) * table["requests"]
    table["saved_zstd_bytes"] = (table["size_bytes"] - table["zstd_bytes"]) * table["requests"]
    by_type = (table.groupby("content_type", dropna=False)
               .agg(assets=("path", "count"), size_bytes=("size_bytes", "sum"), gzip_bytes=("gzip_bytes", "sum"),
                    zstd_bytes=("zstd_bytes", "sum"), requests=("requests", "sum"),
                    saved_gzip_bytes=("saved_gzip_bytes", "sum"))
               .reset_index().sort_values("saved_gzip_bytes", ascending=False).reset_index(drop=True))
    served = int((table["size_bytes"] * table["requests"]).sum())
    return CompressionOpportunity(window, table.sort_values("saved_gzip_bytes", ascending=False).reset_index(drop=True),
                                  by_type, served, int(table["saved_gzip_bytes"].sum()),
                                  int(table["saved_zstd_bytes"].sum()))
