"""Delta rounds: what changed in the users, the groups and the application's assignments.

Three queries, each followed through its ``@odata.nextLink`` pages to one ``@odata.deltaLink``
(the next round's start):

* ``GET /users/delta?$select=<the registry's user properties>`` (User.Read.All);
* ``GET /groups/delta?$select=displayName,members`` (GroupMember.Read.All): ``members@delta``
  joins and leaves members, a large group in several parts;
* ``GET /directoryObjects/delta?$filter=isof('microsoft.graph.appRoleAssignment') or
  isof('microsoft.graph.user')`` (User.Read.All): assignment changes tenant-wide, of which those
  whose ``resourceId`` is the application's service principal are kept; Graph tracks assignments
  only together with users, whose items here are ignored (``/users/delta`` has them).

A full read first takes a link for each with ``$deltatoken=latest`` (no objects, an immediate
link), so the next round starts from before the full listing; changes in between are replayed,
which a fold takes in its stride.  A link Graph no longer honours (410 Gone, or the codes
``syncStateNotFound`` / ``resyncRequired``) raises :class:`DeltaExpired`: a full read follows.
Each page is decoded whole; an item that is not understood fails the round (GRAPH_BAD_RESPONSE),
and a round that fails anywhere feeds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import GraphConfig
from ..errors import GraphError
from ..mirror import GroupItem, MirrorAssignment, RemovedUser
from ..model import SourceUser, user_properties
from .client import MAX_PAGES, GraphClient
from .decode import BadResponse, decode_assignment, decode_user, member_kind

GROUPS_DELTA = "/groups/delta?$select=displayName,members"
ASSIGNMENTS_DELTA = (
    "/directoryObjects/delta?$filter=isof('microsoft.graph.appRoleAssignment') or isof('microsoft.graph.user')"
)
EXPIRED_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
ASSIGNMENT_TYPE = "#microsoft.graph.appRoleAssignment"


class DeltaExpired(GraphError):
    """Graph no longer honours a delta link: the next read must be a full one."""


def users_delta(client: GraphClient) -> str:
    return f"/users/delta?$select={client.user_fields}"


def selection(graph: GraphConfig) -> str:
    """The user properties the users' delta link selects; another one needs a full read."""
    return ",".join(user_properties(graph.extra_user_properties))


def _expired(error: GraphError) -> bool:
    return error.status == 410 or (error.graph_code or "").lower() in EXPIRED_CODES


async def latest(client: GraphClient, url: str, *, what: str) -> str:
    """A delta link that starts now (``$deltatoken=latest``)."""
    separator = "&" if "?" in url else "?"
    body = await client.get_json(f"{url}{separator}$deltatoken=latest", what=what)
    link = body.get("@odata.deltaLink")
    if not isinstance(link, str):
        raise GraphError(f"{what}: Graph's answer has no @odata.deltaLink", code="GRAPH_BAD_RESPONSE")
    client.absolute(link)
    return link


async def read_round(client: GraphClient, url: str, *, what: str) -> tuple[list[dict[str, Any]], str]:
    """Every item of one round from ``url`` (a delta link or a first query), and the next delta link.

    Unlike a listing, a round may name the same object on several pages (a large group in parts,
    or an object changed twice), so only a link followed twice or more than MAX_PAGES pages make it
    endless.
    """
    items: list[dict[str, Any]] = []
    followed: set[str] = set()
    next_url = url
    while True:
        if next_url in followed or len(followed) >= MAX_PAGES:
            raise GraphError(f"{what}: the delta round never ends", code="GRAPH_BAD_RESPONSE")
        followed.add(next_url)
        try:
            body = await client.get_json(next_url, what=what)
        except GraphError as error:
            if _expired(error):
                raise DeltaExpired(
                    f"{what}: Graph no longer honours the delta link ({error})", code=error.code
                ) from None
            raise
        value = body.get("value")
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise GraphError(f"{what}: the answer has no list of objects", code="GRAPH_BAD_RESPONSE")
        items.extend(value)
        next_link = body.get("@odata.nextLink")
        delta_link = body.get("@odata.deltaLink")
        if isinstance(next_link, str) and delta_link is None:
            next_url = client.absolute(next_link)
            continue
        if isinstance(delta_link, str) and next_link is None:
            client.absolute(delta_link)
            return items, delta_link
        raise GraphError(
            f"{what}: a page must end with either an @odata.nextLink or an @odata.deltaLink",
            code="GRAPH_BAD_RESPONSE",
        )


def _removed_reason(item: Mapping[str, Any], what: str) -> str | None:
    removed = item.get("@removed")
    if removed is None:
        return None
    reason = removed.get("reason") if isinstance(removed, Mapping) else None
    if reason not in ("changed", "deleted"):
        raise BadResponse(f"{what}: '@removed' has the reason {reason!r}, not 'changed' or 'deleted'")
    return str(reason)


def _id(item: Mapping[str, Any], what: str) -> str:
    value = item.get("id")
    if not isinstance(value, str) or not value:
        raise BadResponse(f"{what}: an item has no 'id'")
    return value


def decode_users(items: list[dict[str, Any]]) -> tuple[SourceUser | RemovedUser, ...]:
    """``/users/delta`` items; a property left out was never set (None)."""
    decoded: list[SourceUser | RemovedUser] = []
    for item in items:
        user_id = _id(item, "users delta")
        reason = _removed_reason(item, f"users delta, user {user_id}")
        if reason is not None:
            decoded.append(RemovedUser(user_id, reason))
        else:
            decoded.append(decode_user(item))
    return tuple(decoded)


def decode_groups(items: list[dict[str, Any]]) -> tuple[GroupItem, ...]:
    """``/groups/delta`` items: the name, and the user members that joined or left."""
    decoded = []
    for item in items:
        group_id = _id(item, "groups delta")
        what = f"groups delta, group {group_id}"
        if _removed_reason(item, what) is not None:
            decoded.append(GroupItem(group_id, removed=True))
            continue
        name = item.get("displayName")
        if name is not None and not isinstance(name, str):
            raise BadResponse(f"{what}: 'displayName' is not a string")
        members = item.get("members@delta", [])
        if not isinstance(members, list):
            raise BadResponse(f"{what}: 'members@delta' is not a list")
        joined: list[str] = []
        left: list[str] = []
        for member in members:
            if not isinstance(member, Mapping):
                raise BadResponse(f"{what}: a member is not an object")
            member_id = _id(member, what)
            if member_kind(member) != "user":
                continue
            (left if _removed_reason(member, what) is not None else joined).append(member_id)
        decoded.append(GroupItem(group_id, name, tuple(joined), tuple(left)))
    return tuple(decoded)


def decode_assignments(items: list[dict[str, Any]], service_principal_id: str) -> tuple[MirrorAssignment | str, ...]:
    """The application's assignments made, and (as plain ids) assignments removed, of any application."""
    decoded: list[MirrorAssignment | str] = []
    for item in items:
        if str(item.get("@odata.type", "")).lower() != ASSIGNMENT_TYPE.lower():
            continue  # the users Graph tracks along with them
        assignment_id = _id(item, "assignments delta")
        if _removed_reason(item, f"assignments delta, assignment {assignment_id}") is not None:
            decoded.append(assignment_id)
            continue
        if str(item.get("resourceId", "")).lower() != service_principal_id.lower():
            continue
        assignment = decode_assignment(item)
        if assignment is not None:
            decoded.append(
                MirrorAssignment(
                    assignment_id, assignment.principal_id, assignment.principal_type, assignment.app_role_id
                )
            )
    return tuple(decoded)
