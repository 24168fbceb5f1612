"""Backtest: replay training and scoring over past dates and measure each against what happened next."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score
from sqlalchemy.engine import Engine

from models.registry import predict
from models.training import active_population, churn_labels, fit_and_validate, top_share_metrics, training_set
from pipelines.config import Config
from pipelines.errors import ChurnwatchError
from pipelines.features import read_features
from pipelines.warehouse import insert_frame, read_frame


@dataclass
class BacktestSummary:
    run_id: str
    rows: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "dates": self.rows}


def last_data_day(engine: Engine) -> date:
    found = read_frame(engine, "SELECT MAX(ts) AS ts FROM stg_transactions")["ts"].iloc[0]
    if found is None or pd.isna(found):
        raise ChurnwatchError("no transactions in stg_transactions: load data first")
    return pd.Timestamp(found).date()


def true_labels(data: pd.DataFrame, truth: tuple[pd.DataFrame, pd.DataFrame, dict], horizon: int) -> pd.Series:
    """Return the generator's true churn within the horizon after each row's cutoff (or before it, unseen)."""
    cust, _, meta = truth
    start = pd.Timestamp(str(meta["start"]))
    churn_day = data["customer_id"].map(cust.set_index("customer_id")["churn_day"]).fillna(-1).to_numpy()
    cutoff_day = (pd.to_datetime(data["cutoff"]) - start).dt.days.to_numpy()
    return pd.Series((churn_day >= 0) & (churn_day <= cutoff_day + horizon), index=data.index).astype(int)


def backtest_date(day: date, cfg: Config, engine: Engine, truth_dir: Path | None = None) -> dict:
    """Train as of day (reading nothing after it), score the active customers, measure against the outcome.

    With generator truth, a *ceiling* model is fitted too: the same candidates, features and cutoffs, but
    labelled with the true churn instead of what the data shows. It measures how much of the oracle's lead
    the features could close with perfect labels. The *reference* is the Bayes probability given the
    history plus revealed latents (pipelines.reference): about the best any model could do.
    """
    data = training_set(day, cfg, engine)
    artifact, metrics = fit_and_validate(data, cfg)
    feats = active_population(read_features(engine, cfg, day), cfg).reset_index(drop=True)
    p = predict(artifact, feats)
    row = {
        "as_of_date": day,
        "model_kind": artifact["model_kind"],
        "n_scored": int(len(feats)),
        "validation_auc": metrics["auc"],
        "validation_recency_auc": metrics["recency_auc"],
    }
    horizon_end = day + timedelta(days=cfg.churn.horizon_days)
    if horizon_end <= last_data_day(engine):
        labels = churn_labels(engine, cfg, day, horizon_end)
        merged = feats.assign(p=p).merge(labels, on="customer_id")
        y = merged["churned"].to_numpy(int)
        row.update(
            realised_n=int(len(merged)),
            realised_churn_rate=float(y.mean()),
            realised_auc=float(roc_auc_score(y, merged["p"])),
            realised_brier=float(brier_score_loss(y, merged["p"])),
            realised_precision_top10=top_share_metrics(y, merged["p"].to_numpy(), 0.1)[0],
            realised_recency_auc=float(roc_auc_score(y, merged["days_since_last_purchase"].fillna(1e6))),
        )
    if truth_dir is not None:
        from pipelines.generate import load_truth, oracle_probability
        from pipelines.reference import bayes_reference

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
            feats.assign(p=p, p_ceiling=predict(ceiling, feats))
            .merge(truth, on="customer_id")
            .merge(reference.rename(columns={"probability": "p_reference"}), on="customer_id")
        )
        alive = merged[~merged["already_gone"]]
        y = merged["churned_within_horizon"].astype(int).to_numpy()
        ya = alive["churned_within_horizon"].astype(int).to_numpy()
        if len(np.unique(y)) == 2:
            row.update(
                truth_model_auc=float(roc_auc_score(y, merged["p"])),
                truth_ceiling_auc=float(roc_auc_score(y, merged["p_ceiling"])),
                truth_reference_auc=float(roc_auc_score(y, merged["p_reference"])),
                truth_recency_auc=float(roc_auc_score(y, merged["days_since_last_purchase"].fillna(1e6))),
                truth_oracle_auc=float(roc_auc_score(y, merged["true_probability"])),
                truth_model_brier=float(brier_score_loss(y, merged["p"])),
                truth_ceiling_brier=float(brier_score_loss(y, merged["p_ceiling"])),
                truth_reference_brier=float(brier_score_loss(y, merged["p_reference"])),
                truth_oracle_brier=float(brier_score_loss(y, merged["true_probability"])),
            )
        if len(np.unique(ya)) == 2:
            row.update(
                alive_model_auc=float(roc_auc_score(ya, alive["p"])),
                alive_reference_auc=float(roc_auc_score(ya, alive["p_reference"])),
                alive_oracle_auc=float(roc_auc_score(ya, alive["true_probability"])),
            )
    return row


def backtest(
    start: date, end: date, cfg: Config, engine: Engine, every_days: int = 28, truth_dir: Path | None = None
) -> BacktestSummary:
    """Replay training and scoring every `every_days` from start to end; store and return the metrics."""
    if end < start:
        raise ChurnwatchError(f"--end {end} is before --start {start}")
    summary = BacktestSummary(uuid.uuid4().hex[:12])
    day = start
    while day <= end:
        row = backtest_date(day, cfg, engine, truth_dir)
        summary.rows.append({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
        day += timedelta(days=every_days)
    frame = pd.DataFrame(summary.rows)
    frame.insert(0, "run_id", summary.run_id)
    frame["created_at"] = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        insert_frame(conn, "backtest_results", frame)
    for row in summary.rows:
        row["as_of_date"] = row["as_of_date"].isoformat()
    return summary
