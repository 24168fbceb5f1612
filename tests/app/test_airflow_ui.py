"""`make airflow` from a checkout: Airflow's own scheduler and UI start and serve both DAGs without import errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


@pytest.mark.slow
def test_make_airflow_serves_both_dags(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        # PATH without the venv: exactly what a user's shell has after a fresh clone.
        "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p),
    }
    log = open(tmp_path / "airflow.log", "w")
    proc = subprocess.Popen(
        ["make", "-s", "airflow"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}/api/v2"
    dags, errors = None, None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            dags, errors = _get(f"{base}/dags"), _get(f"{base}/importErrors")
            if (
                dags
                and errors is not None
                and {d["dag_id"] for d in dags["dags"]} >= {"churn_nightly", "churn_retrain"}
            ):
                break
            time.sleep(3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    out = (tmp_path / "airflow.log").read_text()
    assert "FileNotFoundError" not in out, out[-3000:]
    assert dags is not None, f"the API never answered on port {port}: {out[-3000:]}"
    assert {d["dag_id"] for d in dags["dags"]} >= {"churn_nightly", "churn_retrain"}
    assert errors["total_entries"] == 0, errors
