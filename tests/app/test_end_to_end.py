"""One end-to-end run through the Airflow DAGs on a small generated dataset."""

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from models.reasons import reasons_frame_ok
from pipelines.core.config import load_config
from pipelines.core.warehouse import get_engine, read_frame
from pipelines.steps import NIGHTLY, run_step
from pipelines.synth.demo import truth_comparison
from pipelines.synth.generate import GeneratorSpec, generate

REPO = Path(__file__).resolve().parents[2]
START = date(2025, 1, 1)
DAYS = 400
AS_OF = START + timedelta(days=DAYS - 1)

pytestmark = pytest.mark.slow


def _read(cfg, sql, params=None):
    """Query and release the DuckDB file at once: Airflow's task processes need its lock."""
    engine = get_engine(cfg)
    try:
        return read_frame(engine, sql, params)
    finally:
        engine.dispose()


def _airflow(env, *args):
    airflow = str(Path(sys.executable).with_name("airflow"))
    proc = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "state=failed" not in out, out[-4000:]
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    generate(GeneratorSpec(customers=2500, days=DAYS, seed=21), root / "gen")
    (root / "churnwatch.yaml").write_text(
        "sources:\n  landing_dir: gen/landing\n"
        "alerts:\n  teams:\n    - {name: north, capacity: 30, regions: [north, east]}\n"
        "    - {name: south, capacity: 30, regions: [south, west]}\n"
    )
    cfg = load_config(root / "churnwatch.yaml")
    run_step("load_landing", AS_OF - timedelta(days=1), cfg=cfg, since=START)
    run_step("validate_data", AS_OF - timedelta(days=1), cfg=cfg, since=START)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(REPO),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root}/airflow.db",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(root / "logs"),
        "CHURNWATCH_CONFIG": str(root / "churnwatch.yaml"),
    }
    _airflow(env, "db", "migrate")
    logical = (AS_OF + timedelta(days=1)).isoformat()
    _airflow(env, "dags", "test", "churn_retrain", logical)
    _airflow(env, "dags", "test", "churn_nightly", logical)
    return root, cfg, env, logical


def test_nightly_dag_fills_scores_and_alerts(world):
    root, cfg, _, _ = world
    scores = _read(cfg, "SELECT * FROM churn_scores WHERE as_of_date = :d", {"d": AS_OF})
    assert len(scores) > 1000
    assert scores["churn_probability"].between(0, 1).all()
    assert scores["model_version"].str.startswith(f"m{AS_OF:%Y%m%d}-").all()
    # Every customer worth a call carries a reason (a low score may have nothing above typical to name).
    at_risk = scores[scores["risk_band"].isin(["high", "medium"])]
    assert len(at_risk) > 50 and at_risk["reason_1"].notna().mean() > 0.95
    alerts = _read(cfg, "SELECT * FROM churn_alerts WHERE as_of_date = :d", {"d": AS_OF})
    assert set(alerts["team"]) >= {"north", "south"}
    sent = alerts[alerts["status"] == "sent"].groupby(["team", "list_name"]).size()
    assert (sent.xs("prevention", level="list_name") <= 30).all()  # each list has its own capacity
    assert (sent.xs("prevention", level="list_name") > 0).all()
    # Dormant accounts never crowd the prevention list: every one of its rows has a probability.
    prevention = alerts[(alerts["list_name"] == "prevention") & (alerts["status"] == "sent")]
    assert prevention["churn_probability"].notna().all()
    assert reasons_frame_ok(alerts["reasons"])
    # Value at risk is the probability times the expected spend if kept, from the night's Gamma-Gamma fit.
    fit = _read(cfg, "SELECT * FROM spend_fits WHERE as_of_date = :d", {"d": AS_OF}).iloc[0]
    assert fit["method"] == "gamma_gamma" and fit["q"] > 1 and fit["period_days"] == 365
    assert (scores["value_at_risk"] - scores["churn_probability"] * scores["expected_value"]).abs().max() < 1e-6
    assert (scores["expected_value"] >= 0).all() and set(prevention["ranking"]) == {"value_at_risk"}
    # One targeting curve per team's prevention list, from nobody called to the whole callable list.
    curve = _read(cfg, "SELECT * FROM targeting_curve WHERE as_of_date = :d", {"d": AS_OF})
    for team, rows in curve.groupby("team"):
        rows = rows.sort_values("n_called")
        assert rows["n_called"].iloc[0] == 0 and rows["n_called"].iloc[-1] == rows["list_length"].iloc[0]
        assert rows["value_at_risk_covered"].is_monotonic_increasing and rows["at_capacity"].sum() == 1
        assert int(rows.loc[rows["at_capacity"].astype(bool), "n_called"].iloc[0]) == sent[(team, "prevention")]
    steps = _read(cfg, "SELECT step, status FROM pipeline_runs WHERE as_of_date = :d", {"d": AS_OF})
    assert {
        "load_landing",
        "validate_data",
        "build_features",
        "build_kpis",
        "score_customers",
        "build_alerts",
        "publish_outbox",
        "build_targeting_curve",
    } <= set(steps["step"])
    assert (steps["status"] == "ok").all()
    kpis = _read(cfg, "SELECT * FROM churn_kpis_daily WHERE as_of_date = :d", {"d": AS_OF})
    overall = kpis[kpis["segment_type"] == "all"].iloc[0]
    assert overall["customers_active_start"] > 500 and 0 < overall["churn_rate"] < 0.5
    assert overall["lost_revenue"] > 0 and -100 <= overall["nps"] <= 100
    assert {"region", "segment"} <= set(kpis["segment_type"])
    assert (root / "reports" / AS_OF.isoformat() / "data_docs" / "index.html").exists()


