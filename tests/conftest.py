"""Shared database fixtures: every store test runs on SQLite and on PostgreSQL, the contract tests
on the in-memory store too.

PostgreSQL is the server at 127.0.0.1:5432 (trust auth, database ``test``, user ``postgres``).
Each test gets a fresh schema of its own, named uniquely and reached through ``search_path`` in
the URL, so tests run in parallel (pytest-xdist) without meeting.  When the server cannot be
reached the PostgreSQL tests are skipped, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from syncd.model import StoreState
from syncd.store import MemoryStore, SqlStore, Store
from syncd.store.schema import team_members, teams, users, utc_now

POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

_unreachable: list[str] = []


def _postgres_problem() -> str | None:
    """Why the PostgreSQL server cannot be used, or None when it can (asked once per process)."""
    if not _unreachable:
        try:
            with psycopg.connect(POSTGRES_DSN):
                _unreachable.append("")
        except psycopg.Error as error:
            _unreachable.append(str(error).strip() or type(error).__name__)
    return _unreachable[0] or None


def _require_postgres() -> None:
    problem = _postgres_problem()
    if problem is None:
        return
    message = f"PostgreSQL at 127.0.0.1:5432 is unreachable: {problem}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL for a fresh, empty PostgreSQL schema, dropped after the test."""
    _require_postgres()
    schema = f"syncd_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A URL for a SQLite database file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'syncd.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request) -> str:
    """An empty database on each backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@contextmanager
def _empty_sql_store(url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(url)
    opened.ensure_schema()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def sql_store(store_url) -> Iterator[SqlStore]:
    """A SQL store at the newest schema, empty, on SQLite and on PostgreSQL."""
    with _empty_sql_store(store_url) as opened:
        yield opened


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "memory"])
def store(request) -> Iterator[Store]:
    """An empty store on each backend: SQLite, PostgreSQL and memory (the store contract)."""
    if request.param == "memory":
        yield MemoryStore()
        return
    with _empty_sql_store(str(request.getfixturevalue(f"{request.param}_url"))) as opened:
        yield opened


def table_rows(store: Store, table: str) -> list[dict]:
    """Every row of one table (``users``, ``teams``, ``team_members``), for a test to look beneath
    the contract: a SQL store's table, a memory store's rows."""
    if isinstance(store, MemoryStore):
        tables = store._tables
        if table == "team_members":
            return [{"team_id": t, "user_id": u, **row} for (t, u), row in tables.members.items()]
        return list(getattr(tables, table).values())
    assert isinstance(store, SqlStore)
    with store.engine.connect() as connection:
        return [
            dict(row._mapping)
            for row in connection.execute(
                {"users": users, "teams": teams, "team_members": team_members}[table].select()
            )
        ]


def seed_state(store: Store, state: StoreState) -> None:
    """Write ``state`` into an empty store exactly, ids included (memberships get source "local")."""
    if isinstance(store, MemoryStore):
        store.seed(state)
        return
    assert isinstance(store, SqlStore)
    now = utc_now()
    with store.transaction() as connection:
        if state.users:
            connection.execute(
                users.insert(),
                [
                    {
                        "id": u.id,
                        "email": u.email,
                        "name": u.name,
                        **u.attributes,
                        "user_type": u.user_type,
                        "active": u.active,
                        "entra_id": u.entra_id,
                        "inactive_reason": u.inactive_reason,
                        "created_at": now,
                        "updated_at": now,
                        "deactivated_at": None if u.active else now,
                    }
                    for u in state.users
                ],
            )
        if state.teams:
            connection.execute(
                teams.insert(),
                [
                    {"id": t.id, "name": t.name, "entra_id": t.entra_id, "created_at": now, "updated_at": now}
                    for t in state.teams
                ],
            )
        rows = [
            {"team_id": t.id, "user_id": member, "source": "local", "added_at": now, "added_by_run": None}
            for t in state.teams
            for member in sorted(t.member_ids)
        ]
        if rows:
            connection.execute(team_members.insert(), rows)
        if store.dialect == "postgresql":
            for table in (users, teams):
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"coalesce((SELECT max(id) FROM {table.name}), 0) + 1, false)"
                )


@pytest.fixture
def seed() -> Callable[[Store, StoreState], None]:
    """``seed(store, state)``: write a StoreState into an empty store, ids included."""
    return seed_state
