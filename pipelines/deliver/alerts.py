"""Turn scores into per-team alert lists: triggers, value at risk, routing, capacity, cooldown, control group.

Per customer and night, in this order:
1. triggers: the model (probability threshold, or the top share of scores) and the rule triggers;
2. suppression: do-not-contact and customers already in a campaign are never listed;
3. cooldown: a customer alerted (sent) within `cooldown_days` is not alerted again unless their risk
   band got worse (recorded with status `cooldown`);
4. control group: a deterministic `control_fraction` of the eligible alerts is held out (status `control`);
   a customer held out stays held out until that alert's horizon has passed (no later call blurs it);
5. two lists per team: `prevention` (customers still active: the model's scores, or rules on a
   cold start) ranked by value at risk (probability x expected spend over `value.period_days` if kept,
   models/spend.py), or with `alerts.ranking: expected_value_saved` and enough matured evidence by
   probability x uplift of the profile x that expected spend (models/uplift.py), and `reactivation`
   (dormant accounts the model does not score, 3-6 months quiet) ranked by the 12-month value a win-back
   restores; each alert names its ranking (`ranking`);
6. capacity: the first `capacity` (`reactivation_capacity`) treated alerts of each list are `sent`,
   the rest `overflow`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from models.reasons import rule_text, worded_once
from models.uplift import choose_ranking, profile_of, read_estimates, reason_category, uplift_of
from pipelines.core.config import Config
from pipelines.core.safe import safe_name
from pipelines.core.warehouse import read_bulk, read_frame, replace_partition, sql_text
from pipelines.features.population import customer_value, still_customer

LISTS = ("prevention", "reactivation")
# Rule -> the driver whose reason it gives, in the order their reasons are listed.
RULE_DRIVER = {
    "dormant_regular": "inactivity",
    "overdue_regular": "inactivity",
    "repeat_contacts": "repeat_contacts",
    "detractor_after_complaint": "low_nps",
    "spend_halved": "lower_spend",
}
# The numbers each rule's text quotes (models.reasons.rule_text), all as whole numbers.
RULE_INPUTS = {
    "dormant_regular": ("days_since_last_purchase", "mean_gap_days"),
    "overdue_regular": ("days_since_last_purchase", "mean_gap_days", "overdue_ratio"),
    "repeat_contacts": ("repeat_contacts_90d",),
    "detractor_after_complaint": ("last_nps", "complaints_90d"),
    "spend_halved": ("spend_90d", "spend_prev_90d"),
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
NUMERIC = ["churn_probability", "value_12m", "value_at_risk", "expected_value"] + [
    c for c in FEATURE_COLUMNS if c not in TEXT_COLUMNS
]
# The rankings a list can be ordered by (churn_alerts.ranking), in words for the report.
RANKINGS = {
    "value_at_risk": "value at risk = P(churn) × expected spend over the next {period} days if kept",
    "value_12m": "12-month value (trailing spend; no churn probability to weigh it by)",
    "expected_value_saved": "expected value saved = P(churn) × measured uplift of the customer's profile × "
    "expected spend over the next {period} days if kept",
}


def describe_ranking(ranking: str, cfg: Config) -> str:
    """Return the ranking's name in words (the name itself if unknown)."""
    return RANKINGS.get(ranking, ranking).format(period=cfg.value.period_days)


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
    ranking: dict[str, str] = field(default_factory=dict)  # list name -> the ranking that ordered it
    ranking_note: str = ""  # why the prevention lists have their ranking (uplift evidence or its lack)

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "mode": self.mode,
            "ranking": self.ranking,
            "ranking_note": self.ranking_note,
            "alerts": self.alerts,
            "sent": self.sent,
            "overflow": self.overflow,
            "control": self.control,
            "cooldown": self.cooldown,
            "suppressed": self.suppressed,
        }


