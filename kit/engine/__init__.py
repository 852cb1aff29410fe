"""Where the heavy aggregations run: DuckDB (embedded, the default) or Apache Spark, one SQL text for both.

The kit writes its heavy queries (KPIs per service/route/bucket, SLO event counts per minute, time share,
the findings' input series, the cache-trace extraction) once, in DuckDB SQL. An ``Engine`` answers "run
this query, give me a DataFrame" (``frame``) or its rows (``rows``): ``DuckDBEngine`` runs the text as it is on a DuckDB
connection; ``SparkEngine`` transpiles it with ``sqlglot`` (DuckDB dialect -> Spark dialect, plus the
rewrites of ``to_spark_sql``) and runs it through ``spark.sql`` over temporary views of the Parquet
warehouse's committed files, with ``spark.sql.session.timeZone=UTC``. Callers pass an engine where they
passed ``con`` (``as_engine`` accepts either). pyspark is imported only when a Spark engine is opened
(the optional extra ``spark``).

Where the dialects differ, the kit's SQL was rewritten into portable SQL when the result is the same
(the rows marked "portable"); the rest are rewritten by ``to_spark_sql``. Every function that differs:

=============================  ==================================  ==========================================
DuckDB (as the kit writes it)  Spark                               why / how
=============================  ==================================  ==========================================
``quantile_cont(x, q|[qs])``   ``percentile(x, q|array(qs))``      both: linear interpolation at rank
                                                                   h = q(n-1) between the same two order
                                                                   statistics with the same weight; sqlglot
                                                                   emits PERCENTILE_CONT(x, q), which Spark
                                                                   only has as WITHIN GROUP: rewritten.
                                                                   The last step lo(1-d) + hi d may differ
                                                                   by 1 ulp: DuckDB's build fuses it into
                                                                   one multiply-add (measured), Java does not
``quantile_disc(x, q)``        ``percentile_disc(q)`` ``WITHIN     both: the smallest value whose cumulative
                               GROUP (ORDER BY x)``                share is >= q (the SQL standard); rewritten
``approx_quantile(x, q)``      ``percentile_approx(x, q, A)``      different sketches: DuckDB a t-digest (no
                                                                   declared bound; ``RANK_ERROR['duckdb']``
                                                                   is what we test), Spark a Greenwald-Khanna
                                                                   summary with rank error <= 1/A (A =
                                                                   ``SPARK_ACCURACY``)
``median(x)``                  ``median(x)``                       same (exact, interpolated)
``epoch_us(ts)``               ``unix_micros(ts)``                 DuckDB-only name: rewritten
``epoch(ts)``                  ``unix_micros(ts) / 1e6``           sqlglot's UNIX_TIMESTAMP drops the
                                                                   fraction of a second: rewritten
``make_timestamptz(us)``       ``timestamp_micros(us)``            DuckDB-only name: rewritten
``a // b`` (integers)          ``a DIV b``                         sqlglot; the kit keeps both sides >= 0
                                                                   (floor and truncation agree)
``a % b`` (integers)           same                                the sign of a remainder follows ``a`` in
                                                                   both; the kit's (the cache trace's sample
                                                                   test on md5 ids) has a >= 0
``x::T``, ``TIMESTAMPTZ 's'``  ``CAST(x AS T)``                    sqlglot; Spark TIMESTAMP is UTC-instant
                                                                   (session time zone UTC)
``0.5`` (decimal literal)      ``CAST(0.5 AS DOUBLE)``             Spark keeps DECIMAL arithmetic (6 decimal
                                                                   places after a division); DuckDB turns
                                                                   decimal division into DOUBLE: rewritten
``q[1]`` (lists from 1)        ``q[0]``                            sqlglot
``count(*) FILTER (WHERE)``    same                                Spark >= 3.0
``any_value``, ``GROUP BY      same                                Spark >= 3.4
ALL``
``list(v ORDER BY i)``         (none kept order)                   portable: rows per quantile, assembled in
                                                                   Python (``histogram_quantiles``)
``time_bucket``,               (none)                              portable: integer bucket arithmetic on
``generate_series``/unnest                                         ``epoch_us`` and the minute grid filled in
                                                                   pandas (``throughput``)
``arg_max(v, k)``              ``max_by(v, k)``                    ties are arbitrary in both: portable, the
                                                                   busiest minute found in numpy (the first)
``ln``, ``log10``, ``pow``     same names                          glibc vs Java math may differ in the last
                                                                   bit: a value on a log-bin edge could change
                                                                   bin (none did in the tests)
``?`` parameters               (none)                              portable: literal timestamps (``Window.sql``)
``hash(x)``                    ``hash(x)`` (Murmur3, 32 bit)       different functions: ids from the first
                                                                   15 hex digits of ``md5`` instead
                                                                   (``kit.analysis.cache.id64_sql``), so the
                                                                   cache trace and its SHARDS sample match
``CAST('0x' || h AS BIGINT)``  ``CAST(conv(h, 16, 10) AS BIGINT)`` DuckDB reads hexadecimal strings with a
                                                                   0x prefix, Spark converts bases: rewritten
``ORDER BY`` with ties         any order of the tied rows          portable: every order the kit relies on
                                                                   is total (tie-breaking columns)
``x / 0``                      NULL                                DuckDB gives NULL; Spark 4 ANSI mode
                                                                   raises: the session sets
                                                                   ``spark.sql.ansi.enabled=false``
=============================  ==================================  ==========================================

Floating-point sums (``sum``/``avg`` of DOUBLE) depend on the order of the additions, which neither
engine fixes (both are parallel): they agree to about 1e-12 relative, not to the last bit. Counts and
integer sums are identical; exact percentiles pick the same order statistics and agree to 2 ulp (above);
so a number rounded for a document differs only when it falls on a rounding tie.

Heavy on Spark: ``kit.analysis.kpis`` (RED tables and series, throughput, histogram, heatmap, headline,
comparison; ``kpi_report(engine=...)``), ``kit.analysis.slo.sli.minute_series`` (``slo_report(engine=...)``),
``kit.analysis.bottlenecks.time_consumers``, the findings' series (``find_bottlenecks(engine=...)``) and
the cache trace (``analyze_cache(engine=...)``: its count, and above ``TRACE_MAX_REQUESTS`` requests its
spatial sample of paths). The light queries (window, metrics, events, database
statistics) stay on DuckDB, which reads the same Parquet warehouse.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import duckdb
import numpy as np
import pandas as pd

from kit.config import ENGINES
from kit.errors import EngineError, ParameterError
from kit.parquet_warehouse import MARKER, committed_files, is_parquet_warehouse

__all__ = ["ENGINES", "LARGE_TABLES", "RANK_ERROR", "SPARK_ACCURACY", "DuckDBEngine", "Engine",
           "EngineError", "Queryable", "SparkEngine", "as_engine", "open_engine", "spark_session",
           "to_spark_sql"]

LARGE_TABLES = ("requests", "metrics", "queries", "cache_requests")  # partitioned by day=YYYY-MM-DD
SPARK_ACCURACY = 10_000  # percentile_approx's accuracy A: rank error at most n / A
# The rank error (share of n) each engine's approx_quantile is held to: Spark's declared 1/A; DuckDB's
# t-digest declares none, 1 % is what its default compression keeps on latency-like data (tested).
RANK_ERROR = {"spark": 1 / SPARK_ACCURACY, "duckdb": 0.01}


@runtime_checkable
class Engine(Protocol):
    """Runs one DuckDB-dialect SELECT and returns its result."""

    name: str

    def frame(self, sql: str) -> pd.DataFrame:
        """The result as a DataFrame (timestamps as UTC-aware datetime64, lists as Python lists)."""
        ...

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The result as tuples of Python values (NULL as None, timestamps as aware UTC datetimes)."""
        ...


