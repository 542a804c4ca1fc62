"""One reconciliation: source -> plan -> safety -> render or apply.

:func:`run_once` is the single code path behind ``syncd plan``, ``syncd sync``, cron, the systemd
timer and every cycle of the daemon, so all of them behave alike.  A run reads its source once
(told what the store manages, so the snapshot already carries the evidence), plans once, checks
the plan against the safety limits, and renders or applies it.  Its record is begun and ended by
:func:`syncd.journal.recorded`, once, whichever way it ends; its summary line is written by
:func:`syncd.outcome.report`, as the daemon writes its cycles'.  The change lines are logged after
the commit; a stop or an interrupt then cuts the logging short and says so, and cannot change
what the store holds.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from . import alerts, safety
from .after import state_after
from .cancel import check
from .changes import Plan
from .config import Config
from .errors import SyncdError
from .journal import RunJournal, RunWatch, recorded
from .mirror import Mirror, MirrorFeed, snapshot_of
from .model import Managed, ManagedUser, Policy, Snapshot, StoreState, StoreTeam, StoreUser
from .outcome import RunResult, report
from .plan import diff
from .plan.focus import Base, Focused, StateRows, focused
from .render import describe, describe_problem, summary_line
from .runs import RunStatus
from .settled import SETTLED_KEY, Settled, fingerprint, roles_text
from .source import Source, source_for

if TYPE_CHECKING:
    from .apply import ApplyResult
    from .graph.client import GraphStats
    from .graph.incremental import PreRead, Wanted
    from .saved_plan import SavedPlan
    from .store import Generations, Store

log = logging.getLogger("syncd")

__all__ = [
    "Planned",
    "RunMemory",
    "RunOptions",
    "RunResult",
    "RunWatch",
    "apply_saved",
    "load_snapshot",
    "make_plan",
    "run_once",
]


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
    full: bool = False
    """Read the application in full, not as changes since the last run (``--full``)."""
    allow: frozenset[str] = frozenset()
    """Safety categories whose limits this run lifts (``--allow CATEGORY``)."""
    allow_last_admin: bool = False
    """Apply even the change that leaves the store without an active admin (``--allow-last-admin``)."""
    fingerprint: bool = False
    """A dry run: also fingerprint the state it planned against, for a saved plan (``plan --out``)."""
    memory: RunMemory | None = None
    """What the process keeps between its runs (the daemon's cycles): see :class:`RunMemory`."""


@dataclass(slots=True)
class RunMemory:
    """What a process that runs again and again (the daemon) keeps between runs, to skip work whose
    inputs did not change.  Nothing here changes a result: a copy is used only while the store's
    generation says it is still the store's (:class:`~syncd.store.protocol.Generations`), and a plan
    is reused only for the very snapshot, state and policy it was made from (planning is a pure
    function of them)."""

    state: StoreState | None = None
    managed: Managed | None = None
    state_generation: str | None = None
    mirror: Mirror | None = None
    mirror_generation: str | None = None
    last: tuple[Snapshot, StoreState, Policy, Plan] | None = None
    base: tuple[Base, StoreState, Policy] | None = None
    """A snapshot whose plan against ``state`` changed nothing: the next plan is made from what
    changed since it (:func:`~syncd.plan.focus.focused_diff`)."""
    rows: StateRows | None = None

    def state_for(self, store: Store, generations: Generations) -> tuple[StoreState, Managed]:
        if self.state is None or self.managed is None or self.state_generation != generations.state:
            self.state = store.load_state()
            self.managed = Managed.of(self.state)
            self.state_generation = generations.state
        return self.state, self.managed

    def mirror_for(self, store: Store, generations: Generations) -> Mirror | None:
        if self.mirror is None or self.mirror_generation != generations.mirror:
            self.mirror = store.load_mirror()
            self.mirror_generation = generations.mirror
        return self.mirror

    def plan_for(self, snapshot: Snapshot, state: StoreState, policy: Policy) -> Plan | None:
        if self.last is None:
            return None
        last_snapshot, last_state, last_policy, plan = self.last
        if last_state is state and last_policy == policy and last_snapshot == snapshot:
            return plan
        return None

    def rows_for(self, state: StoreState) -> StateRows:
        """The kept state as a focused plan reads it, indexed once per state."""
        if self.rows is None or self.rows.state is not state:
            self.rows = StateRows(state)
        return self.rows

    def base_for(self, state: StoreState, policy: Policy) -> Base | None:
        if self.base is None:
            return None
        base, base_state, base_policy = self.base
        return base if base_state is state and base_policy == policy else None

    def applied(self, planned: Planned, applied: ApplyResult) -> None:
        """After a run's commit: what the store now holds, as far as this process knows it.

        When the whole plan was applied and nobody else had written since the state was read, the
        new state is the plan replayed on it (:func:`~syncd.after.state_after`); otherwise it is
        read again next time.
        """
        generations, before = applied.generations, applied.generations_before
        if generations is None or before is None:
            self.state = self.mirror = None
            return
        if generations.state != self.state_generation:
            current = self.state
            if (
                current is not None
                and not applied.failed
                and before.state == self.state_generation
                and self.last is not None
                and self.last[1] is current
            ):
                self.state = state_after(current, planned.plan, applied.user_ids, applied.team_ids)
                self.managed = Managed.of(self.state)
                self.state_generation = generations.state
                rebased = _rebased(planned, applied)
                policy = planned.policy
                self.base = None if rebased is None or policy is None else (rebased, self.state, policy)
            else:
                self.state = self.managed = None
        if planned.mirror is not None and before.mirror == self.mirror_generation:
            self.mirror, self.mirror_generation = planned.mirror, generations.mirror
        elif generations.mirror != self.mirror_generation:
            self.mirror = None


@dataclass(frozen=True, slots=True)
class Planned:
    """A run's read and its plan: the snapshot, the one plan made from it, and what the read
    changes in the store's mirror of Graph (written only if the plan is applied)."""

    snapshot: Snapshot
    plan: Plan
    feed: MirrorFeed | None = None
    mirror: Mirror | None = None
    """The mirror as the feed leaves it."""
    bases: safety.Bases = field(default_factory=safety.Bases)
    """How many managed objects the store held: what the safety limits' proportions are of."""
    state: StoreState | None = None
    """The state the plan was made against."""
    asked: frozenset[str] = frozenset()
    """The managed users whose absence the read asked Graph about."""
    settled: Settled | None = None
    """The record whose plan this is, when nothing of the application changed since it (the
    snapshot then holds only the app roles: nothing else was read)."""
    focused: Focused | None = None
    """How the plan was made from what changed since a settled snapshot, if it was."""
    policy: Policy | None = None


def _rebased(planned: Planned, applied: ApplyResult) -> Base | None:
    """The base a plan leaves once applied in full: its snapshot, and the plan of that snapshot
    against the store as it now is.  A focused plan plans its focus again
    (:meth:`~syncd.plan.focus.Focused.settled`).  A full one is not planned again (that would cost
    as much as it did), so it leaves a base only when it reported no error: planning again after
    applying such a plan changes nothing and reports nothing (warnings come with the changes that
    act on them), which a property test holds for the planner.  An error can change once its plan
    is applied (the last admin gone, an email conflict whose holder was adopted, a frozen row
    another user took over), so a plan with one is planned again by the next run."""
    plan = planned.plan
    if applied.failed or not plan.changes or plan.held or not plan.complete:
        return None
    if planned.focused is None:
        return None if plan.errors else Base(planned.snapshot, Plan(), planned.asked)
    again = planned.focused.settled(applied.user_ids, applied.team_ids)
    return None if again is None else Base(planned.snapshot, again, planned.asked)


def _source(
    config: Config,
    options: RunOptions,
    stats: GraphStats | None,
    mirror: Mirror | None,
    preread: PreRead | None = None,
    wanted: Wanted | None = None,
) -> Source:
    return source_for(
        config,
        snapshot_path=options.snapshot_path,
        user=options.user,
        group=options.group,
        progress=options.progress,
        stats=stats,
        cancel=options.cancel,
        mirror=mirror,
        full=options.full,
        preread=preread,
        wanted=wanted,
    )


def load_snapshot(
    config: Config, options: RunOptions, stats: GraphStats | None = None, managed: Managed | None = None
) -> Snapshot:
    """The desired state of a run, from the source its options name (:func:`syncd.source.source_for`)."""
    return _source(config, options, stats, None).read(managed if managed is not None else Managed())


@dataclass(frozen=True, slots=True)
class Settling:
    """What a run that found the store settled learned before it planned (:func:`settled_plan`)."""

    record: Settled
    outline: Mirror
    """The stored mirror without its users' properties."""
    preread: PreRead | None
    """The delta round read to find out whether anything changed (None: it could not be read)."""


def make_plan(
    config: Config,
    options: RunOptions,
    store: Store,
    stats: GraphStats | None = None,
    settling: Settling | None = None,
) -> Planned:
    """Source -> plan: the snapshot, read with what the store manages (and its mirror of Graph,
    when the run reads the whole application), and the one plan made from it.  With ``settling``
    (the store is settled, but the application changed), the plan is made from what changed since
    the settled snapshot, reading only the users it concerns (:func:`_plan_from_outline`)."""
    from .graph.incremental import tracks

    memory = options.memory
    whole_application = not (options.snapshot_path or options.user or options.group or options.full)
    continues = whole_application and tracks(config.sync)
    if memory is not None:
        generations = store.generations()
        state, managed = memory.state_for(store, generations)
        mirror = memory.mirror_for(store, generations) if continues else None
    else:
        if continues and settling is not None:
            planned = _plan_from_outline(config, options, store, stats, settling)
            if planned is not None:
                return planned
        state = store.load_state()
        managed = Managed.of(state)
        mirror = store.load_mirror() if continues else None
    preread = settling.preread if settling is not None else None
    source = _source(config, options, stats, mirror, preread)
    snapshot = source.read(managed)
    policy = _policy(config, options)
    asked: frozenset[str] = getattr(source, "asked", frozenset())
    plan = memory.plan_for(snapshot, state, policy) if memory is not None else None
    made = None
    if plan is None:
        settled = settling.record if settling is not None else None
        base = memory.base_for(state, policy) if memory is not None else _settled_base(settled, mirror)
        if base is not None:
            rows = memory.rows_for(state) if memory is not None else StateRows(state)
            made = focused(base, snapshot, rows, policy)
        _say_how_planned(made)
        plan = made.plan if made is not None else diff(snapshot, state, policy)
        if memory is not None:
            memory.last = (snapshot, state, policy, plan)
    if memory is not None and not plan.changes and plan.complete and not plan.held:
        memory.base = (Base(snapshot, plan, asked), state, policy)
    return Planned(
        snapshot,
        plan,
        source.feed,
        getattr(source, "mirror_after", None),
        safety.Bases.of(state),
        state,
        asked=asked,
        focused=made,
        policy=policy,
    )


def _plan_from_outline(
    config: Config, options: RunOptions, store: Store, stats: GraphStats | None, settling: Settling
) -> Planned | None:
    """The plan of a settled store whose application changed, read over the mirror's outline: only
    the users the round concerns (and those the settled plan reported problems about) are read from
    the stored mirror and the store, and the plan is made from them
    (:func:`~syncd.plan.focus.focused`).  None when it cannot be made so: the run then reads and
    plans as any other."""
    from .graph.incremental import Wanted

    record, policy = settling.record, _policy(config, options)
    problems = (*record.plan.errors, *record.plan.warnings)
    rows = StoreRows(store)
    wanted = Wanted(
        load=store.mirror_users,
        related=rows.related,
        managed=rows.managed,
        users=record.watched | {problem.entra_id for problem in problems if problem.kind == "user"},
        groups=frozenset(problem.entra_id for problem in problems if problem.kind == "group"),
        email_attribute=config.sync.email_attribute,
    )
    whole = _WholeStore(store)
    source = _source(config, options, stats, settling.outline, settling.preread, wanted)
    snapshot = source.read(Managed(users=whole))
    asked: frozenset[str] = getattr(source, "asked", frozenset())
    before: Mirror | None = getattr(source, "mirror_before", None)
    feed, after = source.feed, getattr(source, "mirror_after", None)
    if getattr(source, "loaded", None) is None or before is None:
        # Graph asked for a full read (an expired link): the snapshot is whole, planned in full
        state = whole.state
        plan = diff(snapshot, state, policy)
        return Planned(snapshot, plan, feed, after, safety.Bases.of(state), state, asked=asked, policy=policy)
    base = _settled_base(record, before)
    made = focused(base, snapshot, rows, policy, unchanged=store.mirror_users) if base is not None else None
    if made is None:
        log.info("what changed cannot be planned on its own; reading the store and planning in full")
        return None
    _say_how_planned(made)
    bases = _store_bases(store, rows.teams)
    return Planned(snapshot, made.plan, feed, after, bases, made.state, asked=asked, focused=made, policy=policy)


class StoreRows:
    """The store as a focused plan reads it (:class:`~syncd.plan.focus.Rows`): the rows it asks
    for, read when asked; every team once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._teams: tuple[StoreTeam, ...] | None = None

    @property
    def teams(self) -> tuple[StoreTeam, ...]:
        if self._teams is None:
            self._teams = self.store.load_state(users=False).teams
        return self._teams

    def users(
        self, *, entra_ids: Collection[str] = (), emails: Collection[str] = (), ids: Collection[int] = ()
    ) -> list[StoreUser]:
        if not (entra_ids or emails or ids):
            return []
        return self.store.load_users(entra_ids=entra_ids, emails=emails, ids=ids)

    def admins(self, limit: int) -> list[StoreUser]:
        return self.store.active_admins(limit)

    def related(self, user_ids: Collection[str], emails: Collection[str]) -> set[str]:
        """The users whose rows hold ``emails`` or the emails of the rows of ``user_ids``."""
        wanted = set(emails) | {row.email for row in self.users(entra_ids=user_ids)}
        return {row.entra_id for row in self.users(emails=wanted) if row.entra_id}

    def managed(self, user_ids: Collection[str]) -> dict[str, ManagedUser]:
        """The managed users among ``user_ids``, as a source needs to know them."""
        return {
            row.entra_id: ManagedUser(row.email, row.active, row.inactive_reason)
            for row in self.users(entra_ids=user_ids)
            if row.entra_id
        }


class _WholeStore(Mapping[str, ManagedUser]):
    """Every managed user, read from the store the first time it is looked at: what a read that
    turned out whole (Graph no longer honours a link) asks about, and plans against."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._state: StoreState | None = None
        self._managed: Managed | None = None

    @property
    def state(self) -> StoreState:
        if self._state is None:
            self._state = self.store.load_state()
        return self._state

    def _users(self) -> Mapping[str, ManagedUser]:
        if self._managed is None:
            self._managed = Managed.of(self.state)
        return self._managed.users

    def __getitem__(self, key: str) -> ManagedUser:
        return self._users()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._users())

    def __len__(self) -> int:
        return len(self._users())


