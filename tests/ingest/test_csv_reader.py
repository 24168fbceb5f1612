"""The plain-CSV fast path gives exactly the frame of the record-by-record reader, and steps aside otherwise."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

import pipelines.ingest.extract as extract

PLAIN = [
    "customer_id,ts,amount\nC1,2024-01-01 10:00:00,12.5\nC2, 2024-01-02 ,\n",
    "customer_id;ts;amount\nC1;2024-01-01;1\nC2;2024-01-02;2",  # no newline at the end
    "customer_id,ts,amount,type\n,,,\nC3,2024-01-03,-4,refund\n",
    "customer_id,note\nC1,café ✓ naïve\n",  # text beyond ASCII
]
NOT_PLAIN = [
    'customer_id,note\nC1,"a, b"\n',  # quoted delimiter
    "customer_id,ts\nC1,2024-01-01\n\nC2,2024-01-02\n",  # blank line
    "customer_id,ts\nC1,2024-01-01,extra\n",  # ragged
    "customer_id,ts\nC1\nC2,2024-01-02\n",  # too few fields
    "customer_id,ts\nC1,2024-01-01\n\n",  # blank line at the end
    "customer_id,ts\nC1,2024-01-01\n  \nC2,2024-01-02\n",  # a line of spaces
    "customer_id,ts\r\nC1,2024-01-01\r\n",  # CR line ends
    "customer_id\nC1\n",  # one column: a blank line would look like a record
]


def _careful(path, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(extract, "_read_simple_csv", lambda text, delimiter: None)
        return extract.read_csv_file(path, "transactions")


@pytest.mark.parametrize("text", PLAIN)
def test_plain_csv_fast_path_equals_careful_reader(tmp_path, monkeypatch, text):
    path = tmp_path / "2024-01-03.csv"
    path.write_text(text)
    assert extract._read_simple_csv(text.encode(), extract._sniff_delimiter(text.split("\n")[0])) is not None
    fast = extract.read_csv_file(path, "transactions")
    careful = _careful(path, monkeypatch)
    assert fast.equals(careful)
    assert fast.column("_source_row").to_pylist() == list(range(2, len(fast) + 2))


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_anything_not_plain_goes_to_the_careful_reader(text):
    assert extract._read_simple_csv(text.encode(), extract._sniff_delimiter(text.split("\n")[0])) is None


def test_repeated_header_still_named(tmp_path):
    path = tmp_path / "2024-01-03.csv"
    path.write_text("customer_id,ts,ts\nC1,2024-01-01,2024-01-01\n")
    with pytest.raises(extract.DataQualityError, match="repeats column"):
        extract.read_csv_file(path, "transactions")


SPELLINGS = ["1.5", "-2", "+3.25", "1e5", "1E-3", "12.", "-.5", "00012.50", "1e400", "inf", "-inf", "+inf"]
SPELLINGS += ["Infinity", "nan", "NaN", "-NaN", " 12", "12 ", "1,5", "0x1A", "1_000", "abc", "١٢", "", None]


@pytest.mark.parametrize("odd", SPELLINGS)
def test_numbers_parsed_by_arrow_equal_pandas(odd, monkeypatch):
    import pandas as pd

    from pipelines.ingest import validation

    clean = ["12.34", "0.1", "-7", "99999.99"]
    text = pd.Series([*clean, odd, *clean], dtype="string")
    expected = pd.to_numeric(text, errors="coerce").astype("Float64")
    pd.testing.assert_series_equal(validation.parse_numbers(text), expected)
    # A clean column takes Arrow's path: pandas' parser is never called.
    monkeypatch.setattr(validation.pd, "to_numeric", lambda *a, **k: pytest.fail("pandas parsed a clean column"))
    pd.testing.assert_series_equal(validation.parse_numbers(pd.Series(clean, dtype="string")), expected[:4])


def test_fast_reader_loads_the_same_raw_tables_as_the_careful_one(any_cfg, tmp_path, monkeypatch):
    """Plain files (a BOM, gzip, latin-1, mapped and absent columns, empty fields, text beyond ASCII) land
    in raw_* and landing_files exactly as the record-by-record reader lands them, on DuckDB and PostgreSQL."""
    import gzip

    from pipelines.core.config import Config
    from pipelines.core.warehouse import get_engine, read_frame
    from pipelines.ingest.extract import load_landing

    data = any_cfg.model_dump()
    data["sources"]["datasets"] = {
        "transactions": {"required": True, "columns": {"amount": "bedrag"}},
        "service_events": {"encoding": "latin-1"},
        "surveys": {},
    }
    cfg = Config.model_validate(data | {"base_dir": tmp_path})
    landing = tmp_path / "landing"
    for name in ("transactions", "service_events", "surveys"):
        (landing / name).mkdir(parents=True)
    (landing / "transactions" / "2025-03-30.csv").write_bytes(
        b"\xef\xbb\xbftxn_id,customer_id,ts,bedrag,type\nt1,C1,2025-03-30 10:00:00,12.5,purchase\nt2,C2,,,\n"
    )
    with gzip.open(landing / "transactions" / "2025-03-31.csv.gz", "wt") as fh:
        fh.write("customer_id,txn_id,bedrag,ts,channel\nC3,t3,-4,2025-03-31 09:00:00,web\nC1,t4,1e3,x,\n")
    (landing / "service_events" / "2025-03-31.csv").write_bytes(
        "event_id;customer_id;ts;event_type;note\ne1;C1;2025-03-31 08:00:00;contact;déjà vu, naïve\n".encode("latin-1")
    )
    (landing / "surveys" / "2025-03-31.csv").write_text(
        "response_id,customer_id,ts,nps_score,comment\nr1,C2,2025-03-31 12:00:00,9,très bien ✓\nr2,C3,,,\n"
    )
    tables = ["raw_transactions", "raw_service_events", "raw_surveys", "landing_files"]
    engine = get_engine(cfg)
    fast_calls = []
    real = extract._read_simple_csv
    monkeypatch.setattr(extract, "_read_simple_csv", lambda *a: fast_calls.append(real(*a)) or fast_calls[-1])

    def loaded() -> dict:
        load_landing(date(2025, 3, 31), cfg, engine, since=date(2025, 3, 30))
        order = {"landing_files": "dataset, file_name"}
        return {
            t: read_frame(engine, f"SELECT * FROM {t} ORDER BY {order.get(t, '_source_file, _source_row')}")
            for t in tables
        }

    fast = loaded()
    assert len(fast_calls) == 4 and all(t is not None for t in fast_calls)  # every file took Arrow's parser
    monkeypatch.setattr(extract, "_read_simple_csv", lambda *a: None)
    careful = loaded()  # the same window again, replaced whole by the careful reader's rows
    engine.dispose()
    assert len(fast["raw_transactions"]) == 4 and fast["raw_surveys"]["comment"].tolist() == ["très bien ✓", ""]
    assert fast["raw_service_events"]["note"].tolist() == ["déjà vu, naïve"]
    assert fast["raw_transactions"]["channel"].isna().sum() == 2  # absent from one file: missing, not ""
    for t in tables:
        drop = ["loaded_at"] if t == "landing_files" else []
        pd.testing.assert_frame_equal(fast[t].drop(columns=drop), careful[t].drop(columns=drop), obj=t)
