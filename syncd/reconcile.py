"""One reconciliation: fetch -> plan -> safety checks -> render or apply.

:func:`run_once` is the single code path behind ``syncd plan``, ``syncd sync``, cron, the systemd
timer and every cycle of the daemon, so all of them behave alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from . import safety
from .changes import DeactivateUser, Plan
from .config import Config
from .errors import ConfigError, ExitCode, GraphError, SyncdError
from .model import Snapshot, StoreState
from .plan import diff
from .render import describe, describe_problem, summary_line

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


def load_snapshot(config: Config, options: RunOptions, stats: Any = None, store: Any = None) -> Snapshot:
    """The desired state: from a snapshot file, one principal on demand, or the whole application."""
    if options.snapshot_path:
        from .graph.snapshot_file import read_snapshot

        return read_snapshot(options.snapshot_path)
    if not config.graph.configured:
        raise ConfigError(
            "graph: no [graph] section with service_principal_id or app_id; configure Microsoft Graph "
            "(see config.example.toml) or pass --from-snapshot FILE"
        )
    from .graph import fetch

    if options.user or options.group:
        try:
            return fetch.fetch_principal(config.graph, config.sync, user=options.user, group=options.group)
        except SyncdError as error:
            # gone from Entra under that name: the id the store knows it by tells deleted from mistyped
            known = _known_entra_id(store, options) if error.code == "NOT_FOUND" else None
            if known is None:
                raise
            if options.user:
                return fetch.fetch_principal(config.graph, config.sync, user=known)
            return fetch.fetch_principal(config.graph, config.sync, group=known)
    return fetch.fetch_snapshot(config.graph, config.sync, progress=options.progress, stats=stats)


def _known_entra_id(store: Any, options: RunOptions) -> str | None:
    if store is None:
        return None
    state = store.load_state()
    if options.user:
        wanted = options.user.strip().lower()
        return next((u.entra_id for u in state.users if u.entra_id and u.email == wanted), None)
    return next((t.entra_id for t in state.teams if t.entra_id and t.name == options.group), None)


def departures_to_explain(snapshot: Snapshot, state: StoreState, plan: Plan) -> list[str]:
    """Provisioned users whose absence Graph should be asked about (one ``$batch`` per 20 users).

    In a complete snapshot: those about to be deactivated as unassigned, to tell disabled and
    deleted apart.  In an incomplete one: every active provisioned user it does not mention, since
    only Graph's positive answer (404, or accountEnabled false) may deactivate them then.  In both:
    the holder of an email a new account claims, since a deleted holder's row goes to the newcomer.
    """
    if snapshot.scope != "assigned" or snapshot.partial:
        return []
    seen = {user.id for user in snapshot.users} | snapshot.deleted_user_ids
    # the holder of an email someone new claims: if its account is deleted, the newcomer takes the row
    claimed = {problem.target for problem in plan.errors if problem.code == "USER_EMAIL_CONFLICT"}
    holders = [u.entra_id for u in state.users if u.entra_id and u.email in claimed and u.entra_id not in seen]
    if snapshot.complete:
        leaving = [c.entra_id for c in plan.changes if isinstance(c, DeactivateUser) and c.reason == "unassigned"]
    else:
        leaving = [u.entra_id for u in state.users if u.entra_id and u.active and u.entra_id not in seen]
    return sorted(set(leaving) | set(holders))


def explain_departures(config: Config, snapshot: Snapshot, user_ids: list[str]) -> Snapshot:
    """Add what Graph says about ``user_ids`` (disabled, or 404: deleted) to the snapshot."""
    from .graph import fetch

    try:
        users, deleted = fetch.lookup_users(config.graph, user_ids)
    except GraphError as error:
        if error.code == "GRAPH_AUTH":
            raise
        log.warning(
            "could not learn why %d users left scope [%s]: %s; recording them as unassigned",
            len(user_ids),
            error.code,
            error,
        )
        return snapshot
    known = {user.id for user in snapshot.users}
    return replace(
        snapshot,
        users=snapshot.users + tuple(user for user in users if user.id not in known),
        deleted_user_ids=snapshot.deleted_user_ids | deleted,
    )


def make_plan(config: Config, options: RunOptions, store: Any, stats: Any = None) -> tuple[Snapshot, Plan]:
    snapshot = load_snapshot(config, options, stats, store)
    state = store.load_state()
    plan = diff(snapshot, state, config.policy)
    if not options.snapshot_path:
        unexplained = departures_to_explain(snapshot, state, plan)
        if unexplained:
            snapshot = explain_departures(config, snapshot, unexplained)
            plan = diff(snapshot, state, config.policy)
    return snapshot, plan


def _failures(snapshot: Snapshot) -> list[dict[str, str]]:
    return [{"code": f.code, "message": f.message, "path": f.path} for f in snapshot.failures]


def run_once(config: Config, options: RunOptions, store: Any = None) -> RunResult:
    """Reconcile once.  Raises :class:`SyncdError` for errors that abort before anything is written."""
    from .graph.client import GraphStats
    from .store import Store

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
    return result


def _verdict(plan: Plan, refusals: list[safety.Refusal]) -> tuple[str, ExitCode]:
    if refusals:
        return "refused", ExitCode.REFUSED
    if not plan.complete:
        return "incomplete", ExitCode.PARTIAL
    if plan.errors:
        return "partial", ExitCode.PARTIAL
    return "success", ExitCode.OK


def _dry_run(config: Config, options: RunOptions, store: Any, stats: Any) -> RunResult:
    snapshot, plan = make_plan(config, options, store, stats)
    refusals = safety.check(plan, _limits(config), allow_deletes=options.allow_deletes)
    _, code = _verdict(plan, refusals)
    return RunResult("dry_run", code, plan, failures=_failures(snapshot), refusals=refusals, message=summary_line(plan))


def _limits(config: Config) -> safety.Limits:
    return safety.Limits(config.safety.max_deactivations, config.safety.max_team_deletions)


def _sync(config: Config, options: RunOptions, store: Any, stats: Any) -> RunResult:
    from .apply import apply_plan

    if store.is_paused():
        message = "provisioning is paused (`syncd resume` turns it back on); nothing was changed"
        run_id = store.begin_run(options.trigger)
        store.finish_run(run_id, "paused", changes=0, errors=0, summary={}, message=message)
        log.info("sync skipped: %s", message)
        return RunResult("paused", ExitCode.OK, run_id=run_id, message=message)

    run_id = store.begin_run(options.trigger)
    try:
        snapshot, plan = make_plan(config, options, store, stats)
    except SyncdError as error:
        store.finish_run(run_id, "failed", changes=0, errors=1, summary={}, message=f"{error.code}: {error}")
        raise
    except BaseException:
        store.finish_run(run_id, "failed", changes=0, errors=1, summary={}, message="interrupted; nothing was applied")
        raise
    failures = _failures(snapshot)
    for failure in snapshot.failures:
        log.error("graph read failed [%s] %s: %s", failure.code, failure.path, failure.message)
    refusals = safety.check(plan, _limits(config), allow_deletes=options.allow_deletes)
    if refusals:
        message = " ".join(refusal.message for refusal in refusals)
        store.finish_run(run_id, "refused", changes=0, errors=0, summary=plan.summary(), message=message)
        for refusal in refusals:
            log.error("refused [%s]: %s", refusal.code, refusal.message)
        return RunResult("refused", ExitCode.REFUSED, plan, run_id, message, failures=failures, refusals=refusals)

    if store.is_paused():
        message = "provisioning was paused while this run read Graph; nothing was changed"
        store.finish_run(run_id, "paused", changes=0, errors=0, summary=plan.summary(), message=message)
        log.info("sync skipped: %s", message)
        return RunResult("paused", ExitCode.OK, plan, run_id, message, failures=failures)
    if options.progress is not None and plan.changes:
        options.progress("apply changes", 0, len(plan.changes))
    try:
        applied = apply_plan(store, plan, run_id)
    except SyncdError as error:
        store.finish_run(
            run_id, "failed", changes=0, errors=1, summary=plan.summary(), message=f"{error.code}: {error}"
        )
        raise
    except BaseException:
        store.finish_run(
            run_id,
            "failed",
            changes=0,
            errors=1,
            summary=plan.summary(),
            message="interrupted; nothing of this run was applied",
        )
        raise
    if options.progress is not None and plan.changes:
        options.progress("apply changes", len(plan.changes), len(plan.changes))
    failed_ids = {id(entry.change) for entry in applied.failed}
    for change in plan.changes:
        if id(change) not in failed_ids:
            fields = {name: [old, new] for name, old, new in change.fields}
            extra = {"op": change.op, "entra_id": change.entra_id, "target": change.target, "fields": fields}
            log.info("%s", describe(change), extra=extra)
    for entry in applied.failed:
        log.error("failed [%s] %s: %s", entry.code, describe(entry.change), entry.message)
    for problem in plan.errors:
        log.error("%s", describe_problem(problem, warning=False))
    for problem in plan.warnings:
        log.warning("%s", describe_problem(problem, warning=True))

    status, code = _verdict(plan, [])
    if applied.failed and status == "success":
        status, code = "partial", ExitCode.PARTIAL
    errors = len(plan.errors) + len(applied.failed) + len(snapshot.failures)
    message = summary_line(plan)
    store.finish_run(run_id, status, changes=applied.applied, errors=errors, summary=plan.summary(), message=message)
    failed = [
        {"op": e.change.op, "target": e.change.target, "code": e.code, "message": e.message} for e in applied.failed
    ]
    result = RunResult(status, code, plan, run_id, message, applied.applied, failed, failures)
    result.applied_counts = dict(applied.counts)
    return result
