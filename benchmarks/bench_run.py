"""Benchmark the main job: demo build and a full `perfkit run` on the default demo.

Prints per-stage seconds and peak memory, and ratios against (a) a baseline measured in the same run —
the same papermill + HTML export machinery on seven trivial notebooks, i.e. the fixed cost of kernels —
and (b) the targets (demo ≤ 20 s; full run ≤ 60 s and ≤ 2 GB peak memory, PSS of the process tree).

    .venv/bin/python benchmarks/bench_run.py [--requests 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import measure  # noqa: E402

TARGETS = {"demo_s": 20.0, "run_s": 60.0, "run_peak_bytes": 2 * 1024**3}


def trivial_baseline(workdir: Path) -> float:
    """Seconds for papermill + in-process HTML export of seven one-cell notebooks."""
    script = workdir / "baseline.py"
    script.write_text(
        "import papermill, nbformat, sys\n"
        "from pathlib import Path\n"
        "from kit.runner import export_html\n"
        "d = Path(sys.argv[1])\n"
        "for i in range(7):\n"
        "    src, out = d / f'nb{i}.ipynb', d / f'nb{i}.out.ipynb'\n"
        "    papermill.execute_notebook(str(src), str(out), kernel_name='python3', progress_bar=False)\n"
        "    export_html(out, d / f'nb{i}.html')\n")
    for i in range(7):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, workdir / f"nb{i}.ipynb")
    return measure([sys.executable, str(script), str(workdir)]).seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000, help="demo size (default 1,000,000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perfkit-bench-") as tmp:
        work = Path(tmp)
        db, out = work / "demo.duckdb", work / "outputs"
        demo = measure([sys.executable, "-m", "kit.cli", "demo", "--db", str(db), "--requests", str(args.requests)])
        run = measure([sys.executable, "-m", "kit.cli", "run", "--db", str(db), "--out", str(out), "--quiet"])
        if demo.returncode or run.returncode:
            print("benchmark failed: a command exited non-zero", file=sys.stderr)
            return 1
        baseline = trivial_baseline(work)
        manifest = json.loads((out / "latest" / "manifest.json").read_text())
    print(f"demo build ({args.requests:,} requests): {demo.seconds:6.1f} s  peak {demo.peak_bytes / 2**20:6.0f} MiB"
          f"   ratio to target {demo.seconds / TARGETS['demo_s']:.2f}")
    print(f"perfkit run (all notebooks):     {run.seconds:6.1f} s  peak {run.peak_bytes / 2**20:6.0f} MiB"
          f"   ratio to target {run.seconds / TARGETS['run_s']:.2f} (time), "
          f"{run.peak_bytes / TARGETS['run_peak_bytes']:.2f} (memory)")
    print(f"baseline (7 trivial notebooks through the same machinery): {baseline:.1f} s;"
          f" run/baseline = {run.seconds / baseline:.2f}")
    for t in manifest["timings"]:
        print(f"  {t['name']:<22} execute {t['execute_s']:6.1f} s   export {t['export_s']:5.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
