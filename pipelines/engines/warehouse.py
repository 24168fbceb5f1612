"""The warehouse's own SQL engine (DuckDB or PostgreSQL) as the compute engine: the default."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.core.warehouse import read_bulk, replace_partition_from_query

# A feature SELECT's stand-in: returns an equivalent SELECT (and its parameters) over state stored in the
# warehouse, run inside the engine's transaction (Compute.build_features).
Prepare = Callable[[Connection], tuple[str, dict[str, Any]]]


def percentile(p: pd.Series) -> pd.Series:
    """Return each value's percentile among all (ties share their mean rank)."""
    return p.rank(pct=True, method="average") * 100


class WarehouseCompute:
    """Features by the warehouse's SQL; scores in pandas over chunks of `chunk_rows` customers."""

    name = "warehouse"

    def __init__(self, engine: Engine, chunk_rows: int) -> None:
        self.engine = engine
        self.chunk_rows = chunk_rows

    def build_features(
        self,
        sql: str,
        params: dict[str, Any],
        as_of: date,
        since: date | None,
        prepare: Prepare | None = None,
    ) -> int:
        with self.engine.begin() as conn:
            if prepare is not None:
                sql, params = prepare(conn)
            return replace_partition_from_query(conn, "customer_features", sql, params, as_of)

    def read_features(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        return read_bulk(self.engine, sql, params)

    def score_features(
        self, as_of: date, score_chunk: Callable[[pd.DataFrame], pd.DataFrame], columns: list[str], where: str
    ) -> pd.DataFrame:
        parts = [score_chunk(chunk) for chunk in feature_chunks(self.engine, as_of, self.chunk_rows, where)]
        scores = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
        scores["percentile"] = percentile(scores["churn_probability"]).to_numpy()
        return scores[columns]


def feature_chunks(engine: Engine, as_of: date, rows: int, where: str = "TRUE") -> Iterator[pd.DataFrame]:
    """Yield the customer_features rows of as_of matching `where` in chunks of at most `rows`.

    In the warehouse's own order: every reader works customer by customer, and sorting the partition
    first (a million wide rows) was the 1M night's memory peak (docs/scaling.md)."""
    sql = sa.text(f"SELECT * FROM customer_features WHERE as_of_date = :d AND ({where})")
    with engine.connect() as conn:
        if conn.dialect.name == "duckdb":
            result = conn.execute(sql, {"d": as_of})
            for batch in result.cursor.fetch_record_batch(rows):
                yield batch.to_pandas()
            result.close()
            return
        result = conn.execution_options(stream_results=True, yield_per=rows).execute(sql, {"d": as_of})
        columns = list(result.keys())
        for part in result.partitions():
            yield pd.DataFrame(part, columns=columns)
