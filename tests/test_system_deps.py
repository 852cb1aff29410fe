"""tests/system_deps.py: its table names every external program the tests, the kit and the benchmarks run,
each with the package that really provides it; a missing tool gives the exact install command (or, as
root, installs exactly the missing packages) and a machine that has everything never calls apt-get."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import system_deps
from tests.conftest import PROJECT_ROOT
from tests.system_deps import TOOLS, ensure, tools_for

# Programs of Essential Debian packages (util-linux, coreutils, dash), on every Debian system: no table entry.
ESSENTIAL = {"runuser", "unshare", "true", "sh"}
SUBPROCESS = {"subprocess.run", "subprocess.Popen", "subprocess.call", "subprocess.check_call",
              "subprocess.check_output"}
ABSOLUTE = re.compile(r"/(usr|bin|sbin)/[\w.+/-]+")  # a whole string that is a path Debian packages own


def _programs(source: str) -> set[str]:
    """The external programs a module names: ``shutil.which("x")``, ``subprocess.*(["x", ...])``, absolute
    paths, and ``BASE / "x"`` where ``BASE = Path("/abs")`` is a module constant."""
    tree = ast.parse(source)
    bases = {t.id: n.value.args[0].value for n in tree.body if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Call)
             and ast.unparse(n.value.func) == "Path" and n.value.args
             and isinstance(n.value.args[0], ast.Constant) and isinstance(n.value.args[0].value, str)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func, first = ast.unparse(node.func), node.args[0]
            if func == "shutil.which" and isinstance(first, ast.Constant):
                found.add(first.value)
            if func in SUBPROCESS and isinstance(first, ast.List) and first.elts \
                    and isinstance(first.elts[0], ast.Constant) and isinstance(first.elts[0].value, str):
                found.add(first.elts[0].value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ABSOLUTE.fullmatch(node.value):
            found.add(node.value)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.left, ast.Name) \
                and node.left.id in bases and isinstance(node.right, ast.Constant):
            found.add(f"{bases[node.left.id]}/{node.right.value}")
    return found


def _sources() -> list[Path]:
    return sorted(p for folder in ("tests", "kit", "benchmarks") for p in (PROJECT_ROOT / folder).rglob("*.py")
                  if p.name != "system_deps.py" and p != Path(__file__))


def test_the_scan_finds_each_way_of_naming_a_program():
    source = ('import shutil, subprocess\nfrom pathlib import Path\nBASE = Path("/usr/lib/x/bin")\n'
              'shutil.which("a")\nsubprocess.run(["b", "-v"])\nsubprocess.Popen([str(BASE / "c")])\n'
              'EXE = "/usr/bin/d"\nsubprocess.run([sys.executable, "-m", "e"])\nFAKE = "/opt/f"\n'
              'LOG = "/usr/sbin/mysqld, Version: 8.0"\n')
    assert _programs(source) == {"a", "b", "/usr/lib/x/bin", "/usr/lib/x/bin/c", "/usr/bin/d"}


def test_the_table_covers_every_program_the_code_runs():
    names = {t.name for t in TOOLS}
    uncovered = {}
    for path in _sources():
        for program in _programs(path.read_text()) - names - ESSENTIAL:
            # a folder the programs are looked up in, such as PostgreSQL's bin/
            if not any(n.startswith(program.rstrip("/") + "/") for n in names):
                uncovered.setdefault(program, []).append(str(path.relative_to(PROJECT_ROOT)))
    assert not uncovered, f"add these to TOOLS in tests/system_deps.py: {uncovered}"
    # the scan does see the code: the services the tests start are among what it finds
    seen = set().union(*(_programs(p.read_text()) for p in _sources()))
    assert {"promtool", "prometheus", "wrk", "/usr/sbin/nginx", "/usr/bin/chromium", "goaccess"} <= seen


def test_the_groups():
    test, bench = tools_for("test"), tools_for("bench")
    assert set(test) < set(bench) and {t.group for t in bench} == {"test", "bench"}
    assert {t.package for t in test} == {"prometheus", "nginx", "wrk", "postgresql-15", "postgresql-client-15",
                                         "postgresql-15-hypopg", "brotli", "chromium", "fonts-liberation",
                                         "default-jre-headless"}


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="not a Debian system: no dpkg database to ask")
def test_each_package_is_the_one_that_provides_the_tool():
    for tool in TOOLS:
        # a glob so that a merged /usr (/bin -> /usr/bin) matches either spelling
        pattern = tool.name if tool.name.startswith("/") else f"*bin/{tool.name}"
        done = subprocess.run(["dpkg", "-S", pattern], capture_output=True, text=True)
        if done.returncode != 0:  # not installed here, so dpkg cannot say; the guard reports it
            continue
        owners = {pkg.strip() for line in done.stdout.splitlines() for pkg in line.split(":")[0].split(",")}
        assert tool.package in owners or owners & set(tool.owners), f"{tool.name}: {done.stdout.strip()}"


def _put(bin_dir: str, root: Path, name: str) -> None:
    """An empty executable: a command in ``bin_dir``, an absolute path under ``root``."""
    file = (root / name.lstrip("/")) if name.startswith("/") else Path(bin_dir) / name
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("#!/bin/sh\n")
    file.chmod(0o755)


def _fake_machine(tmp_path: Path, present: set[str]) -> tuple[str, Path]:
    """A PATH and a root folder holding only the ``present`` tools."""
    bin_dir, root = tmp_path / "bin", tmp_path / "root"
    bin_dir.mkdir()
    for name in present:
        _put(str(bin_dir), root, name)
    return str(bin_dir), root


class Apt:
    """Stands in for subprocess.run: records the apt-get calls; ``install`` creates the tools it installs."""

    def __init__(self, bin_dir: str, root: Path, install: bool = True) -> None:
        self.calls: list[list[str]] = []
        self.bin_dir, self.root, self.install = bin_dir, root, install

    def __call__(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        assert kw["stdin"] == subprocess.DEVNULL and kw["env"]["DEBIAN_FRONTEND"] == "noninteractive"
        self.calls.append(cmd)
        if self.install and cmd[1] == "install":
            packages = set(cmd[4:])
            for tool in TOOLS:
                if tool.package in packages:
                    _put(self.bin_dir, self.root, tool.name)
        return subprocess.CompletedProcess(cmd, 0)


ALL_BUT_PROMETHEUS_AND_WRK = {t.name for t in tools_for("test")} - {"promtool", "prometheus", "wrk"}


def test_a_machine_with_everything_calls_no_apt_get(tmp_path, capsys):
    path, root = _fake_machine(tmp_path, {t.name for t in TOOLS})
    apt = Apt(path, root)
    for group in ("test", "bench"):
        assert ensure(group, install=True, path=path, root=root, is_root=True, has_apt=True, run=apt) == 0
    assert apt.calls == [] and capsys.readouterr().err == ""


def test_missing_tools_without_root_give_the_exact_command(tmp_path, capsys):
    path, root = _fake_machine(tmp_path, ALL_BUT_PROMETHEUS_AND_WRK)
    apt = Apt(path, root)
    assert ensure("test", install=True, path=path, root=root, is_root=False, has_apt=True, run=apt) == 2
    err = capsys.readouterr().err
    assert apt.calls == []
    assert "sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus wrk\n" in err
    assert [line.split()[0] for line in err.splitlines()[1:4]] == ["promtool", "prometheus", "wrk"]


def test_missing_tools_without_apt_get_or_without_install_are_only_reported(tmp_path, capsys):
    path, root = _fake_machine(tmp_path, ALL_BUT_PROMETHEUS_AND_WRK)
    apt = Apt(path, root)
    assert ensure("test", install=True, path=path, root=root, is_root=True, has_apt=False, run=apt) == 2
    assert ensure("test", install=False, path=path, root=root, is_root=True, has_apt=True, run=apt) == 2
    assert apt.calls == []
    err = capsys.readouterr().err
    assert "\n  apt-get update && apt-get install -y --no-install-recommends prometheus wrk\n" in err


def test_root_installs_exactly_the_missing_packages(tmp_path, capsys):
    path, root = _fake_machine(tmp_path, ALL_BUT_PROMETHEUS_AND_WRK - {"/usr/bin/chromium"})
    apt = Apt(path, root)
    assert ensure("test", install=True, path=path, root=root, is_root=True, has_apt=True, run=apt) == 0
    assert apt.calls == [["apt-get", "update"],
                         ["apt-get", "install", "-y", "--no-install-recommends", "prometheus", "wrk", "chromium"]]
    assert "installing the missing system packages: prometheus wrk chromium" in capsys.readouterr().err
    assert ensure("bench", install=True, path=path, root=root, is_root=True, has_apt=True, run=apt) == 0
    assert apt.calls[2:] == [["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends",
                                                     "goaccess", "pgbadger", "percona-toolkit"]]


def test_an_install_that_leaves_a_tool_missing_fails(tmp_path, capsys):
    path, root = _fake_machine(tmp_path, ALL_BUT_PROMETHEUS_AND_WRK)
    apt = Apt(path, root, install=False)
    assert ensure("test", install=True, path=path, root=root, is_root=True, has_apt=True, run=apt) == 1
    assert len(apt.calls) == 2 and "still missing" in capsys.readouterr().err


def test_a_missing_venv_module_is_reported_only_while_there_is_no_venv(tmp_path, capsys, monkeypatch):
    path, root = _fake_machine(tmp_path, {t.name for t in TOOLS})
    monkeypatch.setattr(system_deps.importlib.util, "find_spec", lambda name: None)
    assert ensure("test", install=False, path=path, root=root, venv_exists=True, is_root=False) == 0
    assert ensure("test", install=False, path=path, root=root, venv_exists=False, is_root=False) == 2
    assert "sudo apt-get install -y --no-install-recommends python3-venv\n" in capsys.readouterr().err


def _without_prometheus_and_wrk(tmp_path: Path) -> dict[str, str]:
    """This machine's environment with a PATH that has every command but promtool, prometheus and wrk."""
    fake = tmp_path / "path"
    fake.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for exe in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if exe.name not in {"promtool", "prometheus", "wrk"} and not (fake / exe.name).exists():
                (fake / exe.name).symlink_to(exe)
    return {**os.environ, "PATH": str(fake)}


def test_the_script_and_the_pytest_guard_stop_with_the_command(tmp_path):
    env = _without_prometheus_and_wrk(tmp_path)
    sudo = "" if os.geteuid() == 0 else "sudo "
    command = f"{sudo}apt-get install -y --no-install-recommends prometheus wrk\n"
    # no --install: it must only report, even as root
    script = subprocess.run([sys.executable, str(PROJECT_ROOT / "tests" / "system_deps.py")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert script.returncode == 2 and command in script.stderr, script.stderr
    guard = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/test_config.py"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    assert guard.returncode == 2 and command in guard.stderr, guard.stdout + guard.stderr
    assert " passed" not in guard.stdout and " failed" not in guard.stdout
