"""Hostile input: what a demanding tester feeds the pipeline, and the exact outcome each case must have.

Every case ends one of two ways: the bad rows are quarantined with a named reason and the counts add
up (read = loaded + quarantined), or the run stops with one clear line and the previous night's
outputs stay as they were. Data paths run on DuckDB and on the suite's real PostgreSQL server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.core.config import Config, load_config
from pipelines.core.errors import ChurnwatchError, DataQualityError
from pipelines.core.safe import cell_text, safe_name
from pipelines.core.warehouse import get_engine, insert_frame, read_frame
from pipelines.deliver.alerts import route
from pipelines.deliver.outbox import publish_outbox
from pipelines.deliver.outreach import parse_outcomes
from pipelines.features.customer_features import build_features
from pipelines.ingest.extract import load_landing
from pipelines.ingest.validation import validate_data
from tests.conftest import write_landing
from tests.ingest.test_validate import AS_OF, DAY, HEADER, assert_accounting, reasons_by, run_dq, txn_lines

REPO = Path(__file__).resolve().parents[2]


def _count(engine, table: str) -> int:
    return int(read_frame(engine, f"SELECT COUNT(*) AS n FROM {table}")["n"][0])


# --- numbers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_non_finite_and_absurd_amounts_are_quarantined(any_cfg, any_engine, tmp_path, fmt):
    spellings = ["inf", "Infinity", "-inf", "+Infinity", "INF", "NaN", "nan", "1e400", "1e20", "-1e12"]
    bad = [
        (f"b{i}", f"C{i}", f"{DAY} 10:00:00", v, "purchase" if not v.startswith("-") else "refund")
        for i, v in enumerate(spellings)
    ]
    good = [(f"ok{i}", f"C{i}", f"{DAY} 11:00:00", "5", "purchase") for i in range(30)]
    rows = bad + good
    folder = tmp_path / "landing" / "transactions"
    folder.mkdir(parents=True)
    if fmt == "csv":
        text = "txn_id,customer_id,ts,amount,type\n" + "".join(",".join(r) + "\n" for r in rows)
        (folder / f"{DAY}.csv").write_text(text)
    else:
        # Parquet carries real floats: an IEEE infinity and NaN, not their spellings.
        amounts = [float(v) for _, _, _, v, _ in rows]
        table = pa.table(
            {
                "txn_id": [r[0] for r in rows],
                "customer_id": [r[1] for r in rows],
                "ts": [r[2] for r in rows],
                "amount": amounts,
                "type": [r[4] for r in rows],
            }
        )
        pq.write_table(table, folder / f"{DAY}.parquet")
    summary = run_dq(any_cfg, any_engine).datasets["transactions"]
    assert summary["rows_read"] == 40 and summary["rows_loaded"] == 30 and summary["rows_quarantined"] == 10
    reasons = reasons_by(any_engine)
    # A float NaN in Parquet is how pandas and Spark write a missing value: it counts as missing there.
    nan_reason = "non_finite_amount" if fmt == "csv" else "missing_or_unparseable_amount"
    for i, v in enumerate(spellings):
        expected = {"1e20": "out_of_range_amount", "-1e12": "out_of_range_amount", "NaN": nan_reason, "nan": nan_reason}
        assert reasons[f"b{i}"] == expected.get(v, "non_finite_amount"), (v, reasons[f"b{i}"])
    assert summary["checks"]["non_finite_amount"] == (8 if fmt == "csv" else 6)
    assert summary["checks"]["out_of_range_amount"] == 2
    assert_accounting(any_engine)
    # The night goes on: the feature SQL's DECIMAL casts never see an infinity.
    assert build_features(AS_OF, any_cfg, any_engine).customers == 30


def test_non_finite_and_unparseable_service_numbers(any_cfg, any_engine, tmp_path):
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(3))
    write_landing(
        tmp_path,
        "service_events",
        DAY,
        "event_id,customer_id,ts,event_type,wait_seconds,handle_seconds\n"
        "e1,C1,2025-03-31 09:00,call,inf,30\n"
        "e2,C1,2025-03-31 09:10,call,30,NaN\n"
        "e3,C1,2025-03-31 09:20,call,abc,30\n"  # an optional number that is not one: not silently blank
        "e4,C1,2025-03-31 09:30,call,1e9,30\n"  # 31 years of waiting
        "e5,C1,2025-03-31 09:40,call,n/a,\n"  # spellings of "no value" are missing, not wrong
        + "".join(f"g{i},C2,2025-03-31 11:00,chat,5,5\n" for i in range(6)),
    )
    run_dq(any_cfg, any_engine)
    assert reasons_by(any_engine, "event_id", "service_events") == {
        "e1": "non_finite_wait_seconds",
        "e2": "non_finite_handle_seconds",
        "e3": "unparseable_wait_seconds",
        "e4": "out_of_range_wait_seconds",
    }
    loaded = read_frame(any_engine, "SELECT wait_seconds, handle_seconds FROM stg_service_events WHERE event_id = 'e5'")
    assert loaded.iloc[0].isna().all()
    assert_accounting(any_engine, "service_events")


def test_value_bounds_are_configurable_and_checked():
    cfg = Config(sources={"value_bounds": {"amount": {"min": 0, "max": 500}}})
    assert cfg.sources.value_bounds["amount"].max == 500
    assert cfg.sources.value_bounds["wait_seconds"].max == 7 * 24 * 3600  # defaults kept for the others
    with pytest.raises(ValueError, match="unknown column"):
        Config(sources={"value_bounds": {"nps_score": {"max": 11}}})
    with pytest.raises(ValueError, match="above max"):
        Config(sources={"value_bounds": {"amount": {"min": 5, "max": 1}}})


# --- timestamps --------------------------------------------------------------------------------------


def test_timestamp_domain_and_offset_forms(any_cfg, any_engine, tmp_path):
    rows = [
        "t1,C1,1900-01-01 10:00:00,5,purchase,web",  # before sources.earliest_timestamp
        "t2,C2,2025-03-31T10:00:00+02,5,purchase,web",  # hours-only offset
        "t3,C3,2025-03-31T10:00:00+0530,5,purchase,web",
        "t4,C4,2025-03-31T10:00:00-05,5,purchase,web",
        "t5,C5,2025-03-31T10:00:00Z,5,purchase,web",
        "t6,C6,2025-03-31 10:00:00 +02:00,5,purchase,web",
        "t7,C7,2025-03-31T10:00:00+2,5,purchase,web",  # not an offset anyone writes: unparseable
        "t8,C8,2025-03-31T10:00:00+25:00,5,purchase,web",  # no such offset
    ]
    write_landing(tmp_path, "transactions", DAY, HEADER + "\n".join(rows) + "\n" + txn_lines(20))
    summary = run_dq(any_cfg, any_engine).datasets["transactions"]
    reasons = reasons_by(any_engine)
    assert reasons == {
        "t1": "timestamp_too_early",
        "t7": "missing_or_unparseable_ts",
        "t8": "missing_or_unparseable_ts",
    }
    ts = read_frame(any_engine, "SELECT txn_id, ts FROM stg_transactions WHERE txn_id IN ('t2','t3','t4','t5','t6')")
    got = {r.txn_id: str(pd.Timestamp(r.ts)) for r in ts.itertuples()}
    assert got == {
        "t2": "2025-03-31 08:00:00",
        "t3": "2025-03-31 04:30:00",
        "t4": "2025-03-31 15:00:00",
        "t5": "2025-03-31 10:00:00",
        "t6": "2025-03-31 08:00:00",
    }
    assert summary["checks"]["timestamp_too_early"] == 1
    assert_accounting(any_engine)


def test_signup_before_the_earliest_day_is_quarantined(cfg, engine, tmp_path):
    write_landing(tmp_path, "customers", DAY, "customer_id,signup_date\nC1,1850-02-01\nC2,2024-05-01\nC3,2024-06-01\n")
    write_landing(tmp_path, "transactions", DAY, HEADER + "t1,C2,2025-03-31 10:00:00,5,purchase,web\n")
    run_dq(cfg, engine)
    assert reasons_by(engine, "customer_id", "customers") == {"C1": "timestamp_too_early"}


# --- the batch guard ---------------------------------------------------------------------------------


def test_a_wholly_bad_day_stops_the_night_even_after_good_days(any_cfg, any_engine, tmp_path):
    """23 of 23 rows bad on the run date: the look-back window's good days must not dilute the share."""
    for back in (3, 2, 1):
        day = (AS_OF - timedelta(days=back)).isoformat()
        write_landing(tmp_path, "transactions", day, HEADER + txn_lines(23, day, prefix=f"d{back}_"))
        run_dq(any_cfg, any_engine, as_of=AS_OF - timedelta(days=back))
    before = read_frame(any_engine, "SELECT * FROM stg_transactions ORDER BY txn_id")
    # Every line has a trailing delimiter: one field too many.
    bad = "".join(f"x{i},C{i},{DAY} 10:00:00,5,purchase,web,\n" for i in range(23))
    write_landing(tmp_path, "transactions", DAY, HEADER + bad)
    with pytest.raises(DataQualityError) as info:
        run_dq(any_cfg, any_engine)
    msg = str(info.value)
    assert msg.startswith(f"transactions: 23 of 23 rows of the {DAY} batch failed validation")
    assert "wrong_field_count" in msg and "batch stopped" in msg and "\n" not in msg
    after = read_frame(any_engine, "SELECT * FROM stg_transactions ORDER BY txn_id")
    pd.testing.assert_frame_equal(before, after)  # the previous nights' outputs are intact
    dq = read_frame(any_engine, "SELECT status FROM dq_runs WHERE as_of_date = :d", {"d": AS_OF})
    assert "failed" in set(dq["status"])


