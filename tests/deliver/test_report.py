"""The run report's cards and tables say what the data says: verdicts, missing datasets, currency and period."""

from __future__ import annotations

from datetime import date

import pandas as pd

from pipelines.deliver.report import _outreach, _quality, _uplift, render


def _outcome(n_control: int, low: float, high: float, revenue: float | None) -> dict:
    return {
        "alert_date": date(2025, 12, 26),
        "n_treated": 105,
        "n_control": n_control,
        "churn_rate_treated": 0.6,
        "churn_rate_control": 0.65,
        "churn_reduction": (low + high) / 2,
        "ci_low": low,
        "ci_high": high,
        "revenue_retained": revenue,
    }


def test_outreach_says_when_an_effect_cannot_be_told():
    frame = pd.DataFrame(
        [_outcome(7, -0.27, 0.16, None), _outcome(300, -0.27, 0.16, None), _outcome(300, 0.02, 0.12, 16505.4)]
    )
    out = _outreach(frame, "EUR")
    assert out["verdict"].tolist() == ["too few customers", "not significant", "significant"]
    assert out["revenue kept (12 months)"].tolist() == ["—", "—", "EUR 16,505"]
    assert out["reduction (95 % interval)"][0] == "-6% (-27% to +16%)"


def test_quality_card_agrees_with_its_table():
    dq = pd.DataFrame(
        {
            "dataset": ["customers", "transactions"],
            "rows_read": [0, 10],
            "rows_loaded": [0, 10],
            "rows_quarantined": [0, 0],
            "status": ["missing", "ok"],
        }
    )
    card, table = _quality({"dq": dq, "datasets": ["customers", "transactions", "surveys"]})
    assert card == "ok (not provided: customers, surveys)"
    assert table["status"].tolist() == ["not provided", "ok"]


def test_page_texts_have_currency_period_and_human_headers():
    empty = pd.DataFrame()
    data = {
        "kpis": pd.DataFrame(
            {"as_of_date": [date(2026, 3, 26)], "churn_rate": [0.068], "lost_revenue": [10964.9], "nps": [26.0]}
        ),
        "segments": empty,
        "scores": pd.DataFrame({"churn_probability": [0.2], "risk_band": ["low"]}),
        "card": {},
        "dq": pd.DataFrame(columns=["dataset", "rows_read", "rows_loaded", "rows_quarantined", "status"]),
        "monitoring": empty,
        "alerts": pd.DataFrame(
            {
                "team": ["north", "north"],
                "list_name": ["prevention", "prevention"],
                "status": ["sent", "overflow"],
                "alerts": [3, 4],
            }
        ),
        "top": empty,
        "outreach": empty,
        "currency": "EUR",
        "period_days": 30,
        "horizon_days": 90,
        "capacity": {"north": (3, 20)},
        "control_fraction": 0.1,
        "cooldown_days": 14,
        "datasets": ["transactions"],
        "monitor_message": "",
        "checks": pd.DataFrame(columns=["dataset", "checks"]),
        "ranking_note": "value at risk: uplift evidence too thin (n_control 12 < 30)",
    }
    page = render(date(2026, 3, 26), data, None)
    assert "<b>Prevention lists ranked by:</b> value at risk: uplift evidence too thin (n_control 12 &lt; 30)" in page
    assert "Who responds" in page and "no matured alerts yet" in page
    assert "lost revenue, last 30 days<b>EUR 10,965</b>" in page
    assert "churn rate, last 30 days<b>6.8%</b>" in page
    assert "overflow: above the list&#x27;s capacity" in page and "north 3 + 20" in page
    assert "<th>overflow</th>" in page and "<th>list</th>" in page
    assert "_" not in "".join(part.split("</th>")[0] for part in page.split("<th>")[1:])  # no snake_case headers


def test_failed_checks_are_named_as_a_reader_would():
    from pipelines.deliver.report import _failed_checks
    from pipelines.ingest.validation import check_name

    assert check_name("_customer_known") != "_customer_known values must belong to this set: True"
    assert check_name("unknown_customer") == "customer not in the customers dataset"
    assert check_name("non_finite_amount") == "not a finite number: amount"
    assert check_name("missing_or_unparseable_ts") == "missing or unreadable ts"
    frame = pd.DataFrame({"dataset": ["transactions"], "checks": ['{"duplicate_row": 2, "out_of_range_amount": 1}']})
    out = _failed_checks(frame)
    assert out.to_dict("records") == [
        {"dataset": "transactions", "check": "row already delivered (exact duplicate)", "rows": 2},
        {"dataset": "transactions", "check": "out of range: amount", "rows": 1},
    ]


def test_uplift_table_gives_interval_and_evidence():
    frame = pd.DataFrame(
        {
            "profile": ["all", "service/high", "inactivity/medium"],
            "n_treated": [1240, 400, 12],
            "n_control": [310, 95, 4],
            "churn_rate_treated": [0.5, 0.4, 0.5],
            "churn_rate_control": [0.58, 0.62, 0.5],
            "effect": [0.08, 0.22, 0.08],
            "ci_low": [0.02, 0.11, 0.02],
            "ci_high": [0.14, 0.33, 0.14],
            "source": ["measured", "measured", "pooled"],
        }
    )
    out = _uplift(frame)
    assert out["profile"].tolist() == ["all (pooled)", "service, high", "inactivity, medium"]
    assert out["churn reduction (95 % interval)"][1] == "+22% (+11% to +33%)"
    assert out["evidence"].tolist() == ["own evidence", "own evidence", "too few: pooled effect used"]
    assert out["customers sent"][0] == "1,240"
