"""The uplift estimator on hand-built data: effects per profile, intervals, thin-profile fallback, ranking."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from models.uplift import (
    choose_ranking,
    estimate_uplift,
    matured_observations,
    profile_of,
    reason_category,
    uplift_by_profile,
    uplift_of,
)
from pipelines.core.config import Config
from pipelines.core.errors import ConfigError
from pipelines.core.numbers import difference_ci
from pipelines.core.warehouse import get_engine, insert_frame, read_frame, replace_partition


def _cell(profile: str, n_t: int, churn_t: int, n_c: int, churn_c: int) -> pd.DataFrame:
    """Return n_t treated and n_c control observations of a profile with the given numbers churned."""
    treated = np.r_[np.ones(churn_t), np.zeros(n_t - churn_t)]
    control = np.r_[np.ones(churn_c), np.zeros(n_c - churn_c)]
    return pd.DataFrame(
        {
            "profile": profile,
            "treated": [True] * n_t + [False] * n_c,
            "churned": np.r_[treated, control].astype(int),
        }
    )


def test_known_effects_per_profile_are_recovered_with_newcombe_intervals():
    obs = pd.concat(
        [
            _cell("service/high", 200, 60, 100, 70),  # 0.70 - 0.30 = 0.40
            _cell("inactivity/high", 200, 110, 100, 60),  # 0.60 - 0.55 = 0.05
            _cell("service/medium", 10, 2, 5, 3),  # thin: its category's effect stands in
            _cell("satisfaction/high", 10, 2, 5, 3),  # thin, and so is its category: the pooled effect
        ]
    )
    est = uplift_by_profile(obs, min_control=30).set_index("profile")
    service = est.loc["service/high"]
    assert service["source"] == "measured" and service["effect"] == pytest.approx(0.40)
    assert (service["ci_low"], service["ci_high"]) == pytest.approx(difference_ci(70, 100, 60, 200)[1:])
    assert est.loc["inactivity/high", "effect"] == pytest.approx(0.05)
    assert est.loc["inactivity/high", "ci_low"] < 0 < est.loc["inactivity/high", "ci_high"]
    pooled = est.loc["all"]
    assert (pooled["n_treated"], pooled["n_control"]) == (420, 210)
    assert pooled["effect"] == pytest.approx(136 / 210 - 174 / 420)
    category = est.loc["service/any"]
    assert (category["n_treated"], category["n_control"], category["source"]) == (210, 105, "measured")
    assert category["effect"] == pytest.approx(73 / 105 - 62 / 210)
    thin = est.loc["service/medium"]
    assert thin["source"] == "category" and (thin["n_treated"], thin["n_control"]) == (10, 5)
    assert thin["effect"] == category["effect"] and thin["ci_low"] == category["ci_low"]
    assert est.loc["satisfaction/any", "source"] == est.loc["satisfaction/high", "source"] == "pooled"
    assert est.loc["satisfaction/high", "effect"] == pooled["effect"]
    profiles = pd.Series(["service/high", "service/medium", "service/low", "never/seen", None])
    uplift = uplift_of(est.reset_index(), profiles)
    assert uplift.tolist()[:4] == pytest.approx([0.40, category["effect"], category["effect"], pooled["effect"]])
    assert pd.isna(uplift[4])


def test_interval_covers_the_true_effect_on_simulated_trials():
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(200):
        t = rng.random(300) < 0.3
        c = rng.random(120) < 0.5
        diff, low, high = difference_ci(int(c.sum()), 120, int(t.sum()), 300)
        covered += low <= 0.2 <= high
    assert covered / 200 > 0.9  # a 95 % interval: about 190 of 200


def test_thin_pool_means_no_uplift_ranking_and_the_note_says_why():
    cfg = Config(alerts={"ranking": "expected_value_saved"})
    est = uplift_by_profile(_cell("service/high", 80, 20, 12, 8), min_control=30)
    assert set(est["source"]) == {"thin"}
    assert uplift_of(est, pd.Series(["service/high"])).isna().all()
    assert choose_ranking(est, cfg) == ("value_at_risk", "value at risk: uplift evidence too thin (n_control 12 < 30)")
    assert choose_ranking(est.iloc[0:0], cfg)[0] == "value_at_risk"
    enough = uplift_by_profile(_cell("service/high", 300, 60, 100, 50), min_control=30)
    ranking, note = choose_ranking(enough, cfg)
    assert ranking == "expected_value_saved"
    assert note.startswith("expected value saved (uplift measured on 300 treated / 100 control customers; 1 of 1")
    assert choose_ranking(enough, Config())[0] == "value_at_risk"  # the default ranking is value at risk


def test_profiles_follow_the_reason_and_the_band():
    codes = pd.Series(["repeat_contacts;inactivity", "inactivity", None, "low_nps", "lower_spend", float("nan"), ""])
    triggers = pd.Series(["model", "model;repeat_contacts", "spend_halved", "model", "", None, "model;dormant_regular"])
    category = reason_category(codes, triggers)
    assert category.tolist() == [
        "service",
        "service",
        "declining_spend",
        "satisfaction",
        "declining_spend",
        "other",
        "other",
    ]
    assert profile_of(category, pd.Series(["high", "medium", None, "low", "high"]))[2] == "declining_spend/unscored"


@pytest.mark.parametrize(
    ("alerts", "key"),
    [
        ({"ranking": "uplift"}, "alerts.ranking"),
        ({"uplift": {"min_control": 0}}, "alerts.uplift.min_control"),
        ({"uplift": {"window": 90}}, "alerts.uplift.window"),
    ],
)
def test_bad_uplift_config_is_one_line_naming_the_key(tmp_path, alerts, key):
    import yaml

    from pipelines.core.config import load_config

    path = tmp_path / "churnwatch.yaml"
    path.write_text(yaml.safe_dump({"alerts": alerts}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f": {key}:" in str(err.value) and "\n" not in str(err.value)


DAY = date(2025, 3, 3)


def test_estimate_uplift_reads_matured_alerts_keeps_first_alerts_and_comparable_control(tmp_path):
    cfg = Config(base_dir=tmp_path, churn={"horizon_days": 30}, alerts={"uplift": {"min_control": 2}})
    engine = get_engine(cfg)
    rows = []

    def alert(day, cid, status, rank, profile="service/high"):
        rows.append(
            {
                "as_of_date": day,
                "customer_id": cid,
                "team": "north",
                "team_rank": rank,
                "status": status,
                "risk_band": "high",
                "triggers": "model",
                "recommended_action": "call",
                "model_version": "m",
                "list_name": "prevention",
                "uplift_profile": profile,
            }
        )

    # Treated T1..T4 (T1, T2 buy again), control K1..K3 within reach (none buys), K9 ranked beyond reach.
    for i in range(1, 5):
        alert(DAY, f"T{i}", "sent", i)
    for i in range(1, 4):
        alert(DAY, f"K{i}", "control", i + 1)
    alert(DAY, "K9", "control", 50)
    alert(DAY + timedelta(days=7), "T1", "sent", 1)  # a second alert in the horizon: not a new experiment
    replace_partition(engine, "churn_alerts", pd.DataFrame(rows[:-1]), DAY)
    replace_partition(engine, "churn_alerts", pd.DataFrame(rows[-1:]), DAY + timedelta(days=7))
    buys = [("T1", 10), ("T2", 20)] + [(c, -5) for c in ["T1", "T2", "T3", "T4", "K1", "K2", "K3", "K9"]]
    txns = pd.DataFrame(
        [
            {"txn_id": f"x{i}", "customer_id": c, "ts": pd.Timestamp(DAY) + pd.Timedelta(days=d), "amount": 5.0}
            for i, (c, d) in enumerate(buys)
        ]
    ).assign(type="purchase", _source_file="t.csv", _source_row=1, _batch_date=DAY)
    with engine.begin() as conn:
        insert_frame(conn, "stg_transactions", txns)
    as_of = DAY + timedelta(days=40)
    obs = matured_observations(as_of, cfg, engine)
    assert sorted(obs["customer_id"]) == ["K1", "K2", "K3", "T1", "T2", "T3", "T4"]
    summary = estimate_uplift(as_of, cfg, engine)
    stored = read_frame(engine, "SELECT * FROM uplift_estimates WHERE as_of_date = :d", {"d": as_of})
    cell = stored.set_index("profile").loc["service/high"]
    assert (cell["n_treated"], cell["n_control"], cell["source"]) == (4, 3, "measured")
    assert cell["effect"] == pytest.approx(1.0 - 0.5)
    estimate_uplift(as_of, cfg, engine)  # a re-run replaces the night's rows
    assert len(read_frame(engine, "SELECT * FROM uplift_estimates WHERE as_of_date = :d", {"d": as_of})) == 3
    assert summary.ranking == "value_at_risk" and "alerts.ranking" in summary.note
    # Nothing has matured before the first alert's horizon has passed.
    assert matured_observations(DAY + timedelta(days=29), cfg, engine).empty
    engine.dispose()
