"""What changed in a tenant, and when: what Graph's delta queries answer from.

Every change to a user, a group, a membership or an app role assignment takes the next *version*
(a counter of its own, apart from the creation sequence).  A delta token is a version: a round
"since" it returns the objects with a change after it, as they are now.  The log keeps

* per user and group, the version at which each property last changed (an object appears in a
  round only when a selected property changed: "If a property outside $select changes, the object
  doesn't appear"); creation and restoring count as a change of every property;
* per group, the version at which each member last joined or left it, with the member's type;
* per assignment, the version at which it was made or removed;
* a tombstone for every object deleted for good (``deleted``) or moved to the deleted items
  (``changed``), until it is restored;
* a *generation*, raised by :meth:`ChangeLog.reset`: every token of an earlier generation is
  answered 410 Gone, as after Graph's own "internal maintenance or migration of the tenant".
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Tombstone:
    version: int
    seq: int
    kind: str
    """``user`` or ``group``."""
    reason: str
    """``changed`` (in the deleted items, restorable) or ``deleted`` (gone for good)."""


@dataclass(frozen=True, slots=True)
class RemovedAssignment:
    version: int
    seq: int


@dataclass(slots=True)
class ChangeLog:
    version: int = 0
    generation: int = 1
    properties: dict[str, dict[str, int]] = field(default_factory=dict)
    """object id -> property name -> version of its last change (``*``: created or restored)."""
    members: dict[str, dict[str, int]] = field(default_factory=dict)
    """group id -> member id -> version at which it last joined or left."""
    member_types: dict[str, str] = field(default_factory=dict)
    """member id -> its ``@odata.type`` (kept when the member is gone)."""
    assignments: dict[str, int] = field(default_factory=dict)
    """assignment id -> version at which it was made."""
    removed_assignments: dict[str, RemovedAssignment] = field(default_factory=dict)
    tombstones: dict[str, Tombstone] = field(default_factory=dict)
    events: list[tuple[int, str]] = field(default_factory=list)
    """(version, id of the user, group or assignment that changed), in version order: what a round
    since a version looks at, instead of every object of the tenant."""

    def next(self, object_id: str = "") -> int:
        self.version += 1
        if object_id:
            self.events.append((self.version, object_id))
        return self.version

    def changed_since(self, since: int) -> set[str]:
        """The ids of users, groups and assignments with a change after version ``since``."""
        start = bisect.bisect_right(self.events, (since, "\uffff"))
        return {object_id for _, object_id in self.events[start:]}

    def created(self, object_id: str) -> None:
        """A new (or restored) user or group: every property counts as changed."""
        self.properties[object_id] = {"*": self.next(object_id)}
        self.tombstones.pop(object_id, None)

    def changed(self, object_id: str, names: list[str]) -> None:
        version = self.next(object_id)
        changed = self.properties.setdefault(object_id, {})
        for name in names:
            changed[name] = version

    def removed(self, object_id: str, seq: int, kind: str, reason: str) -> None:
        self.tombstones[object_id] = Tombstone(self.next(object_id), seq, kind, reason)
        self.properties.pop(object_id, None)
        if reason == "deleted":
            self.members.pop(object_id, None)

    def membership(self, group_id: str, member_id: str, odata_type: str) -> None:
        self.members.setdefault(group_id, {})[member_id] = self.next(group_id)
        self.member_types[member_id] = odata_type

    def assigned(self, assignment_id: str) -> None:
        self.assignments[assignment_id] = self.next(assignment_id)
        self.removed_assignments.pop(assignment_id, None)

    def unassigned(self, assignment_id: str, seq: int) -> None:
        self.assignments.pop(assignment_id, None)
        self.removed_assignments[assignment_id] = RemovedAssignment(self.next(assignment_id), seq)

    def last_change(self, object_id: str, names: list[str] | None) -> int:
        """The version of the latest change to the object among ``names`` (None: any property)."""
        changed = self.properties.get(object_id, {})
        created = changed.get("*", 0)
        if names is None:
            return max(changed.values(), default=0)
        return max([created, *(changed.get(name, 0) for name in names)])

    def set_since_creation(self, object_id: str, name: str) -> bool:
        """Whether the property was given a value (even null) after the object was created."""
        changed = self.properties.get(object_id, {})
        return changed.get(name, 0) > changed.get("*", 0)

    def reset(self) -> None:
        """Every delta token handed out so far is answered 410 Gone from now on."""
        self.generation += 1
