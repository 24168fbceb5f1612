"""Training set from rolling cutoffs, a gradient-boosting model, time-ordered validation, registry entry."""

from __future__ import annotations

import hashlib
import logging
import platform
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sqlalchemy.engine import Engine

from models.btyd import BGNBD, BTYD_FEATURES, btyd_features, fit_from_features
from models.registry import register_model
from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError
from pipelines.core.numbers import logit
from pipelines.core.warehouse import read_frame
from pipelines.engines import Compute, choose_compute
from pipelines.features.customer_features import read_features
from pipelines.features.population import active_population, churn_labels

log = logging.getLogger(__name__)

# Model inputs from customer_features: every numeric feature except identifiers and contact flags.
SQL_FEATURES = [
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
    "purchase_days_total",
    "first_purchase_age_days",
    "purchase_days_decay_30",
    "purchase_days_decay_90",
    "last_gap_days",
]
# Inputs that travel across time: rates per customer age and silence relative to the customer's own life.
RATE_FEATURES = ["purchase_days_per_30d", "recency_share_of_life"]
FEATURES = [*SQL_FEATURES, *RATE_FEATURES, *BTYD_FEATURES]
# The log-RFM baseline: recency, frequency, monetary value.
RFM_FEATURES = ["days_since_last_purchase", "purchase_days_total", "avg_order_value"]


def add_model_features(frame: pd.DataFrame, fit: BGNBD | None, horizon_days: int) -> pd.DataFrame:
    """Return feature rows with the rate and BG/NBD inputs added (BG/NBD ones missing without a fit)."""
    age = frame["first_purchase_age_days"].to_numpy(float)
    life = np.maximum(age, 1.0)
    out = (
        btyd_features(frame, fit, horizon_days)
        if fit is not None
        else frame.assign(**dict.fromkeys(BTYD_FEATURES, np.nan))
    )
    out["purchase_days_per_30d"] = frame["purchase_days_total"].to_numpy(float) / np.maximum(age, 30.0) * 30.0
    out["recency_share_of_life"] = frame["days_since_last_purchase"].to_numpy(float) / life
    return out


def fit_population_btyd(features: pd.DataFrame) -> BGNBD | None:
    """Return a BG/NBD fitted on every customer with a purchase among one date's feature rows, or None."""
    try:
        return fit_from_features(features)
    except ChurnwatchError as exc:
        log.warning("no BG/NBD fit: %s", exc)
        return None


