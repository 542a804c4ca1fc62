"""Opening a database: URL rules, connection settings, and turning driver errors into StoreErrors.

SQLite (``sqlite:///path``, the default) runs in WAL mode with foreign keys on and a busy timeout;
syncd emits its own ``BEGIN`` so that savepoints and transactional DDL behave, and write
transactions start with ``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock.
PostgreSQL is reached through psycopg 3; ``postgresql://`` and ``postgres://`` are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, exc, make_url
from sqlalchemy.pool import StaticPool

from ..errors import StoreError

BUSY_TIMEOUT_MS = 30_000
CACHE_KIB = 65_536
"""SQLite page cache per connection: large syncs write far more than the default 2 MiB."""
CONNECT_TIMEOUT_SECONDS = 10
WRITE_OPTION = "syncd_write"
"""Execution option marking a connection whose transactions write (SQLite: BEGIN IMMEDIATE)."""


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL syncd uses for ``store.url``; raises StoreError for anything unsupported."""
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):
        raise StoreError(
            f"store.url {mask_text(url)!r} is not a database URL (sqlite:///PATH or postgresql://…)",
            code="STORE_UNREACHABLE",
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    raise StoreError(
        f"store.url: unsupported database {backend!r} in {mask(parsed)}; "
        "use sqlite:///PATH or postgresql://USER@HOST/DATABASE",
        code="STORE_UNREACHABLE",
    )


def mask_text(url: str) -> str:
    """A URL that did not parse, with whatever stands between ``user:`` and the last ``@`` hidden."""
    return re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)


def mask(url: URL) -> str:
    """The URL with its password replaced by ``***``, for messages and logs."""
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def build_engine(url: URL) -> Engine:
    """An engine for ``url`` with syncd's connection settings (no connection is made yet)."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=2,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


def _sqlite_engine(url: URL) -> Engine:
    path = sqlite_path(url)
    if path is not None and not path.expanduser().resolve().parent.is_dir():
        raise StoreError(
            f"cannot open the SQLite database {path}: the directory "
            f"{path.expanduser().resolve().parent} does not exist",
            code="STORE_UNREACHABLE",
        )
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}}
    if path is None:
        options["poolclass"] = StaticPool
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # syncd emits BEGIN itself (see on_begin)
        cursor = dbapi_connection.cursor()
        try:
            if path is not None:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA cache_size={-CACHE_KIB}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


_PSYCOPG_CONNECTION_ERRORS = frozenset(
    {"OperationalError", "ConnectionTimeout", "AdminShutdown", "CannotConnectNow", "ConnectionFailure"}
)


def error_code(error: exc.SQLAlchemyError) -> str:
    """STORE_UNREACHABLE, STORE_SCHEMA or STORE_FAILED for a database error."""
    original = getattr(error, "orig", None) or error
    name = type(original).__name__
    lowered = str(original).lower()
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return "STORE_UNREACHABLE"
    if isinstance(error, (exc.TimeoutError, exc.InterfaceError)):
        return "STORE_UNREACHABLE"
    if type(original).__module__.startswith("psycopg") and name in _PSYCOPG_CONNECTION_ERRORS:
        return "STORE_UNREACHABLE"
    if "unable to open database" in lowered:
        return "STORE_UNREACHABLE"
    if name in ("UndefinedTable", "UndefinedColumn") or "no such table" in lowered or "no such column" in lowered:
        return "STORE_SCHEMA"
    return "STORE_FAILED"


def _reason(error: exc.SQLAlchemyError) -> str:
    """The driver's first line, with SQLite's error name when it says more (``SQLITE_IOERR_WRITE``)."""
    original = getattr(error, "orig", None) or error
    reason = _first_line(original)
    name = getattr(original, "sqlite_errorname", None)
    if isinstance(name, str) and name not in ("SQLITE_ERROR", "SQLITE_OK") and name not in reason:
        reason = f"{reason} ({name})"
    return reason


def root_cause(error: exc.SQLAlchemyError) -> exc.SQLAlchemyError:
    """The database error that started it all.

    A failure can make the clean-up after it fail too, and the second error then hides the first:
    SQLite rolls back the whole transaction when the database or disk is full, so the savepoint
    around the statement is gone and its rollback answers "no such savepoint".  The earliest
    database error in the chain of errors raised while handling one another is the reason.
    """
    cause = error
    seen: set[int] = set()
    context = error.__context__
    while context is not None and id(context) not in seen and isinstance(context, Exception):
        seen.add(id(context))
        if isinstance(context, exc.DBAPIError):
            cause = context
        context = context.__context__
    return cause


def translate(error: exc.SQLAlchemyError, url: URL) -> StoreError:
    """A StoreError with a code and a one-line message (no SQL, no traceback, no password)."""
    error = root_cause(error)
    reason = _reason(error)
    if url.password:
        reason = reason.replace(str(url.password), "***")
    code = error_code(error)
    if code == "STORE_UNREACHABLE":
        return StoreError(f"cannot reach the database {mask(url)}: {reason}", code=code)
    if code == "STORE_SCHEMA":
        return StoreError(
            f"the database schema is missing or out of date ({reason}); run `syncd db upgrade`", code=code
        )
    return StoreError(f"database error: {reason}", code=code)


def os_error(error: OSError, what: str = "database error") -> StoreError:
    """A StoreError for a failed file or socket operation: a full disk, a file grown past its limit."""
    reason = error.strerror or str(error) or type(error).__name__
    if error.filename:
        reason = f"{reason}: {error.filename}"
    code = "STORE_UNREACHABLE" if isinstance(error, ConnectionError) else "STORE_FAILED"
    return StoreError(f"{what}: {reason}", code=code)


@contextmanager
def database_errors(url: URL) -> Iterator[None]:
    """Re-raise SQLAlchemy, driver and operating system errors raised inside the block as StoreErrors."""
    try:
        yield
    except exc.SQLAlchemyError as error:
        raise translate(error, url) from error
    except OSError as error:
        raise os_error(error) from error
