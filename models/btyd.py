"""Buy-till-you-die: the BG/NBD model (Fader, Hardie & Lee 2005), fitted by maximum likelihood with scipy.

A customer buys at rate lambda while alive and may drop out after each purchase with probability p;
lambda ~ Gamma(r, alpha) and p ~ Beta(a, b) across customers. The per-customer summary is
(x, t_x, T): repeat purchase days, days from the first to the last purchase day, and days from the
first purchase day to the as-of date. It comes from the feature SQL (`purchase_days_total - 1`,
`purchase_span_days`, `first_purchase_age_days`), so no transaction history is loaded into pandas.

The fit works on the distinct (x, t_x, T) triples with their counts, so a million customers cost as
much as their few hundred thousand distinct histories. Time is measured in weeks inside the fit (the
parameters stay near 1 and the optimiser well conditioned); every public function takes days.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1

from pipelines.core.errors import ChurnwatchError

DAYS_PER_UNIT = 7.0
# Columns of the feature SQL that give the BG/NBD summary.
SUMMARY_COLUMNS = ["purchase_days_total", "purchase_span_days", "first_purchase_age_days"]
# Model inputs derived from a fitted BG/NBD, added to the feature frame by btyd_features().
BTYD_FEATURES = ["btyd_p_alive", "btyd_expected_purchases", "btyd_p_no_purchase"]


@dataclass(frozen=True)
class BGNBD:
    """Fitted BG/NBD parameters; alpha is in days."""

    r: float
    alpha: float
    a: float
    b: float
    n_customers: int = 0
    log_likelihood: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def levels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the distinct values and, per row, the position of its value among them."""
    distinct, position = np.unique(values, return_inverse=True)
    return distinct, position.ravel()


