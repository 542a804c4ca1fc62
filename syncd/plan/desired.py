"""Stage 1: the desired users - who should be active in the store, as the store would hold them.

Rows [assigned], [disabled-new], [not-read] and [rehire] of the semantics table; every user in
scope either becomes one :class:`DesiredUser` or one error that freezes its row.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from ..changes import Problem
from ..evidence import DELETED, Evidence
from ..model import (
    ENTRA_ID_LENGTH,
    NAME_LENGTH,
    USER_ATTRIBUTES,
    USER_TYPE_LENGTH,
    Policy,
    Snapshot,
    SourceUser,
    StoreState,
    StoreUser,
    WithAttributes,
    email_problem,
    normalise_email,
    shown,
    unstorable,
    user_email,
    user_name,
)
from ..roles import Scope, choose_user_type, role_user_types
from ..scope_rules import decide
from .problems import problem


@dataclass(frozen=True, slots=True)
class DesiredUser(WithAttributes):
    """A user as the store should hold it after the plan; ``attributes`` by store field."""

    entra_id: str
    email: str
    name: str
    user_type: str
    attributes: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Desired:
    """The outcome of stage 1."""

    users: Mapping[str, DesiredUser]
    """By Entra id; no two share an email."""
    errors: tuple[Problem, ...]
    frozen: frozenset[int]
    """Local ids of rows whose user has an error: left exactly as they are, memberships included."""
    relinked: Mapping[str, StoreUser]
    """Email -> the row of a deleted Entra account that the new account with that email takes over."""
    name_warnings: Mapping[str, Problem]
    role_warnings: Mapping[str, Problem]
    """Warnings by Entra id, reported only with a change that acts on them."""
    out_of_scope: Mapping[str, str] = field(default_factory=dict)
    """[scoped] Users assigned but admitted by no scope rule, by Entra id: why, in words."""


@dataclass(slots=True)
class _Collect:
    """What stage 1 gathers while it walks the users in scope."""

    state: StoreState
    by_entra: dict[str, StoreUser]
    errors: list[Problem] = field(default_factory=list)
    frozen: set[int] = field(default_factory=set)
    name_warnings: dict[str, Problem] = field(default_factory=dict)
    role_warnings: dict[str, Problem] = field(default_factory=dict)
    types: dict[frozenset[str], tuple[str, str | None]] = field(default_factory=dict)

    def freeze(self, entra_id: str) -> None:
        existing = self.by_entra.get(entra_id)
        if existing is not None:
            self.frozen.add(existing.id)


def desired_users(snapshot: Snapshot, state: StoreState, policy: Policy, scope: Scope, evidence: Evidence) -> Desired:
    """Every user in scope as the store should hold it, or the error that holds it back."""
    by_entra = {user.entra_id: user for user in state.users if user.entra_id}
    found = _Collect(state, by_entra)
    roles = role_user_types(snapshot, policy)
    directly_assigned = {a.principal_id for a in snapshot.assignments if a.principal_type == "User"}
    desired: dict[str, DesiredUser] = {}
    out_of_scope: dict[str, str] = {}
    for entra_id in sorted(scope.user_roles):
        if evidence.is_deleted(entra_id):
            continue  # [departed] deleted in Entra: deactivated by stage 2 if provisioned
        source = evidence.users.get(entra_id)
        if source is None:
            _not_read(found, entra_id, scope, entra_id in directly_assigned)  # [not-read]: never absence
            continue
        if source.account_enabled is False:
            continue  # [disabled-new] never created; [departed] deactivated by stage 2 if provisioned
        if policy.scope_rules:
            decision = decide(policy.scope_rules, source.attributes)
            if not decision.in_scope:
                out_of_scope[entra_id] = decision.reason  # [scoped] never created; deactivated if provisioned
                continue
        wanted = _desired_user(found, snapshot, policy, source, scope.user_roles[entra_id], roles)
        if wanted is not None:
            desired[entra_id] = wanted
    kept, relinked = _drop_email_conflicts(found, desired, evidence)
    return Desired(
        users=kept,
        errors=tuple(found.errors),
        frozen=frozenset(found.frozen),
        relinked=relinked,
        name_warnings=found.name_warnings,
        role_warnings=found.role_warnings,
        out_of_scope=out_of_scope,
    )


def _not_read(found: _Collect, entra_id: str, scope: Scope, direct: bool) -> None:
    """[not-read] A user in scope (assigned, or a member of an assigned group) whose object the
    snapshot lacks: Graph did not return it, or returned another object in its place.  Its row is
    left exactly as it is, memberships included, until a run reads it."""
    group_id = scope.via_group.get(entra_id)
    if direct or group_id is None:
        how = "assigned to the application"
    else:
        how = f"a member of assigned group {shown(scope.groups[group_id].display_name)} [{shown(group_id)}]"
    existing = found.by_entra.get(entra_id)
    found.errors.append(
        problem(
            "USER_NOT_READ",
            "user",
            entra_id,
            existing.email if existing is not None else entra_id,
            f"user {shown(entra_id)} is {how}, but Graph returned no user object for it; "
            "it is left as it is until a run reads it",
        )
    )
    found.freeze(entra_id)


_EMAIL_FIELD = {"userPrincipalName": "user_principal_name", "mail": "mail"}


@dataclass(frozen=True, slots=True)
class _Facts:
    """What a Graph user alone says about its row: kept on the user (``SourceUser.derived``), so a
    daemon's unchanged users are not normalised again every cycle."""

    problem: tuple[str, str, str] | None
    """(code, target, message) of the error that holds the user back, if any."""
    email: str = ""
    name: str = ""
    attributes: Mapping[str, str | None] | None = None
    renamed: bool = False
    """Its name was changed by the normalisation (NAME_NORMALISED)."""


