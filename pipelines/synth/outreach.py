"""Simulated outreach on generated data, and the uplift ranking judged against the generator's truth.

The world is simulated up front, but who is called depends on the pipeline's lists, so a call is applied
after the fact: `apply_outreach` decides which called customers at stake (lost within the horizon before
the call, or leaving within the horizon after it) the call keeps (a Bernoulli draw with the true effect of
their churn cause, fixed per customer by the seed), records it in truth/outreach_calls.csv,
and merges the kept customers' continuation purchases (after the call day only) into the landing files,
so the pipeline's own churn labels see the calls. `judge_uplift` compares the two rankings at the same
capacity by true saved value, and the estimated uplift per profile with the true effect on the label.

Tests: tests/synth/test_outreach.py. Doc: docs/deliver.md ("Who responds: uplift").
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from models.uplift import ANY_BAND, POOLED, matured_observations
from pipelines.core.config import Config
from pipelines.core.warehouse import read_frame
from pipelines.synth.generate import OutreachEffect, load_truth

CALLS_FILE = "outreach_calls.csv"
CALL_COLUMNS = ["as_of_date", "customer_id", "cause", "effect", "at_stake", "saved"]


def response_draw(customer_ids: pd.Series, seed: int) -> np.ndarray:
    """Return each customer's fixed uniform draw: a call keeps them when it is below their cause's effect."""
    return np.array(
        [int(hashlib.sha256(f"{seed}|{c}".encode()).hexdigest()[:12], 16) / 16**12 for c in customer_ids], float
    )


def true_effects(generated: Path, as_of: date, customer_ids: pd.Series) -> pd.DataFrame:
    """Return per customer: churn cause, the call's true effect, and whether a call can still change anything.

    at_stake: the customer left within the horizon before as_of (lost, though still on the lists: a
    recovery call may win them back) or would leave within the horizon after it.
    """
    customers, _, meta = load_truth(generated)
    start, horizon = date.fromisoformat(str(meta["start"])), int(meta["horizon_days"])
    day = (as_of - start).days
    truth = customers.set_index("customer_id").reindex(pd.Index(customer_ids, name="customer_id"))
    churn_day = truth["churn_day"].fillna(-1).to_numpy(int)
    cause = truth["churn_cause"].fillna("").astype(str)
    effect = OutreachEffect(**meta.get("outreach", {})).of(cause)
    return pd.DataFrame(
        {
            "customer_id": list(customer_ids),
            "cause": cause.to_numpy(),
            "effect": effect,
            "would_churn": (churn_day > day) & (churn_day <= day + horizon),
            "at_stake": (churn_day > day - horizon) & (churn_day <= day + horizon),
            "churn_day": churn_day,
        }
    )


def _read_calls(generated: Path) -> pd.DataFrame:
    path = generated / "truth" / CALLS_FILE
    if not path.exists():
        return pd.DataFrame(columns=CALL_COLUMNS)
    return pd.read_csv(path, dtype={"customer_id": str, "cause": str}, keep_default_na=False)


def apply_outreach(generated: Path, landing: Path, as_of: date, sent_customer_ids, seed: int) -> dict:
    """Call the given customers on as_of: record who the call keeps and merge their purchases after as_of.

    Only the customers passed are treated (the control group never is); nothing dated on or before as_of
    changes. Re-running a day replaces its record and adds nothing twice.
    """
    generated, landing = Path(generated), Path(landing)
    _, _, meta = load_truth(generated)
    start = date.fromisoformat(str(meta["start"]))
    day = (as_of - start).days
    customers, _, _ = load_truth(generated)
    known = sorted(set(sent_customer_ids) & set(customers["customer_id"]))
    called = true_effects(generated, as_of, pd.Series(known, dtype=str))
    calls = _read_calls(generated)
    earlier = calls[calls["as_of_date"] != as_of.isoformat()]
    # Anyone kept by any call recorded so far (this day's too, on a re-run) already has their purchases.
    kept_before = set(calls.loc[calls["saved"].astype(str) == "True", "customer_id"])
    draw = response_draw(called["customer_id"], seed)
    saved = called["at_stake"].to_numpy() & (draw < called["effect"].to_numpy())
    newly = saved & ~called["customer_id"].isin(kept_before).to_numpy()
    record = called.assign(as_of_date=as_of.isoformat(), saved=saved)[CALL_COLUMNS]
    pd.concat([earlier, record], ignore_index=True).to_csv(generated / "truth" / CALLS_FILE, index=False)
    keep = set(called.loc[newly, "customer_id"])
    rows = _merge_kept_purchases(generated, landing, start, day, keep)
    _drop_cancellations(landing, start, day, keep)
    return {
        "as_of": as_of.isoformat(),
        "called": int(len(called)),
        "at_stake": int(called["at_stake"].sum()),
        "kept": int(saved.sum()),
        "purchases_added": rows,
    }


def _merge_kept_purchases(generated: Path, landing: Path, start: date, day: int, keep: set[str]) -> int:
    """Append the kept customers' continuation purchases dated after `day` to the daily transaction files."""
    if not keep:
        return 0
    kept = pd.read_csv(generated / "outreach" / "kept_transactions.csv", dtype={"customer_id": str})
    kept = kept[kept["customer_id"].isin(keep) & (kept["day"] > day)]
    folder = landing / "transactions"
    for d, part in kept.groupby("day"):
        name = (start + timedelta(days=int(d))).isoformat()
        part = part.drop(columns=["day"])
        parquet = folder / f"{name}.parquet"
        if parquet.exists():
            pd.concat([pd.read_parquet(parquet), part], ignore_index=True).to_parquet(parquet, index=False)
            continue
        path = folder / f"{name}.csv"
        part.to_csv(path, index=False, mode="a" if path.exists() else "w", header=not path.exists())
    return int(len(kept))


