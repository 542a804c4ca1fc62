"""User types from app roles: which type each role gives, and which wins when a user has several."""

from __future__ import annotations

from collections.abc import Iterable

from .model import BUILTIN_USER_TYPES, DEFAULT_ACCESS_ROLE_ID, DEFAULT_PRECEDENCE, Policy, Snapshot, is_custom_role_id


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
        if found is None and role.display_name.strip().isdigit():
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
