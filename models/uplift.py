"""Who responds to a call: the effect of outreach by customer profile, from matured treated and control alerts.

A profile is the reason category of the alert (the first model reason's category, or `service` when a
service rule fired) and the risk band, e.g. `service/high`. Each night `estimate_uplift` takes the
prevention alerts whose horizon has matured within `alerts.uplift.window_days`, compares churn of the sent
customers with the comparable control customers (held out, ranked within the called range) per profile:
effect = control churn - treated churn with Newcombe's 95 % interval. It keeps each customer's first alert
in a horizon only (a later row of the same customer is not a new experiment). A profile with fewer than
`alerts.uplift.min_control` control or treated alerts takes the effect of its reason category across bands
(source `category`), or the pooled effect when the category is thin too (source `pooled`); when the pool
itself is that thin, nothing is used (source `thin`) and the lists stay ranked by value at risk.

Step estimate_uplift. Table uplift_estimates. Tests: tests/models/test_uplift.py. Doc: docs/deliver.md
("Who responds: uplift").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from models.scoring import CATEGORY
from pipelines.core.config import Config
from pipelines.core.numbers import difference_ci
from pipelines.core.warehouse import read_frame, replace_partition, sql_text
from pipelines.features.population import churn_labels

POOLED = "all"
ANY_BAND = "any"  # the profile of a reason category across risk bands, e.g. 'service/any'
# Rule triggers that make an alert a service case whatever the model's first reason says.
SERVICE_RULES = ("repeat_contacts", "detractor_after_complaint")
ESTIMATE_COLUMNS = [
    "profile",
    "n_treated",
    "n_control",
    "churn_rate_treated",
    "churn_rate_control",
    "effect",
    "ci_low",
    "ci_high",
    "source",
]


def reason_category(reason_codes: pd.Series, triggers: pd.Series) -> pd.Series:
    """Return each alert's reason category: a service rule first, else the first reason's, else spend, else other."""

    def text(value) -> str:
        return value if isinstance(value, str) else "" if value is None or value != value else str(value)

    out = []
    # A loop over plain strings: pandas' string methods and maps cost 2 s a night at 200k alerts.
    for codes, fired in zip(reason_codes.to_numpy(dtype=object), triggers.to_numpy(dtype=object)):
        codes, fired = text(codes), text(fired)
        rules = fired.split(";")
        if any(r in rules for r in SERVICE_RULES):
            out.append("service")
            continue
        category = CATEGORY.get(codes.split(";")[0], "")
        out.append(category or ("declining_spend" if "spend_halved" in fired else "other"))
    return pd.Series(out, index=reason_codes.index, dtype=object)


def profile_of(category: pd.Series, band: pd.Series) -> pd.Series:
    """Return the uplift profile of each alert: reason category and risk band, e.g. 'service/high'."""
    return category.astype(str) + "/" + band.fillna("unscored").astype(str)


def _effect_row(profile: str, cell: pd.DataFrame) -> dict:
    """Return the counts, churn rates and Newcombe interval of one group of observations."""
    treated, control = cell.loc[cell["treated"], "churned"], cell.loc[~cell["treated"], "churned"]
    n_t, n_c = len(treated), len(control)
    row = {"profile": profile, "n_treated": n_t, "n_control": n_c}
    if n_t and n_c:
        effect, low, high = difference_ci(int(control.sum()), n_c, int(treated.sum()), n_t)
        row |= {
            "churn_rate_treated": float(treated.mean()),
            "churn_rate_control": float(control.mean()),
            "effect": effect,
            "ci_low": low,
            "ci_high": high,
        }
    else:
        row |= {k: np.nan for k in ("churn_rate_treated", "churn_rate_control", "effect", "ci_low", "ci_high")}
    return row


def uplift_by_profile(observations: pd.DataFrame, min_control: int) -> pd.DataFrame:
    """Return the effect per profile, per reason category (profile 'category/any') and pooled (profile 'all')
    from rows of profile, treated, churned.

    source: `measured` (its own treated vs control), `category` (too few of either: the effect and interval
    of its reason category across bands stand in), `pooled` (the category too: the pooled effect) or `thin`
    (the pool itself is too small: no effect is used).
    """
    obs = observations.assign(treated=observations["treated"].astype(bool), churned=observations["churned"].astype(int))
    pooled = _effect_row(POOLED, obs)
    pooled["source"] = "measured" if _enough(pooled, min_control) else "thin"
    rows = [pooled]
    fallback = {}
    category = obs["profile"].astype(str).str.split("/").str[0]
    for name, cell in obs.groupby(category, sort=True):
        row = _effect_row(f"{name}/{ANY_BAND}", cell)
        row = _or_parent(row, pooled, "pooled", min_control)
        fallback[name] = row
        rows.append(row)
    for profile, cell in obs.groupby("profile", sort=True):
        parent = fallback[str(profile).split("/")[0]]
        rows.append(_or_parent(_effect_row(str(profile), cell), parent, "category", min_control))
    return pd.DataFrame(rows, columns=ESTIMATE_COLUMNS)


def _enough(row: dict, min_control: int) -> bool:
    return min(row["n_treated"], row["n_control"]) >= min_control


def _or_parent(row: dict, parent: dict, source: str, min_control: int) -> dict:
    """Return row as measured when it has enough evidence, else carrying its parent's effect and interval."""
    if _enough(row, min_control):
        return row | {"source": "measured"}
    if parent["source"] == "thin":
        return row | {k: parent[k] for k in ("effect", "ci_low", "ci_high")} | {"source": "thin"}
    # A parent that itself fell back passes on its own source (a category on the pooled effect: pooled).
    inherited = source if parent["source"] == "measured" else parent["source"]
    return row | {k: parent[k] for k in ("effect", "ci_low", "ci_high")} | {"source": inherited}


