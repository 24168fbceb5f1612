"""Nightly features rolled from the stored per-customer state equal those of the plain all-history query."""

from datetime import date, datetime, timedelta

import pandas as pd

from pipelines.core.config import Config
from pipelines.core.warehouse import read_frame
from pipelines.features.customer_features import build_features, load_features, read_features
from pipelines.features.feature_state import STORE_EVERY_DAYS, settled_day
from pipelines.ingest.extract import load_landing
from pipelines.ingest.validation import validate_data
from pipelines.synth.generate import load_truth
from tests.conftest import stg


def assert_same_as_plain(engine, cfg: Config, day: date) -> None:
    fast = load_features(engine, day).sort_values("customer_id").reset_index(drop=True)
    plain = read_features(engine, cfg, day).sort_values("customer_id").reset_index(drop=True)[fast.columns]
    assert len(fast) > 100
    for col in fast.columns:
        same = (fast[col] == plain[col]) | (fast[col].isna() & plain[col].isna())
        assert same.all(), (day, col, fast.loc[~same, ["customer_id", col]].head(3), plain.loc[~same, col].head(3))


def states(engine) -> list[date]:
    log = read_frame(engine, "SELECT state_date FROM feature_state_log ORDER BY state_date")
    return [pd.Timestamp(d).date() for d in log["state_date"]]


def test_rolled_state_gives_the_plain_features_night_after_night(small_dataset, tmp_path, any_cfg, any_engine):
    """Nights in a row, a re-run, a backfill of an earlier night, and rows written around the validate step."""
    cfg = any_cfg.model_copy(
        update={
            "sources": any_cfg.sources.model_copy(update={"landing_dir": small_dataset / "landing"}),
            "features": any_cfg.features.model_copy(update={"incremental": True}),
        }
    )
    engine = any_engine
    meta = load_truth(small_dataset)[2]
    start = date.fromisoformat(meta["start"])
    first = start + timedelta(days=meta["days"] - 8)
    load_landing(first, cfg, engine, since=start)
    validate_data(first, cfg, engine, since=start)
    build_features(first, cfg, engine)  # no state yet: summed from all history
    assert states(engine) == [settled_day(first, cfg)]
    assert_same_as_plain(engine, cfg, first)
    for k in range(1, 8):
        day = first + timedelta(days=k)
        load_landing(day, cfg, engine)
        validate_data(day, cfg, engine)
        build_features(day, cfg, engine)  # rolled inline from the first night's state, up to a week of rows
        assert_same_as_plain(engine, cfg, day)
        stored = [settled_day(first, cfg)] + ([settled_day(day, cfg)] if k >= STORE_EVERY_DAYS else [])
        assert states(engine) == stored, k  # a new state once the stored one is a week older
    last = first + timedelta(days=7)

    # A re-run of an earlier night replaces batches the newer states summed: they are dropped.
    back = first + timedelta(days=1)
    load_landing(back, cfg, engine)
    validate_data(back, cfg, engine)
    assert max(states(engine)) < back - timedelta(days=cfg.sources.lookback_days)
    build_features(back, cfg, engine)
    assert_same_as_plain(engine, cfg, back)

    # A late purchase in tonight's batch dated before the customer's last purchase day splits a known
    # gap: that customer is summed again from all their rows.
    customer = read_frame(
        engine,
        "SELECT customer_id FROM customer_features WHERE as_of_date = :d AND purchase_days_total >= 3"
        " ORDER BY customer_id LIMIT 1",
        {"d": last},
    )["customer_id"][0]
    early = datetime.combine(start + timedelta(days=3), datetime.min.time())
    late_row = {"txn_id": "late-1", "customer_id": customer, "ts": early, "amount": 12.5, "type": "purchase"}
    stg(engine, "stg_transactions", [{**late_row, "_batch_date": last}])
    build_features(last, cfg, engine)
    assert_same_as_plain(engine, cfg, last)

    # The same written to a settled batch by something else: the state's row counts no longer match,
    # it is summed again.
    stg(engine, "stg_transactions", [{**late_row, "txn_id": "late-2", "_batch_date": start}])
    build_features(last, cfg, engine)
    assert_same_as_plain(engine, cfg, last)
    log = read_frame(
        engine, "SELECT rolled_from FROM feature_state_log WHERE state_date = :d", {"d": settled_day(last, cfg)}
    )
    assert log["rolled_from"].isna().all()  # summed from all history, not rolled from the voided state


def test_plain_path_when_incremental_is_off(cfg, engine):
    stg(
        engine,
        "stg_transactions",
        [{"txn_id": "t", "customer_id": "A", "ts": datetime(2025, 3, 1), "amount": 5.0, "type": "purchase"}],
    )
    off = cfg.model_copy(update={"features": cfg.features.model_copy(update={"incremental": False})})
    build_features(date(2025, 3, 31), off, engine)
    assert states(engine) == []
    assert load_features(engine, date(2025, 3, 31))["purchases_total"].tolist() == [1]


def test_a_state_built_slice_by_slice_is_the_state_built_whole(small_dataset, any_cfg, any_engine):
    """The first night sums all history in slices of customers (memory); the slices add up to the whole."""
    from pipelines.features.feature_state import FIRST_STATE_SLICES, roll

    cfg = any_cfg.model_copy(
        update={"sources": any_cfg.sources.model_copy(update={"landing_dir": small_dataset / "landing"})}
    )
    meta = load_truth(small_dataset)[2]
    start = date.fromisoformat(meta["start"])
    day = start + timedelta(days=meta["days"] - 8)
    load_landing(day, cfg, any_engine, since=start)
    validate_data(day, cfg, any_engine, since=start)
    with any_engine.connect() as conn:
        sql, params = roll(conn, None, settled_day(day, cfg))
        whole = read_frame(conn, f"SELECT * FROM ({sql}) q", params)
        slices = []
        for part in range(FIRST_STATE_SLICES):
            sql, params = roll(conn, None, settled_day(day, cfg), (part, FIRST_STATE_SLICES))
            slices.append(read_frame(conn, f"SELECT * FROM ({sql}) q", params))
    assert len(whole) > 500 and all(len(s) > 0 for s in slices)  # every slice holds customers
    sliced = pd.concat(slices).sort_values("customer_id").reset_index(drop=True)
    whole = whole.sort_values("customer_id").reset_index(drop=True)
    assert sliced["customer_id"].is_unique  # a customer is in one slice only
    pd.testing.assert_frame_equal(sliced, whole, check_dtype=False)
