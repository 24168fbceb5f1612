"""Training, registry, monitoring and backtest on a small generated world (800 customers, 300 days)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from models.backtest import backtest
from models.monitoring import auc_interval, monitor_model, psi
from models.registry import list_models, promote, rollback
from models.scoring import score_customers
from models.training import CANDIDATES, choose, train_model, validation_plan
from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError
from pipelines.core.warehouse import get_engine, read_frame
from pipelines.features.customer_features import build_features
from pipelines.ingest.extract import load_landing
from pipelines.ingest.validation import validate_data
from pipelines.synth.generate import GeneratorSpec, generate, load_truth
from pipelines.synth.truth import TruthJudge


def _world(small_dataset, root, until: date, **extra) -> tuple[Config, object]:
    meta = load_truth(small_dataset)[2]
    start = date.fromisoformat(meta["start"])
    # A 60-day horizon: the 300-day world then has cutoffs with 60 days of history behind them and
    # labels matured in time for rolling folds.
    cfg = Config(
        base_dir=root,
        sources={"landing_dir": str(small_dataset / "landing"), **extra.pop("sources", {})},
        training={"n_cutoffs": 10, "cutoff_every_days": 14, "min_auc": 0.55},
        churn={"horizon_days": 60, **extra.pop("churn", {})},
        **extra,
    )
    engine = get_engine(cfg)
    load_landing(until, cfg, engine, since=start)
    validate_data(until, cfg, engine, since=start)
    return cfg, engine


@pytest.fixture(scope="module")
def dates(small_dataset):
    meta = load_truth(small_dataset)[2]
    start = date.fromisoformat(meta["start"])
    last = start + timedelta(days=meta["days"] - 1)
    return start, last


@pytest.fixture(scope="module")
def full(small_dataset, tmp_path_factory, dates):
    cfg, engine = _world(small_dataset, tmp_path_factory.mktemp("full"), dates[1])
    yield cfg, engine
    engine.dispose()


def test_training_never_reads_after_its_date(full, small_dataset, tmp_path, dates):
    """A warehouse holding months of later data trains exactly the model of one that stops at D."""
    cfg_full, engine_full = full
    train_day = dates[1] - timedelta(days=60)
    short_cfg, short_engine = _world(small_dataset, tmp_path, train_day)
    a = train_model(train_day, short_cfg, short_engine)
    b = train_model(train_day, cfg_full, engine_full)
    assert a.model_version == b.model_version  # same data fingerprint
    for key in ("auc", "brier", "recency_auc", "precision_top10"):
        assert a.metrics[key] == pytest.approx(b.metrics[key], abs=1e-12), key
    short_engine.dispose()


def test_candidates_metrics_and_card(full, dates):
    cfg, engine = full
    summary = train_model(dates[1], cfg, engine)
    m = summary.metrics
    assert set(m["candidates"]) == set(CANDIDATES)
    assert m["model_kind"] in m["candidates"]
    for key in ("auc", "pr_auc", "brier", "log_loss", "precision_top5", "lift_top10", "precision_top20"):
        assert key in m
    assert len(m["calibration"]) == 10 and sum(row["n"] for row in m["calibration"]) == m["n"]
    # Recency alone is a candidate: the chosen model ranks held-out, later data at least about as well.
    assert m["auc"] >= m["recency_auc"] - 0.01
    card = json.loads(read_frame(engine, "SELECT card FROM model_registry")["card"].iloc[-1])
    for key in ("training_cutoffs", "validation_cutoff", "features", "data_fingerprint", "versions", "promotion"):
        assert key in card
    # Time-ordered: every fold and the held-out check learn only from labels matured by their own cutoff.
    horizon = timedelta(days=cfg.churn.horizon_days)
    for fold in m["folds"]:
        assert date.fromisoformat(fold["trained_until"]) + horizon <= date.fromisoformat(fold["cutoff"])
    assert date.fromisoformat(m["holdout_trained_until"]) + horizon <= date.fromisoformat(card["validation_cutoff"])
    assert all(fold["cutoff"] < card["validation_cutoff"] for fold in m["folds"]) and len(m["folds"]) >= 1
    assert set(card["btyd_fits"]) <= set(card["training_cutoffs"]) and any(card["btyd_fits"].values())


def test_selection_prefers_the_simpler_candidate_unless_the_complex_one_wins_on_average():
    folds = {
        "bgnbd": [0.703, 0.71, 0.69],
        "logistic_regression": [0.705, 0.712, 0.70],
        "gradient_boosting": [0.76, 0.6, 0.7],
    }
    assert choose(folds, margin=0.005) == "bgnbd"  # 0.701 vs 0.7057: within the margin, the simplest wins
    assert choose(folds, margin=0.0) == "logistic_regression"  # gradient boosting's one great fold does not count
    folds["gradient_boosting"] = [0.75, 0.74, 0.76]
    assert choose(folds, margin=0.005) == "gradient_boosting"


def test_validation_plan_trains_each_fold_on_matured_labels_only():
    cfg = Config(training={"cutoff_every_days": 21, "n_cutoffs": 12, "selection_folds": 3})
    cutoffs = [date(2026, 1, 1) + timedelta(days=21 * k) for k in range(12)]
    folds, held_out = validation_plan(cutoffs, cfg)
    assert held_out == cutoffs[-1] and folds == [cutoffs[-2], cutoffs[-3], cutoffs[-4]]
    short = Config(training={"cutoff_every_days": 21, "n_cutoffs": 4})
    with pytest.raises(ChurnwatchError, match="raise training.n_cutoffs"):
        validation_plan(cutoffs[:4], short)


def test_champion_challenger_promote_and_rollback(full, dates):
    cfg, engine = full
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM model_registry"))
    first = train_model(dates[1] - timedelta(days=28), cfg, engine)
    assert first.status == "champion"
    second = train_model(dates[1], cfg, engine)
    card = json.loads(
        read_frame(engine, "SELECT card FROM model_registry WHERE model_version = :v", {"v": second.model_version})[
            "card"
        ][0]
    )
    promotion = card["promotion"]
    assert promotion["champion_before"] == first.model_version
    assert promotion["champion_auc_same_validation"] is not None  # judged on the same held-out rows
    beats = second.metrics["auc"] >= promotion["champion_auc_same_validation"]
    assert second.status == ("champion" if beats else "challenger")
    if second.status == "challenger":
        promote(engine, second.model_version)
    models = list_models(engine).set_index("model_version")["status"]
    assert models[second.model_version] == "champion" and models[first.model_version] == "archived"
    retired, restored = rollback(engine)
    assert (retired, restored) == (second.model_version, first.model_version)
    models = list_models(engine).set_index("model_version")["status"]
    assert models[first.model_version] == "champion" and models[second.model_version] == "rolled_back"
    with pytest.raises(ChurnwatchError, match="no model 'nope'"):
        promote(engine, "nope")
    promote(engine, second.model_version)


def test_a_model_below_the_floor_is_rejected_and_never_champion(full, dates):
    cfg, engine = full
    strict = cfg.model_copy(update={"training": cfg.training.model_copy(update={"min_auc": 0.99})})
    before = read_frame(engine, "SELECT model_version FROM model_registry WHERE status = 'champion'")
    summary = train_model(dates[1] - timedelta(days=14), strict, engine)
    assert summary.status == "rejected"
    after = read_frame(engine, "SELECT model_version FROM model_registry WHERE status = 'champion'")
    assert after.equals(before)


def test_psi_by_hand():
    assert psi([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    # (0.7-0.5)ln(0.7/0.5) + (0.3-0.5)ln(0.3/0.5)
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(0.2 * np.log(1.4) - 0.2 * np.log(0.6))


def _score_two_nights(cfg, engine, dates) -> tuple[date, date]:
    """Build features and scores one horizon before the last day and on it; return the two days."""
    early, late = dates[1] - timedelta(days=cfg.churn.horizon_days), dates[1]
    for day in (early, late):
        build_features(day, cfg, engine)
        score_customers(day, cfg, engine)
    return early, late


def test_monitoring_flags_drift_and_measures_matured_cohorts(full, dates):
    cfg, engine = full
    early, late = _score_two_nights(cfg, engine, dates)
    summary = monitor_model(late, cfg, engine)
    assert summary.matured["scored_on"] == early.isoformat() and 0.5 < summary.matured["auc"] <= 1.0
    rows = read_frame(engine, "SELECT * FROM model_monitoring WHERE as_of_date = :d", {"d": late})
    assert {"psi", "realised_auc", "realised_precision_top10", "status"} <= set(rows["metric"])
    assert summary.status in ("ok", "drift", "degraded")
    # Shift one input far from what the model was trained on: drift is flagged and named.
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE customer_features SET contacts_90d = contacts_90d + 25 WHERE as_of_date = :d"), {"d": late}
        )
    drifted = monitor_model(late, cfg, engine)
    assert drifted.status in ("drift", "degraded") and "contacts_90d" in drifted.drifted_features
    assert "contacts_90d" in drifted.message or drifted.status == "degraded"
    build_features(late, cfg, engine)


def test_drift_read_in_chunks_equals_drift_of_the_whole_population(full, dates):
    """Monitoring bins tonight's inputs chunk by chunk; its PSI rows must equal PSI of the whole frame."""
    from models.registry import load_champion
    from models.scoring import tonights_btyd_fit
    from models.training import add_model_features, bin_shares
    from pipelines.features.customer_features import load_features
    from pipelines.features.population import active_population, still_customer_sql

    cfg, engine = full
    _, late = _score_two_nights(cfg, engine, dates)
    small = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"chunk_rows": 70})})
    monitor_model(late, small, engine)
    rows = read_frame(
        engine, "SELECT subject, value FROM model_monitoring WHERE as_of_date = :d AND metric = 'psi'", {"d": late}
    )
    got = dict(zip(rows["subject"], rows["value"], strict=True))
    # The plain reading: every scored customer's inputs in one frame.
    artifact = load_champion(engine)
    feats = active_population(load_features(engine, late, still_customer_sql(cfg)), cfg)
    assert len(feats) > 5 * 70  # several chunks
    feats = add_model_features(feats, tonights_btyd_fit(engine, late), cfg.churn.horizon_days)
    reference = artifact["reference"]
    expected = {
        col: psi(reference[col]["shares"], bin_shares(feats[col].to_numpy(float), reference[col]["edges"]))
        for col in artifact["features"]
        if col in reference
    }
    assert {k: v for k, v in got.items() if k != "score"} == expected


