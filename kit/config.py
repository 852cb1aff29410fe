"""Run parameters: one frozen RunConfig, loaded from a YAML parameters file and validated before
any notebook runs. ``perfkit params`` prints the documented defaults."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from kit.errors import InputNotFoundError, ParameterError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
DEFAULT_DB = "data/demo.duckdb"
DEFAULT_OUT = "outputs"
ENGINES = ("duckdb", "spark")  # where the heavy aggregations run (kit.engine)


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class RunConfig:
    """Every parameter of a run; notebooks receive the ones their ``parameters`` cell declares."""

    db: str = field(default=DEFAULT_DB, metadata=_doc("DuckDB warehouse to analyse"))
    title: str = field(default="", metadata=_doc(
        "name of the system, used in report titles; empty = 'Demo web shop' for the demo warehouse, else the "
        "warehouse's file name"))
    start: str | None = field(default=None, metadata=_doc(
        "first instant analysed, ISO 8601 UTC (inclusive); null = first request in the warehouse"))
    end: str | None = field(default=None, metadata=_doc(
        "end of the analysed window, ISO 8601 UTC (exclusive); null = just after the last request"))
    services: list[str] = field(default_factory=list, metadata=_doc("services to analyse; empty = all"))
    bucket: str = field(default="5m", metadata=_doc("time bucket for series: 1m, 5m, 15m, 1h, 1d"))
    apdex_t_ms: float = field(default=300.0, metadata=_doc(
        "Apdex threshold T in ms: satisfied <= T, tolerating <= 4T"))
    availability_target: float | None = field(default=None, metadata=_doc(
        "availability SLO objective, e.g. 0.999; null = proposed from the history"))
    latency_threshold_ms: float = field(default=500.0, metadata=_doc(
        "latency SLI threshold in ms: a request is good when faster"))
    latency_target: float | None = field(default=None, metadata=_doc(
        "share of requests faster than latency_threshold_ms, e.g. 0.99; null = proposed from the history"))
    slo_window_days: int = field(default=30, metadata=_doc("SLO compliance window in days"))
    slo_specs: list[str] = field(default_factory=list, metadata=_doc(
        "Sloth (prometheus/v1) or OpenSLO spec files; empty = SLOs from the parameters above"))
    cache_key: str = field(default="path", metadata=_doc("cache object key: path, path_query or route"))
    cache_policies: list[str] = field(default_factory=lambda: [
        "lru", "fifo", "clock", "arc", "lfu", "twoq", "s3fifo", "sieve", "tinylfu", "gdsf", "belady",
    ], metadata=_doc("eviction policies compared by simulation"))
    cache_size_points: int = field(default=24, metadata=_doc("number of cache sizes in simulation grids"))
    cache_target_hit_ratio: float = field(default=0.9, metadata=_doc(
        "object hit ratio the sizing aims for"))
    memory_cost_per_gb_month: float = field(default=4.0, metadata=_doc(
        "cost of one GB of cache memory per month (currency units)"))
    egress_cost_per_gb: float = field(default=0.05, metadata=_doc(
        "cost of one GB served from the origin (currency units)"))
    top_n: int = field(default=10, metadata=_doc("rows in top-N tables"))
    route_rules: list[str] = field(default_factory=list, metadata=_doc(
        "access-log route rules 'REGEX => TEMPLATE', tried before the built-in {id}/{uuid}/{hash} templating"))
    database_dsn: str | None = field(default=None, metadata=_doc(
        "PostgreSQL DSN for live index advice (EXPLAIN with hypothetical indexes, hypopg); null = no live "
        "database, the document lists which fingerprints to EXPLAIN. Keep the password out of it (~/.pgpass or "
        "PGPASSWORD): run parameters are saved with the results"))
    engine: str = field(default="duckdb", metadata=_doc(
        "where the heavy aggregations run (KPIs, SLO event counts, time share, the findings' series): duckdb "
        "(embedded) or spark (Apache Spark over a Parquet warehouse: db is its directory; needs the "
        "'spark' extra and Java 17)"))
    spark: dict[str, Any] = field(default_factory=lambda: {"master": "local[2]", "options": {}}, metadata=_doc(
        "Spark session when engine is spark: master (local[N], spark://host:7077, yarn ...) and options "
        "(Spark conf, e.g. spark.executor.memory: 4g)"))
    as_of: str | None = field(default=None, metadata=_doc(
        "date stamped on documents, ISO 8601; null = end of the analysed window (keeps runs reproducible)"))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        start, end = _parse_time("start", self.start), _parse_time("end", self.end)
        if start and end and end <= start:
            raise ParameterError(f"parameter 'end' ({self.end}) must be after 'start' ({self.start})")
        _parse_time("as_of", self.as_of)
        if self.apdex_t_ms <= 0:
            raise ParameterError("parameter 'apdex_t_ms' must be > 0")
        for name in ("availability_target", "latency_target", "cache_target_hit_ratio"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise ParameterError(f"parameter '{name}' must be between 0 and 1 (exclusive), got {value}")
        if self.cache_key not in ("path", "path_query", "route"):
            raise ParameterError(f"parameter 'cache_key' must be path, path_query or route, got {self.cache_key!r}")
        bucket_seconds(self.bucket)
        if self.engine not in ENGINES:
            raise ParameterError(f"parameter 'engine' must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        unknown = sorted(set(self.spark) - {"master", "options"})
        if unknown:
            raise ParameterError(f"parameter 'spark' knows master and options, not {', '.join(unknown)}")
        if not isinstance(self.spark.get("master", "local[2]"), str) or not isinstance(
                self.spark.get("options", {}) or {}, dict):
            raise ParameterError("parameter 'spark': master must be a string and options a mapping")
        if not self.title:  # a user's warehouse is not the demo shop: name the system after its file
            name = "Demo web shop" if Path(self.db).name == Path(DEFAULT_DB).name else Path(self.db).stem
            object.__setattr__(self, "title", name)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a mapping, refusing unknown names."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(f"unknown parameter(s): {', '.join(unknown)} (see `perfkit params`)")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> RunConfig:
        """Read a YAML parameters file (optional) and apply overrides that are not None."""
        values: dict[str, Any] = {}
        if path is not None:
            if not Path(path).is_file():
                raise InputNotFoundError(f"no such parameters file: {path}")
            try:
                loaded = yaml.safe_load(Path(path).read_text()) or {}
            except yaml.YAMLError as exc:
                raise ParameterError(f"{path}: not valid YAML: {exc}") from None
            if not isinstance(loaded, dict):
                raise ParameterError(f"{path}: a parameters file must be a mapping of name: value")
            values.update(loaded)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.from_mapping(values)
        except ParameterError as exc:
            raise ParameterError(f"{path}: {exc}" if path else str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(name: str, value: Any, annotation: Any) -> None:
    hint = typing.get_type_hints(RunConfig)[name] if isinstance(annotation, str) else annotation
    if not _matches(value, hint):
        raise ParameterError(
            f"parameter '{name}' must be {_type_name(hint)}, got {type(value).__name__} {value!r}")


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if origin is dict:
        return "a mapping"
    return "null" if hint is type(None) else hint.__name__


def _parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(f"parameter '{name}' is not an ISO 8601 date or time: {value!r}") from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def bucket_seconds(bucket: str) -> int:
    """Seconds in a bucket spec such as ``30s``, ``5m``, ``1h`` or ``1d``."""
    number, unit = bucket[:-1], bucket[-1:]
    if unit not in _UNITS or not number.isdigit() or int(number) <= 0:
        raise ParameterError(f"parameter 'bucket' must look like 30s, 5m, 1h or 1d, got {bucket!r}")
    return int(number) * _UNITS[unit]


def defaults_yaml() -> str:
    """The default parameters file, every parameter with its meaning as a comment."""
    lines = ["# perfkit run parameters (perfkit run --params FILE). Every key is optional.", ""]
    defaults = RunConfig()
    for f in dataclasses.fields(RunConfig):
        lines.append(f"# {f.metadata.get('doc', '')}")
        value = "" if f.name == "title" else getattr(defaults, f.name)  # the title is derived from db
        dumped = yaml.safe_dump({f.name: value}, default_flow_style=True, width=200)
        lines.append(dumped.strip().removeprefix("{").removesuffix("}"))
    return "\n".join(lines) + "\n"
