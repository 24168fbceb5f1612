"""
### churn_nightly

Each night, for the last complete day (the run's logical date minus one day):
load the day's landing files, validate them with Great Expectations (bad rows to quarantine,
a broken batch stops the run here), compute customer features and the churn KPIs (churn rate,
lost revenue, NPS per segment) in the warehouse, score every
active customer with the champion model, build the prioritised alert lists and publish one CSV
per retention team under `outbox/<as-of date>/`.

Every task replaces its own date's partition, so any run can be cleared and re-run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


def _step(name: str, logical_date) -> dict:
    from pipelines.runtime import as_of_for_run, run_step

    return run_step(name, as_of_for_run(logical_date))


@dag(
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["churnwatch", "nightly"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5), "owner": "churnwatch"},
)
def churn_nightly():
    @task
    def load_landing(logical_date=None) -> dict:
        return _step("load_landing", logical_date)

    @task(retries=0)
    def validate_data(logical_date=None) -> dict:
        return _step("validate_data", logical_date)

    @task
    def build_features(logical_date=None) -> dict:
        return _step("build_features", logical_date)

    @task
    def build_kpis(logical_date=None) -> dict:
        return _step("build_kpis", logical_date)

    @task
    def score_customers(logical_date=None) -> dict:
        return _step("score_customers", logical_date)

    @task
    def monitor_model(logical_date=None) -> dict:
        return _step("monitor_model", logical_date)

    @task
    def build_alerts(logical_date=None) -> dict:
        return _step("build_alerts", logical_date)

    @task
    def publish_outbox(logical_date=None) -> dict:
        return _step("publish_outbox", logical_date)

    features = build_features()
    load_landing() >> validate_data() >> features
    features >> build_kpis()
    scores = score_customers()
    features >> scores >> build_alerts() >> publish_outbox()
    scores >> monitor_model()


churn_nightly()
