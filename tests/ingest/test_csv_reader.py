"""The plain-CSV fast path gives exactly the frame of the record-by-record reader, and steps aside otherwise."""

from __future__ import annotations

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
