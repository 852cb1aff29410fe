"""Ingest of generic time series (NAB CSV, Parquet), assets, folded-stack profiles and events."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.cli import main
from kit.ingest.assets import ingest_assets
from kit.ingest.core import IngestError
from kit.ingest.events import ingest_events
from kit.ingest.profile import ingest_profile
from kit.ingest.timeseries import ColumnMapping, ingest_timeseries
from tests.conftest import assert_lines_accounted_for

# ------------------------------------------------------------------------------------ time series

@pytest.mark.parametrize("name", ["realKnownCause/ec2_request_latency_system_failure.csv",
                                  "realAWSCloudwatch/elb_request_count_8c0756.csv",
                                  "realKnownCause/machine_temperature_system_failure.csv"])
def test_nab_series_match_an_independent_csv_read(con, shared_datasets, name):
    path = shared_datasets / "timeseries" / "nab" / "data" / name
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    s = ingest_timeseries(con, path)
    assert (s.lines_in, s.rows_loaded, s.rows_rejected) == (len(rows), len(rows), 0)
    stem = path.stem
    n, total, first, last = con.execute(
        "SELECT count(*), sum(value), min(ts), max(ts) FROM metrics WHERE name = ?", [stem]).fetchone()
    assert n == len(rows)
    assert total == pytest.approx(sum(float(r["value"]) for r in rows), rel=1e-9)
    assert first.strftime("%Y-%m-%d %H:%M:%S") == min(r["timestamp"] for r in rows)
    assert last.strftime("%Y-%m-%d %H:%M:%S") == max(r["timestamp"] for r in rows)


def test_parquet_with_label_columns_and_no_time(con, shared_datasets):
    path = shared_datasets / "latency" / "observable_api" / "latency-histogram.parquet"
    table = pq.read_table(path)
    mapping = ColumnMapping(time_col="", value_cols=("count",), label_cols=("route", "duration"),
                            at="2024-01-07T00:00:00Z", name="api_latency_histogram")
    s = ingest_timeseries(con, path, mapping)
    assert s.rows_loaded == table.num_rows and s.fmt == "parquet"
    total = con.execute("SELECT sum(value) FROM metrics").fetchone()[0]
    assert total == sum(table.column("count").to_pylist())
    root = con.execute("SELECT sum(value) FROM metrics WHERE labels['route'] = '/' AND labels['duration'] = '0'"
                       ).fetchone()[0]
    expected = sum(c for c, r, d in zip(table.column("count").to_pylist(), table.column("route").to_pylist(),
                                        table.column("duration").to_pylist(), strict=True) if r == "/" and d == 0)
    assert root == expected


def test_timeseries_rejects_skips_and_several_value_columns(con, tmp_path):
    path = tmp_path / "host.csv"
    path.write_text("time,cpu,mem,host\n"
                    "2024-01-01T00:00:00Z,0.5,100,a\n"
                    "1704067260,0.7,,a\n"            # epoch seconds; empty mem is skipped
                    "not-a-time,0.1,5,b\n"           # both samples rejected (time)
                    "2024-01-01T00:02:00+01:00,x,7,b\n")  # cpu rejected (value)
    s = ingest_timeseries(con, path, ColumnMapping(value_cols=("cpu", "mem"), label_cols=("host",), name="node"))
    assert (s.lines_in, s.rows_loaded, s.rows_rejected, s.rows_skipped) == (8, 4, 3, 1)
    rows = con.execute("SELECT epoch(ts), name, labels['host'], value FROM metrics ORDER BY ts, name").fetchall()
    assert rows == [(1704063720.0, "node_mem", "b", 7.0), (1704067200.0, "node_cpu", "a", 0.5),
                    (1704067200.0, "node_mem", "a", 100.0), (1704067260.0, "node_cpu", "a", 0.7)]
    assert con.execute("SELECT line_no, field FROM rejects ORDER BY 1, 2").fetchall() == [
        (4, "time"), (4, "time"), (5, "cpu")]
    with pytest.raises(IngestError, match="no column 'nope'"):
        ingest_timeseries(con, path, ColumnMapping(value_cols=("nope",)), replace=True)


def test_timeseries_exactly_once_and_append(con, tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,2\n")
    assert ingest_timeseries(con, path).rows_loaded == 2
    assert ingest_timeseries(con, path).status == "unchanged"
    with open(path, "a") as out:
        out.write("2024-01-01 00:10:00,3\n")
    s = ingest_timeseries(con, path)
    assert (s.status, s.rows_loaded) == ("appended", 1)
    assert con.execute("SELECT count(*), sum(value) FROM metrics").fetchone() == (3, 6.0)


# ------------------------------------------------------------------------------------ profiles

FOLDED = """\
python (12);main (app.py:10);handle (app.py:40);render (tpl.py:7) 120
python (12);main (app.py:10);handle (app.py:40);query (db.py:88) 300
# a comment
java;Thread.run;Worker.process;HashMap.get_[j] 7

