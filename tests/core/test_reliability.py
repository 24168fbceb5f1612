"""Re-runs, backfills and runs killed mid-write leave exactly the tables of one clean run.

The CLI runs in a subprocess; CHURNWATCH_CRASH_AT makes it die with os._exit between a DELETE and the
INSERT that follows it inside a transaction, as a kill -9 or a lost machine would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.core.config import load_config
from pipelines.core.warehouse import get_engine, read_frame
from tests.conftest import write_landing

DAYS = ["2025-03-29", "2025-03-30", "2025-03-31"]
STEPS = "load_landing,validate_data,build_features"
TABLES = [
    "raw_transactions",
    "raw_customers",
    "stg_transactions",
    "stg_customers",
    "quarantine_transactions",
    "customer_features",
]
VOLATILE = {"run_id", "created_at", "loaded_at"}
HEADER = "txn_id,customer_id,ts,amount,type,channel\n"


def _landing(root: Path) -> None:
    write_landing(root, "customers", DAYS[0], "customer_id,region\n" + "".join(f"C{i},north\n" for i in range(12)))
    for n, day in enumerate(DAYS):
        rows = "".join(f"{day}-{i},C{i},{day} 1{i % 10}:00:00,{i + n}.5,purchase,web\n" for i in range(10))
        rows += f"{day}-bad,C1,{day} 10:00:00,oops,purchase,web\n"  # one quarantined row a day
        rows += f"{DAYS[0]}-3,C3,{DAYS[0]} 13:00:00,3.5,purchase,web\n" if n else ""  # re-sent: duplicate
        write_landing(root, "transactions", day, HEADER + rows)


def _setup(tmp_path: Path, name: str, url: str | None) -> tuple[Path, dict]:
    root = tmp_path / name
    root.mkdir()
    _landing(root)
    (root / "churnwatch.yaml").write_text(
        yaml.safe_dump(
            {"warehouse": {"url": "duckdb:///var/wh.duckdb"}, "sources": {"landing_dir": "landing", "lookback_days": 1}}
        )
    )
    env = {**os.environ, "CHURNWATCH_CONFIG": str(root / "churnwatch.yaml")}
    env.pop("CHURNWATCH_CRASH_AT", None)
    if url:
        env["CHURNWATCH_WAREHOUSE_URL"] = url
    return root, env


def _cli(env: dict, *args: str, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {**env, **({"CHURNWATCH_CRASH_AT": crash} if crash else {})}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _snapshot(root: Path, env: dict) -> dict[str, pd.DataFrame]:
    cfg = load_config(root / "churnwatch.yaml")
    if "CHURNWATCH_WAREHOUSE_URL" in env:
        cfg.warehouse.url = env["CHURNWATCH_WAREHOUSE_URL"]
    engine = get_engine(cfg)
    out = {}
    for table in [*TABLES, "dq_runs", "landing_files"]:
        frame = read_frame(engine, f"SELECT * FROM {table}")
        frame = frame.drop(columns=[c for c in frame.columns if c in VOLATILE])
        out[table] = frame.sort_values(list(frame.columns)).reset_index(drop=True).astype(str)
    engine.dispose()
    return out


def _assert_same(a: dict, b: dict) -> None:
    for table in a:
        pd.testing.assert_frame_equal(a[table], b[table], obj=table)


@pytest.fixture(params=["duckdb", "postgres"])
def urls(request):
    """Two fresh warehouses (None means a DuckDB file under the test's folder)."""
    if request.param == "duckdb":
        return None, None
    server = request.getfixturevalue("pg_server")
    made = [server.create_database(), server.create_database()]
    request.addfinalizer(lambda: [server.drop_database(u) for u in made])
    return made[0], made[1]


@pytest.mark.slow
def test_killed_runs_and_reruns_leave_the_tables_of_one_clean_run(tmp_path, urls):
    clean_root, clean_env = _setup(tmp_path, "clean", urls[0])
    done = _cli(clean_env, "backfill", "--start", DAYS[0], "--end", DAYS[-1], "--steps", STEPS)
    assert done.returncode == 0, done.stderr
    clean = _snapshot(clean_root, clean_env)
    assert len(clean["customer_features"]) == 36 and len(clean["quarantine_transactions"]) == 5

    root, env = _setup(tmp_path, "crashy", urls[1])
    for day in DAYS[:-1]:
        assert _cli(env, "run", "--date", day, "--steps", STEPS).returncode == 0
    before = _snapshot(root, env)
    # Killed inside each step's transaction: none of that step's writes may be visible afterwards.
    for crash, steps, untouched in [
        ("load_landing", "load_landing", list(before)),
        ("validate_data:2", "load_landing,validate_data", ["stg_transactions", "quarantine_transactions", "dq_runs"]),
        ("customer_features", STEPS, ["customer_features"]),
    ]:
        killed = _cli(env, "run", "--date", DAYS[-1], "--steps", steps, crash=crash)
        assert killed.returncode == 137, (crash, killed.stderr[-500:])
        now = _snapshot(root, env)
        _assert_same({t: now[t] for t in untouched}, {t: before[t] for t in untouched})
    again = _cli(env, "run", "--date", DAYS[-1], "--steps", STEPS)
    assert again.returncode == 0, again.stderr
    _assert_same(_snapshot(root, env), clean)

    # Re-running every day (a second backfill) changes nothing either.
    assert _cli(env, "backfill", "--start", DAYS[0], "--end", DAYS[-1], "--steps", STEPS).returncode == 0
    _assert_same(_snapshot(root, env), clean)


def test_bad_data_is_one_line_from_the_cli(tmp_path):
    root, env = _setup(tmp_path, "bad", None)
    write_landing(root, "transactions", DAYS[-1], "txn_id,client,ts,amount\nt1,C1,2025-03-31,1\n")
    done = _cli(env, "run", "--date", DAYS[-1], "--steps", "load_landing")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: transactions: file ") and "'customer_id'" in lines[0]
