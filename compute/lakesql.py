"""DuckDB over the lake: one view per table (sql/views/*.sql), the paper's queries in sql/queries/*.sql.
The aggregate tables are SQL too (sql/tables/*.sql), run by DuckDB over an asset's input frames
(`compute_table`); every connection has the study's constants and buckets (sql/macros.sql), so each number
has one definition whether it is computed into a table or read from the lake.

Parquet stays the source of truth; the views are rebuilt on every connection. Local lakes are read in
place; any other fsspec URL is read through DuckDB's `register_filesystem` (no extension download).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import duckdb
import fsspec

from compute.storage import filesystem, resolve_lake_url

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
VIEWS_DIR = SQL_DIR / "views"
QUERIES_DIR = SQL_DIR / "queries"
TABLES_DIR = SQL_DIR / "tables"
MACROS = SQL_DIR / "macros.sql"


def _has_files(fs: fsspec.AbstractFileSystem, lake_url: str, table: str) -> bool:
    return bool(fs.glob(f"{lake_url}/{table}/data.parquet") or fs.glob(f"{lake_url}/{table}/*/data.parquet"))


def connect(lake_url: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view for each table that has data in the lake."""
    lake_url = resolve_lake_url(lake_url)
    con = _connection()
    fs = filesystem(lake_url)
    if "://" in lake_url:
        con.register_filesystem(fs)
    for view in sorted(VIEWS_DIR.glob("*.sql")):
        if _has_files(fs, lake_url, view.stem):
            con.execute(view.read_text().replace("{lake}", lake_url))
    return con


def _connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(MACROS.read_text())
    return con


def constant(expression: str):
    """The value of an expression over the macros of sql/macros.sql, e.g. `entropy_bucket_labels()`."""
    return _connection().execute(f"SELECT {expression}").fetchone()[0]


def compute_table(table: str, frames: dict, **params):
    """The aggregate table `table` (sql/tables/<table>.sql) computed by DuckDB over `frames` (relation name ->
    polars frame, standing in for the lake's tables of the same names); `params` fill its `$name`s.
    Returns a polars frame."""
    return run_over((TABLES_DIR / f"{table}.sql").read_text(), frames, **params)


def run_over(sql: str, frames: dict, **params):
    """`sql` run by DuckDB over `frames` (relation name -> polars frame) instead of the lake."""
    con = _connection()
    for name, frame in frames.items():
        con.register(name, frame)
    _named_queries(con, sql)
    return con.sql(sql, params=params or None).pl()


def _named_queries(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """A view for each query of sql/queries that `sql` reads (by name, in a FROM or JOIN), and for those
    those read in turn: a table's SQL uses the query the figures use rather than a copy of it."""
    for name in list_queries():
        if re.search(rf"\b(FROM|JOIN)\s+{name}\b", sql, re.IGNORECASE) and not _defined(con, name):
            text = query_text(name).strip().rstrip(";")
            _named_queries(con, text)
            con.execute(f"CREATE TEMP VIEW {name} AS {text}")


def _defined(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_views() WHERE view_name = ? UNION ALL "
                            "SELECT 1 FROM duckdb_tables() WHERE table_name = ?", [name, name]).fetchall())


def query_text(query_or_name: str) -> str:
    """A query given inline, as a path to a .sql file, or by the name of one in sql/queries."""
    if not re.fullmatch(r"[\w./-]+", query_or_name):
        return query_or_name  # SQL text
    path = Path(query_or_name)
    if path.suffix == ".sql" and path.exists():
        return path.read_text()
    named = QUERIES_DIR / f"{query_or_name.removesuffix('.sql')}.sql"
    if named.exists():
        return named.read_text()
    return query_or_name


def list_queries() -> list[str]:
    return sorted(p.stem for p in QUERIES_DIR.glob("*.sql"))


def render(frame, fmt: str = "table") -> str:
    """A query result as an aligned text table, CSV or JSON. CSV writes list and struct columns as JSON."""
    import polars as pl

    if fmt == "csv":
        nested = [c for c, t in frame.schema.items() if t.is_nested()]
        as_json = [pl.col(c).map_elements(_json_cell, return_dtype=pl.String) for c in nested]
        return frame.with_columns(as_json).write_csv()
    if fmt == "json":
        return frame.write_json() + "\n"

    with pl.Config(tbl_rows=200, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=250,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        return str(frame) + "\n"


def _json_cell(value) -> str:
    import json

    return json.dumps(value.to_list() if hasattr(value, "to_list") else value)


_SHARED: ContextVar[dict | None] = ContextVar("shared_connections", default=None)


@contextmanager
def one_connection() -> Iterator[None]:
    """Within the block, `run` keeps one connection per lake (its views, macros and named queries) instead of
    building one for each query: a report's 14 queries took 1.4 s, 1.1 of it listing the lake and defining the
    views. For reads of a lake nothing writes to meanwhile: the views are those of the tables found at the first
    query."""
    shared = {}
    token = _SHARED.set(shared)
    try:
        yield
    finally:
        _SHARED.reset(token)
        for con in shared.values():
            con.close()


def _connection_for(lake_url: str | None) -> duckdb.DuckDBPyConnection:
    shared = _SHARED.get()
    if shared is None:
        return connect(lake_url)
    url = resolve_lake_url(lake_url)
    if url not in shared:
        shared[url] = connect(url)
    return shared[url]


def run(sql: str, lake_url: str | None = None):
    """Run `sql` over the lake; returns a polars frame. Missing tables get a message naming the fix."""
    con = _connection_for(lake_url)
    try:
        _named_queries(con, sql)
        return con.sql(sql).pl()
    except duckdb.CatalogException as e:
        raise LookupError(f"{e}. The lake at {resolve_lake_url(lake_url)} does not have that table yet: "
                          "materialise its asset (make demo) or check LAKE_URL.") from None
    except duckdb.BinderException as e:
        if "column" not in str(e).lower():
            raise
        raise LookupError(f"{e}. If the query is right, the lake at {resolve_lake_url(lake_url)} was written by an "
                          "older version of the assets, without that column: rematerialise the stale partitions "
                          "(make demo, or the reanalysis schedule in make ui).") from None
