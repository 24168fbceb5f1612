from datetime import date

import pytest

from pipelines.errors import DataQualityError
from pipelines.extract import load_landing
from pipelines.validate import validate_batches
from pipelines.warehouse import read_frame
from tests.conftest import write_landing

DAY = "2025-03-31"
AS_OF = date(2025, 3, 31)
HEADER = "txn_id,customer_id,ts,amount,type,channel\n"


def _load_and_validate(cfg, engine):
    load_landing(AS_OF, cfg, engine)
    return validate_batches(AS_OF, cfg, engine)


def test_bad_rows_are_quarantined_with_reasons_and_counted(cfg, engine, tmp_path):
    write_landing(
        tmp_path,
        "transactions",
        DAY,
        HEADER
        + "\n".join(
            [
                "t1,C1,2025-03-31 10:00:00,10.5,purchase,web",
                "t1,C1,2025-03-31 10:00:00,10.5,purchase,web",  # exact duplicate
                "t2,,2025-03-31 11:00:00,3,purchase,web",  # missing customer
                "t3,C2,2025-03-31 12:00:00,abc,purchase,web",  # unparseable amount
                "t4,C3,2026-01-01 00:00:00,4,purchase,web",  # future timestamp
                "t5,C4,2025-03-31 13:00:00,-9,purchase,web",  # sign inconsistent with type
                "t6,C5,not a date,4,purchase,web",
                "t7,C6,2025-03-31T14:00:00+02:00,-4,refund,store",  # valid, with offset
                "t8,C7,2025-03-31 15:00:00,7,purchase,app",
                "t9,C8,2025-03-31 15:00:00,7,gift,app",  # invalid type
                "t10,C9,2025-03-30 16:00:00,8,,web",  # late row, type inferred
                "t11,C10,2025-03-31 16:00:00,8,purchase,web",
            ]
            + [f"ok{i},D{i},2025-03-31 17:00:00,5,purchase,web" for i in range(4)]
        )
        + "\n",
    )
    summary = _load_and_validate(cfg, engine).datasets["transactions"]
    assert summary["rows_read"] == 16
    assert summary["rows_read"] == summary["rows_loaded"] + summary["rows_quarantined"]
    assert summary["rows_loaded"] == 9
    q = read_frame(engine, "SELECT txn_id, reasons, _source_row FROM quarantine_transactions ORDER BY _source_row")
    reasons = dict(zip(q["txn_id"].fillna("-"), q["reasons"]))
    assert reasons["t1"] == "duplicate_row"
    assert "missing_or_unparseable_customer_id" in reasons["t2"]
    assert "missing_or_unparseable_amount" in reasons["t3"]
    assert "future_timestamp" in reasons["t4"]
    assert "amount_sign_inconsistent_with_type" in reasons["t5"]
    assert "missing_or_unparseable_ts" in reasons["t6"]
    assert "invalid_type" in reasons["t9"]
    assert q["_source_row"].tolist() == [3, 4, 5, 6, 7, 8, 11]
    loaded = read_frame(engine, "SELECT txn_id, type, ts FROM stg_transactions ORDER BY txn_id")
    assert set(loaded["txn_id"]) == {"t1", "t7", "t8", "t10", "t11", "ok0", "ok1", "ok2", "ok3"}
    assert loaded.set_index("txn_id").loc["t10", "type"] == "purchase"
    assert str(loaded.set_index("txn_id").loc["t7", "ts"]) == "2025-03-31 12:00:00"  # converted to UTC
    dq = read_frame(engine, "SELECT * FROM dq_runs WHERE dataset = 'transactions'")
    assert dq["rows_read"].tolist() == [16] and dq["status"].tolist() == ["warn"]


def test_rerun_gives_the_same_tables(cfg, engine, tmp_path):
    write_landing(tmp_path, "transactions", DAY, HEADER + "t1,C1,2025-03-31 10:00:00,1,purchase,web\nt2,,x,y,z,w\n")
    _load_and_validate(cfg, engine)
    first = {
        t: read_frame(engine, f"SELECT * FROM {t} ORDER BY _source_row")
        for t in ("stg_transactions", "quarantine_transactions")
    }
    _load_and_validate(cfg, engine)
    for t, frame in first.items():
        again = read_frame(engine, f"SELECT * FROM {t} ORDER BY _source_row")
        assert again.equals(frame), t
    assert len(read_frame(engine, "SELECT * FROM dq_runs WHERE dataset = 'transactions'")) == 1


def test_renamed_column_stops_the_run_with_one_line(cfg, engine, tmp_path):
    path = write_landing(tmp_path, "transactions", DAY, "txn_id,client,ts,amount\nt1,C1,2025-03-31,1\n")
    with pytest.raises(DataQualityError) as info:
        load_landing(AS_OF, cfg, engine)
    msg = str(info.value)
    assert "transactions" in msg and str(path) in msg and "'customer_id'" in msg and "\n" not in msg


def test_missing_day_file_is_a_freshness_failure(cfg, engine):
    with pytest.raises(DataQualityError, match="no csv landing file for 2025-03-31"):
        load_landing(AS_OF, cfg, engine)


def test_empty_file_is_a_clear_error(cfg, engine, tmp_path):
    write_landing(tmp_path, "transactions", DAY, "")
    with pytest.raises(DataQualityError, match="is empty"):
        load_landing(AS_OF, cfg, engine)


def test_mostly_broken_batch_fails_and_publishes_nothing(cfg, engine, tmp_path):
    write_landing(
        tmp_path,
        "transactions",
        DAY,
        HEADER
        + "t1,C1,2025-03-31 10:00:00,1,purchase,web\n"
        + "".join(f"t{i},C{i},bad,bad,purchase,web\n" for i in range(2, 6)),
    )
    with pytest.raises(DataQualityError, match="4 of 5 rows failed validation"):
        _load_and_validate(cfg, engine)
    assert read_frame(engine, "SELECT COUNT(*) AS n FROM stg_transactions")["n"][0] == 0
    assert read_frame(engine, "SELECT status FROM dq_runs")["status"].tolist() == ["failed"]


def test_column_mapping_and_semicolons(tmp_path):
    from pipelines.config import Config
    from pipelines.warehouse import get_engine

    cfg = Config(
        base_dir=tmp_path,
        sources={
            "landing_dir": "landing",
            "datasets": {
                "transactions": {
                    "folder": "transactions",
                    "required": True,
                    "timestamp_format": "%Y%m%d",
                    "columns": {"customer_id": "klant", "ts": "datum", "amount": "bedrag"},
                }
            },
        },
    )
    engine = get_engine(cfg)
    write_landing(tmp_path, "transactions", DAY, "\ufeffklant;datum;bedrag\nK1;20250331;12.5\nK2;20250330;3\n")
    summary = _load_and_validate(cfg, engine)
    assert summary.datasets["transactions"]["rows_loaded"] == 2
    assert set(read_frame(engine, "SELECT customer_id FROM stg_transactions")["customer_id"]) == {"K1", "K2"}
    engine.dispose()
