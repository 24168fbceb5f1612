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

Each leaver's *cause* is recorded too: the hazard component that was largest on the day they left
(service episodes, the decline, or the no-warning base hazard). OutreachEffect says what one retention
call does for each cause; for every leaver the generator writes the purchases they would have made had a
call kept them (outreach/kept_transactions.csv), which pipelines.synth.outreach merges after the fact for
the customers the pipeline's own lists called (only the days after the call).

A World holds the process's parameters and is recorded in truth/meta.json. WORLDS["observable"]
lets the drivers show in behaviour first: a decline thins purchases for 90 days before it raises the
hazard, an episode's hazard builds up over weeks while the customer goes quiet, sudden exits are rare.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

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


# Why a leaver left: the hazard component that was largest on their churn day.
CAUSES = ("service", "decline", "sudden")


@dataclass(frozen=True)
class OutreachEffect:
    """The true share of leavers at stake (lost within the horizon before the call, or leaving within the
    horizon after it) that one call keeps or wins back, by cause."""

    service: float = 0.6  # service recovery fixes what drove them away
    decline: float = 0.05  # a fading, price- or habit-driven customer: a call rarely turns it
    sudden: float = 0.0  # no warning sign: nothing for a call to fix

    def of(self, causes: pd.Series) -> np.ndarray:
        """Return the effect of each cause ('' or unknown: 0)."""
        effects = asdict(self)
        return causes.fillna("").map(lambda c: effects.get(c, 0.0)).to_numpy(float)


@dataclass(frozen=True)
class GeneratorSpec:
    customers: int = 5000
    days: int = 540
    seed: int = 7
    start: date = date(2025, 1, 1)
    horizon_days: int = 90
    id_prefix: str = ""  # prepended to every id, so independently generated blocks can share landing files
    world: World = World()
    outreach: OutreachEffect = OutreachEffect()


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
    churn_cause: np.ndarray  # index into CAUSES, -1 = not within the simulated span


def _draw_latent(rng: np.random.Generator, customers: int, days: int, world: World) -> _Latent:
    """Return every customer's hidden traits (the churn day is filled in by the simulation)."""
    existing = rng.random(customers) < 0.7
    signup = np.where(existing, -rng.integers(30, 1500, customers), rng.integers(0, max(days - 30, 1), customers))
    rate0 = purchase_rate(rng.standard_normal(customers), world)
    spend = np.exp(rng.normal(math.log(35), 0.6, customers))
    base_hazard = np.exp(rng.normal(math.log(world.base_hazard), 0.5, customers))
    decline_mean = np.exp(rng.normal(math.log(900), 0.6, customers))
    # Memoryless onset: the decline starts a random time after signup.
    decline_start = np.maximum(signup, 0) + rng.exponential(decline_mean)
    episode_rate = np.exp(rng.normal(math.log(1 / 200), 0.7, customers))
    locked = rng.random(customers) < 0.12
    episode_rate = np.where(locked, episode_rate * 2.0, episode_rate)
    vocal = np.where(locked, rng.random(customers) < 0.9, rng.random(customers) < 0.3)
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
        np.full(customers, -1),
        np.full(customers, -1),
    )


