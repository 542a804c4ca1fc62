"""One Graph call as the routes see it, sent alone or as an item of a ``$batch``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from syncd.simulator.responses import bad_request


@dataclass(frozen=True, slots=True)
class GraphRequest:
    """The decoded path below ``/v1.0``, its query options, lower-cased headers and raw body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    base_url: str
    body: bytes = b""
    url_length: int = 0
    """The length of the URL as the client sent it (Graph limits advanced queries to 2,048)."""

    @property
    def eventual(self) -> bool:
        """Whether the request carries ``ConsistencyLevel: eventual`` (Graph's advanced queries)."""
        return self.headers.get("consistencylevel", "").strip().lower() == "eventual"

    @property
    def counted(self) -> bool:
        """Whether the request asks for ``$count=true``."""
        return self.query.get("$count", "").strip().lower() == "true"

    def json(self) -> Any:
        """The body as JSON; 400 when it is empty or is not JSON."""
        if not self.body.strip():
            raise bad_request("Empty Payload. JSON content expected.")
        try:
            return json.loads(self.body)
        except ValueError:
            raise bad_request(
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of "
                "valid JSON format."
            ) from None
