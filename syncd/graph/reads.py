"""The single reads a fetch is made of, each turning Graph's answers into model values.

Each read records what it could not get in a :class:`Collected` as a
:class:`~syncd.model.FetchFailure` and goes on; only 401 and 403, which void the whole fetch,
are raised.  The order and the request counts are described in :mod:`syncd.graph.fetch`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field

from ..config import GraphConfig
from ..errors import GraphError
from ..model import Assignment, FetchFailure, Snapshot, SourceGroup, SourceUser, user_properties
from .classify import READ_USERS, is_fatal, missing_permission, path_of, segment, user_path
from .client import BATCH_SIZE, PAGE_SIZE, GraphClient
from .decode import (
    BadResponse,
    ServicePrincipalInfo,
    check_identity,
    decode_assignment,
    decode_group,
    decode_id_list,
    decode_member,
    decode_service_principal,
    decode_user,
    has_user_fields,
    load_object,
)

log = logging.getLogger("syncd.graph")


USER_FIELDS = ",".join(user_properties())
"""The ``$select`` of every user read: the core properties and the attribute registry's."""
GROUP_FIELDS = "id,displayName"
ASSIGNMENT_FIELDS = "id,principalId,principalType,appRoleId"
SERVICE_PRINCIPAL_FIELDS = "id,appId,displayName,appRoles"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


async def read_service_principal(client: GraphClient, graph: GraphConfig) -> ServicePrincipalInfo:
    """The configured enterprise application and its app roles; 404 raises GRAPH_NOT_FOUND."""
    graph.require_application()
    if graph.service_principal_id:
        key = f"graph.service_principal_id {graph.service_principal_id}"
        url = f"/servicePrincipals/{segment(graph.service_principal_id)}"
    else:
        key = f"graph.app_id {graph.app_id}"
        url = f"/servicePrincipals(appId='{segment(graph.app_id)}')"
    what = f"reading the service principal ({key})"
    try:
        body = await client.get_json(f"{url}?$select={SERVICE_PRINCIPAL_FIELDS}", what=what)
    except GraphError as error:
        if error.status == 404:
            raise GraphError(
                f"no service principal (enterprise application) with {key} in this tenant; "
                "check the id in Entra ID > Enterprise applications",
                code="GRAPH_NOT_FOUND",
                status=404,
            ) from None
        raise
    try:
        if graph.service_principal_id:
            check_identity(body, graph.service_principal_id, what, key_property="id")
        else:
            check_identity(body, graph.app_id, what, key_property="appId")
        return decode_service_principal(body)
    except BadResponse as error:
        raise GraphError(f"{what}: {error}", code="GRAPH_BAD_RESPONSE") from None


@dataclass(slots=True)
class Collected:
    """What a fetch has gathered so far; turned into a Snapshot at the end."""

    failures: list[FetchFailure] = field(default_factory=list)
    users: dict[str, SourceUser] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    assignment_ids: dict[Assignment, str] = field(default_factory=dict)
    """The id of each assignment read (the mirror matches removals by it)."""

    def fail(self, error: GraphError, path: str) -> None:
        """Record a non-fatal failure; a 401 is re-raised because it voids the whole fetch."""
        if is_fatal(error):
            raise error
        self.failures.append(FetchFailure(error.code, error.message, path))

    def add_user(self, user: SourceUser) -> None:
        self.users.setdefault(user.id, user)


UNREAD_APPLICATION = ServicePrincipalInfo(id="", app_id="", display_name="", app_roles=())
"""Stands for the application when the service principal may not be read (a failed read)."""


async def read_application(client: GraphClient, graph: GraphConfig, found: Collected) -> ServicePrincipalInfo | None:
    """The service principal, or None when it may not be read (403) or its answer cannot be
    trusted (no ``appRoles``, another object): the failure is recorded in ``found``.

    Then nothing about the application is known: the snapshot holds no assignments and the
    failure, so it is incomplete, nothing is deprovisioned by absence and no type is lowered.
    Any other failure (a wrong id, 401, Graph down) raises.
    """
    try:
        return await read_service_principal(client, graph)
    except GraphError as error:
        if error.code not in ("GRAPH_PERMISSION", "GRAPH_BAD_RESPONSE"):
            raise
        found.fail(error, "/servicePrincipals")
        return None


