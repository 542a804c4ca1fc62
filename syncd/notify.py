"""The systemd notify protocol, spoken over the ``$NOTIFY_SOCKET`` datagram socket directly.

A service of ``Type=notify`` tells systemd that it is ready (``READY=1``), what it is doing
(``STATUS=...``, shown by ``systemctl status``), that it is still alive (``WATCHDOG=1``, at least
every ``WatchdogSec=``) and that it is shutting down (``STOPPING=1``).  Each message is one
datagram of newline-separated ``KEY=VALUE`` assignments sent to the AF_UNIX socket named in
``$NOTIFY_SOCKET``; a name starting with ``@`` lives in the abstract namespace.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op, and a notification that cannot be
delivered is logged at debug level and otherwise ignored: the service must not fail because its
supervisor went away.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

STATUS_LIMIT = 1024
"""STATUS= texts are cut to this many characters; systemctl shows one line anyway."""
SEND_TIMEOUT_SECONDS = 1.0
"""A supervisor that does not read its socket must not hold up the service."""


def socket_address(name: str) -> str | None:
    """The address to send to for a ``$NOTIFY_SOCKET`` value, or None if it is not an AF_UNIX one."""
    if name.startswith("@"):
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    return None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between two ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, or None when off.

    Like ``sd_watchdog_enabled()``, a ``$WATCHDOG_PID`` naming another process means the watchdog
    is not meant for this one.
    """
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000


class Notifier:
    """Sends notifications to systemd; every method returns whether a datagram was sent."""

    def __init__(self, socket_name: str | None) -> None:
        self.socket_name = socket_name or ""
        self._address = socket_address(self.socket_name) if self.socket_name else None
        if self.socket_name and self._address is None:
            log.debug("NOTIFY_SOCKET=%s is not an AF_UNIX socket; notifications are off", self.socket_name)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` (a silent one when it is not set)."""
        environ = os.environ if environ is None else environ
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments in one datagram."""
        if self._address is None or not assignments:
            return False
        message = "\n".join(assignments).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(SEND_TIMEOUT_SECONDS)
                sock.sendto(message, self._address)
        except OSError as error:
            log.debug("cannot notify systemd at %s: %s", self.socket_name, error)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """The service is up: configuration loaded, database reachable."""
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """What ``systemctl status`` shows as the service's own status line."""
        return self.notify(*_status(text))

    def watchdog(self) -> bool:
        """Still alive; systemd restarts the service if this stops for ``WatchdogSec=``."""
        return self.notify("WATCHDOG=1")

    def reloading(self) -> bool:
        """A configuration reload started; :meth:`ready` ends it."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self, status: str = "") -> bool:
        """Shutdown started."""
        return self.notify("STOPPING=1", *_status(status))


def _status(text: str) -> tuple[str, ...]:
    if not text:
        return ()
    line = " ".join(text.split())
    return (f"STATUS={line[:STATUS_LIMIT]}",)
