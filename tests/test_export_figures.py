"""The dashboard PNGs are an extra: without Chromium the documents are written at once, complete, with one
line saying what was skipped and how to get it; a renderer that hangs is stopped at its deadline; with
Chromium the PNGs are written. Also: the kernels `perfkit run` starts print no per-notebook warning."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import psutil
import pytest

from kit.analysis.kpis import kpi_report
from kit.report import export
from kit.report.export import MONITORING_MD, find_chromium, render_figures
from kit.results import dumps
from kit.runner import EXPORT_NOTEBOOK, NotebookTiming, RunResult, export_notices
from kit.warehouse import connect
from tests.conftest import PROJECT_ROOT
from tests.test_optimization_doc import results as optimization_results

T0 = datetime(2024, 5, 1, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n"
# write_documents in a process of its own; prints what it saw as JSON (or the browser it still finds)
EXPORT = """
import json, sys, time
from kit.config import RunConfig
from kit.report.export import find_chromium, write_documents
if find_chromium():
    print(json.dumps({"browser": find_chromium()}))
    raise SystemExit
t0 = time.perf_counter()
exported = write_documents(sys.argv[1], sys.argv[2], RunConfig(db=":memory:", as_of="2024-05-02"))
print(json.dumps({"seconds": time.perf_counter() - t0, "figures": sorted(exported.figures),
                  "notices": exported.notices}))
"""


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """KPIs from a small warehouse (so there are figures to draw), bottlenecks and optimizations by hand."""
    rng = np.random.default_rng(5)
    n = 4000
    frame = pd.DataFrame({  # noqa: F841 - read by DuckDB below
        "ts": pd.to_datetime(T0) + pd.to_timedelta(np.sort(rng.uniform(0, 86400, n)), unit="s"),
        "service": rng.choice(["web", "api"], n), "route": rng.choice(["/home", "/cart"], n),
        "status": rng.choice([200, 500], n, p=[0.98, 0.02]), "latency_ms": rng.lognormal(4, 0.8, n),
    })
    con = connect(":memory:")
    con.execute("INSERT INTO requests (ts, service, route, path, status, latency_ms, bytes_sent, source_id) "
                "SELECT ts, service, route, route, status, latency_ms, 512, 1 FROM frame")
    directory = tmp_path_factory.mktemp("results")
    (directory / "kpis.json").write_text(dumps(kpi_report(con, bucket="15m")))
    con.close()
    for name, value in optimization_results().items():
        (directory / f"{name}.json").write_text(dumps(value))
    return directory


def _export_without_chromium(command: list[str], results: Path, strategy: Path, tmp_path: Path,
                             **env: str) -> dict:
    """Run EXPORT with kaleido's own Chrome hidden (its download folder is under XDG_DATA_HOME) and a
    PATH that holds only this Python; a hang fails at the subprocess timeout, long before the 900 s cell
    timeout of a run."""
    environment = {k: v for k, v in os.environ.items() if k != "BROWSER_PATH"}
    environment |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
                    "XDG_DATA_HOME": str(tmp_path / "no-kaleido-chrome"), **env}
    started = time.monotonic()
    done = subprocess.run([*command, sys.executable, "-c", EXPORT, str(results), str(strategy)], env=environment,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    if "browser" in seen:
        pytest.skip(f"a browser is still found with Chromium hidden: {seen['browser']}")
    return seen | {"wall_s": time.monotonic() - started}


def _hide_chromium(results: Path, strategy: Path, tmp_path: Path, how: str) -> dict:
    if how == "BROWSER_PATH names no file":  # kaleido looks there and nowhere else
        return _export_without_chromium([], results, strategy, tmp_path, BROWSER_PATH=str(tmp_path / "chrome"))
    # not installed: in a mount namespace of its own the process sees /dev/null (not executable) instead
    browser = find_chromium()
    assert browser, "Chromium is needed for this test (apt-get install chromium)"
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("no user and mount namespaces here (unshare -rm)")
    hide = ["unshare", "-rm", "sh", "-c", 'mount --bind /dev/null "$0" && exec "$@"', browser]
    return _export_without_chromium(hide, results, strategy, tmp_path)


@pytest.mark.parametrize("how", ["BROWSER_PATH names no file", "not installed"])
def test_without_chromium_the_documents_are_written_at_once(results_dir: Path, tmp_path: Path, how: str) -> None:
    strategy = tmp_path / "strategy"
    seen = _hide_chromium(results_dir, strategy, tmp_path, how)
    # nothing waits on a browser: the export takes what building the documents takes (kaleido's sync
    # server used to wait here forever)
    assert seen["seconds"] < 10 and seen["wall_s"] < 40
    assert seen["figures"] == [] and not (strategy / "figures").exists()
    for name in (*export.DOCUMENTS, "grafana_dashboard.json"):
        assert (strategy / name).stat().st_size > 200, name
    [notice] = seen["notices"]  # one line: what was skipped, and how to get it
    assert "\n" not in notice and notice.startswith("figures: the dashboard PNGs were skipped")
    assert "`apt-get install chromium`" in notice and "`plotly_get_chrome -y`" in notice
    if how == "BROWSER_PATH names no file":
        assert f"no browser at BROWSER_PATH={tmp_path / 'chrome'}" in notice
    text = (strategy / MONITORING_MD).read_text()
    assert "![" not in text and "figures/" not in text  # no image links, so none broken
    assert "*The panels are not drawn here: no Chromium or Chrome was found; a run with a working Chromium " \
           "includes them.*" in text
    assert text.count("not drawn here") == 1


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_hanging_renderer_is_stopped_at_its_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Failure injection: a renderer that starts a 'browser' in a session of its own (as choreographer
    starts Chromium), then never answers. Both are killed at the deadline and the PNGs are skipped."""
    pid_file = tmp_path / "browser.pid"
    hang = ("import subprocess, sys, time\n"
            "browser = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
            f"open({str(pid_file)!r}, 'w').write(str(browser.pid))\n"
            "sys.stdin.read()\n"
            "time.sleep(300)\n")
    monkeypatch.setattr(export, "_RENDER_WORKER", hang)
    monkeypatch.setattr(export, "find_chromium", lambda: "/opt/chromium")
    started = time.monotonic()
    rendered = render_figures({"overview": go.Figure(go.Scatter(y=[1, 2]))}, tmp_path / "figures", timeout_s=2)
    assert 2 <= time.monotonic() - started < 12
    assert rendered.paths == {} and rendered.skipped == "Chromium did not draw them within 2 s"
    assert "/opt/chromium did not draw them within 2 s and was stopped" in rendered.notice
    assert "\n" not in rendered.notice and "plotly_get_chrome" in rendered.notice
    assert not _alive(int(pid_file.read_text()))
    assert not list((tmp_path / "figures").glob("*.png"))