def _say_how_planned(made: Focused | None) -> None:
    if made is not None:
        log.info(
            "the store was settled: planned only what changed (%d users, %d rows)",
            len(made.snapshot.users),
            len(made.state.users),
        )


def _settled_base(settled: Settled | None, mirror: Mirror | None) -> Base | None:
    """The snapshot the settled record's plan was made from: the stored mirror's, its users looked
    up besides (``watched``) always planned again."""
    if settled is None or mirror is None or roles_text(mirror.app_roles) != settled.app_roles:
        return None
    return Base(snapshot_of(mirror, mirror.app_roles), settled.plan, settled.watched)


def _policy(config: Config, options: RunOptions) -> Policy:
    return replace(config.policy, allow_last_admin=True) if options.allow_last_admin else config.policy


def settled_plan(
    config: Config, options: RunOptions, store: Store, stats: GraphStats | None = None
) -> tuple[Planned | None, Settling | None]:
    """The last settled plan, when the store and the application are as it found them
    (:mod:`syncd.settled`); else no plan (the run must read and plan for itself) and, when the store
    is settled, what the run may plan from (the record, the mirror's outline, the round read)."""
    from .graph.incremental import quiet_round

    found = settled_record(config, options, store)
    if found is None:
        return None, None
    record, outline = found
    quiet = quiet_round(config.graph, outline, record.watched, stats=stats, cancel=options.cancel)
    read = quiet.read
    if read is None:
        return None, Settling(record, outline, None)
    app_roles = read.service_principal.app_roles
    if quiet.touched or roles_text(app_roles) != record.app_roles:
        return None, Settling(record, outline, read)
    cursor = read.after
    log.info("nothing of the application changed since the last complete run: its plan stands (no changes)")
    feed = MirrorFeed(cursor, hidden=outline.hidden, app_roles=app_roles, incremental=True)
    snapshot = Snapshot(scope="assigned", app_roles=app_roles)  # tracks(): the assigned scope
    # the safety limits count the changes a settled plan holds back (the last admin's) against the store
    bases = _store_bases(store, store.load_state(users=False).teams) if record.plan.held else safety.Bases()
    return Planned(snapshot, record.plan, feed, bases=bases, asked=record.watched, settled=record), None


