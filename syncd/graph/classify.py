"""Graph's answers as syncd error codes, and the URL pieces that name what was read.

One place decides what a failed read means: 401 GRAPH_AUTH, 403 GRAPH_PERMISSION (naming the
application permission the path needs, from each endpoint's documented permission table),
404 GRAPH_NOT_FOUND, 429 after every retry GRAPH_THROTTLED, 5xx GRAPH_UNAVAILABLE (saying how
often it was retried), a redirect and anything else GRAPH_BAD_RESPONSE.
Messages carry Graph's own error code and message, never a token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from ..errors import GraphError
from .decode import decode_error

PERMISSIONS: tuple[tuple[str, str], ...] = (
    # (path pattern, least-privileged application permission in that endpoint's documented table)
    (r"^/servicePrincipals", "Application.Read.All"),  # serviceprincipal-get, -list-approleassignedto
    # directoryobject-checkmembergroups, "Group memberships for a user"
    (r"^/users[/(][^/]*/checkMemberGroups$", "User.Read.All and GroupMember.Read.All"),
    (r"^/users[/(][^/]*/(transitiveM|m)emberOf", "Directory.Read.All"),  # user-list-memberof
    (r"^/users", "User.Read.All"),  # user-get, user-list
    (r"^/groups", "GroupMember.Read.All"),  # group-get, group-list, group-list-members, -transitivemembers
)
"""What each read syncd makes needs; ``syncd check`` and every GRAPH_PERMISSION message name it."""
_PERMISSION_PATTERNS = tuple((re.compile(pattern, re.IGNORECASE), name) for pattern, name in PERMISSIONS)
READ_USERS = "User.Read.All"
"""Lets the application read a user's attributes; without it Graph lists users with their id only."""


def permission_for(path: str) -> str:
    """The application permission Graph requires to read ``path`` (named in 403 messages)."""
    relative = "/" + path.lstrip("/")
    for pattern, permission in _PERMISSION_PATTERNS:
        if pattern.search(relative):
            return permission
    return "Directory.Read.All"


def missing_permission(permission: str) -> str:
    """The remedy a GRAPH_PERMISSION message ends with."""
    return f"the application needs the Microsoft Graph application permission {permission} (granted with admin consent)"


def segment(value: str) -> str:
    """``value`` quoted for use as one path segment (UPNs of guests contain ``#``)."""
    return quote(value, safe="@'")


def user_path(key: str) -> str:
    """``/users/{id or userPrincipalName}``; a key starting with ``$`` as ``/users('{key}')``.

    user-get: "If the userPrincipalName begins with a $ character, remove the slash (/) after
    /users and enclose the userPrincipalName in parentheses and single quotes", since a segment
    starting with ``$`` names an OData system resource.  A ``'`` inside the quotes is doubled.
    """
    if key.startswith("$"):
        return "/users('" + quote(key.replace("'", "''"), safe="@'$") + "')"
    return f"/users/{segment(key)}"


def query_value(value: str) -> str:
    """``value`` quoted for a query string (``$filter`` expressions contain spaces and quotes)."""
    return quote(value, safe="'(),$")


def odata_equals(field_name: str, value: str) -> str:
    """An OData ``$filter`` equality with the string literal quoted (``'`` doubled)."""
    escaped = value.replace("'", "''")
    return f"{field_name} eq '{escaped}'"


EQ_VALUE_LIMIT = 120
"""Graph matches at most 120 characters with ``eq``, unless the query is an advanced one (then
the URL may be up to 2,048 characters long): "Some limitations apply to query parameters"."""
ADVANCED_HEADERS = {"ConsistencyLevel": "eventual"}


def equality_query(field_name: str, value: str) -> tuple[str, dict[str, str] | None]:
    """The ``$filter=...`` query option (quoted) and the headers that find ``value`` in
    ``field_name``: a plain query, which reads the directory as it is now, or, for a value longer
    than Graph matches plainly, an advanced one (``$count=true`` and ``ConsistencyLevel:
    eventual``, served from an index that may lag a few seconds behind)."""
    option = f"$filter={query_value(odata_equals(field_name, value))}"
    if len(value) <= EQ_VALUE_LIMIT:
        return option, None
    return f"{option}&$count=true", dict(ADVANCED_HEADERS)


def path_of(url: str) -> str:
    """The path of ``url`` without scheme, host, version and query: ``/groups/{id}/members``."""
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    for version in ("/v1.0/", "/beta/"):
        if version in path:
            path = "/" + path.split(version, 1)[1]
            break
    return path if path.startswith("/") else "/" + path


def graph_error(
    status: int, body: bytes | Mapping[str, Any] | None, what: str, path: str, *, retries: int = 0
) -> GraphError:
    """The :class:`GraphError` for a final, unsuccessful answer ``status`` to a read of ``path``,
    after ``retries`` attempts more than the first."""
    code, message = decode_error(body)
    said = f"{code}: {message}" if code and message else (code or message or "no error details")
    detail = f"{what}: Graph answered {status} ({said})"
    tried = f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""
    if status == 401:
        return GraphError(
            f"{detail}; check graph.tenant_id, graph.client_id and the credential", code="GRAPH_AUTH", status=401
        )
    if status == 403:
        return GraphError(f"{detail}; {missing_permission(permission_for(path))}", code="GRAPH_PERMISSION", status=403)
    if status == 404:
        return GraphError(f"{detail}; {path} does not exist", code="GRAPH_NOT_FOUND", status=404)
    if status == 429:
        return GraphError(f"{detail}{tried}", code="GRAPH_THROTTLED", status=429)
    if status >= 500:
        return GraphError(f"{detail}{tried}", code="GRAPH_UNAVAILABLE", status=status)
    if 300 <= status < 400:
        return GraphError(
            f"{what}: Graph answered {status}, a redirect; syncd reads only the configured Graph origin "
            "and follows no redirect",
            code="GRAPH_BAD_RESPONSE",
            status=status,
        )
    return GraphError(detail, code="GRAPH_BAD_RESPONSE", status=status, graph_code=code or None)


def is_fatal(error: GraphError) -> bool:
    """401 means no answer of this run can be trusted: it aborts the fetch.

    A 403 is not fatal: the reads that need the missing permission fail (GRAPH_PERMISSION naming
    it), the snapshot is incomplete, and nothing is deprovisioned by absence.
    """
    return error.code == "GRAPH_AUTH"
