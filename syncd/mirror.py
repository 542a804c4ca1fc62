"""The mirror: what Graph said about the application, kept between runs so a run can read only changes.

A :class:`Mirror` holds the application's assignments (with their ids), its assigned groups with
their user members, and the users in scope, as the last complete read left them, plus the
:class:`Cursor` (the delta links) that reads what changed since.  An incremental run reads one
delta round of users, groups and assignments (a :class:`DeltaRound`), folds it into the mirror
(:func:`fold_assignments_and_groups`, then :func:`fold_users` once the groups and users Graph did
not describe are read), and makes from the result the same :class:`~syncd.model.Snapshot` a full
read would (:func:`snapshot_of`).  The planner never knows which read it got.

Rules of the fold, from Graph's delta documentation:

* an item is the object as it is now; the same object may come again (a replay), so folding is
  idempotent;
* a user ``@removed`` with reason ``changed`` is in the deleted items: it disappears from every
  list but keeps its memberships and assignments, which come back if it is restored (it then
  comes as a new user); reason ``deleted`` is gone for good;
* ``members@delta`` joins and leaves members; a large group comes in several parts;
* an assignment ``@removed`` is known only by its id.

Pure: imports only :mod:`syncd.model`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .model import USER_ATTRIBUTES, AppRole, Assignment, PrincipalType, Snapshot, SourceGroup, SourceUser

# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class MirrorAssignment:
    """An appRoleAssignment of the application, with its id (a removal names only the id)."""

    id: str
    principal_id: str
    principal_type: PrincipalType
    app_role_id: str

    @property
    def assignment(self) -> Assignment:
        return Assignment(self.principal_id, self.principal_type, self.app_role_id)


@dataclass(frozen=True, slots=True)
class MirrorGroup:
    """An assigned group: its name and the ids of its user members (users in the deleted items included)."""

    id: str
    display_name: str
    member_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next delta round starts, and what the links were made for."""

    users: str
    """The users' delta link."""
    groups: str
    """The groups' delta link."""
    assignments: str | None
    """The assignments' delta link; None when Graph refused it and assignments are listed whole."""
    selection: str
    """The user properties the links select (``$select``); another selection needs a full read."""
    full_at: datetime
    """When the full read these links continue was made."""

    @property
    def mode(self) -> str:
        """``delta`` or ``listing`` (assignments listed whole every run)."""
        return "delta" if self.assignments is not None else "listing"


@dataclass(frozen=True, slots=True)
class Mirror:
    users: Mapping[str, SourceUser] = field(default_factory=dict)
    """The users in scope (members of assigned groups, or assigned directly), by id."""
    hidden: frozenset[str] = frozenset()
    """Users in the deleted items: their memberships and assignments are kept, but not shown."""
    groups: Mapping[str, MirrorGroup] = field(default_factory=dict)
    assignments: Mapping[str, MirrorAssignment] = field(default_factory=dict)
    cursor: Cursor | None = None
    app_roles: tuple[AppRole, ...] = ()
    """The application's app roles as the last read found them (``syncd explain`` names roles by them)."""

    def assigned_group_ids(self) -> set[str]:
        return {item.principal_id for item in self.assignments.values() if item.principal_type == "Group"}

    def scope_user_ids(self) -> set[str]:
        """Every user the mirror's assignments and groups put in scope (hidden ones included)."""
        direct = {item.principal_id for item in self.assignments.values() if item.principal_type == "User"}
        members = {member for group in self.groups.values() for member in group.member_ids}
        return direct | members


@dataclass(frozen=True, slots=True)
class RemovedUser:
    id: str
    reason: str
    """``changed`` (deleted items) or ``deleted`` (gone for good)."""


@dataclass(frozen=True, slots=True)
class GroupItem:
    """One ``/groups/delta`` item, or one part of it."""

    id: str
    display_name: str | None = None
    joined: tuple[str, ...] = ()
    """User members that joined (or are members, in a first round)."""
    left: tuple[str, ...] = ()
    removed: bool = False
    """The group itself is deleted."""


@dataclass(frozen=True, slots=True)
class DeltaRound:
    """What one round of the three delta queries said, decoded; the new links in ``cursor``."""

    users: tuple[SourceUser | RemovedUser, ...] = ()
    groups: tuple[GroupItem, ...] = ()
    assignments: tuple[MirrorAssignment | str, ...] = ()
    """Assignments made (of this application) or, as a plain id, removed."""
    listed_assignments: tuple[MirrorAssignment, ...] | None = None
    """In listing mode: every assignment of the application, in place of ``assignments``."""
    cursor: Cursor | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """What a fold needs read before it is done: groups newly assigned, users newly in scope."""

    group_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()


# --------------------------------------------------------------------------- folding a round


