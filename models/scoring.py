"""Score active customers with the champion model; explain each score with its own top drivers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from models.btyd import BGNBD, fit_stored_features, save_fit, saved_fit
from models.reasons import REASON_INPUTS, describe_reason, pattern_reason, risk_flags, worded_once
from models.registry import binned_probabilities, binner, load_champion, predict, predict_matrix
from models.spend import SpendFit, expected_value, fit_stored_spend, save_spend_fit
from models.training import add_model_features
from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError, NoModelError
from pipelines.core.numbers import logit
from pipelines.core.warehouse import declared_names, replace_partition
from pipelines.engines import Compute, choose_compute
from pipelines.features.customer_features import numeric_features
from pipelines.features.population import active_population, customer_value, still_customer_sql

log = logging.getLogger(__name__)

# Driver groups a retention agent can act on: (code, playbook category, feature columns).
DRIVERS: list[tuple[str, str, list[str]]] = [
    (
        "inactivity",
        "inactivity",
        [
            "days_since_last_purchase",
            "days_since_last_activity",
            "overdue_ratio",
            "recency_share_of_life",
            "btyd_p_alive",
            "btyd_p_no_purchase",
        ],
    ),
    (
        "fewer_purchases",
        "declining_spend",
        [
            "purchases_30d",
            "purchases_90d",
            "purchase_trend_ratio",
            "purchase_days_per_30d",
            "purchase_days_decay_30",
            "purchase_days_decay_90",
            "last_gap_days",
            "btyd_expected_purchases",
        ],
    ),
    ("lower_spend", "declining_spend", ["spend_30d", "spend_90d", "spend_trend_ratio"]),
    ("repeat_contacts", "service", ["repeat_contacts_90d", "contacts_30d", "contacts_90d", "transfers_90d"]),
    ("long_waits", "service", ["mean_wait_90d", "max_wait_90d"]),
    ("open_tickets", "service", ["open_tickets"]),
    ("complaints", "service", ["complaints_90d", "days_since_last_complaint", "negative_notes_90d"]),
    ("low_nps", "satisfaction", ["last_nps", "nps_change", "days_since_last_nps"]),
    ("tenure", "inactivity", ["tenure_days", "purchases_total", "purchase_days_total", "first_purchase_age_days"]),
]
CATEGORY = {code: cat for code, cat, _ in DRIVERS}
# The churn_scores columns, as its DDL declares them.
SCORE_COLUMNS = declared_names("churn_scores")
# Effects are measured in log-odds so that they stay visible when a probability is near 0 or 1.
EPS = 1e-9  # calibrated probabilities never reach it; raw model scores (training) are clipped at 1e-6
MIN_EFFECT = 0.05


@dataclass
class ScoreSummary:
    as_of: date
    scored: int
    model_version: str
    mean_probability: float
    bands: dict[str, int]
    message: str | None = None
    value_model: str = ""  # how expected values were made: the spend model, or the fallback and its reason

    def as_dict(self) -> dict:
        return {
            **({"message": self.message} if self.message else {}),
            **({"value_model": self.value_model} if self.value_model else {}),
            "as_of": self.as_of.isoformat(),
            "scored": self.scored,
            "model_version": self.model_version,
            "mean_probability": round(self.mean_probability, 4),
            "bands": self.bands,
        }


def driver_effects(artifact: dict, frame: pd.DataFrame, base: np.ndarray) -> pd.DataFrame:
    """Return, per customer and driver, how much the log-odds drop when that driver is set to typical."""
    features = artifact["features"]
    typical = np.array([[artifact["typical"].get(c, np.nan) for c in features]], dtype=float)
    x = frame[features].to_numpy(float)
    to_bins = binner(artifact)
    base_logit = logit(base, EPS)
    groups = {code: [features.index(c) for c in cols if c in features] for code, _, cols in DRIVERS}
    groups = {code: idx for code, idx in groups.items() if idx}
    if to_bins is not None:  # gradient boosting: on the model's bins, each group re-runs only the trees it touches
        _, altered = binned_probabilities(artifact, to_bins(x), to_bins(typical), groups)
        return pd.DataFrame({c: base_logit - logit(p, EPS) for c, p in altered.items()}, index=frame.index)
    effects = {}
    for code, idx in groups.items():
        changed = x.copy()
        changed[:, idx] = typical[0, idx]
        effects[code] = base_logit - logit(predict_matrix(artifact, changed), EPS)
    return pd.DataFrame(effects, index=frame.index)


def top_reasons(
    frame: pd.DataFrame, effects: pd.DataFrame, k: int = 3, currency: str = "", long_wait_seconds: float = 600
) -> pd.DataFrame:
    """Return reason_1..k texts and reason_codes from the largest positive driver effects.

    A driver is a reason only if it lowers the customer's score when set to typical (the model's view)
    and the customer's own numbers point to risk (no promoter's NPS, no long tenure as a churn reason).
    """
    codes = effects.columns.to_numpy()
    # Rounded so that float noise between runs (threaded prediction) cannot flip near-ties.
    vals = np.round(effects.to_numpy(), 6)
    order = np.argsort(-vals, axis=1, kind="stable")
    usable = np.take_along_axis((vals > MIN_EFFECT) & risk_flags(frame, codes, long_wait_seconds), order, axis=1)
    chosen = usable & (np.cumsum(usable, axis=1) <= k)  # the k strongest usable drivers, strongest first
    # The model's drivers raise the score, yet none is a fact one could tell the customer: say so.
    strongest = np.take_along_axis(vals, order[:, :1], axis=1)[:, 0] if len(codes) else np.zeros(len(frame))
    pattern = ~chosen.any(axis=1) & (strongest > MIN_EFFECT)
    n = len(frame)
    out = {f"reason_{i + 1}": np.full(n, None, dtype=object) for i in range(k)}
    codes_out = np.full(n, "", dtype=object)
    if pattern.any():  # the overall pattern, named by the strongest signal
        strongest_code = codes[order[pattern, 0]]
        out["reason_1"][pattern] = [pattern_reason(c) for c in strongest_code]
        codes_out[pattern] = strongest_code
    # Column-wise: the i-th chosen driver of each row, and its sentence worded once per distinct numbers.
    position = np.cumsum(chosen, axis=1)
    for i in range(k):
        at = chosen & (position == i + 1)
        has = at.any(axis=1)
        if not has.any():
            break
        code = np.full(n, None, dtype=object)
        code[has] = codes[order[has, at[has].argmax(axis=1)]]
        codes_out[has] = np.where(codes_out[has] == "", code[has], codes_out[has] + ";" + code[has])
        for c in np.unique(code[has]):
            rows = has & (code == c)
            cols = [col for col in REASON_INPUTS.get(c, ()) if col in frame.columns]
            values = frame.loc[rows, cols].reset_index(drop=True)
            out[f"reason_{i + 1}"][rows] = worded_once(lambda row, c=c: describe_reason(c, row, currency), values)
    out["reason_codes"] = codes_out
    return pd.DataFrame(out, index=frame.index)


def explained(p: np.ndarray, cfg: Config) -> np.ndarray:
    """Return which scores get reasons (scoring.explain).

    at_risk: every customer an alert list can show on the model's word, i.e. the bands above the lowest
    and scores at or above alerts.probability_threshold. alerts.top_share picks by a share of everyone,
    known only once every chunk is scored, so with it set everyone is explained. Explaining costs one
    prediction per driver group; most customers of a large base sit in the lowest band, whose reasons
    nobody reads (docs/scaling.md).
    """
    a = cfg.alerts
    if cfg.scoring.explain == "all" or a.top_share:
        return np.ones(len(p), bool)
    floor = min([a.probability_threshold, *sorted(a.risk_bands.values())[1:]])
    return p >= floor


def risk_band(p: np.ndarray, bands: dict[str, float]) -> np.ndarray:
    """Return the band name of each probability (highest lower bound first)."""
    ordered = sorted(bands.items(), key=lambda kv: -kv[1])
    out = np.full(len(p), ordered[-1][0], dtype=object)
    for name, low in reversed(ordered):
        out[p >= low] = name
    return out


def score_frame(artifact: dict, feats: pd.DataFrame, cfg: Config, as_of: date) -> pd.DataFrame:
    """Return churn_scores rows (all but the percentile) for active customers among feature rows.

    Works on any slice of customers: the nightly run feeds it chunks, Spark feeds it partitions.
    """
    feats = active_population(feats, cfg).reset_index(drop=True)
    if feats.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    feats = add_model_features(feats, artifact.get("btyd_fit"), cfg.churn.horizon_days)
    p = predict(artifact, feats)
    explain = explained(p, cfg)
    # Not explained (scoring.explain): NULL reasons and codes; explained without a reason: codes ''.
    names = [*(f"reason_{i + 1}" for i in range(3)), "reason_codes"]
    reasons = pd.DataFrame({c: pd.Series(None, index=feats.index, dtype=object) for c in names})
    if explain.any():
        few = feats[explain]
        found = top_reasons(
            few, driver_effects(artifact, few, p[explain]), 3, cfg.alerts.currency, cfg.features.long_wait_seconds
        )
        reasons.loc[explain, found.columns] = found
    value = customer_value(feats).to_numpy(float)
    # Value at risk counts what keeping the customer is worth (expected spend over value.period_days).
    spend_fit = artifact.get("spend_fit") or SpendFit(cfg.value.period_days, None, "no spend model")
    kept = expected_value(feats, artifact.get("btyd_fit"), spend_fit)
    scores = pd.DataFrame(
        {
            "as_of_date": as_of,
            "customer_id": feats["customer_id"].astype(str),
            "churn_probability": p,
            "risk_band": risk_band(p, cfg.alerts.risk_bands),
            "percentile": np.nan,
            "value_12m": value,
            "value_at_risk": p * kept,
            "model_version": artifact["model_version"],
            "expected_value": kept,
        }
    ).join(reasons)
    return scores[SCORE_COLUMNS]


def btyd_fit_or_none(engine: Engine, as_of: date) -> BGNBD | None:
    """Return tonight's BG/NBD fit, or None (logged) when there is nothing to fit."""
    try:
        return fit_stored_features(engine, as_of)
    except ChurnwatchError as exc:
        log.warning("no BG/NBD fit on %s: %s", as_of, exc)
        return None


