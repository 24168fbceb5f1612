"""Apache Spark as the compute engine (`engine: spark`): the same feature SQL, in Spark SQL over Parquet.

The warehouse (DuckDB or PostgreSQL) stays the system of record for ingest, data quality, alerts and
the BI tables. With `engine: spark` the two heavy steps move to Spark:

* build_features publishes the validated staging batches to a Parquet lake
  (`<lake_dir>/stg_<dataset>/_batch_date=YYYY-MM-DD/part-0.parquet`, one folder per batch, rewritten
  whole, so a re-run replaces it), runs sql/features/customer_features.sql on Spark and writes
  `<lake_dir>/customer_features/as_of_date=D/` plus the warehouse's customer_features partition;
* score_customers scores that partition with mapInPandas (the champion model travels with the task),
  computes percentiles in Spark and writes `<lake_dir>/churn_scores/as_of_date=D/` and churn_scores.

The feature SQL is written once. sqlglot translates it to Spark SQL; the one construct whose meaning
differs, `date - date` (days in DuckDB and PostgreSQL, an interval in Spark), is found by type
annotation against the staging DDL and rewritten to DATEDIFF. pyspark is an optional install
(requirements-spark.txt); docs/scaling.md explains a cluster set-up.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs
from sqlalchemy.engine import Engine

from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError, ConfigError
from pipelines.core.warehouse import declared_tables, read_bulk, replace_partition
from pipelines.engines.warehouse import Prepare

STG_TABLES = ["stg_transactions", "stg_service_events", "stg_surveys", "stg_customers", "stg_cancellations"]


def _require_pyspark():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ChurnwatchError(
            "engine: spark needs pyspark, an optional install: pip install -r requirements-spark.txt"
        ) from None


def staging_schema() -> dict[str, dict[str, str]]:
    """Return {table: {column: SQL type}} of the stg_* tables, from the DDL (pipelines.core.warehouse)."""
    return {t: {c: kind for c, kind, _ in cols} for t, cols in declared_tables().items() if t.startswith("stg_")}


def spark_schema(table: str, columns: list[str]) -> str:
    """Return a Spark DDL schema string of some of a warehouse table's columns, in the given order."""
    types = {c: kind.upper() for c, kind, _ in declared_tables()[table]}
    spark_types = {"VARCHAR": "string", "DOUBLE PRECISION": "double", "DATE": "date", "BIGINT": "bigint"}
    return ", ".join(f"{c} {spark_types.get(types[c], types[c].lower())}" for c in columns)


