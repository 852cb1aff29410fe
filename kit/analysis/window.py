"""The analysed window: resolve ``start``/``end`` parameters against the warehouse's data.

``start`` is inclusive, ``end`` exclusive, both UTC. A missing ``start`` is the first request's time;
a missing ``end`` is just after the last request (last request + 1 ms). A warehouse without requests
takes the span of its other timestamped rows (metrics, queries, cache requests, profiles, events), and one
without any timestamp the span of its ingests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

from kit.errors import DataError, ParameterError


@dataclass(frozen=True)
class Window:
    """A half-open UTC interval [start, end)."""

    start: datetime
    end: datetime
    basis: str = "requests"  # what the open ends were taken from: requests, other tables, ingest times, parameters

    @property
    def seconds(self) -> float:
        """Length of the window in seconds."""
        return (self.end - self.start).total_seconds()

    def previous(self) -> Window:
        """The window of the same length that ends where this one starts."""
        return Window(self.start - (self.end - self.start), self.start, self.basis)

    def sql(self, column: str = "ts") -> str:
        """A WHERE fragment selecting this window (literal timestamps, so the SQL reads on its own)."""
        return f"{column} >= TIMESTAMPTZ '{_iso(self.start)}' AND {column} < TIMESTAMPTZ '{_iso(self.end)}'"

    def label(self) -> str:
        return f"{_iso(self.start)} – {_iso(self.end)}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def parse_instant(name: str, value: str | datetime | None) -> datetime | None:
    """An ISO 8601 string (naive = UTC) as an aware UTC datetime; ValueError names the parameter."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ParameterError(f"parameter '{name}' is not an ISO 8601 date or time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def services_sql(services: list[str] | tuple[str, ...] | None, column: str = "service") -> str:
    """A WHERE fragment for a service filter ('TRUE' when empty); values are quoted safely."""
    if not services:
        return "TRUE"
    quoted = ", ".join("'" + s.replace("'", "''") + "'" for s in services)
    return f"{column} IN ({quoted})"


def resolve_window(con: duckdb.DuckDBPyConnection, start: str | datetime | None = None,
                   end: str | datetime | None = None, services: list[str] | None = None) -> Window:
    """The analysed window from the parameters, filling the open ends from the requests table.

    Raises ValueError when the warehouse holds no requests for the services or the window is empty."""
    begin, finish = parse_instant("start", start), parse_instant("end", end)
    basis = "parameters"
    if begin is None or finish is None:
        first, last, basis = _data_span(con, services)
        begin = begin or first
        finish = finish or last + timedelta(milliseconds=1)
    if finish <= begin:
        raise ParameterError(f"parameter 'end' ({_iso(finish)}) must be after 'start' ({_iso(begin)})")
    return Window(begin, finish, basis)


_OTHER_SPANS = ("SELECT ts FROM metrics UNION ALL SELECT ts FROM queries UNION ALL "
                "SELECT ts FROM cache_requests UNION ALL SELECT ts FROM profiles UNION ALL "
                "SELECT ts_start FROM events UNION ALL SELECT ts_end FROM events")


def _data_span(con: duckdb.DuckDBPyConnection, services: list[str] | None) -> tuple[datetime, datetime, str]:
    """First and last instant of the data the window defaults to, and what they were taken from."""
    row = con.execute(f"SELECT min(ts), max(ts), count(*) FROM requests WHERE {services_sql(services)}").fetchone()
    if row and row[2]:
        return _aware(row[0]), _aware(row[1]), "requests"
    if services:
        raise DataError(f"the warehouse has no requests for services {', '.join(services)} "
                        "(parameter 'services')")
    candidates = [
        (f"SELECT min(ts), max(ts) FROM ({_OTHER_SPANS}) t(ts)", "the timestamps of metrics, queries, "
         "cache requests, profiles and events (the warehouse holds no requests)"),
        ("SELECT min(started_at), max(coalesce(finished_at, started_at)) FROM ingest_log",
         "the ingest times (the warehouse holds no timestamped rows)"),
    ]
    for sql, basis in candidates:
        first, last = con.execute(sql).fetchone() or (None, None)
        if first is not None:
            return _aware(first), _aware(last), basis
    raise DataError("the warehouse holds no data: ingest a source first (`perfkit ingest --help`)")


def _aware(value: object) -> datetime:
    moment = parse_instant("ts", value)  # type: ignore[arg-type]
    assert moment is not None
    return moment