def _draw_episode_weight(rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
    """Return (repeats, long_wait, unresolved, weight): each repeat contact weighs more."""
    severity = rng.gamma(2.0, 0.5, size)
    repeats = rng.poisson(severity * 1.2)
    long_wait = rng.random(size) < 0.25
    unresolved = rng.random(size) < np.clip(0.1 + 0.08 * repeats, 0, 0.6)
    weight = 0.0006 * (1 + repeats) ** 1.3 * np.where(long_wait, 1.6, 1.0) * np.where(unresolved, 1.8, 1.0)
    return repeats, long_wait, unresolved, weight


def _decline_progress(day: int | np.ndarray, start: np.ndarray, world: World) -> np.ndarray:
    """Return how far each decline has gone on `day`, in units of decline_scale_days (0 before it starts)."""
    return np.maximum(0.0, np.floor(day) - np.floor(start)) / world.decline_scale_days


def _onset_scale(world: World) -> float:
    """Hazard per unit of (slow - fast) episode load, so an episode's total hazard is the same whatever the onset."""
    if world.episode_onset_days <= 0:
        return 1.0
    total_slow = 1 / (1 - math.exp(-1 / world.episode_decay_days))
    return total_slow / (total_slow - 1 / (1 - math.exp(-1 / world.episode_onset_days)))


# The public helpers below keep their short parameter names (w: the World, z: a standard-normal quantile):
# other modules and tests call them, and z is the textbook name.


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


class _Contact(NamedTuple):
    """A service contact waiting for its day."""

    customer: int  # index into the customers
    long_wait: bool
    resolved: bool
    number: int  # 0 = the first contact about the problem, 1.. = repeats, -1 = a complaint
    contacts: int  # how many contacts the episode brings


@dataclass
class _Simulation:
    """The daily loop's state: latent traits, what builds up per customer, and the records written so far.

    The one random generator is shared by every step: the order of its draws fixes the data for a seed.
    """

    spec: GeneratorSpec
    rng: np.random.Generator
    latent: _Latent
    ids: np.ndarray
    multiplier: np.ndarray  # lock-in scales the whole hazard
    threshold: np.ndarray  # a customer leaves the day the cumulative hazard reaches it
    cum_hazard: np.ndarray
    load: np.ndarray  # episode load (upset), decays daily: quiets purchases and NPS at once
    fast: np.ndarray  # the part of the load not yet turned into hazard (episode_onset_days)
    alive: np.ndarray
    load_decay: float
    fast_decay: float
    onset_scale: float
    transactions: list[pd.DataFrame] = field(default_factory=list)
    service_events: list[tuple] = field(default_factory=list)
    surveys: list[pd.DataFrame] = field(default_factory=list)
    episodes: list[tuple] = field(default_factory=list)  # (customer index, day, weight)
    pending_contacts: dict[int, list[_Contact]] = field(default_factory=dict)  # by day


def _start_simulation(spec: GeneratorSpec) -> _Simulation:
    """Return the state before day 0: latent traits and each customer's exit threshold drawn."""
    rng = np.random.default_rng(spec.seed)
    customers, world = spec.customers, spec.world
    latent = _draw_latent(rng, customers, spec.days, world)
    return _Simulation(
        spec=spec,
        rng=rng,
        latent=latent,
        ids=np.array([f"{spec.id_prefix}C{i:07d}" for i in range(customers)]),
        multiplier=np.where(latent.locked, world.locked_multiplier, 1.0),
        threshold=rng.exponential(1.0, customers),
        cum_hazard=np.zeros(customers),
        load=np.zeros(customers),
        fast=np.zeros(customers),
        alive=np.ones(customers, dtype=bool),
        load_decay=math.exp(-1 / world.episode_decay_days),
        fast_decay=math.exp(-1 / world.episode_onset_days) if world.episode_onset_days > 0 else 0.0,
        onset_scale=_onset_scale(world),
    )


def generate(
    spec: GeneratorSpec, out: Path, fmt: str = "csv", append: bool = False, truth: bool = True
) -> dict[str, int]:
    """Write landing files per day and the ground truth under out; return row counts.

    append=True adds to existing daily CSV files (blocks of customers with distinct id prefixes);
    truth=False skips the ground truth (the benchmark does not need it).
    """
    simulation = _start_simulation(spec)
    # The horizon after the window is simulated too, so the truth knows who leaves within it.
    for day in range(spec.days + spec.horizon_days):
        _simulate_day(simulation, day)
    counts = _write_outputs(spec, out, fmt, simulation, append)
    if truth:
        _write_truth(spec, out, simulation.latent, simulation.ids, simulation.episodes)
        _write_kept_purchases(spec, out, simulation.latent, simulation.ids)
    return counts


def _simulate_day(simulation: _Simulation, day: int) -> None:
    """Advance one day: new episodes, the hazard and who leaves, then (inside the window) the day's records."""
    active = simulation.alive & (simulation.latent.signup <= day)
    simulation.load *= simulation.load_decay
    simulation.fast *= simulation.fast_decay
    _start_episodes(simulation, day, active)
    decline = _decline_progress(day, simulation.latent.decline_start, simulation.spec.world)
    active = _churn(simulation, day, active, decline)
    if day >= simulation.spec.days:
        return
    _record_purchases(simulation, day, active, decline)
    _record_service_events(simulation, day)
    _record_nps_answers(simulation, day, active, decline)


def _start_episodes(simulation: _Simulation, day: int, active: np.ndarray) -> None:
    """Start today's service episodes: their weight joins the load and their contacts are queued."""
    rng = simulation.rng
    starting = active & (rng.random(simulation.spec.customers) < simulation.latent.episode_rate)
    customers = np.flatnonzero(starting)
    if not customers.size:
        return
    repeats, long_wait, unresolved, weight = _draw_episode_weight(rng, customers.size)
    simulation.load[customers] += weight
    if simulation.spec.world.episode_onset_days > 0:
        simulation.fast[customers] += weight
    for k, customer in enumerate(customers):
        simulation.episodes.append((int(customer), day, float(weight[k])))
        _queue_contacts(simulation, day, int(customer), 1 + int(repeats[k]), bool(long_wait[k]), bool(unresolved[k]))


def _queue_contacts(
    simulation: _Simulation, day: int, customer: int, contacts: int, long_wait: bool, unresolved: bool
) -> None:
    """Queue one episode's contacts, a few days apart; a vocal customer with a bad episode may also complain."""
    rng = simulation.rng
    vocal = simulation.latent.vocal[customer]
    # Silent customers mostly live with a problem without telling the service.
    if not rng.random() < (0.95 if vocal else 0.35):
        return
    contact_day = day
    for number in range(contacts):
        last = number == contacts - 1
        simulation.pending_contacts.setdefault(contact_day, []).append(
            _Contact(customer, long_wait, bool(last and not unresolved), number, contacts)
        )
        contact_day += int(rng.integers(1, 7))
    if vocal and (contacts >= 2 or unresolved) and rng.random() < 0.7:
        simulation.pending_contacts.setdefault(day + int(rng.integers(0, 3)), []).append(
            _Contact(customer, long_wait, False, -1, contacts)
        )


def _churn(simulation: _Simulation, day: int, active: np.ndarray, decline: np.ndarray) -> np.ndarray:
    """Add today's hazard, record who reaches their threshold, and return who is still active."""
    latent, world = simulation.latent, simulation.spec.world
    episode_hazard = simulation.onset_scale * (simulation.load - simulation.fast)
    components = np.stack([episode_hazard, decline_hazard(decline, world), latent.base_hazard])  # CAUSES order
    hazard = simulation.multiplier * components.sum(axis=0)
    hazard = np.where(active, hazard, 0.0)
    simulation.cum_hazard += hazard
    leaving = active & (simulation.cum_hazard >= simulation.threshold)
    latent.churn_day[leaving] = day
    latent.churn_cause[leaving] = components[:, leaving].argmax(axis=0)
    simulation.alive &= ~leaving
    return active & ~leaving


def _record_purchases(simulation: _Simulation, day: int, active: np.ndarray, decline: np.ndarray) -> None:
    """Draw today's purchases and refunds: a decline and the episode load thin a customer's purchases out."""
    latent, world, rng, load = simulation.latent, simulation.spec.world, simulation.rng, simulation.load
    rate = latent.rate0 * np.exp(-world.purchase_fade * decline) * np.exp(-world.episode_purchase_fade * load)
    purchases = rng.poisson(np.where(active, rate, 0.0))
    buyers = np.flatnonzero(purchases)
    if not buyers.size:
        return
    buyer = np.repeat(buyers, purchases[buyers])  # one entry per purchase
    amount = np.round(latent.spend[buyer] * np.exp(rng.normal(0, 0.5, buyer.size)), 2)
    is_refund = rng.random(buyer.size) < 0.02 + 0.1 * (load[buyer] > 0.0012)
    simulation.transactions.append(
        pd.DataFrame(
            {
                "day": day,
                "customer_id": simulation.ids[buyer],
                "seconds": rng.integers(8 * 3600, 22 * 3600, buyer.size),
                "amount": np.where(is_refund, -amount, amount),
                "type": np.where(is_refund, "refund", "purchase"),
                "channel": CHANNELS[rng.integers(0, 3, buyer.size)],
            }
        )
    )


def _record_service_events(simulation: _Simulation, day: int) -> None:
    """Turn the contacts queued for today into service events (customers gone by now no longer call)."""
    for contact in simulation.pending_contacts.pop(day, []):
        if not simulation.alive[contact.customer]:
            continue
        customer_id = simulation.ids[contact.customer]
        simulation.service_events.append(_service_event(simulation.rng, day, customer_id, contact))


def _service_event(rng: np.random.Generator, day: int, customer_id: str, contact: _Contact) -> tuple:
    """Return one service event row (columns as _EVENT_COLUMNS); repeats and long waits read negative."""
    complaint = contact.number < 0
    wait = rng.lognormal(math.log(900 if contact.long_wait else 150), 0.5)
    negative = complaint or contact.number >= 1 or contact.long_wait
    note = (NOTE_NEGATIVE if negative else NOTE_NEUTRAL)[int(rng.integers(0, 5 if negative else 4))]
    return (
        day,
        customer_id,
        int(rng.integers(8 * 3600, 20 * 3600)),
        "complaint" if complaint else "contact",
        CONTACT_CHANNELS[int(rng.integers(0, 3))],
        int(wait),
        int(rng.lognormal(math.log(400), 0.4)),
        contact.resolved,
        bool(rng.random() < (0.45 if contact.number >= 1 else 0.15)),
        note,
    )


def _record_nps_answers(simulation: _Simulation, day: int, active: np.ndarray, decline: np.ndarray) -> None:
    """Draw today's NPS answers: satisfaction falls with the episode load and the decline."""
    rng, latent = simulation.rng, simulation.latent
    answering = active & (rng.random(simulation.spec.customers) < 1 / 90)
    respondents = np.flatnonzero(answering)
    if not respondents.size:
        return
    expected = nps_mean(simulation.load[respondents], decline[respondents], latent.locked[respondents])
    score = expected + rng.normal(0, 1.0, respondents.size)
    simulation.surveys.append(
        pd.DataFrame(
            {
                "day": day,
                "customer_id": simulation.ids[respondents],
                "seconds": rng.integers(9 * 3600, 21 * 3600, respondents.size),
                "nps_score": np.clip(np.round(score), 0, 10).astype(int),
            }
        )
    )


_TS_FORMAT = "%Y-%m-%d %H:%M:%S"
_EVENT_COLUMNS = [
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


def _ts(start: date, day: pd.Series, seconds: pd.Series) -> pd.Series:
    """Return the timestamps `day` days and `seconds` seconds after start."""
    base = pd.Timestamp(start)
    return base + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s")


def _write_daily(frame: pd.DataFrame, folder: Path, start: date, fmt: str, append: bool = False) -> None:
    """Write one landing file per day of frame (its day column becomes the file name)."""
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


def _write_outputs(spec: GeneratorSpec, out: Path, fmt: str, simulation: _Simulation, append: bool) -> dict[str, int]:
    """Write every dataset's landing files; return each dataset's row count."""
    latent, ids = simulation.latent, simulation.ids
    frames = {
        "transactions": _transactions_frame(spec, simulation.transactions),
        "service_events": _service_events_frame(spec, simulation.service_events),
        "surveys": _surveys_frame(spec, simulation.surveys),
        "customers": _customers_frame(spec, latent, ids),
        "cancellations": _cancellations_frame(spec, latent, ids),
    }
    for dataset, frame in frames.items():
        _write_daily(frame, out / "landing" / dataset, spec.start, fmt, append)
    return {
        dataset: int(len(frames[dataset]))
        for dataset in ("cancellations", "customers", "transactions", "service_events", "surveys")
    }


def _in_time_order(frame: pd.DataFrame, start: date, id_column: str, id_start: str) -> pd.DataFrame:
    """Return frame sorted by time with a ts column and running ids (id_start and 9 digits) in front."""
    frame = frame.sort_values(["day", "seconds", "customer_id"], kind="stable").reset_index(drop=True)
    frame["ts"] = _ts(start, frame["day"], frame["seconds"]).dt.strftime(_TS_FORMAT)
    frame.insert(0, id_column, [f"{id_start}{i:09d}" for i in range(len(frame))])
    return frame


def _transactions_frame(spec: GeneratorSpec, parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Return the transactions landing rows (with their day) from the daily draws."""
    columns = ["day", "customer_id", "seconds", "amount", "type", "channel"]
    transactions = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    transactions = _in_time_order(transactions, spec.start, "txn_id", f"{spec.id_prefix}T")
    return transactions[["day", "txn_id", "customer_id", "ts", "amount", "type", "channel"]]


def _service_events_frame(spec: GeneratorSpec, rows: list[tuple]) -> pd.DataFrame:
    """Return the service events landing rows (with their day) from the daily draws."""
    events = _in_time_order(pd.DataFrame(rows, columns=_EVENT_COLUMNS), spec.start, "event_id", f"{spec.id_prefix}E")
    landing_columns = ["day", "event_id", "customer_id", "ts"] + _EVENT_COLUMNS[3:]
    return events[landing_columns]


def _surveys_frame(spec: GeneratorSpec, parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Return the surveys landing rows (with their day) from the daily draws."""
    columns = ["day", "customer_id", "seconds", "nps_score"]
    surveys = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    surveys = _in_time_order(surveys, spec.start, "response_id", f"{spec.id_prefix}R")
    return surveys[["day", "response_id", "customer_id", "ts", "nps_score"]]


def _customers_frame(spec: GeneratorSpec, latent: _Latent, ids: np.ndarray) -> pd.DataFrame:
    """Return the customers landing rows signed up within the window, sorted by day and id."""
    # A generator of its own: the customer attributes do not shift the daily draws.
    rng = np.random.default_rng(spec.seed + 1)
    count = len(ids)
    start = pd.Timestamp(spec.start)
    signup_dates = start + pd.to_timedelta(latent.signup, unit="D")
    contract_end = np.where(latent.locked, (start + pd.Timedelta(days=spec.days + 400)).strftime("%Y-%m-%d"), "")
    customers = pd.DataFrame(
        {
            # Customers known before the window arrive in the first file; new ones on their signup day.
            "day": np.maximum(latent.signup, 0),
            "customer_id": ids,
            "signup_date": signup_dates.strftime("%Y-%m-%d"),
            "region": REGIONS[rng.integers(0, len(REGIONS), count)],
            "segment": np.where(latent.locked, "contract", SEGMENTS[rng.integers(0, len(SEGMENTS), count)]),
            "contract_end": contract_end,
            "do_not_contact": rng.random(count) < 0.02,
        }
    )
    customers = customers[customers["day"] < spec.days]
    return customers.sort_values(["day", "customer_id"])


def _cancellations_frame(spec: GeneratorSpec, latent: _Latent, ids: np.ndarray) -> pd.DataFrame:
    """Return the cancellations landing rows: customers who left within the window, sorted by day and id."""
    # The same churn seen by a subscription business: a cancellation on the day the customer leaves.
    gone = np.flatnonzero((latent.churn_day >= 0) & (latent.churn_day < spec.days))
    seconds = pd.Series(36000 + (gone % 28800))
    cancellations = pd.DataFrame(
        {
            "day": latent.churn_day[gone],
            "cancel_id": [f"{spec.id_prefix}X{i:07d}" for i in gone],
            "customer_id": ids[gone],
            "ts": _ts(spec.start, pd.Series(latent.churn_day[gone]), seconds).dt.strftime(_TS_FORMAT),
            "reason": np.array(CANCEL_REASONS)[gone % len(CANCEL_REASONS)],
        }
    )
    return cancellations.sort_values(["day", "customer_id"])


def _write_truth(spec: GeneratorSpec, out: Path, latent: _Latent, ids: np.ndarray, episodes: list[tuple]) -> None:
    """Write truth/: the latent traits, the episodes, meta.json and the oracle every 7 days."""
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    churn_date = [(spec.start + timedelta(days=int(day))).isoformat() if day >= 0 else "" for day in latent.churn_day]
    pd.DataFrame(
        {
            "customer_id": ids,
            "churn_date": churn_date,
            "signup_day": latent.signup,
            "base_hazard": latent.base_hazard,
            "decline_mean": latent.decline_mean,
            "decline_start": latent.decline_start,
            "episode_rate": latent.episode_rate,
            "locked_in": latent.locked,
            "vocal": latent.vocal,
            "churn_day": latent.churn_day,
            "churn_cause": np.where(latent.churn_cause >= 0, np.array(CAUSES)[latent.churn_cause], ""),
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
        "outreach": asdict(spec.outreach),
    }
    (truth / "meta.json").write_text(json.dumps(meta, indent=2))
    # Oracle probabilities every 7 days, counted back from the last day (its horizon is simulated too).
    dates = [spec.start + timedelta(days=day) for day in range(spec.days - 1, -1, -7)]
    loaded = load_truth(out)
    frames = [oracle_probability(out, as_of, spec.horizon_days, loaded) for as_of in sorted(dates)]
    pd.concat(frames, ignore_index=True).to_csv(truth / "oracle_probability.csv", index=False)


def _write_kept_purchases(spec: GeneratorSpec, out: Path, latent: _Latent, ids: np.ndarray) -> None:
    """Write outreach/kept_transactions.csv: each leaver's purchases from their churn day on, had a call kept them.

    A kept customer buys again at their healthy rate and order value. A generator of its own: the
    continuation does not shift the world's draws.
    """
    rng = np.random.default_rng(spec.seed + 2)
    parts = []
    for customer in np.flatnonzero((latent.churn_day >= 0) & (latent.churn_day < spec.days)):
        days = np.arange(latent.churn_day[customer], spec.days)
        counts = rng.poisson(latent.rate0[customer], days.size)
        day = np.repeat(days, counts)
        if day.size:
            parts.append(
                pd.DataFrame(
                    {
                        "day": day,
                        "customer_id": ids[customer],
                        "seconds": rng.integers(8 * 3600, 22 * 3600, day.size),
                        "amount": np.round(latent.spend[customer] * np.exp(rng.normal(0, 0.5, day.size)), 2),
                        "type": "purchase",
                        "channel": CHANNELS[rng.integers(0, 3, day.size)],
                    }
                )
            )
    columns = ["day", "customer_id", "seconds", "amount", "type", "channel"]
    kept = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    kept = _in_time_order(kept, spec.start, "txn_id", f"{spec.id_prefix}K")
    folder = out / "outreach"
    folder.mkdir(parents=True, exist_ok=True)
    kept[["day", "txn_id", "customer_id", "ts", "amount", "type", "channel"]].to_csv(
        folder / "kept_transactions.csv", index=False
    )


def load_truth(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Return (customers truth, episodes, meta) written by generate()."""
    truth = out / "truth"
    customers = pd.read_csv(truth / "customers_truth.csv", keep_default_na=False, na_values=[""])
    episodes = pd.read_csv(truth / "episodes.csv")
    meta = json.loads((truth / "meta.json").read_text())
    return customers, episodes, meta


def oracle_probability(
    out: Path, as_of: date, horizon: int, truth: tuple[pd.DataFrame, pd.DataFrame, dict] | None = None
) -> pd.DataFrame:
    """Return the true P(churn within horizon days after as_of | state on as_of) per signed-up customer.

    Customers already gone on as_of get 1.0. The expectation over future episodes and a future
    decline onset is exact for the simulated process (it knows the latent state, not the future).
    """
    customers, episodes, meta = truth or load_truth(out)
    start = date.fromisoformat(str(meta["start"]))
    world = World(**meta.get("world", {}))  # truth written before worlds existed: the default world
    day = (as_of - start).days
    signed = customers["signup_day"].to_numpy() <= day
    customers = customers[signed].reset_index(drop=True)
    multiplier = np.where(customers["locked_in"].astype(bool), world.locked_multiplier, 1.0)
    started = np.floor(customers["decline_start"].to_numpy()) <= day
    episode_hazard = _past_episode_hazard(np.flatnonzero(signed), episodes, day, horizon, world)
    log_known = _known_log_survival(customers, episode_hazard, started, day, horizon, world, multiplier)
    decline_survival = _future_decline_survival(customers, started, horizon, world, multiplier)
    log_future = _future_episodes_log_survival(customers, horizon, world, multiplier)

    probability = 1 - np.exp(log_known + log_future) * decline_survival
    churn_day = customers["churn_day"].to_numpy()
    gone = (churn_day >= 0) & (churn_day <= day)
    probability = np.where(gone, 1.0, probability)
    churned_in = (churn_day >= 0) & (churn_day <= day + horizon)
    return pd.DataFrame(
        {
            "as_of_date": as_of.isoformat(),
            "customer_id": customers["customer_id"],
            "true_probability": probability,
            "churned_within_horizon": churned_in,
            "already_gone": gone,
        }
    )


def _past_episode_hazard(
    customer_index: np.ndarray, episodes: pd.DataFrame, day: int, horizon: int, world: World
) -> np.ndarray:
    """Return the hazard per customer and day ahead left by the episodes up to `day` (customers: truth indices)."""
    count = len(customer_index)
    steps = np.arange(1, horizon + 1)
    hazard = np.zeros((count, horizon))
    past = episodes[episodes["day"] <= day]
    # Row of each truth index among the signed-up customers (-1: not signed up).
    row_of = np.full(int(customer_index.max()) + 1 if count else 1, -1)
    row_of[customer_index] = np.arange(count)
    past = past[past["customer_index"] < len(row_of)]
    rows = row_of[past["customer_index"].to_numpy()]
    keep = rows >= 0
    age = (day - past["day"].to_numpy()[keep])[:, None] + steps[None, :]
    np.add.at(hazard, rows[keep], past["weight"].to_numpy()[keep][:, None] * episode_kernel(age, world))
    return hazard


def _known_log_survival(
    customers: pd.DataFrame,
    episode_hazard: np.ndarray,
    started: np.ndarray,
    day: int,
    horizon: int,
    world: World,
    multiplier: np.ndarray,
) -> np.ndarray:
    """Return log P(survive the horizon) from what is known: base hazard, past episodes, a decline begun."""
    steps = np.arange(1, horizon + 1)
    days_ahead = day + steps
    decline_start = customers["decline_start"].to_numpy()
    known = customers["base_hazard"].to_numpy()[:, None] + episode_hazard
    progress = np.maximum(0.0, days_ahead[None, :] - np.floor(decline_start)[:, None]) / world.decline_scale_days
    decline_known = np.where(started[:, None], decline_hazard(progress, world), 0.0)
    return -(multiplier[:, None] * (known + decline_known)).sum(axis=1)


def _future_decline_survival(
    customers: pd.DataFrame, started: np.ndarray, horizon: int, world: World, multiplier: np.ndarray
) -> np.ndarray:
    """Return the expected survival factor of a decline not begun yet (1 where one has begun already).

    The onset is memoryless: on day k ahead with probability from Exp(1 / decline_mean), or not within the horizon.
    """
    steps = np.arange(1, horizon + 1)
    lags = np.arange(0, horizon + 1)
    cumulative_hazard = np.cumsum(decline_hazard(lags / world.decline_scale_days, world))
    onset_rate = 1 / customers["decline_mean"].to_numpy()
    onset_probability = np.exp(-onset_rate[:, None] * (steps[None, :] - 1)) - np.exp(
        -onset_rate[:, None] * steps[None, :]
    )
    no_onset = np.exp(-onset_rate * horizon)
    survival_after_onset = np.exp(-multiplier[:, None] * cumulative_hazard[horizon - steps][None, :])
    return np.where(started, 1.0, (onset_probability * survival_after_onset).sum(axis=1) + no_onset)


def _future_episodes_log_survival(
    customers: pd.DataFrame, horizon: int, world: World, multiplier: np.ndarray
) -> np.ndarray:
    """Return log E[survival of future episodes]: each day ahead one starts with the customer's episode rate."""
    # A fixed sample of the weight law: the oracle is the same on every call.
    rng = np.random.default_rng(12345)
    *_, weights = _draw_episode_weight(rng, 4000)
    steps = np.arange(1, horizon + 1)
    lags = np.arange(0, horizon + 1)
    kernel_mass = np.cumsum(episode_kernel(lags, world))  # K(L) for L = 0..horizon
    remaining = kernel_mass[horizon - steps]  # remaining kernel mass for an episode starting on day k ahead
    log_future = np.zeros(len(customers))
    for level in np.unique(multiplier):
        # phi: E[exp(-multiplier * weight * remaining mass)] per start day (the weight's Laplace transform).
        phi = np.exp(-level * weights[None, :] * remaining[:, None]).mean(axis=1)
        selected = multiplier == level
        rate = customers["episode_rate"].to_numpy()[selected]
        log_future[selected] = np.log(1 - rate[:, None] + rate[:, None] * phi[None, :]).sum(axis=1)
    return log_future
