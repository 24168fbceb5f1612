"""Validate raw batches with Great Expectations suites (one per dataset); route rows to stg_* or quarantine_*.

Two suites run per dataset and run:

* the row suite over every row of the window: columns, types, keys, allowed values and ranges,
  timestamps not after the run date, unknown customers, keys already loaded. A failing row goes to
  quarantine_<dataset> with its reason codes; the other rows go on to stg_<dataset>.
* the batch suite over the run date's batch: volume against the trailing days and freshness of the
  newest timestamp. A failure there (or too many bad rows) stops the run before anything is published.

Every run writes Great Expectations Data Docs to <report_dir>/<as_of>/data_docs/index.html.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.core.config import DATASET_COLUMNS, Config
from pipelines.core.errors import DataQualityError
from pipelines.core.numbers import FALSE_WORDS, TRUE_WORDS
from pipelines.core.publish import swap_folder
from pipelines.core.warehouse import (
    check_table,
    crash_point,
    insert_frame,
    read_bulk,
    read_for_keys,
    read_frame,
    sql_text,
)
from pipelines.ingest.extract import ingest_sql, load_window

log = logging.getLogger(__name__)

TRANSACTION_TYPES = ["purchase", "refund", "deposit", "withdrawal", "payment"]
NEGATIVE_TYPES = {"refund", "withdrawal"}
EVENT_TYPES = ["contact", "complaint", "call", "email", "chat", "visit"]
NUMERIC_COLUMNS = ("amount", "wait_seconds", "handle_seconds", "nps_score")
# Spellings of "no value" in a numeric field: missing, not a parse error.
NULL_WORDS = {"na", "n/a", "null", "none"}
META = ["_source_file", "_source_row", "_batch_date"]
ROW_ID = "_rid"
# Natural key and the columns that must agree when the same key arrives again.
KEYS = {
    "transactions": ("txn_id", ("customer_id", "ts", "amount")),
    "service_events": ("event_id", ("customer_id", "ts", "event_type")),
    "surveys": ("response_id", ("customer_id", "ts", "nps_score")),
    "cancellations": ("cancel_id", ("customer_id", "ts")),
}
DEFAULT_STALENESS_DAYS = 7
# Every check code in the words of the person who reads the report or the Data Docs.
CHECK_NAMES = {
    "amount_sign_inconsistent_with_type": "amount's sign does not fit the type (refunds negative, purchases positive)",
    "unknown_customer": "customer not in the customers dataset",
    "duplicate_row": "row already delivered (exact duplicate)",
    "conflicting_key": "same id delivered before with other values",
    "wrong_field_count": "line with too few or too many fields",
    "future_timestamp": "dated after the run date",
    "timestamp_too_early": "dated before sources.earliest_timestamp",
    "volume_collapse": "far fewer rows than on the days before",
    "stale_data": "newest row too old (stale delivery)",
    "load_error": "file could not be read",
    "missing_batch": "no data delivered for the day",
}
CHECK_PREFIXES = {
    "missing_or_unparseable_": "missing or unreadable",
    "non_finite_": "not a finite number:",
    "unparseable_": "unreadable",
    "out_of_range_": "out of range:",
    "invalid_": "not an allowed value:",
    "duplicate_key_": "id repeated in one batch:",
    "wrong_field_count_": "wrong number of fields:",
}
_FLAG_REASONS = {
    "_sign_ok": "amount_sign_inconsistent_with_type",
    "_customer_known": "unknown_customer",
    "_not_loaded_before": "duplicate_row",
    "_key_consistent": "conflicting_key",
    "_shape_ok": "wrong_field_count",
}


@dataclass
class ValidationSummary:
    as_of: date
    run_id: str
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_docs: str | None = None

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "run_id": self.run_id,
            "datasets": self.datasets,
            "data_docs": self.data_docs,
        }


def _gx():
    import great_expectations as gx  # imported lazily: it takes seconds to import
    from great_expectations.execution_engine import pandas_execution_engine

    # GX labels every in-memory batch under 1 GB with a fingerprint: an MD5 over pandas' hash of every
    # value. Nothing reads that label here (results carry the run id and the rows' _rid), and it cost 13 %
    # of a 60-day history window at 1M customers (py-spy). Batches above the threshold already go without.
    pandas_execution_engine.HASH_THRESHOLD = 0
    return gx


def build_suite(dataset: str, as_of: date, cfg: Config, with_customers: bool = False):
    """Return the row-level Great Expectations suite for one dataset, for rows validated on as_of."""
    gx = _gx()
    exp = gx.expectations
    suite = gx.ExpectationSuite(name=f"{dataset}_rows")
    latest = pd.Timestamp(as_of + timedelta(days=1)) - pd.Timedelta(microseconds=1)
    earliest = pd.Timestamp(cfg.sources.earliest_timestamp)
    required, optional = DATASET_COLUMNS[dataset]
    for col in required:
        suite.add_expectation(exp.ExpectColumnToExist(column=col))
        suite.add_expectation(exp.ExpectColumnValuesToNotBeNull(column=col))
    suite.add_expectation(_flag_check(exp, "_shape_ok"))
    if "ts" in required:
        suite.add_expectation(exp.ExpectColumnValuesToBeBetween(column="ts", max_value=latest))
        suite.add_expectation(exp.ExpectColumnValuesToBeBetween(column="ts", min_value=earliest))
    for col, bounds in cfg.sources.value_bounds.items():
        if col in required + optional and (bounds.min is not None or bounds.max is not None):
            suite.add_expectation(
                exp.ExpectColumnValuesToBeBetween(column=col, min_value=bounds.min, max_value=bounds.max)
            )
    if dataset in KEYS:
        key = KEYS[dataset][0]
        suite.add_expectation(
            exp.ExpectCompoundColumnsToBeUnique(column_list=["_batch_date", key], ignore_row_if="any_value_is_missing")
        )
        suite.add_expectation(_flag_check(exp, "_not_loaded_before"))
        suite.add_expectation(_flag_check(exp, "_key_consistent"))
    if with_customers:
        suite.add_expectation(_flag_check(exp, "_customer_known"))
    if dataset == "transactions":
        suite.add_expectation(exp.ExpectColumnValuesToBeInSet(column="type", value_set=TRANSACTION_TYPES))
        suite.add_expectation(_flag_check(exp, "_sign_ok"))
    elif dataset == "service_events":
        suite.add_expectation(exp.ExpectColumnValuesToBeInSet(column="event_type", value_set=EVENT_TYPES))
    elif dataset == "surveys":
        suite.add_expectation(exp.ExpectColumnValuesToBeBetween(column="nps_score", min_value=0, max_value=10))
    elif dataset == "customers":
        suite.add_expectation(exp.ExpectColumnValuesToBeBetween(column="signup_date", min_value=earliest.date()))
        suite.add_expectation(
            exp.ExpectCompoundColumnsToBeUnique(
                column_list=["_batch_date", "customer_id"], ignore_row_if="any_value_is_missing"
            )
        )
    return suite


def _flag_check(exp, flag: str):
    """Return the expectation on a computed flag column, described in a reader's words (not 'values in {True}')."""
    return exp.ExpectColumnValuesToBeInSet(column=flag, value_set=[True], description=CHECK_NAMES[_FLAG_REASONS[flag]])


