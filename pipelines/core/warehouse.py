"""The warehouse behind a small interface: engine, SQL files, schema, atomic partition writes."""

from __future__ import annotations

import functools
import io
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.core.config import Config
from pipelines.core.connections import redact
from pipelines.core.errors import ChurnwatchError, first_line

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_TABLE = re.compile(r"^[a-z_][a-z0-9_]*$")
CRASH_ENV = "CHURNWATCH_CRASH_AT"
_crash_counts: dict[str, int] = {}


def crash_point(label: str) -> None:
    """Kill the process here, mid-transaction, when CHURNWATCH_CRASH_AT=<label>[:<n-th time>] (for crash tests).

    os._exit skips every cleanup, as a kill -9 or a lost machine would: nothing is committed or rolled back.
    """
    target = os.environ.get(CRASH_ENV)
    if not target:
        return
    want, _, nth = target.partition(":")
    if want != label:
        return
    _crash_counts[label] = _crash_counts.get(label, 0) + 1
    if _crash_counts[label] >= int(nth or 1):
        os._exit(137)


def sql_text(relative: str) -> str:
    """Return a file under sql/ (e.g. 'features/customer_features.sql') without its comment lines."""
    path = SQL_DIR / relative
    if not path.exists():
        raise ChurnwatchError(f"SQL file missing from the installation: {path}")
    # Comments may mention :params, which SQLAlchemy would take for bind parameters.
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))


_SCHEMA_LOCK = threading.Lock()


def get_engine(cfg: Config) -> Engine:
    """Return a SQLAlchemy engine for the configured warehouse, with the schema in place."""
    url = cfg.warehouse_url
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ChurnwatchError(f"warehouse.url is not a valid SQLAlchemy URL: {redact(url)}") from None
    if parsed.get_backend_name() == "duckdb" and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where a folder should be, no permission, read-only disk
            raise ChurnwatchError(
                f"warehouse.url: cannot create the DuckDB folder {folder}: {exc.strerror or type(exc).__name__}"
            ) from None
        if not os.access(folder, os.W_OK):
            raise ChurnwatchError(f"warehouse.url: the DuckDB folder {folder} is not writable")
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "duckdb" and cfg.warehouse.duckdb_memory_limit:
        # DuckDB would take up to 80 % of RAM; a limit makes it spill large joins and sorts to disk.
        connect_args["config"] = {"memory_limit": cfg.warehouse.duckdb_memory_limit}
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # driver errors vary by backend; the user needs one line
        reason = first_line(exc)
        raise ChurnwatchError(f"cannot connect to warehouse {redact(url)}: {reason}") from None
    with _SCHEMA_LOCK:  # steps run side by side (pipelines.steps.run_steps): their DDL must not race
        ensure_schema(engine)
    return engine


def split_statements(sql: str) -> list[str]:
    """Split a SQL script on semicolons at line ends (our DDL files never put ';' inside strings)."""
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+) \((.*)\)$", re.S | re.I)


def declared_columns(stmt: str) -> tuple[str, list[tuple[str, str, bool]]] | None:
    """Return (table, [(column, type, not null)]) of a CREATE TABLE statement of our DDL, or None otherwise."""
    m = _CREATE_TABLE.match(stmt.strip())
    if not m:
        return None
    parts, depth, current = [], 0, ""
    for ch in m.group(2):  # split on commas outside parentheses (DECIMAL(18, 2))
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    columns = []
    for part in parts:
        name, _, rest = part.strip().partition(" ")
        not_null = bool(re.search(r"\bNOT NULL\b", rest, re.I))
        columns.append((name, re.sub(r"\s+NOT NULL\b", "", rest, flags=re.I).strip(), not_null))
    return m.group(1), columns


@functools.cache
def declared_tables() -> dict[str, list[tuple[str, str, bool]]]:
    """Return {table: [(column, SQL type, not null)]} of every CREATE TABLE in sql/ddl/*.sql: the one schema."""
    tables = {}
    for path in sorted((SQL_DIR / "ddl").glob("*.sql")):
        for stmt in split_statements(path.read_text()):
            declared = declared_columns(stmt)
            if declared is not None:
                tables[declared[0]] = declared[1]
    return tables


def declared_names(table: str) -> list[str]:
    """Return the column names a table's DDL declares, in order."""
    return [name for name, _, _ in declared_tables()[table]]


