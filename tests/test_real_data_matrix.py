"""`perfkit run` on warehouses built from the real samples in ``../shared/datasets``: each source alone and
a few mixes, through the real CLI in a subprocess (ingest, then the whole run).

Every source is read in place; a large log is cut to its first lines in a temporary file. Each case is
ingested and run once (``PipelineRuns`` keeps the outputs for the module); the tests then read them:

- the run exits 0 and writes the 7 reports and the 4 strategy documents; the JSON documents pass their
  schemas (and a broken copy does not);
- no ``nan``, ``NaN``, ``None`` or ``NaT`` appears as a word in the Markdown documents or in the text a
  reader sees in the reports (``<script>`` and ``<style>`` blocks, i.e. plotly's data, are left out), and no
  Python warning or traceback is shown there;
- nothing is claimed from data the warehouse does not have (latency without request times, SLOs and
  alerts without requests, caught incidents without incidents), and no gap sentence says that data is
  missing when the warehouse holds it.

An empty warehouse must make ``perfkit run`` stop before any notebook runs, saying what to ingest.
"""

from __future__ import annotations

import copy
import html
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import pytest

from kit.report.render import load_schema, validate_document
from kit.runner import NOTEBOOKS
from tests.test_ingest_access_log import NETDATA_FULL_FORMAT

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

INGEST_TIMEOUT_S = 300
RUN_TIMEOUT_S = 900  # as tests/test_pipeline.py: a hung kernel fails the case instead of hanging CI

MONITORING_MD = "Performance_Monitoring_Strategy.md"
METRICS_JSON = "Metrics_Framework_Specifications.json"
OPTIMIZATION_MD = "Performance_Optimization_Strategy.md"
CACHING_JSON = "Caching_Implementation_Plan.json"
MARKDOWN_DOCUMENTS = (MONITORING_MD, OPTIMIZATION_MD)
JSON_DOCUMENTS = {METRICS_JSON: "Metrics_Framework_Specifications", CACHING_JSON: "Caching_Implementation_Plan"}

MISSING_VALUE_WORD = re.compile(r"\b(nan|NaN|None|NaT)\b")
VISIBLE_PYTHON_NOISE = re.compile(r"\b\w*Warning: |Traceback \(most recent call last\)")


# ---------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Source:
    """One ``perfkit ingest KIND [options] FILE``: ``path`` is relative to the shared datasets; with
    ``first_lines`` only that many lines are ingested (written to a temporary file)."""

    kind: str
    path: str
    options: tuple[str, ...] = ()
    first_lines: int | None = None


APACHE = Source("access-log", "access_logs/elastic_apache/elastic_examples_apache_logs.log", ("--salt", "matrix"),
                first_lines=3000)
SQUID = Source("access-log", "access_logs/netdata_squid/access.log", ("--salt", "matrix"))
WEBLOG = Source("access-log", "access_logs/netdata_weblog/full.log",
                ("--salt", "matrix", "--log-format", f"log_format full '{NETDATA_FULL_FORMAT}';"))
IIS = Source("access-log", "access_logs/netdata_weblog/u_ex221107.log", ("--salt", "matrix"))
POSTGRES = Source("postgres-log", "db/pgbadger_logs/light.postgres.log.bz2")
MYSQL = Source("mysql-slow", "db/go_mysql_slowlogs/slow010.log")
NAB_CPU = Source("timeseries", "timeseries/nab/data/realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
                 ("--label", "instance=5f5533"))
TRACE = Source("trace", "cache_traces/libcachesim/cloudPhysicsIO.oracleGeneral.bin", ("--format", "oracleGeneral"))

CASES: dict[str, tuple[Source, ...]] = {
    "apache": (APACHE,),                    # combined log, no request time
    "squid": (SQUID,),                      # elapsed time and cache result codes
    "weblog": (WEBLOG,),                    # nginx log_format with $request_time and $upstream_response_time
    "iis": (IIS,),                          # W3C with time-taken
    "postgres": (POSTGRES,),
    "mysql": (MYSQL,),
    "nab_cpu": (NAB_CPU,),
    "trace": (TRACE,),
    "apache+mysql": (APACHE, MYSQL),
    "squid+nab_cpu+postgres": (SQUID, NAB_CPU, POSTGRES),
    "weblog+trace": (WEBLOG, TRACE),
}
BROKEN_COPY_CASE = "squid"  # the case whose JSON documents are broken on purpose, once


