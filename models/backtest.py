"""Backtest: replay training and scoring over past dates and judge each against what happened next.

On every replayed date the champion recipe (rolling-origin selection, calibration, refit) is run as of
that date, reading nothing after it, and its scores are put beside simple baselines scored on the same
customers: recency only, BG/NBD (expected purchases, P(alive) and P(no purchase) from a fit as of the
date) and a logistic regression on log recency, frequency and monetary value trained on the same
cutoffs. Every method is measured against the observed outcome (no activity within the horizon) and,
on generated data, against the true churn as well (pipelines.synth.truth, passed in as a judge).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from models.registry import predict
from models.training import (
    CANDIDATES,
    RFM_FEATURES,
    add_model_features,
    calibration_table,
    evaluate,
    fit_and_validate,
    fit_population_btyd,
    training_set,
)
from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError
from pipelines.core.warehouse import insert_frame, read_frame
from pipelines.engines import choose_compute
from pipelines.features.customer_features import read_features
from pipelines.features.population import active_population, churn_labels

# Methods judged side by side; the first is the product, the rest are baselines.
METHODS = ["churnwatch", "bgnbd_p_no_purchase", "bgnbd_expected_purchases", "bgnbd_p_alive", "log_rfm", "recency"]
# An extra judge of one replayed date: (day, cfg, training set, artifact, scored features, scores by method)
# -> (summary columns, metric rows).
Judge = Callable[[date, Config, pd.DataFrame, dict, pd.DataFrame, dict], tuple[dict, list[dict]]]
# Methods whose score is a probability of churn (Brier, log loss and calibration apply).
PROBABILITY_METHODS = {"churnwatch", "bgnbd_p_no_purchase", "log_rfm", "truth_reference", "truth_oracle"}


@dataclass
class BacktestSummary:
    run_id: str
    rows: list[dict] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "dates": self.rows, "mean": mean_metrics(self.metrics)}


def last_data_day(engine: Engine) -> date:
    found = read_frame(engine, "SELECT MAX(ts) AS ts FROM stg_transactions")["ts"].iloc[0]
    if found is None or pd.isna(found):
        raise ChurnwatchError("no transactions in stg_transactions: load data first")
    return pd.Timestamp(found).date()


def baseline_scores(data: pd.DataFrame, feats: pd.DataFrame, cfg: Config) -> dict[str, np.ndarray]:
    """Return each baseline's churn score (higher = more likely to leave) for the scored customers."""
    scores = {"recency": feats["days_since_last_purchase"].fillna(1e6).to_numpy(float)}
    if feats["btyd_p_no_purchase"].notna().any():
        scores["bgnbd_p_no_purchase"] = feats["btyd_p_no_purchase"].fillna(1.0).to_numpy(float)
        scores["bgnbd_expected_purchases"] = -feats["btyd_expected_purchases"].fillna(0.0).to_numpy(float)
        scores["bgnbd_p_alive"] = 1.0 - feats["btyd_p_alive"].fillna(0.0).to_numpy(float)
    # The log-RFM regression learns from the same matured cutoffs as the product's kept model.
    rfm = [c for c in RFM_FEATURES if data[c].notna().any()]
    model = CANDIDATES["logistic_rfm"](cfg, rfm).fit(data[rfm].to_numpy(float), data["churned"].to_numpy(int))
    scores["log_rfm"] = model.predict_proba(feats[rfm].to_numpy(float))[:, 1]
    return scores


def judge(y: np.ndarray, scores: dict[str, np.ndarray]) -> list[dict]:
    """Return one metrics row per method for labels y (AUC and ranking for all; probability metrics where due)."""
    rows = []
    for method, p in scores.items():
        m = evaluate(y, p if method in PROBABILITY_METHODS else _rank01(p))
        row = {
            "method": method,
            "n": m["n"],
            "base_rate": m["base_rate"],
            "auc": m["auc"],
            "pr_auc": m["pr_auc"],
            "precision_top10": m["precision_top10"],
            "lift_top10": m["lift_top10"],
        }
        if method in PROBABILITY_METHODS:
            row.update(
                brier=m["brier"], log_loss=m["log_loss"], calibration=json.dumps(calibration_table(y, np.asarray(p)))
            )
        rows.append(row)
    return rows


def _rank01(p: np.ndarray) -> np.ndarray:
    """Map a score to (0, 1) by rank: ranking metrics only (it is no probability)."""
    return pd.Series(p).rank(pct=True).to_numpy()


