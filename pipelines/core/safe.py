"""One rule each for values from data files that become a file name or a spreadsheet cell.

A team name, region or customer id comes from the customer's own data. Before it names a file or a
sheet it passes `safe_name` (no path separators, no dots in front, nothing outside [A-Za-z0-9_-]);
before it goes into a CSV or XLSX cell as text it passes `cell_text`, so a spreadsheet never reads
it as a formula (OWASP's CSV-injection advice: a leading = + - @ tab or carriage return is quoted).
"""

from __future__ import annotations

import re

import pandas as pd

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_-]+")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
# A cell that a spreadsheet would otherwise evaluate is shown as text behind this mark.
TEXT_MARK = "'"


def safe_name(value: object, fallback: str) -> str:
    """Return value as a name fit for a file or sheet: runs of other characters become '_'; fallback if empty."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return fallback
    name = _UNSAFE_RUN.sub("_", str(value)).strip("_-")[:64]
    return name if name and SAFE_NAME.match(name) else fallback


def cell_text(value: object) -> object:
    """Return a text value that no spreadsheet evaluates as a formula; numbers and missing values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return TEXT_MARK + value
    return value


def safe_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of frame whose text cells are all passed through cell_text."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(cell_text).astype(object)
    return out
