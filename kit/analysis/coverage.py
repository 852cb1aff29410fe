"""What the warehouse can support: which tables and request fields hold data, and, for every analysis
that cannot run, one sentence saying what is missing and which ``perfkit ingest`` command adds it.

Notebook cells declare what they need with a tag ``needs:<name>`` (names are the keys of ``NEEDS``);
``perfkit run`` replaces a cell whose need is not met by that sentence, and the analyses and documents
use the same ``Gap`` objects, so a reader sees one explanation everywhere."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb


@dataclass(frozen=True)
class Gap:
    """An analysis that the warehouse cannot support: ``what`` is not analysed because ``missing`` is
    absent; ``ingest`` is the command that would add it."""

    what: str
    missing: str
    ingest: str

    def sentence(self) -> str:
        """One plain sentence for notebooks and documents."""
        return f"Not analysed: {self.what}, because {self.missing}. To add it: `{self.ingest}`."


_LOG = "perfkit ingest access-log --db WAREHOUSE access.log"
_LOG_RT = ("perfkit ingest access-log --db WAREHOUSE --log-format '... $request_time' access.log "
           "(a log that records the request time, e.g. nginx $request_time)")

# need -> (what is not analysed, what is missing, the ingest command that adds it)
NEEDS: dict[str, Gap] = {
    "requests": Gap("request KPIs, SLOs, alerts and bottlenecks", "the warehouse holds no requests", _LOG),
    "latency": Gap("latency percentiles, Apdex and latency SLOs",
                   "the requests have no request time (`requests.latency_ms` is empty)", _LOG_RT),
    "upstream": Gap("upstream versus own time", "the requests have no upstream time (`requests.upstream_ms`)",
                    "perfkit ingest access-log --db WAREHOUSE access.log (with nginx $upstream_response_time)"),
    "cache_status": Gap("measured CDN/proxy hit ratios", "the requests have no cache status "
                        "(`requests.cache_status`)",
                        "perfkit ingest access-log --db WAREHOUSE access.log (with $upstream_cache_status)"),
    "bytes": Gap("bytes served and byte hit ratios", "the requests have no response sizes "
                 "(`requests.bytes_sent`)", _LOG),
    "metrics": Gap("resource utilization and saturation (USE)", "the warehouse holds no metrics",
                   "perfkit ingest prometheus --db WAREHOUSE --url http://PROMETHEUS:9090 --query ... "
                   "(or --file metrics.prom)"),
    "queries": Gap("database query statistics", "the warehouse holds no queries",
                   "perfkit ingest postgres-log --db WAREHOUSE postgresql.log (or mysql-slow, pg-stat-statements)"),
    "cacheable": Gap("cache simulation of the served requests", "the warehouse holds no cacheable requests "
                     "(GET/HEAD with status 200-399; a loaded cache trace is studied with "
                     "`perfkit cache mrc --db WAREHOUSE`)",
                     _LOG),
    "cache_trace": Gap("simulation of a cache's own request trace", "the warehouse holds no cache trace",
                       "perfkit ingest trace --db WAREHOUSE --format oracleGeneral trace.bin"),
    "assets": Gap("resource compression", "the warehouse holds no static assets",
                  "perfkit ingest assets --db WAREHOUSE ./public"),
    "events": Gap("incident scoring in the alert backtest", "the warehouse holds no incidents in `events`",
                  "perfkit ingest events --db WAREHOUSE incidents.csv"),
    "profiles": Gap("code profiles", "the warehouse holds no profiles",
                    "perfkit ingest profile --db WAREHOUSE profile.folded"),
}


# needs met by a count of ``requests`` rows (the column, or the cacheable-request rule) > 0
REQUEST_FIELDS = {"latency": "latency_ms", "upstream": "upstream_ms", "cache_status": "cache_status",
                  "bytes": "bytes_sent", "cacheable": "cacheable"}
NEED_TABLES = {"cache_trace": "cache_requests"}  # needs met by rows of a table named otherwise


@dataclass(frozen=True)
class Coverage:
    """Row counts per data table and non-null counts of the request fields analyses depend on."""

    rows: dict[str, int]
    request_fields: dict[str, int] = field(default_factory=dict)
    incidents: int = 0

    def has(self, need: str) -> bool:
        """Whether the warehouse supports the analyses behind ``need`` (a key of ``NEEDS``)."""
        if need not in NEEDS:
            raise KeyError(f"unknown need {need!r}; choose from {', '.join(NEEDS)}")
        if need in REQUEST_FIELDS:
            return self.request_fields.get(REQUEST_FIELDS[need], 0) > 0
        if need == "events":
            return self.incidents > 0
        return self.rows.get(NEED_TABLES.get(need, need), 0) > 0

    def gap(self, need: str) -> Gap | None:
        """The gap for ``need``, or None when it is met. A missing table hides its columns' gaps."""
        if self.has(need):
            return None
        if need in REQUEST_FIELDS and not self.has("requests"):
            return Gap(NEEDS[need].what, NEEDS["requests"].missing, NEEDS["requests"].ingest)
        return NEEDS[need]

    def gaps(self, *needs: str) -> list[Gap]:
        """The gaps among ``needs``, in order, one per missing kind of data (the first need names it)."""
        found: list[Gap] = []
        for need in needs:
            gap = self.gap(need)
            if gap is not None and all(gap.missing != g.missing for g in found):
                found.append(gap)
        return found

    @property
    def empty(self) -> bool:
        return not any(self.rows.values())


