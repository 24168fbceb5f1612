"""Model registry: versioned artifacts with a model card on disk, one row per version in model_registry."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.config import Config
from pipelines.errors import NoModelError
from pipelines.warehouse import insert_frame, read_frame

ARTIFACT = "model.joblib"
CARD = "model_card.json"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def register_model(engine: Engine, cfg: Config, trained_on: date, artifact: dict, card: dict) -> tuple[str, str]:
    """Save the artifact and card, record the version; promote it if it clears the AUC floor."""
    version = f"m{trained_on:%Y%m%d}-{card['data_fingerprint'][:8]}"
    card["model_version"] = version
    artifact["model_version"] = version
    folder = cfg.resolve(cfg.paths.model_dir) / version
    _atomic_write(folder / ARTIFACT, lambda p: joblib.dump(artifact, p))
    _atomic_write(folder / CARD, lambda p: Path(p).write_text(json.dumps(card, indent=2, default=str)))
    metrics = card["metrics"]
    status = "champion" if metrics["auc"] >= cfg.training.min_auc else "rejected"
    row = pd.DataFrame(
        [
            {
                "model_version": version,
                "trained_on": trained_on,
                "created_at": datetime.now(UTC).replace(tzinfo=None),
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
            }
        ]
    )
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM model_registry WHERE model_version = :v"), {"v": version})
        if status == "champion":
            conn.execute(sa.text("UPDATE model_registry SET status = 'archived' WHERE status = 'champion'"))
        insert_frame(conn, "model_registry", row)
    return version, status


def list_models(engine: Engine) -> pd.DataFrame:
    """Return the registry, newest first."""
    return read_frame(
        engine,
        "SELECT model_version, trained_on, status, validation_auc, recency_auc, validation_brier, n_train_rows "
        "FROM model_registry ORDER BY created_at DESC",
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
