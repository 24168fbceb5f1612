"""The generator's truth as a backtest judge: true churn, the oracle, the Bayes reference and a ceiling model.

`churnwatch backtest --truth DIR` passes a TruthJudge to models.backtest; the product never imports this.
Tests: tests/models/test_model.py (backtest with truth). Doc: docs/model.md.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from models.backtest import judge
from models.registry import predict
from models.training import fit_and_validate
from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError
from pipelines.synth.generate import load_truth, oracle_probability
from pipelines.synth.reference import bayes_reference


def true_labels(data: pd.DataFrame, truth: tuple[pd.DataFrame, pd.DataFrame, dict], horizon: int) -> pd.Series:
    """Return the generator's true churn within the horizon after each row's cutoff (or before it, unseen)."""
    cust, _, meta = truth
    start = pd.Timestamp(str(meta["start"]))
    churn_day = data["customer_id"].map(cust.set_index("customer_id")["churn_day"]).fillna(-1).to_numpy()
    cutoff_day = (pd.to_datetime(data["cutoff"]) - start).dt.days.to_numpy()
    return pd.Series((churn_day >= 0) & (churn_day <= cutoff_day + horizon), index=data.index).astype(int)


class TruthJudge:
    """Judge a replayed date against the true churn of a `churnwatch generate` folder.

    A *ceiling* model is fitted too: the same recipe labelled with the true churn instead of what the
    data shows. The *reference* is the Bayes probability given the history plus revealed latents
    (pipelines.synth.reference): about the best any model could do. The oracle knows every latent.
    """

    def __init__(self, truth_dir: Path) -> None:
        self.truth_dir = Path(truth_dir)

    def __call__(self, day, cfg, data, artifact, feats, scores) -> tuple[dict, list[dict]]:
        return judge_against_truth(day, cfg, data, artifact, feats, scores, self.truth_dir)


def judge_against_truth(
    day: date, cfg: Config, data: pd.DataFrame, artifact: dict, feats: pd.DataFrame, scores: dict, truth_dir: Path
) -> tuple[dict, list[dict]]:
    """Return the truth columns and metric rows of one replayed date."""
    horizon = cfg.churn.horizon_days
    known = load_truth(truth_dir)
    truth = oracle_probability(truth_dir, day, horizon, known)
    missing = float((~feats["customer_id"].isin(truth["customer_id"])).mean()) if len(feats) else 0.0
    if missing > 0.01:
        raise ChurnwatchError(
            f"--truth {truth_dir}: {missing:.0%} of the customers scored on {day} are not in its truth; "
            "use the folder that generated this warehouse's data"
        )
    ceiling, _ = fit_and_validate(data.assign(churned=true_labels(data, known, horizon)), cfg)
    reference = bayes_reference(truth_dir, day, horizon, feats["customer_id"].tolist(), truth=known)
    merged = (
        feats[["customer_id"]]
        .assign(p_ceiling=predict(ceiling, feats), **{f"s_{k}": v for k, v in scores.items()})
        .merge(truth, on="customer_id")
        .merge(reference.rename(columns={"probability": "p_reference"}), on="customer_id")
    )
    row: dict = {}
    metric_rows: list[dict] = []
    y = merged["churned_within_horizon"].astype(int).to_numpy()
    if len(np.unique(y)) == 2:
        by_method = {k: merged[f"s_{k}"].to_numpy(float) for k in scores}
        by_method["truth_reference"] = merged["p_reference"].to_numpy(float)
        by_method["truth_oracle"] = merged["true_probability"].to_numpy(float)
        metric_rows += [{"target": "truth", **r} for r in judge(y, by_method)]
        row.update(
            truth_model_auc=float(roc_auc_score(y, merged["s_churnwatch"])),
            truth_ceiling_auc=float(roc_auc_score(y, merged["p_ceiling"])),
            truth_reference_auc=float(roc_auc_score(y, merged["p_reference"])),
            truth_recency_auc=float(roc_auc_score(y, merged["s_recency"])),
            truth_oracle_auc=float(roc_auc_score(y, merged["true_probability"])),
            truth_model_brier=float(brier_score_loss(y, merged["s_churnwatch"])),
            truth_ceiling_brier=float(brier_score_loss(y, merged["p_ceiling"])),
            truth_reference_brier=float(brier_score_loss(y, merged["p_reference"])),
            truth_oracle_brier=float(brier_score_loss(y, merged["true_probability"])),
        )
    alive = merged[~merged["already_gone"]]
    ya = alive["churned_within_horizon"].astype(int).to_numpy()
    if len(np.unique(ya)) == 2:
        row.update(
            alive_model_auc=float(roc_auc_score(ya, alive["s_churnwatch"])),
            alive_reference_auc=float(roc_auc_score(ya, alive["p_reference"])),
            alive_oracle_auc=float(roc_auc_score(ya, alive["true_probability"])),
        )
    return row, metric_rows
