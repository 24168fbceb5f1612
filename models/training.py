"""Training set from rolling cutoffs, a gradient-boosting model, time-ordered validation, registry entry."""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sqlalchemy.engine import Engine

from models.registry import register_model
from pipelines.config import Config
from pipelines.errors import ChurnwatchError
from pipelines.features import read_features
from pipelines.kpis import activity_params
from pipelines.warehouse import read_frame, sql_text

# Model inputs: every numeric feature of customer_features except identifiers and contact flags.
FEATURES = [
    "tenure_days",
    "days_since_last_purchase",
    "days_since_last_activity",
    "purchases_30d",
    "purchases_90d",
    "purchases_prev_90d",
    "purchases_365d",
    "purchases_total",
    "spend_30d",
    "spend_90d",
    "spend_prev_90d",
    "spend_365d",
    "avg_order_value",
    "mean_gap_days",
    "std_gap_days",
    "overdue_ratio",
    "spend_trend_ratio",
    "purchase_trend_ratio",
    "refunds_90d",
    "contacts_30d",
    "contacts_90d",
    "repeat_contacts_90d",
    "complaints_90d",
    "mean_wait_90d",
    "max_wait_90d",
    "transfers_90d",
    "open_tickets",
    "days_since_last_complaint",
    "negative_notes_90d",
    "last_nps",
    "nps_change",
    "days_since_last_nps",
    "locked_in",
]


class PlattCalibrator:
    """Logistic calibration on the logit of the raw score: monotone, smooth, never exactly 0 or 1."""

    def fit(self, raw: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        self._lr = LogisticRegression(C=1e6).fit(_logit(raw)[:, None], np.asarray(y, int))
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return self._lr.predict_proba(_logit(raw)[:, None])[:, 1]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class TrainSummary:
    as_of: date
    model_version: str
    status: str
    metrics: dict[str, Any]

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "model_version": self.model_version,
            "status": self.status,
            "metrics": self.metrics,
        }