def test_the_night_stops_through_the_cli_with_one_line_and_nothing_published(tmp_path):
    (tmp_path / "churnwatch.yaml").write_text("sources:\n  landing_dir: landing\n")
    bad = "".join(f"x{i},C{i},{DAY} 10:00:00,inf,purchase,web\n" for i in range(10))
    write_landing(tmp_path, "transactions", DAY, HEADER + bad)
    env = {**os.environ, "CHURNWATCH_CONFIG": str(tmp_path / "churnwatch.yaml")}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "--date", DAY],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "10 of 10 rows" in lines[0] and "non_finite_amount" in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "outbox").exists()
    engine = get_engine(load_config(tmp_path / "churnwatch.yaml"))
    assert _count(engine, "stg_transactions") == 0 and _count(engine, "churn_scores") == 0
    engine.dispose()


# --- re-delivered and removed files ------------------------------------------------------------------


def test_a_replaced_file_replaces_its_rows_whatever_its_name(any_cfg, any_engine, tmp_path):
    first = write_landing(
        tmp_path, "transactions", DAY, HEADER + "t1,C1,2025-03-31 10:00:00,10,purchase,web\n" + txn_lines(9)
    )
    run_dq(any_cfg, any_engine)
    # Re-delivered as <date>_v2.csv with a corrected amount; the first delivery is withdrawn.
    first.unlink()
    write_landing(
        tmp_path, "transactions", f"{DAY}_v2", HEADER + "t1,C1,2025-03-31 10:00:00,12,purchase,web\n" + txn_lines(9)
    )
    summary = load_landing(AS_OF, any_cfg, any_engine)
    assert summary.removed == [f"transactions/{DAY}.csv ({DAY}): no longer delivered, its rows withdrawn"]
    validate_data(AS_OF, any_cfg, any_engine)
    assert _count(any_engine, "quarantine_transactions") == 0  # the corrected rows are not lost as conflicts
    amount = read_frame(any_engine, "SELECT amount FROM stg_transactions WHERE txn_id = 't1'")["amount"].tolist()
    assert amount == [12.0]
    assert _count(any_engine, "stg_transactions") == 10
    assert_accounting(any_engine)


