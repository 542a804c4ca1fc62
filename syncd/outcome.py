"""How a run ended, and the one way it is reported.

:class:`RunResult` is what :func:`syncd.reconcile.run_once` returns to the command line and to the
daemon alike; :func:`report` writes its one summary line to the log for both (the daemon calls
its runs "cycle", the command line "run N"), at the level its status calls for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .changes import Plan
from .errors import ExitCode
from .model import FetchFailure
from .runs import RunStatus

if TYPE_CHECKING:
    from .apply import Failure as ApplyFailure
    from .safety import Refusal


@dataclass(slots=True)
class RunResult:
    """The outcome of one run.

    Two kinds of failure are kept apart: ``failures`` are reads Graph did not deliver (the
    snapshot was incomplete, so nothing was deprovisioned by absence); ``failed`` are changes the
    store refused while the rest of the plan was applied.
    """

    status: RunStatus
    exit_code: ExitCode
    plan: Plan = field(default_factory=Plan)
    run_id: int | None = None
    message: str = ""
    applied: int = 0
    failed: list[ApplyFailure] = field(default_factory=list)
    failures: list[FetchFailure] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    duration: float = 0.0
    graph_requests: int = 0
    graph_throttled: int = 0
    applied_counts: dict[str, int] = field(default_factory=dict)
    """The changes written, by op (the plan's summary less what failed)."""
    store_fingerprint: str | None = None
    """A dry run's: the fingerprint of the state it planned against (``syncd plan --out``)."""

    def __post_init__(self) -> None:
        self.status = RunStatus(self.status)

    @property
    def error_count(self) -> int:
        """Per-object errors of the plan, changes the store refused, and reads that failed."""
        return len(self.plan.errors) + len(self.failed) + len(self.failures)

    def failed_json(self) -> list[dict[str, str]]:
        return [
            {"op": entry.change.op, "target": entry.change.target, "code": entry.code, "message": entry.message}
            for entry in self.failed
        ]

    def failures_json(self) -> list[dict[str, str]]:
        return [{"code": f.code, "message": f.message, "path": f.path} for f in self.failures]


_EXPLAINED = (RunStatus.REFUSED, RunStatus.PAUSED, RunStatus.FAILED)
"""Statuses whose summary line also says why (the run's message)."""


def summary_text(result: RunResult) -> str:
    """``applied 3 changes (1 create user, 2 add member), 0 errors``, and why, when it was stopped."""
    counts = ", ".join(f"{n} {op.replace('_', ' ')}" for op, n in result.applied_counts.items() if n)
    text = f"applied {result.applied} changes{f' ({counts})' if counts else ''}, {result.error_count} errors"
    if result.status in _EXPLAINED and result.message:
        text += f"; {result.message}"
    return text


def report(logger: logging.Logger, result: RunResult, *, cycle: bool = False) -> None:
    """Log the one line that says how a run ended; the daemon's runs are cycles."""
    run = f"run {result.run_id}" if result.run_id is not None else "run"
    subject, suffix = ("cycle", f" ({run})" if result.run_id is not None else "") if cycle else (run, "")
    logger.log(
        result.status.log_level if cycle else logging.INFO,  # a one-shot run's problems have lines of their own
        "%s %s in %.1fs%s: %s",
        subject,
        result.status.value,
        result.duration,
        suffix,
        summary_text(result),
        extra=_extra(result),
    )


def _extra(result: RunResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "status": result.status.value,
        "counts": result.applied_counts,
        "changes": result.applied,
        "duration": round(result.duration, 3),
    }
