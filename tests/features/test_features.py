from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from pipelines.core.config import Config
from pipelines.core.warehouse import read_frame
from pipelines.features.customer_features import build_features, load_features, read_features
from pipelines.features.kpis import build_kpis
from tests.conftest import assert_same_rows, stg

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


def _buy(customer: str, *days: tuple[date, float], type_: str = "purchase") -> list[dict]:
    return [
        {
            "txn_id": f"{customer}-{i}",
            "customer_id": customer,
            "ts": datetime(d.year, d.month, d.day, 12),
            "amount": amount,
            "type": type_,
        }
        for i, (d, amount) in enumerate(days)
    ]


@pytest.fixture
def lives(any_engine):
    """Customers in every lifecycle stage and loyalty type (hand-computed values in the test)."""
    regular_days = [date(2025, 3, 25) - timedelta(days=10 * k) for k in range(12)]
    rows = (
        _buy("R1", (date(2024, 10, 1), 50.0), (date(2025, 3, 20), 50.0))
        + _buy("D1", (date(2024, 12, 1), 20.0))
        + _buy("L1", (date(2024, 9, 1), 10.0))
        + _buy("G1", *[(d, 15.0) for d in regular_days])
        + _buy("T1", (date(2023, 12, 1), 100.0), (date(2024, 6, 1), 100.0), (date(2025, 3, 1), 100.0))
        + _buy("O1", (date(2024, 9, 1), 30.0), (date(2024, 12, 1), 30.0), (date(2025, 3, 20), 30.0))
        + _buy("X1", (date(2025, 3, 30), 5.0))
        + _buy("W1", (date(2025, 3, 15), 100.0), type_="deposit")
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


@pytest.fixture
def kpi_data(any_engine):
    """Period (2025-03-01, 2025-03-31], horizon 90: K1 and K2 are lost, K3 stays, K4 was already gone, K5 is new."""
    rows = (
        _buy("K1", (date(2024, 11, 20), 40.0), (date(2024, 12, 20), 60.0))
        + _buy("K2", (date(2024, 12, 10), 90.0))
        + _buy("K3", (date(2024, 12, 15), 10.0), (date(2025, 3, 10), 10.0))
        + _buy("K4", (date(2024, 11, 1), 10.0))
        + _buy("K5", (date(2025, 3, 20), 25.0))
    )
    stg(any_engine, "stg_transactions", rows)
    stg(
        any_engine,
        "stg_customers",
        [
            {"customer_id": "K1", "region": "north"},
            {"customer_id": "K2", "region": "north"},
            {"customer_id": "K3", "region": "south"},
        ],
    )
    stg(
        any_engine,
        "stg_surveys",
        [
            {"customer_id": "K1", "ts": datetime(2025, 3, 5), "nps_score": 10},
            {"customer_id": "K3", "ts": datetime(2025, 3, 31, 23), "nps_score": 5},
            {"customer_id": "K5", "ts": datetime(2025, 3, 21), "nps_score": 8},
            {"customer_id": "K3", "ts": datetime(2025, 2, 15), "nps_score": 9},  # before the period
        ],
    )
    return any_engine


def _kpis(engine, as_of=AS_OF) -> pd.DataFrame:
    frame = read_frame(engine, "SELECT * FROM churn_kpis_daily WHERE as_of_date = :d", {"d": as_of})
    return frame.set_index(["segment_type", "segment"])


def test_hand_computed_kpis(kpi_data, any_cfg):
    summary = build_kpis(AS_OF, any_cfg, kpi_data)
    assert summary.churn_rate == pytest.approx(0.6667) and summary.customers_lost == 2
    k = _kpis(kpi_data)
    every = k.loc[("all", "all")]
    assert every["customers_active_start"] == 3 and every["customers_lost"] == 2
    assert every["churn_rate"] == pytest.approx(2 / 3)
    assert every["lost_revenue"] == pytest.approx(80.0)  # K1: 50 x 30/30 days; K2: 90 x 30/90 (one-time)
    assert every["customers_active_end"] == 2 and every["revenue"] == pytest.approx(35.0)
    assert (every["nps_responses"], every["promoters"], every["detractors"]) == (3, 1, 1)
    assert every["nps"] == pytest.approx(0.0)
    north, south, unknown = k.loc[("region", "north")], k.loc[("region", "south")], k.loc[("region", "unknown")]
    assert north["churn_rate"] == pytest.approx(1.0) and north["nps"] == pytest.approx(100.0)
    assert south["churn_rate"] == pytest.approx(0.0) and south["nps"] == pytest.approx(-100.0)
    assert pd.isna(unknown["churn_rate"]) and unknown["revenue"] == pytest.approx(25.0)
    assert set(k.index.get_level_values(0)) == {"all", "region", "segment"}
    build_kpis(AS_OF, any_cfg, kpi_data)  # re-run replaces the partition
    assert len(_kpis(kpi_data)) == len(k)


def test_kpis_point_in_time(kpi_data, any_cfg):
    build_kpis(AS_OF, any_cfg, kpi_data)
    before = _kpis(kpi_data).sort_index()
    stg(kpi_data, "stg_transactions", _buy("K1", (date(2025, 4, 1), 500.0)))
    stg(kpi_data, "stg_surveys", [{"customer_id": "K2", "ts": datetime(2025, 4, 1), "nps_score": 0}])
    build_kpis(AS_OF, any_cfg, kpi_data)
    pd.testing.assert_frame_equal(_kpis(kpi_data).sort_index(), before)


def test_same_sql_gives_identical_results_on_duckdb_and_postgres(small_dataset, tmp_path, pg_server):
    """Features and KPIs from one SQL source on both engines, compared row by row."""
    from pipelines.core.config import Config
    from pipelines.core.warehouse import get_engine
    from pipelines.ingest.extract import load_landing
    from pipelines.ingest.validation import validate_batches
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
        validate_batches(as_of, cfg, engine, since=start)
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


@pytest.fixture
def contract_cfg(any_cfg):
    data = any_cfg.model_dump()
    data["churn"]["kind"] = "contractual"
    data["sources"]["datasets"]["cancellations"] = {"folder": "cancellations"}
    return Config.model_validate(data | {"base_dir": any_cfg.base_dir})


def test_contractual_churn_counts_cancellations(kpi_data, contract_cfg):
    """Same customers as the KPI fixture; now K3 cancels in the period and K4 cancelled before it."""
    from pipelines.features.population import active_population, churn_labels

    stg(
        kpi_data,
        "stg_cancellations",
        [
            {"customer_id": "K3", "ts": datetime(2025, 3, 20, 9), "reason": "price"},
            {"customer_id": "K4", "ts": datetime(2025, 2, 1, 9), "reason": "moved"},
            {"customer_id": "K1", "ts": datetime(2025, 4, 2, 9), "reason": "service"},  # after D: invisible
        ],
    )
    build_kpis(AS_OF, contract_cfg, kpi_data)
    every = _kpis(kpi_data).loc[("all", "all")]
    # Known by Mar 1 and not cancelled by then: K1, K2, K3 (K4 cancelled Feb 1, K5 arrived Mar 20).
    assert every["customers_active_start"] == 3 and every["customers_lost"] == 1
    assert every["churn_rate"] == pytest.approx(1 / 3)
    assert every["lost_revenue"] == pytest.approx(3.53)  # K3: 10 per purchase, every 85 days: 10 x 30/85, in cents
    assert every["customers_active_end"] == 3  # K1, K2, K5
    features = read_features(kpi_data, contract_cfg, AS_OF).set_index("customer_id")
    assert features["cancelled"].to_dict() == {"K1": 0, "K2": 0, "K3": 1, "K4": 1, "K5": 0}
    assert sorted(active_population(features.reset_index(), contract_cfg)["customer_id"]) == ["K1", "K2", "K5"]
    labels = churn_labels(kpi_data, contract_cfg, date(2024, 12, 31), AS_OF).set_index("customer_id")["churned"]
    assert labels.to_dict() == {"K1": 0, "K2": 0, "K3": 1, "K4": 1}  # cancelled in [Jan 1, Apr 1)


def test_contractual_kind_needs_a_cancellations_dataset():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs a sources.datasets.cancellations dataset"):
        Config(churn={"kind": "contractual"})
