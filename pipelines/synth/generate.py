"""Synthetic customers, transactions, service events and NPS answers with a known churn process.

Churn is a daily hazard built from mechanisms retention work describes:

* a slow *decline* (engagement fading) that starts at a random date, thins purchases out
  and raises the hazard more every week it goes on;
* service *episodes* (a problem): the customer may contact the service (silent customers
  mostly do not), repeat contacts about the same problem, long waits and unresolved tickets
  each make the episode weigh more on the hazard and on NPS answers; its effect decays;
* *locked-in* customers (under contract) complain loudly and answer low NPS yet rarely leave.

Because the hazard is known, the generator also writes the true churn date and the oracle
probability P(churn within H days | state on date D). The oracle knows the latent state (when a
decline began, every episode, each customer's own rates), which the data shows only through noisy
behaviour, so it bounds what a model could score from above; it is not reachable.

A World holds the process's parameters and is recorded in truth/meta.json. WORLDS["observable"]
lets the drivers show in behaviour first: a decline thins purchases for 90 days before it raises the
hazard, an episode's hazard builds up over weeks while the customer goes quiet, sudden exits are rare.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

REGIONS = np.array(["north", "south", "east", "west"])
SEGMENTS = np.array(["consumer", "consumer", "consumer", "small_business", "premium"])
CHANNELS = np.array(["web", "store", "app"])
CONTACT_CHANNELS = np.array(["phone", "email", "chat"])
CANCEL_REASONS = ["price", "service", "moved", "competitor", "no longer needed"]
NOTE_NEUTRAL = [
    "question about invoice answered",
    "updated address details",
    "explained delivery times",
    "customer asked about product options",
]
NOTE_NEGATIVE = [
    "customer frustrated, calling again about the same problem",
    "angry about long wait, threatened to cancel",
    "issue still not fixed, customer disappointed",
    "complaint about billing error, very unhappy",
    "customer says service is terrible and will switch provider",
]


@dataclass(frozen=True)
class World:
    """The churn process's parameters. The truth records them, so the oracle always matches the data."""

    episode_decay_days: float = 45.0  # an episode's effect fades with this time constant
    episode_onset_days: float = 0.0  # > 0: its hazard builds up over about this many days instead of at once
    base_hazard: float = 1 / 5000  # median daily hazard of leaving with no warning
    decline_scale_days: float = 60.0
    decline_hazard: float = 0.003
    decline_growth: float = 0.8
    decline_lag_days: float = 0.0  # days of thinning purchases before a decline starts to raise the hazard
    purchase_fade: float = 1.2  # how fast purchases thin out in a decline
    purchase_gap_days: float = 12.0  # median days between purchases of a healthy customer
    episode_purchase_fade: float = 150.0  # how much an episode quiets purchases while it lasts
    locked_multiplier: float = 0.2


WORLDS = {
    # The default: most churn drivers are hidden until shortly before a customer leaves.
    "default": World(),
    # "Customers rarely leave overnight": declines show in purchases for 90 days before they bite, an
    # episode's hazard builds up over weeks while the customer goes quiet, sudden exits are rare.
    "observable": World(
        episode_onset_days=15.0,
        base_hazard=5e-05,
        decline_lag_days=90.0,
        purchase_fade=2.0,
        episode_purchase_fade=600.0,
    ),
}


@dataclass(frozen=True)
class GeneratorSpec:
    customers: int = 5000
    days: int = 540
    seed: int = 7
    start: date = date(2025, 1, 1)
    horizon_days: int = 90
    id_prefix: str = ""  # prepended to every id, so independently generated blocks can share landing files
    world: World = World()


@dataclass
class _Latent:
    signup: np.ndarray  # day index (negative: before the window)
    rate0: np.ndarray  # purchases per day
    spend: np.ndarray  # median order value
    base_hazard: np.ndarray
    decline_mean: np.ndarray
    decline_start: np.ndarray
    episode_rate: np.ndarray
    locked: np.ndarray
    vocal: np.ndarray
    churn_day: np.ndarray  # -1 = not within the simulated span


