"""The planner: ``diff(snapshot, state, policy) -> Plan``.  Pure: no I/O, no clock.

A :class:`Plan` is inert data, an ordered tuple of frozen change records plus per-object errors
and warnings.  ``syncd plan`` renders it (``render.py``) and ``syncd sync`` applies it
(``apply.py``); both read the same object, so the dry run cannot lie.

The rules mirror monday.com's SCIM provisioning (README, "Semantics"); each branch below names
the row of that table it implements.  Identity is the Entra object id, never a name or an email.

Nothing from the wire is trusted.  A user in scope whose object the snapshot lacks is an error
(``USER_NOT_READ``), never a sign that it left; a user or group with a value the store cannot hold
(:func:`~syncd.model.unstorable`) is an error (``USER_INVALID``, ``USER_NO_EMAIL``,
``TEAM_INVALID``).  Either way that one object is left exactly as it is and everything else is
planned as usual, so every value a plan carries can be written on every backend: the plan is what
sync applies.  Problems quote what Graph sent escaped (:func:`problem`).

Invariants, proved by property tests: planning is deterministic, and applying a plan then
planning again against the same snapshot yields no changes.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from .changes import (
    OPS,
    USER_FIELDS,
    AddMember,
    AdoptUser,
    Change,
    CreateTeam,
    CreateUser,
    DeactivateUser,
    DeleteTeam,
    Plan,
    Problem,
    ReactivateUser,
    RemoveMember,
    RenameTeam,
    ReplaceTeam,
    UpdateUser,
)
from .model import (
    EMAIL_LENGTH,
    ENTRA_ID_LENGTH,
    NAME_LENGTH,
    TITLE_LENGTH,
    USER_TYPE_LENGTH,
    Policy,
    Snapshot,
    SourceGroup,
    SourceUser,
    StoreState,
    StoreTeam,
    StoreUser,
    email_problem,
    escape,
    normalise_email,
    shown,
    unstorable,
    user_email,
    user_name,
)
from .roles import Scope, choose_user_type, role_user_types, scope_of

# --------------------------------------------------------------------------- desired state


@dataclass(frozen=True, slots=True)
class DesiredUser:
    entra_id: str
    email: str
    name: str
    title: str | None
    user_type: str


def problem(code: str, kind: str, entra_id: str, target: str, message: str) -> Problem:
    """A per-object error or warning whose every field can be stored and printed, whatever Graph
    sent: control characters, lone surrogates and bidirectional overrides escaped, the id and the
    target cut to what the audit holds."""
    return Problem(
        code, kind, _cut(escape(entra_id), ENTRA_ID_LENGTH), _cut(escape(target), EMAIL_LENGTH), escape(message)
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


class _Planner:
    def __init__(self, snapshot: Snapshot, state: StoreState, policy: Policy) -> None:
        self.snapshot = snapshot
        self.state = state
        self.policy = policy
        self.authoritative = snapshot.complete and not snapshot.partial
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.user_changes: list[Change] = []
        self.team_changes: list[Change] = []
        self.member_changes: list[Change] = []
        self.source_users = snapshot.user_by_id()
        self.directly_assigned = {a.principal_id for a in snapshot.assignments if a.principal_type == "User"}
        self.by_entra = {user.entra_id: user for user in state.users if user.entra_id}
        self.users_by_id = {user.id: user for user in state.users}
        self.unmanaged_by_email = {user.email: user for user in state.users if user.entra_id is None}
        # rows whose Entra account is deleted and that a new account with their email takes over
        self.deleted_by_email: dict[str, StoreUser] = {}
        # Entra id -> email the user will have after the plan, where the plan changes it
        self.email_after: dict[str, str] = {}
        # Entra id -> local user that will be active after the plan (for team membership)
        self.active_after: dict[str, StoreUser | None] = {}
        self.frozen_user_ids: set[int] = set()
        self.deactivated_ids: set[int] = set()
        self.type_cache: dict[frozenset[str], tuple[str, str | None]] = {}
        self.planned_teams: set[int] = set()  # local ids of teams whose members were planned
        self.adopted: dict[int, str] = {}  # local user id -> the Entra id adopting it
        # warnings are reported only with the change that acts on them
        self.name_warnings: dict[str, Problem] = {}
        self.role_warnings: dict[str, Problem] = {}

    # ----------------------------------------------------------------- users

    def plan_users(self, scope: Scope) -> None:
        roles = role_user_types(self.snapshot, self.policy)
        desired: dict[str, DesiredUser] = {}
        for entra_id in sorted(scope.user_roles):
            if entra_id in self.snapshot.deleted_user_ids:
                continue  # deleted in Entra: deactivated below if provisioned
            source = self.source_users.get(entra_id)
            if source is None:
                self._not_read(entra_id, scope)  # in scope, yet not read: an error, never absence
                continue
            if source.account_enabled is False:
                continue  # disabled: never created; deactivated below if provisioned
            wanted = self._desired_user(source, scope.user_roles[entra_id], roles)
            if wanted is not None:
                desired[entra_id] = wanted

        desired = self._drop_email_conflicts(desired)

        for want in sorted(desired.values(), key=lambda user: (user.email, user.entra_id)):
            self._plan_user(want)

        # user unassigned / removed from every assigned group / disabled / deleted -> inactive
        for user in sorted(self.by_entra.values(), key=lambda u: (u.email, u.id)):
            assert user.entra_id is not None
            if user.entra_id in desired or user.id in self.frozen_user_ids or user.id in self.adopted:
                continue
            if not user.active:
                continue
            reason = self._inactive_reason(user.entra_id)
            if reason is None:
                self.active_after[user.entra_id] = user  # absence is no evidence here: stays active
                continue
            self.user_changes.append(DeactivateUser(user.id, user.entra_id, user.email, reason))

    def _not_read(self, entra_id: str, scope: Scope) -> None:
        """A user in scope (assigned, or a member of an assigned group) whose object the snapshot
        lacks: Graph did not return it, or returned another object in its place.  Its row is left
        exactly as it is, memberships included, until a run reads it."""
        group_id = scope.via_group.get(entra_id)
        if entra_id in self.directly_assigned or group_id is None:
            how = "assigned to the application"
        else:
            how = f"a member of assigned group {shown(scope.groups[group_id].display_name)} [{shown(group_id)}]"
        existing = self.by_entra.get(entra_id)
        self.errors.append(
            problem(
                "USER_NOT_READ",
                "user",
                entra_id,
                existing.email if existing is not None else entra_id,
                f"user {shown(entra_id)} is {how}, but Graph returned no user object for it; "
                "it is left as it is until a run reads it",
            )
        )
        if existing is not None:
            self._freeze(existing)

    def _desired_user(
        self, source: SourceUser, role_ids: set[str], roles: Mapping[str, str | None]
    ) -> DesiredUser | None:
        why = unstorable(source.id, ENTRA_ID_LENGTH)
        if why is not None:
            self._invalid_user(source, source.id, f"id {shown(source.id)} {why}")
            return None
        email = user_email(source, self.policy.email_attribute)
        if email is None:
            attribute = self.policy.email_attribute
            raw = getattr(source, _ATTR[attribute])
            why = f"{shown(raw)} {email_problem(normalise_email(raw))}" if raw else "empty"
            self.errors.append(
                problem(
                    "USER_NO_EMAIL",
                    "user",
                    source.id,
                    source.display_name or source.id,
                    f"no usable email in {attribute}: {why}",
                )
            )
            self._freeze_source(source)
            return None
        user_type, unknown_role = self._user_type(frozenset(role_ids), roles)
        name = user_name(source, email)
        title = source.job_title or None
        for field_name, value, limit in (
            ("name", name, NAME_LENGTH),  # normalised, so always storable; checked all the same
            ("jobTitle", title, TITLE_LENGTH),
            ("user type", user_type, USER_TYPE_LENGTH),
        ):
            why = None if value is None else unstorable(value, limit)
            if why is not None:
                self._invalid_user(source, email, f"{field_name} {shown(value)} {why}")
                return None
        if unknown_role is not None:
            self.role_warnings[source.id] = problem(
                "ROLE_UNKNOWN",
                "user",
                source.id,
                email,
                f"app role {shown(unknown_role)} maps to no user type and is ignored (a user with no other role "
                f"gets {self.policy.default_user_type!r})",
            )
        if source.display_name is not None and name != " ".join(
            unicodedata.normalize("NFC", source.display_name).split()
        ):
            self.name_warnings[source.id] = problem(
                "NAME_NORMALISED",
                "user",
                source.id,
                email,
                f"name {shown(source.display_name)} stored as {shown(name, NAME_LENGTH + 2)}",
            )
        return DesiredUser(source.id, email, name, title, user_type)

    def _invalid_user(self, source: SourceUser, target: str, message: str) -> None:
        """A user with a value the store cannot hold: reported, and its row (if any) left as it is."""
        self.errors.append(problem("USER_INVALID", "user", source.id, target, f"{message}; the user is left as it is"))
        self._freeze_source(source)

    def _freeze_source(self, source: SourceUser) -> None:
        existing = self.by_entra.get(source.id)
        if existing is not None:
            self._freeze(existing)

    def _user_type(self, role_ids: frozenset[str], roles: Mapping[str, str | None]) -> tuple[str, str | None]:
        """The user type a set of app roles gives, and the name of a role that maps to none (cached:
        most users share a handful of role sets)."""
        cached = self.type_cache.get(role_ids)
        if cached is None:
            candidates, unknown = [], None
            for role_id in sorted(role_ids):
                user_type = roles.get(role_id)
                if user_type is None:
                    role = next((r for r in self.snapshot.app_roles if r.id == role_id), None)
                    unknown = (role.display_name or role.value or role.id) if role else role_id
                else:
                    candidates.append(user_type)  # an unknown role never outranks a known one
            cached = self.type_cache[role_ids] = (choose_user_type(candidates, self.policy), unknown)
        return cached

    def _drop_email_conflicts(self, desired: dict[str, DesiredUser]) -> dict[str, DesiredUser]:
        """Two users may not share an email: report the conflict and skip whoever cannot have it.

        An email is free when nobody holds it, or when its holder moves to another email in this
        same plan; a rejected mover keeps its email, which can reject others in turn, so this runs
        to a fixed point.
        """
        claims: dict[str, list[str]] = defaultdict(list)
        for entra_id, user in desired.items():
            claims[user.email].append(entra_id)
        holders = {user.email: user for user in self.state.users}
        rejected: dict[str, tuple[str, str]] = {}  # entra id -> (email, who has it)
        while True:
            kept = {entra_id: user for entra_id, user in desired.items() if entra_id not in rejected}
            rejections: dict[str, tuple[str, str]] = {}
            for email, all_claimants in claims.items():
                claimants = [c for c in all_claimants if c not in rejected]
                if not claimants:
                    continue
                holder = holders.get(email)
                moving = holder is not None and holder.entra_id in kept and kept[holder.entra_id].email != email
                if holder is None or moving:
                    winners = claimants
                elif holder.entra_id in claimants:
                    winners = [holder.entra_id]
                elif holder.entra_id is not None and not self._relinkable(holder, kept):
                    winners = []  # held by another managed user (perhaps inactive)
                else:
                    # an unmanaged local user (or one whose Entra account was deleted) has it: adopted,
                    # unless the claimant has a row of its own
                    winners = [c for c in claimants if c not in self.by_entra]
                if len(winners) > 1:
                    winners = []
                if winners and holder is not None and holder.entra_id not in (None, *claimants) and not moving:
                    self.deleted_by_email[email] = holder
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
            self.errors.append(
                problem("USER_EMAIL_CONFLICT", "user", entra_id, email, f"email {email} is already used by {who}")
            )
            existing = self.by_entra.get(entra_id)
            if existing is not None:
                self._freeze(existing)
        return kept

    def _relinkable(self, holder: StoreUser, kept: Mapping[str, DesiredUser]) -> bool:
        """A row whose Entra account is deleted (or found deleted now) may be taken over by a new
        account with its email."""
        if holder.entra_id is None or holder.entra_id in kept:
            return False
        if holder.entra_id in self.snapshot.deleted_user_ids:
            return True
        if holder.entra_id in self.source_users:
            return False  # Graph still has the account (restored, or merely out of scope)
        if not holder.active:
            return holder.inactive_reason == "deleted"
        return self._inactive_reason(holder.entra_id) == "deleted"

    def _freeze(self, user: StoreUser) -> None:
        """A user with an error is left exactly as it is, memberships included."""
        self.frozen_user_ids.add(user.id)
        if user.entra_id:
            self.active_after[user.entra_id] = user if user.active else None

    def _plan_user(self, want: DesiredUser) -> None:
        self.email_after[want.entra_id] = want.email
        existing = self.by_entra.get(want.entra_id)
        if existing is None:
            local = self.unmanaged_by_email.get(want.email) or self.deleted_by_email.get(want.email)
            if local is None:
                # user assigned and enabled, new -> created
                self.user_changes.append(CreateUser(want.entra_id, want.email, want.name, want.title, want.user_type))
                self._warn_for(want.entra_id, name=True, role=True)
                self.active_after[want.entra_id] = StoreUser(-1, want.email, want.name, entra_id=want.entra_id)
                return
            # a local user with the same email and no Entra id is adopted, not duplicated
            self.user_changes.append(AdoptUser(local.id, want.entra_id, want.email, local.entra_id))
            self.adopted[local.id] = want.entra_id
            existing = local
        if not existing.active:
            # an inactive managed user comes back in scope: the same row is reactivated
            self.user_changes.append(ReactivateUser(existing.id, want.entra_id, existing.email))
        changes = []
        for name in USER_FIELDS:
            if name == "user_type" and not self.policy.provision_user_type:
                continue  # type is set at creation only
            if name == "user_type" and not self.roles_complete(want.entra_id):
                continue  # roles through an unread group (or, on demand, held elsewhere) are unknown
            old, new = getattr(existing, name), getattr(want, name)
            if old != new:
                changes.append((name, old, new))
        if changes:
            # displayName / UPN / jobTitle / role changes -> updated in place
            self.user_changes.append(UpdateUser(existing.id, want.entra_id, existing.email, tuple(changes)))
            names = {change[0] for change in changes}
            self._warn_for(want.entra_id, name="name" in names, role="user_type" in names)
        self.active_after[want.entra_id] = existing

    def _warn_for(self, entra_id: str, *, name: bool, role: bool) -> None:
        if name and entra_id in self.name_warnings:
            self.warnings.append(self.name_warnings[entra_id])
        if role and entra_id in self.role_warnings:
            self.warnings.append(self.role_warnings[entra_id])

    def _inactive_reason(self, entra_id: str) -> str | None:
        if entra_id in self.snapshot.deleted_user_ids:
            return "deleted"
        source = self.source_users.get(entra_id)
        if source is not None and source.account_enabled is False:
            return "disabled"
        if self.knows(entra_id):
            return "deleted" if self.snapshot.scope == "all" and source is None else "unassigned"
        return None

    def roles_complete(self, entra_id: str) -> bool:
        """Whether every app role the user holds is in the snapshot, so its type may change."""
        if self.snapshot.partial:
            return self.snapshot.complete and entra_id in self.snapshot.subjects
        return self.snapshot.complete

    def knows(self, principal_id: str) -> bool:
        """Whether absence from this snapshot is evidence about the principal."""
        if self.authoritative:
            return True
        return self.snapshot.partial and self.snapshot.complete and principal_id in self.snapshot.subjects

    # ----------------------------------------------------------------- teams

    def plan_teams(self, scope: Scope) -> None:
        teams_by_entra = {team.entra_id: team for team in self.state.teams if team.entra_id}
        unmanaged_by_name: dict[str, list[StoreTeam]] = defaultdict(list)
        for team in self.state.teams:
            if team.entra_id is None:
                unmanaged_by_name[team.name].append(team)

        names: dict[str, list[SourceGroup]] = defaultdict(list)
        for group in sorted(scope.groups.values(), key=lambda g: g.id):
            name = group.display_name.strip()
            why = _group_problem(group.id, name)
            if why is not None:
                # a group with a name or id the store cannot hold: its team stays exactly as it is
                message = f"{why}; its team is left as it is"
                self.errors.append(problem("TEAM_INVALID", "group", group.id, name or group.id, message))
                continue
            names[name].append(group)
        wanted: dict[str, tuple[SourceGroup, str]] = {}
        for name, groups in sorted(names.items()):
            if len(groups) > 1:
                for group in sorted(groups, key=lambda g: g.id):
                    self._team_conflict(group.id, name, f"{len(groups)} assigned groups are named {name!r}")
                continue
            wanted[groups[0].id] = (groups[0], name)

        # group unassigned or deleted -> team deprovisioned; the audit keeps what it was
        leaving: set[int] = set()
        for team in sorted(teams_by_entra.values(), key=lambda t: (t.name, t.id)):
            assert team.entra_id is not None
            if team.entra_id in scope.groups or team.entra_id in scope.unknown_groups:
                continue
            if not self.knows(team.entra_id):
                continue
            members = tuple(sorted(self.users_by_id[m].email for m in team.member_ids if m in self.users_by_id))
            self.team_changes.append(DeleteTeam(team.id, team.entra_id, team.name, members))
            leaving.add(team.id)

        # a group renamed to a local team's name keeps its team under the old name (a conflict)
        blocked = {
            group_id
            for group_id, (_group, name) in wanted.items()
            if group_id in teams_by_entra and teams_by_entra[group_id].name != name and unmanaged_by_name.get(name)
        }
        staying_names = {
            team.name: team
            for team in teams_by_entra.values()
            if team.id not in leaving and (team.entra_id not in wanted or team.entra_id in blocked)
        }
        creates: list[Change] = []
        for group_id, (group, name) in sorted(wanted.items(), key=lambda item: (item[1][1], item[0])):
            managed_team = teams_by_entra.get(group_id)
            other = staying_names.get(name)
            if other is not None:
                self._team_conflict(group_id, name, f"team {name!r} is managed by group {other.entra_id}")
                continue
            if managed_team is not None:
                if group_id in blocked:
                    self._team_conflict(
                        group_id,
                        name,
                        f"group renamed to {name!r}, the name of a local team; its team keeps the name "
                        f"{managed_team.name!r} until one of them is renamed",
                    )
                    continue
                if managed_team.name != name:
                    # group renamed -> team renamed (same row)
                    self.team_changes.append(RenameTeam(managed_team.id, group_id, managed_team.name, name))
                self._plan_members(group, managed_team, name)
                continue
            takeover = unmanaged_by_name.get(name, [])
            if len(takeover) > 1:
                self._team_conflict(group_id, name, f"{len(takeover)} local teams are named {name!r}")
                continue
            if takeover and group.member_ids is None:
                continue  # taken over once its members can be read, since they replace the team's
            if takeover:
                # a group named like a team no group manages takes that team over
                self.team_changes.append(ReplaceTeam(takeover[0].id, group_id, name))
                self._plan_members(group, takeover[0], name)
                continue
            # group assigned -> team created with the group's members
            creates.append(CreateTeam(group_id, name))
            self._plan_members(group, None, name)
        self.team_changes.extend(creates)

    def plan_leavers(self) -> None:
        """Users deactivated now leave the managed teams this plan did not otherwise look at (teams of
        groups with a conflict or outside a partial snapshot): their members must be active.

        So does the user an on-demand snapshot was taken for: it holds every assigned group the user
        belongs to, so a managed team whose group it lacks is one the user has left.
        """
        deleted = {c.team_id for c in self.team_changes if isinstance(c, DeleteTeam)}
        leaving = set(self.deactivated_ids)
        if self.snapshot.partial and self.snapshot.complete:
            known = self.source_users.keys() | self.snapshot.deleted_user_ids
            subjects = self.snapshot.subjects & known
            leaving |= {u.id for u in self.state.users if u.entra_id in subjects and u.id not in self.frozen_user_ids}
        for team in sorted(self.state.teams, key=lambda t: (t.name, t.id)):
            if team.entra_id is None or team.id in deleted or team.id in self.planned_teams:
                continue
            for user_id in sorted(team.member_ids & leaving):
                email = self.users_by_id[user_id].email
                self.member_changes.append(RemoveMember(team.id, team.entra_id, team.name, user_id, email))

    def _team_conflict(self, group_id: str, name: str, message: str) -> None:
        """The group is skipped: its team (if any) stays exactly as it is."""
        self.errors.append(problem("TEAM_NAME_CONFLICT", "group", group_id, name, message))

    def _plan_members(self, group: SourceGroup, team: StoreTeam | None, name: str) -> None:
        """Members become exactly the group's members that are active in the store."""
        if team is not None:
            self.planned_teams.add(team.id)
        if group.member_ids is None:
            return  # the member list could not be read: leave the team as it is
        target: dict[str, str] = {}  # entra id -> email after the plan
        for member_id in group.member_ids:
            after = self.active_after.get(member_id)
            if after is not None and after.id not in self.frozen_user_ids:
                target[member_id] = self.email_after.get(member_id, after.email)
        current = [self.users_by_id[i] for i in (team.member_ids if team else ()) if i in self.users_by_id]
        in_team = set()
        for user in sorted(current, key=lambda u: (u.email, u.id)):
            entra_id = self.adopted.get(user.id, user.entra_id)
            if entra_id in target:
                in_team.add(entra_id)
                continue
            if user.id in self.frozen_user_ids:
                continue
            evidence = user.id in self.deactivated_ids or not user.active
            if self.snapshot.partial:
                evidence = evidence or entra_id in self.source_users
            if self.knows(group.id) or evidence:
                assert team is not None
                self.member_changes.append(RemoveMember(team.id, group.id, name, user.id, user.email))
        for member_id, email in sorted(target.items(), key=lambda item: (item[1], item[0])):
            if member_id not in in_team:
                self.member_changes.append(AddMember(group.id, name, member_id, email))

    # ----------------------------------------------------------------- assembly

    def run(self) -> Plan:
        scope = scope_of(self.snapshot)
        self.plan_users(scope)
        self.deactivated_ids = {c.user_id for c in self.user_changes if isinstance(c, DeactivateUser)}
        self.plan_teams(scope)
        self.plan_leavers()
        changes = self.user_changes + self.team_changes + self.member_changes
        order = {op: index for index, op in enumerate(OPS)}
        ordered = sorted(enumerate(changes), key=lambda item: (order[item[1].op], item[0]))
        return Plan(
            changes=tuple(change for _, change in ordered),
            errors=tuple(self.errors),
            warnings=tuple(self.warnings),
            complete=self.snapshot.complete,
        )


_ATTR = {"userPrincipalName": "user_principal_name", "mail": "mail"}


def _group_problem(group_id: str, name: str) -> str | None:
    """Why a group's team cannot be stored (its id, or its name after trimming); None when it can."""
    why = unstorable(group_id, ENTRA_ID_LENGTH)
    if why is not None:
        return f"id {shown(group_id)} {why}"
    if not name:
        return "displayName is empty"
    why = unstorable(name, NAME_LENGTH)
    return None if why is None else f"displayName {shown(name)} {why}"


def diff(snapshot: Snapshot, state: StoreState, policy: Policy | None = None) -> Plan:
    """The changes that make ``state`` match ``snapshot`` under ``policy``."""
    return _Planner(snapshot, state, policy or Policy()).run()