def rule_masks(frame: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Return one boolean column per enabled rule: whether it fires for each customer."""
    r = cfg.alerts.rules
    regular = frame["loyalty_type"].isin(["regular", "long-term"]) if "loyalty_type" in frame else False
    rules = {
        "dormant_regular": regular & (frame.get("dormant_short", 0) == 1) & (frame.get("dormant_long", 0) == 0),
        "repeat_contacts": frame["repeat_contacts_90d"].fillna(0) >= r.repeat_contacts_min,
        "detractor_after_complaint": (frame["last_nps"] <= 6) & (frame["complaints_90d"].fillna(0) >= 1),
        "spend_halved": (frame["spend_prev_90d"] > 0) & (frame["spend_90d"] <= r.spend_drop * frame["spend_prev_90d"]),
        "overdue_regular": (frame["purchases_365d"] >= 6) & (frame["overdue_ratio"] >= r.overdue_ratio),
    }
    return pd.DataFrame(
        {
            name: pd.Series(mask, index=frame.index).fillna(False).astype(bool).to_numpy()
            for name, mask in rules.items()
            if name in r.enabled
        },
        index=frame.index,
    )


def rule_triggers(frame: pd.DataFrame, cfg: Config) -> pd.Series:
    """Return ';'-joined names of the enabled rules that fire for each customer (empty string if none)."""
    return joined(rule_masks(frame, cfg), ";")


def joined(parts: pd.DataFrame, sep: str, dedupe: bool = False) -> pd.Series:
    """Return, per row, the names of its True columns (bool columns) or its non-empty texts (text columns),
    joined by sep in column order; with dedupe a text equal to an earlier one of the row is left out."""
    n = len(parts)
    out = np.full(n, "", dtype=object)
    seen: list[np.ndarray] = []
    for name in parts.columns:
        values = parts[name].to_numpy()
        if values.dtype == bool:
            use, part = values, np.full(n, name, dtype=object)
        else:
            use = np.fromiter((isinstance(v, str) and v != "" for v in values), bool, n)
            part = np.where(use, values, "")
            for earlier in seen if dedupe else ():
                use &= part != earlier
            seen.append(part)
        at = np.flatnonzero(use)  # joined only where a part is added: a string per row costs
        out[at] = np.where(out[at] == "", part[at], out[at] + sep + part[at])
    return pd.Series(out, index=parts.index, dtype=object)


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
        names = {v: safe_name(v, default) for v in frame["team"].dropna().unique()}  # once per distinct team
        own = frame["team"].map(names)
        team = team.fillna(own)
    return team.fillna(cfg.alerts.default_team).astype(str)


def recommend(frame: pd.DataFrame, cfg: Config) -> pd.Series:
    """Return the playbook action of each alert: it follows the strongest reason and the triggers.

    Reactivation lists get the reactivation play; a service trigger (repeat contacts, a detractor after
    a complaint) asks for a service call whatever the model ranks first; otherwise the category of the
    first reason decides. High-value customers get an account review on top.
    """
    playbook = cfg.alerts.playbook
    category = categories(frame).replace("other", "")
    category = category.where(frame["list_name"] != "reactivation", "reactivation")
    plays = {
        c: playbook.get(c, playbook.get("inactivity" if c == "reactivation" else c, "")) for c in category.unique()
    }
    action = category.map(plays)
    action = action.where(action != "", playbook["default"])
    high = frame["value_12m"] >= cfg.alerts.high_value_threshold
    if "high_value" in playbook:
        action = action.where(~high, playbook["high_value"] + " + " + action)
    return action


def in_control(customer_ids: pd.Series, as_of: date, fraction: float) -> pd.Series:
    """Deterministic hold-out: the same customer and date always land on the same side."""
    if fraction <= 0:
        return pd.Series(False, index=customer_ids.index)
    day = as_of.isoformat()
    u = [int(hashlib.sha256(f"{c}|{day}".encode()).hexdigest()[:12], 16) / 16**12 for c in customer_ids]
    return pd.Series(np.asarray(u, dtype=float) < fraction, index=customer_ids.index)


def categories(frame: pd.DataFrame) -> pd.Series:
    """Return each alert's reason category (models.uplift.reason_category), kept in `_category` once computed."""
    if "_category" not in frame:
        frame["_category"] = reason_category(frame["reason_codes"], frame["triggers"])
    return frame["_category"]


def band_rank(bands: pd.Series, cfg: Config) -> pd.Series:
    """Severity of risk bands: higher is worse; unscored bands rank lowest."""
    order = {name: i + 1 for i, (name, _) in enumerate(sorted(cfg.alerts.risk_bands.items(), key=lambda kv: kv[1]))}
    return bands.map(lambda b: order.get(b, 0))


def _candidates(as_of: date, cfg: Config, engine: Engine) -> tuple[pd.DataFrame, str]:
    """Return the customers of as_of an alert may pick (every one on a night without scores; else the
    scored and the dormant ones) with features and, when scored, the model's score and reasons."""
    # The placeholder is filled from the code constant only, never from configuration or data.
    cols = ", ".join(f"f.{c}" for c in FEATURE_COLUMNS)
    sql = sql_text("deliver/alert_candidates.sql").replace("{feature_columns}", cols)
    # A night with scores reads only the customers the model scored and the dormant ones: the rest are
    # never eligible below. Through Arrow (text=True): a third of the time, most columns being text.
    has_scores = read_frame(engine, "SELECT 1 AS x FROM churn_scores WHERE as_of_date = :d LIMIT 1", {"d": as_of})
    frame = read_bulk(engine, sql, {"d": as_of, "everyone": int(has_scores.empty)}, text=True)
    frame["as_of_date"] = as_of
    for col in NUMERIC:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    scored = frame["churn_probability"].notna()
    mode = "model" if scored.any() else "rules-only"
    version = frame.loc[scored, "model_version"].iloc[0] if scored.any() else "rules-only"
    # Customers the model does not score have no value at risk; their 12-month value ranks them.
    frame["value_12m"] = frame["value_12m"].fillna(customer_value(frame))
    frame["priority_value"] = frame["value_at_risk"].fillna(frame["value_12m"])
    frame["ranking"] = np.where(frame["value_at_risk"].notna(), "value_at_risk", "value_12m")
    frame["model_version"] = frame["model_version"].fillna(version)
    dormant = (frame["dormant_short"] == 1) & (frame["dormant_long"] == 0)
    frame["list_name"] = np.where(dormant & ~scored, "reactivation", "prevention")
    frame["risk_band"] = frame["risk_band"].fillna(
        pd.Series(np.where(dormant, "dormant", "unscored"), index=frame.index)
    )
    # Unscored customers may only be picked by rules, and only if they are still customers or a
    # dormant account worth a reactivation attempt.
    still = still_customer(frame, cfg)
    frame["_eligible_rules"] = scored | (still & ~scored & (mode == "rules-only")) | dormant
    return frame, mode


def build_alerts(as_of: date, cfg: Config, engine: Engine) -> AlertSummary:
    """Select, suppress, cool down, hold out, rank, route and cap alerts; replace as_of's churn_alerts.

    Step build_alerts. SQL: sql/deliver/alert_candidates.sql, sql/deliver/alerts_recently_sent.sql.
    Tests: tests/deliver/test_alerts.py, tests/ingest/test_hostile.py (safe team names).
    Doc: docs/deliver.md.
    """
    frame, mode = _candidates(as_of, cfg, engine)
    if frame.empty:
        replace_partition(engine, "churn_alerts", pd.DataFrame(), as_of)
        return AlertSummary(as_of, 0, mode=mode)
    a = cfg.alerts
    masks = rule_masks(frame, cfg)
    eligible = frame["_eligible_rules"].to_numpy(bool)[:, None]
    fired = pd.DataFrame(masks.to_numpy(bool) & eligible, index=frame.index, columns=masks.columns)
    p = frame["churn_probability"]
    model_hit = p >= a.probability_threshold
    if a.top_share and p.notna().any():
        model_hit |= p >= p.quantile(1 - a.top_share)
    # Only customers something fired for are kept (a fifth of a large base).
    model_hit = model_hit.fillna(False).astype(bool)
    hit = (model_hit | fired.any(axis=1)).to_numpy()
    frame, fired = frame[hit].copy(), fired[hit]
    frame["triggers"] = joined(pd.concat([model_hit[hit].rename("model"), fired], axis=1), ";")
    _add_rule_reasons(frame, fired, cfg)
    # Suppression: never listed at all.
    blocked = frame["do_not_contact"].fillna(False).astype(bool) | (frame["in_campaign"].fillna(0) == 1)
    suppressed = int(blocked.sum())
    frame = frame[~blocked].copy()
    frame["team"] = route(frame, cfg)
    frame["recommended_action"] = recommend(frame, cfg) if len(frame) else pd.Series(dtype=str)
    frame["reasons"] = joined(frame[["reason_1", "reason_2", "reason_3", "_rule_reasons"]], "; ", dedupe=True)
    frame["status"] = "eligible"
    frame.loc[_in_cooldown(frame, as_of, cfg, engine), "status"] = "cooldown"
    eligible = frame["status"] == "eligible"
    held = in_control(frame["customer_id"], as_of, a.control_fraction) | _held_out(frame, as_of, cfg, engine)
    frame.loc[eligible & held, "status"] = "control"
    ranking_note = _rank_by_uplift(frame, as_of, cfg, engine)
    frame = frame.sort_values(
        ["team", "list_name", "priority_value", "churn_probability", "customer_id"],
        ascending=[True, True, False, False, True],
        kind="stable",
        na_position="last",
    )
    # team_rank orders each list by priority; capacity counts treated alerts only, per list.
    lists = [frame["team"], frame["list_name"]]
    frame["team_rank"] = frame.groupby(lists).cumcount() + 1
    treated = frame["status"] == "eligible"
    treated_rank = treated.astype(int).groupby(lists).cumsum()
    pairs = frame[["team", "list_name"]].drop_duplicates()
    pairs["cap"] = [list_capacity(cfg, *pair) for pair in zip(pairs["team"], pairs["list_name"])]
    cap = frame[["team", "list_name"]].merge(pairs, how="left")["cap"].to_numpy()
    frame.loc[treated & (treated_rank <= cap), "status"] = "sent"
    frame.loc[treated & (treated_rank > cap), "status"] = "overflow"
    replace_partition(engine, "churn_alerts", frame, as_of)
    summary = AlertSummary(as_of, len(frame), suppressed=suppressed, mode=mode, ranking_note=ranking_note)
    summary.ranking = {n: ";".join(sorted(set(r))) for n, r in frame.groupby("list_name")["ranking"]}
    for (team, status), n in frame.groupby(["team", "status"]).size().items():
        getattr(summary, status)[team] = int(n)
    return summary


def _rank_by_uplift(frame: pd.DataFrame, as_of: date, cfg: Config, engine: Engine) -> str:
    """Give prevention alerts their uplift profile and estimate; rank by expected value saved when chosen and
    the evidence suffices (their `ranking` then says so). Return the sentence that says which ranking and why."""
    prevention = frame["list_name"] == "prevention"
    frame["uplift_profile"] = profile_of(categories(frame), frame["risk_band"])
    frame.loc[~prevention, "uplift_profile"] = None
    estimates = read_estimates(as_of, engine)
    frame["uplift"] = uplift_of(estimates, frame["uplift_profile"]).where(prevention)
    ranking, note = choose_ranking(estimates, cfg)
    if ranking == "expected_value_saved":
        scored = prevention & frame["churn_probability"].notna()
        saved = frame["churn_probability"] * frame["uplift"].clip(lower=0) * frame["expected_value"]
        scored &= saved.notna()
        frame.loc[scored, "priority_value"] = saved[scored]
        frame.loc[scored, "ranking"] = "expected_value_saved"
    return note


def _held_out(frame: pd.DataFrame, as_of: date, cfg: Config, engine: Engine) -> pd.Series:
    """Customers drawn into the control group within the last horizon: they stay held out until it has passed."""
    if frame.empty or cfg.alerts.control_fraction <= 0:
        return pd.Series(False, index=frame.index)
    since = as_of - timedelta(days=cfg.churn.horizon_days)
    held = read_frame(engine, sql_text("deliver/alerts_held_out.sql"), {"a": since, "d": as_of})
    # Only the night a customer was drawn counts: a held-out row carried over does not start a new horizon.
    drawn = [
        part["customer_id"][in_control(part["customer_id"], pd.Timestamp(day).date(), cfg.alerts.control_fraction)]
        for day, part in held.groupby("as_of_date")
    ]
    return frame["customer_id"].isin(pd.concat(drawn) if drawn else [])


def list_capacity(cfg: Config, team: str, list_name: str) -> int:
    """Return how many alerts of a team's list are sent each night (its capacity)."""
    a = cfg.alerts
    rule = next((t for t in a.teams if t.name == team), None)
    if list_name == "reactivation":
        own = rule.reactivation_capacity if rule is not None else None
        return own if own is not None else a.reactivation_capacity
    return rule.capacity if rule is not None else a.default_capacity


def _add_rule_reasons(frame: pd.DataFrame, fired: pd.DataFrame, cfg: Config) -> None:
    """Give every fired rule its reason: the whole text of rule-only alerts, and for scored customers the
    rule's reason where the model's reasons do not already say it (a spend_halved trigger names the spend).

    fired: the rule_masks of the frame's rows. Rule-only alerts (no model reason) get one reason per driver,
    inactivity first (what a reactivation call opens with), then service, then spend: two inactivity rules
    would otherwise say the same thing twice. Column-wise: at 200k alerts a loop over rows cost seconds.
    """
    rule_only = frame["reason_1"].isna().to_numpy()
    rules = [r for r in RULE_DRIVER if r in fired.columns]
    text = {r: _rule_texts(r, frame, fired[r].to_numpy(), cfg.alerts.currency) for r in rules}
    codes = ";" + frame["reason_codes"].fillna("").astype(str) + ";"
    extra = {}
    for r in rules:  # scored: the rules whose driver the model's reasons do not name
        named = codes.str.contains(f";{RULE_DRIVER[r]};", regex=False).to_numpy()
        extra[r] = np.where(fired[r].to_numpy() & ~rule_only & ~named, text[r], None)
    added = joined(pd.DataFrame(extra, index=frame.index), "; ", dedupe=True)
    frame["_rule_reasons"] = added.where(added != "", None)
    if not rule_only.any():
        return
    by_driver: dict[str, np.ndarray] = {}  # driver -> the text of its first fired rule
    for r in rules:
        t = by_driver.setdefault(RULE_DRIVER[r], np.full(len(frame), None, dtype=object))
        take = fired[r].to_numpy() & rule_only & pd.isna(t)
        t[take] = text[r][take]
    drivers = pd.DataFrame({d: ~pd.isna(t) for d, t in by_driver.items()}, index=frame.index)
    position = drivers.cumsum(axis=1)
    frame["reason_codes"] = frame["reason_codes"].astype(object)
    frame.loc[rule_only, "reason_codes"] = joined(drivers, ";")[rule_only]
    for k in (1, 2, 3):
        kth = np.full(len(frame), None, dtype=object)
        for d, t in by_driver.items():
            kth = np.where(drivers[d].to_numpy() & (position[d].to_numpy() == k), t, kth)
        frame[f"reason_{k}"] = frame[f"reason_{k}"].astype(object)
        frame.loc[rule_only, f"reason_{k}"] = kth[rule_only]


def _rule_texts(rule: str, frame: pd.DataFrame, fired: np.ndarray, currency: str) -> np.ndarray:
    """Return the rule's text for the rows it fired for (None elsewhere).

    A rule quotes whole numbers only, so each distinct combination of its rounded inputs is worded once."""
    out = np.full(len(frame), None, dtype=object)
    if not fired.any():
        return out
    cols = [c for c in RULE_INPUTS[rule] if c in frame.columns]
    # Rounded first: the texts quote whole numbers only, so rounded inputs give the same words, once.
    numbers = {c: np.round(pd.to_numeric(frame[c], errors="coerce").to_numpy(float)[fired]) for c in cols}
    inputs = pd.DataFrame(numbers, index=range(int(fired.sum())))
    out[fired] = worded_once(lambda row: rule_text(rule, row, currency), inputs)
    return out


def _in_cooldown(frame: pd.DataFrame, as_of: date, cfg: Config, engine: Engine) -> pd.Series:
    """Customers sent an alert in the cooldown window whose risk band has not worsened since."""
    days = cfg.alerts.cooldown_days
    if days <= 0 or frame.empty:
        return pd.Series(False, index=frame.index)
    recent = read_frame(
        engine, sql_text("deliver/alerts_recently_sent.sql"), {"a": as_of - timedelta(days=days), "d": as_of}
    )
    if recent.empty:
        return pd.Series(False, index=frame.index)
    last = recent.sort_values("as_of_date").groupby("customer_id")["risk_band"].last()
    before = frame["customer_id"].map(last)
    worse = band_rank(frame["risk_band"], cfg) > band_rank(before.fillna(""), cfg)
    return before.notna() & ~worse