def _draw_latent(rng: np.random.Generator, n: int, days: int, w: World) -> _Latent:
    existing = rng.random(n) < 0.7
    signup = np.where(existing, -rng.integers(30, 1500, n), rng.integers(0, max(days - 30, 1), n))
    rate0 = purchase_rate(rng.standard_normal(n), w)
    spend = np.exp(rng.normal(math.log(35), 0.6, n))
    base_hazard = np.exp(rng.normal(math.log(w.base_hazard), 0.5, n))
    decline_mean = np.exp(rng.normal(math.log(900), 0.6, n))
    # Memoryless onset: the decline starts a random time after signup.
    decline_start = np.maximum(signup, 0) + rng.exponential(decline_mean)
    episode_rate = np.exp(rng.normal(math.log(1 / 200), 0.7, n))
    locked = rng.random(n) < 0.12
    episode_rate = np.where(locked, episode_rate * 2.0, episode_rate)
    vocal = np.where(locked, rng.random(n) < 0.9, rng.random(n) < 0.3)
    return _Latent(
        signup,
        rate0,
        spend,
        base_hazard,
        decline_mean,
        decline_start,
        episode_rate,
        locked,
        vocal,
        np.full(n, -1),
    )


def _draw_episode_weight(rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
    """Return (repeats, long_wait, unresolved, weight): each repeat contact weighs more."""
    severity = rng.gamma(2.0, 0.5, size)
    repeats = rng.poisson(severity * 1.2)
    long_wait = rng.random(size) < 0.25
    unresolved = rng.random(size) < np.clip(0.1 + 0.08 * repeats, 0, 0.6)
    weight = 0.0006 * (1 + repeats) ** 1.3 * np.where(long_wait, 1.6, 1.0) * np.where(unresolved, 1.8, 1.0)
    return repeats, long_wait, unresolved, weight


def _decline_progress(day: int | np.ndarray, start: np.ndarray, w: World) -> np.ndarray:
    return np.maximum(0.0, np.floor(day) - np.floor(start)) / w.decline_scale_days


def _onset_scale(w: World) -> float:
    """Hazard per unit of (slow - fast) episode load, so an episode's total hazard is the same whatever the onset."""
    if w.episode_onset_days <= 0:
        return 1.0
    total_slow = 1 / (1 - math.exp(-1 / w.episode_decay_days))
    return total_slow / (total_slow - 1 / (1 - math.exp(-1 / w.episode_onset_days)))


def episode_kernel(age: np.ndarray, w: World) -> np.ndarray:
    """Hazard per unit of episode weight `age` days after the episode."""
    slow = np.exp(-np.asarray(age, dtype=float) / w.episode_decay_days)
    if w.episode_onset_days <= 0:
        return slow
    return _onset_scale(w) * (slow - np.exp(-np.asarray(age, dtype=float) / w.episode_onset_days))


def nps_mean(load: np.ndarray, progress: np.ndarray, locked: np.ndarray) -> np.ndarray:
    """Expected NPS answer before noise: it falls with the episode load, the decline and lock-in."""
    return 9.2 - np.minimum(6.0, load / 0.0005) - 1.5 * progress - 1.5 * locked


def purchase_rate(z: np.ndarray, w: World) -> np.ndarray:
    """A healthy customer's purchases per day at standard-normal quantile z of the population."""
    return np.clip(np.exp(math.log(1 / w.purchase_gap_days) + 0.5 * z), 1 / 40, 1 / 2)


def decline_hazard(progress: np.ndarray, w: World) -> np.ndarray:
    """Daily hazard added by a decline `progress` scale units old: nothing during the lag, then growing."""
    lagged = np.maximum(0.0, progress - w.decline_lag_days / w.decline_scale_days)
    return w.decline_hazard * (np.exp(w.decline_growth * lagged) - 1)


def generate(
    spec: GeneratorSpec, out: Path, fmt: str = "csv", append: bool = False, truth: bool = True
) -> dict[str, int]:
    """Write landing files per day and the ground truth under out; return row counts.

    append=True adds to existing daily CSV files (blocks of customers with distinct id prefixes);
    truth=False skips the ground truth (the benchmark does not need it).
    """
    rng = np.random.default_rng(spec.seed)
    n, days, horizon = spec.customers, spec.days, spec.horizon_days
    total = days + horizon
    w = spec.world
    lat = _draw_latent(rng, n, days, w)
    multiplier = np.where(lat.locked, w.locked_multiplier, 1.0)
    threshold = rng.exponential(1.0, n)
    cum_hazard = np.zeros(n)
    load = np.zeros(n)  # episode load (upset), decays daily: quiets purchases and NPS at once
    fast = np.zeros(n)  # the part of the load not yet turned into hazard (episode_onset_days)
    fast_decay = math.exp(-1 / w.episode_onset_days) if w.episode_onset_days > 0 else 0.0
    onset_scale = _onset_scale(w)
    alive = np.ones(n, dtype=bool)
    decay = math.exp(-1 / w.episode_decay_days)
    ids = np.array([f"{spec.id_prefix}C{i:07d}" for i in range(n)])

    txn_parts: list[pd.DataFrame] = []
    event_rows: list[tuple] = []
    survey_parts: list[pd.DataFrame] = []
    episodes: list[tuple] = []
    pending_contacts: dict[int, list[tuple]] = {}

    for t in range(total):
        signed = lat.signup <= t
        active = alive & signed
        load *= decay
        fast *= fast_decay
        new_ep = active & (rng.random(n) < lat.episode_rate)
        idx = np.flatnonzero(new_ep)
        if idx.size:
            reps, long_wait, unresolved, weight = _draw_episode_weight(rng, idx.size)
            load[idx] += weight
            if w.episode_onset_days > 0:
                fast[idx] += weight
            for k, c in enumerate(idx):
                episodes.append((int(c), t, float(weight[k])))
                contacts = 1 + int(reps[k])
                contacted = rng.random() < (0.95 if lat.vocal[c] else 0.35)
                if not contacted:
                    continue
                day = t
                for j in range(contacts):
                    last = j == contacts - 1
                    pending_contacts.setdefault(day, []).append(
                        (int(c), bool(long_wait[k]), bool(last and not unresolved[k]), j, contacts)
                    )
                    day += int(rng.integers(1, 7))
                if lat.vocal[c] and (contacts >= 2 or unresolved[k]) and rng.random() < 0.7:
                    pending_contacts.setdefault(t + int(rng.integers(0, 3)), []).append(
                        (int(c), bool(long_wait[k]), False, -1, contacts)
                    )
        decline = _decline_progress(t, lat.decline_start, w)
        hazard = multiplier * (lat.base_hazard + decline_hazard(decline, w) + onset_scale * (load - fast))
        hazard = np.where(active, hazard, 0.0)
        cum_hazard += hazard
        churn_now = active & (cum_hazard >= threshold)
        lat.churn_day[churn_now] = t
        alive &= ~churn_now
        active &= ~churn_now
        if t >= days:
            continue

        rate = lat.rate0 * np.exp(-w.purchase_fade * decline) * np.exp(-w.episode_purchase_fade * load)
        n_buy = rng.poisson(np.where(active, rate, 0.0))
        buyers = np.flatnonzero(n_buy)
        if buyers.size:
            who = np.repeat(buyers, n_buy[buyers])
            amount = np.round(lat.spend[who] * np.exp(rng.normal(0, 0.5, who.size)), 2)
            is_refund = rng.random(who.size) < 0.02 + 0.1 * (load[who] > 0.0012)
            txn_parts.append(
                pd.DataFrame(
                    {
                        "day": t,
                        "customer_id": ids[who],
                        "seconds": rng.integers(8 * 3600, 22 * 3600, who.size),
                        "amount": np.where(is_refund, -amount, amount),
                        "type": np.where(is_refund, "refund", "purchase"),
                        "channel": CHANNELS[rng.integers(0, 3, who.size)],
                    }
                )
            )
        for c, long_wait, resolved, j, _contacts in pending_contacts.pop(t, []):
            if not alive[c]:
                continue
            complaint = j < 0
            wait = rng.lognormal(math.log(900 if long_wait else 150), 0.5)
            negative = complaint or j >= 1 or long_wait
            note = (NOTE_NEGATIVE if negative else NOTE_NEUTRAL)[int(rng.integers(0, 5 if negative else 4))]
            event_rows.append(
                (
                    t,
                    ids[c],
                    int(rng.integers(8 * 3600, 20 * 3600)),
                    "complaint" if complaint else "contact",
                    CONTACT_CHANNELS[int(rng.integers(0, 3))],
                    int(wait),
                    int(rng.lognormal(math.log(400), 0.4)),
                    resolved,
                    bool(rng.random() < (0.45 if j >= 1 else 0.15)),
                    note,
                )
            )
        # NPS answers: satisfaction falls with the episode load and the decline.
        answer = active & (rng.random(n) < 1 / 90)
        who = np.flatnonzero(answer)
        if who.size:
            score = nps_mean(load[who], decline[who], lat.locked[who]) + rng.normal(0, 1.0, who.size)
            survey_parts.append(
                pd.DataFrame(
                    {
                        "day": t,
                        "customer_id": ids[who],
                        "seconds": rng.integers(9 * 3600, 21 * 3600, who.size),
                        "nps_score": np.clip(np.round(score), 0, 10).astype(int),
                    }
                )
            )

    counts = _write_outputs(spec, out, fmt, lat, ids, txn_parts, event_rows, survey_parts, append)
    if truth:
        _write_truth(spec, out, lat, ids, episodes, fmt)
    return counts


def _ts(start: date, day: pd.Series, seconds: pd.Series) -> pd.Series:
    base = pd.Timestamp(start)
    return base + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s")


def _write_daily(frame: pd.DataFrame, folder: Path, start: date, fmt: str, append: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for day, part in frame.groupby("day", sort=True):
        name = (start + timedelta(days=int(day))).isoformat()
        part = part.drop(columns=["day"])
        if fmt == "parquet":
            part.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            path = folder / f"{name}.csv"
            extend = append and path.exists()
            part.to_csv(path, index=False, mode="a" if extend else "w", header=not extend)


def _write_outputs(spec, out, fmt, lat, ids, txn_parts, event_rows, survey_parts, append=False) -> dict[str, int]:
    landing = out / "landing"
    start = spec.start
    n = len(ids)
    rng = np.random.default_rng(spec.seed + 1)

    txns = (
        pd.concat(txn_parts, ignore_index=True)
        if txn_parts
        else pd.DataFrame(columns=["day", "customer_id", "seconds", "amount", "type", "channel"])
    )
    txns = txns.sort_values(["day", "seconds", "customer_id"], kind="stable").reset_index(drop=True)
    txns["ts"] = _ts(start, txns["day"], txns["seconds"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    txns.insert(0, "txn_id", [f"{spec.id_prefix}T{i:09d}" for i in range(len(txns))])
    _write_daily(
        txns[["day", "txn_id", "customer_id", "ts", "amount", "type", "channel"]],
        landing / "transactions",
        start,
        fmt,
        append,
    )

    cols = [
        "day",
        "customer_id",
        "seconds",
        "event_type",
        "channel",
        "wait_seconds",
        "handle_seconds",
        "resolved",
        "transferred",
        "note",
    ]
    events = pd.DataFrame(event_rows, columns=cols).sort_values(["day", "seconds", "customer_id"], kind="stable")
    events = events.reset_index(drop=True)
    events["ts"] = _ts(start, events["day"], events["seconds"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    events.insert(0, "event_id", [f"{spec.id_prefix}E{i:09d}" for i in range(len(events))])
    _write_daily(
        events[
            [
                "day",
                "event_id",
                "customer_id",
                "ts",
                "event_type",
                "channel",
                "wait_seconds",
                "handle_seconds",
                "resolved",
                "transferred",
                "note",
            ]
        ],
        landing / "service_events",
        start,
        fmt,
        append,
    )

    surveys = (
        pd.concat(survey_parts, ignore_index=True)
        if survey_parts
        else pd.DataFrame(columns=["day", "customer_id", "seconds", "nps_score"])
    )
    surveys = surveys.sort_values(["day", "seconds", "customer_id"], kind="stable").reset_index(drop=True)
    surveys["ts"] = _ts(start, surveys["day"], surveys["seconds"]).dt.strftime("%Y-%m-%d %H:%M:%S")
    surveys.insert(0, "response_id", [f"{spec.id_prefix}R{i:09d}" for i in range(len(surveys))])
    _write_daily(
        surveys[["day", "response_id", "customer_id", "ts", "nps_score"]], landing / "surveys", start, fmt, append
    )

    signup_dates = pd.Timestamp(start) + pd.to_timedelta(lat.signup, unit="D")
    contract_end = np.where(
        lat.locked, (pd.Timestamp(start) + pd.Timedelta(days=spec.days + 400)).strftime("%Y-%m-%d"), ""
    )
    customers = pd.DataFrame(
        {
            # Customers known before the window arrive in the first file; new ones on their signup day.
            "day": np.maximum(lat.signup, 0),
            "customer_id": ids,
            "signup_date": signup_dates.strftime("%Y-%m-%d"),
            "region": REGIONS[rng.integers(0, len(REGIONS), n)],
            "segment": np.where(lat.locked, "contract", SEGMENTS[rng.integers(0, len(SEGMENTS), n)]),
            "contract_end": contract_end,
            "do_not_contact": rng.random(n) < 0.02,
        }
    )
    customers = customers[customers["day"] < spec.days]
    _write_daily(customers.sort_values(["day", "customer_id"]), landing / "customers", start, fmt, append)

    # The same churn seen by a subscription business: a cancellation on the day the customer leaves.
    gone = np.flatnonzero((lat.churn_day >= 0) & (lat.churn_day < spec.days))
    cancellations = pd.DataFrame(
        {
            "day": lat.churn_day[gone],
            "cancel_id": [f"{spec.id_prefix}X{i:07d}" for i in gone],
            "customer_id": ids[gone],
            "ts": _ts(start, pd.Series(lat.churn_day[gone]), pd.Series(36000 + (gone % 28800))).dt.strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "reason": np.array(CANCEL_REASONS)[gone % len(CANCEL_REASONS)],
        }
    )
    _write_daily(cancellations.sort_values(["day", "customer_id"]), landing / "cancellations", start, fmt, append)
    return {
        "cancellations": int(len(cancellations)),
        "customers": int(len(customers)),
        "transactions": int(len(txns)),
        "service_events": int(len(events)),
        "surveys": int(len(surveys)),
    }


def _write_truth(spec, out, lat, ids, episodes, fmt) -> None:
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    churn_date = [(spec.start + timedelta(days=int(d))).isoformat() if d >= 0 else "" for d in lat.churn_day]
    pd.DataFrame(
        {
            "customer_id": ids,
            "churn_date": churn_date,
            "signup_day": lat.signup,
            "base_hazard": lat.base_hazard,
            "decline_mean": lat.decline_mean,
            "decline_start": lat.decline_start,
            "episode_rate": lat.episode_rate,
            "locked_in": lat.locked,
            "vocal": lat.vocal,
            "churn_day": lat.churn_day,
        }
    ).to_csv(truth / "customers_truth.csv", index=False)
    pd.DataFrame(episodes, columns=["customer_index", "day", "weight"]).to_csv(truth / "episodes.csv", index=False)
    meta = {
        "start": spec.start.isoformat(),
        "days": spec.days,
        "seed": spec.seed,
        "horizon_days": spec.horizon_days,
        "customers": spec.customers,
        "world": asdict(spec.world),
    }
    (truth / "meta.json").write_text(json.dumps(meta, indent=2))
    # Oracle probabilities every 7 days, counted back from the last day (its horizon is simulated too).
    dates = [spec.start + timedelta(days=d) for d in range(spec.days - 1, -1, -7)]
    loaded = load_truth(out)
    frames = [oracle_probability(out, d, spec.horizon_days, loaded) for d in sorted(dates)]
    pd.concat(frames, ignore_index=True).to_csv(truth / "oracle_probability.csv", index=False)


def load_truth(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Return (customers truth, episodes, meta) written by generate()."""
    truth = out / "truth"
    cust = pd.read_csv(truth / "customers_truth.csv", keep_default_na=False, na_values=[""])
    eps = pd.read_csv(truth / "episodes.csv")
    meta = json.loads((truth / "meta.json").read_text())
    return cust, eps, meta


def oracle_probability(
    out: Path, as_of: date, horizon: int, truth: tuple[pd.DataFrame, pd.DataFrame, dict] | None = None
) -> pd.DataFrame:
    """Return the true P(churn within horizon days after as_of | state on as_of) per signed-up customer.

    Customers already gone on as_of get 1.0. The expectation over future episodes and a future
    decline onset is exact for the simulated process (it knows the latent state, not the future).
    """
    cust, eps, meta = truth or load_truth(out)
    start = date.fromisoformat(str(meta["start"]))
    w = World(**meta.get("world", {}))  # truth written before worlds existed: the default world
    d = (as_of - start).days
    signed = cust["signup_day"].to_numpy() <= d
    cust = cust[signed].reset_index(drop=True)
    idx_map = np.flatnonzero(signed)
    n = len(cust)
    mult = np.where(cust["locked_in"].astype(bool), w.locked_multiplier, 1.0)
    base = cust["base_hazard"].to_numpy()
    start_decl = cust["decline_start"].to_numpy()
    steps = np.arange(1, horizon + 1)
    days_ahead = d + steps

    # Known part: base hazard, the decline if it has begun, and the decaying load of past episodes.
    episode_hazard = np.zeros((n, horizon))
    past = eps[eps["day"] <= d]
    pos = np.full(int(idx_map.max()) + 1 if n else 1, -1)
    pos[idx_map] = np.arange(n)
    past = past[past["customer_index"] < len(pos)]
    rows = pos[past["customer_index"].to_numpy()]
    keep = rows >= 0
    age = (d - past["day"].to_numpy()[keep])[:, None] + steps[None, :]
    np.add.at(episode_hazard, rows[keep], past["weight"].to_numpy()[keep][:, None] * episode_kernel(age, w))
    known = base[:, None] + episode_hazard
    started = np.floor(start_decl) <= d
    prog = np.maximum(0.0, days_ahead[None, :] - np.floor(start_decl)[:, None]) / w.decline_scale_days
    decline_known = np.where(started[:, None], decline_hazard(prog, w), 0.0)
    log_surv = -(mult[:, None] * (known + decline_known)).sum(axis=1)

    # Future decline onset (memoryless): onset on day d+k with probability from Exp(decline_mean).
    u = np.arange(0, horizon + 1)
    g = np.cumsum(decline_hazard(u / w.decline_scale_days, w))
    lam = 1 / cust["decline_mean"].to_numpy()
    onset_p = np.exp(-lam[:, None] * (steps[None, :] - 1)) - np.exp(-lam[:, None] * steps[None, :])
    tail = np.exp(-lam * horizon)
    surv_onset = np.exp(-mult[:, None] * g[horizon - steps][None, :])
    e_decline = np.where(started, 1.0, (onset_p * surv_onset).sum(axis=1) + tail)

    # Future episodes: each day d+k an episode with probability rate, weight from the known law.
    rng = np.random.default_rng(12345)
    *_, weights = _draw_episode_weight(rng, 4000)
    kern = np.cumsum(episode_kernel(u, w))  # K(L) for L = 0..horizon
    k_rem = kern[horizon - steps]  # remaining kernel mass for an episode starting at d+k
    log_future = np.zeros(n)
    for m in np.unique(mult):
        phi = np.exp(-m * weights[None, :] * k_rem[:, None]).mean(axis=1)  # per start day
        sel = mult == m
        rate = cust["episode_rate"].to_numpy()[sel]
        log_future[sel] = np.log(1 - rate[:, None] + rate[:, None] * phi[None, :]).sum(axis=1)

    p = 1 - np.exp(log_surv + log_future) * e_decline
    gone = (cust["churn_day"].to_numpy() >= 0) & (cust["churn_day"].to_numpy() <= d)
    p = np.where(gone, 1.0, p)
    churned_in = (cust["churn_day"].to_numpy() >= 0) & (cust["churn_day"].to_numpy() <= d + horizon)
    return pd.DataFrame(
        {
            "as_of_date": as_of.isoformat(),
            "customer_id": cust["customer_id"],
            "true_probability": p,
            "churned_within_horizon": churned_in,
            "already_gone": gone,
        }
    )
