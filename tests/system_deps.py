"""The system tools the tests and benchmarks run, the Debian package that provides each, and the set-up
step of ``make test`` (and ``make bench``).

    python3 tests/system_deps.py [--install] [--for test|bench]

Checks every tool of the group (``bench`` includes ``test``). When all are there it prints nothing and
exits 0, without calling apt-get: a normal ``make test`` stays fast and works offline. When some are
missing it prints them, then, with ``--install``, as root and with apt-get available, runs
``apt-get update`` once and ``apt-get install -y --no-install-recommends`` with exactly the missing
packages, and checks again. Otherwise it prints the exact command to run and exits 2, before any test
starts. The pytest guard in ``tests/conftest.py`` uses the same check, without installing.

Only the standard library: ``make`` runs this with the system Python, before ``.venv`` exists.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PG = "/usr/lib/postgresql/15"  # the tests start PostgreSQL 15 (Debian 12's) from its own binaries


@dataclass(frozen=True)
class Tool:
    name: str     # a command looked up on PATH, or the absolute path of a file the tests open directly
    package: str  # the Debian package that provides it
    why: str      # what runs it
    group: str = "test"  # "test": make test and pytest; "bench": make bench only
    owners: tuple[str, ...] = ()  # when ``package`` is a metapackage: the packages that really hold the file


TOOLS: tuple[Tool, ...] = (
    Tool("promtool", "prometheus", "checks and unit-tests the generated alert rules"),
    Tool("prometheus", "prometheus", "the server test_ingest_prometheus queries"),
    Tool("/usr/sbin/nginx", "nginx", "the server test_ingest_nginx reads the log of"),
    Tool("wrk", "wrk", "the load test_ingest_nginx sends to nginx"),
    Tool(f"{PG}/bin/initdb", "postgresql-15", "test_ingest_postgres's own server"),
    Tool(f"{PG}/bin/pg_ctl", "postgresql-15", "test_ingest_postgres's own server"),
    Tool(f"{PG}/bin/postgres", "postgresql-15", "test_ingest_postgres's own server"),
    Tool(f"{PG}/lib/pg_stat_statements.so", "postgresql-15", "the statistics test_ingest_postgres reads"),
    Tool(f"{PG}/lib/hypopg.so", "postgresql-15-hypopg", "the hypothetical indexes the index advice tests evaluate"),
    Tool(f"{PG}/bin/pgbench", "postgresql-15", "the load test_ingest_postgres sends"),
    Tool(f"{PG}/bin/psql", "postgresql-client-15", "test_ingest_postgres creates the extension with it"),
    Tool("brotli", "brotli", "the reference brotli CLI test_compression compares sizes with"),
    Tool("/usr/bin/chromium", "chromium", "Playwright's browser; kaleido's PNG export in notebook runs"),
    Tool("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf", "fonts-liberation",
         "the Arial-compatible font of the charts Chromium draws"),
    Tool("java", "default-jre-headless", "runs Spark local[2] for test_engine (the pyspark extra)",
         owners=("openjdk-17-jre-headless",)),
    Tool("goaccess", "goaccess", "the baseline of benchmarks/bench_ingest.py", group="bench"),
    Tool("pgbadger", "pgbadger", "a baseline of benchmarks/bench_db_ingest.py", group="bench"),
    Tool("pt-query-digest", "percona-toolkit", "a baseline of benchmarks/bench_db_ingest.py", group="bench"),
)

GROUPS = {"test": ("test",), "bench": ("test", "bench")}
# `python3 -m venv` needs ensurepip, which Debian ships apart; only checked while .venv does not exist yet
VENV = Tool("python3 -m venv", "python3-venv", "make creates .venv with it")


def tools_for(group: str) -> list[Tool]:
    return [t for t in TOOLS if t.group in GROUPS[group]]


def is_present(tool: Tool, path: str | None = None, root: Path = Path("/")) -> bool:
    """A command is on ``path`` (default: $PATH); an absolute path is a file under ``root``."""
    if tool.name.startswith("/"):
        return (root / tool.name.lstrip("/")).is_file()
    return shutil.which(tool.name, path=path) is not None


def missing(tools: Sequence[Tool], path: str | None = None, root: Path = Path("/")) -> list[Tool]:
    return [t for t in tools if not is_present(t, path, root)]


def packages(tools: Sequence[Tool]) -> list[str]:
    return list(dict.fromkeys(t.package for t in tools))


def install_command(pkgs: Sequence[str], as_root: bool) -> str:
    sudo = "" if as_root else "sudo "
    return (f"{sudo}apt-get update && {sudo}apt-get install -y --no-install-recommends "
            + " ".join(shlex.quote(p) for p in pkgs))


def report(absent: Sequence[Tool], as_root: bool) -> str:
    """The message for missing tools: each with its package and use, then the one command to run."""
    name_w, package_w = (max(len(getattr(t, a)) for t in absent) for a in ("name", "package"))
    lines = ["perfkit: system tools the tests use are missing (tool, Debian package, use):"]
    lines += [f"  {t.name:<{name_w}}  {t.package:<{package_w}}  {t.why}" for t in absent]
    lines += ["Install them (Debian/Ubuntu) with:", f"  {install_command(packages(absent), as_root)}",
              "then run the tests again. `make test` runs this command itself when it runs as root."]
    return "\n".join(lines)


def ensure(group: str, install: bool, *, path: str | None = None, root: Path = Path("/"),
           venv_exists: bool = True, is_root: bool | None = None, has_apt: bool | None = None,
           run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> int:
    """Check the group's tools, install what is missing when allowed and possible; the exit code."""
    absent = missing(tools_for(group), path, root)
    if not venv_exists and importlib.util.find_spec("ensurepip") is None:
        absent.append(VENV)
    if not absent:
        return 0
    is_root = os.geteuid() == 0 if is_root is None else is_root
    has_apt = shutil.which("apt-get", path=path) is not None if has_apt is None else has_apt
    if not (install and is_root and has_apt):
        print(report(absent, is_root), file=sys.stderr)
        return 2
    pkgs = packages(absent)
    print(f"perfkit: installing the missing system packages: {' '.join(pkgs)}", file=sys.stderr, flush=True)
    # no prompt can wait for an answer: stdin is closed and debconf asks nothing
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *pkgs]):
        if run(cmd, stdin=subprocess.DEVNULL, env=env).returncode != 0:
            print(f"perfkit: `{shlex.join(cmd)}` failed; the tests need: {' '.join(pkgs)}", file=sys.stderr)
            return 1
    still = [t for t in absent if t is not VENV and not is_present(t, path, root)]
    if still:
        print("perfkit: installed, but still missing:\n" + report(still, is_root), file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true",
                        help="as root with apt-get: install the missing packages (otherwise print the command)")
    parser.add_argument("--for", dest="group", choices=sorted(GROUPS), default="test",
                        help="the tools of `make test` (default) or of `make bench` too")
    args = parser.parse_args(argv)
    return ensure(args.group, args.install, venv_exists=(PROJECT_ROOT / ".venv" / "bin" / "python").exists())


if __name__ == "__main__":
    sys.exit(main())