def check_name(code: str) -> str:
    """Return a quarantine reason or check code in a reader's words (e.g. for the report)."""
    if code in CHECK_NAMES:
        return CHECK_NAMES[code]
    for prefix, text in CHECK_PREFIXES.items():
        if code.startswith(prefix):
            return f"{text} {code[len(prefix) :].replace('_', ' ')}".strip()
    return code.replace("_", " ")


def build_batch_suite(dataset: str, min_rows: int | None, newest_after: date | None):
    """Return the batch-level suite for the run date's batch: volume and freshness."""
    gx = _gx()
    exp = gx.expectations
    suite = gx.ExpectationSuite(name=f"{dataset}_batch")
    suite.add_expectation(exp.ExpectTableRowCountToBeBetween(min_value=min_rows or 0))
    if newest_after is not None:
        suite.add_expectation(exp.ExpectColumnMaxToBeBetween(column="ts", min_value=pd.Timestamp(newest_after)))
    return suite


def _reason(config) -> str:
    kind = config.type.removeprefix("expect_column_values_to_").removeprefix("expect_")
    col = config.kwargs.get("column", "")
    if col in _FLAG_REASONS:
        return _FLAG_REASONS[col]
    if col in ("ts", "signup_date") and kind == "be_between":
        return "future_timestamp" if config.kwargs.get("max_value") is not None else "timestamp_too_early"
    if kind == "compound_columns_to_be_unique":
        return f"duplicate_key_{config.kwargs['column_list'][-1]}"
    names = {
        "not_be_null": "missing_or_unparseable",
        "be_between": "out_of_range",
        "be_in_set": "invalid",
        "be_unique": "duplicate_key",
    }
    return f"{names.get(kind, kind)}_{col}"


class GxRun:
    """One Great Expectations file context per validation run; its Data Docs go to a staged folder."""

    def __init__(self, docs_dir: Path, run_name: str, modes: tuple[int, int] = (0o644, 0o755)):
        gx = _gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.root = Path(tempfile.mkdtemp(prefix="churnwatch-gx-"))
        self.docs_dir = docs_dir
        self.staging = docs_dir.parent / f".{docs_dir.name}.{uuid.uuid4().hex[:6]}"
        self.run_name = run_name
        self.modes = modes
        self.context = gx.get_context(mode="file", project_root_dir=str(self.root))
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.context.variables.data_docs_sites = {
            "churnwatch": {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(self.staging)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        }
        self.context.variables.save()

    def validate(self, name: str, frame: pd.DataFrame, suite):
        """Validate frame with suite; the result is kept for the Data Docs."""
        gx = _gx()
        from great_expectations.core.run_identifier import RunIdentifier

        asset = self.context.data_sources.add_pandas(name).add_dataframe_asset(name)
        batch_def = asset.add_batch_definition_whole_dataframe("batch")
        suite = self.context.suites.add(suite)
        vd = self.context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_def, suite=suite))
        return vd.run(
            batch_parameters={"dataframe": _gx_frame(frame)},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]},
            run_id=RunIdentifier(run_name=self.run_name),
        )

    def publish(self) -> Path:
        """Build the Data Docs and swap them in place of the date's previous ones."""
        self.context.build_data_docs()
        swap_folder(self.staging, self.docs_dir, *self.modes)
        return self.docs_dir / "index.html"

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.staging, ignore_errors=True)


