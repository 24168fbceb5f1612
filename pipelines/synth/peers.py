"""Benchmark side by side: lifetimes' and PyMC-Marketing's BTYD summaries against churnwatch's feature build.

One transactions CSV of at least `min_rows` rows (the first customers by id, whole histories) is cut from
the bench's generated daily files. Each tool reads it in its own measured subprocess: the peers in their
own venv (bench/peer_summary.py, requirements-peers.txt), churnwatch through its real path (the CSV loaded
into stg_transactions, then build_features). Their per-customer frequency / recency / T are compared with
churnwatch's x / t_x / t_cal. Doc: docs/scaling.md, "Side by side with lifetimes and PyMC-Marketing".
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import yaml

from pipelines.core.errors import ChurnwatchError
from pipelines.synth.measure import measured

MIN_ROWS = 10_000_000
PEERS = ("lifetimes", "pymc_marketing")
PEER_SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "peer_summary.py"
GOAL_RATIO = 20
# (peer column, churnwatch column): lifetimes' names and churnwatch's BG/NBD names of the same numbers.
COMPARED = [("frequency", "x"), ("recency", "t_x"), ("T", "t_cal"), ("monetary_value", "monetary_value")]
TXN_COLUMNS = {
    "txn_id": "VARCHAR",
    "customer_id": "VARCHAR",
    "ts": "TIMESTAMP",
    "amount": "DOUBLE",
    "type": "VARCHAR",
    "channel": "VARCHAR",
}


def build_transactions_csv(landing: Path, out: Path, min_rows: int) -> dict:
    """Write the first customers by id whose transactions reach min_rows to out; return rows, customers, as_of.

    Whole customers only, so every history in the file is complete. as_of is the last day in the data."""
    import duckdb

    files = str(landing / "transactions" / "*.csv")
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE txn AS SELECT * FROM read_csv(?, header = true, columns = ?)", [files, TXN_COLUMNS])
    total, last = con.execute("SELECT COUNT(*), MAX(CAST(ts AS DATE)) FROM txn").fetchone()
    if total < min_rows:
        con.close()
        raise ChurnwatchError(f"the generated data has {total:,} transactions; the side by side needs {min_rows:,}")
    # The last customer taken is the first whose running total reaches min_rows.
    (cutoff,) = con.execute(
        """
        SELECT MIN(customer_id) FROM (
            SELECT customer_id, SUM(COUNT(*)) OVER (ORDER BY customer_id) AS running
            FROM txn GROUP BY customer_id
        ) WHERE running >= ?
        """,
        [min_rows],
    ).fetchone()
    out.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        "COPY (SELECT * FROM txn WHERE customer_id <= ? ORDER BY customer_id, ts, txn_id) TO '"
        + str(out).replace("'", "''")
        + "' (HEADER)",
        [cutoff],
    )
    rows, customers = con.execute(
        "SELECT COUNT(*), COUNT(DISTINCT customer_id) FROM txn WHERE customer_id <= ?", [cutoff]
    ).fetchone()
    con.close()
    return {"rows": int(rows), "customers": int(customers), "as_of": last.isoformat()}


def churnwatch_summary(csv: Path, folder: Path, as_of: date) -> tuple[pd.DataFrame, dict]:
    """Load csv into a fresh warehouse's stg_transactions and build the features of as_of the product's way.

    Return (per customer with a purchase: customer_id, x, t_x, t_cal, monetary_value) and the seconds of
    each part: load, features (build_features), btyd_summary (the fit's input query), equivalent_query
    (sql/bench/lifetimes_summary.sql: the peers' output columns in one query)."""
    import sqlalchemy as sa

    from pipelines.core.config import load_config
    from pipelines.core.warehouse import get_engine, read_bulk, read_frame, sql_text
    from pipelines.features.customer_features import build_features

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("peers.duckdb*"):
        old.unlink()
    config = folder / "churnwatch.yaml"
    config.write_text(yaml.safe_dump({"warehouse": {"url": "duckdb:///peers.duckdb"}}))
    cfg = load_config(config)
    engine = get_engine(cfg)
    times: dict = {}
    t = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO stg_transactions (txn_id, customer_id, ts, amount, type, channel, _source_file,"
                " _source_row, _batch_date) SELECT txn_id, customer_id, ts, amount, type, channel, :name,"
                " ROW_NUMBER() OVER (), CAST(ts AS DATE) FROM read_csv(:path, header = true, columns = :columns)"
            ),
            {"name": csv.name, "path": str(csv), "columns": TXN_COLUMNS},
        )
    times["load_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    customers = build_features(as_of, cfg, engine).customers
    times["features_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    histories = read_frame(engine, sql_text("features/btyd_summary.sql"), {"as_of": as_of})
    times["btyd_summary_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    params = {"as_of": as_of, "as_of_next": as_of + timedelta(days=1)}
    equivalent = read_bulk(engine, sql_text("bench/lifetimes_summary.sql"), params)
    times["equivalent_query_seconds"] = time.perf_counter() - t
    ours = read_bulk(
        engine,
        "SELECT customer_id, purchase_days_total - 1 AS x, purchase_span_days AS t_x,"
        " first_purchase_age_days AS t_cal FROM customer_features"
        " WHERE as_of_date = :d AND purchase_days_total > 0",
        {"d": as_of},
    )
    engine.dispose()
    equivalent = equivalent.rename(columns={"frequency": "x", "recency": "t_x", "t": "t_cal"})
    # The bench query must say what the product says; its own disagreement is recorded, not hidden.
    times["equivalent_query_agreement"] = compare_summaries(
        equivalent.rename(columns={"x": "frequency", "t_x": "recency", "t_cal": "T"}).drop(columns="monetary_value"),
        ours,
    )
    times.update(feature_rows=int(customers), btyd_histories=int(len(histories)))
    ours = ours.merge(equivalent[["customer_id", "monetary_value"]], on="customer_id", how="left")
    return ours, times


def compare_summaries(peer: pd.DataFrame, ours: pd.DataFrame, tolerance: float = 1e-6) -> dict:
    """Return how a peer's summary (frequency, recency, T, monetary_value) agrees with churnwatch's per customer.

    Counts are integers and must be equal; monetary values agree within `tolerance` relative. A customer
    on one side only is a mismatch."""
    peer = peer.assign(customer_id=peer["customer_id"].astype(str))
    ours = ours.assign(customer_id=ours["customer_id"].astype(str))
    both = peer.merge(ours, on="customer_id", how="outer", indicator=True, suffixes=("_peer", ""))
    matched = both[both["_merge"] == "both"]
    mismatches: dict[str, int] = {}
    bad = pd.Series(False, index=matched.index)
    for theirs, mine in COMPARED:
        if theirs not in peer or mine not in ours:
            continue
        a = pd.to_numeric(matched[theirs if theirs != mine else f"{theirs}_peer"]).astype(float)
        b = pd.to_numeric(matched[mine]).astype(float)
        differs = (a - b).abs() > tolerance * b.abs().clip(lower=1.0)
        mismatches[f"{theirs} vs {mine}"] = int(differs.sum())
        bad |= differs
    only_peer = int((both["_merge"] == "left_only").sum())
    only_ours = int((both["_merge"] == "right_only").sum())
    return {
        "compared": int(len(matched)),
        "only_peer": only_peer,
        "only_churnwatch": only_ours,
        "mismatches": mismatches,
        "mismatched_customers": int(bad.sum()),
        "examples": sorted(matched.loc[bad, "customer_id"])[:5],
        "agree": bool(len(matched) > 0 and not bad.any() and only_peer == 0 and only_ours == 0),
    }


def run_peers(landing: Path, folder: Path, env: dict, log: Path, peers_python: Path, min_rows: int) -> dict:
    """Time the peers and churnwatch on one transactions CSV cut from landing; return results["peers"]."""
    if not peers_python.exists():
        raise ChurnwatchError(f"no peers venv at {peers_python}: run `make peers-venv` (or bench with --no-peers)")
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "transactions.csv"
    module = [sys.executable, "-m", "pipelines.synth.peers"]
    build = measured([*module, "build", str(landing), str(csv), str(min_rows), str(folder / "build.json")], env, log)
    data = json.loads((folder / "build.json").read_text())
    out: dict = {
        **data,
        "min_rows": min_rows,
        "csv_mb": round(csv.stat().st_size / 2**20, 1),
        "build_csv": build,
        "tools": {},
    }
    ours_csv = folder / "churnwatch.csv"
    process = measured([*module, "churnwatch", str(csv), str(folder), data["as_of"], str(ours_csv)], env, log)
    ours_times = json.loads((folder / "churnwatch.json").read_text())
    out["tools"]["churnwatch"] = {"process": process, **ours_times}
    ours = pd.read_csv(ours_csv, dtype={"customer_id": str})
    out["agreement"] = {}
    for tool in PEERS:
        summary_csv, times_json = folder / f"{tool}.csv", folder / f"{tool}.json"
        cmd = [str(peers_python), str(PEER_SCRIPT), tool, str(csv), data["as_of"], str(summary_csv), str(times_json)]
        try:
            process = measured(cmd, env, log)
        except ChurnwatchError as exc:  # a peer that fails is a result too; the bench goes on
            out["tools"][tool] = {"error": str(exc)}
            continue
        out["tools"][tool] = {"process": process, **json.loads(times_json.read_text())}
        peer = pd.read_csv(summary_csv, dtype={"customer_id": str})
        out["agreement"][tool] = compare_summaries(peer, ours)
    out["ratios"] = ratios(out["tools"])
    return out


def ratios(tools: dict) -> dict:
    """Return peer seconds / churnwatch seconds on three bases, and whether the first meets GOAL_RATIO."""
    cw = tools["churnwatch"]
    result: dict = {
        "goal": GOAL_RATIO,
        "basis": {
            "read_plus_summary": "peer CSV read + purchase filter + summary call / churnwatch CSV load + build_features",
            "summary_only": "peer summary call / churnwatch build_features (all ~50 features, stored)",
            "summary_vs_equivalent_query": "peer summary call / sql/bench/lifetimes_summary.sql (same columns)",
            "process": "wall time of each tool's whole process (interpreter start and imports included)",
        },
    }
    for tool in PEERS:
        peer = tools.get(tool, {})
        if "summary_seconds" not in peer:
            continue
        peer_read = peer["read_seconds"] + peer["filter_seconds"] + peer["summary_seconds"]
        r = {
            "read_plus_summary": peer_read / (cw["load_seconds"] + cw["features_seconds"]),
            "summary_only": peer["summary_seconds"] / cw["features_seconds"],
            "summary_vs_equivalent_query": peer["summary_seconds"] / cw["equivalent_query_seconds"],
            "process": peer["process"]["seconds"] / cw["process"]["seconds"],
        }
        r = {k: round(v, 1) for k, v in r.items()}
        r["meets_goal"] = r["read_plus_summary"] >= GOAL_RATIO
        result[tool] = r
    return result


def _main(argv: list[str]) -> None:
    if argv[:1] == ["build"] and len(argv) == 5:
        _, landing, out, min_rows, json_out = argv
        Path(json_out).write_text(json.dumps(build_transactions_csv(Path(landing), Path(out), int(min_rows))))
    elif argv[:1] == ["churnwatch"] and len(argv) == 5:
        _, csv, folder, as_of, out = argv
        ours, times = churnwatch_summary(Path(csv), Path(folder), date.fromisoformat(as_of))
        ours.to_csv(out, index=False)
        rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in times.items()}
        (Path(folder) / "churnwatch.json").write_text(json.dumps(rounded))
    else:
        sys.exit(
            "usage: python -m pipelines.synth.peers build LANDING OUT_CSV MIN_ROWS OUT_JSON\n"
            "       python -m pipelines.synth.peers churnwatch CSV FOLDER AS_OF OUT_CSV"
        )


if __name__ == "__main__":  # each side runs in its own process, so its memory is measured on its own
    _main(sys.argv[1:])
