"""Targeting curve: what calling the top N of each team's prevention list is expected to reach and save.

For N = 0 .. the callable list (sent + overflow alerts, in the list's rank order; control and cooldown
customers are not called whatever the capacity), per team:
- expected churners reached = sum of the first N churn probabilities;
- value at risk covered = sum of their value at risk (P(churn) x expected spend over `value.period_days`);
- expected value saved = effect x value at risk covered, where the effect is the share of a called
  customer's churn risk a call removes.

The effect is measured: tonight's pooled uplift estimate (models/uplift.py, `uplift_estimates` profile
`all`) when there is one, else the matured outreach cohorts of the last `alerts.effect_lookback_days` are pooled
(sent vs comparable control, pipelines/deliver/outreach.py) and the churn reduction and its Newcombe
interval are divided by the control group's churn rate. Only a clear measurement is used (enough control
customers, an interval that excludes zero); otherwise the curve uses `alerts.assumed_effect`, says why,
and marks its rows `effect_source = 'assumed'` with no interval.

Step build_targeting_curve. SQL: sql/deliver/targeting_alerts.sql, sql/deliver/targeting_outreach.sql.
Tests: tests/deliver/test_targeting.py. Doc: docs/deliver.md ("Targeting curve").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from models.uplift import read_estimates
from pipelines.core.config import Config
from pipelines.core.warehouse import declared_names, read_frame, replace_partition, sql_text
from pipelines.deliver.alerts import list_capacity
from pipelines.deliver.outreach import MIN_CONTROL, difference_ci, effect_is_clear

CURVE_COLUMNS = declared_names("targeting_curve")
# Lists up to this long get every N; longer ones an even grid of this many points plus the capacity.
MAX_POINTS = 501


@dataclass(frozen=True)
class Effect:
    """Share of a called customer's churn risk a call removes, its 95 % interval (measured only), and whence."""

    value: float
    low: float | None
    high: float | None
    source: str  # "measured" or "assumed"
    note: str


@dataclass
class CurveSummary:
    as_of: date
    effect_source: str
    effect: float
    note: str
    teams: dict[str, dict] = field(default_factory=dict)  # team -> the curve's point at capacity

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "effect_source": self.effect_source,
            "effect": round(self.effect, 4),
            "note": self.note,
            "teams": self.teams,
        }


def effect_from_results(results: pd.DataFrame, assumed: float) -> Effect:
    """Return the call effect pooled over outreach_results rows, or the assumed effect when none is clear."""
    if results.empty:
        return Effect(assumed, None, None, "assumed", "no matured outreach measurement yet")
    n_t = pd.to_numeric(results["n_treated"]).to_numpy(float)
    n_c = pd.to_numeric(results["n_control"]).to_numpy(float)
    churn_t = int(np.rint(np.sum(pd.to_numeric(results["churn_rate_treated"]).to_numpy(float) * n_t)))
    churn_c = int(np.rint(np.sum(pd.to_numeric(results["churn_rate_control"]).to_numpy(float) * n_c)))
    nt, nc, days = int(n_t.sum()), int(n_c.sum()), len(results)
    measured = f"{days} matured alert day{'s' if days > 1 else ''}, {nt:,} sent and {nc:,} control customers"
    if churn_c == 0:
        return Effect(
            assumed, None, None, "assumed", f"{measured}: no control customer churned, so no share can be measured"
        )
    diff, low, high = difference_ci(churn_c, nc, churn_t, nt)
    return _effect(diff, low, high, churn_c / nc, nc, measured, assumed)


def _effect(diff: float, low: float, high: float, rate_c: float, nc: int, measured: str, assumed: float) -> Effect:
    """Return the share of churn risk a call removes from a measured reduction, or the assumed one if not clear."""
    if not effect_is_clear(low, high, nc):
        why = f"fewer than {MIN_CONTROL} control customers" if nc < MIN_CONTROL else "its interval spans zero"
        return Effect(
            assumed,
            None,
            None,
            "assumed",
            f"{measured}: churn reduction {diff:+.1%} (95 % interval {low:+.1%} to {high:+.1%}) is not clear ({why})",
        )
    return Effect(
        diff / rate_c,
        low / rate_c,
        high / rate_c,
        "measured",
        f"{measured}: control churn {rate_c:.1%}, reduction {diff:+.1%} (95 % interval {low:+.1%} to {high:+.1%})",
    )


