"""Wall time and memory of a command: peak PSS summed over its process tree (sampled, :func:`measure`), or
peak RSS and CPU time from the kernel's accounting of one child (:func:`run_child`)."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_bytes: int  # PSS (or RSS, ``pss=False``) summed over the process tree
    returncode: int
    timed_out: bool = False  # killed, with its process group, after ``timeout_s``
    # user + system CPU seconds of the tree: each process's last sampled times, summed (processes nobody
    # waits for, such as kernels and JVMs, count too; a process's last interval before it ends can be missed)
    cpu_seconds: float = 0.0


def _footprint(process: psutil.Process) -> int:
    """Proportional set size (shared pages split among the processes that map them), else RSS: the
    sum over a process tree such as Chromium's then counts shared memory once."""
    try:
        return int(process.memory_full_info().pss)
    except (AttributeError, psutil.AccessDenied):
        return int(process.memory_info().rss)


def measure(command: list[str], interval_s: float = 0.1, *, timeout_s: float | None = None,
            pss: bool = True, quiet: bool = False) -> Measurement:
    """Run ``command`` (its output discarded when ``quiet``); sample the summed memory (PSS, or RSS when not
    ``pss``) and the CPU times of it and its children every ``interval_s`` seconds. With ``timeout_s``, the
    command runs in its own process group, killed whole (a JVM it started too) when it runs longer."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, start_new_session=timeout_s is not None,
                            stdout=subprocess.DEVNULL if quiet else None)
    root = psutil.Process(proc.pid)
    peak = 0
    cpu: dict[tuple[int, float], float] = {}   # (pid, start time) -> last user + system seconds
    while proc.poll() is None:
        if timeout_s is not None and time.perf_counter() - started > timeout_s:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return Measurement(time.perf_counter() - started, peak, proc.returncode, timed_out=True,
                               cpu_seconds=sum(cpu.values()))
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(_footprint(p) if pss else int(p.memory_info().rss) for p in tree if p.is_running()))
        except psutil.Error:
            tree = []
        for p in tree:
            try:
                t = p.cpu_times()
                cpu[(p.pid, p.create_time())] = t.user + t.system
            except psutil.Error:
                pass
        time.sleep(interval_s)
    return Measurement(time.perf_counter() - started, peak, proc.returncode, cpu_seconds=sum(cpu.values()))


def run_child(cmd: list[str], **kw) -> tuple[subprocess.CompletedProcess, float, int, float]:
    """Run a command; return it (stdout, stderr as text), its wall seconds, its peak RSS in KiB and its
    CPU seconds (user + system, from wait4)."""
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        # files, not pipes: a child writing more than a pipe buffer (GoAccess's progress) would block
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_file, stderr=err_file, text=True, **kw)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    return (subprocess.CompletedProcess(cmd, os.waitstatus_to_exitcode(status), out, err), seconds,
            usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
