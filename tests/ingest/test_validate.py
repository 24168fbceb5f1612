"""The bad-input catalogue: every case is quarantined with a reason or stops the run with one clear line.

Each test runs on DuckDB and on the real PostgreSQL server of the test suite, and checks the accounting:
rows read = rows loaded + rows quarantined, per batch.
"""

from __future__ import annotations

import gzip
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError, DataQualityError
from pipelines.core.warehouse import get_engine, read_frame
from pipelines.ingest.extract import load_landing
from pipelines.ingest.validation import validate_data
from tests.conftest import write_landing

DAY = "2025-03-31"
AS_OF = date(2025, 3, 31)
HEADER = "txn_id,customer_id,ts,amount,type,channel\n"


def run_dq(cfg, engine, as_of: date = AS_OF, **kw):
    load_landing(as_of, cfg, engine, **kw)
    return validate_data(as_of, cfg, engine, **kw)


def assert_accounting(engine, dataset: str = "transactions") -> None:
    """Rows read = loaded + quarantined, in dq_runs and in the tables themselves."""
    dq = read_frame(engine, "SELECT * FROM dq_runs WHERE dataset = :d", {"d": dataset})
    assert (dq["rows_read"] == dq["rows_loaded"] + dq["rows_quarantined"]).all()
    counts = {}
    for table in (f"raw_{dataset}", f"stg_{dataset}", f"quarantine_{dataset}"):
        counts[table] = int(read_frame(engine, f"SELECT COUNT(*) AS n FROM {table}")["n"][0])
    assert counts[f"raw_{dataset}"] == counts[f"stg_{dataset}"] + counts[f"quarantine_{dataset}"], counts


def reasons_by(engine, key: str = "txn_id", dataset: str = "transactions") -> dict[str, str]:
    q = read_frame(engine, f"SELECT {key}, reasons FROM quarantine_{dataset} ORDER BY _source_row")
    return dict(zip(q[key].fillna("-"), q["reasons"]))


def txn_lines(n: int, day: str = DAY, prefix: str = "ok") -> str:
    return "".join(f"{prefix}{i},C{i},{day} 10:00:00,5,purchase,web\n" for i in range(n))


def test_row_level_problems_are_quarantined_with_reasons(any_cfg, any_engine, tmp_path):
    rows = [
        "t1,C1,2025-03-31 10:00:00,10.5,purchase,web",
        "t1,C1,2025-03-31 10:00:00,10.5,purchase,web",  # exact duplicate
        "t2,,2025-03-31 11:00:00,3,purchase,web",  # missing customer key
        "t3,C2,2025-03-31 12:00:00,abc,purchase,web",  # unparseable number
        "t4,C3,2026-01-01 00:00:00,4,purchase,web",  # future timestamp
        "t5,C4,2025-03-31 13:00:00,-9,purchase,web",  # sign inconsistent with type
        "t6,C5,31/03/2025 nonsense,4,purchase,web",  # unparseable date
        "t7,C6,2025-03-31T14:00:00+02:00,-4,refund,store",  # valid, with an offset
        "t8,C7,2025-03-31 15:00:00,7,purchase,app",
        "t9,C8,2025-03-31 15:00:00,7,gift,app",  # not an allowed type
        "t10,C9,2025-03-30 16:00:00,8,,web",  # late row for yesterday, type inferred
        "t11,C10,2025-03-31 16:00:00,8,purchase",  # a field short
        "t12,C11,2025-03-31 16:00:00,8,purchase,web,extra",  # a field too many
        "t13,C12,2025-03-31 16:00:00,1,purchase,web",  # same key, different values:
        "t13,C12,2025-03-31 16:00:00,2,purchase,web",  # both kept out, nobody can tell which is right
    ]
    write_landing(tmp_path, "transactions", DAY, HEADER + "\n".join(rows + txn_lines(16).splitlines()) + "\n")
    summary = run_dq(any_cfg, any_engine).datasets["transactions"]
    assert summary["rows_read"] == 31
    assert summary["rows_loaded"] == 20 and summary["rows_quarantined"] == 11
    reasons = reasons_by(any_engine)
    assert reasons["t1"] == "duplicate_row"
    assert "missing_or_unparseable_customer_id" in reasons["t2"]
    assert "missing_or_unparseable_amount" in reasons["t3"]
    assert "future_timestamp" in reasons["t4"]
    assert "amount_sign_inconsistent_with_type" in reasons["t5"]
    assert "missing_or_unparseable_ts" in reasons["t6"]
    assert "invalid_type" in reasons["t9"]
    assert "wrong_field_count_5_of_6" in reasons["t11"]
    assert "wrong_field_count_7_of_6" in reasons["t12"]
    assert reasons["t13"] == "duplicate_key_txn_id"
    q = read_frame(any_engine, "SELECT _source_file, _source_row FROM quarantine_transactions WHERE txn_id = 't3'")
    assert q.iloc[0].tolist() == [f"{DAY}.csv", 5]  # the file and its line, header being line 1
    loaded = read_frame(any_engine, "SELECT txn_id, type, ts FROM stg_transactions").set_index("txn_id")
    assert set(loaded.index) == {"t1", "t7", "t8", "t10"} | {f"ok{i}" for i in range(16)}
    assert loaded.loc["t10", "type"] == "purchase"
    assert str(loaded.loc["t7", "ts"]) == "2025-03-31 12:00:00"  # stored in the configured zone (UTC)
    dq = read_frame(any_engine, "SELECT * FROM dq_runs WHERE dataset = 'transactions'")
    assert dq["status"].tolist() == ["warn"] and '"future_timestamp": 1' in dq["checks"][0]
    assert_accounting(any_engine)
    assert Path(validate_data(AS_OF, any_cfg, any_engine).data_docs).exists()