def active_population(features: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Return customers not yet lost: a purchase within the last horizon days."""
    recency = features["days_since_last_purchase"]
    return features[recency.notna() & (recency < horizon)]


def cutoff_dates(as_of: date, cfg: Config) -> list[date]:
    """Return training cutoffs, oldest first; the newest one's horizon ends on as_of."""
    newest = as_of - timedelta(days=cfg.churn.horizon_days)
    every = cfg.training.cutoff_every_days
    return sorted(newest - timedelta(days=k * every) for k in range(cfg.training.n_cutoffs))


def churn_labels(engine: Engine, cfg: Config, cutoff: date, as_of: date) -> pd.DataFrame:
    """Return customer_id, churned for a cutoff whose horizon has matured by as_of."""
    label_end = cutoff + timedelta(days=cfg.churn.horizon_days + 1)
    if label_end > as_of + timedelta(days=1):
        raise ChurnwatchError(f"cutoff {cutoff} has no matured label on {as_of}")
    placeholder, names = activity_params(cfg)
    sql = sql_text("features/churn_labels.sql").replace("{activity_types}", placeholder)
    return read_frame(engine, sql, {"label_start": cutoff + timedelta(days=1), "label_end": label_end, **names})


def training_set(as_of: date, cfg: Config, engine: Engine) -> pd.DataFrame:
    """Return features and labels at every cutoff, for customers active at that cutoff."""
    frames = []
    for cutoff in cutoff_dates(as_of, cfg):
        feats = active_population(read_features(engine, cfg, cutoff), cfg.churn.horizon_days)
        if feats.empty:
            continue
        labels = churn_labels(engine, cfg, cutoff, as_of)
        frame = feats.merge(labels, on="customer_id", how="inner")
        frame["cutoff"] = cutoff
        frames.append(frame)
    if not frames:
        raise ChurnwatchError(
            f"no training data before {as_of}: need transactions at least {cfg.churn.horizon_days} days "
            "before the training date"
        )
    return pd.concat(frames, ignore_index=True)


def top_share_metrics(y: np.ndarray, p: np.ndarray, share: float) -> tuple[float, float]:
    """Return (precision, lift) among the top share of scores."""
    k = max(1, int(round(len(p) * share)))
    top = np.argsort(-p, kind="stable")[:k]
    precision = float(y[top].mean())
    base = float(y.mean()) or 1.0
    return precision, precision / base


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Return ranking and probability metrics for labels y and scores p."""
    out = {
        "auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, np.clip(p, 0, 1))),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))),
        "base_rate": float(y.mean()),
        "n": int(len(y)),
    }
    for share in (0.05, 0.1, 0.2):
        prec, lift = top_share_metrics(y, p, share)
        out[f"precision_top{int(share * 100)}"] = prec
        out[f"lift_top{int(share * 100)}"] = lift
    return out


def _fit(frame: pd.DataFrame, cfg: Config) -> HistGradientBoostingClassifier:
    model = HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.05,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=20,
        random_state=cfg.training.random_state,
    )
    model.fit(frame[FEATURES].to_numpy(float), frame["churned"].to_numpy(int))
    return model


def train_model(as_of: date, cfg: Config, engine: Engine) -> TrainSummary:
    """Train on cutoffs before the newest matured one, calibrate and validate on it, and register."""
    data = training_set(as_of, cfg, engine)
    cutoffs = sorted(data["cutoff"].unique())
    if len(cutoffs) < 2:
        raise ChurnwatchError(f"need at least 2 cutoffs with data before {as_of}, found {len(cutoffs)}")
    if data["churned"].nunique() < 2:
        raise ChurnwatchError(f"training labels before {as_of} are all one class; cannot learn churn")
    train = data[data["cutoff"] < cutoffs[-1]]
    if len(train) > cfg.training.max_train_rows:
        train = train.sample(cfg.training.max_train_rows, random_state=cfg.training.random_state)
    valid = data[data["cutoff"] == cutoffs[-1]]
    model = _fit(train, cfg)
    # Newest cutoff, split by customer hash: one half calibrates, the other half is held out.
    half = valid["customer_id"].map(lambda c: int(hashlib.md5(c.encode()).hexdigest(), 16) % 2)
    calib, hold = valid[half == 0], valid[half == 1]
    calibrator = PlattCalibrator().fit(model.predict_proba(calib[FEATURES].to_numpy(float))[:, 1], calib["churned"])
    y_hold = hold["churned"].to_numpy(int)
    raw_hold = model.predict_proba(hold[FEATURES].to_numpy(float))[:, 1]
    p_hold = calibrator.predict(raw_hold)
    if len(np.unique(y_hold)) < 2:
        raise ChurnwatchError(f"validation cutoff {cutoffs[-1]} has a single class; widen the training span")
    metrics = evaluate(y_hold, p_hold)
    metrics["auc_uncalibrated"] = float(roc_auc_score(y_hold, raw_hold))
    recency = hold["days_since_last_purchase"].to_numpy(float)
    metrics["recency_auc"] = float(roc_auc_score(y_hold, recency))
    metrics["recency_precision_top10"] = top_share_metrics(y_hold, recency, 0.1)[0]
    typical = valid[FEATURES].median(numeric_only=True).to_dict()
    artifact = {
        "model": model,
        "calibrator": calibrator,
        "features": FEATURES,
        "typical": typical,
        "horizon_days": cfg.churn.horizon_days,
    }
    card = {
        "trained_on": as_of.isoformat(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "horizon_days": cfg.churn.horizon_days,
        "churn_definition": {"kind": "non_contractual", "activity_types": cfg.churn.activity_types},
        "training_cutoffs": [c.isoformat() for c in cutoffs[:-1]],
        "validation_cutoff": cutoffs[-1].isoformat(),
        "n_train_rows": int(len(train)),
        "n_validation_rows": int(len(hold)),
        "n_calibration_rows": int(len(calib)),
        "features": FEATURES,
        "metrics": metrics,
        "data_fingerprint": hashlib.sha256(
            pd.util.hash_pandas_object(data[["customer_id", "cutoff", "churned"]], index=False).to_numpy().tobytes()
        ).hexdigest()[:16],
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
            "joblib": joblib.__version__,
        },
    }
    version, status = register_model(engine, cfg, as_of, artifact, card)
    return TrainSummary(as_of, version, status, metrics)