def _objects(values: pd.Series) -> pd.Series:
    """Return text values as Python objects: pandas 3's Arrow strings iterate, and test membership in a large
    set, one Arrow scalar at a time (seconds per million rows); an object Series hashes them natively."""
    return values.astype(object)


def _factorize(values: pd.Series, use_na_sentinel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return pd.factorize codes and the distinct values as Python objects. Arrow hashes its own strings
    (2.1 s -> 0.9 s for 2.6M distinct keys, measured); only the distinct values become Python strings."""
    codes, uniques = pd.factorize(values, use_na_sentinel=use_na_sentinel)
    return codes, np.asarray(uniques, dtype=object)


def _gx_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return frame with timestamps in nanoseconds and plain floats: GX compares only those vectorised (~40x faster)."""
    stamps = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    # Nullable numbers (Float64) are likewise compared row by row; as float64 their NA is NaN, still a null to GX.
    numbers = {c: frame[c].astype(float) for c in frame.columns if isinstance(frame[c].dtype, pd.Float64Dtype)}
    if numbers:
        frame = frame.assign(**numbers)
    if not stamps:
        return frame
    # Nanoseconds span 1677-2262; a value beyond is clipped to the span's edge, still outside every check's bounds.
    low, high = pd.Timestamp.min.ceil("us"), pd.Timestamp.max.floor("us")
    return frame.assign(**{c: frame[c].clip(low, high).astype("datetime64[ns]") for c in stamps})


def row_failures(result, dataset: str) -> dict[int, list[str]]:
    """Return row id -> reasons from a row-suite result (the per-check counts come from the tidied reasons)."""
    failures: dict[int, list[str]] = {}
    for res in result.results:
        if res.success:
            continue
        reason = _reason(res.expectation_config)
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise DataQualityError(
                f"{dataset}: check {reason} could not run: {res.exception_info.get('exception_message')}"
            )
        rows = [int(item[ROW_ID]) for item in res.result.get("unexpected_index_list") or []]
        for rid in rows:
            failures.setdefault(rid, []).append(reason)
    return failures


def _to_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return (parsed booleans with NA for blanks, mask of unparseable non-blank values)."""
    text = values.fillna("").astype(str).str.strip().str.lower()
    parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
    parsed[text.isin(TRUE_WORDS)] = True
    parsed[text.isin(FALSE_WORDS)] = False
    bad = ~text.isin(TRUE_WORDS | FALSE_WORDS | {""})
    return parsed, bad


def to_timestamp(values: pd.Series, fmt: str | None, tz: str) -> pd.Series:
    """Parse timestamps to naive times in zone tz: values with an offset are converted, others taken as in tz."""
    text = values.astype("string").str.strip()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    if fmt:
        parsed = pd.to_datetime(text, errors="coerce", format=fmt)
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert(tz).dt.tz_localize(None)
        return parsed.astype("datetime64[us]")
    # Arrow's regex engine directly: pandas runs this pattern through Python's re, row by row (10x slower).
    aware = pd.Series(
        pc.fill_null(pc.match_substring_regex(pa.array(text.astype("string[pyarrow]").array), _OFFSET), False)
        .to_numpy(zero_copy_only=False)
        .astype(bool),
        index=text.index,
    )
    if (~aware).any():
        out[~aware] = _parse_iso(text[~aware], utc=False)
    if aware.any():
        out[aware] = _parse_iso(text[aware], utc=True).dt.tz_convert(tz).dt.tz_localize(None).astype("datetime64[us]")
    return out


# A time of day followed by a UTC offset: Z, +02, +0200 or +02:00 (a date alone never has one).
_OFFSET = r"\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


def _parse_iso(text: pd.Series, utc: bool) -> pd.Series:
    """Parse ISO 8601 texts (NaT where unparseable); values pandas cannot take together are parsed one by one."""
    try:
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=utc)
        return parsed if utc else parsed.astype("datetime64[us]")
    except (ValueError, TypeError, OverflowError):
        one = [_parse_one(v, utc) for v in text]
        return pd.Series(one, index=text.index, dtype="datetime64[us, UTC]" if utc else "datetime64[us]")


def _parse_one(value, utc: bool):
    try:
        ts = pd.to_datetime(value, format="ISO8601", utc=utc)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    if not utc and ts is not pd.NaT and ts.tzinfo is not None:
        return pd.NaT  # an offset form the pattern above does not know: unparseable, not guessed
    return ts


def parse_numbers(text: pd.Series) -> pd.Series:
    """Return text parsed as numbers (Float64; what does not parse is missing), as pd.to_numeric would.

    Arrow's cast parses a column of numbers about 20x faster (4M amounts: 2.8 s -> 0.13 s) but refuses the
    whole column at the first value it cannot read; pandas then parses it, so a column with spaces, commas
    or words gives exactly what it gave before. Where Arrow succeeds its values equal pandas' (a test
    holds both to the same hostile spellings); "nan" becomes NaN there and missing in pandas, both missing
    as Float64.
    """
    try:
        parsed = pc.cast(pa.array(text, from_pandas=True), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pd.to_numeric(text, errors="coerce").astype("Float64")
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=text.index).astype("Float64")


def _to_number(text: pd.Series, col: str, required: bool, flag) -> pd.Series:
    """Parse a numeric column; flag non-finite values (inf, Infinity, NaN) and, if optional, unparseable ones."""
    lower = text.str.lower()
    blank = text.isna() | lower.isin(NULL_WORDS)
    values = parse_numbers(text.where(~blank))
    as_float = values.astype(float).to_numpy()
    non_finite = ~blank & (
        lower.str.lstrip("+-").eq("nan").fillna(False) | pd.Series(np.isinf(as_float), index=text.index)
    )
    flag(non_finite, f"non_finite_{col}")
    if not required:
        flag(~blank & values.isna() & ~non_finite, f"unparseable_{col}")
    return values.mask(non_finite | blank)


def type_rows(dataset: str, raw: pd.DataFrame, cfg: Config) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """Parse text columns to types; return (typed frame, row id -> parse reasons)."""
    ds = cfg.sources.datasets[dataset]
    typed = pd.DataFrame({ROW_ID: raw[ROW_ID].to_numpy()}, index=raw.index)
    reasons: dict[int, list[str]] = {}

    def flag(mask: pd.Series, reason: str) -> None:
        for rid in raw.loc[mask.fillna(False).to_numpy(bool), ROW_ID]:
            reasons.setdefault(int(rid), []).append(reason)

    required, optional = DATASET_COLUMNS[dataset]
    for col in required + optional:
        text = raw[col].astype("string").str.strip()
        typed[col] = text.where(text != "", pd.NA)
    typed["_batch_date"] = raw["_batch_date"].to_numpy()
    typed["_shape_ok"] = raw["_load_issue"].isna().to_numpy()
    if "ts" in raw:
        typed["ts"] = to_timestamp(typed["ts"], ds.timestamp_format, cfg.sources.timezone)
    for col in NUMERIC_COLUMNS:
        if col in typed:
            typed[col] = _to_number(typed[col], col, col in required, flag)
    if dataset == "surveys":
        not_whole = typed["nps_score"].notna() & (typed["nps_score"] % 1 != 0)
        flag(not_whole, "out_of_range_nps_score")
    if dataset == "transactions":
        typed["type"] = typed["type"].str.lower()
        negative_amount = (typed["amount"] < 0).fillna(False).astype(bool)
        typed["type"] = typed["type"].fillna(pd.Series("purchase", index=typed.index).where(~negative_amount, "refund"))
        negative = typed["type"].isin(list(NEGATIVE_TYPES))
        amount = typed["amount"]
        typed["_sign_ok"] = (amount.isna() | (negative & (amount <= 0)) | (~negative & (amount >= 0))).astype(bool)
    if dataset == "service_events":
        typed["event_type"] = typed["event_type"].str.lower()
        for col in ("resolved", "transferred"):
            typed[col], bad = _to_bool(raw[col])
            flag(bad, f"unparseable_{col}")
    if dataset == "customers":
        for col in ("signup_date", "contract_end", "campaign_until"):
            parsed = pd.to_datetime(typed[col], errors="coerce", format="ISO8601")
            flag(typed[col].notna() & parsed.isna(), f"unparseable_{col}")
            typed[col] = parsed.dt.date
        typed["do_not_contact"], bad = _to_bool(raw["do_not_contact"])
        flag(bad, "unparseable_do_not_contact")
    return typed, reasons


def known_customers(engine: Engine, ids: list[str], before: date) -> set[str]:
    """Return which of ids are in stg_customers from batches before the given day."""
    if not ids:
        return set()
    frame = read_for_keys(engine, sql_text("ingest/known_customers.sql"), ids, {"b": before})
    return set(frame["customer_id"])


def prior_keys(engine: Engine, dataset: str, keys: list[str], before: date) -> pd.DataFrame:
    """Return rows of stg_<dataset> from batches before the given day whose natural key is in keys."""
    key, compare = KEYS[dataset]
    if not keys:
        return pd.DataFrame(columns=[key, *compare])
    sql = ingest_sql("prior_keys", dataset, key=key, columns=(key, *compare))
    return read_for_keys(engine, sql, keys, {"b": before})


def _fingerprint(frame: pd.DataFrame, cols: tuple[str, ...]) -> pd.Series:
    """Return a comparable text of the given columns (numbers rounded, times to the second)."""
    parts = []
    for col in cols:
        values = frame[col]
        if col == "ts":
            text = pd.to_datetime(values).dt.strftime("%Y-%m-%d %H:%M:%S")
        elif col in ("amount", "nps_score"):
            text = pd.to_numeric(values, errors="coerce").astype(float).round(6).astype(str)
        else:
            text = values.astype("string")
        parts.append(text.fillna("").astype(str))
    out = parts[0]
    for p in parts[1:]:
        out = out + "\x1f" + p
    return out


def add_reference_checks(
    dataset: str, typed: pd.DataFrame, engine: Engine, start: date, customers: set[str] | None
) -> None:
    """Add the flag columns the suite checks against earlier data: known customer, key not loaded before.

    The earliest copy of a natural key wins: a later batch (or a batch before the window, already in
    stg_*) that holds the same key again is a duplicate if its values agree, a conflict if not.
    """
    if customers is not None and "customer_id" in typed:
        # Each distinct id is looked up once (a history window repeats every customer dozens of times).
        codes, ids = _factorize(typed["customer_id"])
        unknown_here = sorted(set(ids) - customers)
        known = customers | known_customers(engine, unknown_here, start)
        typed["_customer_known"] = _take(np.fromiter((i in known for i in ids), bool, len(ids)), codes, True)
    if dataset not in KEYS:
        return
    key, compare = KEYS[dataset]
    typed["_not_loaded_before"] = True
    typed["_key_consistent"] = True
    keyed = typed[typed[key].notna()]
    if keyed.empty:
        return
    codes, ids = _factorize(keyed[key])
    prior = prior_keys(engine, dataset, list(ids), start)
    prior_ids = set(_objects(prior[key])) if not prior.empty else set()
    # Only a key seen twice in the window or already in stg_* can be a duplicate or a conflict: the rest
    # (nearly every row of a history load) keep both flags True, and the work below is done on the few.
    staged = np.fromiter((i in prior_ids for i in ids), bool, len(ids))
    maybe = (np.bincount(codes, minlength=len(ids)) > 1)[codes] | staged[codes]
    if not maybe.any():
        return
    keyed = keyed[maybe]
    prior_ids = list(prior_ids)
    prints = _fingerprint(keyed, compare)
    # Reference per key: the copy in stg_* before the window, else the first copy of its earliest batch.
    # As datetime64 so the group minimum is vectorised (python date objects aggregate row by row).
    batch = pd.to_datetime(keyed["_batch_date"])
    in_first = batch == batch.groupby(keyed[key]).transform("min")
    # Key -> fingerprint, as Series so the lookups below are vectorised (a dict over Arrow strings is not).
    reference = prints[in_first].groupby(keyed.loc[in_first, key].to_numpy()).first()
    if not prior.empty:
        earlier = pd.Series(_fingerprint(prior, compare).to_numpy(), index=prior[key].to_numpy())
        earlier = earlier[~earlier.index.duplicated(keep="last")]
        reference = pd.concat([reference[~reference.index.astype(object).isin(earlier.index.astype(object))], earlier])
    later = ~in_first | _objects(keyed[key]).isin(prior_ids)
    if later.any():
        idx = keyed.index[later]
        same = prints[later] == keyed.loc[later, key].map(reference)
        typed.loc[idx, "_not_loaded_before"] = ~same.to_numpy()
        typed.loc[idx, "_key_consistent"] = same.to_numpy()


def _take(flags: np.ndarray, codes: np.ndarray, missing: bool) -> np.ndarray:
    """Return flags per row from flags per distinct value (pd.factorize codes; -1, a missing value, gives missing)."""
    out = flags[np.where(codes < 0, 0, codes)] if len(flags) else np.zeros(len(codes), bool)
    return np.where(codes < 0, missing, out)


def repeated(values: pd.Series) -> np.ndarray:
    """Return, per row, whether its value occurs more than once (missing values count as one value)."""
    codes, uniques = _factorize(values, use_na_sentinel=False)
    return (np.bincount(codes, minlength=len(uniques)) > 1)[codes]


def trailing_volume(engine: Engine, dataset: str, as_of: date, days: int) -> tuple[float | None, int]:
    """Return the median rows per day of the dataset's accepted batches in the trailing days, and how many days."""
    frame = read_frame(
        engine,
        sql_text("ingest/accepted_rows_per_day.sql"),
        {"ds": dataset, "a": as_of - timedelta(days=days), "b": as_of},
    )
    if len(frame) < 3:
        return None, len(frame)
    return float(pd.to_numeric(frame["n"]).median()), len(frame)


