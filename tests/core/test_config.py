from pathlib import Path

import pytest

from pipelines.core.config import WAREHOUSE_URL_ENV, Config, load_config
from pipelines.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_repository_config_is_valid():
    cfg = load_config(REPO / "churnwatch.yaml")
    assert cfg.churn.horizon_days == 90
    assert [t.name for t in cfg.alerts.teams] == ["key_accounts", "north", "south"]
    assert cfg.resolve(Path("var")) == (REPO / "var").resolve()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("churn:\n  horizon_dayz: 90\n", "churn.horizon_dayz: unknown key"),
        ("churn:\n  horizon_days: 3\n", "churn.horizon_days: Input should be greater than or equal to 7"),
        ("alerts:\n  probability_threshold: abc\n", "alerts.probability_threshold"),
        ("sources:\n  datasets:\n    transactions: {folder: t, columns: {amout: x}}\n", "unknown column 'amout'"),
        (
            "sources:\n  datasets:\n    transactions: {folder: t, columns: {amount: 'x; drop'}}\n",
            "not a plain identifier",
        ),
        ("sources:\n  datasets:\n    surveys: {folder: s}\n", "transactions dataset is mandatory"),
        ("churn: [1, 2\n", "is not valid YAML"),
        ("value:\n  period_days: 7\n", "value.period_days: Input should be greater than or equal to 30"),
        ("value:\n  perod_days: 90\n", "value.perod_days: unknown key"),
        ("alerts:\n  assumed_effect: 1.5\n", "alerts.assumed_effect: Input should be less than 1"),
        ("warehouse:\n  url: postgresql://u:hunter2@db/x\n", "warehouse.url: Value error, holds a password"),
        ("sources:\n  timezone: Mars/Olympus\n", "sources.timezone: Value error, unknown time zone"),
        (
            "sources:\n  datasets:\n    transactions: {sql: {table: t, watermark: w}}\n",
            "set exactly one of conn_id or url_env",
        ),
        (
            "sources:\n  datasets:\n    transactions: {folder: t, sql: {url_env: X, table: t, watermark: w}}\n",
            "either folder",
        ),
        ("sources:\n  lookback_days: -1\n", "sources.lookback_days"),
        ("- just a list\n", "top level must be a mapping"),
        ("engine: sparkle\n", "engine: Input should be 'duckdb', 'postgres' or 'spark'"),
        ("spark:\n  masterr: yarn\n", "spark.masterr: unknown key"),
        ("scoring:\n  chunk_rows: 5\n", "scoring.chunk_rows"),
        ("scoring:\n  explain: everyone\n", "scoring.explain: Input should be 'at_risk' or 'all'"),
        # Hostile-input cases: each used to end in a traceback or in SQL built from the value.
        ("sources:\n  datasets:\n    transactions:\n      encoding: klingon\n", "unknown encoding 'klingon'"),
        (
            "sources:\n  datasets:\n    transactions:\n      sql: {url_env: X, table: t, watermark: 'ts or true'}\n",
            "watermark 'ts or true' is not a plain column name",
        ),
        ("sources:\n  earliest_timestamp: yesterday\n", "sources.earliest_timestamp"),
        ("paths:\n  file_mode: rw-r--r--\n", "not an octal mode"),
    ],
)
def test_bad_config_names_the_key_in_one_line(tmp_path, text, expected):
    path = tmp_path / "churnwatch.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert str(path) in message
    assert "hunter2" not in message


def test_missing_config_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_warehouse_url_comes_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(WAREHOUSE_URL_ENV, "postgresql+psycopg2://u:secret@db/x")
    assert Config(base_dir=tmp_path).warehouse_url == "postgresql+psycopg2://u:secret@db/x"
    monkeypatch.delenv(WAREHOUSE_URL_ENV)
    assert Config(base_dir=tmp_path).warehouse_url == f"duckdb:///{tmp_path.resolve()}/var/churnwatch.duckdb"


def test_warehouse_url_from_an_airflow_connection(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_CHURN_WH", "postgres://u:secret@db:5432/x")
    cfg = Config(base_dir=tmp_path, warehouse={"conn_id": "churn_wh"})
    assert cfg.warehouse_url == "postgresql://u:secret@db:5432/x"
    monkeypatch.delenv("AIRFLOW_CONN_CHURN_WH")
    with pytest.raises(ConfigError, match="Airflow connection 'churn_wh' not found"):
        _ = Config(base_dir=tmp_path, warehouse={"conn_id": "churn_wh"}).warehouse_url


def test_unreachable_warehouse_error_hides_the_password(monkeypatch, tmp_path):
    from pipelines.core.errors import ChurnwatchError
    from pipelines.core.warehouse import get_engine

    monkeypatch.setenv(WAREHOUSE_URL_ENV, "postgresql+psycopg2://u:hunter2@127.0.0.1:1/x")
    with pytest.raises(ChurnwatchError) as info:
        get_engine(Config(base_dir=tmp_path))
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_bad_duckdb_memory_limit_is_one_line(tmp_path):
    from pipelines.core.errors import ChurnwatchError
    from pipelines.core.warehouse import get_engine

    cfg = Config(base_dir=tmp_path, warehouse={"duckdb_memory_limit": "two gigs"})
    with pytest.raises(ChurnwatchError) as info:
        get_engine(cfg)
    assert "cannot connect to warehouse" in str(info.value) and "\n" not in str(info.value)
