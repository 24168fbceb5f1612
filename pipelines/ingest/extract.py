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

import codecs
import csv
import gzip
import hashlib
import io
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.core.config import DATASET_COLUMNS, Config, DatasetConfig
from pipelines.core.connections import redact, resolve_url
from pipelines.core.errors import ChurnwatchError, DataQualityError, first_line
from pipelines.core.warehouse import check_table, crash_point, insert_frame, read_frame, sql_text

log = logging.getLogger(__name__)

DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
KINDS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
META = ["_source_file", "_source_row", "_batch_date", "_load_issue"]
MAX_FIELD_CHARS = 2**31 - 1


@dataclass
class LoadSummary:
    as_of: date
    window: tuple[date, date]
    files: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "window": [d.isoformat() for d in self.window],
            "files": self.files,
            "rows": self.rows,
            "missing": self.missing,
            "ignored": self.ignored,
            "removed": self.removed,
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
) -> tuple[list[LandingFile], set[tuple[date, str]]]:
    """Return the dataset's landing files whose batch day is in [start, as_of], oldest first, and kept batches.

    Kept: (batch day, name) of earlier content of an undated file that is still there under the same
    name (a daily `export.csv` overwritten each day): those rows stay. Files dated before the window
    that were never loaded, or changed since, are named in `ignored`.
    """
    ds = cfg.sources.datasets[dataset]
    folder = cfg.resolve(cfg.sources.landing_dir) / (ds.folder or dataset)
    if not folder.is_dir():
        return [], set()
    ledger = read_frame(engine, sql_text("ingest/landing_ledger.sql"), {"ds": dataset})
    seen = {(r.file_name, r.sha256): pd.Timestamp(r.batch_date).date() for r in ledger.itertuples()}
    loaded_at = ledger.groupby("file_name")["loaded_at"].max().to_dict() if len(ledger) else {}
    latest = max(seen.values(), default=None)
    found, undated = [], set()
    for path in sorted(folder.iterdir()):
        kind = file_kind(path.name)
        if kind is None or not path.is_file():
            continue
        named = date_in_name(path.name)
        if named is not None:
            if named > as_of:
                continue  # a later day's file: not visible as of this date
            if named < start:
                late = _late_file_note(path, named, start, loaded_at.get(path.name))
                if late:
                    ignored.append(f"{dataset}/{path.name}: {late}")
                continue
            found.append(LandingFile(path, kind, named, ""))
            continue
        undated.add(path.name)
        digest = _sha256(path)
        batch = seen.get((path.name, digest))
        if batch is None:
            if latest is not None and as_of < latest:
                ignored.append(f"{dataset}/{path.name}: new undated file left for the latest run date")
                continue
            batch = as_of
        if start <= batch <= as_of:
            found.append(LandingFile(path, kind, batch, digest))
    read = {(f.batch_date, f.path.name) for f in found}
    kept = {(b, name) for (name, _), b in seen.items() if name in undated and start <= b <= as_of} - read
    return sorted(found, key=lambda f: (f.batch_date, f.path.name)), kept


def _late_file_note(path: Path, named: date, start: date, loaded_at) -> str | None:
    """Return why a file dated before the look-back window needs a backfill, or None if it was loaded as it is."""
    hint = f"load it with churnwatch run --date <run date> --since {named}"
    if loaded_at is None or pd.isna(loaded_at):
        return f"dated {named}, before the look-back window (from {start}), never loaded; {hint}"
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)
    if modified > pd.Timestamp(loaded_at).to_pydatetime():
        return f"dated {named}, before the look-back window (from {start}), changed since it was loaded; {hint}"
    return None