def touches(mirror: Mirror, round_: DeltaRound, watched: frozenset[str] = frozenset()) -> bool:
    """Whether folding ``round_`` into ``mirror`` could change the mirror, or the round concerns a
    user in ``watched``: an assignment of the application made, changed or removed (or, listed, any
    difference), any change to an assigned group, any change to a user in scope, in the deleted
    items or watched.  A round that touches nothing leaves the mirror's content, and so the snapshot
    made from it, as it was: changes to the rest of the tenant are not the application's.

    ``mirror`` may be one loaded without its users' properties (it needs only who is in scope).
    """
    if round_.listed_assignments is not None:
        if {item.id: item for item in round_.listed_assignments} != dict(mirror.assignments):
            return True
    else:
        for change in round_.assignments:
            if isinstance(change, str) and change in mirror.assignments:
                return True
            if not isinstance(change, str) and mirror.assignments.get(change.id) != change:
                return True
    if any(item.id in mirror.groups for item in round_.groups):
        return True
    people = mirror.scope_user_ids() | mirror.hidden | watched
    return any(user.id in people for user in round_.users)


def fold_assignments_and_groups(mirror: Mirror, round_: DeltaRound) -> tuple[Mirror, tuple[str, ...]]:
    """The mirror with the round's assignment and group changes, and the groups newly assigned
    (their names and whole member lists must be read: a delta names only what changed)."""
    if round_.listed_assignments is not None:
        assignments = {item.id: item for item in round_.listed_assignments}
    else:
        assignments = dict(mirror.assignments)
        for change in round_.assignments:
            if isinstance(change, str):
                assignments.pop(change, None)
            else:
                assignments[change.id] = change
    groups = dict(mirror.groups)
    for item in round_.groups:
        current = groups.get(item.id)
        if item.removed:
            groups.pop(item.id, None)
            continue
        if current is None:
            continue  # not assigned (or newly assigned: read whole below)
        members = (set(current.member_ids) | set(item.joined)) - set(item.left)
        name = item.display_name if item.display_name is not None else current.display_name
        groups[item.id] = MirrorGroup(item.id, name, frozenset(members))
    assigned = {item.principal_id for item in assignments.values() if item.principal_type == "Group"}
    groups = {group_id: group for group_id, group in groups.items() if group_id in assigned}
    new_groups = tuple(sorted(assigned - groups.keys()))
    return replace(mirror, assignments=assignments, groups=groups), new_groups


def add_groups(mirror: Mirror, read: Iterable[MirrorGroup]) -> Mirror:
    """The mirror with groups read whole (newly assigned ones)."""
    groups = dict(mirror.groups)
    groups.update((group.id, group) for group in read)
    return replace(mirror, groups=groups)


def fold_users(
    mirror: Mirror, round_: DeltaRound, read: Iterable[SourceUser] = (), among: Collection[str] | None = None
) -> tuple[Mirror, tuple[str, ...]]:
    """The mirror with the round's user changes and the users ``read`` by id, limited to the users
    in scope; and the users in scope it still knows nothing about (to read by id), of those
    ``among`` when the mirror holds only some of its users (every other one is as stored)."""
    users = dict(mirror.users)
    hidden = set(mirror.hidden)
    scope = mirror.scope_user_ids()
    for item in round_.users:
        if isinstance(item, RemovedUser):
            users.pop(item.id, None)
            if item.reason == "changed" and item.id in scope:
                hidden.add(item.id)
            else:
                hidden.discard(item.id)
            continue
        if item.id in scope or item.id in users:
            users[item.id] = item
            hidden.discard(item.id)
    for user in read:
        users[user.id] = user
        hidden.discard(user.id)
    hidden &= scope
    users = {user_id: user for user_id, user in users.items() if user_id in scope}
    unknown = scope - users.keys() - hidden
    missing = tuple(sorted(unknown if among is None else unknown.intersection(among)))
    return replace(mirror, users=users, hidden=frozenset(hidden)), missing


def concerned(before: Mirror, after: Mirror, round_: DeltaRound, groups: Collection[str] = ()) -> set[str]:
    """The users a round concerns, from two outlines of the mirror (its users' properties need not
    be there) and the round: every user the round describes, every user who entered or left scope,
    whose direct assignment changed, or who joined or left an assigned group, and every member of
    a group that was assigned, unassigned, renamed or deleted (or is among ``groups``)."""
    users = {item.id for item in round_.users}
    users |= before.scope_user_ids() ^ after.scope_user_ids()
    whole = set(groups)
    for key in before.assignments.keys() | after.assignments.keys():
        old, new = before.assignments.get(key), after.assignments.get(key)
        if old == new:
            continue
        for item in (old, new):
            if item is not None:
                (users if item.principal_type == "User" else whole).add(item.principal_id)
    for group_id in before.groups.keys() | after.groups.keys():
        old_group, new_group = before.groups.get(group_id), after.groups.get(group_id)
        if old_group == new_group:
            continue
        if old_group is None or new_group is None or old_group.display_name != new_group.display_name:
            whole.add(group_id)
        else:
            users |= old_group.member_ids ^ new_group.member_ids
    for group_id in whole:
        for group in (before.groups.get(group_id), after.groups.get(group_id)):
            if group is not None:
                users |= group.member_ids
    return users


