"""Wall time and peak memory (PSS summed over the whole process tree, sampled) of a command."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_bytes: int  # PSS summed over the process tree
    returncode: int


def _footprint(process: psutil.Process) -> int:
    """Proportional set size (shared pages split among the processes that map them), else RSS: the
    sum over a process tree such as Chromium's then counts shared memory once."""
    try:
        return int(process.memory_full_info().pss)
    except (AttributeError, psutil.AccessDenied):
        return int(process.memory_info().rss)


def measure(command: list[str], interval_s: float = 0.1) -> Measurement:
    """Run ``command``; sample the summed memory (PSS) of it and its children every ``interval_s`` seconds."""
    started = time.perf_counter()
    proc = subprocess.Popen(command)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(_footprint(p) for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(interval_s)
    return Measurement(time.perf_counter() - started, peak, proc.returncode)
