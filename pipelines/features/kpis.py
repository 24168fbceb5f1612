"""Churn KPIs per day and segment (churn rate, lost revenue, NPS), computed in the warehouse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.core.config import Config
from pipelines.core.warehouse import replace_partition_from_query, sql_text
from pipelines.features.population import activity_params


@dataclass
class KpiSummary:
    as_of: date
    rows: int
    churn_rate: float | None
    customers_lost: int
    lost_revenue: float
    nps: float | None

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "rows": self.rows,
            "churn_rate": self.churn_rate,
            "customers_lost": self.customers_lost,
            "lost_revenue": self.lost_revenue,
            "nps": self.nps,
        }


def kpi_query(cfg: Config, as_of: date) -> tuple[str, dict[str, Any]]:
    """Return the KPI SELECT and its bound parameters for the period ending on as_of."""
    period = cfg.features.kpi_period_days
    placeholder, names = activity_params(cfg)
    params = {
        "as_of": as_of,
        "as_of_next": as_of + timedelta(days=1),
        "period_start": as_of - timedelta(days=period),
        "period_next": as_of - timedelta(days=period - 1),
        "period_days": period,
        "horizon": cfg.churn.horizon_days,
        "contractual": int(cfg.churn.kind == "contractual"),
        **names,
    }
    # Contractual KPIs need the day each customer became known: every transaction; otherwise the recent ones.
    seen = "txns" if cfg.churn.kind == "contractual" else "recent"
    sql = sql_text("kpis/churn_kpis_daily.sql").replace("{activity_types}", placeholder).replace("{seen}", seen)
    return sql, params


def build_kpis(as_of: date, cfg: Config, engine: Engine) -> KpiSummary:
    """Replace the churn_kpis_daily partition of as_of in one transaction.

    SQL: sql/kpis/churn_kpis_daily.sql. Tests: tests/features/test_kpis.py. Doc: docs/features.md (KPIs)."""
    sql, params = kpi_query(cfg, as_of)
    with engine.begin() as conn:
        rows = replace_partition_from_query(conn, "churn_kpis_daily", sql, params, as_of)
        overall = conn.execute(
            sa.text(
                "SELECT churn_rate, customers_lost, lost_revenue, nps FROM churn_kpis_daily "
                "WHERE as_of_date = :d AND segment_type = 'all'"
            ),
            {"d": as_of},
        ).first()
    if overall is None:
        return KpiSummary(as_of, int(rows), None, 0, 0.0, None)
    rate, lost, revenue, nps = overall
    return KpiSummary(
        as_of,
        int(rows),
        None if rate is None else round(float(rate), 4),
        int(lost),
        round(float(revenue), 2),
        None if nps is None else round(float(nps), 1),
    )
