"""Long report tables (:func:`kit.viz.table` over ``PAGE_ROWS`` rows): every row, searchable, sortable by value
and paged, drawn offline, with data from logs shown as text.

Without a browser: the rows, the formatted cells (worked out by hand), the sort order of a numeric column
against a plain sort of its values, the escaping of a hostile value in the HTML, the DataTables bundle
embedded once per notebook. In headless Chromium with the network blocked: a notebook with two long tables,
a hostile URL and a short table, executed by papermill and exported by ``kit.runner.export_html`` as
``perfkit run`` does; a reader types in the search box, pages, sorts; the hostile value stays text and
runs nothing; no request leaves the machine; without JavaScript the first page still reads as a table."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import kit.viz
from kit.viz import PAGE_ROWS, PagedTable
from tests.test_report_reader import ARGS, BAD_TEXT, CHROMIUM

HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
N = 45  # rows of the long table: three pages of 20
LONG_FLOAT = re.compile(r"\b\d+\.\d{4,}\b")  # a raw float a reader should never see


def _rows() -> list[dict[str, object]]:
    """Routes whose text order differs from their value order in every numeric column: p95 from 95 to 315 ms
    ("95" sorts after "315" as text), busy time from 0 s to 71 min ("9 s" after "1.2 h"), requests 3 to
    30,000. Row 7 is a URL an attacker wrote."""
    return [{"route": HOSTILE if i == 7 else f"/api/r{i:02d}", "p95_ms": 95.0 + 5 * ((i * 17) % N),
             "busy_s": 97.0 * ((i * 11) % N), "requests": 3 * 10 ** (i % 5)} for i in range(N)]


def test_a_long_table_is_paged_with_every_row_formatted() -> None:
    rows = _rows()
    table = kit.viz.table(rows, caption="Routes")
    assert isinstance(table, PagedTable) and table.page_rows == PAGE_ROWS == 20
    assert list(table.data.columns) == ["Route", "p95 (ms)", "Busy", "Requests"]
    assert len(table.data) == N and table.caption == "Routes"  # every row, no "first N of M"
    # by hand: row 1 is 95 + 5·17 = 180 ms, 97·11 s = 1067 s = 17.8 min, 3·10 requests
    assert table.data.iloc[1].tolist() == ["/api/r01", "180", "17.8 min", "30"]
    assert table.data.iloc[0].tolist() == ["/api/r00", "95", "0 s", "3"]
    assert table.data.iloc[7, 0] == HOSTILE  # kept as text here; escaped in the HTML
    # a numeric column sorts by value: its categories follow a plain sort of the raw values
    frame = table.data
    by_value = sorted(range(N), key=lambda i: rows[i]["busy_s"])
    assert list(frame["Busy"].cat.categories) == list(dict.fromkeys(table.data["Busy"].iloc[by_value]))
    assert list(frame["p95 (ms)"].cat.categories)[:3] == ["95", "100", "105"]  # 95 first, not after "315"
    assert not isinstance(frame["Route"].dtype, pd.CategoricalDtype)  # text sorts as text
    # at most PAGE_ROWS rows, or page_rows=None: the static Styler (cut at max_rows, said in the caption)
    assert type(kit.viz.table(rows[:PAGE_ROWS])).__name__ == "Styler"
    static = kit.viz.table(rows, page_rows=None, max_rows=30)
    assert type(static).__name__ == "Styler" and "first 30 of 45 rows" in static.caption


def test_ties_and_missing_values_rank_as_a_reader_expects() -> None:
    """Two values shown as the same text are one category, at the place of the smaller; n/a ranks last."""
    ranked = kit.viz._ranked(["n/a", "1.0 KiB", "1.0 KiB", "512 B", "2.0 KiB"], [math.nan, 1030.0, 1024.0, 512.0,
                                                                               2048.0])
    assert list(ranked.categories) == ["512 B", "1.0 KiB", "2.0 KiB", "n/a"]
    table = kit.viz.table([{"size_bytes": 1024.0 * (i % 7) if i % 5 else None, "when_s": None} for i in range(30)])
    assert isinstance(table, PagedTable) and list(table.data.columns) == ["Size"]  # an all-empty column is left out
    assert list(table.data["Size"].cat.categories) == ["0 B", "1.0 KiB", "2.0 KiB", "3.0 KiB", "4.0 KiB",
                                                          "5.0 KiB", "6.0 KiB", "n/a"]


def test_the_html_escapes_data_and_embeds_the_bundle_once_per_notebook() -> None:
    kit.viz.setup_notebook()
    table = kit.viz.table(_rows(), caption="Routes <b>from logs</b>")
    first, second = table._repr_html_(), table._repr_html_()
    for html in (first, second):
        assert "<script>window.pwned" not in html and "<img src=x" not in html
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x" in html
        assert "<b>from logs" not in html
        assert not re.search(r"""<(script|link)[^>]+(src|href)=["']?https?:""", html)  # nothing from a CDN
    assert first.count("injectModule(") == 2 and "injectModule(" not in second  # defined and called once
    assert 'id="perfkit_table_' in first and len(second) < len(first) // 10
    kit.viz.setup_notebook()  # a notebook run again from the top embeds it again
    assert "injectModule(" in table._repr_html_()


