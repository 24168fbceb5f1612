"""Measured outreach: import what retention teams did, and compare churn of treated and control customers.

`churnwatch outcomes import FILE` records outcomes per alert (all rows or none). Each night,
`measure_outreach` takes the alert days whose horizon has just matured and writes `outreach_results`:
churn among customers who were sent to a team vs the control group held out of the same lists,
the difference with a 95 % confidence interval (Newcombe), and the revenue that difference is worth.

SQL: sql/deliver/outcome_alerts.sql (import), sql/deliver/outreach_cohort_alerts.sql and
outreach_cohort_outcomes.sql (measure). The two DELETE-by-key statements (alert_outcomes per customer
and alert day, outreach_results per alert day) stay inline: each runs inside the write transaction
that replaces the rows it deletes. Tests: tests/deliver/test_alerts.py, tests/ingest/test_hostile.py.
Doc: docs/deliver.md ("Measured outreach").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.core.config import Config
from pipelines.core.errors import ChurnwatchError, first_line
from pipelines.core.numbers import FALSE_WORDS, TRUE_WORDS, difference_ci
from pipelines.core.warehouse import crash_point, insert_frame, read_frame, sql_text
from pipelines.features.population import churn_labels

RESULTS = ["retained", "declined", "no_answer", "not_reached", "churned", "other"]
OUTCOME_COLUMNS = ["customer_id", "alert_date", "contacted", "contact_date", "offer", "result"]
# Fewer control customers than this cannot tell a call's effect from noise; the report says so.
MIN_CONTROL = 30


def _read_table(path: Path) -> pd.DataFrame:
    """Return the outcomes file as text cells ('' for blanks); raise one line for a file that cannot be read."""
    if not path.exists():
        raise ChurnwatchError(f"outcomes file not found: {path}")
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, dtype=object)
            frame = frame.map(lambda v: "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v))
        else:
            frame = _read_csv(path)
    except ChurnwatchError:
        raise
    except Exception as exc:  # a broken file is a user mistake: one line, no traceback
        first = first_line(exc)
        raise ChurnwatchError(f"{path}: cannot read the outcomes file: {first}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return frame.astype(object)


def _read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV of any common delimiter as text; a row with more or fewer fields than the header is refused."""
    text = path.read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ChurnwatchError(f"{path}: the outcomes file is empty")
    delimiter = max((",", ";", "\t", "|"), key=lines[0].count)
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header, body = rows[0], rows[1:]
    wrong = [
        f"row {i + 2} has {len(r)} fields, the header {len(header)}"
        for i, r in enumerate(body)
        if len(r) != len(header)
    ]
    if wrong:
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        raise ChurnwatchError(f"{path}: nothing imported; " + "; ".join(wrong[:3]) + more)
    return pd.DataFrame(body, columns=header, dtype=object)


def _blank_to_none(values: pd.Series) -> pd.Series:
    """Return text values with blanks as None (not NaN: pandas 3 would otherwise infer a str column)."""
    return pd.Series([v if isinstance(v, str) and v else None for v in values], index=values.index, dtype=object)


def parse_outcomes(path: Path, engine: Engine) -> pd.DataFrame:
    """Return the outcome rows of a file, checked against the alerts; raise naming every bad row (max 5)."""
    frame = _outcome_table(path)
    problems: list[str] = []

    def bad(i: int, col: str, msg: str) -> None:
        problems.append(f"row {i + 2} column {col}: {msg}")

    out, contacted_text = _outcome_values(frame)
    _check_cells(frame, out, contacted_text, bad)
    _check_against_alerts(out, engine, bad)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ChurnwatchError(f"{path}: nothing imported; " + "; ".join(problems[:5]) + more)
    return out


def _outcome_table(path: Path) -> pd.DataFrame:
    """Return the outcomes file with every outcome column (blank where absent); raise if it names no alerts."""
    frame = _read_table(path)
    missing = [c for c in ("customer_id", "alert_date") if c not in frame.columns]
    if missing:
        raise ChurnwatchError(
            f"{path}: missing column(s) {', '.join(missing)}; columns are: {', '.join(frame.columns)}"
        )
    if frame.empty:
        raise ChurnwatchError(f"{path}: no outcome rows")
    for col in OUTCOME_COLUMNS:
        if col not in frame:
            frame[col] = ""
    return frame


