"""The main job end to end: `perfkit run` on a small demo writes every output, and they hold up.

Runs the real CLI in a subprocess (papermill, kernels, nbconvert, kaleido) and opens an HTML report in
headless Chromium to check that a chart is really drawn."""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
import yaml

from kit.report.export import DOCUMENTS
from kit.report.render import validate_document
from kit.runner import NOTEBOOKS

pytestmark = [pytest.mark.notebook, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"


def perfkit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kit.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=900)


# small_demo and finished_run (one `perfkit run` on a small demo) are fixtures of tests/conftest.py, shared
# with tests/test_entry_page.py.


def test_every_output_exists_and_parses(finished_run: Path) -> None:
    latest = finished_run / "latest"
    assert latest.is_symlink() and (finished_run / "strategy").resolve() == (latest / "strategy").resolve()
    for name in NOTEBOOKS:
        executed = json.loads((latest / "notebooks" / f"{name}.ipynb").read_text())
        errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, name
        assert (latest / "reports" / f"{name}.html").stat().st_size > 10_000, name
    for name in DOCUMENTS:
        assert (latest / "strategy" / name).stat().st_size > 500, name
    manifest = json.loads((latest / "manifest.json").read_text())
    assert [t["name"] for t in manifest["timings"]] == list(NOTEBOOKS)
    assert manifest["warehouse"]["row_counts"]["requests"] > 0 and len(manifest["warehouse"]["sha256"]) == 64
    assert manifest["packages"]["duckdb"] and manifest["parameters"]["apdex_t_ms"] == 300.0
    # stamped when the run started (the run id's instant), not when the manifest was written
    assert datetime.fromisoformat(manifest["started_at"]).strftime("%Y%m%dT%H%M%S%fZ") == manifest["run_id"]


@pytest.mark.parametrize(("document", "schema", "field", "wrong"), [
    ("Metrics_Framework_Specifications.json", "Metrics_Framework_Specifications", "kpis", {"name": "x"}),
    ("Caching_Implementation_Plan.json", "Caching_Implementation_Plan", "layers", "cdn"),
])
def test_the_writers_schema_check_rejects_a_broken_document(finished_run: Path, document: str, schema: str,
                                                           field: str, wrong: object) -> None:
    """The written documents passed ``validate_document`` on the way out; the same check must refuse them
    with a required field missing or of the wrong type (a schema that accepts anything would pass them)."""
    data = json.loads((finished_run / "strategy" / document).read_text())
    missing = {k: v for k, v in data.items() if k != field}
    with pytest.raises(jsonschema.ValidationError, match=field):
        validate_document(missing, schema)
    with pytest.raises(jsonschema.ValidationError):
        validate_document({**data, field: wrong}, schema)


def test_kpi_baselines_are_what_their_sql_gives_on_the_warehouse(finished_run: Path, small_demo: Path) -> None:
    """Each KPI of Metrics_Framework_Specifications.json states its SQL; run on the warehouse, it gives the
    baseline the document reports (definitions with a placeholder such as ``<every minute ...>`` are skipped)."""
    from kit.warehouse import connect

    doc = json.loads((finished_run / "strategy" / "Metrics_Framework_Specifications.json").read_text())
    runnable = {k["name"]: k for k in doc["kpis"] if k["definition"]["sql"] and k["baseline"] is not None
                and not re.search(r"<[a-z]", k["definition"]["sql"])}
    assert {"availability", "error_rate_5xx", "latency_p99_ms", "apdex"} <= set(runnable)
    with connect(small_demo, read_only=True) as con:
        for name, kpi in runnable.items():
            value = con.execute(kpi["definition"]["sql"]).fetchone()[0]
            assert value == pytest.approx(kpi["baseline"], rel=1e-6), name