async def read_assignments(
    client: GraphClient,
    service_principal_id: str,
    found: Collected,
    on_page: Callable[[int], None] | None = None,
) -> list[Assignment]:
    """Every user and group assignment of the application (all pages).

    ``on_page`` is called with the number of assignments read so far after each page.
    """
    url = (
        f"/servicePrincipals/{segment(service_principal_id)}/appRoleAssignedTo"
        f"?$select={ASSIGNMENT_FIELDS}&$top={PAGE_SIZE}"
    )
    assignments: list[Assignment] = []
    try:
        async for page in client.pages(url, what="reading the application's assignments"):
            for item in page:
                try:
                    assignment = decode_assignment(item)
                except BadResponse as error:
                    found.fail(GraphError(str(error), code="GRAPH_BAD_RESPONSE"), path_of(url))
                    continue
                if assignment is not None:
                    assignments.append(assignment)
                    if isinstance(item.get("id"), str):
                        found.assignment_ids[assignment] = item["id"]
            if on_page is not None:
                on_page(len(assignments))
    except GraphError as error:
        found.fail(error, path_of(url))
    return assignments


async def read_members(client: GraphClient, group_id: str, *, nested: bool, found: Collected) -> tuple[str, ...] | None:
    """The user members of a group (direct, or transitive when ``nested``); None if unreadable.

    ``/members`` (or ``/transitiveMembers``) is listed whole with a ``$select`` of the user
    fields, without an OData cast: group-list-members makes a cast an advanced query (it needs
    ``ConsistencyLevel: eventual`` and ``$count``, and reads an index that may lag recent
    changes, so a member added a minute ago would be missing and then removed).  The users are
    kept by their ``@odata.type``; groups, devices, contacts and service principals are skipped.
    A user listed with "limited information" (its id only: the application may not read users)
    makes the read fail with GRAPH_PERMISSION naming User.Read.All.  Every member's attributes
    are recorded in ``found`` as they arrive.
    """
    relation = "transitiveMembers" if nested else "members"
    url = f"/groups/{segment(group_id)}/{relation}?$select={client.user_fields}&$top={PAGE_SIZE}"
    what = f"reading the members of group {group_id}"
    member_ids: dict[str, None] = {}
    try:
        async for page in client.pages(url, what=what):
            for item in page:
                user = decode_member(item)
                if user is None:
                    continue
                if not has_user_fields(item):
                    raise GraphError(
                        f"{what}: Graph lists user {user.id} with its id only (limited information); "
                        f"{missing_permission(READ_USERS)}",
                        code="GRAPH_PERMISSION",
                        status=403,
                    )
                member_ids[user.id] = None
                found.add_user(user)
    except BadResponse as error:
        found.fail(GraphError(f"{what}: {error}", code="GRAPH_BAD_RESPONSE"), path_of(url))
        return None
    except GraphError as error:
        found.fail(error, path_of(url))
        return None
    return tuple(member_ids)


async def read_group_names(client: GraphClient, group_ids: Sequence[str], found: Collected) -> dict[str, str]:
    """``displayName`` of each group, by ``$batch``; a group that cannot be read is left out."""
    urls = [f"/groups/{segment(group_id)}?$select={GROUP_FIELDS}" for group_id in group_ids]
    names: dict[str, str] = {}
    results = await client.batch_get(urls, what="reading assigned groups")
    for group_id, result in zip(group_ids, results, strict=True):
        if result.error is not None:
            found.fail(result.error, path_of(result.url))
            continue
        try:
            check_identity(result.body, group_id, f"reading group {group_id}", key_property="id")
            names[group_id] = decode_group(result.body)[1]
        except BadResponse as error:
            found.fail(GraphError(str(error), code="GRAPH_BAD_RESPONSE"), path_of(result.url))
    return names


async def read_users(client: GraphClient, user_ids: Sequence[str], found: Collected, *, assigned: bool = False) -> None:
    """Attributes of users by id via ``$batch``.

    A 404 marks a user deleted, unless the user is ``assigned``: the application's assignments
    list it, so it exists, and Graph not finding it by id yet is replication lag (a user created
    a moment ago): that read fails, and the next cycle reads it again.
    """
    urls = [f"{user_path(user_id)}?$select={client.user_fields}" for user_id in user_ids]
    results = await client.batch_get(urls, what="reading users")
    for user_id, result in zip(user_ids, results, strict=True):
        if result.error is not None:
            if result.status == 404 and not assigned:
                found.deleted.add(user_id)
            elif result.status == 404:
                lagging = GraphError(
                    f"reading assigned user {user_id}: Graph does not find it by id yet (a user created or "
                    "assigned moments ago is readable after directory replication); read again next cycle",
                    code="GRAPH_NOT_FOUND",
                    status=404,
                )
                found.fail(lagging, path_of(result.url))
            else:
                found.fail(result.error, path_of(result.url))
            continue
        try:
            check_identity(result.body, user_id, f"reading user {user_id}")
            found.add_user(decode_user(result.body, fallback_id=user_id))
        except BadResponse as error:
            found.fail(GraphError(str(error), code="GRAPH_BAD_RESPONSE"), path_of(result.url))


