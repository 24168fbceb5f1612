"""BG/NBD: the fit against published estimates and a reference implementation, and the summary from SQL."""

from __future__ import annotations

import importlib.util
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.btyd import BGNBD, expected_purchases, fit_bgnbd, fit_stored_features, p_alive, p_no_purchase
from pipelines.core.errors import ChurnwatchError
from pipelines.features.customer_features import build_features, load_features
from tests.conftest import stg


def _cdnow_summary() -> pd.DataFrame:
    """The CDNOW sample (2,357 customers, weeks) that Fader, Hardie & Lee (2005) fitted; shipped by lifetimes."""
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None, "lifetimes (requirements-dev.txt) is the reference implementation; make test installs it"
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets"
    return pd.read_csv(folder / "cdnow_customers_summary.csv")


def test_fit_reproduces_the_published_cdnow_estimates():
    d = _cdnow_summary()
    m = fit_bgnbd(d["frequency"], d["recency"] * 7, d["T"] * 7)
    # FHL 2005, Table/Figure: r = 0.243, alpha = 4.414 (weeks), a = 0.793, b = 2.426.
    assert m.r == pytest.approx(0.243, abs=1e-3)
    assert m.alpha / 7 == pytest.approx(4.414, abs=2e-3)
    assert m.a == pytest.approx(0.793, abs=1e-3)
    assert m.b == pytest.approx(2.426, abs=2e-3)
    assert m.n_customers == 2357


def test_fit_and_predictions_match_the_reference_implementation():
    from lifetimes import BetaGeoFitter

    d = _cdnow_summary()
    m = fit_bgnbd(d["frequency"], d["recency"] * 7, d["T"] * 7)
    ref = BetaGeoFitter().fit(d["frequency"], d["recency"], d["T"])
    assert m.log_likelihood == pytest.approx(-9582.43, abs=0.05)
    x, t_x, T = d["frequency"].to_numpy(), d["recency"].to_numpy(), d["T"].to_numpy()
    np.testing.assert_allclose(p_alive(m, x, t_x * 7, T * 7), ref.conditional_probability_alive(x, t_x, T), atol=1e-4)
    np.testing.assert_allclose(
        expected_purchases(m, 39 * 7, x, t_x * 7, T * 7),
        ref.conditional_expected_number_of_purchases_up_to_time(39, x, t_x, T),
        atol=2e-3,
    )


def test_fit_does_not_depend_on_row_order():
    """The SQL summary comes back in any order; the fit (and so every re-run's scores) must be bit-identical."""
    d = _cdnow_summary()
    shuffled = d.sample(frac=1.0, random_state=3)
    a = fit_bgnbd(d["frequency"], d["recency"] * 7, d["T"] * 7)
    b = fit_bgnbd(shuffled["frequency"], shuffled["recency"] * 7, shuffled["T"] * 7)
    assert a == b


def test_a_warm_start_from_the_night_before_reaches_the_cold_fit_in_fewer_steps(monkeypatch):
    """The nightly fit starts from the previous night's parameters: same optimum, fewer likelihood passes."""
    import models.btyd as btyd

    x, t_x, T, _ = _simulate(20_000, 0.6, 20.0, 0.8, 3.0, days=400, horizon=60, seed=5)
    yesterday = fit_bgnbd(x, np.minimum(t_x, T - 1), T - 1)
    calls = []
    real = btyd._log_likelihood_and_gradient
    monkeypatch.setattr(btyd, "_log_likelihood_and_gradient", lambda *a: calls.append(1) or real(*a))
    cold = fit_bgnbd(x, t_x, T)
    cold_calls, calls[:] = len(calls), []
    warm = fit_bgnbd(x, t_x, T, start=yesterday)
    assert len(calls) < cold_calls / 2
    assert warm.log_likelihood >= cold.log_likelihood - 1e-6 * abs(cold.log_likelihood)
    for k in ("r", "alpha", "a", "b"):
        assert getattr(warm, k) == pytest.approx(getattr(cold, k), rel=1e-3)
    assert fit_bgnbd(x, t_x, T, start=yesterday) == warm  # the same start gives the same bits


