"""The values every stage of syncd agrees on.

Two sides meet in the planner:

* a :class:`Snapshot` is what Microsoft Graph says about one enterprise application: its app
  roles, who is assigned to it, the assigned groups with their direct members, and the
  attributes of every user it mentions.  It holds Graph's facts as Graph gives them; the
  normalisation rules below turn them into what the store should hold.
* a :class:`StoreState` is what the local SQL store holds right now.

Everything here is frozen and imports only the standard library.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"
BUILTIN_USER_TYPES = ("admin", "member", "viewer", "guest")
DEFAULT_PRECEDENCE = ("admin", "custom", "member", "viewer", "guest")

Scope = Literal["assigned", "all"]
InactiveReason = Literal["unassigned", "disabled", "deleted"]
PrincipalType = Literal["User", "Group"]


# --------------------------------------------------------------------------- Graph side


@dataclass(frozen=True, slots=True)
class AppRole:
    """One app role of the enterprise application."""

    id: str
    display_name: str = ""
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """One appRoleAssignment: a user or group holds an app role of the application."""

    principal_id: str
    principal_type: PrincipalType
    app_role_id: str = DEFAULT_ACCESS_ROLE_ID


@dataclass(frozen=True, slots=True)
class SourceUser:
    """A user as Graph returned it (only the fields syncd selects)."""

    id: str
    user_principal_name: str | None = None
    mail: str | None = None
    display_name: str | None = None
    job_title: str | None = None
    account_enabled: bool | None = True


@dataclass(frozen=True, slots=True)
class SourceGroup:
    """A group with its user members.

    ``member_ids`` are the direct user members (all transitive user members when nested groups
    are flattened).  ``None`` means the member list could not be read: the team is then left
    exactly as it is.
    """

    id: str
    display_name: str
    member_ids: tuple[str, ...] | None = ()


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """Something Graph did not deliver; makes the snapshot incomplete."""

    code: str
    message: str
    path: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Graph's view of the application, as fetched in one cycle.

    ``scope`` "assigned": users and groups in scope are those assigned to the application (and
    the members of assigned groups).  ``scope`` "all": every user in ``users`` and every group
    in ``groups`` is in scope.  ``users`` may also hold users looked up only to learn why they
    left scope (disabled); ``deleted_user_ids`` are users Graph answered 404 for.
    """

    scope: Scope = "assigned"
    app_roles: tuple[AppRole, ...] = ()
    assignments: tuple[Assignment, ...] = ()
    groups: tuple[SourceGroup, ...] = ()
    users: tuple[SourceUser, ...] = ()
    deleted_user_ids: frozenset[str] = frozenset()
    failures: tuple[FetchFailure, ...] = ()
    partial: bool = False
    """True for an on-demand snapshot of one principal: nothing is deprovisioned by absence ..."""
    subjects: frozenset[str] = frozenset()
    """... except for these principals (user or group ids), which a partial snapshot knows in full:
    a subject user absent from scope is unassigned, a subject group absent from scope is gone, and a
    subject group's member list is its whole member list."""

    @property
    def complete(self) -> bool:
        return not self.failures

    def user_by_id(self) -> dict[str, SourceUser]:
        return {user.id: user for user in self.users}


# --------------------------------------------------------------------------- store side


@dataclass(frozen=True, slots=True)
class StoreUser:
    id: int
    email: str
    name: str
    title: str | None = None
    user_type: str = "member"
    active: bool = True
    entra_id: str | None = None
    inactive_reason: str | None = None

    @property
    def managed(self) -> bool:
        return self.entra_id is not None


@dataclass(frozen=True, slots=True)
class StoreTeam:
    id: int
    name: str
    entra_id: str | None = None
    member_ids: frozenset[int] = frozenset()

    @property
    def managed(self) -> bool:
        return self.entra_id is not None


@dataclass(frozen=True, slots=True)
class StoreState:
    users: tuple[StoreUser, ...] = ()
    teams: tuple[StoreTeam, ...] = ()


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class Policy:
    """The configuration that shapes a plan (a pure value, built from ``[sync]`` and ``[roles]``)."""

    email_attribute: Literal["userPrincipalName", "mail"] = "userPrincipalName"
    default_user_type: str = "member"
    provision_user_type: bool = True
    precedence: tuple[str, ...] = DEFAULT_PRECEDENCE
    role_map: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- normalisation

_SPACES = re.compile(r"\s+")
_KEPT_PUNCTUATION = frozenset("-'.\u2019")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9 .'-]*")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def normalise_name(display_name: str | None) -> str:
    """Remove special characters: keep letters, marks, digits, spaces, hyphens, apostrophes, periods.

    >>> normalise_name("Zoë O'Brien (Contractor) #1")
    "Zoë O'Brien Contractor 1"
    """
    if not display_name:
        return ""
    if _PLAIN_NAME.fullmatch(display_name):  # the common case, without a look at every character
        return _SPACES.sub(" ", display_name).strip()
    text = unicodedata.normalize("NFC", display_name)
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category[0] in "LM" or category == "Nd" or char in _KEPT_PUNCTUATION:
            kept.append(char)
        elif char.isspace():
            kept.append(" ")
    return _SPACES.sub(" ", "".join(kept)).strip()


def guest_upn_to_email(upn: str) -> str:
    """``alice_fabrikam.com#EXT#@contoso.onmicrosoft.com`` -> ``alice@fabrikam.com``."""
    marker = upn.upper().find("#EXT#")
    if marker < 0:
        return upn
    local = upn[:marker]
    at = local.rfind("_")
    if at <= 0:
        return upn
    return f"{local[:at]}@{local[at + 1 :]}"


def user_email(user: SourceUser, attribute: str = "userPrincipalName") -> str | None:
    """The email (and username) syncd stores for a Graph user, or None when it has none usable."""
    raw = user.mail if attribute == "mail" else user.user_principal_name
    if not raw:
        return None
    email = unicodedata.normalize("NFC", guest_upn_to_email(raw.strip())).lower()
    return email if _EMAIL.match(email) else None


def user_name(user: SourceUser, email: str) -> str:
    return normalise_name(user.display_name) or email.split("@", 1)[0]


def is_custom_role_id(user_type: str) -> bool:
    return user_type.isdigit()
