"""Compiled reader of the CLF family (common, combined, combined + ``rt= urt= ucs=``) into Arrow columns.

A file is read in chunks of whole lines; a numba kernel (parallel over lines, no Python per line) splits
each line into its fields, types them (time → UTC microseconds, status, bytes, request times), templates
the path into its route, redacts the secret values of ASCII query strings (non-ASCII ones are flagged
for DuckDB's regex, whose case-insensitive match folds letters such as the Kelvin sign), numbers the
distinct client addresses of the file (so each is hashed once) and copies the text columns into Arrow
string buffers. DuckDB then only hashes the new client addresses, adds the service (the ``--service``
given or the file's name: the reader takes no line with a host) and stores the rows. The first chunk is
small (``FIRST_CHUNK_BYTES``) so that DuckDB starts storing early; then it stores chunk k while the
reader parses chunk k + 1.

The kernel is deliberately *strict*: it takes a line only when it has exactly the well-formed shape

    client ident user [DD/Mon/YYYY:HH:MM:SS +ZZZZ] "METHOD /target[ PROTO]" SSS BYTES "referer" "agent" TAIL

(``TAIL`` empty, or `` rt=X urt=Y ucs=Z`` with plain decimal times, or — combined — any text after a space
without ``=``, such as NGINX's default ``"$http_x_forwarded_for"``; ``common`` stops after BYTES), valid
UTF-8, no control characters, no backslash before a quote, an origin-form target (``/...``). Every other
line — blank, malformed, escaped quotes, absolute URIs, exotic numbers or zones — is handed back by line
number, and the caller reads it with the general (regex) path, so both paths give the same rows.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# numba's OpenMP threads would otherwise spin between parallel regions, taking CPU from DuckDB's threads
# (read before OpenMP starts, at the first parallel call)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from kit.ingest.core import COMPRESSED_SUFFIXES, FileDigest, open_measured, reading_progress  # noqa: E402
from kit.ingest.routes import REDACTED, SECRET_KEY_WORDS  # noqa: E402

__all__ = ["CHUNK_BYTES", "FIRST_CHUNK_BYTES", "ClfChunk", "Dictionary", "NotForFastPath", "read_clf_chunks",
           "warm_up"]

# bytes of whole lines per chunk: bounds memory (a Parquet ingest grows by about 9x this, 150 MB; fresh memory is
# slow to fault in, in VMs: 48 MB chunks grew it by 320 MB and cost 0.2-0.3 s more system time per 2M lines)
CHUNK_BYTES = 16 << 20
FIRST_CHUNK_BYTES = 4 << 20   # the first chunk's: DuckDB waits for it (then stores chunk k while k+1 is parsed)

# rows of the column-major int32 field table F (offsets into the chunk, -1 = missing) and int64 table W
(_CLIENT_S, _CLIENT_E, _METHOD_S, _METHOD_E, _PATH_S, _PATH_E, _QUERY_S, _QUERY_E, _UA_S, _UA_E,
 _UCS_S, _UCS_E, _STATUS) = range(13)
_NFIELDS = 13
_TS, _BYTES = 0, 1
_MONTHS = np.frombuffer(b"JanFebMarAprMayJunJulAugSepOctNovDec", dtype=np.uint8)
_POW10 = np.array([10.0 ** k for k in range(16)])   # exact doubles
_TOKENS = np.frombuffer(b"{id}\0\0{uuid}{hash}", dtype=np.uint8)   # route tokens at 0, 6, 12
_TOKEN_LEN = np.array([0, 4, 6, 6])
_KEY_RT, _KEY_URT, _KEY_UCS = (np.frombuffer(k, dtype=np.uint8) for k in (b" rt=", b" urt=", b" ucs="))

# the secret key words (lower case, ASCII), packed, with their start offsets; REDACTED as bytes
_WORDS = np.frombuffer("".join(SECRET_KEY_WORDS).encode("ascii"), dtype=np.uint8)
_WORD_AT = np.cumsum([0, *(len(w) for w in SECRET_KEY_WORDS)])
_REDACTED = np.frombuffer(REDACTED.encode("ascii"), dtype=np.uint8)
assert all(w == w.lower() and w.isascii() and w.isalpha() for w in SECRET_KEY_WORDS)

KIND_COMMON, KIND_COMBINED, KIND_KV = 0, 1, 2
KIND_BY_FORMAT = {"common": KIND_COMMON, "combined": KIND_COMBINED, "combined_kv": KIND_KV}


# ---------------------------------------------------------------------------------------------- scalars

@numba.njit(cache=True, inline="always")
def _digit(c: int) -> bool:
    return 48 <= c <= 57


@numba.njit(cache=True, inline="always")
def _hex(c: int) -> bool:
    return 48 <= c <= 57 or 65 <= c <= 70 or 97 <= c <= 102


@numba.njit(cache=True, inline="always")
def _alnum(c: int) -> bool:
    return 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122


@numba.njit(cache=True)
def _uint(buf: np.ndarray, s: int, e: int) -> int:
    """The decimal digits buf[s:e] as an integer (caller checked they are 1-18 digits)."""
    v = 0
    for i in range(s, e):
        v = v * 10 + (buf[i] - 48)
    return v


@numba.njit(cache=True)
def _decimal(buf: np.ndarray, s: int, e: int) -> float:
    """buf[s:e] as a double when it is ``D+`` or ``D+.D+`` with at most 15 digits (so that one IEEE division
    of two exact integers gives the correctly rounded value, as DuckDB's cast does); NaN otherwise."""
    mant = 0
    digits = 0
    scale = -1
    for i in range(s, e):
        c = buf[i]
        if _digit(c):
            mant = mant * 10 + (c - 48)
            digits += 1
            if scale >= 0:
                scale += 1
        elif c == 46 and scale < 0 and digits > 0:
            scale = 0
        else:
            return np.nan
    if digits == 0 or digits > 15 or scale == 0:
        return np.nan
    if scale < 0:
        return float(mant)
    return mant / _POW10[scale]


@numba.njit(cache=True)
def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@numba.njit(cache=True)
def _clf_time_us(buf: np.ndarray, s: int, months: np.ndarray) -> tuple[bool, int]:
    """``DD/Mon/YYYY:HH:MM:SS +ZZZZ`` at buf[s:s+26] → (valid, UTC microseconds since the epoch)."""
    for k in (0, 1, 7, 8, 9, 10, 12, 13, 15, 16, 18, 19, 22, 23, 24, 25):
        if not _digit(buf[s + k]):
            return False, 0
    if buf[s + 2] != 47 or buf[s + 6] != 47 or buf[s + 11] != 58 or buf[s + 14] != 58 or buf[s + 17] != 58 \
            or buf[s + 20] != 32 or (buf[s + 21] != 43 and buf[s + 21] != 45):
        return False, 0
    month = 0
    for m in range(12):
        if buf[s + 3] == months[3 * m] and buf[s + 4] == months[3 * m + 1] and buf[s + 5] == months[3 * m + 2]:
            month = m + 1
            break
    day = _uint(buf, s, s + 2)
    year = _uint(buf, s + 7, s + 11)
    hour = _uint(buf, s + 12, s + 14)
    minute = _uint(buf, s + 15, s + 17)
    sec = _uint(buf, s + 18, s + 20)
    zh = _uint(buf, s + 22, s + 24)
    zm = _uint(buf, s + 24, s + 26)
    if month == 0 or year < 1 or hour > 23 or minute > 59 or sec > 59 or zh > 14 or zm > 59 or day < 1:
        return False, 0
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    mdays = 29 if month == 2 and leap else (28 if month == 2 else (30 if month in (4, 6, 9, 11) else 31))
    if day > mdays:
        return False, 0
    offset = (zh * 3600 + zm * 60) * (1 if buf[s + 21] == 43 else -1)
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + sec - offset
    return True, seconds * 1_000_000


@numba.njit(cache=True)
def _valid_utf8(buf: np.ndarray, s: int, e: int) -> bool:
    """buf[s:e] is well-formed UTF-8 (no overlongs, surrogates or code points over U+10FFFF)."""
    i = s
    while i < e:
        c = buf[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            n, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            n, lo, hi = 2, 0xA0, 0xBF
        elif 0xE1 <= c <= 0xEC or 0xEE <= c <= 0xEF:
            n, lo, hi = 2, 0x80, 0xBF
        elif c == 0xED:
            n, lo, hi = 2, 0x80, 0x9F
        elif c == 0xF0:
            n, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= c <= 0xF3:
            n, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            n, lo, hi = 3, 0x80, 0x8F
        else:
            return False
        if i + n >= e:
            return False
        if not lo <= buf[i + 1] <= hi:
            return False
        for k in range(2, n + 1):
            if not 0x80 <= buf[i + k] <= 0xBF:
                return False
        i += n + 1
    return True


# ---------------------------------------------------------------------------------------------- routes

@numba.njit(cache=True)
def _segment_kind(buf: np.ndarray, s: int, e: int) -> tuple[int, int]:
    """Template of the path segment buf[s:e]: (0 keep | 1 {id} | 2 {uuid} | 3 {hash}, start of the file
    extension kept after {id}, or e). Rules of :mod:`kit.ingest.routes`."""
    n = e - s
    if n == 0:
        return 0, e
    i = s
    while i < e and _digit(buf[i]):
        i += 1
    if i > s:
        if i == e:
            return 1, e
        if buf[i] == 46 and 2 <= e - i <= 9:
            ok = True
            for k in range(i + 1, e):
                if not _alnum(buf[k]):
                    ok = False
                    break
            if ok:
                return 1, i
    if n == 36:
        ok = True
        for k in range(36):
            c = buf[s + k]
            if k in (8, 13, 18, 23):
                if c != 45:
                    ok = False
                    break
            elif not _hex(c):
                ok = False
                break
        if ok:
            return 2, e
    if n >= 16:
        digit = False
        for k in range(s, e):
            c = buf[k]
            if not _hex(c):
                return 0, e
            digit = digit or _digit(c)
        if digit:
            return 3, e
    return 0, e


@numba.njit(cache=True)
def _route(buf: np.ndarray, s: int, e: int, out: np.ndarray, o: int) -> int:
    """Write the route of the path buf[s:e] into out[o:] (at most 4 * (e - s) bytes: a 1-digit segment
    becoming ``{id}`` grows most); return its length. A path without a digit is its own route (as the SQL
    does)."""
    has_digit = False
    for k in range(s, e):
        if _digit(buf[k]):
            has_digit = True
            break
    if not has_digit:
        out[o:o + e - s] = buf[s:e]
        return e - s
    length = 0
    seg = s
    while True:
        end = seg
        while end < e and buf[end] != 47:
            end += 1
        kind, ext = _segment_kind(buf, seg, end)
        if kind == 0:
            out[o + length:o + length + end - seg] = buf[seg:end]
            length += end - seg
        else:
            n_token = _TOKEN_LEN[kind]
            t0 = 6 * (kind - 1)
            out[o + length:o + length + n_token] = _TOKENS[t0:t0 + n_token]
            length += n_token
            out[o + length:o + length + end - ext] = buf[ext:end]
            length += end - ext
        if end >= e:
            break
        out[o + length] = 47
        length += 1
        seg = end + 1
    return length


# ---------------------------------------------------------------------------------------------- clients

@numba.njit(cache=True, inline="always")
def _ipv4(buf: np.ndarray, s: int, e: int) -> int:
    """buf[s:e] as a 32-bit integer when it is an IPv4 address in canonical dotted-quad form (four
    decimal octets 0-255, no leading zero), else -1: two such strings are equal exactly when their
    integers are."""
    if e - s < 7 or e - s > 15:
        return -1
    v = octet = digits = dots = 0
    for k in range(s, e):
        c = buf[k]
        if c == 46:
            if digits == 0:
                return -1
            v = (v << 8) | octet
            octet = digits = 0
            dots += 1
        elif _digit(c):
            if digits == 1 and octet == 0:
                return -1
            octet = octet * 10 + (c - 48)
            digits += 1
            if octet > 255:
                return -1
        else:
            return -1
    if dots != 3 or digits == 0:
        return -1
    return (v << 8) | octet


@numba.njit(cache=True, inline="always")
def _v4_slot(v4: np.ndarray, ip: np.uint64) -> np.int64:
    """The slot of ``ip`` in the IPv4 table ``v4`` (its own, or the free one where it goes)."""
    mask = v4.shape[0] - 1
    slot = np.int64(((ip * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)) & np.uint64(mask))
    while v4[slot] != 0 and (v4[slot] >> np.uint64(32)) != ip:
        slot = (slot + 1) & mask
    return slot


@numba.njit(cache=True)
def _v4_with_room(v4: np.ndarray, entries: int) -> np.ndarray:
    """``v4``, or it rehashed into a larger one, at most half full with ``entries`` entries."""
    while 2 * entries > v4.shape[0]:
        old = v4
        v4 = np.zeros(2 * old.shape[0], dtype=np.uint64)
        for i in range(old.shape[0]):
            if old[i]:
                v4[_v4_slot(v4, old[i] >> np.uint64(32))] = old[i]
    return v4


@numba.njit(cache=True)
def _table_with_room(table: np.ndarray, entries: int) -> np.ndarray:
    """The string table ``table`` (slots of two words), or it rehashed into a larger one, at most half full
    with ``entries`` entries."""
    while 4 * entries > table.shape[0]:
        old = table
        table = np.zeros(2 * old.shape[0], dtype=np.uint64)
        mask = table.shape[0] // 2 - 1
        for i in range(old.shape[0] // 2):
            if old[2 * i + 1]:
                slot = np.int64(old[2 * i] & np.uint64(mask))
                while table[2 * slot + 1]:
                    slot = (slot + 1) & mask
                table[2 * slot] = old[2 * i]
                table[2 * slot + 1] = old[2 * i + 1]
    return table


@numba.njit(cache=True)
def _string_code(buf: np.ndarray, s: int, e: int, table: np.ndarray, key_at: np.ndarray, keys: np.ndarray,
                 starts: np.ndarray, ends: np.ndarray, first: np.ndarray,
                 before: int) -> tuple[np.int64, np.int64, np.uint64]:
    """:func:`_encode`'s lookup of buf[s:e] in ``table``: (its code or -1, its slot or the free one where
    it goes, its hash)."""
    h = np.uint64(14695981039346656037)
    for k in range(s, e):
        h = (h ^ np.uint64(buf[k])) * np.uint64(1099511628211)
    mask = table.shape[0] // 2 - 1
    slot = np.int64(h & np.uint64(mask))
    while True:
        stored = table[2 * slot + 1]
        if stored == 0:
            return np.int64(-1), slot, h
        if table[2 * slot] == h:
            c = np.int64(stored) - 1
            if c >= before:
                other, ks, ke = buf, starts[first[c - before]], ends[first[c - before]]
            else:
                other, ks, ke = keys, key_at[c], key_at[c + 1]
            if ke - ks == e - s:
                same = True
                for k in range(e - s):
                    if other[ks + k] != buf[s + k]:
                        same = False
                        break
                if same:
                    return c, slot, h
        slot = (slot + 1) & mask


@numba.njit(cache=True, nogil=True)
def _encode(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray, table: np.ndarray,
            v4: np.ndarray, n4: int, key_at: np.ndarray, keys: np.ndarray,
            n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray, np.ndarray, int]:
    """Dictionary encoding of the byte ranges [starts[r], ends[r]) of the rows ``rows`` against the
    dictionary (table, v4, n4, key_at, keys, n) of the chunks before. A canonical IPv4 address
    (:func:`_ipv4`) is looked up by its integer in ``v4``, an open-addressing table of ``n4`` entries
    whose slot holds ip << 32 | code + 1 (0 = free): one memory access per row. Any other value is
    looked up in ``table``, whose slot i holds (FNV-1a hash, code + 1; 0 = free) in table[2i],
    table[2i + 1], equal hashes confirmed byte by byte. A value not seen before gets the next code; the
    bytes of code c are keys[key_at[c]:key_at[c + 1]]. The loop neither grows a table nor copies bytes
    (either made it about twice as slow): the tables are first given room for every row being new, and a
    value new in this call is read at its first row ``first[c - before]`` until it is copied after the
    loop. Returns (code of each row, and the dictionary, grown where needed)."""
    m = rows.shape[0]
    codes = np.empty(m, dtype=np.int64)
    first = np.empty(m, dtype=np.int64)
    before = n
    v4 = _v4_with_room(v4, n4 + m)
    table = _table_with_room(table, n - n4 + m)
    for j in range(m):
        r = rows[j]
        s, e = starts[r], ends[r]
        ip = _ipv4(buf, s, e)
        code = np.int64(-1)
        slot = np.int64(0)
        h = np.uint64(0)
        if ip >= 0:
            slot = _v4_slot(v4, np.uint64(ip))
            if v4[slot] != 0:
                code = np.int64(v4[slot] & np.uint64(0xFFFFFFFF)) - 1
            elif n >= 0xFFFFFFFE:     # code + 1 no longer fits the slot's 32 bits: a new address goes to table
                ip = -1
        if ip < 0:
            code, slot, h = _string_code(buf, s, e, table, key_at, keys, starts, ends, first, before)
        if code < 0:                                  # a new value: the next code
            first[n - before] = r
            code = np.int64(n)
            n += 1
            if ip >= 0:
                v4[slot] = (np.uint64(ip) << np.uint64(32)) | np.uint64(n)
                n4 += 1
            else:
                table[2 * slot] = h
                table[2 * slot + 1] = n
        codes[j] = code
    size = 0
    for c in range(before, n):
        size += ends[first[c - before]] - starts[first[c - before]]
    if n + 1 > key_at.shape[0]:
        key_at = np.concatenate((key_at, np.empty(max(key_at.shape[0], n + 1 - key_at.shape[0]), dtype=np.int64)))
    if key_at[before] + size > keys.shape[0]:
        keys = np.concatenate((keys, np.empty(max(keys.shape[0], size), dtype=np.uint8)))
    for c in range(before, n):
        s, e = starts[first[c - before]], ends[first[c - before]]
        at = key_at[c]
        for k in range(e - s):
            keys[at + k] = buf[s + k]
        key_at[c + 1] = at + e - s
    return codes, table, v4, n4, key_at, keys, n


class Dictionary:
    """The distinct values (client addresses) of a file's chunks so far, each with its code (0, 1, ...
    in order of first occurrence): a later chunk's rows get the codes of the values seen before."""

    def __init__(self, capacity: int = 1 << 10) -> None:
        """Room for ``capacity`` values (a power of two; grows as needed)."""
        self.table = np.zeros(4 * capacity, dtype=np.uint64)     # 2 * capacity slots of (hash, code + 1)
        self.v4 = np.zeros(2 * capacity, dtype=np.uint64)        # 2 * capacity slots of ip << 32 | code + 1
        self.n4 = 0
        self.key_at = np.zeros(capacity, dtype=np.int64)
        self.keys = np.empty(16 * capacity, dtype=np.uint8)
        self.n = 0

    def encode(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
               rows: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """(codes of the rows' values, the values new in this call as an Arrow string array — their codes
        follow the earlier ones)."""
        before = self.n
        codes, self.table, self.v4, self.n4, self.key_at, self.keys, self.n = _encode(
            buf, starts, ends, rows, self.table, self.v4, self.n4, self.key_at, self.keys, before)
        at = self.key_at[before:self.n + 1]
        return codes, _string_array(at - at[0], self.keys[at[0]:at[-1]].copy(), None)


# ---------------------------------------------------------------------------------------------- queries

@numba.njit(cache=True)
def _secret_key(buf: np.ndarray, s: int, e: int, words: np.ndarray, word_at: np.ndarray) -> bool:
    """The ASCII key buf[s:e] contains a secret key word, ASCII letters compared case-insensitively."""
    for w in range(word_at.shape[0] - 1):
        w0 = word_at[w]
        n = word_at[w + 1] - w0
        for i in range(s, e - n + 1):
            k = 0
            while k < n and (buf[i + k] | 32) == words[w0 + k]:   # words are lower-case letters
                k += 1
            if k == n:
                return True
    return False


@numba.njit(cache=True)
def _redact(buf: np.ndarray, s: int, e: int, out: np.ndarray, o: int, write: bool, words: np.ndarray,
            word_at: np.ndarray, redacted: np.ndarray) -> int:
    """The query string buf[s:e] (ASCII) with the value of each ``&``-separated ``key=value`` whose key
    holds a secret key word replaced by REDACTED — what :func:`kit.ingest.routes.redact_query_sql`'s
    regex does; written to out[o:] when ``write``. Returns its length."""
    length = 0
    i = s
    while True:
        end = i
        eq = -1
        while end < e and buf[end] != 38:
            if buf[end] == 61 and eq < 0:
                eq = end
            end += 1
        if eq >= 0 and _secret_key(buf, i, eq, words, word_at):
            if write:
                out[o + length:o + length + eq + 1 - i] = buf[i:eq + 1]
                out[o + length + eq + 1 - i:o + length + eq + 1 - i + redacted.shape[0]] = redacted
            length += eq + 1 - i + redacted.shape[0]
        else:
            if write:
                out[o + length:o + length + end - i] = buf[i:end]
            length += end - i
        if end >= e:
            return length
        if write:
            out[o + length] = 38
        length += 1
        i = end + 1


@numba.njit(parallel=True, cache=True, nogil=True)
def _queries(buf: np.ndarray, fields: np.ndarray, rows: np.ndarray, words: np.ndarray, word_at: np.ndarray,
             redacted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrow string (offsets, data, validity) of the rows' query strings, redacted when ASCII, and a flag
    per row: True = not ASCII, kept as it is for the SQL regex (whose case-insensitive match also folds
    non-ASCII letters such as the Kelvin sign to k)."""
    n = rows.shape[0]
    lengths = np.empty(n, dtype=np.int64)
    valid = np.empty(n, dtype=np.bool_)
    raw = np.zeros(n, dtype=np.bool_)
    for j in numba.prange(n):
        r = rows[j]
        s, e = fields[_QUERY_S, r], fields[_QUERY_E, r]
        valid[j] = s >= 0
        lengths[j] = 0
        if s >= 0:
            hi = 0
            query = buf[s:e]
            for k in range(query.shape[0]):   # branch-free, over a slice from 0: vectorized
                hi = max(hi, query[k])
            raw[j] = hi >= 128
            lengths[j] = e - s if raw[j] else _redact(buf, s, e, buf, 0, False, words, word_at, redacted)
    offsets = _offsets(lengths)
    data = np.empty(offsets[n], dtype=np.uint8)
    for j in numba.prange(n):
        r = rows[j]
        s, e = fields[_QUERY_S, r], fields[_QUERY_E, r]
        if s >= 0:
            if raw[j]:
                data[offsets[j]:offsets[j + 1]] = buf[s:e]
            else:
                _redact(buf, s, e, data, offsets[j], True, words, word_at, redacted)
    return offsets, data, valid, raw


# ---------------------------------------------------------------------------------------------- lines

_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)


@numba.njit(cache=True, inline="always")
def _find(buf: np.ndarray, words: np.ndarray, i: int, e: int, c: int) -> int:
    """Position of the first byte ``c`` in buf[i:e], or e. ``words`` is ``buf`` viewed as uint64 (buf
    8-byte aligned): whole words without ``c`` are skipped eight bytes at a time."""
    while i < e and (i & 7) != 0:
        if buf[i] == c:
            return i
        i += 1
    pattern = np.uint64(c) * _ONES
    while i + 8 <= e:
        x = words[i >> 3] ^ pattern
        if (x - _ONES) & ~x & _HIGHS:
            break
        i += 8
    while i < e:
        if buf[i] == c:
            return i
        i += 1
    return e


@numba.njit(cache=True, inline="always")
def _after_key(buf: np.ndarray, i: int, e: int, key: np.ndarray) -> int:
    """Position just after ``key`` when buf[i:e] starts with it, else -1."""
    n = key.shape[0]
    if i + n > e:
        return -1
    for k in range(n):
        if buf[i + k] != key[k]:
            return -1
    return i + n


@numba.njit(cache=True, inline="always")
def _token_end(buf: np.ndarray, i: int, e: int) -> int:
    """Position of the first space in buf[i:e], or e."""
    while i < e and buf[i] != 32:
        i += 1
    return i


@numba.njit(cache=True)
def _standard_tail(buf: np.ndarray, t: int, e: int, F: np.ndarray, N: np.ndarray, r: int) -> bool:
    """buf[t:e] is exactly `` rt=X urt=Y ucs=Z`` with plain decimal (or empty, or '-') times and an ASCII
    cache status: fill N[0, r], N[1, r] (seconds) and the cache status offsets; False otherwise."""
    rs = _after_key(buf, t, e, _KEY_RT)
    if rs < 0:
        return False
    re_ = _token_end(buf, rs, e)
    us = _after_key(buf, re_, e, _KEY_URT)
    if us < 0:
        return False
    ue = _token_end(buf, us, e)
    cs = _after_key(buf, ue, e, _KEY_UCS)
    if cs < 0:
        return False
    for k in range(cs, e):
        c = buf[k]
        if c == 32 or c >= 128:
            return False
    for vs, ve, slot in ((rs, re_, 0), (us, ue, 1)):
        if ve > vs and not (ve - vs == 1 and buf[vs] == 45):
            value = _decimal(buf, vs, ve)
            if np.isnan(value):
                return False
            N[slot, r] = value
    if e > cs and not (e - cs == 1 and buf[cs] == 45):
        F[_UCS_S, r], F[_UCS_E, r] = cs, e
    return True


@numba.njit(cache=True)
def _parse_line(buf: np.ndarray, s: int, e: int, kind: int, months: np.ndarray, F: np.ndarray, W: np.ndarray,
                N: np.ndarray, r: int) -> bool:
    """Parse the line buf[s:e] into column ``r`` of the field tables ``F`` (offsets,
    status), ``W`` (time in UTC microseconds, bytes) and ``N`` (rt, urt seconds; NaN = NULL). False when
    the line is not of the strict shape.

    One vectorized pass counts the quotes and finds the smallest and largest byte; the fields are then
    located left to right, except the user agent of a line with exactly 6 quotes, whose closing quote is
    found from the line's end (every region scanned holds no other quote, so with the count right the
    agent holds none either)."""
    if e - s < 40:
        return False
    lo = 255
    hi = 0
    nq = 0
    line = buf[s:e]
    for i in range(line.shape[0]):  # branch-free, and over a slice from 0: vectorized
        c = line[i]
        lo = min(lo, c)
        hi = max(hi, c)
        nq += c == 34
    want = 2 if kind == KIND_COMMON else 6
    if lo < 32 or nq < want or (nq > want and kind != KIND_COMBINED) \
            or (hi >= 128 and not _valid_utf8(buf, s, e)):
        return False
    # client ident user [DD/Mon/YYYY:HH:MM:SS +ZZZZ] "
    i = s
    for t in range(3):
        token = i
        while i < e and buf[i] != 32:
            if buf[i] == 34:
                return False
            i += 1
        if i == token or i >= e:
            return False
        if t == 0:
            F[_CLIENT_S, r], F[_CLIENT_E, r] = s, i
        i += 1
    q0 = i + 29
    if q0 >= e or buf[i] != 91 or buf[i + 27] != 93 or buf[i + 28] != 32 or buf[q0] != 34:
        return False
    valid, ts = _clf_time_us(buf, i + 1, months)
    if not valid:
        return False
    W[_TS, r] = ts
    # "METHOD /target[?query][ PROTO]"
    sp1 = q0 + 1
    while buf[sp1] != 32:
        if buf[sp1] == 34:
            return False
        sp1 += 1
    if sp1 == q0 + 1 or buf[sp1 + 1] != 47 or (sp1 == q0 + 2 and buf[q0 + 1] == 45):
        return False
    qm = -1
    sp2 = sp1 + 1
    while buf[sp2] != 32 and buf[sp2] != 34:
        if buf[sp2] == 63 and qm < 0:
            qm = sp2
        sp2 += 1
    q1 = sp2
    while buf[q1] != 34:
        if buf[q1 + 1] == 32:
            return False
        q1 += 1
    if buf[q1 - 1] == 92:
        return False
    if qm < 0:
        qm = sp2
    F[_METHOD_S, r], F[_METHOD_E, r] = q0 + 1, sp1
    F[_PATH_S, r], F[_PATH_E, r] = sp1 + 1, qm
    if qm + 1 < sp2:
        F[_QUERY_S, r], F[_QUERY_E, r] = qm + 1, sp2
    else:
        F[_QUERY_S, r], F[_QUERY_E, r] = -1, -1
    # ' SSS BYTES' then the end (common) or ' "referer"'
    m = q1 + 1
    if m + 6 > e or buf[m] != 32 or buf[m + 4] != 32 \
            or not (_digit(buf[m + 1]) and _digit(buf[m + 2]) and _digit(buf[m + 3])):
        return False
    F[_STATUS, r] = _uint(buf, m + 1, m + 4)
    b0 = m + 5
    b1 = b0
    while b1 < e and _digit(buf[b1]):
        b1 += 1
    if b1 == b0 and buf[b0] == 45:
        b1 = b0 + 1
        W[_BYTES, r] = 0
    elif b1 == b0 or b1 - b0 > 18:
        return False
    else:
        W[_BYTES, r] = _uint(buf, b0, b1)
    N[0, r] = np.nan
    N[1, r] = np.nan
    F[_UCS_S, r], F[_UCS_E, r] = -1, -1
    F[_UA_S, r], F[_UA_E, r] = -1, -1
    if kind == KIND_COMMON:
        if b1 != e:
            return False
    else:
        # "referer" "agent", the agent's closing quote found from the end
        q2 = b1 + 1
        if q2 >= e or buf[b1] != 32 or buf[q2] != 34:
            return False
        q3 = q2 + 1
        while q3 < e and buf[q3] != 34:
            q3 += 1
        if q3 + 2 >= e or buf[q3 - 1] == 92 or buf[q3 + 1] != 32 or buf[q3 + 2] != 34:
            return False
        q4 = q3 + 2
        if nq == 6:                   # the agent's closing quote is the last one
            q5 = e - 1
            while buf[q5] != 34:
                q5 -= 1
        else:                         # quoted fields follow (combined): the first one after the agent opens
            q5 = q4 + 1
            while buf[q5] != 34:
                q5 += 1
        if q5 <= q4 or buf[q5 - 1] == 92:
            return False
        if q5 > q4 + 1 and not (q5 - q4 == 2 and buf[q4 + 1] == 45):
            F[_UA_S, r], F[_UA_E, r] = q4 + 1, q5
        # tail: nothing, exactly ' rt=X urt=Y ucs=Z', or (combined) any text after a space without '='
        t = q5 + 1
        if kind == KIND_KV and t == e:
            return False
        if t < e and not _standard_tail(buf, t, e, F, N, r):
            if kind == KIND_KV or buf[t] != 32:
                return False
            for k in range(t, e):
                if buf[k] == 61:      # a key=value the general path would read rt/urt/ucs from
                    return False
    return True


@numba.njit(parallel=True, cache=True, nogil=True)
def _line_ends(buf: np.ndarray, words: np.ndarray, blocks: int) -> np.ndarray:
    """Positions of the line ends in ``buf``: each newline, plus len(buf) when the last line has none.
    (Carriage returns are not looked for here: a line holding one is never of the strict shape, so
    :func:`_parse_chunk` finds them among the lines the kernel did not take.)"""
    n = buf.shape[0]
    size = ((n + blocks - 1) // blocks + 7) // 8 * 8
    counts = np.zeros(blocks + 1, dtype=np.int64)
    for b in numba.prange(blocks):
        block = buf[b * size:min(n, (b + 1) * size)]
        c = 0
        for i in range(block.shape[0]):   # branch-free from 0: vectorized (from b * size it is not, 2.5x slower)
            c += block[i] == 10
        counts[b + 1] = c
    for b in range(blocks):
        counts[b + 1] += counts[b]
    unterminated = n > 0 and buf[n - 1] != 10
    ends = np.empty(counts[blocks] + unterminated, dtype=np.int64)
    for b in numba.prange(blocks):
        k = counts[b]
        i = b * size
        stop = min(n, (b + 1) * size)
        while True:
            i = _find(buf, words, i, stop, 10)
            if i >= stop:
                break
            ends[k] = i
            k += 1
            i += 1
    if unterminated:
        ends[-1] = n
    return ends


@numba.njit(parallel=True, cache=True, nogil=True)
def _parse_lines(buf: np.ndarray, ends: np.ndarray, kind: int,
                 months: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every line (ending at ``ends``) parsed: ok flags and the column-major tables F, W, N of
    :func:`_parse_line`."""
    n = ends.shape[0]
    ok = np.zeros(n, dtype=np.bool_)
    F = np.empty((_NFIELDS, n), dtype=np.int32)
    W = np.empty((2, n), dtype=np.int64)
    N = np.empty((2, n), dtype=np.float64)
    for i in numba.prange(n):
        start = ends[i - 1] + 1 if i > 0 else 0
        ok[i] = _parse_line(buf, start, ends[i], kind, months, F, W, N, i)
    return ok, F, W, N


@numba.njit(cache=True)
def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.empty(lengths.shape[0] + 1, dtype=np.int64)
    offsets[0] = 0
    total = 0
    for i in range(lengths.shape[0]):
        total += lengths[i]
        offsets[i + 1] = total
    return offsets


@numba.njit(parallel=True, cache=True, nogil=True)
def _gather(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray,
            upper: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte ranges [starts[r], ends[r]) of the rows ``rows`` (missing when starts[r] < 0) as Arrow string
    (offsets, data, validity); ``upper`` upper-cases ASCII letters."""
    n = rows.shape[0]
    lengths = np.empty(n, dtype=np.int64)
    valid = np.empty(n, dtype=np.bool_)
    for j in numba.prange(n):
        r = rows[j]
        valid[j] = starts[r] >= 0
        lengths[j] = ends[r] - starts[r] if valid[j] else 0
    offsets = _offsets(lengths)
    data = np.empty(offsets[n], dtype=np.uint8)
    for j in numba.prange(n):
        r = rows[j]
        o = offsets[j]
        if upper:
            for k in range(lengths[j]):
                c = buf[starts[r] + k]
                data[o + k] = c - 32 if 97 <= c <= 122 else c
        elif lengths[j] <= 16:        # a short value: a slice's set-up costs more than the copy
            for k in range(lengths[j]):
                data[o + k] = buf[starts[r] + k]
        else:
            data[o:o + lengths[j]] = buf[starts[r]:ends[r]]
    return offsets, data, valid


@numba.njit(parallel=True, cache=True, nogil=True)
def _routes(buf: np.ndarray, fields: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrow string (offsets, data) of the routes of the rows' paths: each written once into room for
    its longest possible route, then packed."""
    n = rows.shape[0]
    room = np.empty(n, dtype=np.int64)
    for j in numba.prange(n):
        room[j] = 4 * (fields[_PATH_E, rows[j]] - fields[_PATH_S, rows[j]])
    at = _offsets(room)
    scratch = np.empty(at[n], dtype=np.uint8)
    lengths = np.empty(n, dtype=np.int64)
    for j in numba.prange(n):
        r = rows[j]
        lengths[j] = _route(buf, fields[_PATH_S, r], fields[_PATH_E, r], scratch, at[j])
    offsets = _offsets(lengths)
    data = np.empty(offsets[n], dtype=np.uint8)
    for j in numba.prange(n):
        data[offsets[j]:offsets[j + 1]] = scratch[at[j]:at[j] + lengths[j]]
    return offsets, data


# ---------------------------------------------------------------------------------------------- Arrow

def _string_array(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    n = len(offsets) - 1
    bitmap = None
    null_count = 0
    if valid is not None:
        null_count = int(n - np.count_nonzero(valid))
        if null_count:
            bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, null_count)


def _float(values: np.ndarray) -> pa.Array:
    nulls = np.isnan(values)
    return pa.array(values, mask=nulls if nulls.any() else None)


@dataclass
class ClfChunk:
    """One chunk of a file: the good lines as an Arrow table (ts, client_code, method, route, path,
    query — redacted unless ``query_regex`` —, query_regex, status, latency_s, upstream_s, bytes_sent,
    cache_status, user_agent — times in seconds), the client addresses first seen in this chunk
    (``client_code`` numbers the file's distinct addresses in order of first occurrence, so the salted hash
    is computed once per address and file), and the other lines as (1-based file line number, raw bytes)
    for the general path."""

    table: pa.Table
    new_clients: pa.Array
    others: list[tuple[int, bytes]]
    lines: int


def _chunk_table(buf: np.ndarray, fields: np.ndarray, wide: np.ndarray, nums: np.ndarray, rows: np.ndarray,
                 clients: Dictionary, numbering: Executor | None = None) -> tuple[pa.Table, pa.Array]:
    """The chunk's columns and its new clients; the clients are numbered (serial and memory-bound) in
    ``numbering``'s thread, when given, while this one runs the parallel kernels of the other columns."""
    def text(s: int, e: int, upper: bool = False) -> pa.Array:
        return _string_array(*_gather(buf, fields[s], fields[e], rows, upper))

    def column(values: np.ndarray, i: int) -> np.ndarray:   # every line good (the usual case): a view, no copy
        return values[i] if len(rows) == values.shape[1] else values[i, rows]

    args = (buf, fields[_CLIENT_S], fields[_CLIENT_E], rows)
    numbered = numbering.submit(clients.encode, *args) if numbering is not None else None
    query_offsets, query_data, query_valid, query_raw = _queries(buf, fields, rows, _WORDS, _WORD_AT, _REDACTED)
    table = pa.table({
        "ts": pa.array(column(wide, _TS), type=pa.timestamp("us", tz="UTC")),
        "method": text(_METHOD_S, _METHOD_E),
        "route": _string_array(*_routes(buf, fields, rows), None),
        "path": text(_PATH_S, _PATH_E),
        "query": _string_array(query_offsets, query_data, query_valid),
        "query_regex": pa.array(query_raw),
        "status": pa.array(column(fields, _STATUS).astype(np.int16)),
        "latency_s": _float(column(nums, 0)),
        "upstream_s": _float(column(nums, 1)),
        "bytes_sent": pa.array(column(wide, _BYTES)),
        "cache_status": text(_UCS_S, _UCS_E, upper=True),
        "user_agent": text(_UA_S, _UA_E),
    })
    client_codes, new_clients = numbered.result() if numbered is not None else clients.encode(*args)
    return table.add_column(1, "client_code", pa.array(client_codes)), new_clients


class NotForFastPath(Exception):
    """The file has carriage returns or a byte order mark, which the general path strips: read it there."""


def _parse_chunk(buf: np.ndarray, first_line: int, kind: int, clients: Dictionary,
                 numbering: Executor | None = None) -> ClfChunk:
    """Parse the whole lines in ``buf`` (8-byte aligned); the chunk keeps no reference to ``buf``.
    ``numbering``: a thread for the clients' numbering (:func:`_chunk_table`)."""
    words = buf[:len(buf) // 8 * 8].view(np.uint64)
    if first_line == 1 and buf[:3].tobytes() == b"\xef\xbb\xbf":
        raise NotForFastPath
    ends = _line_ends(buf, words, max(1, numba.get_num_threads() * 4))
    ok, fields, wide, nums = _parse_lines(buf, ends, kind, _MONTHS)
    good = np.flatnonzero(ok)
    others = []
    if len(good) < len(ok):
        for i in np.flatnonzero(~ok):
            start = int(ends[i - 1]) + 1 if i > 0 else 0
            raw = buf[start:int(ends[i])].tobytes()
            if b"\r" in raw:          # the kernel takes no line with a control character
                raise NotForFastPath
            others.append((first_line + int(i), raw))
    return ClfChunk(*_chunk_table(buf, fields, wide, nums, good, clients, numbering), others, len(ends))


def _skip_offset(handle: io.BufferedIOBase, skip_lines: int) -> int | None:
    """Byte offset where line ``skip_lines + 1`` starts (None: the file has no such line)."""
    offset = skipped = 0
    while skipped < skip_lines:
        block = handle.read(1 << 22)
        if not block:
            return None
        count = block.count(b"\n")
        if skipped + count < skip_lines:
            skipped += count
            offset += len(block)
            continue
        pos = -1
        for _ in range(skip_lines - skipped):
            pos = block.index(b"\n", pos + 1)
        return offset + pos + 1
    return offset


def _next_limit(buffer_bytes: int, held: int, read: int, fraction: float) -> int:
    """How much of the buffer the next read may fill: all of it, but about half of what is left of the
    file (estimated from the ``fraction`` of it that ``read`` bytes are) once that is less than two
    buffers, and at least :data:`FIRST_CHUNK_BYTES` beyond the ``held`` bytes. The last chunks are small,
    so the consumer, one chunk behind the reader, finishes soon after it."""
    left = read * (1.0 - fraction) / fraction if fraction > 0 else float(buffer_bytes)
    return min(buffer_bytes, max(held + FIRST_CHUNK_BYTES, int(left / 2)))


def read_clf_chunks(path: Path, kind: int, skip_lines: int = 0, chunk_bytes: int | None = None,
                    digest: FileDigest | None = None) -> Iterator[ClfChunk]:
    """Read the text file ``path`` (plain or compressed; after its first ``skip_lines`` lines) in
    chunks of whole lines, into one reused buffer (fresh memory costs page faults, slow in VMs).
    Raises :class:`NotForFastPath` on carriage returns or a byte order mark. Reports the fraction read
    to the CLI's progress bar. ``digest`` (a plain file read from its start only) is fed every byte read,
    in this (the reading) thread, so that the file is not read a second time to hash it."""
    if chunk_bytes is None:
        chunk_bytes = CHUNK_BYTES
    if digest is not None and (skip_lines or path.suffix.lower() in COMPRESSED_SUFFIXES):
        raise ValueError("a digest is taken of a plain file read from its start only")
    if not _parse_lines.signatures and not any((Path(__file__).parent / "__pycache__").glob("clf_fast._parse_lines-*")):
        print("perfkit: compiling the access-log reader, once (about 15 s; `make install` does it ahead)",
              file=sys.stderr, flush=True)
    with open_measured(path) as (handle, fraction), reading_progress(fraction), \
            ThreadPoolExecutor(1, thread_name_prefix="perfkit-sha256") as hasher, \
            ThreadPoolExecutor(1, thread_name_prefix="perfkit-clients") as numbering:
        hashing: Future | None = None   # the digest of the bytes just read, taken while they are parsed

        def hashed() -> None:          # wait for it before the buffer is written again
            nonlocal hashing
            if hashing is not None:
                hashing.result()
                hashing = None

        start = _skip_offset(handle, skip_lines)
        if start is None:
            return
        if skip_lines:
            handle.seek(start)
        buf = np.empty(chunk_bytes, dtype=np.uint8)
        clients = Dictionary()
        held = 0                      # bytes of an incomplete line kept at the buffer's start
        read = 0                      # bytes read (decompressed)
        line_no = skip_lines + 1
        limit = min(len(buf), FIRST_CHUNK_BYTES)   # a small first chunk: DuckDB starts storing sooner
        while True:
            if held == limit:         # one line longer than the buffer: use all of it, or grow it
                if limit == len(buf):
                    buf = np.concatenate([buf, np.empty(len(buf), dtype=np.uint8)])
                limit = len(buf)
            hashed()
            got = handle.readinto(buf[held:limit].data)
            read += got
            if digest is not None and got:
                hashing = hasher.submit(digest.update, buf[held:held + got].data)
            total = held + got
            if total == 0:
                return
            cut = total if got == 0 else _after_last_newline(buf, total)   # at the end: the last line
            if cut == 0:
                held = total
                continue
            chunk = _parse_chunk(buf[:cut], line_no, kind, clients, numbering)
            line_no += chunk.lines
            held = total - cut
            limit = _next_limit(len(buf), held, read, fraction())
            hashed()
            buf[:held] = buf[cut:total]
            yield chunk
            if got == 0:
                return


@numba.njit(cache=True)
def _after_last_newline(buf: np.ndarray, n: int) -> int:
    """1 + the position of the last newline in buf[:n], or 0."""
    i = n - 1
    while i >= 0 and buf[i] != 10:
        i -= 1
    return i + 1


def warm_up() -> None:
    """Compile the reader now (about 15 s once; numba caches the machine code next to this module), so
    that the first ingest is not the one paying for it. ``make install`` calls this."""
    line = b'1.2.3.4 - - [10/Oct/2024:13:55:36 +0000] "GET /a/1?b=2 HTTP/1.1" 200 5 "-" "c" rt=0.1 urt=- ucs=HIT\n'
    _parse_chunk(np.frombuffer(line * 2, dtype=np.uint8).copy(), 1, KIND_KV, Dictionary())
