"""Shared DAG settings: who hears about a failed task or a late night, and the as-of parameter.

Read when the DAG files are parsed (environment only, no I/O):

- `CHURNWATCH_ALERT_EMAIL`: address(es), comma-separated. A failed task of either DAG, and a nightly
  run that misses its deadline, are mailed there through Airflow's SMTP notifier and the connection
  `CHURNWATCH_SMTP_CONN_ID` (default `smtp_default`). Without an address both are logged only.
- `CHURNWATCH_NIGHTLY_DEADLINE_HOURS` (e.g. 6): a nightly run must have finished this many hours
  after it was queued (the scheduled run at 02:00 UTC: by 08:00 UTC) or the deadline alert fires.
  Unset, the DAG has no deadline: Airflow 3.3's `airflow dags test` (the demo, the tests) crashes at the
  end of a successful run of a DAG with a deadline (apache/airflow#73428, open), so it is opt-in.

Also the one way a step becomes a task (`wire`): tasks and their order come from `pipelines.steps`.

Not a DAG file (listed in .airflowignore); the DAGs import it.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, Param

DEADLINE_ENV = "CHURNWATCH_NIGHTLY_DEADLINE_HOURS"
EMAIL_ENV = "CHURNWATCH_ALERT_EMAIL"
CONN_ENV = "CHURNWATCH_SMTP_CONN_ID"
# A run for one chosen day ("Trigger DAG w/ config" in the UI, or `airflow dags test DAG -c '{"as_of": "..."}'`);
# empty: the day before the run's logical date, as every scheduled run.
AS_OF_PARAM = {
    "as_of": Param(
        None, type=["null", "string"], format="date", description="As-of date (YYYY-MM-DD); empty = the day before"
    )
}


def alert_addresses() -> list[str]:
    """Return the configured alert addresses (none: failures are only logged)."""
    return [a.strip() for a in os.environ.get(EMAIL_ENV, "").split(",") if a.strip()]


def _smtp_conn() -> str:
    return os.environ.get(CONN_ENV, "smtp_default")


def failure_callbacks() -> list:
    """Return the on_failure_callback list of every churnwatch task."""
    to = alert_addresses()
    if not to:
        return []
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return [
        SmtpNotifier(
            to=to,
            subject="churnwatch: {{ ti.dag_id }}.{{ ti.task_id }} failed for the run of {{ ds }}",
            html_content="Task {{ ti.task_id }} of {{ ti.dag_id }} failed (try {{ ti.try_number }}). "
            "See its log in Airflow; a data problem is named in its last line.",
            smtp_conn_id=_smtp_conn(),
        )
    ]


def deadline_hours() -> float | None:
    """Return the nightly deadline in hours after the run was queued (None: no deadline); a bad value names the variable."""
    raw = os.environ.get(DEADLINE_ENV, "").strip()
    if not raw:
        return None
    try:
        hours = float(raw)
    except ValueError:
        raise ValueError(f"{DEADLINE_ENV}={raw!r} is not a number of hours") from None
    if not 0 < hours <= 24:
        raise ValueError(f"{DEADLINE_ENV}={raw!r} must be between 0 and 24 hours")
    return hours


def nightly_deadline() -> DeadlineAlert | None:
    """Return the deadline alert of churn_nightly: finished N hours after it was queued (02:00 for the nightly)."""
    hours = deadline_hours()
    if hours is None:
        return None
    to = alert_addresses()
    if to:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        callback = AsyncCallback(
            SmtpNotifier,
            kwargs={
                "to": to,
                "subject": "churnwatch: the nightly run has not finished by its deadline",
                "html_content": "The churn_nightly run is late: the morning lists may be missing. Check Airflow.",
                "smtp_conn_id": _smtp_conn(),
            },
        )
    else:
        callback = AsyncCallback("pipelines.core.runtime.log_missed_deadline")
    return DeadlineAlert(
        # From when the run was queued, not its logical date: a backfill of past days is not "late".
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(hours=hours),
        callback=callback,
        name="churn_nightly finished",
    )


def step_task(step):
    """Return an Airflow task that runs one churnwatch step for the run's as-of date (one call, nothing else)."""
    from airflow.sdk import task

    overrides = {"retries": step.retries} if step.retries is not None else {}

    @task(task_id=step.name, doc_md=step.doc, **overrides)
    def run(logical_date=None, params=None) -> dict:
        from pipelines.core.runtime import as_of_for_run
        from pipelines.steps import run_step

        return run_step(step.name, as_of_for_run(logical_date, (params or {}).get("as_of")))

    return run()


def wire(steps) -> dict:
    """Create one task per step and set each task downstream of the steps it waits for; return them by name."""
    tasks = {step.name: step_task(step) for step in steps}
    for step in steps:
        for upstream in step.after:
            tasks[upstream] >> tasks[step.name]
    return tasks
