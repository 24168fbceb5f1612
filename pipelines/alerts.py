"""Turn scores into per-team alert lists: triggers, value at risk, routing, capacity, cooldown, control group.

Per customer and night, in this order:
1. triggers: the model (probability threshold, or the top share of scores) and the rule triggers;
2. suppression: do-not-contact and customers already in a campaign are never listed;
3. cooldown: a customer alerted (sent) within `cooldown_days` is not alerted again unless their risk
   band got worse (recorded with status `cooldown`);
4. control group: a deterministic `control_fraction` of the eligible alerts is held out (status `control`);
5. priority: value at risk (probability x 12-month value) ranks each team's list;
6. capacity: the first `capacity` treated alerts of a team are `sent`, the rest `overflow`.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from models.scoring import CATEGORY, fmt_number
from pipelines.config import Config
from pipelines.errors import ChurnwatchError
from pipelines.publish import swap_folder
from pipelines.safe import safe_cells, safe_name
from pipelines.warehouse import read_bulk, read_frame, replace_partition

# Spreadsheet number formats of the outbox columns (money with two decimals, probability as a percent).
XLSX_FORMATS = {"churn_probability": "0.0%", "value_12m": "#,##0.00", "value_at_risk": "#,##0.00"}

# What a retention team gets: no more personal data than it needs to act.
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
RULE_DRIVER = {
    "dormant_regular": "inactivity",
    "repeat_contacts": "repeat_contacts",
    "detractor_after_complaint": "low_nps",
    "spend_halved": "lower_spend",
    "overdue_regular": "inactivity",
}
FEATURE_COLUMNS = [
    "region",
    "segment",
    "team",
    "do_not_contact",
    "in_campaign",
    "repeat_contacts_90d",
    "contacts_90d",
    "last_nps",
    "complaints_90d",
    "spend_90d",
    "spend_prev_90d",
    "spend_365d",
    "purchases_365d",
    "overdue_ratio",
    "mean_gap_days",
    "days_since_last_purchase",
    "dormant_short",
    "dormant_long",
    "loyalty_type",
    "cancelled",
]
TEXT_COLUMNS = {"region", "segment", "team", "do_not_contact", "loyalty_type"}
NUMERIC = ["churn_probability", "value_12m", "value_at_risk"] + [c for c in FEATURE_COLUMNS if c not in TEXT_COLUMNS]


@dataclass
class AlertSummary:
    as_of: date
    alerts: int
    sent: dict[str, int] = field(default_factory=dict)
    overflow: dict[str, int] = field(default_factory=dict)
    control: dict[str, int] = field(default_factory=dict)
    cooldown: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0
    mode: str = "model"

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "mode": self.mode,
            "alerts": self.alerts,
            "sent": self.sent,
            "overflow": self.overflow,
            "control": self.control,
            "cooldown": self.cooldown,
            "suppressed": self.suppressed,
        }


def rule_text(rule: str, row: pd.Series) -> str:
    """Plain-language text of a rule trigger, with the customer's numbers."""
    if rule == "dormant_regular":
        return (
            f"regular customer, no purchase for {fmt_number(row['days_since_last_purchase'])} days "
            f"(usually every {fmt_number(row['mean_gap_days'])}): worth a reactivation attempt"
        )
    if rule == "repeat_contacts":
        return f"{fmt_number(row['repeat_contacts_90d'])} repeat contacts about the same problem in 90 days"
    if rule == "detractor_after_complaint":
        return f"NPS {fmt_number(row['last_nps'])} after {fmt_number(row['complaints_90d'])} complaint(s)"
    if rule == "spend_halved":
        return f"spent {fmt_number(row['spend_90d'])} in the last 90 days vs {fmt_number(row['spend_prev_90d'])} the 90 before"
    if rule == "overdue_regular":
        return f"regular customer {fmt_number(row['overdue_ratio'], 1)} usual gaps late"
    return rule


