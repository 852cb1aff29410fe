"""Deterministic hashing and sampling helpers of the demo generator: splitmix64 uniforms and normals,
Zipf ranks, cheap permutations, hex strings, and the diurnal and weekly request rate."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pyarrow as pa


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a fast, well-mixed deterministic hash of uint64 values."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _unit(x: np.ndarray) -> np.ndarray:
    """Deterministic uniforms in (0, 1) from integer keys."""
    return ((mix64(x) >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def hash_normal(key: np.ndarray) -> np.ndarray:
    """Deterministic standard normals from integer keys (Box-Muller on two hashed uniforms)."""
    k = key.astype(np.uint64)
    with np.errstate(over="ignore"):
        u1 = _unit(k * np.uint64(2) + np.uint64(1))
        u2 = _unit(k * np.uint64(2) + np.uint64(2))
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def zipf_rank(u: np.ndarray, n: np.ndarray, a: np.ndarray) -> np.ndarray:
    """0-based Zipf(a) ranks among n items by inverting the continuous power-law CDF (a != 1)."""
    one_minus = 1.0 - a
    x = (1.0 + u * ((n + 1.0) ** one_minus - 1.0)) ** (1.0 / one_minus)
    return np.minimum(np.floor(x).astype(np.int64) - 1, np.asarray(n).astype(np.int64) - 1).clip(0)


def coprime_step(n: int, key: int) -> int:
    """A multiplier coprime with n, for a cheap permutation rank -> (rank * step + offset) mod n."""
    step = 1 + (key * 7919) % max(n - 1, 1)
    while math.gcd(step, n) != 1:
        step += 1
    return step


_HOURLY = np.array([0.30, 0.22, 0.17, 0.14, 0.13, 0.15, 0.22, 0.35, 0.50, 0.60, 0.66, 0.70,
                    0.74, 0.72, 0.70, 0.70, 0.72, 0.78, 0.88, 0.97, 1.00, 0.92, 0.72, 0.48])
_WEEKDAY = np.array([1.0, 1.02, 1.0, 0.99, 0.95, 0.74, 0.70])  # Monday .. Sunday


def minute_rates(start: datetime, n_minutes: int, rng: np.random.Generator) -> np.ndarray:
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


def hex16(x: np.ndarray) -> pa.Array:
    """16-character lowercase hex strings of uint64 values, vectorized."""
    raw = x.astype(">u8").view(np.uint8).reshape(-1, 8)
    lut = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((len(x), 16), dtype=np.uint8)
    out[:, 0::2] = lut[raw >> 4]
    out[:, 1::2] = lut[raw & 15]
    return pa.array(out.view("S16").ravel()).cast(pa.string())
