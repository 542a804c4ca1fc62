"""Graph's answers as syncd error codes, and the URL pieces that name what was read.

One place decides what a failed read means: 401 GRAPH_AUTH, 403 GRAPH_PERMISSION (naming the
application permission the path needs), 404 GRAPH_NOT_FOUND, 429 after every retry
GRAPH_THROTTLED, 5xx after every retry GRAPH_UNAVAILABLE, anything else GRAPH_BAD_RESPONSE.
Messages carry Graph's own error code and message, never a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from ..errors import GraphError
from .decode import decode_error


def permission_for(path: str) -> str:
    """The application permission Graph requires to read ``path`` (named in 403 messages)."""
    relative = path.lstrip("/").lower()
    if relative.startswith("serviceprincipals"):
        return "Application.Read.All"
    if relative.startswith("users"):
        return "User.Read.All"
    if relative.startswith("groups"):
        return "GroupMember.Read.All"
    return "Directory.Read.All"


def segment(value: str) -> str:
    """``value`` quoted for use as one path segment (UPNs of guests contain ``#``)."""
    return quote(value, safe="@'")


def query_value(value: str) -> str:
    """``value`` quoted for a query string (``$filter`` expressions contain spaces and quotes)."""
    return quote(value, safe="'(),$")


def path_of(url: str) -> str:
    """The path of ``url`` without scheme, host, version and query: ``/groups/{id}/members``."""
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    for version in ("/v1.0/", "/beta/"):
        if version in path:
            path = "/" + path.split(version, 1)[1]
            break
    return path if path.startswith("/") else "/" + path


def graph_error(status: int, body: bytes | Mapping[str, Any] | None, what: str, path: str) -> GraphError:
    """The :class:`GraphError` for a final, unsuccessful answer ``status`` to a read of ``path``."""
    code, message = decode_error(body)
    said = f"{code}: {message}" if code and message else (code or message or "no error details")
    detail = f"{what}: Graph answered {status} ({said})"
    if status == 401:
        return GraphError(
            f"{detail}; check graph.tenant_id, graph.client_id and the credential", code="GRAPH_AUTH", status=401
        )
    if status == 403:
        permission = permission_for(path)
        return GraphError(
            f"{detail}; the application needs the Microsoft Graph application permission "
            f"{permission} (granted with admin consent)",
            code="GRAPH_PERMISSION",
            status=403,
        )
    if status == 404:
        return GraphError(f"{detail}; {path} does not exist", code="GRAPH_NOT_FOUND", status=404)
    if status == 429:
        return GraphError(f"{detail} after every retry", code="GRAPH_THROTTLED", status=429)
    if status >= 500:
        return GraphError(f"{detail} after every retry", code="GRAPH_UNAVAILABLE", status=status)
    return GraphError(detail, code="GRAPH_BAD_RESPONSE", status=status)


def is_fatal(error: GraphError) -> bool:
    """401 and 403 mean no answer of this run can be trusted: they abort the fetch."""
    return error.code in ("GRAPH_AUTH", "GRAPH_PERMISSION")