@dataclass(frozen=True)
class Holdings:
    """What the warehouse holds, counted with DuckDB before the run."""

    requests: int
    request_times: int  # requests with a latency_ms
    queries: int
    metrics: int
    cpu_utilization: int  # metric samples whose name says CPU utilization
    cache_requests: int
    incidents: int


@dataclass
class Run:
    case: str
    db: Path
    out: Path
    holdings: Holdings
    result: subprocess.CompletedProcess[str]
    seconds: float
    ingest_seconds: float
    _text: dict[str, str] = field(default_factory=dict)

    def check_succeeded(self) -> None:
        """Tests that read the outputs skip when the run failed (test_run_exits_zero says why)."""
        if self.result.returncode != 0:
            pytest.skip(f"perfkit run failed for {self.case}: {last_error_line(self.result)}")

    def text(self, name: str) -> str:
        if name not in self._text:
            self._text[name] = (self.out / "strategy" / name).read_text()
        return self._text[name]

    def document(self, name: str) -> Any:
        return json.loads(self.text(name), parse_constant=reject_constant)


def reject_constant(name: str) -> Any:
    raise ValueError(f"JSON document holds {name}, which is not JSON")


def perfkit(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kit.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def last_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """perfkit's own failure message (``perfkit: ...``), else the last line of output."""
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    own = [line for line in lines if line.startswith("perfkit:") and "left intact" not in line]
    return (own or lines or ["(no output)"])[0 if own else -1][:800]


def holdings(db: Path) -> Holdings:
    con = duckdb.connect(str(db), read_only=True)
    try:
        def count(sql: str) -> int:
            return int(con.execute(sql).fetchone()[0])  # type: ignore[index]

        return Holdings(
            requests=count("SELECT count(*) FROM requests"),
            request_times=count("SELECT count(latency_ms) FROM requests"),
            queries=count("SELECT count(*) FROM queries"),
            metrics=count("SELECT count(*) FROM metrics"),
            cpu_utilization=count("SELECT count(*) FROM metrics WHERE name ILIKE '%cpu%util%'"),
            cache_requests=count("SELECT count(*) FROM cache_requests"),
            incidents=count("SELECT count(*) FROM events WHERE kind = 'incident'"),
        )
    finally:
        con.close()


class PipelineRuns:
    """Builds each case's warehouse and runs the pipeline on it once. On first use, every case the session
    selected is started, two at a time (a run leaves a core idle while its first and last notebooks run
    alone); ``get`` waits for one."""

    def __init__(self, datasets: Path, factory: pytest.TempPathFactory, wanted: list[str]) -> None:
        self.datasets = datasets
        self.factory = factory
        self.wanted = wanted
        self.pool: ThreadPoolExecutor | None = None
        self.futures: dict[str, Future[Run]] = {}

    def source_path(self, source: Source, work: Path) -> Path:
        path = self.datasets / source.path
        assert path.is_file(), f"shared dataset missing: {path}"
        if source.first_lines is None:
            return path  # read in place
        sliced = work / f"first{source.first_lines}_{path.name}"
        with path.open("rb") as src, sliced.open("wb") as dst:
            for number, line in enumerate(src):
                if number == source.first_lines:
                    break
                dst.write(line)
        return sliced

    def build_and_run(self, case: str, work: Path) -> Run:
        db = work / "warehouse.duckdb"
        started = time.monotonic()
        for source in CASES[case]:
            result = perfkit("ingest", source.kind, "--db", str(db), *source.options,
                             str(self.source_path(source, work)), timeout=INGEST_TIMEOUT_S)
            assert result.returncode == 0, f"{case}: ingest {source.kind} {source.path} failed:\n{result.stderr}"
        ingest_seconds = time.monotonic() - started
        found = holdings(db)
        out = work / "out"
        started = time.monotonic()
        result = perfkit("run", "--db", str(db), "--out", str(out), "--workers", "2", "--quiet",
                         timeout=RUN_TIMEOUT_S)
        return Run(case, db, out, found, result, time.monotonic() - started, ingest_seconds)

    def start(self, case: str) -> None:
        if case not in self.futures:
            if self.pool is None:
                self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="perfkit-run")
            work = self.factory.mktemp(re.sub(r"\W", "_", case))
            self.futures[case] = self.pool.submit(self.build_and_run, case, work)

    def get(self, case: str) -> Run:
        for wanted in [case, *self.wanted]:
            self.start(wanted)
        return self.futures[case].result()

    def close(self) -> None:
        for future in self.futures.values():
            future.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def selected_cases(session: pytest.Session) -> list[str]:
    """The cases the session's selected tests use, in collection order."""
    cases: list[str] = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("run") if callspec is not None else None
        if item.name.startswith("test_schema_validation_rejects_a_broken_document"):
            case = BROKEN_COPY_CASE
        if case is not None and case not in cases:
            cases.append(case)
    return cases


