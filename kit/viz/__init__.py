"""Figures and tables as a report's reader sees them.

Figures: ``plot_*`` functions return plotly Figures (never ``.show()``) in the kit's theme (the registered
template ``perfkit``, default from import, so the notebooks and the documents' PNGs draw alike): titles
left-aligned in a margin of their own, legends right of the plot (below it where a second y axis takes
the right side), time axes as UTC dates titled ``TIME_AXIS``, every axis titled, log axes for data that
spans decades. ``setup_notebook()`` selects the theme and the renderer that embeds plotly.js once, so
charts draw offline in the exported HTML.

Tables: :func:`table` turns records, a DataFrame or a Series into a pandas Styler whose every cell is
text formatted by ``kit.fmt`` in the unit the column's name says (``*_ms``, ``*_bytes``, ``*_ratio``,
``*_s`` …), with readable column names and no index. A table longer than ``PAGE_ROWS`` rows is shown whole
as an interactive table instead (:class:`PagedTable`: itables/DataTables, searchable, sortable, paged),
drawn offline: the DataTables bundle is embedded once per notebook, in the first such table's output.
Its cells are the same formatted text, HTML-escaped by itables (data from logs shows as text); its
numeric columns sort by their values, not their text (each is an ordered categorical of its formatted
cells, ranked by the smallest value a cell shows). Limits: units are read from names (a column named
against the convention shows as a plain number; ``units=`` overrides); a column the caller formatted
itself sorts as text (DataTables reads "1,234" and "8.9%" as numbers, "2.4 h" not); more than
``max_rows`` rows are cut (the caption says so); a reader without JavaScript sees the first page as a
plain table."""

from __future__ import annotations

import hashlib
import html
import math
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import NotebookRenderer

from kit import fmt

if TYPE_CHECKING:
    import pandas as pd
    from pandas.io.formats.style import Styler

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]

# The kit's theme, used by every kit.viz figure (and so by the documents' PNGs): left-aligned titles in a
# top margin of their own, the legend right of the plot (never over the title or the data), dates on
# time axes, axis titles always drawn, numbers without SI suffixes on hover.
pio.templates["perfkit"] = go.layout.Template(
    layout=go.Layout(
        colorway=PALETTE,
        font={"family": "Inter, Segoe UI, Helvetica, Arial, sans-serif", "size": 13, "color": "#1f2937"},
        title={"x": 0.01, "xanchor": "left", "y": 0.98, "yanchor": "top", "yref": "container",
               "font": {"size": 16}, "automargin": True},
        margin={"l": 70, "r": 30, "t": 80, "b": 60},
        legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top",
                "bgcolor": "rgba(255,255,255,0.8)", "font": {"size": 12}},
        hovermode="x unified",
        xaxis={"automargin": True, "title": {"standoff": 8}},
        yaxis={"automargin": True, "title": {"standoff": 8}},
    )
)
LEGEND_BELOW = {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.2, "yanchor": "top"}
TIME_AXIS = "time (UTC)"
THEME = "plotly_white+perfkit"
pio.templates.default = THEME  # on import, so the documents' figures (kit.report.export) are drawn in it too


_MATHJAX_FROM_CDN = re.compile(r'<script src="https://cdn[^"]*mathjax[^"]*"></script>')


class OfflineNotebookRenderer(NotebookRenderer):
    """plotly's ``notebook`` renderer (plotly.js embedded once) without the MathJax script it always
    loads from a CDN, so exported reports fetch nothing from the network."""

    def to_mimebundle(self, fig_dict: dict) -> dict:
        bundle = super().to_mimebundle(fig_dict)
        bundle["text/html"] = _MATHJAX_FROM_CDN.sub("", bundle["text/html"])
        return bundle


pio.renderers["perfkit_notebook"] = OfflineNotebookRenderer(connected=False)