def _customer_reference(cfg: Config, engine: Engine, results: dict[str, DatasetResult]) -> set[str] | None:
    """Return customers known from this run's valid customer rows, or None when there is no customer master."""
    if cfg.sources.unknown_customers != "quarantine" or "customers" not in cfg.sources.datasets:
        return None
    staged = results.get("customers")
    fresh = set(_objects(staged.good["customer_id"])) if staged is not None and staged.good is not None else set()
    has_master = bool(fresh) or bool(read_frame(engine, sql_text("ingest/any_staged_customer.sql")).shape[0])
    return fresh if has_master else None


def _batch_checks(
    dataset: str, typed: pd.DataFrame, as_of: date, cfg: Config, engine: Engine, gxr: GxRun
) -> tuple[str | None, str | None, dict[str, int]]:
    """Run the batch suite on the run date's rows; return (failure, warning, counts)."""
    today = typed[typed["_batch_date"] == as_of]
    median, days = trailing_volume(engine, dataset, as_of, cfg.sources.volume_trailing_days)
    ratio = cfg.sources.min_volume_ratio
    min_rows = math.ceil(ratio * median) if median else None
    ds = cfg.sources.datasets[dataset]
    staleness = ds.max_staleness_days if ds.max_staleness_days is not None else DEFAULT_STALENESS_DAYS
    newest_after = as_of - timedelta(days=staleness) if "ts" in typed and len(today) else None
    result = gxr.validate(f"{dataset}_batch", today, build_batch_suite(dataset, min_rows, newest_after))
    counts: dict[str, int] = {}
    failure = warning = None
    for res in result.results:
        if res.success:
            continue
        kind = res.expectation_config.type
        if kind == "expect_table_row_count_to_be_between":
            counts["volume_collapse"] = 1
            msg = (
                f"{dataset}: volume check failed for {as_of}: {len(today)} rows against a trailing median of "
                f"{median:,.0f} over {days} days (minimum {ratio:.0%})"
            )
            if ds.required:
                failure = msg + "; batch stopped, previous outputs untouched"
            else:
                warning = msg
        elif kind == "expect_column_max_to_be_between":
            counts["stale_data"] = 1
            newest = res.result.get("observed_value")
            failure = (
                f"{dataset}: freshness check failed for {as_of}: newest ts in column 'ts' is {newest}, "
                f"more than {staleness} days old (stale data); batch stopped, previous outputs untouched"
            )
    return failure, warning, counts