def _sniff_delimiter(header: str) -> str:
    """Return the delimiter among , ; tab | that splits the header line most often."""
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_csv_file(path: Path, dataset: str, encoding: str = "utf-8") -> pa.Table:
    """Read a CSV landing file as text, one row per record, with its line number and any shape problem.

    Blank lines are skipped. A record with too few or too many fields is kept and marked
    (`_load_issue`) so validation quarantines it; a cut-off last record means a truncated file.
    Every column comes out as Arrow text; the rows go to raw_<dataset> without passing through Python
    objects (a history window holds millions).
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    utf8 = encoding.lower() in ("utf-8", "utf8")
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
        if utf8:
            data = data.removeprefix(codecs.BOM_UTF8)
        else:  # Arrow reads UTF-8: other encodings are decoded once and handed over as UTF-8
            data = data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_encoded(path, dataset, encoding, exc) from None
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise DataQualityError(f"{dataset}: cannot read {path} ({exc}); the file looks truncated or corrupt") from None
    if not data.strip():
        raise DataQualityError(f"{dataset}: file {path} is empty (no header)")
    simple = _read_simple_csv(data, _sniff_delimiter(data.split(b"\n", 1)[0].decode("utf-8", errors="replace")))
    if simple is not None:
        return simple
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_encoded(path, dataset, encoding, exc) from None
    delimiter = _sniff_delimiter(text.split("\n", 1)[0])
    csv.field_size_limit(MAX_FIELD_CHARS)  # long agent notes are data, not a broken file
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
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
            f"{dataset}: file {path} is unreadable at line {reader.line_num}: {exc} (a quote opened and never closed?)"
        ) from None
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataQualityError(f"{dataset}: file {path} repeats column(s) {', '.join(dupes)} in its header")
    if records and short and not text.endswith(("\n", "\r")):
        # The last record lacks fields and the file stops mid-line: the transfer was cut off.
        raise DataQualityError(
            f"{dataset}: file {path} is truncated: its last line ({lines[-1]}) stops mid-record; batch stopped"
        )
    columns = {name: pa.array([r[i] for r in records], pa.string()) for i, name in enumerate(header)}
    return _with_rows(pa.table(columns), lines, pa.array(issues, pa.string()))


def _not_encoded(path: Path, dataset: str, encoding: str, exc: UnicodeDecodeError) -> DataQualityError:
    return DataQualityError(
        f"{dataset}: file {path} is not valid {encoding} (byte {exc.start}); set sources.datasets.{dataset}.encoding"
    )


def _with_rows(table: pa.Table, lines, issues: pa.Array | None = None) -> pa.Table:
    """Return table with its line numbers (`_source_row`) and shape problems (`_load_issue`, null when none)."""
    table = table.append_column("_source_row", pa.array(lines, pa.int64()))
    return table.append_column("_load_issue", issues if issues is not None else pa.nulls(len(table), pa.string()))


def _read_simple_csv(data: bytes, delimiter: str) -> pa.Table | None:
    """Return the rows of a plain UTF-8 CSV (no quotes, no CR, no blank or ragged line) read by Arrow's parser.

    None when the text is not that plain (or not valid UTF-8): read_csv_file's record-by-record reader
    then keeps line numbers across quoted line breaks, marks each ragged record and names a bad byte.
    On plain text both give the same table.
    """
    head, _, body = data.partition(b"\n")
    try:
        header = [h.strip() for h in head.decode("utf-8").split(delimiter)]
    except UnicodeDecodeError:
        return None
    if len(header) < 2 or b'"' in data or b"\r" in data or len(set(header)) != len(header) or b"\n\n" in data:
        return None
    if not body:
        return None
    try:  # Arrow's parser rejects a line with too few or too many fields: the careful reader takes over then
        table = pa_csv.read_csv(
            io.BytesIO(body),
            read_options=pa_csv.ReadOptions(column_names=header),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, quote_char=False, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid:
        return None
    return _with_rows(table, range(2, len(table) + 2))


def read_parquet_file(path: Path, dataset: str) -> pd.DataFrame:
    """Read a Parquet landing file with every column as text; row numbers count from 1."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        first = first_line(exc)
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


def to_canonical(table: pa.Table, dataset: str, ds: DatasetConfig, where: str) -> pa.Table:
    """Rename the user's columns to canonical names; raise naming the missing column if one is absent.

    Every canonical column comes out as Arrow text (null where a value is missing, or where an optional
    column is absent), followed by `_source_row` and `_load_issue`."""
    names = [str(c).strip() for c in table.column_names]
    by_lower = {c.lower(): i for i, c in enumerate(names)}
    required, optional = DATASET_COLUMNS[dataset]
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    for canonical in required + optional:
        source = ds.columns.get(canonical, canonical)
        index = names.index(source) if source in names else by_lower.get(source.lower())
        if index is not None:
            columns[canonical] = table.column(index)
        elif canonical in required or canonical in ds.columns:
            # A column the config maps by name must be there: dropping it would change meaning (e.g. type).
            mapped = f" (mapped from {canonical})" if source != canonical else ""
            raise DataQualityError(
                f"{dataset}: {where} has no column {source!r}{mapped}; columns are: "
                f"{', '.join(c for c in names if c not in META)}"
            )
        else:
            columns[canonical] = pa.nulls(len(table), pa.string())
    columns["_source_row"] = table.column("_source_row")
    columns["_load_issue"] = table.column("_load_issue")
    return pa.table(columns)


