from pathlib import Path

import pytest

from pipelines.config import WAREHOUSE_URL_ENV, Config, load_config
from pipelines.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


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
        ("- just a list\n", "top level must be a mapping"),
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


def test_missing_config_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_warehouse_url_comes_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(WAREHOUSE_URL_ENV, "postgresql+psycopg2://u:secret@db/x")
    assert Config(base_dir=tmp_path).warehouse_url == "postgresql+psycopg2://u:secret@db/x"
    monkeypatch.delenv(WAREHOUSE_URL_ENV)
    assert Config(base_dir=tmp_path).warehouse_url == f"duckdb:///{tmp_path.resolve()}/var/churnwatch.duckdb"