def test_element_ids_do_not_repeat_those_shown_from_before_a_kernel_restart(monkeypatch) -> None:
    """After a restart the outputs of the last run are still on the page: a table's id must not be one of
    theirs unless it is the same table (then its cell's output is the one replaced)."""
    def ids(html: str) -> list[str]:
        return re.findall(r'<table id="(perfkit_table_[^"]+)"', html)

    tables = [kit.viz.table(_rows(), caption="Routes"), kit.viz.table(_rows()[1:], caption="All but the first"),
              kit.viz.table(_rows(), caption="Routes again")]
    before = [ids(t._repr_html_()) for t in tables]
    monkeypatch.setattr(kit.viz, "_tables_drawn", {})        # a new kernel
    after = [ids(t._repr_html_()) for t in reversed(tables)][::-1]
    assert all(len(i) == 1 for i in before + after)
    assert before == after                                    # the same tables, the same ids
    assert len({i[0] for i in before}) == len(tables)         # no two tables share one
    assert ids(tables[0]._repr_html_()) != before[0]          # drawn twice in one kernel: two ids


def _notebook(path: Path) -> None:
    rows = _rows()
    cells = [
        "import kit.viz\nkit.viz.setup_notebook()",
        f"rows = {rows!r}\nkit.viz.table(rows, caption='Routes')",
        "kit.viz.table([{'query': f'SELECT {i}', 'calls': i} for i in range(25)], caption='Queries')",
        "kit.viz.table(rows[:5], caption='Top five')",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A notebook with two long tables and a short one, run by papermill and exported as ``perfkit run`` does."""
    import papermill

    from kit.runner import PROJECT_ROOT, _kernel_config, export_html

    folder = tmp_path_factory.mktemp("paged")
    _notebook(folder / "in.ipynb")
    papermill.execute_notebook(str(folder / "in.ipynb"), str(folder / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, log_output=False, cwd=str(PROJECT_ROOT), execution_timeout=120,
                               config=_kernel_config())
    export_html(folder / "out.ipynb", folder / "report.html")
    return folder / "report.html"


def _column(page, table: int, column: int) -> list[str]:
    return page.evaluate(f"""() => Array.from(document.querySelectorAll('table.dataTable')[{table}]
        .querySelectorAll('tbody tr')).map(tr => tr.children[{column}].textContent)""")


def _first_column_becomes(page, expected: list[str], timeout_s: float = 10.0) -> list[str]:
    """The first table's first column once it equals ``expected``, or as it stands after ``timeout_s``
    (DataTables redraws after the event that triggered it, which a loaded machine can delay)."""
    deadline = time.monotonic() + timeout_s
    while (shown := _column(page, 0, 0)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return shown


@pytest.mark.notebook
@pytest.mark.integration
def test_a_reader_searches_pages_and_sorts_a_long_table_offline(exported: Path) -> None:
    from playwright.sync_api import sync_playwright

    html = exported.read_text()
    assert html.count("injectModule(") == 2  # the bundle once for the two long tables
    assert not re.search(r"""<(script|link)[^>]+(src|href)=["']?https?:""", html)
    rows = _rows()
    routes = [str(r["route"]) for r in rows]
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:")
                       else route.continue_())
            page.goto(exported.as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('table.dataTable tbody tr').length >= 40",
                                   timeout=15_000)
            infos = page.locator(".dt-info")
            assert infos.count() == 2  # the two long tables, not the short one
            assert infos.nth(0).inner_text() == f"Showing 1 to 20 of {N} entries"
            assert infos.nth(1).inner_text() == "Showing 1 to 20 of 25 entries"
            assert _column(page, 0, 0) == routes[:20]
            text = page.inner_text("body")
            assert "Top five" in text and "Loading ITables" not in text
            assert not BAD_TEXT.search(text) and not LONG_FLOAT.search(text)
            # the hostile URL is text: nothing ran, no element was made of it
            assert page.evaluate("window.pwned") is None
            assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
            assert HOSTILE in _column(page, 0, 0)
            # paging: the next page holds rows 21 to 40 in their order
            page.locator(".dt-paging").nth(0).locator("button.next").click()
            assert infos.nth(0).inner_text() == f"Showing 21 to 40 of {N} entries"
            assert _first_column_becomes(page, routes[20:40]) == routes[20:40]
            # searching filters on the shown text
            search = page.locator(".dt-search input").nth(0)
            search.fill("api/r1")
            expected = [r for r in routes if "api/r1" in r]
            assert len(expected) == 10
            assert infos.nth(0).inner_text() == f"Showing 1 to 10 of 10 entries (filtered from {N} total entries)"
            assert _first_column_becomes(page, expected) == expected
            search.fill("pwned")
            assert _first_column_becomes(page, [HOSTILE]) == [HOSTILE]
            search.fill("")
            assert _first_column_becomes(page, routes[:20]) == routes[:20]
            # sorting: a click on "Busy" orders the rows by the time, not by its text
            page.locator("table.dataTable").nth(0).locator("thead th", has_text="Busy").click()
            by_busy = [routes[i] for i in sorted(range(N), key=lambda i: (rows[i]["busy_s"], i))]
            assert _first_column_becomes(page, by_busy[:20]) == by_busy[:20]
            assert page.evaluate("window.pwned") is None
            # without JavaScript the first page is a plain table, the hostile value still text
            plain = browser.new_context(java_script_enabled=False).new_page()
            plain.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:")
                        else route.continue_())
            plain.goto(exported.as_uri(), wait_until="load")
            text = plain.inner_text("body")
            assert "/api/r19" in text and "/api/r20" not in text and HOSTILE in text
            assert not BAD_TEXT.search(text) and not LONG_FLOAT.search(text)
        finally:
            browser.close()
    assert requests and all(u.startswith(("file:", "blob:", "data:")) for u in requests), requests
