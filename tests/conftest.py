"""Shared fixtures: a config on a temporary DuckDB warehouse and small generated datasets."""

from __future__ import annotations

import os
import sys
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.config import Config
from pipelines.core.warehouse import get_engine, insert_frame
from pipelines.synth.generate import GeneratorSpec, generate
from tests.pgserver import PostgresServer

# make test runs the suite on pytest-xdist workers, whose __main__ module has neither __spec__ nor
# __file__. pyspark.sql.connect takes that for a doctest run and calls sys.exit(0) when Great
# Expectations imports it; a file name tells it otherwise. Set before any test imports either
# (nothing imported above does).
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "pytest-xdist-worker"

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("AIRFLOW_HOME", str(REPO))


def pytest_collection_modifyitems(config, items):
    """Run the files holding slow tests first: make test spreads files over two workers, and a long file
    started last would run alone at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order within files is kept


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    """A config whose warehouse, landing folder and outputs live under tmp_path."""
    return Config(base_dir=tmp_path, sources={"landing_dir": "landing"})


@pytest.fixture
def engine(cfg: Config):
    eng = get_engine(cfg)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for the whole test session (started as the postgres user when root)."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["duckdb", "postgres"])
def any_cfg(request, tmp_path: Path):
    """The same config as `cfg`, on DuckDB and on a fresh database of the test PostgreSQL server."""
    url = None
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        url = server.create_database()
        request.addfinalizer(lambda: server.drop_database(url))
    warehouse = {"url": url} if url else {}
    return Config(base_dir=tmp_path, sources={"landing_dir": "landing"}, warehouse=warehouse)


@pytest.fixture
def any_engine(any_cfg: Config):
    eng = get_engine(any_cfg)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """800 customers over 300 days, generated once per session."""
    out = tmp_path_factory.mktemp("gen")
    generate(GeneratorSpec(customers=800, days=300, seed=11), out)
    return out


def stg(engine, table: str, rows: list[dict]) -> None:
    """Insert hand-made rows into a stg_ table with default bookkeeping columns."""
    frame = pd.DataFrame(rows)
    for col, default in (("_source_file", "test.csv"), ("_batch_date", date(2025, 1, 1))):
        if col not in frame:
            frame[col] = default
    if "_source_row" not in frame:
        frame["_source_row"] = range(2, len(frame) + 2)
    with engine.begin() as conn:
        insert_frame(conn, table, frame)


def write_landing(root: Path, dataset: str, day: str, text: str) -> Path:
    folder = root / "landing" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{day}.csv"
    path.write_text(text)
    return path


def assert_same_rows(expected: pd.DataFrame, actual: pd.DataFrame, label: str) -> None:
    """Assert two query results hold the same rows: numbers to 1e-9 relative, everything else as text."""
    assert list(expected.columns) == list(actual.columns), label
    assert len(expected) == len(actual), label
    for col in expected.columns:
        a, b = expected[col].reset_index(drop=True), actual[col].reset_index(drop=True)
        numeric = pd.to_numeric(a, errors="coerce")
        if col != "customer_id" and a.notna().any() and numeric.notna().sum() == a.notna().sum():
            pd.testing.assert_series_equal(
                numeric.astype(float),
                pd.to_numeric(b, errors="coerce").astype(float),
                rtol=1e-9,
                check_names=False,
                obj=f"{label}.{col}",
            )
        else:
            assert a.isna().tolist() == b.isna().tolist(), f"{label}.{col}: missing values differ"
            assert a.dropna().astype(str).tolist() == b.dropna().astype(str).tolist(), f"{label}.{col}"


def buy(customer: str, *days: tuple[date, float], type_: str = "purchase") -> list[dict]:
    """Return stg_transactions rows: one per (day, amount), at noon."""
    return [
        {
            "txn_id": f"{customer}-{i}",
            "customer_id": customer,
            "ts": datetime(d.year, d.month, d.day, 12),
            "amount": amount,
            "type": type_,
        }
        for i, (d, amount) in enumerate(days)
    ]
