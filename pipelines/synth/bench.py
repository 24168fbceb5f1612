"""Benchmark: N customers with two years of history; time one nightly increment and one retrain.

Phases, each in a subprocess whose whole process tree is sampled for memory (RSS):
1. generate: about 50 transactions and 10 service events per customer over two years (blocks of
   customers, appended to the same daily files);
2. history: load and validate the history once (`churnwatch load-history`, windows of `history_window`
   days, reported apart);
3. nightly: the day's increment through every nightly step (`churnwatch run --date D`), after the night
   before has run once untimed (a nightly run in service starts from yesterday's outputs);
4. retrain: `churnwatch train --date D`;
5. peers (unless peers_python is None): lifetimes and PyMC-Marketing against churnwatch's feature build on one
   transactions CSV of at least `peers_rows` rows (pipelines/synth/peers.py), under results["peers"].
Wall time per step comes from `pipeline_runs`; results go to `bench/results/<name>.json`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from datetime import date, timedelta
from pathlib import Path

import psutil
import yaml

from pipelines.core.errors import ChurnwatchError
from pipelines.steps import history_windows
from pipelines.synth.measure import measured

BLOCK = 50_000
DAYS = 730


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
        "libraries": {
            name: importlib.metadata.version(name)
            for name in ("duckdb", "pandas", "scikit-learn", "great-expectations")
        },
    }


def run_bench(
    customers: int,
    name: str,
    workdir: Path,
    results_dir: Path,
    history_window: int = 60,
    repeat: int = 3,
    reuse: bool = False,
    peers_python: Path | None = None,
    peers_rows: int = 10_000_000,
) -> dict:
    """Run the benchmark and write results_dir/<name>.json; return the results.

    The nightly run and the retrain are repeated `repeat` times (each re-run replaces the same
    outputs) and reported as medians. reuse=True keeps the generated data and loaded history of an
    earlier run in workdir (its generate and history figures are carried over from its results file).
    peers_python is the peers venv's interpreter; None leaves the side by side out.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "bench.log"
    previous = results_dir / f"{name}.json"
    reuse = reuse and (workdir / "wh.duckdb").exists() and previous.exists()
    if not reuse:
        log.write_text("")
    config = workdir / "churnwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "warehouse": {"url": "duckdb:///wh.duckdb"},
                "sources": {"landing_dir": "gen/landing", "lookback_days": 3},
                "training": {"n_cutoffs": 10, "cutoff_every_days": 21},
            }
        )
    )
    env = {**os.environ, "CHURNWATCH_CONFIG": str(config), "CHURNWATCH_WAREHOUSE_URL": ""}
    env.pop("CHURNWATCH_WAREHOUSE_URL")
    results: dict = {"name": name, "customers": customers, "days": DAYS, "machine": machine(), "phases": {}}
    if reuse:
        earlier = json.loads(previous.read_text())
        results["history_load_machine"] = earlier["machine"]
        results["rows"] = earlier["rows"]
        results["phases"] = {k: earlier["phases"][k] for k in ("generate", "history_load")}
    else:
        results["rows"], results["phases"] = _generate_and_load(customers, workdir, env, log, history_window)
        # Written now, so that a later --reuse can time the nightly run again without the history load.
        results_dir.mkdir(parents=True, exist_ok=True)
        previous.write_text(json.dumps(results, indent=2, default=str))
    if peers_python is not None and results["rows"]["transactions"] < peers_rows:
        raise ChurnwatchError(
            f"{results['rows']['transactions']:,} transactions are too few for the side by side with the peers"
            f" ({peers_rows:,} wanted): more customers, a smaller --peers-rows, or --no-peers"
        )
    results["phases"].update(_nightly_and_retrain(workdir, env, log, repeat))
    last = date(2024, 1, 1) + timedelta(days=DAYS - 1)
    nightly = results["phases"]["nightly"]
    increment = day_rows(workdir / "gen" / "landing", last)
    results["increment_rows"] = increment
    results["nightly_rows_per_second"] = round(sum(increment.values()) / nightly["seconds"], 1)
    results["nightly_customers_per_second"] = round(customers / nightly["seconds"], 1)
    if peers_python is not None:
        from pipelines.synth.peers import run_peers

        landing = workdir / "gen" / "landing"
        results["peers"] = run_peers(landing, workdir / "peers", env, log, peers_python, peers_rows)
    results_dir.mkdir(parents=True, exist_ok=True)
    previous.write_text(json.dumps(results, indent=2, default=str))
    return results


