"""Small builders for snapshots and store states, so tests read as the scenario they describe."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from syncd.model import (
    DEFAULT_ACCESS_ROLE_ID,
    AppRole,
    Assignment,
    FetchFailure,
    Snapshot,
    SourceGroup,
    SourceUser,
    StoreState,
    StoreTeam,
    StoreUser,
)

ADMIN = "aaaaaaaa-0000-0000-0000-000000000001"
MEMBER = "aaaaaaaa-0000-0000-0000-000000000002"
VIEWER = "aaaaaaaa-0000-0000-0000-000000000003"
GUEST = "aaaaaaaa-0000-0000-0000-000000000004"
CUSTOM = "aaaaaaaa-0000-0000-0000-000000000005"
CUSTOM_SMALL = "aaaaaaaa-0000-0000-0000-000000000006"
BILLING = "aaaaaaaa-0000-0000-0000-000000000007"
DEFAULT = DEFAULT_ACCESS_ROLE_ID

ROLES = (
    AppRole(ADMIN, "Admin", "admin"),
    AppRole(MEMBER, "Member", "member"),
    AppRole(VIEWER, "Viewer", "viewer"),
    AppRole(GUEST, "Guest", "guest"),
    AppRole(CUSTOM, "12345", "custom.12345"),
    AppRole(CUSTOM_SMALL, "678", None),
    AppRole(BILLING, "Billing Manager", "billing"),
)


def uid(name: str) -> str:
    """A stable Entra object id for a readable name."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name))


def user(name: str, *, job_title: str | None = None, **fields: object) -> SourceUser:
    values: dict[str, object] = {
        "id": uid(name),
        "user_principal_name": f"{name}@contoso.com",
        "display_name": name.title(),
        "account_enabled": True,
        "attributes": {"jobTitle": job_title},
    }
    values.update(fields)
    return SourceUser(**values)  # type: ignore[arg-type]


def group(name: str, members: Iterable[SourceUser | str] | None = (), **fields: object) -> SourceGroup:
    ids = None if members is None else tuple(m if isinstance(m, str) else m.id for m in members)
    return SourceGroup(id=str(fields.get("id", uid("group:" + name))), display_name=name, member_ids=ids)


def assigned(principal: SourceUser | SourceGroup, role: str = DEFAULT) -> Assignment:
    kind = "User" if isinstance(principal, SourceUser) else "Group"
    return Assignment(principal.id, kind, role)  # type: ignore[arg-type]


def snapshot(
    *,
    users: Iterable[SourceUser] = (),
    groups: Iterable[SourceGroup] = (),
    assignments: Iterable[Assignment] = (),
    failures: Iterable[FetchFailure] = (),
    deleted: Iterable[str] = (),
    **fields: object,
) -> Snapshot:
    return Snapshot(
        app_roles=ROLES,
        users=tuple(users),
        groups=tuple(groups),
        assignments=tuple(assignments),
        failures=tuple(failures),
        deleted_user_ids=frozenset(deleted),
        **fields,  # type: ignore[arg-type]
    )


def stored_user(local_id: int, email: str, *, source: SourceUser | None = None, **fields: object) -> StoreUser:
    values: dict[str, object] = {
        "id": local_id,
        "email": email,
        "name": email.split("@")[0].title(),
        "user_type": "member",
        "active": True,
        "entra_id": source.id if source is not None else None,
        "attributes": {"title": fields.pop("title", None)},
    }
    values.update(fields)
    return StoreUser(**values)  # type: ignore[arg-type]


def stored_team(local_id: int, name: str, members: Iterable[int] = (), entra_id: str | None = None) -> StoreTeam:
    return StoreTeam(local_id, name, entra_id, frozenset(members))


def state(users: Iterable[StoreUser] = (), teams: Iterable[StoreTeam] = ()) -> StoreState:
    return StoreState(tuple(users), tuple(teams))
