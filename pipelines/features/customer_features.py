"""Customer features as of a date, computed in the warehouse from sql/features/*.sql."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.core.config import Config
from pipelines.core.warehouse import read_bulk, replace_partition_from_query, sql_text

CATEGORICAL = ["region", "segment", "team", "nps_group", "rfm_segment", "lifecycle_stage", "loyalty_type"]
FLAG_COLUMNS = ["do_not_contact"]


@dataclass
class FeatureSummary:
    as_of: date
    customers: int

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "customers": self.customers}


def feature_query(cfg: Config, as_of: date) -> tuple[str, dict[str, Any]]:
    """Return the feature SELECT and its bound parameters for one as-of date."""
    words = cfg.features.negative_words
    params: dict[str, Any] = {
        "as_of": as_of,
        "as_of_next": as_of + timedelta(days=1),
        "dormant_short": min(cfg.features.dormant_days),
        "dormant_long": max(cfg.features.dormant_days),
        "repeat_days": cfg.features.repeat_contact_days,
        **cfg.features.segments.model_dump(),
    }
    conds = []
    for i, word in enumerate(words):
        params[f"neg{i}"] = f"%{word.lower()}%"
        conds.append(f"LOWER(note) LIKE :neg{i}")
    sql = sql_text("features/customer_features.sql").replace("{negative_note}", " OR ".join(conds) or "FALSE")
    return sql, params


def read_features(conn: Engine | Connection, cfg: Config, as_of: date) -> pd.DataFrame:
    """Return features as of a date computed on the fly (used for training cutoffs)."""
    if cfg.compute_engine == "spark" and isinstance(conn, Engine):
        from pipelines.engines.spark import read_features_spark

        return read_features_spark(conn, cfg, as_of)
    sql, params = feature_query(cfg, as_of)
    return numeric_features(read_bulk(conn, sql, params))


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


def build_features(as_of: date, cfg: Config, engine: Engine) -> FeatureSummary:
    """Replace the customer_features partition of as_of in one transaction, computed in SQL."""
    if cfg.compute_engine == "spark":
        from pipelines.engines.spark import build_features_spark

        return build_features_spark(as_of, cfg, engine)
    sql, params = feature_query(cfg, as_of)
    with engine.begin() as conn:
        n = replace_partition_from_query(conn, "customer_features", sql, params, as_of)
    return FeatureSummary(as_of, n)


def load_features(engine: Engine, as_of: date) -> pd.DataFrame:
    """Return the stored customer_features partition of as_of."""
    return numeric_features(
        read_bulk(engine, "SELECT * FROM customer_features WHERE as_of_date = :d ORDER BY customer_id", {"d": as_of})
    )


def feature_chunks(engine: Engine, as_of: date, rows: int) -> Iterator[pd.DataFrame]:
    """Yield the customer_features partition of as_of in chunks of at most `rows` customers, by customer id."""
    sql = sa.text("SELECT * FROM customer_features WHERE as_of_date = :d ORDER BY customer_id")
    with engine.connect() as conn:
        if conn.dialect.name == "duckdb":
            result = conn.execute(sql, {"d": as_of})
            for batch in result.cursor.fetch_record_batch(rows):
                yield numeric_features(batch.to_pandas())
            result.close()
            return
        result = conn.execution_options(stream_results=True, yield_per=rows).execute(sql, {"d": as_of})
        columns = list(result.keys())
        for part in result.partitions():
            yield numeric_features(pd.DataFrame(part, columns=columns))
