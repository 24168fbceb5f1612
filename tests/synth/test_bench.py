"""The benchmark's own machinery (its figures come from `make bench`, not from tests)."""

from __future__ import annotations

import sys

import pandas as pd

from pipelines.synth import bench


def test_blocks_share_daily_files_with_distinct_ids(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "BLOCK", 150)
    monkeypatch.setattr(bench, "DAYS", 60)
    totals = bench.generate_blocks(tmp_path / "gen", 400)  # blocks of 150, 150 and 100 customers
    files = sorted((tmp_path / "gen" / "landing" / "transactions").glob("*.csv"))
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    assert len(frame) == totals["transactions"]
    assert frame["txn_id"].is_unique and set(frame["txn_id"].str[:4]) == {"B000", "B001", "B002"}
    assert frame["customer_id"].nunique() <= 400


def test_measured_reports_wall_time_and_peak_memory(tmp_path):
    code = "import time; x = bytearray(200 * 2**20); time.sleep(0.5)"
    m = bench.measured([sys.executable, "-c", code], {}, tmp_path / "log")
    assert m["seconds"] >= 0.5 and m["peak_rss_mb"] >= 200
