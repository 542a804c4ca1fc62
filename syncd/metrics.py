"""Prometheus metrics and a health check for ``syncd run``, served over HTTP.

:class:`Metrics` keeps its own :class:`~prometheus_client.CollectorRegistry` (never the global
one, so tests and embedders can hold several) and the little state the health check needs.
:class:`MetricsServer` serves it from ``[daemon] metrics_address`` through
:class:`~syncd.metrics_server.HttpServer` (one thread, timeouts and limits for every client):

``/metrics``
    Prometheus text (or OpenMetrics when the scraper asks for it):

    ======================================== =================================================
    ``syncd_runs_total{status}``             cycles by outcome: success, partial, refused,
                                             paused, failed, locked
    ``syncd_changes_applied_total{op}``      changes written, by operation (create_user, ...)
    ``syncd_objects_failed_total{code}``     users/groups skipped or not written, by error code
    ``syncd_cycle_errors_total{code}``       cycles that failed before writing, by error code
    ``syncd_cycle_duration_seconds``         histogram of cycle wall time
    ``syncd_graph_requests_total``           HTTP requests sent to Microsoft Graph
    ``syncd_graph_throttled_total``          of those, answered 429
    ``syncd_last_success_timestamp_seconds`` end of the last successful cycle (Unix time)
    ``syncd_users{state}``                   users in the store, active / inactive
    ``syncd_teams``                          teams in the store
    ``syncd_paused``                         1 while provisioning is paused
    ======================================== =================================================

``/healthz``
    ``200 {"status": "ok", ...}`` when a cycle succeeded within the last two intervals (plus
    the jitter), else ``503 {"status": "unhealthy", "reason": "..."}``.  Until the first cycle
    has finished the answer is ``503`` with the reason ``no cycle finished yet``: the daemon has
    not yet shown that it can sync.  Outcomes that count as success are ``success``,
    ``partial`` (per-object problems are data problems, reported in the audit log) and
    ``paused`` (an operator's decision); so does a successful run of another process sharing the
    store (the other daemon of a high-availability pair, or ``syncd sync``), read from the store
    after each cycle.  ``incomplete`` (Graph could not be read in full), ``refused``, ``failed``
    and ``locked`` do not: a lock that is never released shows as unhealthy.  Every text in the
    answer passes through :func:`~syncd.redaction.redact` first.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from .changes import OPS
from .metrics_server import HttpServer, Limits, Request, Response
from .redaction import redact
from .runs import RunStatus
from .status_page import CONTENT_SECURITY_POLICY

if TYPE_CHECKING:
    from .reconcile import RunResult

log = logging.getLogger(__name__)

STATUSES = ("success", "partial", "incomplete", "refused", "paused", "failed", "locked")
HEALTHY_STATUSES = frozenset(status.value for status in RunStatus if status.ok)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 2400, 3600)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Metrics:
    """The daemon's counters and gauges, and the outcome of its recent cycles."""

    def __init__(
        self, interval_seconds: float, jitter_seconds: float = 0.0, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.runs = Counter("syncd_runs", "Sync cycles by outcome.", ["status"], registry=registry)
        self.changes_applied = Counter(
            "syncd_changes_applied", "Changes written to the store, by operation.", ["op"], registry=registry
        )
        self.objects_failed = Counter(
            "syncd_objects_failed",
            "Users and groups skipped or not written, by error code.",
            ["code"],
            registry=registry,
        )
        self.cycle_errors = Counter(
            "syncd_cycle_errors",
            "Cycles that failed before writing anything, by error code.",
            ["code"],
            registry=registry,
        )
        self.cycle_duration = Histogram(
            "syncd_cycle_duration_seconds",
            "Wall time of one sync cycle.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.graph_requests = Counter(
            "syncd_graph_requests", "HTTP requests sent to Microsoft Graph.", registry=registry
        )
        self.graph_throttled = Counter(
            "syncd_graph_throttled", "Graph requests answered 429 (throttled).", registry=registry
        )
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds",
            "Unix time at which the last successful cycle ended.",
            registry=registry,
        )
        self.users = Gauge("syncd_users", "Users in the store.", ["state"], registry=registry)
        self.teams = Gauge("syncd_teams", "Teams in the store.", registry=registry)
        self.paused = Gauge("syncd_paused", "1 while provisioning is paused (`syncd pause`).", registry=registry)
        for status in STATUSES:
            self.runs.labels(status)
        for op in OPS:
            self.changes_applied.labels(op)
        for state in ("active", "inactive"):
            self.users.labels(state)

        self._lock = threading.Lock()
        self._interval = interval_seconds
        self._jitter = jitter_seconds
        self._started = clock()
        self._cycles = 0
        self._running_since: float | None = None
        self._last_finished: float | None = None
        self._last_status: str | None = None
        self._last_message = ""
        self._last_success_at: float | None = None

    # ------------------------------------------------------------------ recording

    def set_schedule(self, interval_seconds: float, jitter_seconds: float = 0.0) -> None:
        """The schedule the health check measures staleness against."""
        with self._lock:
            self._interval, self._jitter = interval_seconds, jitter_seconds

    def cycle_started(self) -> None:
        with self._lock:
            self._running_since = self.clock()

    def record_result(self, result: RunResult, duration: float) -> None:
        """A cycle that ran to its end (whatever its status)."""
        self.runs.labels(result.status).inc()
        self.cycle_duration.observe(duration)
        self.graph_requests.inc(result.graph_requests)
        self.graph_throttled.inc(result.graph_throttled)
        self.paused.set(1 if result.status == "paused" else 0)
        if result.status in ("success", "partial"):
            for op, count in result.applied_counts.items():
                if count > 0 and op:
                    self.changes_applied.labels(op).inc(count)
            codes = Tally(problem.code for problem in result.plan.errors)
            codes.update(entry.code for entry in result.failed)
            codes.update(failure.code for failure in result.failures)
            for code, count in codes.items():
                if code and count > 0:
                    self.objects_failed.labels(code).inc(count)
        self._finish(result.status, result.message)

    def record_error(self, code: str, message: str, duration: float) -> None:
        """A cycle that stopped with an error before writing anything."""
        status = "locked" if code == "LOCKED" else "failed"
        self.runs.labels(status).inc()
        self.cycle_errors.labels(code).inc()
        self.cycle_duration.observe(duration)
        self._finish(status, f"[{code}] {message}")

    def record_store_success(self, finished_at: float | None) -> None:
        """The newest successful run the store knows, whichever process ran it (the other daemon of a
        high-availability pair, a `syncd sync` from cron): provisioning is healthy when anyone syncs."""
        if finished_at is None:
            return
        with self._lock:
            if self._last_success_at is not None and self._last_success_at >= finished_at:
                return
            self._last_success_at = finished_at
        self.last_success.set(finished_at)

    def record_counts(self, counts: Mapping[str, int]) -> None:
        """What the store holds (``Reports.counts()``)."""
        self.users.labels("active").set(counts.get("active_users", 0))
        self.users.labels("inactive").set(counts.get("inactive_users", 0))
        self.teams.set(counts.get("teams", 0))

    def _finish(self, status: str, message: str) -> None:
        now = self.clock()
        with self._lock:
            self._cycles += 1
            self._running_since = None
            self._last_finished = now
            self._last_status = status
            self._last_message = " ".join(message.split())
            if status in HEALTHY_STATUSES:
                self._last_success_at = now
        if status in HEALTHY_STATUSES:
            self.last_success.set(now)

    # ------------------------------------------------------------------ health

    def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for ``/healthz``; every text in it passes through
        :func:`~syncd.redaction.redact`, since a cycle's message may quote what Graph answered."""
        status, body = self._health()
        return status, {key: redact(value) if isinstance(value, str) else value for key, value in body.items()}

    def _health(self) -> tuple[int, dict[str, Any]]:
        now = self.clock()
        with self._lock:
            window = 2 * self._interval + self._jitter
            body: dict[str, Any] = {
                "cycles": self._cycles,
                "cycle_running": self._running_since is not None,
                "last_status": self._last_status,
                "last_message": self._last_message or None,
                "last_cycle_finished": _iso(self._last_finished),
                "last_success": _iso(self._last_success_at),
                "interval_seconds": self._interval,
                "uptime_seconds": round(now - self._started, 3),
            }
            if self._last_success_at is not None:
                age = now - self._last_success_at
                body["last_success_age_seconds"] = round(age, 3)
                if age <= window:
                    return HTTPStatus.OK, {"status": "ok", **body}
                reason = (
                    f"last successful cycle ended {age:.0f}s ago, more than two intervals "
                    f"({window:.0f}s); last cycle: {self._last_status}: {self._last_message}"
                )
            elif self._last_status is None:
                reason = "no cycle finished yet"
            else:
                reason = f"no successful cycle yet; last cycle: {self._last_status}: {self._last_message}"
        return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "unhealthy", "reason": reason, **body}