@functools.cache
def to_spark_sql(sql: str) -> str:
    """Translate the warehouse SQL (PostgreSQL/DuckDB dialect, :name parameters) to Spark SQL."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify import qualify

    schema = staging_schema()
    tree = qualify(sqlglot.parse_one(sql, read="postgres"), schema=schema, dialect="postgres", quote_identifiers=False)
    tree = annotate_types(tree, schema=schema)
    for cte in tree.find_all(exp.CTE):
        cte.set("materialized", None)  # a PostgreSQL/DuckDB planner hint Spark's parser does not take
    day = exp.DataType.Type.DATE
    for sub in list(tree.find_all(exp.Sub)):
        left, right = sub.this, sub.expression
        if left.type and right.type and left.type.is_type(day) and right.type.is_type(day):
            # DuckDB and PostgreSQL: date - date is a number of days; Spark: an interval.
            sub.replace(exp.DateDiff(this=left.copy(), expression=right.copy(), unit=exp.var("DAY")))
    return tree.sql("spark")


def spark_master(cfg: Config) -> str:
    """Return the master URL: spark.master, or the host of the Airflow Spark connection spark.conn_id.

    An Airflow Spark connection `spark://spark-master:7077` gives `spark://spark-master:7077`;
    `spark://yarn` gives `yarn`, and `spark://k8s%3A%2F%2Fhost` style hosts are passed as written.
    """
    if not cfg.spark.conn_id:
        return cfg.spark.master
    from urllib.parse import unquote, urlsplit

    from pipelines.core.connections import airflow_uri

    uri = airflow_uri(cfg.spark.conn_id)
    if not uri:
        raise ConfigError(
            f"spark.conn_id: Airflow connection {cfg.spark.conn_id!r} not found "
            f"(define it in Airflow or set AIRFLOW_CONN_{cfg.spark.conn_id.upper()})"
        )
    parts = urlsplit(uri)
    host = unquote(parts.hostname or "")
    if host in ("yarn", "local") or "://" in host or host.startswith("local["):
        return host
    return f"spark://{host}:{parts.port or 7077}"


def spark_session(cfg: Config):
    """Return the Spark session for this config (local mode by default)."""
    _require_pyspark()
    from pyspark.sql import SparkSession

    master = spark_master(cfg)
    # Python workers must run the interpreter that has the model's libraries.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName("churnwatch")
    defaults = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
    }
    if master.startswith("local"):
        defaults.update({"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "8"})
    for key, value in {**defaults, **cfg.spark.conf}.items():
        builder = builder.config(key, value)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its shutdown chatter outlives the log handlers
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _lake(cfg: Config) -> tuple[Any, str]:
    """Return (pyarrow filesystem, base path) of the lake; local paths are relative to the config file."""
    uri = cfg.spark.lake_dir
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(cfg.resolve(Path(uri)))
    return pafs.FileSystem.from_uri(uri)


def _lake_uri(cfg: Config, *parts: str) -> str:
    uri = cfg.spark.lake_dir
    base = uri if "://" in uri else str(cfg.resolve(Path(uri)))
    return "/".join([base.rstrip("/"), *parts])


def _arrow_schema(table: str) -> pa.Schema:
    types = {
        "VARCHAR": pa.string(),
        "TIMESTAMP": pa.timestamp("us"),
        "DATE": pa.date32(),
        "DOUBLE PRECISION": pa.float64(),
        "BIGINT": pa.int64(),
        "INT": pa.int32(),
        "INTEGER": pa.int32(),
        "BOOLEAN": pa.bool_(),
    }
    cols = staging_schema()[table]
    unknown = {t for t in cols.values() if t.upper() not in types}
    if unknown:
        raise ChurnwatchError(f"{table}: no Parquet type for column types {sorted(unknown)} (pipelines.engines.spark)")
    return pa.schema([(c, types[t.upper()]) for c, t in cols.items() if c != "_batch_date"])


def sync_lake(engine: Engine, cfg: Config, start: date | None, end: date | None) -> dict[str, int]:
    """Publish validated staging batches to the lake: every batch of [start, end], and any batch missing there.

    Without a window (start, end = None) only the missing batches are written.

    Each batch is one Parquet file written under a temporary name and renamed into place, so a crash
    leaves the previous copy; a batch deleted from the warehouse is deleted from the lake too.
    Returns the number of batch files written per table.
    """
    filesystem, base = _lake(cfg)
    written: dict[str, int] = {}
    for table in STG_TABLES:
        folder = f"{base}/{table}"
        filesystem.create_dir(folder, recursive=True)
        in_lake = {
            info.base_name.split("=", 1)[1]
            for info in filesystem.get_file_info(pafs.FileSelector(folder))
            if info.type == pafs.FileType.Directory and info.base_name.startswith("_batch_date=")
        }
        batches = read_bulk(engine, f"SELECT DISTINCT _batch_date FROM {table}")["_batch_date"]
        in_warehouse = {pd.Timestamp(d).date().isoformat() for d in batches}
        window = (start.isoformat(), end.isoformat()) if start and end else ("9999", "0000")
        todo = sorted(d for d in in_warehouse if d not in in_lake or window[0] <= d <= window[1])
        schema = _arrow_schema(table)
        for day in todo:
            frame = read_bulk(engine, f"SELECT * FROM {table} WHERE _batch_date = :d", {"d": date.fromisoformat(day)})
            arrow = pa.Table.from_pandas(
                frame[schema.names].astype({f.name: "Int32" for f in schema if f.type == pa.int32()}),
                schema=schema,
                preserve_index=False,
            )
            target = f"{folder}/_batch_date={day}"
            filesystem.create_dir(target, recursive=True)
            pq.write_table(arrow, f"{target}/.part-0.parquet.tmp", filesystem=filesystem)
            filesystem.move(f"{target}/.part-0.parquet.tmp", f"{target}/part-0.parquet")
        for day in sorted(in_lake - in_warehouse):
            if window[0] <= day <= window[1]:
                filesystem.delete_dir(f"{folder}/_batch_date={day}")
        written[table] = len(todo)
    return written


def register_lake(spark, cfg: Config) -> None:
    """Expose each staging table of the lake to Spark SQL as a view of the same name."""
    from pyspark.sql.types import StructType

    filesystem, base = _lake(cfg)
    for table in STG_TABLES:
        has_data = any(
            i.type == pafs.FileType.Directory
            for i in filesystem.get_file_info(pafs.FileSelector(f"{base}/{table}", allow_not_found=True))
        )
        if has_data:
            frame = spark.read.parquet(_lake_uri(cfg, table))
        else:
            ddl = spark_schema(table, list(staging_schema()[table]))
            frame = spark.createDataFrame([], StructType.fromDDL(ddl))
        frame.createOrReplaceTempView(table)


def _write_partition(frame, cfg: Config, table: str, as_of: date) -> str:
    """Overwrite the lake's as_of_date partition of a table with a Spark DataFrame; return its URI."""
    uri = _lake_uri(cfg, table, f"as_of_date={as_of.isoformat()}")
    frame.drop("as_of_date").write.mode("overwrite").parquet(uri)
    return uri