def rule_triggers(frame: pd.DataFrame, cfg: Config) -> pd.Series:
    """Return ';'-joined names of the enabled rules that fire for each customer (empty string if none)."""
    r = cfg.alerts.rules
    regular = frame["loyalty_type"].isin(["regular", "long-term"]) if "loyalty_type" in frame else False
    rules = {
        "dormant_regular": regular & (frame.get("dormant_short", 0) == 1) & (frame.get("dormant_long", 0) == 0),
        "repeat_contacts": frame["repeat_contacts_90d"].fillna(0) >= r.repeat_contacts_min,
        "detractor_after_complaint": (frame["last_nps"] <= 6) & (frame["complaints_90d"].fillna(0) >= 1),
        "spend_halved": (frame["spend_prev_90d"] > 0) & (frame["spend_90d"] <= r.spend_drop * frame["spend_prev_90d"]),
        "overdue_regular": (frame["purchases_365d"] >= 6) & (frame["overdue_ratio"] >= r.overdue_ratio),
    }
    names = pd.Series("", index=frame.index, dtype=object)
    for name, mask in rules.items():
        if name in r.enabled:
            hit = pd.Series(mask, index=frame.index).fillna(False).astype(bool).to_numpy()
            names = names + np.where(hit, name + ";", "")
    return names.str.rstrip(";")


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
        # A team from the customer data names a file and a sheet: it passes the one safe-name rule.
        default = cfg.alerts.default_team
        own = frame["team"].map(lambda v: None if v is None or pd.isna(v) else safe_name(v, default))
        team = team.fillna(own)
    return team.fillna(cfg.alerts.default_team).astype(str)


def recommend(frame: pd.DataFrame, cfg: Config) -> pd.Series:
    """Return the playbook action for each alert from its strongest reason and its value."""
    playbook = cfg.alerts.playbook
    first = frame["reason_codes"].fillna("").str.split(";").str[0]
    action = first.map(lambda c: playbook.get(CATEGORY.get(c, ""), playbook["default"]))
    high = frame["value_12m"] >= cfg.alerts.high_value_threshold
    if "high_value" in playbook:
        action = action.where(~high, playbook["high_value"] + " + " + action)
    return action


def in_control(customer_ids: pd.Series, as_of: date, fraction: float) -> pd.Series:
    """Deterministic hold-out: the same customer and date always land on the same side."""
    if fraction <= 0:
        return pd.Series(False, index=customer_ids.index)
    u = customer_ids.map(
        lambda c: int(hashlib.sha256(f"{c}|{as_of.isoformat()}".encode()).hexdigest()[:12], 16) / 16**12
    )
    return u < fraction


def band_rank(bands: pd.Series, cfg: Config) -> pd.Series:
    """Severity of risk bands: higher is worse; unscored bands rank lowest."""
    order = {name: i + 1 for i, (name, _) in enumerate(sorted(cfg.alerts.risk_bands.items(), key=lambda kv: kv[1]))}
    return bands.map(lambda b: order.get(b, 0))


def _candidates(as_of: date, cfg: Config, engine: Engine) -> tuple[pd.DataFrame, str]:
    """Return every customer of as_of with features and, when scored, the model's score and reasons."""
    cols = ", ".join(f"f.{c}" for c in FEATURE_COLUMNS)
    frame = read_bulk(
        engine,
        f"SELECT f.as_of_date, f.customer_id, {cols}, s.churn_probability, s.risk_band, s.value_12m, s.value_at_risk, "
        "s.reason_1, s.reason_2, s.reason_3, s.reason_codes, s.model_version "
        "FROM customer_features f LEFT JOIN churn_scores s "
        "ON s.customer_id = f.customer_id AND s.as_of_date = f.as_of_date WHERE f.as_of_date = :d",
        {"d": as_of},
    )
    frame["as_of_date"] = as_of
    for col in NUMERIC:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    scored = frame["churn_probability"].notna()
    mode = "model" if scored.any() else "rules-only"
    version = frame.loc[scored, "model_version"].iloc[0] if scored.any() else "rules-only"
    # Customers the model does not score: value (not value at risk) ranks them.
    value = frame["spend_365d"].clip(lower=0).fillna(0.0)
    frame["value_12m"] = frame["value_12m"].fillna(value)
    frame["value_at_risk"] = frame["value_at_risk"].fillna(value)
    frame["model_version"] = frame["model_version"].fillna(version)
    dormant = (frame["dormant_short"] == 1) & (frame["dormant_long"] == 0)
    frame["risk_band"] = frame["risk_band"].fillna(
        pd.Series(np.where(dormant, "dormant", "unscored"), index=frame.index)
    )
    if cfg.churn.kind == "contractual":
        still_customer = frame["cancelled"].fillna(0) == 0
    else:
        still_customer = frame["days_since_last_purchase"] < cfg.churn.horizon_days
    # Unscored customers may only be picked by rules, and only if they are still customers or a
    # dormant account worth a reactivation attempt.
    frame["_eligible_rules"] = scored | (still_customer & ~scored & (mode == "rules-only")) | dormant
    return frame, mode


