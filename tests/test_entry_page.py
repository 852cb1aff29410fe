"""The run's entry page (reports/index.html) and the strategy documents as HTML pages, as a reader opens them.

Hand-made results carry hostile strings (a route that is a script, a title with an ``onerror`` image) and
the page, opened in headless Chromium with the network blocked, must show them as text and run nothing. A
real small run's entry page (the ``finished_run`` fixture, one ``perfkit run`` shared with
tests/test_pipeline.py) must link only to files that exist, show no ``nan``/``None``/``NaT``/``e+0`` or
Python reprs, and show the numbers of the results it was built from; a screenshot is kept next to it."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from kit.report.entry import write_entry_pages
from kit.runner import NOTEBOOKS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCRIPT_ROUTE = "/api/<script>window.__pwned = 1</script>"
IMG_TITLE = 'Cache <img src=x onerror="window.__pwned = 2"> on /a&b'
SLO_NAME = "<b onmouseover=alert(3)>latency</b>"
# What a reader must never see: missing values and Python's own spelling of things ("None" followed by a
# lower-case word is English: "Risk: None for versioned URLs").
BAD_TEXT = re.compile(r"\b(nan|NaN|NaT|inf)\b|\bNone\b(?! [a-z])|\de[+-]0\d|\{'|\['|<built-in|object at 0x|Timestamp\(|"
                      r"datetime\.|np\.float|\bTrue\b|\bFalse\b")


def _hostile_run(root: Path) -> Path:
    """A run folder with hand-made results, one report and two Markdown documents, hostile strings inside."""
    (root / "results").mkdir(parents=True)
    (root / "reports").mkdir()
    (root / "strategy").mkdir()
    results = {
        "parameters": {"title": IMG_TITLE, "services": ["api", SCRIPT_ROUTE], "apdex_t_ms": 300.0, "as_of": None,
                       "route_rules": [{"pattern": "^/u/[0-9]+$", "route": "/u/{id}"}]},
        "overview": {"window": {"start": "2026-11-16T00:00:00+00:00", "end": "2026-11-23T00:00:00+00:00"}},
        "kpis": {"kpis": [
            {"name": "availability", "value": 0.998961, "unit": "ratio", "description": "not 5xx"},
            {"name": "latency_p99_ms", "value": 827.94924, "unit": "ms", "description": "99th percentile"},
            {"name": "request_rate_rps", "value": 1.6534, "unit": "requests/s", "description": "mean rate"},
            {"name": "apdex", "value": 0.964776, "unit": "score 0-1", "description": "Apdex"}],
            "comparison": {"basis": "the last 1d with the 1d before it", "rows": [
                {"name": "availability", "change_pct": -0.46, "verdict": "worse"}]}},
        "slo": {"slos": [
            {"name": SLO_NAME, "service": "api", "objective": 0.995, "achieved": 0.99767, "remaining_ratio": 0.8913,
             "sli": {"description": "requests answered without a 5xx"}, "objective_source": "parameters"},
            {"name": "checkout-latency", "service": "checkout", "objective": 0.99, "achieved": 0.9801,
             "remaining_ratio": -0.99, "sli": {"description": "requests faster than 500 ms"}}]},
        "bottlenecks": {"findings": {"items": [
            {"title": f"latency shift on route={SCRIPT_ROUTE}", "kind": "latency_shift",
             "onset": "2026-11-17T10:00:00+00:00", "end": None, "effect": 110.4, "ci_low": 104.2, "ci_high": 116.9,
             "effect_unit": "ms", "cost_share": 0.0058, "cost_basis": "request_time", "confidence": "high",
             "causes": [{"kind": "deploy", "detail": f"deploy <i>2.14.0</i> of {SCRIPT_ROUTE}", "strength": 0.9}]}]}},
        "optimizations": {"ranking": [
            {"area": "caching", "title": IMG_TITLE, "effort": "low",
             "saving": {"value": 7_200_000.0, "unit": "ms", "basis": "all request time", "share": 0.0058,
                        "low": 6_840_000.0, "high": 7_560_000.0}},
            {"area": "compression", "title": "Serve text assets compressed", "effort": "medium",
             "saving": {"value": 3 * 1024 ** 3, "unit": "bytes", "basis": "all bytes served", "share": 0.2126,
                        "low": None, "high": None}}]},
    }
    for name, value in results.items():
        (root / "results" / f"{name}.json").write_text(json.dumps(value))
    (root / "manifest.json").write_text(json.dumps({"run_id": "20261203T000000000000Z", "notebooks": list(NOTEBOOKS),
                                                    "parameters": results["parameters"], "seconds": 12.5}))
    (root / "reports" / "10_kpis.html").write_text("<!DOCTYPE html><title>KPIs</title><p>KPIs</p>")
    # A document as the renderer writes one (data escaped by md_escape/md_code), plus raw HTML the renderer
    # would never write: both must stay text.
    (root / "strategy" / "Performance_Optimization_Strategy.md").write_text(
        "# Optimization &lt;script&gt;\n\n| # | route |\n|---|---|\n| 1 | `<script>window.__pwned = 3</script>` |\n"
        "| 2 | /a\\|b |\n\n<script>window.__pwned = 4</script>\n\n[click](javascript:window.__pwned=5)\n")
    for name in ("Performance_Monitoring_Strategy.md", "Metrics_Framework_Specifications.json",
                 "Caching_Implementation_Plan.json"):
        (root / "strategy" / name).write_text("# Monitoring\n" if name.endswith(".md") else "{}")
    return root


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.text.append(data)


def _parse(path: Path) -> _Tags:
    parser = _Tags()
    parser.feed(path.read_text())
    return parser


def _offline_page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:")
               else route.continue_())  # offline: any network fetch fails
    return page


def test_hostile_strings_are_shown_as_text_and_run_nothing(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    run = _hostile_run(tmp_path / "run")
    pages = write_entry_pages(run, list(NOTEBOOKS))
    index, document = pages.index, pages.documents["Performance_Optimization_Strategy.md"]
    for path in (index, document):
        tags = _parse(path).tags
        assert not [t for t, _ in tags if t in ("script", "iframe", "object", "embed", "b", "i")], path.name
        assert not [a for _, a in tags if any(k.startswith("on") for k in a)], path.name
        assert not [t for t, a in tags if t == "img"], path.name  # the data's <img> is text, not an image
        assert not [a for _, a in tags if "javascript:" in (a.get("href") or "").lower()], path.name
    assert len([t for t, _ in _parse(document).tags if t == "tr"]) == 3  # header + 2 rows: the table rendered

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = _offline_page(browser)
            page.goto(index.as_uri())
            text = page.inner_text("body")
            # no script ran, no handler fired, and the hostile strings read as they were written
            assert page.evaluate("window.__pwned") is None
            assert page.locator("script, img, b, i").count() == 0
            assert SCRIPT_ROUTE in text and IMG_TITLE in text and SLO_NAME in text
            assert page.title() == f"{IMG_TITLE}: performance report"
            page.get_by_text(SLO_NAME).hover()
            assert page.evaluate("window.__pwned") is None
            page.goto(document.as_uri())
            text = page.inner_text("body")
            assert page.evaluate("window.__pwned") is None and page.locator("script").count() == 0
            assert "<script>window.__pwned = 3</script>" in text and "<script>window.__pwned = 4</script>" in text
            assert "Optimization <script>" in page.inner_text("h1")  # an entity in the Markdown reads as "<"
            assert page.locator("td", has_text="/a|b").count() == 1  # an escaped pipe stays in its cell
            page.click("text=click")
            assert page.evaluate("window.__pwned") is None
        finally:
            browser.close()


def test_entry_page_shows_the_results_numbers(tmp_path: Path) -> None:
    """The numbers, worked out by hand from the hand-made results."""
    run = _hostile_run(tmp_path / "run")
    text = " ".join(" ".join(_parse(write_entry_pages(run, list(NOTEBOOKS)).index).text).split())
    assert "Analysed window: 2026-11-16 00:00:00 UTC to 2026-11-23 00:00:00 UTC (7.0 days)" in text
    assert "99.896%" in text and "827.9 ms" in text and "1.65 req/s" in text and "0.965" in text  # KPI cards
    assert "-0.5% vs the previous period (worse)" in text
    # SLO: 99.767% achieved >= 99.5% is met; 98.01% < 99% is missed, its budget (-99%) exhausted
    assert re.search(r"99\.5% 99\.767% 89\.1% met", text) and re.search(r"99% 98\.01% -99% missed budget exhausted",
                                                                        text)
    # 7,200,000 ms = 2.0 h; its interval 6,840 s = 114.0 min (fmt.duration: hours from 2 h) to 7,560 s = 2.1 h
    assert "2.0 h of all request time (0.58%; 95% interval 114.0 min to 2.1 h)" in text
    assert "3.0 GiB of all bytes served (21.26%)" in text
    assert "+110 ms (95% CI +104 to +117 ms)" in text and "0.58% of all request time in the window" in text
    assert "2026-11-17 10:00:00 UTC to the end of the window (still on)" in text
    assert "pattern: ^/u/[0-9]+$; route: /u/{id}" in text and "api, " + SCRIPT_ROUTE in text
    assert not BAD_TEXT.search(text), BAD_TEXT.search(text)


def test_a_partial_run_says_what_is_missing(tmp_path: Path) -> None:
    """``perfkit run --only 10``: its kpis, one report, no documents, and a bottlenecks result copied from an
    earlier run (the runner carries the latest run's results into a partial run)."""
    run = tmp_path / "run"
    (run / "results").mkdir(parents=True)
    (run / "reports").mkdir()
    (run / "strategy").mkdir()
    (run / "results" / "kpis.json").write_text(json.dumps({
        "window_start": "2026-11-21T00:00:00+00:00", "window_end": "2026-11-22T00:00:00+00:00",
        "kpis": [{"name": "apdex", "value": 0.5, "unit": "score 0-1", "description": "Apdex"}]}))
    (run / "results" / "bottlenecks.json").write_text(json.dumps({"findings": {"items": []}}))
    (run / "reports" / "10_kpis.html").write_text("<p>KPIs</p>")
    pages = write_entry_pages(run, ["10_kpis"])
    missing = " ".join(pages.missing)
    for what in ("the analysed window", "the SLO status", "the top opportunities"):
        assert what[:1].upper() + what[1:] + ": no result from notebook" in missing
    assert "findings" not in missing
    for name in NOTEBOOKS:
        assert (f"Report {name}" in missing) == (name != "10_kpis")
    for name in ("Performance_Monitoring_Strategy.md", "Performance_Optimization_Strategy.md",
                 "Metrics_Framework_Specifications.json", "Caching_Implementation_Plan.json"):
        assert f"Document {name}: not written (notebook 90_strategy_export did not run in this run)" in missing
    parsed = _parse(pages.index)
    text = " ".join(" ".join(parsed.text).split())
    assert "Missing from this run" in text and "2026-11-21 00:00:00 UTC to 2026-11-22 00:00:00 UTC" in text
    assert "earlier run, as this run did not execute their notebooks: the top findings (30_bottlenecks)." in text
    assert "No change was found in this window." in text
    hrefs = [a["href"] for t, a in parsed.tags if t == "a" and a.get("href") and not a["href"].startswith("#")]
    assert hrefs == ["10_kpis.html"]  # nothing that is not there is linked
    assert not BAD_TEXT.search(text), BAD_TEXT.search(text)


def _markdown_table_rows(markdown: str) -> int:
    """Table rows (header and body, not the ---- line) outside code fences, counted line by line."""
    rows, fence = 0, ""
    for line in markdown.splitlines():
        opening = re.match(r"^(`{3,})", line)
        if fence:
            fence = "" if line.strip() == fence else fence
        elif opening:
            fence = opening.group(1)
        elif line.startswith("|") and not re.match(r"^\|\s*:?-{3}", line):
            rows += 1
    return rows


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.integration
def test_entry_page_of_a_real_run_in_chromium(finished_run: Path) -> None:
    from playwright.sync_api import sync_playwright

    run = sorted((finished_run / "runs").iterdir())[0]  # the full run (later tests may add partial ones)
    index = run / "reports" / "index.html"
    assert (finished_run / "reports").resolve().parent.parent == run.parent  # published next to the reports
    results = {name: json.loads((run / "results" / f"{name}.json").read_text())
               for name in ("parameters", "bottlenecks", "optimizations")}
    html = index.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html  # nothing to fetch or run
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = _offline_page(browser)
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(index.as_uri())
            text = page.inner_text("body")
            page.screenshot(path=str(run / "reports" / "index.png"), full_page=True)
            links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            ids = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
            for name, source in (("monitoring", "Performance_Monitoring_Strategy"),
                                 ("optimization", "Performance_Optimization_Strategy")):
                page.goto((run / "strategy" / f"{source}.html").as_uri())
                doc_text = page.inner_text("body")
                assert not BAD_TEXT.search(doc_text), (name, BAD_TEXT.search(doc_text))
                rows = _markdown_table_rows((run / "strategy" / f"{source}.md").read_text())
                assert page.locator("tr").count() == rows > 0, name  # every Markdown table row is a table row
                drawn = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
                assert all(drawn), name  # the figures are inlined, so they draw offline
                if name == "optimization":
                    page.screenshot(path=str(run / "strategy" / f"{source}.png"))
        finally:
            browser.close()
    assert not failed, failed
    assert not BAD_TEXT.search(text), BAD_TEXT.search(text)
    assert "Missing from this run" not in text  # a full run lacks nothing
    assert f"{results['parameters']['title']}: performance report" in text
    assert results["optimizations"]["ranking"][0]["title"] in text  # from the results, as saved
    assert results["bottlenecks"]["findings"]["items"][0]["title"] in text
    targets = set()
    for link in links:
        url = urlparse(link)
        assert url.scheme == "file", link
        path = Path(unquote(url.path))
        assert path.is_file(), f"{link} does not resolve to a file"
        if path == index:
            assert url.fragment in ids, link
        targets.add(path.resolve())
    expected = {(run / "reports" / f"{n}.html").resolve() for n in NOTEBOOKS} | {
        (run / "strategy" / n).resolve() for n in ("Performance_Monitoring_Strategy.html",
                                                    "Performance_Optimization_Strategy.html",
                                                    "Metrics_Framework_Specifications.json",
                                                    "Caching_Implementation_Plan.json")} | {
        (run / "manifest.json").resolve(), (run / "results" / "parameters.json").resolve()}
    assert expected <= targets, expected - targets
