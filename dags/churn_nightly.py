"""
### churn_nightly

Each night, for the last complete day (the run's logical date minus one day):
load the day's source data, validate it with Great Expectations (bad rows to quarantine,
a broken batch stops the run here), compute customer features and the churn KPIs (churn rate,
lost revenue, NPS per segment) in the warehouse, score every active customer with the champion
model (rules only while there is none), monitor the model, build the prioritised alert lists with
cooldown and a control group, publish one CSV and XLSX per retention team under
`outbox/<as-of date>/`, e-mail them (when `alerts.email` is set), measure the outreach of the
alert day whose horizon has matured, and write the run report `reports/<as-of date>/index.html`.

Every task replaces its own date's outputs, so any run can be cleared and re-run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag
from notify import AS_OF_PARAM, failure_callbacks, nightly_deadline, wire

from pipelines.steps import NIGHTLY_STEPS


@dag(
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["churnwatch", "nightly"],
    doc_md=__doc__,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "owner": "churnwatch",
        "on_failure_callback": failure_callbacks(),
    },
    deadline=nightly_deadline(),
    params=AS_OF_PARAM,
)
def churn_nightly():
    wire(NIGHTLY_STEPS)


churn_nightly()