@pytest.fixture(scope="module")
def pipeline_runs(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory,
                  request: pytest.FixtureRequest) -> Iterator[PipelineRuns]:
    runs = PipelineRuns(shared_datasets, tmp_path_factory, selected_cases(request.session))
    try:
        yield runs
    finally:
        runs.close()
        print("\nreal-data matrix (wall times; two cases run at once):")  # shown with -s
        for name, future in runs.futures.items():
            if future.done() and not future.cancelled() and future.exception() is None:
                done = future.result()
                print(f"  {name:<24} ingest {done.ingest_seconds:5.1f} s  run {done.seconds:6.1f} s  "
                      f"exit {done.result.returncode}")


@pytest.fixture(params=list(CASES))
def run(request: pytest.FixtureRequest, pipeline_runs: PipelineRuns) -> Run:
    return pipeline_runs.get(request.param)


# ------------------------------------------------------------------------------------------- helpers


def visible_text(report_html: str) -> str:
    """The text a reader sees in a report: no scripts (plotly's embedded data and code), no styles, no tags."""
    text = re.sub(r"<(script|style)\b.*?</\1\s*>", " ", report_html, flags=re.DOTALL | re.IGNORECASE)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.DOTALL)
    text = re.sub(r"<[^>]+>", " ", text)
    return html.unescape(text)


def word_hits(text: str, pattern: re.Pattern[str] = MISSING_VALUE_WORD, limit: int = 5) -> list[str]:
    """Up to ``limit`` matches with some context, on one line each."""
    hits = []
    for match in pattern.finditer(text):
        context = text[max(0, match.start() - 70):match.end() + 70]
        hits.append(" ".join(context.split()))
        if len(hits) == limit:
            break
    return hits


def gap_sentences(text: str) -> list[str]:
    """The kit's gap sentences: 'Not analysed: <what>, because <missing>. ...' (up to the end of the line)."""
    return re.findall(r"Not analysed: [^\n]*", text)


def table_rows(markdown: str, section: str) -> list[list[str]]:
    """Rows (cells, header included) of the Markdown tables in the section whose heading is ``section``."""
    match = re.search(rf"^#+ {re.escape(section)}\s*$(.*?)(?=^#+ |\Z)", markdown, flags=re.MULTILINE | re.DOTALL)
    if not match:
        return []
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in match.group(1).splitlines()
            if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line)]


def walk(value: Any, path: str = "$") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every mapping entry in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key, item
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")


# ---------------------------------------------------------------------------------- every case: runs


def test_run_exits_zero(run: Run) -> None:
    assert run.result.returncode == 0, (
        f"{run.case}: perfkit run exited {run.result.returncode}: {last_error_line(run.result)}\n"
        f"--- stderr (tail) ---\n{run.result.stderr[-3000:]}")


def test_every_report_and_document_is_written(run: Run) -> None:
    run.check_succeeded()
    reports = sorted(p.name for p in (run.out / "reports").glob("*.html") if p.name != "index.html")
    assert reports == sorted(f"{name}.html" for name in NOTEBOOKS)
    assert all(re.fullmatch(r"\d\d_\w+\.html", name) for name in reports)
    assert (run.out / "reports" / "index.html").stat().st_size > 0  # the entry page
    for name in reports:
        assert (run.out / "reports" / name).stat().st_size > 0, name
    for name in (*MARKDOWN_DOCUMENTS, *JSON_DOCUMENTS):
        assert (run.out / "strategy" / name).stat().st_size > 0, name
    for name in NOTEBOOKS:
        executed = json.loads((run.out / "notebooks" / f"{name}.ipynb").read_text())
        errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name}: {[(e['ename'], e['evalue']) for e in errors]}"


@pytest.mark.parametrize("document", list(JSON_DOCUMENTS))
def test_json_documents_validate_against_their_schemas(run: Run, document: str) -> None:
    run.check_succeeded()
    validate_document(run.document(document), JSON_DOCUMENTS[document])  # also: no NaN/Infinity in the JSON