def test_out_of_range_service_and_survey_values(any_cfg, any_engine, tmp_path):
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(3))
    write_landing(
        tmp_path,
        "service_events",
        DAY,
        "event_id,customer_id,ts,event_type,wait_seconds,resolved\n"
        "e1,C1,2025-03-31 09:00,call,-5,true\n"  # negative wait
        "e2,C1,2025-03-31 09:30,call,30,maybe\n"  # unparseable flag
        "e3,C1,2025-03-31 09:40,carrier pigeon,30,no\n"  # unknown event type
        "e4,C2,2025-03-31 10:00,complaint,600,no\n"
        + "".join(f"g{i},C2,2025-03-31 11:00,chat,5,yes\n" for i in range(4)),
    )
    write_landing(
        tmp_path,
        "surveys",
        DAY,
        "response_id,customer_id,ts,nps_score\nr1,C1,2025-03-31,11\nr2,C1,2025-03-31,7.5\nr3,C2,2025-03-31,x\n"
        "r4,C2,2025-03-31,0\nr5,C3,2025-03-31,9\nr6,C3,2025-03-31,10\n",
    )
    run_dq(any_cfg, any_engine)
    ev = reasons_by(any_engine, "event_id", "service_events")
    assert ev == {
        "e1": "out_of_range_wait_seconds",
        "e2": "unparseable_resolved",
        "e3": "invalid_event_type",
    }
    sv = reasons_by(any_engine, "response_id", "surveys")
    assert sv["r1"] == "out_of_range_nps_score" and sv["r2"] == "out_of_range_nps_score"
    assert sv["r3"] == "missing_or_unparseable_nps_score" and "r4" not in sv
    for ds in ("service_events", "surveys"):
        assert_accounting(any_engine, ds)


def test_unknown_customers_are_quarantined_when_a_customer_list_exists(any_cfg, any_engine, tmp_path):
    write_landing(tmp_path, "customers", DAY, "customer_id,region\nC0,north\nC1,south\n")
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(3))  # C2 is not a known customer
    run_dq(any_cfg, any_engine)
    assert reasons_by(any_engine) == {"ok2": "unknown_customer"}
    assert_accounting(any_engine)


def test_customer_list_is_optional(any_cfg, any_engine, tmp_path):
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(3))
    load = load_landing(AS_OF, any_cfg, any_engine)
    assert sorted(load.missing) == ["customers", "service_events", "surveys"]
    summary = validate_data(AS_OF, any_cfg, any_engine)
    assert summary.datasets["transactions"]["rows_loaded"] == 3
    assert summary.datasets["surveys"]["status"] == "missing"