def test_outbox_csv_per_team(world):
    root, _, _, _ = world
    folder = root / "outbox" / AS_OF.isoformat()
    files = sorted(p.name for p in folder.glob("*.csv"))
    assert (
        {"north.csv", "south.csv"}
        <= set(files)
        <= {
            "north.csv",
            "south.csv",
            "north.reactivation.csv",
            "south.reactivation.csv",
        }
    )
    for name in ("north.csv", "south.csv"):
        csv = pd.read_csv(folder / name)
        assert 0 < len(csv) <= 30
        assert list(csv.columns) == [
            "team_rank",
            "customer_id",
            "churn_probability",
            "risk_band",
            "value_12m",
            "expected_value",
            "value_at_risk",
            "reasons",
            "recommended_action",
            "triggers",
            "note",
        ]
        assert csv["value_at_risk"].is_monotonic_decreasing and csv["churn_probability"].notna().all()
        assert csv["reasons"].notna().all() and csv["recommended_action"].notna().all()


def test_model_beats_recency(world):
    root, cfg, _, _ = world
    card = json.loads(_read(cfg, "SELECT card FROM model_registry WHERE status = 'champion'")["card"][0])
    metrics = card["metrics"]
    # Held-out newest cutoff (time-ordered), observable label.
    assert metrics["auc"] > metrics["recency_auc"] + 0.02
    # Against the generator's true churn: above recency-only, below the oracle.
    truth = truth_comparison(cfg, AS_OF, root / "gen")
    assert truth["model_auc"] > truth["recency_auc"]
    assert truth["model_auc"] < truth["oracle_auc"]


def test_rerunning_the_night_gives_the_same_tables(world):
    root, cfg, env, logical = world
    query = {
        t: f"SELECT * FROM {t} WHERE as_of_date = :d ORDER BY customer_id"
        for t in ("customer_features", "churn_scores", "churn_alerts")
    }
    query["churn_kpis_daily"] = "SELECT * FROM churn_kpis_daily WHERE as_of_date = :d ORDER BY segment_type, segment"
    before = {t: _read(cfg, q, {"d": AS_OF}) for t, q in query.items()}
    # The re-run asks for the day by the DAG's as_of parameter (as the demo and a manual trigger do).
    _airflow(env, "dags", "test", "churn_nightly", "-c", json.dumps({"as_of": AS_OF.isoformat()}))
    for t, q in query.items():
        pd.testing.assert_frame_equal(_read(cfg, q, {"d": AS_OF}), before[t], obj=t)


def test_the_cli_running_steps_side_by_side_gives_the_dags_tables(world):
    """`churnwatch run` runs the KPIs beside scoring and more (pipelines.steps.run_steps): same tables."""
    root, cfg, env, logical = world
    query = {
        t: f"SELECT * FROM {t} WHERE as_of_date = :d ORDER BY customer_id, team"
        if t == "churn_alerts"
        else f"SELECT * FROM {t} WHERE as_of_date = :d ORDER BY customer_id"
        for t in ("customer_features", "churn_scores", "churn_alerts")
    }
    query["churn_kpis_daily"] = "SELECT * FROM churn_kpis_daily WHERE as_of_date = :d ORDER BY segment_type, segment"
    before = {t: _read(cfg, q, {"d": AS_OF}) for t, q in query.items()}
    cli = [sys.executable, "-m", "pipelines.cli", "run", "--date", AS_OF.isoformat(), "--workers", "2"]
    proc = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("✓") == len(NIGHTLY)
    for t, q in query.items():
        pd.testing.assert_frame_equal(_read(cfg, q, {"d": AS_OF}), before[t], obj=t)
    runs = _read(cfg, "SELECT step, started_at, finished_at FROM pipeline_runs WHERE as_of_date = :d", {"d": AS_OF})
    last = runs.sort_values("started_at").groupby("step").last()
    assert (last["started_at"] >= last.loc["build_features", "finished_at"])[["build_kpis", "score_customers"]].all()


def test_run_report_renders_in_chromium(world):
    """The nightly DAG's HTML report opens in a real headless Chromium with its charts and no console errors."""
    from tests.browser import check_page

    root, cfg, _, _ = world
    page = root / "reports" / AS_OF.isoformat() / "index.html"
    assert page.exists()
    shot = REPO / "test-artifacts" / "report.png"
    result = check_page(page, shot)
    assert result.title == f"churnwatch {AS_OF.isoformat()}"
    assert result.console_errors == []
    assert result.images >= 5 and result.broken_images == []
    for heading in (
        "KPI trends",
        "Scores and calibration",
        "Data quality",
        "Model monitoring",
        "Top at-risk customers",
        "Targeting: what the calls can achieve",
    ):
        assert heading in result.headings
    assert shot.exists() and shot.stat().st_size > 20_000
    html = page.read_text()
    assert "no purchase for" in html  # top customers come with their reasons
    # Cards and tables in a reader's words: money with currency and period, the alert statuses explained.
    for text in (
        "lost revenue, last 30 days<b>EUR ",
        "churn rate, last 30 days",
        "overflow: above the list&#x27;s capacity",
        "the first 8 customers of each team's prevention list",
        "<th>churn probability</th>",
        "prevention lists ranked by value at risk = P(churn) × expected spend over the next 365 days",
        "Gamma-Gamma spend per purchase day",
        'alt="targeting curve north"',
    ):
        assert text in html, text
    assert "<th>churn_probability</th>" not in html and "nan" not in html.lower().split("<img")[0]
