"""Extract source data into raw_* tables, one batch per day, replaced whole on re-run.

Sources per dataset (config `sources.datasets.<name>`):

* landing files in a folder: CSV (any delimiter, optional BOM, .gz) or Parquet, any file names.
  A file whose name holds a date (YYYY-MM-DD or YYYYMMDD) belongs to that day's batch; any other file
  belongs to the day of the run that first saw its content (kept in the `landing_files` ledger).
* a table or query in a source database, read by a watermark column: rows whose watermark falls on a
  day of the window form that day's batch.

Each run reads the window [as_of - lookback_days, as_of], so rows that arrive late are picked up,
and writes all of it in one transaction.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.config import DATASET_COLUMNS, Config, DatasetConfig
from pipelines.connections import redact, resolve_url
from pipelines.errors import ChurnwatchError, DataQualityError
from pipelines.warehouse import crash_point, insert_frame, read_frame

DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
KINDS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
META = ["_source_file", "_source_row", "_batch_date", "_load_issue"]


@dataclass
class LoadSummary:
    as_of: date
    window: tuple[date, date]
    files: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "window": [d.isoformat() for d in self.window],
            "files": self.files,
            "rows": self.rows,
            "missing": self.missing,
            "ignored": self.ignored,
        }


@dataclass
class LandingFile:
    path: Path
    kind: str
    batch_date: date
    sha256: str


def load_window(as_of: date, cfg: Config, since: date | None = None) -> tuple[date, date]:
    """Return the first and last batch day a run for as_of reads."""
    start = as_of - timedelta(days=cfg.sources.lookback_days)
    return (min(start, since) if since else start), as_of


def file_kind(name: str) -> str | None:
    """Return 'csv' or 'parquet' from a file name, or None for files that are not data (hidden, partial)."""
    lower = name.lower()
    if lower.startswith((".", "_", "~")) or lower.endswith((".tmp", ".part", ".crdownload")):
        return None
    for suffix, kind in KINDS.items():
        if lower.endswith(suffix):
            return kind
    return None


def date_in_name(name: str) -> date | None:
    """Return the date a file name carries (2025-03-31 or 20250331), or None."""
    for m in DATE_IN_NAME.finditer(name):
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def landing_files(
    cfg: Config, engine: Engine, dataset: str, start: date, as_of: date, ignored: list[str]
) -> tuple[list[LandingFile], bool]:
    """Return the dataset's landing files whose batch day is in [start, as_of], oldest first.

    The flag tells whether a file was loaded into the as_of batch before (its content may since
    have been replaced under the same undated name; its rows stay in raw_<dataset>).
    """
    ds = cfg.sources.datasets[dataset]
    folder = cfg.resolve(cfg.sources.landing_dir) / (ds.folder or dataset)
    if not folder.is_dir():
        return [], False
    ledger = read_frame(
        engine,
        "SELECT file_name, sha256, batch_date FROM landing_files WHERE dataset = :ds",
        {"ds": dataset},
    )
    seen = {(r.file_name, r.sha256): pd.Timestamp(r.batch_date).date() for r in ledger.itertuples()}
    latest = max(seen.values(), default=None)
    found = []
    for path in sorted(folder.iterdir()):
        kind = file_kind(path.name)
        if kind is None or not path.is_file():
            continue
        named = date_in_name(path.name)
        if named is not None:
            if named > as_of:
                continue  # a later day's file: not visible as of this date
            if named < start:
                continue
            found.append(LandingFile(path, kind, named, ""))
            continue
        digest = _sha256(path)
        batch = seen.get((path.name, digest))
        if batch is None:
            if latest is not None and as_of < latest:
                ignored.append(f"{dataset}/{path.name}: new undated file left for the latest run date")
                continue
            batch = as_of
        if start <= batch <= as_of:
            found.append(LandingFile(path, kind, batch, digest))
    return sorted(found, key=lambda f: (f.batch_date, f.path.name)), as_of in seen.values()


def _sniff_delimiter(header: str) -> str:
    """Return the delimiter among , ; tab | that splits the header line most often."""
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_csv_file(path: Path, dataset: str, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a CSV landing file as text, one row per record, with its line number and any shape problem.

    Blank lines are skipped. A record with too few or too many fields is kept and marked
    (`_load_issue`) so validation quarantines it; a cut-off last record means a truncated file.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig" if encoding.lower() in ("utf-8", "utf8") else encoding) as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise DataQualityError(
            f"{dataset}: file {path} is not valid {encoding} (byte {exc.start}); set sources.datasets.{dataset}.encoding"
        ) from None
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise DataQualityError(f"{dataset}: cannot read {path} ({exc}); the file looks truncated or corrupt") from None
    if not text.strip():
        raise DataQualityError(f"{dataset}: file {path} is empty (no header)")
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(first_line), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
        records, lines, issues = [], [], []
        line = reader.line_num
        for record in reader:
            start_line, line = line + 1, reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            issue = None
            short = len(record) < len(header)
            if len(record) != len(header):
                issue = f"wrong_field_count_{len(record)}_of_{len(header)}"
                record = (record + [""] * len(header))[: len(header)]
            records.append(record)
            lines.append(start_line)
            issues.append(issue)
    except csv.Error as exc:
        raise DataQualityError(
            f"{dataset}: file {path} is unreadable at line {reader.line_num}: {exc} (truncated or unbalanced quotes)"
        ) from None
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataQualityError(f"{dataset}: file {path} repeats column(s) {', '.join(dupes)} in its header")
    if records and short and not text.endswith(("\n", "\r")):
        # The last record lacks fields and the file stops mid-line: the transfer was cut off.
        raise DataQualityError(
            f"{dataset}: file {path} is truncated: its last line ({lines[-1]}) stops mid-record; batch stopped"
        )
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame["_source_row"] = lines
    frame["_load_issue"] = issues
    return frame


def read_parquet_file(path: Path, dataset: str) -> pd.DataFrame:
    """Read a Parquet landing file with every column as text; row numbers count from 1."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataQualityError(f"{dataset}: cannot read Parquet file {path}: {first}") from None
    frame = table.to_pandas()
    frame = _as_text(frame)
    frame["_source_row"] = range(1, len(frame) + 1)
    frame["_load_issue"] = None
    return frame


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Return frame with every value as text (timestamps in ISO form, nulls as None)."""
    out = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            text = values.map(lambda v: v.isoformat(sep=" ") if pd.notna(v) else None)
        else:
            text = values.map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v)) else _text(v))
        out[str(col)] = text.astype(object)
    return out


def _text(value) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if value is pd.NaT:
        return ""
    return str(value)


def to_canonical(frame: pd.DataFrame, dataset: str, ds: DatasetConfig, where: str) -> pd.DataFrame:
    """Rename the user's columns to canonical names; raise naming the missing column if one is absent."""
    frame.columns = [str(c).strip() for c in frame.columns]
    by_lower = {c.lower(): c for c in frame.columns}
    required, optional = DATASET_COLUMNS[dataset]
    out = pd.DataFrame(index=frame.index)
    for canonical in required + optional:
        source = ds.columns.get(canonical, canonical)
        actual = source if source in frame.columns else by_lower.get(source.lower())
        if actual is not None:
            out[canonical] = frame[actual].astype(object).where(frame[actual].notna(), None)
        elif canonical in required:
            mapped = f" (mapped from {canonical})" if source != canonical else ""
            raise DataQualityError(
                f"{dataset}: {where} has no column {source!r}{mapped}; columns are: "
                f"{', '.join(c for c in frame.columns if c not in META)}"
            )
        else:
            out[canonical] = None
    for col in ("_source_row", "_load_issue"):
        out[col] = frame[col] if col in frame else None
    return out