class PlattCalibrator:
    """Logistic calibration on the logit of the raw score: monotone, smooth, never exactly 0 or 1."""

    def fit(self, raw: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        self._lr = LogisticRegression(C=1e6).fit(logit(raw)[:, None], np.asarray(y, int))
        return self

    def predict(self, raw: np.ndarray) -> np.ndarray:
        return self._lr.predict_proba(logit(raw)[:, None])[:, 1]


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


def cutoff_dates(as_of: date, cfg: Config) -> list[date]:
    """Return training cutoffs, oldest first; the newest one's horizon ends on as_of."""
    newest = as_of - timedelta(days=cfg.churn.horizon_days)
    every = cfg.training.cutoff_every_days
    return sorted(newest - timedelta(days=k * every) for k in range(cfg.training.n_cutoffs))


def first_data_day(engine: Engine, as_of: date) -> date | None:
    """Return the day of the first transaction up to as_of, or None without any."""
    found = read_frame(
        engine, "SELECT MIN(ts) AS ts FROM stg_transactions WHERE ts < :next", {"next": as_of + timedelta(days=1)}
    )["ts"].iloc[0]
    return None if found is None or pd.isna(found) else pd.Timestamp(found).date()


def customer_sample(ids: pd.Series, share: float) -> pd.Series:
    """Return a mask keeping about `share` of customers, the same customers on every run and cutoff."""
    if share >= 1:
        return pd.Series(True, index=ids.index)
    buckets = pd.util.hash_pandas_object(ids.astype(str), index=False).to_numpy() % 1_000_000
    return pd.Series(buckets < share * 1_000_000, index=ids.index)


def training_set(as_of: date, cfg: Config, engine: Engine, compute: Compute | None = None) -> pd.DataFrame:
    """Return features and labels at every cutoff, for customers active at that cutoff.

    At each cutoff a BG/NBD is fitted on every customer who ever bought (reading nothing after the
    cutoff) and its P(alive), expected purchases and P(no purchase) within the horizon become inputs.
    A large base is sampled by customer (a stable hash) so that each cutoff holds at most about
    training.max_train_rows / (n_cutoffs - 1) rows: memory stays flat however many customers there are.
    The fitted BG/NBD parameters per cutoff are in the frame's attrs["btyd"].
    """
    frames, fits = [], {}
    horizon = cfg.churn.horizon_days
    per_cutoff = cfg.training.max_train_rows / max(1, cfg.training.n_cutoffs - 1)
    keep_cols = ["customer_id", "as_of_date", *FEATURES]
    # A cutoff with only days of history behind it teaches nonsense (everyone looks recent): skip it.
    first = first_data_day(engine, as_of)
    min_history = cfg.training.min_history_days if cfg.training.min_history_days is not None else horizon
    for cutoff in cutoff_dates(as_of, cfg):
        if first is None or cutoff < first + timedelta(days=min_history):
            continue
        everyone = read_features(engine, cfg, cutoff, compute)
        feats = active_population(everyone, cfg)
        if feats.empty:
            continue
        fit = fit_population_btyd(everyone)
        fits[cutoff.isoformat()] = fit.as_dict() if fit else None
        feats = feats.loc[customer_sample(feats["customer_id"], per_cutoff / len(feats))]
        feats = add_model_features(feats, fit, horizon)[keep_cols]
        labels = churn_labels(engine, cfg, cutoff, as_of)
        frame = feats.merge(labels, on="customer_id", how="inner")
        frame["cutoff"] = cutoff
        frames.append(frame)
    if not frames:
        raise ChurnwatchError(
            f"no training data before {as_of}: need transactions from at least {horizon + min_history} days "
            f"before the training date (horizon {horizon} + training.min_history_days {min_history})"
        )
    # A fixed row order: the warehouse returns rows in any order, and fitting and fingerprints must not vary.
    data = pd.concat(frames, ignore_index=True)
    data = data.sort_values(["cutoff", "customer_id"], kind="stable").reset_index(drop=True)
    data.attrs["btyd"] = fits
    return data


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


class Columns(BaseEstimator, TransformerMixin):
    """Keep the given column positions of a feature matrix (a candidate that reads a few features)."""

    def __init__(self, indices: tuple[int, ...] = ()) -> None:
        self.indices = indices

    def fit(self, x, y=None) -> Columns:
        return self

    def transform(self, x):
        return np.asarray(x, float)[:, list(self.indices)]


class ColumnScore(ClassifierMixin, BaseEstimator):
    """A 'model' whose churn score is one input column that already is a probability (BG/NBD's)."""

    def __init__(self, index: int = 0) -> None:
        self.index = index

    def fit(self, x, y) -> ColumnScore:
        self.classes_ = np.array([0, 1])
        p = np.asarray(x, float)[:, self.index]
        self.fill_ = float(np.nanmean(p)) if np.isfinite(p).any() else 0.5
        return self

    def predict_proba(self, x) -> np.ndarray:
        p = np.asarray(x, float)[:, self.index]
        p = np.clip(np.where(np.isfinite(p), p, self.fill_), 1e-6, 1 - 1e-6)
        return np.column_stack([1 - p, p])


class Blend(ClassifierMixin, BaseEstimator):
    """The mean log-odds of fitted member models (a simple ensemble of candidates)."""

    def __init__(self, members: tuple = ()) -> None:
        self.members = members

    def fit(self, x, y) -> Blend:
        self.members = tuple(m.fit(x, y) for m in self.members)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, x) -> np.ndarray:
        z = np.mean([logit(m.predict_proba(x)[:, 1]) for m in self.members], axis=0)
        p = 1 / (1 + np.exp(-z))
        return np.column_stack([1 - p, p])


def _logistic(columns: list[int] | None = None) -> Pipeline:
    steps = [("columns", Columns(tuple(columns)))] if columns is not None else []
    steps += [
        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
        ("log", FunctionTransformer(_signed_log1p)),
        ("scale", StandardScaler()),
        ("model", LogisticRegression(C=0.5, max_iter=3000)),
    ]
    return Pipeline(steps)


def make_logistic(cfg: Config, features: list[str]) -> Pipeline:
    """Logistic regression on every input, log-scaled and standardised (missing -> median + flag)."""
    return _logistic()


