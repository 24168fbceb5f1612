import json
import os
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "pipelines.cli"]


def _run(args, tmp_path, env_extra=None):
    env = {**os.environ, "CHURNWATCH_CONFIG": str(tmp_path / "churnwatch.yaml"), **(env_extra or {})}
    return subprocess.run(CLI + args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def _config(tmp_path, extra=""):
    (tmp_path / "churnwatch.yaml").write_text("sources:\n  landing_dir: landing\n" + extra)


def test_bad_date_is_one_line(tmp_path):
    _config(tmp_path)
    proc = _run(["run", "--date", "2025-13-45"], tmp_path)
    assert proc.returncode == 2
    assert "--date '2025-13-45' is not a date" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_bad_config_key_is_one_line(tmp_path):
    _config(tmp_path, "alerts:\n  capacityy: 3\n")
    proc = _run(["run", "--date", "2025-03-31"], tmp_path)
    assert proc.returncode == 2
    assert "alerts.capacityy: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_landing_file_is_one_line(tmp_path):
    _config(tmp_path)
    proc = _run(["run", "--date", "2025-03-31"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: transactions: no data for 2025-03-31 in ")
    assert "(freshness check)" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_a_warehouse_out_of_memory_is_one_line_naming_the_step_and_the_setting(tmp_path, small_dataset):
    import shutil

    shutil.copytree(small_dataset / "landing", tmp_path / "landing")
    _config(tmp_path, "warehouse:\n  duckdb_memory_limit: 16MB\n")
    proc = _run(["run", "--date", "2025-10-27", "--since", "2025-01-01", "--workers", "1"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    step = re.match(r"error: (\w+) for 2025-10-27: DuckDB ran out of memory at its limit \(now 16MB\): ", lines[0])
    assert step and "raise warehouse.duckdb_memory_limit" in lines[0], lines[0]
    con = duckdb.connect(str(tmp_path / "var" / "churnwatch.duckdb"), read_only=True)
    failed = con.execute("SELECT step, message FROM pipeline_runs WHERE status = 'failed'").fetchall()
    con.close()
    assert len(failed) == 1 and failed[0][0] == step[1] and "ran out of memory" in failed[0][1]


def test_unreachable_database_is_one_line_without_password(tmp_path):
    _config(tmp_path)
    url = "postgresql+psycopg2://churn:s3cret@127.0.0.1:1/nowhere"
    proc = _run(["run", "--date", "2025-03-31"], tmp_path, {"CHURNWATCH_WAREHOUSE_URL": url})
    assert proc.returncode == 2
    assert "cannot connect to warehouse" in proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_score_without_model_is_a_cold_start_that_says_how_to_train(tmp_path):
    _config(tmp_path)
    proc = _run(["run", "--date", "2025-03-31", "--steps", "score_customers,monitor_model"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "cold start, alerts from rules only" in proc.stdout and "churnwatch train" in proc.stdout


def test_generate_is_deterministic(tmp_path):
    _config(tmp_path)
    for out in ("a", "b"):
        proc = _run(["generate", "--out", out, "--customers", "150", "--days", "60", "--seed", "5"], tmp_path)
        assert proc.returncode == 0, proc.stderr
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.csv"))
    assert files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_generate_world(tmp_path):
    _config(tmp_path)
    proc = _run(["generate", "--out", "x", "--customers", "50", "--days", "30", "--world", "observabel"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --world must be one of default, observable, not 'observabel'"
    proc = _run(["generate", "--out", "o", "--customers", "150", "--days", "60", "--world", "observable"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "world: observable" in proc.stdout
    meta = (tmp_path / "o" / "truth" / "meta.json").read_text()
    assert '"decline_lag_days": 90.0' in meta


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run"], "error: churnwatch run: missing --date (see churnwatch run --help)"),
        (["run", "--dat", "2025-03-31"], "error: churnwatch run: No such option: --dat (Possible options: --date)"),
        (["rnu"], "error: churnwatch: no such command 'rnu'; did you mean 'run'?"),
        (["models"], "error: churnwatch models needs a command: list, promote, rollback"),
        (["models", "lst"], "error: churnwatch models: no such command 'lst'; did you mean 'list'?"),
        (["outcomes"], "error: churnwatch outcomes needs a command: import"),
        (
            ["run", "--date", "2025-03-31", "--workers", "0"],
            "error: churnwatch run: Invalid value for '--workers': Input should be greater than or equal to 1",
        ),
        (
            ["load-history", "--start", "2025-01-02", "--end", "2025-01-01"],
            "error: --end 2025-01-01 is before --start 2025-01-02",
        ),
        (
            ["load-history", "--start", "2025-01-01", "--end", "2025-01-31", "--window-days", "0"],
            "error: churnwatch load-history: Invalid value for '--window-days'",
        ),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(tmp_path, args, expected):
    _config(tmp_path)
    proc = _run(args, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_summaries_are_short_and_rounded_and_json_on_request(tmp_path):
    _config(tmp_path)
    short = _run(["run", "--date", "2025-03-31", "--steps", "score_customers"], tmp_path)
    assert short.returncode == 0, short.stderr
    assert short.stdout.strip().splitlines()[-1].startswith("score_customers: message cold start")
    full = _run(["run", "--date", "2025-03-31", "--steps", "score_customers", "--json"], tmp_path)
    assert json.loads(full.stdout[full.stdout.index("{") :])["score_customers"]["scored"] == 0


def test_steps_help_lists_the_steps(tmp_path):
    proc = _run(["run", "--help"], tmp_path, {"COLUMNS": "200"})
    assert "load_landing, validate_data, build_features" in proc.stdout


def test_models_list_fits_100_columns_and_shows_no_nan(tmp_path):
    from pipelines.core.config import load_config
    from pipelines.core.warehouse import get_engine, insert_frame

    _config(tmp_path)
    engine = get_engine(load_config(tmp_path / "churnwatch.yaml"))
    with engine.begin() as conn:
        insert_frame(
            conn,
            "model_registry",
            pd.DataFrame(
                [
                    {
                        "model_version": "m2025-03-30-abcdef123456",
                        "trained_on": date(2025, 3, 30),
                        "status": "champion",
                        "model_kind": "logistic_btyd",
                        "validation_auc": 0.81234,
                        "champion_auc_same_validation": None,
                        "created_at": datetime(2025, 3, 31, 1, 0),
                        "promoted_at": None,
                        "horizon_days": 90,
                        "artifact_path": "x",
                    }
                ]
            ),
        )
    engine.dispose()
    proc = _run(["models", "list"], tmp_path, {"COLUMNS": "100"})
    assert proc.returncode == 0, proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) <= 100
    assert "0.812" in proc.stdout and "champion" in proc.stdout
    assert "nan" not in proc.stdout.lower() and "NaT" not in proc.stdout