def read_sql_source(dataset: str, ds: DatasetConfig, start: date, as_of: date) -> pd.DataFrame:
    """Read rows of a source table whose watermark falls within [start, as_of] as text batches by day."""
    src = ds.sql
    assert src is not None
    url = resolve_url(conn_id=src.conn_id, url_env=src.url_env, what=f"sources.datasets.{dataset}.sql")
    label = src.table or "query"
    base = src.table if src.table else f"({src.query}) src"
    sql = f"SELECT * FROM {base} WHERE {src.watermark} >= :s AND {src.watermark} < :e"
    params = {
        "s": datetime.combine(start, datetime.min.time()),
        "e": datetime.combine(as_of + timedelta(1), datetime.min.time()),
    }
    try:
        source = sa.create_engine(url)
        with source.connect() as conn:
            result = conn.execute(sa.text(sql), params)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)
    except ChurnwatchError:
        raise
    except Exception as exc:  # driver errors differ by database; one line is what the user needs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataQualityError(f"{dataset}: cannot read {label} from {redact(url)}: {first}") from None
    finally:
        if "source" in locals():
            source.dispose()
    batch = pd.to_datetime(frame[src.watermark], errors="coerce", utc=True).dt.tz_convert(None).dt.date
    frame = _as_text(frame)
    frame["_batch_date"] = batch
    # Deterministic order so row numbers are stable across re-runs.
    frame = frame.sort_values(["_batch_date", *[c for c in frame.columns if c != "_batch_date"]], kind="stable")
    frame["_source_row"] = frame.groupby("_batch_date").cumcount() + 1
    frame["_load_issue"] = None
    return frame.reset_index(drop=True)


