"""A reachable reference for generated data: the Bayes prediction from what a model could know.

The oracle (pipelines.synth.generate.oracle_probability) knows every latent of the simulated process, so no
model can reach it. This reference is the exact Bayes probability of churn given the observed history
(daily transaction counts, NPS answers, the last day each customer was seen) *plus* the latents the data
only hints at: the service episodes with their weights, each customer's base hazard, decline rate,
episode rate and lock-in. Only the purchase rate, the day a decline began and whether (and when) the
customer already left are inferred. Because it is given more than the data holds, its Brier score is a
bound no model trained on the data can beat (up to the grid below), and its AUC shows how close to the
oracle a model could come at best.

The posterior is computed on a grid: the onset day every `step_days`, the death day over the last
`horizon` days, the purchase rate at 24 quantiles of its prior (the rate integrates out exactly
given the grid, because purchases are Poisson).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import norm

from pipelines.synth.generate import (
    World,
    decline_hazard,
    episode_kernel,
    load_truth,
    nps_mean,
    oracle_probability,
    purchase_rate,
)

_NOT_STARTED = 10**6
_RATE_QUANTILES = 24


def landing_source(out: Path, dataset: str) -> str:
    """A DuckDB table function reading one dataset's landing files (CSV or Parquet) written by generate."""
    folder = out / "landing" / dataset
    ext = "parquet" if any(folder.glob("*.parquet")) else "csv"
    reader = "read_parquet" if ext == "parquet" else "read_csv"
    return f"{reader}('{folder.as_posix()}/*.{ext}')"


def _observations(out: Path, start: date, as_of: date, ids: Sequence[str]) -> dict:
    """Daily transaction counts, NPS answers and the last day seen (any activity), up to as_of."""
    con = duckdb.connect()
    con.register("ids", pd.DataFrame({"customer_id": list(ids)}))
    day = f"(CAST(ts AS DATE) - DATE '{start.isoformat()}')"
    where = "CAST(ts AS DATE) <= ? AND customer_id IN (SELECT customer_id FROM ids)"
    tx = con.execute(
        f"SELECT customer_id, {day} AS d, COUNT(*) AS n FROM {landing_source(out, 'transactions')} WHERE {where} GROUP BY 1, 2",
        [as_of],
    ).df()
    ev = con.execute(
        f"SELECT customer_id, MAX({day}) AS d FROM {landing_source(out, 'service_events')} WHERE {where} GROUP BY 1",
        [as_of],
    ).df()
    sv = con.execute(
        f"SELECT customer_id, {day} AS d, nps_score FROM {landing_source(out, 'surveys')} WHERE {where}", [as_of]
    ).df()
    con.close()
    return {"tx": tx, "ev": ev, "sv": sv}