def settled_record(config: Config, options: RunOptions, store: Store) -> tuple[Settled, Mirror] | None:
    """The store's settled record and the mirror's outline, when a run with ``options`` may plan from
    them: a read of the whole application by deltas, the record made for this store (its
    generations) and this configuration (its fingerprint), and no full read due."""
    from .graph.incremental import tracks
    from .graph.source import ApplicationSource

    if options.snapshot_path or options.user or options.group or options.full or not tracks(config.sync):
        return None
    record = Settled.from_json(store.get_state(SETTLED_KEY))
    if record is None or record.generations != store.generations():
        return None
    if record.fingerprint != fingerprint(config, _policy(config, options)):
        return None
    outline = store.load_mirror(users=False)
    if outline is None or ApplicationSource(config, mirror=outline).full_read_reason() is not None:
        return None
    return record, outline


def _store_bases(store: Store, teams: Collection[StoreTeam]) -> safety.Bases:
    """What the safety limits' proportions are of, counted without loading every user."""
    return safety.Bases(
        users=store.managed_seats(),
        teams=sum(1 for team in teams if team.entra_id),
        memberships=sum(len(team.member_ids) for team in teams if team.entra_id),
    )


def _settled_record(planned: Planned, applied: ApplyResult, fingerprint_: str) -> str | None:
    """The record a run leaves when it read the whole application and its plan changed nothing, or
    when its plan was made from a settled snapshot and, applied in full, settles the store again
    (:func:`_rebased`); None (no record) otherwise."""
    plan = planned.plan
    if not plan.complete or planned.feed is None or applied.failed or applied.generations is None:
        return None
    if plan.changes:
        rebased = _rebased(planned, applied)
        if rebased is None:
            return None
        plan = rebased.plan
    kept = Plan(errors=plan.errors, warnings=plan.warnings, held=plan.held)
    settled = Settled(applied.generations, fingerprint_, roles_text(planned.snapshot.app_roles), planned.asked, kept)
    return settled.to_json()


