"""The metrics endpoint faces clumsy and hostile clients and stays small, quiet and responsive.

Every test drives a real server on 127.0.0.1 with raw sockets.  Each client is bounded in time
(every read has a deadline, every loop a fixed number of turns), so a server that misbehaves
fails the test instead of hanging it.  ``QUICK`` limits keep the timeout tests short; the others
use the defaults the daemon runs with.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import select
import socket
import struct
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

import pytest

from syncd.config import LogConfig
from syncd.logs import setup_logging
from syncd.metrics import Metrics, MetricsServer
from syncd.metrics_server import HttpServer, Limits, Response

QUICK = Limits(request_timeout=1.0, write_timeout=1.0, linger=0.5)
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
Serve = Callable[..., MetricsServer]


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(interval_seconds=60)


@pytest.fixture
def serve(metrics: Metrics) -> Iterator[Serve]:
    """Starts a MetricsServer on a free loopback port (default limits unless given); stops it after."""
    started: list[MetricsServer] = []

    def start(limits: Limits | None = None, on: Metrics = metrics) -> MetricsServer:
        server = MetricsServer("127.0.0.1:0", on, limits) if limits else MetricsServer("127.0.0.1:0", on)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class CurrentStderr(io.TextIOBase):
    """Whatever ``sys.stderr`` is at the moment: pytest gives each test phase a new one."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture
def json_log(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """syncd's own logging, JSON lines at debug level, on the captured stderr."""
    root, syncd_logger = logging.getLogger(), logging.getLogger("syncd")
    handlers, root_level, syncd_level = list(root.handlers), root.level, syncd_logger.level
    setup_logging(LogConfig(format="json", level="DEBUG"), stream=CurrentStderr())  # type: ignore[arg-type]
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(root_level)
    syncd_logger.setLevel(syncd_level)


# ---------------------------------------------------------------------------- clients


def connect(server: MetricsServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def read_until_closed(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes; fails if it keeps the connection open longer."""
    deadline = time.monotonic() + within
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    pytest.fail(f"the server kept the connection open for more than {within:g} s (received {received[:60]!r})")


def exchange(server: MetricsServer, request: bytes, within: float = 5.0) -> bytes:
    """Sends ``request`` (the server may answer and stop reading early) and returns the whole answer."""
    with connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        return read_until_closed(sock, within)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:80]
    return int(answer.split(b" ", 2)[1])


def head_of(answer: bytes) -> dict[str, str]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in head)}


def scrape(server: MetricsServer, path: str = "/metrics") -> int:
    return status_of(exchange(server, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()))


def hang_up(server: MetricsServer, send: bytes, *, read: int = 0, reset: bool = False) -> None:
    """A client that sends ``send``, perhaps reads a little, and goes away (with a reset if asked)."""
    sock = connect(server)
    try:
        sock.sendall(send)
        if read:
            sock.recv(read)
    finally:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (EOF or reset), without waiting."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(65536, socket.MSG_PEEK) == b""
    except (ConnectionResetError, BlockingIOError):
        return True


def json_lines(err: str) -> list[dict[str, Any]]:
    """Every stderr line as a JSON log entry; fails on a line that is not one (a printed traceback)."""
    entries = []
    for line in err.splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"a stderr line is not a JSON log entry: {line!r}")
    return entries


# ---------------------------------------------------------------------------- failures stay quiet


def test_clients_that_hang_up_early_leave_no_traceback_only_json_log_lines(
    serve: Serve, json_log: None, capfd: pytest.CaptureFixture[str]
) -> None:
    server = serve()
    for _ in range(5):
        hang_up(server, REQUEST, reset=True)  # an aborted scrape
        hang_up(server, REQUEST, read=10, reset=True)  # a reset in the middle of the answer
        hang_up(server, REQUEST)  # a scraper that never reads its answer
        hang_up(server, b"GET /metr")  # half a request line
        hang_up(server, b"")  # a port scan
    assert scrape(server) == 200
    time.sleep(0.5)
    err = capfd.readouterr().err
    assert "Traceback" not in err, "a client's failure is one debug line, not a traceback"
    entries = json_lines(err)
    assert entries and all(entry["logger"].startswith("syncd") for entry in entries)


def test_an_application_error_is_answered_500_and_logged_as_one_line(
    serve: Serve, json_log: None, capfd: pytest.CaptureFixture[str]
) -> None:
    class BrokenMetrics(Metrics):
        def health(self) -> tuple[int, dict[str, Any]]:
            raise RuntimeError("the health check broke")

    server = serve(on=BrokenMetrics(interval_seconds=60))
    assert scrape(server, "/healthz") == 500
    assert scrape(server, "/metrics") == 200, "one failing request does not stop the server"
    errors = [entry for entry in json_lines(capfd.readouterr().err) if entry["level"] == "ERROR"]
    assert len(errors) == 1
    assert "RuntimeError: the health check broke" in errors[0]["message"]


# ---------------------------------------------------------------------------- slow and idle clients


def test_a_client_that_sends_nothing_is_closed_after_the_request_timeout(serve: Serve) -> None:
    server = serve(QUICK)
    with connect(server) as sock:
        started = time.monotonic()
        assert read_until_closed(sock, within=QUICK.request_timeout + 1) == b""
        assert time.monotonic() - started >= QUICK.request_timeout * 0.8


def test_half_a_request_line_is_answered_408_when_the_request_timeout_ends(serve: Serve) -> None:
    server = serve(QUICK)
    with connect(server) as sock:
        sock.sendall(b"GET /metr")
        assert status_of(read_until_closed(sock, within=QUICK.request_timeout + 1)) == 408


def test_a_slowloris_dripping_headers_is_cut_off_at_the_request_timeout(serve: Serve) -> None:
    server = serve(QUICK)
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: ")
        for _ in range(100):  # a byte every 50 ms: never silent for long, never finished
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered or closed
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.05)
        answer = read_until_closed(sock, within=1)
        assert time.monotonic() - started < QUICK.request_timeout + 0.6
    assert answer == b"" or status_of(answer) == 408


@pytest.mark.slow
def test_with_the_default_limits_a_stalled_request_is_closed_within_a_few_seconds(serve: Serve) -> None:
    server = serve()
    with connect(server) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and no blank line, ever
        assert status_of(read_until_closed(sock, within=Limits().request_timeout + 2)) == 408
    assert Limits().request_timeout <= 10


def test_idle_connections_do_not_take_a_thread_each(serve: Serve) -> None:
    server = serve()
    threads_before = threading.active_count()
    idle = [connect(server) for _ in range(100)]
    for sock in idle[:30]:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
    try:
        time.sleep(0.3)
        assert scrape(server) == 200, "a scrape is served while 100 connections idle"
        assert threading.active_count() <= threads_before + 1
    finally:
        for sock in idle:
            sock.close()


def test_a_table_full_of_idle_connections_still_lets_a_scrape_through(serve: Serve) -> None:
    server = serve(Limits(max_connections=16, eviction_age=0.2))
    idle = [connect(server) for _ in range(16)]
    try:
        time.sleep(0.3)
        started = time.monotonic()
        assert scrape(server) == 200
        assert time.monotonic() - started < 1
        assert closed_by_server(idle[0]) or read_until_closed(idle[0], within=1) == b"", "the oldest made room"
    finally:
        for sock in idle:
            sock.close()


def test_a_client_that_never_reads_its_answer_is_dropped_after_the_write_timeout() -> None:
    big = Response(HTTPStatus.OK, "application/octet-stream", bytes(6_000_000))  # more than the socket buffers
    small = Response.text(HTTPStatus.OK, "small")
    server = HttpServer("127.0.0.1", 0, lambda request: big if request.path == "/big" else small, QUICK)
    server.start()
    threads_before = threading.active_count()
    stalled = []
    try:
        for _ in range(3):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(5)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"GET /big HTTP/1.1\r\n\r\n")
            stalled.append(sock)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as reader:
            reader.sendall(b"GET /small HTTP/1.1\r\n\r\n")
            assert read_until_closed(reader, within=1).endswith(b"small\n"), "others are served meanwhile"
        assert threading.active_count() <= threads_before
        time.sleep(QUICK.write_timeout + 0.2)
        for sock in stalled:
            assert len(read_until_closed(sock, within=2)) < len(big.body)
    finally:
        for sock in stalled:
            sock.close()
        server.stop()


# ---------------------------------------------------------------------------- what may be asked


def test_an_overlong_request_line_is_answered_414(serve: Serve) -> None:
    server = serve()
    assert status_of(exchange(server, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n")) == 414
    assert status_of(exchange(server, b"GET /" + b"a" * 20_000)) == 414, "even before the line ends"


@pytest.mark.parametrize(
    "headers",
    [
        [f"X-Big-{n}: {'v' * 1000}" for n in range(40)],
        [f"X-Many-{n}: v" for n in range(200)],
        [f"X-Huge: {'v' * 70_000}"],
    ],
    ids=["40 KB of headers", "200 headers", "one 70 KB header"],
)
def test_an_oversized_header_block_is_answered_431(serve: Serve, headers: list[str]) -> None:
    server = serve()
    request = "\r\n".join(["GET /metrics HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]).encode()
    assert status_of(exchange(server, request)) == 431


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /metrics\r\n\r\n", 400),
        (b"GET metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET /m\xffetrics HTTP/1.1\r\n\r\n", 400),
        (b"G(T /metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded: line\r\n\r\n", 400),
        (b"GET /metrics HTTP/2.0\r\n\r\n", 505),
        (b"GET /metrics JUNK/1.1\r\n\r\n", 400),
    ],
)
def test_malformed_requests_are_answered_with_a_4xx_or_505(serve: Serve, request_bytes: bytes, status: int) -> None:
    server = serve()
    assert status_of(exchange(server, request_bytes)) == status
    assert scrape(server) == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"])
def test_methods_other_than_get_and_head_are_answered_405_with_allow(serve: Serve, method: str) -> None:
    server = serve()
    answer = exchange(
        server, f"{method} /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello".encode()
    )
    assert status_of(answer) == 405
    assert head_of(answer)["allow"] == "GET, HEAD"


def test_head_answers_carry_the_length_but_no_body(serve: Serve) -> None:
    server = serve()
    answer = exchange(server, b"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status_of(answer) == 503
    assert answer.endswith(b"\r\n\r\n"), "no body after the head"
    assert int(head_of(answer)["content-length"]) > 0


# ---------------------------------------------------------------------------- many at once


def test_two_hundred_concurrent_scrapes_are_all_served_promptly(serve: Serve) -> None:
    server = serve()
    clients = 200
    together = threading.Barrier(clients, timeout=10)

    def one_scrape(_: int) -> int:
        together.wait()
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
            response.read()
            return int(response.status)

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(one_scrape, range(clients)))
    assert statuses == [200] * clients
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------------------- stopping


def test_stop_closes_every_open_connection_and_frees_the_port_at_once(serve: Serve, metrics: Metrics) -> None:
    server = serve()
    port = server.port
    idle = [connect(server) for _ in range(20)]
    idle[0].sendall(b"GET /metr")
    try:
        time.sleep(0.2)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1
        for sock in idle:
            read_until_closed(sock, within=1)
        again = MetricsServer(f"127.0.0.1:{port}", metrics)
        again.start()
        again.stop()
    finally:
        for sock in idle:
            sock.close()
