"""Model monitoring per run: score and feature drift against training (PSI), realised quality of matured cohorts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sqlalchemy.engine import Engine

from models.registry import load_champion, read_card
from models.scoring import tonights_btyd_fit
from models.training import add_model_features, bin_counts, bin_shares, shares_of, top_share_metrics
from pipelines.core.config import Config
from pipelines.core.errors import NoModelError
from pipelines.core.warehouse import read_bulk, read_frame, replace_partition
from pipelines.engines.warehouse import feature_chunks
from pipelines.features.customer_features import numeric_features
from pipelines.features.population import active_population, churn_labels, still_customer_sql

log = logging.getLogger(__name__)
EPS = 1e-4


@dataclass
class MonitorSummary:
    as_of: date
    model_version: str
    status: str
    score_psi: float | None = None
    drifted_features: dict[str, float] = field(default_factory=dict)
    matured: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "model_version": self.model_version,
            "status": self.status,
            "score_psi": self.score_psi,
            "drifted_features": self.drifted_features,
            "matured": self.matured,
            "message": self.message,
        }


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index between two share vectors over the same bins."""
    e = np.clip(np.asarray(expected, float), EPS, None)
    a = np.clip(np.asarray(actual, float), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _row(as_of, version, metric, subject, value, threshold, status) -> dict:
    return {
        "as_of_date": as_of,
        "model_version": version,
        "metric": metric,
        "subject": subject,
        "value": None if value is None else float(value),
        "threshold": None if threshold is None else float(threshold),
        "status": status,
        "created_at": datetime.now(UTC).replace(tzinfo=None),
    }


def auc_interval(auc: float, n_pos: int, n_neg: int, z: float = 1.96) -> tuple[float, float]:
    """Return a 95 % confidence interval of an AUC (Hanley & McNeil 1982 standard error)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / max(n_pos * n_neg, 1)
    se = float(np.sqrt(max(var, 0.0)))
    return max(0.0, auc - z * se), min(1.0, auc + z * se)


def matured_cohort(as_of: date, cfg: Config, engine: Engine) -> dict[str, Any] | None:
    """Return realised quality of the scores made horizon days ago, attributed to the model that made them."""
    scored_on = as_of - timedelta(days=cfg.churn.horizon_days)
    scores = read_frame(
        engine,
        # Ordered: the top-10 % precision breaks ties by row order, and a table's order is not stable.
        "SELECT customer_id, churn_probability, model_version FROM churn_scores WHERE as_of_date = :d"
        " ORDER BY customer_id",
        {"d": scored_on},
    )
    if scores.empty:
        return None
    # A night is scored by one model; should a re-run have mixed versions, judge the one that scored most.
    scorer = str(scores["model_version"].value_counts().index[0])
    scores = scores[scores["model_version"] == scorer]
    labels = churn_labels(engine, cfg, scored_on, as_of)
    merged = scores.merge(labels, on="customer_id")
    y = merged["churned"].to_numpy(int)
    p = pd.to_numeric(merged["churn_probability"]).to_numpy(float)
    if len(np.unique(y)) < 2:
        return None
    auc = float(roc_auc_score(y, p))
    low, high = auc_interval(auc, int(y.sum()), int(len(y) - y.sum()))
    return {
        "scored_on": scored_on.isoformat(),
        "model_version": scorer,
        "n": int(len(merged)),
        "auc": auc,
        "auc_ci_low": low,
        "auc_ci_high": high,
        "precision_top10": top_share_metrics(y, p, 0.1)[0],
        "mean_predicted": float(p.mean()),
        "observed_rate": float(y.mean()),
    }


def _advice(engine: Engine, champion: str, scored_on: str) -> str:
    """Return what to do about a degraded champion: retrain, unless a retrain since did not beat it."""
    newest = read_frame(
        engine,
        "SELECT model_version, trained_on, status FROM model_registry WHERE model_version <> :v "
        "ORDER BY created_at DESC LIMIT 1",
        {"v": champion},
    )
    if len(newest) and str(newest["trained_on"].iloc[0]) >= scored_on and newest["status"].iloc[0] != "archived":
        row = newest.iloc[0]
        return (
            f"the retrain of {row['trained_on']} ({row['model_version']}, {row['status']}) did not beat it on the "
            "same rows; compare them (churnwatch models list) before rolling back"
        )
    return "retrain or roll back"


def _psi_status(value: float, cfg: Config) -> str:
    mon = cfg.monitoring
    return "drift" if value > mon.psi_alert else ("warn" if value > mon.psi_warn else "ok")


def _input_bin_counts(as_of: date, cfg: Config, engine: Engine, inputs: list[str], reference: dict) -> dict:
    """Return, per model input with a reference profile, the counts of tonight's scored population in the
    reference bins (missing values last); {} without anyone scored.

    Read in chunks of scoring.chunk_rows customers as scoring reads them: at 1M customers the whole
    features partition in pandas (and its sort in the warehouse) set the night's memory peak."""
    counts: dict[str, np.ndarray] = {}
    fit, fitted = None, False  # tonight's BG/NBD fit, read once there is someone to bin
    for chunk in feature_chunks(engine, as_of, cfg.scoring.chunk_rows, still_customer_sql(cfg)):
        feats = active_population(numeric_features(chunk), cfg)
        if feats.empty:
            continue
        if not fitted:
            fit, fitted = tonights_btyd_fit(engine, as_of), True
        feats = add_model_features(feats, fit, cfg.churn.horizon_days)
        for col in inputs:
            if col in reference and col in feats:
                part = bin_counts(feats[col].to_numpy(float), reference[col]["edges"])
                counts[col] = counts[col] + part if col in counts else part
    return counts


def _drift_rows(as_of: date, cfg: Config, engine: Engine, artifact: dict) -> tuple[list[dict], dict, float | None]:
    """Return PSI rows of tonight's score and of every model input, the drifted inputs and the score's PSI."""
    version, reference, alert = artifact["model_version"], artifact.get("reference", {}), cfg.monitoring.psi_alert
    rows, drifted = [], {}
    scores = read_bulk(engine, "SELECT churn_probability FROM churn_scores WHERE as_of_date = :d", {"d": as_of})
    score_psi = None
    if "__score__" in reference and len(scores):
        ref = reference["__score__"]
        score_psi = psi(
            ref["shares"], bin_shares(pd.to_numeric(scores["churn_probability"]).to_numpy(float), ref["edges"])
        )
        rows.append(_row(as_of, version, "psi", "score", score_psi, alert, _psi_status(score_psi, cfg)))
        rows.append(
            _row(as_of, version, "mean_score", "score", scores["churn_probability"].astype(float).mean(), None, "ok")
        )
    counts = _input_bin_counts(as_of, cfg, engine, artifact["features"], reference)
    for col, col_counts in counts.items():
        value = psi(reference[col]["shares"], shares_of(col_counts))
        status = _psi_status(value, cfg)
        if status == "drift":
            drifted[col] = round(value, 3)
        rows.append(_row(as_of, version, "psi", col, value, alert, status))
    return rows, drifted, score_psi


def _cohort_rows(as_of: date, cfg: Config, engine: Engine, version: str) -> tuple[list[dict], dict, str]:
    """Return the matured cohort's rows, its figures and its status (ok, degraded or superseded), judged
    against the model that scored it; ({}, "") without a matured cohort."""
    matured = matured_cohort(as_of, cfg, engine)
    if not matured:
        return [], {}, ""
    scorer = matured["model_version"]
    promise = read_card(engine, scorer).get("metrics", {}).get("auc")
    floor = None if promise is None else promise - cfg.monitoring.max_auc_drop
    # Degraded only when the whole interval lies below the promise: a cohort of 2,000 has AUC noise of +-0.02.
    below = floor is not None and matured["auc_ci_high"] < floor
    status = ("superseded" if scorer != version else "degraded") if below else "ok"
    subject = f"cohort {matured['scored_on']}"
    rows = [
        _row(as_of, scorer, "realised_auc", subject, matured["auc"], floor, status),
        _row(as_of, scorer, "realised_auc_ci_low", subject, matured["auc_ci_low"], None, "ok"),
        _row(as_of, scorer, "realised_auc_ci_high", subject, matured["auc_ci_high"], floor, status),
        _row(as_of, scorer, "promised_auc", subject, promise, None, "ok"),
        _row(as_of, scorer, "realised_precision_top10", subject, matured["precision_top10"], None, "ok"),
        _row(as_of, scorer, "observed_churn_rate", subject, matured["observed_rate"], None, "ok"),
        _row(as_of, scorer, "mean_predicted", subject, matured["mean_predicted"], None, "ok"),
    ]
    matured = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in matured.items()}
    matured["promised_auc"] = None if promise is None else round(promise, 4)
    return rows, matured, status