def test_a_deleted_extra_file_takes_its_rows_with_it(cfg, engine, tmp_path):
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(10))
    extra = write_landing(tmp_path, "transactions", f"{DAY}_extra", HEADER + txn_lines(5, prefix="wrong"))
    run_dq(cfg, engine)
    assert _count(engine, "stg_transactions") == 15
    extra.unlink()
    run_dq(cfg, engine)
    assert _count(engine, "stg_transactions") == 10 and _count(engine, "raw_transactions") == 10


def test_a_late_file_before_the_window_is_reported_not_skipped_silently(cfg, engine, tmp_path):
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(5))
    old_day = (AS_OF - timedelta(days=10)).isoformat()
    write_landing(tmp_path, "transactions", old_day, HEADER + txn_lines(5, old_day, prefix="late"))
    summary = load_landing(AS_OF, cfg, engine)
    assert len(summary.ignored) == 1
    assert summary.ignored[0].startswith(f"transactions/{old_day}.csv: dated {old_day}, before the look-back window")
    assert f"--since {old_day}" in summary.ignored[0]
    load_landing(AS_OF, cfg, engine, since=AS_OF - timedelta(days=10))  # loaded once: no longer reported
    assert load_landing(AS_OF, cfg, engine).ignored == []


# --- names and cells from data -----------------------------------------------------------------------


