"""Churn KPIs (churn rate, lost revenue, NPS), the churn labels and the active population, on hand-built data."""

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from pipelines.core.config import Config
from pipelines.core.warehouse import read_frame
from pipelines.features.customer_features import build_features, load_features, read_features
from pipelines.features.kpis import build_kpis
from pipelines.features.population import active_population, churn_labels, still_customer_sql
from tests.conftest import buy, stg

AS_OF = date(2025, 3, 31)


@pytest.fixture
def kpi_data(any_engine):
    """Period (2025-03-01, 2025-03-31], horizon 90: K1 and K2 are lost, K3 stays, K4 was already gone, K5 is new."""
    rows = (
        buy("K1", (date(2024, 11, 20), 40.0), (date(2024, 12, 20), 60.0))
        + buy("K2", (date(2024, 12, 10), 90.0))
        + buy("K3", (date(2024, 12, 15), 10.0), (date(2025, 3, 10), 10.0))
        + buy("K4", (date(2024, 11, 1), 10.0))
        + buy("K5", (date(2025, 3, 20), 25.0))
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
    stg(kpi_data, "stg_transactions", buy("K1", (date(2025, 4, 1), 500.0)))
    stg(kpi_data, "stg_surveys", [{"customer_id": "K2", "ts": datetime(2025, 4, 1), "nps_score": 0}])
    build_kpis(AS_OF, any_cfg, kpi_data)
    pd.testing.assert_frame_equal(_kpis(kpi_data).sort_index(), before)


@pytest.fixture
def contract_cfg(any_cfg):
    data = any_cfg.model_dump()
    data["churn"]["kind"] = "contractual"
    data["sources"]["datasets"]["cancellations"] = {"folder": "cancellations"}
    return Config.model_validate(data | {"base_dir": any_cfg.base_dir})


def test_contractual_churn_counts_cancellations(kpi_data, contract_cfg):
    """Same customers as the KPI fixture; now K3 cancels in the period and K4 cancelled before it."""
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
    build_features(AS_OF, contract_cfg, kpi_data)  # the SQL filter scoring reads by picks the same customers
    assert load_features(kpi_data, AS_OF, still_customer_sql(contract_cfg))["customer_id"].tolist() == [
        "K1",
        "K2",
        "K5",
    ]
    labels = churn_labels(kpi_data, contract_cfg, date(2024, 12, 31), AS_OF).set_index("customer_id")["churned"]
    assert labels.to_dict() == {"K1": 0, "K2": 0, "K3": 1, "K4": 1}  # cancelled in [Jan 1, Apr 1)


def test_contractual_kind_needs_a_cancellations_dataset():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs a sources.datasets.cancellations dataset"):
        Config(churn={"kind": "contractual"})


def _plain_kpis(engine, cfg: Config, as_of: date) -> pd.DataFrame:
    """The KPIs with every per-customer input read from the whole history (tests/features/kpis_plain.sql)."""
    from pathlib import Path

    from pipelines.features.kpis import kpi_query

    fast_sql, params = kpi_query(cfg, as_of)
    types = fast_sql.split("IN (", 1)[1].split(") AS is_activity", 1)[0]
    inputs = (Path(__file__).parent / "kpis_plain.sql").read_text().replace("{activity_types}", types)
    sql = inputs + fast_sql[fast_sql.index("flags AS (") :]
    return read_frame(engine, sql, params).set_index(["segment_type", "segment"]).sort_index()


def test_kpis_from_recent_rows_equal_the_whole_history_reading(small_dataset, any_cfg, any_engine):
    """Generated months of data plus customers the master does not know (buying in the window, or only long
    before it), a purchase before the signup date and a cancellation without any purchase: on several as-of
    dates and both kinds of churn, the KPIs equal those read from every customer's whole history (up to a
    segment row whose customers have nothing to add, see sql/kpis/churn_kpis_daily.sql)."""
    from pipelines.ingest.extract import load_landing
    from pipelines.ingest.validation import validate_data
    from pipelines.synth.generate import load_truth

    data = any_cfg.model_dump()
    data["sources"]["landing_dir"] = str(small_dataset / "landing")
    data["sources"]["datasets"]["cancellations"] = {"folder": "cancellations"}
    cfg = Config.model_validate(data | {"base_dir": any_cfg.base_dir})
    meta = load_truth(small_dataset)[2]
    start = date.fromisoformat(meta["start"])
    last = start + timedelta(days=meta["days"] - 1)
    load_landing(last, cfg, any_engine, since=start)
    validate_data(last, cfg, any_engine, since=start)
    stg(
        any_engine,
        "stg_transactions",
        buy("X1", (last - timedelta(days=20), 30.0), (start + timedelta(days=3), 70.0))  # unknown, buys lately
        + buy("X2", (start + timedelta(days=1), 15.0))  # unknown, bought once long ago
        + buy("C0001", (start - timedelta(days=30), 12.0)),  # before any signup
    )
    stg(any_engine, "stg_cancellations", [{"customer_id": "X3", "ts": datetime.combine(last, datetime.min.time())}])
    contract = Config.model_validate(
        cfg.model_dump() | {"churn": {**cfg.churn.model_dump(), "kind": "contractual"}, "base_dir": cfg.base_dir}
    )
    checked = dropped = 0
    for kind_cfg in (cfg, contract):
        for as_of in (last - timedelta(days=100), last - timedelta(days=45), last):
            build_kpis(as_of, kind_cfg, any_engine)
            fast = _kpis(any_engine, as_of).drop(columns=["as_of_date"]).sort_index().astype(float)
            plain = _plain_kpis(any_engine, kind_cfg, as_of).drop(columns=["as_of_date"]).astype(float)
            assert fast.loc[("all", "all"), "customers_lost"] > 0, (kind_cfg.churn.kind, as_of)
            # A segment row only the whole history has holds customers with nothing to add: all zero.
            extra = plain.loc[plain.index.difference(fast.index)]
            counts = ["customers_active_start", "customers_lost", "customers_active_end", "nps_responses"]
            assert (extra[counts] == 0).all().all() and (extra["revenue"] == 0).all(), extra
            dropped += len(extra)
            pd.testing.assert_frame_equal(fast, plain.loc[fast.index, fast.columns], check_dtype=False, obj=f"{as_of}")
            checked += 1
    assert checked == 6 and dropped > 0  # X2 (bought once, long ago) makes such a row on the early dates