def _message(status: str, cohort: str, matured: dict, drift: tuple[dict, float | None], cfg, engine, version) -> str:
    """Return the night's one-line monitoring message ("" when all is well)."""
    drifted, score_psi = drift
    alert = cfg.monitoring.psi_alert
    if status == "degraded":
        return (
            f"model {matured['model_version']} degraded: realised AUC {matured['auc']:.3f} "
            f"(95 % interval {matured['auc_ci_low']:.3f}-{matured['auc_ci_high']:.3f}) on the cohort scored "
            f"{matured['scored_on']} is below its validation AUC {matured['promised_auc']:.3f}; "
            + _advice(engine, version, matured["scored_on"])
        )
    if cohort == "superseded":
        return (
            f"model {matured['model_version']}, which scored the cohort of {matured['scored_on']}, fell short of its "
            f"validation AUC (realised {matured['auc']:.3f}); it has since been replaced by {version}"
        )
    if status == "drift":
        return f"input drift (PSI > {alert}): " + ", ".join(
            [f"score {score_psi:.2f}"] * bool(score_psi and score_psi > alert)
            + [f"{k} {v}" for k, v in drifted.items()]
        )
    return ""


def monitor_model(as_of: date, cfg: Config, engine: Engine) -> MonitorSummary:
    """Write model_monitoring rows for as_of: drift of scores and features, matured-cohort quality, a status.

    Tests: tests/models/test_model.py (monitoring). Doc: docs/model.md (Monitoring)."""
    try:
        artifact = load_champion(engine)
    except NoModelError as exc:
        row = _row(as_of, "none", "cold_start", "model", None, None, "cold_start")
        replace_partition(engine, "model_monitoring", pd.DataFrame([row]), as_of)
        return MonitorSummary(as_of, "none", "cold_start", message=str(exc))
    version = artifact["model_version"]
    rows, drifted, score_psi = _drift_rows(as_of, cfg, engine, artifact)
    cohort_rows, matured, cohort = _cohort_rows(as_of, cfg, engine, version)
    rows += cohort_rows
    drift = bool(drifted) or (score_psi or 0) > cfg.monitoring.psi_alert
    status = "degraded" if cohort == "degraded" else ("drift" if drift else "ok")
    message = _message(status, cohort, matured, (drifted, score_psi), cfg, engine, version)
    rows.append(_row(as_of, version, "status", "model", None, None, status))
    replace_partition(engine, "model_monitoring", pd.DataFrame(rows), as_of)
    if message:
        log.warning(message)
    return MonitorSummary(as_of, version, status, score_psi, drifted, matured, message)
