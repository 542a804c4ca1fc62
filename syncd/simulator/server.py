"""The HTTP server: Graph under ``/v1.0``, the control API under ``/_sim/``, counting and faults.

Every Graph response carries Graph's JSON content type, a ``request-id`` header and, echoed, the
``client-request-id`` the client sent.  Requests to ``/_sim/`` need no token and are not counted.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from syncd.simulator import control
from syncd.simulator.batch import serve_batch
from syncd.simulator.faults import Faults, HoldRule
from syncd.simulator.odata import parse_query
from syncd.simulator.request import GraphRequest
from syncd.simulator.responses import GRAPH_CONTENT_TYPE, GraphError, Response, bad_request
from syncd.simulator.routes import authenticate, handle
from syncd.simulator.tenant import Tenant

LogEntry = tuple[str, str, int]


class Simulator:
    """A Microsoft Graph look-alike on loopback, serving one in-memory tenant.

    ``with Simulator(tenant) as sim:`` starts it on a free port in a daemon thread; point a Graph
    client at ``sim.base_url`` with the bearer token ``sim.token``.  ``sim.tenant`` is live: a
    change made between two requests is seen by the second.
    """

    def __init__(
        self,
        tenant: Tenant | None = None,
        *,
        token: str = "test-token",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.tenant = tenant if tenant is not None else Tenant()
        self.token = token
        self.host = host
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._faults = Faults()
        self._stats_lock = threading.Lock()
        self._log: list[LogEntry] = []
        self._batch_log: list[LogEntry] = []
        self.captured: list[tuple[str, str, dict[str, str], bytes]] | None = None
        """With a list here, every Graph request is appended as (method, path and query, headers
        that change the answer, body): a benchmark replays them to measure the floor a bare HTTP
        client reaches."""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Simulator:
        if self._server is None:
            server = _Server((self.host, self._requested_port), _Handler)
            server.simulator = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="graph-simulator", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The simulator is not running; call start() first.")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The server's root, e.g. ``http://127.0.0.1:PORT`` (the control API is under ``/_sim/``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Graph's service root, e.g. ``http://127.0.0.1:PORT/v1.0``."""
        return f"{self.url}/v1.0"

    # ------------------------------------------------------------------ counting

    @property
    def requests(self) -> int:
        """Graph requests served; a ``$batch`` counts as one."""
        with self._stats_lock:
            return len(self._log)

    @property
    def batch_items(self) -> int:
        """Requests served inside ``$batch`` calls."""
        with self._stats_lock:
            return len(self._batch_log)

    @property
    def request_log(self) -> list[LogEntry]:
        """``(method, path_with_query, status)`` of every Graph request, in order (query decoded)."""
        with self._stats_lock:
            return list(self._log)

    @property
    def batch_log(self) -> list[LogEntry]:
        """The same for the items of ``$batch`` calls (their path as if sent alone)."""
        with self._stats_lock:
            return list(self._batch_log)

    def count(self, pattern: str, *, include_batch_items: bool = False) -> int:
        """How many logged requests have a path (with query) matching the regular expression."""
        compiled = re.compile(pattern)
        entries = self.request_log + (self.batch_log if include_batch_items else [])
        return sum(1 for _, target, _ in entries if compiled.search(target))

    def reset_counts(self) -> None:
        with self._stats_lock:
            self._log.clear()
            self._batch_log.clear()

    def stats(self) -> dict[str, Any]:
        """The counters and logs as the control API reports them."""
        with self._stats_lock:
            return {
                "requests": len(self._log),
                "batchItems": len(self._batch_log),
                "log": [list(entry) for entry in self._log],
                "batchLog": [list(entry) for entry in self._batch_log],
            }

    # ------------------------------------------------------------------ faults

    def fail(
        self,
        path_regex: str,
        status: int = 503,
        times: int | None = 1,
        retry_after: str | float | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests matching ``path_regex`` with ``status`` (None: forever).

        The body is Graph's error JSON unless ``body`` is given (a dict, or text sent verbatim);
        ``headers`` are added (a ``Location`` for a redirect).  Items of a ``$batch`` are matched
        too and fail on their own.  Any status can be given, 200 included, to serve a made-up answer.
        """
        self._faults.add_failure(path_regex, status, times, retry_after, body, headers)

    def throttle(self, times: int | None = 2, retry_after: str | float = "2.128", path_regex: str = ".*") -> None:
        """Answer the next ``times`` matching requests 429 with Graph's throttling body and Retry-After."""
        self._faults.add_failure(path_regex, 429, times, retry_after)

    def delay(self, seconds: float, path_regex: str = ".*", times: int | None = None) -> None:
        """Hold matching responses back by ``seconds`` (for the next ``times`` requests, None: always)."""
        self._faults.add_delay(seconds, path_regex, times)

    def hold(self, path_regex: str, timeout: float = 60.0) -> HoldRule:
        """Hold matching requests until ``rule.release`` is set (at most ``timeout`` seconds each);
        ``rule.arrived`` tells that one came.  Lets a test order events without guessing durations."""
        return self._faults.add_hold(path_regex, timeout)

    def clear_faults(self) -> None:
        """Remove every fault rule; held requests are released."""
        self._faults.clear()

    def active_faults(self) -> dict[str, Any]:
        """The failure and delay rules still in force."""
        return self._faults.describe()

    # ------------------------------------------------------------------ serving

    def serve(self, method: str, raw_target: str, headers: dict[str, str], body: bytes = b"") -> Response:
        """Answer one HTTP request (headers with lower-cased names)."""
        raw_path = raw_target.partition("?")[0]
        if raw_path == "/_sim" or raw_path.startswith("/_sim/"):
            return control.handle(self, method, unquote(raw_path), body)
        response = self._serve_graph(method, raw_target, headers, body, in_batch=False)
        self._record(self._log, method, raw_target, response.status)
        captured = self.captured
        if captured is not None:
            kept: dict[str, str] = {
                name: headers[name] for name in ("consistencylevel", "content-type") if name in headers
            }
            with self._stats_lock:
                captured.append((method, raw_target, kept, body))
        return response

    def _serve_batch_item(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        response = self._serve_graph(method, target, headers, body, in_batch=True)
        self._record(self._batch_log, method, target, response.status)
        return response

    def _record(self, log: list[LogEntry], method: str, raw_target: str, status: int) -> None:
        with self._stats_lock:
            log.append((method, unquote(raw_target), status))

    def _serve_graph(
        self, method: str, raw_target: str, headers: dict[str, str], body: bytes, *, in_batch: bool
    ) -> Response:
        raw_path, _, raw_query = raw_target.partition("?")
        path = unquote(raw_path)
        request_id = str(uuid.uuid4())
        client_request_id = headers.get("client-request-id", request_id)
        try:
            self._faults.wait_if_held(unquote(raw_target))
            pause = self._faults.take_delay(unquote(raw_target))
            if pause:
                time.sleep(pause)
            failure = self._faults.take_failure(unquote(raw_target))
            if failure is not None:
                raise failure
            response = self._route(method, path, raw_query, headers, body, in_batch, len(raw_target))
        except GraphError as error:
            response = error.to_response(request_id, client_request_id)
        except Exception as error:
            traceback.print_exc()
            failure = GraphError(500, "generalException", f"{type(error).__name__}: {error}")
            response = failure.to_response(request_id, client_request_id)
        response.headers.setdefault("Content-Type", GRAPH_CONTENT_TYPE if response.status < 400 else "application/json")
        response.headers.update(
            {
                "request-id": request_id,
                "client-request-id": client_request_id,
                "OData-Version": "4.0",
                "Cache-Control": "no-cache",
            }
        )
        return response

    def _route(
        self,
        method: str,
        path: str,
        raw_query: str,
        headers: dict[str, str],
        body: bytes,
        in_batch: bool,
        target_length: int,
    ) -> Response:
        lowered = path.lower()
        if lowered == "/v1.0/$batch":
            if in_batch:
                raise bad_request("A batch cannot contain another batch.", code="BadRequest")
            request = GraphRequest(method, "/$batch", {}, headers, self.base_url)
            authenticate(request, self.token)
            if method != "POST":
                raise GraphError(405)
            return serve_batch(body, headers, self._serve_batch_item)
        if lowered == "/v1.0" or lowered.startswith("/v1.0/"):
            below = path[len("/v1.0") :] or "/"
            length = len(self.base_url.removesuffix("/v1.0")) + target_length  # the URL as the client sent it
            request = GraphRequest(method, below, parse_query(raw_query), headers, self.base_url, body, length)
            return handle(self.tenant, self.token, request)
        version = path.strip("/").split("/")[0]
        raise bad_request(f"Invalid version: {version}", code="BadRequest")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops the connections of a client that opens 8 at once
    simulator: Simulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer (a cancelled request) is no error of the server's;
        anything else is reported as socketserver does."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.simulator.serve(method, self.path, headers, body)
        payload = _encode(response.body)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the simulator keeps its own request log."""


def _encode(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