def make_recency(cfg: Config, features: list[str]) -> Pipeline:
    """Logistic regression on log days since the last purchase: recency alone, as a probability."""
    return _logistic([features.index("days_since_last_purchase")])


def make_logistic_rfm(cfg: Config, features: list[str]) -> Pipeline:
    """Logistic regression on log recency, frequency, monetary value (the textbook baseline)."""
    return _logistic([features.index(c) for c in RFM_FEATURES if c in features])


def make_logistic_btyd(cfg: Config, features: list[str]) -> Pipeline:
    """Logistic regression on log RFM, customer age and the BG/NBD inputs: few, time-robust inputs."""
    wanted = [
        *RFM_FEATURES,
        "first_purchase_age_days",
        "last_gap_days",
        "purchase_days_decay_30",
        "purchase_days_decay_90",
        *RATE_FEATURES,
        *BTYD_FEATURES,
    ]
    return _logistic([features.index(c) for c in wanted if c in features])


def make_bgnbd(cfg: Config, features: list[str]) -> ColumnScore:
    """BG/NBD's own P(no purchase within the horizon), fitted as of each cutoff."""
    return ColumnScore(features.index("btyd_p_no_purchase"))


def make_gradient_boosting(cfg: Config, features: list[str]) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=80,
        l2_regularization=1.0,
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=20,
        random_state=cfg.training.random_state,
    )


def make_blend(cfg: Config, features: list[str]) -> Blend:
    """Mean log-odds of the BG/NBD logistic regression and gradient boosting."""
    return Blend(tuple(CANDIDATES[m](cfg, features) for m in BLEND_OF))


# Candidates from the simplest to the most complex; a more complex one must win by training.selection_margin.
CANDIDATES = {
    "recency": make_recency,
    "bgnbd": make_bgnbd,
    "logistic_rfm": make_logistic_rfm,
    "logistic_btyd": make_logistic_btyd,
    "logistic_regression": make_logistic,
    "gradient_boosting": make_gradient_boosting,
    "blend": make_blend,
}
# The blend's members; they come before it in CANDIDATES, so a fold fits them once.
BLEND_OF = ("logistic_btyd", "gradient_boosting")
# The input a candidate cannot do without.
NEEDS = {"bgnbd": "btyd_p_no_purchase", "recency": "days_since_last_purchase"}


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


def matured_before(cutoffs: list[date], day: date, horizon_days: int) -> list[date]:
    """Return the cutoffs whose label window has ended by `day` (what a model trained on `day` may see)."""
    return [c for c in cutoffs if c + timedelta(days=horizon_days) <= day]


def validation_plan(cutoffs: list[date], cfg: Config) -> tuple[list[date], date]:
    """Return (selection fold cutoffs, newest first; the held-out cutoff) for rolling-origin validation.

    Each fold is one cutoff, judged by models trained only on cutoffs whose labels had matured by then,
    exactly as a model trained on that day would have been. The newest cutoff is never used to choose.
    """
    horizon = cfg.churn.horizon_days
    held_out = cutoffs[-1]
    if not matured_before(cutoffs, held_out, horizon):
        span = horizon + cfg.training.cutoff_every_days
        raise ChurnwatchError(
            f"rolling validation needs training cutoffs at least {horizon} days before the newest ({held_out}); "
            f"raise training.n_cutoffs (now {cfg.training.n_cutoffs}) so the cutoffs span more than {span} days"
        )
    folds = [v for v in reversed(cutoffs[:-1]) if matured_before(cutoffs, v, horizon)][: cfg.training.selection_folds]
    if not folds:
        raise ChurnwatchError(
            f"rolling validation needs at least one selection fold before {held_out}; raise training.n_cutoffs "
            f"(now {cfg.training.n_cutoffs})"
        )
    return folds, held_out


def _fit_candidates(
    train: pd.DataFrame, rows: pd.DataFrame, features: list[str], cfg: Config, names: list[str], max_rows: int
):
    """Return {name: (fitted model, raw scores on rows)} for candidates trained on at most max_rows of `train`."""
    if len(train) > max_rows:
        train = train.sample(max_rows, random_state=cfg.training.random_state)
    # An early fold may lack an input altogether (e.g. no BG/NBD fit yet); it learns without it.
    features = [c for c in features if train[c].notna().any()]
    names = [n for n in names if NEEDS.get(n, features[0]) in features]
    x, y = train[features].to_numpy(float), train["churned"].to_numpy(int)
    x_rows = rows[features].to_numpy(float)
    out = {}
    for name in names:
        members = BLEND_OF if name == "blend" and all(m in out for m in BLEND_OF) else None
        if members:  # the blend of members already fitted on the same rows: no second fit
            model = Blend(tuple(out[m][0] for m in members))
            model.classes_ = np.array([0, 1])
        else:
            model = CANDIDATES[name](cfg, features).fit(x, y)
        out[name] = (model, model.predict_proba(x_rows)[:, 1])
    return out


