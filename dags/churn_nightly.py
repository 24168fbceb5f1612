"""
### churn_nightly

Each night, for the last complete day (the run's logical date minus one day):
load the day's source data, validate it with Great Expectations (bad rows to quarantine,
a broken batch stops the run here), compute customer features and the churn KPIs (churn rate,
lost revenue, NPS per segment) in the warehouse, score every active customer with the champion
model (rules only while there is none), monitor the model, build the prioritised alert lists with
cooldown and a control group, publish one CSV and XLSX per retention team under
`outbox/<as-of date>/` (and e-mail them when `alerts.email` is set), measure the outreach of the
alert day whose horizon has matured, and write the run report `reports/<as-of date>/index.html`.

Every task replaces its own date's outputs, so any run can be cleared and re-run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from notify import AS_OF_PARAM, failure_callbacks, nightly_deadline


def _step(name: str, logical_date, params) -> dict:
    from pipelines.core.runtime import as_of_for_run, run_step

    return run_step(name, as_of_for_run(logical_date, (params or {}).get("as_of")))


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
    @task
    def load_landing(logical_date=None, params=None) -> dict:
        return _step("load_landing", logical_date, params)

    @task(retries=0)
    def validate_data(logical_date=None, params=None) -> dict:
        return _step("validate_data", logical_date, params)

    @task
    def build_features(logical_date=None, params=None) -> dict:
        return _step("build_features", logical_date, params)

    @task
    def build_kpis(logical_date=None, params=None) -> dict:
        return _step("build_kpis", logical_date, params)

    @task
    def score_customers(logical_date=None, params=None) -> dict:
        return _step("score_customers", logical_date, params)

    @task
    def monitor_model(logical_date=None, params=None) -> dict:
        return _step("monitor_model", logical_date, params)

    @task
    def build_alerts(logical_date=None, params=None) -> dict:
        return _step("build_alerts", logical_date, params)

    @task
    def publish_outbox(logical_date=None, params=None) -> dict:
        return _step("publish_outbox", logical_date, params)

    @task
    def email_outbox(logical_date=None, params=None) -> dict:
        """Mail each team its files through the Airflow SMTP connection; nothing to do without alerts.email."""
        from pipelines.core.config import load_config
        from pipelines.core.runtime import as_of_for_run

        cfg = load_config()
        if not cfg.alerts.email:
            return {"sent": 0, "note": "alerts.email is empty"}
        from airflow.utils.email import send_email

        as_of = as_of_for_run(logical_date, (params or {}).get("as_of"))
        folder = cfg.resolve(cfg.paths.outbox_dir) / as_of.isoformat()
        sent = 0
        for team, address in cfg.alerts.email.items():
            files = [str(p) for p in sorted(folder.glob(f"{team}.*"))]
            if files:
                send_email(
                    to=address,
                    subject=f"churnwatch {team} list for {as_of}",
                    html_content=f"The {team} retention list for {as_of} is attached.",
                    files=files,
                    conn_id=cfg.alerts.email_conn_id,
                )
                sent += 1
        return {"sent": sent}

    @task
    def measure_outreach(logical_date=None, params=None) -> dict:
        return _step("measure_outreach", logical_date, params)

    @task
    def build_report(logical_date=None, params=None) -> dict:
        return _step("build_report", logical_date, params)

    features = build_features()
    load_landing() >> validate_data() >> features
    kpis = build_kpis()
    scores = score_customers()
    monitor = monitor_model()
    outbox = publish_outbox()
    outreach = measure_outreach()
    features >> [kpis, scores, outreach]
    scores >> monitor
    scores >> build_alerts() >> outbox >> email_outbox()
    [kpis, monitor, outbox, outreach] >> build_report()


churn_nightly()