def test_markdown_documents_hold_numbers_from_the_data(finished_run: Path, small_demo: Path) -> None:
    from kit.warehouse import connect

    with connect(small_demo, read_only=True) as con:
        top_route = con.execute(
            "SELECT route FROM requests GROUP BY route ORDER BY sum(latency_ms) DESC LIMIT 1").fetchone()[0]
        p99 = con.execute("SELECT quantile_cont(latency_ms, 0.99) FROM requests").fetchone()[0]
    optimization = (finished_run / "strategy" / "Performance_Optimization_Strategy.md").read_text()
    from kit.report.text import md_code

    assert f"| {md_code(top_route)} |" in optimization  # the route table's first row comes from the data
    monitoring = (finished_run / "strategy" / "Performance_Monitoring_Strategy.md").read_text()
    row = next(line for line in monitoring.splitlines() if line.startswith("| latency\\_p99\\_ms |"))
    assert f"| {p99:,.1f} ms |" in row  # the KPI table's p99, recomputed from every request of the demo


def test_html_report_draws_a_chart_offline(finished_run: Path) -> None:
    from playwright.sync_api import sync_playwright

    report = (finished_run / "reports" / "10_kpis.html").resolve()
    html = report.read_text()
    assert html.count("Plotly.newPlot") >= 1 and "cdn.plot.ly" not in html.split("Plotly.newPlot")[0][-5000:]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:")
                   else route.continue_())  # offline: any network fetch fails
        page.goto(report.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
        drawn = page.locator(".js-plotly-plot").count()
        traces = page.locator(".js-plotly-plot .trace").count()
        browser.close()
    assert drawn >= 1 and traces >= 1


def test_documents_are_byte_identical_when_re_exported(finished_run: Path, small_demo: Path) -> None:
    before = {n: (finished_run / "strategy" / n).read_bytes() for n in DOCUMENTS}
    result = perfkit("run", "--db", str(small_demo), "--out", str(finished_run), "--only", "90", "--quiet")
    assert result.returncode == 0, result.stderr
    after = {n: (finished_run / "strategy" / n).read_bytes() for n in DOCUMENTS}
    changed = {n: "".join(difflib.unified_diff(before[n].decode().splitlines(True), after[n].decode().splitlines(True),
                                               "first export", "re-export", n=1))[:3000]
               for n in DOCUMENTS if before[n] != after[n]}
    assert not changed, changed


def test_failing_notebook_stops_the_run_and_keeps_previous_outputs(finished_run: Path, small_demo: Path,
                                                                    tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"  # a service the warehouse does not have: 00_data_overview must fail
    params.write_text(yaml.safe_dump({"services": ["no-such-service"]}))
    latest_before = (finished_run / "latest").resolve()
    result = perfkit("run", "--db", str(small_demo), "--params", str(params), "--out", str(finished_run), "--quiet")
    assert result.returncode == 1
    assert "notebook 00_data_overview failed in cell" in result.stderr
    assert "no requests for services no-such-service" in result.stderr
    assert (finished_run / "latest").resolve() == latest_before
    assert not list(finished_run.glob(".staging-*"))


def test_empty_warehouse_fails_before_any_notebook_runs(tmp_path: Path) -> None:
    from kit.warehouse import connect

    empty = tmp_path / "empty.duckdb"
    connect(empty).close()  # the schema and nothing else
    result = perfkit("run", "--db", str(empty), "--out", str(tmp_path / "o"), "--quiet")
    assert result.returncode == 1
    assert "holds no data" in result.stderr and f"perfkit ingest access-log --db {empty}" in result.stderr
    assert not (tmp_path / "o").exists()  # no notebook ran, nothing was staged


def test_bad_parameters_fail_before_any_notebook_runs(small_demo: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"apdex_t_ms": "fast"}))
    result = perfkit("run", "--db", str(small_demo), "--params", str(params), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "'apdex_t_ms' must be float" in result.stderr
    assert not (tmp_path / "o").exists()
    result = perfkit("run", "--db", str(tmp_path / "missing.duckdb"), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "parameter 'db'" in result.stderr and "perfkit demo" in result.stderr
    result = perfkit("run", "--db", str(small_demo), "--only", "99_nothing", "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "unknown notebook" in result.stderr
    assert not (tmp_path / "o").exists()