def tonights_btyd_fit(engine: Engine, as_of: date) -> BGNBD | None:
    """Return the BG/NBD fit the night's scores used (saved by score_customers), else a fresh fit.

    At a million customers a fit takes seconds; monitoring needs the very fit scoring used, not a second one."""
    return saved_fit(engine, as_of) or btyd_fit_or_none(engine, as_of)


def tonights_spend_fit(engine: Engine, as_of: date, bgnbd: BGNBD | None, cfg: Config) -> SpendFit:
    """Return the night's spend model (Gamma-Gamma on the night's features), saved to spend_fits."""
    fit = fit_stored_spend(engine, as_of, bgnbd, cfg.value.period_days, cfg.value.min_repeat_customers)
    if fit.model is None:
        log.warning("no spend model on %s: %s", as_of, fit.reason)
    save_spend_fit(engine, as_of, fit)
    return fit


def score_customers(as_of: date, cfg: Config, engine: Engine, compute: Compute | None = None) -> ScoreSummary:
    """Score every active customer as of a date and replace that date's churn_scores partition.

    Features are read in chunks of `scoring.chunk_rows` customers so memory stays flat as the base
    grows; only the small score rows are kept until the percentile over everyone is known.
    SQL: sql/features/btyd_summary.sql (tonight's BG/NBD fit). Tests: tests/models/test_scoring.py,
    tests/models/test_model.py, tests/engines/test_spark.py. Doc: docs/model.md (Scores and reasons).
    """
    try:
        artifact = load_champion(engine)
    except NoModelError as exc:
        # Cold start: the night still runs; build_alerts falls back to rule triggers and says so.
        replace_partition(engine, "churn_scores", pd.DataFrame(), as_of)
        log.warning("cold start: %s; alerts come from rules only", exc)
        return ScoreSummary(as_of, 0, "none", 0.0, {}, f"cold start, alerts from rules only: {exc}")
    # The BG/NBD inputs come from a fit as of tonight, on everyone who ever bought.
    artifact = {**artifact, "btyd_fit": btyd_fit_or_none(engine, as_of)}
    save_fit(engine, as_of, artifact["btyd_fit"])
    artifact["spend_fit"] = tonights_spend_fit(engine, as_of, artifact["btyd_fit"], cfg)
    compute = compute or choose_compute(cfg, engine)
    scores = compute.score_features(
        as_of,
        lambda chunk: score_frame(artifact, numeric_features(chunk), cfg, as_of),
        SCORE_COLUMNS,
        still_customer_sql(cfg),
    )
    replace_partition(engine, "churn_scores", scores, as_of)
    if scores.empty:
        return ScoreSummary(as_of, 0, artifact["model_version"], 0.0, {}, value_model=_value_model(artifact))
    bands = scores["risk_band"].value_counts().to_dict()
    return ScoreSummary(
        as_of,
        len(scores),
        artifact["model_version"],
        float(scores["churn_probability"].mean()),
        {k: int(v) for k, v in bands.items()},
        value_model=_value_model(artifact),
    )


def _value_model(artifact: dict) -> str:
    """Return how the night's expected values were made, for the run summary."""
    fit: SpendFit = artifact["spend_fit"]
    if fit.model is None:
        return f"trailing spend over {fit.period_days} days ({fit.reason})"
    m = fit.model
    return f"gamma_gamma p={m.p:.3f} q={m.q:.3f} gamma={m.gamma:.2f} over {fit.period_days} days"