def choose(fold_aucs: dict[str, list[float]], margin: float) -> str:
    """Return the simplest candidate whose mean fold AUC is within `margin` of the best mean."""
    means = {k: float(np.mean(v)) for k, v in fold_aucs.items()}
    best = max(means.values())
    return next(k for k in CANDIDATES if k in means and means[k] >= best - margin)


@dataclass
class _Folds:
    """Out-of-time results of the selection folds, per candidate."""

    aucs: dict[str, list[float]]
    scores: dict[str, list[tuple[np.ndarray, np.ndarray]]]  # (raw score, label) per fold
    report: list[dict]


def _run_folds(data: pd.DataFrame, folds: list, cutoffs: list, features: list[str], names: list[str], cfg) -> _Folds:
    """Judge every candidate on each fold, trained only on cutoffs matured by the fold's own cutoff."""
    out = _Folds({n: [] for n in names}, {n: [] for n in names}, [])
    for fold in folds:
        train = data[data["cutoff"].isin(matured_before(cutoffs, fold, cfg.churn.horizon_days))]
        rows = data[data["cutoff"] == fold]
        y = rows["churned"].to_numpy(int)
        if len(np.unique(y)) < 2 or train["churned"].nunique() < 2:
            continue
        fitted = _fit_candidates(train, rows, features, cfg, names, cfg.training.max_selection_rows)
        for name, (_, raw) in fitted.items():
            out.aucs[name].append(float(roc_auc_score(y, raw)))
            out.scores[name].append((raw, y))
        out.report.append(
            {
                "cutoff": fold.isoformat(),
                "trained_until": max(train["cutoff"]).isoformat(),
                "n": int(len(rows)),
                **{n: round(out.aucs[n][-1], 4) for n in names},
            }
        )
    if not out.report:
        raise ChurnwatchError("every selection fold has a single class; widen the training span")
    return out


def _holdout_metrics(y_hold, p_hold, hold, hold_fitted, chosen, folds: _Folds, names, trained_until) -> dict:
    """Return the held-out metrics of the chosen recipe, beside every candidate and recency alone."""
    metrics = evaluate(y_hold, p_hold)
    metrics["model_kind"] = chosen
    metrics["candidates"] = {
        n: {
            "mean_fold_auc": round(float(np.mean(folds.aucs[n])), 4),
            "worst_fold_auc": round(float(np.min(folds.aucs[n])), 4),
            "holdout_auc": round(float(roc_auc_score(y_hold, hold_fitted[n][1])), 4),
        }
        for n in names
    }
    metrics["folds"] = folds.report
    metrics["holdout_trained_until"] = trained_until
    # Recency-only baseline; never having bought ranks as the longest silence.
    recency = hold["days_since_last_purchase"].fillna(1e6).to_numpy(float)
    metrics["recency_auc"] = float(roc_auc_score(y_hold, recency))
    metrics["recency_precision_top10"] = top_share_metrics(y_hold, recency, 0.1)[0]
    metrics["calibration"] = calibration_table(y_hold, p_hold)
    return metrics