def test_a_failing_renderer_skips_the_pngs_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "_RENDER_WORKER", "import sys\nsys.stdin.read()\nsys.exit('kaleido: it broke')\n")
    monkeypatch.setattr(export, "find_chromium", lambda: "/opt/chromium")
    rendered = render_figures({"overview": go.Figure(go.Scatter(y=[1, 2]))}, tmp_path / "figures")
    assert rendered.paths == {} and rendered.skipped == "Chromium failed to draw them"
    assert "drawing them with /opt/chromium failed: kaleido: it broke" in rendered.notice


@pytest.mark.integration
def test_with_chromium_the_pngs_are_written(tmp_path: Path) -> None:
    assert find_chromium(), "Chromium is needed for this test (apt-get install chromium)"
    figures = {"overview": go.Figure(go.Scatter(y=[1, 3, 2])), "apdex": go.Figure(go.Bar(y=[0.9, 0.95]))}
    rendered = render_figures(figures, tmp_path / "figures")
    assert rendered.skipped == rendered.notice == ""
    assert sorted(rendered.paths) == ["apdex", "overview"]
    for path in rendered.paths.values():
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 5_000


def test_the_export_notices_reach_the_run_summary(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "export.json").write_text(json.dumps({"figures": [], "notices": ["figures: skipped"]}))
    ran_90 = RunResult("r", tmp_path, [NotebookTiming(EXPORT_NOTEBOOK, 1.0, 0.1)])
    assert export_notices(ran_90) == ["figures: skipped"]
    # a partial run without 90 copies the previous run's results: their notices are not this run's
    assert export_notices(RunResult("r", tmp_path, [NotebookTiming("10_kpis", 1.0, 0.1)])) == []


def test_the_kernels_of_a_run_do_not_warn_about_plain_tcp(tmp_path: Path) -> None:
    """ipykernel 7 warns on every kernel start when its traffic is not encrypted; the runner's kernel
    configuration has the kernel manager provision CurveZMQ keys, so it is encrypted and says nothing."""
    from jupyter_client import KernelManager

    from kit.runner import _kernel_config

    if not _kernel_config():
        pytest.skip("this jupyter_client or libzmq cannot encrypt kernel traffic")
    log = tmp_path / "kernel.log"
    manager = KernelManager(kernel_name="python3", config=_kernel_config())
    with log.open("w") as output:
        manager.start_kernel(stdout=output, stderr=output)
        try:
            client = manager.client()
            client.start_channels()
            client.wait_for_ready(timeout=60)
            client.stop_channels()
        finally:
            manager.shutdown_kernel(now=True)
    assert manager.curve_publickey is not None
    assert "without encryption" not in log.read_text()
