from datetime import UTC
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"churn_nightly", "churn_retrain"}


def test_nightly_task_chain(dagbag):
    dag = dagbag.get_dag("churn_nightly")
    order = ["load_landing", "validate_data", "build_features", "score_customers", "build_alerts", "publish_outbox"]
    assert sorted(dag.task_ids) == sorted(
        order + ["build_kpis", "monitor_model", "email_outbox", "measure_outreach", "build_report"]
    )
    for up, down in zip(order, order[1:]):
        assert dag.get_task(down).upstream_task_ids == {up}
    assert dag.get_task("build_kpis").upstream_task_ids == {"build_features"}
    assert dag.get_task("monitor_model").upstream_task_ids == {"score_customers"}
    assert dag.get_task("build_report").upstream_task_ids == {
        "build_kpis",
        "monitor_model",
        "publish_outbox",
        "measure_outreach",
    }
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


def test_dag_files_do_no_heavy_imports_at_module_level():
    for path in (REPO / "dags").glob("*.py"):
        head = path.read_text()
        for module in ("pandas", "sklearn", "pipelines", "models", "great_expectations"):
            assert f"\nimport {module}" not in head and f"\nfrom {module}" not in head, (path, module)


def test_as_of_is_the_day_before_the_logical_date():
    from datetime import date, datetime

    from pipelines.runtime import as_of_for_run

    assert as_of_for_run(datetime(2026, 3, 2, 2, 0, tzinfo=UTC)) == date(2026, 3, 1)
