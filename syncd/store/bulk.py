"""Bulk inserts at driver speed, for the hundreds of thousands of rows a first sync writes.

SQLAlchemy's ``execute(insert, [dict, ...])`` processes every value of every row in Python;
:func:`insert_many` does not.  On SQLite the statement is built once and the rows go straight to
the driver's ``executemany``; on PostgreSQL they are streamed with ``COPY … FROM STDIN``.  Values
that are the same for every row (a timestamp, the run id) are passed once as ``constants`` and
converted by their column's type; the per-row values must be ones the driver takes as they are
(str, int, bool, None).

Driver errors leave as SQLAlchemy errors (IntegrityError and so on), exactly as from
``Connection.execute``, so callers handle both paths alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, exc


def insert_many(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """INSERT one row per item of ``rows`` (values in the order of ``columns``) plus ``constants``."""
    dialect = connection.dialect
    constants = dict(constants or {})
    postgres = dialect.name == "postgresql"
    fixed = []
    for name, value in constants.items():
        processor = None if postgres else table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        fixed.append(processor(value) if processor is not None and value is not None else value)
    tail = tuple(fixed)
    parameters = [(*row, *tail) for row in rows]
    if not parameters:
        return
    preparer = dialect.identifier_preparer
    names = [*columns, *constants]
    target = f"{preparer.format_table(table)} ({', '.join(preparer.quote(name) for name in names)})"
    if postgres:
        _copy(connection, f"COPY {target} FROM STDIN", parameters)
    else:
        connection.exec_driver_sql(f"INSERT INTO {target} VALUES ({', '.join('?' for _ in names)})", parameters)


def _copy(connection: Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: stream ``rows`` through COPY on the connection's own (transactional) session."""
    dialect = connection.dialect
    driver: Any = connection.connection.dbapi_connection  # a psycopg connection
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except dialect.loaded_dbapi.Error as error:
        raise exc.DBAPIError.instance(statement, None, error, dialect.loaded_dbapi.Error, dialect=dialect) from error
