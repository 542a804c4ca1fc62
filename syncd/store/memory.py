"""A store in memory: the same contract as the SQL store, in pure Python, for tests and demos.

:class:`MemoryStore` keeps its tables as dictionaries of rows.  A row is a dictionary that is
replaced, never changed in place, so a transaction or a savepoint is a shallow copy of the tables
taken when it begins and put back if its block raises.  It enforces what the SQL schema enforces
(unique emails and Entra ids, column lengths, memberships of existing users and teams, run
statuses) and raises :class:`~syncd.store.protocol.Rejected` where the database would refuse a
change, so one contract test class runs on it, SQLite and PostgreSQL alike.  Its data lives as
long as the object.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

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
from ..errors import InputError, StoreError
from ..mirror import Mirror, MirrorFeed, apply_feed, cursor_json
from ..model import USER_ATTRIBUTES, SourceUser, StoreState, StoreTeam, StoreUser
from ..runs import RunStatus
from . import lock as locks
from .protocol import (
    MIRROR_GENERATION_KEY,
    STATE_GENERATION_KEY,
    AuditRow,
    Generations,
    Rejected,
    new_generation,
    parked_email,
    refused,
)
from .rows import (
    CURSOR_KEY,
    INCREMENTAL_AT_KEY,
    INTERRUPTED,
    PAUSED_KEY,
    audit_dict,
    check_members,
    iso,
    local_team,
    local_user,
    problem_summary,
    reads_summary,
    refused_rows,
    run_dict,
    summary_text,
    user_dict,
)
from .schema import teams as team_table
from .schema import users as user_table
from .schema import utc_now
from .sql_writer import run_end

Row = dict[str, Any]


class _Row:
    """Attribute access to a row dictionary, for the shared row shapes of :mod:`syncd.store.rows`."""

    __slots__ = ("_values",)

    def __init__(self, values: Row) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


def _lengths(table: Any) -> dict[str, int]:
    return {column.name: column.type.length for column in table.columns if getattr(column.type, "length", None)}


USER_LENGTHS = _lengths(user_table)
TEAM_LENGTHS = _lengths(team_table)


@dataclass(slots=True)
class _Tables:
    users: dict[int, Row] = field(default_factory=dict)
    teams: dict[int, Row] = field(default_factory=dict)
    members: dict[tuple[int, int], Row] = field(default_factory=dict)
    runs: dict[int, Row] = field(default_factory=dict)
    audit: list[Row] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    next_id: dict[str, int] = field(default_factory=lambda: {"users": 1, "teams": 1, "runs": 1, "audit": 1})
    mirror: Mirror | None = None
    unique: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"users.email": {}, "users.entra_id": {}, "teams.entra_id": {}}
    )
    """The unique indexes: value -> id of the row that holds it."""

    def copy(self) -> _Tables:
        return _Tables(
            dict(self.users),
            dict(self.teams),
            dict(self.members),
            dict(self.runs),
            list(self.audit),
            dict(self.values),
            dict(self.next_id),
            self.mirror,
            {name: dict(index) for name, index in self.unique.items()},
        )

    def take_id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    # ----------------------------------------------------------------- constraints

    def _index(self, table: str, old: Row | None, row: Row | None, columns: tuple[str, ...]) -> None:
        """Move ``old``'s unique values to ``row``'s; Rejected (nothing changed) if another row holds one."""
        for column in columns:
            value = None if row is None else row[column]
            holder = self.unique[f"{table}.{column}"].get(value) if value is not None else None
            if holder is not None and (row is None or holder != row["id"]):
                raise Rejected(f"duplicate key value violates unique constraint on {table}.{column}")
        for column in columns:
            index = self.unique[f"{table}.{column}"]
            if old is not None and old[column] is not None:
                index.pop(old[column], None)
            if row is not None and row[column] is not None:
                index[row[column]] = row["id"]

    def put_user(self, row: Row) -> None:
        """Insert or replace a user; Rejected as the database would (unique email and Entra id, lengths)."""
        _check_lengths("users", row, USER_LENGTHS)
        self._index("users", self.users.get(row["id"]), row, ("email", "entra_id"))
        self.users[row["id"]] = row

    def put_team(self, row: Row) -> None:
        _check_lengths("teams", row, TEAM_LENGTHS)
        self._index("teams", self.teams.get(row["id"]), row, ("entra_id",))
        self.teams[row["id"]] = row

    def drop_team(self, team_id: int) -> None:
        row = self.teams.pop(team_id, None)
        if row is not None:
            self._index("teams", row, None, ("entra_id",))

    def put_member(self, team_id: int, user_id: int, row: Row) -> None:
        if team_id not in self.teams or user_id not in self.users:
            raise Rejected(f"foreign key: team {team_id} or user {user_id} does not exist")
        if (team_id, user_id) in self.members:
            raise Rejected(f"duplicate key: team_members ({team_id}, {user_id})")
        self.members[(team_id, user_id)] = row


def _check_lengths(table: str, row: Row, lengths: dict[str, int]) -> None:
    for name, limit in lengths.items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise Rejected(f"value too long for {table}.{name} ({limit} characters)")


class MemoryStore:
    """A syncd store in this process's memory (see the module docstring)."""

    def __init__(self) -> None:
        self._tables = _Tables()
        self._mutex = threading.RLock()
        self._run_lock = threading.Lock()
        self._run_lock_holder: dict[str, Any] = {}
        self._locks_held = 0
        self.reports = MemoryReports(self)
        self.local = MemoryLocalAdmin(self)

    url = "memory:"

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: the data lives as long as the object."""

    def ping(self) -> None:
        """Always answers."""

    def schema_revision(self) -> str | None:
        from .migrate import head_revision

        return head_revision()

    def upgrade(self) -> None:
        """Always at the newest schema."""

    def ensure_schema(self) -> None:
        """Always at the newest schema."""

    @contextmanager
    def lock(self, wait_seconds: float = 0, holder: str = "") -> Iterator[None]:
        with locks.thread_lock(self._run_lock, wait_seconds, holder, self._run_lock_holder):
            self._locks_held += 1
            try:
                yield
            finally:
                self._locks_held -= 1

    # ----------------------------------------------------------------- transactions

    @contextmanager
    def _transaction(self) -> Iterator[_Tables]:
        """The tables to change; put back as they were if the block raises."""
        with self._mutex:
            before = self._tables.copy()
            try:
                yield self._tables
            except BaseException:
                self._tables = before
                raise

    @contextmanager
    def write(self) -> Iterator[MemoryWriter]:
        try:
            with self._transaction():
                yield MemoryWriter(self)
        except Rejected as error:
            raise refused(error) from error

    def _read(self) -> _Tables:
        with self._mutex:
            return self._tables.copy()

    # ----------------------------------------------------------------- state

    def load_state(self, *, users: bool = True) -> StoreState:
        state = self._load_state()
        return state if users else StoreState((), state.teams)

    def load_users(
        self, *, entra_ids: Collection[str] = (), emails: Collection[str] = (), ids: Collection[int] = ()
    ) -> list[StoreUser]:
        entra, mail, local = set(entra_ids), set(emails), set(ids)
        return [
            user
            for user in self._load_state().users
            if (user.entra_id is not None and user.entra_id in entra) or user.email in mail or user.id in local
        ]

    def active_admins(self, limit: int) -> list[StoreUser]:
        return [user for user in self._load_state().users if user.active and user.user_type == "admin"][:limit]

    def managed_seats(self) -> int:
        return sum(1 for user in self._load_state().users if user.active and user.entra_id is not None)

    def _load_state(self) -> StoreState:
        tables = self._read()
        members: dict[int, set[int]] = {}
        for team_id, user_id in tables.members:
            members.setdefault(team_id, set()).add(user_id)
        return StoreState(
            users=tuple(
                StoreUser(
                    row["id"],
                    row["email"],
                    row["name"],
                    row["user_type"],
                    row["active"],
                    row["entra_id"],
                    row["inactive_reason"],
                    {attribute.field: row.get(attribute.field) for attribute in USER_ATTRIBUTES},
                )
                for _, row in sorted(tables.users.items())
            ),
            teams=tuple(
                StoreTeam(row["id"], row["name"], row["entra_id"], frozenset(members.get(row["id"], ())))
                for _, row in sorted(tables.teams.items())
            ),
        )

    def seed(self, state: StoreState) -> None:
        """Write ``state`` exactly, ids included (memberships get source ``local``); for tests."""
        now = utc_now()
        with self._transaction() as tables:
            for user in state.users:
                tables.put_user(
                    {
                        "id": user.id,
                        "email": user.email,
                        "name": user.name,
                        **{attribute.field: None for attribute in USER_ATTRIBUTES},
                        **user.attributes,
                        "user_type": user.user_type,
                        "active": user.active,
                        "entra_id": user.entra_id,
                        "inactive_reason": user.inactive_reason,
                        "created_at": now,
                        "updated_at": now,
                        "deactivated_at": None if user.active else now,
                    }
                )
            for team in state.teams:
                tables.put_team(
                    {"id": team.id, "name": team.name, "entra_id": team.entra_id, "created_at": now, "updated_at": now}
                )
                for member in sorted(team.member_ids):
                    tables.put_member(team.id, member, _member_row("local", now, None))
            tables.next_id["users"] = max([tables.next_id["users"], *(u.id + 1 for u in state.users)])
            tables.next_id["teams"] = max([tables.next_id["teams"], *(t.id + 1 for t in state.teams)])

    def load_mirror(self, *, users: bool = True) -> Mirror | None:
        mirror = self._read().mirror
        return mirror if users or mirror is None else replace(mirror, users={})

    def mirror_users(self, user_ids: Collection[str]) -> dict[str, SourceUser]:
        mirror = self._read().mirror
        if mirror is None:
            return {}
        return {user_id: mirror.users[user_id] for user_id in user_ids if user_id in mirror.users}

    def generations(self) -> Generations:
        values = self._read().values
        return Generations(values.get(STATE_GENERATION_KEY, ""), values.get(MIRROR_GENERATION_KEY, ""))

    # ----------------------------------------------------------------- runs

    def begin_run(self, trigger: str, dry_run: bool = False) -> int:
        now = utc_now()
        with self._transaction() as tables:
            if not dry_run and self._locks_held:
                for run_id, row in list(tables.runs.items()):
                    if row["status"] == RunStatus.RUNNING:
                        tables.runs[run_id] = {
                            **row,
                            "status": RunStatus.FAILED.value,
                            "finished_at": now,
                            "changes": 0,
                            "message": INTERRUPTED,
                        }
            run_id = tables.take_id("runs")
            tables.runs[run_id] = {
                "id": run_id,
                "started_at": now,
                "finished_at": None,
                "status": (RunStatus.DRY_RUN if dry_run else RunStatus.RUNNING).value,
                "trigger": trigger,
                "changes": 0,
                "errors": 0,
                "summary": None,
                "message": "",
                "plan": None,
                "graph_requests": None,
            }
        return run_id

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
        values = run_end(
            status,
            changes=changes,
            errors=errors,
            summary=summary,
            message=message,
            plan=plan,
            graph_requests=graph_requests,
        )
        with self._transaction() as tables:
            if run_id in tables.runs:
                tables.runs[run_id] = {**tables.runs[run_id], **values}

    def fail_run(
        self,
        run_id: int,
        message: str,
        *,
        summary: dict[str, Any] | None = None,
        graph_requests: int | None = None,
    ) -> bool:
        with self._transaction() as tables:
            row = tables.runs.get(run_id)
            if row is None or row["status"] != RunStatus.RUNNING:
                return False
            tables.runs[run_id] = {
                **row,
                "finished_at": utc_now(),
                "status": RunStatus.FAILED.value,
                "changes": 0,
                "errors": 1,
                "summary": summary_text(summary),
                "message": message,
                "graph_requests": graph_requests,
            }
        return True

    # ----------------------------------------------------------------- named values

    def get_state(self, key: str) -> str | None:
        return self._read().values.get(key)

    def set_state(self, key: str, value: str) -> None:
        with self._transaction() as tables:
            tables.values[key] = value

    def is_paused(self) -> bool:
        return self.get_state(PAUSED_KEY) == "true"

    def set_paused(self, paused: bool) -> None:
        self.set_state(PAUSED_KEY, "true" if paused else "false")


def _member_row(source: str, now: datetime, run_id: int | None) -> Row:
    return {"source": source, "added_at": now, "added_by_run": run_id}


class MemoryWriter:
    """One write transaction of a :class:`MemoryStore`."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._now = utc_now()

    @property
    def _tables(self) -> _Tables:
        return self._store._tables

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        before = self._tables.copy()
        try:
            yield
        except BaseException:
            self._store._tables = before
            raise

    def _user(self, user_id: int, what: str) -> Row:
        row = self._tables.users.get(user_id)
        if row is None:
            raise Rejected(f"{what} is no longer in the store")
        return row

    def _update_user(self, user_id: int, what: str, **values: Any) -> None:
        self._tables.put_user({**self._user(user_id, what), **values, "updated_at": self._now})

    def _team(self, team_id: int, what: str) -> Row:
        row = self._tables.teams.get(team_id)
        if row is None:
            raise Rejected(f"{what} is no longer in the store")
        return row

    # ----------------------------------------------------------------- users

    def create_users(self, changes: Sequence[CreateUser]) -> None:
        for change in changes:
            self._tables.put_user(
                {
                    "id": self._tables.take_id("users"),
                    **{name: getattr(change, name) for name in USER_FIELDS},
                    "entra_id": change.entra_id,
                    "active": True,
                    "inactive_reason": None,
                    "created_at": self._now,
                    "updated_at": self._now,
                    "deactivated_at": None,
                }
            )

    def adopt_users(self, changes: Sequence[AdoptUser]) -> None:
        for change in changes:
            what = f"unmanaged user {change.email}"
            if self._user(change.user_id, what)["entra_id"] != change.previous_entra_id:
                raise Rejected(f"{what} is no longer in the store")
            self._update_user(change.user_id, what, entra_id=change.entra_id)

    def reactivate_users(self, changes: Sequence[ReactivateUser]) -> None:
        for change in changes:
            self._update_user(
                change.user_id, f"user {change.email}", active=True, inactive_reason=None, deactivated_at=None
            )

    def deactivate_users(self, changes: Sequence[DeactivateUser]) -> None:
        for change in changes:
            self._update_user(
                change.user_id,
                f"user {change.email}",
                active=False,
                inactive_reason=change.reason,
                deactivated_at=self._now,
            )

    def park_emails(self, changes: Sequence[UpdateUser]) -> None:
        for change in changes:
            self._update_user(change.user_id, f"user {change.email}", email=parked_email(change.user_id))

    def set_user_fields(self, changes: Sequence[UpdateUser]) -> None:
        for change in changes:
            self._update_user(change.user_id, f"user {change.email}", **{name: new for name, _, new in change.changes})

    def user_ids(self, entra_ids: Collection[str] | None = None) -> dict[str, int]:
        found = {row["entra_id"]: row["id"] for row in self._tables.users.values() if row["entra_id"] is not None}
        return found if entra_ids is None else {key: found[key] for key in entra_ids if key in found}

    # ----------------------------------------------------------------- teams

    def delete_teams(self, changes: Sequence[DeleteTeam]) -> None:
        doomed = {change.team_id for change in changes}
        tables = self._tables
        tables.members = {key: row for key, row in tables.members.items() if key[0] not in doomed}
        for team_id in doomed:
            tables.drop_team(team_id)

    def rename_teams(self, changes: Sequence[RenameTeam]) -> None:
        for change in changes:
            row = self._team(change.team_id, f"team {change.old_name}")
            self._tables.put_team({**row, "name": change.name, "updated_at": self._now})

    def replace_teams(self, changes: Sequence[ReplaceTeam]) -> None:
        for change in changes:
            what = f"unmanaged team {change.name}"
            row = self._team(change.team_id, what)
            if row["entra_id"] is not None:
                raise Rejected(f"{what} is no longer in the store")
            self._tables.put_team({**row, "entra_id": change.entra_id, "updated_at": self._now})

    def create_teams(self, changes: Sequence[CreateTeam]) -> None:
        for change in changes:
            self._tables.put_team(
                {
                    "id": self._tables.take_id("teams"),
                    "name": change.name,
                    "entra_id": change.entra_id,
                    "created_at": self._now,
                    "updated_at": self._now,
                }
            )

    def team_ids(self) -> dict[str, int]:
        return {row["entra_id"]: row["id"] for row in self._tables.teams.values() if row["entra_id"] is not None}

    # ----------------------------------------------------------------- memberships

    def remove_members(self, changes: Sequence[RemoveMember]) -> None:
        for change in changes:
            self._tables.members.pop((change.team_id, change.user_id), None)

    def add_members(self, pairs: Sequence[tuple[int, int]], run_id: int) -> None:
        for team_id, user_id in pairs:
            self._tables.put_member(team_id, user_id, _member_row("sync", self._now, run_id))

    # ----------------------------------------------------------------- the mirror

    def save_mirror(self, feed: MirrorFeed) -> None:
        tables = self._tables
        tables.mirror = apply_feed(tables.mirror, feed)
        tables.values[CURSOR_KEY] = cursor_json(feed.cursor)
        if feed.incremental:
            tables.values[INCREMENTAL_AT_KEY] = iso(self._now) or ""

    def set_value(self, key: str, value: str | None) -> None:
        if value is None:
            self._tables.values.pop(key, None)
        else:
            self._tables.values[key] = value

    def generations(self) -> Generations:
        values = self._tables.values
        return Generations(values.get(STATE_GENERATION_KEY, ""), values.get(MIRROR_GENERATION_KEY, ""))

    def bump(self, *, state: bool, mirror: bool) -> Generations:
        values = self._tables.values
        if state:
            values[STATE_GENERATION_KEY] = new_generation()
        if mirror:
            values[MIRROR_GENERATION_KEY] = new_generation()
        return Generations(values.get(STATE_GENERATION_KEY, ""), values.get(MIRROR_GENERATION_KEY, ""))

    # ----------------------------------------------------------------- audit and journal

    def write_audit(self, run_id: int, rows: Sequence[AuditRow]) -> None:
        tables = self._tables
        if run_id not in tables.runs:
            raise Rejected(f"foreign key: run {run_id} does not exist")
        for row in rows:
            tables.audit.append(
                {
                    "id": tables.take_id("audit"),
                    "run_id": run_id,
                    "at": self._now,
                    "op": row.op,
                    "object_kind": row.object_kind,
                    "target": row.target,
                    "entra_id": row.entra_id,
                    "before": row.before,
                    "after": row.after,
                    "status": row.status,
                    "error_code": row.error_code,
                    "message": row.message,
                }
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
        row = self._tables.runs.get(run_id)
        if row is None or row["status"] != RunStatus.RUNNING:
            raise StoreError(f"run {run_id} is no longer running; its changes are not applied", code="STORE_FAILED")
        self._tables.runs[run_id] = {**row, **values}


class MemoryReports:
    """Users, teams, counts, runs and the audit of a :class:`MemoryStore`."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def users(self) -> list[dict[str, Any]]:
        tables = self._store._read()
        return [user_dict(_Row(row)) for row in sorted(tables.users.values(), key=lambda row: row["email"])]

    def teams(self) -> list[dict[str, Any]]:
        tables = self._store._read()
        members: dict[int, list[str]] = {}
        for team_id, user_id in tables.members:
            members.setdefault(team_id, []).append(tables.users[user_id]["email"])
        return [
            {
                "name": row["name"],
                "entra_id": row["entra_id"],
                "managed": row["entra_id"] is not None,
                "members": sorted(members.get(row["id"], [])),
            }
            for row in sorted(tables.teams.values(), key=lambda row: (row["name"], row["id"]))
        ]

    def counts(self) -> dict[str, int]:
        tables = self._store._read()
        active = sum(1 for row in tables.users.values() if row["active"])
        return {"active_users": active, "inactive_users": len(tables.users) - active, "teams": len(tables.teams)}

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        tables = self._store._read()
        return [run_dict(_Row(row)) for _, row in sorted(tables.runs.items(), reverse=True)[:limit]]

    def run(self, run_id: int) -> dict[str, Any] | None:
        row = self._store._read().runs.get(run_id)
        return None if row is None else run_dict(_Row(row))

    def last_run(self) -> dict[str, Any] | None:
        latest = self.runs(limit=1)
        return latest[0] if latest else None

    def last_success_at(self) -> datetime | None:
        finished = [
            row["finished_at"]
            for row in self._store._read().runs.values()
            if row["status"] in (RunStatus.SUCCESS, RunStatus.PARTIAL) and row["finished_at"] is not None
        ]
        return max(finished, default=None)

    def audit_of(self, entra_id: str, limit: int = 10) -> list[dict[str, Any]]:
        rows = [row for row in self._store._read().audit if row["entra_id"] == entra_id]
        return [audit_dict(_Row(row)) for row in reversed(rows[-limit:])]

    def problems(self, runs: int = 20) -> list[dict[str, Any]]:
        tables = self._store._read()
        recent = [row for _, row in sorted(tables.runs.items(), reverse=True) if row["status"] != RunStatus.DRY_RUN]
        recent = recent[:runs]
        ids = {row["id"] for row in recent}
        grouped: dict[tuple[int, str, str], list[datetime]] = {}
        for row in tables.audit:
            if row["run_id"] in ids and row["error_code"] is not None:
                grouped.setdefault((row["run_id"], row["error_code"], row["status"]), []).append(row["at"])
        audited = [
            (run_id, max(moments), code, status, len(moments)) for (run_id, code, status), moments in grouped.items()
        ]
        ended = [(row["id"], row["finished_at"] or row["started_at"], row["status"], row["message"]) for row in recent]
        return problem_summary(audited, ended)

    def run_plan(self, run_id: int) -> str | None:
        row = self._store._read().runs.get(run_id)
        return None if row is None else row.get("plan")

    def reads(self) -> dict[str, Any]:
        values = self._store._read().values
        return reads_summary(values.get(CURSOR_KEY), values.get(INCREMENTAL_AT_KEY))

    def audit(self, run_id: int | None = None, limit: int | None = 1000) -> list[dict[str, Any]]:
        tables = self._store._read()
        if run_id is None:
            applied = [key for key, row in tables.runs.items() if row["status"] != RunStatus.DRY_RUN]
            if not applied:
                return []
            run_id = max(applied)
        rows = [_Row(row) for row in tables.audit if row["run_id"] == run_id]
        if not rows and run_id in tables.runs:
            refused = refused_rows(_Row(tables.runs[run_id]))
            return refused if limit is None else refused[:limit]
        return [audit_dict(row) for row in (rows if limit is None else rows[:limit])]


class MemoryLocalAdmin:
    """Users and teams made by hand in a :class:`MemoryStore`."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def create_user(self, email: str, name: str, user_type: str = "member") -> dict[str, Any]:
        email, name = local_user(email, name, user_type)
        now = utc_now()
        with self._store._transaction() as tables:
            if any(row["email"] == email for row in tables.users.values()):
                raise InputError(f"a user with email {email} already exists")
            row = {
                "id": tables.take_id("users"),
                "email": email,
                "name": name,
                **{attribute.field: None for attribute in USER_ATTRIBUTES},
                "user_type": user_type,
                "active": True,
                "entra_id": None,
                "inactive_reason": None,
                "created_at": now,
                "updated_at": now,
                "deactivated_at": None,
            }
            tables.put_user(row)
            tables.values[STATE_GENERATION_KEY] = new_generation()
        return user_dict(_Row(row))

    def create_team(self, name: str, member_emails: Sequence[str] = ()) -> dict[str, Any]:
        name, emails = local_team(name, member_emails)
        now = utc_now()
        with self._store._transaction() as tables:
            if any(row["name"] == name for row in tables.teams.values()):
                raise InputError(f"a team named {name!r} already exists")
            by_email = {row["email"]: row for row in tables.users.values()}
            check_members(emails, {email: by_email[email]["active"] for email in emails if email in by_email})
            team_id = tables.take_id("teams")
            tables.put_team({"id": team_id, "name": name, "entra_id": None, "created_at": now, "updated_at": now})
            for email in emails:
                tables.put_member(team_id, by_email[email]["id"], _member_row("local", now, None))
            tables.values[STATE_GENERATION_KEY] = new_generation()
        return {"name": name, "entra_id": None, "managed": False, "members": emails}
