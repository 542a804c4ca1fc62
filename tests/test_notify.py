"""The systemd notify protocol, spoken to a real AF_UNIX datagram socket."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.notify import Notifier, socket_address, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_status_watchdog_and_stopping_arrive_as_datagrams(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier(path)
    assert notifier.enabled
    assert notifier.ready("first cycle running")
    assert receive(sock) == ["READY=1", "STATUS=first cycle running"]
    assert notifier.status("last cycle success")
    assert receive(sock) == ["STATUS=last cycle success"]
    assert notifier.watchdog()
    assert receive(sock) == ["WATCHDOG=1"]
    assert notifier.stopping()
    assert receive(sock) == ["STOPPING=1"]


def test_reloading_carries_the_monotonic_clock(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    Notifier(path).reloading()
    reloading, monotonic = receive(sock)
    assert reloading == "RELOADING=1"
    assert monotonic.startswith("MONOTONIC_USEC=") and int(monotonic.split("=")[1]) > 0


def test_status_is_one_line_of_bounded_length(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    Notifier(path).status("failed [GRAPH_UNAVAILABLE]:\n  Graph answered 503\n" + "x" * 5000)
    (line,) = receive(sock)
    assert line.startswith("STATUS=failed [GRAPH_UNAVAILABLE]: Graph answered 503 x")
    assert len(line) <= len("STATUS=") + 1024


def test_abstract_namespace_socket_is_supported() -> None:
    name = f"syncd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier.from_environment({"NOTIFY_SOCKET": "@" + name}).ready()
        assert receive(sock) == ["READY=1"]
    finally:
        sock.close()


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert not notifier.ready("x")
    assert not notifier.watchdog()
    assert not notifier.stopping()


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert notifier.enabled
    assert not notifier.ready()


def test_socket_addresses() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abstract") == "\0abstract"
    assert socket_address("vsock:2:1234") is None


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "120000000"}) == 60.0
    assert watchdog_interval({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": str(os.getpid())}) == 60.0


def test_watchdog_meant_for_another_process_or_absent_is_off() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
