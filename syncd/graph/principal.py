"""On demand: one user or one group, and users looked up by id.

``syncd sync --user ada@contoso.com`` and ``--group Sales`` act on one principal without reading
the whole application; ``lookup_users`` tells why a provisioned user left scope (Graph answers
``accountEnabled: false`` for a disabled user, 404 for a deleted one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import aclosing

from ..config import GraphConfig, SyncConfig
from ..errors import GraphError, InputError, SyncdError
from ..model import Snapshot, SourceGroup, SourceUser
from .classify import equality_query, path_of, segment, user_path
from .client import PAGE_SIZE, GraphClient, gather_all
from .decode import BadResponse, check_identity, decode_group, decode_user
from .reads import (
    GROUP_FIELDS,
    GUID,
    UNREAD_APPLICATION,
    Collected,
    build_snapshot,
    member_groups,
    read_application,
    read_assignments,
    read_group_names,
    read_members,
    read_users,
)

CHECK_MEMBER_GROUPS_LIMIT = 20
"""directoryobject-checkmembergroups: "Up to 20 groups may be specified" per request."""


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

    * for a user: the user, and the assigned groups it belongs to (``checkMemberGroups``, see
      :func:`_groups_of`), each with ``member_ids`` of just that user; the assignments of those
      groups give the user its roles;
    * for a group: the group with all its user members, and their attributes; plus the direct
      assignments of those members, so each member's own role is not lost.

    ``partial=True``: nothing may be deprovisioned because it is absent from it, except the
    principal itself (``subjects``): a user out of scope is unassigned, an id Graph answers 404
    for is deleted, and a group out of scope (or deleted) loses its team.
    """
    if (user is None) == (group is None) or not (user or group or "").strip():
        raise InputError("name exactly one user or one group")
    found = Collected()
    service_principal = await read_application(client, graph, found)
    if service_principal is None:
        return build_snapshot(sync.scope, UNREAD_APPLICATION, [], [], found, partial=True)
    assignments_task = read_assignments(client, service_principal.id, found)
    if user is not None:
        source_user, assignments = await gather_all(_find_user(client, user), assignments_task)
        if source_user is None:
            # a user id Graph answers 404 for: deleted in Entra
            found.deleted.add(user)
            return build_snapshot(sync.scope, service_principal, [], [], found, partial=True, subjects=[user])
        found.add_user(source_user)
        assigned_groups = sorted({a.principal_id for a in assignments if a.principal_type == "Group"})
        group_ids = await _groups_of(client, source_user.id, assigned_groups, nested=sync.nested_groups, found=found)
        names = await read_group_names(client, group_ids, found) if group_ids else {}
        kept = [a for a in assignments if a.principal_id == source_user.id or a.principal_id in group_ids]
        source_groups = [
            SourceGroup(group_id, names[group_id], (source_user.id,)) for group_id in group_ids if group_id in names
        ]
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
    key_property = "userPrincipalName"
    try:
        body = await client.get_json(f"{user_path(user)}?$select={client.user_fields}", what=what)
    except GraphError as error:
        if error.status not in (400, 404):
            raise
        if error.status == 404 and GUID.match(user):
            return None
        if "@" not in user:
            raise SyncdError(f"no user {user!r} in Entra ID", code="NOT_FOUND") from None
        option, headers = equality_query("mail", user)
        items = await client.collect(
            f"/users?{option}&$select={client.user_fields}", what=f"finding the user with mail {user}", headers=headers
        )
        if len(items) != 1:
            raise SyncdError(
                f"no user {user!r} in Entra ID (by id, userPrincipalName or mail)", code="NOT_FOUND"
            ) from None
        body, key_property = items[0], "mail"
    try:
        check_identity(body, user, what, key_property=key_property)
        return decode_user(body, fallback_id=user if GUID.match(user) else None)
    except BadResponse as error:
        raise GraphError(f"{what}: {error}", code="GRAPH_BAD_RESPONSE") from None


async def _find_group(client: GraphClient, group: str) -> tuple[str, str] | None:
    """``(id, displayName)`` of a group given by id or by its exact displayName.

    None for an object id Graph answers 404 for (a deleted group).
    """
    what = f"reading group {group}"
    try:
        if GUID.match(group):
            try:
                body = await client.get_json(f"/groups/{group}?$select={GROUP_FIELDS}", what=what)
                check_identity(body, group, what, key_property="id")
                return decode_group(body)
            except GraphError as error:
                if error.status != 404:
                    raise
                return None
        option, headers = equality_query("displayName", group)
        url = f"/groups?{option}&$select={GROUP_FIELDS}&$top={PAGE_SIZE}"
        items = await client.collect(url, what=f"finding group {group!r}", headers=headers)
        matches = [decode_group(item) for item in items]
        for _, name in matches:
            if name.lower() != group.lower():
                raise BadResponse(f"asked for the groups named {group!r}, the answer holds {name!r}")
    except BadResponse as error:
        raise GraphError(f"{what}: {error}", code="GRAPH_BAD_RESPONSE") from None
    if not matches:
        raise SyncdError(f"no group {group!r} in Entra ID (by id or displayName)", code="NOT_FOUND")
    if len(matches) > 1:
        ids = ", ".join(group_id for group_id, _ in matches)
        raise InputError(f"{len(matches)} groups are named {group!r} ({ids}); name one by its id")
    return matches[0]


async def _groups_of(
    client: GraphClient, user_id: str, assigned_groups: Sequence[str], *, nested: bool, found: Collected
) -> list[str]:
    """The assigned groups ``user_id`` belongs to (directly, or also through nesting when ``nested``).

    ``POST /users/{id}/checkMemberGroups`` answers, for up to 20 group ids a request, those the
    user belongs to, transitively; it needs User.Read.All and GroupMember.Read.All, where listing
    the user's ``memberOf`` would need Directory.Read.All.  Without nested groups only direct
    membership counts, so each group found is confirmed in its direct ``members`` (ids only).
    A read that fails is recorded in ``found``: the snapshot is then incomplete, and the user
    keeps the teams it has.
    """
    candidates: list[str] = []
    for start in range(0, len(assigned_groups), CHECK_MEMBER_GROUPS_LIMIT):
        chunk = assigned_groups[start : start + CHECK_MEMBER_GROUPS_LIMIT]
        url = f"{user_path(user_id)}/checkMemberGroups"
        try:
            candidates.extend(await member_groups(client, user_id, chunk))
        except BadResponse as error:
            found.fail(
                GraphError(f"checking the groups of user {user_id}: {error}", code="GRAPH_BAD_RESPONSE"), path_of(url)
            )
        except GraphError as error:
            found.fail(error, path_of(url))
    wanted = {group_id.lower(): group_id for group_id in assigned_groups}
    member_of = sorted({wanted[group_id.lower()] for group_id in candidates if group_id.lower() in wanted})
    if nested:
        return member_of
    direct = await gather_all(*(_is_direct_member(client, group_id, user_id, found) for group_id in member_of))
    return [group_id for group_id, is_direct in zip(member_of, direct, strict=True) if is_direct]


async def _is_direct_member(client: GraphClient, group_id: str, user_id: str, found: Collected) -> bool:
    """Whether ``user_id`` is among the direct members of a group (its ids listed, page by page)."""
    url = f"/groups/{segment(group_id)}/members?$select=id&$top={PAGE_SIZE}"
    try:
        async with aclosing(client.pages(url, what=f"reading the members of group {group_id}")) as pages:
            async for page in pages:
                if any(str(item.get("id", "")).lower() == user_id.lower() for item in page):
                    return True
    except GraphError as error:
        found.fail(error, path_of(url))
    return False