class SparkCompute:
    """Features by the warehouse's feature SQL translated to Spark SQL over the lake; scores with mapInPandas."""

    name = "spark"

    def __init__(self, cfg: Config, engine: Engine) -> None:
        self.cfg = cfg
        self.engine = engine

    def _session(self, since: date | None, until: date | None):
        sync_lake(self.engine, self.cfg, since, until)
        spark = spark_session(self.cfg)
        register_lake(spark, self.cfg)
        return spark

    def build_features(
        self,
        sql: str,
        params: dict[str, Any],
        as_of: date,
        since: date | None,
        prepare: Prepare | None = None,
    ) -> int:
        """Compute the features on Spark from all history (no stored state: `prepare` is not used);
        write them to the lake and the warehouse's partition."""
        spark = self._session(since, as_of)
        uri = _write_partition(spark.sql(to_spark_sql(sql), args=params), self.cfg, "customer_features", as_of)
        frame = spark.read.parquet(uri).toPandas()
        frame.insert(0, "as_of_date", as_of)
        replace_partition(self.engine, "customer_features", frame, as_of)
        return len(frame)

    def read_features(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        """Return the features computed on Spark (training cutoffs), as a pandas frame."""
        return self._session(None, None).sql(to_spark_sql(sql), args=params).toPandas()

    def score_features(
        self, as_of: date, score_chunk: Callable[[pd.DataFrame], pd.DataFrame], columns: list[str], where: str
    ) -> pd.DataFrame:
        """Score the lake's as_of features with mapInPandas; write the lake's churn_scores; return the rows."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        spark = spark_session(self.cfg)
        feats = spark.read.parquet(_lake_uri(self.cfg, "customer_features", f"as_of_date={as_of.isoformat()}"))
        feats = feats.where(where)
        schema = spark_schema("churn_scores", columns)

        def score_partitions(parts):
            for part in parts:
                yield score_chunk(part)[columns].astype({"percentile": float})

        scored = feats.mapInPandas(score_partitions, schema)
        # Percentile over everyone, ties sharing their mean rank (as pandas' rank(method="average")).
        order = Window.orderBy("churn_probability")
        ties = Window.partitionBy("churn_probability")
        everyone = Window.partitionBy()
        scored = scored.withColumn(
            "percentile",
            (F.rank().over(order) + (F.count("*").over(ties) - 1) / 2.0) / F.count("*").over(everyone) * 100,
        )
        uri = _write_partition(scored, self.cfg, "churn_scores", as_of)
        out = spark.read.parquet(uri).toPandas()
        out.insert(0, "as_of_date", as_of)
        return out[columns].sort_values("customer_id", kind="stable").reset_index(drop=True)