def effect_from_uplift(pooled: pd.Series, assumed: float) -> Effect:
    """Return the call effect from tonight's pooled uplift estimate (the 'all' row of uplift_estimates)."""
    nt, nc = int(pooled["n_treated"]), int(pooled["n_control"])
    measured = (
        f"pooled uplift of the alerts matured within alerts.uplift.window_days, {nt:,} sent and {nc:,} control "
        "customers (each customer's first alert in a horizon)"
    )
    rate_c = float(pooled["churn_rate_control"])
    if rate_c <= 0:
        return Effect(
            assumed, None, None, "assumed", f"{measured}: no control customer churned, so no share can be measured"
        )
    diff, low, high = (float(pooled[c]) for c in ("effect", "ci_low", "ci_high"))
    return _effect(diff, low, high, rate_c, nc, measured, assumed)


def outreach_effect(as_of: date, cfg: Config, engine: Engine) -> Effect:
    """Return the call effect measured up to as_of, else the assumed one.

    Tonight's pooled uplift estimate comes first when there is one (estimate_uplift: more alert nights, each
    customer once per horizon), so the curve and the report's uplift table rest on the same evidence; else the
    matured outreach cohorts of the lookback window are pooled.
    """
    estimates = read_estimates(as_of, engine)
    pooled = estimates[(estimates["profile"] == "all") & (estimates["source"] != "thin")] if len(estimates) else []
    if len(pooled):
        return effect_from_uplift(pooled.iloc[0], cfg.alerts.assumed_effect)
    since = as_of - timedelta(days=cfg.alerts.effect_lookback_days)
    results = read_frame(engine, sql_text("deliver/targeting_outreach.sql"), {"d": as_of, "a": since})
    return effect_from_results(results, cfg.alerts.assumed_effect)


def curve_points(length: int, capacity: int) -> np.ndarray:
    """Return the N of a curve: every N up to MAX_POINTS - 1, else an even grid; always 0, the capacity, the end."""
    if length < MAX_POINTS:
        return np.arange(length + 1)
    grid = np.rint(np.linspace(0, length, MAX_POINTS)).astype(int)
    return np.unique(np.concatenate([grid, [min(capacity, length), length]]))


def list_curve(rows: pd.DataFrame, capacity: int, effect: Effect) -> pd.DataFrame:
    """Return the curve of one list whose rows are in call order (churn_probability, value_at_risk)."""
    p = pd.to_numeric(rows["churn_probability"]).fillna(0.0).to_numpy(float)
    var = pd.to_numeric(rows["value_at_risk"]).fillna(0.0).to_numpy(float)
    n = curve_points(len(rows), capacity)
    churners = np.concatenate([[0.0], np.cumsum(p)])[n]
    covered = np.concatenate([[0.0], np.cumsum(var)])[n]
    measured = effect.source == "measured"
    return pd.DataFrame(
        {
            "n_called": n,
            "list_length": len(rows),
            "capacity": capacity,
            "at_capacity": n == min(capacity, len(rows)),
            "expected_churners": churners,
            "value_at_risk_covered": covered,
            "effect": effect.value,
            "effect_low": effect.low,
            "effect_high": effect.high,
            "effect_source": effect.source,
            "effect_note": effect.note,
            "expected_value_saved": effect.value * covered,
            "value_saved_low": effect.low * covered if measured else np.nan,
            "value_saved_high": effect.high * covered if measured else np.nan,
        }
    )


def build_targeting_curve(as_of: date, cfg: Config, engine: Engine) -> CurveSummary:
    """Replace as_of's targeting_curve partition: one curve per team's prevention list with model scores.

    Step build_targeting_curve. SQL: sql/deliver/targeting_alerts.sql, sql/deliver/targeting_outreach.sql.
    Tests: tests/deliver/test_targeting.py. Doc: docs/deliver.md ("Targeting curve").
    """
    effect = outreach_effect(as_of, cfg, engine)
    alerts = read_frame(engine, sql_text("deliver/targeting_alerts.sql"), {"d": as_of})
    summary = CurveSummary(as_of, effect.source, effect.value, effect.note)
    curves = []
    for (team, list_name), rows in alerts.groupby(["team", "list_name"], sort=True):
        rows = rows.sort_values("team_rank", kind="stable")
        curve = list_curve(rows, list_capacity(cfg, str(team), str(list_name)), effect)
        ranking = ";".join(sorted(set(rows["ranking"].fillna("value_at_risk"))))
        curve.insert(0, "ranking", ranking)
        curve.insert(0, "list_name", list_name)
        curve.insert(0, "team", team)
        curves.append(curve)
        point = curve[curve["at_capacity"]].iloc[0]
        summary.teams[str(team)] = {
            "called": int(point["n_called"]),
            "expected_churners": round(float(point["expected_churners"]), 2),
            "value_at_risk_covered": round(float(point["value_at_risk_covered"]), 2),
            "expected_value_saved": round(float(point["expected_value_saved"]), 2),
        }
    frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    frame["as_of_date"] = as_of
    frame["value_period_days"] = cfg.value.period_days
    replace_partition(engine, "targeting_curve", frame[CURVE_COLUMNS], as_of)
    return summary
