"""The syncd store: one :class:`Store` object over a SQL database (SQLite or PostgreSQL).

It loads the current state for the planner in a handful of queries, records runs and their
audit, keeps small named values (``paused``), creates local users and teams for the CLI, and
holds the lock that lets only one run at a time write.  Applying a plan lives in
:mod:`syncd.apply`, which writes through :meth:`Store.transaction`.

Every database error leaves here as a :class:`~syncd.errors.StoreError` carrying a code.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select, text

from ..errors import InputError, StoreError
from ..model import (
    BUILTIN_USER_TYPES,
    NAME_LENGTH,
    USER_ATTRIBUTES,
    StoreState,
    StoreTeam,
    StoreUser,
    email_problem,
    escape,
    is_custom_role_id,
    unstorable,
)
from ..runs import RUN_STATUSES, SUCCESS_STATUSES, RunStatus
from . import lock as locks
from . import migrate
from .engine import WRITE_OPTION, build_engine, database_errors, mask, parse_url, sqlite_path
from .schema import audit, sync_runs, sync_state, team_members, teams, users, utc_now
from .statements import upsert_state

PAUSED_KEY = "paused"
INTERRUPTED = (
    "interrupted: the run ended without recording its outcome (its process was killed, or the database "
    "failed); nothing of it was applied"
)
"""What a run left ``running`` is relabelled with.  A run's outcome commits with its data, so a run
still ``running`` never committed any of it."""


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


def _json(value: str | None) -> Any:
    return json.loads(value) if value else None


class Store:
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

    @classmethod
    def open(cls, url: str) -> Store:
        """A store whose database answered; raises StoreError(STORE_UNREACHABLE) otherwise."""
        store = cls(url)
        try:
            store.ping()
        except BaseException:
            store.close()
            raise
        return store

    def __enter__(self) -> Store:
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

    def load_state(self) -> StoreState:
        """Every user, team and membership, read in one consistent snapshot (three queries)."""
        reader = self._engine
        if self.dialect == "postgresql":
            reader = self._engine.execution_options(isolation_level="REPEATABLE READ")
        with database_errors(self._url), reader.connect() as connection:
            user_rows = connection.execute(
                select(
                    users.c.id,
                    users.c.email,
                    users.c.name,
                    users.c.user_type,
                    users.c.active,
                    users.c.entra_id,
                    users.c.inactive_reason,
                    *(users.c[attribute.field] for attribute in USER_ATTRIBUTES),
                ).order_by(users.c.id)
            ).all()
            team_rows = connection.execute(
                select(teams.c.id, teams.c.name, teams.c.entra_id).order_by(teams.c.id)
            ).all()
            members: dict[int, list[int]] = defaultdict(list)
            for team_id, user_id in connection.execute(select(team_members.c.team_id, team_members.c.user_id)):
                members[team_id].append(user_id)
        return StoreState(
            users=tuple(
                StoreUser(
                    row.id,
                    row.email,
                    row.name,
                    row.user_type,
                    bool(row.active),
                    row.entra_id,
                    row.inactive_reason,
                    {attribute.field: row._mapping[attribute.field] for attribute in USER_ATTRIBUTES},
                )
                for row in user_rows
            ),
            teams=tuple(
                StoreTeam(row.id, row.name, row.entra_id, frozenset(members.get(row.id, ()))) for row in team_rows
            ),
        )

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
        connection: Connection | None = None,
    ) -> None:
        """Record how run ``run_id`` ended.  ``status`` is one of :data:`~syncd.store.schema.RUN_STATUSES`.

        With ``connection`` (an apply's transaction) the outcome is written in that transaction, so
        it commits with the run's data or not at all; the run must then still be ``running``
        (StoreError otherwise, which rolls the transaction back).
        """
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}")
        values = {
            "finished_at": utc_now(),
            "status": RunStatus(status).value,  # a plain str: drivers adapt enums by name
            "changes": changes,
            "errors": errors,
            "summary": json.dumps(summary, sort_keys=True, default=str),
            "message": message,
        }
        if connection is None:
            with self.transaction() as own:
                own.execute(sync_runs.update().where(sync_runs.c.id == run_id).values(**values))
            return
        with database_errors(self._url):
            updated = connection.execute(
                sync_runs.update().where(sync_runs.c.id == run_id, sync_runs.c.status == "running").values(**values)
            ).rowcount
        if updated != 1:
            raise StoreError(f"run {run_id} is no longer running; its changes are not applied", code="STORE_FAILED")

    def fail_run(self, run_id: int, message: str, *, summary: dict[str, Any] | None = None) -> bool:
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
                    summary=json.dumps(summary or {}, sort_keys=True, default=str),
                    message=message,
                )
            ).rowcount
        return bool(updated)

    @staticmethod
    def _run_dict(row: Any) -> dict[str, Any]:
        return {
            "id": row.id,
            "status": row.status,
            "trigger": row.trigger,
            "started_at": _iso(row.started_at),
            "finished_at": _iso(row.finished_at),
            "changes": row.changes,
            "errors": row.errors,
            "summary": _json(row.summary),
            "message": row.message,
        }

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs, newest first: id, status, trigger, started_at, finished_at (ISO 8601),
        changes, errors, summary, message."""
        with self._read() as connection:
            rows = connection.execute(select(sync_runs).order_by(sync_runs.c.id.desc()).limit(limit)).all()
        return [self._run_dict(row) for row in rows]

    def run(self, run_id: int) -> dict[str, Any] | None:
        """One run as in :meth:`runs`, or None when there is no such run."""
        with self._read() as connection:
            row = connection.execute(select(sync_runs).where(sync_runs.c.id == run_id)).first()
        return None if row is None else self._run_dict(row)

    def last_success_at(self) -> datetime | None:
        """When the newest run that read all of Graph and applied its plan ended (any process's)."""
        with self._read() as connection:
            return connection.execute(
                select(func.max(sync_runs.c.finished_at)).where(sync_runs.c.status.in_(SUCCESS_STATUSES))
            ).scalar()

    def last_run(self) -> dict[str, Any] | None:
        """The newest run as in :meth:`runs`, or None before the first run."""
        latest = self.runs(limit=1)
        return latest[0] if latest else None

    def audit(self, run_id: int | None = None, limit: int | None = 1000) -> list[dict[str, Any]]:
        """Audit rows of run ``run_id`` in the order they were written (None: the last run that was
        not a dry run).  Each row: id, run_id, at, op, object_kind, target, entra_id, before,
        after, status, error_code, message."""
        with self._read() as connection:
            if run_id is None:
                run_id = connection.execute(
                    select(func.max(sync_runs.c.id)).where(sync_runs.c.status != "dry_run")
                ).scalar()
                if run_id is None:
                    return []
            rows = connection.execute(
                select(audit).where(audit.c.run_id == run_id).order_by(audit.c.id).limit(limit)
            ).all()
        return [
            {
                "id": row.id,
                "run_id": row.run_id,
                "at": _iso(row.at),
                "op": row.op,
                "object_kind": row.object_kind,
                "target": row.target,
                "entra_id": row.entra_id,
                "before": _json(row.before),
                "after": _json(row.after),
                "status": row.status,
                "error_code": row.error_code,
                "message": row.message,
            }
            for row in rows
        ]

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

    # ----------------------------------------------------------------- listing

    def counts(self) -> dict[str, int]:
        """active_users (the seats in use), inactive_users, teams."""
        with self._read() as connection:
            active, total = connection.execute(
                select(func.coalesce(func.sum(case((users.c.active, 1), else_=0)), 0), func.count()).select_from(users)
            ).one()
            team_count = connection.execute(select(func.count()).select_from(teams)).scalar_one()
        return {"active_users": int(active), "inactive_users": int(total) - int(active), "teams": int(team_count)}

    def list_users(self) -> list[dict[str, Any]]:
        """Every user sorted by email: email, name, title, active, user_type, entra_id, managed,
        inactive_reason."""
        with self._read() as connection:
            rows = connection.execute(select(users).order_by(users.c.email)).all()
        return [self._user_dict(row) for row in rows]

    @staticmethod
    def _user_dict(row: Any) -> dict[str, Any]:
        return {
            "email": row.email,
            "name": row.name,
            "title": row.title,
            "active": bool(row.active),
            "user_type": row.user_type,
            "entra_id": row.entra_id,
            "managed": row.entra_id is not None,
            "inactive_reason": row.inactive_reason,
        }

    def list_teams(self) -> list[dict[str, Any]]:
        """Every team sorted by name: name, entra_id, managed, members (member emails, sorted)."""
        with self._read() as connection:
            team_rows = connection.execute(select(teams).order_by(teams.c.name, teams.c.id)).all()
            members: dict[int, list[str]] = defaultdict(list)
            for team_id, email in connection.execute(
                select(team_members.c.team_id, users.c.email)
                .join(users, users.c.id == team_members.c.user_id)
                .order_by(users.c.email)
            ):
                members[team_id].append(email)
        return [
            {
                "name": row.name,
                "entra_id": row.entra_id,
                "managed": row.entra_id is not None,
                "members": members.get(row.id, []),
            }
            for row in team_rows
        ]

    # ----------------------------------------------------------------- local objects

    def create_local_user(self, email: str, name: str, user_type: str = "member") -> dict[str, Any]:
        """Create an active user that no Entra user manages; returns it as in :meth:`list_users`.

        Raises InputError for an invalid email or type, or an email another user already has.
        """
        email = email.strip().lower()
        name = " ".join(name.split())
        if (problem := email_problem(email)) is not None:
            raise InputError(f"the email {escape(email)!r} {problem}")
        if not name:
            raise InputError("a user needs a name")
        if (problem := unstorable(name, NAME_LENGTH)) is not None:
            raise InputError(f"the name {problem}")
        if user_type not in BUILTIN_USER_TYPES and not is_custom_role_id(user_type):
            raise InputError(
                f"user type {escape(user_type)!r} is not one of {', '.join(BUILTIN_USER_TYPES)} "
                "or a custom role id (1 to 32 ASCII digits)"
            )
        now = utc_now()
        with self.transaction() as connection:
            if connection.execute(select(users.c.id).where(users.c.email == email)).first() is not None:
                raise InputError(f"a user with email {email} already exists")
            connection.execute(
                users.insert().values(
                    email=email,
                    name=name,
                    title=None,
                    user_type=user_type,
                    active=True,
                    entra_id=None,
                    inactive_reason=None,
                    created_at=now,
                    updated_at=now,
                    deactivated_at=None,
                )
            )
            row = connection.execute(select(users).where(users.c.email == email)).one()
        return self._user_dict(row)

    def create_local_team(self, name: str, member_emails: Sequence[str] = ()) -> dict[str, Any]:
        """Create a team that no Entra group manages, with the given active users as members.

        Raises InputError naming every email that matches no user (nothing is written then), an
        inactive member, or a name another team already has.
        """
        name = " ".join(name.split())
        if not name:
            raise InputError("a team needs a name")
        if (problem := unstorable(name, NAME_LENGTH)) is not None:
            raise InputError(f"the team name {problem}")
        emails = sorted({email.strip().lower() for email in member_emails})
        now = utc_now()
        with self.transaction() as connection:
            if connection.execute(select(teams.c.id).where(teams.c.name == name)).first() is not None:
                raise InputError(f"a team named {name!r} already exists")
            found = (
                {
                    row.email: row
                    for row in connection.execute(
                        select(users.c.id, users.c.email, users.c.active).where(users.c.email.in_(emails))
                    )
                }
                if emails
                else {}
            )
            unknown = [email for email in emails if email not in found]
            if unknown:
                raise InputError(f"no user with email {', '.join(unknown)}", code="NOT_FOUND")
            inactive = [email for email in emails if not found[email].active]
            if inactive:
                raise InputError(f"inactive users cannot join a team: {', '.join(inactive)}")
            team_id = connection.execute(
                teams.insert().returning(teams.c.id).values(name=name, entra_id=None, created_at=now, updated_at=now)
            ).scalar_one()
            if emails:
                connection.execute(
                    team_members.insert(),
                    [
                        {
                            "team_id": team_id,
                            "user_id": found[email].id,
                            "source": "local",
                            "added_at": now,
                            "added_by_run": None,
                        }
                        for email in emails
                    ],
                )
        return {"name": name, "entra_id": None, "managed": False, "members": emails}