def test_the_nights_btyd_fit_is_saved_once_and_reused_by_monitoring(full, dates, monkeypatch):
    import models.scoring as scoring
    from models.btyd import fit_stored_features, saved_fit

    cfg, engine = full
    early, late = _score_two_nights(cfg, engine, dates)
    assert saved_fit(engine, late) == fit_stored_features(engine, late)  # the very fit scoring used, to the bit
    # The night's fit starts from the latest earlier night's (early, one horizon before), not from cold.
    import models.btyd as btyd

    starts = []
    real_fit = btyd.fit_bgnbd
    monkeypatch.setattr(btyd, "fit_bgnbd", lambda *a, **k: starts.append(k.get("start")) or real_fit(*a, **k))
    score_customers(late, cfg, engine)
    assert starts == [saved_fit(engine, early)] and starts[0] is not None
    monkeypatch.setattr(btyd, "fit_bgnbd", real_fit)
    score_customers(late, cfg, engine)  # a re-run replaces the night's row
    assert len(read_frame(engine, "SELECT r FROM btyd_fits WHERE as_of_date = :d", {"d": late})) == 1
    fits = []
    real = scoring.fit_stored_features
    monkeypatch.setattr(scoring, "fit_stored_features", lambda *args: fits.append(args) or real(*args))
    assert monitor_model(late, cfg, engine).status in ("ok", "drift", "degraded")
    assert fits == []  # monitoring read the saved fit instead of fitting again
    assert saved_fit(engine, late - timedelta(days=1)) is None


