"""The side by side with lifetimes and PyMC-Marketing: its data cut, churnwatch's side and the agreement check.

lifetimes' definitions (summary_data_from_transaction_data, freq='D') are encoded by hand here, so these
tests need no peers venv; only the last one runs the real peers, when var/peers-venv exists."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.errors import ChurnwatchError
from pipelines.synth import bench, peers

REPO = Path(__file__).resolve().parents[2]
PEERS_PYTHON = REPO / "var" / "peers-venv" / "bin" / "python"
AS_OF = date(2024, 1, 10)
# A: two purchases on day 1 (one purchase day), a refund, a repeat day, a purchase after AS_OF.
# B: one purchase. C: a refund only (no purchase: in no summary). D: a repeat day with two purchases.
HAND_CSV = """txn_id,customer_id,ts,amount,type,channel
T1,A,2024-01-01 10:00:00,10.0,purchase,web
T2,A,2024-01-01 15:00:00,5.0,purchase,web
T3,A,2024-01-03 09:00:00,-5.0,refund,web
T4,A,2024-01-05 12:00:00,20.0,purchase,app
T5,A,2024-01-11 08:00:00,99.0,purchase,app
T6,B,2024-01-02 11:00:00,7.5,purchase,store
T7,C,2024-01-04 11:00:00,-3.0,refund,store
T8,D,2024-01-02 09:30:00,3.0,purchase,web
T9,D,2024-01-06 10:00:00,4.0,purchase,web
T10,D,2024-01-06 23:59:59,6.0,purchase,app
"""
# Worked out on paper: frequency = purchase days - 1, recency = last - first purchase day,
# T = AS_OF - first purchase day, monetary_value = mean spend of the repeat days (0 without any).
HAND_SUMMARY = pd.DataFrame(
    {
        "customer_id": ["A", "B", "D"],
        "frequency": [1, 0, 1],
        "recency": [4, 0, 4],
        "T": [9, 8, 8],
        "monetary_value": [20.0, 0.0, 10.0],
    }
)


def lifetimes_by_hand(transactions: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Return lifetimes' summary (freq='D', purchases on or before as_of) computed one customer at a time."""
    rows = []
    buys = transactions[(transactions["type"] == "purchase") & (pd.to_datetime(transactions["ts"]).dt.date <= as_of)]
    for customer, group in buys.groupby("customer_id"):
        per_day = group.groupby(pd.to_datetime(group["ts"]).dt.date)["amount"].sum().sort_index()
        days = list(per_day.index)
        repeat = per_day.iloc[1:]
        rows.append(
            {
                "customer_id": customer,
                "frequency": len(days) - 1,
                "recency": (days[-1] - days[0]).days,
                "T": (as_of - days[0]).days,
                "monetary_value": float(repeat.mean()) if len(repeat) else 0.0,
            }
        )
    return pd.DataFrame(rows)


def test_churnwatch_side_matches_a_summary_worked_out_by_hand(tmp_path):
    csv = tmp_path / "transactions.csv"
    csv.write_text(HAND_CSV)
    ours, times = peers.churnwatch_summary(csv, tmp_path / "peers", AS_OF)
    assert sorted(ours["customer_id"]) == ["A", "B", "D"]
    assert peers.compare_summaries(HAND_SUMMARY, ours) == {
        "compared": 3,
        "only_peer": 0,
        "only_churnwatch": 0,
        "mismatches": {
            "frequency vs x": 0,
            "recency vs t_x": 0,
            "T vs t_cal": 0,
            "monetary_value vs monetary_value": 0,
        },
        "mismatched_customers": 0,
        "examples": [],
        "agree": True,
    }
    assert times["equivalent_query_agreement"]["agree"] and times["equivalent_query_agreement"]["compared"] == 3
    assert times["feature_rows"] == 4  # C is a customer too (a refund), without BG/NBD history
    assert all(times[k] >= 0 for k in ("load_seconds", "features_seconds", "equivalent_query_seconds"))


