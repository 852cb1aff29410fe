"""Text from logs reaches the Markdown documents only through the one renderer, which escapes it: a
hostile route, service, content type and user agent, run through the real analyses and the writer, leave
no markup in either document; and the writer rejects a broken document instead of writing it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import mistune
import numpy as np
import pandas as pd
import pytest

from kit.analysis.bottlenecks import bottlenecks_document, time_consumers
from kit.analysis.findings import Cause, Finding, Findings
from kit.analysis.kpis import kpi_report
from kit.analysis.optimizations import optimization_opportunities
from kit.analysis.overview import warehouse_overview
from kit.analysis.window import resolve_window
from kit.config import RunConfig
from kit.report import caching_plan, render
from kit.report.export import MONITORING_MD, OPTIMIZATION_MD, write_documents
from kit.results import dumps, to_jsonable
from kit.warehouse import connect

T0 = datetime(2024, 5, 1, tzinfo=UTC)
ROUTE = "/p/<script>alert(1)</script>|*x*|[a](javascript:alert(1))"
SERVICE = "web<img src=x onerror=alert(1)>"
CONTENT_TYPE = "text/css<script>|x"
USER_AGENT = "Mozilla/5.0 <script>alert('ua')</script> | `x`"
CONFIG = RunConfig(db=":memory:", title="Shop <b>|x|</b>", as_of="2024-05-02")


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The results the notebooks would save for a day of requests on hostile routes and services, with a
    compressible stylesheet of a hostile content type."""
    rng = np.random.default_rng(11)
    n = 6000
    frame = pd.DataFrame({  # noqa: F841 - read by DuckDB below
        "ts": pd.to_datetime(T0) + pd.to_timedelta(np.sort(rng.uniform(0, 86400, n)), unit="s"),
        "service": rng.choice([SERVICE, "api"], n), "route": rng.choice([ROUTE, "/home"], n, p=[0.7, 0.3]),
        "status": rng.choice([200, 500], n, p=[0.97, 0.03]), "latency_ms": rng.lognormal(4, 0.8, n),
    })
    con = connect(":memory:")
    css = b"body { color: red; margin: 0 }\n" * 200  # served uncompressed: bytes_sent is its raw size
    con.execute("INSERT INTO requests (ts, service, route, path, status, latency_ms, bytes_sent, content_type, "
                "user_agent, source_id) SELECT ts, service, route, CASE WHEN route = '/home' THEN '/home' "
                "ELSE '/static/site.css' END, status, latency_ms, CASE WHEN route = '/home' THEN 2048 ELSE ? END, "
                "?, ?, 1 FROM frame", [len(css), CONTENT_TYPE, USER_AGENT])
    con.execute("INSERT INTO asset_content VALUES ('h', ?)", [css])
    con.execute("INSERT INTO assets VALUES ('/static/site.css', ?, ?, 'h', 1)", [CONTENT_TYPE, len(css)])
    window = resolve_window(con)
    step = Finding(  # a latency step on the hostile route after a deploy whose description is hostile too
        "latency_shift", {"service": SERVICE, "route": ROUTE}, datetime(2024, 5, 1, 10, tzinfo=UTC),
        datetime(2024, 5, 1, 12, tzinfo=UTC), 300, "latency_ms", 50.0, 150.0, 100.0, 90.0, 110.0, 1e-20, "high",
        0.05, (Cause("deploy", "deploy@x", f"deploy {SERVICE} 1.2 {USER_AGENT[:20]}", 0.9, 0.0),),
        {"before": "SELECT 1"}, effect_unit="ms", cost_basis="request_time")
    findings = Findings((step,), 300, "test", window.start, window.end)
    bottlenecks = to_jsonable(bottlenecks_document(time_consumers(con, window), findings))
    saved = {
        "overview": warehouse_overview(con, window), "kpis": kpi_report(con, bucket="15m"),
        "bottlenecks": bottlenecks, "optimizations": optimization_opportunities(con, window, bottlenecks),
        "parameters": CONFIG.to_dict(),
    }
    con.close()
    directory = tmp_path_factory.mktemp("hostile-results")
    for name, value in saved.items():
        (directory / f"{name}.json").write_text(dumps(value))
    return directory


@pytest.mark.parametrize("name", [MONITORING_MD, OPTIMIZATION_MD])
def test_hostile_text_from_the_data_is_inert_in_every_markdown_document(results_dir, tmp_path, name) -> None:
    written = write_documents(results_dir, tmp_path, CONFIG, images=False)
    text = written.documents[name].read_text()
    assert "&lt;script&gt;" in text and "&lt;img" in text  # the hostile texts were printed, escaped
    assert USER_AGENT not in text
    html = mistune.html(text)  # code spans may hold the route verbatim: they render as text
    for tag in ("<script", "<img", "<a ", "<b>", "<em>x</em>"):  # the template's own emphasis may stay
        assert tag not in html, tag
    render.check_markdown(text, name)  # every table row has its header's cells: no | from the data split one


def test_the_ranking_prints_the_hostile_route_inert(results_dir, tmp_path) -> None:
    text = write_documents(results_dir, tmp_path, CONFIG, images=False).documents[OPTIMIZATION_MD].read_text()
    ranked = json.loads((results_dir / "optimizations.json").read_text())["ranking"]
    assert {"release", "compression"} <= {o["area"] for o in ranked}
    assert f"route {ROUTE}" in next(o["evidence"] for o in ranked if o["area"] == "release")
    html = mistune.html(text)
    assert "route /p/&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert "<code>/p/&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the time table shows routes as code


def test_the_writer_rejects_a_document_whose_escaping_failed(results_dir, tmp_path, monkeypatch) -> None:
    """With escaping switched off, the hostile route's | adds table cells: the writer refuses to write."""
    monkeypatch.setattr(render, "md_escape", str)
    with pytest.raises(render.BrokenDocumentError, match="table row has"):
        write_documents(results_dir, tmp_path / "strategy", CONFIG, images=False)
    assert not (tmp_path / "strategy").exists() or not any((tmp_path / "strategy").iterdir())


def test_the_writer_rejects_a_plan_that_breaks_its_schema(results_dir, tmp_path, monkeypatch) -> None:
    build = caching_plan.build_caching_plan

    def without_layers(results, config):
        return {**build(results, config), "status": "complete", "layers": []}

    monkeypatch.setattr(caching_plan, "build_caching_plan", without_layers)
    with pytest.raises(jsonschema.ValidationError):
        write_documents(results_dir, tmp_path / "strategy", CONFIG, images=False)
    assert not (tmp_path / "strategy").exists() or not any((tmp_path / "strategy").iterdir())


def test_check_markdown_names_the_broken_line() -> None:
    good = "| a | b |\n|---|---|\n| 1 | x \\| y |\n"
    render.check_markdown(good)
    with pytest.raises(render.BrokenDocumentError, match="line 3"):
        render.check_markdown("| a | b |\n|---|---|\n| 1 | x | y |\n")
    with pytest.raises(render.BrokenDocumentError, match="never closed"):
        render.check_markdown("```sql\nSELECT 1\n")
