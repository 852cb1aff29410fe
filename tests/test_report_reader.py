"""What a reader of a run's HTML reports sees: every report of a real small run (the ``finished_run``
fixture, one ``perfkit run`` shared with tests/test_pipeline.py and tests/test_entry_page.py), opened in
headless Chromium with the network blocked, shows no missing-value spellings (``nan``, ``None``,
``NaT``), no scientific notation, no Python reprs or raw dicts in its visible text; every chart has a
title and labelled axes (read from the drawn plotly divs); and the run kept screenshots for people.

Also, without a browser: :func:`kit.viz.table` against values worked out by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import kit.viz
from kit.report.monitoring import monitoring_figures
from kit.results import load_results
from kit.runner import NOTEBOOKS
from kit.viz import TIME_AXIS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# What a reader must never see ("None" followed by a lower-case word is English: "None of the routes").
BAD_TEXT = re.compile(r"\b(nan|NaN|NaT)\b|<NA>|\bNone\b(?! [a-z])|\de[+-]0\d|\{'|<built-in|object at 0x|Timestamp\(|"
                      r"np\.(float|int)\d*\(|datetime\.datetime\(")
# Charts made of these traces have no x/y axes to label.
AXISLESS = {"icicle", "sunburst", "treemap", "pie", "sankey", "table", "indicator"}
CHARTS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => {
  const text = t => (t && (typeof t === 'string' ? t : t.text)) || '';
  const full = el._fullLayout || {};
  const axes = Object.keys(full).filter(k => /^[xy]axis\\d*$/.test(k))
    .map(k => ({axis: k[0], title: text(full[k].title).trim(), visible: full[k].visible !== false,
                type: full[k].type}));
  return {title: text(full.title).trim(), axes: axes,
          types: (el.data || []).map(d => d.type || 'scatter'),
          drawn: el.querySelectorAll('.main-svg').length > 0};
})"""


def _offline_page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:")
               else route.continue_())  # offline: any network fetch fails
    return page


def _context(text: str, match: re.Match[str]) -> str:
    return " ".join(text[max(0, match.start() - 60):match.end() + 60].split())


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.integration
def test_a_reader_sees_readable_reports_and_labelled_charts(finished_run: Path) -> None:
    from playwright.sync_api import sync_playwright

    run = sorted((finished_run / "runs").iterdir())[0]  # the full run (later tests may add partial ones)
    reports = sorted((run / "reports").glob("*.html"))
    assert {p.stem for p in reports} >= set(NOTEBOOKS)
    bad_text: list[str] = []
    bad_charts: list[str] = []
    charts_seen = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = _offline_page(browser)
            for report in reports:
                page.goto(report.as_uri(), wait_until="load")
                text = page.inner_text("body")
                bad_text += [f"{report.name}: …{_context(text, m)}…" for m in BAD_TEXT.finditer(text)]
                for i, chart in enumerate(page.evaluate(CHARTS_JS)):
                    charts_seen += 1
                    where = f"{report.name} chart {i + 1} ({chart['title'] or 'untitled'})"
                    if not chart["drawn"]:
                        bad_charts.append(f"{where}: not drawn")
                    if not chart["title"]:
                        bad_charts.append(f"{where}: no title")
                    if set(chart["types"]) <= AXISLESS and chart["types"]:
                        continue
                    undated = [a["title"] for a in chart["axes"] if a["title"] == TIME_AXIS and a["type"] != "date"]
                    if undated:
                        bad_charts.append(f"{where}: a time axis that is not drawn as dates")
                    for axis in "xy":
                        shown = [a for a in chart["axes"] if a["axis"] == axis and a["visible"]]
                        if shown and not any(a["title"] for a in shown):
                            bad_charts.append(f"{where}: {axis} axis without a title")
        finally:
            browser.close()
    assert not bad_text, "\n".join(bad_text[:40])
    assert not bad_charts, "\n".join(bad_charts)
    assert charts_seen >= 20  # every report but the export draws charts; a broken export would draw none
    # The documents' PNGs are drawn by the same figure functions, in the same theme, from the run's results.
    figures = monitoring_figures(load_results(run / "results"))
    assert figures and all(f.layout.template.layout.legend.x == 1.02 and f.layout.title.text for f in figures.values())
    if not json.loads((run / "results" / "export.json").read_text())["notices"]:  # the PNGs were drawn
        assert sorted(p.stem for p in (run / "strategy" / "figures").glob("*.png")) == sorted(figures)
    for name in ("index", "10_kpis"):  # the run keeps screenshots for people to look at
        png = run / "reports" / "screenshots" / f"{name}.png"
        assert png.is_file(), f"{png} missing: {(png.parent / 'README.txt').read_text() if png.parent.exists() else ''}"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000  # a picture, not blank