class DuckDBEngine:
    """The embedded engine: the query runs as written on ``con``."""

    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def frame(self, sql: str) -> pd.DataFrame:
        # execute, not con.sql: DuckDB 2 refuses con.sql while an earlier execute's result is unfinished
        # (as fast here: 3M rows in ~2 s either way, pandas 3)
        return self.con.execute(sql).df()

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()


def as_engine(con_or_engine: duckdb.DuckDBPyConnection | Engine) -> Engine:
    """``con_or_engine`` as an Engine: a DuckDB connection (or anything with its ``execute``) becomes a
    ``DuckDBEngine``."""
    if isinstance(con_or_engine, Engine):
        return con_or_engine
    return DuckDBEngine(con_or_engine)


# --- DuckDB SQL -> Spark SQL ----------------------------------------------------------------------------
# sqlglot is imported here only, when a query is transpiled: a DuckDB run never pays for it

def _fn(name: str, *args: Any) -> Any:
    from sqlglot import exp

    return exp.Anonymous(this=name, expressions=list(args))


def _rewrite(node: Any) -> Any:
    """``node`` as Spark needs it (itself when it needs nothing); its children are already rewritten."""
    from sqlglot import exp

    if isinstance(node, exp.PercentileCont) and not isinstance(node.parent, exp.WithinGroup):
        return _fn("percentile", node.this, node.expression)
    if isinstance(node, exp.PercentileDisc) and not isinstance(node.parent, exp.WithinGroup):
        return exp.WithinGroup(this=_fn("percentile_disc", node.expression),
                               expression=exp.Order(expressions=[exp.Ordered(this=node.this)]))
    if isinstance(node, exp.ApproxQuantile):
        return _fn("percentile_approx", node.this, node.args["quantile"],
                   exp.Literal.number(SPARK_ACCURACY))
    if isinstance(node, exp.TimeToUnix):
        return exp.Div(this=_fn("unix_micros", node.this),
                       expression=exp.Cast(this=exp.Literal.number("1e6"), to=exp.DataType.build("DOUBLE")))
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        if name == "epoch_us":
            return _fn("unix_micros", *node.expressions)
        if name == "make_timestamptz" and len(node.expressions) == 1:
            return _fn("timestamp_micros", *node.expressions)
    if (isinstance(node, exp.Cast) and node.to.is_type("bigint") and isinstance(node.this, exp.DPipe)
            and isinstance(node.this.this, exp.Literal) and node.this.this.this.lower() == "0x"):
        digits = node.this.expression  # a hexadecimal string: DuckDB casts '0x...' to a number, Spark conv()s it
        return exp.Cast(this=_fn("conv", digits, exp.Literal.number(16), exp.Literal.number(10)),
                        to=exp.DataType.build("BIGINT"))
    if (isinstance(node, exp.Literal) and not node.is_string and any(c in node.this for c in ".eE")
            and not isinstance(node.parent, exp.Cast | exp.DataType)):
        return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))
    return node