def _facts(source: SourceUser, email_attribute: str) -> _Facts:
    key = ("desired", email_attribute)
    cached = source.derived.get(key)
    if cached is None:
        cached = source.derived[key] = _find_facts(source, email_attribute)
    facts: _Facts = cached
    return facts


def _find_facts(source: SourceUser, email_attribute: str) -> _Facts:
    why = unstorable(source.id, ENTRA_ID_LENGTH)
    if why is not None:
        return _Facts(("USER_INVALID", source.id, f"id {shown(source.id)} {why}"))
    email = user_email(source, email_attribute)
    if email is None:
        raw = getattr(source, _EMAIL_FIELD[email_attribute])
        why = f"{shown(raw)} {email_problem(normalise_email(raw))}" if raw else "empty"
        message = f"no usable email in {email_attribute}: {why}"
        return _Facts(("USER_NO_EMAIL", source.display_name or source.id, message))
    name = user_name(source, email)
    attributes = {attribute.field: attribute.value(source) for attribute in USER_ATTRIBUTES}
    for field_name, value, limit in (
        ("name", name, NAME_LENGTH),  # normalised, so always storable; checked all the same
        *((attribute.graph, attributes[attribute.field], attribute.length) for attribute in USER_ATTRIBUTES),
    ):
        why = None if value is None else unstorable(value, limit)
        if why is not None:
            return _Facts(("USER_INVALID", email, f"{field_name} {shown(value)} {why}"))
    display = source.display_name
    renamed = display is not None and name != " ".join(unicodedata.normalize("NFC", display).split())
    return _Facts(None, email, name, attributes, renamed)


def _desired_user(
    found: _Collect,
    snapshot: Snapshot,
    policy: Policy,
    source: SourceUser,
    role_ids: set[str],
    roles: Mapping[str, str | None],
) -> DesiredUser | None:
    facts = _facts(source, policy.email_attribute)
    if facts.problem is not None:
        code, target, message = facts.problem
        if code == "USER_NO_EMAIL":
            found.errors.append(problem(code, "user", source.id, target, message))
            found.freeze(source.id)
        else:
            _invalid_user(found, source, target, message)
        return None
    email, name = facts.email, facts.name
    assert facts.attributes is not None
    user_type, unknown_role = _user_type(found, snapshot, policy, frozenset(role_ids), roles)
    why = unstorable(user_type, USER_TYPE_LENGTH)
    if why is not None:
        _invalid_user(found, source, email, f"user type {shown(user_type)} {why}")
        return None
    if unknown_role is not None:
        found.role_warnings[source.id] = problem(
            "ROLE_UNKNOWN",
            "user",
            source.id,
            email,
            f"app role {shown(unknown_role)} maps to no user type and is ignored (a user with no other role "
            f"gets {policy.default_user_type!r})",
        )
    if facts.renamed:
        found.name_warnings[source.id] = problem(
            "NAME_NORMALISED",
            "user",
            source.id,
            email,
            f"name {shown(source.display_name)} stored as {shown(name, NAME_LENGTH + 2)}",
        )
    return DesiredUser(source.id, email, name, user_type, facts.attributes)


def _invalid_user(found: _Collect, source: SourceUser, target: str, message: str) -> None:
    """A user with a value the store cannot hold: reported, and its row (if any) left as it is."""
    found.errors.append(problem("USER_INVALID", "user", source.id, target, f"{message}; the user is left as it is"))
    found.freeze(source.id)


