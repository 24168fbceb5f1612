"""Churn KPIs (churn rate, lost revenue, NPS), the churn labels and the active population, on hand-built data."""

from datetime import date, datetime

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