@dataclass
class ValidationRun:
    """What every dataset of one validation run shares: the run date, its window, the warehouse and the GX run."""

    as_of: date
    start: date
    cfg: Config
    engine: Engine
    gxr: GxRun
    run_id: str
    now: datetime


@dataclass
class DatasetResult:
    """One dataset's validated window: the rows for stg_* (None: nothing to publish) and for quarantine_*."""

    dataset: str
    raw: pd.DataFrame
    good: pd.DataFrame | None
    quarantine: pd.DataFrame
    counts: dict[str, int]
    status: str
    failure: str | None = None
    warning: str | None = None

    @property
    def message(self) -> str | None:
        return self.failure or self.warning

    def summary(self) -> dict[str, Any]:
        """Return the dataset's entry of ValidationSummary.datasets."""
        if self.good is None:
            return {"rows_read": 0, "status": self.status}
        return {
            "rows_read": len(self.raw),
            "rows_loaded": len(self.good),
            "rows_quarantined": len(self.quarantine),
            "status": self.status,
            "checks": {k: v for k, v in self.counts.items() if v},
            **({"message": self.message} if self.message else {}),
        }


def validate_data(as_of: date, cfg: Config, engine: Engine, since: date | None = None) -> ValidationSummary:
    """Validate the raw batches of the run's window; write stg_, quarantine_ and dq_runs atomically.

    Raises DataQualityError (after recording the failed check in dq_runs) when a batch is broken as a
    whole; nothing is published to stg_* then, so the previous night's outputs stay as they were.

    SQL: sql/ingest/raw_window_rows.sql, sql/ingest/known_customers.sql, sql/ingest/prior_keys.sql,
    sql/ingest/accepted_rows_per_day.sql, sql/ingest/any_staged_customer.sql (the DELETEs of the window's
    partitions stay inline in publish_results).
    Tests: tests/ingest/test_validate.py, tests/ingest/test_hostile.py. Doc: docs/ingest.md.
    """
    start, _ = load_window(as_of, cfg, since)
    summary = ValidationSummary(as_of, uuid.uuid4().hex[:12])
    now = datetime.now(UTC).replace(tzinfo=None)
    docs_dir = cfg.resolve(cfg.paths.report_dir) / as_of.isoformat() / "data_docs"
    docs_dir.parent.mkdir(parents=True, exist_ok=True)
    gxr = GxRun(docs_dir, f"{as_of.isoformat()} {summary.run_id}", cfg.paths.modes)
    run = ValidationRun(as_of, start, cfg, engine, gxr, summary.run_id, now)
    results: dict[str, DatasetResult] = {}
    try:
        # Customers first: the other datasets are checked against the customers known after it.
        for dataset in sorted(cfg.sources.datasets, key=lambda d: d != "customers"):
            results[dataset] = validate_dataset(run, dataset, results)
            summary.datasets[dataset] = results[dataset].summary()
        publish_results(run, results)
        summary.data_docs = str(gxr.publish())
    finally:
        gxr.close()
    raise_failures(results)
    return summary


