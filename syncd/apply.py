"""Carry out a :class:`~syncd.plan.Plan` against the store, in one transaction.

All of a plan lands or none of it: anything that escapes (a lost connection, a full disk, a stop
request, a bug) rolls the whole transaction back and leaves the store as it was.  The run's own
record - its status, counts and message - is written in the same transaction (``finish``), so a
run's outcome commits with its data or not at all: whenever the process dies, what the run record
says is what the store holds.  A stop request (``cancel``) is honoured between groups of changes,
never after the outcome is written.  Within that transaction each
group of same-kind changes runs as one bulk statement; when the store rejects a change in a
group (a unique or foreign key violation, a value too long, a row that is gone), the group is
retried one savepoint per change, so the rejected change becomes a failed audit row with code
APPLY_FAILED and every other change still lands.  Changes that need a failed one (a membership
of a user whose creation failed) fail with it.

Every change, and every error and warning of the plan, writes one audit row.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exc, select

from .cancel import check
from .changes import (
    USER_FIELDS,
    AddMember,
    AdoptUser,
    Change,
    CreateTeam,
    CreateUser,
    DeactivateUser,
    DeleteTeam,
    Plan,
    Problem,
    ReactivateUser,
    RemoveMember,
    RenameTeam,
    ReplaceTeam,
    UpdateUser,
)
from .model import USER_ATTRIBUTES
from .store import Store
from .store.bulk import insert_many
from .store.schema import audit, team_members, teams, users, utc_now

UNAUDITED = frozenset(attribute.field for attribute in USER_ATTRIBUTES if not attribute.audited)
"""Attributes the audit leaves out of its before and after (the registry says which)."""

FAILED_CODE = "APPLY_FAILED"
PARKED_DOMAIN = "parked.syncd.invalid"
"""Emails that change are first moved to ``user-<id>@parked.syncd.invalid`` (a reserved domain)."""

OBJECT_KINDS = {
    "create_user": "user",
    "adopt_user": "user",
    "reactivate_user": "user",
    "update_user": "user",
    "deactivate_user": "user",
    "delete_team": "team",
    "rename_team": "team",
    "replace_team": "team",
    "create_team": "team",
    "remove_member": "membership",
    "add_member": "membership",
}

AUDIT_COLUMNS = ("op", "object_kind", "target", "entra_id", "before", "after", "status", "error_code", "message")
"""The audit columns each change fills; ``run_id`` and ``at`` are the same for the whole plan."""

_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)

Item = tuple[int, Any]
"""A change with its position in the plan (changes of one group share a type)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A change the store rejected, or that needed a change the store rejected."""

    change: Change
    code: str
    message: str


@dataclass(slots=True)
class ApplyResult:
    """What :func:`apply_plan` did: ``counts`` holds the applied changes by op."""

    applied: int = 0
    failed: list[Failure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class Rejected(Exception):
    """The store cannot carry out a change: the row it acts on is no longer there as planned."""


REJECTIONS = (exc.IntegrityError, exc.DataError, Rejected)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended, as its record in ``sync_runs`` keeps it."""

    status: str
    errors: int
    message: str


def apply_plan(
    store: Store,
    plan: Plan,
    run_id: int,
    *,
    finish: Callable[[ApplyResult], RunOutcome] | None = None,
    cancel: threading.Event | None = None,
) -> ApplyResult:
    """Carry out ``plan`` as run ``run_id`` in one transaction and write its audit rows.

    ``finish`` (given what was applied) says how the run ended; that outcome is recorded in the
    same transaction, which then commits.  Once ``cancel`` is set the apply stops before its next
    group of changes and raises :class:`~syncd.cancel.Cancelled`, the transaction rolled back.

    Raises StoreError (nothing written) when the database fails for any reason other than
    rejecting individual changes: a lost connection, a full disk, a database that cannot grow.
    """
    with store.transaction() as connection:
        applier = _Applier(connection, run_id, cancel)
        applier.run(plan)
        result = applier.result()
        if finish is not None:
            check(cancel)  # the last point at which a stop leaves nothing behind
            outcome = finish(result)
            store.finish_run(
                run_id,
                outcome.status,
                changes=result.applied,
                errors=outcome.errors,
                summary=plan.summary(),
                message=outcome.message,
                connection=connection,
            )
    return result


