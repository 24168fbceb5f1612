"""A warehouse made by an earlier version is upgraded in place: missing columns added, data kept."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pipelines.core.warehouse import declared_tables, ensure_schema, get_engine, table_columns


def test_an_older_table_gains_the_new_columns_and_loses_a_dropped_not_null(any_cfg):
    engine = get_engine(any_cfg)
    with engine.begin() as conn:  # feature_state_log as an older version made it: no rolled_from, customers NOT NULL
        conn.exec_driver_sql("DROP TABLE feature_state_log")
        conn.exec_driver_sql(
            "CREATE TABLE feature_state_log (state_date DATE NOT NULL, transactions_rows BIGINT NOT NULL,"
            " service_events_rows BIGINT NOT NULL, customers BIGINT NOT NULL, built_at TIMESTAMP NOT NULL,"
            " rolled_from_note VARCHAR NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO feature_state_log VALUES (DATE '2025-01-01', 1, 2, 3, TIMESTAMP '2025-01-02 00:00:00', 'x')"
        )
    ensure_schema(engine)
    ensure_schema(engine)  # idempotent
    with engine.begin() as conn:
        columns = table_columns(conn, "feature_state_log")
        assert {c for c, _, _ in declared_tables()["feature_state_log"]} | {"rolled_from_note"} == set(columns)
        # the column this version no longer declares stays, but may now be left empty
        conn.exec_driver_sql(
            "INSERT INTO feature_state_log (state_date, transactions_rows, service_events_rows, customers, built_at)"
            " VALUES (DATE '2025-01-03', 1, 2, 3, TIMESTAMP '2025-01-04 00:00:00')"
        )
        rows = conn.execute(
            sa.text("SELECT customers, rolled_from, rolled_from_note FROM feature_state_log ORDER BY state_date DESC")
        ).all()
    assert [tuple(r) for r in rows] == [(3, None, None), (3, None, "x")]
    engine.dispose()


def test_a_failed_unordered_insert_raises_its_own_error_not_the_aborted_transactions(engine):
    from pipelines.core.warehouse import ROW_GROUP, unordered_insert

    with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
        with unordered_insert(conn, ROW_GROUP):
            conn.exec_driver_sql("INSERT INTO pipeline_runs (run_id) VALUES (NULL)")  # NOT NULL: aborts
    assert "NOT NULL" in str(caught.value) and "aborted" not in str(caught.value)
    with engine.begin() as conn:  # the warehouse is usable again
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM pipeline_runs").scalar() == 0
