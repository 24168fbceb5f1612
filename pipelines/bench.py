"""Benchmark: N customers with two years of history; time one nightly increment and one retrain.

Phases, each in a subprocess whose whole process tree is sampled for memory (RSS):
1. generate: about 50 transactions and 10 service events per customer over two years (blocks of
   customers, appended to the same daily files);
2. history: load and validate the history once, in windows of `history_window` days (reported apart);
3. nightly: the day's increment through every nightly step (`churnwatch run --date D`);
4. retrain: `churnwatch train --date D`.
Wall time per step comes from `pipeline_runs`; results go to `bench/results/<name>.json`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import psutil
import yaml

from pipelines.errors import ChurnwatchError

BLOCK = 50_000
DAYS = 730


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


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_bench(customers: int, name: str, workdir: Path, results_dir: Path, history_window: int = 60) -> dict:
    """Run the benchmark and write results_dir/<name>.json; return the results."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "bench.log"
    log.write_text("")
    config = workdir / "churnwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "warehouse": {"url": "duckdb:///wh.duckdb"},
                "sources": {"landing_dir": "gen/landing", "lookback_days": 3},
                "training": {"n_cutoffs": 6},
            }
        )
    )
    env = {**os.environ, "CHURNWATCH_CONFIG": str(config), "CHURNWATCH_WAREHOUSE_URL": ""}
    env.pop("CHURNWATCH_WAREHOUSE_URL")
    cli = [sys.executable, "-m", "pipelines.cli"]
    start = date(2024, 1, 1)
    last = start + timedelta(days=DAYS - 1)
    results: dict = {"name": name, "customers": customers, "days": DAYS, "machine": machine(), "phases": {}}

    gen = measured(
        [sys.executable, "-m", "pipelines.bench", "generate", str(workdir / "gen"), str(customers)], env, log
    )
    counts = json.loads((workdir / "gen" / "counts.json").read_text())
    results["rows"] = counts
    results["phases"]["generate"] = gen

    # History: everything before the last day, validated in windows (each window one run).
    hist = {"seconds": 0.0, "peak_rss_mb": 0.0, "windows": 0}
    window_start = start
    while window_start <= last - timedelta(days=1):
        window_end = min(window_start + timedelta(days=history_window - 1), last - timedelta(days=1))
        cmd = [*cli, "run", "--date", window_end.isoformat(), "--since", window_start.isoformat()]
        m = measured([*cmd, "--steps", "load_landing,validate_data"], env, log)
        hist["seconds"] += m["seconds"]
        hist["peak_rss_mb"] = max(hist["peak_rss_mb"], m["peak_rss_mb"])
        hist["windows"] += 1
        window_start = window_end + timedelta(days=1)
    hist["seconds"] = round(hist["seconds"], 2)
    results["phases"]["history_load"] = hist

    # The champion the nightly run scores with is trained first (the retrain is timed on its own below).
    measured([*cli, "train", "--date", (last - timedelta(days=1)).isoformat()], env, log)
    nightly = measured([*cli, "run", "--date", last.isoformat()], env, log)
    nightly["steps"] = step_times(workdir / "wh.duckdb", last)
    results["phases"]["nightly"] = nightly
    retrain = measured([*cli, "train", "--date", last.isoformat()], env, log)
    results["phases"]["retrain"] = retrain

    increment = day_rows(workdir / "gen" / "landing", last)
    results["increment_rows"] = increment
    results["nightly_rows_per_second"] = round(sum(increment.values()) / nightly["seconds"], 1)
    results["nightly_customers_per_second"] = round(customers / nightly["seconds"], 1)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def step_times(warehouse: Path, as_of: date) -> dict[str, float]:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    rows = con.execute(
        "SELECT step, epoch(finished_at - started_at) FROM pipeline_runs WHERE as_of_date = ? ORDER BY started_at DESC",
        [as_of],
    ).fetchall()
    con.close()
    out: dict[str, float] = {}
    for step, seconds in rows:
        out.setdefault(step, round(float(seconds), 2))
    return out


def day_rows(landing: Path, day: date) -> dict[str, int]:
    out = {}
    for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
        path = folder / f"{day.isoformat()}.csv"
        out[folder.name] = sum(1 for _ in open(path)) - 1 if path.exists() else 0
    return out


def generate_blocks(out: Path, customers: int) -> dict[str, int]:
    """Generate customers in blocks appended to the same daily files; return row counts."""
    import shutil

    from pipelines.generate import GeneratorSpec, generate

    shutil.rmtree(out, ignore_errors=True)
    totals: dict[str, int] = {}
    for b, first in enumerate(range(0, customers, BLOCK)):
        n = min(BLOCK, customers - first)
        spec = GeneratorSpec(customers=n, days=DAYS, seed=1000 + b, start=date(2024, 1, 1), id_prefix=f"B{b:03d}")
        counts = generate(spec, out, "csv", append=True, truth=False)
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    (out / "counts.json").write_text(json.dumps(totals))
    return totals


if __name__ == "__main__":  # the generate phase runs here so that its memory is measured on its own
    if len(sys.argv) == 4 and sys.argv[1] == "generate":
        generate_blocks(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: python -m pipelines.bench generate OUT CUSTOMERS")
