"""Gamma-Gamma spend model: the published CDNOW fit, recovery of known parameters, hand-computed values,
the fallbacks, and the fit saved next to btyd_fits on a real DuckDB warehouse."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.btyd import BGNBD, expected_purchases
from models.spend import (
    GammaGamma,
    SpendFit,
    _log_likelihood_and_gradient,
    expected_order_value,
    expected_value,
    fit_gamma_gamma,
    fit_spend,
    fit_stored_spend,
    log_likelihood,
    save_spend_fit,
)
from pipelines.core.errors import ChurnwatchError
from pipelines.core.warehouse import insert_frame, read_frame

CDNOW = Path(__file__).with_name("cdnow_repeat_spend.csv")
AS_OF = date(2026, 3, 1)


def test_fit_reproduces_the_published_cdnow_estimates():
    """Fader & Hardie, "The Gamma-Gamma Model of Monetary Value" (2013): p = 6.25, q = 3.74, gamma = 15.44."""
    d = pd.read_csv(CDNOW, comment="#")
    m = fit_gamma_gamma(d["x"], d["zbar"])
    assert m.n_customers == 946
    assert m.p == pytest.approx(6.25, abs=0.01)
    assert m.q == pytest.approx(3.74, abs=0.01)
    assert m.gamma == pytest.approx(15.44, abs=0.02)
    # The population mean spend p gamma / (q - 1), and the fit is the maximum: any nudge lowers the likelihood.
    assert m.population_mean == pytest.approx(6.25 * 15.44 / 2.74, rel=2e-3)
    for nudged in (GammaGamma(m.p * 1.01, m.q, m.gamma), GammaGamma(m.p, m.q * 0.99, m.gamma)):
        assert log_likelihood(nudged, d["x"], d["zbar"]) < m.log_likelihood
    assert log_likelihood(m, d["x"], d["zbar"]) == pytest.approx(m.log_likelihood, abs=1e-6)


def test_fit_recovers_known_parameters_from_simulated_spend():
    rng = np.random.default_rng(7)
    p, q, gamma, n = 4.0, 5.0, 80.0, 20_000
    nu = rng.gamma(q, 1 / gamma, n)  # each customer's scale, Gamma(q, rate gamma)
    x = 1 + rng.poisson(3, n)
    spend = [rng.gamma(p, 1 / v, k).mean() for v, k in zip(nu, x)]
    m = fit_gamma_gamma(x, spend)
    assert m.p == pytest.approx(p, rel=0.08)
    assert m.q == pytest.approx(q, rel=0.08)
    assert m.gamma == pytest.approx(gamma, rel=0.1)
    # The currency does not matter: spend in cents gives the same p and q, gamma x 100.
    cents = fit_gamma_gamma(x, np.asarray(spend) * 100)
    assert cents.p == pytest.approx(m.p, rel=1e-4) and cents.gamma == pytest.approx(m.gamma * 100, rel=1e-4)


def test_likelihood_and_gradient_by_hand():
    # x = 1: spend ~ Gamma(p, nu), nu ~ Gamma(q, gamma), so f(m) = B(p, q)^-1 gamma^q m^(p-1) / (gamma + m)^(p+q).
    # p = 2, q = 3, gamma = 10, m = 5: Gamma(5) / (Gamma(2) Gamma(3)) = 12; 12 * 1000 * 5 / 15^5 = 0.0790123.
    assert log_likelihood(GammaGamma(2.0, 3.0, 10.0), [1], [5.0]) == pytest.approx(np.log(60000 / 759375), abs=1e-9)
    x, m, w = np.array([1.0, 3.0, 7.0]), np.array([5.0, 20.0, 8.0]), np.array([1.0, 2.0, 1.0])
    at = np.log([2.0, 3.0, 10.0])
    _, grad = _log_likelihood_and_gradient(at, x, m, w)
    step = 1e-6
    numeric = [
        (_log_likelihood_and_gradient(at + e, x, m, w)[0] - _log_likelihood_and_gradient(at - e, x, m, w)[0])
        / (2 * step)
        for e in np.eye(3) * step
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5)


def test_conditional_expected_order_value_by_hand():
    model = GammaGamma(6.25, 3.74, 15.44)
    # (p (gamma + x m)) / (p x + q - 1) = 6.25 * (15.44 + 2 * 22.35) / (12.5 + 2.74) = 375.875 / 15.24.
    assert expected_order_value(model, 2, 22.35) == pytest.approx(375.875 / 15.24, abs=1e-9)
    population = 6.25 * 15.44 / 2.74
    # No repeat purchase, or nothing known: the population mean; a non-positive mean counts as 0.
    np.testing.assert_allclose(expected_order_value(model, [0, np.nan, 3], [50.0, 10.0, np.nan]), population)
    assert expected_order_value(model, 4, -5.0) == pytest.approx(6.25 * 15.44 / (25 + 2.74), abs=1e-9)
    # The more purchases, the closer to the customer's own mean.
    few, many = expected_order_value(model, [2, 200], [100.0, 100.0])
    assert population < few < many < 100.0


def _features(rows: list[dict]) -> pd.DataFrame:
    """Feature rows with the BG/NBD and spend columns (days, days, days, spend)."""
    return pd.DataFrame(
        [
            {
                "as_of_date": AS_OF,
                "customer_id": r["id"],
                "purchase_days_total": r["days"],
                "purchase_span_days": r.get("span", 0),
                "first_purchase_age_days": r.get("age", 100),
                "purchases_total": r.get("purchases", r["days"]),
                "avg_order_value": r.get("aov"),
                "spend_365d": r.get("spend_365d", 0.0),
            }
            for r in rows
        ]
    )


def test_expected_value_is_expected_purchases_times_order_value():
    bgnbd = BGNBD(r=0.5, alpha=30.0, a=0.8, b=2.5)
    model = GammaGamma(6.25, 3.74, 15.44)
    fit = SpendFit(180, model)
    frame = _features(
        [
            {"id": "A", "days": 5, "span": 120, "age": 200, "purchases": 10, "aov": 30.0},  # 60 per purchase day
            {"id": "B", "days": 1, "span": 0, "age": 40, "aov": 500.0},  # one purchase day: population mean
            {"id": "C", "days": 0, "aov": None, "spend_365d": 0.0},  # never bought
        ]
    )
    value = expected_value(frame, bgnbd, fit)
    purchases_a = expected_purchases(bgnbd, 180, 4, 120, 200)
    purchases_b = expected_purchases(bgnbd, 180, 0, 0, 40)
    assert value[0] == pytest.approx(purchases_a * 6.25 * (15.44 + 5 * 60.0) / (6.25 * 5 + 2.74), rel=1e-9)
    assert value[1] == pytest.approx(purchases_b * model.population_mean, rel=1e-9)
    assert value[2] == 0.0
    # A longer period expects more.
    assert expected_value(frame, bgnbd, SpendFit(365, model))[0] > value[0]


def test_fallbacks_use_trailing_spend_scaled_to_the_period_and_say_why():
    bgnbd = BGNBD(r=0.5, alpha=30.0, a=0.8, b=2.5)
    days, mean = np.array([3.0, 4.0, 1.0]), np.array([10.0, 20.0, 5.0])
    no_btyd = fit_spend(days, mean, None, 365, 2)
    assert no_btyd.model is None and "no BG/NBD fit" in no_btyd.reason
    few = fit_spend(days, mean, bgnbd, 365, 50)
    assert few.method == "trailing_spend" and "2 repeat customers" in few.reason
    assert "value.min_repeat_customers (50)" in few.reason
    same = fit_spend(np.array([2.0, 3.0]), np.array([10.0, 10.0]), bgnbd, 365, 2)
    assert same.model is None and "different positive mean spends" in same.reason
    frame = _features([{"id": "A", "days": 5, "aov": 30.0, "spend_365d": 730.0}, {"id": "B", "days": 2, "aov": 1.0}])
    np.testing.assert_allclose(expected_value(frame, bgnbd, SpendFit(180, None, "x")), [360.0, 0.0])
    with pytest.raises(ChurnwatchError, match="at least 2 customers"):
        fit_gamma_gamma([2], [10.0])


def test_fit_from_stored_features_is_point_in_time_and_saved(engine):
    rng = np.random.default_rng(3)
    n = 300
    rows = [
        {"id": f"C{i}", "days": int(d), "purchases": int(d) * 2, "aov": float(a), "span": 50, "age": 300}
        for i, (d, a) in enumerate(zip(1 + rng.poisson(2, n), rng.gamma(5, 8, n)))
    ]
    today = _features(rows)
    # A later partition with wildly different spend must not move tonight's fit.
    later = today.assign(as_of_date=date(2026, 4, 1), avg_order_value=today["avg_order_value"] * 1000)
    with engine.begin() as conn:
        insert_frame(conn, "customer_features", pd.concat([today, later]))
    bgnbd = BGNBD(r=0.5, alpha=30.0, a=0.8, b=2.5)
    fit = fit_stored_spend(engine, AS_OF, bgnbd, 365, 50)
    repeat = today["purchase_days_total"] >= 2
    expected = fit_gamma_gamma(
        today.loc[repeat, "purchase_days_total"], 2 * today.loc[repeat, "avg_order_value"]
    )  # two orders per purchase day
    assert fit.model is not None and fit.model.n_customers == int(repeat.sum())
    assert fit.model.p == pytest.approx(expected.p, rel=1e-6) and fit.model.gamma == pytest.approx(expected.gamma)
    saved = "SELECT method, period_days, p, reason FROM spend_fits WHERE as_of_date = :d"
    save_spend_fit(engine, AS_OF, fit)
    save_spend_fit(engine, AS_OF, fit)  # a re-run replaces the night's row
    again = read_frame(engine, saved, {"d": AS_OF})
    assert len(again) == 1 and again["period_days"][0] == 365 and again["method"][0] == "gamma_gamma"
    assert again["p"][0] == pytest.approx(fit.model.p, abs=1e-6)
    save_spend_fit(engine, AS_OF, SpendFit(365, None, "too few"))
    fallback = read_frame(engine, saved, {"d": AS_OF})
    assert fallback[["method", "reason"]].values.tolist() == [["trailing_spend", "too few"]] and pd.isna(
        fallback["p"][0]
    )
    assert read_frame(engine, saved, {"d": date(2020, 1, 1)}).empty


def test_night_fit_starts_from_the_earlier_nights_saved_fit(engine, monkeypatch):
    """The stored fit of an earlier night is the first start: the same optimum in far fewer passes, and a
    re-run of the night (same earlier fit) gives the same parameters. A trailing-spend night is skipped."""
    import models.spend as spend

    rng = np.random.default_rng(11)
    n = 400
    rows = [
        {"id": f"C{i}", "days": int(d), "purchases": int(d), "aov": float(a), "span": 50, "age": 300}
        for i, (d, a) in enumerate(zip(2 + rng.poisson(3, n), rng.gamma(4, 10, n)))
    ]
    with engine.begin() as conn:
        insert_frame(conn, "customer_features", _features(rows))
    bgnbd = BGNBD(r=0.5, alpha=30.0, a=0.8, b=2.5)
    evaluations: list[int] = []
    real = spend.minimize

    def counted(*args, **kwargs):
        result = real(*args, **kwargs)
        evaluations.append(result.nfev)
        return result

    monkeypatch.setattr(spend, "minimize", counted)
    assert spend.previous_spend_fit(engine, AS_OF) is None
    cold = fit_stored_spend(engine, AS_OF, bgnbd, 365, 50).model
    cold_passes = sum(evaluations)
    save_spend_fit(engine, date(2026, 2, 27), SpendFit(365, cold))
    save_spend_fit(engine, date(2026, 2, 28), SpendFit(365, None, "too few"))  # the latest night had no fit
    start = spend.previous_spend_fit(engine, AS_OF)
    assert start is not None and start.p == pytest.approx(cold.p, abs=1e-6)
    evaluations.clear()
    warm = fit_stored_spend(engine, AS_OF, bgnbd, 365, 50).model
    assert sum(evaluations) < cold_passes / 2
    assert (warm.p, warm.q, warm.gamma) == pytest.approx((cold.p, cold.q, cold.gamma), rel=1e-3)
    assert warm.log_likelihood == pytest.approx(cold.log_likelihood, abs=1e-3)
    assert fit_stored_spend(engine, AS_OF, bgnbd, 365, 50).model == warm