def test_bom_semicolons_and_quoted_newlines(any_cfg, any_engine, tmp_path):
    write_landing(
        tmp_path,
        "service_events",
        DAY,
        '\ufeffevent_id;customer_id;ts;event_type;note\ne1;C1;2025-03-31 09:00;call;"line one\nline two; still the note"\n'
        "e2;C1;2025-03-31 10:00;chat;short\n",
    )
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(2))
    run_dq(any_cfg, any_engine)
    ev = read_frame(any_engine, "SELECT event_id, note, _source_row FROM stg_service_events ORDER BY event_id")
    assert ev["note"][0] == "line one\nline two; still the note"
    assert ev["_source_row"].tolist() == [2, 4]  # the second record starts on line 4


def test_mixed_timezone_formats(any_cfg, any_engine, tmp_path):
    write_landing(
        tmp_path,
        "transactions",
        DAY,
        HEADER + "a,C1,2025-03-31T10:00:00Z,1,purchase,web\n"
        "b,C1,2025-03-31 12:00:00+02:00,1,purchase,web\n"
        "c,C1,2025-03-31T10:00:00-0130,1,purchase,web\n"
        "d,C1,2025-03-31 10:00,1,purchase,web\n"
        "e,C1,2025-03-31,1,purchase,web\n",
    )
    run_dq(any_cfg, any_engine)
    ts = read_frame(any_engine, "SELECT txn_id, ts FROM stg_transactions ORDER BY txn_id")
    assert [str(t) for t in ts["ts"]] == [
        "2025-03-31 10:00:00",
        "2025-03-31 10:00:00",
        "2025-03-31 11:30:00",
        "2025-03-31 10:00:00",
        "2025-03-31 00:00:00",
    ]


def test_timestamps_convert_to_the_configured_zone(tmp_path):
    cfg = Config(base_dir=tmp_path, sources={"landing_dir": "landing", "timezone": "Europe/Amsterdam"})
    engine = get_engine(cfg)
    write_landing(tmp_path, "transactions", DAY, HEADER + "a,C1,2025-03-31T21:30:00Z,1,purchase,web\n")
    run_dq(cfg, engine)
    assert str(read_frame(engine, "SELECT ts FROM stg_transactions")["ts"][0]) == "2025-03-31 23:30:00"
    engine.dispose()


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "is empty"),
        ("txn_id,client,ts,amount\nt1,C1,2025-03-31,1\n", "has no column 'customer_id'"),
        (HEADER + "t1,C1,2025-03-31 10:00:00,1,purchase,web\nt2,C2,2025-03-", "is truncated: its last line"),
        (HEADER + 't1,C1,2025-03-31 10:00:00,1,purchase,"web\n', "unreadable at line"),
        ("txn_id,customer_id,customer_id,ts,amount\n", "repeats column"),
    ],
    ids=["empty", "renamed-column", "truncated", "unbalanced-quote", "repeated-header"],
)
def test_broken_files_stop_the_run_with_one_line(any_cfg, any_engine, tmp_path, text, match):
    path = write_landing(tmp_path, "transactions", DAY, text)
    with pytest.raises(DataQualityError, match=match) as info:
        load_landing(AS_OF, any_cfg, any_engine)
    msg = str(info.value)
    assert msg.startswith("transactions: ") and str(path) in msg and "\n" not in msg


def test_not_utf8_and_corrupt_gzip_and_parquet(any_cfg, any_engine, tmp_path):
    folder = tmp_path / "landing" / "transactions"
    folder.mkdir(parents=True)
    (folder / f"{DAY}.csv").write_bytes(HEADER.encode() + "t1,C\xe9,2025-03-31,1,purchase,web\n".encode("latin-1"))
    with pytest.raises(DataQualityError, match="is not valid utf-8"):
        load_landing(AS_OF, any_cfg, any_engine)
    (folder / f"{DAY}.csv").unlink()
    (folder / f"{DAY}.csv.gz").write_bytes(gzip.compress((HEADER + txn_lines(50)).encode())[:-30])
    with pytest.raises(DataQualityError, match="truncated or corrupt"):
        load_landing(AS_OF, any_cfg, any_engine)
    (folder / f"{DAY}.csv.gz").unlink()
    (folder / f"{DAY}.parquet").write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataQualityError, match="cannot read Parquet file"):
        load_landing(AS_OF, any_cfg, any_engine)