def bayes_reference(
    out: Path,
    as_of: date,
    horizon: int,
    customer_ids: Sequence[str],
    step_days: int = 3,
    chunk: int = 32,
    truth: tuple[pd.DataFrame, pd.DataFrame, dict] | None = None,
) -> pd.DataFrame:
    """Return customer_id, probability: P(churn within horizon after as_of | history + revealed latents).

    truth: load_truth(out), when the caller has it already.
    """
    cust, eps, meta = truth or load_truth(out)
    w = World(**meta.get("world", {}))
    start = date.fromisoformat(str(meta["start"]))
    d_last = (as_of - start).days
    known = cust.reset_index(drop=True)
    row_of = pd.Series(np.arange(len(known)), index=known["customer_id"])
    ids = [c for c in dict.fromkeys(customer_ids) if c in row_of.index]
    ci = row_of.loc[ids].to_numpy() if ids else np.zeros(0, dtype=int)
    ci = ci[known["signup_day"].to_numpy()[ci] <= d_last]
    ids = known["customer_id"].to_numpy()[ci].tolist()
    n, days = len(ci), d_last + 1
    if n == 0:
        return pd.DataFrame({"customer_id": [], "probability": []})
    pos = pd.Series(np.arange(n), index=ids)
    obs = _observations(out, start, as_of, ids)

    counts = np.zeros((n, days))
    tx = obs["tx"]
    counts[pos.loc[tx["customer_id"]].to_numpy(), tx["d"].to_numpy(int)] = tx["n"].to_numpy()
    seen = np.full(n, -1)
    for frame in (tx, obs["ev"], obs["sv"]):
        if len(frame):
            last = frame.groupby("customer_id")["d"].max()
            rows = pos.loc[last.index].to_numpy()
            seen[rows] = np.maximum(seen[rows], last.to_numpy(int))

    # Revealed: the episodes' load (quiets purchases, lowers NPS) and their hazard, day by day.
    load, ehaz = np.zeros((n, days)), np.zeros((n, days))
    ep = eps[(eps["day"] <= d_last) & eps["customer_index"].isin(ci)]
    ep_rows = pd.Series(np.arange(n), index=ci).loc[ep["customer_index"]].to_numpy()
    t = np.arange(days)
    for r, day, weight in zip(ep_rows, ep["day"].to_numpy(int), ep["weight"].to_numpy(), strict=True):
        age = t[day:] - day
        load[r, day:] += weight * np.exp(-age / w.episode_decay_days)
        ehaz[r, day:] += weight * episode_kernel(age, w)

    signup = np.maximum(known["signup_day"].to_numpy()[ci], 0)
    base = known["base_hazard"].to_numpy()[ci]
    lam = 1 / known["decline_mean"].to_numpy()[ci]
    locked = known["locked_in"].to_numpy()[ci].astype(bool)
    mult = np.where(locked, w.locked_multiplier, 1.0)
    onsets = np.concatenate([np.arange(0, days, step_days), [_NOT_STARTED]])
    n_onsets = len(onsets)
    z = norm.ppf((np.arange(_RATE_QUANTILES) + 0.5) / _RATE_QUANTILES)
    rates = purchase_rate(z, w)
    deaths = np.arange(max(d_last - horizon + 1, 0), d_last + 2)  # d_last + 1: still alive on as_of
    progress = np.maximum(0, t[None, :] - onsets[:, None]) / w.decline_scale_days  # (onsets, days)
    decline_haz = decline_hazard(progress, w)
    thinning = -w.purchase_fade * progress
    survey_rows = pos.loc[obs["sv"]["customer_id"]].to_numpy() if len(obs["sv"]) else np.zeros(0, dtype=int)

    post_alive = np.zeros((n, n_onsets))
    p_gone = np.zeros(n)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        b = hi - lo
        active = t[None, :] >= signup[lo:hi, None]
        log_f = thinning[None] - w.episode_purchase_fade * load[lo:hi, None, :]  # purchase rate / rate0, in logs
        cum_f = np.concatenate([np.zeros((b, n_onsets, 1)), np.cumsum(np.exp(log_f) * active[:, None], 2)], 2)
        log_shape = (counts[lo:hi, None, :] * log_f).sum(2)
        total = counts[lo:hi].sum(1)
        hazard = mult[lo:hi, None, None] * (base[lo:hi, None, None] + decline_haz[None] + ehaz[lo:hi, None, :])
        hazard = hazard * active[:, None, :]
        cum_h = np.concatenate([np.zeros((b, n_onsets, 1)), np.cumsum(hazard, 2)], 2)
        dd = np.minimum(deaths, d_last)
        p_death = np.exp(-cum_h[:, :, dd]) * -np.expm1(-hazard[:, :, dd])
        p_death[:, :, -1] = np.exp(-cum_h[:, :, d_last + 1])
        p_death *= (deaths[None, :] > seen[lo:hi, None])[:, None, :]  # seen alive on that day: not gone before
        exposure = cum_f[:, :, np.minimum(deaths, d_last + 1)]
        # Purchases are Poisson(rate0 * f): average the rate's likelihood over its prior quantiles.
        lr = total[:, None, None, None] * np.log(rates) - rates * exposure[..., None]
        top = lr.max(3, keepdims=True)
        log_rate = top[..., 0] + np.log(np.exp(lr - top).mean(3))
        lo_edge = np.maximum(onsets[None, :] - signup[lo:hi, None], 0)
        hi_edge = np.maximum(onsets[None, :] + step_days - signup[lo:hi, None], 0)
        prior = np.exp(-lam[lo:hi, None] * lo_edge) - np.exp(-lam[lo:hi, None] * hi_edge)
        prior[:, -1] = np.exp(-lam[lo:hi] * np.maximum(onsets[-2] + step_days - signup[lo:hi], 0))
        log_nps = np.zeros((b, n_onsets))
        for k in np.flatnonzero((survey_rows >= lo) & (survey_rows < hi)):
            r, day, score = survey_rows[k], int(obs["sv"]["d"].iat[k]), int(obs["sv"]["nps_score"].iat[k])
            mu = nps_mean(load[r, day], progress[:, day], locked[r])
            upper = 1.0 if score >= 10 else norm.cdf(score + 0.5 - mu)
            lower = 0.0 if score <= 0 else norm.cdf(score - 0.5 - mu)
            log_nps[r - lo] += np.log(np.maximum(upper - lower, 1e-300))
        with np.errstate(divide="ignore"):
            log_joint = np.log(prior)[:, :, None] + np.log(p_death) + log_rate + (log_shape + log_nps)[:, :, None]
        log_joint -= log_joint.reshape(b, -1).max(1)[:, None, None]
        joint = np.exp(log_joint)
        joint /= joint.reshape(b, -1).sum(1)[:, None, None]
        post_alive[lo:hi] = joint[:, :, -1]
        p_gone[lo:hi] = joint[:, :, :-1].sum((1, 2))

    ahead = forward_by_onset(out, as_of, horizon, ids, onsets, (known, eps, meta))
    return pd.DataFrame({"customer_id": ids, "probability": p_gone + (post_alive * ahead).sum(1)})


