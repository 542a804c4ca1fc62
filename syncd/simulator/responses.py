"""Responses and Graph's error format.

Graph reports every failure as ``{"error": {"code", "message", "innerError": {...}}}`` where
``innerError`` carries the ``date``, the ``request-id`` (also sent as a response header) and the
``client-request-id`` the client sent.  A 429 has the body of Graph's throttling example and a
``Retry-After`` header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GRAPH_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)

ERROR_CODES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Bad request."),
    401: ("InvalidAuthenticationToken", "Access token validation failure. Invalid audience."),
    403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    404: ("Request_ResourceNotFound", "Resource not found."),
    405: ("Request_BadRequest", "Specified HTTP method is not allowed for the request target."),
    409: ("Conflict", "The request conflicts with the current state of the resource."),
    424: ("FailedDependency", "The dependent request failed."),
    429: ("TooManyRequests", "Please retry again later."),
    500: ("InternalServerError", "An internal server error occurred."),
    502: ("BadGateway", "The gateway received an invalid response."),
    503: (
        "ServiceUnavailable",
        "The service is temporarily unavailable. Retry after the delay given in the Retry-After header.",
    ),
    504: ("GatewayTimeout", "The gateway did not receive a response in time."),
}


@dataclass(slots=True)
class Response:
    """A status, a JSON-ready body (or raw text, or None) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class GraphError(Exception):
    """A failure answered with Graph's error body.  ``body`` replaces that body when given."""

    def __init__(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        default_code, default_message = ERROR_CODES.get(status, ("UnknownError", "An error occurred."))
        self.status = status
        self.code = code or default_code
        self.message = message or default_message
        self.headers = headers or {}
        self.body = body
        super().__init__(f"{status} {self.code}: {self.message}")

    def to_response(self, request_id: str, client_request_id: str) -> Response:
        if self.body is not None:
            return Response(self.status, self.body, dict(self.headers))
        date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        if self.status == 429:
            body = {
                "error": {
                    "code": self.code,
                    "innerError": {
                        "code": "429",
                        "date": date,
                        "message": "Please retry after",
                        "request-id": request_id,
                        "status": "429",
                    },
                    "message": self.message,
                }
            }
        else:
            body = {
                "error": {
                    "code": self.code,
                    "message": self.message,
                    "innerError": {
                        "date": date,
                        "request-id": request_id,
                        "client-request-id": client_request_id,
                    },
                }
            }
        return Response(self.status, body, dict(self.headers))


def not_found(object_id: str) -> GraphError:
    """Graph's 404 for a directory object that does not exist."""
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects are not present.",
    )


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    return GraphError(400, code, message)


def unsupported_query(message: str = "Unsupported Query.") -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery", message)