def data_coverage(con: duckdb.DuckDBPyConnection) -> Coverage:
    """Count what the warehouse holds (whole warehouse, not a window: a need is about the data kind)."""
    from kit.warehouse import CACHEABLE_SQL, DATA_TABLES

    rows = {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
            for t in DATA_TABLES}
    fields: dict[str, int] = {}
    if rows["requests"]:
        counts = [f"count(*) FILTER (WHERE {CACHEABLE_SQL})" if c == "cacheable" else f"count({c})"
                  for c in REQUEST_FIELDS.values()]
        row = con.execute(f"SELECT {', '.join(counts)} FROM requests").fetchone()
        assert row is not None
        fields = dict(zip(REQUEST_FIELDS.values(), (int(v) for v in row), strict=True))
    incidents = int(con.execute("SELECT count(*) FROM events WHERE kind = 'incident'").fetchone()[0])  # type: ignore[index]
    return Coverage(rows, fields, incidents)


def empty_warehouse_message(path: str) -> str:
    """What to say when a warehouse holds no data at all."""
    return (f"warehouse {path} holds no data: ingest a source first, for example "
            f"`perfkit ingest access-log --db {path} access.log` (see `perfkit ingest --help` for every kind), "
            f"or build the demo with `perfkit demo --db {path}`")


def coverage_of(results: dict) -> Coverage:
    """The coverage a run's ``overview`` result recorded (notebook 00), for the documents; a run without
    it (an old results folder) is taken to have every kind of data, so nothing is claimed missing."""
    saved = (results.get("overview") or {}).get("coverage")
    if not saved:
        from kit.warehouse import DATA_TABLES

        return Coverage(dict.fromkeys(DATA_TABLES, 1), dict.fromkeys(REQUEST_FIELDS.values(), 1), 1)
    return Coverage(dict(saved["rows"]), dict(saved.get("request_fields") or {}), int(saved.get("incidents") or 0))


def gap_text(results: dict, *needs: str, fallback: str) -> str:
    """The gap sentences for ``needs`` in a run's results (trusted kit text, Markdown), or ``fallback``
    when the data is there but the result is missing for another reason (a notebook that did not run)."""
    gaps = coverage_of(results).gaps(*needs)
    return " ".join(g.sentence() for g in gaps) if gaps else fallback