def text_table(frame: pd.DataFrame) -> pa.Table:
    """Return a frame of text values (str or missing) and its `_source_row`/`_load_issue` as an Arrow table."""
    columns = {}
    for col in frame.columns:
        if col == "_source_row":
            columns[col] = pa.array(frame[col].to_numpy(dtype="int64"), pa.int64())
        elif col != "_batch_date":
            columns[str(col)] = pa.array(frame[col].to_numpy(dtype=object), pa.string(), from_pandas=True)
    return pa.table(columns)


def read_sql_source(dataset: str, ds: DatasetConfig, start: date, as_of: date) -> pd.DataFrame:
    """Read rows of a source table whose watermark falls within [start, as_of] as text batches by day.

    Its query stays inline, not in sql/ingest/: it runs on the source database, not the warehouse, and its
    FROM is the config's table or whole query, which no whitelist of warehouse names can check.
    """
    src = ds.sql
    assert src is not None
    url = resolve_url(conn_id=src.conn_id, url_env=src.url_env, what=f"sources.datasets.{dataset}.sql")
    label = src.table or "query"
    base = src.table if src.table else f"({src.query}) src"
    params = {
        "s": datetime.combine(start, datetime.min.time()),
        "e": datetime.combine(as_of + timedelta(1), datetime.min.time()),
    }
    try:
        source = sa.create_engine(url)
        mark = source.dialect.identifier_preparer.quote(src.watermark)  # checked a plain name, quoted anyway
        sql = f"SELECT * FROM {base} WHERE {mark} >= :s AND {mark} < :e"
        with source.connect() as conn:
            result = conn.execute(sa.text(sql), params)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)
    except ChurnwatchError:
        raise
    except Exception as exc:  # driver errors differ by database; one line is what the user needs
        first = first_line(exc)
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
    """Load every dataset's batches in the run's window into raw_<dataset> in one transaction.

    A batch day is exactly what its source holds now: the window's rows are replaced whole, so a file
    that was removed or replaced (under any name) takes its rows with it. A dataset that cannot be
    read stops the run with one line, recorded in dq_runs as a failed load.

    SQL: sql/ingest/landing_ledger.sql, sql/ingest/raw_window_files.sql (DELETEs of the window's rows and
    ledger entries stay inline in publish_landing and record_load_failure).
    Tests: tests/ingest/test_validate.py, tests/ingest/test_hostile.py. Doc: docs/ingest.md.
    """
    start, _ = load_window(as_of, cfg, since)
    summary = LoadSummary(as_of, (start, as_of))
    writes: list[RawWrite] = []
    ledger_rows: list[dict] = []
    now = datetime.now(UTC).replace(tzinfo=None)
    for name, ds in cfg.sources.datasets.items():
        write, ledger = extract_dataset(name, ds, cfg, engine, (start, as_of), summary, now)
        writes.append(write)
        ledger_rows += ledger
    publish_landing(engine, writes, ledger_rows, (start, as_of), summary)
    for line in summary.removed + summary.ignored:
        log.warning("%s", line)
    return summary


@dataclass
class RawWrite:
    """One dataset's rows for raw_<dataset>; kept: batches left as they are (None: replace the window)."""

    dataset: str
    frame: pa.Table
    kept: set[tuple[date, str]] | None