def test_a_useless_warm_start_falls_back_to_the_cold_starts():
    x, t_x, T, _ = _simulate(5_000, 0.6, 20.0, 0.8, 3.0, days=400, horizon=60, seed=6)
    cold = fit_bgnbd(x, t_x, T)
    for start in (BGNBD(r=float("nan"), alpha=1.0, a=1.0, b=1.0), BGNBD(r=1e9, alpha=1.0, a=1.0, b=1.0)):
        assert fit_bgnbd(x, t_x, T, start=start) == cold


def _simulate(n: int, r: float, alpha: float, a: float, b: float, days: int, horizon: int, seed: int):
    """Simulate the BG/NBD process per customer: (x, t_x, T) at `days`, and whether they bought in the horizon."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    start = rng.integers(0, days // 2, n).astype(float)  # first purchase day
    last, x, alive, t = start.copy(), np.zeros(n), np.ones(n, bool), start.copy()
    bought_after = np.zeros(n, bool)
    while alive.any():
        t = t + rng.exponential(1 / np.maximum(lam, 1e-12))
        in_window = alive & (t <= days)
        future = alive & (t > days) & (t <= days + horizon)
        bought_after |= future
        x[in_window] += 1
        last[in_window] = t[in_window]
        # A customer may drop out after each purchase; past the horizon nothing more matters.
        alive &= (t <= days) & (rng.random(n) >= p)
    return x, np.floor(last) - np.floor(start), days - np.floor(start), bought_after


def test_fit_recovers_simulated_parameters_and_its_probabilities_are_calibrated():
    x, t_x, T, bought = _simulate(40_000, r=0.8, alpha=20.0, a=0.9, b=4.0, days=540, horizon=90, seed=3)
    m = fit_bgnbd(x, t_x, T)
    assert m.r == pytest.approx(0.8, rel=0.1) and m.alpha == pytest.approx(20.0, rel=0.15)
    assert m.a == pytest.approx(0.9, rel=0.2) and m.b == pytest.approx(4.0, rel=0.25)
    p = p_no_purchase(m, 90, x, t_x, T)
    silent = ~bought
    # Calibrated overall and by decile of the prediction.
    assert p.mean() == pytest.approx(silent.mean(), abs=0.01)
    order = np.argsort(p)
    for part in np.array_split(order, 10):
        assert p[part].mean() == pytest.approx(silent[part].mean(), abs=0.03)


def test_probabilities_by_hand_for_a_one_time_buyer():
    from models.btyd import BGNBD

    m = BGNBD(r=0.5, alpha=10.0, a=1.0, b=3.0)
    # x = 0: never dropped out (drop-out only follows a repeat purchase), silent with ((a+T)/(a+T+t))^r.
    assert p_alive(m, [0], [0], [50])[0] == 1.0
    assert p_no_purchase(m, 30, [0], [0], [50])[0] == pytest.approx((60 / 90) ** 0.5)
    # x = 2, t_x = 20, T = 50: odds of being dead = a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x).
    odds = 1.0 / 4.0 * (60 / 30) ** 2.5
    assert p_alive(m, [2], [20], [50])[0] == pytest.approx(1 / (1 + odds))


def test_fit_refuses_inconsistent_or_empty_summaries():
    with pytest.raises(ChurnwatchError, match="at least 2 customers"):
        fit_bgnbd([], [], [])
    with pytest.raises(ChurnwatchError, match="t_x <= T"):
        fit_bgnbd([1, 2], [30, 40], [20, 50])


def test_summary_comes_from_the_feature_sql(engine, cfg):
    """Purchase days, span, age and decayed counts by hand; the SQL aggregate feeds the fit."""
    rows = [
        {"customer_id": "A", "ts": datetime(2025, 3, 1, 9), "amount": 10.0, "type": "purchase"},
        {"customer_id": "A", "ts": datetime(2025, 3, 1, 15), "amount": 5.0, "type": "purchase"},  # same day
        {"customer_id": "A", "ts": datetime(2025, 3, 11), "amount": 10.0, "type": "purchase"},
        {"customer_id": "A", "ts": datetime(2025, 3, 31), "amount": 10.0, "type": "refund"},
        {"customer_id": "B", "ts": datetime(2025, 3, 21), "amount": 7.0, "type": "purchase"},
        {"customer_id": "A", "ts": datetime(2025, 4, 2), "amount": 9.0, "type": "purchase"},  # after the date
    ]
    stg(engine, "stg_transactions", rows)
    as_of = date(2025, 3, 31)
    build_features(as_of, cfg, engine)
    f = load_features(engine, as_of).set_index("customer_id")
    assert f.loc["A", "purchase_days_total"] == 2 and f.loc["A", "purchase_span_days"] == 10
    assert f.loc["A", "first_purchase_age_days"] == 30 and f.loc["B", "first_purchase_age_days"] == 10
    assert f.loc["A", "purchase_days_decay_30"] == pytest.approx(np.exp(-1) + np.exp(-20 / 30), abs=1e-6)
    assert f.loc["B", "purchase_days_decay_90"] == pytest.approx(np.exp(-10 / 90), abs=1e-6)
    m = fit_stored_features(engine, as_of)
    assert m.n_customers == 2
    with pytest.raises(ChurnwatchError, match="no customer with a purchase"):
        fit_stored_features(engine, date(2025, 1, 1))


def test_the_analytic_gradient_matches_finite_differences():
    from scipy.optimize import approx_fprime

    from models.btyd import _log_likelihood_and_gradient

    d = _cdnow_summary()
    x, t_x, T = d["frequency"].to_numpy(float), d["recency"].to_numpy(float), d["T"].to_numpy(float)
    w = np.ones_like(x)
    for point in (np.log([0.243, 4.414, 0.793, 2.426]), np.zeros(4), np.log([2.0, 30.0, 0.2, 5.0])):
        _, grad = _log_likelihood_and_gradient(point, x, t_x, T, w)
        numeric = approx_fprime(point, lambda p: _log_likelihood_and_gradient(p, x, t_x, T, w)[0], 1e-6)
        np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-3)


def _row_by_row(log_params, x, t_x, T, w):
    """The likelihood and gradient computed on every row (the formula before terms were shared by level)."""
    from scipy.special import digamma, gammaln

    r, alpha, a, b = np.exp(log_params)
    repeat = x > 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    log_alpha_T = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + t_x)
    a3 = -(r + x) * log_alpha_T
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(repeat, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * log_alpha_tx, -np.inf)
    tail = np.logaddexp(a3, a4)
    share3 = np.exp(a3 - tail)
    share4 = np.where(repeat, np.exp(np.where(repeat, a4, 0.0) - tail), 0.0)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - share3 * log_alpha_T - share4 * log_alpha_tx
    d_alpha = r / alpha - share3 * (r + x) / (alpha + T) - share4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + share4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - share4 / np.maximum(b + x - 1, 1e-12)
    grad = np.array([r * np.sum(w * d_r), alpha * np.sum(w * d_alpha), a * np.sum(w * d_a), b * np.sum(w * d_b)])
    return float(np.sum(w * (a1 + a2 + tail))), grad


def test_terms_shared_by_level_give_the_same_bits_as_row_by_row():
    """Each term of x, t_x or T alone is computed once per distinct value: value and gradient are bit-identical
    to the row-by-row formula (customers with and without repeats, weights, a one-day history)."""
    from models.btyd import _log_likelihood_and_gradient

    x, t_x, T, _ = _simulate(5_000, 0.6, 20.0, 0.8, 3.0, days=400, horizon=60, seed=9)
    x, t_x, T = np.append(x, 0.0) / 1, np.append(t_x, 0.0) / 7, np.append(T, 1.0) / 7
    w = np.random.default_rng(1).integers(1, 4, len(x)).astype(float)
    assert len(np.unique(T)) < len(T) / 10 and (x == 0).any() and (x > 0).any()
    for point in (np.log([0.243, 4.414, 0.793, 2.426]), np.zeros(4), np.log([2.0, 30.0, 0.2, 5.0])):
        value, grad = _log_likelihood_and_gradient(point, x, t_x, T, w)
        plain_value, plain_grad = _row_by_row(point, x, t_x, T, w)
        assert value == plain_value and np.array_equal(grad, plain_grad)
