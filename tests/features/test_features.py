from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from pipelines.core.config import Config
from pipelines.core.warehouse import read_frame
from pipelines.features.customer_features import build_features, load_features, read_features
from pipelines.features.kpis import build_kpis
from pipelines.features.population import active_population, still_customer_sql
from tests.conftest import assert_same_rows, buy, stg

AS_OF = date(2025, 3, 31)


@pytest.fixture
def tiny(any_engine):
    engine = any_engine
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


def test_hand_computed_features(tiny, any_cfg):
    build_features(AS_OF, any_cfg, tiny)
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
    assert a["last_gap_days"] == 10 and a["purchase_span_days"] == 20 and b["last_gap_days"] == 28
    assert b["nps_group"] == "detractor" and pd.isna(a["nps_group"]) and pd.isna(a["net_flow_90d"])
    assert (a["lifecycle_stage"], b["lifecycle_stage"], c["lifecycle_stage"]) == ("at risk", "active", "new")
    assert (a["loyalty_type"], b["loyalty_type"], c["loyalty_type"]) == ("short-term", "short-term", "none")
    # Two buyers: NTILE(5) gives 1 and 2; R ranks the longer-silent A lower, F and M rank by 365-day counts.
    assert (a["r_score"], a["f_score"], a["m_score"]) == (1, 2, 1)
    assert (b["r_score"], b["f_score"], b["m_score"]) == (2, 1, 2)
    assert (a["rfm_segment"], b["rfm_segment"], c["rfm_segment"]) == ("lost", "hibernating", "no purchase")


def test_purchase_days_count_a_day_once_however_many_purchases_it_holds(any_engine, any_cfg):
    """The gap statistics come from sorted purchases, not from distinct days: a day with several purchases
    must still be one purchase day, one gap and one decay term (sql/features/customer_features.sql)."""
    days = [date(2025, 1, 1), date(2025, 1, 1), date(2025, 1, 11), date(2025, 3, 1), date(2025, 3, 1), date(2025, 3, 1)]
    stg(any_engine, "stg_transactions", buy("D", *[(d, 10.0) for d in days]))
    stg(any_engine, "stg_transactions", buy("E", (date(2025, 2, 1), 5.0), (date(2025, 2, 1), 7.0)))
    build_features(AS_OF, any_cfg, any_engine)
    f = load_features(any_engine, AS_OF).set_index("customer_id")
    d, e = f.loc["D"], f.loc["E"]
    assert d["purchases_total"] == 6 and d["purchase_days_total"] == 3
    assert d["mean_gap_days"] == pytest.approx(29.5)  # gaps of 10 and 49 days between the 3 purchase days
    assert d["std_gap_days"] == pytest.approx(27.577164, abs=1e-6)  # sample sd of 10 and 49
    assert d["last_gap_days"] == 49 and d["purchase_span_days"] == 59
    ages = [(AS_OF - x).days for x in sorted(set(days))]
    assert d["purchase_days_decay_30"] == pytest.approx(sum(2.718281828459045 ** (-a / 30) for a in ages), abs=1e-6)
    # One purchase day with two purchases: no gap at all, one day.
    assert e["purchases_total"] == 2 and e["purchase_days_total"] == 1
    assert pd.isna(e["mean_gap_days"]) and pd.isna(e["last_gap_days"]) and pd.isna(e["std_gap_days"])


def test_point_in_time_later_events_change_nothing(tiny, any_cfg):
    before = read_features(tiny, any_cfg, AS_OF)
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
    after = read_features(tiny, any_cfg, AS_OF)
    pd.testing.assert_frame_equal(
        before.sort_values("customer_id").reset_index(drop=True),
        after.sort_values("customer_id").reset_index(drop=True),
    )
    # ...while the same events do count one day later.
    later = read_features(tiny, any_cfg, date(2025, 4, 1)).set_index("customer_id")
    assert later.loc["A", "days_since_last_purchase"] == 0


def test_rebuilding_a_date_replaces_its_partition(tiny, any_cfg):
    first = build_features(AS_OF, any_cfg, tiny)
    second = build_features(AS_OF, any_cfg, tiny)
    assert first.customers == second.customers == 3
    assert len(load_features(tiny, AS_OF)) == 3


def test_the_sql_population_filter_picks_exactly_the_active_customers(tiny, any_cfg):
    """still_customer_sql (what scoring and monitoring read) agrees with still_customer (the definition)."""
    build_features(AS_OF, any_cfg, tiny)
    everyone = load_features(tiny, AS_OF)
    # A last bought Jan 21 (69 days before AS_OF), B on Mar 1, C never: all three kinds of row.
    for horizon in (30, 60, 90):
        cfg = any_cfg.model_copy(update={"churn": any_cfg.churn.model_copy(update={"horizon_days": horizon})})
        read = load_features(tiny, AS_OF, still_customer_sql(cfg))["customer_id"].tolist()
        assert read == active_population(everyone, cfg)["customer_id"].tolist()
        assert read == {30: ["B"], 60: ["B"], 90: ["A", "B"]}[horizon]


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


