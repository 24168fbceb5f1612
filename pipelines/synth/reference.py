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
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import NamedTuple

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


class _Observed(NamedTuple):
    """What the landing files show up to as_of (day: days since start)."""

    transactions: pd.DataFrame  # customer_id, day, purchases
    service_events: pd.DataFrame  # customer_id, day (the last one)
    surveys: pd.DataFrame  # customer_id, day, nps_score


@dataclass
class _History:
    """Per selected customer (rows) and day: the observed history and the latents the reference is given."""

    counts: np.ndarray  # transactions per day
    seen: np.ndarray  # last day with any activity, -1 = never
    load: np.ndarray  # episode load per day (quiets purchases, lowers NPS)
    episode_hazard: np.ndarray  # hazard from the episodes per day
    signup: np.ndarray  # signup day, 0 for customers known before the window
    base: np.ndarray  # base hazard
    onset_rate: np.ndarray  # 1 / decline_mean: the rate of the memoryless decline onset
    locked: np.ndarray
    multiplier: np.ndarray  # lock-in scales the whole hazard
    survey_rows: np.ndarray  # row of each survey answer


@dataclass
class _Grid:
    """The posterior's grid: decline onsets, death days and purchase-rate quantiles, with what depends on them."""

    world: World
    last_day: int  # as_of, in days since start
    day_index: np.ndarray  # 0..last_day
    step_days: int
    onsets: np.ndarray  # every step_days, then _NOT_STARTED
    rates: np.ndarray  # purchase rates at the prior's quantiles
    deaths: np.ndarray  # death days over the horizon; last_day + 1: still alive on as_of
    progress: np.ndarray  # (onsets, days): decline progress
    decline_hazard: np.ndarray  # (onsets, days)
    thinning: np.ndarray  # (onsets, days): log of the decline's purchase factor


def landing_source(out: Path, dataset: str) -> str:
    """A DuckDB table function reading one dataset's landing files (CSV or Parquet) written by generate."""
    folder = out / "landing" / dataset
    ext = "parquet" if any(folder.glob("*.parquet")) else "csv"
    reader = "read_parquet" if ext == "parquet" else "read_csv"
    return f"{reader}('{folder.as_posix()}/*.{ext}')"


def _observations(out: Path, start: date, as_of: date, ids: Sequence[str]) -> _Observed:
    """Daily transaction counts, NPS answers and the last day seen (any activity), up to as_of."""
    con = duckdb.connect()
    con.register("ids", pd.DataFrame({"customer_id": list(ids)}))
    day = f"(CAST(ts AS DATE) - DATE '{start.isoformat()}')"
    where = "CAST(ts AS DATE) <= ? AND customer_id IN (SELECT customer_id FROM ids)"
    transactions = con.execute(
        f"SELECT customer_id, {day} AS day, COUNT(*) AS purchases FROM {landing_source(out, 'transactions')} "
        f"WHERE {where} GROUP BY 1, 2",
        [as_of],
    ).df()
    service_events = con.execute(
        f"SELECT customer_id, MAX({day}) AS day FROM {landing_source(out, 'service_events')} WHERE {where} GROUP BY 1",
        [as_of],
    ).df()
    surveys = con.execute(
        f"SELECT customer_id, {day} AS day, nps_score FROM {landing_source(out, 'surveys')} WHERE {where}", [as_of]
    ).df()
    con.close()
    return _Observed(transactions, service_events, surveys)


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
    customers, episodes, meta = truth or load_truth(out)
    world = World(**meta.get("world", {}))
    start = date.fromisoformat(str(meta["start"]))
    last_day = (as_of - start).days
    known = customers.reset_index(drop=True)
    rows = _signed_up_rows(known, customer_ids, last_day)
    ids = known["customer_id"].to_numpy()[rows].tolist()
    if len(rows) == 0:
        return pd.DataFrame({"customer_id": [], "probability": []})
    observed = _observations(out, start, as_of, ids)
    history = _history(known, episodes, rows, ids, observed, last_day, world)
    grid = _grid(world, last_day, horizon, step_days)

    post_alive = np.zeros((len(rows), len(grid.onsets)))
    p_gone = np.zeros(len(rows))
    for lo in range(0, len(rows), chunk):
        chunk_rows = slice(lo, min(len(rows), lo + chunk))
        joint = _posterior(history, grid, chunk_rows, observed.surveys)
        post_alive[chunk_rows] = joint[:, :, -1]
        p_gone[chunk_rows] = joint[:, :, :-1].sum((1, 2))

    ahead = forward_by_onset(out, as_of, horizon, ids, grid.onsets, (known, episodes, meta))
    return pd.DataFrame({"customer_id": ids, "probability": p_gone + (post_alive * ahead).sum(1)})