def test_no_missing_value_words_in_the_markdown_documents(run: Run) -> None:
    run.check_succeeded()
    found = {name: word_hits(run.text(name)) for name in MARKDOWN_DOCUMENTS}
    assert not any(found.values()), {name: hits for name, hits in found.items() if hits}


def test_no_missing_value_words_in_the_reports(run: Run) -> None:
    run.check_succeeded()
    found = {}
    for report in sorted((run.out / "reports").glob("*.html")):
        hits = word_hits(visible_text(report.read_text()))
        if hits:
            found[report.name] = hits
    assert not found


def test_no_python_warning_or_traceback_in_the_reports(run: Run) -> None:
    run.check_succeeded()
    found = {}
    for report in sorted((run.out / "reports").glob("*.html")):
        hits = word_hits(visible_text(report.read_text()), VISIBLE_PYTHON_NOISE, limit=2)
        if hits:
            found[report.name] = hits
    assert not found


# ---------------------------------------------------------------------- every case: claims match data


def test_latency_claims_follow_request_times(run: Run) -> None:
    """Latency SLOs and KPIs exist exactly when the requests have request times."""
    run.check_succeeded()
    metrics = run.document(METRICS_JSON)
    latency_slos = [s["name"] for s in metrics["slos"]
                    if "latency" in s["name"].lower()
                    or (isinstance(s.get("sli"), dict) and s["sli"].get("kind") == "latency")]
    latency_kpis = [k["name"] for k in metrics["kpis"]
                    if re.match(r"latency_p\d+|apdex", k["name"])
                    and (k.get("baseline") is not None or k.get("target") is not None)]
    if run.holdings.request_times:
        assert latency_slos and latency_kpis, f"request times but no latency SLO ({latency_slos}) or KPI " \
                                              f"({latency_kpis})"
        return
    assert not latency_slos, f"latency SLOs without request times: {latency_slos}"
    assert not latency_kpis, f"latency KPIs with a value without request times: {latency_kpis}"
    monitoring = run.text(MONITORING_MD)
    rows = [row for row in table_rows(monitoring, "1. Key performance indicators")
            if re.match(r"latency\\?_p\d+|apdex", row[0]) and len(row) > 2 and row[2] not in ("n/a", "—", "")]
    assert not rows, f"{MONITORING_MD}: latency KPI rows without request times: {rows}"
    if run.holdings.requests:  # without requests at all, the requests gap covers latency
        assert any("latency" in s for s in gap_sentences(monitoring)), (
            f"{MONITORING_MD} has no 'Not analysed:' sentence about latency; its gap sentences: "
            f"{gap_sentences(monitoring)}")


def test_request_claims_follow_requests(run: Run) -> None:
    """SLOs, alerts and request KPIs exist exactly when the warehouse holds requests."""
    run.check_succeeded()
    metrics = run.document(METRICS_JSON)
    if run.holdings.requests:
        assert metrics["slos"] and metrics["alerts"] and metrics["kpis"], "requests but no SLO, alert or KPI"
        return
    assert metrics["slos"] == [], f"SLOs without requests: {[s['name'] for s in metrics['slos']]}"
    assert metrics["alerts"] == [], f"alerts without requests: {[a['name'] for a in metrics['alerts']]}"
    request_kpis = [k["name"] for k in metrics["kpis"] if re.search(r"\bFROM\s+requests\b", k["definition"]["sql"])]
    assert not request_kpis, f"KPIs over requests without requests: {request_kpis}"
    monitoring = run.text(MONITORING_MD)
    assert any("no requests" in s for s in gap_sentences(monitoring)), (
        f"{MONITORING_MD} has no 'Not analysed: ... no requests' sentence; its gap sentences: "
        f"{gap_sentences(monitoring)}")


def test_no_incident_claims_without_incidents(run: Run) -> None:
    run.check_succeeded()
    assert not run.holdings.incidents, "no case loads incident events: this check assumes none"
    claims = [f"{path}.{key} = {value!r}" for path, key, value in walk(run.document(METRICS_JSON))
              if (key in ("precision", "recall") and value is not None)
              or ("incident" in key.lower() and isinstance(value, int | float) and value)]
    assert not claims, f"{METRICS_JSON} scores alerts against incidents it does not have: {claims}"
    rows = table_rows(run.text(MONITORING_MD), "Alert backtest")
    if rows:
        header = [cell.lower() for cell in rows[0]]
        scored = [row for row in rows[1:] for column in ("precision", "recall")
                  if column in header and row[header.index(column)] != "n/a"]
        assert not scored, (f"{MONITORING_MD} 'Alert backtest' table gives precision/recall without incidents "
                            f"(columns {rows[0]}): {scored}")
    for name in MARKDOWN_DOCUMENTS:
        caught = re.findall(r"[^.\n]*\b[1-9][\d,]* (?:of [\d,]+ )?incidents?\b[^.\n]*", run.text(name))
        assert not caught, f"{name} counts incidents the warehouse does not have: {caught}"


