"""Model registry: versioned artifacts with a model card on disk, one row per version in model_registry."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
from sqlalchemy.engine import Engine

from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError, NoModelError
from pipelines.core.publish import atomic_write
from pipelines.core.warehouse import insert_frame, read_frame

ARTIFACT = "model.joblib"
CARD = "model_card.json"


def predict(artifact: dict, frame: pd.DataFrame) -> np.ndarray:
    """Return calibrated churn probabilities of an artifact for feature rows."""
    return predict_matrix(artifact, frame[artifact["features"]].to_numpy(float))


def predict_matrix(artifact: dict, x: np.ndarray) -> np.ndarray:
    """Return calibrated churn probabilities for a matrix of the artifact's features, in their order.

    Gradient boosting predicts on its own bins: the same probabilities (tests/models/test_model.py) in
    about 80 % of the time (400k customers, 300 trees)."""
    to_bins = binner(artifact)
    if to_bins is not None:
        return binned_probabilities(artifact, to_bins(x))[0]
    raw = artifact["model"].predict_proba(x)[:, 1]
    return np.clip(artifact["calibrator"].predict(raw), 0.0, 1.0)


def binner(artifact: dict):
    """Return a function mapping a feature matrix to the gradient-boosting model's bins, or None.

    Scoring explains every customer with one prediction per driver; on binned data each prediction
    costs about half as much, and a driver set to its typical value is just a column of one bin.
    """
    model = artifact["model"]
    if not isinstance(model, HistGradientBoostingClassifier) or len(model.classes_) != 2:
        return None
    return model._bin_mapper.transform


def binned_probabilities(
    artifact: dict, x_binned: np.ndarray, typical_binned: np.ndarray | None = None, groups: dict | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return calibrated probabilities of the gradient-boosting model on binned rows, and per group of feature
    positions the probabilities with that group set to its typical bins.

    The first equals predict_matrix on the raw values (a split's threshold is a bin edge, so a binned value
    goes the same way as its raw value). The groups cost a fraction of a whole prediction each: a tree that
    never splits on a group's features gives the same value either way, so a group re-evaluates only the
    trees that use it and shares the rest of the sum. tests/models/test_model.py checks both equalities.
    """
    model = artifact["model"]
    groups = groups or {}
    n_threads = _openmp_effective_n_threads()
    missing_bin = model._bin_mapper.missing_values_bin_idx_
    trees = [tree for (tree,) in model._predictors]
    columns = {name: set(idx) for name, idx in groups.items()}
    groups_of_tree = [
        [name for name, cols in columns.items() if cols & set(tree.nodes["feature_idx"][tree.nodes["is_leaf"] == 0])]
        for tree in trees
    ]

    def calibrated(raw: np.ndarray) -> np.ndarray:
        proba = model._loss.predict_proba(raw[:, None])[:, 1]
        return np.clip(artifact["calibrator"].predict(proba), 0.0, 1.0)

    raw = np.full(len(x_binned), float(np.ravel(model._baseline_prediction)[0]))
    shared = {name: np.zeros(len(x_binned)) for name in groups}
    for tree, names in zip(trees, groups_of_tree):
        value = tree.predict_binned(x_binned, missing_bin, n_threads)
        raw += value
        for name in names:
            shared[name] += value
    out = {}
    for name, idx in groups.items():
        altered = x_binned.copy()
        altered[:, idx] = typical_binned[0, idx]
        changed = np.zeros(len(x_binned))
        for tree, names in zip(trees, groups_of_tree):
            if name in names:
                changed += tree.predict_binned(altered, missing_bin, n_threads)
        out[name] = calibrated(raw - shared[name] + changed)
    return calibrated(raw), out


def champion_on(engine: Engine, hold: pd.DataFrame) -> tuple[str | None, float | None]:
    """Return (champion version, its AUC on the given held-out rows), or (None, None) without a champion."""
    try:
        artifact = load_champion(engine)
    except NoModelError:
        return None, None
    if not set(artifact["features"]) <= set(hold.columns) or hold["churned"].nunique() < 2:
        return artifact["model_version"], None
    auc = float(roc_auc_score(hold["churned"].to_numpy(int), predict(artifact, hold)))
    return artifact["model_version"], auc


def decide(cfg: Config, auc: float, champion: str | None, champion_auc: float | None) -> str:
    """Return the new model's status: champion, challenger (kept, not promoted) or rejected (below the floor)."""
    if auc < cfg.training.min_auc:
        return "rejected"
    if champion is None or champion_auc is None:
        return "champion"
    return "champion" if auc >= champion_auc + cfg.training.min_improvement else "challenger"