def _reason(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


class _Applier:
    def __init__(self, connection: Connection, run_id: int, cancel: threading.Event | None = None) -> None:
        self.connection = connection
        self.run_id = run_id
        self.cancel = cancel
        self.now = utc_now()
        self.changes: Sequence[Change] = ()
        self.failures: dict[int, Failure] = {}
        self.failed_users: set[str] = set()  # Entra ids of users whose provisioning failed
        self.failed_user_ids: set[int] = set()  # local users whose adoption failed
        self.failed_teams: set[str] = set()  # Entra ids of teams whose provisioning failed
        self.user_ids: dict[str, int] | None = None
        self.team_ids: dict[str, int] | None = None
        self.handlers: dict[str, Callable[[list[Item]], None]] = {
            "create_user": lambda items: self.attempt(items, self.create_users),
            "adopt_user": lambda items: self.attempt(items, self.adopt_users),
            "reactivate_user": lambda items: self.attempt(items, self.reactivate_users),
            "update_user": self.apply_updates,
            "deactivate_user": lambda items: self.attempt(items, self.deactivate_users),
            "delete_team": lambda items: self.attempt(items, self.delete_teams),
            "rename_team": lambda items: self.attempt(items, self.rename_teams),
            "replace_team": lambda items: self.attempt(items, self.replace_teams),
            "create_team": lambda items: self.attempt(items, self.create_teams),
            "remove_member": lambda items: self.attempt(items, self.remove_members),
            "add_member": self.apply_additions,
        }

    def run(self, plan: Plan) -> None:
        self.changes = plan.changes
        for op, group in groupby(enumerate(plan.changes), key=lambda item: item[1].op):
            check(self.cancel)
            self.handlers[op](list(group))
        check(self.cancel)
        rows = [self.change_row(index, change) for index, change in enumerate(plan.changes)]
        rows += [_problem_row(problem, "error") for problem in plan.errors]
        rows += [_problem_row(problem, "warning") for problem in plan.warnings]
        insert_many(self.connection, audit, AUDIT_COLUMNS, rows, {"run_id": self.run_id, "at": self.now})

    def result(self) -> ApplyResult:
        applied = [change for index, change in enumerate(self.changes) if index not in self.failures]
        counts = Counter(change.op for change in applied)
        return ApplyResult(
            applied=len(applied), failed=[self.failures[i] for i in sorted(self.failures)], counts=dict(counts)
        )

    # ----------------------------------------------------------------- failure bookkeeping

    def fail(self, index: int, change: Change, message: str) -> None:
        self.failures[index] = Failure(change, FAILED_CODE, message)
        if isinstance(change, (CreateUser, AdoptUser, ReactivateUser)):
            self.failed_users.add(change.entra_id)
        if isinstance(change, AdoptUser):
            self.failed_user_ids.add(change.user_id)
        if isinstance(change, (CreateTeam, ReplaceTeam)):
            self.failed_teams.add(change.entra_id)

    def ready(self, items: Iterable[Item]) -> list[Item]:
        """The items whose prerequisites hold; the others are recorded as failed."""
        if not self.failed_user_ids:
            return list(items)
        ready = []
        for index, change in items:
            user_id = getattr(change, "user_id", None)
            if isinstance(change, (UpdateUser, ReactivateUser, DeactivateUser)) and user_id in self.failed_user_ids:
                self.fail(index, change, f"skipped: adopting user {change.email} failed")
            else:
                ready.append((index, change))
        return ready

    def bulk(self, execute: Callable[[list[Any]], None], changes: list[Any]) -> bool:
        """Run ``execute`` on every change in a savepoint; False (and nothing done) if the store rejected one."""
        try:
            with self.connection.begin_nested():
                execute(changes)
        except REJECTIONS:
            return False
        return True

    def attempt(self, items: list[Item], execute: Callable[[list[Any]], None]) -> None:
        """Carry out a group in bulk, or one savepoint per change when the store rejects one."""
        items = self.ready(items)
        if not items or self.bulk(execute, [change for _, change in items]):
            return
        for index, change in items:
            check(self.cancel)
            try:
                with self.connection.begin_nested():
                    execute([change])
            except REJECTIONS as error:
                self.fail(index, change, _reason(error))

    def expect(self, rowcount: int, changes: Sequence[Any], what: str) -> None:
        if rowcount < 0 or (not self.connection.dialect.supports_sane_multi_rowcount and len(changes) > 1):
            return
        if rowcount != len(changes):
            raise Rejected(f"{what} is no longer in the store" if len(changes) == 1 else what)

    # ----------------------------------------------------------------- users

    def create_users(self, changes: list[CreateUser]) -> None:
        insert_many(
            self.connection,
            users,
            (*USER_FIELDS, "entra_id"),
            ((*(getattr(c, name) for name in USER_FIELDS), c.entra_id) for c in changes),
            {"active": True, "created_at": self.now, "updated_at": self.now},
        )
        self.user_ids = None

    def adopt_users(self, changes: list[AdoptUser]) -> None:
        statement = (
            users.update()
            .where(and_(users.c.id == bindparam("b_id"), users.c.entra_id.is_not_distinct_from(bindparam("b_old"))))
            .values(entra_id=bindparam("b_entra_id"), updated_at=self.now)
        )
        rows = [{"b_id": c.user_id, "b_entra_id": c.entra_id, "b_old": c.previous_entra_id} for c in changes]
        result = self.connection.execute(statement, rows)
        self.expect(result.rowcount, changes, f"unmanaged user {changes[0].email}")
        self.user_ids = None

    def reactivate_users(self, changes: list[ReactivateUser]) -> None:
        statement = (
            users.update()
            .where(users.c.id == bindparam("b_id"))
            .values(active=True, inactive_reason=None, deactivated_at=None, updated_at=self.now)
        )
        result = self.connection.execute(statement, [{"b_id": c.user_id} for c in changes])
        self.expect(result.rowcount, changes, f"user {changes[0].email}")

    def deactivate_users(self, changes: list[DeactivateUser]) -> None:
        statement = (
            users.update()
            .where(users.c.id == bindparam("b_id"))
            .values(active=False, inactive_reason=bindparam("b_reason"), deactivated_at=self.now, updated_at=self.now)
        )
        result = self.connection.execute(statement, [{"b_id": c.user_id, "b_reason": c.reason} for c in changes])
        self.expect(result.rowcount, changes, f"user {changes[0].email}")

    def apply_updates(self, items: list[Item]) -> None:
        """Updates in bulk; when the store rejects some, find them with every changing email parked.

        Emails change in two steps (park, then set) so that swaps and chains of emails never
        collide under the unique constraint.  A rejected update is dropped and the rest retried,
        which also fails an update whose new email the dropped one still holds.
        """
        pending = self.ready(items)
        while pending:
            check(self.cancel)
            if self.bulk(self.update_users, [change for _, change in pending]):
                return
            rejected: list[tuple[int, UpdateUser, str]] = []
            trial = self.connection.begin_nested()
            try:
                for index, change in pending:
                    if _new_email(change) is not None:
                        self.isolated(index, change, self.park_emails, rejected)
                parked_failures = {index for index, _, _ in rejected}
                for index, change in pending:
                    if index not in parked_failures:
                        self.isolated(index, change, self.set_user_fields, rejected)
            except BaseException:
                trial.rollback()
                raise
            if not rejected:
                trial.commit()
                return
            trial.rollback()
            for index, change, message in rejected:
                self.fail(index, change, message)
            failed = {index for index, _, _ in rejected}
            pending = [(index, change) for index, change in pending if index not in failed]

    def isolated(
        self, index: int, change: Any, execute: Callable[[list[Any]], None], rejected: list[tuple[int, Any, str]]
    ) -> None:
        check(self.cancel)
        try:
            with self.connection.begin_nested():
                execute([change])
        except REJECTIONS as error:
            rejected.append((index, change, _reason(error)))

    def update_users(self, changes: list[UpdateUser]) -> None:
        self.park_emails([change for change in changes if _new_email(change) is not None])
        self.set_user_fields(changes)

    def park_emails(self, changes: list[UpdateUser]) -> None:
        if not changes:
            return
        statement = users.update().where(users.c.id == bindparam("b_id")).values(email=bindparam("b_email"))
        result = self.connection.execute(
            statement, [{"b_id": c.user_id, "b_email": f"user-{c.user_id}@{PARKED_DOMAIN}"} for c in changes]
        )
        self.expect(result.rowcount, changes, f"user {changes[0].email}")

    def set_user_fields(self, changes: list[UpdateUser]) -> None:
        def field_names(change: UpdateUser) -> tuple[str, ...]:
            return tuple(sorted(name for name, _, _ in change.changes))

        for names, group in groupby(sorted(changes, key=field_names), key=field_names):
            batch = list(group)
            values: dict[str, Any] = {name: bindparam(f"b_{name}") for name in names}
            statement = users.update().where(users.c.id == bindparam("b_id")).values(updated_at=self.now, **values)
            params = [{"b_id": c.user_id, **{f"b_{name}": new for name, _, new in c.changes}} for c in batch]
            result = self.connection.execute(statement, params)
            self.expect(result.rowcount, batch, f"user {batch[0].email}")

    # ----------------------------------------------------------------- teams

    def delete_teams(self, changes: list[DeleteTeam]) -> None:
        ids = [{"b_id": c.team_id} for c in changes]
        self.connection.execute(team_members.delete().where(team_members.c.team_id == bindparam("b_id")), ids)
        self.connection.execute(teams.delete().where(teams.c.id == bindparam("b_id")), ids)
        self.team_ids = None

    def rename_teams(self, changes: list[RenameTeam]) -> None:
        statement = (
            teams.update().where(teams.c.id == bindparam("b_id")).values(name=bindparam("b_name"), updated_at=self.now)
        )
        result = self.connection.execute(statement, [{"b_id": c.team_id, "b_name": c.name} for c in changes])
        self.expect(result.rowcount, changes, f"team {changes[0].old_name}")

    def replace_teams(self, changes: list[ReplaceTeam]) -> None:
        statement = (
            teams.update()
            .where(and_(teams.c.id == bindparam("b_id"), teams.c.entra_id.is_(None)))
            .values(entra_id=bindparam("b_entra_id"), updated_at=self.now)
        )
        result = self.connection.execute(statement, [{"b_id": c.team_id, "b_entra_id": c.entra_id} for c in changes])
        self.expect(result.rowcount, changes, f"unmanaged team {changes[0].name}")
        self.team_ids = None

    def create_teams(self, changes: list[CreateTeam]) -> None:
        insert_many(
            self.connection,
            teams,
            ("name", "entra_id"),
            ((c.name, c.entra_id) for c in changes),
            {"created_at": self.now, "updated_at": self.now},
        )
        self.team_ids = None

    # ----------------------------------------------------------------- memberships

    def remove_members(self, changes: list[RemoveMember]) -> None:
        statement = team_members.delete().where(
            and_(team_members.c.team_id == bindparam("b_team_id"), team_members.c.user_id == bindparam("b_user_id"))
        )
        self.connection.execute(statement, [{"b_team_id": c.team_id, "b_user_id": c.user_id} for c in changes])

    def apply_additions(self, items: list[Item]) -> None:
        """Resolve users and teams by Entra id (one query each), then add the members in bulk."""
        if self.user_ids is None:
            rows = self.connection.execute(select(users.c.entra_id, users.c.id).where(users.c.entra_id.is_not(None)))
            self.user_ids = {entra_id: user_id for entra_id, user_id in rows}
        if self.team_ids is None:
            rows = self.connection.execute(select(teams.c.entra_id, teams.c.id).where(teams.c.entra_id.is_not(None)))
            self.team_ids = {entra_id: team_id for entra_id, team_id in rows}
        resolved: list[Item] = []
        for index, change in items:
            problem = self.missing_for(change)
            if problem:
                self.fail(index, change, problem)
            else:
                resolved.append((index, change))
        self.attempt(resolved, self.add_members)

    def missing_for(self, change: AddMember) -> str | None:
        assert self.user_ids is not None and self.team_ids is not None
        if change.user_entra_id in self.failed_users:
            return f"skipped: provisioning user {change.email} failed"
        if change.team_entra_id in self.failed_teams:
            return f"skipped: provisioning team {change.team_name} failed"
        if change.user_entra_id not in self.user_ids:
            return f"user {change.email} ({change.user_entra_id}) is not in the store"
        if change.team_entra_id not in self.team_ids:
            return f"team {change.team_name} ({change.team_entra_id}) is not in the store"
        return None

    def add_members(self, changes: list[AddMember]) -> None:
        assert self.user_ids is not None and self.team_ids is not None
        team_ids, user_ids = self.team_ids, self.user_ids
        insert_many(
            self.connection,
            team_members,
            ("team_id", "user_id"),
            ((team_ids[c.team_entra_id], user_ids[c.user_entra_id]) for c in changes),
            {"source": "sync", "added_at": self.now, "added_by_run": self.run_id},
        )

    # ----------------------------------------------------------------- audit

    def change_row(self, index: int, change: Change) -> tuple[Any, ...]:
        before, after = _audit_values(change)
        failure = self.failures.get(index)
        outcome = ("failed", failure.code, failure.message) if failure else ("applied", None, None)
        return (
            change.op,
            OBJECT_KINDS[change.op],
            change.target,
            change.entra_id,
            _dump(before),
            _dump(after),
            *outcome,
        )


def _problem_row(problem: Problem, status: str) -> tuple[Any, ...]:
    kind = "user" if problem.kind == "user" else "team"
    return ("problem", kind, problem.target, problem.entra_id, None, None, status, problem.code, problem.message)


def _new_email(change: UpdateUser) -> str | None:
    return next((str(new) for name, _, new in change.changes if name == "email"), None)


def _audit_values(change: Change) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The object before and after the change, as far as the change touches it."""
    if isinstance(change, CreateUser):
        return None, {name: getattr(change, name) for name in USER_FIELDS if name not in UNAUDITED}
    if isinstance(change, AddMember):
        return None, {"member": change.email, "user_entra_id": change.user_entra_id}
    before = {name: old for name, old, _ in change.fields if name not in UNAUDITED}
    after = {name: new for name, _, new in change.fields if name not in UNAUDITED}
    if isinstance(change, CreateTeam):
        return None, after
    if isinstance(change, RemoveMember):
        return before, None
    if isinstance(change, DeleteTeam):
        return {**before, "members": list(change.member_emails)}, None
    if isinstance(change, DeactivateUser):
        after["inactive_reason"] = change.reason
    return before, after


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else _ENCODER.encode(value)