def extract_dataset(
    name: str,
    ds: DatasetConfig,
    cfg: Config,
    engine: Engine,
    window: tuple[date, date],
    summary: LoadSummary,
    now: datetime,
) -> tuple[RawWrite, list[dict]]:
    """Read one dataset's window; return its raw rows and its landing_files ledger rows.

    Counts go to summary. A dataset that cannot be read, or a required one without the run date's
    batch, is recorded as a failed load in dq_runs and raises DataQualityError.
    """
    start, as_of = window
    try:
        frame, files, kept = _read_dataset(name, ds, cfg, engine, start, as_of, summary)
    except DataQualityError as exc:
        record_load_failure(engine, as_of, name, exc)
        raise
    summary.rows[name] = len(frame)
    summary.files[name] = len(files) if ds.sql is None else 1
    # Rows per file counted once (a comparison of the whole window per file grew with files x rows).
    counts = frame.column("_source_file").value_counts()
    per_file = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
    ledger = [
        {
            "dataset": name,
            "file_name": f.path.name,
            "sha256": f.sha256 or _sha256(f.path),
            "batch_date": f.batch_date,
            "rows": int(per_file.get(f.path.name, 0)),
            "loaded_at": now,
        }
        for f in files
    ]
    check_batch_delivered(name, ds, cfg, engine, as_of, frame, files, kept, summary)
    return RawWrite(name, frame, kept), ledger


def check_batch_delivered(
    name: str,
    ds: DatasetConfig,
    cfg: Config,
    engine: Engine,
    as_of: date,
    frame: pa.Table,
    files: list[LandingFile],
    kept: set[tuple[date, str]] | None,
    summary: LoadSummary,
) -> None:
    """Stop the run (recorded as missing_batch) if a required dataset has nothing for the run date; else note it."""
    # A file for the day counts even if it holds only a header: the volume check then says so.
    delivered = {f.batch_date for f in files} | {b for b, _ in kept or ()}
    if ds.sql is not None:
        delivered = set(frame.column("_batch_date").unique().to_pylist())
    if as_of in delivered:
        return
    where = f"table {ds.sql.table or 'query'}" if ds.sql else str(_folder(cfg, name))
    if ds.required:
        exc = DataQualityError(f"{name}: no data for {as_of} in {where} (freshness check); batch stopped")
        record_load_failure(engine, as_of, name, exc, check="missing_batch")
        raise exc
    summary.missing.append(name)


def publish_landing(
    engine: Engine, writes: list[RawWrite], ledger_rows: list[dict], window: tuple[date, date], summary: LoadSummary
) -> None:
    """Replace the window's rows of every raw_<dataset> and their landing_files entries in one transaction.

    The DELETEs stay inline: each removes one partition (the window, one file's batch, one ledger entry)
    right before the insert that replaces it, and a file per one-line DELETE would add nothing.
    """
    start, as_of = window
    with engine.begin() as conn:
        for write in writes:
            table = check_table(f"raw_{write.dataset}")
            if write.kept is None:  # a source table re-read over the window replaces the window
                conn.execute(
                    sa.text(f"DELETE FROM {table} WHERE _batch_date BETWEEN :s AND :e"), {"s": start, "e": as_of}
                )
            else:  # the window becomes exactly the files present now (plus kept earlier undated content)
                withdraw_files(conn, write, window, summary)
            crash_point("load_landing")
            if len(write.frame):
                insert_frame(conn, table, write.frame)
        for row in ledger_rows:
            conn.execute(
                sa.text("DELETE FROM landing_files WHERE dataset = :d AND file_name = :f AND batch_date = :b"),
                {"d": row["dataset"], "f": row["file_name"], "b": row["batch_date"]},
            )
        if ledger_rows:
            insert_frame(conn, "landing_files", pd.DataFrame(ledger_rows))


def withdraw_files(conn: Connection, write: RawWrite, window: tuple[date, date], summary: LoadSummary) -> None:
    """Delete the window's rows of raw_<dataset> file by file, except kept batches; name files no longer delivered."""
    start, as_of = window
    table = check_table(f"raw_{write.dataset}")
    before = read_frame(conn, ingest_sql("raw_window_files", write.dataset), {"s": start, "e": as_of})
    # (day, file) pairs from the distinct pairs, not from every row (millions in a history window).
    pairs = write.frame.group_by(["_batch_date", "_source_file"]).aggregate([])
    present = set(zip(pairs.column("_batch_date").to_pylist(), pairs.column("_source_file").to_pylist(), strict=True))
    for day, file in zip(pd.to_datetime(before["_batch_date"]).dt.date, before["_source_file"]):
        if (day, file) in write.kept:
            continue
        if (day, file) not in present:
            summary.removed.append(f"{write.dataset}/{file} ({day}): no longer delivered, its rows withdrawn")
        conn.execute(
            sa.text(f"DELETE FROM {table} WHERE _batch_date = :b AND _source_file = :f"),
            {"b": day, "f": file},
        )


