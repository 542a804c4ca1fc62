"""Stopping long work by asking, never by force.

A run that must stop early (the daemon shutting down) is handed a :class:`threading.Event`; the
work checks it between its steps - before each Graph request and retry wait, between the stages
of a run, between the groups of changes an apply writes - and raises :class:`Cancelled` there.
Nothing is ever injected into a running thread: an exception that lands at an arbitrary bytecode
can land inside a lock or a ``finally`` and leave the process unable to stop.

The event is set by another thread, so a cancellation point is exactly where the work is ready
to stop: an apply's transaction rolls back, nothing half-done stays behind.
"""

from __future__ import annotations

import threading

Cancel = threading.Event
"""What a caller sets to ask the work to stop at its next cancellation point."""


class Cancelled(BaseException):
    """Raised at a cancellation point after a stop was asked for.

    A BaseException like KeyboardInterrupt, so that no ``except Exception`` on the way mistakes it
    for an ordinary failure (a Graph read that failed, an object the store rejected).  ``outcome``
    says what became of the work, for the log line of whoever asked.
    """

    def __init__(self, outcome: str = "nothing of it was applied") -> None:
        super().__init__(outcome)
        self.outcome = outcome


def check(cancel: threading.Event | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` is set: one cancellation point."""
    if cancel is not None and cancel.is_set():
        raise Cancelled
