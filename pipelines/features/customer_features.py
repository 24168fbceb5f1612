"""Customer features as of a date, computed in the warehouse from sql/features/*.sql."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from pipelines.core.config import Config
from pipelines.core.warehouse import read_bulk, sql_text
from pipelines.engines import Compute, choose_compute
from pipelines.features.feature_state import ensure_state, roll
from pipelines.ingest.extract import load_window

CATEGORICAL = ["region", "segment", "team", "nps_group", "rfm_segment", "lifecycle_stage", "loyalty_type"]
FLAG_COLUMNS = ["do_not_contact"]


@dataclass
class FeatureSummary:
    as_of: date
    customers: int

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "customers": self.customers}


def feature_query(cfg: Config, as_of: date, rolled: str | None = None) -> tuple[str, dict[str, Any]]:
    """Return the feature SELECT and its bound parameters for one as-of date.

    Without `rolled` the lifetime columns read all history (sql/features/history_plain.sql); with it
    they come from that SELECT of a stored state rolled to as_of (feature_state.roll, whose parameters
    must be bound as well) through history_state.sql."""
    words = cfg.features.negative_words
    window_start = as_of - timedelta(days=89)
    params: dict[str, Any] = {
        "as_of": as_of,
        "as_of_next": as_of + timedelta(days=1),
        "window_start": window_start,
        "contacts_start": window_start - timedelta(days=cfg.features.repeat_contact_days),
        "dormant_short": min(cfg.features.dormant_days),
        "dormant_long": max(cfg.features.dormant_days),
        "repeat_days": cfg.features.repeat_contact_days,
        **cfg.features.segments.model_dump(),
    }
    conds = []
    for i, word in enumerate(words):
        params[f"neg{i}"] = f"%{word.lower()}%"
        conds.append(f"LOWER(note) LIKE :neg{i}")
    if rolled is None:
        inputs = sql_text("features/history_plain.sql")
    else:
        inputs = sql_text("features/history_state.sql").replace("{roll}", rolled)
    sql = sql_text("features/customer_features.sql").replace("{history}", inputs)
    return sql.replace("{negative_note}", " OR ".join(conds) or "FALSE"), params


def read_features(conn: Engine | Connection, cfg: Config, as_of: date, compute: Compute | None = None) -> pd.DataFrame:
    """Return features as of a date computed on the fly (training cutoffs), by `compute` or on `conn`."""
    sql, params = feature_query(cfg, as_of)
    return numeric_features(compute.read_features(sql, params) if compute else read_bulk(conn, sql, params))


def numeric_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Return frame with numeric feature columns as float (PostgreSQL returns Decimal for AVG)."""
    frame = frame.copy()
    if "as_of_date" in frame and len(frame):
        frame["as_of_date"] = pd.to_datetime(frame["as_of_date"]).dt.date
    for col in frame.columns:
        if col in ("as_of_date", "customer_id", *CATEGORICAL, *FLAG_COLUMNS):
            continue
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


def build_features(as_of: date, cfg: Config, engine: Engine, compute: Compute | None = None) -> FeatureSummary:
    """Replace the customer_features partition of as_of in one transaction, computed by the compute engine.

    With `features.incremental` on the warehouse, the lifetime columns come from the stored
    per-customer state rolled forward (pipelines/features/feature_state.py); Spark reads all history.
    SQL: sql/features/customer_features.sql. Tests: tests/features/. Doc: docs/features.md."""
    compute = compute or choose_compute(cfg, engine)
    sql, params = feature_query(cfg, as_of)
    since, _ = load_window(as_of, cfg)

    def from_state(conn: Connection) -> tuple[str, dict[str, Any]]:
        state_day = ensure_state(conn, as_of, cfg, datetime.now(UTC).replace(tzinfo=None))
        rolled, roll_params = roll(conn, state_day, as_of)
        fast_sql, fast_params = feature_query(cfg, as_of, rolled)
        return fast_sql, {**fast_params, **roll_params}

    prepare = from_state if cfg.features.incremental else None
    return FeatureSummary(as_of, compute.build_features(sql, params, as_of, since, prepare=prepare))


def load_features(engine: Engine, as_of: date, where: str = "TRUE") -> pd.DataFrame:
    """Return the stored customer_features partition of as_of (its rows matching the SQL condition `where`,
    written by code such as still_customer_sql, never taken from configuration text or data)."""
    sql = f"SELECT * FROM customer_features WHERE as_of_date = :d AND ({where}) ORDER BY customer_id"
    return numeric_features(read_bulk(engine, sql, {"d": as_of}))
