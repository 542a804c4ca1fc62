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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from .cancel import check
from .changes import (
    AddMember,
    AdoptUser,
    Change,
    CreateTeam,
    CreateUser,
    DeactivateUser,
    Plan,
    Problem,
    ReactivateUser,
    ReplaceTeam,
    UpdateUser,
)
from .mirror import MirrorFeed
from .records import OBJECT_KINDS, audit_values
from .store.protocol import PARKED_DOMAIN, AuditRow, Generations, Rejected, Store, Writer

__all__ = ["FAILED_CODE", "PARKED_DOMAIN", "ApplyResult", "Failure", "RunOutcome", "apply_plan"]


FAILED_CODE = "APPLY_FAILED"


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
    generations: Generations | None = None
    """The store's generations once the apply commits (see :class:`~syncd.store.protocol.Generations`)."""
    generations_before: Generations | None = None
    """The generations the apply found, before its own changes."""
    user_ids: dict[str, int] = field(default_factory=dict)
    """Entra id -> local id of every user the plan created (when all of the plan was applied)."""
    team_ids: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended, as its record in the run journal keeps it."""

    status: str
    errors: int
    message: str
    graph_requests: int | None = None


class _Discard(Exception):
    """Rolls back a savepoint whose block succeeded but whose result is not wanted."""


def apply_plan(
    store: Store,
    plan: Plan,
    run_id: int,
    *,
    finish: Callable[[ApplyResult], RunOutcome] | None = None,
    cancel: threading.Event | None = None,
    feed: MirrorFeed | None = None,
    values: Callable[[ApplyResult], Mapping[str, str | None]] | None = None,
) -> ApplyResult:
    """Carry out ``plan`` as run ``run_id`` in one transaction and write its audit rows.

    ``feed`` (what the run's read changes in the store's mirror of Graph, its delta links
    included) is written in the same transaction: the links advance only with an applied run.
    ``values`` (given what was applied, the store's generations included) names values to write in
    it too (None removes one).

    ``finish`` (given what was applied) says how the run ended; that outcome is recorded in the
    same transaction, which then commits.  Once ``cancel`` is set the apply stops before its next
    group of changes and raises :class:`~syncd.cancel.Cancelled`, the transaction rolled back.

    Raises StoreError (nothing written) when the database fails for any reason other than
    rejecting individual changes: a lost connection, a full disk, a database that cannot grow.
    """
    with store.write() as writer:
        applier = _Applier(writer, run_id, cancel)
        applier.run(plan)
        result = applier.result()
        if feed is not None:
            check(cancel)
            writer.save_mirror(feed)
        result.generations_before = writer.generations()
        result.generations = writer.bump(state=result.applied > 0, mirror=feed is not None and feed.changes_content)
        if not result.failed and result.counts.get("create_user"):
            result.user_ids = writer.user_ids({c.entra_id for c in plan.changes if isinstance(c, CreateUser)})
        if not result.failed and result.counts.get("create_team"):
            result.team_ids = writer.team_ids()
        for key, value in (values(result) if values is not None else {}).items():
            writer.set_value(key, value)
        if finish is not None:
            check(cancel)  # the last point at which a stop leaves nothing behind
            outcome = finish(result)
            writer.finish_run(
                run_id,
                outcome.status,
                changes=result.applied,
                errors=outcome.errors,
                summary=plan.summary(),
                message=outcome.message,
                graph_requests=outcome.graph_requests,
            )
    return result


class _Applier:
    """The order of a plan's groups, the savepoints, and what a rejected change takes down with it."""

    def __init__(self, writer: Writer, run_id: int, cancel: threading.Event | None = None) -> None:
        self.writer = writer
        self.run_id = run_id
        self.cancel = cancel
        self.changes: Sequence[Change] = ()
        self.failures: dict[int, Failure] = {}
        self.failed_users: set[str] = set()  # Entra ids of users whose provisioning failed
        self.failed_user_ids: set[int] = set()  # local users whose adoption failed
        self.failed_teams: set[str] = set()  # Entra ids of teams whose provisioning failed
        self.user_ids: dict[str, int] | None = None
        self.team_ids: dict[str, int] | None = None
        self.handlers: dict[str, Callable[[list[Item]], None]] = {
            "create_user": lambda items: self.attempt(items, self.users_changed(writer.create_users)),
            "adopt_user": lambda items: self.attempt(items, self.users_changed(writer.adopt_users)),
            "reactivate_user": lambda items: self.attempt(items, writer.reactivate_users),
            "update_user": self.apply_updates,
            "deactivate_user": lambda items: self.attempt(items, writer.deactivate_users),
            "delete_team": lambda items: self.attempt(items, self.teams_changed(writer.delete_teams)),
            "rename_team": lambda items: self.attempt(items, writer.rename_teams),
            "replace_team": lambda items: self.attempt(items, self.teams_changed(writer.replace_teams)),
            "create_team": lambda items: self.attempt(items, self.teams_changed(writer.create_teams)),
            "remove_member": lambda items: self.attempt(items, writer.remove_members),
            "add_member": self.apply_additions,
        }

    def users_changed(self, execute: Callable[[list[Any]], None]) -> Callable[[list[Any]], None]:
        def run(changes: list[Any]) -> None:
            self.user_ids = None
            execute(changes)

        return run

    def teams_changed(self, execute: Callable[[list[Any]], None]) -> Callable[[list[Any]], None]:
        def run(changes: list[Any]) -> None:
            self.team_ids = None
            execute(changes)

        return run

    def run(self, plan: Plan) -> None:
        self.changes = plan.changes
        for op, group in groupby(enumerate(plan.changes), key=lambda item: item[1].op):
            check(self.cancel)
            self.handlers[op](list(group))
        check(self.cancel)
        rows = [self.change_row(index, change) for index, change in enumerate(plan.changes)]
        rows += [_problem_row(problem, "error") for problem in plan.errors]
        rows += [_problem_row(problem, "warning") for problem in plan.warnings]
        if rows:
            self.writer.write_audit(self.run_id, rows)

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
            with self.writer.savepoint():
                execute(changes)
        except Rejected:
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
                with self.writer.savepoint():
                    execute([change])
            except Rejected as error:
                self.fail(index, change, str(error))

    # ----------------------------------------------------------------- users

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
            try:
                with self.writer.savepoint():
                    for index, change in pending:
                        if _new_email(change) is not None:
                            self.isolated(index, change, self.writer.park_emails, rejected)
                    parked_failures = {index for index, _, _ in rejected}
                    for index, change in pending:
                        if index not in parked_failures:
                            self.isolated(index, change, self.writer.set_user_fields, rejected)
                    if rejected:
                        raise _Discard
            except _Discard:
                pass
            if not rejected:
                return
            for index, change, message in rejected:
                self.fail(index, change, message)
            failed = {index for index, _, _ in rejected}
            pending = [(index, change) for index, change in pending if index not in failed]

    def isolated(
        self, index: int, change: Any, execute: Callable[[list[Any]], None], rejected: list[tuple[int, Any, str]]
    ) -> None:
        check(self.cancel)
        try:
            with self.writer.savepoint():
                execute([change])
        except Rejected as error:
            rejected.append((index, change, str(error)))

    def update_users(self, changes: list[UpdateUser]) -> None:
        self.writer.park_emails([change for change in changes if _new_email(change) is not None])
        self.writer.set_user_fields(changes)

    # ----------------------------------------------------------------- memberships

    def apply_additions(self, items: list[Item]) -> None:
        """Resolve users and teams by Entra id (once each), then add the members in bulk."""
        self.user_ids = self.writer.user_ids({change.user_entra_id for _, change in items})  # only those named
        if self.team_ids is None:
            self.team_ids = self.writer.team_ids()
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
        self.writer.add_members([(team_ids[c.team_entra_id], user_ids[c.user_entra_id]) for c in changes], self.run_id)

    # ----------------------------------------------------------------- audit

    def change_row(self, index: int, change: Change) -> AuditRow:
        before, after = audit_values(change)
        failure = self.failures.get(index)
        return AuditRow(
            change.op,
            OBJECT_KINDS[change.op],
            change.target,
            change.entra_id,
            _dump(before),
            _dump(after),
            "failed" if failure else "applied",
            failure.code if failure else None,
            failure.message if failure else None,
        )


def _problem_row(problem: Problem, status: str) -> AuditRow:
    kind = "user" if problem.kind == "user" else "team"
    return AuditRow(
        "problem", kind, problem.target, problem.entra_id, None, None, status, problem.code, problem.message
    )


def _new_email(change: UpdateUser) -> str | None:
    return next((str(new) for name, _, new in change.changes if name == "email"), None)


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else _ENCODER.encode(value)
