"""Read one enterprise application's assignments from Microsoft Graph into a :class:`Snapshot`.

A full fetch with ``sync.scope = "assigned"`` makes these reads (v1.0, application permissions, as
each endpoint's documentation names them; the README's "Talking to Microsoft Graph" lists them too):

1. ``GET /servicePrincipals/{id}`` (or ``/servicePrincipals(appId='...')``) with ``$select`` of the
   app roles - Application.Read.All.  Without the application nothing else means anything: a
   refusal (403) gives an incomplete snapshot holding only that failure, anything else aborts.
2. ``GET /servicePrincipals/{id}/appRoleAssignedTo?$top=999`` and every ``@odata.nextLink``: who is
   assigned, with which role (Application.Read.All).  Graph has no delta query for this
   collection, so it is read whole.  Service principals holding a role are ignored.
3. For every assigned group, concurrently: its ``displayName`` (``$batch`` of ``GET /groups/{id}``,
   20 per request) and its members with the user fields (``/groups/{id}/members`` -
   ``transitiveMembers`` when ``sync.nested_groups`` - ``?$select=...&$top=999``):
   GroupMember.Read.All, and User.Read.All for the members' attributes.  No OData cast and no
   ``$filter``: on member relationships both are advanced queries served from an index that may
   lag recent changes.  Users are kept by ``@odata.type``; nested groups, devices, contacts and
   service principals are skipped.
4. Directly assigned users not already seen as a group member: ``$batch`` of ``GET /users/{id}``
   (User.Read.All), or one listing of ``/users`` when the directory is so small that paging through
   it takes fewer requests (one ``$count=true`` request, with ``ConsistencyLevel: eventual``, tells,
   when there are more than 40 such users).  An assigned user Graph answers 404 for is not yet
   replicated: that read fails and the next cycle tries again.

``sync.scope = "all"`` lists every user and every group (with members) instead of 3 and 4.

Completeness: a 401 anywhere raises :class:`~syncd.errors.GraphError` (nothing read with a broken
credential can be trusted).  Any other failure - a missing permission (403, or members listed with
their ids only), a page of assignments, a group's members (that group gets ``member_ids=None``),
a user read - becomes a :class:`~syncd.model.FetchFailure` and the snapshot is incomplete, so the
planner will not deprovision anyone by absence.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..config import GraphConfig, SyncConfig
from ..errors import GraphError
from ..model import Snapshot, SourceGroup, SourceUser
from .checks import CheckStep, check
from .client import PAGE_SIZE, GraphClient, GraphStats, gather_all
from .decode import BadResponse, decode_group
from .principal import fetch_principal_async, lookup_users_async
from .reads import (
    GROUP_FIELDS,
    UNREAD_APPLICATION,
    Collected,
    build_snapshot,
    list_users,
    read_application,
    read_assignments,
    read_direct_users,
    read_group_names,
    read_members,
)

log = logging.getLogger("syncd.graph")

Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)`` while fetching; ``total`` is 0 while it is unknown.

The stages are "fetch assignments", "fetch groups" and "fetch users"; each ends with a call
whose ``done`` equals its ``total``.
"""


def _silent(stage: str, done: int, total: int) -> None:
    """The progress callback when nobody watches."""


async def fetch_snapshot_async(
    client: GraphClient, graph: GraphConfig, sync: SyncConfig, *, progress: Progress | None = None
) -> Snapshot:
    """The full snapshot of the application (see the module docstring for the reads)."""
    snapshot, _ = await full_read_async(client, graph, sync, progress=progress)
    return snapshot


async def full_read_async(
    client: GraphClient, graph: GraphConfig, sync: SyncConfig, *, progress: Progress | None = None
) -> tuple[Snapshot, Collected]:
    """The full snapshot, and what was collected on the way (the assignments' ids among it)."""
    report = progress or _silent
    found = Collected()
    service_principal = await read_application(client, graph, found)
    if service_principal is None:
        return build_snapshot(sync.scope, UNREAD_APPLICATION, [], [], found), found
    assignments = await read_assignments(
        client, service_principal.id, found, on_page=lambda done: report("fetch assignments", done, 0)
    )
    report("fetch assignments", len(assignments), len(assignments))
    group_ids = list(dict.fromkeys(a.principal_id for a in assignments if a.principal_type == "Group"))
    user_ids = list(dict.fromkeys(a.principal_id for a in assignments if a.principal_type == "User"))

    if sync.scope == "all":
        log.warning(
            'sync.scope is "all": every user and group in the directory is provisioned, '
            "not only those assigned to the application"
        )
        groups = await _read_all(client, sync, found, report)
    else:
        groups = await _read_groups(client, group_ids, nested=sync.nested_groups, found=found, report=report)
        direct = [user_id for user_id in user_ids if user_id not in found.users]
        if direct:
            report("fetch users", 0, len(direct))
            await read_direct_users(client, direct, found)
            report("fetch users", len(direct), len(direct))
    log.debug(
        "fetched %s: %d assignments, %d groups, %d users, %d deleted, %d failures",
        service_principal.display_name,
        len(assignments),
        len(groups),
        len(found.users),
        len(found.deleted),
        len(found.failures),
    )
    return build_snapshot(sync.scope, service_principal, assignments, groups, found), found