def ingest_sql(name: str, dataset: str, **columns: str | tuple[str, ...]) -> str:
    """Return the query sql/ingest/<name>.sql for one dataset, its identifier placeholders filled from whitelists.

    {dataset} takes only a dataset name of DATASET_COLUMNS; every other {placeholder} takes only columns of
    that dataset (a tuple is written as a comma-separated list). Values stay bound parameters.
    """
    if dataset not in DATASET_COLUMNS:
        raise ChurnwatchError(f"sql/ingest/{name}.sql: unknown dataset {dataset!r}")
    required, optional = DATASET_COLUMNS[dataset]
    sql = sql_text(f"ingest/{name}.sql").replace("{dataset}", dataset)
    for placeholder, value in columns.items():
        names = (value,) if isinstance(value, str) else value
        unknown = [c for c in names if c not in required + optional]
        if unknown:
            raise ChurnwatchError(f"sql/ingest/{name}.sql: {', '.join(unknown)} not a column of {dataset}")
        sql = sql.replace("{" + placeholder + "}", ", ".join(names))
    return sql


def _folder(cfg: Config, dataset: str) -> Path:
    return cfg.resolve(cfg.sources.landing_dir) / (cfg.sources.datasets[dataset].folder or dataset)


def _read_dataset(
    name: str, ds: DatasetConfig, cfg: Config, engine: Engine, start: date, as_of: date, summary: LoadSummary
) -> tuple[pa.Table, list[LandingFile], set[tuple[date, str]] | None]:
    """Return the window's rows of one dataset in canonical columns, their landing files, and kept batches.

    Kept batches (see landing_files) stay in raw_* as they are; None for a source table, whose
    window is always replaced whole.
    """
    if ds.sql is not None:
        frame = read_sql_source(name, ds, start, as_of)
        canon = to_canonical(text_table(frame), name, ds, f"table {ds.sql.table or 'query'}")
        batches = pa.array(frame["_batch_date"].to_numpy(dtype=object), pa.date32())
        return _with_batch(canon, f"sql:{ds.sql.table or 'query'}", batches), [], None
    files, kept = landing_files(cfg, engine, name, start, as_of, summary.ignored)
    tables = []
    for f in files:
        raw = (
            read_csv_file(f.path, name, ds.encoding) if f.kind == "csv" else text_table(read_parquet_file(f.path, name))
        )
        canon = to_canonical(raw, name, ds, f"file {f.path}")
        tables.append(_with_batch(canon, f.path.name, pa.array([f.batch_date] * len(canon), pa.date32())))
    if not tables:
        required, optional = DATASET_COLUMNS[name]
        schema = pa.schema(
            [(c, pa.string()) for c in [*required, *optional]]
            + [("_source_row", pa.int64()), ("_load_issue", pa.string())]
            + [("_source_file", pa.string()), ("_batch_date", pa.date32())]
        )
        return schema.empty_table(), [], kept
    return pa.concat_tables(tables), files, kept


def _with_batch(table: pa.Table, source_file: str, batches: pa.Array) -> pa.Table:
    """Return a dataset's canonical rows with the file they came from and their batch day."""
    table = table.append_column("_source_file", pa.array([source_file] * len(table), pa.string()))
    return table.append_column("_batch_date", batches)


def record_load_failure(engine: Engine, as_of: date, dataset: str, exc: Exception, check: str = "load_error") -> None:
    """Record a dataset that could not be loaded as a failed dq_runs row of the night (replacing the dataset's row)."""
    message = first_line(exc)
    row = {
        "run_id": uuid.uuid4().hex[:12],
        "as_of_date": as_of,
        "dataset": dataset,
        "batch_date": as_of,
        "source": None,
        "rows_read": 0,
        "rows_loaded": 0,
        "rows_quarantined": 0,
        "checks": json.dumps({check: 1}),
        "status": "failed",
        "message": message[:1000],
        "created_at": datetime.now(UTC).replace(tzinfo=None),
    }
    with engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM dq_runs WHERE as_of_date = :d AND dataset = :ds"), {"d": as_of, "ds": dataset}
        )
        insert_frame(conn, "dq_runs", pd.DataFrame([row]))