def _generate_and_load(customers: int, workdir: Path, env: dict, log: Path, history_window: int) -> tuple[dict, dict]:
    """Generate the data and load its history once (validated, in windows); return (row counts, phases)."""
    cli = [sys.executable, "-m", "pipelines.cli"]
    start = date(2024, 1, 1)
    last = start + timedelta(days=DAYS - 1)
    phases: dict = {}
    phases["generate"] = measured(
        [sys.executable, "-m", "pipelines.synth.bench", "generate", str(workdir / "gen"), str(customers)], env, log
    )
    counts = json.loads((workdir / "gen" / "counts.json").read_text())
    # One `churnwatch load-history` process, as a new install runs it: windows of history_window days.
    until = last - timedelta(days=1)
    cmd = [*cli, "load-history", "--start", start.isoformat(), "--end", until.isoformat()]
    hist = measured([*cmd, "--window-days", str(history_window)], env, log)
    hist["windows"] = len(history_windows(start, until, history_window))
    phases["history_load"] = hist
    # The champion the nightly run scores with is trained first (the retrain is timed on its own).
    measured([*cli, "train", "--date", (last - timedelta(days=1)).isoformat()], env, log)
    return counts, phases


def _median_run(cmd: list[str], env: dict, log: Path, repeat: int, before=None) -> dict:
    runs = []
    for _ in range(repeat):
        if before is not None:
            before()
        runs.append(measured(cmd, env, log))
    seconds = sorted(r["seconds"] for r in runs)
    return {
        "seconds": seconds[len(seconds) // 2],
        "runs_seconds": [r["seconds"] for r in runs],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }


def _nightly_and_retrain(workdir: Path, env: dict, log: Path, repeat: int) -> dict:
    cli = [sys.executable, "-m", "pipelines.cli"]
    last = date(2024, 1, 1) + timedelta(days=DAYS - 1)
    # The night before runs first, untimed: a nightly run in service has yesterday's outputs (its BG/NBD
    # fit, which tonight's fit starts from, and its alerts for the cooldown).
    measured([*cli, "run", "--date", (last - timedelta(days=1)).isoformat()], env, log)
    # Each timed run starts as the night's first would: any feature state stored for it is dropped, so
    # every run rolls the state the night before left, as six nights in seven do (the seventh also stores
    # a new state: docs/scaling.md gives its cost).
    nightly = _median_run(
        [*cli, "run", "--date", last.isoformat()], env, log, repeat, before=lambda: _forget_state(workdir, last)
    )
    nightly["steps"] = step_times(workdir / "wh.duckdb", last, repeat)
    retrain = _median_run([*cli, "train", "--date", last.isoformat()], env, log, repeat)
    return {"nightly": nightly, "retrain": retrain}


def _forget_state(workdir: Path, night: date) -> None:
    """Delete the feature states a run for `night` stores (on or after its settled day)."""
    import duckdb

    from pipelines.core.config import load_config
    from pipelines.features.feature_state import settled_day

    day = settled_day(night, load_config(workdir / "churnwatch.yaml"))
    con = duckdb.connect(str(workdir / "wh.duckdb"))
    for table in ("feature_state", "feature_state_log"):
        con.execute(f"DELETE FROM {table} WHERE state_date >= ?", [day])
    con.close()


def step_times(warehouse: Path, as_of: date, repeat: int) -> dict[str, float]:
    """Median seconds per nightly step over the last `repeat` runs."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    rows = con.execute(
        "SELECT step, epoch(finished_at - started_at) FROM pipeline_runs WHERE as_of_date = ? ORDER BY started_at DESC",
        [as_of],
    ).fetchall()
    con.close()
    from pipelines.steps import NIGHTLY

    per_step: dict[str, list[float]] = {}
    for step, seconds in rows:
        if step not in NIGHTLY:  # the retrain records train_model for the same date
            continue
        if len(per_step.setdefault(step, [])) < repeat:
            per_step[step].append(float(seconds))
    return {step: round(sorted(v)[len(v) // 2], 2) for step, v in per_step.items()}


def day_rows(landing: Path, day: date) -> dict[str, int]:
    out = {}
    for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
        path = folder / f"{day.isoformat()}.csv"
        out[folder.name] = sum(1 for _ in open(path)) - 1 if path.exists() else 0
    return out


def generate_blocks(out: Path, customers: int) -> dict[str, int]:
    """Generate customers in blocks appended to the same daily files; return row counts."""
    import shutil

    from pipelines.synth.generate import GeneratorSpec, generate

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
        sys.exit("usage: python -m pipelines.synth.bench generate OUT CUSTOMERS")
