"""The SQL store: :class:`SqlStore` over SQLite or PostgreSQL, the one home of syncd's SQL.

It loads the planner's state in three queries, keeps the run journal and named values, holds the
run lock, and opens write transactions whose :class:`~syncd.store.sql_writer.SqlWriter` carries
out a plan.  The command line's read models and local administration are
:class:`~syncd.store.sql_reports.SqlReports` and :class:`~syncd.store.sql_reports.SqlLocalAdmin`.

Every database error leaves here as a :class:`~syncd.errors.StoreError` carrying a code.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text

from ..mirror import Mirror, MirrorAssignment, MirrorGroup, app_roles_from_json, cursor_from_json, users_from_json
from ..model import USER_ATTRIBUTES, SourceUser, StoreState, StoreTeam, StoreUser
from . import lock as locks
from . import migrate
from .engine import WRITE_OPTION, build_engine, database_errors, mask, parse_url, sqlite_path
from .protocol import Generations, Rejected, refused
from .rows import APP_ROLES_KEY, CURSOR_KEY, INTERRUPTED, PAUSED_KEY, summary_text
from .schema import (
    mirror_assignments,
    mirror_groups,
    mirror_users,
    sync_runs,
    sync_state,
    team_members,
    teams,
    users,
    utc_now,
)
from .sql_reports import SqlLocalAdmin, SqlReports
from .sql_writer import LOOKUP_CHUNK, SqlWriter, read_generations, run_end
from .statements import upsert_state

_USER_ID = users.c.id


def _user_columns() -> list[Any]:
    """The columns of a :class:`~syncd.model.StoreUser`, in :func:`_store_user`'s order."""
    return [
        users.c.id,
        users.c.email,
        users.c.name,
        users.c.user_type,
        users.c.active,
        users.c.entra_id,
        users.c.inactive_reason,
        *(users.c[attribute.field] for attribute in USER_ATTRIBUTES),
    ]


def _store_user(row: Any, fields: list[str]) -> StoreUser:
    return StoreUser(
        row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], dict(zip(fields, row[7:], strict=True))
    )


