"""Targeting curve: sums on hand-built lists, the measured vs assumed effect, and the table on real engines."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipelines.core.config import Config
from pipelines.core.warehouse import insert_frame, read_frame
from pipelines.deliver.outreach import difference_ci
from pipelines.deliver.targeting import (
    MAX_POINTS,
    Effect,
    build_targeting_curve,
    curve_points,
    effect_from_results,
    effect_from_uplift,
    list_curve,
)

AS_OF = date(2026, 3, 1)
ASSUMED = Effect(0.1, None, None, "assumed", "no matured outreach measurement yet")


def _results(rows: list[tuple[int, int, int, int]]) -> pd.DataFrame:
    """outreach_results rows from (sent, churned sent, control, churned control)."""
    return pd.DataFrame(
        [
            {"n_treated": nt, "n_control": nc, "churn_rate_treated": kt / nt, "churn_rate_control": kc / nc}
            for nt, kt, nc, kc in rows
        ]
    )


def test_curve_sums_by_hand():
    rows = pd.DataFrame({"churn_probability": [0.9, 0.5, 0.6, 0.2], "value_at_risk": [900.0, 400.0, 120.0, 20.0]})
    curve = list_curve(rows, capacity=2, effect=ASSUMED)
    assert curve["n_called"].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(curve["expected_churners"], [0, 0.9, 1.4, 2.0, 2.2])
    np.testing.assert_allclose(curve["value_at_risk_covered"], [0, 900, 1300, 1420, 1440])
    np.testing.assert_allclose(curve["expected_value_saved"], [0, 90, 130, 142, 144])
    assert curve["at_capacity"].tolist() == [False, False, True, False, False]
    assert curve["value_saved_low"].isna().all() and (curve["effect_source"] == "assumed").all()
    # Capacity above the list: the whole list is the capacity point.
    assert list_curve(rows, capacity=10, effect=ASSUMED)["at_capacity"].tolist() == [False] * 4 + [True]
    # An empty list has one point: nobody called.
    empty = list_curve(rows.iloc[0:0], capacity=5, effect=ASSUMED)
    assert empty["n_called"].tolist() == [0] and empty["at_capacity"].tolist() == [True]


def test_measured_effect_gives_a_range():
    effect = Effect(0.25, 0.1, 0.4, "measured", "")
    rows = pd.DataFrame({"churn_probability": [0.5, 0.5], "value_at_risk": [100.0, 300.0]})
    curve = list_curve(rows, capacity=1, effect=effect)
    np.testing.assert_allclose(curve["expected_value_saved"], [0, 25, 100])
    np.testing.assert_allclose(curve["value_saved_low"], [0, 10, 40])
    np.testing.assert_allclose(curve["value_saved_high"], [0, 40, 160])


def test_long_lists_get_a_grid_with_the_capacity_point():
    n = curve_points(10_000, 1234)
    assert n[0] == 0 and n[-1] == 10_000 and 1234 in n and len(n) <= MAX_POINTS + 1
    assert np.all(np.diff(n) > 0)
    assert curve_points(10, 3).tolist() == list(range(11))


def test_effect_is_assumed_until_a_clear_measurement_exists():
    assert effect_from_results(pd.DataFrame(), 0.1) == Effect(
        0.1, None, None, "assumed", "no matured outreach measurement yet"
    )
    small = effect_from_results(_results([(100, 30, 10, 6)]), 0.1)  # 10 control customers: cannot tell
    assert small.source == "assumed" and small.value == 0.1 and "fewer than 30 control customers" in small.note
    spans = effect_from_results(_results([(200, 80, 100, 44)]), 0.1)  # 40 % vs 44 %: interval spans zero
    assert spans.source == "assumed" and "interval spans zero" in spans.note and spans.low is None
    none_churned = effect_from_results(_results([(200, 0, 100, 0)]), 0.1)
    assert none_churned.source == "assumed" and "no control customer churned" in none_churned.note


def test_measured_effect_pools_the_cohorts_and_scales_by_control_churn():
    # Two alert days pooled: sent 300 with 90 churned (30 %), control 200 with 100 churned (50 %).
    effect = effect_from_results(_results([(100, 30, 80, 40), (200, 60, 120, 60)]), 0.1)
    diff, low, high = difference_ci(100, 200, 90, 300)
    assert effect.source == "measured"
    assert effect.value == pytest.approx(diff / 0.5) == pytest.approx(0.4)
    assert effect.low == pytest.approx(low / 0.5) and effect.high == pytest.approx(high / 0.5)
    assert 0 < effect.low < effect.value < effect.high
    assert "2 matured alert days, 300 sent and 200 control customers" in effect.note


def test_pooled_uplift_gives_the_effect_and_the_same_clarity_rule():
    # Sent 300 with 90 churned (30 %), control 200 with 100 churned (50 %): as the 'all' row of uplift_estimates.
    diff, low, high = difference_ci(100, 200, 90, 300)
    row = {"n_treated": 300, "n_control": 200, "churn_rate_control": 0.5}
    effect = effect_from_uplift(pd.Series({**row, "effect": diff, "ci_low": low, "ci_high": high}), 0.1)
    assert effect.source == "measured" and effect.value == pytest.approx(0.4)
    assert effect.low == pytest.approx(low / 0.5) and effect.high == pytest.approx(high / 0.5)
    assert "pooled uplift" in effect.note and "300 sent and 200 control customers" in effect.note
    # An interval spanning zero (the demo's pooled +2 % on 465 control customers) keeps the assumption.
    unclear = effect_from_uplift(pd.Series({**row, "effect": 0.021, "ci_low": -0.033, "ci_high": 0.075}), 0.1)
    assert unclear.source == "assumed" and unclear.value == 0.1 and "its interval spans zero" in unclear.note
    none = effect_from_uplift(
        pd.Series({**row, "churn_rate_control": 0.0, "effect": 0, "ci_low": 0, "ci_high": 0}), 0.1
    )
    assert none.source == "assumed" and "no control customer churned" in none.note


def _alerts(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "as_of_date": AS_OF,
                "customer_id": r["id"],
                "team": r["team"],
                "team_rank": r["rank"],
                "status": r["status"],
                "churn_probability": r.get("p"),
                "risk_band": "high",
                "value_12m": 100.0,
                "value_at_risk": r.get("var"),
                "triggers": "model",
                "recommended_action": "call",
                "model_version": "test",
                "list_name": r.get("list", "prevention"),
                "ranking": "value_at_risk",
            }
            for r in rows
        ]
    )


def test_build_targeting_curve_writes_one_partition_per_night(any_cfg, any_engine):
    cfg = any_cfg.model_copy(update={"alerts": Config(alerts={"teams": [{"name": "north", "capacity": 2}]}).alerts})
    alerts = _alerts(
        [
            {"id": "A", "team": "north", "rank": 1, "status": "sent", "p": 0.9, "var": 900.0},
            {"id": "B", "team": "north", "rank": 2, "status": "control", "p": 0.8, "var": 800.0},  # never called
            {"id": "C", "team": "north", "rank": 3, "status": "sent", "p": 0.5, "var": 400.0},
            {"id": "D", "team": "north", "rank": 4, "status": "overflow", "p": 0.6, "var": 120.0},
            {"id": "E", "team": "north", "rank": 1, "status": "sent", "list": "reactivation"},  # no probability
            {"id": "F", "team": "rest", "rank": 1, "status": "sent", "p": 0.4, "var": 40.0},
        ]
    )
    with any_engine.begin() as conn:
        insert_frame(conn, "churn_alerts", alerts)
    summary = build_targeting_curve(AS_OF, cfg, any_engine)
    build_targeting_curve(AS_OF, cfg, any_engine)  # a re-run replaces the night
    curve = read_frame(any_engine, "SELECT * FROM targeting_curve ORDER BY team, n_called")
    north = curve[curve["team"] == "north"]
    assert north["n_called"].tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(north["value_at_risk_covered"].astype(float), [0, 900, 1300, 1420])
    np.testing.assert_allclose(north["expected_value_saved"].astype(float), [0, 90, 130, 142])
    assert north["at_capacity"].astype(bool).tolist() == [False, False, True, False]
    assert set(curve["list_name"]) == {"prevention"} and set(curve["effect_source"]) == {"assumed"}
    rest = curve[curve["team"] == "rest"]  # a team not in the config has the default capacity (50)
    assert rest["capacity"].tolist() == [50, 50] and rest["at_capacity"].astype(bool).tolist() == [False, True]
    assert (curve["value_period_days"] == 365).all()
    assert summary.teams["north"] == {
        "called": 2,
        "expected_churners": 1.4,
        "value_at_risk_covered": 1300.0,
        "expected_value_saved": 130.0,
    }
    assert summary.effect_source == "assumed"
    # A clear measurement known by the night replaces the assumption; one dated later does not count.
    measured = _results([(100, 30, 80, 40), (200, 60, 120, 60)]).assign(
        alert_date=[date(2026, 1, 1), date(2026, 1, 2)], as_of_date=[date(2026, 3, 1), date(2026, 3, 2)]
    )
    with any_engine.begin() as conn:
        insert_frame(conn, "outreach_results", measured)
    assert build_targeting_curve(AS_OF, cfg, any_engine).note.startswith("1 matured alert day")
    with any_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE outreach_results SET as_of_date = DATE '2026-02-27'")
    summary = build_targeting_curve(AS_OF, cfg, any_engine)
    assert summary.effect_source == "measured" and summary.effect == pytest.approx(0.4)
    curve = read_frame(any_engine, "SELECT * FROM targeting_curve WHERE team = 'north' ORDER BY n_called")
    assert (curve["effect_source"] == "measured").all()
    assert float(curve["value_saved_low"].iloc[2]) < 0.4 * 1300 < float(curve["value_saved_high"].iloc[2])