def _cells(styler: object) -> list[list[str]]:
    return styler.data.to_numpy().tolist()  # type: ignore[attr-defined]


def test_table_formats_values_by_the_unit_their_name_says() -> None:
    """Values worked out by hand: 1234.5678 ms → "1,235" under "p95 (ms)"; 0.08887 → "8.89%"; 643516 bytes
    = 628.43 KiB; 8540.47 s = 2.37 h; a dict flattened; True → "yes"; None/NaN → n/a; tiny numbers in
    plain decimals (≈0 below a millionth); an epoch second → its UTC time; data escaped in the HTML."""
    rows = [{"p95_ms": 1234.5678, "byte_hit_ratio": 0.08887, "capacity_bytes": 643516.0, "busy_s": 8540.47,
             "reuse": {"p50": 276.0, "p90": 13447.0}, "ok": True, "route": "<script>x</script>",
             "beta": 1.2e-7, "start_s": 1_794_800_000, "requests": 63788, "empty": None},
            {"p95_ms": float("nan"), "byte_hit_ratio": None, "capacity_bytes": 1536, "busy_s": 45.0,
             "reuse": None, "ok": False, "route": "/a", "beta": 0.5, "start_s": 1_794_800_060,
             "requests": 2, "empty": None}]
    styler = kit.viz.table(rows)
    assert list(styler.data.columns) == ["p95 (ms)", "Byte hit ratio", "Capacity", "Busy", "Reuse", "Ok", "Route",
                                         "Beta", "Start", "Requests"]  # "empty" is empty in every row: left out
    assert _cells(styler) == [
        ["1,235", "8.89%", "628.4 KiB", "2.4 h", "p50 276 · p90 13,447", "yes", "<script>x</script>",
         "≈0", "2026-11-16 03:33:20 UTC", "63,788"],
        ["n/a", "n/a", "1.5 KiB", "45 s", "n/a", "no", "/a", "0.5", "2026-11-16 03:34:20 UTC", "2"]]
    html = styler.to_html()
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "row_heading" not in html and "blank" not in html  # no index column


def test_table_caps_long_tables_and_keeps_a_named_index() -> None:
    frame = pd.DataFrame({"capacity_bytes": [1024 * 2 ** i for i in range(60)], "lru": [0.5] * 60,
                          "fifo": [0.25] * 60}).set_index("capacity_bytes")
    frame.columns.name = "policy"
    styler = kit.viz.table(frame, units={"*": "ratio"}, max_rows=10)
    assert list(styler.data.columns) == ["Capacity", "lru", "fifo"]  # pivot columns are values: kept as they are
    assert _cells(styler)[1] == ["2.0 KiB", "50.00%", "25.00%"]
    assert len(styler.data) == 10 and "first 10 of 60 rows" in styler.caption
    assert repr(kit.viz.table([], empty="No rejected lines.")) == "No rejected lines."
    # a row's own unit column; a ratio of two means is a multiplier; pd.NA and "n/a"-only columns
    use = kit.viz.table(pd.DataFrame({"metric": ["rss", "busy"], "unit": ["bytes", "ratio"],
                                      "mean": [3 * 2 ** 20, 0.25], "ratio": [15.2537, 1.0699],
                                      "lines_in": pd.array([pd.NA, 7], dtype="Int64"),
                                      "previous": ["n/a", "n/a"], "hit_bytes": [2048, 512]}))
    assert list(use.data.columns) == ["Metric", "Unit", "Mean", "Ratio", "Lines in", "Hit bytes"]
    assert _cells(use) == [["rss", "bytes", "3.0 MiB", "15.3×", "n/a", "2.0 KiB"],
                           ["busy", "ratio", "25.00%", "1.07×", "7", "512 B"]]
    series = kit.viz.table(pd.Series({"requests": 1000, "hit ratio at knee": 0.5, "footprint": 3 * 1024 ** 2}))
    assert _cells(series) == [["requests", "1,000"], ["hit ratio at knee", "50.00%"], ["footprint", "3.0 MiB"]]
