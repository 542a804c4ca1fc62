"""One reconciliation: fetch -> plan -> safety checks -> render or apply.

:func:`run_once` is the single code path behind ``syncd plan``, ``syncd sync``, cron, the systemd
timer and every cycle of the daemon, so all of them behave alike.

A run's outcome is recorded once, whichever way it ends: refused or paused in a transaction of its
own; applied in the apply's own transaction, so that its record commits with its data; failed -
an error, an interrupt, a stop request - only while it is still ``running``, so nothing can
relabel a run whose data was committed.  The change lines are logged after the commit; a stop or
an interrupt then cuts the logging short and says so, and cannot change what the store holds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import safety
from .cancel import Cancelled, check
from .changes import Plan
from .config import Config
from .errors import ExitCode, SyncdError
from .model import Managed, Snapshot
from .plan import diff
from .render import describe, describe_problem, summary_line
from .runs import RunStatus
from .source import source_for

if TYPE_CHECKING:
    from .apply import ApplyResult
    from .graph.client import GraphStats
    from .store import Store

log = logging.getLogger("syncd")


@dataclass(frozen=True, slots=True)
class RunOptions:
    dry_run: bool = False
    allow_deletes: bool = False
    snapshot_path: str | None = None
    user: str | None = None
    group: str | None = None
    trigger: str = "cli"
    wait_seconds: float = 0.0
    progress: Callable[[str, int, int], None] | None = None
    """Called as progress(stage, done, total) while fetching and applying, if given."""
    cancel: threading.Event | None = None
    """Set by another thread to stop the run at its next step (:mod:`syncd.cancel`); nothing of it is
    applied then, and :class:`~syncd.cancel.Cancelled` is raised."""
    watch: RunWatch | None = None
    """Kept up to date with where the run stands, for a thread that may have to give up on it."""


@dataclass(slots=True)
class RunWatch:
    """Where a run stands, for another thread (the daemon, deciding what to say if it gives up on it).

    ``stage`` is ``starting``, ``reading`` (Graph and the store), ``applying``, ``committing`` (its
    outcome is written and the commit under way: it lands whole or not at all) or ``committed``.
    """

    run_id: int | None = None
    stage: str = "starting"


@dataclass(slots=True)
class RunResult:
    status: str  # success | partial | incomplete | refused | paused | dry_run | failed
    exit_code: ExitCode
    plan: Plan = field(default_factory=Plan)
    run_id: int | None = None
    message: str = ""
    applied: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    refusals: list[safety.Refusal] = field(default_factory=list)
    duration: float = 0.0
    graph_requests: int = 0
    graph_throttled: int = 0
    applied_counts: dict[str, int] = field(default_factory=dict)
    """The changes written, by op (the plan's summary less what failed)."""


def load_snapshot(
    config: Config, options: RunOptions, stats: GraphStats | None = None, managed: Managed | None = None
) -> Snapshot:
    """The desired state of a run, from the source its options name (:func:`syncd.source.source_for`)."""
    source = source_for(
        config,
        snapshot_path=options.snapshot_path,
        user=options.user,
        group=options.group,
        progress=options.progress,
        stats=stats,
        cancel=options.cancel,
    )
    return source.read(managed if managed is not None else Managed())


def make_plan(
    config: Config, options: RunOptions, store: Store, stats: GraphStats | None = None
) -> tuple[Snapshot, Plan]:
    """Source -> plan: the snapshot, read with what the store manages, and the one plan made from it."""
    state = store.load_state()
    snapshot = load_snapshot(config, options, stats, Managed.of(state))
    return snapshot, diff(snapshot, state, config.policy)


def _failures(snapshot: Snapshot) -> list[dict[str, str]]:
    return [{"code": f.code, "message": f.message, "path": f.path} for f in snapshot.failures]


def run_once(config: Config, options: RunOptions, store: Store | None = None) -> RunResult:
    """Reconcile once.  Raises :class:`SyncdError` for errors that abort before anything is written,
    and :class:`~syncd.cancel.Cancelled` when ``options.cancel`` stopped it (nothing written either)."""
    from .graph.client import GraphStats
    from .store import Store

    check(options.cancel)
    started = time.monotonic()
    own_store = store is None
    if store is None:
        store = Store(config.store.url)
    stats = GraphStats()
    try:
        if options.dry_run:
            store.ensure_schema()
            result = _dry_run(config, options, store, stats)
        else:
            with store.lock(wait_seconds=options.wait_seconds, holder=f"syncd {options.trigger}"):
                store.ensure_schema()  # under the lock: two first runs never race to create tables
                result = _sync(config, options, store, stats)
    finally:
        if own_store:
            store.close()
    result.duration = time.monotonic() - started
    result.graph_requests = stats.requests
    result.graph_throttled = stats.throttled
    if result.run_id is not None and options.trigger != "daemon":  # the daemon logs its cycles itself
        try:
            log.info(
                "run %d %s in %.1fs: applied %d changes, %d errors",
                result.run_id,
                result.status,
                result.duration,
                result.applied,
                len(result.plan.errors) + len(result.failed) + len(result.failures),
                extra={
                    "run_id": result.run_id,
                    "status": result.status,
                    "counts": result.applied_counts,
                    "duration": round(result.duration, 3),
                },
            )
        except KeyboardInterrupt:
            _interrupted_after_commit(result)
    return result


def _verdict(plan: Plan, refusals: list[safety.Refusal]) -> tuple[RunStatus, ExitCode]:
    if refusals:
        status = RunStatus.REFUSED
    elif not plan.complete:
        status = RunStatus.INCOMPLETE
    elif plan.errors:
        status = RunStatus.PARTIAL
    else:
        status = RunStatus.SUCCESS
    return status, status.exit_code


def _applied_verdict(plan: Plan, applied: ApplyResult) -> tuple[RunStatus, ExitCode]:
    status, code = _verdict(plan, [])
    if applied.failed and status == RunStatus.SUCCESS:
        return RunStatus.PARTIAL, RunStatus.PARTIAL.exit_code
    return status, code


def _dry_run(config: Config, options: RunOptions, store: Store, stats: GraphStats) -> RunResult:
    snapshot, plan = make_plan(config, options, store, stats)
    refusals = safety.check(plan, config.safety, allow_deletes=options.allow_deletes)
    _, code = _verdict(plan, refusals)
    return RunResult(
        RunStatus.DRY_RUN, code, plan, failures=_failures(snapshot), refusals=refusals, message=summary_line(plan)
    )


def _sync(config: Config, options: RunOptions, store: Store, stats: GraphStats) -> RunResult:
    """Source -> plan -> safety -> apply, the run's outcome recorded once whichever way it ends."""
    from .apply import RunOutcome, apply_plan

    if store.is_paused():
        message = "provisioning is paused (`syncd resume` turns it back on); nothing was changed"
        run_id = store.begin_run(options.trigger)
        store.finish_run(run_id, RunStatus.PAUSED, changes=0, errors=0, summary={}, message=message)
        log.info("sync skipped: %s", message)
        return RunResult(RunStatus.PAUSED, RunStatus.PAUSED.exit_code, run_id=run_id, message=message)

    watch = options.watch if options.watch is not None else RunWatch()
    run_id = store.begin_run(options.trigger)
    watch.run_id, watch.stage = run_id, "reading"
    plan: Plan | None = None
    try:
        snapshot, plan = make_plan(config, options, store, stats)
        failures = _failures(snapshot)
        for failure in snapshot.failures:
            log.error("graph read failed [%s] %s: %s", failure.code, failure.path, failure.message)
        refusals = safety.check(plan, config.safety, allow_deletes=options.allow_deletes)
        if refusals:
            message = " ".join(refusal.message for refusal in refusals)
            store.finish_run(run_id, RunStatus.REFUSED, changes=0, errors=0, summary=plan.summary(), message=message)
            for refusal in refusals:
                log.error("refused [%s]: %s", refusal.code, refusal.message)
            return RunResult(
                RunStatus.REFUSED,
                RunStatus.REFUSED.exit_code,
                plan,
                run_id,
                message,
                failures=failures,
                refusals=refusals,
            )
        if store.is_paused():
            message = "provisioning was paused while this run read Graph; nothing was changed"
            store.finish_run(run_id, RunStatus.PAUSED, changes=0, errors=0, summary=plan.summary(), message=message)
            log.info("sync skipped: %s", message)
            return RunResult(RunStatus.PAUSED, RunStatus.PAUSED.exit_code, plan, run_id, message, failures=failures)

        check(options.cancel)
        watch.stage = "applying"
        if options.progress is not None and plan.changes:
            options.progress("apply changes", 0, len(plan.changes))
        applying = plan

        def finish(applied: ApplyResult) -> RunOutcome:
            status, _ = _applied_verdict(applying, applied)
            errors = len(applying.errors) + len(applied.failed) + len(snapshot.failures)
            watch.stage = "committing"
            return RunOutcome(status, errors, summary_line(applying))

        applied = apply_plan(store, plan, run_id, finish=finish, cancel=options.cancel)
        watch.stage = "committed"
    except BaseException as error:
        _record_failure(store, run_id, error, plan)
        raise

    status, code = _applied_verdict(plan, applied)
    failed = [
        {"op": e.change.op, "target": e.change.target, "code": e.code, "message": e.message} for e in applied.failed
    ]
    result = RunResult(status, code, plan, run_id, summary_line(plan), applied.applied, failed, failures)
    result.applied_counts = dict(applied.counts)
    _log_applied(result, applied, options)
    return result


def _record_failure(store: Store, run_id: int, error: BaseException, plan: Plan | None) -> None:
    """Record run ``run_id`` as failed with nothing applied, unless it had committed its outcome.

    What the log and the run record say is then what the store holds; a :class:`Cancelled` carries
    it (``outcome``) to whoever asked for the stop.
    """
    if isinstance(error, SyncdError):
        message = f"{error.code}: {error}"
    elif isinstance(error, Cancelled):
        message = "interrupted by shutdown; nothing of this run was applied"
    elif isinstance(error, KeyboardInterrupt):
        message = "interrupted; nothing of this run was applied"
    else:
        message = f"failed unexpectedly ({type(error).__name__}); nothing of this run was applied"
    try:
        recorded = store.fail_run(run_id, message, summary=plan.summary() if plan is not None else {})
    except Exception as failure:  # the database that failed the run may refuse this as well
        log.warning("run %d could not be recorded as failed (%s); the next run records it so", run_id, failure)
        outcome = f"nothing of it was applied; the next run records run {run_id} as failed"
    else:
        if recorded:
            outcome = f"nothing of it was applied; run {run_id} is recorded as failed"
        else:
            outcome = f"run {run_id} had already recorded how it ended, with its changes; that record stands"
            log.warning("%s (`syncd history`): it was interrupted only after its commit", outcome)
    if isinstance(error, Cancelled):
        error.outcome = outcome


def _log_applied(result: RunResult, applied: ApplyResult, options: RunOptions) -> None:
    """One line per change written, then the failures, errors and warnings; after the commit.

    A stop request or an interrupt cuts this short, with one line that says so: the changes are
    committed whatever happens here.
    """
    plan, cancel = result.plan, options.cancel
    failed_ids = {id(entry.change) for entry in applied.failed}
    logged = 0
    try:
        if options.progress is not None and plan.changes:
            options.progress("apply changes", len(plan.changes), len(plan.changes))
        for change in plan.changes:
            if id(change) in failed_ids:
                continue
            if cancel is not None and cancel.is_set():
                _logging_cut_short(result, logged)
                return
            fields = {name: [old, new] for name, old, new in change.fields}
            extra = {"op": change.op, "entra_id": change.entra_id, "target": change.target, "fields": fields}
            log.info("%s", describe(change), extra=extra)
            logged += 1
        for entry in applied.failed:
            log.error("failed [%s] %s: %s", entry.code, describe(entry.change), entry.message)
        for problem in plan.errors:
            log.error("%s", describe_problem(problem, warning=False))
        for problem in plan.warnings:
            log.warning("%s", describe_problem(problem, warning=True))
    except KeyboardInterrupt:
        _logging_cut_short(result, logged)


def _logging_cut_short(result: RunResult, logged: int) -> None:
    log.warning(
        "stopped logging the changes of run %s after %d of %d: all %d were applied and committed "
        "(`syncd log --run %s` lists them)",
        result.run_id,
        min(logged, result.applied),
        result.applied,
        result.applied,
        result.run_id,
    )


def _interrupted_after_commit(result: RunResult) -> None:
    log.warning(
        "interrupted after run %s was committed: it %s with %d changes applied",
        result.run_id,
        "was refused" if result.status == "refused" else f"ended {result.status}",
        result.applied,
    )