def setup_notebook() -> None:
    """Use the kit's theme, and the renderers that show charts in JupyterLab and draw offline in nbconvert HTML;
    the next interactive table embeds the DataTables bundle again (a notebook run from the top keeps it)."""
    global _bundle_embedded
    pio.templates.default = THEME
    pio.renderers.default = "plotly_mimetype+perfkit_notebook"
    _bundle_embedded = False


PAGE_ROWS = 20  # longer tables are interactive: searchable, sortable, this many rows a page
MAX_ROWS = 10_000  # longer tables show their first rows and say how many there are
_ACRONYMS = {"kpi": "KPI", "sql": "SQL", "promql": "PromQL", "slo": "SLO", "sli": "SLI", "ttl": "TTL", "usl": "USL",
             "cdn": "CDN", "url": "URL", "id": "ID", "api": "API", "lru": "LRU", "rps": "req/s",
             "ci": "CI", "ci95": "95% CI", "cpu": "CPU"}
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?([+-]\d\d:?\d\d|Z)?$")


class Note:
    """A sentence shown in place of a table (an empty one): plain text in a notebook, a paragraph in HTML."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.text)}</p>"


def _tokens(name: object) -> list[str]:
    return [t for t in re.split(r"[_\s()/,]+", str(name).lower()) if t]


def unit_of(name: object) -> str:
    """The unit a column's (or a row label's) numbers are in, read from its name: ``ms``, ``s`` (a duration,
    or a Unix time for ``start_s``-like names), ``bytes``, ``ratio`` (a share, shown as %), ``x`` (a
    multiplier: ``ratio`` of two means, ``rate_ratio``), ``pct`` (already in %), ``rps`` or ``""`` (a plain
    number)."""
    tokens = _tokens(name)
    if not tokens:
        return ""
    if "ms" in tokens:
        return "ms"
    if "rps" in tokens or "req/s" in str(name):
        return "rps"
    if {"bytes", "footprint", "capacity"} & set(tokens) or "bytes" in str(name).lower():
        return "bytes"
    if {"pct", "percent"} & set(tokens) or "%" in str(name):
        return "pct"
    if tokens[-1] in ("s", "seconds", "sec"):
        return "s"
    if "burn" in tokens or "alpha" in tokens:
        return ""
    if tokens[0] == "ratio" or "rate ratio" in " ".join(tokens):
        return "x"
    if {"ratio", "share", "rate", "availability", "precision", "recall", "coverage", "offload",
        "consumed", "remaining"} & set(tokens):
        return "ratio"
    return ""


# A row's own unit (a ``unit`` column, as in the USE and comparison tables) for its unit-less columns.
_ROW_UNITS = {"bytes": "bytes", "ms": "ms", "ratio": "ratio", "share": "ratio", "seconds": "s", "s": "s"}
# Statistics of the row's own metric: they take the row's unit.
_ROW_UNIT_COLUMNS = {"mean", "median", "min", "max", "p50", "p90", "p95", "p99", "value", "current", "previous",
                     "baseline", "before", "after", "effect", "now", "low", "high"}
_SIZE_WORDS = {"capacity", "size", "footprint"}


def header(name: object, unit: str) -> str:
    """A readable column name: ``p95_ms`` → "p95 (ms)", ``byte_hit_ratio`` → "Byte hit ratio",
    ``capacity_bytes`` → "Capacity", ``hit_bytes`` → "Hit bytes", ``mean_delay_s`` → "Mean delay".
    Names written for people ("KPI", "change %", "peak rps/instance") only get a capital letter."""
    text = str(name)
    if "_" not in text:
        return text[:1].upper() + text[1:] if text == text.lower() and not re.match(r"^p\d", text) else text
    words = _tokens(text)
    drop = {"ms": {"ms"}, "rps": {"rps"}, "pct": {"pct", "percent"}, "s": {"s", "seconds"},
            "bytes": {"bytes"} if _SIZE_WORDS & set(words) else set()}.get(unit, set())
    kept = [w for w in words if w not in drop] or words
    label = " ".join(_ACRONYMS.get(w, w) for w in kept)
    label = label[:1].upper() + label[1:] if not re.match(r"^p\d", label) else label
    suffix = {"ms": " (ms)", "rps": " (req/s)", "pct": " (%)"}.get(unit, "")
    return label + suffix if suffix and suffix.strip(" ()") not in label else label


def _small(value: float, significant: int) -> str:
    """A number without scientific notation (:func:`fmt.num`)."""
    return fmt.num(value, significant)


def cell(value: object, unit: str = "", significant: int = 3) -> str:
    """One value as a reader reads it, in ``unit`` (see :func:`unit_of`): no ``nan``/``None`` (``fmt.NA``), no
    scientific notation, dicts as ``key value · key value``, lists joined, booleans as yes/no, times in UTC."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return fmt.NA
    if isinstance(value, dict):
        return " · ".join(f"{k} {cell(v, unit, significant)}" for k, v in value.items()) or fmt.NA
    if isinstance(value, list | tuple | set | np.ndarray):
        return ", ".join(cell(v, unit, significant) for v in value) or fmt.NA
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, datetime | pd.Timestamp | np.datetime64):
        return fmt.timestamp(pd.Timestamp(value).isoformat())
    if isinstance(value, pd.Timedelta | timedelta):
        return fmt.duration(pd.Timedelta(value).total_seconds())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "nan", "NaN", "None", "NaT", "null"):
            return fmt.NA
        return fmt.timestamp(text) if _ISO_TIME.match(text) else value
    if not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if unit == "ms":
        return f"{value:,.0f}" if abs(value) >= 100 else _small(float(value), significant)
    if unit == "bytes":
        return fmt.size(value)
    if unit == "ratio":
        return fmt.pct(value, 2) if abs(value) >= 0.0001 or value == 0 else "< 0.01%"
    if unit == "pct":
        return f"{value:,.1f}"
    if unit == "x":
        return f"{fmt.num(value, significant)}×"
    if unit == "s":
        if value > 1e8:  # a Unix time, not a duration
            return fmt.timestamp(datetime.fromtimestamp(value, UTC).isoformat())
        return fmt.duration(value)
    if isinstance(value, int) or float(value).is_integer():
        return fmt.count(value)
    return _small(float(value), significant)