PAGE_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
"""The status page runs no script and loads nothing from elsewhere; the browser is told so."""


def parse_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` -> ("127.0.0.1", 9464); ``"[::1]:9464"`` -> ("::1", 9464)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not HOST:PORT: {address!r}")
    return host.strip("[]"), int(port)


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` for one :class:`Metrics` from a background thread.

    The HTTP part (timeouts, limits, one thread however many clients) is
    :class:`~syncd.metrics_server.HttpServer`; this class only knows the paths.
    """

    def __init__(
        self,
        address: str,
        metrics: Metrics,
        limits: Limits | None = None,
        *,
        page: Callable[[], str] | None = None,
    ) -> None:
        self.address = address
        self.metrics = metrics
        self.page = page
        """Draws the status page served at ``/`` (:mod:`syncd.status_page`); quick, no database."""
        self.limits = limits or Limits()
        self._server: HttpServer | None = None

    def start(self) -> None:
        """Bind and serve; raises OSError when the address cannot be bound."""
        host, port = parse_address(self.address)
        server = HttpServer(host, port, self.answer, self.limits, name="syncd-metrics")
        server.start()
        self._server = server
        log.info("serving /metrics, /healthz and the status page on %s", self.url)

    def answer(self, request: Request) -> Response:
        if request.path == "/metrics":
            encoder, content_type = choose_encoder(request.headers.get("accept", ""))
            return Response(HTTPStatus.OK, content_type, encoder(self.metrics.registry))
        if request.path == "/healthz":
            status, body = self.metrics.health()
            return Response(HTTPStatus(status), "application/json", json.dumps(body).encode() + b"\n")
        if request.path == "/" and self.page is not None:
            return Response(HTTPStatus.OK, "text/html; charset=utf-8", self.page().encode(), PAGE_HEADERS)
        if request.path == "/":
            return Response.text(HTTPStatus.OK, "syncd: /metrics /healthz")
        return Response.text(HTTPStatus.NOT_FOUND, "not found; try /, /metrics or /healthz")

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.port

    @property
    def url(self) -> str:
        host, _ = parse_address(self.address)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    def stop(self) -> None:
        """Close the port and every open connection; returns within moments."""
        if self._server is not None:
            self._server.stop()
            self._server = None
