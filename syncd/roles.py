"""App roles: who holds which (the scope of a snapshot), which user type each role gives, and which
type wins when a user has several."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import (
    BUILTIN_USER_TYPES,
    DEFAULT_ACCESS_ROLE_ID,
    DEFAULT_PRECEDENCE,
    Policy,
    Snapshot,
    SourceGroup,
    is_custom_role_id,
)


@dataclass(slots=True)
class Scope:
    """Who is in scope, with the app role ids each user holds."""

    user_roles: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    groups: dict[str, SourceGroup] = field(default_factory=dict)
    unknown_groups: set[str] = field(default_factory=set)
    """Assigned groups the snapshot holds no group for (their teams are left alone)."""
    via_group: dict[str, str] = field(default_factory=dict)
    """User id -> the id of an assigned group that brings it in scope (for messages)."""


def scope_of(snapshot: Snapshot) -> Scope:
    """The users and groups in scope of ``snapshot``: assigned (or, with scope "all", listed)."""
    scope = Scope()
    groups_by_id = {group.id: group for group in snapshot.groups}
    if snapshot.scope == "all":
        # scope = "all": every user and group Graph listed, with the roles assignments give
        for user in snapshot.users:
            scope.user_roles[user.id]
        scope.groups = dict(groups_by_id)
    for assignment in snapshot.assignments:
        if assignment.principal_type == "User":
            # user assigned directly
            scope.user_roles[assignment.principal_id].add(assignment.app_role_id)
        elif assignment.principal_id in groups_by_id:
            scope.groups[assignment.principal_id] = groups_by_id[assignment.principal_id]
        else:
            scope.unknown_groups.add(assignment.principal_id)
    group_roles: dict[str, set[str]] = defaultdict(set)
    for assignment in snapshot.assignments:
        if assignment.principal_type == "Group":
            group_roles[assignment.principal_id].add(assignment.app_role_id)
    for group in sorted(scope.groups.values(), key=lambda g: g.id):
        # user assigned as a direct member of an assigned group (transitive when flattened)
        for member_id in group.member_ids or ():
            roles = group_roles.get(group.id) or {DEFAULT_ACCESS_ROLE_ID}
            scope.user_roles[member_id].update(roles)
            scope.via_group.setdefault(member_id, group.id)
    if snapshot.scope == "all":
        for roles in scope.user_roles.values():
            if not roles:
                roles.add(DEFAULT_ACCESS_ROLE_ID)
    return scope


def role_user_types(snapshot: Snapshot, policy: Policy) -> dict[str, str | None]:
    """The user type each app role id gives; None for a role that maps to nothing."""
    lowered_map = {name.lower(): target for name, target in policy.role_map.items()}
    types: dict[str, str | None] = {DEFAULT_ACCESS_ROLE_ID: policy.default_user_type}
    for role in snapshot.app_roles:
        names = [n for n in (role.display_name, role.value) if n]
        found: str | None = None
        for name in names:
            if name.lower() in lowered_map:
                found = lowered_map[name.lower()]
                break
        if found is None:
            for name in names:
                if name.strip().lower() in BUILTIN_USER_TYPES:
                    found = name.strip().lower()
                    break
        if found is None and is_custom_role_id(role.display_name.strip()):
            found = role.display_name.strip()
        types[role.id] = found
    return types


def choose_user_type(candidates: Iterable[str], policy: Policy) -> str:
    """The first type in ``policy.precedence`` among the candidates ("custom": the smallest id)."""
    pool = set(candidates)
    if not pool:
        return policy.default_user_type
    # types the configured list leaves out still rank after it, in the default order
    ranks = [*policy.precedence, *(rank for rank in DEFAULT_PRECEDENCE if rank not in policy.precedence)]
    for rank in ranks:
        if rank == "custom":
            custom = sorted((t for t in pool if is_custom_role_id(t)), key=lambda t: (int(t), t))
            if custom:
                return custom[0]
        elif rank in pool:
            return rank
    return policy.default_user_type
