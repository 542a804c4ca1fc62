"""A small HTTP/1.1 server for ``/metrics`` and ``/healthz`` that trusts nothing from the wire.

Why not :mod:`http.server`: ``ThreadingHTTPServer`` starts one thread per connection and never
times an idle one out (300 idle connections held 304 threads), lets ``socketserver`` print a
traceback to stderr whenever a client hangs up early (bypassing the configured log format), and
listens with a backlog of five, so a burst of scrapes waits for SYN retries.

:class:`HttpServer` runs on one thread with a selector, however many clients connect:

* The whole request head must arrive within :attr:`Limits.request_timeout` of the connection
  being accepted: a client that sends nothing is closed, one that sends part of a request (a
  slowloris dripping a byte at a time) is answered ``408`` and closed at the same moment.
* The request line is limited (``414``), the head is limited in bytes and lines (``431``),
  anything malformed is ``400``, a version other than HTTP/1.x is ``505`` and a method other than
  ``GET`` and ``HEAD`` is ``405``.
* Every answer carries ``Connection: close`` and must be taken by the client within
  :attr:`Limits.write_timeout`.  Then the server half-closes and reads what the client still
  sends for up to :attr:`Limits.linger`, so that the client sees the whole answer, not a reset.
* At most :attr:`Limits.max_connections` are open at once.  When a new one arrives at the limit,
  the oldest is closed if it has been open for :attr:`Limits.eviction_age` (a scrape takes
  milliseconds, so the oldest is an idle one); otherwise new connections wait in the backlog.
* A failure of one connection (reset, broken pipe, timeout, garbage) ends that connection and
  is logged as one debug line through the ``syncd`` loggers, in the configured format.  An
  application that raises is answered ``500`` and logged as one error line.

The application is a function from :class:`Request` to :class:`Response` and runs on the server's
thread, so it must be quick; rendering the metrics registry or the health check is.
"""

from __future__ import annotations

import contextlib
import logging
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from enum import Enum
from http import HTTPStatus
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

