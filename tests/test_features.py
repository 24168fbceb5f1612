from datetime import date, datetime

import pandas as pd
import pytest

from pipelines.features import build_features, load_features, read_features
from tests.conftest import stg

AS_OF = date(2025, 3, 31)


@pytest.fixture
def tiny(engine):
    """Customer A buys every 10 days then stops; B has service trouble; C only signed up."""
    txns = [
        {
            "txn_id": f"a{i}",
            "customer_id": "A",
            "ts": datetime(2025, 1, 1 + 10 * i, 12),
            "amount": 20.0 + i,
            "type": "purchase",
        }
        for i in range(3)  # Jan 1, 11, 21
    ] + [
        {"txn_id": "a-ref", "customer_id": "A", "ts": datetime(2025, 1, 22, 9), "amount": -5.0, "type": "refund"},
        {"txn_id": "b1", "customer_id": "B", "ts": datetime(2025, 3, 1, 10), "amount": 100.0, "type": "purchase"},
        {"txn_id": "b2", "customer_id": "B", "ts": datetime(2025, 3, 29, 10), "amount": 50.0, "type": "purchase"},
    ]
    stg(engine, "stg_transactions", txns)
    events = [
        {
            "customer_id": "B",
            "ts": datetime(2025, 3, 10, 9),
            "event_type": "contact",
            "wait_seconds": 100.0,
            "resolved": False,
            "transferred": False,
            "note": "question",
        },
        {
            "customer_id": "B",
            "ts": datetime(2025, 3, 14, 9),
            "event_type": "contact",
            "wait_seconds": 900.0,
            "resolved": False,
            "transferred": True,
            "note": "Customer FRUSTRATED, calling again",
        },
        {
            "customer_id": "B",
            "ts": datetime(2025, 3, 15, 9),
            "event_type": "complaint",
            "wait_seconds": 200.0,
            "resolved": False,
            "transferred": False,
            "note": "threatened to cancel",
        },
    ]
    stg(engine, "stg_service_events", events)
    stg(
        engine,
        "stg_surveys",
        [
            {"customer_id": "B", "ts": datetime(2025, 2, 1, 9), "nps_score": 9},
            {"customer_id": "B", "ts": datetime(2025, 3, 20, 9), "nps_score": 3},
        ],
    )
    stg(
        engine,
        "stg_customers",
        [
            {"customer_id": "A", "signup_date": date(2024, 12, 1), "region": "north", "do_not_contact": False},
            {"customer_id": "B", "signup_date": date(2024, 6, 1), "region": "south", "contract_end": date(2026, 1, 1)},
            {"customer_id": "C", "signup_date": date(2025, 3, 30), "region": "east"},
        ],
    )
    return engine


def test_hand_computed_features(tiny, cfg):
    build_features(AS_OF, cfg, tiny)
    f = load_features(tiny, AS_OF).set_index("customer_id")
    assert sorted(f.index) == ["A", "B", "C"]
    a, b, c = f.loc["A"], f.loc["B"], f.loc["C"]
    assert a["days_since_last_purchase"] == 69  # Jan 21 -> Mar 31
    assert a["days_since_last_activity"] == 68  # refund on Jan 22
    assert a["tenure_days"] == 120  # Dec 1 -> Mar 31
    assert a["purchases_90d"] == 3 and a["purchases_365d"] == 3  # Jan 1 is 89 days back: inside 90d
    assert a["purchases_30d"] == 0
    assert a["spend_365d"] == pytest.approx(63.0)
    assert a["avg_order_value"] == pytest.approx(21.0)
    assert a["mean_gap_days"] == pytest.approx(10.0) and a["std_gap_days"] == pytest.approx(0.0)
    assert a["overdue_ratio"] == pytest.approx(6.9)
    assert a["refunds_90d"] == 1
    assert a["dormant_short"] == 0 and a["dormant_long"] == 0
    assert b["spend_30d"] == pytest.approx(50.0) and b["spend_90d"] == pytest.approx(150.0)
    assert b["mean_gap_days"] == pytest.approx(28.0)
    assert b["contacts_90d"] == 3 and b["contacts_30d"] == 3
    assert b["repeat_contacts_90d"] == 2  # Mar 14 (4 days after) and Mar 15 (1 day after)
    assert b["complaints_90d"] == 1 and b["days_since_last_complaint"] == 16
    assert b["mean_wait_90d"] == pytest.approx(400.0) and b["max_wait_90d"] == pytest.approx(900.0)
    assert b["transfers_90d"] == 1 and b["open_tickets"] == 3
    assert b["negative_notes_90d"] == 2  # "frustrat" and "cancel" from the lexicon
    assert b["last_nps"] == 3 and b["nps_change"] == -6 and b["days_since_last_nps"] == 11
    assert b["locked_in"] == 1 and a["locked_in"] == 0
    assert pd.isna(c["days_since_last_purchase"]) and c["purchases_total"] == 0 and c["tenure_days"] == 1


def test_point_in_time_later_events_change_nothing(tiny, cfg):
    before = read_features(tiny, cfg, AS_OF)
    stg(
        tiny,
        "stg_transactions",
        [
            {
                "txn_id": "late",
                "customer_id": "A",
                "ts": datetime(2025, 4, 1, 0, 0, 1),
                "amount": 999.0,
                "type": "purchase",
            },
        ],
    )
    stg(
        tiny,
        "stg_service_events",
        [
            {
                "customer_id": "A",
                "ts": datetime(2025, 4, 2),
                "event_type": "complaint",
                "resolved": False,
                "note": "angry",
            },
        ],
    )
    stg(tiny, "stg_surveys", [{"customer_id": "A", "ts": datetime(2025, 4, 1, 8), "nps_score": 0}])
    after = read_features(tiny, cfg, AS_OF)
    pd.testing.assert_frame_equal(
        before.sort_values("customer_id").reset_index(drop=True),
        after.sort_values("customer_id").reset_index(drop=True),
    )
    # ...while the same events do count one day later.
    later = read_features(tiny, cfg, date(2025, 4, 1)).set_index("customer_id")
    assert later.loc["A", "days_since_last_purchase"] == 0


def test_rebuilding_a_date_replaces_its_partition(tiny, cfg):
    first = build_features(AS_OF, cfg, tiny)
    second = build_features(AS_OF, cfg, tiny)
    assert first.customers == second.customers == 3
    assert len(load_features(tiny, AS_OF)) == 3


def test_features_with_only_transactions(engine, cfg):
    stg(
        engine,
        "stg_transactions",
        [
            {"txn_id": "x", "customer_id": "X", "ts": datetime(2025, 3, 1), "amount": 10.0, "type": "purchase"},
        ],
    )
    f = read_features(engine, cfg, AS_OF).set_index("customer_id")
    assert f.loc["X", "contacts_90d"] == 0 and pd.isna(f.loc["X", "last_nps"])
    assert f.loc["X", "days_since_last_purchase"] == 30
