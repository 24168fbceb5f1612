import sys
from datetime import UTC, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Airflow puts the DAGs folder on sys.path (the DAGs import dags/notify.py); so does this test module.
if str(REPO / "dags") not in sys.path:
    sys.path.append(str(REPO / "dags"))


def _bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture(scope="module")
def dagbag():
    return _bag()


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"churn_nightly", "churn_retrain"}


def test_nightly_task_chain(dagbag):
    dag = dagbag.get_dag("churn_nightly")
    order = ["load_landing", "validate_data", "build_features", "score_customers", "build_alerts", "publish_outbox"]
    assert sorted(dag.task_ids) == sorted(
        order
        + [
            "build_kpis",
            "monitor_model",
            "email_outbox",
            "measure_outreach",
            "estimate_uplift",
            "build_targeting_curve",
            "build_report",
        ]
    )
    for up, down in zip(order, order[1:]):
        if down != "build_alerts":
            assert dag.get_task(down).upstream_task_ids == {up}
    # Tonight's lists wait for the scores and for the uplift measured on matured alerts.
    assert dag.get_task("build_alerts").upstream_task_ids == {"score_customers", "estimate_uplift"}
    assert dag.get_task("estimate_uplift").upstream_task_ids == {"build_features"}
    assert dag.get_task("build_kpis").upstream_task_ids == {"build_features"}
    assert dag.get_task("email_outbox").upstream_task_ids == {"publish_outbox"}
    assert dag.get_task("monitor_model").upstream_task_ids == {"score_customers"}
    assert dag.get_task("build_report").upstream_task_ids == {
        "build_kpis",
        "monitor_model",
        "publish_outbox",
        "measure_outreach",
        "build_targeting_curve",
    }
    assert dag.get_task("build_targeting_curve").upstream_task_ids == {"build_alerts", "measure_outreach"}
    assert dag.get_task("validate_data").retries == 0  # a bad batch is not retried blindly
    assert dag.get_task("load_landing").retries == 2


@pytest.mark.parametrize("dag_id", ["churn_nightly", "churn_retrain"])
def test_dag_conventions(dagbag, dag_id):
    dag = dagbag.get_dag(dag_id)
    assert "churnwatch" in dag.tags
    assert dag.doc_md and dag_id in dag.doc_md
    assert dag.catchup is False
    assert all(t.retries >= 0 for t in dag.tasks)
    assert dag.max_active_runs == 1


def test_dag_files_load_no_pipeline_code_while_parsing():
    """Parsing a DAG file reads the step list only: no pandas, scikit-learn, GX or stage code."""
    import subprocess

    for name in ("churn_nightly", "churn_retrain"):
        probe = (
            f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'dags')!r}]; import {name}; "
            "heavy = ('pandas', 'sklearn', 'great_expectations', 'models', 'pipelines.core', 'pipelines.ingest', "
            "'pipelines.features', 'pipelines.deliver', 'pipelines.engines'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))"
        )
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == "[]", (name, done.stdout[-500:])


def test_the_dags_are_the_step_list(dagbag):
    from pipelines.steps import NIGHTLY_STEPS, RETRAIN_STEPS

    bag = dagbag
    for dag_id, steps in (("churn_nightly", NIGHTLY_STEPS), ("churn_retrain", RETRAIN_STEPS)):
        dag = bag.get_dag(dag_id)
        assert sorted(dag.task_ids) == sorted(s.name for s in steps)
        for step in steps:
            assert dag.get_task(step.name).upstream_task_ids == set(step.after), step.name


def test_as_of_is_the_day_before_the_logical_date():
    from datetime import date, datetime

    from pipelines.core.runtime import as_of_for_run

    assert as_of_for_run(datetime(2026, 3, 2, 2, 0, tzinfo=UTC)) == date(2026, 3, 1)


def test_a_deadline_is_opt_in_and_failures_are_only_logged_without_an_address(dagbag):
    dag = dagbag.get_dag("churn_nightly")
    assert not dag.deadline  # `airflow dags test` crashes on DAGs with a deadline (apache/airflow#73428)
    assert dag.get_task("load_landing").on_failure_callback in (None, [])


def test_a_deadline_without_an_address_is_logged(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import DeadlineReference

    monkeypatch.setenv("CHURNWATCH_NIGHTLY_DEADLINE_HOURS", "6")
    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("churn_nightly")
    alert = dag.deadline[0] if isinstance(dag.deadline, list) else dag.deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT  # a backfill of past days is not late
    assert alert.interval == timedelta(hours=6)  # the 02:00 run must be done by 08:00
    assert "log_missed_deadline" in str(alert.callback.path if hasattr(alert.callback, "path") else alert.callback)


def test_an_alert_address_wires_smtp_notifiers_on_failure_and_deadline(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    monkeypatch.setenv("CHURNWATCH_ALERT_EMAIL", "oncall@example.com, lead@example.com")
    monkeypatch.setenv("CHURNWATCH_NIGHTLY_DEADLINE_HOURS", "4.5")
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    for dag_id in ("churn_nightly", "churn_retrain"):
        callbacks = bag.get_dag(dag_id).tasks[0].on_failure_callback
        assert len(callbacks) == 1 and isinstance(callbacks[0], SmtpNotifier)
        assert callbacks[0].to == ["oncall@example.com", "lead@example.com"]
    dag = bag.get_dag("churn_nightly")
    alert = dag.deadline[0] if isinstance(dag.deadline, list) else dag.deadline
    assert alert.interval == timedelta(hours=4.5)
    assert "SmtpNotifier" in str(alert.callback.path if hasattr(alert.callback, "path") else alert.callback)


def test_a_bad_deadline_is_an_import_error_naming_the_variable(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CHURNWATCH_NIGHTLY_DEADLINE_HOURS", "soon")
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert any("CHURNWATCH_NIGHTLY_DEADLINE_HOURS='soon' is not a number" in e for e in bag.import_errors.values())
