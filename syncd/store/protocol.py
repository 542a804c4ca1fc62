"""The store seam: what syncd asks of a store, whatever database holds it.

A :class:`Store` loads the planner's state, holds the run lock, keeps the run journal and a few
named values, and opens write transactions (:meth:`Store.write`) in which a :class:`Writer` carries
out a plan's change records, writes the audit and records how the run ended.  The CLI's read
models (:class:`Reports`) and local administration (:class:`LocalAdmin`) are objects of their own,
reached as ``store.reports`` and ``store.local``.

Two implementations exist: :class:`~syncd.store.sql.SqlStore` (SQLite and PostgreSQL, every SQL
statement in that module) and :class:`~syncd.store.memory.MemoryStore` (pure Python, for tests and
demos).  One contract test class runs against all three backends.

A change the store refuses - a unique or foreign-key violation, a value too long, a row that is
no longer there as planned - raises :class:`Rejected`; every other failure is a
:class:`~syncd.errors.StoreError` with its code, and the transaction it happened in rolls back.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..changes import (
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
from ..mirror import Mirror, MirrorFeed
from ..model import SourceUser, StoreState, StoreUser


class Rejected(Exception):
    """The store refuses a change: a constraint forbids it, or its row is no longer there as planned."""


def refused(error: Rejected) -> StoreError:
    """What a refusal that escaped every savepoint is: the whole transaction failed."""
    return StoreError(f"database error: the store refused a change ({error})", code="STORE_FAILED")


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One row of the audit: a change as applied or failed, or a per-object error or warning."""

    op: str
    object_kind: str
    target: str
    entra_id: str | None
    before: str | None
    after: str | None
    status: str
    error_code: str | None
    message: str | None


PARKED_DOMAIN = "parked.syncd.invalid"
"""Emails that change are first moved to ``user-<id>@parked.syncd.invalid`` (a reserved domain)."""


def parked_email(user_id: int) -> str:
    return f"user-{user_id}@{PARKED_DOMAIN}"


@dataclass(frozen=True, slots=True)
class Generations:
    """Tokens that change whenever the store's users, teams and memberships (``state``) or its mirror
    of Graph (``mirror``) change, whoever changes them: a process that keeps either in memory between
    runs (the daemon) knows with one query whether its copy still holds."""

    state: str = ""
    mirror: str = ""


STATE_GENERATION_KEY = "generation.state"
MIRROR_GENERATION_KEY = "generation.mirror"


def new_generation() -> str:
    return uuid.uuid4().hex


class Writer(Protocol):
    """One write transaction.  Each method carries out a group of same-kind changes at once."""

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: rolled back (and the exception passed on) if its block raises."""
        ...

    def create_users(self, changes: Sequence[CreateUser]) -> None: ...

    def adopt_users(self, changes: Sequence[AdoptUser]) -> None:
        """Set the Entra id of rows that still have ``previous_entra_id``; Rejected otherwise."""
        ...

    def reactivate_users(self, changes: Sequence[ReactivateUser]) -> None: ...

    def deactivate_users(self, changes: Sequence[DeactivateUser]) -> None: ...

    def park_emails(self, changes: Sequence[UpdateUser]) -> None:
        """Move the email of each user to :func:`parked_email`, so emails can swap and chain."""
        ...

    def set_user_fields(self, changes: Sequence[UpdateUser]) -> None:
        """Write each update's new values."""
        ...

    def delete_teams(self, changes: Sequence[DeleteTeam]) -> None:
        """Delete the teams with their memberships."""
        ...

    def rename_teams(self, changes: Sequence[RenameTeam]) -> None: ...

    def replace_teams(self, changes: Sequence[ReplaceTeam]) -> None:
        """Give unmanaged teams their group's Entra id; Rejected if one is managed by now."""
        ...

    def create_teams(self, changes: Sequence[CreateTeam]) -> None: ...

    def remove_members(self, changes: Sequence[RemoveMember]) -> None: ...

    def add_members(self, pairs: Sequence[tuple[int, int]], run_id: int) -> None:
        """Add each (team id, user id) membership, as made by run ``run_id``."""
        ...

    def user_ids(self, entra_ids: Collection[str] | None = None) -> dict[str, int]:
        """Entra id -> local id of every managed user (or of those among ``entra_ids``), as the
        transaction sees them now."""
        ...

    def team_ids(self) -> dict[str, int]:
        """Entra id -> local id of every managed team, as the transaction sees them now."""
        ...

    def save_mirror(self, feed: MirrorFeed) -> None:
        """Write what a read taught the mirror, and its cursor (:func:`syncd.mirror.apply_feed`)."""
        ...

    def set_value(self, key: str, value: str | None) -> None:
        """Write the named value ``key`` in this transaction (None removes it)."""
        ...

    def generations(self) -> Generations:
        """The generations as this transaction sees them, held against other writers until it ends
        (a row lock on PostgreSQL; SQLite's write transactions are serial)."""
        ...

    def bump(self, *, state: bool, mirror: bool) -> Generations:
        """Give the state and/or the mirror a new generation in this transaction; the generations
        they have once it commits."""
        ...

    def write_audit(self, run_id: int, rows: Sequence[AuditRow]) -> None:
        """Append the rows to the audit of run ``run_id``, in their order."""
        ...

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
        """Record how the run ended in this transaction; StoreError unless it is still ``running``."""
        ...