def test_team_names_from_data_pass_the_safe_name_rule():
    cfg = Config(alerts={"teams": [{"name": "vip", "regions": ["nowhere"]}]})
    frame = pd.DataFrame(
        {
            "region": ["x"] * 6,
            "segment": ["y"] * 6,
            "value_12m": [1.0] * 6,
            "team": ["../../../../escaped_team", "a/b", "Sales EMEA", "..", None, "north"],
        }
    )
    assert route(frame, cfg).tolist() == ["escaped_team", "a_b", "Sales_EMEA", "retention", "retention", "north"]
    assert safe_name("..\\..\\x", "d") == "x" and safe_name("", "d") == "d" and safe_name("/", "d") == "d"


def _alert_rows(ids: list[str], team: str = "retention") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "as_of_date": AS_OF,
            "customer_id": ids,
            "team": team,
            "team_rank": range(1, len(ids) + 1),
            "status": "sent",
            "churn_probability": 0.5,
            "risk_band": "medium",
            "value_12m": 100.0,
            "value_at_risk": 50.0,
            "reasons": "no purchase for 120 days",
            "recommended_action": "=cmd|' /C calc'!A0",
            "triggers": "model",
            "model_version": "m1",
        }
    )


def test_no_value_from_data_becomes_a_spreadsheet_formula(cfg, engine, tmp_path):
    from openpyxl import load_workbook

    ids = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "C1"]
    with engine.begin() as conn:
        insert_frame(conn, "churn_alerts", _alert_rows(ids))
    folder = Path(publish_outbox(AS_OF, cfg, engine)["folder"])
    csv_ids = pd.read_csv(folder / "retention.csv", dtype=str, keep_default_na=False)["customer_id"].tolist()
    assert csv_ids == ["'" + i if i != "C1" else i for i in ids]
    assert pd.read_csv(folder / "retention.csv", dtype=str)["recommended_action"][0].startswith("'=")
    sheet = load_workbook(folder / "retention.xlsx").active
    cells = [row for row in sheet.iter_rows(min_row=2)]
    assert all(c.data_type != "f" for row in cells for c in row)  # not one formula in the workbook
    # Shown as the text it is (XML reads a carriage return back as a line feed).
    assert [row[1].value for row in cells] == [i.replace("\r", "\n") for i in ids]
    assert cell_text(-5) == -5 and cell_text("ok") == "ok"


def test_an_unsafe_team_in_the_alerts_table_never_writes_outside_the_outbox(cfg, engine, tmp_path):
    with engine.begin() as conn:
        insert_frame(conn, "churn_alerts", _alert_rows(["C1"], team="../../../../escaped_team"))
    with pytest.raises(ChurnwatchError, match="not a safe file name"):
        publish_outbox(AS_OF, cfg, engine)
    assert not list(tmp_path.parent.glob("**/escaped_team*"))


# --- config and mapping mistakes ---------------------------------------------------------------------


def test_a_mapped_optional_column_missing_from_the_file_stops_the_load(tmp_path):
    cfg = Config(
        base_dir=tmp_path,
        sources={
            "landing_dir": "landing",
            "datasets": {"transactions": {"required": True, "columns": {"type": "kind"}}},
        },
    )
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(3))
    engine = get_engine(cfg)
    with pytest.raises(DataQualityError, match=r"has no column 'kind' \(mapped from type\)"):
        load_landing(AS_OF, cfg, engine)
    engine.dispose()


# Config mistakes (unknown encoding, a watermark with SQL in it, a bad earliest_timestamp) are in test_config.py.


def test_a_warehouse_path_under_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    cfg = Config(base_dir=tmp_path, warehouse={"url": "duckdb:///afile/sub/w.duckdb"})
    with pytest.raises(ChurnwatchError, match="cannot create the DuckDB folder"):
        get_engine(cfg)


# --- outcomes files ----------------------------------------------------------------------------------