def _refusals(config: Config, options: RunOptions, planned: Planned) -> list[safety.Refusal]:
    return safety.check(
        planned.plan,
        config.safety,
        bases=planned.bases,
        policy=config.policy,
        allow=options.allow,
        allow_deletes=options.allow_deletes,
    )


def run_once(config: Config, options: RunOptions, store: Store | None = None) -> RunResult:
    """Reconcile once.  Raises :class:`SyncdError` for errors that abort before anything is written,
    and :class:`~syncd.cancel.Cancelled` when ``options.cancel`` stopped it (nothing written either)."""
    check(options.cancel)
    started = time.monotonic()
    with _cycle_collection_paused():
        result = _run(config, options, store)
    result.duration = time.monotonic() - started
    if result.run_id is not None and options.trigger != "daemon":  # the daemon reports its cycles itself
        try:
            report(log, result)
        except KeyboardInterrupt:
            _interrupted_after_commit(result)
    return result


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for the run, and resumed after it.

    A run holds a few objects per user (hundreds of thousands at 100,000 users) that form no
    cycles; each full collection walks all of them, which measured 15 to 20 percent of a large
    run.  Memory is still freed by reference counting as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run(config: Config, options: RunOptions, store: Store | None) -> RunResult:
    from .graph.client import GraphStats
    from .store import SqlStore

    own_store = store is None
    if store is None:
        store = SqlStore(config.store.url)
    stats = GraphStats()
    try:
        if options.dry_run:
            store.ensure_schema()
            result = _dry_run(config, options, store, stats)
        else:
            try:
                with store.lock(wait_seconds=options.wait_seconds, holder=f"syncd {options.trigger}"):
                    store.ensure_schema()  # under the lock: two first runs never race to create tables
                    result = _sync(config, options, store, stats)
            except SyncdError as error:
                status = "locked" if error.code == "LOCKED" else "failed"
                _notify(config, store, alerts.Outcome(status, message=f"{error.code}: {error}"))
                raise
            _notify(
                config,
                store,
                alerts.Outcome(str(result.status), result.run_id, result.applied, result.error_count, result.message),
            )
    finally:
        if own_store:
            store.close()
    result.graph_requests = stats.requests
    result.graph_throttled = stats.throttled
    return result


