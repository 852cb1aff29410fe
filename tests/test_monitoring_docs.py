"""The monitoring documents built from a real KPI (and SLO) run on a small hand-built warehouse:
they parse, validate against the shipped schema, escape what came from logs, and are deterministic."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import jsonschema
import mistune
import numpy as np
import pandas as pd
import pytest
import yaml

from kit.analysis.kpis import kpi_report
from kit.config import RunConfig
from kit.report import grafana, monitoring
from kit.report.render import load_schema
from kit.results import dumps
from kit.warehouse import connect
from tests.conftest import outputs_under_hash_seeds

T0 = datetime(2024, 5, 1, tzinfo=UTC)
EVIL_ROUTE = "/x/<script>alert(1)</script>|*bold*|`tick`"


@pytest.fixture(scope="module")
def warehouse():
    """Two days, three services, one hostile route; CPU gauge and an error counter in metrics."""
    rng = np.random.default_rng(3)
    n = 20_000
    routes = ["/home", "/product/{id}", "/cart", EVIL_ROUTE]
    frame = pd.DataFrame({  # noqa: F841 - read by DuckDB below
        "ts": pd.to_datetime(T0) + pd.to_timedelta(np.sort(rng.uniform(0, 2 * 86400, n)), unit="s"),
        "service": rng.choice(["web", "api", "search"], n),
        "route": rng.choice(routes, n, p=[0.4, 0.3, 0.2, 0.1]),
        "status": rng.choice([200, 404, 500], n, p=[0.95, 0.03, 0.02]),
        "latency_ms": rng.lognormal(4, 0.8, n),
    })
    con = connect(":memory:")
    con.execute("INSERT INTO requests (ts, service, route, path, status, latency_ms, bytes_sent, source_id) "
                "SELECT ts, service, route, route, status, latency_ms, 512, 1 FROM frame")
    con.execute("""INSERT INTO metrics SELECT TIMESTAMPTZ '2024-05-01 00:00:00+00' + to_seconds(i * 60),
                   'node_cpu_utilization_ratio', MAP {'instance': 'a'}, 0.4 + 0.2 * sin(i / 100.0), 1
                   FROM range(2880) t(i)""")
    yield con
    con.close()


@pytest.fixture(scope="module")
def results(warehouse):
    return {"kpis": json.loads(dumps(kpi_report(warehouse, bucket="15m")))}


@pytest.fixture(scope="module")
def results_with_slo(warehouse, results):
    from kit.analysis.slo import slo_report

    report, _specs, _plan = slo_report(warehouse, slo_window_days=7)
    return {**results, "slo": json.loads(dumps(report))}


CONFIG = RunConfig(db=":memory:", title="Test <shop>")


def _validate(document):
    schema = load_schema("Metrics_Framework_Specifications")
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(document)


def _table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def _cells(row: str) -> int:
    """Table cells, not counting escaped pipes."""
    return len(re.split(r"(?<!\\)\|", row)) - 2


def test_strategy_markdown_escapes_log_text(results):
    text = monitoring.build_monitoring_strategy(results, CONFIG, {"overview": "figures/overview.png"})
    assert "<script>" not in text and "</script>" not in text
    assert "&lt;script&gt;" in text
    assert "\\*bold\\*" in text and "\\`tick\\`" in text
    assert "Test &lt;shop&gt;" in text.splitlines()[0]
    # every table row has as many cells as its header: the route's | did not open a new column
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            width = _cells(lines[i - 1])
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert _cells(lines[j]) == width, lines[j]
                j += 1
    assert "![Overview: rate, errors, latency](<figures/overview.png>)" in text


def test_strategy_markdown_carries_the_numbers_from_the_data(warehouse, results):
    text = monitoring.build_monitoring_strategy(results, CONFIG, {})
    # recomputed from the warehouse, not read back from the results the document was built from
    requests, p99 = warehouse.execute("SELECT count(*), quantile_cont(latency_ms, 0.99) FROM requests").fetchone()
    row = next(line for line in text.splitlines() if line.startswith("| latency\\_p99\\_ms |"))
    assert f"| {p99:,.1f} ms |" in row
    assert f"{requests:,} requests" in text
    assert "not computed in this run" in text  # no slo result
    assert "Date: 2024-05-02." in text  # the window end, not the clock
    assert "node\\_cpu\\_utilization\\_ratio" in text  # the USE signal found
    assert "pg\\_stat\\_activity\\_count" in text  # a gap's recommended metric


def test_documents_are_deterministic_and_use_as_of(results, tmp_path):
    """The same results give the same documents, also in processes with other string-hash seeds."""
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(results))
    code = ("import json, sys; from kit.report import monitoring; from kit.results import dumps; "
            "from tests.test_monitoring_docs import CONFIG; r = json.load(open(sys.argv[1])); "
            "print(monitoring.build_monitoring_strategy(r, CONFIG, {})); "
            "print(dumps(monitoring.build_metrics_framework(r, CONFIG)))")
    texts = outputs_under_hash_seeds(code, str(saved))
    assert texts[0] == texts[1] == texts[2]
    assert texts[0].startswith(monitoring.build_monitoring_strategy(results, CONFIG, {}))
    dated = RunConfig(db=":memory:", as_of="2025-01-31")
    assert "Date: 2025-01-31." in monitoring.build_monitoring_strategy(results, dated, {})
    assert monitoring.build_metrics_framework(results, dated)["as_of"] == "2025-01-31"


def test_metrics_framework_validates_without_slo(results):
    doc = monitoring.build_metrics_framework(results, CONFIG)
    _validate(doc)
    assert doc["slos"] == [] and doc["alerts"] == []
    assert any("not computed in this run" in note for note in doc["notes"])
    names = {k["name"]: k for k in doc["kpis"]}
    assert names["availability"]["baseline"] == pytest.approx(results["kpis"]["overall"]["availability"])
    # proposed availability target: highest standard objective the window meets (~98 % here -> 95 %)
    assert names["availability"]["target"] == 0.95
    assert names["error_rate_5xx"]["target"] == pytest.approx(0.05)
    metrics = {m["name"]: m for m in doc["metrics"]}
    assert metrics["http_request_duration_seconds"]["present_in_warehouse"] is False
    assert 0.3 in metrics["http_request_duration_seconds"]["buckets"]  # Apdex T
    assert 1.2 in metrics["http_request_duration_seconds"]["buckets"]  # 4T
    assert metrics["node_cpu_utilization_ratio"]["present_in_warehouse"] is True
    assert metrics["node_cpu_utilization_ratio"]["interval_s"] == pytest.approx(60.0)
    assert any(g["metric"] == "node_load1" for g in doc["instrumentation_gaps"])


def test_schema_rejects_a_broken_document(results):
    doc = monitoring.build_metrics_framework(results, CONFIG)
    broken = json.loads(json.dumps(doc))
    del broken["kpis"][0]["definition"]["sql"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken)
    broken = json.loads(json.dumps(doc))
    broken["alerts"] = [{"name": "x", "severity": "page"}]  # no expr
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken)


def test_documents_include_slo_sections_when_present(results_with_slo):
    doc = monitoring.build_metrics_framework(results_with_slo, CONFIG)
    _validate(doc)
    assert doc["slos"] and doc["alerts"]
    assert {"name", "objective", "window"} <= set(doc["slos"][0])
    text = monitoring.build_monitoring_strategy(results_with_slo, CONFIG, {})
    assert "SLOs, error budgets and alert rules were not computed" not in text
    assert "## Alert rules" in text
    figures = monitoring.monitoring_figures(results_with_slo)
    assert {"overview", "per_service", "per_route", "latency_heatmap", "saturation_latency",
            "slo_burndown", "burn_rate"} <= set(figures)
    assert all(len(fig.data) for name, fig in figures.items() if name != "burn_rate")


def test_documents_without_kpis_say_so():
    config = RunConfig(db=":memory:", as_of="2024-01-01")
    text = monitoring.build_monitoring_strategy({}, config, {})
    assert "KPIs were not computed in this run" in text
    doc = monitoring.build_metrics_framework({}, config)
    _validate(doc)
    assert doc["kpis"] == []
    with pytest.raises(ValueError, match="as_of"):
        monitoring.build_monitoring_strategy({}, RunConfig(db=":memory:"), {})


def _promql_exprs(results) -> list[str]:
    doc = monitoring.build_metrics_framework(results, CONFIG)
    exprs = [k["definition"]["promql"] for k in doc["kpis"] if k["definition"]["promql"]]
    exprs += [q for d in doc["dashboards"] for p in d["panels"] for q in p["promql"]]
    dash = grafana.grafana_dashboard(results, CONFIG)
    exprs += [t["expr"].replace("$service", ".*") for p in dash["panels"] for t in p["targets"]]
    return exprs


def test_every_promql_expression_parses_with_promtool(results, tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found (Debian package prometheus)"
    exprs = _promql_exprs(results)
    assert len(exprs) > 20
    rules = {"groups": [{"name": "perfkit_kpis", "rules": [
        {"record": f"perfkit:check_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = tmp_path / "bad.yml"  # the check itself can fail
    bad.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "r", "expr": "sum(rate(x[5m])"}]}]}))
    assert subprocess.run([promtool, "check", "rules", str(bad)], capture_output=True, timeout=60).returncode != 0


def test_grafana_dashboard_has_the_panels(results):
    dash = grafana.grafana_dashboard(results, CONFIG)
    json.dumps(dash, allow_nan=False)
    titles = [p["title"] for p in dash["panels"]]
    assert titles == [p[1] for p in monitoring.PANELS]
    assert {p["type"] for p in dash["panels"]} == {"timeseries", "heatmap", "table"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(set(ids)) == len(ids)
    assert all(t["expr"] and t["refId"] for p in dash["panels"] for t in p["targets"])
    assert dash["templating"]["list"][1]["name"] == "service"
    assert all('service=~"$service"' in t["expr"] for p in dash["panels"] for t in p["targets"]
               if "http_request" in t["expr"])


def test_code_block_cannot_be_closed_from_inside():
    block = monitoring.code_block("a ``` b ```` c", "sql")
    fence = block.splitlines()[0].removesuffix("sql")
    assert fence == "`" * 5 and block.endswith("\n" + fence)


def test_window_date_is_used_when_no_as_of(results):
    end = datetime.fromisoformat(results["kpis"]["window_end"])
    assert monitoring.build_metrics_framework(results, CONFIG)["as_of"] == end.date().isoformat()
    assert end - T0 < timedelta(days=2, minutes=1)


# ------------------------------------------------------------------------------- bottleneck findings

def _finding(route: str) -> dict:
    """One error burst as results/bottlenecks.json holds it (the fields the document reads)."""
    return {"kind": "error_burst", "scope": {"service": "web", "route": route, "status": "5xx"},
            "title": "error burst", "onset": "2024-05-01T10:00:00+00:00", "end": "2024-05-01T10:30:00+00:00",
            "bucket_s": 300, "metric": "5xx share of requests", "before": 0.01, "after": 0.21, "effect": 0.2,
            "ci_low": 0.15, "ci_high": 0.25, "p_value": 1e-30, "confidence": "high", "cost_share": 0.4,
            "causes": [{"kind": "config", "ref": "config@x", "detail": "proxy <b>timeout</b> 1 s", "strength": 0.9,
                        "lag_s": 0.0},
                       {"kind": "metric", "ref": "up", "detail": "weak", "strength": 0.1, "lag_s": 0.0}],
            "sql": {"before": "SELECT 1"}, "effect_unit": "share", "cost_basis": "errors_5xx"}


def _findings(*items: dict) -> dict:
    return {"bucket_s": 300, "method": "test", "window_start": "2024-05-01T00:00:00+00:00",
            "window_end": "2024-05-03T00:00:00+00:00", "series_sql": "", "notes": [], "items": list(items)}


def _findings_section(text: str) -> str:
    return text[text.index("### Findings of this window"):text.index("### Where request time goes now")]


def test_findings_are_listed_with_escaped_log_text(results):
    with_findings = {**results, "bottlenecks": {"top": [], "findings": _findings(_finding(EVIL_ROUTE))}}
    text = monitoring.build_monitoring_strategy(with_findings, CONFIG, {})
    section = _findings_section(text)
    row = next(line for line in section.splitlines() if line.startswith("| 1 |"))
    html = mistune.html(section)
    assert "<script>" not in html and "<b>" not in html
    assert "<code>/x/&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the route is a code span
    assert "config: proxy &lt;b&gt;timeout&lt;/b&gt; 1 s, strength 0.9" in row
    assert "weak" not in row  # a cause below the naming strength is left out
    assert "2024-05-01 10:00:00 UTC to 2024-05-01 10:30:00 UTC (30.0 min)" in row
    assert "1.0% → 21.0% | +20.0 points (95% CI +15.0 to +25.0), p < 1e-12 | high | 40.00% of all 5xx" in row
    header = next(line for line in section.splitlines() if line.startswith("| # |"))
    assert _cells(row) == _cells(header)  # the route's | and ` did not open a column or a span
    assert "`perfkit findings --db <warehouse> --start 2024-05-01T00:00:00+00:00 --end " in section


def test_no_findings_and_older_runs_are_stated(results):
    none_found = {**results, "bottlenecks": {"top": [], "findings": _findings()}}
    section = _findings_section(monitoring.build_monitoring_strategy(none_found, CONFIG, {}))
    assert "No change was found in this window (2024-05-01 00:00:00 UTC to 2024-05-03 00:00:00 UTC)" in section
    older = {**results, "bottlenecks": {"top": []}}  # a run from before the detector
    section = _findings_section(monitoring.build_monitoring_strategy(older, CONFIG, {}))
    assert "were not computed in this run (no `findings` in the `bottlenecks` result" in section
    assert "| # |" not in section


DEMO = {"requests": 150_000, "days": 7, "seed": 42}  # the size test_findings.py builds too


def test_demo_document_lists_the_four_planted_incidents_with_their_causes(demo_warehouse):
    from kit.analysis.bottlenecks import bottlenecks_document, time_consumers
    from kit.analysis.findings import find_bottlenecks
    from kit.analysis.window import resolve_window

    con = connect(demo_warehouse(**DEMO), read_only=True)
    try:
        window = resolve_window(con)
        bottlenecks = bottlenecks_document(time_consumers(con, window), find_bottlenecks(con, window))
    finally:
        con.close()
    config = RunConfig(db=":memory:", as_of="2026-11-23")
    text = monitoring.build_monitoring_strategy({"bottlenecks": bottlenecks}, config, {})
    rows = [line for line in _findings_section(text).splitlines() if line.startswith("| ") and line[2].isdigit()]
    planted = {  # kind, where, cause
        "deploy": ("latency shift", "route `/api/v1/products/{id}`", "deploy: deploy api 2.14.0"),
        "keepalive": ("error burst", "service `api`, status `5xx`", "config: load balancer config push: upstream"),
        "query": ("saturation", "route `/api/v1/users/{id}/orders`", "query: database time"),
        "vary": ("cache hit drop", "route `/static/*`", "config: CDN config push: Vary: Cookie"),
    }
    for name, parts in planted.items():
        match = [r for r in rows if all(p in r for p in parts) and "| high |" in r]
        assert len(match) == 1, (name, rows)
    assert "WHERE o.user_id = ?" in text
    assert "Notebook 30, top routes by total time:" in text


def test_document_leads_with_the_summary_and_keeps_the_queries_in_the_appendix(results_with_slo):
    """Issue 14: five summary bullets first; the KPI table, not SQL, is what a reader meets; every KPI's
    SQL and PromQL (as in the metrics JSON) and every panel's PromQL are in the appendices."""
    from tests.document_shape import check_shape

    text = monitoring.build_monitoring_strategy(results_with_slo, CONFIG, {})
    bullets = check_shape(text, numbers=False)  # no notebook 30 here: the finding bullet has no number
    assert [b.split(":**")[0] for b in bullets] == ["**Headline KPIs", "**Error budget", "**Top finding", "**Alerts",
                                                    "**Biggest instrumentation gap"]
    assert all(re.search(r"\d", b) for i, b in enumerate(bullets) if i != 2), bullets
    slos = results_with_slo["slo"]["slos"]
    assert f"{len(slos)} SLOs" in bullets[1]
    tightest = min(slos, key=lambda s: s["remaining_ratio"])
    assert f"({tightest['remaining_ratio'] * 100:.1f}% left)" in bullets[1]
    body, appendix = text.split("## Appendix A. How each KPI is computed", 1)
    assert "| KPI | meaning |" in body and "```" not in body
    framework = monitoring.build_metrics_framework(results_with_slo, CONFIG)
    for kpi in framework["kpis"]:
        assert kpi["definition"]["sql"].strip() in appendix
        if kpi["definition"]["promql"]:
            assert kpi["definition"]["promql"].strip() in appendix
    for panel in framework["dashboards"][0]["panels"]:
        assert all(q in appendix.split("## Appendix B. Dashboard queries", 1)[1] for q in panel["promql"])