def _outcome_alerts(engine) -> None:
    with engine.begin() as conn:
        insert_frame(conn, "churn_alerts", _alert_rows(["C1", "C2"]))


def test_outcomes_with_blank_or_no_result_import(cfg, engine, tmp_path):
    _outcome_alerts(engine)
    blank = tmp_path / "blank.csv"
    blank.write_text(f"customer_id,alert_date,contacted,result\nC1,{DAY},yes,\nC2,{DAY},no,retained\n")
    out = parse_outcomes(blank, engine)
    assert out["result"].tolist() == [None, "retained"]
    none = tmp_path / "none.csv"
    none.write_text(f"customer_id;alert_date;contacted\nC1;{DAY};yes\n")
    assert parse_outcomes(none, engine)["result"].tolist() == [None]


def test_outcomes_with_an_extra_field_are_refused_in_one_line(cfg, engine, tmp_path):
    _outcome_alerts(engine)
    path = tmp_path / "extra.csv"
    path.write_text(f"customer_id,alert_date,contacted,result\nC1,{DAY},yes,retained,surprise\n")
    with pytest.raises(ChurnwatchError, match="row 2 has 5 fields, the header 4"):
        parse_outcomes(path, engine)


# --- big fields and load failures --------------------------------------------------------------------


def test_a_very_long_agent_note_loads(cfg, engine, tmp_path):
    write_landing(tmp_path, "transactions", DAY, HEADER + txn_lines(3))
    note = "frustrated " * 20_000  # 220,000 characters
    write_landing(
        tmp_path,
        "service_events",
        DAY,
        f'event_id,customer_id,ts,event_type,note\ne1,C1,2025-03-31 09:00,call,"{note}"\n'
        + "".join(f"g{i},C2,2025-03-31 11:00,chat,ok\n" for i in range(3)),
    )
    run_dq(cfg, engine)
    stored = read_frame(engine, "SELECT note FROM stg_service_events WHERE event_id = 'e1'")["note"][0]
    assert len(stored) == len(note.strip())


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"txn_id,customer_id,ts,amount\nt1,C\xff1,2025-03-31,5\n", "is not valid utf-8"),
        (b'txn_id,customer_id,ts,amount\nt1,C1,2025-03-31,"5\n', "unreadable at line"),
    ],
)
def test_load_failures_are_recorded_in_dq_runs(any_cfg, any_engine, tmp_path, content, expected):
    folder = tmp_path / "landing" / "transactions"
    folder.mkdir(parents=True)
    (folder / f"{DAY}.csv").write_bytes(content)
    with pytest.raises(DataQualityError, match=expected):
        load_landing(AS_OF, any_cfg, any_engine)
    dq = read_frame(
        any_engine, "SELECT dataset, status, checks, message FROM dq_runs WHERE as_of_date = :d", {"d": AS_OF}
    )
    assert dq["dataset"].tolist() == ["transactions"] and dq["status"].tolist() == ["failed"]
    assert '"load_error": 1' in dq["checks"][0] and expected in dq["message"][0]


def test_a_missing_required_day_is_recorded_in_dq_runs(cfg, engine):
    with pytest.raises(DataQualityError, match="no data for"):
        load_landing(AS_OF, cfg, engine)
    dq = read_frame(engine, "SELECT status, checks FROM dq_runs WHERE as_of_date = :d", {"d": AS_OF})
    assert dq["status"].tolist() == ["failed"] and '"missing_batch": 1' in dq["checks"][0]


def test_earliest_timestamp_default_is_a_date():
    assert Config().sources.earliest_timestamp == date(1990, 1, 1)


def test_published_lists_are_readable_by_the_group(tmp_path):
    cfg = Config(base_dir=tmp_path, paths={"file_mode": "0644", "dir_mode": "0755"})
    engine = get_engine(cfg)
    with engine.begin() as conn:
        insert_frame(conn, "churn_alerts", _alert_rows(["C1", "C2"]))
    folder = Path(publish_outbox(AS_OF, cfg, engine)["folder"])
    engine.dispose()
    assert oct(folder.stat().st_mode & 0o777) == "0o755"
    assert {oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == {"0o644"}
    default = Config().paths.modes
    assert default == (0o640, 0o750)
    with pytest.raises(ValueError, match="not an octal mode"):
        Config(paths={"file_mode": "rw-r--r--"})