def read_raw_window(engine: Engine, dataset: str, start: date, as_of: date) -> pd.DataFrame:
    """Return the raw_<dataset> rows of the window in delivery order (SQL: sql/ingest/raw_window_rows.sql)."""
    return read_bulk(engine, ingest_sql("raw_window_rows", dataset), {"s": start, "e": as_of}, text=True)


def validate_dataset(run: ValidationRun, dataset: str, results: dict[str, DatasetResult]) -> DatasetResult:
    """Validate one dataset's window: row suite, duplicates, batch suite, quarantine guard and status.

    results holds the datasets validated before this one (customers first: the reference for the others).
    """
    raw = read_raw_window(run.engine, dataset, run.start, run.as_of)
    if raw.empty and trailing_volume(run.engine, dataset, run.as_of, run.cfg.sources.volume_trailing_days)[0] is None:
        return DatasetResult(dataset, raw, None, raw, {}, "missing")
    raw = raw.reset_index(drop=True)
    raw[ROW_ID] = range(len(raw))
    if len(raw):  # as Python dates, each distinct day converted once (a window holds a few days, millions of rows)
        codes, days = pd.factorize(raw["_batch_date"])
        raw["_batch_date"] = np.asarray(pd.to_datetime(days).date, dtype=object)[codes]
    typed, reasons = row_reasons(run, dataset, raw, results)
    counts = dict(Counter(r for rs in reasons.values() for r in rs))
    # Batch-level checks on the run date's batch (rows before row-level filtering).
    failure, warning, batch_counts = _batch_checks(dataset, typed, run.as_of, run.cfg, run.engine, run.gxr)
    counts.update(batch_counts)
    good, quarantine = split_rows(dataset, raw, typed, reasons)
    if failure is None:
        failure = quarantine_guard(dataset, raw, quarantine, reasons, run.cfg.sources.max_quarantine_share)
    status = dataset_status(len(raw), len(quarantine), failure, warning)
    return DatasetResult(dataset, raw, good, quarantine, counts, status, failure, warning)


