"""Wall time and peak resident memory (whole process tree, sampled) of a command."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_rss_bytes: int
    returncode: int


def measure(command: list[str], interval_s: float = 0.1) -> Measurement:
    """Run ``command``; sample the summed RSS of it and its children every ``interval_s`` seconds."""
    started = time.perf_counter()
    proc = subprocess.Popen(command)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(interval_s)
    return Measurement(time.perf_counter() - started, peak, proc.returncode)
