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
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
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


def active_population(features: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Return customers not yet lost: not cancelled (contractual), or a purchase within the horizon."""
    if cfg.churn.kind == "contractual":
        return features[features["cancelled"].fillna(0).astype(int) == 0]
    recency = features["days_since_last_purchase"]
    return features[recency.notna() & (recency < cfg.churn.horizon_days)]


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
    if cfg.churn.kind == "contractual":
        sql, names = sql_text("features/churn_labels_contractual.sql"), {}
    else:
        placeholder, names = activity_params(cfg)
        sql = sql_text("features/churn_labels.sql").replace("{activity_types}", placeholder)
    return read_frame(engine, sql, {"label_start": cutoff + timedelta(days=1), "label_end": label_end, **names})


def customer_sample(ids: pd.Series, share: float) -> pd.Series:
    """Return a mask keeping about `share` of customers, the same customers on every run and cutoff."""
    if share >= 1:
        return pd.Series(True, index=ids.index)
    buckets = pd.util.hash_pandas_object(ids.astype(str), index=False).to_numpy() % 1_000_000
    return pd.Series(buckets < share * 1_000_000, index=ids.index)


def training_set(as_of: date, cfg: Config, engine: Engine) -> pd.DataFrame:
    """Return features and labels at every cutoff, for customers active at that cutoff.

    A large base is sampled by customer (a stable hash) so that each cutoff holds at most about
    training.max_train_rows / (n_cutoffs - 1) rows: memory stays flat however many customers there are.
    """
    frames = []
    per_cutoff = cfg.training.max_train_rows / max(1, cfg.training.n_cutoffs - 1)
    keep_cols = ["customer_id", "as_of_date", *FEATURES]
    for cutoff in cutoff_dates(as_of, cfg):
        feats = active_population(read_features(engine, cfg, cutoff), cfg)
        if feats.empty:
            continue
        feats = feats.loc[customer_sample(feats["customer_id"], per_cutoff / len(feats)), keep_cols]
        labels = churn_labels(engine, cfg, cutoff, as_of)
        frame = feats.merge(labels, on="customer_id", how="inner")
        frame["cutoff"] = cutoff
        frames.append(frame)
    if not frames:
        raise ChurnwatchError(
            f"no training data before {as_of}: need transactions at least {cfg.churn.horizon_days} days "
            "before the training date"
        )
    # A fixed row order: the warehouse returns rows in any order, and fitting and fingerprints must not vary.
    data = pd.concat(frames, ignore_index=True)
    return data.sort_values(["cutoff", "customer_id"], kind="stable").reset_index(drop=True)


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


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def make_logistic(cfg: Config) -> Pipeline:
    """The baseline: logistic regression on log-scaled, standardised features (missing -> median + flag)."""
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("log", FunctionTransformer(_signed_log1p)),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=0.5, max_iter=3000)),
        ]
    )


def make_gradient_boosting(cfg: Config) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
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


CANDIDATES = {"logistic_regression": make_logistic, "gradient_boosting": make_gradient_boosting}


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Return predicted vs observed churn rate per decile of predicted probability."""
    order = np.argsort(p, kind="stable")
    table = []
    for part in np.array_split(order, bins):
        if len(part):
            table.append(
                {
                    "n": int(len(part)),
                    "mean_predicted": round(float(p[part].mean()), 4),
                    "observed_rate": round(float(y[part].mean()), 4),
                }
            )
    return table


def fit_and_validate(data: pd.DataFrame, cfg: Config) -> tuple[dict, dict]:
    """Fit the candidates on older cutoffs, pick and calibrate on half the newest, measure on the other half.

    Returns (artifact, metrics). The newest matured cutoff is split by a hash of the customer id, so the
    split is the same on every run; no held-out row is used for fitting, selection or calibration.
    """
    cutoffs = sorted(data["cutoff"].unique())
    if len(cutoffs) < 2:
        raise ChurnwatchError(f"need at least 2 cutoffs with data, found {len(cutoffs)}")
    if data["churned"].nunique() < 2:
        raise ChurnwatchError("training labels are all one class; cannot learn churn")
    train = data[data["cutoff"] < cutoffs[-1]]
    if len(train) > cfg.training.max_train_rows:
        train = train.sample(cfg.training.max_train_rows, random_state=cfg.training.random_state)
    valid = data[data["cutoff"] == cutoffs[-1]]
    calib, hold = split_validation(valid)
    y_calib, y_hold = calib["churned"].to_numpy(int), hold["churned"].to_numpy(int)
    if len(np.unique(y_hold)) < 2 or len(np.unique(y_calib)) < 2:
        raise ChurnwatchError(f"validation cutoff {cutoffs[-1]} has a single class; widen the training span")
    # Features with no value at all (e.g. no service data delivered) carry nothing to learn from.
    features = [c for c in FEATURES if train[c].notna().any()]
    x_train, y_train = train[features].to_numpy(float), train["churned"].to_numpy(int)
    candidates = {}
    for name, make in CANDIDATES.items():
        model = make(cfg).fit(x_train, y_train)
        raw_calib = model.predict_proba(calib[features].to_numpy(float))[:, 1]
        raw_hold = model.predict_proba(hold[features].to_numpy(float))[:, 1]
        candidates[name] = {
            "model": model,
            "selection_auc": float(roc_auc_score(y_calib, raw_calib)),
            "holdout_auc": float(roc_auc_score(y_hold, raw_hold)),
            "raw_calib": raw_calib,
        }
    chosen = max(candidates, key=lambda k: candidates[k]["selection_auc"])
    model = candidates[chosen]["model"]
    calibrator = PlattCalibrator().fit(candidates[chosen]["raw_calib"], y_calib)
    raw_hold = model.predict_proba(hold[features].to_numpy(float))[:, 1]
    p_hold = calibrator.predict(raw_hold)
    metrics = evaluate(y_hold, p_hold)
    metrics["model_kind"] = chosen
    metrics["candidates"] = {
        k: {"selection_auc": round(v["selection_auc"], 4), "holdout_auc": round(v["holdout_auc"], 4)}
        for k, v in candidates.items()
    }
    # Recency-only baseline; never having bought ranks as the longest silence.
    recency = hold["days_since_last_purchase"].fillna(1e6).to_numpy(float)
    metrics["recency_auc"] = float(roc_auc_score(y_hold, recency))
    metrics["recency_precision_top10"] = top_share_metrics(y_hold, recency, 0.1)[0]
    metrics["calibration"] = calibration_table(y_hold, p_hold)
    metrics["training_cutoffs"] = [c.isoformat() for c in cutoffs[:-1]]
    metrics["validation_cutoff"] = cutoffs[-1].isoformat()
    metrics["n_train_rows"] = int(len(train))
    metrics["n_calibration_rows"] = int(len(calib))
    artifact = {
        "model": model,
        "model_kind": chosen,
        "calibrator": calibrator,
        "features": features,
        "typical": valid[features].median(numeric_only=True).to_dict(),
        "horizon_days": cfg.churn.horizon_days,
        "reference": reference_profile(train[features], model.predict_proba(x_train)[:, 1], calibrator),
    }
    return artifact, metrics


def split_validation(valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the validation cutoff by a stable hash of the customer id: (calibration half, held-out half)."""
    half = valid["customer_id"].map(lambda c: int(hashlib.md5(str(c).encode()).hexdigest(), 16) % 2)
    return valid[half == 0], valid[half == 1]


def bin_profile(values: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Return inner decile edges of values and the share of values per bin (a last bin holds missing values)."""
    values = np.asarray(values, float)
    present = values[~np.isnan(values)]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])) if len(present) else np.array([])
    return {"edges": edges.tolist(), "shares": bin_shares(values, edges.tolist())}