METHODS = ("GET", "HEAD")
RECEIVE_SIZE = 4096
ACCEPT_BATCH = 64
"""Connections accepted per wake-up before the server turns to the ones it has."""
WARNING_INTERVAL = 60.0
"""Seconds between two warnings about the same trouble (the rest go to the debug log)."""

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HTTP_1 = re.compile(rb"HTTP/1\.[01]")
_ANY_VERSION = re.compile(rb"HTTP/[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may ask of the server."""

    request_timeout: float = 5.0
    """Seconds from accepting a connection until its whole request head must have arrived."""
    write_timeout: float = 10.0
    """Seconds the client has to take the answer."""
    linger: float = 2.0
    """Seconds to wait, after the answer, for the client to close its side."""
    max_request_line: int = 8 * 1024
    max_head: int = 16 * 1024
    """Bytes of request line and headers together."""
    max_headers: int = 100
    max_connections: int = 256
    eviction_age: float = 0.5
    """At ``max_connections``, the oldest connection is closed for a new one once it is this old."""
    backlog: int = 256


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    """The target without its query string."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Lower-cased names; repeated headers joined with ``", "``."""


@dataclass(frozen=True, slots=True)
class Response:
    status: HTTPStatus
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: HTTPStatus, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
        return cls(status, "text/plain; charset=utf-8", f"{text}\n".encode(), headers)

    def encode(self, *, with_body: bool = True) -> bytes:
        """The bytes on the wire; a ``HEAD`` answer keeps the ``Content-Length`` and drops the body."""
        lines = [
            f"HTTP/1.1 {self.status.value} {self.status.phrase}",
            "Server: syncd",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Cache-Control: no-store",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + self.body if with_body else head


def parse_head(data: bytes, limits: Limits) -> Request | Response | None:
    """The request whose head starts ``data``, or the error :class:`Response` it earns, or None
    while the head is incomplete and still within the limits."""
    received = len(data)
    data = data.lstrip(b"\r\n")  # RFC 9112 2.2: ignore empty lines before the request line
    line_end = data.find(b"\n")
    if (line_end < 0 and len(data) > limits.max_request_line) or line_end > limits.max_request_line:
        return Response.text(HTTPStatus.REQUEST_URI_TOO_LONG, f"request line over {limits.max_request_line} bytes")
    ends = [i for i in (data.find(b"\n\r\n", max(line_end, 0)), data.find(b"\n\n", max(line_end, 0))) if i >= 0]
    blank = min(ends) if line_end >= 0 and ends else -1
    if (blank < 0 and received > limits.max_head) or blank > limits.max_head:
        return Response.text(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"request head over {limits.max_head} bytes")
    if blank < 0:
        return None
    parts = data[:line_end].split()
    if len(parts) != 3:
        return _bad("malformed request line")
    method, target, version = parts
    if not _HTTP_1.fullmatch(version):
        if _ANY_VERSION.fullmatch(version):
            return Response.text(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.0 and HTTP/1.1 are served")
        return _bad("malformed HTTP version")
    if not _TOKEN.fullmatch(method):
        return _bad("malformed method")
    path = _path(target)
    if path is None:
        return _bad("malformed request target")
    lines = data[line_end + 1 : blank].split(b"\n") if blank > line_end else []
    if len(lines) > limits.max_headers:
        return Response.text(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {limits.max_headers} headers")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.rstrip(b"\r").partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            return _bad("malformed header line")
        key = name.decode("ascii").lower()
        text = value.strip(b" \t").decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Request(method.decode("ascii"), path, headers)


def _bad(reason: str) -> Response:
    return Response.text(HTTPStatus.BAD_REQUEST, reason)


def _path(target: bytes) -> str | None:
    """The path of an origin-form (``/metrics?x``) or absolute-form (``http://host/metrics``) target."""
    try:
        text = target.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.isprintable():
        return None
    if text.startswith("/"):
        return text.split("?", 1)[0].split("#", 1)[0]
    if text.lower().startswith(("http://", "https://")):
        try:
            return urlsplit(text).path or "/"
        except ValueError:
            return None
    return None


class _State(Enum):
    READING = "reading the request"
    WRITING = "writing the answer"
    DRAINING = "waiting for the client to close"


@dataclass(eq=False, slots=True)
class _Connection:
    """One client: its socket, what it has sent, what is owed to it, and when it runs out of time."""

    sock: socket.socket
    peer: str
    opened: float
    deadline: float
    fd: int = -1
    state: _State = _State.READING
    inbox: bytearray = field(default_factory=bytearray)
    outbox: memoryview = field(default_factory=lambda: memoryview(b""))
    sent: int = 0
    summary: str = ""
    """What was asked and answered, for the debug log."""

    def __post_init__(self) -> None:
        self.fd = self.sock.fileno()


class HttpServer:
    """Serves ``app`` on ``(host, port)`` from one background thread; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        app: Callable[[Request], Response],
        limits: Limits | None = None,
        *,
        name: str = "syncd-http",
    ) -> None:
        self.host, self.requested_port, self.app, self.name = host, port, app, name
        self.limits = limits or Limits()
        self._connections: dict[int, _Connection] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._port: int | None = None
        self._listening = False
        self._resume_at = 0.0
        self._warned: dict[str, float] = {}

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Bind and serve; raises OSError when the address cannot be bound."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with contextlib.ExitStack() as undo:  # a failed start leaves nothing open
            listener = undo.enter_context(
                socket.create_server((self.host, self.requested_port), family=family, backlog=self.limits.backlog)
            )
            listener.setblocking(False)
            self._waker, self._wake_reader = (undo.enter_context(end) for end in socket.socketpair())
            self._wake_reader.setblocking(False)
            self._selector = undo.enter_context(selectors.DefaultSelector())
            self._selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
            self._listener, self._listening, self._port = listener, False, int(listener.getsockname()[1])
            self._listen(True)
            self._stopping.clear()
            self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._thread.start()
            undo.pop_all()

    @property
    def port(self) -> int:
        """The bound port (the one the system chose when asked for port 0)."""
        assert self._port is not None, "not started"
        return self._port

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and every connection; returns once the thread has ended."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._waker.send(b"\0")
        thread.join(timeout)
        if thread.is_alive():
            log.warning("%s: the server thread did not stop within %.0f s", self.name, timeout)

    # ------------------------------------------------------------------ the loop

    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if not self._listening and now >= self._resume_at and self._has_room(now):
                    self._listen(True)
                for key, _ in self._selector.select(self._wait_time(now)):
                    if key.data == "listener":
                        self._accept()
                    elif key.data == "wake":
                        with contextlib.suppress(OSError):
                            self._wake_reader.recv(RECEIVE_SIZE)
                    else:
                        self._guarded(key.data, self._step)
                now = time.monotonic()
                for connection in [c for c in self._connections.values() if c.deadline <= now]:
                    self._guarded(connection, self._expire)
        except Exception as error:  # a bug here must not take the daemon down or print a traceback
            log.error("%s stopped: %s: %s", self.name, type(error).__name__, error, exc_info=_debugging())
        finally:
            for connection in list(self._connections.values()):
                self._close(connection)
            self._selector.close()
            for sock in (self._listener, self._waker, self._wake_reader):
                if sock is not None:
                    sock.close()

    def _wait_time(self, now: float) -> float | None:
        moments = [c.deadline for c in self._connections.values()]
        if not self._listening and self._resume_at > now:
            moments.append(self._resume_at)
        elif not self._listening and self._connections:
            moments.append(next(iter(self._connections.values())).opened + self.limits.eviction_age)
        return max(0.0, min(moments) - now) if moments else None

    def _listen(self, on: bool) -> None:
        assert self._listener is not None
        if on and not self._listening:
            self._selector.register(self._listener, selectors.EVENT_READ, "listener")
        elif not on and self._listening:
            self._selector.unregister(self._listener)
        self._listening = on

    def _has_room(self, now: float) -> bool:
        if len(self._connections) < self.limits.max_connections:
            return True
        oldest = next(iter(self._connections.values()))
        return now - oldest.opened >= self.limits.eviction_age

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(ACCEPT_BATCH):
            now = time.monotonic()
            if not self._make_room(now):
                self._listen(False)  # the rest wait in the backlog until a connection ends
                return
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:  # out of file descriptors or memory: back off, keep serving
                self._warn("accept", f"cannot accept connections: {error.strerror or error}")
                self._listen(False)
                self._resume_at = now + 0.5
                return
            sock.setblocking(False)
            connection = _Connection(sock, _peer(address), opened=now, deadline=now + self.limits.request_timeout)
            self._connections[connection.fd] = connection
            self._selector.register(sock, selectors.EVENT_READ, connection)

    def _make_room(self, now: float) -> bool:
        if len(self._connections) < self.limits.max_connections:
            return True
        if not self._has_room(now):
            return False
        oldest = next(iter(self._connections.values()))
        self._warn(
            "full",
            f"{self.limits.max_connections} connections open; closing the oldest ones to serve new ones "
            "(is a client holding connections open?)",
        )
        self._close(oldest, f"closed while {oldest.state.value}, to make room")
        return True

    # ------------------------------------------------------------------ one connection

    def _guarded(self, connection: _Connection, action: Callable[[_Connection], None]) -> None:
        """Run ``action``; whatever goes wrong ends this connection only, with one log line."""
        if self._connections.get(connection.fd) is not connection:
            return  # closed earlier in this turn of the loop (its descriptor may be reused already)
        try:
            action(connection)
        except OSError as error:  # reset, broken pipe, ...: the client's business
            self._close(connection, f"closed while {connection.state.value}: {error.strerror or error}")
        except Exception as error:
            log.error("%s: %s: %s: %s", self.name, connection.peer, type(error).__name__, error, exc_info=_debugging())
            self._close(connection)

    def _step(self, connection: _Connection) -> None:
        if connection.state is _State.READING:
            self._read(connection)
        elif connection.state is _State.WRITING:
            self._write(connection)
        else:
            self._drain(connection)

    def _read(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(RECEIVE_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            ended = "before sending a request" if not connection.inbox.strip() else "in the middle of its request"
            self._close(connection, f"hung up {ended}")
            return
        connection.inbox += data
        outcome = parse_head(bytes(connection.inbox), self.limits)
        if outcome is None:
            return
        if isinstance(outcome, Response):
            connection.summary = f"rejected: {outcome.body.decode().strip()}"
            self._answer(connection, outcome)
            return
        connection.summary = f"{outcome.method} {outcome.path}"
        self._answer(connection, self._call(outcome), with_body=outcome.method != "HEAD")

    def _call(self, request: Request) -> Response:
        if request.method not in METHODS:
            return Response.text(
                HTTPStatus.METHOD_NOT_ALLOWED, "only GET and HEAD are served", (("Allow", ", ".join(METHODS)),)
            )
        try:
            return self.app(request)
        except Exception as error:
            log.error(
                "%s: %s %s failed: %s: %s",
                self.name,
                request.method,
                request.path,
                type(error).__name__,
                error,
                exc_info=_debugging(),
            )
            return Response.text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; see the syncd log")

    def _answer(self, connection: _Connection, response: Response, *, with_body: bool = True) -> None:
        connection.summary = f"{connection.summary} -> {response.status.value}"
        connection.outbox = memoryview(response.encode(with_body=with_body))
        connection.state = _State.WRITING
        connection.deadline = time.monotonic() + self.limits.write_timeout
        self._selector.modify(connection.sock, selectors.EVENT_WRITE, connection)
        self._write(connection)  # most answers fit in the socket buffer at once

    def _write(self, connection: _Connection) -> None:
        try:
            connection.sent += connection.sock.send(connection.outbox[connection.sent :])
        except (BlockingIOError, InterruptedError):
            return
        if connection.sent < len(connection.outbox):
            return
        log.debug("%s: %s %s (%d bytes)", self.name, connection.peer, connection.summary, connection.sent)
        connection.sock.shutdown(socket.SHUT_WR)
        connection.state = _State.DRAINING
        connection.deadline = time.monotonic() + self.limits.linger
        self._selector.modify(connection.sock, selectors.EVENT_READ, connection)

    def _drain(self, connection: _Connection) -> None:
        try:
            data = connection.sock.recv(RECEIVE_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            self._close(connection)

    def _expire(self, connection: _Connection) -> None:
        timeout = f"{self.limits.request_timeout:g} s"
        if connection.state is _State.READING and connection.inbox.strip():
            connection.summary = f"incomplete request after {timeout}"
            self._answer(connection, Response.text(HTTPStatus.REQUEST_TIMEOUT, f"request not complete after {timeout}"))
        elif connection.state is _State.READING:
            self._close(connection, f"sent nothing in {timeout}")
        elif connection.state is _State.WRITING:
            self._close(connection, f"did not take the answer in {self.limits.write_timeout:g} s")
        else:
            self._close(connection)

    def _close(self, connection: _Connection, reason: str = "") -> None:
        if self._connections.get(connection.fd) is not connection:
            return
        del self._connections[connection.fd]
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.sock)
        connection.sock.close()
        if reason:
            log.debug("%s: %s %s", self.name, connection.peer, reason)

    def _warn(self, topic: str, message: str) -> None:
        """A warning at most once a minute per topic; the repeats go to the debug log."""
        now = time.monotonic()
        if now - self._warned.get(topic, -WARNING_INTERVAL) >= WARNING_INTERVAL:
            self._warned[topic] = now
            log.warning("%s: %s", self.name, message)
        else:
            log.debug("%s: %s", self.name, message)


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


def _debugging() -> bool:
    """Tracebacks only when the debug log is on: otherwise one line per failure."""
    return log.isEnabledFor(logging.DEBUG)
