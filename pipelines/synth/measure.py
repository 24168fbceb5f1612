"""Wall time and peak memory of a command's whole process tree: how every benchmark phase is measured."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import psutil

from pipelines.core.errors import ChurnwatchError


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measured(cmd: list[str], env: dict, log: Path) -> dict:
    """Run a command; return wall seconds and the peak RSS of its whole process tree (sampled every 50 ms)."""
    started = time.perf_counter()
    with open(log, "a") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        ps = psutil.Process(proc.pid)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                try:
                    peak = max(peak, _tree_rss(ps))
                except psutil.Error:
                    pass
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    if code != 0:
        raise ChurnwatchError(f"benchmark step failed ({' '.join(cmd[2:5])}...); see {log}")
    return {"seconds": round(time.perf_counter() - started, 2), "peak_rss_mb": round(peak / 2**20, 1)}
