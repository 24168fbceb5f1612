import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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
    assert '"world": "observable"' in proc.stdout
    meta = (tmp_path / "o" / "truth" / "meta.json").read_text()
    assert '"decline_lag_days": 90.0' in meta