def _drop_cancellations(landing: Path, start: date, day: int, keep: set[str]) -> None:
    """Remove the kept customers' cancellations dated after `day` (contractual churn sees the call too)."""
    folder = landing / "cancellations"
    if not keep or not folder.is_dir():
        return
    for path in sorted(folder.glob("*.csv")):
        if (date.fromisoformat(path.stem) - start).days <= day:
            continue
        rows = pd.read_csv(path, dtype=str, keep_default_na=False)
        if rows["customer_id"].isin(keep).any():
            rows[~rows["customer_id"].isin(keep)].to_csv(path, index=False)


def _original_purchase_days(landing: Path, start: date) -> pd.DataFrame:
    """Return customer_id and day of every generated purchase, without the continuations merged by calls."""
    frames = []
    for path in sorted((landing / "transactions").glob("*.csv")):
        part = pd.read_csv(path, usecols=["txn_id", "customer_id", "type"], dtype=str)
        part = part[(part["type"] == "purchase") & ~part["txn_id"].str.contains("K", regex=False)]
        frames.append(part[["customer_id"]].assign(day=(date.fromisoformat(path.stem) - start).days))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["customer_id", "day"])


def label_effects(generated: Path, landing: Path, observations: pd.DataFrame, horizon: int) -> np.ndarray:
    """Return each (customer_id, alert_date) observation's true expected effect of a call on its churn label.

    A call moves the label only for a customer at stake (lost within the horizon before, or leaving within
    the horizon after the call), whom the call keeps (with their cause's effect), whose leaving shows as no
    purchase in the horizon, and whose kept purchases would show one; a customer kept by an earlier call
    has nothing left to gain.
    """
    _, _, meta = load_truth(generated)
    start = date.fromisoformat(str(meta["start"]))
    calls = _read_calls(generated)
    first_saved = calls[calls["saved"].astype(str) == "True"].groupby("customer_id")["as_of_date"].min()
    kept = pd.read_csv(generated / "outreach" / "kept_transactions.csv", usecols=["customer_id", "day"])
    bought = _original_purchase_days(landing, start)
    obs = observations[["customer_id", "alert_date"]].reset_index(drop=True)
    obs["alert_day"] = [(pd.Timestamp(d).date() - start).days for d in obs["alert_date"]]
    parts = []
    for alert_date, part in obs.groupby("alert_date"):
        truth = true_effects(generated, pd.Timestamp(alert_date).date(), part["customer_id"])
        parts.append(truth[["effect", "at_stake"]].set_index(part.index))
    obs = obs.join(pd.concat(parts))
    earlier = obs["customer_id"].map(first_saved).fillna("9999-12-31") < obs["alert_date"].astype(str)

    def any_within(days: pd.DataFrame) -> np.ndarray:
        joined = obs.reset_index().merge(days, on="customer_id")
        inside = (joined["day"] > joined["alert_day"]) & (joined["day"] <= joined["alert_day"] + horizon)
        hit = joined.loc[inside, "index"].unique()
        return obs.index.isin(hit)

    moves = obs["at_stake"].to_numpy() & ~earlier.to_numpy() & ~any_within(bought) & any_within(kept)
    return np.where(moves, obs["effect"].to_numpy(), 0.0)