def apply_saved(config: Config, saved: SavedPlan, options: RunOptions) -> RunResult:
    """``syncd apply FILE``: carry out a reviewed plan exactly, as a run with trigger ``apply``.

    Under the lock, the store must still be the one the plan was made against (its fingerprint) and
    the plan no older than ``safety.plan_max_age_minutes``, else the run is refused (``PLAN_STALE``);
    the safety limits hold as for a sync.  Nothing is read from Graph, and the mirror is left as it
    is: the next sync reads Graph's changes against the store as the plan leaves it.
    """
    from .store import SqlStore

    check(options.cancel)
    started = time.monotonic()
    store = SqlStore(config.store.url)
    try:
        with store.lock(wait_seconds=options.wait_seconds, holder="syncd apply"):
            store.ensure_schema()
            result = _apply_saved(config, saved, options, store)
    finally:
        store.close()
    result.duration = time.monotonic() - started
    try:
        report(log, result)
    except KeyboardInterrupt:
        _interrupted_after_commit(result)
    return result


def _apply_saved(config: Config, saved: SavedPlan, options: RunOptions, store: Store) -> RunResult:
    from .saved_plan import fingerprint

    with recorded(store, options.trigger, options.watch) as journal:
        if store.is_paused():
            return _paused(journal, "provisioning is paused (`syncd resume` turns it back on); nothing was changed")
        plan = saved.plan
        journal.plan = plan
        state = store.load_state()
        stale = _staleness(config, saved, fingerprint(state))
        if stale is not None:
            return _refused(journal, plan, [safety.Refusal("PLAN_STALE", stale)], Snapshot())
        refusals = safety.check(
            plan,
            config.safety,
            bases=safety.Bases.of(state),
            policy=config.policy,
            allow=options.allow,
            allow_deletes=options.allow_deletes,
            command=f"syncd apply {saved.path}",
        )
        if refusals:
            return _refused(journal, plan, refusals, Snapshot())
        return _apply(journal, Planned(Snapshot(), plan, state=state), options)