broken line without count
a;;b 4
"""


def test_folded_stacks(con, tmp_path):
    path = tmp_path / "cpu.folded"
    path.write_text(FOLDED)
    s = ingest_profile(con, path, service="api", at="2024-01-01T00:00:00Z")
    assert (s.lines_in, s.rows_loaded, s.rows_rejected, s.rows_skipped) == (7, 3, 2, 2)
    rows = con.execute("SELECT profile, service, stack, samples FROM profiles ORDER BY samples DESC").fetchall()
    assert rows[0] == ("cpu", "api", "python (12);main (app.py:10);handle (app.py:40);query (db.py:88)", 300)
    assert sum(r[3] for r in rows) == 427
    assert con.execute("SELECT line_no, field FROM rejects ORDER BY 1").fetchall() == [(6, "samples"), (7, "stack")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.sampled_from(["a;b 1", "a;b", "# x", "", "a;;b 2", ";a 3", "a 99999"]),
                                st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                                               blacklist_characters="\r\n\x00"), max_size=30)),
                      max_size=25))
def test_random_folded_lines_are_accounted_for(tmp_path, lines):
    path = tmp_path / "r.folded"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_lines_accounted_for(lambda c: ingest_profile(c, path, replace=True), "profiles")


# ------------------------------------------------------------------------------------ events

def test_events_from_csv_and_yaml(con, tmp_path):
    csv_path = tmp_path / "deploys.csv"
    csv_path.write_text("time,type,service,description,version\n"
                        "2024-01-01T10:00:00Z,Deploy,api,Deploy v1.2,1.2\n"
                        ",deploy,api,no time,\n"
                        "2024-01-03T00:00:00+02:00,,api,no kind,\n")
    s = ingest_events(con, csv_path)
    assert (s.lines_in, s.rows_loaded, s.rows_rejected) == (3, 1, 2)
    yaml_path = tmp_path / "incidents.yaml"
    yaml_path.write_text("events:\n"
                         "  - start: 2024-01-02T10:00:00Z\n    end: 2024-01-02T11:30:00Z\n"
                         "    kind: incident\n    what: DB failover\n    severity: p1\n"
                         "  - start: 2024-01-02T10:00:00Z\n    end: 2024-01-02T09:00:00Z\n"
                         "    kind: incident\n    what: clock skew\n")
    s = ingest_events(con, yaml_path)
    assert (s.rows_loaded, s.rows_rejected, s.fmt) == (1, 1, "yaml")
    rows = con.execute("SELECT kind, service, what, epoch(ts_end) - epoch(ts_start), details FROM events "
                       "ORDER BY ts_start").fetchall()
    assert rows[0][:3] == ("deploy", "api", "Deploy v1.2") and json.loads(rows[0][4]) == {"version": "1.2"}
    assert rows[1][:4] == ("incident", None, "DB failover", 5400.0)
    assert con.execute("SELECT line_no, field FROM rejects ORDER BY source_id, line_no").fetchall() == [
        (3, "ts_start"), (4, "kind"), (2, "ts_end")]


# ------------------------------------------------------------------------------------ assets

def test_assets_content_addressed_exactly_once(con, tmp_path):
    root = tmp_path / "www"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<html>" + "x" * 1000 + "</html>")
    (root / "js" / "app.js").write_bytes(b"console.log(1);\n")
    (root / "js" / "copy.js").write_bytes(b"console.log(1);\n")
    (root / "logo.unknownext").write_bytes(bytes(range(256)))
    s = ingest_assets(con, root, url_prefix="/static")
    assert (s.lines_in, s.rows_loaded) == (4, 4)
    rows = dict(con.execute("SELECT path, content_type FROM assets").fetchall())
    assert rows == {"/static/index.html": "text/html", "/static/js/app.js": "text/javascript",
                    "/static/js/copy.js": "text/javascript", "/static/logo.unknownext": "application/octet-stream"}
    assert con.execute("SELECT count(*) FROM asset_content").fetchone()[0] == 3
    content = con.execute("SELECT c.content FROM assets a JOIN asset_content c USING (sha256) "
                          "WHERE a.path = '/static/logo.unknownext'").fetchone()[0]
    assert content == bytes(range(256))
    assert ingest_assets(con, root, url_prefix="/static").status == "unchanged"
    (root / "js" / "app.js").write_bytes(b"console.log(2);\n")
    s = ingest_assets(con, root, url_prefix="/static", replace=True)
    assert s.status == "replaced"
    assert con.execute("SELECT count(*), count(DISTINCT source_id) FROM assets").fetchone() == (4, 1)


def test_cli_prints_json_summary(tmp_path, capsys):
    path = tmp_path / "cpu.folded"
    path.write_text(FOLDED)
    db = tmp_path / "w.duckdb"
    assert main(["ingest", "profile", str(path), "--db", str(db), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip())
    assert (summary["kind"], summary["rows_loaded"], summary["rows_rejected"]) == ("profile", 3, 2)
    assert main(["ingest", "profile", str(path), "--db", str(db)]) == 0
    assert "unchanged" in capsys.readouterr().out


_CELL = st.one_of(st.sampled_from(["2024-01-01T00:00:00Z", "1704067200", "", "1.5", "-2e3", "NaN", "x"]),
                  st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='\r\n\x00",'),
                          max_size=12))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_CELL, _CELL, _CELL), min_size=1, max_size=20))
def test_random_timeseries_rows_are_accounted_for(tmp_path, rows):
    path = tmp_path / "r.csv"
    path.write_text("timestamp,a,b\n" + "".join(f"{t},{a},{b}\n" for t, a, b in rows), encoding="utf-8")
    s = assert_lines_accounted_for(
        lambda c: ingest_timeseries(c, path, ColumnMapping(value_cols=("a", "b")), replace=True), "metrics")
    if s is not None:
        assert s.lines_in == 2 * len(rows)
        # a blank cell is empty or only spaces (DuckDB's trim); other whitespace is a value that must parse
        assert s.rows_skipped == sum(1 for _t, a, b in rows for v in (a, b) if v.strip(" ") == "")