def row_reasons(
    run: ValidationRun, dataset: str, raw: pd.DataFrame, results: dict[str, DatasetResult]
) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """Type the rows and run the row suite; return (typed rows without exact duplicates, row id -> reasons)."""
    required, optional = DATASET_COLUMNS[dataset]
    # Exact duplicates (also across the window's batches): keep the first copy, quarantine the rest. Copies
    # share every value, so only rows whose first column repeats are compared whole (few in a history load).
    columns = list(required + optional)
    dup = pd.Series(False, index=raw.index)
    maybe = repeated(raw[KEYS[dataset][0] if dataset in KEYS else columns[0]])
    if maybe.any():
        dup[maybe] = raw[maybe].duplicated(subset=columns, keep="first")
    typed, reasons = type_rows(dataset, raw[~dup], run.cfg)
    customers = _customer_reference(run.cfg, run.engine, results) if dataset != "customers" else None
    add_reference_checks(dataset, typed, run.engine, run.start, customers)
    suite = build_suite(dataset, run.as_of, run.cfg, customers is not None)
    result = run.gxr.validate(f"{dataset}_rows", typed, suite)
    gx_fail = row_failures(result, dataset)
    for rid, rs in gx_fail.items():
        reasons.setdefault(rid, []).extend(rs)
    for rid in raw.loc[dup, ROW_ID]:
        reasons[int(rid)] = ["duplicate_row"]
    return typed, {rid: _tidy(rs) for rid, rs in reasons.items()}


