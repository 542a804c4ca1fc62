"""``syncd check``: try every kind of Graph read a cycle and an on-demand sync make, once, and say
what works.

Each step is one small request that exercises one credential or permission, named as the
endpoint's documented permission table names it:

1. ``token``: a token for the Graph scope of ``graph.cloud``, from its authority;
2. ``service principal``: the application and its app roles (Application.Read.All);
3. ``assignments``: one page of its assignments (Application.Read.All);
4. ``user``: one user by id (User.Read.All);
5. ``group``: one group's name (GroupMember.Read.All);
6. ``group members``: one page of that group's ``members`` (``transitiveMembers`` with nested
   groups) with the user fields (GroupMember.Read.All; User.Read.All, without which Graph lists
   users with their id only);
7. ``user groups``: which assigned groups that user belongs to, as ``syncd sync --user`` asks
   (``checkMemberGroups``: User.Read.All and GroupMember.Read.All);
8. ``user listing``: the directory's user count, as a cycle asks before listing users instead of
   reading many assigned users one by one (User.Read.All);
9. ``group lookup``: a group found by its name, as ``syncd sync --group NAME`` finds it
   (GroupMember.Read.All).

Steps 4 to 9 read an assigned user and an assigned group when there are any, otherwise the first
user or group of the directory, so they still test the permission when the service principal
could not be read.  Graph errors never escape: each becomes a failed step that names what is
missing (the permission, the id).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError

from ..config import GraphConfig, SyncConfig
from ..errors import SyncdError
from ..model import Assignment
from .auth import build_credential, close_credential, get_access_token, sign_in
from .classify import READ_USERS, equality_query, missing_permission, segment, user_path
from .client import PAGE_SIZE, GraphClient, check_base_url
from .decode import (
    BadResponse,
    decode_assignment,
    decode_group,
    decode_member,
    decode_page,
    decode_user,
    has_user_fields,
)
from .reads import (
    ASSIGNMENT_FIELDS,
    GROUP_FIELDS,
    member_groups,
    read_service_principal,
    read_user_count,
)
from .retry import RetryPolicy

CHECK_RETRIES = 2
"""``syncd check`` should answer quickly: a throttled or failing read is retried only twice."""
UNKNOWN_GROUP_NAME = "syncd check"
"""Looked up by name when no group could be read: the lookup still tests its permission."""


@dataclass(frozen=True, slots=True)
class CheckStep:
    """One verified prerequisite: its name, whether it works, and what was seen or is missing."""

    name: str
    ok: bool
    detail: str


@dataclass(slots=True)
class _Seen:
    """What the earlier steps found, for the later ones to read."""

    assignments: list[Assignment]
    user_id: str | None = None
    group_id: str | None = None
    group_name: str | None = None
    group_source: str = "assigned group"


def check(graph: GraphConfig, sync: SyncConfig | None = None) -> list[CheckStep]:
    """Run every step against Graph and return them in order; never raises for Graph errors."""
    return asyncio.run(check_async(graph, sync or SyncConfig()))


async def check_async(
    graph: GraphConfig, sync: SyncConfig | None = None, *, retry: RetryPolicy | None = None
) -> list[CheckStep]:
    steps: list[CheckStep] = []
    try:
        check_base_url(graph.base_url)
        credential = build_credential(graph)
    except SyncdError as error:
        return [CheckStep("token", False, error.message)]
    policy = retry or RetryPolicy(max_retries=min(graph.max_retries, CHECK_RETRIES))
    try:
        token_step = await _token_step(graph, credential)
        steps.append(token_step)
        if not token_step.ok:
            return steps
        async with GraphClient(graph, credential=credential, retry=policy) as client:
            steps.extend(await _graph_steps(client, graph, sync or SyncConfig()))
    finally:
        await close_credential(credential)
    return steps


async def _token_step(graph: GraphConfig, credential: Any) -> CheckStep:
    target = sign_in(graph)
    try:
        token = await get_access_token(credential, target.scope)
    except AzureError as error:
        lines = str(error).strip().splitlines()
        return CheckStep(
            "token", False, f"auth {target.mode} {target.describe()}: no token: {lines[0] if lines else error}"
        )
    except Exception as error:  # a check reports every failure instead of crashing
        return CheckStep(
            "token", False, f"auth {target.mode} {target.describe()}: no token: {error.__class__.__name__}: {error}"
        )
    expires = dt.datetime.fromtimestamp(token.expires_on, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return CheckStep("token", True, f"auth {target.mode}: token obtained, {target.describe()} (expires {expires})")


Step = Callable[[GraphClient, _Seen], Awaitable[CheckStep]]


async def _graph_steps(client: GraphClient, graph: GraphConfig, sync: SyncConfig) -> list[CheckStep]:
    steps: list[CheckStep] = []
    seen = _Seen([])
    try:
        service_principal = await read_service_principal(client, graph)
    except SyncdError as error:
        steps.append(CheckStep("service principal", False, error.message))
        steps.append(CheckStep("assignments", False, "not read: the service principal could not be read"))
    else:
        steps.append(
            CheckStep(
                "service principal",
                True,
                f"{service_principal.display_name} (id {service_principal.id}, appId {service_principal.app_id}): "
                f"{_count(len(service_principal.app_roles), 'app role')}",
            )
        )
        step, seen.assignments = await _assignments_step(client, service_principal.id)
        steps.append(step)

    async def members(client: GraphClient, seen: _Seen) -> CheckStep:
        return await _members_step(client, seen, nested=sync.nested_groups)

    later: list[tuple[str, Step]] = [
        ("user", _user_step),
        ("group", _group_step),
        ("group members", members),
        ("user groups", _user_groups_step),
        ("user listing", _user_listing_step),
        ("group lookup", _group_lookup_step),
    ]
    for name, run in later:
        try:
            steps.append(await run(client, seen))
        except SyncdError as error:
            steps.append(CheckStep(name, False, error.message))
        except BadResponse as error:
            steps.append(CheckStep(name, False, f"unreadable answer: {error}"))
    return steps


async def _assignments_step(client: GraphClient, service_principal_id: str) -> tuple[CheckStep, list[Assignment]]:
    url = (
        f"/servicePrincipals/{segment(service_principal_id)}/appRoleAssignedTo"
        f"?$select={ASSIGNMENT_FIELDS}&$top={PAGE_SIZE}"
    )
    try:
        page = decode_page(await client.get_json(url, what="reading assignments"), "assignments")
        assignments = [a for a in map(decode_assignment, page.items) if a is not None]
    except SyncdError as error:
        return CheckStep("assignments", False, error.message), []
    except BadResponse as error:
        return CheckStep("assignments", False, f"unreadable answer: {error}"), []
    users = sum(1 for a in assignments if a.principal_type == "User")
    more = "; more pages follow" if page.next_link else ""
    groups = len(assignments) - users
    detail = (
        f"first page: {_count(len(assignments), 'assignment')} "
        f"({_count(users, 'user')}, {_count(groups, 'group')}){more}"
    )
    if not assignments:
        detail += "; nobody is assigned to the application yet"
    return CheckStep("assignments", True, detail), assignments


async def _user_step(client: GraphClient, seen: _Seen) -> CheckStep:
    assigned = next((a.principal_id for a in seen.assignments if a.principal_type == "User"), None)
    if assigned is not None:
        seen.user_id = assigned  # the later steps test their permissions even if this read fails
        body = await client.get_json(
            f"{user_path(assigned)}?$select={client.user_fields}", what=f"reading user {assigned}"
        )
        user = decode_user(body, fallback_id=assigned)
        source = "assigned user"
    else:
        page = decode_page(await client.get_json(f"/users?$select={client.user_fields}&$top=1", what="listing users"))
        if not page.items:
            return CheckStep("user", True, "the directory has no users to read")
        user = decode_user(page.items[0])
        source = "first user of the directory"
    seen.user_id = user.id
    return CheckStep(
        "user", True, f"read {source} {user.user_principal_name or '(no userPrincipalName)'} (id {user.id})"
    )


async def _group_step(client: GraphClient, seen: _Seen) -> CheckStep:
    group_id = next((a.principal_id for a in seen.assignments if a.principal_type == "Group"), None)
    if group_id is None:
        page = decode_page(await client.get_json(f"/groups?$select={GROUP_FIELDS}&$top=1", what="listing groups"))
        if not page.items:
            return CheckStep("group", True, "the directory has no groups to read")
        seen.group_source = "first group of the directory"
        group_id, name = decode_group(page.items[0])
    else:
        seen.group_id = group_id  # the later steps test their permissions even if this read fails
        body = await client.get_json(f"/groups/{segment(group_id)}?$select={GROUP_FIELDS}", what="reading a group")
        group_id, name = decode_group(body)
    seen.group_id, seen.group_name = group_id, name
    return CheckStep("group", True, f"read {seen.group_source} {name!r} (id {group_id})")


async def _members_step(client: GraphClient, seen: _Seen, *, nested: bool) -> CheckStep:
    if seen.group_id is None:
        return CheckStep("group members", True, "no group to read the members of")
    relation = "transitiveMembers" if nested else "members"
    url = f"/groups/{segment(seen.group_id)}/{relation}?$select={client.user_fields}&$top={PAGE_SIZE}"
    page = decode_page(await client.get_json(url, what=f"reading the {relation} of group {seen.group_id}"))
    users = [(item, user) for item, user in ((item, decode_member(item)) for item in page.items) if user is not None]
    if any(not has_user_fields(item) for item, _ in users):
        return CheckStep(
            "group members",
            False,
            f"the user members of {seen.group_source} {seen.group_id} are listed with their ids only "
            f"(limited information); {missing_permission(READ_USERS)}",
        )
    others = len(page.items) - len(users)
    more = " (first page)" if page.next_link else ""
    detail = f"read {_count(len(users), 'user member')}{more} of {seen.group_source} {seen.group_id} ({relation})"
    if others:
        detail += f"; skipped {_count(others, 'other member')} (groups, devices, contacts, service principals)"
    return CheckStep("group members", True, detail)


async def _user_groups_step(client: GraphClient, seen: _Seen) -> CheckStep:
    if seen.user_id is None:
        return CheckStep("user groups", True, "no user to check the group memberships of")
    group_ids = [a.principal_id for a in seen.assignments if a.principal_type == "Group"][:20]
    if not group_ids and seen.group_id is not None:
        group_ids = [seen.group_id]
    if not group_ids:
        return CheckStep("user groups", True, "no group to check memberships in")
    member_of = await member_groups(client, seen.user_id, group_ids)
    return CheckStep(
        "user groups",
        True,
        f"user {seen.user_id} is in {len(member_of)} of {_count(len(group_ids), 'group')} checked (checkMemberGroups)",
    )


async def _user_listing_step(client: GraphClient, seen: _Seen) -> CheckStep:
    return CheckStep("user listing", True, f"the directory has {_count(await read_user_count(client), 'user')}")


async def _group_lookup_step(client: GraphClient, seen: _Seen) -> CheckStep:
    name = seen.group_name or UNKNOWN_GROUP_NAME
    option, headers = equality_query("displayName", name)
    url = f"/groups?{option}&$select={GROUP_FIELDS}&$top={PAGE_SIZE}"
    page = decode_page(await client.get_json(url, what=f"finding group {name!r}", headers=headers))
    found = [decode_group(item)[0] for item in page.items]
    return CheckStep("group lookup", True, f"found {_count(len(found), 'group')} named {name!r} by name")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