def judge_uplift(cfg: Config, engine: Engine, as_of: date, generated: Path, landing: Path) -> dict:
    """Return true saved value at the same capacity by ranking, and estimated vs true uplift per profile."""
    return {
        "ranking_true_saved_value": ranking_saved_value(cfg, engine, as_of, generated),
        "estimates_vs_truth": estimates_vs_truth(cfg, engine, as_of, generated, landing),
    }


def ranking_saved_value(cfg: Config, engine: Engine, as_of: date, generated: Path) -> dict:
    """Return the true value saved by each ranking of the night's prevention candidates at the lists' capacity.

    The candidates are the rows a team could have called (sent and overflow); each team keeps the number it
    was sent. True saved value = true effect of the customer's cause x at stake (true_effects) x value, with
    value = trailing 12-month spend (what the generator's customer has shown to be worth, the same yardstick for
    every ranking); the rankings themselves are rebuilt as build_alerts computes them (expected spend if kept).
    """
    alerts = read_frame(
        engine,
        "SELECT customer_id, team, status, churn_probability, value_12m, value_at_risk, expected_value, uplift "
        "FROM churn_alerts WHERE as_of_date = :d AND list_name = 'prevention' AND status IN ('sent', 'overflow')",
        {"d": as_of},
    )
    if alerts.empty:
        return {}
    truth = true_effects(generated, as_of, alerts["customer_id"])
    alerts["true_saved"] = (
        truth["effect"].to_numpy() * truth["at_stake"].to_numpy() * pd.to_numeric(alerts["value_12m"]).to_numpy()
    )
    p = pd.to_numeric(alerts["churn_probability"])
    uplift = pd.to_numeric(alerts["uplift"]).clip(lower=0)
    rankings = {
        "value_at_risk": pd.to_numeric(alerts["value_at_risk"]),
        "expected_value_saved": p * uplift * pd.to_numeric(alerts["expected_value"]),
        "oracle": alerts["true_saved"],
    }
    capacity = alerts[alerts["status"] == "sent"].groupby("team").size()
    result: dict = {"customers_called": int(capacity.sum()), "candidates": int(len(alerts))}
    if uplift.isna().all():
        rankings.pop("expected_value_saved")
    for name, key in rankings.items():
        ranked = alerts.assign(_key=key.fillna(-np.inf)).sort_values(["team", "_key"], ascending=[True, False])
        chosen = (
            ranked.groupby("team").head(0)
            if capacity.empty
            else ranked[ranked.groupby("team").cumcount() < ranked["team"].map(capacity).fillna(0)]
        )
        result[name] = round(float(chosen["true_saved"].sum()), 2)
    if "expected_value_saved" in result and result["value_at_risk"] > 0:
        result["gain"] = round(result["expected_value_saved"] / result["value_at_risk"] - 1, 4)
    return result


def estimates_vs_truth(cfg: Config, engine: Engine, as_of: date, generated: Path, landing: Path) -> list[dict]:
    """Return each profile's estimated effect and interval beside the true mean effect on the churn label."""
    estimates = read_frame(engine, "SELECT * FROM uplift_estimates WHERE as_of_date = :d", {"d": as_of})
    observations = matured_observations(as_of, cfg, engine)
    if estimates.empty or observations.empty:
        return []
    observations["true_effect"] = label_effects(generated, landing, observations, cfg.churn.horizon_days)
    rows = []
    for r in estimates.itertuples(index=False):
        if r.profile == POOLED:
            cell = observations
        elif r.profile.endswith(f"/{ANY_BAND}"):
            cell = observations[observations["profile"].str.split("/").str[0] == r.profile.split("/")[0]]
        else:
            cell = observations[observations["profile"] == r.profile]
        truth = float(cell["true_effect"].mean()) if len(cell) else float("nan")
        rows.append(
            {
                "profile": r.profile,
                "source": r.source,
                "n_treated": int(r.n_treated),
                "n_control": int(r.n_control),
                "estimate": round(float(r.effect), 4),
                "low": round(float(r.ci_low), 4),
                "high": round(float(r.ci_high), 4),
                "truth": round(truth, 4),
                "truth_within_interval": bool(r.ci_low <= truth <= r.ci_high),
            }
        )
    return rows
