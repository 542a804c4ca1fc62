"""What the command line reads from a SQL store, and the local users and teams it makes by hand.

:class:`SqlReports` and :class:`SqlLocalAdmin` implement :class:`~syncd.store.protocol.Reports` and
:class:`~syncd.store.protocol.LocalAdmin`; they share the row shapes and the checks of
:mod:`syncd.store.rows` with the in-memory store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select
from sqlalchemy.engine import URL

from ..errors import InputError
from ..runs import SUCCESS_STATUSES
from .engine import database_errors
from .protocol import STATE_GENERATION_KEY, new_generation
from .rows import (
    CURSOR_KEY,
    INCREMENTAL_AT_KEY,
    audit_dict,
    check_members,
    local_team,
    local_user,
    problem_summary,
    reads_summary,
    refused_rows,
    run_dict,
    user_dict,
)
from .schema import audit, sync_runs, sync_state, team_members, teams, users, utc_now
from .statements import upsert_state


class SqlReports:
    """Users, teams, counts, runs and the audit of a SQL store."""

    def __init__(self, engine: Engine, url: URL) -> None:
        self._engine = engine
        self._url = url

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with database_errors(self._url), self._engine.connect() as connection:
            yield connection

    def users(self) -> list[dict[str, Any]]:
        with self._read() as connection:
            rows = connection.execute(select(users).order_by(users.c.email)).all()
        return [user_dict(row) for row in rows]

    def teams(self) -> list[dict[str, Any]]:
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

    def counts(self) -> dict[str, int]:
        with self._read() as connection:
            active, total = connection.execute(
                select(func.coalesce(func.sum(case((users.c.active, 1), else_=0)), 0), func.count()).select_from(users)
            ).one()
            team_count = connection.execute(select(func.count()).select_from(teams)).scalar_one()
        return {"active_users": int(active), "inactive_users": int(total) - int(active), "teams": int(team_count)}

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._read() as connection:
            rows = connection.execute(select(sync_runs).order_by(sync_runs.c.id.desc()).limit(limit)).all()
        return [run_dict(row) for row in rows]

    def run(self, run_id: int) -> dict[str, Any] | None:
        with self._read() as connection:
            row = connection.execute(select(sync_runs).where(sync_runs.c.id == run_id)).first()
        return None if row is None else run_dict(row)

    def last_run(self) -> dict[str, Any] | None:
        latest = self.runs(limit=1)
        return latest[0] if latest else None

    def last_success_at(self) -> datetime | None:
        with self._read() as connection:
            moment: datetime | None = connection.execute(
                select(func.max(sync_runs.c.finished_at)).where(sync_runs.c.status.in_(SUCCESS_STATUSES))
            ).scalar()
        return moment

    def audit_of(self, entra_id: str, limit: int = 10) -> list[dict[str, Any]]:
        with self._read() as connection:
            rows = connection.execute(
                select(audit).where(audit.c.entra_id == entra_id).order_by(audit.c.id.desc()).limit(limit)
            ).all()
        return [audit_dict(row) for row in rows]

    def problems(self, runs: int = 20) -> list[dict[str, Any]]:
        with self._read() as connection:
            recent = connection.execute(
                select(
                    sync_runs.c.id,
                    sync_runs.c.started_at,
                    sync_runs.c.finished_at,
                    sync_runs.c.status,
                    sync_runs.c.message,
                )
                .where(sync_runs.c.status != "dry_run")
                .order_by(sync_runs.c.id.desc())
                .limit(runs)
            ).all()
            ids = [run.id for run in recent]
            audited = connection.execute(
                select(audit.c.run_id, func.max(audit.c.at), audit.c.error_code, audit.c.status, func.count())
                .where(audit.c.run_id.in_(ids), audit.c.error_code.is_not(None))
                .group_by(audit.c.run_id, audit.c.error_code, audit.c.status)
            ).all()
        ended = [(run.id, run.finished_at or run.started_at, run.status, run.message) for run in recent]
        return problem_summary([tuple(row) for row in audited], ended)

    def run_plan(self, run_id: int) -> str | None:
        with self._read() as connection:
            plan: str | None = connection.execute(select(sync_runs.c.plan).where(sync_runs.c.id == run_id)).scalar()
        return plan

    def reads(self) -> dict[str, Any]:
        with self._read() as connection:
            values = dict(
                connection.execute(
                    select(sync_state.c.key, sync_state.c.value).where(
                        sync_state.c.key.in_([CURSOR_KEY, INCREMENTAL_AT_KEY])
                    )
                ).all()
            )
        return reads_summary(values.get(CURSOR_KEY), values.get(INCREMENTAL_AT_KEY))

    def audit(self, run_id: int | None = None, limit: int | None = 1000) -> list[dict[str, Any]]:
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
            if not rows:
                run = connection.execute(select(sync_runs).where(sync_runs.c.id == run_id)).first()
                return refused_rows(run)[:limit] if run is not None else []
        return [audit_dict(row) for row in rows]


class SqlLocalAdmin:
    """Users and teams made by hand in a SQL store; none is managed by an Entra object."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Connection]]) -> None:
        self._transaction = transaction

    def create_user(self, email: str, name: str, user_type: str = "member") -> dict[str, Any]:
        email, name = local_user(email, name, user_type)
        now = utc_now()
        with self._transaction() as connection:
            if connection.execute(select(users.c.id).where(users.c.email == email)).first() is not None:
                raise InputError(f"a user with email {email} already exists")
            connection.execute(
                users.insert().values(
                    email=email,
                    name=name,
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
            connection.execute(upsert_state(connection.dialect.name, STATE_GENERATION_KEY, new_generation()))
        return user_dict(row)

    def create_team(self, name: str, member_emails: Sequence[str] = ()) -> dict[str, Any]:
        name, emails = local_team(name, member_emails)
        now = utc_now()
        with self._transaction() as connection:
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
            check_members(emails, {email: bool(row.active) for email, row in found.items()})
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
            connection.execute(upsert_state(connection.dialect.name, STATE_GENERATION_KEY, new_generation()))
        return {"name": name, "entra_id": None, "managed": False, "members": emails}