def test_a_disagreement_is_counted_and_named():
    ours = HAND_SUMMARY.rename(columns={"frequency": "x", "recency": "t_x", "T": "t_cal"})
    peer = HAND_SUMMARY.copy()
    peer.loc[peer["customer_id"] == "D", "recency"] = 5
    peer.loc[peer["customer_id"] == "A", "monetary_value"] = 20.01
    peer = pd.concat([peer, pd.DataFrame([{"customer_id": "Z", "frequency": 0, "recency": 0, "T": 1}])])
    result = peers.compare_summaries(peer, ours)
    assert result["agree"] is False
    assert result["mismatches"]["recency vs t_x"] == 1 and result["mismatches"]["monetary_value vs monetary_value"] == 1
    assert result["mismatches"]["frequency vs x"] == 0
    assert result["examples"] == ["A", "D"] and result["only_peer"] == 1 and result["compared"] == 3
    assert peers.compare_summaries(HAND_SUMMARY.iloc[:0], ours.iloc[:0])["agree"] is False  # nothing checked


def test_generated_data_is_cut_into_whole_customers_and_summarised_as_lifetimes_would(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "BLOCK", 150)
    monkeypatch.setattr(bench, "DAYS", 90)
    totals = bench.generate_blocks(tmp_path / "gen", 300)
    landing = tmp_path / "gen" / "landing"
    files = sorted((landing / "transactions").glob("*.csv"))
    everything = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    cut = peers.build_transactions_csv(landing, tmp_path / "peers" / "transactions.csv", totals["transactions"] // 2)
    frame = pd.read_csv(tmp_path / "peers" / "transactions.csv")
    assert (
        cut["rows"] == len(frame) >= totals["transactions"] // 2 and cut["customers"] == frame["customer_id"].nunique()
    )
    assert cut["as_of"] == "2024-03-30"  # the last generated day
    ids = sorted(everything["customer_id"].unique())
    assert sorted(frame["customer_id"].unique()) == ids[: cut["customers"]]  # the first customers by id
    # Whole histories: each customer taken has all of its rows.
    assert frame["customer_id"].value_counts().to_dict() == (
        everything[everything["customer_id"].isin(frame["customer_id"])]["customer_id"].value_counts().to_dict()
    )
    as_of = date.fromisoformat(cut["as_of"])
    ours, _ = peers.churnwatch_summary(tmp_path / "peers" / "transactions.csv", tmp_path / "peers", as_of)
    hand = lifetimes_by_hand(frame, as_of)
    result = peers.compare_summaries(hand, ours)
    assert result["agree"] and result["compared"] == len(hand) > 100
    assert (hand["frequency"] > 0).sum() > 50  # repeat buyers, so recency and monetary are checked too
    with pytest.raises(ChurnwatchError, match="needs"):
        peers.build_transactions_csv(landing, tmp_path / "too_many.csv", totals["transactions"] + 1)


def test_peers_phase_without_its_venv_says_how_to_make_it(tmp_path):
    with pytest.raises(ChurnwatchError, match="make peers-venv"):
        peers.run_peers(tmp_path, tmp_path / "peers", {}, tmp_path / "log", tmp_path / "no" / "python", 1)


@pytest.mark.skipif(not PEERS_PYTHON.exists(), reason="no peers venv (make peers-venv): the real peers are not run")
def test_real_peers_agree_with_churnwatch_on_the_hand_made_transactions(tmp_path):
    landing = tmp_path / "landing"
    (landing / "transactions").mkdir(parents=True)
    # AS_OF is the last day of the data: T5 (after it) is left out of this file.
    text = "".join(line + "\n" for line in HAND_CSV.splitlines() if not line.startswith("T5,"))
    (landing / "transactions" / "2024-01-10.csv").write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = peers.run_peers(landing, tmp_path / "peers", env, tmp_path / "log", PEERS_PYTHON, 9)
    assert result["rows"] == 9 and result["customers"] == 4 and result["as_of"] == "2024-01-06"
    for tool in peers.PEERS:
        assert "error" not in result["tools"][tool], result["tools"][tool]
        assert result["agreement"][tool]["agree"] and result["agreement"][tool]["compared"] == 3, tool
        # On nine rows the ratios mean nothing (they may round to 0.0), but they must come from the times.
        times, ours = result["tools"][tool], result["tools"]["churnwatch"]
        assert result["ratios"][tool]["summary_only"] == round(times["summary_seconds"] / ours["features_seconds"], 1)
