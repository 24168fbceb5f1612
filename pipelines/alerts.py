"""Turn scores into per-team alert lists: triggers, value at risk, routing, capacity, playbook, outbox."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from pipelines.config import Config
from pipelines.warehouse import read_frame, replace_partition

OUTBOX_COLUMNS = [
    "team_rank",
    "customer_id",
    "churn_probability",
    "risk_band",
    "value_12m",
    "value_at_risk",
    "reasons",
    "recommended_action",
    "triggers",
]


@dataclass
class AlertSummary:
    as_of: date
    alerts: int
    sent: dict[str, int] = field(default_factory=dict)
    overflow: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0
    mode: str = "model"

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "mode": self.mode,
            "alerts": self.alerts,
            "sent": self.sent,
            "overflow": self.overflow,
            "suppressed": self.suppressed,
        }


def rule_triggers(frame: pd.DataFrame, cfg: Config) -> pd.Series:
    """Return ';'-joined rule names that fire for each customer (empty string if none)."""
    rules = {
        "repeat_contacts": frame["repeat_contacts_90d"].fillna(0) >= 2,
        "detractor_after_complaint": (frame["last_nps"] <= 6) & (frame["complaints_90d"].fillna(0) >= 1),
        "spend_halved": (frame["spend_prev_90d"] > 0) & (frame["spend_90d"] <= 0.5 * frame["spend_prev_90d"]),
        "overdue_regular": (frame["purchases_365d"] >= 6) & (frame["overdue_ratio"] >= 3),
    }
    fired = pd.DataFrame({k: v.fillna(False).astype(bool) for k, v in rules.items()})
    return fired.apply(lambda r: ";".join(k for k, v in r.items() if v), axis=1) if len(fired) else pd.Series(dtype=str)


RULE_TEXT = {
    "repeat_contacts": "repeat contacts about the same problem",
    "detractor_after_complaint": "detractor NPS answer after a complaint",
    "spend_halved": "spend down by half against the previous 90 days",
    "overdue_regular": "regular customer far past their usual purchase gap",
}
RULE_DRIVER = {
    "repeat_contacts": "repeat_contacts",
    "detractor_after_complaint": "low_nps",
    "spend_halved": "lower_spend",
    "overdue_regular": "inactivity",
}
FEATURE_COLUMNS = (
    "region, segment, team, do_not_contact, repeat_contacts_90d, last_nps, complaints_90d, spend_90d, "
    "spend_prev_90d, spend_365d, purchases_365d, overdue_ratio, days_since_last_purchase"
)


def _alert_candidates(as_of: date, cfg: Config, engine: Engine) -> tuple[pd.DataFrame, str]:
    """Return scored customers with their features, or (cold start, no scores) customers with features only."""
    scored = read_frame(
        engine,
        "SELECT s.*, " + ", ".join(f"f.{c.strip()}" for c in FEATURE_COLUMNS.split(",")) + " "
        "FROM churn_scores s JOIN customer_features f "
        "ON f.customer_id = s.customer_id AND f.as_of_date = s.as_of_date WHERE s.as_of_date = :d",
        {"d": as_of},
    )
    if not scored.empty:
        return scored, "model"
    # Cold start: no champion model yet. Rules alone pick customers; value (not value at risk) ranks them.
    still_customer = (
        "COALESCE(cancelled, 0) = 0" if cfg.churn.kind == "contractual" else "days_since_last_purchase < :h"
    )
    frame = read_frame(
        engine,
        f"SELECT as_of_date, customer_id, {FEATURE_COLUMNS} FROM customer_features "
        f"WHERE as_of_date = :d AND {still_customer}",
        {"d": as_of, "h": cfg.churn.horizon_days},
    )
    frame["churn_probability"] = np.nan
    frame["risk_band"] = "unscored"
    frame["value_12m"] = pd.to_numeric(frame["spend_365d"], errors="coerce").clip(lower=0).fillna(0.0)
    frame["value_at_risk"] = frame["value_12m"]
    frame["model_version"] = "rules-only"
    return frame, "rules-only"


def route(frame: pd.DataFrame, cfg: Config) -> pd.Series:
    """Return the team of each customer: first matching rule, then the customer's own team, then default."""
    team = pd.Series(pd.NA, index=frame.index, dtype="object")
    for rule in cfg.alerts.teams:
        match = pd.Series(True, index=frame.index)
        if rule.regions:
            match &= frame["region"].isin(rule.regions)
        if rule.segments:
            match &= frame["segment"].isin(rule.segments)
        if rule.min_value is not None:
            match &= frame["value_12m"] >= rule.min_value
        team = team.where(team.notna() | ~match, rule.name)
    if "team" in frame:
        team = team.fillna(frame["team"])
    return team.fillna(cfg.alerts.default_team).astype(str)


