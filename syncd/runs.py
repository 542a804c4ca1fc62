"""How a run can end: one enum drives the store's constraint, the exit code, health and the log level.

====================  =========  ====  =================  ========================================
status                exit code  ok?   daemon log level   meaning
====================  =========  ====  =================  ========================================
``success``           0          yes   INFO               everything planned was applied
``partial``           3          yes   WARNING            finished; some objects had errors
``incomplete``        3          no    WARNING            Graph could not be read in full, so
                                                          nothing was deprovisioned by absence
``refused``           4          no    ERROR              a safety limit; nothing was applied
``paused``            0          yes   INFO               provisioning is paused; nothing changed
``failed``            1          no    ERROR              nothing of the run was applied
``running``           -          -     -                  still going (or its process was killed)
``dry_run``           -          -     -                  ``syncd plan``: recorded, never applied
====================  =========  ====  =================  ========================================

"ok" is what health counts as a success: per-object problems are data problems, reported in the
audit; an incomplete read, a refusal or a failure needs someone.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from .errors import ExitCode


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"
    INCOMPLETE = "incomplete"
    FAILED = "failed"
    REFUSED = "refused"
    PAUSED = "paused"
    DRY_RUN = "dry_run"

    @property
    def exit_code(self) -> ExitCode:
        """The exit code of a run that ended so (a dry run exits as the run it shows would)."""
        return _EXIT_CODES[self]

    @property
    def ok(self) -> bool:
        """Whether health counts the run as a success."""
        return self in (RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.PAUSED)

    @property
    def log_level(self) -> int:
        """How loudly the daemon logs a cycle that ended so."""
        if self in (RunStatus.SUCCESS, RunStatus.PAUSED):
            return logging.INFO
        if self in (RunStatus.PARTIAL, RunStatus.INCOMPLETE):
            return logging.WARNING
        return logging.ERROR


_EXIT_CODES = {
    RunStatus.SUCCESS: ExitCode.OK,
    RunStatus.PAUSED: ExitCode.OK,
    RunStatus.PARTIAL: ExitCode.PARTIAL,
    RunStatus.INCOMPLETE: ExitCode.PARTIAL,
    RunStatus.REFUSED: ExitCode.REFUSED,
    RunStatus.FAILED: ExitCode.FAILED,
    RunStatus.RUNNING: ExitCode.FAILED,
    RunStatus.DRY_RUN: ExitCode.OK,
}

RUN_STATUSES: tuple[str, ...] = tuple(status.value for status in RunStatus)
"""Every status a run record may hold (the store's check constraint)."""
SUCCESS_STATUSES: tuple[str, ...] = (RunStatus.SUCCESS.value, RunStatus.PARTIAL.value)
"""Runs that applied what they planned: the last of them is the store's last success."""