def _signed_up_rows(known: pd.DataFrame, customer_ids: Sequence[str], last_day: int) -> np.ndarray:
    """Return the truth rows of the asked-for customers (first mention, known ids) signed up by last_day."""
    row_of = pd.Series(np.arange(len(known)), index=known["customer_id"])
    ids = [c for c in dict.fromkeys(customer_ids) if c in row_of.index]
    rows = row_of.loc[ids].to_numpy() if ids else np.zeros(0, dtype=int)
    return rows[known["signup_day"].to_numpy()[rows] <= last_day]


def _history(
    known: pd.DataFrame,
    episodes: pd.DataFrame,
    rows: np.ndarray,
    ids: list[str],
    observed: _Observed,
    last_day: int,
    world: World,
) -> _History:
    """Return the selected customers' observed history and revealed latents."""
    position = pd.Series(np.arange(len(rows)), index=ids)
    counts, seen = _activity(observed, position, last_day + 1)
    load, episode_hazard = _revealed_episodes(episodes, rows, last_day, world)
    locked = known["locked_in"].to_numpy()[rows].astype(bool)
    surveys = observed.surveys
    return _History(
        counts=counts,
        seen=seen,
        load=load,
        episode_hazard=episode_hazard,
        signup=np.maximum(known["signup_day"].to_numpy()[rows], 0),
        base=known["base_hazard"].to_numpy()[rows],
        onset_rate=1 / known["decline_mean"].to_numpy()[rows],
        locked=locked,
        multiplier=np.where(locked, world.locked_multiplier, 1.0),
        survey_rows=position.loc[surveys["customer_id"]].to_numpy() if len(surveys) else np.zeros(0, dtype=int),
    )