def build_alerts(as_of: date, cfg: Config, engine: Engine) -> AlertSummary:
    """Select, suppress, cool down, hold out, rank, route and cap alerts; replace as_of's churn_alerts."""
    frame, mode = _candidates(as_of, cfg, engine)
    if frame.empty:
        replace_partition(engine, "churn_alerts", pd.DataFrame(), as_of)
        return AlertSummary(as_of, 0, mode=mode)
    a = cfg.alerts
    rules = rule_triggers(frame, cfg).where(frame["_eligible_rules"], "")
    p = frame["churn_probability"]
    model_hit = p >= a.probability_threshold
    if a.top_share and p.notna().any():
        model_hit |= p >= p.quantile(1 - a.top_share)
    frame["triggers"] = [";".join(t for t in (m, r) if t) for m, r in zip(np.where(model_hit, "model", ""), rules)]
    frame = frame[frame["triggers"] != ""].copy()
    # Reasons: the model's own for scored customers; for rule-only alerts, the rules in plain words.
    rule_only = frame["reason_1"].isna()
    if rule_only.any():
        texts: dict[str, list] = {"reason_codes": [], "reason_1": [], "reason_2": [], "reason_3": []}
        for row in frame.loc[rule_only].to_dict("records"):  # records: far faster than row-wise indexing
            fired = [t for t in row["triggers"].split(";") if t != "model"]
            texts["reason_codes"].append(";".join(RULE_DRIVER[t] for t in fired))
            for i in range(3):
                texts[f"reason_{i + 1}"].append(rule_text(fired[i], row) if i < len(fired) else None)
        for col, values in texts.items():
            frame[col] = frame[col].astype(object)
            frame.loc[rule_only, col] = values
    # Suppression: never listed at all.
    blocked = frame["do_not_contact"].fillna(False).astype(bool) | (frame["in_campaign"].fillna(0) == 1)
    suppressed = int(blocked.sum())
    frame = frame[~blocked].copy()
    frame["team"] = route(frame, cfg)
    frame["recommended_action"] = recommend(frame, cfg) if len(frame) else pd.Series(dtype=str)
    frame["reasons"] = [
        "; ".join(x for x in trio if isinstance(x, str) and x)
        for trio in zip(frame["reason_1"], frame["reason_2"], frame["reason_3"])
    ]
    frame["status"] = "eligible"
    frame.loc[_in_cooldown(frame, as_of, cfg, engine), "status"] = "cooldown"
    eligible = frame["status"] == "eligible"
    frame.loc[eligible & in_control(frame["customer_id"], as_of, a.control_fraction), "status"] = "control"
    frame = frame.sort_values(
        ["team", "value_at_risk", "churn_probability", "customer_id"],
        ascending=[True, False, False, True],
        kind="stable",
        na_position="last",
    )
    # team_rank orders every list by priority; capacity counts treated alerts only.
    frame["team_rank"] = frame.groupby("team").cumcount() + 1
    capacity = {t.name: t.capacity for t in a.teams}
    treated = frame["status"] == "eligible"
    treated_rank = treated.astype(int).groupby(frame["team"]).cumsum()
    cap = frame["team"].map(lambda t: capacity.get(t, a.default_capacity))
    frame.loc[treated & (treated_rank <= cap), "status"] = "sent"
    frame.loc[treated & (treated_rank > cap), "status"] = "overflow"
    replace_partition(engine, "churn_alerts", frame, as_of)
    summary = AlertSummary(as_of, len(frame), suppressed=suppressed, mode=mode)
    for (team, status), n in frame.groupby(["team", "status"]).size().items():
        getattr(summary, status)[team] = int(n)
    return summary