def bin_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Return the share of values in each bin between edges, plus the share of missing values."""
    values = np.asarray(values, float)
    missing = np.isnan(values)
    counts = np.bincount(np.searchsorted(np.asarray(edges), values[~missing], side="right"), minlength=len(edges) + 1)
    total = max(len(values), 1)
    return [float(c) / total for c in counts] + [float(missing.sum()) / total]


def reference_profile(train: pd.DataFrame, raw: np.ndarray, calibrator) -> dict[str, dict[str, list[float]]]:
    """Return the training distribution of the score and of each feature, for drift monitoring (PSI)."""
    profile = {"__score__": bin_profile(calibrator.predict(raw))}
    for col in train.columns:
        profile[col] = bin_profile(train[col].to_numpy(float))
    return profile


def churn_definition(cfg: Config) -> dict[str, Any]:
    """Return the churn definition recorded in the model card."""
    if cfg.churn.kind == "contractual":
        return {"kind": "contractual", "event": "cancellation", "horizon_days": cfg.churn.horizon_days}
    return {
        "kind": "non_contractual",
        "activity_types": cfg.churn.activity_types,
        "horizon_days": cfg.churn.horizon_days,
    }


def train_model(as_of: date, cfg: Config, engine: Engine) -> TrainSummary:
    """Train on cutoffs before the newest matured one, calibrate and validate on it, and register."""
    data = training_set(as_of, cfg, engine)
    artifact, metrics = fit_and_validate(data, cfg)
    cutoffs = sorted(data["cutoff"].unique())
    _, hold = split_validation(data[data["cutoff"] == cutoffs[-1]])
    card = {
        "trained_on": as_of.isoformat(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "horizon_days": cfg.churn.horizon_days,
        "churn_definition": churn_definition(cfg),
        "model_kind": artifact["model_kind"],
        "training_cutoffs": metrics.pop("training_cutoffs"),
        "validation_cutoff": metrics.pop("validation_cutoff"),
        "n_train_rows": metrics.pop("n_train_rows"),
        "n_validation_rows": int(len(hold)),
        "n_calibration_rows": metrics.pop("n_calibration_rows"),
        "features": artifact["features"],
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
    version, status = register_model(engine, cfg, as_of, artifact, card, hold)
    return TrainSummary(as_of, version, status, metrics)