def test_parquet_and_gzip_files_with_any_names(any_cfg, any_engine, tmp_path):
    folder = tmp_path / "landing" / "transactions"
    folder.mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "ts": pd.to_datetime(["2025-03-31 10:00", "2025-03-31 11:00"]),
            "amount": [1.5, 2.0],
        }
    )
    frame.to_parquet(folder / "export_20250331.parquet")
    with gzip.open(folder / "sales-2025-03-30.csv.gz", "wt") as fh:
        fh.write("customer_id,ts,amount\nC3,2025-03-30 10:00,4\n")
    (folder / ".partial-upload.csv").write_text("garbage")
    (folder / "export_20250331.parquet.tmp").write_text("garbage")
    summary = run_dq(any_cfg, any_engine)
    assert summary.datasets["transactions"]["rows_loaded"] == 3
    stg = read_frame(any_engine, "SELECT customer_id, _source_file, _source_row FROM stg_transactions ORDER BY 1")
    assert stg["_source_file"].tolist() == [
        "export_20250331.parquet",
        "export_20250331.parquet",
        "sales-2025-03-30.csv.gz",
    ]
    assert stg["_source_row"].tolist() == [1, 2, 2]


def test_undated_files_belong_to_the_day_they_were_first_seen(any_cfg, any_engine, tmp_path):
    folder = tmp_path / "landing" / "transactions"
    folder.mkdir(parents=True)
    (folder / "export.csv").write_text(HEADER + txn_lines(2, "2025-03-30"))
    run_dq(any_cfg, any_engine, as_of=date(2025, 3, 30))
    # The next day the same name carries new content: a new batch; yesterday's rows stay as they were.
    (folder / "export.csv").write_text(HEADER + txn_lines(3, DAY, prefix="new"))
    run_dq(any_cfg, any_engine)
    batches = read_frame(any_engine, "SELECT _batch_date, COUNT(*) AS n FROM stg_transactions GROUP BY 1 ORDER BY 1")
    assert batches["n"].tolist() == [2, 3]
    # Re-running the earlier day neither loses its rows nor takes the newer content.
    run_dq(any_cfg, any_engine, as_of=date(2025, 3, 30))
    assert read_frame(any_engine, "SELECT COUNT(*) AS n FROM stg_transactions")["n"][0] == 5
    assert_accounting(any_engine)


def test_late_rows_and_rerun_and_cross_day_duplicates(any_cfg, any_engine, tmp_path):
    write_landing(tmp_path, "transactions", "2025-03-30", HEADER + txn_lines(3, "2025-03-30", "a"))
    run_dq(any_cfg, any_engine, as_of=date(2025, 3, 30))
    # A late file for the 29th, a re-sent row and a changed row arrive before the run of the 31st.
    write_landing(tmp_path, "transactions", "2025-03-29", HEADER + "late1,C9,2025-03-29 08:00,9,purchase,web\n")
    write_landing(
        tmp_path,
        "transactions",
        DAY,
        HEADER + "a0,C0,2025-03-30 10:00:00,5,purchase,web\n"  # re-sent, identical: already loaded
        "a1,C1,2025-03-30 10:00:00,6,purchase,web\n"  # same key, other amount
         + txn_lines(2, DAY, "b"),
    )
    run_dq(any_cfg, any_engine)
    stg = read_frame(any_engine, "SELECT txn_id FROM stg_transactions ORDER BY txn_id")["txn_id"].tolist()
    assert stg == ["a0", "a1", "a2", "b0", "b1", "late1"]
    assert reasons_by(any_engine) == {"a0": "duplicate_row", "a1": "conflicting_key"}
    snapshot = {t: _table(any_engine, t) for t in ("stg_transactions", "quarantine_transactions", "raw_transactions")}
    run_dq(any_cfg, any_engine)  # re-run: same tables
    for t, frame in snapshot.items():
        pd.testing.assert_frame_equal(_table(any_engine, t), frame)
    assert_accounting(any_engine)


