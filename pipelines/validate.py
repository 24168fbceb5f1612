"""Validate raw batches with Great Expectations suites (one per dataset); route rows to stg_* or quarantine_*."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from pipelines.config import DATASET_COLUMNS, Config
from pipelines.errors import DataQualityError
from pipelines.warehouse import insert_frame, read_frame, replace_rows

log = logging.getLogger(__name__)

TRANSACTION_TYPES = ["purchase", "refund", "deposit", "withdrawal", "payment"]
NEGATIVE_TYPES = {"refund", "withdrawal"}
EVENT_TYPES = ["contact", "complaint", "call", "email", "chat", "visit"]
TRUE_WORDS = {"true", "1", "yes", "y", "t"}
FALSE_WORDS = {"false", "0", "no", "n", "f", ""}
META = ["_source_file", "_source_row", "_batch_date"]
ROW_ID = "_rid"


@dataclass
class ValidationSummary:
    as_of: date
    run_id: str
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "run_id": self.run_id, "datasets": self.datasets}


def _gx():
    import great_expectations as gx  # imported lazily: it takes seconds to import

    return gx


def build_suite(dataset: str, as_of: date):
    """Return the Great Expectations suite for one dataset, for a batch validated on as_of."""
    gx = _gx()
    exp = gx.expectations
    suite = gx.ExpectationSuite(name=f"{dataset}_suite")
    latest = pd.Timestamp(as_of + timedelta(days=1)) - pd.Timedelta(microseconds=1)
    required, _ = DATASET_COLUMNS[dataset]
    for col in required:
        suite.add_expectation(exp.ExpectColumnToExist(column=col))
        suite.add_expectation(exp.ExpectColumnValuesToNotBeNull(column=col))
    if "ts" in required:
        suite.add_expectation(exp.ExpectColumnValuesToBeBetween(column="ts", max_value=latest))
    if dataset == "transactions":
        suite.add_expectation(exp.ExpectColumnValuesToBeInSet(column="type", value_set=TRANSACTION_TYPES))
        suite.add_expectation(exp.ExpectColumnValuesToBeUnique(column="txn_id"))
        suite.add_expectation(exp.ExpectColumnValuesToBeInSet(column="_sign_ok", value_set=[True]))
    elif dataset == "service_events":
        suite.add_expectation(exp.ExpectColumnValuesToBeInSet(column="event_type", value_set=EVENT_TYPES))
        suite.add_expectation(exp.ExpectColumnValuesToBeBetween(column="wait_seconds", min_value=0))
        suite.add_expectation(exp.ExpectColumnValuesToBeBetween(column="handle_seconds", min_value=0))
        suite.add_expectation(exp.ExpectColumnValuesToBeUnique(column="event_id"))
    elif dataset == "surveys":
        suite.add_expectation(exp.ExpectColumnValuesToBeBetween(column="nps_score", min_value=0, max_value=10))
        suite.add_expectation(exp.ExpectColumnValuesToBeUnique(column="response_id"))
    elif dataset == "customers":
        suite.add_expectation(exp.ExpectColumnValuesToBeUnique(column="customer_id"))
    return suite


def _reason(config) -> str:
    kind = config.type.removeprefix("expect_column_values_to_").removeprefix("expect_")
    col = config.kwargs.get("column", "")
    names = {
        "not_be_null": "missing_or_unparseable",
        "be_between": "out_of_range",
        "be_in_set": "invalid",
        "be_unique": "duplicate_key",
    }
    if col == "_sign_ok":
        return "amount_sign_inconsistent_with_type"
    if col == "ts" and kind == "be_between":
        return "future_timestamp"
    return f"{names.get(kind, kind)}_{col}"


def run_suite(dataset: str, typed: pd.DataFrame, as_of: date) -> tuple[dict[int, list[str]], dict[str, int]]:
    """Validate typed rows with the dataset's suite; return (row id -> reasons, failures per check)."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(f"{dataset}_source").add_dataframe_asset(dataset)
    batch_def = asset.add_batch_definition_whole_dataframe("batch")
    suite = context.suites.add(build_suite(dataset, as_of))
    batch = batch_def.get_batch(batch_parameters={"dataframe": typed})
    result = batch.validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]}
    )
    failures: dict[int, list[str]] = {}
    counts: dict[str, int] = {}
    for res in result.results:
        if res.success:
            continue
        reason = _reason(res.expectation_config)
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise DataQualityError(
                f"{dataset}: check {reason} could not run: {res.exception_info.get('exception_message')}"
            )
        rows = [int(item[ROW_ID]) for item in res.result.get("unexpected_index_list") or []]
        counts[reason] = len(rows)
        for rid in rows:
            failures.setdefault(rid, []).append(reason)
    return failures, counts