def backtest_date(day: date, cfg: Config, engine: Engine, judges: Sequence[Judge] = ()) -> tuple[dict, list[dict]]:
    """Train as of day (reading nothing after it), score the active customers, judge them and the baselines.

    Returns (summary row, metric rows). Each extra judge (e.g. the generator's truth,
    pipelines.synth.truth.TruthJudge) adds its own columns and metric rows.
    """
    horizon = cfg.churn.horizon_days
    compute = choose_compute(cfg, engine)
    data = training_set(day, cfg, engine, compute)
    artifact, metrics = fit_and_validate(data, cfg)
    everyone = read_features(engine, cfg, day, compute)
    fit = fit_population_btyd(everyone)
    feats = add_model_features(active_population(everyone, cfg), fit, horizon).reset_index(drop=True)
    scores = {"churnwatch": predict(artifact, feats), **baseline_scores(data, feats, cfg)}
    row = {
        "as_of_date": day,
        "model_kind": artifact["model_kind"],
        "n_scored": int(len(feats)),
        "validation_auc": metrics["auc"],
        "validation_recency_auc": metrics["recency_auc"],
    }
    metric_rows: list[dict] = []
    horizon_end = day + timedelta(days=horizon)
    if horizon_end <= last_data_day(engine):
        labels = churn_labels(engine, cfg, day, horizon_end)
        keep = feats["customer_id"].isin(labels["customer_id"]).to_numpy()
        y = feats[["customer_id"]].merge(labels, on="customer_id", how="left")["churned"].to_numpy()[keep].astype(int)
        if len(np.unique(y)) == 2:
            judged = judge(y, {k: v[keep] for k, v in scores.items()})
            metric_rows += [{"target": "observed", **r} for r in judged]
            mine = next(r for r in judged if r["method"] == "churnwatch")
            row.update(
                realised_n=int(len(y)),
                realised_churn_rate=float(y.mean()),
                realised_auc=mine["auc"],
                realised_brier=mine["brier"],
                realised_precision_top10=mine["precision_top10"],
                realised_recency_auc=next(r["auc"] for r in judged if r["method"] == "recency"),
            )
    for extra in judges:
        extra_row, extra_metrics = extra(day, cfg, data, artifact, feats, scores)
        row.update(extra_row)
        metric_rows += extra_metrics
    return row, metric_rows


def mean_metrics(metrics: list[dict]) -> list[dict]:
    """Return per target and method the mean of each metric over the replayed dates (and how many)."""
    if not metrics:
        return []
    frame = pd.DataFrame(metrics)
    numeric = [c for c in ("auc", "pr_auc", "brier", "log_loss", "precision_top10", "lift_top10") if c in frame]
    grouped = frame.groupby(["target", "method"], sort=False)
    out = grouped[numeric].mean().round(4)
    out["worst_auc"] = grouped["auc"].min().round(4)
    out["dates"] = grouped.size()
    records = out.reset_index().to_dict("records")
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in records]


def backtest(
    start: date, end: date, cfg: Config, engine: Engine, every_days: int = 28, judges: Sequence[Judge] = ()
) -> BacktestSummary:
    """Replay training and scoring every `every_days` from start to end; store and return the metrics."""
    if end < start:
        raise ChurnwatchError(f"--end {end} is before --start {start}")
    summary = BacktestSummary(uuid.uuid4().hex[:12])
    day = start
    while day <= end:
        row, metric_rows = backtest_date(day, cfg, engine, judges)
        summary.rows.append({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
        summary.metrics += [{"as_of_date": day, **r} for r in metric_rows]
        day += timedelta(days=every_days)
    created = datetime.now(UTC).replace(tzinfo=None)
    frame = pd.DataFrame(summary.rows)
    frame.insert(0, "run_id", summary.run_id)
    frame["created_at"] = created
    with engine.begin() as conn:
        insert_frame(conn, "backtest_results", frame)
        if summary.metrics:
            metrics = pd.DataFrame(summary.metrics)
            metrics.insert(0, "run_id", summary.run_id)
            metrics["created_at"] = created
            insert_frame(conn, "backtest_metrics", metrics)
    for row in summary.rows:
        row["as_of_date"] = row["as_of_date"].isoformat()
    for row in summary.metrics:
        row["as_of_date"] = row["as_of_date"].isoformat()
    return summary
