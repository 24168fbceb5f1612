"""The Bayes reference: calibrated, between recency and the oracle, and its shortcut equals the oracle."""

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from pipelines.synth.generate import WORLDS, GeneratorSpec, generate, load_truth, oracle_probability
from pipelines.synth.reference import bayes_reference, forward_by_onset, landing_source

START = date(2025, 1, 1)


def _scored(out, as_of):
    """Customers with a transaction in the 90 days up to as_of (those a model scores), with recency."""
    last = duckdb.sql(
        f"SELECT customer_id, MAX(CAST(ts AS DATE)) AS d FROM {landing_source(out, 'transactions')} "
        f"WHERE CAST(ts AS DATE) <= DATE '{as_of}' GROUP BY 1"
    ).df()
    last["recency"] = (pd.Timestamp(as_of) - pd.to_datetime(last["d"])).dt.days
    return last[last["recency"] < 90]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    generate(GeneratorSpec(customers=3000, days=300, seed=21), out)
    return out


def test_reference_is_calibrated_and_sits_between_recency_and_the_oracle(base):
    frames = []
    for as_of in (START + timedelta(days=150), START + timedelta(days=200)):
        scored = _scored(base, as_of)
        ref = bayes_reference(base, as_of, 90, scored["customer_id"].tolist())
        assert len(ref) == len(scored) and ref["probability"].between(0, 1).all()
        frames.append(oracle_probability(base, as_of, 90).merge(ref, on="customer_id").merge(scored, on="customer_id"))
    m = pd.concat(frames)
    y = m["churned_within_horizon"].astype(int)
    assert abs(m["probability"].mean() - y.mean()) < 0.02
    auc_ref, auc_oracle = roc_auc_score(y, m["probability"]), roc_auc_score(y, m["true_probability"])
    assert roc_auc_score(y, m["recency"]) < auc_ref < auc_oracle
    # More information, better probabilities: the oracle's Brier score is the lowest.
    assert brier_score_loss(y, m["true_probability"]) < brier_score_loss(y, m["probability"])
    # Customers already gone at the date are recognised from their silence.
    assert roc_auc_score(m["already_gone"], m["probability"]) > 0.75


def test_forward_shortcut_equals_the_oracle_with_that_onset(base):
    as_of = START + timedelta(days=180)
    truth = load_truth(base)
    ids = truth[0]["customer_id"].iloc[:400].tolist()
    onsets = np.array([0, 90, 150, 179, 180, 10**6])
    ahead = forward_by_onset(base, as_of, 90, ids, onsets, truth)
    cust = truth[0].assign(churn_day=-1)
    for k, onset in enumerate(onsets):
        start = onset + 0.5 if onset <= 180 else 181.0
        direct = oracle_probability(base, as_of, 90, (cust.assign(decline_start=start), truth[1], truth[2]))
        expected = direct.set_index("customer_id")["true_probability"].reindex(ids).to_numpy()
        signed = ~np.isnan(expected)
        np.testing.assert_allclose(ahead[signed, k], expected[signed], rtol=1e-9, atol=1e-12)
    assert signed.sum() > 300
    assert (np.diff(ahead[signed, :-1], axis=1) <= 1e-12).all()  # an older decline bites harder


def test_reference_reads_parquet_and_follows_the_world(tmp_path):
    generate(GeneratorSpec(customers=400, days=200, seed=4, world=WORLDS["observable"]), tmp_path, fmt="parquet")
    as_of = START + timedelta(days=150)
    scored = _scored(tmp_path, as_of)
    ref = bayes_reference(tmp_path, as_of, 90, [*scored["customer_id"], "NOT-A-CUSTOMER"])
    assert set(ref["customer_id"]) == set(scored["customer_id"])
    assert ref["probability"].between(0, 1).all() and ref["probability"].std() > 0.01