@pytest.fixture
def lives(any_engine):
    """Customers in every lifecycle stage and loyalty type (hand-computed values in the test)."""
    regular_days = [date(2025, 3, 25) - timedelta(days=10 * k) for k in range(12)]
    rows = (
        buy("R1", (date(2024, 10, 1), 50.0), (date(2025, 3, 20), 50.0))
        + buy("D1", (date(2024, 12, 1), 20.0))
        + buy("L1", (date(2024, 9, 1), 10.0))
        + buy("G1", *[(d, 15.0) for d in regular_days])
        + buy("T1", (date(2023, 12, 1), 100.0), (date(2024, 6, 1), 100.0), (date(2025, 3, 1), 100.0))
        + buy("O1", (date(2024, 9, 1), 30.0), (date(2024, 12, 1), 30.0), (date(2025, 3, 20), 30.0))
        + buy("X1", (date(2025, 3, 30), 5.0))
        + buy("W1", (date(2025, 3, 15), 100.0), type_="deposit")
        + [{"txn_id": "W1-w", "customer_id": "W1", "ts": datetime(2025, 3, 16), "amount": -30.0, "type": "withdrawal"}]
    )
    stg(any_engine, "stg_transactions", rows)
    return any_engine


def test_rfm_scores_segments_lifecycle_and_loyalty(lives, any_cfg):
    f = read_features(lives, any_cfg, AS_OF).set_index("customer_id")
    scores = {c: (f.loc[c, "r_score"], f.loc[c, "f_score"], f.loc[c, "m_score"]) for c in f.index if c != "W1"}
    # 7 buyers in NTILE(5) groups of 2, 2, 1, 1, 1; ties broken by customer id.
    assert scores == {
        "L1": (1, 1, 1),
        "D1": (1, 1, 2),
        "T1": (2, 3, 5),
        "O1": (2, 4, 2),
        "R1": (3, 2, 3),
        "G1": (4, 5, 4),
        "X1": (5, 2, 1),
    }
    assert f["rfm_segment"].to_dict() == {
        "L1": "lost",
        "D1": "lost",
        "T1": "at risk",
        "O1": "at risk",
        "R1": "potential",
        "G1": "champions",
        "X1": "new",
        "W1": "no purchase",
    }
    assert f["lifecycle_stage"].to_dict() == {
        "R1": "reactivated",
        "D1": "dormant",
        "L1": "lost",
        "G1": "active",
        "T1": "active",
        "O1": "reactivated",
        "X1": "new",
        "W1": "new",
    }
    assert f["loyalty_type"].to_dict() == {
        "R1": "occasional",
        "D1": "one-time",
        "L1": "one-time",
        "G1": "regular",
        "T1": "long-term",
        "O1": "occasional",
        "X1": "one-time",
        "W1": "none",
    }
    assert f.loc["W1", "net_flow_90d"] == pytest.approx(70.0) and pd.isna(f.loc["G1", "net_flow_90d"])
    assert f.loc["D1", "dormant_short"] == 1 and f.loc["D1", "dormant_long"] == 0
    assert f.loc["L1", "dormant_long"] == 1
    assert f.loc["T1", "mean_gap_days"] == pytest.approx(228.0) and f.loc["T1", "purchase_span_days"] == 456


def test_same_sql_gives_identical_results_on_duckdb_and_postgres(small_dataset, tmp_path, pg_server):
    """Features and KPIs from one SQL source on both engines, compared row by row."""
    from pipelines.core.warehouse import get_engine
    from pipelines.ingest.extract import load_landing
    from pipelines.ingest.validation import validate_data
    from pipelines.synth.generate import load_truth

    meta = load_truth(small_dataset)[2]
    start = date.fromisoformat(meta["start"])
    as_of = start + timedelta(days=meta["days"] - 1)
    results = {}
    url = pg_server.create_database()
    for name, warehouse in (("duckdb", {}), ("postgres", {"url": url})):
        cfg = Config(
            base_dir=tmp_path / name, sources={"landing_dir": str(small_dataset / "landing")}, warehouse=warehouse
        )
        engine = get_engine(cfg)
        load_landing(as_of, cfg, engine, since=start)
        validate_data(as_of, cfg, engine, since=start)
        for day in (as_of - timedelta(days=45), as_of):
            build_features(day, cfg, engine)
            build_kpis(day, cfg, engine)
        results[name] = {
            t: read_frame(engine, f"SELECT * FROM {t} ORDER BY 1, 2, 3, 4")
            for t in ("customer_features", "churn_kpis_daily")
        }
        engine.dispose()
    pg_server.drop_database(url)
    for table, duck in results["duckdb"].items():
        assert len(duck) > 100 if table == "customer_features" else len(duck) > 5
        assert_same_rows(duck, results["postgres"][table], table)