def _user_type(
    found: _Collect,
    snapshot: Snapshot,
    policy: Policy,
    role_ids: frozenset[str],
    roles: Mapping[str, str | None],
) -> tuple[str, str | None]:
    """The user type a set of app roles gives, and the name of a role that maps to none (cached:
    most users share a handful of role sets)."""
    cached = found.types.get(role_ids)
    if cached is None:
        candidates, unknown = [], None
        for role_id in sorted(role_ids):
            user_type = roles.get(role_id)
            if user_type is None:
                role = next((r for r in snapshot.app_roles if r.id == role_id), None)
                unknown = (role.display_name or role.value or role.id) if role else role_id
            else:
                candidates.append(user_type)  # an unknown role never outranks a known one
        cached = found.types[role_ids] = (choose_user_type(candidates, policy), unknown)
    return cached


def _drop_email_conflicts(
    found: _Collect, desired: dict[str, DesiredUser], evidence: Evidence
) -> tuple[dict[str, DesiredUser], dict[str, StoreUser]]:
    """Two users may not share an email: report the conflict and skip whoever cannot have it.

    An email is free when nobody holds it, or when its holder moves to another email in this
    same plan; a rejected mover keeps its email, which can reject others in turn, so this runs
    to a fixed point.  Returns the users kept and, by email, the rows of deleted accounts that a
    new account takes over ([rehire]).
    """
    claims: dict[str, list[str]] = defaultdict(list)
    for entra_id, user in desired.items():
        claims[user.email].append(entra_id)
    holders = {user.email: user for user in found.state.users}
    # an email one user claims and nobody else holds (or the claimant itself) is settled at once
    contested = {
        email: claimants
        for email, claimants in claims.items()
        if len(claimants) > 1 or (email in holders and holders[email].entra_id != claimants[0])
    }
    relinked: dict[str, StoreUser] = {}
    rejected: dict[str, tuple[str, str]] = {}  # entra id -> (email, who has it)
    kept = desired
    while True:
        if rejected:
            kept = {entra_id: user for entra_id, user in desired.items() if entra_id not in rejected}
        rejections: dict[str, tuple[str, str]] = {}
        for email, all_claimants in contested.items():
            claimants = [c for c in all_claimants if c not in rejected]
            if not claimants:
                continue
            holder = holders.get(email)
            moving = holder is not None and holder.entra_id in kept and kept[holder.entra_id].email != email
            if holder is None or moving:
                winners = claimants
            elif holder.entra_id in claimants:
                winners = [holder.entra_id]
            elif holder.entra_id is not None and not _relinkable(holder, kept, evidence, found.frozen):
                winners = []  # held by another managed user (perhaps inactive)
            else:
                # an unmanaged local user (or one whose Entra account was deleted) has it: adopted,
                # unless the claimant has a row of its own
                winners = [c for c in claimants if c not in found.by_entra]
            if len(winners) > 1:
                winners = []
            if winners and holder is not None and holder.entra_id not in (None, *claimants) and not moving:
                relinked[email] = holder
            for entra_id in claimants:
                if entra_id not in winners:
                    who = (
                        f"user {holder.email!r} (local id {holder.id})"
                        if holder is not None and holder.entra_id not in claimants and not moving
                        else "another user in scope"
                    )
                    rejections[entra_id] = (email, who)
        if not rejections:
            break
        rejected.update(rejections)
    for entra_id, (email, who) in sorted(rejected.items(), key=lambda item: (item[1][0], item[0])):
        found.errors.append(
            problem("USER_EMAIL_CONFLICT", "user", entra_id, email, f"email {email} is already used by {who}")
        )
        found.freeze(entra_id)
    return kept, relinked


def _relinkable(
    holder: StoreUser, kept: Mapping[str, DesiredUser], evidence: Evidence, frozen: Collection[int]
) -> bool:
    """[rehire] A row whose Entra account is deleted (or found deleted now) may be taken over by a
    new account with its email; not one held back by an error of its own user ([not-read]: left
    exactly as it is until a run reads it)."""
    if holder.entra_id is None or holder.entra_id in kept or holder.id in frozen:
        return False
    if evidence.is_deleted(holder.entra_id):
        return True
    if holder.entra_id in evidence.users:
        return False  # Graph still has the account (restored, or merely out of scope)
    if not holder.active:
        return holder.inactive_reason == DELETED
    return evidence.departure(holder.entra_id) == DELETED
