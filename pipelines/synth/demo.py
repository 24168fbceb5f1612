"""What the demo leaves, checked against the generator's truth."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pipelines.core.config import Config
from pipelines.core.warehouse import get_engine, read_frame
from pipelines.deliver.outreach import import_outcomes
from pipelines.features.customer_features import numeric_features
from pipelines.steps import run_step
from pipelines.synth.generate import oracle_probability
from pipelines.synth.outreach import apply_outreach, judge_uplift

# The demo's past: alert nights every REPLAY_EVERY days, the last one a horizon before the demo's day. With
# 450 days of data the first night's model (trained the day before) has just enough history for its cutoffs
# and one selection fold.
REPLAY_NIGHTS = 8
REPLAY_EVERY = 7


def replay_nights(cfg: Config, as_of: date, generated: Path, seed: int) -> list[date]:
    """Replay past alert nights with simulated calls and imported outcomes; return the nights.

    The history must be loaded up to the first night (the day before it is the model's training date).
    Night by night: load the week's landing files, build features, score, estimate uplift, build the lists,
    call the sent customers (pipelines.synth.outreach.apply_outreach changes only days after the night) and
    import what the teams report. The landing files are then loaded up to the day before as_of.
    """
    horizon = cfg.churn.horizon_days
    nights = [as_of - timedelta(days=horizon + REPLAY_EVERY * k) for k in range(REPLAY_NIGHTS - 1, -1, -1)]
    landing = cfg.resolve(cfg.sources.landing_dir)
    run_step("train_model", nights[0] - timedelta(days=1), cfg=cfg)
    loaded = nights[0]
    for night in nights:
        _load(cfg, loaded, night)
        loaded = night
        for step in ("build_features", "score_customers", "estimate_uplift", "build_alerts"):
            run_step(step, night, cfg=cfg)
        engine = get_engine(cfg)
        sent = read_frame(
            engine, "SELECT customer_id FROM churn_alerts WHERE as_of_date = :d AND status = 'sent'", {"d": night}
        )["customer_id"]
        apply_outreach(generated, landing, night, sent, seed)
        path = cfg.resolve(Path("var/demo_outcomes")) / f"{night.isoformat()}.csv"
        _team_report(sent, night, generated, seed).to_csv(_folder(path), index=False)
        import_outcomes(path, cfg, engine)
        engine.dispose()
    _load(cfg, loaded, as_of - timedelta(days=1))
    return nights


def _folder(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _load(cfg: Config, after: date, until: date) -> None:
    """Load and validate the landing days after `after` up to `until`."""
    if until > after:
        since = after + timedelta(days=1)
        run_step("load_landing", until, cfg=cfg, since=since)
        run_step("validate_data", until, cfg=cfg, since=since)


def _team_report(sent: pd.Series, night: date, generated: Path, seed: int) -> pd.DataFrame:
    """Return what the teams report for the night's calls: the customers a call kept say they stay."""
    calls = pd.read_csv(generated / "truth" / "outreach_calls.csv", dtype={"customer_id": str})
    kept = set(calls.loc[(calls["as_of_date"] == night.isoformat()) & calls["saved"], "customer_id"])
    rng = np.random.default_rng(seed + night.toordinal())
    other = rng.choice(["declined", "no_answer", "retained"], len(sent), p=[0.5, 0.3, 0.2])
    return pd.DataFrame(
        {
            "customer_id": sent.to_numpy(),
            "alert_date": night.isoformat(),
            "contacted": "yes",
            "offer": "service call",
            "result": np.where(sent.isin(kept).to_numpy(), "retained", other),
        }
    )


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


def uplift_summary(cfg: Config, as_of: date, generated: Path) -> dict:
    """Return the ranking that produced tonight's lists and how it fares against the generator's truth."""
    engine = get_engine(cfg)
    runs = read_frame(
        engine,
        "SELECT message FROM pipeline_runs WHERE as_of_date = :d AND step = 'build_alerts' AND status = 'ok' "
        "ORDER BY finished_at DESC LIMIT 1",
        {"d": as_of},
    )
    alerts = json.loads(runs["message"].iloc[0]) if len(runs) else {}
    judged = judge_uplift(cfg, engine, as_of, generated, cfg.resolve(cfg.sources.landing_dir))
    engine.dispose()
    return {"ranking": alerts.get("ranking"), "ranking_note": alerts.get("ranking_note"), **judged}


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
        "uplift": uplift_summary(cfg, as_of, generated),
    }
    engine.dispose()
    path = cfg.resolve(Path("var/demo_summary.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    return summary
