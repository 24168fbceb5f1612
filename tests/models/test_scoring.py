"""Scores and reasons: faithful to the model, in readable words, only risk-raising facts; risk bands and metrics."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from models.reasons import describe_reason, reasons_frame_ok, risk_flags, rule_text
from models.scoring import DRIVERS, driver_effects, predict, risk_band, top_reasons
from models.training import FEATURES, PlattCalibrator, evaluate, top_share_metrics
from pipelines.deliver.alerts import RULE_DRIVER


@pytest.fixture(scope="module")
def artifact():
    """A model where long inactivity and low NPS drive churn."""
    rng = np.random.default_rng(0)
    n = 4000
    frame = pd.DataFrame({c: rng.normal(0, 1, n) for c in FEATURES})
    frame["days_since_last_purchase"] = rng.integers(0, 90, n)
    frame["last_nps"] = rng.integers(0, 11, n)
    logit = -3 + 0.06 * frame["days_since_last_purchase"] - 0.3 * (frame["last_nps"] - 7)
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(frame[FEATURES].to_numpy(), y)
    cal = PlattCalibrator().fit(model.predict_proba(frame[FEATURES].to_numpy())[:, 1], y)
    return {
        "model": model,
        "calibrator": cal,
        "features": FEATURES,
        "typical": frame[FEATURES].median().to_dict(),
        "model_version": "test",
    }


def _raises_risk(code: str, row: dict, long_wait_seconds: float = 600) -> bool:
    return bool(risk_flags(pd.DataFrame([row]), [code], long_wait_seconds)[0, 0])


def _customer(**over):
    row = {c: 0.0 for c in FEATURES}
    row.update(days_since_last_purchase=10, last_nps=8, mean_gap_days=12, purchases_prev_90d=5)
    row.update(over)
    return row


def test_reasons_are_faithful_to_the_model(artifact):
    frame = pd.DataFrame([_customer(days_since_last_purchase=85, last_nps=2), _customer()])
    p = predict(artifact, frame)
    assert p[0] > p[1]
    effects = driver_effects(artifact, frame, p)
    reasons = top_reasons(frame, effects)
    codes = reasons.loc[0, "reason_codes"].split(";")
    assert set(codes[:2]) == {"inactivity", "low_nps"}
    for code in ("inactivity", "low_nps"):
        assert effects.loc[0, code] > 0  # setting the named driver to typical lowers this customer's score
    assert "no purchase for 85 days, usually every 12 days" in reasons.loc[0].tolist()


def test_reason_texts_carry_the_numbers():
    row = {"repeat_contacts_90d": 3, "contacts_90d": 5, "last_nps": 3, "nps_change": -5, "max_wait_90d": 1200.0}
    assert describe_reason("repeat_contacts", row) == "contacted us again within a week 3 times (5 contacts in 90 days)"
    assert describe_reason("low_nps", row) == "rated us 3 out of 10 (a detractor's score), down 5 points"
    assert describe_reason("long_waits", row) == "waited up to 20 minutes for service"


def test_reason_texts_read_as_sentences():
    one = {"purchases_90d": 1, "purchases_prev_90d": 4, "days_since_last_purchase": 1, "mean_gap_days": 52.4}
    assert (
        describe_reason("fewer_purchases", one) == "1 purchase in the last 90 days, down from 4 in the 90 days before"
    )
    assert describe_reason("inactivity", one) == "no purchase for 1 day, usually every 52 days"
    money = {"spend_90d": 1234.567, "spend_prev_90d": 20000}
    assert describe_reason("lower_spend", money, "EUR") == (
        "spent EUR 1,235 in the last 90 days, down from EUR 20,000 in the 90 days before"
    )
    assert rule_text("detractor_after_complaint", {"last_nps": 4, "complaints_90d": 1}) == (
        "rated us 4 out of 10 after 1 complaint in 90 days"
    )
    assert rule_text(
        "overdue_regular", {"overdue_ratio": 52.0, "days_since_last_purchase": 104, "mean_gap_days": 2}
    ) == ("regular customer, no purchase for 104 days: 52 times the usual gap of 2 days")
    # Nothing missing ever shows as nan / None / n/a.
    texts = pd.Series([describe_reason(c, {}) for c, _, _ in DRIVERS] + [rule_text(r, {}) for r in RULE_DRIVER])
    assert reasons_frame_ok(texts), texts.tolist()


def test_only_risk_raising_facts_are_reasons():
    assert not _raises_risk("low_nps", {"last_nps": 9})  # a promoter's answer is no churn reason
    assert _raises_risk("low_nps", {"last_nps": 5})
    assert _raises_risk("low_nps", {"last_nps": 7, "nps_change": -3})  # a passive who dropped
    assert not _raises_risk("tenure", {"tenure_days": 886})  # a long tenure is no churn reason
    assert _raises_risk("tenure", {"tenure_days": 20})
    assert not _raises_risk("fewer_purchases", {"purchases_90d": 3, "purchases_prev_90d": 3})
    assert not _raises_risk("inactivity", {"days_since_last_purchase": 5, "mean_gap_days": 20})
    assert not _raises_risk("long_waits", {"max_wait_90d": 60}, long_wait_seconds=600)


def test_risk_bands():
    bands = risk_band(np.array([0.05, 0.3, 0.59, 0.6, 0.99]), {"high": 0.6, "medium": 0.3, "low": 0.0})
    assert bands.tolist() == ["low", "medium", "medium", "high", "high"]


def test_metrics_by_hand():
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    prec, lift = top_share_metrics(y, p, 0.2)
    assert prec == 0.5 and lift == pytest.approx(2.5)
    m = evaluate(y, p)
    assert m["auc"] == pytest.approx(1 - 1 / 16 * 0.5 * 2 / 1, abs=0.07)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))


def test_a_score_no_single_fact_explains_says_so():
    frame = pd.DataFrame([{"days_since_last_purchase": 5, "mean_gap_days": 20, "last_nps": 10}])
    effects = pd.DataFrame([{"inactivity": 0.9, "low_nps": 0.4}])
    out = top_reasons(frame, effects)
    assert (
        out.loc[0, "reason_1"]
        == "no single clear reason: the overall pattern (strongest signal: time since the last purchase)"
    )
    assert out.loc[0, "reason_codes"] == "inactivity" and out.loc[0, "reason_2"] is None


def test_risk_flags_with_missing_numbers_and_columns():
    """Transactions-only data has no service columns; a missing number never points to risk."""
    frame = pd.DataFrame(
        {
            "days_since_last_purchase": [45.0, 45.0, np.nan, 10.0],
            "mean_gap_days": [np.nan, 60.0, 5.0, 0.0],
            "purchases_90d": [1.0, np.nan, 0.0, 2.0],
            "purchases_prev_90d": [3.0, 2.0, np.nan, 2.0],
        }
    )
    codes = ["inactivity", "fewer_purchases", "open_tickets", "complaints", "low_nps", "unknown"]
    flags = risk_flags(frame, codes)
    assert flags.shape == (4, 6) and flags.dtype == bool
    # no rhythm known: 30 days of silence count; a rhythm of 60 days: 45 do not; no purchase at all: nothing
    assert flags[:, 0].tolist() == [True, False, False, False]
    assert flags[:, 1].tolist() == [True, False, False, False]
    assert not flags[:, 2:].any()


def _top_reasons_row_by_row(frame, effects, k=3, currency="", long_wait_seconds=600):
    """The plain reading of top_reasons, one row at a time: the oracle of the column-wise code."""
    from models.reasons import pattern_reason
    from models.scoring import MIN_EFFECT

    codes = effects.columns.to_numpy()
    vals = np.round(effects.to_numpy(), 6)
    order = np.argsort(-vals, axis=1, kind="stable")
    usable = np.take_along_axis((vals > MIN_EFFECT) & risk_flags(frame, codes, long_wait_seconds), order, axis=1)
    chosen = usable & (np.cumsum(usable, axis=1) <= k)
    strongest = np.take_along_axis(vals, order[:, :1], axis=1)[:, 0]
    pattern = ~chosen.any(axis=1) & (strongest > MIN_EFFECT)
    out = {f"reason_{i + 1}": [None] * len(frame) for i in range(k)}
    out["reason_codes"] = [""] * len(frame)
    for r, row in enumerate(frame.to_dict("records")):
        if pattern[r]:
            picked = [codes[order[r, 0]]]
            out["reason_1"][r] = pattern_reason(picked[0])
        elif chosen[r].any():
            picked = [codes[j] for j in order[r][chosen[r]]]
            for i, code in enumerate(picked):
                out[f"reason_{i + 1}"][r] = describe_reason(code, row, currency)
        else:
            continue
        out["reason_codes"][r] = ";".join(picked)
    return pd.DataFrame(out, index=frame.index)


def test_top_reasons_column_wise_equal_the_row_by_row_reading():
    """Reasons worded once per distinct numbers, column by column, equal the row-by-row sentences: customers
    with one to three reasons, with none, with only the overall pattern, with missing and odd numbers."""
    rng = np.random.default_rng(3)
    n = 4000
    codes = [code for code, _, _ in DRIVERS]
    effects = pd.DataFrame(rng.normal(0.05, 0.3, (n, len(codes))).round(3), columns=codes, index=range(10, 10 + n))
    effects.iloc[::50] = 0.0  # no driver at all
    frame = pd.DataFrame(
        {
            "days_since_last_purchase": rng.integers(0, 400, n).astype(float),
            "mean_gap_days": np.where(rng.random(n) < 0.2, np.nan, rng.gamma(2, 15, n).round(1)),
            "purchases_90d": rng.integers(0, 6, n).astype(float),
            "purchases_prev_90d": rng.integers(0, 9, n).astype(float),
            "spend_90d": rng.gamma(2, 40, n).round(2) - 0.5,
            "spend_prev_90d": rng.gamma(2, 60, n).round(2),
            "repeat_contacts_90d": rng.integers(0, 4, n).astype(float),
            "contacts_90d": rng.integers(0, 9, n).astype(float),
            "max_wait_90d": np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 3600, n)),
            "open_tickets": rng.integers(0, 3, n).astype(float),
            "complaints_90d": rng.integers(0, 3, n).astype(float),
            "negative_notes_90d": rng.integers(0, 2, n).astype(float),
            "last_nps": np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 11, n)),
            "nps_change": np.where(rng.random(n) < 0.5, np.nan, rng.integers(-6, 4, n)),
            "tenure_days": rng.integers(1, 900, n).astype(float),
        },
        index=effects.index,
    )
    got = top_reasons(frame, effects, 3, "EUR")
    expected = _top_reasons_row_by_row(frame, effects, 3, "EUR")
    filled = got["reason_3"].notna().sum(), got["reason_1"].str.startswith("no single clear reason").sum()
    assert filled[0] > 100 and filled[1] > 10 and (got["reason_codes"] == "").sum() > 10, filled
    pd.testing.assert_frame_equal(got.astype(object), expected.astype(object))