def _outcome_values(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Return the outcome rows as values (dates, yes/no, None for blanks) and the contacted cells as read."""
    out = pd.DataFrame({"customer_id": frame["customer_id"].str.strip()})
    out["alert_date"] = pd.to_datetime(frame["alert_date"].str.strip(), errors="coerce", format="ISO8601").dt.date
    out["contact_date"] = pd.to_datetime(frame["contact_date"].str.strip(), errors="coerce", format="ISO8601").dt.date
    text = frame["contacted"].str.strip().str.lower()
    out["contacted"] = text.map(lambda v: True if v in TRUE_WORDS else (False if v in FALSE_WORDS else None))
    out["offer"] = _blank_to_none(frame["offer"].str.strip())
    out["result"] = _blank_to_none(frame["result"].str.strip().str.lower())
    return out, text


def _check_cells(frame: pd.DataFrame, out: pd.DataFrame, text: pd.Series, bad: Callable[[int, str, str], None]) -> None:
    """Report every cell that is empty, unreadable or not allowed, and every customer listed twice for a day."""
    for i, row in frame.iterrows():
        if not out.at[i, "customer_id"]:
            bad(i, "customer_id", "empty")
        if out.at[i, "alert_date"] is None or pd.isna(out.at[i, "alert_date"]):
            bad(i, "alert_date", f"{row['alert_date']!r} is not a date (YYYY-MM-DD)")
        if row["contact_date"].strip() and pd.isna(out.at[i, "contact_date"]):
            bad(i, "contact_date", f"{row['contact_date']!r} is not a date")
        if text[i] and out.at[i, "contacted"] is None:
            bad(i, "contacted", f"{row['contacted']!r} is not yes/no")
        if pd.notna(out.at[i, "result"]) and out.at[i, "result"] not in RESULTS:
            bad(i, "result", f"{out.at[i, 'result']!r} is not one of {', '.join(RESULTS)}")
    dup = out.duplicated(["customer_id", "alert_date"], keep=False) & out["customer_id"].ne("")
    for i in out.index[dup]:
        bad(i, "customer_id", f"{out.at[i, 'customer_id']} appears twice for {out.at[i, 'alert_date']}")


def _check_against_alerts(out: pd.DataFrame, engine: Engine, bad: Callable[[int, str, str], None]) -> None:
    """Add each row's team from its alert; report rows with no alert and control customers marked contacted."""
    ok = out["alert_date"].notna() & out["customer_id"].ne("")
    if not ok.any():
        return
    dates = sorted(set(out.loc[ok, "alert_date"]))
    stmt = sa.text(sql_text("deliver/outcome_alerts.sql")).bindparams(sa.bindparam("d", expanding=True))
    with engine.connect() as conn:
        result = conn.execute(stmt, {"d": dates})
        alerts = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    alerts["as_of_date"] = pd.to_datetime(alerts["as_of_date"]).dt.date
    known = {(r.customer_id, r.as_of_date): (r.status, r.team) for r in alerts.itertuples()}
    teams = []
    for i in out.index:
        key = (out.at[i, "customer_id"], out.at[i, "alert_date"])
        status, team = known.get(key, (None, None))
        teams.append(team)
        if not ok[i]:
            continue
        if status is None:
            bad(i, "customer_id", f"no alert for {key[0]} on {key[1]}")
        elif status == "control" and out.at[i, "contacted"]:
            bad(i, "contacted", f"{key[0]} was in the control group on {key[1]} and must not be contacted")
    out["team"] = teams


def import_outcomes(path: Path, cfg: Config, engine: Engine) -> dict:
    """Import an outcomes file (CSV or XLSX) in one transaction; re-importing a row replaces it."""
    out = parse_outcomes(path, engine)
    out["source_file"] = path.name
    out["imported_at"] = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        stmt = sa.text("DELETE FROM alert_outcomes WHERE customer_id = :c AND alert_date = :d")
        for row in out[["customer_id", "alert_date"]].itertuples(index=False):
            conn.execute(stmt, {"c": row.customer_id, "d": row.alert_date})
        crash_point("import_outcomes")
        insert_frame(conn, "alert_outcomes", out)
    return {"file": str(path), "rows": len(out), "contacted": int(out["contacted"].fillna(False).sum())}


@dataclass
class OutreachSummary:
    as_of: date
    cohorts: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "cohorts": self.cohorts}


