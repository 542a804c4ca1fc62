"""When to send a Graph request again, and how long to wait first.

Graph throttles with 429 and a ``Retry-After`` header in seconds, often fractional (``2.128``),
and answers 503/504 (sometimes 502) when a backend is briefly unavailable.  syncd honours
``Retry-After`` exactly (capped), backs off exponentially when there is none, and never retries
an answer that will not change: 400, 401, 403, 404.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import dataclass

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
"""Answers worth sending again: throttled, bad gateway, unavailable, gateway timeout."""
BATCH_RETRYABLE_STATUSES = RETRYABLE_STATUSES | {424}
"""Inside a ``$batch`` also 424 Failed Dependency: the item was not run because another failed."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before sending a failed request again.

    ``Retry-After`` from Graph wins (seconds, fractional allowed, or an HTTP date), capped at
    ``retry_after_max``; without it the wait is ``backoff_base * 2**attempt`` capped at
    ``backoff_max``, with up to 10% jitter so concurrent requests do not retry in lockstep.
    """

    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    jitter: float = 0.1

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max)
        base = min(self.backoff_base * 2.0**attempt, self.backoff_max)
        return base * (1 + random.uniform(0, self.jitter))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: ``"2.128"``, ``"30"`` or an HTTP date.

    Graph sends fractional seconds, which the HTTP spec does not foresee and the SDK's retry
    handler rejects; anything unreadable gives None (the caller then backs off on its own).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if moment is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)
