"""Stage 2: the user changes, and the users as they will be after the plan.

Rows [assigned], [changed], [departed], [returned], [rehire] and [last-admin] of the semantics table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter

from ..changes import USER_FIELDS, AdoptUser, Change, CreateUser, DeactivateUser, Problem, ReactivateUser, UpdateUser
from ..evidence import DELETED, DISABLED, OUT_OF_SCOPE, Evidence
from ..model import Policy, StoreState, StoreUser
from .desired import Desired, DesiredUser
from .problems import problem


@dataclass(frozen=True, slots=True)
class Users:
    """The outcome of stage 2."""

    changes: tuple[Change, ...]
    warnings: tuple[Problem, ...]
    active_after: Mapping[str, StoreUser | None]
    """Entra id -> the row that is active after the plan (a placeholder with id -1 for a user the
    plan creates); None or absent: not active then.  Team membership is planned from it."""
    email_after: Mapping[str, str]
    """Entra id -> the email the user has after the plan."""
    deactivated: frozenset[int]
    frozen: frozenset[int]
    adopted: Mapping[int, str]
    errors: tuple[Problem, ...] = ()
    """LAST_ADMIN and NO_ADMIN_LEFT: the store's last admin, held back or gone."""
    held: tuple[Change, ...] = ()
    """The last admin's deactivation, held back."""
    """Local user id -> the Entra id that adopts the row."""


def user_changes(desired: Desired, state: StoreState, policy: Policy, evidence: Evidence) -> Users:
    """What to create, adopt, reactivate, update and deactivate so the store holds ``desired``."""
    by_entra = {user.entra_id: user for user in state.users if user.entra_id}
    unmanaged_by_email = {user.email: user for user in state.users if user.entra_id is None}
    changes: list[Change] = []
    warnings: list[Problem] = []
    active_after: dict[str, StoreUser | None] = {}
    email_after: dict[str, str] = {}
    adopted: dict[int, str] = {}
    for user in state.users:
        if user.id in desired.frozen and user.entra_id:
            active_after[user.entra_id] = user if user.active else None  # left exactly as it is

    def warn_for(entra_id: str, *, name: bool, role: bool) -> None:
        if name and entra_id in desired.name_warnings:
            warnings.append(desired.name_warnings[entra_id])
        if role and entra_id in desired.role_warnings:
            warnings.append(desired.role_warnings[entra_id])

    # by email, then Entra id: ``desired.users`` is in Entra id order and a sort by email keeps it
    for want in sorted(desired.users.values(), key=attrgetter("email")):
        email_after[want.entra_id] = want.email
        existing = by_entra.get(want.entra_id)
        if existing is None:
            local = unmanaged_by_email.get(want.email) or desired.relinked.get(want.email)
            if local is None:
                # [assigned] user assigned and enabled, new -> created
                changes.append(CreateUser(want.entra_id, want.email, want.name, want.user_type, want.attributes))
                warn_for(want.entra_id, name=True, role=True)
                active_after[want.entra_id] = StoreUser(-1, want.email, want.name, entra_id=want.entra_id)
                continue
            # [assigned] a local user with the same email and no Entra id is adopted, not duplicated;
            # [rehire] the row of a deleted account is re-linked to the new one
            changes.append(AdoptUser(local.id, want.entra_id, want.email, local.entra_id))
            adopted[local.id] = want.entra_id
            existing = local
        if not existing.active:
            # [returned] an inactive managed user comes back in scope: the same row is reactivated
            changes.append(ReactivateUser(existing.id, want.entra_id, existing.email))
        fields = _changed_fields(existing, want, policy, evidence)
        if fields:
            # [changed] displayName / UPN / jobTitle / role changes -> updated in place
            changes.append(UpdateUser(existing.id, want.entra_id, existing.email, fields))
            names = {name for name, _, _ in fields}
            warn_for(want.entra_id, name="name" in names, role="user_type" in names)
        active_after[want.entra_id] = existing

    errors: list[Problem] = []
    deactivations: list[DeactivateUser] = []
    for user in sorted(by_entra.values(), key=lambda u: (u.email, u.id)):
        assert user.entra_id is not None
        if user.entra_id in desired.users or user.id in desired.frozen or user.id in adopted or not user.active:
            continue
        reason = evidence.departure(user.entra_id)
        if user.entra_id in desired.out_of_scope and reason not in POSITIVE_EVIDENCE:
            # [scoped] assigned, but no scope rule admits it: deactivated like an unassigned user
            reason = OUT_OF_SCOPE
            warnings.append(
                problem("OUT_OF_SCOPE", "user", user.entra_id, user.email, desired.out_of_scope[user.entra_id])
            )
        if reason is None:
            active_after[user.entra_id] = user  # absence is no evidence here: stays active
            continue
        # [departed] unassigned / removed from every assigned group / disabled / deleted -> inactive
        deactivations.append(DeactivateUser(user.id, user.entra_id, user.email, reason))
    changes.extend(deactivations)
    changes, kept, held = _keep_an_admin(changes, state, policy, errors, warnings)
    for user in kept:
        if user.entra_id is not None:
            active_after[user.entra_id] = user
    deactivated = {change.user_id for change in changes if isinstance(change, DeactivateUser)}
    return Users(
        changes=tuple(changes),
        warnings=tuple(warnings),
        active_after=active_after,
        email_after=email_after,
        deactivated=frozenset(deactivated),
        frozen=desired.frozen,
        adopted=adopted,
        errors=tuple(errors),
        held=held,
    )