def cohort_result(alert_date: date, as_of: date, cfg: Config, engine: Engine) -> dict | None:
    """Compare churn of sent vs comparable control alerts of one day; None if either group is empty."""
    # The prevention lists only: their customers were active, so "churned" has the same meaning for all.
    alerts = read_frame(engine, sql_text("deliver/outreach_cohort_alerts.sql"), {"d": alert_date})
    if alerts.empty:
        return None
    # Comparable control: held-out customers whose priority would have put them within the called range.
    reach = alerts[alerts["status"] == "sent"].groupby("team")["team_rank"].max()
    control = alerts[(alerts["status"] == "control") & (alerts["team_rank"] <= alerts["team"].map(reach))]
    treated = alerts[alerts["status"] == "sent"]
    if treated.empty or control.empty:
        return None
    labels = churn_labels(engine, cfg, alert_date, as_of).set_index("customer_id")["churned"]
    yt = treated["customer_id"].map(labels).fillna(1).astype(int)
    yc = control["customer_id"].map(labels).fillna(1).astype(int)
    diff, low, high = difference_ci(int(yc.sum()), len(yc), int(yt.sum()), len(yt))
    outcomes = read_frame(engine, sql_text("deliver/outreach_cohort_outcomes.sql"), {"d": alert_date})
    value = pd.to_numeric(treated["value_12m"]).fillna(0).to_numpy(float)
    return {
        "alert_date": alert_date,
        "as_of_date": as_of,
        "n_treated": len(yt),
        "n_control": len(yc),
        "churn_rate_treated": float(yt.mean()),
        "churn_rate_control": float(yc.mean()),
        "churn_reduction": diff,
        "ci_low": low,
        "ci_high": high,
        "contacted": int(outcomes["contacted"].fillna(False).astype(bool).sum()) if len(outcomes) else 0,
        "reported_retained": int((outcomes["result"] == "retained").sum()) if len(outcomes) else 0,
        # No money figure from an interval that spans zero, or from groups too small to tell.
        "revenue_retained": float(diff * len(yt) * np.mean(value)) if effect_is_clear(low, high, len(yc)) else None,
    }


def effect_is_clear(low: float, high: float, n_control: int) -> bool:
    """Return whether a measured churn reduction can be stated: enough control customers, interval off zero."""
    return n_control >= MIN_CONTROL and (low > 0 or high < 0)


def measure_outreach(as_of: date, cfg: Config, engine: Engine) -> OutreachSummary:
    """Write outreach_results for the alert day whose horizon matures on as_of (re-runs replace it).

    Step measure_outreach. SQL: sql/deliver/outreach_cohort_alerts.sql, sql/deliver/outreach_cohort_outcomes.sql
    (the DELETE of the day's old result stays inline: one key, inside the write transaction).
    Tests: tests/deliver/test_alerts.py. Doc: docs/deliver.md ("Measured outreach").
    """
    alert_date = as_of - timedelta(days=cfg.churn.horizon_days)
    summary = OutreachSummary(as_of)
    row = cohort_result(alert_date, as_of, cfg, engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM outreach_results WHERE alert_date = :d"), {"d": alert_date})
        if row:
            insert_frame(conn, "outreach_results", pd.DataFrame([row]))
    if row:
        summary.cohorts.append({k: (round(v, 4) if isinstance(v, float) else str(v)) for k, v in row.items()})
    return summary
