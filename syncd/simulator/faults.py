"""Injected failures and slowness, matched against the request path and query.

A rule's regular expression is searched in the decoded request target, e.g.
``/v1.0/users/4a1c...?$select=id``; an item of a ``$batch`` is matched as if it had been sent on
its own (``/v1.0/`` followed by its ``url``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from syncd.simulator.responses import GraphError


@dataclass(slots=True)
class FailureRule:
    """The next ``remaining`` matching requests are answered with ``status`` (forever if None)."""

    pattern: re.Pattern[str]
    status: int
    remaining: int | None
    retry_after: str | None
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def error(self) -> GraphError:
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return GraphError(self.status, headers={**headers, **self.headers}, body=self.body)


@dataclass(slots=True)
class DelayRule:
    pattern: re.Pattern[str]
    seconds: float
    remaining: int | None


@dataclass(slots=True)
class HoldRule:
    """Matching requests wait until ``release`` is set; ``arrived`` is set by the first of them."""

    pattern: re.Pattern[str]
    release: threading.Event
    arrived: threading.Event
    timeout: float


class Faults:
    """The active failure and delay rules; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[FailureRule] = []
        self._delays: list[DelayRule] = []
        self._holds: list[HoldRule] = []

    def add_failure(
        self,
        path_regex: str,
        status: int = 503,
        times: int | None = 1,
        retry_after: str | float | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if times is not None and times <= 0:
            return
        rule = FailureRule(
            re.compile(path_regex),
            int(status),
            times,
            None if retry_after is None else str(retry_after),
            body,
            dict(headers or {}),
        )
        with self._lock:
            self._failures.append(rule)

    def add_delay(self, seconds: float, path_regex: str = ".*", times: int | None = None) -> None:
        if times is not None and times <= 0:
            return
        with self._lock:
            self._delays.append(DelayRule(re.compile(path_regex), float(seconds), times))

    def add_hold(self, path_regex: str, timeout: float) -> HoldRule:
        rule = HoldRule(re.compile(path_regex), threading.Event(), threading.Event(), timeout)
        with self._lock:
            self._holds.append(rule)
        return rule

    def wait_if_held(self, target: str) -> None:
        """Block a matching request until its hold is released (or its timeout passes)."""
        with self._lock:
            rules = [rule for rule in self._holds if rule.pattern.search(target)]
        for rule in rules:
            rule.arrived.set()
            rule.release.wait(rule.timeout)

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._delays.clear()
            for rule in self._holds:
                rule.release.set()
            self._holds.clear()

    def take_failure(self, target: str) -> GraphError | None:
        """The error the first matching failure rule gives this request, using up one of its times."""
        with self._lock:
            for rule in self._failures:
                if rule.pattern.search(target):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._failures.remove(rule)
                    return rule.error()
        return None

    def take_delay(self, target: str) -> float:
        """The seconds the matching delay rules add to this request."""
        total = 0.0
        with self._lock:
            for rule in list(self._delays):
                if rule.pattern.search(target):
                    total += rule.seconds
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._delays.remove(rule)
        return total

    def describe(self) -> dict[str, Any]:
        """The active rules, for the control API."""
        with self._lock:
            return {
                "failures": [
                    {
                        "path_regex": rule.pattern.pattern,
                        "status": rule.status,
                        "times": rule.remaining,
                        "retry_after": rule.retry_after,
                    }
                    for rule in self._failures
                ],
                "delays": [
                    {"path_regex": rule.pattern.pattern, "seconds": rule.seconds, "times": rule.remaining}
                    for rule in self._delays
                ],
            }