def test_mean_request_rate_is_not_above_the_busiest_minute(run: Run) -> None:
    """A mean rate far above the busiest minute's rate comes from a window shorter than the data can
    support (e.g. every request in one second), not from the traffic; factor 2 allows for a window split
    across two clock minutes."""
    run.check_succeeded()
    baselines = {k["name"]: k.get("baseline") for k in run.document(METRICS_JSON)["kpis"]}
    mean, peak = baselines.get("request_rate_rps"), baselines.get("peak_rps_1m")
    assert (mean is not None and peak is not None) == bool(run.holdings.requests), (mean, peak)
    if mean is not None and peak is not None:
        assert mean <= 2 * peak, f"request_rate_rps baseline {mean} req/s, peak_rps_1m baseline {peak} req/s"


# what a gap sentence's 'because ...' says is missing -> the holding that contradicts it
FALSE_GAPS = {
    r"holds no requests": "requests",
    r"no request time|latency_ms. is empty": "request_times",
    r"holds no queries": "queries",
    r"holds no metrics": "metrics",
}


def test_no_gap_sentence_for_data_the_warehouse_holds(run: Run) -> None:
    run.check_succeeded()
    wrong = []
    for name in MARKDOWN_DOCUMENTS:
        for sentence in gap_sentences(run.text(name)):
            because = sentence.split(", because ", 1)[-1]
            for pattern, holding in FALSE_GAPS.items():
                if re.search(pattern, because) and getattr(run.holdings, holding):
                    wrong.append(f"{name}: {sentence[:200]} (warehouse: {holding}={getattr(run.holdings, holding)})")
    if run.holdings.cpu_utilization:
        gaps = run.document(METRICS_JSON).get("instrumentation_gaps", [])
        wrong += [f"{METRICS_JSON}: instrumentation gap {g['what']!r} (warehouse: cpu utilization samples="
                  f"{run.holdings.cpu_utilization})" for g in gaps if "no cpu utilization" in g["what"]]
    assert not wrong


# ------------------------------------------------------------------------------------------ once only


def test_schema_validation_rejects_a_broken_document(pipeline_runs: PipelineRuns) -> None:
    """The validation above can fail: a copy of a real document with a broken field is rejected."""
    run = pipeline_runs.get(BROKEN_COPY_CASE)
    run.check_succeeded()
    for name, schema in JSON_DOCUMENTS.items():
        document = run.document(name)
        validate_document(document, schema)
        broken = copy.deepcopy(document)
        required = load_schema(schema)["required"][-1]  # "dashboards" / "layers"
        del broken[required]
        with pytest.raises(jsonschema.ValidationError, match=required):
            validate_document(broken, schema)
    broken = run.document(METRICS_JSON)
    broken["schema_version"] = 1.0  # a number, not the string "1.0"
    with pytest.raises(jsonschema.ValidationError):
        validate_document(broken, "Metrics_Framework_Specifications")


def test_empty_warehouse_fails_before_any_notebook_runs(shared_datasets: Path, tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    ingest = perfkit("ingest", "mysql-slow", "--db", str(db), str(shared_datasets / "db/go_mysql_slowlogs/empty.log"),
                     timeout=INGEST_TIMEOUT_S)  # a real, empty slow log: a warehouse with no data
    assert ingest.returncode == 0, ingest.stderr
    out = tmp_path / "out"
    started = time.monotonic()
    result = perfkit("run", "--db", str(db), "--out", str(out), "--workers", "2", "--quiet", timeout=RUN_TIMEOUT_S)
    seconds = time.monotonic() - started
    message = result.stderr + result.stdout
    assert result.returncode != 0, message
    assert "ingest" in message, message
    assert "failed in cell" not in message and "00_data_overview" not in message, message  # none was started
    assert not out.exists() or not any(out.rglob("*.ipynb")), sorted(str(p) for p in out.rglob("*"))
    assert seconds < 30, f"took {seconds:.1f} s: notebooks seem to have been started"