def _staleness(config: Config, saved: SavedPlan, current: str) -> str | None:
    remake = f"make a new one with `syncd plan --out {saved.path}`, review it, and apply that"
    if current != saved.store_fingerprint:
        return (
            f"the store changed since the plan in {saved.path} was made ({saved.created_at:%Y-%m-%d %H:%M:%S} UTC); "
            f"nothing was applied: {remake}"
        )
    age = datetime.now(UTC) - saved.created_at
    limit = timedelta(minutes=config.safety.plan_max_age_minutes)
    if age > limit:
        return (
            f"the plan in {saved.path} was made {age.total_seconds() / 60:.0f} minutes ago, more than "
            f"safety.plan_max_age_minutes = {config.safety.plan_max_age_minutes:g}; nothing was applied: {remake}"
        )
    return None


def _notify(config: Config, store: Store, outcome: alerts.Outcome) -> None:
    """Tell people when provisioning's condition changed (:mod:`syncd.alerts`); never fails the run."""
    if not config.notify.urls:
        return
    try:
        alerts.after_run(config.notify, store, outcome, store.reports.last_success_at(), datetime.now(UTC))
    except Exception as error:
        log.warning("the notification state could not be updated (%s)", type(error).__name__)


def _verdict(plan: Plan, refusals: list[safety.Refusal], applied: ApplyResult | None = None) -> RunStatus:
    if refusals:
        return RunStatus.REFUSED
    if not plan.complete:
        return RunStatus.INCOMPLETE
    if plan.errors or (applied is not None and applied.failed):
        return RunStatus.PARTIAL
    return RunStatus.SUCCESS


def _dry_run(config: Config, options: RunOptions, store: Store, stats: GraphStats) -> RunResult:
    from .saved_plan import fingerprint

    # a saved plan needs the whole state's fingerprint; any other dry run may take the settled way
    settles = options.memory is None and not options.fingerprint
    planned, settling = settled_plan(config, options, store, stats) if settles else (None, None)
    planned = planned or make_plan(config, options, store, stats, settling)
    snapshot, plan = planned.snapshot, planned.plan
    refusals = _refusals(config, options, planned)
    code = _verdict(plan, refusals).exit_code
    return RunResult(
        RunStatus.DRY_RUN,
        code,
        plan,
        failures=list(snapshot.failures),
        refusals=refusals,
        message=summary_line(plan),
        store_fingerprint=fingerprint(planned.state) if options.fingerprint and planned.state is not None else None,
    )


