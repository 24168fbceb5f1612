"""What the demo leaves, checked against the generator's truth."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from pipelines.core.config import Config
from pipelines.core.warehouse import get_engine, read_frame
from pipelines.features.customer_features import numeric_features
from pipelines.synth.generate import oracle_probability


def truth_comparison(cfg: Config, as_of: date, generated: Path) -> dict:
    """Return AUCs of the model, recency-only and the oracle against the true churn within the horizon."""
    engine = get_engine(cfg)
    scores = numeric_features(
        read_frame(
            engine,
            "SELECT s.churn_probability, f.* FROM churn_scores s JOIN customer_features f "
            "ON f.customer_id = s.customer_id AND f.as_of_date = s.as_of_date WHERE s.as_of_date = :d",
            {"d": as_of},
        )
    )
    engine.dispose()  # release the DuckDB file for other processes
    truth = oracle_probability(generated, as_of, cfg.churn.horizon_days)
    merged = scores.merge(truth, on="customer_id")
    y = merged["churned_within_horizon"].astype(int)
    return {
        "customers_scored": int(len(merged)),
        "true_churn_rate": round(float(y.mean()), 4),
        "model_auc": round(float(roc_auc_score(y, merged["churn_probability"])), 4),
        "recency_auc": round(float(roc_auc_score(y, merged["days_since_last_purchase"])), 4),
        "oracle_auc": round(float(roc_auc_score(y, merged["true_probability"])), 4),
    }


def demo_report(cfg: Config, as_of: date, generated: Path) -> dict:
    """Return (and save to var/demo_summary.json) what the demo produced."""
    engine = get_engine(cfg)

    def count(table: str) -> int:
        sql = f"SELECT COUNT(*) AS n FROM {table} WHERE as_of_date = :d"
        return int(read_frame(engine, sql, {"d": as_of})["n"][0])

    outbox = cfg.resolve(cfg.paths.outbox_dir) / as_of.isoformat()
    files = {p.name: len(pd.read_csv(p)) for p in sorted(outbox.glob("*.csv"))}
    card = read_frame(
        engine, "SELECT card FROM model_registry WHERE status = 'champion' ORDER BY created_at DESC LIMIT 1"
    )
    metrics = json.loads(card["card"][0])["metrics"] if not card.empty else {}
    summary = {
        "as_of": as_of.isoformat(),
        "warehouse": cfg.warehouse_url,
        "churn_scores_rows": count("churn_scores"),
        "churn_alerts_rows": count("churn_alerts"),
        "outbox": {"folder": str(outbox), "files": files},
        "kpis": read_frame(
            engine,
            "SELECT customers_active_start, customers_lost, churn_rate, lost_revenue, nps, nps_responses "
            "FROM churn_kpis_daily WHERE as_of_date = :d AND segment_type = 'all'",
            {"d": as_of},
        )
        .round(4)
        .to_dict("records"),
        "model": metrics.get("model_kind"),
        "candidates": metrics.get("candidates"),
        "validation_holdout": {
            k: round(metrics[k], 4) for k in ("auc", "recency_auc", "brier", "precision_top10") if k in metrics
        },
        "monitoring": read_frame(
            engine,
            "SELECT status FROM model_monitoring WHERE as_of_date = :d AND metric = 'status'",
            {"d": as_of},
        )["status"].tolist(),
        "against_generator_truth": truth_comparison(cfg, as_of, generated),
    }
    engine.dispose()
    path = cfg.resolve(Path("var/demo_summary.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    return summary