def load_landing(as_of: date, cfg: Config, engine: Engine, since: date | None = None) -> LoadSummary:
    """Load every dataset's batches in the run's window into raw_<dataset> in one transaction."""
    start, _ = load_window(as_of, cfg, since)
    summary = LoadSummary(as_of, (start, as_of))
    writes: list[tuple[str, pd.DataFrame, list[tuple[date, str]], bool]] = []
    ledger_rows = []
    now = datetime.now(UTC).replace(tzinfo=None)
    for name, ds in cfg.sources.datasets.items():
        if ds.sql is not None:
            frame = read_sql_source(name, ds, start, as_of)
            frame = frame.assign(_source_file=f"sql:{ds.sql.table or 'query'}")
            batch_dates = frame["_batch_date"]
            canon = to_canonical(frame, name, ds, f"table {ds.sql.table or 'query'}")
            canon["_batch_date"] = batch_dates
            canon["_source_file"] = frame["_source_file"]
            has_today = bool((batch_dates == as_of).any())
            summary.files[name] = 1
            writes.append((name, canon, [], True))
            summary.rows[name] = len(canon)
        else:
            files, loaded_before = landing_files(cfg, engine, name, start, as_of, summary.ignored)
            frames = []
            for f in files:
                raw = read_csv_file(f.path, name, ds.encoding) if f.kind == "csv" else read_parquet_file(f.path, name)
                canon = to_canonical(raw, name, ds, f"file {f.path}")
                canon["_source_file"] = f.path.name
                canon["_batch_date"] = f.batch_date
                frames.append(canon)
                ledger_rows.append(
                    {
                        "dataset": name,
                        "file_name": f.path.name,
                        "sha256": f.sha256 or _sha256(f.path),
                        "batch_date": f.batch_date,
                        "rows": len(canon),
                        "loaded_at": now,
                    }
                )
            has_today = loaded_before or any(f.batch_date == as_of for f in files)
            if files:
                frame = pd.concat(frames, ignore_index=True)
                writes.append((name, frame, [(f.batch_date, f.path.name) for f in files], False))
                summary.files[name] = len(files)
                summary.rows[name] = len(frame)
        if not has_today:
            where = (
                f"table {ds.sql.table or 'query'}"
                if ds.sql
                else str(cfg.resolve(cfg.sources.landing_dir) / (ds.folder or name))
            )
            if ds.required:
                raise DataQualityError(f"{name}: no data for {as_of} in {where} (freshness check); batch stopped")
            summary.missing.append(name)
    with engine.begin() as conn:
        for name, frame, files, whole_window in writes:
            table = f"raw_{name}"
            if whole_window:  # a source table re-read over the window replaces the window
                conn.execute(
                    sa.text(f"DELETE FROM {table} WHERE _batch_date BETWEEN :s AND :e"), {"s": start, "e": as_of}
                )
            else:  # landing files replace their own rows only (a rewritten undated file keeps its old batch)
                for batch_date, file_name in files:
                    conn.execute(
                        sa.text(f"DELETE FROM {table} WHERE _batch_date = :b AND _source_file = :f"),
                        {"b": batch_date, "f": file_name},
                    )
            crash_point("load_landing")
            insert_frame(conn, table, frame)
        for row in ledger_rows:
            conn.execute(
                sa.text("DELETE FROM landing_files WHERE dataset = :d AND file_name = :f AND batch_date = :b"),
                {"d": row["dataset"], "f": row["file_name"], "b": row["batch_date"]},
            )
        if ledger_rows:
            insert_frame(conn, "landing_files", pd.DataFrame(ledger_rows))
    return summary