def forward_by_onset(
    out: Path, as_of: date, horizon: int, ids: list[str], onsets: np.ndarray, truth: tuple
) -> np.ndarray:
    """P(churn within horizon | alive on as_of, decline began on day onsets[k]) per customer and onset.

    The oracle's forward probability with the onset replaced; onsets after as_of mean "not started".
    Only the decline's share depends on the onset: P = 1 - A * exp(-mult * decline hazard summed over
    the horizon), where A comes from the oracle with no decline at all.
    """
    known, eps, meta = truth
    w = World(**meta.get("world", {}))
    d_last = (as_of - date.fromisoformat(str(meta["start"]))).days
    scenario = known.assign(churn_day=-1, decline_start=float(d_last + 1))
    mult = np.where(known.set_index("customer_id").loc[ids, "locked_in"].astype(bool), w.locked_multiplier, 1.0)

    def forward(frame: pd.DataFrame) -> np.ndarray:
        found = oracle_probability(out, as_of, horizon, (frame, eps, meta)).set_index("customer_id")
        return found["true_probability"].reindex(ids).to_numpy()

    no_decline = 1 - forward(scenario.assign(decline_mean=1e15))
    started = onsets <= d_last
    steps = np.arange(1, horizon + 1)
    since = d_last - onsets[started]  # days since onset on as_of
    decline_sum = decline_hazard((since[:, None] + steps[None, :]) / w.decline_scale_days, w).sum(1)
    ahead = np.empty((len(ids), len(onsets)))
    ahead[:, started] = 1 - no_decline[:, None] * np.exp(-mult[:, None] * decline_sum[None, :])
    ahead[:, ~started] = forward(scenario)[:, None]
    return ahead
