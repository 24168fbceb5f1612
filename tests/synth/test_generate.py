import json
from dataclasses import asdict
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.synth.generate import WORLDS, GeneratorSpec, World, generate, load_truth, oracle_probability


def _frame(root, dataset):
    return pd.concat(pd.read_csv(p) for p in sorted((root / "landing" / dataset).glob("*.csv")))


def test_landing_files_per_day_and_truth(small_dataset):
    days = sorted(p.stem for p in (small_dataset / "landing" / "transactions").glob("*.csv"))
    assert days[0] == "2025-01-01" and len(days) == 300
    events = _frame(small_dataset, "service_events")
    assert {"contact", "complaint"} <= set(events["event_type"])
    assert events["wait_seconds"].min() >= 0 and events["note"].notna().all()
    nps = _frame(small_dataset, "surveys")["nps_score"]
    assert nps.between(0, 10).all() and nps.nunique() > 5
    truth, _, meta = load_truth(small_dataset)
    assert len(truth) == 800 and meta["seed"] == 11


def test_purchases_thin_out_before_churn(small_dataset):
    truth, _, meta = load_truth(small_dataset)
    txns = _frame(small_dataset, "transactions")
    txns["day"] = (pd.to_datetime(txns["ts"]) - pd.Timestamp(meta["start"])).dt.days
    churners = truth[(truth["churn_day"] >= 150) & (truth["churn_day"] < 300) & (truth["signup_day"] < 0)]
    merged = txns.merge(churners[["customer_id", "churn_day"]], on="customer_id")
    before = merged["churn_day"] - merged["day"]
    early = ((before > 90) & (before <= 150)).groupby(merged["customer_id"]).sum()
    late = ((before > 0) & (before <= 60)).groupby(merged["customer_id"]).sum()
    # Same 60-day length: the last two months before leaving hold fewer purchases than earlier ones.
    assert late.mean() < 0.8 * early.mean()


def test_most_churners_never_complain_and_locked_in_stay(small_dataset):
    truth, _, _ = load_truth(small_dataset)
    events = _frame(small_dataset, "service_events")
    complainers = set(events.loc[events["event_type"] == "complaint", "customer_id"])
    churned = truth[truth["churn_day"] >= 0]
    assert churned["customer_id"].isin(complainers).mean() < 0.4
    locked = truth[truth["locked_in"]]
    assert locked["customer_id"].isin(complainers).mean() > churned["customer_id"].isin(complainers).mean()
    assert (locked["churn_day"] >= 0).mean() < (truth.loc[~truth["locked_in"], "churn_day"] >= 0).mean()


def test_oracle_is_calibrated(small_dataset):
    truth = load_truth(small_dataset)
    frames = [
        oracle_probability(small_dataset, date(2025, 1, 1) + timedelta(days=d), 90, truth) for d in range(60, 300, 30)
    ]
    o = pd.concat(frames)
    alive = o[~o["already_gone"]]
    # Mean predicted vs realised churn across many customer-dates: within a few points.
    assert abs(alive["true_probability"].mean() - alive["churned_within_horizon"].mean()) < 0.03
    assert np.all((o["true_probability"] >= 0) & (o["true_probability"] <= 1))


@pytest.mark.parametrize(
    "world",
    [World(episode_onset_days=15.0), WORLDS["observable"]],
    ids=["episode-onset", "observable"],
)
def test_oracle_stays_calibrated_in_other_worlds(world, tmp_path):
    """The oracle follows the world recorded in the truth: a delayed episode hazard, a lag before a decline bites."""
    generate(GeneratorSpec(customers=8000, days=300, seed=5, world=world), tmp_path)
    assert json.loads((tmp_path / "truth" / "meta.json").read_text())["world"] == asdict(world)
    truth = load_truth(tmp_path)
    o = pd.concat(
        oracle_probability(tmp_path, date(2025, 1, 1) + timedelta(days=d), 90, truth) for d in range(60, 210, 30)
    )
    alive = o[~o["already_gone"]].copy()
    assert abs(alive["true_probability"].mean() - alive["churned_within_horizon"].mean()) < 0.01
    # Calibrated by quintile too, not only on average.
    alive["quintile"] = pd.qcut(alive["true_probability"], 5, labels=False, duplicates="drop")
    table = alive.groupby("quintile").agg(p=("true_probability", "mean"), rate=("churned_within_horizon", "mean"))
    assert (table["p"] - table["rate"]).abs().max() < 0.02, table
