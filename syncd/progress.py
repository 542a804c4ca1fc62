"""A one-line progress bar for interactive runs: ``fetch users [########......]  412/1000``.

:func:`make_progress` returns the callback that :class:`~syncd.reconcile.RunOptions` takes as
``progress(stage, done, total)``, or None when the stream is not a terminal (cron, systemd, a
pipe), so that logs and captured output never fill with carriage returns.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from typing import TextIO

Progress = Callable[[str, int, int], None]

BAR_WIDTH = 30
MIN_REDRAW_SECONDS = 0.1


def render_line(stage: str, done: int, total: int, width: int = BAR_WIDTH) -> str:
    """The text of one progress line; ``total`` 0 means the total is not known yet."""
    if total > 0:
        done = min(max(done, 0), total)
        filled = width * done // total
        return f"{stage} [{'#' * filled}{'.' * (width - filled)}] {done:>{len(str(total))}}/{total}"
    return f"{stage} {done}"


class ProgressBar:
    """Redraws one line in place; a new stage or a finished one ends the line.

    Called with a stage alone (``progress("users: 412 read")``), it prints that as a line of its own.
    """

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self._stage: str | None = None
        self._drawn_at = float("-inf")
        self._length = 0
        self._lock = threading.Lock()

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        with self._lock:
            if stage != self._stage and self._stage is not None and self._length:
                self.stream.write("\n")
                self._length = 0
            if done is None or total is None:
                self.stream.write(stage + "\n")
                self._stage, self._length = None, 0
                self.stream.flush()
                return
            finished = total > 0 and done >= total
            now = self.clock()
            if stage == self._stage and not finished and now - self._drawn_at < MIN_REDRAW_SECONDS:
                return
            self._stage = stage
            self._drawn_at = now
            columns = shutil.get_terminal_size((80, 24)).columns
            line = render_line(stage, done, total)[: max(columns - 1, 10)]
            self.stream.write("\r" + line + " " * max(self._length - len(line), 0))
            self._length = len(line)
            if finished:
                self.stream.write("\n")
                self._stage, self._length = None, 0
            self.stream.flush()


def make_progress(stream: TextIO) -> Progress | None:
    """A progress callback drawing on ``stream``, or None when ``stream`` is not a terminal."""
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        interactive = False
    return ProgressBar(stream) if interactive else None
