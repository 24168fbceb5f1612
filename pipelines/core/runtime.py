"""One entry point per step, shared by the CLI and the DAGs: load config, open the warehouse, run, record."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from importlib import import_module
from typing import Any

import pandas as pd

from pipelines.core.config import Config, load_config
from pipelines.core.errors import ChurnwatchError
from pipelines.core.warehouse import get_engine, insert_frame

log = logging.getLogger("churnwatch")

# step name -> "module:function"; each function is step(as_of, cfg, engine) -> summary.
STEPS: dict[str, str] = {
    "load_landing": "pipelines.ingest.extract:load_landing",
    "validate_data": "pipelines.ingest.validation:validate_batches",
    "build_features": "pipelines.features.customer_features:build_features",
    "build_kpis": "pipelines.features.kpis:build_kpis",
    "score_customers": "models.scoring:score_customers",
    "monitor_model": "models.monitoring:monitor_model",
    "build_alerts": "pipelines.deliver.alerts:build_alerts",
    "publish_outbox": "pipelines.deliver.alerts:publish_outbox",
    "measure_outreach": "pipelines.deliver.outreach:measure_outreach",
    "build_report": "pipelines.deliver.report:build_report",
    "train_model": "models.training:train_model",
}
NIGHTLY = [
    "load_landing",
    "validate_data",
    "build_features",
    "build_kpis",
    "score_customers",
    "monitor_model",
    "build_alerts",
    "publish_outbox",
    "measure_outreach",
    "build_report",
]


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


def resolve_step(name: str) -> Callable[..., Any]:
    """Return the function behind a step name."""
    module, func = STEPS[name].split(":")
    return getattr(import_module(module), func)


def _as_dict(result: Any) -> dict:
    return result.as_dict() if hasattr(result, "as_dict") else dict(result)


def run_step(name: str, as_of: date, cfg: Config | None = None, config_path: str | None = None, **kwargs: Any) -> dict:
    """Run one step for as_of and record it in pipeline_runs; return its summary as a dict."""
    cfg = cfg or load_config(config_path)
    engine = get_engine(cfg)
    started = datetime.now(UTC).replace(tzinfo=None)
    status, message, summary = "ok", "", {}
    try:
        summary = _as_dict(resolve_step(name)(as_of, cfg, engine, **kwargs))
        message = json.dumps(summary, default=str)
        return summary
    except Exception as exc:
        status, message = "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise
    finally:
        record = pd.DataFrame(
            [
                {
                    "run_id": uuid.uuid4().hex[:12],
                    "as_of_date": as_of,
                    "step": name,
                    "status": status,
                    "rows_out": _rows(summary),
                    "message": message[:1000],
                    "started_at": started,
                    "finished_at": datetime.now(UTC).replace(tzinfo=None),
                }
            ]
        )
        with engine.begin() as conn:
            insert_frame(conn, "pipeline_runs", record)
        engine.dispose()
        log.info("%s %s for %s: %s", name, status, as_of, summary or message)


def _rows(summary: dict) -> int | None:
    for key in ("customers", "scored", "alerts"):
        if isinstance(summary.get(key), int):
            return summary[key]
    return None


async def log_missed_deadline(context: dict | None = None, **kwargs: Any) -> None:
    """Deadline callback without an alert address: the missed deadline goes to the triggerer's log."""
    run = (context or {}).get("dag_run")
    log.error("churnwatch: the nightly run %s has not finished by its deadline", getattr(run, "run_id", run))