def drop_purged(mirror: Mirror, round_: DeltaRound) -> Mirror:
    """Users deleted for good leave the member lists too (their ``members@delta`` may come late)."""
    gone = {item.id for item in round_.users if isinstance(item, RemovedUser) and item.reason == "deleted"}
    if not gone:
        return mirror
    groups = {
        group_id: replace(group, member_ids=group.member_ids - gone) if group.member_ids & gone else group
        for group_id, group in mirror.groups.items()
    }
    assignments = {
        key: item
        for key, item in mirror.assignments.items()
        if not (item.principal_type == "User" and item.principal_id in gone)
    }
    return replace(mirror, groups=groups, assignments=assignments)


def with_cursor(mirror: Mirror, cursor: Cursor | None, app_roles: tuple[AppRole, ...] | None = None) -> Mirror:
    return replace(mirror, cursor=cursor, app_roles=mirror.app_roles if app_roles is None else app_roles)


# --------------------------------------------------------------------------- mirror <-> snapshot


def snapshot_of(mirror: Mirror, app_roles: tuple[AppRole, ...]) -> Snapshot:
    """The snapshot a full read of the application would give now: users in the deleted items are
    in no list, as Graph lists them nowhere."""
    hidden = mirror.hidden
    assignments = sorted(
        {
            item.assignment
            for item in mirror.assignments.values()
            if not (item.principal_type == "User" and item.principal_id in hidden)
        },
        key=lambda a: (a.principal_type, a.principal_id, a.app_role_id),
    )
    groups = tuple(
        SourceGroup(group.id, group.display_name, tuple(sorted(group.member_ids - hidden)))
        for group in sorted(mirror.groups.values(), key=lambda group: group.id)
    )
    users = tuple(sorted((user for user in mirror.users.values()), key=lambda user: user.id))
    return Snapshot(scope="assigned", app_roles=app_roles, assignments=tuple(assignments), groups=groups, users=users)


def mirror_of(snapshot: Snapshot, assignment_ids: Mapping[Assignment, str], cursor: Cursor | None) -> Mirror:
    """The mirror of a complete full read (before any user was looked up to explain a departure)."""
    groups = {
        group.id: MirrorGroup(group.id, group.display_name, frozenset(group.member_ids or ()))
        for group in snapshot.groups
    }
    assignments = {
        assignment_ids[a]: MirrorAssignment(assignment_ids[a], a.principal_id, a.principal_type, a.app_role_id)
        for a in snapshot.assignments
        if a in assignment_ids
    }
    mirror = Mirror(
        users={user.id: user for user in snapshot.users},
        groups=groups,
        assignments=assignments,
        cursor=cursor,
        app_roles=snapshot.app_roles,
    )
    scope = mirror.scope_user_ids()
    return replace(mirror, users={user_id: user for user_id, user in mirror.users.items() if user_id in scope})


# --------------------------------------------------------------------------- what a run writes


@dataclass(frozen=True, slots=True)
class MirrorFeed:
    """What a read changes in the stored mirror; written in the run's transaction, cursor included."""

    cursor: Cursor
    users: tuple[SourceUser, ...] = ()
    """Users to write (new or changed)."""
    dropped_users: tuple[str, ...] = ()
    hidden: frozenset[str] = frozenset()
    """Every user now in the deleted items (the whole set)."""
    groups: tuple[MirrorGroup, ...] = ()
    dropped_groups: tuple[str, ...] = ()
    assignments: tuple[MirrorAssignment, ...] = ()
    dropped_assignments: tuple[str, ...] = ()
    replace: bool = False
    """A full read: the stored mirror is replaced whole."""
    app_roles: tuple[AppRole, ...] = ()
    incremental: bool = True
    """Whether the read was a delta round (False: a full read)."""
    hidden_changed: bool = False

    @property
    def changes_content(self) -> bool:
        """Whether the mirror's content changes (not only its cursor)."""
        return self.replace or self.hidden_changed or self.size > 0

    @property
    def size(self) -> int:
        return (
            len(self.users)
            + len(self.dropped_users)
            + len(self.groups)
            + len(self.dropped_groups)
            + len(self.assignments)
            + len(self.dropped_assignments)
        )