def to_spark_sql(sql: str) -> str:
    """``sql`` (DuckDB dialect) as Spark SQL: sqlglot's transpilation plus the rewrites listed in the
    module docstring."""
    import sqlglot

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise EngineError(f"cannot transpile to Spark SQL: {exc}") from None
    # one pass, children before their parents (reversed pre-order), so a rewritten node is built from
    # rewritten children and nothing needs a second pass (the root, a query, is never rewritten)
    for node in reversed(list(tree.dfs())):
        new = _rewrite(node)
        if new is not node:
            node.replace(new)
    return tree.sql(dialect="spark")


# --- Spark ------------------------------------------------------------------------------------------------

_SESSION: Any = None


def spark_session(master: str = "local[2]", options: Mapping[str, Any] | None = None) -> Any:
    """The process's SparkSession (created on first use; later calls return it unchanged): UTC session
    time zone, ANSI mode off (division by zero is NULL, as in DuckDB), Arrow transfers to pandas, and a
    4 GiB driver heap unless ``options`` set ``spark.driver.memory`` (Spark's 1 GiB default loses the
    cache trace's task results at 10M requests in ``local`` mode, where the driver is the executor)."""
    global _SESSION
    if _SESSION is not None:
        return _SESSION
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError("engine 'spark' needs pyspark: pip install 'perfkit[spark]' (and Java 17: "
                          "apt-get install default-jre-headless)") from None
    builder = SparkSession.builder.master(master).appName("perfkit")
    settings = {"spark.sql.session.timeZone": "UTC", "spark.sql.ansi.enabled": "false",
                "spark.sql.execution.arrow.pyspark.enabled": "true", "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
                "spark.sql.shuffle.partitions": "8", "spark.driver.memory": "4g",
                **{k: str(v) for k, v in (options or {}).items()}}
    for key, value in settings.items():
        builder = builder.config(key, value)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with warnings.catch_warnings():  # pyspark 4.x warns that it does not yet support pandas 3 (tested here)
        warnings.simplefilter("ignore", FutureWarning)
        _SESSION = builder.getOrCreate()
    _SESSION.sparkContext.setLogLevel("ERROR")
    jvm = _SESSION.sparkContext._jvm
    # Spark's own reading of the setting (a number without a unit is MiB)
    wanted = jvm.org.apache.spark.network.util.JavaUtils.byteStringAsMb(settings["spark.driver.memory"]) * 2**20
    heap = jvm.java.lang.Runtime.getRuntime().maxMemory()
    if heap < 0.8 * wanted:   # the JVM's heap is fixed when it starts: someone else started it first
        warnings.warn(f"Spark's driver JVM in this process was started before perfkit asked for it, with a "
                      f"{heap / 2**30:.1f} GiB heap instead of spark.driver.memory={settings['spark.driver.memory']}: "
                      "large cache traces may fail; restart the Python process (or notebook kernel) and let "
                      "perfkit start Spark, or start it with that setting", RuntimeWarning, stacklevel=2)
    return _SESSION