def test_auc_interval_matches_the_noise_of_a_cohort():
    low, high = auc_interval(0.75, 1000, 1000)
    assert high - low == pytest.approx(2 * 1.96 * 0.0109, abs=0.002)  # about +-0.02 for 2,000 customers
    low, high = auc_interval(0.75, 100, 100)
    assert high - low > 0.12 and low < 0.75 < high


def test_monitoring_judges_a_cohort_against_the_model_that_scored_it(full, dates):
    cfg, engine = full
    early, late = _score_two_nights(cfg, engine, dates)
    champion = read_frame(engine, "SELECT model_version FROM model_registry WHERE status = 'champion'")
    champion = champion["model_version"].iloc[0]
    original = read_frame(engine, "SELECT card FROM model_registry WHERE model_version = :v", {"v": champion})
    # The cohort was scored by an older model that promised more than it delivered.
    old_card = json.dumps({"metrics": {"auc": 0.995}})
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO model_registry (model_version, trained_on, created_at, horizon_days, status, "
                "artifact_path, card) VALUES ('m-old', :d, :t, 90, 'archived', 'nowhere', :c)"
            ),
            {"d": early, "t": datetime(2020, 1, 1), "c": old_card},
        )
        conn.execute(sa.text("UPDATE churn_scores SET model_version = 'm-old' WHERE as_of_date = :d"), {"d": early})
    summary = monitor_model(late, cfg, engine)
    assert summary.matured["model_version"] == "m-old" and summary.matured["promised_auc"] == 0.995
    assert summary.matured["auc_ci_low"] < summary.matured["auc"] < summary.matured["auc_ci_high"] < 0.995
    assert summary.status != "degraded" and f"replaced by {champion}" in summary.message
    assert "retrain" not in summary.message
    rows = read_frame(engine, "SELECT * FROM model_monitoring WHERE as_of_date = :d", {"d": late})
    cohort = rows[rows["subject"] == f"cohort {early}"]
    assert set(cohort["model_version"]) == {"m-old"}
    assert cohort.loc[cohort["metric"] == "realised_auc", "status"].tolist() == ["superseded"]
    # The same shortfall by the model still in charge is degraded, with its interval in the message.
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE churn_scores SET model_version = :v WHERE as_of_date = :d"), {"v": champion, "d": early}
        )
        conn.execute(
            sa.text("UPDATE model_registry SET card = :c WHERE model_version = :v"), {"c": old_card, "v": champion}
        )
    degraded = monitor_model(late, cfg, engine)
    assert degraded.status == "degraded" and "95 % interval" in degraded.message
    # A promise inside the interval is not a degradation: a cohort's AUC is noisy.
    within = json.dumps({"metrics": {"auc": degraded.matured["auc_ci_high"] - 0.001}})
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE model_registry SET card = :c WHERE model_version = :v"), {"c": within, "v": champion}
        )
    assert monitor_model(late, cfg, engine).status != "degraded"
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM model_registry WHERE model_version = 'm-old'"))
        conn.execute(
            sa.text("UPDATE model_registry SET card = :c WHERE model_version = :v"),
            {"c": original["card"].iloc[0], "v": champion},
        )


