"""Planning only what changed: the plan of a whole tenant from the part a delta round touched.

A *base* is a snapshot whose plan against the store changed nothing (the store is settled: every
user, team and membership is as the snapshot wants it, or held back by one of the plan's
problems).  When the application changes a little, :func:`focused_diff` plans the new snapshot
against the same store from the objects whose facts changed instead of from all of them:

1. the **focus**: every user whose object, assignments, memberships or deletion changed between
   the two snapshots, every user a problem of the base names, and every member (before and after)
   of a group that was assigned, unassigned, renamed or deleted or that a problem of the base
   names, with the rows of its team and of the local teams named like it;
2. closed over **emails**: the rows that hold an email a focused user claims or holds join it, with
   their users, until no more do, so conflicts, adoptions and rehires are decided among the same
   people as in a full plan;
3. the snapshot and the store **restricted** to the focus (every group and team stays, their member
   lists cut to the focus), planned by the one planner, :func:`~syncd.plan.diff`;
4. the problems are the new plan's: every user the base reports a problem about is in the focus,
   and every group is planned.

Everything outside the focus is settled and its inputs are unchanged, so a full plan would change
nothing there: the focused plan is the full plan.  One rule counts the whole store, [last-admin]:
an active admin outside the focus (which no plan of the focus can take away) joins the restricted
store as a local user in no team, so the rule sees that an admin stays; with none, a focused plan
that takes an admin away (or a base with an admin problem) is not made, and the caller plans in
full.  A property test holds ``focused_diff`` equal to :func:`~syncd.plan.diff`.

The store is read through :class:`Rows`: the rows the focus asks for, every team, the first
admins.  A process that keeps the whole state reads it from memory (:class:`StateRows`); a run
that does not (cron, the timer) asks the database for those rows only.  The snapshots may likewise
hold only the users a delta round concerns: the users the focus comes to besides are unchanged
ones, which :func:`focused` asks the caller for (as the stored mirror has them).

Pure: no I/O, no clock (what ``Rows`` and ``unchanged`` read is the caller's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ..after import state_after
from ..changes import DeactivateUser, Plan, UpdateUser
from ..model import Policy, Snapshot, SourceGroup, SourceUser, StoreState, StoreTeam, StoreUser, user_email

ADMIN = "admin"
ADMIN_PROBLEMS = frozenset({"LAST_ADMIN", "NO_ADMIN_LEFT"})
"""Problems about the store as a whole: a base that has one is planned from in full."""


@dataclass(frozen=True, slots=True)
class Base:
    """A snapshot, and the plan it made against the store as it is now: no changes, its problems."""

    snapshot: Snapshot
    plan: Plan
    watched: frozenset[str] = frozenset()
    """Users whose objects the snapshot may hold without showing it (looked up to explain a
    departure, or left out of it): always in the focus."""


@dataclass(frozen=True, slots=True)
class Focus:
    users: frozenset[str]
    """Entra ids of the users planned."""
    rows: frozenset[int]
    """Local ids of the rows planned (the focused users' rows, the rows holding their emails, and
    the members of the teams of groups planned whole)."""


class Rows(Protocol):
    """The store as a focused plan reads it: the few rows it asks for, every team, the admins."""

    @property
    def teams(self) -> Sequence[StoreTeam]:
        """Every team, with all its members."""
        ...

    def users(
        self, *, entra_ids: Collection[str] = (), emails: Collection[str] = (), ids: Collection[int] = ()
    ) -> list[StoreUser]:
        """The rows with any of these Entra ids, emails or local ids."""
        ...

    def admins(self, limit: int) -> list[StoreUser]:
        """Active admins, the first ``limit`` of them by local id."""
        ...


class StateRows:
    """:class:`Rows` over a whole :class:`~syncd.model.StoreState` (a process that keeps it)."""

    def __init__(self, state: StoreState) -> None:
        self.state = state
        self.by_id = {user.id: user for user in state.users}
        self.by_entra = {user.entra_id: user for user in state.users if user.entra_id}
        self.by_email: dict[str, list[StoreUser]] = defaultdict(list)
        for user in state.users:
            self.by_email[user.email].append(user)
        self._admins: list[StoreUser] | None = None

    @property
    def teams(self) -> Sequence[StoreTeam]:
        return self.state.teams

    def users(
        self, *, entra_ids: Collection[str] = (), emails: Collection[str] = (), ids: Collection[int] = ()
    ) -> list[StoreUser]:
        found = {user.id: user for user in (self.by_entra.get(entra_id) for entra_id in entra_ids) if user}
        found.update((user.id, user) for email in emails for user in self.by_email.get(email, ()))
        found.update((row, self.by_id[row]) for row in ids if row in self.by_id)
        return sorted(found.values(), key=_local_id)

    def admins(self, limit: int) -> list[StoreUser]:
        if self._admins is None:
            active = (user for user in self.state.users if user.active and user.user_type == ADMIN)
            self._admins = sorted(active, key=_local_id)
        return self._admins[:limit]


def _local_id(user: StoreUser) -> int:
    return user.id


@dataclass(frozen=True, slots=True)
class Focused:
    """A plan made from a focus, with the restricted snapshot and store it was made from."""

    plan: Plan
    snapshot: Snapshot
    state: StoreState
    policy: Policy

    def settled(self, user_ids: Mapping[str, int], team_ids: Mapping[str, int]) -> Plan | None:
        """The plan of the same snapshot once this plan is applied in full (``user_ids`` and
        ``team_ids``: the local ids of the users and teams it created), when it changes nothing, as
        planning again after an apply does; None otherwise.  Only the focus changed, so planning
        the focus again is planning everything again."""
        from . import diff

        again = diff(self.snapshot, state_after(self.state, self.plan, user_ids, team_ids), self.policy)
        return None if again.changes or again.held else again


def focused_diff(base: Base, snapshot: Snapshot, state: StoreState, policy: Policy) -> Plan | None:
    """``diff(snapshot, state, policy)`` made from what changed since ``base``; None when it cannot
    be (the caller then plans in full).  ``state`` must be the store ``base.plan`` was made against."""
    made = focused(base, snapshot, StateRows(state), policy)
    return None if made is None else made.plan


def focused(
    base: Base,
    snapshot: Snapshot,
    rows: Rows,
    policy: Policy,
    unchanged: Callable[[Collection[str]], Mapping[str, SourceUser]] | None = None,
) -> Focused | None:
    """:func:`focused_diff`, reading the store through ``rows``, with what it was made from.

    ``snapshot`` (and ``base.snapshot``) may hold only some of the users in scope: a read that
    loaded only the users its round concerns.  Every other user in scope is then one the round did
    not change, and ``unchanged`` gives those the focus comes to (as the stored mirror has them),
    until the focus holds no user in scope the snapshot lacks."""
    from . import diff

    if not _usable(base, snapshot):
        return None
    focus = focus_of(base, snapshot, rows, policy)
    scope = _scope_ids(snapshot) if unchanged is not None else set()  # users added below change no scope
    while focus is not None and unchanged is not None:
        known = {user.id for user in snapshot.users}
        lacking = {user_id for user_id in focus.users if user_id in scope and user_id not in known}
        found = unchanged(lacking) if lacking else {}
        if not found:
            break
        more = tuple(found.values())
        snapshot = replace(snapshot, users=(*snapshot.users, *more))
        base = replace(base, snapshot=replace(base.snapshot, users=(*base.snapshot.users, *more)))
        focus = focus_of(base, snapshot, rows, policy)
    if focus is None:
        return None
    anchor = _anchor(rows, focus)
    part_snapshot, part_state = restrict(snapshot, rows, focus, anchor)
    part = diff(part_snapshot, part_state, policy)
    if part.held or any(problem.code in ADMIN_PROBLEMS for problem in part.errors + part.warnings):
        return None
    if anchor is None and _takes_an_admin(part, part_state):
        return None
    return Focused(part, part_snapshot, part_state, policy)


def _scope_ids(snapshot: Snapshot) -> set[str]:
    users = {a.principal_id for a in snapshot.assignments if a.principal_type == "User"}
    for group in snapshot.groups:
        users.update(group.member_ids or ())
    return users


def _usable(base: Base, snapshot: Snapshot) -> bool:
    before, plan = base.snapshot, base.plan
    return (
        snapshot.scope == before.scope == "assigned"
        and snapshot.complete
        and before.complete
        and not snapshot.partial
        and not before.partial
        and snapshot.app_roles == before.app_roles
        and not plan.changes
        and not plan.held
        and plan.complete
        and not any(problem.code in ADMIN_PROBLEMS for problem in plan.errors + plan.warnings)
    )


def focus_of(base: Base, snapshot: Snapshot, rows: Rows, policy: Policy) -> Focus | None:
    """The users and rows a plan of ``snapshot`` must look at, given the settled ``base``; None when
    a problem of the base names a user this cannot place."""
    before = base.snapshot
    users: set[str] = set(base.watched)
    old_users, new_users = before.user_by_id(), snapshot.user_by_id()
    for user_id in old_users.keys() | new_users.keys():
        old, new = old_users.get(user_id), new_users.get(user_id)
        if old is not new and old != new:
            users.add(user_id)
    users |= before.deleted_user_ids ^ snapshot.deleted_user_ids
    whole: set[str] = set()  # groups planned whole
    for assignment in set(before.assignments) ^ set(snapshot.assignments):
        (users if assignment.principal_type == "User" else whole).add(assignment.principal_id)
    old_groups = {group.id: group for group in before.groups}
    new_groups = {group.id: group for group in snapshot.groups}
    for group_id in old_groups.keys() | new_groups.keys():
        old_group, new_group = old_groups.get(group_id), new_groups.get(group_id)
        if old_group == new_group:
            continue
        if (
            old_group is None
            or new_group is None
            or old_group.display_name != new_group.display_name
            or old_group.member_ids is None
            or new_group.member_ids is None
        ):
            whole.add(group_id)
        else:
            users.update(set(old_group.member_ids) ^ set(new_group.member_ids))
    # a group the base held back (a name conflict, an invalid name) may be placed now: planned whole
    troubled = {problem.entra_id for problem in (*base.plan.errors, *base.plan.warnings) if problem.kind == "group"}
    if not troubled <= old_groups.keys() | new_groups.keys():
        return None
    whole |= troubled
    names: set[str] = set()
    for group_id in whole:
        for group in (old_groups.get(group_id), new_groups.get(group_id)):
            if group is not None:
                users.update(group.member_ids or ())
                names.add(group.display_name.strip())
    # every user the base reports a problem about is planned again: its problem may be over
    named = {problem.entra_id for problem in (*base.plan.errors, *base.plan.warnings) if problem.kind == "user"}
    if named:
        known = _known_ids(before, snapshot) | {user.entra_id or "" for user in rows.users(entra_ids=named)}
        if not named <= known:
            return None  # an id the problem shows escaped or cut: plan in full
        users |= named
    members: set[int] = set()
    for team in rows.teams:
        if team.entra_id in whole or (team.entra_id is None and team.name in names):
            members |= team.member_ids
    return _closed(Focus(frozenset(users), frozenset(members)), snapshot, rows, policy)


def _known_ids(before: Snapshot, snapshot: Snapshot) -> set[str]:
    known: set[str] = set()
    for shot in (before, snapshot):
        known.update(user.id for user in shot.users)
        known.update(assignment.principal_id for assignment in shot.assignments)
        for group in shot.groups:
            known.update(group.member_ids or ())
    return known


def _closed(focus: Focus, snapshot: Snapshot, rows: Rows, policy: Policy) -> Focus:
    """The focus with every row holding an email one of its users claims or holds, and those rows'
    users, until nothing more joins."""
    sources = snapshot.user_by_id()
    users, kept = set(focus.users), set(focus.rows)
    pending = sorted(users)
    emails_seen: set[str] = set()
    pending_rows = rows.users(ids=kept)
    while pending or pending_rows:
        emails = {row.email for row in pending_rows}
        for user_id in pending:
            source = sources.get(user_id)
            claimed = None if source is None else user_email(source, policy.email_attribute)
            if claimed is not None:
                emails.add(claimed)
        for row in rows.users(entra_ids=pending):
            kept.add(row.id)
            emails.add(row.email)
        pending, pending_rows = [], []
        for holder in rows.users(emails=emails - emails_seen):
            if holder.id not in kept:
                kept.add(holder.id)
                pending_rows.append(holder)
            if holder.entra_id and holder.entra_id not in users:
                users.add(holder.entra_id)
                pending.append(holder.entra_id)
        emails_seen |= emails
    return Focus(frozenset(users), frozenset(kept))


def restrict(
    snapshot: Snapshot, rows: Rows, focus: Focus, anchor: StoreUser | None = None
) -> tuple[Snapshot, StoreState]:
    """The snapshot and the store as they concern the focus: its users, their assignments and
    memberships, every group (its members cut to the focus), its rows, and every team (its members
    cut to those rows).  ``anchor``, an active admin outside the focus, stands for the admins the
    store keeps whatever the plan does: shown as a local user in no team, which no plan touches."""
    users = focus.users
    groups = tuple(
        group
        if group.member_ids is None
        else SourceGroup(group.id, group.display_name, tuple(m for m in group.member_ids if m in users))
        for group in snapshot.groups
    )
    part = Snapshot(
        scope=snapshot.scope,
        app_roles=snapshot.app_roles,
        assignments=tuple(a for a in snapshot.assignments if a.principal_type == "Group" or a.principal_id in users),
        groups=groups,
        users=tuple(user for user in snapshot.users if user.id in users),
        deleted_user_ids=snapshot.deleted_user_ids & users,
        failures=snapshot.failures,
    )
    found = tuple(rows.users(entra_ids=users, ids=focus.rows))
    kept = {user.id for user in found}
    teams = tuple(StoreTeam(team.id, team.name, team.entra_id, team.member_ids & kept) for team in rows.teams)
    if anchor is not None:
        found = (*found, replace(anchor, entra_id=None))
    return part, StoreState(found, teams)


def _anchor(rows: Rows, focus: Focus) -> StoreUser | None:
    """An active admin whose row is outside the focus: the plan cannot take it away, so the store
    keeps an admin whatever the plan does ([last-admin] then holds nothing back)."""
    for admin in rows.admins(len(focus.rows) + len(focus.users) + 1):
        if admin.id not in focus.rows and (admin.entra_id is None or admin.entra_id not in focus.users):
            return admin
    return None


def _takes_an_admin(plan: Plan, state: StoreState) -> bool:
    """Whether the plan deactivates or demotes an active admin of ``state`` (the focus's rows): the
    last-admin rule then needs the whole store."""
    admins = {user.id for user in state.users if user.active and user.user_type == ADMIN}
    if not admins:
        return False
    for change in plan.changes:
        if isinstance(change, DeactivateUser) and change.user_id in admins:
            return True
        if (
            isinstance(change, UpdateUser)
            and change.user_id in admins
            and any(name == "user_type" and new != ADMIN for name, _, new in change.changes)
        ):
            return True
    return False
