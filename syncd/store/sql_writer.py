"""One write transaction on SQLite or PostgreSQL: the statements that carry out a plan.

:class:`SqlWriter` is the :class:`~syncd.store.protocol.Writer` of :class:`~syncd.store.sql.SqlStore`.
Each method runs one bulk statement for a group of same-kind changes; :mod:`syncd.apply` decides the
order, the savepoints and what a rejected change takes down with it.  A change the database
refuses - a unique or foreign-key violation, a value too long, a row that is no longer there as
planned - leaves a savepoint as :class:`~syncd.store.protocol.Rejected`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, exc, select
from sqlalchemy.engine import URL

from ..changes import (
    USER_FIELDS,
    AdoptUser,
    CreateTeam,
    CreateUser,
    DeactivateUser,
    DeleteTeam,
    ReactivateUser,
    RemoveMember,
    RenameTeam,
    ReplaceTeam,
    UpdateUser,
)
from ..errors import StoreError
from ..mirror import MirrorFeed, app_roles_json, cursor_json, user_json
from ..runs import RUN_STATUSES, RunStatus
from .bulk import insert_many
from .engine import database_errors
from .protocol import (
    MIRROR_GENERATION_KEY,
    STATE_GENERATION_KEY,
    AuditRow,
    Generations,
    Rejected,
    new_generation,
    parked_email,
)
from .rows import APP_ROLES_KEY, CURSOR_KEY, INCREMENTAL_AT_KEY, iso, summary_text
from .schema import (
    audit,
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
from .statements import upsert_state

LOOKUP_BY_ID_LIMIT = 5000
"""Above this many Entra ids, :meth:`SqlWriter.user_ids` reads every managed user instead."""
LOOKUP_CHUNK = 500
AUDIT_COLUMNS = ("op", "object_kind", "target", "entra_id", "before", "after", "status", "error_code", "message")


def run_end(
    status: str,
    *,
    changes: int,
    errors: int,
    summary: dict[str, Any],
    message: str,
    plan: str | None = None,
    graph_requests: int | None = None,
) -> dict[str, Any]:
    """The ``sync_runs`` values that record how a run ended (``plan``: a refused run's plan, as JSON)."""
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}")
    return {
        "finished_at": utc_now(),
        "status": RunStatus(status).value,  # a plain str: drivers adapt enums by name
        "changes": changes,
        "errors": errors,
        "summary": summary_text(summary),
        "message": message,
        "plan": plan,
        "graph_requests": graph_requests,
    }


def read_generations(connection: Connection, *, lock: bool = False) -> Generations:
    query = select(sync_state.c.key, sync_state.c.value).where(
        sync_state.c.key.in_([STATE_GENERATION_KEY, MIRROR_GENERATION_KEY])
    )
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    rows = dict(connection.execute(query).all())
    return Generations(rows.get(STATE_GENERATION_KEY, ""), rows.get(MIRROR_GENERATION_KEY, ""))


def _delete_ids(connection: Connection, table: Table, ids: Sequence[str]) -> None:
    for start in range(0, len(ids), 500):
        connection.execute(table.delete().where(table.c.id.in_(ids[start : start + 500])))