def _changed_fields(
    existing: StoreUser, want: DesiredUser, policy: Policy, evidence: Evidence
) -> tuple[tuple[str, object, object], ...]:
    """The fields of :data:`USER_FIELDS` in which the row differs from what is wanted, in that order."""
    old_attributes, new_attributes = existing.attributes, want.attributes
    if (
        existing.email == want.email
        and existing.name == want.name
        and existing.user_type == want.user_type
        and old_attributes == new_attributes
    ):
        return ()  # the common case, decided without looking at each field by name
    changes = []
    for name in USER_FIELDS:
        if name == "user_type" and not policy.provision_user_type:
            continue  # type is set at creation only
        if name == "user_type" and not evidence.roles_complete(want.entra_id):
            continue  # roles through an unread group (or, on demand, held elsewhere) are unknown
        old, new = getattr(existing, name), getattr(want, name)
        if old != new:
            changes.append((name, old, new))
    return tuple(changes)


ADMIN = "admin"
POSITIVE_EVIDENCE = (DISABLED, DELETED)
"""Departures Entra itself reports: they apply even to the last admin."""


def _keep_an_admin(
    changes: list[Change], state: StoreState, policy: Policy, errors: list[Problem], warnings: list[Problem]
) -> tuple[list[Change], list[StoreUser], tuple[Change, ...]]:
    """[last-admin] The store keeps an active admin through an unassignment or a demotion.

    When the plan would leave no active user of type admin (managed or not) where there was one,
    the change that removes the last of them by unassignment or demotion is held back (LAST_ADMIN,
    reported every run until an admin is assigned or ``--allow-last-admin`` is given); a departure
    Entra reports (the account disabled or deleted) applies all the same, and the run says that no
    admin is left (NO_ADMIN_LEFT, an error; a warning when ``--allow-last-admin`` asked for it).
    Returns the changes, the rows kept active, and the deactivation held back (for the safety limits).
    """
    rows = {user.id: user for user in state.users}
    admins_before = {user.id for user in state.users if user.active and user.user_type == ADMIN}
    if not admins_before:
        return changes, [], ()
    losing: dict[int, DeactivateUser | UpdateUser] = {}
    admins_after = set(admins_before)
    new_admin = False
    for change in changes:
        if isinstance(change, DeactivateUser) and change.user_id in admins_before:
            admins_after.discard(change.user_id)
            losing[change.user_id] = change
        elif isinstance(change, UpdateUser):
            new_type = next((new for name, _, new in change.changes if name == "user_type"), None)
            if new_type is None:
                continue
            if new_type == ADMIN:
                admins_after.add(change.user_id)
            elif change.user_id in admins_before:
                admins_after.discard(change.user_id)
                losing[change.user_id] = change
        elif isinstance(change, CreateUser) and change.user_type == ADMIN:
            new_admin = True
        elif isinstance(change, ReactivateUser) and change.user_id in rows and rows[change.user_id].user_type == ADMIN:
            admins_after.add(change.user_id)
    if admins_after or new_admin:
        return changes, [], ()
    held = [
        change
        for change in losing.values()
        if not (isinstance(change, DeactivateUser) and change.reason in POSITIVE_EVIDENCE)
    ]
    if held and not policy.allow_last_admin:
        keep = min(held, key=lambda change: (rows[change.user_id].email, change.user_id))
        kept_user = user = rows[keep.user_id]
        what = "unassigning" if isinstance(keep, DeactivateUser) else "demoting"
        errors.append(
            problem(
                "LAST_ADMIN",
                "user",
                user.entra_id or "",
                user.email,
                f"{what} {user.email} would leave the store without an active admin; it is held back "
                "until another admin is assigned (`syncd sync --allow-last-admin` applies it anyway)",
            )
        )
        if isinstance(keep, DeactivateUser):
            return [change for change in changes if change is not keep], [kept_user], (keep,)
        kept_fields = tuple(entry for entry in keep.changes if entry[0] != "user_type")
        replaced: list[Change] = []
        for change in changes:
            if change is not keep:
                replaced.append(change)
            elif kept_fields:
                replaced.append(UpdateUser(keep.user_id, keep.entra_id, keep.email, kept_fields))
        return replaced, [], ()
    gone = sorted(rows[user_id].email for user_id in losing)
    (warnings if held else errors).append(
        problem(
            "NO_ADMIN_LEFT",
            "user",
            "",
            ", ".join(gone),
            f"the store has no active admin left: {', '.join(gone)} "
            f"{'was' if len(gone) == 1 else 'were'} the last; assign an admin in Entra ID",
        )
    )
    return changes, [], ()
