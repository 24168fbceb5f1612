"""
### churn_retrain

Weekly: build a training set from rolling cutoffs whose churn horizon has matured by the run's
as-of date (logical date minus one day), fit BG/NBD at each cutoff, choose among the candidates by
rolling-origin validation, calibrate on out-of-time scores, check the newest matured cutoff, and
register the model; it becomes champion if it clears the AUC floor and beats the current champion
on the same held-out rows.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag
from notify import AS_OF_PARAM, failure_callbacks, wire

from pipelines.steps import RETRAIN_STEPS


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
    wire(RETRAIN_STEPS)


churn_retrain()
