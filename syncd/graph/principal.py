"""On demand: one user or one group, and users looked up by id.

``syncd sync --user ada@contoso.com`` and ``--group Sales`` act on one principal without reading
the whole application; ``lookup_users`` tells why a provisioned user left scope (Graph answers
``accountEnabled: false`` for a disabled user, 404 for a deleted one).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..config import GraphConfig, SyncConfig
from ..errors import GraphError, InputError, SyncdError
from ..model import Snapshot, SourceGroup, SourceUser
from .classify import query_value, segment
from .client import PAGE_SIZE, GraphClient, gather_all
from .decode import (
    BadResponse,
    decode_group,
    decode_user,
)
from .reads import (
    GROUP_FIELDS,
    GUID,
    USER_FIELDS,
    Collected,
    build_snapshot,
    read_assignments,
    read_members,
    read_service_principal,
    read_users,
)


async def lookup_users_async(
    client: GraphClient, user_ids: Iterable[str]
) -> tuple[tuple[SourceUser, ...], frozenset[str]]:
    """Users by id (``$batch``): those Graph returned, and the ids it answered 404 for.

    Any other failure raises, since the caller wants to know why each user left scope.
    """
    ids = list(dict.fromkeys(user_ids))
    found = Collected()
    await read_users(client, ids, found)
    if found.failures:
        failure = found.failures[0]
        more = f" (and {len(found.failures) - 1} more)" if len(found.failures) > 1 else ""
        raise GraphError(f"{failure.message}{more}", code=failure.code)
    users = tuple(sorted(found.users.values(), key=lambda user: user.id))
    return users, frozenset(found.deleted)


async def fetch_principal_async(
    client: GraphClient,
    graph: GraphConfig,
    sync: SyncConfig,
    *,
    user: str | None = None,
    group: str | None = None,
) -> Snapshot:
    """A partial snapshot of one user (by id, UPN or mail) or one group (by id or displayName).

    It holds the app roles, the principal's assignments and:

    * for a user: the user, and the assigned groups it belongs to (``memberOf``, or
      ``transitiveMemberOf`` with nested groups), each with ``member_ids`` of just that user;
      the assignments of those groups give the user its roles;
    * for a group: the group with all its user members, and their attributes; plus the direct
      assignments of those members, so each member's own role is not lost.

    ``partial=True``: nothing may be deprovisioned because it is absent from it, except the
    principal itself (``subjects``): a user out of scope is unassigned, an id Graph answers 404
    for is deleted, and a group out of scope (or deleted) loses its team.
    """
    if (user is None) == (group is None):
        raise InputError("name exactly one user or one group")
    service_principal = await read_service_principal(client, graph)
    found = Collected()
    assignments_task = read_assignments(client, service_principal.id, found)
    if user is not None:
        source_user, assignments = await gather_all(_find_user(client, user), assignments_task)
        if source_user is None:
            # a user id Graph answers 404 for: deleted in Entra
            found.deleted.add(user)
            return build_snapshot(sync.scope, service_principal, [], [], found, partial=True, subjects=[user])
        found.add_user(source_user)
        assigned_groups = {a.principal_id for a in assignments if a.principal_type == "Group"}
        groups = await _member_of(client, source_user.id, assigned_groups, nested=sync.nested_groups)
        group_ids = {group_id for group_id, _ in groups}
        kept = [a for a in assignments if a.principal_id == source_user.id or a.principal_id in group_ids]
        source_groups = [SourceGroup(group_id, name, (source_user.id,)) for group_id, name in groups]
        subject = source_user.id
    else:
        assert group is not None
        found_group, assignments = await gather_all(_find_group(client, group), assignments_task)
        if found_group is None:
            # a group id Graph answers 404 for: deleted in Entra, so its team goes
            return build_snapshot(sync.scope, service_principal, [], [], found, partial=True, subjects=[group])
        group_id, name = found_group
        member_ids = await read_members(client, group_id, nested=sync.nested_groups, found=found)
        principals = {group_id, *(member_ids or ())}
        kept = [a for a in assignments if a.principal_id in principals]
        source_groups = [SourceGroup(group_id, name, member_ids)]
        subject = group_id
    return build_snapshot(sync.scope, service_principal, kept, source_groups, found, partial=True, subjects=[subject])


async def _find_user(client: GraphClient, user: str) -> SourceUser | None:
    """``GET /users/{id or userPrincipalName}``; failing that, the one user whose mail is ``user``.

    None for an object id Graph answers 404 for (a deleted user).
    """
    what = f"reading user {user}"
    try:
        body = await client.get_json(f"/users/{segment(user)}?$select={USER_FIELDS}", what=what)
    except GraphError as error:
        if error.status not in (400, 404):
            raise
        if error.status == 404 and GUID.match(user):
            return None
        if "@" not in user:
            raise SyncdError(f"no user {user!r} in Entra ID", code="NOT_FOUND") from None
        items = await client.collect(
            f"/users?$filter={query_value(_equals('mail', user))}&$select={USER_FIELDS}",
            what=f"finding the user with mail {user}",
        )
        if len(items) != 1:
            raise SyncdError(
                f"no user {user!r} in Entra ID (by id, userPrincipalName or mail)", code="NOT_FOUND"
            ) from None
        body = items[0]
    try:
        return decode_user(body, fallback_id=user if GUID.match(user) else None)
    except BadResponse as error:
        raise GraphError(f"{what}: {error}", code="GRAPH_BAD_RESPONSE") from None


def _equals(field_name: str, value: str) -> str:
    """An OData ``$filter`` equality with the string literal quoted (``'`` doubled)."""
    escaped = value.replace("'", "''")
    return f"{field_name} eq '{escaped}'"


async def _find_group(client: GraphClient, group: str) -> tuple[str, str] | None:
    """``(id, displayName)`` of a group given by id or by its exact displayName.

    None for an object id Graph answers 404 for (a deleted group).
    """
    what = f"reading group {group}"
    try:
        if GUID.match(group):
            try:
                return decode_group(await client.get_json(f"/groups/{group}?$select={GROUP_FIELDS}", what=what))
            except GraphError as error:
                if error.status != 404:
                    raise
                return None
        url = f"/groups?$filter={query_value(_equals('displayName', group))}&$select={GROUP_FIELDS}&$top={PAGE_SIZE}"
        matches = [decode_group(item) for item in await client.collect(url, what=f"finding group {group!r}")]
    except BadResponse as error:
        raise GraphError(f"{what}: {error}", code="GRAPH_BAD_RESPONSE") from None
    if not matches:
        raise SyncdError(f"no group {group!r} in Entra ID (by id or displayName)", code="NOT_FOUND")
    if len(matches) > 1:
        ids = ", ".join(group_id for group_id, _ in matches)
        raise InputError(f"{len(matches)} groups are named {group!r} ({ids}); name one by its id")
    return matches[0]


async def _member_of(
    client: GraphClient, user_id: str, assigned_groups: set[str], *, nested: bool
) -> list[tuple[str, str]]:
    """The assigned groups ``user_id`` belongs to, from one listing of its group memberships."""
    if not assigned_groups:
        return []
    relation = "transitiveMemberOf" if nested else "memberOf"
    url = f"/users/{segment(user_id)}/{relation}/microsoft.graph.group?$select={GROUP_FIELDS}&$top={PAGE_SIZE}"
    try:
        items = await client.collect(url, what=f"reading the groups of user {user_id}")
        groups = [decode_group(item) for item in items]
    except BadResponse as error:
        raise GraphError(f"user {user_id}: {error}", code="GRAPH_BAD_RESPONSE") from None
    return sorted((group_id, name) for group_id, name in groups if group_id in assigned_groups)