def register_model(
    engine: Engine, cfg: Config, trained_on: date, artifact: dict, card: dict, hold: pd.DataFrame | None = None
) -> tuple[str, str]:
    """Save the artifact and card, record the version, and promote it if it beats the champion.

    The champion is re-scored on the new model's held-out rows, so both are judged on the same data.
    """
    version = f"m{trained_on:%Y%m%d}-{card['data_fingerprint'][:8]}"
    card["model_version"] = version
    artifact["model_version"] = version
    metrics = card["metrics"]
    previous, previous_auc = champion_on(engine, hold) if hold is not None else (None, None)
    if previous == version:  # re-training the same data: judge against the champion before it
        previous, previous_auc = None, None
    status = decide(cfg, metrics["auc"], previous, previous_auc)
    card["promotion"] = {
        "status": status,
        "champion_before": previous,
        "champion_auc_same_validation": previous_auc,
        "min_auc": cfg.training.min_auc,
        "min_improvement": cfg.training.min_improvement,
    }
    folder = cfg.resolve(cfg.paths.model_dir) / version
    atomic_write(folder / ARTIFACT, lambda p: joblib.dump(artifact, p))
    atomic_write(folder / CARD, lambda p: Path(p).write_text(json.dumps(card, indent=2, default=str)))
    now = datetime.now(UTC).replace(tzinfo=None)
    row = pd.DataFrame(
        [
            {
                "model_version": version,
                "trained_on": trained_on,
                "created_at": now,
                "horizon_days": card["horizon_days"],
                "n_train_rows": card["n_train_rows"],
                "n_validation_rows": card["n_validation_rows"],
                "validation_auc": metrics["auc"],
                "recency_auc": metrics["recency_auc"],
                "validation_pr_auc": metrics["pr_auc"],
                "validation_brier": metrics["brier"],
                "status": status,
                "artifact_path": str(folder / ARTIFACT),
                "card": json.dumps(card, default=str),
                "model_kind": card.get("model_kind"),
                "champion_auc_same_validation": previous_auc,
                "promoted_at": now if status == "champion" else None,
            }
        ]
    )
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM model_registry WHERE model_version = :v"), {"v": version})
        if status == "champion":
            conn.execute(sa.text("UPDATE model_registry SET status = 'archived' WHERE status = 'champion'"))
        insert_frame(conn, "model_registry", row)
    return version, status


def promote(engine: Engine, version: str) -> str:
    """Make a registered version the champion (the current one is archived); return the previous champion."""
    found = read_frame(
        engine, "SELECT status, artifact_path FROM model_registry WHERE model_version = :v", {"v": version}
    )
    if found.empty:
        raise ChurnwatchError(f"no model {version!r} in model_registry; see churnwatch models list")
    if found["status"].iloc[0] == "rejected":
        raise ChurnwatchError(f"model {version} was rejected (below training.min_auc); it cannot be promoted")
    if not Path(found["artifact_path"].iloc[0]).exists():
        raise ChurnwatchError(f"model {version} is missing its file {found['artifact_path'].iloc[0]}")
    current = read_frame(engine, "SELECT model_version FROM model_registry WHERE status = 'champion'")
    previous = current["model_version"].iloc[0] if len(current) else None
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE model_registry SET status = 'archived' WHERE status = 'champion'"))
        conn.execute(
            sa.text("UPDATE model_registry SET status = 'champion', promoted_at = :t WHERE model_version = :v"),
            {"t": now, "v": version},
        )
    return previous or ""


def rollback(engine: Engine) -> tuple[str, str]:
    """Put back the champion before the current one; return (retired version, restored version)."""
    current = read_frame(engine, "SELECT model_version FROM model_registry WHERE status = 'champion'")
    if current.empty:
        raise ChurnwatchError("no champion to roll back")
    earlier = read_frame(
        engine,
        "SELECT model_version FROM model_registry WHERE status = 'archived' AND promoted_at IS NOT NULL "
        "ORDER BY promoted_at DESC LIMIT 1",
    )
    if earlier.empty:
        raise ChurnwatchError("no earlier champion to roll back to")
    retired, restored = current["model_version"].iloc[0], earlier["model_version"].iloc[0]
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE model_registry SET status = 'rolled_back' WHERE model_version = :v"), {"v": retired}
        )
        conn.execute(
            sa.text("UPDATE model_registry SET status = 'champion', promoted_at = :t WHERE model_version = :v"),
            {"t": now, "v": restored},
        )
    return retired, restored


def list_models(engine: Engine) -> pd.DataFrame:
    """Return the registry, newest first."""
    return read_frame(
        engine,
        "SELECT model_version, trained_on, status, model_kind, validation_auc, champion_auc_same_validation, "
        "recency_auc, validation_brier, n_train_rows, promoted_at FROM model_registry ORDER BY created_at DESC",
    )


def load_champion(engine: Engine) -> dict[str, Any]:
    """Return the champion artifact; raise NoModelError if there is none."""
    found = read_frame(
        engine,
        "SELECT model_version, artifact_path FROM model_registry WHERE status = 'champion' "
        "ORDER BY created_at DESC LIMIT 1",
    )
    if found.empty:
        raise NoModelError(
            "no champion model in model_registry: train one first (churnwatch train --date D, or the churn_retrain DAG)"
        )
    path = Path(found["artifact_path"].iloc[0])
    if not path.exists():
        raise NoModelError(f"champion model {found['model_version'].iloc[0]} is missing its file {path}")
    return joblib.load(path)


def read_card(engine: Engine, version: str) -> dict[str, Any]:
    """Return the model card of a registered version (empty if unknown)."""
    found = read_frame(engine, "SELECT card FROM model_registry WHERE model_version = :v", {"v": version})
    return json.loads(found["card"].iloc[0]) if len(found) and found["card"].iloc[0] else {}
