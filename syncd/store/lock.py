"""The one lock every syncd run takes (cli sync, daemon cycle, on-demand), across processes.

* SQLite: an exclusive ``flock`` on ``<database>.lock`` beside the database file.  The file holds
  who has the lock (pid, host, since) for the message a second run shows.
* PostgreSQL: a session-level advisory lock on a dedicated connection, keyed by the schema the
  store lives in, so stores in different schemas of one database do not block each other.  Who
  holds it is recorded in ``sync_state`` under ``lock_holder``.

Either way the operating system or the server releases the lock when its holder dies, so a
crashed run never blocks the next one.  The lock is not re-entrant.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, exc, select, text

from ..errors import LockedError, StoreError
from .engine import os_error
from .schema import sync_state, utc_now
from .statements import upsert_state

POLL_SECONDS = 0.1
HOLDER_KEY = "lock_holder"
ADVISORY_CLASS_ID = 0x73796E63  # "sync": the first half of syncd's advisory lock key
MIGRATION_CLASS_ID = ADVISORY_CLASS_ID + 1


def holder_info(holder: str) -> dict[str, Any]:
    """What a lock holder records about itself."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": utc_now().isoformat(timespec="seconds"),
        "holder": holder,
    }


def locked_message(info: dict[str, Any] | None) -> str:
    if not info:
        return "another syncd run holds the lock (its holder did not record itself yet)"
    message = (
        f"another syncd run holds the lock: pid {info.get('pid')} on host {info.get('host')} since {info.get('since')}"
    )
    return f"{message} ({info['holder']})" if info.get("holder") else message


def _poll(try_acquire: Callable[[], bool], wait_seconds: float) -> bool:
    """Call ``try_acquire`` until it succeeds or ``wait_seconds`` have passed."""
    deadline = time.monotonic() + max(0.0, wait_seconds)
    while True:
        if try_acquire():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(POLL_SECONDS, remaining))


# --------------------------------------------------------------------------- SQLite: a lock file


def _read_holder_file(path: Path) -> dict[str, Any] | None:
    try:
        content = path.read_text(encoding="utf-8")
        info = json.loads(content) if content.strip() else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


@contextmanager
def file_lock(path: Path, wait_seconds: float, holder: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the block."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise StoreError(f"cannot open the lock file {path}: {error.strerror}", code="STORE_UNREACHABLE") from None

    def try_acquire() -> bool:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        if not _poll(try_acquire, wait_seconds):
            raise LockedError(locked_message(_read_holder_file(path)))
        try:
            try:
                os.ftruncate(descriptor, 0)
                os.pwrite(descriptor, json.dumps(holder_info(holder)).encode(), 0)
            except OSError as error:  # a full disk: the store beside it cannot grow either
                raise os_error(error, f"cannot write the lock file {path}") from None
            yield
        finally:
            with suppress(OSError):
                os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


# --------------------------------------------------------------------------- in-memory SQLite


@contextmanager
def thread_lock(lock: threading.Lock, wait_seconds: float, holder: str, record: dict[str, Any]) -> Iterator[None]:
    """The lock of an in-memory database, which only this process can see."""
    acquired = lock.acquire(timeout=wait_seconds) if wait_seconds > 0 else lock.acquire(blocking=False)
    if not acquired:
        raise LockedError(locked_message(record))
    record.clear()
    record.update(holder_info(holder))
    try:
        yield
    finally:
        record.clear()
        lock.release()


# --------------------------------------------------------------------------- PostgreSQL: advisory lock


def _object_id(schema: str) -> int:
    value = zlib.crc32(schema.encode())
    return value - 2**32 if value >= 2**31 else value


def _read_holder_row(connection: Connection) -> dict[str, Any] | None:
    try:
        value = connection.execute(select(sync_state.c.value).where(sync_state.c.key == HOLDER_KEY)).scalar()
        info = json.loads(value) if value else None
    except (exc.DBAPIError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _write_holder_row(connection: Connection, info: dict[str, Any] | None) -> None:
    try:
        if info is None:
            connection.execute(sync_state.delete().where(sync_state.c.key == HOLDER_KEY))
        else:
            connection.execute(upsert_state(connection.dialect.name, HOLDER_KEY, json.dumps(info)))
    except exc.ProgrammingError:
        pass  # no schema yet: the lock still holds, only its holder goes unrecorded


@contextmanager
def advisory_lock(engine: Engine, wait_seconds: float, holder: str) -> Iterator[None]:
    """Hold a session-level advisory lock on a dedicated autocommit connection for the block."""
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        key = _schema_key(connection, ADVISORY_CLASS_ID)

        def try_acquire() -> bool:
            return bool(connection.execute(text("SELECT pg_try_advisory_lock(:class_id, :object_id)"), key).scalar())

        if not _poll(try_acquire, wait_seconds):
            raise LockedError(locked_message(_read_holder_row(connection)))
        _write_holder_row(connection, holder_info(holder))
        try:
            yield
        finally:
            try:
                _write_holder_row(connection, None)
                connection.execute(text("SELECT pg_advisory_unlock(:class_id, :object_id)"), key)
            except exc.DBAPIError:
                connection.invalidate()  # the session is gone, and the server released its lock with it
    finally:
        connection.close()


def _schema_key(connection: Connection, class_id: int) -> dict[str, int]:
    schema = connection.execute(text("SELECT current_schema()")).scalar() or ""
    return {"class_id": class_id, "object_id": _object_id(schema)}


def migration_lock(connection: Connection) -> None:
    """PostgreSQL: wait for any other schema upgrade of this store; held until the transaction ends."""
    connection.execute(
        text("SELECT pg_advisory_xact_lock(:class_id, :object_id)"), _schema_key(connection, MIGRATION_CLASS_ID)
    )
