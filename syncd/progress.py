"""The progress bar of an interactive run: ``fetch users  [########......]  412/1000``, drawn by
:func:`click.progressbar`.

:func:`make_progress` returns the callback that :class:`~syncd.reconcile.RunOptions` takes as
``progress(stage, done, total)``, or None when the stream is not a terminal (cron, systemd, a
pipe), so that logs and captured output never fill with carriage returns.  Each stage gets a bar of
its own; a total of 0 means it is not known yet (the bar then counts without an end), and a stage
given without counts is printed as a line of its own.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TextIO

import click

Progress = Callable[[str, int, int], None]

BAR_WIDTH = 30
MIN_REDRAW_SECONDS = 0.1


class StageBars:
    """One :func:`click.progressbar` per stage, redrawn at most every :data:`MIN_REDRAW_SECONDS`
    (and always at its end); called from any thread."""

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self._lock = threading.Lock()
        self._open = ExitStack()
        self._bar: Any = None
        self._stage: str | None = None
        self._drawn_at = float("-inf")

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        with self._lock:
            if done is None or total is None:
                self._end()
                click.echo(stage, file=self.stream)
                return
            if stage != self._stage or (total > 0 and self._bar.length not in (None, total)):
                self._start(stage, total)
            bar = self._bar
            if total > 0:
                bar.length = total  # a count that was open-ended now has its end
            finished = total > 0 and done >= total
            bar.make_step(max(min(done, total) if total > 0 else done, 0) - bar.pos)
            now = self.clock()
            if finished or now - self._drawn_at >= MIN_REDRAW_SECONDS:
                bar.render_progress()
                self._drawn_at = now
            if finished:
                self._end()

    def _start(self, stage: str, total: int) -> None:
        self._end()
        self._bar = self._open.enter_context(
            click.progressbar(
                length=total if total > 0 else None,
                iterable=None if total > 0 else itertools.count(),  # no length: an open-ended count
                label=stage,
                file=self.stream,
                show_pos=True,
                show_percent=False,
                show_eta=False,
                width=BAR_WIDTH,
            )
        )
        self._stage = stage
        self._drawn_at = float("-inf")

    def _end(self) -> None:
        """Finish the bar on screen (its line ends); the next stage starts a new one."""
        self._open.close()
        self._bar, self._stage = None, None


def make_progress(stream: TextIO) -> Progress | None:
    """A progress callback drawing on ``stream``, or None when ``stream`` is not a terminal."""
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        interactive = False
    return StageBars(stream) if interactive else None