def recommend(frame: pd.DataFrame, cfg: Config) -> pd.Series:
    """Return the playbook action for each alert from its strongest reason and its value."""
    from models.scoring import CATEGORY

    playbook = cfg.alerts.playbook
    first = frame["reason_codes"].fillna("").str.split(";").str[0]
    action = first.map(lambda c: playbook.get(CATEGORY.get(c, ""), playbook["default"]))
    high = frame["value_12m"] >= cfg.alerts.high_value_threshold
    if "high_value" in playbook:
        action = action.where(~high, playbook["high_value"] + " + " + action)
    return action


def build_alerts(as_of: date, cfg: Config, engine: Engine) -> AlertSummary:
    """Select, rank, route and cap alerts for as_of; replace that date's churn_alerts partition."""
    frame, mode = _alert_candidates(as_of, cfg, engine)
    if frame.empty:
        replace_partition(engine, "churn_alerts", pd.DataFrame(), as_of)
        return AlertSummary(as_of, 0, mode=mode)
    for col in (
        "churn_probability",
        "value_12m",
        "value_at_risk",
        "repeat_contacts_90d",
        "last_nps",
        "complaints_90d",
        "spend_90d",
        "spend_prev_90d",
        "purchases_365d",
        "overdue_ratio",
    ):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    rules = rule_triggers(frame, cfg)
    model_hit = frame["churn_probability"] >= cfg.alerts.probability_threshold
    triggers = np.where(model_hit, "model", "")
    frame["triggers"] = [";".join(t for t in (m, r) if t) for m, r in zip(triggers, rules)]
    frame = frame[frame["triggers"] != ""].copy()
    if mode == "rules-only":
        fired = frame["triggers"].str.split(";")
        frame["reason_codes"] = fired.map(lambda rs: ";".join(RULE_DRIVER[r] for r in rs))
        for i in range(3):
            frame[f"reason_{i + 1}"] = fired.map(lambda rs, i=i: RULE_TEXT[rs[i]] if i < len(rs) else None)
    dnc = frame["do_not_contact"].fillna(False).astype(bool)
    suppressed = int(dnc.sum())
    frame = frame[~dnc].copy()
    frame["team"] = route(frame, cfg)
    frame["recommended_action"] = recommend(frame, cfg)
    frame["reasons"] = (
        frame[["reason_1", "reason_2", "reason_3"]].apply(
            lambda r: "; ".join(x for x in r if isinstance(x, str) and x), axis=1
        )
        if len(frame)
        else pd.Series(dtype=str)
    )
    frame = frame.sort_values(
        ["team", "value_at_risk", "churn_probability", "customer_id"],
        ascending=[True, False, False, True],
        kind="stable",
    )
    frame["team_rank"] = frame.groupby("team").cumcount() + 1
    capacity = {t.name: t.capacity for t in cfg.alerts.teams}
    cap = frame["team"].map(lambda t: capacity.get(t, cfg.alerts.default_capacity))
    frame["status"] = np.where(frame["team_rank"] <= cap, "sent", "overflow")
    replace_partition(engine, "churn_alerts", frame, as_of)
    counts = frame.groupby(["team", "status"]).size()
    summary = AlertSummary(as_of, len(frame), suppressed=suppressed, mode=mode)
    for (team, status), n in counts.items():
        getattr(summary, status)[team] = int(n)
    return summary


def publish_outbox(as_of: date, cfg: Config, engine: Engine) -> dict:
    """Write outbox/<as_of>/<team>.csv (sent alerts, highest priority first), replacing the folder whole."""
    alerts = read_frame(
        engine,
        "SELECT * FROM churn_alerts WHERE as_of_date = :d AND status = 'sent' ORDER BY team, team_rank",
        {"d": as_of},
    )
    root = cfg.resolve(cfg.paths.outbox_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / as_of.isoformat()
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{as_of.isoformat()}."))
    files = {}
    try:
        for team, part in alerts.groupby("team", sort=True):
            out = part[OUTBOX_COLUMNS].copy()
            out["churn_probability"] = pd.to_numeric(out["churn_probability"]).round(3)
            out["value_at_risk"] = pd.to_numeric(out["value_at_risk"]).round(2)
            out["value_12m"] = pd.to_numeric(out["value_12m"]).round(2)
            path = staging / f"{team}.csv"
            out.to_csv(path, index=False)
            files[str(team)] = len(out)
        # Swap folders so readers never see a half-written day.
        old = None
        if target.exists():
            old = root / f".{as_of.isoformat()}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(staging, target)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"as_of": as_of.isoformat(), "folder": str(target), "files": files}