def table(rows: object, drop: tuple[str, ...] = (), digits: int | None = None, *,
          units: dict[str, str] | None = None, caption: str | None = None, max_rows: int = MAX_ROWS,
          page_rows: int | None = PAGE_ROWS, empty: str = "Nothing to show: no rows.") -> object:
    """A table for people: ``rows`` (records, a DataFrame or a Series of labelled values) without the ``drop``
    columns and columns empty in every row, every value formatted by :func:`cell` in the unit its name says
    (:func:`unit_of`; ``units`` overrides it per column, ``"*"`` for all), numbers to ``digits`` significant
    digits (3), readable column names (:func:`header`), no index unless it carries data (a named one),
    at most ``max_rows`` rows (the caption says "first N of M rows"). Up to ``page_rows`` rows: a pandas
    Styler (HTML-escaped), so the exported report shows the same table as the notebook; longer: a
    :class:`PagedTable` of every row (searchable, sortable, ``page_rows`` a page; ``page_rows=None`` keeps
    the Styler). An empty table is the sentence ``empty``."""
    import pandas as pd

    units = units or {}
    significant = digits or 3
    if isinstance(rows, pd.Series):
        if rows.empty:
            return Note(empty)
        labels = [str(k) for k in rows.index]
        values = [cell(v, units.get(k) or unit_of(k) or units.get("*", ""), significant)
                  for k, v in zip(labels, rows, strict=True)]
        frame = pd.DataFrame({"": [header(k, "") if "_" in k else k for k in labels], " ": values})
        return _styled(frame, [" "], caption).hide(axis="columns")
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if df.empty:
        return Note(empty)
    value_axis = df.columns.name  # a pivot: the columns are values of this variable, not field names
    index_columns: list[object] = []
    if not isinstance(df.index, pd.RangeIndex) and any(n is not None for n in df.index.names):
        index_columns = list(df.index.names)
        df = df.reset_index()
    df = df.drop(columns=[c for c in drop if c in df.columns]).dropna(axis=1, how="all")
    total = len(df)
    df = df.head(max_rows)
    paged = page_rows is not None and len(df) > page_rows
    out: dict[str, list[str] | pd.Categorical] = {}
    numeric: list[str] = []
    row_units = [_ROW_UNITS.get(str(u).lower(), "") for u in df["unit"]] if "unit" in df.columns else None
    for column in df.columns:
        if value_axis is not None and column not in index_columns:
            unit, name = units.get(column) or units.get("*", ""), str(column)
        else:
            unit = units.get(column) or unit_of(column) or units.get("*", "")
            name = header(column, unit)
        series = df[column]
        is_number = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if not unit and is_number and row_units is not None and _ROW_UNIT_COLUMNS & set(_tokens(column)):
            cells = [cell(v, u, significant) for v, u in zip(series, row_units, strict=True)]
        else:
            cells = [cell(v, unit, significant) for v in series]
        if all(c == fmt.NA for c in cells):
            continue  # nothing to read in this column
        while name in out:
            name += " "
        out[name] = _ranked(cells, sort) if paged and (sort := _sort_keys(series)) is not None else cells
        if is_number:
            numeric.append(name)
    if value_axis is not None:
        caption = caption or f"Columns: {value_axis}"
    if total > len(df):
        caption = (caption + "; " if caption else "") + f"first {len(df)} of {total} rows"
    if paged:
        return PagedTable(pd.DataFrame(out), numeric, caption, page_rows or PAGE_ROWS)
    return _styled(pd.DataFrame(out), numeric, caption)