def _in_cooldown(frame: pd.DataFrame, as_of: date, cfg: Config, engine: Engine) -> pd.Series:
    """Customers sent an alert in the cooldown window whose risk band has not worsened since."""
    days = cfg.alerts.cooldown_days
    if days <= 0 or frame.empty:
        return pd.Series(False, index=frame.index)
    recent = read_frame(
        engine,
        "SELECT customer_id, risk_band, as_of_date FROM churn_alerts "
        "WHERE status = 'sent' AND as_of_date >= :a AND as_of_date < :d",
        {"a": as_of - timedelta(days=days), "d": as_of},
    )
    if recent.empty:
        return pd.Series(False, index=frame.index)
    last = recent.sort_values("as_of_date").groupby("customer_id")["risk_band"].last()
    before = frame["customer_id"].map(last)
    worse = band_rank(frame["risk_band"], cfg) > band_rank(before.fillna(""), cfg)
    return before.notna() & ~worse


def _write_xlsx(frame: pd.DataFrame, path: Path, team: str, as_of: date) -> None:
    """One sheet per team list: bold header that stays in view, filter, number formats, readable widths.

    Every text cell is written as a string, never a formula, whatever it starts with.
    """
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    sheet_name = safe_name(team, "alerts")[:31]
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        frame.to_excel(writer, index=False, sheet_name=sheet_name)
        sheet = writer.sheets[sheet_name]
        for row in sheet.iter_rows(min_row=2):
            for cell in row:
                if isinstance(cell.value, str):
                    cell.data_type = "s"
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = sheet.dimensions
        for i, col in enumerate(frame.columns, start=1):
            width = max([len(str(col))] + [len(str(v)) for v in frame[col].head(200)])
            letter = get_column_letter(i)
            sheet.column_dimensions[letter].width = min(max(10, width + 2), 80)
            number_format = XLSX_FORMATS.get(col)
            if number_format:
                for (cell,) in sheet.iter_rows(min_row=2, min_col=i, max_col=i):
                    cell.number_format = number_format
        writer.book.properties.title = f"churnwatch {team} {as_of.isoformat()}"


def _outbox_name(folder: Path, team: str) -> str:
    """Return the file stem of a team's list; refuse anything that would leave the day's folder."""
    name = safe_name(team, "")
    if not name or name != team or (folder / name).resolve().parent != folder.resolve():
        raise ChurnwatchError(f"churn_alerts holds team {team!r}, which is not a safe file name; re-run build_alerts")
    return name


def publish_outbox(as_of: date, cfg: Config, engine: Engine) -> dict:
    """Write outbox/<as_of>/<team>.csv and .xlsx (sent alerts, highest priority first), replacing the day whole."""
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
            out["team_rank"] = range(1, len(out) + 1)
            out["churn_probability"] = pd.to_numeric(out["churn_probability"]).round(3)
            out["value_at_risk"] = pd.to_numeric(out["value_at_risk"]).round(2)
            out["value_12m"] = pd.to_numeric(out["value_12m"]).round(2)
            name = _outbox_name(staging, str(team))
            if "csv" in cfg.alerts.outbox_formats:
                # Every text field quoted, so a line break or carriage return inside one cannot split a row.
                safe_cells(out).to_csv(staging / f"{name}.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
            if "xlsx" in cfg.alerts.outbox_formats:
                _write_xlsx(out, staging / f"{name}.xlsx", name, as_of)
            files[name] = len(out)
        swap_folder(staging, target, *cfg.paths.modes)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"as_of": as_of.isoformat(), "folder": str(target), "files": files}
