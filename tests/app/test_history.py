"""`churnwatch load-history`: a history loaded in windows gives the tables of loading its days one by one,
quarantine included."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.config import Config
from pipelines.core.warehouse import get_engine, read_frame
from pipelines.steps import history_windows, load_history, run_steps
from pipelines.synth.generate import GeneratorSpec, generate
from tests.conftest import assert_same_rows

START = date(2025, 3, 1)
DAYS = 11
DATASETS = ("customers", "transactions", "service_events", "surveys", "cancellations")


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    """11 days of 300 generated customers, with hostile rows in later files (re-sent, conflicting, unknown)."""
    out = tmp_path_factory.mktemp("history")
    generate(GeneratorSpec(customers=300, days=DAYS, seed=3, start=START), out)
    folder = out / "landing" / "transactions"
    first = pd.read_csv(folder / "2025-03-02.csv", dtype=str)
    resent, changed = first.iloc[0].copy(), first.iloc[1].copy()
    changed["amount"] = "999.99"  # same id, other amount: a conflict, two windows later
    changed["ts"] = "2025-03-10 10:00:00"
    hostile = pd.DataFrame([resent, changed])
    unknown = first.iloc[[2]].assign(txn_id="TX-UNKNOWN", customer_id="C-NOBODY", ts="2025-03-07 12:00:00")
    infinite = first.iloc[[3]].assign(txn_id="TX-INF", amount="inf", ts="2025-03-11 08:00:00")
    for day, rows in (("2025-03-10", hostile), ("2025-03-07", unknown), ("2025-03-11", infinite)):
        path = folder / f"{day}.csv"
        pd.concat([pd.read_csv(path, dtype=str), rows]).to_csv(path, index=False)
    return out / "landing"


def _warehouse(tmp_path: Path, name: str, landing: Path) -> Config:
    base = tmp_path / name
    shutil.copytree(landing, base / "landing")
    return Config(base_dir=base, sources={"landing_dir": "landing"})


def _tables(cfg: Config) -> dict[str, pd.DataFrame]:
    engine = get_engine(cfg)
    out = {}
    for dataset in DATASETS:
        for kind in ("raw", "stg", "quarantine"):
            frame = read_frame(engine, f"SELECT * FROM {kind}_{dataset}")
            out[f"{kind}_{dataset}"] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    # The latest accounting per delivered batch: day by day revalidates each batch over the look-back window
    # (and records the days a dataset had no file, which a window does not).
    dq = read_frame(
        engine,
        "SELECT dataset, batch_date, rows_read, rows_loaded, rows_quarantined FROM dq_runs d WHERE created_at ="
        " (SELECT MAX(created_at) FROM dq_runs e WHERE e.dataset = d.dataset AND e.batch_date = d.batch_date)"
        " AND rows_read > 0",
    )
    out["dq_runs"] = dq.sort_values(["dataset", "batch_date"]).reset_index(drop=True)
    engine.dispose()
    return out


@pytest.mark.slow
def test_a_history_loaded_in_windows_gives_the_tables_of_loading_day_by_day(tmp_path, landing):
    last = START + timedelta(days=DAYS - 1)
    nightly = _warehouse(tmp_path, "nightly", landing)
    day = START
    while day <= last:
        run_steps(["load_landing", "validate_data"], day, nightly, workers=1)
        day += timedelta(days=1)
    history = _warehouse(tmp_path, "history", landing)
    windows = load_history(START, last, history, window_days=4)
    assert [(w["first"], w["last"]) for w in windows] == [
        (f.isoformat(), e.isoformat()) for f, e in history_windows(START, last, 4)
    ]
    expected, actual = _tables(nightly), _tables(history)
    for name in expected:
        assert_same_rows(expected[name], actual[name], name)
    quarantined = expected["quarantine_transactions"].set_index("txn_id")["reasons"]
    resent_id, changed_id = pd.read_csv(landing / "transactions" / "2025-03-02.csv", dtype=str)["txn_id"].iloc[:2]
    assert quarantined.to_dict() == {
        resent_id: "duplicate_row",
        changed_id: "conflicting_key",
        "TX-INF": "non_finite_amount",
        "TX-UNKNOWN": "unknown_customer",
    }
    n_read = int(expected["dq_runs"]["rows_read"].sum())
    assert n_read == int(expected["dq_runs"]["rows_loaded"].sum() + expected["dq_runs"]["rows_quarantined"].sum())


def test_history_windows_cover_the_days_once():
    assert history_windows(date(2025, 1, 1), date(2025, 1, 1), 60) == [(date(2025, 1, 1), date(2025, 1, 1))]
    windows = history_windows(date(2024, 1, 1), date(2025, 12, 29), 60)
    assert len(windows) == 13 and windows[0] == (date(2024, 1, 1), date(2024, 2, 29))
    assert all(b[0] == a[1] + timedelta(days=1) for a, b in zip(windows, windows[1:]))
    assert windows[-1][1] == date(2025, 12, 29)
    with pytest.raises(ValueError):
        history_windows(date(2025, 1, 1), date(2025, 1, 2), 0)