def ensure_schema(engine: Engine) -> None:
    """Create every table and view from sql/ddl/*.sql if missing, and add columns a newer version declares.

    Upgrades are additive: a column added to a table's DDL is added (nullable) to an existing warehouse,
    so a warehouse made by an earlier version keeps its data and keeps working. The catalog is read once
    (every step of a run calls this; one query per table cost 0.3 s a step on DuckDB).
    """
    with engine.begin() as conn:
        catalog = _catalog(conn)
        for path in sorted((SQL_DIR / "ddl").glob("*.sql")):
            for stmt in split_statements(path.read_text()):
                conn.exec_driver_sql(stmt)
                declared = declared_columns(stmt)
                if declared is None:
                    continue
                table, columns = declared
                existing = catalog.get(table.lower())
                if existing is None:  # created just now, as declared
                    continue
                for name, col_type, _ in columns:
                    if name.lower() not in existing:
                        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {col_type}")
                declared_not_null = {name.lower() for name, _, not_null in columns if not_null}
                for name, nullable in existing.items():
                    if not nullable and name not in declared_not_null:  # a newer DDL declares it nullable
                        conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL")


def _catalog(conn: Connection) -> dict[str, dict[str, bool]]:
    """Return {table: {column: nullable}} for the tables of the current schema, names in lower case."""
    rows = conn.execute(
        sa.text(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns"
            " WHERE table_schema = current_schema()"
        )
    ).fetchall()
    catalog: dict[str, dict[str, bool]] = {}
    for table, column, nullable in rows:
        catalog.setdefault(str(table).lower(), {})[str(column).lower()] = str(nullable).upper() == "YES"
    return catalog


def check_table(name: str) -> str:
    """Return name if it is a safe table identifier, else raise."""
    if not _TABLE.match(name):
        raise ChurnwatchError(f"unsafe table name {name!r}")
    return name


def table_columns(conn: Connection, table: str) -> list[str]:
    """Return the column names of a warehouse table in order."""
    # A zero-row SELECT works on every engine (duckdb-engine's inspector breaks on SQLAlchemy 2.1).
    return list(conn.exec_driver_sql(f"SELECT * FROM {check_table(table)} WHERE 1 = 0").keys())


def insert_frame(conn: Connection, table: str, frame: pd.DataFrame | pa.Table) -> int:
    """Append frame (pandas or Arrow) to table inside the caller's transaction; columns are matched by name."""
    check_table(table)
    if len(frame) == 0:
        return 0
    names = frame.column_names if isinstance(frame, pa.Table) else list(frame.columns)
    cols = [c for c in table_columns(conn, table) if c in names]
    if conn.dialect.name == "duckdb":
        raw = conn.connection.driver_connection
        view = f"_cw_insert_{table}"
        # Arrow carries pandas 3 string dtypes that DuckDB's pandas scanner does not know.
        arrow = (
            frame.select(cols)
            if isinstance(frame, pa.Table)
            else pa.Table.from_pandas(frame[cols], preserve_index=False)
        )
        raw.register(view, arrow)
        try:
            col_list = ", ".join(f'"{c}"' for c in cols)
            with unordered_insert(conn, len(frame)):
                conn.exec_driver_sql(f"INSERT INTO {table} ({col_list}) SELECT {col_list} FROM {view}")
        finally:
            raw.unregister(view)
    else:
        rows = frame.select(cols).to_pandas() if isinstance(frame, pa.Table) else frame[cols]
        records = rows.astype(object).where(rows.notna(), None).to_dict("records")
        conn.execute(sa.table(table, *[sa.column(c) for c in cols]).insert(), records)
    return len(frame)


# DuckDB's row group: an insert of fewer rows is written by one thread, in order, whatever the setting.
ROW_GROUP = 122_880


@contextmanager
def unordered_insert(conn: Connection, rows: int | None = None) -> Iterator[None]:
    """On DuckDB, let a large INSERT write its row groups in parallel, straight to the database file.

    With insertion order preserved, DuckDB writes a large insert to the WAL and then again at the
    checkpoint: 3.2 s of commit and twice the file size for a 3.5M-row raw window (measured), against
    0.05 s unordered. Tables are sets: every reader that needs an order says ORDER BY.
    """
    if conn.dialect.name != "duckdb" or (rows is not None and rows < ROW_GROUP):
        yield
        return
    conn.exec_driver_sql("SET preserve_insertion_order = false")
    try:
        yield
    except BaseException:
        # A failed statement aborts DuckDB's transaction, which then refuses the RESET too: that second
        # error would hide the first (an out-of-memory, say). The caller's rollback ends the transaction;
        # inserts stay unordered until the next unordered_insert resets (tables are sets either way).
        with suppress(Exception):
            conn.exec_driver_sql("RESET preserve_insertion_order")
        raise
    conn.exec_driver_sql("RESET preserve_insertion_order")