def test_backtest_replays_and_stores(full, dates, small_dataset):
    cfg, engine = full
    day = dates[1] - timedelta(days=cfg.churn.horizon_days)
    summary = backtest(day, day, cfg, engine, judges=[TruthJudge(small_dataset)])
    row = summary.rows[0]
    assert row["realised_auc"] > 0.5 and row["truth_oracle_auc"] > row["truth_recency_auc"]
    # The ceiling (true labels) ranks true churn at least about as well as the model trained on observed labels.
    assert row["truth_ceiling_auc"] > row["truth_model_auc"] - 0.05 and row["truth_ceiling_brier"] < 0.5
    # The Bayes reference (history plus revealed latents) sits below the oracle, above recency.
    assert row["truth_recency_auc"] < row["truth_reference_auc"] < row["truth_oracle_auc"]
    assert row["truth_oracle_brier"] < row["truth_reference_brier"]
    stored = read_frame(engine, "SELECT * FROM backtest_results WHERE run_id = :r", {"r": summary.run_id})
    assert len(stored) == 1 and stored["realised_auc"].iloc[0] == pytest.approx(row["realised_auc"], abs=1e-4)
    # The baselines are judged on the same customers, against the observed outcome and the truth.
    metrics = read_frame(engine, "SELECT * FROM backtest_metrics WHERE run_id = :r", {"r": summary.run_id})
    observed = metrics[metrics["target"] == "observed"].set_index("method")
    assert set(observed.index) == {
        "churnwatch",
        "recency",
        "bgnbd_p_no_purchase",
        "bgnbd_expected_purchases",
        "bgnbd_p_alive",
        "log_rfm",
    }
    assert observed["n"].nunique() == 1 and observed.loc["churnwatch", "auc"] == pytest.approx(
        row["realised_auc"], abs=1e-4
    )
    assert pd.isna(observed.loc["recency", "brier"]) and observed.loc["log_rfm", "brier"] < 0.5
    assert len(json.loads(observed.loc["bgnbd_p_no_purchase", "calibration"])) == 10
    truth = metrics[metrics["target"] == "truth"].set_index("method")
    assert truth.loc["truth_oracle", "auc"] == pytest.approx(row["truth_oracle_auc"], abs=1e-4)
    means = {(m["target"], m["method"]): m for m in summary.as_dict()["mean"]}
    assert means[("observed", "churnwatch")]["dates"] == 1


