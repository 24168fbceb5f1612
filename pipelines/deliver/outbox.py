"""The morning files: outbox/<as-of>/<team>.csv, <team>.reactivation.csv and <team>.xlsx from churn_alerts.

Step publish_outbox. SQL: sql/deliver/outbox_alerts.sql. Tests: tests/deliver/test_alerts.py,
tests/ingest/test_hostile.py (formula-proof cells, safe team names). Doc: docs/deliver.md.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from datetime import date
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError
from pipelines.core.publish import swap_folder
from pipelines.core.safe import safe_cells, safe_name
from pipelines.core.warehouse import read_frame, sql_text
from pipelines.deliver.alerts import LISTS

# Spreadsheet number formats of the outbox columns (money with two decimals, probability as a percent).
XLSX_FORMATS = {"churn_probability": "0.0%", "value_12m": "money", "expected_value": "money", "value_at_risk": "money"}

# What a retention team gets: no more personal data than it needs to act.
OUTBOX_COLUMNS = [
    "team_rank",
    "customer_id",
    "churn_probability",
    "risk_band",
    "value_12m",
    "expected_value",
    "value_at_risk",
    "reasons",
    "recommended_action",
    "triggers",
    "note",
]
# Column headers of the XLSX lists, in the words of the people who call.
XLSX_HEADERS = {
    "team_rank": "Rank",
    "customer_id": "Customer",
    "churn_probability": "Churn probability",
    "risk_band": "Risk band",
    "value_12m": "Spend, last 12 months ({currency})",
    "expected_value": "Expected spend, next {period} days ({currency})",
    "value_at_risk": "Value at risk, next {period} days ({currency})",
    "reasons": "Reasons",
    "recommended_action": "Recommended action",
    "triggers": "Triggers",
    "note": "Note",
}


def value_legend(cfg: Config) -> str:
    """Return what the money columns of the lists mean, with their unit and period (CSV names stay stable)."""
    currency, period = cfg.alerts.currency, cfg.value.period_days
    return (
        f"value_12m = spend in the last 12 months ({currency}); expected_value = expected spend in the next "
        f"{period} days if the customer stays ({currency}); value_at_risk = churn probability × expected_value "
        f"({currency}, next {period} days)"
    )


def xlsx_headers(cfg: Config) -> dict[str, str]:
    """Return the XLSX column headers with the configured currency and value period filled in."""
    fill = {"currency": cfg.alerts.currency, "period": cfg.value.period_days}
    return {k: v.format(**fill) for k, v in XLSX_HEADERS.items()}


def _write_xlsx(sheets: dict[str, pd.DataFrame], path: Path, team: str, as_of: date, cfg: Config) -> None:
    """One workbook per team, one sheet per list (prevention, reactivation).

    Bold header that stays in view, a filter, money and percent formats, readable widths. Every text
    cell is written as a string, never a formula, whatever it starts with.
    """
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    currency = cfg.alerts.currency
    headers = xlsx_headers(cfg)
    money_format = f'"{currency} "#,##0.00' if currency else "#,##0.00"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for list_name, frame in sheets.items():
            frame.rename(columns=headers).to_excel(writer, index=False, sheet_name=list_name)
            sheet = writer.sheets[list_name]
            for row in sheet.iter_rows(min_row=2):
                for cell in row:
                    if isinstance(cell.value, str):
                        cell.data_type = "s"
            for cell in sheet[1]:
                cell.font = Font(bold=True)
            sheet.freeze_panes = "A2"
            sheet.auto_filter.ref = sheet.dimensions
            for i, col in enumerate(frame.columns, start=1):
                width = max([len(headers.get(col, col))] + [len(str(v)) for v in frame[col].head(200)])
                sheet.column_dimensions[get_column_letter(i)].width = min(max(10, width + 2), 80)
                number_format = XLSX_FORMATS.get(col)
                if number_format:
                    number_format = money_format if number_format == "money" else number_format
                    for (cell,) in sheet.iter_rows(min_row=2, min_col=i, max_col=i):
                        cell.number_format = number_format
        writer.book.properties.title = f"churnwatch {team} {as_of.isoformat()}"


def _outbox_rows(rows: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Return one list's rows as the team sees them: ranked, rounded, and a note wherever no probability is."""
    out = rows.copy()
    out["team_rank"] = range(1, len(out) + 1)
    out["churn_probability"] = pd.to_numeric(out["churn_probability"]).round(3)
    out["value_at_risk"] = pd.to_numeric(out["value_at_risk"]).round(2)
    out["value_12m"] = pd.to_numeric(out["value_12m"]).round(2)
    out["expected_value"] = pd.to_numeric(out["expected_value"]).round(2)
    horizon = cfg.churn.horizon_days
    notes = {
        "reactivation": f"dormant: no probability (the model scores customers active in the last {horizon} days)",
        "prevention": "no probability: no model yet, picked by rules and ranked by 12-month value",
    }
    out["note"] = [
        None if pd.notna(p) else notes[list_name] for p, list_name in zip(out["churn_probability"], out["list_name"])
    ]
    return out[OUTBOX_COLUMNS]


def _outbox_name(folder: Path, team: str) -> str:
    """Return the file stem of a team's list; refuse anything that would leave the day's folder."""
    name = safe_name(team, "")
    if not name or name != team or (folder / name).resolve().parent != folder.resolve():
        raise ChurnwatchError(f"churn_alerts holds team {team!r}, which is not a safe file name; re-run build_alerts")
    return name


def publish_outbox(as_of: date, cfg: Config, engine: Engine) -> dict:
    """Write outbox/<as_of>/<team>.csv and .xlsx (sent alerts, highest priority first), replacing the day whole.

    Step publish_outbox. SQL: sql/deliver/outbox_alerts.sql. Tests: tests/deliver/test_alerts.py,
    tests/ingest/test_hostile.py (formula-proof cells, safe team names). Doc: docs/deliver.md.
    """
    alerts = read_frame(engine, sql_text("deliver/outbox_alerts.sql"), {"d": as_of})
    root = cfg.resolve(cfg.paths.outbox_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / as_of.isoformat()
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{as_of.isoformat()}."))
    files = {}
    try:
        if "list_name" not in alerts:
            alerts["list_name"] = "prevention"
        alerts["list_name"] = alerts["list_name"].fillna("prevention")
        for team, part in alerts.groupby("team", sort=True):
            name = _outbox_name(staging, str(team))
            sheets = {}
            for list_name in LISTS:
                rows = part[part["list_name"] == list_name]
                if len(rows):
                    sheets[list_name] = _outbox_rows(rows, cfg)
            for list_name, out in sheets.items():
                stem = name if list_name == "prevention" else f"{name}.{list_name}"
                if "csv" in cfg.alerts.outbox_formats:
                    # Every text field quoted, so a line break or carriage return inside one cannot split a row.
                    safe_cells(out).to_csv(staging / f"{stem}.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
                files[stem] = len(out)
            if "xlsx" in cfg.alerts.outbox_formats:
                _write_xlsx(sheets, staging / f"{name}.xlsx", name, as_of, cfg)
        swap_folder(staging, target, *cfg.paths.modes)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"as_of": as_of.isoformat(), "folder": str(target), "files": files}