def _table(engine, table: str) -> pd.DataFrame:
    frame = read_frame(engine, f"SELECT * FROM {table}")
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _history(cfg, engine, tmp_path, days: int = 4, rows: int = 20) -> None:
    for back in range(days, 0, -1):
        day = AS_OF - timedelta(days=back)
        write_landing(tmp_path, "transactions", day.isoformat(), HEADER + txn_lines(rows, day.isoformat(), f"h{back}_"))
        run_dq(cfg, engine, as_of=day)


def test_volume_collapse_and_header_only_file_stop_the_run(any_cfg, any_engine, tmp_path):
    _history(any_cfg, any_engine, tmp_path)
    before = _table(any_engine, "stg_transactions")
    write_landing(tmp_path, "transactions", DAY, HEADER)  # header only: nothing arrived
    with pytest.raises(DataQualityError, match=r"transactions: volume check failed for 2025-03-31: 0 rows against"):
        run_dq(any_cfg, any_engine)
    pd.testing.assert_frame_equal(_table(any_engine, "stg_transactions"), before)  # previous state untouched
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(2))
    with pytest.raises(DataQualityError, match="2 rows against a trailing median of 20"):
        run_dq(any_cfg, any_engine)
    status = read_frame(any_engine, "SELECT status FROM dq_runs WHERE as_of_date = :d", {"d": AS_OF})
    assert "failed" in status["status"].tolist()
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(15))
    run_dq(any_cfg, any_engine)  # a normal day passes again


def test_stale_data_stops_the_run(any_cfg, any_engine, tmp_path):
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(5, "2025-03-01"))
    with pytest.raises(DataQualityError, match="freshness check failed for 2025-03-31: newest ts in column 'ts'"):
        run_dq(any_cfg, any_engine)


def test_mostly_broken_batch_fails_and_publishes_nothing(any_cfg, any_engine, tmp_path):
    write_landing(
        tmp_path,
        "transactions",
        DAY,
        HEADER
        + "t1,C1,2025-03-31 10:00:00,1,purchase,web\n"
        + "".join(f"t{i},C{i},bad,bad,purchase,web\n" for i in range(2, 6)),
    )
    with pytest.raises(DataQualityError, match="4 of 5 rows of the 2025-03-31 batch failed validation"):
        run_dq(any_cfg, any_engine)
    assert read_frame(any_engine, "SELECT COUNT(*) AS n FROM stg_transactions")["n"][0] == 0
    dq = read_frame(any_engine, "SELECT status FROM dq_runs WHERE dataset = 'transactions'")
    assert dq["status"].tolist() == ["failed"]


def test_missing_day_is_a_freshness_failure(any_cfg, any_engine):
    with pytest.raises(DataQualityError, match="transactions: no data for 2025-03-31 in .* \\(freshness check\\)"):
        load_landing(AS_OF, any_cfg, any_engine)


def test_column_mapping_with_a_compact_date_format(any_cfg, tmp_path):
    data = any_cfg.model_dump()
    data["sources"]["datasets"] = {
        "transactions": {
            "required": True,
            "timestamp_format": "%Y%m%d",
            "columns": {"customer_id": "klant", "ts": "datum", "amount": "bedrag"},
        }
    }
    cfg = Config.model_validate(data | {"base_dir": tmp_path})
    engine = get_engine(cfg)
    write_landing(
        tmp_path, "transactions", DAY, "klant;datum;bedrag\nK1;20250331;12.5\nK2;20250330;3\nK3;2025-03-31;3\n"
    )
    summary = run_dq(cfg, engine)
    assert summary.datasets["transactions"]["rows_loaded"] == 2
    assert reasons_by(engine, "customer_id") == {"K3": "missing_or_unparseable_ts"}
    engine.dispose()