class Reports(Protocol):
    """What the command line shows: users, teams, counts, runs and the audit."""

    def users(self) -> list[dict[str, Any]]:
        """Every user sorted by email: email, name, title, active, user_type, entra_id, managed,
        inactive_reason."""
        ...

    def teams(self) -> list[dict[str, Any]]:
        """Every team sorted by name: name, entra_id, managed, members (member emails, sorted)."""
        ...

    def counts(self) -> dict[str, int]:
        """active_users (the seats in use), inactive_users, teams."""
        ...

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs, newest first: id, status, trigger, started_at, finished_at (ISO 8601),
        changes, errors, summary, message."""
        ...

    def run(self, run_id: int) -> dict[str, Any] | None: ...

    def last_run(self) -> dict[str, Any] | None: ...

    def last_success_at(self) -> datetime | None:
        """When the newest run that read all of Graph and applied its plan ended (any process's)."""
        ...

    def audit_of(self, entra_id: str, limit: int = 10) -> list[dict[str, Any]]:
        """The latest audit rows about one Entra object, newest first (rows as :meth:`audit` gives them)."""
        ...

    def problems(self, runs: int = 20) -> list[dict[str, Any]]:
        """The error codes of the last ``runs`` runs (dry runs left out), newest first: ``code``,
        ``level`` (``error`` or ``warning``), ``runs`` (in how many of them), ``objects`` (how many
        objects in the latest of them), ``last_run``, ``last_at`` (ISO 8601).  Per-object codes come from
        the audit; a failed, refused or incomplete run adds the codes its message names."""
        ...

    def run_plan(self, run_id: int) -> str | None:
        """The plan a refused run kept (:func:`syncd.records.plan_record` as JSON), or None."""
        ...

    def reads(self) -> dict[str, Any]:
        """How Graph is read: ``mode`` (``incremental``, ``incremental (assignments listed)`` or
        ``full``: no mirror yet), ``last_full_at`` and ``last_incremental_at`` (ISO 8601 or None)."""
        ...

    def audit(self, run_id: int | None = None, limit: int | None = 1000) -> list[dict[str, Any]]:
        """Audit rows of run ``run_id`` in the order they were written (None: the last run that was
        not a dry run).  Each row: id, run_id, at, op, object_kind, target, entra_id, before,
        after, status, error_code, message."""
        ...


class LocalAdmin(Protocol):
    """Users and teams that no Entra object manages, made by hand."""

    def create_user(self, email: str, name: str, user_type: str = "member") -> dict[str, Any]:
        """Create an active unmanaged user; returns it as :meth:`Reports.users` lists it."""
        ...

    def create_team(self, name: str, member_emails: Sequence[str] = ()) -> dict[str, Any]:
        """Create an unmanaged team with the given active users as members."""
        ...


class Store(Protocol):
    """A syncd store (see the module docstring)."""

    @property
    def url(self) -> str:
        """Where the store is, with any password masked."""
        ...

    @property
    def reports(self) -> Reports: ...

    @property
    def local(self) -> LocalAdmin: ...

    def close(self) -> None: ...

    def ping(self) -> None:
        """Raise StoreError(STORE_UNREACHABLE) unless the store answers."""
        ...

    def schema_revision(self) -> str | None: ...

    def upgrade(self) -> None: ...

    def ensure_schema(self) -> None:
        """Create or upgrade the schema; StoreError(STORE_SCHEMA) for one from a newer syncd."""
        ...

    def lock(self, wait_seconds: float = 0, holder: str = "") -> AbstractContextManager[None]:
        """Hold the run lock for the block; LockedError naming the holder after ``wait_seconds``."""
        ...

    def load_state(self, *, users: bool = True) -> StoreState:
        """Every user, team and membership, read consistently; ``users=False`` leaves the users out
        (``users`` is empty; the teams and their members are whole)."""
        ...

    def load_users(
        self, *, entra_ids: Collection[str] = (), emails: Collection[str] = (), ids: Collection[int] = ()
    ) -> list[StoreUser]:
        """The users with any of these Entra ids, emails or local ids, by local id: what a run that
        plans only some users reads of them."""
        ...

    def active_admins(self, limit: int) -> list[StoreUser]:
        """The first ``limit`` active users of type admin, by local id."""
        ...

    def managed_seats(self) -> int:
        """How many users with an Entra id are active (the managed seats in use)."""
        ...

    def generations(self) -> Generations:
        """The current generations of the state and the mirror (one cheap read)."""
        ...

    def load_mirror(self, *, users: bool = True) -> Mirror | None:
        """The mirror of Graph the last complete read left, or None (no mirror, or one unreadable).
        ``users=False`` leaves out the users' properties (``users`` is empty; ``hidden`` is whole):
        what a run needs to know who is in scope, read in a fraction of the time."""
        ...

    def mirror_users(self, user_ids: Collection[str]) -> dict[str, SourceUser]:
        """The mirror's users (not those in the deleted items) among ``user_ids``, by id: what a
        run that loaded the mirror without its users reads of the few it needs."""
        ...

    def write(self) -> AbstractContextManager[Writer]:
        """A write transaction: committed when the block ends, rolled back if anything escapes."""
        ...

    def begin_run(self, trigger: str, dry_run: bool = False) -> int:
        """Record the start of a run; under the lock, first relabel runs left ``running`` as failed."""
        ...

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
        """Record how a run ended, in a transaction of its own."""
        ...

    def fail_run(
        self,
        run_id: int,
        message: str,
        *,
        summary: dict[str, Any] | None = None,
        graph_requests: int | None = None,
    ) -> bool:
        """Record a run as failed with no changes unless it recorded its outcome; False if it had."""
        ...

    def get_state(self, key: str) -> str | None: ...

    def set_state(self, key: str, value: str) -> None: ...

    def is_paused(self) -> bool: ...

    def set_paused(self, paused: bool) -> None: ...
