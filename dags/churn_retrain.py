"""
### churn_retrain

Weekly: build a training set from rolling cutoffs whose churn horizon has matured by the run's
as-of date (logical date minus one day), train the gradient-boosting model, calibrate and
validate it on the newest matured cutoff, and register it; it becomes champion if it clears the
configured AUC floor.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from notify import AS_OF_PARAM, failure_callbacks


@dag(
    schedule="0 4 * * 0",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["churnwatch", "training"],
    doc_md=__doc__,
    default_args={
        "retries": 1,
        "retry_delay": timedelta(minutes=10),
        "owner": "churnwatch",
        "on_failure_callback": failure_callbacks(),
    },
    params=AS_OF_PARAM,
)
def churn_retrain():
    @task
    def train_model(logical_date=None, params=None) -> dict:
        from pipelines.core.runtime import as_of_for_run, run_step

        return run_step("train_model", as_of_for_run(logical_date, (params or {}).get("as_of")))

    train_model()


churn_retrain()
