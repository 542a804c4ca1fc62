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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .scope_rules import Rule

DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"
BUILTIN_USER_TYPES = ("admin", "member", "viewer", "guest")
DEFAULT_PRECEDENCE = ("admin", "custom", "member", "viewer", "guest")

Scope = Literal["assigned", "all"]
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
    """A user as Graph returned it (only the properties syncd selects).

    The typed fields are the ones syncd's rules read (identity, email, name, enabled);
    ``attributes`` holds the properties of :data:`USER_ATTRIBUTES`, by their Graph names.
    """

    id: str
    user_principal_name: str | None = None
    mail: str | None = None
    display_name: str | None = None
    account_enabled: bool | None = True
    attributes: Mapping[str, str | None] = field(default_factory=dict)
    derived: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    """Values derived from this user alone (its email, its name), kept once computed.  The mirror
    keeps the same objects from one run of a daemon to the next, so an unchanged user costs nothing
    to normalise again; two users equal in every field are equal whatever they hold here."""


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


class WithAttributes:
    """Gives a value with an ``attributes`` mapping (the store fields of :data:`USER_ATTRIBUTES`)
    each of them as an attribute: ``user.title`` is ``user.attributes["title"]``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> str | None:
        if name.startswith("__"):
            raise AttributeError(name)
        attributes: Mapping[str, str | None] = object.__getattribute__(self, "attributes")
        try:
            return attributes[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}") from None


@dataclass(frozen=True, slots=True)
class StoreUser(WithAttributes):
    id: int
    email: str
    name: str
    user_type: str = "member"
    active: bool = True
    entra_id: str | None = None
    inactive_reason: str | None = None
    attributes: Mapping[str, str | None] = field(default_factory=dict)
    """The store fields of :data:`USER_ATTRIBUTES` (every one of them, None when empty)."""


@dataclass(frozen=True, slots=True)
class StoreTeam:
    id: int
    name: str
    entra_id: str | None = None
    member_ids: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class StoreState:
    users: tuple[StoreUser, ...] = ()
    teams: tuple[StoreTeam, ...] = ()


@dataclass(frozen=True, slots=True)
class ManagedUser:
    """A user the store manages, as a source needs to know it."""

    email: str
    active: bool
    inactive_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Managed:
    """What the store already manages, by Entra id: all a source is told about the store.

    A source uses it to gather evidence about these objects (why a managed user left scope), and
    to find, by the email or name the store holds, a user or group Graph no longer has by that name.
    """

    users: Mapping[str, ManagedUser] = field(default_factory=dict)
    teams: Mapping[str, str] = field(default_factory=dict)
    """Entra id -> team name."""

    @classmethod
    def of(cls, state: StoreState) -> Managed:
        return cls(
            users={
                user.entra_id: ManagedUser(user.email, user.active, user.inactive_reason)
                for user in state.users
                if user.entra_id
            },
            teams={team.entra_id: team.name for team in state.teams if team.entra_id},
        )

    def user_with_email(self, email: str) -> str | None:
        """The Entra id of the managed user with ``email`` (compared lowercased), if any."""
        wanted = email.strip().lower()
        return next((entra_id for entra_id, user in self.users.items() if user.email == wanted), None)

    def team_named(self, name: str) -> str | None:
        """The Entra id of the managed team called ``name``, if any."""
        return next((entra_id for entra_id, team in self.teams.items() if team == name), None)


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class Policy:
    """The configuration that shapes a plan (a pure value, built from ``[sync]`` and ``[roles]``)."""

    email_attribute: Literal["userPrincipalName", "mail"] = "userPrincipalName"
    default_user_type: str = "member"
    provision_user_type: bool = True
    precedence: tuple[str, ...] = DEFAULT_PRECEDENCE
    role_map: Mapping[str, str] = field(default_factory=dict)
    allow_last_admin: bool = False
    """Apply even the change that would leave the store without an active admin (``--allow-last-admin``)."""
    scope_rules: tuple[Rule, ...] = ()
    """``[[scope.rules]]``: attribute conditions an assigned user must meet to be in scope."""


# --------------------------------------------------------------------------- what the store can hold

EMAIL_LENGTH = 320
"""The longest email (and username) the store holds, in characters."""
NAME_LENGTH = 255
"""The longest user name or team name the store holds."""
TITLE_LENGTH = NAME_LENGTH
"""The longest job title the store holds."""
ENTRA_ID_LENGTH = 64
"""The longest Entra object id the store holds (Graph's ids are 36-character GUIDs)."""
USER_TYPE_LENGTH = 32
"""The longest user type (a custom role id has at most this many digits)."""


# --------------------------------------------------------------------------- the attribute registry


def _as_given(value: str | None) -> str | None:
    """Graph's value as it is; an empty string is no value."""
    return value or None


@dataclass(frozen=True, slots=True)
class UserAttribute:
    """A user attribute copied from a Graph user property into a store column of its own.

    The one definition of it: the Graph ``$select``, the decoders, snapshot files, the store's
    columns, loading the state, the planner's comparison and the audit are all derived from
    :data:`USER_ATTRIBUTES`.  Adding one (say ``department``) is one line there plus a migration
    that adds its column.  The email, the name and the user type are not here: rules of their own
    make them (README, "Attribute rules").
    """

    field: str
    """The store column, and the attribute's name in changes, plans and the audit."""
    graph: str
    """The Graph user property it is read from (and its key in snapshot files)."""
    length: int = NAME_LENGTH
    """The longest value the column holds; a longer one is ``USER_INVALID``."""
    audited: bool = True
    """Whether the audit's before and after carry it."""
    normalise: Callable[[str | None], str | None] = _as_given
    """Graph's value -> the value the store holds."""

    def value(self, user: SourceUser) -> str | None:
        return self.normalise(user.attributes.get(self.graph))


USER_ATTRIBUTES: tuple[UserAttribute, ...] = (UserAttribute("title", "jobTitle", TITLE_LENGTH),)
"""The user attributes copied from Graph, in the order plans and the audit list them."""

CORE_USER_PROPERTIES = ("id", "userPrincipalName", "mail", "displayName")
"""The Graph user properties syncd's rules read, besides ``accountEnabled``."""


def user_properties(extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Every Graph user property syncd reads, in ``$select`` order; ``extra``: those scoping rules read."""
    registry = tuple(attribute.graph for attribute in USER_ATTRIBUTES)
    more = tuple(name for name in extra if name not in registry and name not in CORE_USER_PROPERTIES)
    return (*CORE_USER_PROPERTIES, *registry, *more, "accountEnabled")


def user_fields() -> tuple[str, ...]:
    """The user fields a plan compares and the store keeps, in plan order."""
    return ("email", "name", *(attribute.field for attribute in USER_ATTRIBUTES), "user_type")


_CONTROL = "\x00-\x1f\x7f-\x9f"  # C0, DEL, C1
_SURROGATE = "\ud800-\udfff"  # halves of a UTF-16 pair: no UTF-8 encoding exists for one alone
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # marks, embeddings, overrides, isolates
_LINE_SEPARATORS = "\u2028\u2029"
_UNSTORABLE = re.compile(f"[{_CONTROL}{_SURROGATE}]")
_UNSAFE_TO_SHOW = re.compile(f"[{_CONTROL}{_SURROGATE}{_BIDI}{_LINE_SEPARATORS}]")


def unstorable(value: str, limit: int) -> str | None:
    r"""Why ``value`` cannot be stored in a column of ``limit`` characters; None when it can.

    The one rule for every string syncd writes (emails, names, titles, ids, user types), the same
    on SQLite and PostgreSQL: Unicode scalar values only (a lone surrogate such as U+DFFF, which
    JSON's ``"\udfff"`` can carry, has no UTF-8 encoding), no NUL (PostgreSQL refuses it in text),
    no other C0 or C1 control character (a tab, a newline or an escape sequence belongs in none of
    these fields), and at most ``limit`` characters (PostgreSQL refuses longer values, SQLite
    would keep them).
    """
    found = _UNSTORABLE.search(value)
    if found is not None:
        char = found.group()
        kind = "NUL" if char == "\0" else "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        return f"contains {kind} ({escape(char)}) at position {found.start()}"
    if len(value) > limit:
        return f"is {len(value)} characters long, more than {limit}"
    return None


def escape(text: str) -> str:
    r"""``text`` safe to print on a terminal and to store: every C0 and C1 control character (NUL,
    newline and ESC included), DEL, lone surrogate, bidirectional control (U+202A-U+202E,
    U+2066-U+2069, U+200E, U+200F, U+061C) and line or paragraph separator becomes a visible
    escape, ``\x1b`` or ``\u202e``.  Everything else is kept as it is."""
    return _UNSAFE_TO_SHOW.sub(_escape_char, text)


def _escape_char(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value: object, limit: int = 80) -> str:
    """``value`` quoted for a message: escaped, and cut to ``limit`` characters if longer."""
    text = escape(repr(value)) if isinstance(value, str) else escape(str(value))
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


# --------------------------------------------------------------------------- normalisation

_SPACES = re.compile(r"\s+")
_KEPT_PUNCTUATION = frozenset("-'.\u2019")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9 .'-]*")
_ASCII_NOT_IN_EMAIL = re.compile("[\x00-\x20\x7f]")
_EMAIL_CHARACTER_KINDS = {
    "Cc": "a control character",
    "Cf": "a format character (a bidirectional override, a zero-width space)",
    "Cs": "a lone surrogate",
    "Zs": "a space",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
"""The characters no address has, by Unicode category."""
_CUSTOM_ROLE_ID = re.compile(f"[0-9]{{1,{USER_TYPE_LENGTH}}}")


def normalise_name(display_name: str | None) -> str:
    """Remove special characters: keep letters, marks, digits, spaces, hyphens, apostrophes, periods.

    Every other character goes, control characters, NUL, lone surrogates and bidirectional
    controls included (whitespace of any kind becomes a space); a name longer than
    :data:`NAME_LENGTH` is cut to that length, so a normalised name can always be stored.

    >>> normalise_name("Zoë O'Brien (Contractor) #1")
    "Zoë O'Brien Contractor 1"
    """
    if not display_name:
        return ""
    if _PLAIN_NAME.fullmatch(display_name):  # the common case, without a look at every character
        return _fit_name(_SPACES.sub(" ", display_name).strip())
    text = unicodedata.normalize("NFC", display_name)
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category[0] in "LM" or category == "Nd" or char in _KEPT_PUNCTUATION:
            kept.append(char)
        elif char.isspace():
            kept.append(" ")
    return _fit_name(_SPACES.sub(" ", "".join(kept)).strip())


def _fit_name(name: str) -> str:
    return name if len(name) <= NAME_LENGTH else name[:NAME_LENGTH].rstrip()


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


def normalise_email(raw: str) -> str:
    """The address syncd would store for a UPN or mail value (guest UPNs mapped home, NFC, lowercased),
    whether or not it is usable; :func:`email_problem` tells."""
    return unicodedata.normalize("NFC", guest_upn_to_email(raw.strip())).lower()


def email_problem(email: str) -> str | None:
    """Why ``email`` is not an address syncd stores; None when it is.

    An address is one ``@`` between a non-empty local part and a non-empty domain, at most
    :data:`EMAIL_LENGTH` characters, with no whitespace, no control character (NUL and ESC
    included), no format character (bidirectional overrides, zero-width spaces) and no lone
    surrogate.
    """
    if not email:
        return "is empty"
    found = _ASCII_NOT_IN_EMAIL.search(email)
    if found is not None:
        return f"contains {_EMAIL_CHARACTER_KINDS['Zs' if found.group() == ' ' else 'Cc']} (U+{ord(found.group()):04X})"
    if not email.isascii():
        for char in email:
            kind = _EMAIL_CHARACTER_KINDS.get(unicodedata.category(char))
            if kind is not None:
                return f"contains {kind} (U+{ord(char):04X})"
    local, at, domain = email.partition("@")
    if not at or not local or not domain or "@" in domain:
        return "is not an address (name@domain)"
    if len(email) > EMAIL_LENGTH:
        return f"is {len(email)} characters long, more than {EMAIL_LENGTH}"
    return None


def user_email(user: SourceUser, attribute: str = "userPrincipalName") -> str | None:
    """The email (and username) syncd stores for a Graph user, or None when it has none usable."""
    key = ("email", attribute)
    derived = user.derived
    if key in derived:
        cached: str | None = derived[key]
        return cached
    raw = user.mail if attribute == "mail" else user.user_principal_name
    email = None if not raw else normalise_email(raw)
    derived[key] = email = None if email is None or email_problem(email) else email
    return email


def user_name(user: SourceUser, email: str) -> str:
    key = ("name", email)
    derived = user.derived
    if key not in derived:
        derived[key] = normalise_name(user.display_name) or _fit_name(email.split("@", 1)[0])
    name: str = derived[key]
    return name


def is_custom_role_id(user_type: str) -> bool:
    """A custom role id: ASCII digits only (not "²" or "٣"), short enough to store as a user type."""
    return _CUSTOM_ROLE_ID.fullmatch(user_type) is not None
