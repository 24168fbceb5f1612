"""Simulated outreach: causes and kept purchases in the generator, and calls applied after the fact."""

from __future__ import annotations

import hashlib
import shutil
from datetime import date, timedelta

import pandas as pd
import pytest

from pipelines.synth.generate import CAUSES, load_truth
from pipelines.synth.outreach import apply_outreach, true_effects

START = date(2025, 1, 1)
AS_OF = START + timedelta(days=150)


def _digests(landing):
    return {p.relative_to(landing): hashlib.sha256(p.read_bytes()).hexdigest() for p in landing.rglob("*.csv")}


def _transactions(landing):
    return pd.concat(
        pd.read_csv(p, dtype={"customer_id": str}) for p in sorted((landing / "transactions").glob("*.csv"))
    )


@pytest.fixture
def generated(small_dataset, tmp_path):
    """A private copy of the session's generated data (calls change its landing files)."""
    return shutil.copytree(small_dataset, tmp_path / "gen")


def test_generator_records_each_leavers_cause_and_kept_purchases(small_dataset):
    truth, _, meta = load_truth(small_dataset)
    leavers = truth["churn_day"] >= 0
    assert set(truth.loc[leavers, "churn_cause"]) <= set(CAUSES) and truth.loc[~leavers, "churn_cause"].isna().all()
    assert {"service", "decline"} <= set(truth["churn_cause"].dropna())
    assert meta["outreach"] == {"service": 0.6, "decline": 0.05, "sudden": 0.0}
    kept = pd.read_csv(small_dataset / "outreach" / "kept_transactions.csv")
    churn_day = kept["customer_id"].map(truth.set_index("customer_id")["churn_day"])
    assert (kept["day"] >= churn_day).all() and kept["day"].max() < meta["days"]
    assert kept["txn_id"].str.startswith("K").all() and (kept["amount"] > 0).all()
    # Service-driven leavers contacted the service more than those whose buying faded.
    events = pd.concat(pd.read_csv(p) for p in (small_dataset / "landing" / "service_events").glob("*.csv"))
    contacts = truth["customer_id"].map(events.groupby("customer_id").size()).fillna(0)
    assert contacts[truth["churn_cause"] == "service"].mean() > 1.5 * contacts[truth["churn_cause"] == "decline"].mean()


def test_apply_outreach_changes_only_later_days_of_kept_called_customers(generated):
    landing = generated / "landing"
    truth = true_effects(generated, AS_OF, load_truth(generated)[0]["customer_id"])
    leaving = truth[truth["at_stake"]]
    sent = leaving["customer_id"].iloc[::2].tolist() + truth.loc[~truth["at_stake"], "customer_id"][:50].tolist()
    control = leaving["customer_id"].iloc[1::2].tolist()
    before, txns_before = _digests(landing), _transactions(landing)
    summary = apply_outreach(generated, landing, AS_OF, sent, seed=5)
    after = _digests(landing)
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed and all(date.fromisoformat(p.stem) > AS_OF for p in changed)  # nothing on or before as_of
    calls = pd.read_csv(generated / "truth" / "outreach_calls.csv", dtype={"customer_id": str})
    kept = set(calls.loc[calls["saved"], "customer_id"])
    assert summary["kept"] == len(kept) > 0 and kept <= set(sent) and not kept & set(control)
    assert calls.loc[calls["saved"], "at_stake"].all()  # only a customer lost or leaving can be kept
    added = _transactions(landing).merge(txns_before, how="left", indicator=True).query("_merge == 'left_only'")
    assert set(added["customer_id"]) == kept and (pd.to_datetime(added["ts"]).dt.date > AS_OF).all()
    # The share kept follows the true effect of each cause.
    called = calls.query("at_stake")
    rate = called.groupby("cause")["saved"].mean()
    assert 0.4 < rate["service"] < 0.8 and rate.get("decline", 0) < 0.2 and rate.get("sudden", 0) == 0
    # Deterministic: the same call on another copy gives the same files; a re-run adds nothing twice.
    apply_outreach(generated, landing, AS_OF, sent, seed=5)
    assert _digests(landing) == after
    assert len(pd.read_csv(generated / "truth" / "outreach_calls.csv")) == len(calls)


def test_apply_outreach_is_deterministic_by_seed(small_dataset, tmp_path):
    sent = load_truth(small_dataset)[0]["customer_id"].tolist()
    results = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        copy = shutil.copytree(small_dataset, tmp_path / name)
        apply_outreach(copy, copy / "landing", AS_OF, sent, seed=seed)
        results.append(pd.read_csv(copy / "truth" / "outreach_calls.csv")["saved"].tolist())
    assert results[0] == results[1] and results[0] != results[2]