def test_backtest_refuses_truth_of_other_data(full, dates, tmp_path):
    cfg, engine = full
    other = tmp_path / "other"
    generate(GeneratorSpec(customers=50, days=60, seed=3, id_prefix="Z"), other)
    day = dates[1] - timedelta(days=cfg.churn.horizon_days)
    with pytest.raises(
        ChurnwatchError, match=r"--truth .*other: 100% of the customers scored on .* are not in its truth"
    ):
        backtest(day, day, cfg, engine, judges=[TruthJudge(other)])


def test_transactions_only_still_trains_and_beats_recency(small_dataset, tmp_path, dates):
    cfg, engine = _world(
        small_dataset,
        tmp_path,
        dates[1],
        sources={"datasets": {"transactions": {"folder": "transactions", "required": True}}},
    )
    assert read_frame(engine, "SELECT COUNT(*) AS n FROM stg_service_events")["n"][0] == 0
    summary = train_model(dates[1], cfg, engine)
    assert summary.metrics["auc"] >= summary.metrics["recency_auc"] - 0.01
    engine.dispose()


def test_scores_carry_band_percentile_version_and_reasons(full, dates):
    cfg, engine = full
    score_customers(dates[1], cfg, engine)
    s = read_frame(engine, "SELECT * FROM churn_scores WHERE as_of_date = :d", {"d": dates[1]})
    assert len(s) > 100 and s["churn_probability"].between(0, 1).all()
    assert s["percentile"].between(0, 100).all() and s["model_version"].notna().all()
    assert set(s["risk_band"]) <= set(cfg.alerts.risk_bands)
    top = s.sort_values("churn_probability", ascending=False).head(20)
    assert top["reason_1"].notna().all()
    # Reasons carry the customer's numbers, or say that no single fact explains the score.
    reason = pd.Series(top["reason_1"])
    assert (reason.str.contains(r"\d") | reason.str.startswith("no single clear reason")).all()
    assert reason.str.contains(r"\d").mean() >= 0.9
    # scoring.explain: at_risk (default) explains the bands above the lowest and scores at or above the
    # alert threshold; the rest keep NULL reasons and codes. 'all' explains everyone, the same way.
    floor = min(cfg.alerts.probability_threshold, sorted(cfg.alerts.risk_bands.values())[1])
    wanted = s["churn_probability"] >= floor
    assert 0 < wanted.sum() < len(s)
    assert s.loc[wanted, "reason_codes"].notna().all() and s.loc[~wanted, "reason_codes"].isna().all()
    assert s.loc[~wanted, ["reason_1", "reason_2", "reason_3"]].isna().all().all()
    everyone = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"explain": "all"})})
    score_customers(dates[1], everyone, engine)
    full_reasons = read_frame(engine, "SELECT * FROM churn_scores WHERE as_of_date = :d", {"d": dates[1]})
    assert full_reasons["reason_codes"].notna().all()
    key = ["customer_id", "churn_probability", "reason_1", "reason_2", "reason_3", "reason_codes"]
    both = s[key].merge(full_reasons[key], on="customer_id", suffixes=("", "_all"))
    explained = both[both["customer_id"].isin(s.loc[wanted, "customer_id"])]
    for col in key[1:]:
        assert explained[col].fillna("").tolist() == explained[col + "_all"].fillna("").tolist(), col
    # alerts.top_share cuts by a share of everyone: with it set, everyone is explained.
    share = cfg.model_copy(update={"alerts": cfg.alerts.model_copy(update={"top_share": 0.1})})
    score_customers(dates[1], share, engine)
    shared = read_frame(engine, "SELECT reason_codes FROM churn_scores WHERE as_of_date = :d", {"d": dates[1]})
    assert shared["reason_codes"].notna().all()


