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
from pipelines.core.warehouse import SQL_DIR, read_bulk, replace_partition
from pipelines.features.customer_features import FeatureSummary, feature_query, numeric_features

STG_TABLES = ["stg_transactions", "stg_service_events", "stg_surveys", "stg_customers", "stg_cancellations"]


def _require_pyspark():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ChurnwatchError(
            "engine: spark needs pyspark, an optional install: pip install -r requirements-spark.txt"
        ) from None


@functools.cache
def staging_schema() -> dict[str, dict[str, str]]:
    """Return {table: {column: SQL type}} of the stg_* tables, parsed from sql/ddl/001_ingest.sql."""
    import sqlglot
    from sqlglot import exp

    schema: dict[str, dict[str, str]] = {}
    for stmt in sqlglot.parse((SQL_DIR / "ddl" / "001_ingest.sql").read_text(), read="postgres"):
        if isinstance(stmt, exp.Create) and isinstance(stmt.this, exp.Schema):
            name = stmt.this.this.name
            if name.startswith("stg_"):
                schema[name] = {
                    c.name: c.args["kind"].sql("postgres")
                    for c in stmt.this.expressions
                    if isinstance(c, exp.ColumnDef)
                }
    return schema


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
        raise ChurnwatchError(f"{table}: no Parquet type for column types {sorted(unknown)} (spark_engine)")
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
            spark_types = {"VARCHAR": "STRING", "DOUBLE PRECISION": "DOUBLE"}
            ddl = ", ".join(f"{c} {spark_types.get(t.upper(), t)}" for c, t in staging_schema()[table].items())
            frame = spark.createDataFrame([], StructType.fromDDL(ddl))
        frame.createOrReplaceTempView(table)


def spark_features(spark, cfg: Config, as_of: date):
    """Return the Spark DataFrame of customer features as of a date (the warehouse's SQL, translated)."""
    sql, params = feature_query(cfg, as_of)
    return spark.sql(to_spark_sql(sql), args=params)


def read_features_spark(engine: Engine, cfg: Config, as_of: date) -> pd.DataFrame:
    """Return features as of a date computed on Spark (training cutoffs), as a pandas frame."""
    sync_lake(engine, cfg, None, None)
    spark = spark_session(cfg)
    register_lake(spark, cfg)
    return numeric_features(spark_features(spark, cfg, as_of).toPandas())


def _write_partition(frame, cfg: Config, table: str, as_of: date) -> str:
    """Overwrite the lake's as_of_date partition of a table with a Spark DataFrame; return its URI."""
    uri = _lake_uri(cfg, table, f"as_of_date={as_of.isoformat()}")
    frame.drop("as_of_date").write.mode("overwrite").parquet(uri)
    return uri


def build_features_spark(as_of: date, cfg: Config, engine: Engine) -> FeatureSummary:
    """Compute the as_of features on Spark; write them to the lake and the warehouse's partition."""
    from pipelines.ingest.extract import load_window

    start, _ = load_window(as_of, cfg, None)
    sync_lake(engine, cfg, start, as_of)
    spark = spark_session(cfg)
    register_lake(spark, cfg)
    uri = _write_partition(spark_features(spark, cfg, as_of), cfg, "customer_features", as_of)
    frame = spark.read.parquet(uri).toPandas()
    frame.insert(0, "as_of_date", as_of)
    replace_partition(engine, "customer_features", frame, as_of)
    return FeatureSummary(as_of, len(frame))


def score_with_spark(artifact: dict, as_of: date, cfg: Config, engine: Engine) -> pd.DataFrame:
    """Score the lake's as_of features with mapInPandas; write the lake's churn_scores; return the rows."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from models.scoring import SCORE_COLUMNS, score_frame

    spark = spark_session(cfg)
    feats = spark.read.parquet(_lake_uri(cfg, "customer_features", f"as_of_date={as_of.isoformat()}"))
    schema = (
        "as_of_date date, customer_id string, churn_probability double, risk_band string, percentile double, "
        "value_12m double, value_at_risk double, model_version string, reason_1 string, reason_2 string, "
        "reason_3 string, reason_codes string"
    )

    def score_partitions(parts):
        for part in parts:
            scored = score_frame(artifact, numeric_features(part), cfg, as_of)
            yield scored[SCORE_COLUMNS].astype({"percentile": float})

    scored = feats.mapInPandas(score_partitions, schema)
    # Percentile over everyone, ties sharing their mean rank (as pandas' rank(method="average")).
    order = Window.orderBy("churn_probability")
    ties = Window.partitionBy("churn_probability")
    everyone = Window.partitionBy()
    scored = scored.withColumn(
        "percentile",
        (F.rank().over(order) + (F.count("*").over(ties) - 1) / 2.0) / F.count("*").over(everyone) * 100,
    )
    uri = _write_partition(scored, cfg, "churn_scores", as_of)
    out = spark.read.parquet(uri).toPandas()
    out.insert(0, "as_of_date", as_of)
    return out[SCORE_COLUMNS].sort_values("customer_id", kind="stable").reset_index(drop=True)
