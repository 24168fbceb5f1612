"""engine: spark — the warehouse's feature SQL on Spark SQL over Parquet, and scoring with mapInPandas.

PySpark runs in local mode here; the results must equal the DuckDB engine's, row by row.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from models.scoring import score_customers
from models.training import train_model
from pipelines.core.config import Config
from pipelines.core.errors import ConfigError
from pipelines.core.warehouse import get_engine, read_frame
from pipelines.engines import choose_compute
from pipelines.engines.spark import spark_master, sync_lake, to_spark_sql
from pipelines.features.customer_features import build_features, read_features
from pipelines.ingest.extract import load_landing
from pipelines.ingest.validation import validate_data
from pipelines.synth.generate import load_truth
from tests.conftest import assert_same_rows

FEATURES = "SELECT * FROM customer_features ORDER BY as_of_date, customer_id"
SCORES = "SELECT * FROM churn_scores ORDER BY as_of_date, customer_id"


def test_date_differences_become_datediff_and_parameters_stay_bound():
    sql = to_spark_sql(
        "SELECT CAST(:as_of AS DATE) - d AS days, d - 30 AS earlier FROM (SELECT CAST(ts AS DATE) AS d FROM stg_transactions) x"
    )
    assert "DATEDIFF(DAY, x.d, CAST(:as_of AS DATE))" in sql
    assert "x.d - 30" in sql  # date minus days is a date on every engine


@pytest.mark.slow
def test_spark_features_and_scores_equal_duckdb(small_dataset, tmp_path):
    meta = load_truth(small_dataset)[2]
    start = date.fromisoformat(meta["start"])
    as_of = start + timedelta(days=meta["days"] - 1)
    cfg = Config(
        base_dir=tmp_path,
        sources={"landing_dir": str(small_dataset / "landing")},
        training={"n_cutoffs": 10, "cutoff_every_days": 14, "min_auc": 0.55},
    )
    engine = get_engine(cfg)
    load_landing(as_of, cfg, engine, since=start)
    validate_data(as_of, cfg, engine, since=start)
    days = (as_of - timedelta(days=45), as_of)
    for day in days:
        build_features(day, cfg, engine)
    assert train_model(as_of, cfg, engine).status == "champion"
    score_customers(as_of, cfg, engine)
    duck_features, duck_scores = read_frame(engine, FEATURES), read_frame(engine, SCORES)

    spark_cfg = cfg.model_copy(update={"engine": "spark", "spark": cfg.spark.model_copy(update={"master": "local[2]"})})
    for day in days:
        build_features(day, spark_cfg, engine)  # replaces the warehouse partitions with Spark's rows
    score_customers(as_of, spark_cfg, engine)
    spark_features, spark_scores = read_frame(engine, FEATURES), read_frame(engine, SCORES)

    assert len(duck_features) > 1000 and len(duck_scores) > 300
    assert_same_rows(duck_features, spark_features, "customer_features")
    assert_same_rows(duck_scores, spark_scores, "churn_scores")
    # Training cutoffs are computed on the fly, on Spark too.
    cutoff = as_of - timedelta(days=100)
    on_the_fly = [
        read_features(engine, c, cutoff, choose_compute(c, engine)).sort_values("customer_id") for c in (cfg, spark_cfg)
    ]
    assert_same_rows(*(f.drop(columns="as_of_date").reset_index(drop=True) for f in on_the_fly), "read_features")
    lake = tmp_path / "var" / "lake"
    assert (lake / "customer_features" / f"as_of_date={as_of}").is_dir()
    assert (lake / "churn_scores" / f"as_of_date={as_of}").is_dir()

    # A re-run rewrites the window's batches only; a batch deleted from the warehouse leaves the lake.
    assert sync_lake(engine, spark_cfg, as_of, as_of)["stg_transactions"] == 1
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM stg_transactions WHERE _batch_date = DATE '{as_of}'")
    sync_lake(engine, spark_cfg, as_of, as_of)
    assert not (lake / "stg_transactions" / f"_batch_date={as_of}").exists()
    engine.dispose()


def test_engine_must_match_the_warehouse_and_master_comes_from_an_airflow_connection(tmp_path, monkeypatch):
    cfg = Config(base_dir=tmp_path, engine="postgres")
    with pytest.raises(ConfigError, match="engine: postgres does not match the warehouse URL"):
        _ = cfg.compute_engine
    spark = Config(base_dir=tmp_path, engine="spark", spark={"conn_id": "spark_default"})
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", "spark://spark-master:7077")
    assert spark_master(spark) == "spark://spark-master:7077"
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", "spark://yarn")
    assert spark_master(spark) == "yarn"
    monkeypatch.delenv("AIRFLOW_CONN_SPARK_DEFAULT")
    with pytest.raises(ConfigError, match="spark_default"):
        spark_master(spark)
    assert Path(tmp_path).exists()
