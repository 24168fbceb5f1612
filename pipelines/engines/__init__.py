"""Where features and scores are computed, chosen once per run: the warehouse's own SQL engine or Apache Spark.

Both implement `Compute`; the steps that need one (build_features, score_customers, train_model) take it
as `compute=` and never ask which one they got. `choose_compute` is the only place that decides.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Protocol

import pandas as pd
from sqlalchemy.engine import Engine

from pipelines.core.config import Config
from pipelines.engines.warehouse import Prepare


class Compute(Protocol):
    """A compute engine: runs the feature SELECT and maps a scoring function over a features partition."""

    name: str

    def build_features(
        self,
        sql: str,
        params: dict[str, Any],
        as_of: date,
        since: date | None,
        prepare: Prepare | None = None,
    ) -> int:
        """Replace the customer_features partition of as_of with the SELECT's rows; return their number.

        `since` is the first batch day the night loaded (engines that copy staging data use it).
        `prepare`, if given, returns an equivalent SELECT over state stored in the warehouse: engines
        that run on the warehouse call it inside their transaction and run that instead."""
        ...

    def read_features(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        """Return the feature SELECT's rows (raw column types) without storing them."""
        ...

    def score_features(
        self, as_of: date, score_chunk: Callable[[pd.DataFrame], pd.DataFrame], columns: list[str], where: str
    ) -> pd.DataFrame:
        """Return score_chunk applied to the stored customer_features partition of as_of, chunk by chunk.

        Only rows matching the SQL condition `where` are read (score_chunk may drop more).
        The rows get `percentile`: each churn_probability's percentile among everyone (ties share their
        mean rank); they come back with exactly `columns`, in any order (readers sort by customer_id)."""
        ...


def choose_compute(cfg: Config, engine: Engine) -> Compute:
    """Return the compute engine the config asks for (`engine: spark`), else the warehouse's SQL engine."""
    if cfg.compute_engine == "spark":
        from pipelines.engines.spark import SparkCompute

        return SparkCompute(cfg, engine)
    from pipelines.engines.warehouse import WarehouseCompute

    return WarehouseCompute(engine, cfg.scoring.chunk_rows)