class SqlStore:
    """A syncd store at a SQLAlchemy URL (``sqlite:///path`` or ``postgresql://user@host/db``).

    Building one makes no connection; :meth:`open` also checks the database can be reached.
    """

    def __init__(self, url: str) -> None:
        self._url = parse_url(url)
        self._engine = build_engine(self._url)
        self._writer = self._engine.execution_options(**{WRITE_OPTION: True})
        self._thread_lock = threading.Lock()
        self._thread_lock_holder: dict[str, Any] = {}
        self._locks_held = 0
        self._reports = SqlReports(self._engine, self._url)
        self._local = SqlLocalAdmin(self.transaction)

    @classmethod
    def open(cls, url: str) -> SqlStore:
        """A store whose database answered; raises StoreError(STORE_UNREACHABLE) otherwise."""
        store = cls(url)
        try:
            store.ping()
        except BaseException:
            store.close()
            raise
        return store

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @property
    def url(self) -> str:
        """The database URL with its password masked, for messages."""
        return mask(self._url)

    @property
    def reports(self) -> SqlReports:
        """Users, teams, counts, runs and the audit, for the command line."""
        return self._reports

    @property
    def local(self) -> SqlLocalAdmin:
        """Local users and teams, made by hand."""
        return self._local

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for tools and tests that look beneath this API."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def ping(self) -> None:
        """Connect once; raises StoreError(STORE_UNREACHABLE) with the reason when that fails."""
        with self._read() as connection:
            connection.execute(text("SELECT 1"))

    # ----------------------------------------------------------------- connections

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with database_errors(self._url), self._engine.connect() as connection:
            yield connection

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back if anything escapes it.

        SQLite starts it with ``BEGIN IMMEDIATE``.  Database errors leave as StoreError.
        """
        with database_errors(self._url), self._writer.begin() as connection:
            yield connection

    @contextmanager
    def write(self) -> Iterator[SqlWriter]:
        """A write transaction with a :class:`~syncd.store.sql_writer.SqlWriter`; see :meth:`transaction`.

        A change the store refuses outside a savepoint rolls the whole transaction back and leaves
        as StoreError(STORE_FAILED).
        """
        try:
            with self.transaction() as connection:
                yield SqlWriter(connection, self._url)
        except Rejected as error:
            raise refused(error) from error

    # ----------------------------------------------------------------- schema

    def schema_revision(self) -> str | None:
        """The migration revision of the database; None when it was never migrated."""
        with self._read() as connection:
            return migrate.current_revision(connection)

    @staticmethod
    def head_revision() -> str:
        """The newest schema revision this syncd knows."""
        return migrate.head_revision()

    def upgrade(self) -> None:
        """Migrate the database to the newest schema (``alembic upgrade head``)."""
        with self.transaction() as connection:
            if self.dialect == "postgresql":
                locks.migration_lock(connection)
            migrate.upgrade(connection)

    def ensure_schema(self) -> None:
        """Make sure the schema is current: an empty or older database is upgraded.

        A database at a revision this syncd does not know was written by a newer syncd:
        StoreError(STORE_SCHEMA).
        """
        with self._read() as connection:
            revision = migrate.current_revision(connection)
            if revision == migrate.head_revision():
                return
            migrate.check_revision(revision, connection)
        self.upgrade()

    # ----------------------------------------------------------------- lock

    @contextmanager
    def lock(self, wait_seconds: float = 0, holder: str = "") -> Iterator[None]:
        """Hold the run lock for the block; one lock for every kind of run.

        Waits up to ``wait_seconds`` for another holder to finish, then raises
        :class:`~syncd.errors.LockedError` naming who holds it.  ``holder`` is a label recorded
        with the pid, host and time (e.g. ``"daemon"``).  Not re-entrant.
        """
        path = sqlite_path(self._url)
        if self.dialect == "postgresql":
            context = locks.advisory_lock(self._engine, wait_seconds, holder)
        elif path is not None:
            context = locks.file_lock(Path(f"{path}.lock"), wait_seconds, holder)
        else:
            context = locks.thread_lock(self._thread_lock, wait_seconds, holder, self._thread_lock_holder)
        with database_errors(self._url), context:
            self._locks_held += 1
            try:
                yield
            finally:
                self._locks_held -= 1

    # ----------------------------------------------------------------- state for the planner

    def load_state(self, *, users: bool = True) -> StoreState:
        """Every user, team and membership, read in one consistent snapshot (three queries)."""
        reader = self._engine
        if self.dialect == "postgresql":
            reader = self._engine.execution_options(isolation_level="REPEATABLE READ")
        with database_errors(self._url), reader.connect() as connection:
            user_rows = connection.execute(select(*_user_columns()).order_by(_USER_ID)).all() if users else []
            team_rows = connection.execute(
                select(teams.c.id, teams.c.name, teams.c.entra_id).order_by(teams.c.id)
            ).all()
            members: dict[int, list[int]] = defaultdict(list)
            for team_id, user_id in connection.execute(select(team_members.c.team_id, team_members.c.user_id)):
                members[team_id].append(user_id)
        fields = [attribute.field for attribute in USER_ATTRIBUTES]
        return StoreState(
            users=tuple(_store_user(row, fields) for row in user_rows),
            teams=tuple(
                StoreTeam(team_id, name, entra_id, frozenset(members.get(team_id, ())))
                for team_id, name, entra_id in team_rows
            ),
        )

    def load_users(
        self, *, entra_ids: Collection[str] = (), emails: Collection[str] = (), ids: Collection[int] = ()
    ) -> list[StoreUser]:
        found: dict[int, StoreUser] = {}
        query = select(*_user_columns())
        fields = [attribute.field for attribute in USER_ATTRIBUTES]
        lookups: tuple[tuple[Any, list[Any]], ...] = (
            (users.c.entra_id, sorted(set(entra_ids))),
            (users.c.email, sorted(set(emails))),
            (users.c.id, sorted(set(ids))),
        )
        with database_errors(self._url), self._engine.connect() as connection:
            for column, wanted in lookups:
                for start in range(0, len(wanted), LOOKUP_CHUNK):
                    for row in connection.execute(query.where(column.in_(wanted[start : start + LOOKUP_CHUNK]))):
                        found[row[0]] = _store_user(row, fields)
        return [found[key] for key in sorted(found)]

    def active_admins(self, limit: int) -> list[StoreUser]:
        query = (
            select(*_user_columns())
            .where(users.c.active.is_(True), users.c.user_type == "admin")
            .order_by(users.c.id)
            .limit(limit)
        )
        fields = [attribute.field for attribute in USER_ATTRIBUTES]
        with database_errors(self._url), self._engine.connect() as connection:
            return [_store_user(row, fields) for row in connection.execute(query)]

    def managed_seats(self) -> int:
        query = select(func.count()).select_from(users).where(users.c.active.is_(True), users.c.entra_id.is_not(None))
        with database_errors(self._url), self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def generations(self) -> Generations:
        with self._read() as connection:
            return read_generations(connection)

    def load_mirror(self, *, users: bool = True) -> Mirror | None:
        """The stored mirror, read in one consistent snapshot; None without a readable cursor."""
        reader = self._engine
        if self.dialect == "postgresql":
            reader = self._engine.execution_options(isolation_level="REPEATABLE READ")
        with database_errors(self._url), reader.connect() as connection:
            values = dict(
                connection.execute(
                    select(sync_state.c.key, sync_state.c.value).where(
                        sync_state.c.key.in_([CURSOR_KEY, APP_ROLES_KEY])
                    )
                ).all()
            )
            cursor = cursor_from_json(values[CURSOR_KEY]) if values.get(CURSOR_KEY) else None
            if cursor is None:
                return None
            shown: list[tuple[str, str]] = []
            hidden: set[str] = set()
            rows = select(mirror_users.c.id, mirror_users.c.properties, mirror_users.c.hidden)
            for user_id, properties, is_hidden in connection.execute(
                rows if users else rows.where(mirror_users.c.hidden.is_(True))
            ):
                if is_hidden:
                    hidden.add(user_id)
                else:
                    shown.append((user_id, properties))
            visible = users_from_json(shown)
            groups = {
                group_id: MirrorGroup(group_id, name, frozenset(json.loads(members)))
                for group_id, name, members in connection.execute(
                    select(mirror_groups.c.id, mirror_groups.c.display_name, mirror_groups.c.member_ids)
                )
            }
            assignments = {
                row.id: MirrorAssignment(row.id, row.principal_id, row.principal_type, row.app_role_id)
                for row in connection.execute(select(mirror_assignments))
            }
        return Mirror(
            visible, frozenset(hidden), groups, assignments, cursor, app_roles_from_json(values.get(APP_ROLES_KEY))
        )

    def mirror_users(self, user_ids: Collection[str]) -> dict[str, SourceUser]:
        wanted = sorted(set(user_ids))
        rows: list[tuple[str, str]] = []
        query = select(mirror_users.c.id, mirror_users.c.properties).where(mirror_users.c.hidden.is_(False))
        with database_errors(self._url), self._engine.connect() as connection:
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                chunk = wanted[start : start + LOOKUP_CHUNK]
                rows.extend(
                    (user_id, text) for user_id, text in connection.execute(query.where(mirror_users.c.id.in_(chunk)))
                )
        return users_from_json(rows)

    # ----------------------------------------------------------------- runs

    def begin_run(self, trigger: str, dry_run: bool = False) -> int:
        """Record the start of a run and return its id.

        A dry run is recorded with status ``dry_run``, any other run as ``running``.  Called while
        holding :meth:`lock`, it first marks runs left ``running`` by a process that died as failed
        with no changes, which is true: an apply commits its run's outcome with its data
        (:meth:`finish_run` with ``connection``), so a run still ``running`` applied nothing.
        """
        now = utc_now()
        with self.transaction() as connection:
            if not dry_run and self._locks_held:
                connection.execute(
                    sync_runs.update()
                    .where(sync_runs.c.status == "running")
                    .values(status="failed", finished_at=now, changes=0, message=INTERRUPTED)
                )
            run_id = connection.execute(
                sync_runs.insert()
                .returning(sync_runs.c.id)
                .values(
                    started_at=now,
                    status="dry_run" if dry_run else "running",
                    trigger=trigger,
                    changes=0,
                    errors=0,
                    summary=None,
                    message="",
                )
            ).scalar_one()
        return int(run_id)

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        changes: int,
        errors: int,
        summary: dict[str, Any],
        message: str = "",
        plan: str | None = None,
        graph_requests: int | None = None,
    ) -> None:
        """Record how run ``run_id`` ended, in a transaction of its own.  ``status`` is one of
        :data:`~syncd.runs.RUN_STATUSES`.  An apply records its run's end in its own transaction
        instead (:meth:`SqlWriter.finish_run`), so the record commits with the data."""
        values = run_end(
            status,
            changes=changes,
            errors=errors,
            summary=summary,
            message=message,
            plan=plan,
            graph_requests=graph_requests,
        )
        with self.transaction() as connection:
            connection.execute(sync_runs.update().where(sync_runs.c.id == run_id).values(**values))

    def fail_run(
        self,
        run_id: int,
        message: str,
        *,
        summary: dict[str, Any] | None = None,
        graph_requests: int | None = None,
    ) -> bool:
        """Record run ``run_id`` as failed with no changes, unless it already recorded its outcome.

        False when it had: its outcome (and its data, committed with it) stands.  Whatever ends a
        run - an error, an interrupt, a signal - can thus never relabel one that was applied.
        """
        with self.transaction() as connection:
            updated = connection.execute(
                sync_runs.update()
                .where(sync_runs.c.id == run_id, sync_runs.c.status == "running")
                .values(
                    finished_at=utc_now(),
                    status="failed",
                    changes=0,
                    errors=1,
                    summary=summary_text(summary),
                    message=message,
                    graph_requests=graph_requests,
                )
            ).rowcount
        return bool(updated)

    # ----------------------------------------------------------------- named values

    def get_state(self, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        with self._read() as connection:
            return connection.execute(select(sync_state.c.value).where(sync_state.c.key == key)).scalar()

    def set_state(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing what was there."""
        with self.transaction() as connection:
            connection.execute(upsert_state(self.dialect, key, value))

    def is_paused(self) -> bool:
        return self.get_state(PAUSED_KEY) == "true"

    def set_paused(self, paused: bool) -> None:
        self.set_state(PAUSED_KEY, "true" if paused else "false")