def split_rows(
    dataset: str, raw: pd.DataFrame, typed: pd.DataFrame, reasons: dict[int, list[str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (rows for stg_*, rows for quarantine_* with their reasons); raise if a read row is in neither or both."""
    bad_ids = set(reasons)
    quarantine = raw[raw[ROW_ID].isin(bad_ids)].copy()
    detail = raw.set_index(ROW_ID)["_load_issue"]
    quarantine["reasons"] = [
        ";".join(dict.fromkeys(detail[r] if x == "wrong_field_count" and detail[r] else x for x in reasons[int(r)]))
        for r in quarantine[ROW_ID]
    ]
    good = typed[~typed[ROW_ID].isin(bad_ids)].drop(columns=["_batch_date"]).merge(raw[[ROW_ID] + META], on=ROW_ID)
    n_read, n_good, n_bad = len(raw), len(good), len(quarantine)
    if n_read != n_good + n_bad:  # an invariant of the code above, checked on every run
        raise DataQualityError(f"{dataset}: row accounting broken ({n_read} != {n_good} + {n_bad})")
    return good, quarantine


def dataset_status(n_read: int, n_bad: int, failure: str | None, warning: str | None) -> str:
    """Return a validated dataset's dq_runs status: failed, warn, ok, or missing (nothing read, nothing wrong)."""
    if not n_read:
        return "failed" if failure else ("warn" if warning else "missing")
    return "failed" if failure else ("warn" if n_bad or warning else "ok")


def publish_results(run: ValidationRun, results: dict[str, DatasetResult]) -> None:
    """Write the run in one transaction: the window's stg_* and quarantine_* rows, then the night's dq_runs.

    If any dataset failed, only dq_runs is written: stg_* and quarantine_* keep the previous outputs.
    The DELETEs stay inline: each removes the partition (the window, or the run date in dq_runs) that the
    insert right after it replaces, and a file per one-line DELETE would add nothing.
    """
    dq_rows = [
        row
        for r in results.values()
        for row in _dq_rows(
            run.run_id, run.as_of, r.dataset, r.raw, r.quarantine, r.counts, r.status, r.message, run.now
        )
    ]
    with run.engine.begin() as conn:
        if not any(r.failure for r in results.values()):
            params = {"s": run.start, "e": run.as_of}
            for r in results.values():
                if r.good is None:  # missing: nothing read and no history, its tables are left alone
                    continue
                for table, frame in ((f"stg_{r.dataset}", r.good), (f"quarantine_{r.dataset}", r.quarantine)):
                    conn.execute(
                        sa.text(f"DELETE FROM {check_table(table)} WHERE _batch_date BETWEEN :s AND :e"), params
                    )
                    crash_point("validate_data")
                    insert_frame(conn, table, frame)
            # The feature states that summed rows of the replaced batches are void (features/feature_state.py).
            for table in ("feature_state", "feature_state_log"):
                conn.execute(sa.text(f"DELETE FROM {table} WHERE state_date >= :s"), {"s": run.start})
        conn.execute(sa.text("DELETE FROM dq_runs WHERE as_of_date = :d"), {"d": run.as_of})
        insert_frame(conn, "dq_runs", pd.DataFrame(dq_rows))


def raise_failures(results: dict[str, DatasetResult]) -> None:
    """Raise DataQualityError naming the first failed dataset's problem (and how many more), if any failed."""
    problems = [r.failure for r in results.values() if r.failure]
    if problems:
        more = f" (and {len(problems) - 1} more: see dq_runs)" if len(problems) > 1 else ""
        raise DataQualityError(problems[0] + more)


def _tidy(reasons: list[str]) -> list[str]:
    """Return a row's reasons once each; a non-finite number is not also reported as missing."""
    out = list(dict.fromkeys(reasons))
    return [r for r in out if not (r.startswith("missing_or_unparseable_") and f"non_finite_{r[23:]}" in out)]


def quarantine_guard(
    dataset: str, raw: pd.DataFrame, quarantine: pd.DataFrame, reasons: dict, share: float
) -> str | None:
    """Return a failure message if more than `share` of any one batch day's rows failed validation."""
    if raw.empty or quarantine.empty:
        return None
    read = raw.groupby("_batch_date").size()
    bad = quarantine.groupby("_batch_date").size().reindex(read.index, fill_value=0)
    worst = (bad / read)[bad / read > share]
    if worst.empty:
        return None
    day = max(worst.index)  # the newest such batch: usually the run date's own
    rows = quarantine[quarantine["_batch_date"] == day]
    top = Counter(r for rid in rows[ROW_ID] for r in reasons[int(rid)]).most_common(1)[0][0]
    files = ", ".join(sorted(set(rows["_source_file"])))
    return (
        f"{dataset}: {bad[day]} of {read[day]} rows of the {day} batch failed validation (most often: {top}) in "
        f"{files}; more than {share:.0%} bad (sources.max_quarantine_share): batch stopped, previous outputs untouched"
    )


def _dq_rows(run_id, as_of, dataset, raw, quarantine, counts, status, message, now) -> list[dict]:
    """Return one dq_runs row per batch day of the dataset in this run (one row even if nothing arrived)."""
    rows = []
    # One grouping of the two columns needed, not a sub-frame per batch day (a history window has hundreds).
    read = raw.groupby("_batch_date", sort=False).size().to_dict() if len(raw) else {}
    sources = raw.groupby("_batch_date", sort=False)["_source_file"].unique().to_dict() if len(raw) else {}
    bads = quarantine.groupby("_batch_date", sort=False)["reasons"].agg(list).to_dict() if len(quarantine) else {}
    for batch in sorted(read) or [as_of]:
        n_read, bad = read.get(batch, 0), bads.get(batch, [])
        files = sorted({str(f) for f in sources.get(batch, [])})
        batch_counts = Counter(x for rs in bad for x in rs.split(";"))
        if batch == as_of:
            batch_counts.update({k: v for k, v in counts.items() if k in ("volume_collapse", "stale_data")})
        rows.append(
            {
                "run_id": run_id,
                "as_of_date": as_of,
                "dataset": dataset,
                "batch_date": batch,
                "source": ", ".join(files)[:1000] if files else None,
                "rows_read": n_read,
                "rows_loaded": n_read - len(bad),
                "rows_quarantined": len(bad),
                "checks": json.dumps(dict(sorted(batch_counts.items()))),
                "status": status if batch == as_of or status in ("failed",) else ("warn" if len(bad) else "ok"),
                "message": (message or "")[:1000] or None,
                "created_at": now,
            }
        )
    return rows
