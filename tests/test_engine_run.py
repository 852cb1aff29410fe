"""A whole run on Spark writes the documents a run on DuckDB writes (issue #15, item 3).

``finished_run`` is ``perfkit run`` on the 7-day 60k demo's DuckDB file with the default engine. Here the
same warehouse, copied by the product's ``perfkit convert`` into a Parquet warehouse, is run again with
``engine: spark`` (``local[2]``), every notebook, through the real CLI. The four strategy documents must be
byte-identical except for what is measured on the machine at run time rather than read from the data: the
compression speeds (MB/s of each codec on this CPU, and the CPU-seconds derived from them), which differ
between any two runs, on either engine. Those numbers are masked in both documents before comparing; the
masks are counted so that a change that puts data-derived numbers into those sentences fails the test."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from kit.ingest.parquet import convert
from tests.conftest import same_within

DOCUMENTS = ("Performance_Monitoring_Strategy.md", "Metrics_Framework_Specifications.json",
             "Performance_Optimization_Strategy.md", "Caching_Implementation_Plan.json")
_NUMBER = r"\d[\d,]*(?:\.\d+)?"
# numbers measured on the machine: a codec's speed, the CPU time derived from it, and the speed column of the
# codec table ("| gzip-6 | dynamic | 65 | 19.6% | 64.1 |")
_MEASURED = (re.compile(rf"{_NUMBER}(?= MB/s)"), re.compile(rf"{_NUMBER}(?= CPU-seconds)"),
             re.compile(rf"(?<=or ){_NUMBER}(?= at gzip)"),
             re.compile(rf"^(\| (?:gzip|brotli|zstd)-\d+ \|.*\| ){_NUMBER}( \|)$", re.MULTILINE))


def _masked(text: str) -> tuple[str, int]:
    """``text`` with the machine-measured numbers replaced by ``#``, and how many were replaced."""
    total = 0
    for pattern in _MEASURED:
        text, n = pattern.subn(lambda m: (m.group(1) + "#" + m.group(2)) if m.re.groups else "#", text)
        total += n
    return text, total


def test_masking_hides_only_the_measured_speeds() -> None:
    line = ("takes about 2.6 CPU-seconds per build (0.79 MB/s); on the fly about 0.95 CPU-seconds a day at "
            "brotli 5 (50 MB/s on one core) or 0.75 at gzip 6 (64 MB/s). 24 files, 57.05%\n"
            "| gzip-6 | dynamic | 65 | 19.6% | 64.1 |\n| 1,234 | 5 |")
    masked, n = _masked(line)
    assert n == 7
    assert masked == ("takes about # CPU-seconds per build (# MB/s); on the fly about # CPU-seconds a day at "
                      "brotli 5 (# MB/s on one core) or # at gzip 6 (# MB/s). 24 files, 57.05%\n"
                      "| gzip-6 | dynamic | 65 | 19.6% | # |\n| 1,234 | 5 |")


def test_a_run_on_spark_writes_the_documents_of_a_run_on_duckdb(finished_run: Path, small_demo: Path,
                                                                 tmp_path: Path) -> None:
    root = tmp_path / "wh"
    convert(small_demo, root)
    params = tmp_path / "spark.yml"
    # the title defaults to the warehouse's file name; the DuckDB run's file is the demo's, so name it alike
    events = tmp_path / "spark-events"   # Spark's own record of the applications and queries it ran
    events.mkdir()
    params.write_text("title: Demo web shop\nengine: spark\nspark: {master: 'local[2]', options: "
                      f"{{spark.eventLog.enabled: true, spark.eventLog.compress: false, "
                      f"spark.eventLog.dir: '{events.as_uri()}'}}}}\n")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "kit.cli", "run", "--db", str(root), "--params", str(params),
                             "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    spark_run = next((out / "runs").iterdir())
    # the heavy queries really ran on Spark: one application per notebook that takes the engine (10 KPIs,
    # 20 SLOs, 30 bottlenecks, 40 cache), each with SQL executions in its event log
    # (Spark 4 writes an application's log as a directory of rolled files)
    apps = sorted(events.iterdir())
    assert len(apps) == 4
    for app in apps:
        files = sorted(f for f in app.rglob("*") if f.is_file()) if app.is_dir() else [app]
        text = "".join(f.read_text() for f in files)
        assert "SparkListenerSQLExecutionStart" in text, app.name
    duck_run = sorted((finished_run / "runs").iterdir())[0]
    masked_counts = {}
    for name in DOCUMENTS:
        duck, n_duck = _masked((duck_run / "strategy" / name).read_text())
        spark, n_spark = _masked((spark_run / "strategy" / name).read_text())
        assert n_duck == n_spark
        masked_counts[name] = n_duck
        if name.endswith(".json"):   # floats from parallel sums may differ in their last digits (1e-9 relative)
            assert same_within(json.loads(duck), json.loads(spark)), name
        else:
            assert duck == spark, name
    # only the optimization strategy carries measured speeds: the codec table and the compression risks
    assert masked_counts["Performance_Optimization_Strategy.md"] >= 8
    assert sum(masked_counts.values()) == masked_counts["Performance_Optimization_Strategy.md"]
