"""``syncd check``: try each Graph read syncd depends on, once, and say what works.

Each step is one small request that exercises one credential or permission:

1. a token for the Graph scope (the credential works);
2. the service principal with its app roles (Application.Read.All, and the id is right);
3. one page of its assignments (Application.Read.All);
4. one user (User.Read.All);
5. one group's members (GroupMember.Read.All).

Steps 4 and 5 read an assigned user and an assigned group when there are any, otherwise the first
user or group of the directory, so they still test the permission when the service principal
could not be read.  Graph errors never escape: each becomes a failed step that names what is
missing (the permission, the id).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError

from ..config import GraphConfig
from ..errors import SyncdError
from ..model import Assignment
from .auth import auth_mode, build_credential, close_credential, get_access_token, graph_scope
from .classify import segment
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
from .reads import ASSIGNMENT_FIELDS, GROUP_FIELDS, USER_FIELDS, read_service_principal
from .retry import RetryPolicy

CHECK_RETRIES = 2
"""``syncd check`` should answer quickly: a throttled or failing read is retried only twice."""


@dataclass(frozen=True, slots=True)
class CheckStep:
    """One verified prerequisite: its name, whether it works, and what was seen or is missing."""

    name: str
    ok: bool
    detail: str


def check(graph: GraphConfig) -> list[CheckStep]:
    """Run every step against Graph and return them in order; never raises for Graph errors."""
    return asyncio.run(check_async(graph))


async def check_async(graph: GraphConfig, *, retry: RetryPolicy | None = None) -> list[CheckStep]:
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
            steps.extend(await _graph_steps(client, graph))
    finally:
        await close_credential(credential)
    return steps


async def _token_step(graph: GraphConfig, credential: Any) -> CheckStep:
    scope = graph_scope(graph.base_url)
    mode = auth_mode(graph)
    try:
        token = await get_access_token(credential, scope)
    except AzureError as error:
        lines = str(error).strip().splitlines()
        return CheckStep("token", False, f"auth {mode}: no token for {scope}: {lines[0] if lines else error}")
    except Exception as error:  # a check reports every failure instead of crashing
        return CheckStep("token", False, f"auth {mode}: no token for {scope}: {error.__class__.__name__}: {error}")
    expires = dt.datetime.fromtimestamp(token.expires_on, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return CheckStep("token", True, f"auth {mode}: token obtained for {scope} (expires {expires})")


async def _graph_steps(client: GraphClient, graph: GraphConfig) -> list[CheckStep]:
    steps: list[CheckStep] = []
    assignments: list[Assignment] = []
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
        step, assignments = await _assignments_step(client, service_principal.id)
        steps.append(step)
    steps.append(await _user_step(client, assignments))
    steps.append(await _group_step(client, assignments))
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


async def _user_step(client: GraphClient, assignments: list[Assignment]) -> CheckStep:
    assigned = next((a.principal_id for a in assignments if a.principal_type == "User"), None)
    try:
        if assigned is not None:
            body = await client.get_json(
                f"/users/{segment(assigned)}?$select={USER_FIELDS}", what=f"reading user {assigned}"
            )
            user = decode_user(body, fallback_id=assigned)
            source = "assigned user"
        else:
            page = decode_page(await client.get_json(f"/users?$select={USER_FIELDS}&$top=1", what="listing users"))
            if not page.items:
                return CheckStep("user", True, "the directory has no users to read")
            user = decode_user(page.items[0])
            source = "first user of the directory"
    except SyncdError as error:
        return CheckStep("user", False, error.message)
    except BadResponse as error:
        return CheckStep("user", False, f"unreadable answer: {error}")
    return CheckStep(
        "user", True, f"read {source} {user.user_principal_name or '(no userPrincipalName)'} (id {user.id})"
    )


async def _group_step(client: GraphClient, assignments: list[Assignment]) -> CheckStep:
    group_id = next((a.principal_id for a in assignments if a.principal_type == "Group"), None)
    source = "assigned group"
    try:
        if group_id is None:
            page = decode_page(await client.get_json(f"/groups?$select={GROUP_FIELDS}&$top=1", what="listing groups"))
            if not page.items:
                return CheckStep("group members", True, "the directory has no groups to read")
            group_id = decode_group(page.items[0])[0]
            source = "first group of the directory"
        url = f"/groups/{segment(group_id)}/members/microsoft.graph.user?$select={USER_FIELDS}&$top={PAGE_SIZE}"
        page = decode_page(await client.get_json(url, what=f"reading the members of group {group_id}"))
        members = [user for user in map(decode_member, page.items) if user is not None]
        if page.items and not any(has_user_fields(item) for item in page.items):
            return CheckStep(
                "group members",
                False,
                f"the members of {source} {group_id} are listed without their attributes; the application "
                "needs the Microsoft Graph application permission User.Read.All (granted with admin consent)",
            )
    except SyncdError as error:
        return CheckStep("group members", False, error.message)
    except BadResponse as error:
        return CheckStep("group members", False, f"unreadable answer: {error}")
    more = " (first page)" if page.next_link else ""
    return CheckStep("group members", True, f"read {_count(len(members), 'user member')}{more} of {source} {group_id}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