def _sync(config: Config, options: RunOptions, store: Store, stats: GraphStats) -> RunResult:
    """Source -> plan -> safety -> apply, the run's end recorded once whichever way it ends."""
    if store.is_paused():
        with recorded(store, options.trigger, options.watch) as journal:
            return _paused(journal, "provisioning is paused (`syncd resume` turns it back on); nothing was changed")
    with recorded(store, options.trigger, options.watch, lambda: stats.requests) as journal:
        planned, settling = (None, None) if options.memory is not None else settled_plan(config, options, store, stats)
        planned = planned or make_plan(config, options, store, stats, settling)
        snapshot, plan = planned.snapshot, planned.plan
        journal.plan = plan
        for failure in snapshot.failures:
            log.error("graph read failed [%s] %s: %s", failure.code, failure.path, failure.message)
        refusals = _refusals(config, options, planned)
        if refusals:
            return _refused(journal, plan, refusals, snapshot)
        if store.is_paused():
            return _paused(journal, "provisioning was paused while this run read Graph; nothing was changed", plan)
        return _apply(journal, planned, options, fingerprint(config, _policy(config, options)))


def _paused(journal: RunJournal, message: str, plan: Plan | None = None) -> RunResult:
    journal.end(RunStatus.PAUSED, message, plan=plan)
    log.info("sync skipped: %s", message)
    status = RunStatus.PAUSED
    return RunResult(status, status.exit_code, plan or Plan(), journal.run_id, message)


def _refused(journal: RunJournal, plan: Plan, refusals: list[safety.Refusal], snapshot: Snapshot) -> RunResult:
    message = "; ".join(f"{refusal.code}: {refusal.message}" for refusal in refusals)
    journal.end(RunStatus.REFUSED, message, plan=plan)
    for refusal in refusals:
        log.error("refused [%s]: %s", refusal.code, refusal.message)
    status = RunStatus.REFUSED
    return RunResult(
        status, status.exit_code, plan, journal.run_id, message, failures=list(snapshot.failures), refusals=refusals
    )


def _apply(journal: RunJournal, planned: Planned, options: RunOptions, fingerprint_: str | None = None) -> RunResult:
    """Apply the plan; its outcome, what the read taught the mirror and (given the ``fingerprint_``
    of its configuration) the settled record it leaves are written in the apply's own transaction."""
    from .apply import RunOutcome, apply_plan

    plan, snapshot = planned.plan, planned.snapshot
    check(options.cancel)
    journal.watch.stage = "applying"
    if options.progress is not None and plan.changes:
        options.progress("apply changes", 0, len(plan.changes))

    def finish(applied: ApplyResult) -> RunOutcome:
        errors = len(plan.errors) + len(applied.failed) + len(snapshot.failures)
        return journal.outcome(_verdict(plan, [], applied), errors, _run_message(plan, snapshot))

    def values(applied: ApplyResult) -> dict[str, str | None]:
        return {SETTLED_KEY: _settled_record(planned, applied, fingerprint_)} if fingerprint_ is not None else {}

    applied = apply_plan(
        journal.store, plan, journal.run_id, finish=finish, cancel=options.cancel, feed=planned.feed, values=values
    )
    journal.committed()
    if options.memory is not None:
        options.memory.applied(planned, applied)
    status = _verdict(plan, [], applied)
    result = RunResult(
        status,
        status.exit_code,
        plan,
        journal.run_id,
        summary_line(plan),
        applied.applied,
        list(applied.failed),
        list(snapshot.failures),
        applied_counts=dict(applied.counts),
    )
    _log_applied(result, applied, options)
    return result


def _run_message(plan: Plan, snapshot: Snapshot, shown: int = 3) -> str:
    """The run record's message: the plan's summary, and what Graph did not answer, with its codes."""
    failures = snapshot.failures
    if not failures:
        return summary_line(plan)
    named = "; ".join(f"{failure.code}: {failure.path or failure.message}" for failure in failures[:shown])
    more = f" and {len(failures) - shown} more" if len(failures) > shown else ""
    return f"{summary_line(plan)} Not read: {named}{more}."


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
        for change in plan.changes if log.isEnabledFor(logging.INFO) else ():
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
        "was refused" if result.status == RunStatus.REFUSED else f"ended {result.status.value}",
        result.applied,
    )
