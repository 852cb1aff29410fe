"""SQL building blocks the KPI modules share: the window and service filter, number literals, integer
time buckets, request counts and the seconds a rate divides by."""

from __future__ import annotations

import math

import duckdb

from kit.analysis.window import Window, services_sql
from kit.engine import Queryable, as_engine

__all__ = ["BUCKET_ORIGIN_US", "MIN_RATE_SECONDS", "bucket_sql", "duration_label", "float_or_none",
           "http_requests_label_keys", "rate_seconds", "request_count", "scope_sql", "sql_float"]

# time_bucket's default origin (Monday 2000-01-03 UTC), in microseconds since the Unix epoch.
BUCKET_ORIGIN_US = 946_857_600_000_000
MIN_RATE_SECONDS = 60.0  # rates are per second of at least one minute (the 1-minute rates' bucket)


def scope_sql(window: Window, services: tuple[str, ...] | list[str] | None) -> str:
    """The WHERE condition for ``requests`` in ``window`` of ``services`` (empty or None: all)."""
    return f"{window.sql()} AND {services_sql(list(services))}" if services else window.sql()


def sql_float(value: float) -> str:
    """``value`` as a SQL number literal that round-trips exactly."""
    return repr(float(value))


def float_or_none(value: object) -> float | None:
    """``value`` as a float, or None when it is NULL, NaN or infinite."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) or math.isinf(number) else number


def bucket_sql(seconds: int, column: str = "ts") -> tuple[str, str]:
    """(integer bucket index of ``column``, that bucket's start as TIMESTAMPTZ from ``b``) for buckets of
    ``seconds``: the same buckets as ``time_bucket(INTERVAL 'seconds seconds', ts)`` (origin 2000-01-03),
    but integer arithmetic on ``epoch_us`` instead of the time-zone-aware TIMESTAMPTZ function, which
    made grouping 1.5x slower at 50M rows. The origin is moved back a whole number of buckets to before
    1970 so the integer division never sees a negative value."""
    width = int(seconds) * 1_000_000
    origin = BUCKET_ORIGIN_US - (BUCKET_ORIGIN_US // width + 1) * width
    return f"((epoch_us({column}) - ({origin})) // {width})", f"make_timestamptz({origin} + b * {width})"


def request_count(con: Queryable, window: Window,
                  services: tuple[str, ...] | list[str] | None = None) -> int:
    """Requests in ``window`` of ``services``."""
    row = as_engine(con).rows(f"SELECT count(*) FROM requests WHERE {scope_sql(window, services)}")[0]
    return int(row[0]) if row else 0


def rate_seconds(window: Window) -> float:
    """The seconds a mean request rate divides by: the window, but at least one minute, so a log whose
    lines all share one timestamp (a burst, a test fixture) has no mean rate above its busiest minute."""
    return max(window.seconds, MIN_RATE_SECONDS)


def duration_label(seconds: float) -> str:
    """A length of time as whole days, hours or minutes (PromQL range style: ``7d``, ``6h``, ``5m``)."""
    if seconds >= 86400 and seconds % 86400 < 60:
        return f"{round(seconds / 86400)}d"
    if seconds >= 3600:
        return f"{round(seconds / 3600)}h"
    return f"{max(1, round(seconds / 60))}m"


def http_requests_label_keys(con: duckdb.DuckDBPyConnection) -> set[str] | None:
    """The label names on ``http_requests_total`` in ``metrics``, or None when the metric is absent."""
    row = con.execute("SELECT list_distinct(flatten(list(DISTINCT map_keys(labels)))) FROM metrics "
                      "WHERE name = 'http_requests_total'").fetchall()[0]
    return set(row[0]) if row and row[0] is not None else None
