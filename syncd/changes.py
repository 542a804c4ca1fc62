"""The change records a plan is made of: inert, frozen data.

``syncd plan`` renders them (``render.py``) and ``syncd sync`` applies them (``apply.py``), so
both read the very same objects.  Each record names its objects by Entra id and, where the row
already exists, by local id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .model import WithAttributes, user_fields

FieldChanges = tuple[tuple[str, Any, Any], ...]
"""(field, old, new) triples in a fixed field order."""

USER_FIELDS = user_fields()
"""The user fields a plan sets and compares: email, name, the registry's attributes, user type."""


@dataclass(frozen=True, slots=True)
class CreateUser(WithAttributes):
    """A new user; ``attributes`` holds every attribute of the registry (``title`` ...)."""

    op: ClassVar[str] = "create_user"
    entra_id: str
    email: str
    name: str
    user_type: str
    attributes: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.email

    @property
    def fields(self) -> FieldChanges:
        return tuple((name, None, getattr(self, name)) for name in USER_FIELDS)


@dataclass(frozen=True, slots=True)
class AdoptUser:
    """A local user with the same email and no Entra id becomes managed (Entra id set).

    Also a user whose Entra account was deleted, when a new Entra account has its email: the row is
    re-linked to the new account (``previous_entra_id`` is the deleted one), as Entra's own
    provisioning matches an existing account by its userPrincipalName.
    """

    op: ClassVar[str] = "adopt_user"
    user_id: int
    entra_id: str
    email: str
    previous_entra_id: str | None = None

    @property
    def target(self) -> str:
        return self.email

    @property
    def fields(self) -> FieldChanges:
        return (("entra_id", self.previous_entra_id, self.entra_id),)


@dataclass(frozen=True, slots=True)
class UpdateUser:
    op: ClassVar[str] = "update_user"
    user_id: int
    entra_id: str
    email: str
    changes: FieldChanges

    @property
    def target(self) -> str:
        return self.email

    @property
    def fields(self) -> FieldChanges:
        return self.changes


@dataclass(frozen=True, slots=True)
class DeactivateUser:
    op: ClassVar[str] = "deactivate_user"
    user_id: int
    entra_id: str
    email: str
    reason: str

    @property
    def target(self) -> str:
        return self.email

    @property
    def fields(self) -> FieldChanges:
        return (("active", True, False),)


@dataclass(frozen=True, slots=True)
class ReactivateUser:
    op: ClassVar[str] = "reactivate_user"
    user_id: int
    entra_id: str
    email: str

    @property
    def target(self) -> str:
        return self.email

    @property
    def fields(self) -> FieldChanges:
        return (("active", False, True),)


@dataclass(frozen=True, slots=True)
class CreateTeam:
    op: ClassVar[str] = "create_team"
    entra_id: str
    name: str

    @property
    def target(self) -> str:
        return self.name

    @property
    def fields(self) -> FieldChanges:
        return (("name", None, self.name),)


@dataclass(frozen=True, slots=True)
class RenameTeam:
    op: ClassVar[str] = "rename_team"
    team_id: int
    entra_id: str
    old_name: str
    name: str

    @property
    def target(self) -> str:
        return self.name

    @property
    def fields(self) -> FieldChanges:
        return (("name", self.old_name, self.name),)


@dataclass(frozen=True, slots=True)
class ReplaceTeam:
    """An assigned group takes over the unmanaged team that has its name."""

    op: ClassVar[str] = "replace_team"
    team_id: int
    entra_id: str
    name: str

    @property
    def target(self) -> str:
        return self.name

    @property
    def fields(self) -> FieldChanges:
        return (("entra_id", None, self.entra_id),)


@dataclass(frozen=True, slots=True)
class DeleteTeam:
    op: ClassVar[str] = "delete_team"
    team_id: int
    entra_id: str
    name: str
    member_emails: tuple[str, ...] = ()

    @property
    def target(self) -> str:
        return self.name

    @property
    def fields(self) -> FieldChanges:
        return (("name", self.name, None),)


@dataclass(frozen=True, slots=True)
class AddMember:
    """Team and user are named by Entra id: either may be created earlier in the same plan."""

    op: ClassVar[str] = "add_member"
    team_entra_id: str
    team_name: str
    user_entra_id: str
    email: str

    @property
    def target(self) -> str:
        return self.team_name

    @property
    def entra_id(self) -> str:
        return self.team_entra_id

    @property
    def fields(self) -> FieldChanges:
        return (("member", None, self.email),)


@dataclass(frozen=True, slots=True)
class RemoveMember:
    op: ClassVar[str] = "remove_member"
    team_id: int
    team_entra_id: str
    team_name: str
    user_id: int
    email: str

    @property
    def target(self) -> str:
        return self.team_name

    @property
    def entra_id(self) -> str:
        return self.team_entra_id

    @property
    def fields(self) -> FieldChanges:
        return (("member", self.email, None),)


Change = (
    CreateUser
    | AdoptUser
    | UpdateUser
    | DeactivateUser
    | ReactivateUser
    | CreateTeam
    | RenameTeam
    | ReplaceTeam
    | DeleteTeam
    | AddMember
    | RemoveMember
)

OPS = (
    "adopt_user",
    "reactivate_user",
    "update_user",
    "create_user",
    "deactivate_user",
    "delete_team",
    "rename_team",
    "replace_team",
    "create_team",
    "remove_member",
    "add_member",
)
"""The order in which a plan lists (and apply carries out) its changes: emails move before new users take them."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A per-object error (the object is skipped) or warning (the object is synced)."""

    code: str
    kind: str  # "user" | "group"
    entra_id: str
    target: str
    message: str


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...] = ()
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    complete: bool = True
    held: tuple[Change, ...] = ()
    """Changes the plan holds back (the last admin's): not applied, but what the safety limits count,
    so a mass unassignment is braked even when it would have left an admin."""

    def summary(self) -> dict[str, int]:
        counts = Counter(change.op for change in self.changes)
        return {op: counts[op] for op in OPS if counts[op]}

    def count(self, op: str) -> int:
        return sum(1 for change in self.changes if change.op == op)