def test_contractual_churn_trains_on_cancellations(small_dataset, tmp_path, dates):
    datasets = {
        "transactions": {"folder": "transactions", "required": True},
        "service_events": {"folder": "service_events"},
        "surveys": {"folder": "surveys"},
        "customers": {"folder": "customers"},
        "cancellations": {"folder": "cancellations"},
    }
    cfg, engine = _world(
        small_dataset, tmp_path, dates[1], sources={"datasets": datasets}, churn={"kind": "contractual"}
    )
    assert read_frame(engine, "SELECT COUNT(*) AS n FROM stg_cancellations")["n"][0] > 50
    summary = train_model(dates[1], cfg, engine)
    card = json.loads(read_frame(engine, "SELECT card FROM model_registry")["card"].iloc[0])
    assert card["churn_definition"]["kind"] == "contractual"
    assert summary.metrics["auc"] >= summary.metrics["recency_auc"] - 0.01  # recency alone is a candidate
    build_features(dates[1], cfg, engine)
    scored = score_customers(dates[1], cfg, engine)
    cancelled = read_frame(
        engine, "SELECT COUNT(*) AS n FROM customer_features WHERE as_of_date = :d AND cancelled = 1", {"d": dates[1]}
    )["n"][0]
    total = read_frame(engine, "SELECT COUNT(*) AS n FROM customer_features WHERE as_of_date = :d", {"d": dates[1]})
    assert scored.scored == total["n"][0] - cancelled  # every customer not yet cancelled is scored
    engine.dispose()


def test_scoring_in_chunks_gives_the_same_table(full, dates):
    """Scoring reads features in chunks; the chunk size must not change a single value."""
    cfg, engine = full
    query = "SELECT * FROM churn_scores WHERE as_of_date = :d ORDER BY customer_id"
    score_customers(dates[1], cfg, engine)
    whole = read_frame(engine, query, {"d": dates[1]})
    small = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"chunk_rows": 100})})
    score_customers(dates[1], small, engine)
    chunked = read_frame(engine, query, {"d": dates[1]})
    assert len(whole) > 300  # several chunks of 100
    pd.testing.assert_frame_equal(whole, chunked)


def test_binned_prediction_equals_the_model(full, dates):
    """Reasons perturb the gradient-boosting model's bins; that must give the model's own probabilities."""
    from models.registry import binned_probabilities, binner, predict_matrix
    from models.training import FEATURES, PlattCalibrator, make_gradient_boosting, training_set

    cfg, engine = full
    data = training_set(dates[1], cfg, engine)
    features = [c for c in FEATURES if data[c].notna().any()]
    x, y = data[features].to_numpy(float), data["churned"].to_numpy(int)
    model = make_gradient_boosting(cfg, features).fit(x, y)
    artifact = {"model": model, "calibrator": PlattCalibrator().fit(model.predict_proba(x)[:, 1], y)}
    to_bins = binner(artifact)
    assert to_bins is not None and np.isnan(x).any()  # missing values take the missing bin
    own = np.clip(artifact["calibrator"].predict(model.predict_proba(x)[:, 1]), 0.0, 1.0)  # sklearn's own path
    np.testing.assert_array_equal(binned_probabilities(artifact, to_bins(x))[0], own)
    np.testing.assert_array_equal(predict_matrix(artifact, x), own)
    # Each driver group re-runs only the trees that split on it: the same probabilities as the whole model.
    from models.scoring import DRIVERS

    typical = np.nanmedian(x, axis=0, keepdims=True)
    groups = {code: [features.index(c) for c in cols if c in features] for code, _, cols in DRIVERS}
    groups = {code: idx for code, idx in groups.items() if idx}
    _, fast = binned_probabilities(artifact, to_bins(x), to_bins(typical), groups)
    assert set(fast) == set(groups) and len(groups) >= 8
    for code, idx in groups.items():
        altered = to_bins(x)
        altered[:, idx] = to_bins(typical)[0, idx]
        whole = binned_probabilities(artifact, altered)[0]  # every tree on the altered rows
        np.testing.assert_allclose(fast[code], whole, rtol=0, atol=1e-12, err_msg=code)
