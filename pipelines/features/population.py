"""Who is still a customer, who churned, and what a customer is worth: one definition each.

Used by training (population and labels at each cutoff), scoring (who is scored, value at risk), the
alerts (who rules may pick), the KPIs (activity types) and the outreach measurement.
SQL: sql/features/churn_labels.sql, churn_labels_contractual.sql. Tests: tests/features/, tests/models/.
Doc: docs/model.md (churn definition).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError
from pipelines.core.warehouse import read_frame, sql_text


def still_customer(features: pd.DataFrame, cfg: Config) -> pd.Series:
    """Return a mask of customers not yet lost: not cancelled (contractual), or a purchase within the horizon."""
    if cfg.churn.kind == "contractual":
        return features["cancelled"].fillna(0).astype(int) == 0
    recency = features["days_since_last_purchase"]
    return recency.notna() & (recency < cfg.churn.horizon_days)


def still_customer_sql(cfg: Config) -> str:
    """Return still_customer as a SQL condition on customer_features (DuckDB, PostgreSQL and Spark SQL).

    Readers of stored features use it to read only the active population (411k of 1M rows in the 1M
    bench); they still apply still_customer, which stays the definition. tests/features/test_features.py
    checks that the two agree."""
    if cfg.churn.kind == "contractual":
        return "COALESCE(cancelled, 0) = 0"
    return f"days_since_last_purchase < {int(cfg.churn.horizon_days)}"


def active_population(features: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Return the feature rows of customers still customers (the scored and labelled population)."""
    return features[still_customer(features, cfg)]


def customer_value(features: pd.DataFrame) -> pd.Series:
    """Return each customer's value: trailing 12-month spend (spend_365d), never negative, 0 when unknown."""
    return pd.to_numeric(features["spend_365d"]).clip(lower=0).fillna(0.0)


def activity_params(cfg: Config) -> tuple[str, dict[str, Any]]:
    """Return the IN-list placeholder text and bound values of the churn activity types."""
    names = {f"act{i}": t for i, t in enumerate(cfg.churn.activity_types)}
    return ", ".join(f":{k}" for k in names), names


def churn_labels(engine: Engine, cfg: Config, cutoff: date, as_of: date) -> pd.DataFrame:
    """Return customer_id, churned for a cutoff whose horizon has matured by as_of."""
    label_end = cutoff + timedelta(days=cfg.churn.horizon_days + 1)
    if label_end > as_of + timedelta(days=1):
        raise ChurnwatchError(f"cutoff {cutoff} has no matured label on {as_of}")
    if cfg.churn.kind == "contractual":
        sql, names = sql_text("features/churn_labels_contractual.sql"), {}
    else:
        placeholder, names = activity_params(cfg)
        sql = sql_text("features/churn_labels.sql").replace("{activity_types}", placeholder)
    return read_frame(engine, sql, {"label_start": cutoff + timedelta(days=1), "label_end": label_end, **names})
