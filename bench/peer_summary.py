"""One peer's BTYD summary of a transactions CSV, timed from inside: run by the peers venv, not churnwatch's.

usage: python bench/peer_summary.py lifetimes|pymc_marketing CSV AS_OF OUT_CSV TIMES_JSON

Reads CSV (txn_id, customer_id, ts, amount, type, channel), keeps the purchases (churnwatch's x, t_x and
t_cal count purchase days only), and calls the peer's summary with freq / time_unit 'D' and
observation_period_end AS_OF. Writes the summary (customer_id, frequency, recency, T, monetary_value) to
OUT_CSV and the seconds of each part to TIMES_JSON. Imports only the standard library, pandas and the peer.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time

import pandas as pd

DISTRIBUTIONS = {"lifetimes": "Lifetimes", "pymc_marketing": "pymc-marketing"}


def _summary_function(tool: str):
    if tool == "lifetimes":
        from lifetimes.utils import summary_data_from_transaction_data

        return lambda df, end: summary_data_from_transaction_data(
            df, "customer_id", "ts", monetary_value_col="amount", observation_period_end=end, freq="D"
        ).reset_index()
    if tool == "pymc_marketing":
        from pymc_marketing.clv import rfm_summary

        return lambda df, end: rfm_summary(
            df, "customer_id", "ts", monetary_value_col="amount", observation_period_end=end, time_unit="D"
        )
    raise SystemExit(f"unknown tool {tool!r}: lifetimes or pymc_marketing")


def main(tool: str, csv: str, as_of: str, out_csv: str, times_json: str) -> None:
    started = time.perf_counter()
    summarise = _summary_function(tool)
    times = {"import_seconds": time.perf_counter() - started}
    t = time.perf_counter()
    df = pd.read_csv(csv, usecols=["customer_id", "ts", "amount", "type"], dtype={"customer_id": str})
    df["ts"] = pd.to_datetime(df["ts"], format="%Y-%m-%d %H:%M:%S")
    times["read_seconds"] = time.perf_counter() - t
    rows = len(df)
    t = time.perf_counter()
    df = df.loc[df["type"] == "purchase", ["customer_id", "ts", "amount"]]
    times["filter_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    summary = summarise(df, as_of)
    times["summary_seconds"] = time.perf_counter() - t
    times.update(
        rows=rows,
        purchase_rows=int(len(df)),
        customers=int(len(summary)),
        version=importlib.metadata.version(DISTRIBUTIONS[tool]),
        pandas=pd.__version__,
        python=sys.version.split()[0],
    )
    summary[["customer_id", "frequency", "recency", "T", "monetary_value"]].to_csv(out_csv, index=False)
    with open(times_json, "w") as fh:
        json.dump({k: round(v, 3) if isinstance(v, float) else v for k, v in times.items()}, fh)


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__.split("\n\n")[1])
    main(*sys.argv[1:])