def _reason(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


class SqlWriter:
    """The statements of one write transaction (see the module docstring)."""

    def __init__(self, connection: Connection, url: URL) -> None:
        self._connection = connection
        self._url = url
        self._now = utc_now()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        try:
            with self._connection.begin_nested():
                yield
        except (exc.IntegrityError, exc.DataError) as error:
            raise Rejected(_reason(error)) from error

    def _expect(self, rowcount: int, changes: Sequence[Any], what: str) -> None:
        """Rejected unless every change found its row (where the driver can tell)."""
        if rowcount < 0 or (not self._connection.dialect.supports_sane_multi_rowcount and len(changes) > 1):
            return
        if rowcount != len(changes):
            raise Rejected(f"{what} is no longer in the store" if len(changes) == 1 else what)

    # ----------------------------------------------------------------- users

    def create_users(self, changes: Sequence[CreateUser]) -> None:
        insert_many(
            self._connection,
            users,
            (*USER_FIELDS, "entra_id"),
            ((*(getattr(c, name) for name in USER_FIELDS), c.entra_id) for c in changes),
            {"active": True, "created_at": self._now, "updated_at": self._now},
        )

    def adopt_users(self, changes: Sequence[AdoptUser]) -> None:
        statement = (
            users.update()
            .where(and_(users.c.id == bindparam("b_id"), users.c.entra_id.is_not_distinct_from(bindparam("b_old"))))
            .values(entra_id=bindparam("b_entra_id"), updated_at=self._now)
        )
        rows = [{"b_id": c.user_id, "b_entra_id": c.entra_id, "b_old": c.previous_entra_id} for c in changes]
        result = self._connection.execute(statement, rows)
        self._expect(result.rowcount, changes, f"unmanaged user {changes[0].email}")

    def reactivate_users(self, changes: Sequence[ReactivateUser]) -> None:
        statement = (
            users.update()
            .where(users.c.id == bindparam("b_id"))
            .values(active=True, inactive_reason=None, deactivated_at=None, updated_at=self._now)
        )
        result = self._connection.execute(statement, [{"b_id": c.user_id} for c in changes])
        self._expect(result.rowcount, changes, f"user {changes[0].email}")

    def deactivate_users(self, changes: Sequence[DeactivateUser]) -> None:
        statement = (
            users.update()
            .where(users.c.id == bindparam("b_id"))
            .values(active=False, inactive_reason=bindparam("b_reason"), deactivated_at=self._now, updated_at=self._now)
        )
        result = self._connection.execute(statement, [{"b_id": c.user_id, "b_reason": c.reason} for c in changes])
        self._expect(result.rowcount, changes, f"user {changes[0].email}")

    def park_emails(self, changes: Sequence[UpdateUser]) -> None:
        if not changes:
            return
        statement = users.update().where(users.c.id == bindparam("b_id")).values(email=bindparam("b_email"))
        result = self._connection.execute(
            statement, [{"b_id": c.user_id, "b_email": parked_email(c.user_id)} for c in changes]
        )
        self._expect(result.rowcount, changes, f"user {changes[0].email}")

    def set_user_fields(self, changes: Sequence[UpdateUser]) -> None:
        def field_names(change: UpdateUser) -> tuple[str, ...]:
            return tuple(sorted(name for name, _, _ in change.changes))

        for names, group in groupby(sorted(changes, key=field_names), key=field_names):
            batch = list(group)
            values: dict[str, Any] = {name: bindparam(f"b_{name}") for name in names}
            statement = users.update().where(users.c.id == bindparam("b_id")).values(updated_at=self._now, **values)
            params = [{"b_id": c.user_id, **{f"b_{name}": new for name, _, new in c.changes}} for c in batch]
            result = self._connection.execute(statement, params)
            self._expect(result.rowcount, batch, f"user {batch[0].email}")

    def user_ids(self, entra_ids: Collection[str] | None = None) -> dict[str, int]:
        query = select(users.c.entra_id, users.c.id)
        if entra_ids is None or len(entra_ids) > LOOKUP_BY_ID_LIMIT:  # a scan is cheaper than many lookups
            rows = self._connection.execute(query.where(users.c.entra_id.is_not(None)))
            found = {entra_id: user_id for entra_id, user_id in rows}
            return found if entra_ids is None else {key: found[key] for key in entra_ids if key in found}
        wanted = sorted(entra_ids)
        found = {}
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            found.update(
                (key, value) for key, value in self._connection.execute(query.where(users.c.entra_id.in_(chunk)))
            )
        return found

    # ----------------------------------------------------------------- teams

    def delete_teams(self, changes: Sequence[DeleteTeam]) -> None:
        ids = [{"b_id": c.team_id} for c in changes]
        self._connection.execute(team_members.delete().where(team_members.c.team_id == bindparam("b_id")), ids)
        self._connection.execute(teams.delete().where(teams.c.id == bindparam("b_id")), ids)

    def rename_teams(self, changes: Sequence[RenameTeam]) -> None:
        statement = (
            teams.update().where(teams.c.id == bindparam("b_id")).values(name=bindparam("b_name"), updated_at=self._now)
        )
        result = self._connection.execute(statement, [{"b_id": c.team_id, "b_name": c.name} for c in changes])
        self._expect(result.rowcount, changes, f"team {changes[0].old_name}")

    def replace_teams(self, changes: Sequence[ReplaceTeam]) -> None:
        statement = (
            teams.update()
            .where(and_(teams.c.id == bindparam("b_id"), teams.c.entra_id.is_(None)))
            .values(entra_id=bindparam("b_entra_id"), updated_at=self._now)
        )
        result = self._connection.execute(statement, [{"b_id": c.team_id, "b_entra_id": c.entra_id} for c in changes])
        self._expect(result.rowcount, changes, f"unmanaged team {changes[0].name}")

    def create_teams(self, changes: Sequence[CreateTeam]) -> None:
        insert_many(
            self._connection,
            teams,
            ("name", "entra_id"),
            ((c.name, c.entra_id) for c in changes),
            {"created_at": self._now, "updated_at": self._now},
        )

    def team_ids(self) -> dict[str, int]:
        rows = self._connection.execute(select(teams.c.entra_id, teams.c.id).where(teams.c.entra_id.is_not(None)))
        return {entra_id: team_id for entra_id, team_id in rows}

    # ----------------------------------------------------------------- memberships

    def remove_members(self, changes: Sequence[RemoveMember]) -> None:
        statement = team_members.delete().where(
            and_(team_members.c.team_id == bindparam("b_team_id"), team_members.c.user_id == bindparam("b_user_id"))
        )
        self._connection.execute(statement, [{"b_team_id": c.team_id, "b_user_id": c.user_id} for c in changes])

    def add_members(self, pairs: Sequence[tuple[int, int]], run_id: int) -> None:
        insert_many(
            self._connection,
            team_members,
            ("team_id", "user_id"),
            pairs,
            {"source": "sync", "added_at": self._now, "added_by_run": run_id},
        )

    # ----------------------------------------------------------------- the mirror

    def save_mirror(self, feed: MirrorFeed) -> None:
        connection = self._connection
        if feed.replace:
            for table in (mirror_users, mirror_groups, mirror_assignments):
                connection.execute(table.delete())
        else:
            connection.execute(mirror_users.delete().where(mirror_users.c.hidden.is_(True)))
            _delete_ids(connection, mirror_users, [*feed.dropped_users, *(user.id for user in feed.users)])
            _delete_ids(connection, mirror_groups, [*feed.dropped_groups, *(group.id for group in feed.groups)])
            _delete_ids(
                connection, mirror_assignments, [*feed.dropped_assignments, *(item.id for item in feed.assignments)]
            )
        written = {user.id for user in feed.users}
        insert_many(
            connection,
            mirror_users,
            ("id", "properties", "hidden"),
            [
                *((user.id, user_json(user), False) for user in feed.users),
                *((user_id, "{}", True) for user_id in sorted(feed.hidden - written)),
            ],
        )
        insert_many(
            connection,
            mirror_groups,
            ("id", "display_name", "member_ids"),
            ((group.id, group.display_name, json.dumps(sorted(group.member_ids))) for group in feed.groups),
        )
        insert_many(
            connection,
            mirror_assignments,
            ("id", "principal_id", "principal_type", "app_role_id"),
            ((item.id, item.principal_id, item.principal_type, item.app_role_id) for item in feed.assignments),
        )
        dialect = connection.dialect.name
        connection.execute(upsert_state(dialect, CURSOR_KEY, cursor_json(feed.cursor)))
        connection.execute(upsert_state(dialect, APP_ROLES_KEY, app_roles_json(feed.app_roles)))
        if feed.incremental:
            connection.execute(upsert_state(dialect, INCREMENTAL_AT_KEY, iso(self._now) or ""))

    def set_value(self, key: str, value: str | None) -> None:
        if value is None:
            self._connection.execute(sync_state.delete().where(sync_state.c.key == key))
        else:
            self._connection.execute(upsert_state(self._connection.dialect.name, key, value))

    def generations(self) -> Generations:
        return read_generations(self._connection, lock=True)

    def bump(self, *, state: bool, mirror: bool) -> Generations:
        dialect = self._connection.dialect.name
        for wanted, key in ((state, STATE_GENERATION_KEY), (mirror, MIRROR_GENERATION_KEY)):
            if wanted:
                self._connection.execute(upsert_state(dialect, key, new_generation()))
        return read_generations(self._connection)

    # ----------------------------------------------------------------- audit and journal

    def write_audit(self, run_id: int, rows: Sequence[AuditRow]) -> None:
        insert_many(
            self._connection,
            audit,
            AUDIT_COLUMNS,
            (tuple(getattr(row, name) for name in AUDIT_COLUMNS) for row in rows),
            {"run_id": run_id, "at": self._now},
        )

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        changes: int,
        errors: int,
        summary: dict[str, Any],
        message: str,
        graph_requests: int | None = None,
    ) -> None:
        values = run_end(
            status, changes=changes, errors=errors, summary=summary, message=message, graph_requests=graph_requests
        )
        with database_errors(self._url):
            updated = self._connection.execute(
                sync_runs.update().where(sync_runs.c.id == run_id, sync_runs.c.status == "running").values(**values)
            ).rowcount
        if updated != 1:
            raise StoreError(f"run {run_id} is no longer running; its changes are not applied", code="STORE_FAILED")