def _differs(old: SourceUser | None, new: SourceUser) -> bool:
    return old is not new and old != new  # most users are the very object the mirror held


def feed_between(old: Mirror, new: Mirror, *, incremental: bool) -> MirrorFeed:
    """The writes that turn the stored ``old`` into ``new`` (whole, after a full read)."""
    assert new.cursor is not None
    if not incremental:
        return MirrorFeed(
            new.cursor,
            users=tuple(new.users.values()),
            hidden=new.hidden,
            groups=tuple(new.groups.values()),
            assignments=tuple(new.assignments.values()),
            replace=True,
            incremental=False,
            app_roles=new.app_roles,
        )
    return MirrorFeed(
        new.cursor,
        users=tuple(user for user_id, user in new.users.items() if _differs(old.users.get(user_id), user)),
        dropped_users=tuple(user_id for user_id in old.users if user_id not in new.users),
        hidden=new.hidden,
        groups=tuple(group for group_id, group in new.groups.items() if old.groups.get(group_id) != group),
        dropped_groups=tuple(group_id for group_id in old.groups if group_id not in new.groups),
        assignments=tuple(item for key, item in new.assignments.items() if old.assignments.get(key) != item),
        dropped_assignments=tuple(key for key in old.assignments if key not in new.assignments),
        incremental=True,
        hidden_changed=new.hidden != old.hidden,
        app_roles=new.app_roles,
    )


def apply_feed(mirror: Mirror | None, feed: MirrorFeed) -> Mirror:
    """The mirror a store holds once ``feed`` is written over ``mirror`` (what every store must do)."""
    if feed.replace or mirror is None:
        base = Mirror()
    else:
        base = mirror
    users = dict(base.users)
    for user_id in feed.dropped_users:
        users.pop(user_id, None)
    users.update((user.id, user) for user in feed.users)
    groups = dict(base.groups)
    for group_id in feed.dropped_groups:
        groups.pop(group_id, None)
    groups.update((group.id, group) for group in feed.groups)
    assignments = dict(base.assignments)
    for assignment_id in feed.dropped_assignments:
        assignments.pop(assignment_id, None)
    assignments.update((item.id, item) for item in feed.assignments)
    return Mirror(users, feed.hidden - users.keys(), groups, assignments, feed.cursor, feed.app_roles)


# --------------------------------------------------------------------------- rows, for the stores


def user_json(user: SourceUser) -> str:
    """A user as the store keeps it: its Graph properties, as Graph names them."""
    values: dict[str, Any] = {
        "userPrincipalName": user.user_principal_name,
        "mail": user.mail,
        "displayName": user.display_name,
        "accountEnabled": user.account_enabled,
    }
    values.update(user.attributes)
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def users_from_json(rows: Iterable[tuple[str, str]]) -> dict[str, SourceUser]:
    """The users :func:`user_json` wrote, from ``(id, text)`` rows: decoded as one JSON document,
    not one per user (a store loads a hundred thousand of them)."""
    rows = list(rows)
    if not rows:
        return {}
    decoded = json.loads("[" + ",".join(text for _, text in rows) + "]")
    names = tuple(attribute.graph for attribute in USER_ATTRIBUTES)
    users: dict[str, SourceUser] = {}
    for (user_id, _), values in zip(rows, decoded, strict=True):
        upn, mail = values.pop("userPrincipalName", None), values.pop("mail", None)
        display, enabled = values.pop("displayName", None), values.pop("accountEnabled", True)
        for name in names:
            values.setdefault(name, None)
        users[user_id] = SourceUser(user_id, upn, mail, display, enabled, values)
    return users


def cursor_json(cursor: Cursor) -> str:
    return json.dumps(
        {
            "users": cursor.users,
            "groups": cursor.groups,
            "assignments": cursor.assignments,
            "selection": cursor.selection,
            "full_at": cursor.full_at.isoformat(),
        },
        sort_keys=True,
    )


def cursor_from_json(text: str) -> Cursor | None:
    """The cursor a store kept; None when it cannot be read (a full read follows)."""
    try:
        values = json.loads(text)
        return Cursor(
            users=str(values["users"]),
            groups=str(values["groups"]),
            assignments=None if values.get("assignments") is None else str(values["assignments"]),
            selection=str(values["selection"]),
            full_at=datetime.fromisoformat(values["full_at"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def app_roles_json(roles: tuple[AppRole, ...]) -> str:
    return json.dumps([[role.id, role.display_name, role.value] for role in roles])


def app_roles_from_json(text: str | None) -> tuple[AppRole, ...]:
    try:
        return tuple(
            AppRole(str(i), str(name), None if value is None else str(value))
            for i, name, value in json.loads(text or "[]")
        )
    except (ValueError, TypeError):
        return ()