async def _read_groups(
    client: GraphClient, group_ids: Sequence[str], *, nested: bool, found: Collected, report: Progress
) -> list[SourceGroup]:
    """Names (one ``$batch`` per 20) and member lists of the groups, all concurrently."""
    names, members = await gather_all(
        read_group_names(client, group_ids, found),
        _read_member_lists(client, group_ids, nested=nested, found=found, report=report),
    )
    return [
        SourceGroup(group_id, names[group_id], member_ids)
        for group_id, member_ids in zip(group_ids, members, strict=True)
        if group_id in names
    ]


async def _read_member_lists(
    client: GraphClient, group_ids: Sequence[str], *, nested: bool, found: Collected, report: Progress
) -> list[tuple[str, ...] | None]:
    """The member lists of the groups, read concurrently, reporting each group as it completes."""
    done = 0

    async def read(group_id: str) -> tuple[str, ...] | None:
        nonlocal done
        member_ids = await read_members(client, group_id, nested=nested, found=found)
        done += 1
        report("fetch groups", done, len(group_ids))
        return member_ids

    if group_ids:
        report("fetch groups", 0, len(group_ids))
    return await gather_all(*(read(group_id) for group_id in group_ids))


async def _read_all(client: GraphClient, sync: SyncConfig, found: Collected, report: Progress) -> list[SourceGroup]:
    """``scope = "all"``: every user and every group of the directory with its members."""
    url = f"/groups?$select={GROUP_FIELDS}&$top={PAGE_SIZE}"
    listed: list[tuple[str, str]] = []

    async def list_groups() -> None:
        try:
            async for page in client.pages(url, what="listing groups"):
                listed.extend(decode_group(item) for item in page)
        except BadResponse as error:
            found.fail(GraphError(str(error), code="GRAPH_BAD_RESPONSE"), "/groups")
        except GraphError as error:
            found.fail(error, "/groups")

    await gather_all(
        list_users(client, found, on_page=lambda done: report("fetch users", done, 0)),
        list_groups(),
    )
    report("fetch users", len(found.users), len(found.users))
    listed = list(dict(listed).items())  # a group listed on two pages is one group
    group_ids = [group_id for group_id, _ in listed]
    members = await _read_member_lists(client, group_ids, nested=sync.nested_groups, found=found, report=report)
    return [
        SourceGroup(group_id, name, member_ids) for (group_id, name), member_ids in zip(listed, members, strict=True)
    ]


# --------------------------------------------------------------------------- entry points


def run_with_client(
    graph: GraphConfig,
    stats: GraphStats | None,
    body: Callable[[GraphClient], Any],
    cancel: threading.Event | None = None,
) -> Any:
    """Run ``body`` with a fresh client in a new event loop and return its result.

    Once ``cancel`` is set, the client's next request raises :class:`~syncd.cancel.Cancelled`.

    The result travels through ``holder`` rather than as the main task's result: when
    ``asyncio.run`` ends, Python 3.11 formats the main task's repr, result included, and the repr
    of a 50,000-user snapshot costs a third of a second.
    """
    holder: list[Any] = []

    async def main() -> None:
        async with GraphClient(graph, stats=stats, cancel=cancel) as client:
            holder.append(await body(client))

    asyncio.run(main())
    return holder[0]


def fetch_snapshot(
    graph: GraphConfig,
    sync: SyncConfig,
    *,
    progress: Progress | None = None,
    stats: GraphStats | None = None,
    cancel: threading.Event | None = None,
) -> Snapshot:
    """Read the application's assignments, groups and users into a :class:`Snapshot`.

    Raises :class:`~syncd.errors.GraphError` when nothing can be trusted (credentials, permission,
    a missing service principal); other failures are listed in ``Snapshot.failures``.  ``stats``
    (if given) accumulates the request counters.
    """
    result: Snapshot = run_with_client(
        graph, stats, lambda client: fetch_snapshot_async(client, graph, sync, progress=progress), cancel
    )
    return result


def lookup_users(
    graph: GraphConfig,
    user_ids: Iterable[str],
    *,
    stats: GraphStats | None = None,
    cancel: threading.Event | None = None,
) -> tuple[tuple[SourceUser, ...], frozenset[str]]:
    """Users by id (with ``accountEnabled``) and the ids Graph answered 404 for (deleted).

    Used to learn why a provisioned user left scope: disabled, deleted, or merely unassigned.
    """
    ids = list(user_ids)
    if not ids:
        return (), frozenset()
    result: tuple[tuple[SourceUser, ...], frozenset[str]] = run_with_client(
        graph, stats, lambda client: lookup_users_async(client, ids), cancel
    )
    return result


def fetch_principal(
    graph: GraphConfig,
    sync: SyncConfig,
    *,
    user: str | None = None,
    group: str | None = None,
    stats: GraphStats | None = None,
    cancel: threading.Event | None = None,
) -> Snapshot:
    """A partial snapshot of one user or one group (see :func:`fetch_principal_async`).

    An unknown user or group raises ``SyncdError(code="NOT_FOUND")``.
    """
    result: Snapshot = run_with_client(
        graph, stats, lambda client: fetch_principal_async(client, graph, sync, user=user, group=group), cancel
    )
    return result


__all__ = [
    "CheckStep",
    "GraphStats",
    "Progress",
    "check",
    "fetch_principal",
    "fetch_principal_async",
    "fetch_snapshot",
    "fetch_snapshot_async",
    "lookup_users",
    "lookup_users_async",
]