def uplift_of(estimates: pd.DataFrame, profiles: pd.Series) -> pd.Series:
    """Return the usable effect of each profile (its own, else its category's, else the pooled one); NaN when
    none is usable."""
    usable = estimates[estimates["source"] != "thin"].set_index("profile")["effect"]
    pooled = usable.get(POOLED, np.nan)
    category = profiles.fillna("").astype(str).str.split("/").str[0] + f"/{ANY_BAND}"
    return profiles.map(usable).fillna(category.map(usable)).fillna(pooled).astype(float).where(profiles.notna())


def choose_ranking(estimates: pd.DataFrame, cfg: Config) -> tuple[str, str]:
    """Return the ranking of tonight's prevention lists and the sentence that says why."""
    if cfg.alerts.ranking == "value_at_risk":
        return "value_at_risk", "value at risk (alerts.ranking: value_at_risk)"
    pooled = estimates[estimates["profile"] == POOLED]
    if pooled.empty or pooled["n_treated"].iloc[0] == 0:
        return "value_at_risk", "value at risk: no matured treated and control alerts yet to measure uplift"
    row, need = pooled.iloc[0], cfg.alerts.uplift.min_control
    if row["source"] == "thin":
        short = "n_control" if row["n_control"] < need else "n_treated"
        return "value_at_risk", f"value at risk: uplift evidence too thin ({short} {int(row[short]):,} < {need})"
    cells = estimates[(estimates["profile"] != POOLED) & ~estimates["profile"].str.endswith(f"/{ANY_BAND}")]
    measured = int((cells["source"] == "measured").sum())
    return (
        "expected_value_saved",
        f"expected value saved (uplift measured on {int(row['n_treated']):,} treated / "
        f"{int(row['n_control']):,} control customers; {measured} of {len(cells)} profiles on their own evidence, "
        "the rest on their reason category's or the pooled effect)",
    )


def matured_observations(as_of: date, cfg: Config, engine: Engine) -> pd.DataFrame:
    """Return one row per first alert in a horizon of sent and comparable control customers, matured by as_of.

    Columns: alert_date, customer_id, team, profile, treated, churned, value_12m.
    """
    horizon = cfg.churn.horizon_days
    last = as_of - timedelta(days=horizon)
    first = as_of - timedelta(days=cfg.alerts.uplift.window_days)
    alerts = read_frame(
        engine, sql_text("deliver/uplift_alerts.sql"), {"a": first - timedelta(days=horizon), "b": last}
    )
    columns = ["alert_date", "customer_id", "team", "profile", "treated", "churned", "value_12m"]
    if alerts.empty:
        return pd.DataFrame(columns=columns)
    alerts["alert_date"] = pd.to_datetime(alerts["as_of_date"]).dt.date
    alerts = alerts.sort_values(["customer_id", "alert_date"])
    # An alert within a horizon of the customer's previous one is not a new experiment.
    previous = alerts.groupby("customer_id")["alert_date"].shift()
    gap = (pd.to_datetime(alerts["alert_date"]) - pd.to_datetime(previous)).dt.days
    alerts = alerts[(gap.isna() | (gap > horizon)) & (alerts["alert_date"] >= first)]
    # Comparable control: held out at a rank the team's calls reached that night.
    reach = alerts[alerts["status"] == "sent"].groupby(["alert_date", "team"])["team_rank"].max()
    key = pd.MultiIndex.from_frame(alerts[["alert_date", "team"]])
    within = alerts["team_rank"].to_numpy() <= reach.reindex(key).fillna(0).to_numpy()
    alerts = alerts[(alerts["status"] == "sent") | ((alerts["status"] == "control") & within)]
    alerts = alerts[alerts["uplift_profile"].notna()]
    frames = []
    for day, part in alerts.groupby("alert_date"):
        labels = churn_labels(engine, cfg, day, as_of).set_index("customer_id")["churned"]
        # A customer with no purchase before the alert has no label row: nothing bought, so churned.
        frames.append(part.assign(churned=part["customer_id"].map(labels).fillna(1).astype(int)))
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    out["treated"] = out["status"] == "sent"
    return out.rename(columns={"uplift_profile": "profile"})[columns].reset_index(drop=True)


@dataclass
class UpliftSummary:
    as_of: date
    ranking: str
    note: str
    profiles: dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "ranking": self.ranking, "note": self.note, "profiles": self.profiles}


def estimate_uplift(as_of: date, cfg: Config, engine: Engine) -> UpliftSummary:
    """Estimate the effect of a call per profile from matured alerts; replace as_of's uplift_estimates.

    Step estimate_uplift. SQL: sql/deliver/uplift_alerts.sql, sql/features/churn_labels*.sql.
    Tests: tests/models/test_uplift.py. Doc: docs/deliver.md ("Who responds: uplift").
    """
    observations = matured_observations(as_of, cfg, engine)
    estimates = uplift_by_profile(observations, cfg.alerts.uplift.min_control)
    replace_partition(engine, "uplift_estimates", estimates.assign(as_of_date=as_of), as_of)
    ranking, note = choose_ranking(estimates, cfg)
    profiles = {
        r.profile: {
            "n_treated": int(r.n_treated),
            "n_control": int(r.n_control),
            "effect": None if pd.isna(r.effect) else round(float(r.effect), 4),
            "source": r.source,
        }
        for r in estimates.itertuples(index=False)
    }
    return UpliftSummary(as_of, ranking, note, profiles)


def read_estimates(as_of: date, engine: Engine) -> pd.DataFrame:
    """Return the uplift estimates stored for as_of (empty when estimate_uplift has not run)."""
    return read_frame(engine, sql_text("deliver/uplift_estimates.sql"), {"d": as_of})
