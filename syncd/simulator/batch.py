"""JSON batching: ``POST /v1.0/$batch`` with up to 20 requests.

Each item names an ``id``, a ``method`` and a ``url`` relative to the version (with or without a
leading ``/``), optionally ``headers``, a ``body`` (a JSON value, passed on to the route as the
body of a request sent alone; JSON batching: "When a body is included with the request, the
headers object must contain a value for Content-Type") and ``dependsOn``.  Graph runs every item
as if it had been sent on its own with the batch's credentials, so items succeed or fail
independently, each with its own status and headers (a throttled item carries its own
``Retry-After``); the answer is ``{"responses": [{"id", "status", "headers", "body"}, ...]}`` in
no particular order.  An item whose dependency failed is answered 424.  A batch with more than 20
items, duplicate ids, a malformed item or a body without a Content-Type is refused as a whole
with 400.
"""

from __future__ import annotations

import json
import random
import uuid
import zlib
from collections.abc import Callable
from typing import Any

from syncd.simulator.responses import GraphError, Response, bad_request

MAX_REQUESTS = 20
_ITEM_HEADERS = ("Content-Type", "OData-Version", "Cache-Control", "Location", "Retry-After", "WWW-Authenticate")

Dispatch = Callable[[str, str, dict[str, str], bytes], Response]
"""Serves one request: (method, target such as ``/v1.0/users/{id}``, lower-cased headers, body)."""


def _invalid(message: str) -> GraphError:
    return bad_request(message, code="BadRequest")


def _items(raw_body: bytes) -> list[dict[str, Any]]:
    try:
        payload = json.loads(raw_body or b"null")
    except ValueError:
        raise _invalid("Unable to deserialize the batch request: the body is not valid JSON.") from None
    requests = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(requests, list) or not requests:
        raise _invalid("Invalid batch payload format: a non-empty 'requests' array is required.")
    if len(requests) > MAX_REQUESTS:
        raise _invalid(f"The batch holds {len(requests)} requests; the limit is {MAX_REQUESTS}.")
    seen: set[str] = set()
    for item in requests:
        if not isinstance(item, dict):
            raise _invalid("Invalid batch payload format: every request must be an object.")
        item_id, method, url = item.get("id"), item.get("method"), item.get("url")
        if not isinstance(item_id, str) or not item_id:
            raise _invalid("Invalid batch payload format: every request needs a string 'id'.")
        if item_id in seen:
            raise _invalid(f"Batch request ids must be unique; '{item_id}' appears more than once.")
        if not isinstance(method, str) or not isinstance(url, str):
            raise _invalid(f"Invalid batch payload format: request '{item_id}' needs a 'method' and a 'url'.")
        for dependency in item.get("dependsOn") or ():
            if dependency not in seen:
                raise _invalid(f"Request '{item_id}' depends on '{dependency}', which does not precede it.")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict):
            raise _invalid(f"Invalid batch payload format: the headers of request '{item_id}' must be an object.")
        if item.get("body") is not None and not any(str(name).lower() == "content-type" for name in headers):
            raise _invalid(f"Write request id : {item_id} does not contain Content-Type header or body.")
        seen.add(item_id)
    return requests


def _body(item: dict[str, Any]) -> bytes:
    """An item's body as the bytes a request sent alone would carry (a string is sent as it is)."""
    body = item.get("body")
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def serve_batch(raw_body: bytes, headers: dict[str, str], dispatch: Dispatch) -> Response:
    """Run every item of a batch through ``dispatch`` and collect the answers."""
    requests = _items(raw_body)
    statuses: dict[str, int] = {}
    responses: list[dict[str, Any]] = []
    for item in requests:
        item_id = item["id"]
        if any(statuses[dependency] >= 400 for dependency in item.get("dependsOn") or ()):
            failed = GraphError(424).to_response(str(uuid.uuid4()), headers.get("client-request-id", ""))
            response = Response(424, failed.body, {"Content-Type": "application/json"})
        elif item["url"].lower().startswith(("http://", "https://")):
            error = _invalid("Batch request urls must be relative to the version, such as '/users'.")
            response = error.to_response(str(uuid.uuid4()), headers.get("client-request-id", ""))
        else:
            item_headers = {**headers, **{str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}}
            target = "/v1.0/" + item["url"].lstrip("/")
            response = dispatch(item["method"].upper(), target, item_headers, _body(item))
        statuses[item_id] = response.status
        responses.append(
            {
                "id": item_id,
                "status": response.status,
                "headers": {name: response.headers[name] for name in _ITEM_HEADERS if name in response.headers},
                "body": response.body,
            }
        )
    # Graph does not keep the order of a batch; a fixed shuffle keeps clients from relying on it.
    order_seed = zlib.crc32("\n".join(item["id"] for item in requests).encode())
    random.Random(order_seed).shuffle(responses)
    return Response(200, {"responses": responses})
