"""Run bookkeeping shared by every step: the as-of date a run covers and its row in pipeline_runs."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from pipelines.core.errors import ChurnwatchError, first_line
from pipelines.core.warehouse import insert_frame

log = logging.getLogger("churnwatch")


def as_of_for_run(logical_date: datetime | date, as_of: str | date | None = None) -> date:
    """Return the as-of date a run covers: the one it was given, else the last complete day before its logical date."""
    if as_of:
        if isinstance(as_of, date):
            return as_of
        try:
            return date.fromisoformat(str(as_of))
        except ValueError:
            raise ChurnwatchError(f"run parameter as_of {as_of!r} is not a date like 2026-06-30") from None
    day = logical_date.date() if isinstance(logical_date, datetime) else logical_date
    return day - timedelta(days=1)


@dataclass
class StepRecord:
    """What a step run leaves in pipeline_runs: its summary (set by the caller) and status."""

    summary: dict = field(default_factory=dict)


@contextmanager
def record_run(engine: Engine, name: str, as_of: date, started: datetime) -> Iterator[StepRecord]:
    """Record one step run in pipeline_runs, ok with its summary or failed with its error's first line."""
    record = StepRecord()
    status, message = "ok", ""
    try:
        yield record
        message = json.dumps(record.summary, default=str)
    except Exception as exc:
        status, message = "failed", first_line(exc)
        raise
    finally:
        row = pd.DataFrame(
            [
                {
                    "run_id": uuid.uuid4().hex[:12],
                    "as_of_date": as_of,
                    "step": name,
                    "status": status,
                    "rows_out": _rows(record.summary),
                    "message": message[:1000],
                    "started_at": started,
                    "finished_at": datetime.now(UTC).replace(tzinfo=None),
                }
            ]
        )
        with engine.begin() as conn:
            insert_frame(conn, "pipeline_runs", row)
        engine.dispose()
        log.info("%s %s for %s: %s", name, status, as_of, record.summary or message)


def _rows(summary: dict) -> int | None:
    for key in ("customers", "scored", "alerts"):
        if isinstance(summary.get(key), int):
            return summary[key]
    return None


async def log_missed_deadline(context: dict | None = None, **kwargs: Any) -> None:
    """Deadline callback without an alert address: the missed deadline goes to the triggerer's log."""
    run = (context or {}).get("dag_run")
    log.error("churnwatch: the nightly run %s has not finished by its deadline", getattr(run, "run_id", run))
