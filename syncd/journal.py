"""A run's record in the store, begun once and ended once, whichever way the run ends.

:func:`recorded` begins the record and yields a :class:`RunJournal`.  The run ends it in one of
two ways: :meth:`RunJournal.end` writes the outcome in a transaction of its own (refused, paused),
or :meth:`RunJournal.outcome` hands the outcome to the apply, which writes it in the transaction
of its changes, so the record commits with the data or not at all.  Anything that escapes the
block instead - an error, an interrupt, a stop request - records the run as failed with nothing
applied, and only while it is still ``running``: nothing can relabel a run whose data committed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .cancel import Cancelled
from .changes import Plan
from .errors import SyncdError
from .records import plan_record
from .runs import RunStatus

if TYPE_CHECKING:
    from .apply import RunOutcome
    from .store import Store

log = logging.getLogger("syncd")


@dataclass(slots=True)
class RunWatch:
    """Where a run stands, for another thread (the daemon, deciding what to say if it gives up on it).

    ``stage`` is ``starting``, ``reading`` (Graph and the store), ``applying``, ``committing`` (its
    outcome is written and the commit under way: it lands whole or not at all) or ``committed``.
    """

    run_id: int | None = None
    stage: str = "starting"


class RunJournal:
    """The record of one run in progress."""

    def __init__(
        self, store: Store, run_id: int, watch: RunWatch, requests: Callable[[], int | None] = lambda: None
    ) -> None:
        self.store = store
        self.requests = requests
        """How many Graph requests the run has made so far (its record keeps the count)."""
        self.run_id = run_id
        self.watch = watch
        self.plan: Plan | None = None
        self.ended = False

    def end(self, status: RunStatus, message: str, *, plan: Plan | None = None) -> None:
        """Record that the run ended with nothing applied (refused, paused); a refused run keeps its
        plan, which ``syncd log --run N`` shows."""
        self._once()
        summary = plan.summary() if plan is not None else {}
        kept = json.dumps(plan_record(plan)) if plan is not None and status is RunStatus.REFUSED else None
        self.store.finish_run(
            self.run_id,
            status,
            changes=0,
            errors=0,
            summary=summary,
            message=message,
            plan=kept,
            graph_requests=self.requests(),
        )
        self.ended = True

    def outcome(self, status: RunStatus, errors: int, message: str) -> RunOutcome:
        """The outcome an apply writes in its own transaction; the run counts as ended once that
        transaction commits (:meth:`committed`)."""
        from .apply import RunOutcome

        self._once()
        self.watch.stage = "committing"
        return RunOutcome(status, errors, message, self.requests())

    def committed(self) -> None:
        self.ended = True
        self.watch.stage = "committed"

    def _once(self) -> None:
        if self.ended:
            raise RuntimeError(f"run {self.run_id} has already recorded how it ended")

    def failed(self, error: BaseException) -> None:
        """Record the run as failed with nothing applied, unless it had committed its outcome.

        What the log and the run record say is then what the store holds; a :class:`Cancelled`
        carries it (``outcome``) to whoever asked for the stop.
        """
        run_id = self.run_id
        if isinstance(error, SyncdError):
            message = f"{error.code}: {error}"
        elif isinstance(error, Cancelled):
            message = "interrupted by shutdown; nothing of this run was applied"
        elif isinstance(error, KeyboardInterrupt):
            message = "interrupted; nothing of this run was applied"
        else:
            message = f"failed unexpectedly ({type(error).__name__}); nothing of this run was applied"
        summary = self.plan.summary() if self.plan is not None else {}
        try:
            recorded = self.store.fail_run(run_id, message, summary=summary, graph_requests=self.requests())
        except Exception as failure:  # the database that failed the run may refuse this as well
            log.warning("run %d could not be recorded as failed (%s); the next run records it so", run_id, failure)
            outcome = f"nothing of it was applied; the next run records run {run_id} as failed"
        else:
            if recorded:
                outcome = f"nothing of it was applied; run {run_id} is recorded as failed"
            else:
                outcome = f"run {run_id} had already recorded how it ended, with its changes; that record stands"
                log.warning("%s (`syncd history`): it was interrupted only after its commit", outcome)
        self.ended = True
        if isinstance(error, Cancelled):
            error.outcome = outcome


@contextmanager
def recorded(
    store: Store,
    trigger: str,
    watch: RunWatch | None = None,
    requests: Callable[[], int | None] = lambda: None,
) -> Iterator[RunJournal]:
    """Begin the record of a run; whatever way the block ends, the run's end is recorded once.
    ``requests`` counts the Graph requests the run has made so far."""
    watch = watch if watch is not None else RunWatch()
    journal = RunJournal(store, store.begin_run(trigger), watch, requests)
    watch.run_id, watch.stage = journal.run_id, "reading"
    try:
        yield journal
    except BaseException as error:
        journal.failed(error)
        raise
    if not journal.ended:
        journal.failed(RuntimeError("the run ended without recording how"))
        raise RuntimeError(f"run {journal.run_id} ended without recording how")