async def list_users(
    client: GraphClient,
    found: Collected,
    wanted: Container[str] | None = None,
    on_page: Callable[[int], None] | None = None,
) -> bool:
    """Every user of the directory (or only those in ``wanted``); False if the listing broke off.

    Items outside ``wanted`` are skipped before they are decoded, which is most of a large
    directory when only the directly assigned users are looked for.  ``on_page`` is called with
    the number of users listed so far after each page.
    """
    url = f"/users?$select={client.user_fields}&$top={PAGE_SIZE}"
    listed = 0
    try:
        async for page in client.pages(url, what="listing users"):
            for item in page:
                if wanted is None or item.get("id") in wanted:
                    found.add_user(decode_user(item))
            listed += len(page)
            if on_page is not None:
                on_page(listed)
    except BadResponse as error:
        found.fail(GraphError(str(error), code="GRAPH_BAD_RESPONSE"), "/users")
        return False
    except GraphError as error:
        found.fail(error, "/users")
        return False
    return True


async def read_user_count(client: GraphClient) -> int:
    """The number of users in the directory; raises GraphError or BadResponse.

    ``$count=true`` is an advanced query: Graph needs the ``ConsistencyLevel: eventual`` header,
    and then puts the total in ``@odata.count`` of a one-item page.
    """
    response = await client.request(
        "GET",
        "/users?$select=id&$top=1&$count=true",
        what="counting users",
        headers={"ConsistencyLevel": "eventual"},
    )
    count = load_object(response.content, "user count").get("@odata.count")
    if not isinstance(count, int) or isinstance(count, bool):
        raise BadResponse("the user count has no '@odata.count'")
    return count


async def count_users(client: GraphClient) -> int | None:
    """The number of users in the directory, or None if Graph will not say (a 401 still raises)."""
    try:
        return await read_user_count(client)
    except GraphError as error:
        if error.code == "GRAPH_AUTH":
            raise
        return None
    except BadResponse:
        return None


async def member_groups(client: GraphClient, user_id: str, group_ids: Sequence[str]) -> list[str]:
    """Those of ``group_ids`` (at most 20) the user belongs to, directly or through nesting.

    ``POST /users/{id}/checkMemberGroups`` needs User.Read.All and GroupMember.Read.All; raises
    GraphError or BadResponse.
    """
    what = f"checking the assigned groups of user {user_id}"
    response = await client.request(
        "POST",
        f"{user_path(user_id)}/checkMemberGroups",
        what=what,
        content=json.dumps({"groupIds": list(group_ids)}).encode(),
    )
    return decode_id_list(load_object(response.content, what), what)


def listing_is_cheaper(direct_users: int, directory_users: int) -> bool:
    """Whether paging through ``/users`` (999 a page) takes fewer requests than ``$batch`` GETs
    (20 a request) for ``direct_users`` users.  The listing also spends one ``$count`` request."""
    return 1 + math.ceil(directory_users / PAGE_SIZE) < math.ceil(direct_users / BATCH_SIZE)


async def read_direct_users(client: GraphClient, user_ids: Sequence[str], found: Collected) -> None:
    """Attributes of directly assigned users, by whichever way takes fewer requests.

    A listing is eventually consistent: a user created moments ago may be missing from it, so the
    few users a listing does not return are still read one by one, and only a 404 on that read
    marks a user deleted.
    """
    if not user_ids:
        return
    if math.ceil(len(user_ids) / BATCH_SIZE) > 2:
        total = await count_users(client)
        if total is not None and listing_is_cheaper(len(user_ids), total):
            log.debug("listing %d directory users instead of %d $batch reads", total, len(user_ids))
            listed = Collected()
            if await list_users(client, listed, wanted=frozenset(user_ids)):
                for user in listed.users.values():
                    found.add_user(user)
                user_ids = [user_id for user_id in user_ids if user_id not in found.users]
    await read_users(client, user_ids, found, assigned=True)


def build_snapshot(
    scope: str,
    service_principal: ServicePrincipalInfo,
    assignments: Iterable[Assignment],
    groups: Iterable[SourceGroup],
    found: Collected,
    *,
    partial: bool = False,
    subjects: Iterable[str] = (),
) -> Snapshot:
    """A deterministic Snapshot: assignments, groups and users sorted, duplicates dropped."""
    ordered_assignments = sorted(set(assignments), key=lambda a: (a.principal_type, a.principal_id, a.app_role_id))
    return Snapshot(
        scope="all" if scope == "all" else "assigned",
        app_roles=service_principal.app_roles,
        assignments=tuple(ordered_assignments),
        groups=tuple(sorted(groups, key=lambda group: group.id)),
        users=tuple(sorted(found.users.values(), key=lambda user: user.id)),
        deleted_user_ids=frozenset(found.deleted - found.users.keys()),
        failures=tuple(found.failures),
        partial=partial,
        subjects=frozenset(subjects),
    )