def fit_and_validate(data: pd.DataFrame, cfg: Config) -> tuple[dict, dict]:
    """Choose a candidate by rolling-origin folds, calibrate it out of time, measure it on the newest cutoff.

    Returns (artifact, metrics). Every fold and the held-out check train only on cutoffs whose labels
    had matured by the cutoff they are judged on. The candidate with the best mean fold AUC wins, unless
    a simpler one is within training.selection_margin. Its Platt calibration is fitted on the folds'
    out-of-time scores; the held-out cutoff measures the whole recipe. The model that is kept is refitted
    on every cutoff, and calibrated on the out-of-time scores of the folds and the held-out cutoff.
    """
    horizon = cfg.churn.horizon_days
    cutoffs = sorted(data["cutoff"].unique())
    if len(cutoffs) < 2:
        raise ChurnwatchError(f"need at least 2 cutoffs with data, found {len(cutoffs)}")
    if data["churned"].nunique() < 2:
        raise ChurnwatchError("training labels are all one class; cannot learn churn")
    fold_cutoffs, held_out = validation_plan(cutoffs, cfg)
    # Inputs with no value at all (e.g. no service data delivered) carry nothing to learn from.
    features = [c for c in FEATURES if data[c].notna().any()]
    names = [n for n in CANDIDATES if NEEDS.get(n, features[0]) in features]
    folds = _run_folds(data, fold_cutoffs, cutoffs, features, names, cfg)
    chosen = choose(folds.aucs, cfg.training.selection_margin)
    fold_calibrator = PlattCalibrator().fit(*_pooled(folds.scores[chosen]))

    hold = data[data["cutoff"] == held_out]
    y_hold = hold["churned"].to_numpy(int)
    if len(np.unique(y_hold)) < 2:
        raise ChurnwatchError(f"validation cutoff {held_out} has a single class; widen the training span")
    hold_train = data[data["cutoff"].isin(matured_before(cutoffs, held_out, horizon))]
    hold_fitted = _fit_candidates(hold_train, hold, features, cfg, names, cfg.training.max_selection_rows)
    p_hold = fold_calibrator.predict(hold_fitted[chosen][1])
    trained_until = max(hold_train["cutoff"]).isoformat()
    metrics = _holdout_metrics(y_hold, p_hold, hold, hold_fitted, chosen, folds, names, trained_until)
    metrics["training_cutoffs"] = [c.isoformat() for c in cutoffs]
    metrics["validation_cutoff"] = held_out.isoformat()
    metrics["n_train_rows"] = int(min(len(data), cfg.training.max_train_rows))
    metrics["n_calibration_rows"] = int(sum(len(y) for _, y in folds.scores[chosen]) + len(y_hold))

    # The kept model learns from every cutoff; its calibration from every out-of-time score.
    final = _fit_candidates(data, hold, features, cfg, [chosen], cfg.training.max_train_rows)[chosen][0]
    calibrator = PlattCalibrator().fit(*_pooled([*folds.scores[chosen], (hold_fitted[chosen][1], y_hold)]))
    x_all = data[features].to_numpy(float)
    artifact = {
        "model": final,
        "model_kind": chosen,
        "calibrator": calibrator,
        "features": features,
        "typical": hold[features].median(numeric_only=True).to_dict(),
        "horizon_days": horizon,
        "reference": reference_profile(data[features], final.predict_proba(x_all)[:, 1], calibrator),
    }
    return artifact, metrics


def _pooled(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([p for p, _ in parts]), np.concatenate([y for _, y in parts])


def bin_profile(values: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Return inner decile edges of values and the share of values per bin (a last bin holds missing values)."""
    values = np.asarray(values, float)
    present = values[~np.isnan(values)]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])) if len(present) else np.array([])
    return {"edges": edges.tolist(), "shares": bin_shares(values, edges.tolist())}


def bin_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Return the count of values in each bin between edges, plus the count of missing values (last)."""
    values = np.asarray(values, float)
    missing = np.isnan(values)
    counts = np.bincount(np.searchsorted(np.asarray(edges), values[~missing], side="right"), minlength=len(edges) + 1)
    return np.append(counts, missing.sum()).astype(np.int64)


def shares_of(counts: np.ndarray) -> list[float]:
    """Return bin counts (bin_counts, or their sum over slices of the values) as shares of all values."""
    total = max(int(counts.sum()), 1)
    return [float(c) / total for c in counts]


def bin_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Return the share of values in each bin between edges, plus the share of missing values."""
    return shares_of(bin_counts(values, edges))


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


def train_model(as_of: date, cfg: Config, engine: Engine, compute: Compute | None = None) -> TrainSummary:
    """Choose, calibrate and validate a model on rolling cutoffs up to as_of, and register it.

    SQL: sql/features/customer_features.sql, churn_labels*.sql (per cutoff). Tests: tests/models/test_model.py,
    tests/models/test_btyd.py. Doc: docs/model.md."""
    data = training_set(as_of, cfg, engine, compute or choose_compute(cfg, engine))
    artifact, metrics = fit_and_validate(data, cfg)
    hold = data[data["cutoff"] == max(data["cutoff"])]
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
        "btyd_fits": data.attrs.get("btyd", {}),
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