def _to_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return (parsed booleans with NA for blanks, mask of unparseable non-blank values)."""
    text = values.fillna("").astype(str).str.strip().str.lower()
    parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
    parsed[text.isin(TRUE_WORDS)] = True
    parsed[text.isin(FALSE_WORDS - {""})] = False
    bad = ~text.isin(TRUE_WORDS | FALSE_WORDS)
    return parsed, bad


def _to_ts(values: pd.Series, fmt: str | None) -> pd.Series:
    text = values.astype("string").str.strip()
    parsed = pd.to_datetime(text, errors="coerce", format=fmt or "ISO8601", utc=True)
    return parsed.dt.tz_convert(None).astype("datetime64[us]")


def type_rows(dataset: str, raw: pd.DataFrame, cfg: Config) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """Parse text columns to types; return (typed frame, row id -> parse reasons)."""
    ds = cfg.sources.datasets[dataset]
    typed = pd.DataFrame({ROW_ID: raw[ROW_ID].to_numpy()}, index=raw.index)
    reasons: dict[int, list[str]] = {}

    def flag(mask: pd.Series, reason: str) -> None:
        for rid in raw.loc[mask.fillna(False).to_numpy(bool), ROW_ID]:
            reasons.setdefault(int(rid), []).append(reason)

    for col in raw.columns:
        if col in META or col == ROW_ID:
            continue
        text = raw[col].astype("string").str.strip()
        typed[col] = text.where(text != "", pd.NA)
    if "ts" in raw:
        typed["ts"] = _to_ts(typed["ts"], ds.timestamp_format)
    for col in ("amount", "wait_seconds", "handle_seconds", "nps_score"):
        if col in typed:
            typed[col] = pd.to_numeric(typed[col], errors="coerce").astype("Float64")
    if dataset == "surveys":
        not_whole = typed["nps_score"].notna() & (typed["nps_score"] % 1 != 0)
        flag(not_whole, "out_of_range_nps_score")
    if dataset == "transactions":
        typed["type"] = typed["type"].str.lower()
        inferred = pd.Series(
            ["refund" if (a is not pd.NA and a < 0) else "purchase" for a in typed["amount"]], index=typed.index
        )
        typed["type"] = typed["type"].fillna(inferred)
        negative = typed["type"].isin(list(NEGATIVE_TYPES))
        amount = typed["amount"]
        typed["_sign_ok"] = (amount.isna() | (negative & (amount <= 0)) | (~negative & (amount >= 0))).astype(bool)
    if dataset == "service_events":
        typed["event_type"] = typed["event_type"].str.lower()
        for col in ("resolved", "transferred"):
            typed[col], bad = _to_bool(raw[col])
            flag(bad, f"unparseable_{col}")
    if dataset == "customers":
        for col in ("signup_date", "contract_end"):
            parsed = pd.to_datetime(typed[col], errors="coerce", format="ISO8601")
            flag(typed[col].notna() & parsed.isna(), f"unparseable_{col}")
            typed[col] = parsed.dt.date
        typed["do_not_contact"], bad = _to_bool(raw["do_not_contact"])
        flag(bad, "unparseable_do_not_contact")
    return typed, reasons


def validate_batches(as_of: date, cfg: Config, engine: Engine, since: date | None = None) -> ValidationSummary:
    """Validate raw batches dated [since or as_of, as_of]; write stg_, quarantine_ and dq_runs atomically.

    Raises DataQualityError (after recording the failed check in dq_runs) when a batch is broken
    as a whole; nothing is published to stg_* then.
    """
    start = since or as_of
    summary = ValidationSummary(as_of, uuid.uuid4().hex[:12])
    outputs: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    dq_rows = []
    problem: str | None = None
    for dataset in cfg.sources.datasets:
        raw = read_frame(
            engine, f"SELECT * FROM raw_{dataset} WHERE _batch_date BETWEEN :s AND :e", {"s": start, "e": as_of}
        )
        if raw.empty:
            summary.datasets[dataset] = {"rows_read": 0, "status": "missing"}
            continue
        raw = raw.reset_index(drop=True)
        raw[ROW_ID] = range(len(raw))
        required, optional = DATASET_COLUMNS[dataset]
        data_cols = list(required + optional)
        # Exact duplicates: keep the first copy, quarantine the rest.
        dup = raw.duplicated(subset=data_cols, keep="first")
        typed, reasons = type_rows(dataset, raw[~dup], cfg)
        gx_fail, counts = run_suite(dataset, typed, as_of)
        for rid, rs in gx_fail.items():
            reasons.setdefault(rid, []).extend(rs)
        for rid in raw.loc[dup, ROW_ID]:
            reasons[int(rid)] = ["duplicate_row"]
        counts["duplicate_row"] = int(dup.sum())
        for rs in reasons.values():
            for r in set(rs):
                if r.startswith("unparseable"):
                    counts[r] = counts.get(r, 0) + 1
        bad_ids = set(reasons)
        quarantine = raw[raw[ROW_ID].isin(bad_ids)].copy()
        quarantine["reasons"] = [";".join(dict.fromkeys(reasons[int(r)])) for r in quarantine[ROW_ID]]
        good = typed[~typed[ROW_ID].isin(bad_ids)].merge(raw[[ROW_ID] + META], on=ROW_ID)
        n_read, n_good, n_bad = len(raw), len(good), len(quarantine)
        assert n_read == n_good + n_bad, "row accounting broken"
        status = "ok" if n_bad == 0 else "warn"
        share = n_bad / n_read
        if share > cfg.sources.max_quarantine_share:
            status = "failed"
            top = Counter(r for rs in reasons.values() for r in rs).most_common(1)[0][0]
            problem = problem or (
                f"{dataset}: {n_bad} of {n_read} rows failed validation (most often: {top}) in "
                f"{quarantine['_source_file'].iloc[0]}; batch stopped, previous outputs untouched"
            )
        outputs[dataset] = (good, quarantine)
        files = sorted(raw["_source_file"].unique())
        dq_rows.append(
            {
                "run_id": summary.run_id,
                "as_of_date": as_of,
                "dataset": dataset,
                "source": files[0] if len(files) == 1 else f"{len(files)} files {files[0]}..{files[-1]}",
                "rows_read": n_read,
                "rows_loaded": n_good,
                "rows_quarantined": n_bad,
                "checks": json.dumps({k: v for k, v in sorted(counts.items()) if v}),
                "status": status,
                "created_at": datetime.now(UTC).replace(tzinfo=None),
            }
        )
        summary.datasets[dataset] = {
            "rows_read": n_read,
            "rows_loaded": n_good,
            "rows_quarantined": n_bad,
            "status": status,
            "checks": {k: v for k, v in counts.items() if v},
        }
    dq = pd.DataFrame(dq_rows)
    with engine.begin() as conn:
        if problem is None:
            for dataset, (good, quarantine) in outputs.items():
                params = {"s": start, "e": as_of}
                replace_rows(conn, f"stg_{dataset}", good, "_batch_date BETWEEN :s AND :e", params)
                replace_rows(conn, f"quarantine_{dataset}", quarantine, "_batch_date BETWEEN :s AND :e", params)
        replace_rows(conn, "dq_runs", dq.iloc[0:0], "as_of_date = :d", {"d": as_of})
        insert_frame(conn, "dq_runs", dq)
    if problem:
        raise DataQualityError(problem)
    return summary