def out_of_memory(exc: BaseException) -> bool:
    """Return whether exc, or an error it wraps, is DuckDB reaching its memory limit."""
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ == "OutOfMemoryException" or "Out of Memory Error" in first_line(seen):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def memory_advice(cfg: Config) -> str:
    """Return what to do when DuckDB runs out of memory, naming the configured limit."""
    limit = cfg.warehouse.duckdb_memory_limit
    now = f"now {limit}" if limit else "now DuckDB's default, 80 % of RAM"
    return (
        f"DuckDB ran out of memory at its limit ({now}): raise warehouse.duckdb_memory_limit in the config"
        " (it spills to disk below the limit), or run the steps one at a time (churnwatch run --workers 1)"
    )


def replace_rows(conn: Connection, table: str, frame: pd.DataFrame, where: str, params: Mapping[str, Any]) -> int:
    """Delete the rows matching where (bound params) and insert frame, in the caller's transaction."""
    conn.execute(sa.text(f"DELETE FROM {check_table(table)} WHERE {where}"), dict(params))
    crash_point("replace_rows")
    return insert_frame(conn, table, frame)


def replace_partition_from_query(conn: Connection, table: str, sql: str, params: Mapping[str, Any], as_of: date) -> int:
    """Replace table's as_of_date partition with the rows of a SELECT, inside the caller's transaction.

    The rows never leave the warehouse: DELETE, then INSERT ... SELECT of the table's columns by name.
    """
    col_list = ", ".join(table_columns(conn, check_table(table)))
    conn.execute(sa.text(f"DELETE FROM {table} WHERE as_of_date = :d"), {"d": as_of})
    crash_point(table)
    with unordered_insert(conn):
        conn.execute(sa.text(f"INSERT INTO {table} ({col_list}) SELECT {col_list} FROM ({sql}) q"), dict(params))
    return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE as_of_date = :d"), {"d": as_of}).scalar_one())


def replace_partition(engine: Engine, table: str, frame: pd.DataFrame, as_of: date) -> int:
    """Atomically replace one as_of_date partition of table with frame."""
    with engine.begin() as conn:
        return replace_rows(conn, table, frame, "as_of_date = :d", {"d": as_of})


def read_frame(engine_or_conn: Engine | Connection, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run a bound query and return a DataFrame."""
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return _read(conn, sql, params)
    return _read(engine_or_conn, sql, params)


def _read(conn: Connection, sql: str, params: Mapping[str, Any] | None) -> pd.DataFrame:
    result = conn.execute(sa.text(sql), dict(params or {}))
    # Plain tuples: pandas probes each Row object for attributes, which costs seconds per million rows.
    return pd.DataFrame([tuple(row) for row in result.fetchall()], columns=list(result.keys()))


def read_bulk(
    engine_or_conn: Engine | Connection, sql: str, params: Mapping[str, Any] | None = None, text: bool = False
) -> pd.DataFrame:
    """Like read_frame, for large results: DuckDB hands over columns (no Python row objects).

    Column types may differ from read_frame's on DuckDB: dates come back as datetime64 and
    DECIMAL as float, so callers convert the columns they use. text=True, for results that are
    mostly text (raw_* rows): through Arrow, strings stay Arrow strings instead of one Python object
    per value (3.5x faster on a 3.5M-row window), and dates come back as Python dates, as from read_frame.
    """
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return read_bulk(conn, sql, params, text)
    if engine_or_conn.dialect.name != "duckdb":
        return _read(engine_or_conn, sql, params)
    result = engine_or_conn.execute(sa.text(sql), dict(params or {}))
    try:
        return result.cursor.fetch_arrow_table().to_pandas() if text else result.cursor.fetch_df()
    finally:
        result.close()


def read_for_keys(engine: Engine, sql: str, keys: list[str], params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run sql, which joins a temporary one-column table _cw_keys(k), with keys loaded into it.

    One join instead of thousands of `IN (...)` lookups: the key list can be a whole night's rows.
    """
    frame = pd.DataFrame({"k": pd.Series(list(keys), dtype=object).astype(str)})
    with engine.begin() as conn:  # committed: DuckDB's unregister of the view is rolled back otherwise
        if conn.dialect.name == "duckdb":
            raw = conn.connection.driver_connection
            raw.register("_cw_keys", pa.Table.from_pandas(frame, preserve_index=False))
            try:
                return read_bulk(conn, sql, params)
            finally:
                raw.unregister("_cw_keys")
        conn.exec_driver_sql("CREATE TEMPORARY TABLE _cw_keys (k TEXT) ON COMMIT DROP")
        cursor = conn.connection.driver_connection.cursor()
        escaped = frame["k"].str.replace("\\", "\\\\").str.replace("\t", "\\t").str.replace("\n", "\\n")
        buffer = io.StringIO("".join(f"{k}\n" for k in escaped.str.replace("\r", "\\r")))
        cursor.copy_expert("COPY _cw_keys (k) FROM STDIN WITH (FORMAT text)", buffer)
        conn.exec_driver_sql("ANALYZE _cw_keys")
        return _read(conn, sql, params)