class SparkEngine:
    """Spark SQL over the Parquet warehouse's committed files (``files``: table -> Parquet files).

    The tables are temporary views of the process's one SparkSession: a second SparkEngine replaces
    the first one's views (one warehouse at a time per process)."""

    name = "spark"

    def __init__(self, files: Mapping[str, list[Path]], *, master: str = "local[2]",
                 options: Mapping[str, Any] | None = None, session: Any = None) -> None:
        self.spark = session if session is not None else spark_session(master, options)
        self.tables: dict[str, int] = {}  # table -> files read
        for table, paths in files.items():
            if paths:
                self.spark.read.parquet(*[str(p) for p in paths]).createOrReplaceTempView(table)
                self.tables[table] = len(paths)

    def frame(self, sql: str) -> pd.DataFrame:
        with warnings.catch_warnings():  # pyspark 4.x warns about pandas 3 on every transfer
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            frame = self._run(sql).toPandas()
        for column in frame.columns:
            series = frame[column]
            if pd.api.types.is_datetime64_any_dtype(series) and series.dt.tz is None:
                frame[column] = series.dt.tz_localize("UTC")  # session time zone UTC
            elif series.dtype == object and any(isinstance(v, np.ndarray) for v in series.head(1)):
                frame[column] = [v.tolist() if isinstance(v, np.ndarray) else v for v in series]
        return frame

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(_python(v) for v in row) for row in self._run(sql).collect()]

    def _run(self, sql: str) -> Any:
        try:
            return self.spark.sql(to_spark_sql(sql))
        except Exception as exc:  # pyspark's AnalysisException: a table without committed files has no view
            if "TABLE_OR_VIEW_NOT_FOUND" in str(exc):
                held = ", ".join(sorted(self.tables)) or "none"
                raise EngineError(f"Spark: a table the query reads has no Parquet files in the warehouse "
                                  f"(tables with files: {held}): {str(exc).splitlines()[0]}") from None
            raise


def _python(value: Any) -> Any:
    # pyspark returns TIMESTAMP values as naive datetimes in the driver's local time zone
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.astimezone(UTC)
    if isinstance(value, list):
        return [_python(v) for v in value]
    return value


def open_engine(con: duckdb.DuckDBPyConnection, engine: str = "duckdb", *, db: str | Path = "",
                spark: Mapping[str, Any] | None = None) -> Engine:
    """The engine the run parameters choose (``engine``, ``spark``: master and options): DuckDB on ``con``,
    or Spark over the Parquet warehouse ``db`` (a directory holding ``perfkit-warehouse.json``)."""
    if engine == "duckdb":
        return DuckDBEngine(con)
    if engine != "spark":
        raise ParameterError(f"parameter 'engine' must be one of {', '.join(ENGINES)}, got {engine!r}")
    root = Path(db)
    if not is_parquet_warehouse(root):
        raise ParameterError(f"parameter 'engine' is spark but db {str(db)!r} is not a Parquet warehouse "
                             f"(a directory with {MARKER}): Spark reads Parquet warehouses only")
    settings = dict(spark or {})
    return SparkEngine(committed_files(root), master=str(settings.get("master") or "local[2]"),
                       options=settings.get("options") or {})


Queryable = duckdb.DuckDBPyConnection | Engine  # what the heavy aggregations accept where they took ``con``