def _log_likelihood_and_gradient(
    log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray, by_level=None
) -> tuple[float, np.ndarray]:
    """Return the weighted log-likelihood and its gradient with respect to (log r, log alpha, log a, log b).

    The analytic gradient lets the optimiser take one likelihood pass per step instead of five (a finite-
    difference gradient over four parameters): at a million customers that is most of the fit's time.
    A term of x alone (or of T, or t_x) is computed once per distinct value and gathered, the same
    operations in the same order as row by row, so the same bits (tests/models/test_btyd.py): whole days
    give a few hundred distinct values for 650k distinct histories. by_level: levels() of x, t_x and T.
    """
    r, alpha, a, b = np.exp(log_params)
    (xu, xi), (tu, ti), (Tu, Ti) = by_level or (levels(x), levels(t_x), levels(T))
    repeat = x > 0
    r_x = (r + xu)[xi]
    a1 = (gammaln(r + xu) - gammaln(r) + r * np.log(alpha))[xi]
    a2 = (gammaln(a + b) + gammaln(b + xu) - gammaln(b) - gammaln(a + b + xu))[xi]
    log_alpha_T = np.log(alpha + Tu)[Ti]
    log_alpha_tx = np.log(alpha + tu)[ti]
    a3 = -r_x * log_alpha_T
    b_x1 = np.maximum(b + xu - 1, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(repeat, (np.log(a) - np.log(b_x1))[xi] - r_x * log_alpha_tx, -np.inf)
    tail = np.logaddexp(a3, a4)
    share3 = np.exp(a3 - tail)  # how much of the last term is "still alive", per customer
    share4 = np.where(repeat, np.exp(np.where(repeat, a4, 0.0) - tail), 0.0)
    d_r = (digamma(r + xu) - digamma(r) + np.log(alpha))[xi] - share3 * log_alpha_T - share4 * log_alpha_tx
    d_alpha = r / alpha - share3 * r_x / (alpha + Tu)[Ti] - share4 * r_x / (alpha + tu)[ti]
    d_a = (digamma(a + b) - digamma(a + b + xu))[xi] + share4 / a
    d_b = (digamma(a + b) + digamma(b + xu) - digamma(b) - digamma(a + b + xu))[xi] - share4 / b_x1[xi]
    grad = np.array([r * np.sum(w * d_r), alpha * np.sum(w * d_alpha), a * np.sum(w * d_a), b * np.sum(w * d_b)])
    return float(np.sum(w * (a1 + a2 + tail))), grad


# A warm start stops only where the cold starts would (default ftol 2.2e-9, gtol 1e-5) or closer.
WARM_TOL = {"ftol": 1e-12, "gtol": 1e-8}


def summary_counts(x, t_x, T) -> pd.DataFrame:
    """Return the distinct (x, t_x, T) triples in model units (weeks) with their counts."""
    frame = pd.DataFrame({"x": np.asarray(x, float), "t_x": np.asarray(t_x, float), "T": np.asarray(T, float)}).dropna()
    grouped = frame.groupby(["x", "t_x", "T"], sort=True).size().rename("n").reset_index()
    grouped[["t_x", "T"]] /= DAYS_PER_UNIT
    return grouped


def fit_bgnbd(x, t_x, T, weights=None, penalizer: float = 0.0, start: BGNBD | None = None) -> BGNBD:
    """Return maximum-likelihood BG/NBD parameters for per-customer summaries given in days.

    x: repeat purchase days; t_x: days from the first to the last purchase day; T: days from the
    first purchase day to the as-of date. With `weights`, each row stands for that many customers.
    `penalizer` adds an L2 penalty on the parameters (as lifetimes does) for tiny or degenerate data.
    `start` (an earlier night's fit) is tried first, with tighter tolerances than the cold starts: one day
    more of history moves the optimum little, so it converges in a few steps. If it does not converge,
    the two cold starts run as without it.
    """
    x = np.asarray(x, float)
    t_x = np.asarray(t_x, float) / DAYS_PER_UNIT
    T = np.asarray(T, float) / DAYS_PER_UNIT
    w = np.ones_like(x) if weights is None else np.asarray(weights, float)
    ok = ~(np.isnan(x) | np.isnan(t_x) | np.isnan(T))
    # Sorted, so the likelihood's sums (and the fitted parameters) do not depend on the input's row order.
    order = np.lexsort((T[ok], t_x[ok], x[ok]))
    x, t_x, T, w = x[ok][order], t_x[ok][order], T[ok][order], w[ok][order]
    if len(x) == 0 or w.sum() < 2:
        raise ChurnwatchError("BG/NBD needs at least 2 customers with a purchase")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(T < t_x - 1e-9):
        raise ChurnwatchError("BG/NBD summary is inconsistent: need x >= 0 and 0 <= t_x <= T")
    total = w.sum()
    by_level = (levels(x), levels(t_x), levels(T))

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = _log_likelihood_and_gradient(log_params, x, t_x, T, w, by_level)
        params = np.exp(log_params)
        penalty = penalizer * float(np.sum(params**2))
        return -value / total + penalty, -grad / total + penalizer * 2 * params**2

    best = None
    if start is not None:
        warm = np.log([start.r, start.alpha / DAYS_PER_UNIT, start.a, start.b])
        if np.all(np.isfinite(warm)) and np.all(np.abs(warm) < 12):
            res = minimize(objective, warm, jac=True, method="L-BFGS-B", bounds=[(-12, 12)] * 4, options=WARM_TOL)
            if res.success and np.isfinite(res.fun):
                best = res
    cold_starts = (np.zeros(4), np.log([0.5, max(float(np.average(T, weights=w)), 1.0), 1.0, 2.0]))
    for cold in () if best is not None else cold_starts:
        res = minimize(objective, cold, jac=True, method="L-BFGS-B", bounds=[(-12, 12)] * 4)
        if best is None or res.fun < best.fun:
            best = res
    if not np.isfinite(best.fun):
        raise ChurnwatchError("BG/NBD fit did not converge (the likelihood is not finite)")
    r, alpha, a, b = np.exp(best.x)
    return BGNBD(
        r=float(r),
        alpha=float(alpha) * DAYS_PER_UNIT,
        a=float(a),
        b=float(b),
        n_customers=int(round(total)),
        log_likelihood=float(-best.fun * total),
    )


def _odds_dead(m: BGNBD, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Return P(dead) / P(alive) given the history; zero for customers without a repeat purchase."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        odds = (m.a / np.maximum(m.b + x - 1, 1e-12)) * np.exp((m.r + x) * np.log((m.alpha + T) / (m.alpha + t_x)))
    return np.where(x > 0, odds, 0.0)


def p_alive(m: BGNBD, x, t_x, T) -> np.ndarray:
    """Return P(still a customer at T | x, t_x, T)."""
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    return 1.0 / (1.0 + _odds_dead(m, x, t_x, T))


def p_no_purchase(m: BGNBD, horizon_days: float, x, t_x, T) -> np.ndarray:
    """Return P(no purchase in the next horizon_days | x, t_x, T): dead, or alive and silent.

    An alive customer's rate has the posterior Gamma(r + x, alpha + T), and in BG/NBD a customer only
    drops out right after a purchase, so silence for t days while alive has probability
    ((alpha + T) / (alpha + T + t)) ** (r + x).
    """
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    alive = p_alive(m, x, t_x, T)
    silent = np.exp((m.r + x) * np.log((m.alpha + T) / (m.alpha + T + horizon_days)))
    return (1.0 - alive) + alive * silent


def expected_purchases(m: BGNBD, horizon_days: float, x, t_x, T) -> np.ndarray:
    """Return E[purchases in the next horizon_days | x, t_x, T] (FHL 2005, eq. 10)."""
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    t = float(horizon_days)
    z = t / (m.alpha + T + t)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        head = (m.a + m.b + x - 1) / (m.a - 1)
        tail = 1 - np.exp((m.r + x) * np.log((m.alpha + T) / (m.alpha + T + t))) * hyp2f1(
            m.r + x, m.b + x, m.a + m.b + x - 1, z
        )
        value = head * tail / (1 + _odds_dead(m, x, t_x, T))
    return np.where(np.isfinite(value), np.maximum(value, 0.0), np.nan)


def summary_from_features(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (x, t_x, T) in days from feature rows; NaN for customers who never bought."""
    days = frame["purchase_days_total"].to_numpy(float)
    bought = days >= 1
    x = np.where(bought, days - 1, np.nan)
    t_x = np.where(bought, frame["purchase_span_days"].to_numpy(float), np.nan)
    T = np.where(bought, frame["first_purchase_age_days"].to_numpy(float), np.nan)
    return x, t_x, T


def fit_from_features(frame: pd.DataFrame) -> BGNBD:
    """Return a BG/NBD fitted on every customer with a purchase among feature rows (one as-of date)."""
    x, t_x, T = summary_from_features(frame)
    counts = summary_counts(x, t_x, T)
    return fit_bgnbd(counts["x"], counts["t_x"] * DAYS_PER_UNIT, counts["T"] * DAYS_PER_UNIT, counts["n"])


def btyd_features(frame: pd.DataFrame, m: BGNBD, horizon_days: int) -> pd.DataFrame:
    """Return frame with the BTYD_FEATURES columns added (NaN for customers who never bought)."""
    x, t_x, T = summary_from_features(frame)
    out = frame.copy()
    out["btyd_p_alive"] = np.where(np.isnan(x), np.nan, p_alive(m, x, t_x, T))
    out["btyd_expected_purchases"] = np.where(np.isnan(x), np.nan, expected_purchases(m, horizon_days, x, t_x, T))
    out["btyd_p_no_purchase"] = np.where(np.isnan(x), np.nan, p_no_purchase(m, horizon_days, x, t_x, T))
    return out


def fit_stored_features(engine, as_of) -> BGNBD:
    """Return a BG/NBD fitted on the stored customer_features partition of as_of (aggregated in SQL).

    It starts from the latest fit saved before as_of (btyd_fits), if any: a re-run of the night starts
    from the same earlier fit, so it gives the same parameters."""
    from pipelines.core.warehouse import read_bulk, sql_text

    counts = read_bulk(engine, sql_text("features/btyd_summary.sql"), {"as_of": as_of})
    if counts.empty:
        raise ChurnwatchError(f"no customer with a purchase in customer_features on {as_of}")
    return fit_bgnbd(
        counts["x"].astype(float),
        counts["t_x"].astype(float),
        counts["t_cal"].astype(float),
        counts["n"].astype(float),
        start=previous_fit(engine, as_of),
    )


def previous_fit(engine, as_of) -> BGNBD | None:
    """Return the latest fit saved for a night before as_of, or None."""
    return _stored_fit(engine, "as_of_date < :d ORDER BY as_of_date DESC LIMIT 1", as_of)


def save_fit(engine, as_of, fit: BGNBD | None) -> None:
    """Replace the btyd_fits partition of as_of with the night's fit (no fit: an empty partition)."""
    from pipelines.core.warehouse import replace_partition

    rows = pd.DataFrame([{"as_of_date": as_of, **asdict(fit)}]) if fit is not None else pd.DataFrame()
    replace_partition(engine, "btyd_fits", rows, as_of)


def saved_fit(engine, as_of) -> BGNBD | None:
    """Return the fit the night's scores used (btyd_fits), or None if none was saved."""
    return _stored_fit(engine, "as_of_date = :d", as_of)


def _stored_fit(engine, where: str, as_of) -> BGNBD | None:
    """Return the first btyd_fits row matching where (a constant of this module, bound :d), or None."""
    from pipelines.core.warehouse import read_frame

    rows = read_frame(
        engine, f"SELECT r, alpha, a, b, n_customers, log_likelihood FROM btyd_fits WHERE {where}", {"d": as_of}
    )
    if rows.empty:
        return None
    row = rows.iloc[0]
    return BGNBD(
        float(row["r"]),
        float(row["alpha"]),
        float(row["a"]),
        float(row["b"]),
        int(row["n_customers"]),
        float(row["log_likelihood"]),
    )