def _activity(observed: _Observed, position: pd.Series, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (transactions per customer and day, last day each customer was seen or -1)."""
    counts = np.zeros((len(position), days))
    transactions = observed.transactions
    counts[position.loc[transactions["customer_id"]].to_numpy(), transactions["day"].to_numpy(int)] = transactions[
        "purchases"
    ].to_numpy()
    seen = np.full(len(position), -1)
    for frame in observed:
        if len(frame):
            last = frame.groupby("customer_id")["day"].max()
            rows = position.loc[last.index].to_numpy()
            seen[rows] = np.maximum(seen[rows], last.to_numpy(int))
    return counts, seen


def _revealed_episodes(
    episodes: pd.DataFrame, rows: np.ndarray, last_day: int, world: World
) -> tuple[np.ndarray, np.ndarray]:
    """Return (episode load, episode hazard) per selected customer and day up to last_day."""
    days = last_day + 1
    load, hazard = np.zeros((len(rows), days)), np.zeros((len(rows), days))
    revealed = episodes[(episodes["day"] <= last_day) & episodes["customer_index"].isin(rows)]
    revealed_rows = pd.Series(np.arange(len(rows)), index=rows).loc[revealed["customer_index"]].to_numpy()
    day_index = np.arange(days)
    for row, day, weight in zip(
        revealed_rows, revealed["day"].to_numpy(int), revealed["weight"].to_numpy(), strict=True
    ):
        age = day_index[day:] - day
        load[row, day:] += weight * np.exp(-age / world.episode_decay_days)
        hazard[row, day:] += weight * episode_kernel(age, world)
    return load, hazard


def _grid(world: World, last_day: int, horizon: int, step_days: int) -> _Grid:
    """Return the posterior's grid for as_of = last_day."""
    day_index = np.arange(last_day + 1)
    onsets = np.concatenate([np.arange(0, last_day + 1, step_days), [_NOT_STARTED]])
    # z: standard-normal quantiles (the textbook name), the rate prior's midpoints.
    z = norm.ppf((np.arange(_RATE_QUANTILES) + 0.5) / _RATE_QUANTILES)
    progress = np.maximum(0, day_index[None, :] - onsets[:, None]) / world.decline_scale_days
    return _Grid(
        world=world,
        last_day=last_day,
        day_index=day_index,
        step_days=step_days,
        onsets=onsets,
        rates=purchase_rate(z, world),
        deaths=np.arange(max(last_day - horizon + 1, 0), last_day + 2),
        progress=progress,
        decline_hazard=decline_hazard(progress, world),
        thinning=-world.purchase_fade * progress,
    )


def _posterior(history: _History, grid: _Grid, rows: slice, surveys: pd.DataFrame) -> np.ndarray:
    """Return the posterior over (onset, death day) for one chunk of customers; the last death day = alive."""
    size = rows.stop - rows.start
    active = grid.day_index[None, :] >= history.signup[rows, None]
    p_death = _death_likelihood(history, grid, rows, active)
    log_shape, log_rate = _purchase_log_likelihood(history, grid, rows, active)
    prior = _onset_prior(history, grid, rows)
    log_nps = _nps_log_likelihood(history, grid, rows, surveys)
    with np.errstate(divide="ignore"):
        log_joint = np.log(prior)[:, :, None] + np.log(p_death) + log_rate + (log_shape + log_nps)[:, :, None]
    log_joint -= log_joint.reshape(size, -1).max(1)[:, None, None]
    joint = np.exp(log_joint)
    joint /= joint.reshape(size, -1).sum(1)[:, None, None]
    return joint


def _death_likelihood(history: _History, grid: _Grid, rows: slice, active: np.ndarray) -> np.ndarray:
    """Return P(death on each grid day | onset) per customer, 0 before the last day the customer was seen."""
    size, last_day, deaths = rows.stop - rows.start, grid.last_day, grid.deaths
    hazard = history.multiplier[rows, None, None] * (
        history.base[rows, None, None] + grid.decline_hazard[None] + history.episode_hazard[rows, None, :]
    )
    hazard = hazard * active[:, None, :]
    cum_hazard = np.concatenate([np.zeros((size, len(grid.onsets), 1)), np.cumsum(hazard, 2)], 2)
    death_days = np.minimum(deaths, last_day)
    p_death = np.exp(-cum_hazard[:, :, death_days]) * -np.expm1(-hazard[:, :, death_days])
    p_death[:, :, -1] = np.exp(-cum_hazard[:, :, last_day + 1])
    p_death *= (deaths[None, :] > history.seen[rows, None])[:, None, :]  # seen alive on that day: not gone before
    return p_death


def _purchase_log_likelihood(
    history: _History, grid: _Grid, rows: slice, active: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return (log likelihood of the purchase days' pattern per onset, of the count per onset and death day)."""
    size = rows.stop - rows.start
    # The purchase rate relative to the customer's own healthy rate, in logs.
    log_factor = grid.thinning[None] - grid.world.episode_purchase_fade * history.load[rows, None, :]
    cum_factor = np.concatenate(
        [np.zeros((size, len(grid.onsets), 1)), np.cumsum(np.exp(log_factor) * active[:, None], 2)], 2
    )
    log_shape = (history.counts[rows, None, :] * log_factor).sum(2)
    total = history.counts[rows].sum(1)
    exposure = cum_factor[:, :, np.minimum(grid.deaths, grid.last_day + 1)]
    # Purchases are Poisson(rate0 * factor): average the rate's likelihood over its prior quantiles.
    log_likelihood = total[:, None, None, None] * np.log(grid.rates) - grid.rates * exposure[..., None]
    top = log_likelihood.max(3, keepdims=True)
    log_rate = top[..., 0] + np.log(np.exp(log_likelihood - top).mean(3))
    return log_shape, log_rate


def _onset_prior(history: _History, grid: _Grid, rows: slice) -> np.ndarray:
    """Return the prior of each onset cell (the last: not started by as_of) from the memoryless onset."""
    onsets, step_days, signup, onset_rate = grid.onsets, grid.step_days, history.signup, history.onset_rate
    lo_edge = np.maximum(onsets[None, :] - signup[rows, None], 0)
    hi_edge = np.maximum(onsets[None, :] + step_days - signup[rows, None], 0)
    prior = np.exp(-onset_rate[rows, None] * lo_edge) - np.exp(-onset_rate[rows, None] * hi_edge)
    prior[:, -1] = np.exp(-onset_rate[rows] * np.maximum(onsets[-2] + step_days - signup[rows], 0))
    return prior


def _nps_log_likelihood(history: _History, grid: _Grid, rows: slice, surveys: pd.DataFrame) -> np.ndarray:
    """Return the log likelihood of the chunk's NPS answers per onset (answers are rounded normal draws)."""
    log_nps = np.zeros((rows.stop - rows.start, len(grid.onsets)))
    survey_rows = history.survey_rows
    for k in np.flatnonzero((survey_rows >= rows.start) & (survey_rows < rows.stop)):
        row, day, score = survey_rows[k], int(surveys["day"].iat[k]), int(surveys["nps_score"].iat[k])
        # mu: the answer's mean before its standard-normal noise.
        mu = nps_mean(history.load[row, day], grid.progress[:, day], history.locked[row])
        upper = 1.0 if score >= 10 else norm.cdf(score + 0.5 - mu)
        lower = 0.0 if score <= 0 else norm.cdf(score - 0.5 - mu)
        log_nps[row - rows.start] += np.log(np.maximum(upper - lower, 1e-300))
    return log_nps


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