def _sort_keys(series: pd.Series) -> list[float] | None:
    """The numbers a column's cells sort by (its values; times as epoch seconds, durations in seconds; NaN
    where missing), or None for a column of text."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return None
    if pd.api.types.is_datetime64_any_dtype(series):
        stamps = pd.to_datetime(series, utc=True)
        return [float("nan") if pd.isna(t) else t.timestamp() for t in stamps]
    if pd.api.types.is_timedelta64_dtype(series):
        return series.dt.total_seconds().astype(float).tolist()
    if pd.api.types.is_numeric_dtype(series):
        return pd.to_numeric(series, errors="coerce").astype(float).tolist()
    return None


def _ranked(cells: list[str], keys: list[float]) -> pd.Categorical:
    """``cells`` as an ordered categorical whose categories are the distinct cells sorted by the smallest key
    each shows (the formatting is monotonic within a column, so this is the order of the values); cells
    without a key (``n/a``) rank last."""
    import pandas as pd

    lowest: dict[str, float] = {}
    for text, key in zip(cells, keys, strict=True):
        if not math.isnan(key):
            lowest[text] = min(lowest.get(text, math.inf), key)
    order = sorted(lowest, key=lowest.__getitem__)
    order += [text for text in dict.fromkeys(cells) if text not in lowest]
    return pd.Categorical(cells, categories=order, ordered=True)


_bundle_embedded = False  # the DataTables bundle is in an earlier output of this notebook
_tables_drawn: dict[str, int] = {}  # interactive tables drawn in this kernel, by content digest


class PagedTable:
    """A long table as an interactive DataTable (itables, offline): every row, a search box that filters
    rows on their shown text, columns sorted by a click (numbers by value), ``page_rows`` rows a page.

    ``data`` is the formatted text (what a reader sees), each column that sorts by value an ordered
    categorical of its cells (:func:`_ranked`; itables sends a category's rank as its sort data), the
    others plain text; ``numeric`` the right-aligned columns. The HTML (``_repr_html_``) holds the rows
    as JSON that itables HTML-escapes; the first interactive table after :func:`setup_notebook` also
    carries the DataTables bundle (JavaScript and CSS, about 1 MB base64), so the exported report needs no
    network. Without JavaScript the first page shows as a plain table."""

    def __init__(self, data: pd.DataFrame, numeric: list[str], caption: str | None,
                 page_rows: int = PAGE_ROWS) -> None:
        self.data = data
        self.numeric = numeric
        self.caption = caption
        self.page_rows = page_rows

    def __repr__(self) -> str:
        return self.data.to_string(index=False) + (f"\n{self.caption}" if self.caption else "")

    def _element_id(self) -> str:
        """The HTML id of this drawing: a digest of the caption and rows (a counter after the first drawing
        of the same table in this kernel). Counting alone would repeat the ids of the outputs still shown
        from before a kernel restart, and DataTables would bind to those elements instead."""
        digest = hashlib.sha1(f"{self.caption}\0{self.data.to_csv(index=False)}".encode()).hexdigest()[:12]
        drawn = _tables_drawn.get(digest, 0)
        _tables_drawn[digest] = drawn + 1
        return f"perfkit_table_{digest}" + (f"_{drawn}" if drawn else "")

    def _repr_html_(self) -> str:
        global _bundle_embedded
        import pandas as pd
        from itables import options as itables_options
        from itables.javascript import generate_init_offline_itables_html, to_html_datatable

        columns = list(self.data.columns)
        ranked = [i for i, dtype in enumerate(self.data.dtypes) if isinstance(dtype, pd.CategoricalDtype)]
        rows = self.page_rows
        options: dict[str, Any] = {
            "connected": False, "allow_html": False,  # itables escapes every cell, header and category
            "maxBytes": 0, "maxRows": 0, "maxColumns": 0,  # every row and column: no downsampling
            "showIndex": False, "display_logo_when_loading": False, "order": [],
            "text_in_header_can_be_selected": False,  # a click on a column name sorts by it
            "pageLength": rows, "lengthMenu": [[rows, 50, 100, -1], [rows, 50, 100, "All"]],
            "classes": "display compact", "style": "table-layout:auto;width:auto;margin:0;caption-side:bottom",
            # a ranked column's sort data is its rank: ordered as a number (its shown text would sort as text)
            "columnDefs": [{"targets": ranked, "type": "num"},
                           {"targets": [columns.index(c) for c in self.numeric], "className": "dt-right"},
                           {"targets": "_all", "className": "dt-left"}],
            "css": _PAGED_CSS, "table_id": self._element_id(),
        }
        html_table = to_html_datatable(self.data, html.escape(self.caption) if self.caption else None,
                                       **options)
        if _bundle_embedded:
            return html_table
        _bundle_embedded = True
        return generate_init_offline_itables_html(itables_options.dt_bundle) + html_table


_PAGED_CSS = (".dt-container { font-size: 13px; margin: 4px 0 12px; } "
              ".dt-container table.dataTable caption { color: #4b5563; font-size: 12px; text-align: left; }")


def _styled(frame: pd.DataFrame, numeric: list[str], caption: str | None) -> Styler:
    """The Styler of an all-text frame: no index, numbers right-aligned, everything HTML-escaped."""
    styler = frame.style.hide(axis="index").format(escape="html").format_index(escape="html", axis=1)
    text = [c for c in frame.columns if c not in numeric]
    if numeric:
        styler = styler.set_properties(subset=numeric, **{"text-align": "right"})
    if text:
        styler = styler.set_properties(subset=text, **{"text-align": "left"})
    styler = styler.set_table_styles([
        {"selector": "", "props": "border-collapse: collapse; font-size: 13px; margin: 4px 0 12px"},
        {"selector": "th", "props": "text-align: left; padding: 4px 10px; border-bottom: 1px solid #9ca3af"},
        {"selector": "td", "props": "padding: 3px 10px; border-bottom: 1px solid #e5e7eb"},
        {"selector": "caption", "props": "caption-side: bottom; text-align: left; color: #4b5563; "
                                         "font-size: 12px; padding-top: 4px"}])
    return styler.set_caption(html.escape(caption)) if caption else styler