def test_sql_source_read_by_watermark_with_lookback(any_cfg, tmp_path, monkeypatch):
    source = tmp_path / "crm.sqlite"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE sales (id TEXT, cust TEXT, sold_at TEXT, value REAL, updated_at TEXT)")
        db.executemany(
            "INSERT INTO sales VALUES (?, ?, ?, ?, ?)",
            [
                ("s1", "C1", "2025-03-29 10:00:00", 5.0, "2025-03-29 10:00:00"),
                ("s2", "C2", "2025-03-30 10:00:00", 6.0, "2025-03-30 10:00:00"),
                ("s3", "C3", "2025-03-31 10:00:00", 7.0, "2025-03-31 10:00:00"),
                ("s4", "C4", "2025-04-01 10:00:00", 8.0, "2025-04-01 10:00:00"),  # after the run date
                ("s0", "C0", "2025-03-01 10:00:00", 8.0, "2025-03-01 10:00:00"),  # before the window
            ],
        )
    monkeypatch.setenv("CRM_URL", f"sqlite:///{source}")
    data = any_cfg.model_dump()
    data["sources"]["datasets"] = {
        "transactions": {
            "required": True,
            "sql": {"url_env": "CRM_URL", "table": "sales", "watermark": "updated_at"},
            "columns": {"txn_id": "id", "customer_id": "cust", "ts": "sold_at", "amount": "value"},
        }
    }
    cfg = Config.model_validate(data | {"base_dir": tmp_path})
    engine = get_engine(cfg)
    run_dq(cfg, engine)
    stg = read_frame(engine, "SELECT txn_id, _batch_date, _source_file FROM stg_transactions ORDER BY txn_id")
    assert stg["txn_id"].tolist() == ["s1", "s2", "s3"]
    assert stg["_source_file"].unique().tolist() == ["sql:sales"]
    with sqlite3.connect(source) as db:  # a late row for the 30th shows up, and is merged on the re-run
        db.execute("INSERT INTO sales VALUES ('s5', 'C5', '2025-03-30 11:00:00', 1.0, '2025-03-31 23:00:00')")
    run_dq(cfg, engine)
    assert read_frame(engine, "SELECT COUNT(*) AS n FROM stg_transactions")["n"][0] == 4
    assert_accounting(engine)
    data["sources"]["datasets"]["transactions"]["sql"]["watermark"] = "changed_at"
    renamed = Config.model_validate(data | {"base_dir": tmp_path})
    with pytest.raises(DataQualityError, match="transactions: cannot read sales from sqlite"):
        load_landing(AS_OF, renamed, engine)  # the watermark column is not in the table
    monkeypatch.delenv("CRM_URL")
    with pytest.raises(ChurnwatchError, match="environment variable CRM_URL is not set"):
        load_landing(AS_OF, cfg, engine)
    monkeypatch.setenv("CRM_URL", "postgresql://u:secret@127.0.0.1:1/nodb")
    with pytest.raises(DataQualityError) as info:
        load_landing(AS_OF, cfg, engine)
    assert "secret" not in str(info.value) and "cannot read sales" in str(info.value)
    engine.dispose()


def test_a_warehouse_from_an_earlier_version_gets_the_new_columns(any_cfg):
    engine = get_engine(any_cfg)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE dq_runs")
        conn.exec_driver_sql(
            "CREATE TABLE dq_runs (run_id VARCHAR NOT NULL, as_of_date DATE NOT NULL, dataset VARCHAR NOT NULL, "
            "source VARCHAR, rows_read BIGINT NOT NULL, rows_loaded BIGINT NOT NULL, rows_quarantined BIGINT NOT NULL, "
            "checks VARCHAR, status VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO dq_runs VALUES ('r', DATE '2025-01-01', 'transactions', 'f', 1, 1, 0, '{}', 'ok', "
            "TIMESTAMP '2025-01-02 00:00:00')"
        )
    engine.dispose()
    engine = get_engine(any_cfg)
    old = read_frame(engine, "SELECT run_id, batch_date, message FROM dq_runs")
    assert old["run_id"].tolist() == ["r"] and old["batch_date"].isna().all()
    engine.dispose()


def test_a_column_made_nullable_by_a_newer_version_is_relaxed(any_cfg):
    engine = get_engine(any_cfg)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE churn_alerts ALTER COLUMN churn_probability SET NOT NULL")
    engine.dispose()
    engine = get_engine(any_cfg)
    with engine.begin() as conn:
        nullable = conn.exec_driver_sql(
            "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'churn_alerts' "
            "AND column_name = 'churn_probability'"
        ).scalar_one()
    assert nullable == "YES"
    engine.dispose()
