"""Screenshots of a run's pages (the entry page and the KPI report) for people who want to look before
they open anything: ``<run>/reports/screenshots/<page>.png``.

Drawn by headless Chromium's own ``--screenshot`` (the browser kaleido would use, found by
:func:`kit.report.export.find_chromium`) with the network blocked, after the reports are exported. A
browser that is missing, fails or hangs (stopped after ``timeout_s``) costs the screenshots only: a
``README.txt`` in their folder says why they are missing and how to get them; the run never fails for it."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCREENSHOT_PAGES = ("index.html", "10_kpis.html")
SCREENSHOT_TIMEOUT_S = 60.0
WINDOW = (1280, 2400)  # pixels: the first screens of a report, charts drawn


@dataclass(frozen=True)
class Screenshots:
    """PNG paths by page name; ``skipped`` says why some are missing (empty when none are)."""

    paths: dict[str, Path]
    skipped: str = ""


def _shoot(browser: str, page: Path, png: Path, timeout_s: float) -> str:
    """One screenshot; an empty string when it was written, else why not."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
               "--no-first-run", "--disable-background-networking", "--proxy-server=127.0.0.1:9",
               "--host-resolver-rules=MAP * ~NOTFOUND", f"--window-size={WINDOW[0]},{WINDOW[1]}",
               "--virtual-time-budget=10000", f"--screenshot={png}", page.resolve().as_uri()]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # its own group: a hung browser is killed with its children
    try:
        _, errors = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return f"{browser} did not draw {page.name} within {timeout_s:g} s"
    if process.returncode != 0 or not png.is_file():
        last = [line for line in errors.splitlines() if line.strip()][-1:] or [f"exit code {process.returncode}"]
        return f"{browser} failed on {page.name}: {last[0][:200]}"
    return ""


def take_screenshots(reports_dir: str | Path, pages: tuple[str, ...] = SCREENSHOT_PAGES,
                     timeout_s: float = SCREENSHOT_TIMEOUT_S) -> Screenshots:
    """Screenshots of those ``pages`` of ``reports_dir`` that exist, in ``reports_dir/screenshots``."""
    from kit.report.export import GET_CHROMIUM, find_chromium

    folder = Path(reports_dir) / "screenshots"
    present = [Path(reports_dir) / name for name in pages if (Path(reports_dir) / name).is_file()]
    if not present:
        return Screenshots({})
    folder.mkdir(parents=True, exist_ok=True)
    browser = find_chromium()
    problems: list[str] = []
    paths: dict[str, Path] = {}
    if browser is None:
        problems.append(f"no Chromium or Chrome was found; to get them: {GET_CHROMIUM}")
    else:
        for page in present:
            png = folder / f"{page.stem}.png"
            problem = _shoot(browser, page, png, timeout_s)
            if problem:
                png.unlink(missing_ok=True)
                problems.append(problem)
            else:
                paths[page.stem] = png
    skipped = "; ".join(problems)
    if skipped:
        (folder / "README.txt").write_text(f"Some screenshots of this run's reports were not taken: {skipped}. "
                                           "The reports themselves are complete.\n")
    return Screenshots(paths, skipped)
