"""Load landing files into raw_* tables: one batch per file date, replaced whole on re-run."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from pipelines.config import DATASET_COLUMNS, Config, DatasetConfig
from pipelines.errors import DataQualityError
from pipelines.warehouse import replace_rows

DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
SUFFIXES = {"csv": (".csv", ".csv.gz", ".txt"), "parquet": (".parquet", ".pq")}


@dataclass
class LoadSummary:
    as_of: date
    files: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "files": self.files, "rows": self.rows, "missing": self.missing}


def landing_files(cfg: Config, dataset: str, start: date, end: date) -> list[tuple[date, Path]]:
    """Return (file date, path) of a dataset's landing files dated within [start, end], oldest first."""
    ds = cfg.sources.datasets[dataset]
    folder = cfg.resolve(cfg.sources.landing_dir) / ds.folder
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if not path.name.lower().endswith(SUFFIXES[cfg.sources.format]):
            continue
        m = DATE_IN_NAME.search(path.name)
        if not m:
            continue
        try:
            file_date = date.fromisoformat(m.group(1))
        except ValueError:
            continue
        if start <= file_date <= end:
            found.append((file_date, path))
    return sorted(found)


def _sniff_delimiter(path: Path) -> str:
    """Return the file's delimiter among , ; tab |, judged from its first line."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_landing_file(path: Path, ds_name: str, ds: DatasetConfig, fmt: str) -> pd.DataFrame:
    """Read one landing file as text columns renamed to canonical names; raise DataQualityError if unusable."""
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path).astype("string")
        else:
            frame = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_values=[],
                encoding="utf-8-sig",
                sep=_sniff_delimiter(path),
            )
    except pd.errors.EmptyDataError:
        raise DataQualityError(f"{ds_name}: file {path} is empty (no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataQualityError(f"{ds_name}: cannot read {path}: {first}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    required, optional = DATASET_COLUMNS[ds_name]
    rename = {}
    for canonical in required + optional:
        source = ds.columns.get(canonical, canonical)
        if source in frame.columns:
            rename[source] = canonical
        elif canonical in required:
            raise DataQualityError(
                f"{ds_name}: file {path} has no column {source!r} (for {canonical}); "
                f"columns are: {', '.join(frame.columns)}"
            )
    frame = frame[list(rename)].rename(columns=rename)
    for canonical in required + optional:
        if canonical not in frame.columns:
            frame[canonical] = pd.NA
    frame = frame[list(required + optional)].astype(object).where(frame.notna(), None)
    return frame


def load_landing(as_of: date, cfg: Config, engine: Engine, since: date | None = None) -> LoadSummary:
    """Load each dataset's landing files dated in [since or as_of, as_of] into raw_<dataset>."""
    start = since or as_of
    summary = LoadSummary(as_of)
    batches: dict[str, list[pd.DataFrame]] = {}
    for name, ds in cfg.sources.datasets.items():
        files = landing_files(cfg, name, start, as_of)
        if not files:
            if ds.required:
                folder = cfg.resolve(cfg.sources.landing_dir) / ds.folder
                span = as_of.isoformat() if start == as_of else f"{start} to {as_of}"
                raise DataQualityError(
                    f"{name}: no {cfg.sources.format} landing file for {span} in {folder} (freshness check)"
                )
            summary.missing.append(name)
            continue
        frames = []
        for file_date, path in files:
            frame = read_landing_file(path, name, ds, cfg.sources.format)
            frame["_source_file"] = path.name
            # Row number as a person sees it in the file: header is line 1.
            frame["_source_row"] = range(2, len(frame) + 2)
            frame["_batch_date"] = file_date
            frames.append(frame)
        batches[name] = frames
        summary.files[name] = len(files)
        summary.rows[name] = sum(len(f) for f in frames)
    with engine.begin() as conn:
        for name in cfg.sources.datasets:
            if name not in batches:
                continue
            frame = pd.concat(batches[name], ignore_index=True)
            replace_rows(conn, f"raw_{name}", frame, "_batch_date BETWEEN :s AND :e", {"s": start, "e": as_of})
    return summary
