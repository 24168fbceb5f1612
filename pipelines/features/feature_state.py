"""The per-customer feature state that nightly features roll forward instead of re-reading all history.

A state of day S (table feature_state) sums, per customer, the "settled" rows: batches up to S with ts
before S + 1. A run for D may keep the state of S = D - lookback_days - 1, the last batch its look-back
no longer re-reads: once a week (STORE_EVERY_DAYS) it rolls the latest usable earlier state forward to S
and stores it. It computes the features of D from the latest stored state rolled on to D inline
(sql/features/history_state.sql), so a night reads the state, a few days of rows and the 90-day windows
instead of two years. Features equal those of the
plain query (sql/features/history_plain.sql) on DuckDB and PostgreSQL: tests/features/test_feature_state.py.

A state stays usable while the rows it summed are unchanged: the validate step deletes every state over
batches it replaces (pipelines/ingest/validation.py), and the settled row counts recorded in
feature_state_log are checked before a state is used, so rows added to or removed from stg_* by anything
else also void it. Without a usable state, the state is summed from all history (the first night).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines.core.config import Config
from pipelines.core.warehouse import crash_point, sql_text, table_columns, unordered_insert

NO_STATE = date(1900, 1, 1)  # rolling from this "state" sums every row
# A night stores a new state only when the latest usable one is this many days older than its settled
# day: storing rewrites every customer's row (4 s at 1M), while rolling a week of rows inline costs about
# what rolling four days does (the state's 1M rows dominate both).
STORE_EVERY_DAYS = 7
KEEP_DAYS = 14  # states older than the newest one minus this many days are deleted
FIRST_STATE_SLICES = 8  # slices of customers a state summed from all history is built in
WINDOWS = (30, 90, 180, 365)
DAY = timedelta(days=1)


def settled_day(as_of: date, cfg: Config) -> date:
    """Return the last batch day a run for as_of no longer re-reads: the day its state is kept for."""
    return as_of - timedelta(days=cfg.sources.lookback_days + 1)


def roll_params(prior: date | None, to: date) -> dict[str, Any]:
    """Return the bound parameters of feature_state_roll.sql rolling the state of prior (None: none) to `to`."""
    s = prior or NO_STATE
    params: dict[str, Any] = {"s": s, "s_next": s + DAY, "e": to, "e_next": to + DAY}
    for tau in (30, 90):
        params[f"shift_{tau}"] = math.exp(-(to - s).days / tau)
    for w in WINDOWS:  # the state's rows that left the w-day window: days in (s - w, to - w], all before s + 1
        params[f"x{w}_lo"] = s - timedelta(days=w - 1)
        params[f"x{w}_hi"] = min(to - timedelta(days=w - 1), s + DAY)
    return params


def new_rows_sql(redo: bool) -> str:
    """Return the CTEs prior, txn_new and redo of a roll; redo=False makes redo empty at planning time."""
    return sql_text("features/feature_state_new.sql").replace("{redo}", "TRUE" if redo else "FALSE")


def slice_condition(dialect: str, part: int, parts: int) -> str:
    """Return the SQL condition on customer_id that keeps slice `part` of `parts` (a hash of the id)."""
    if parts == 1:
        return "TRUE"
    if dialect == "duckdb":
        return f"hash(customer_id) % {int(parts)} = {int(part)}"
    return f"mod(abs(hashtext(customer_id)::bigint), {int(parts)}) = {int(part)}"


def roll(conn: Connection, prior: date | None, to: date, part: tuple[int, int] = (0, 1)) -> tuple[str, dict[str, Any]]:
    """Return the SELECT of the state of `prior` rolled to `to`, and its bound parameters.

    part=(k, n) keeps the customers of slice k of n (slice_condition); the default keeps everyone.
    Customers to sum again from all their rows (redo) are looked for first: without any, the SELECT
    leaves out the scan of the whole transactions table that would find their rows."""
    params = roll_params(prior, to)
    where = slice_condition(conn.dialect.name, *part)
    new_rows = new_rows_sql(True).replace("{slice}", where)
    found = conn.execute(sa.text(f"WITH {new_rows} SELECT COUNT(*) FROM redo"), params).scalar_one()
    sql = sql_text("features/feature_state_roll.sql").replace("{new_rows}", new_rows_sql(int(found) > 0))
    return sql.replace("{slice}", where), params


def settled_rows(conn: Connection, day: date) -> tuple[int, int]:
    """Return how many transactions and service events a state of `day` sums."""
    params = {"s": day, "s_next": day + DAY}
    return tuple(  # type: ignore[return-value]
        int(
            conn.execute(
                sa.text(f"SELECT COUNT(*) FROM {t} WHERE _batch_date <= :s AND ts < :s_next"), params
            ).scalar_one()
        )
        for t in ("stg_transactions", "stg_service_events")
    )


def usable_state(conn: Connection, on_or_before: date) -> date | None:
    """Return the latest stored state up to a day whose rows are unchanged; delete it if they changed."""
    row = conn.execute(
        sa.text(
            "SELECT state_date, transactions_rows, service_events_rows FROM feature_state_log"
            " WHERE state_date <= :d ORDER BY state_date DESC LIMIT 1"
        ),
        {"d": on_or_before},
    ).first()
    if row is None:
        return None
    day = row[0] if isinstance(row[0], date) else date.fromisoformat(str(row[0])[:10])
    if settled_rows(conn, day) == (int(row[1]), int(row[2])):
        return day
    drop_states(conn, "state_date >= :d", {"d": day})  # its rows changed, and so did every later state's
    return None


def drop_states(conn: Connection, where: str, params: dict[str, Any]) -> None:
    """Delete the states (and their log rows) matching a condition on state_date."""
    for table in ("feature_state", "feature_state_log"):
        conn.execute(sa.text(f"DELETE FROM {table} WHERE {where}"), params)


def ensure_state(conn: Connection, as_of: date, cfg: Config, now) -> date:
    """Return the day of the stored state a run for as_of rolls from.

    That is the latest usable state up to settled_day(as_of) while it is less than STORE_EVERY_DAYS
    older; otherwise the state of settled_day(as_of) is stored first (rolled from the latest usable one,
    or summed from all history without one) and returned."""
    target = settled_day(as_of, cfg)
    prior = usable_state(conn, target)
    if prior is not None and (target - prior).days < STORE_EVERY_DAYS:
        return prior
    drop_states(conn, "state_date = :d", {"d": target})
    columns = ", ".join(table_columns(conn, "feature_state"))
    # Summed from all history (no usable state), every row is new: the state is built slice by slice of
    # customers, so the warehouse holds one slice's aggregates at a time (at 1M customers the whole
    # ran out of a 1.2 GB DuckDB limit). A roll from a stored state reads a few days and stays whole.
    parts = FIRST_STATE_SLICES if prior is None else 1
    for part in range(parts):
        sql, params = roll(conn, prior, target, (part, parts))
        with unordered_insert(conn):
            conn.execute(sa.text(f"INSERT INTO feature_state ({columns}) SELECT {columns} FROM ({sql}) q"), params)
    crash_point("feature_state")
    n_txn, n_events = settled_rows(conn, target)
    customers = conn.execute(sa.text("SELECT COUNT(*) FROM feature_state WHERE state_date = :d"), {"d": target})
    conn.execute(
        sa.text(
            "INSERT INTO feature_state_log (state_date, transactions_rows, service_events_rows, customers,"
            " rolled_from, built_at) VALUES (:d, :t, :e, :c, :f, :now)"
        ),
        {"d": target, "t": n_txn, "e": n_events, "c": int(customers.scalar_one()), "f": prior, "now": now},
    )
    drop_states(conn, "state_date < :d", {"d": target - timedelta(days=KEEP_DAYS)})
    return target
