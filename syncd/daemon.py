"""``syncd run``: reconcile on a schedule until told to stop.

Each cycle is exactly what ``syncd sync`` does, ``reconcile.run_once(config,
RunOptions(trigger="daemon", cancel=..., watch=...))``, run by an APScheduler interval job: the
first cycle at start, then every ``[daemon] interval_minutes`` (plus up to ``jitter_seconds``), never two at once, and a
cycle missed while another ran is not made up for.

* A cycle that fails (Graph or the database down, the lock held by another run) is logged with
  its error code and tried again at the next tick; the daemon itself keeps running.
* SIGTERM / SIGINT stop the scheduling and let the cycle in flight end.  Should it still run
  shortly before ``stop_timeout_seconds``, it is asked to stop: its cancel event is set, and the
  cycle stops at its next step (before a Graph request, between two groups of changes), rolls its
  transaction back and records its run as failed with nothing applied.  Nothing is ever injected
  into the cycle's thread (:mod:`syncd.cancel`).  A cycle that cannot get to its next step in
  time (one long database statement, one slow request) is abandoned at the timeout: the process
  exits, and the database rolls back what was not committed.  A run's outcome commits with its
  data, so the store and the run record agree whenever the process ends, and the last log line
  says which it was.  A second signal asks the cycle to stop at once, a third exits at once; a
  backstop thread ends the process shortly after the timeout even if the main thread is stuck.
  The exit status is 0 either way.
* SIGHUP re-reads the configuration; a configuration with problems is logged and the running one
  kept.  The schedule, logging and metrics address follow the new configuration at once, every
  other setting from the next cycle.
* ``syncd pause`` / ``resume`` take effect at the next tick (run_once records a paused run).
* Under systemd (``Type=notify``) it reports READY=1 once the configuration is loaded and the
  database reachable, STATUS= after every cycle, WATCHDOG=1 while the scheduler runs and
  STOPPING=1 at shutdown (:mod:`syncd.notify`).
* ``[daemon] metrics_address`` serves ``/metrics`` and ``/healthz`` (:mod:`syncd.metrics`) and a
  read-only status page at ``/`` (:mod:`syncd.status_page`), drawn from what the daemon reads from
  the store after each cycle and every ``REFRESH_SECONDS``.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .cancel import Cancelled
from .config import Config, LogConfig, load, resolve_path
from .errors import ConfigError, ExitCode, SyncdError
from .logs import setup_logging
from .metrics import Metrics, MetricsServer
from .notify import Notifier, watchdog_interval
from .outcome import report
from .reconcile import RunMemory, RunOptions, RunResult, RunWatch, run_once
from .redaction import redact
from .status_page import REFRESH_SECONDS, StatusView, gather, render

log = logging.getLogger("syncd.daemon")

CYCLE_JOB = "cycle"
WATCHDOG_JOB = "watchdog"
STATUS_JOB = "status"
INTERRUPT_GRACE_SECONDS = 5.0
"""How long before the stop timeout an unfinished cycle is asked to stop (at most half of it): the
time it has to reach its next step, roll back and record its run."""
STOP_MARGIN_SECONDS = 1.0
"""How long after the stop timeout the backstop ends the process if the shutdown itself is stuck."""
LAST_WORDS_SECONDS = 0.5
"""How long the last log line before giving up on a cycle may take: a blocked stderr must not hold the exit."""

Cycle = Callable[[Config, RunOptions], RunResult]
"""One cycle: ``run_once`` itself, or a stand-in in tests; it must honour ``options.cancel``."""


def run_cycle(config: Config, options: RunOptions) -> RunResult:
    """One daemon cycle: the same call ``syncd sync`` makes."""
    return run_once(config, options)


def _abandon_outcome(watch: RunWatch) -> str:
    """What becomes of a cycle's run when the process exits under it, by how far it got."""
    run = f"run {watch.run_id}" if watch.run_id is not None else "its run"
    if watch.stage == "committed":
        return f"{run} is committed and recorded; only the logging of its changes is cut short"
    if watch.stage == "committing":
        return (
            f"{run} was being committed: the database keeps all of it or none of it, "
            "and the run record says which (`syncd history`)"
        )
    if watch.run_id is None:
        return "nothing of it was applied"
    return (
        f"nothing of it was applied: the database rolls back its open transaction, "
        f"and the next run records {run} as failed"
    )


class StoreProbe(Protocol):
    """What the daemon asks of the store outside a cycle."""

    def check(self, config: Config) -> None:
        """Raise SyncdError unless the database is reachable and its schema usable."""

    def status(self, config: Config) -> StatusView:
        """What the status page shows (:func:`syncd.status_page.gather`); its ``counts`` are
        ``Reports.counts()``: active_users, inactive_users, teams."""
        ...

    def last_success(self, config: Config) -> float | None:
        """When the newest successful run of any process sharing the store ended (Unix time)."""
        ...


class DatabaseProbe:
    """:class:`StoreProbe` over :class:`syncd.store.SqlStore`, opening a connection per question."""

    @contextmanager
    def _store(self, config: Config) -> Iterator[Any]:
        from .store import SqlStore

        store = SqlStore(config.store.url)
        try:
            yield store
        finally:
            store.close()

    def check(self, config: Config) -> None:
        with self._store(config) as store:
            store.ensure_schema()

    def status(self, config: Config) -> StatusView:
        with self._store(config) as store:
            return gather(store)

    def last_success(self, config: Config) -> float | None:
        with self._store(config) as store:
            finished = store.reports.last_success_at()
        return None if finished is None else finished.timestamp()


def _clock_text(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%SZ") if moment else "-"


class Daemon:
    """The scheduler, its signals, the notify protocol and the metrics server around one cycle.

    ``cycle``, ``store``, ``notifier``, ``reload_config`` and ``hard_exit`` (how the process ends
    when a cycle will not stop) default to the real thing and are there to be replaced in tests.
    :meth:`run` must be called from the main thread for the signal handlers; :meth:`request_stop`
    and :meth:`request_reload` do the same from anywhere.
    """

    def __init__(
        self,
        config: Config,
        *,
        cycle: Cycle | None = None,
        store: StoreProbe | None = None,
        notifier: Notifier | None = None,
        reload_config: Callable[[], Config] | None = None,
        verbosity: int | None = None,
        environ: Mapping[str, str] | None = None,
        hard_exit: Callable[[int], object] = os._exit,
    ) -> None:
        self.config = config
        self.cycle = cycle or run_cycle
        self.store: StoreProbe = store or DatabaseProbe()
        self.notifier = notifier or Notifier.from_environment(environ)
        self.reload_config = reload_config or (lambda: load_for_daemon(self.config.path or None))
        self.verbosity = verbosity
        self.hard_exit = hard_exit
        self.watchdog_seconds = watchdog_interval(environ)
        self.metrics = Metrics(config.daemon.interval_minutes * 60, config.daemon.jitter_seconds)
        self.metrics_server: MetricsServer | None = None
        self.status_view: StatusView | None = None
        """What the status page shows; replaced whole, so the HTTP thread never sees half of it."""
        self.status_refresh_seconds: float = REFRESH_SECONDS
        """How often the store is read for the page between cycles (a pause, another process's run)."""
        self.scheduler: BackgroundScheduler | None = None
        self.cycles_finished = 0
        self.memory = RunMemory()
        """What the cycles keep between them (the store's state and mirror, the last plan), each
        used only while the store's generation says it still holds."""

        self._events: collections.deque[str] = collections.deque()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._idle = threading.Event()
        self._idle.set()
        self._state_lock = threading.Lock()
        self._current: RunOptions | None = None
        self._stopping = False
        self._stop_signals = 0
        self._abandoned = False

    # ------------------------------------------------------------------ requests (signal-safe)

    def request_stop(self) -> None:
        """Ask the main loop to shut down (what SIGTERM and SIGINT do)."""
        self._request("stop")

    def request_reload(self) -> None:
        """Ask the main loop to re-read the configuration (what SIGHUP does)."""
        self._request("reload")

    def _request(self, event: str) -> None:
        self._events.append(event)
        with suppress(BlockingIOError, OSError):
            os.write(self._wake_write, b"\0")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._request("reload")
            return
        self._stop_signals += 1
        self._request("stop")
        if self._stop_signals >= 3 and not self._idle.is_set():
            # Run by the main thread wherever it is, even waiting for a lock: a third signal always works.
            self._abandon("a third stop signal")

    @contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _wait_for_event(self, timeout: float) -> str | None:
        """The next requested event, waiting up to ``timeout`` seconds for one."""
        if not self._events:
            select.select([self._wake_read], [], [], max(timeout, 0))
        try:
            while os.read(self._wake_read, 512):
                pass
        except BlockingIOError:
            pass
        return self._events.popleft() if self._events else None

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        """Start, serve until asked to stop, shut down; the exit status."""
        with self._signal_handlers():
            code = self.start()
            if code != ExitCode.OK:
                self.close()
                return code
            self.serve()
            return self.shutdown()

    def start(self) -> int:
        """Check the database, open the metrics endpoint, start the scheduler, tell systemd READY=1."""
        config = self.config
        try:
            self.store.check(config)
            self.metrics.record_store_success(self.store.last_success(config))
        except SyncdError as error:
            return self._startup_failed(f"the database is not usable [{error.code}]: {error}", error.exit_code)
        except Exception as error:
            log.debug("database check failed", exc_info=True)
            return self._startup_failed(f"the database is not usable: {error}", ExitCode.FAILED)
        self._refresh_status(config)
        if config.daemon.metrics_address:
            server = MetricsServer(config.daemon.metrics_address, self.metrics, page=self.status_page)
            try:
                server.start()
            except OSError as error:
                return self._startup_failed(
                    f"cannot serve metrics on {config.daemon.metrics_address}: {error.strerror or error}",
                    ExitCode.FAILED,
                )
            self.metrics_server = server

        self.scheduler = BackgroundScheduler(
            executors={
                CYCLE_JOB: ThreadPoolExecutor(1),
                STATUS_JOB: ThreadPoolExecutor(1),
                "default": ThreadPoolExecutor(1),
            },
            timezone=UTC,
            logger=_quiet_overruns(logging.getLogger("apscheduler.scheduler")),
        )
        self.scheduler.add_job(
            self._run_cycle,
            self._trigger(config),
            id=CYCLE_JOB,
            name="sync cycle",
            executor=CYCLE_JOB,
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self.scheduler.add_job(
            lambda: self._refresh_status(self.config),
            IntervalTrigger(seconds=self.status_refresh_seconds, timezone=UTC),
            id=STATUS_JOB,
            name="status page",
            executor=STATUS_JOB,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        if self.watchdog_seconds:
            self.scheduler.add_job(
                self.notifier.watchdog,
                IntervalTrigger(seconds=self.watchdog_seconds, timezone=UTC),
                id=WATCHDOG_JOB,
                name="systemd watchdog",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        log.info(
            "syncd daemon started: a cycle every %s%s, store %s",
            _duration_text(config.daemon.interval_minutes * 60),
            f" (+ up to {config.daemon.jitter_seconds:g}s jitter)" if config.daemon.jitter_seconds else "",
            redact(config.store.url),
        )
        self.notifier.ready("started; first cycle running")
        if self.watchdog_seconds:
            self.notifier.watchdog()
        self.scheduler.start()
        return ExitCode.OK

    def _startup_failed(self, message: str, code: int) -> int:
        log.error("cannot start: %s", message)
        self.notifier.status(f"cannot start: {message}")
        return code

    def serve(self) -> None:
        """Handle reload requests until a stop is requested."""
        while True:
            event = self._wait_for_event(timeout=1.0)
            if event == "stop":
                return
            if event == "reload":
                self.reload()

    def shutdown(self) -> int:
        """Stop scheduling, let the cycle in flight end (or ask it to stop in time), close; 0.

        Within ``stop_timeout_seconds`` whatever happens: a cycle that does not stop is abandoned
        at the timeout, and a backstop thread ends the process shortly after it should this very
        thread be stuck (waiting for a lock, writing to a blocked stderr).
        """
        with self._state_lock:
            self._stopping = True
        timeout = self.config.daemon.stop_timeout_seconds
        deadline = time.monotonic() + timeout
        disarm = self._start_backstop(deadline + STOP_MARGIN_SECONDS, timeout)
        try:
            busy = not self._idle.is_set()
            log.info("stopping%s", f": waiting up to {timeout:g}s for the cycle in flight" if busy else "")
            self.notifier.stopping("stopping: waiting for the cycle in flight" if busy else "stopping")
            if self.scheduler is not None and self.scheduler.running:
                self.scheduler.shutdown(wait=False)

            interrupt_at = deadline - min(INTERRUPT_GRACE_SECONDS, timeout / 2)
            if not self._wait_idle(until=interrupt_at, on_stop="second stop request: interrupting the cycle in flight"):
                self._interrupt_cycle()
                if not self._wait_idle(until=deadline, on_stop="third stop request: exiting at once"):
                    self.close()
                    self._abandon(f"the cycle in flight did not stop within {timeout:g}s")
                    return ExitCode.OK
        finally:
            disarm.set()
        self.close()
        log.info("stopped")
        return ExitCode.OK

    def _start_backstop(self, at: float, timeout: float) -> threading.Event:
        """A thread that gives up on the cycle at ``at`` unless the returned event is set first."""
        disarmed = threading.Event()

        def backstop() -> None:
            if not disarmed.wait(max(at - time.monotonic(), 0.0)):
                self._abandon(f"the shutdown did not finish within {timeout:g}s", always=True)

        threading.Thread(target=backstop, name="syncd-stop-backstop", daemon=True).start()
        return disarmed

    def _abandon(self, why: str, *, always: bool = False) -> None:
        """Exit the process now, under the cycle in flight, with a last log line that tells its outcome.

        The database rolls back whatever the cycle had not committed, and a run's outcome commits
        with its data, so the line can say what the store holds.  Called from any thread and from
        the signal handler, so it takes no lock; once, unless ``always`` (the backstop).
        """
        if self._abandoned and not always:
            return
        self._abandoned = True
        current = self._current  # no lock: the main thread may hold it where the signal interrupted it
        watch = current.watch if current is not None and current.watch is not None else RunWatch()
        self._last_words(f"{why}; exiting without it: {_abandon_outcome(watch)}")
        self.hard_exit(ExitCode.OK)

    @staticmethod
    def _last_words(message: str) -> None:
        """Log ``message`` and flush, giving up after LAST_WORDS_SECONDS (a stuck handler must not hold the exit)."""

        def write() -> None:
            log.error("%s", message)
            for handler in logging.getLogger().handlers:
                with suppress(Exception):
                    handler.flush()

        writer = threading.Thread(target=write, name="syncd-last-words", daemon=True)
        writer.start()
        writer.join(LAST_WORDS_SECONDS)

    def close(self) -> None:
        """Release the metrics port and the wake-up pipe."""
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        for fd in (self._wake_read, self._wake_write):
            with suppress(OSError):
                os.close(fd)
        self._wake_read = self._wake_write = -1

    def _wait_idle(self, *, until: float, on_stop: str) -> bool:
        """Wait for the cycle in flight to end; False at ``until`` or at another stop request (logged)."""
        while not self._idle.is_set():
            remaining = until - time.monotonic()
            if remaining <= 0:
                return False
            event = self._wait_for_event(timeout=min(remaining, 0.05))
            if event == "stop":
                log.warning("%s", on_stop)
                return False
        return True

    def _interrupt_cycle(self) -> None:
        """Ask the cycle in flight to stop at its next step (it rolls back what it has not committed)."""
        with self._state_lock:
            current = self._current
        if current is None or current.cancel is None or current.cancel.is_set():
            return
        log.warning(
            "interrupting the cycle in flight: it stops at its next step; what it has not committed is rolled back"
        )
        current.cancel.set()

    # ------------------------------------------------------------------ reload

    def reload(self) -> bool:
        """Re-read and validate the configuration; keep the running one if the new one has problems."""
        self.notifier.reloading()
        try:
            new = self.reload_config()
        except ConfigError as error:
            log.error("configuration not reloaded, the running one is kept: %s", error)
            self.notifier.ready(f"reload failed, running configuration kept: {error.problems[0]}")
            return False
        except Exception as error:
            log.error("configuration not reloaded, the running one is kept: %s", error)
            self.notifier.ready("reload failed, running configuration kept")
            return False
        old = self.config
        if self.verbosity is not None:
            setup_logging(new.log, verbosity=self.verbosity)
        if new.daemon.metrics_address != old.daemon.metrics_address:
            self._move_metrics_server(new.daemon.metrics_address)
        if (new.daemon.interval_minutes, new.daemon.jitter_seconds) != (
            old.daemon.interval_minutes,
            old.daemon.jitter_seconds,
        ):
            self.metrics.set_schedule(new.daemon.interval_minutes * 60, new.daemon.jitter_seconds)
            if self.scheduler is not None and self.scheduler.running:
                self.scheduler.reschedule_job(CYCLE_JOB, trigger=self._trigger(new))
            log.info("schedule changed: a cycle every %s from now", _duration_text(new.daemon.interval_minutes * 60))
        self.config = new
        log.info("configuration reloaded from %s", new.path or "defaults")
        self.notifier.ready(f"configuration reloaded; next cycle {_clock_text(self.next_cycle())}")
        return True

    def _move_metrics_server(self, address: str) -> None:
        server = MetricsServer(address, self.metrics, page=self.status_page) if address else None
        if server is not None:
            try:
                server.start()
            except OSError as error:
                log.error(
                    "cannot serve metrics on %s (%s); still serving on the old address",
                    address,
                    error.strerror or error,
                )
                return
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.metrics_server = server
        if server is None:
            log.info("metrics endpoint closed")

    @staticmethod
    def _trigger(config: Config) -> IntervalTrigger:
        jitter = config.daemon.jitter_seconds
        return IntervalTrigger(seconds=config.daemon.interval_minutes * 60, jitter=jitter or None, timezone=UTC)

    def next_cycle(self) -> datetime | None:
        job = self.scheduler.get_job(CYCLE_JOB) if self.scheduler is not None and self.scheduler.running else None
        return job.next_run_time if job is not None else None

    # ------------------------------------------------------------------ one cycle

    def _run_cycle(self) -> None:
        """The scheduled job: one cycle, its outcome logged, counted and reported; never raises."""
        config = self.config
        options = RunOptions(trigger="daemon", cancel=threading.Event(), watch=RunWatch(), memory=self.memory)
        with self._state_lock:
            if self._stopping:
                return
            self._idle.clear()
            self._current = options
        started = time.monotonic()
        self.metrics.cycle_started()
        try:
            result = self.cycle(config, options)
            self._finished(result, time.monotonic() - started)
        except Cancelled as stopped:
            duration = time.monotonic() - started
            log.warning("cycle interrupted by shutdown after %.1fs: %s", duration, stopped.outcome)
            self.metrics.record_error("INTERRUPTED", f"interrupted by shutdown: {stopped.outcome}", duration)
        except SyncdError as error:
            self._failed(error.code, str(error), time.monotonic() - started)
        except Exception as error:
            log.exception("cycle failed unexpectedly")
            self._failed("UNEXPECTED", f"{type(error).__name__}: {error}", time.monotonic() - started, logged=True)
        finally:
            with self._state_lock:
                self._current = None
            self.cycles_finished += 1
            self._idle.set()
        if not self._stopping:
            self._refresh_status(config)

    def _finished(self, result: RunResult, duration: float) -> None:
        result.duration = duration
        report(log, result, cycle=True)
        self.metrics.record_result(result, duration)
        self._report(f"{result.status}: {result.message}" if result.message else result.status)

    def _failed(self, code: str, message: str, duration: float, *, logged: bool = False) -> None:
        next_at = _clock_text(self.next_cycle())
        if not logged:
            level = logging.WARNING if code == "LOCKED" else logging.ERROR
            log.log(
                level,
                "cycle failed [%s] after %.1fs: %s; next try at %s",
                code,
                duration,
                message,
                next_at,
                extra={"code": code, "duration": round(duration, 3)},
            )
        self.metrics.record_error(code, message, duration)
        self._report(f"failed [{code}]: {message.splitlines()[0] if message else ''}")

    def _report(self, outcome: str) -> None:
        now = _clock_text(datetime.now(UTC))
        self.notifier.status(f"last cycle {now} {outcome}; next {_clock_text(self.next_cycle())}")

    def _refresh_status(self, config: Config) -> None:
        """What the store holds, what the status page shows, and when any syncd sharing the store last
        synced (a peer's cycle counts)."""
        try:
            view = self.store.status(config)
            self.status_view = view
            self.metrics.record_counts(view.counts)
            self.metrics.record_store_success(self.store.last_success(config))
        except Exception as error:
            log.debug("cannot read the store for the status page: %s", error)

    def status_page(self) -> str:
        """The page at ``/``: the last view of the store, and the health as of now."""
        return render(self.status_view, self.metrics.health())


class _OverrunFilter(logging.Filter):
    """A cycle that outlasts its interval is expected (one at a time, missed ticks coalesced):
    APScheduler's warning about the skipped tick becomes a debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "maximum number of running instances reached" in record.getMessage():
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger("syncd").isEnabledFor(logging.DEBUG)
        return True


def _quiet_overruns(logger: logging.Logger) -> logging.Logger:
    if not any(isinstance(f, _OverrunFilter) for f in logger.filters):
        logger.addFilter(_OverrunFilter())
    return logger


def _duration_text(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g}s"


def load_for_daemon(path: str | None) -> Config:
    """The configuration at ``path``, with the checks the daemon needs on top of validation."""
    config = load(path)
    check_startup_config(config)
    return config


def check_startup_config(config: Config) -> None:
    """Problems that would make every cycle fail, raised as ConfigError before the daemon starts."""
    config.graph.require_application("(the daemon syncs from Microsoft Graph)")
    from .graph.auth import credential_problems

    problems = credential_problems(config.graph)
    if problems:
        raise ConfigError(problems)


def main(config_path: str | None, *, verbosity: int = 0) -> int:
    """``syncd run``: the daemon until SIGTERM; returns the exit status (78 for a bad configuration)."""
    setup_logging(LogConfig(), verbosity=verbosity)
    notifier = Notifier.from_environment()
    try:
        config = load(config_path)
        setup_logging(config.log, verbosity=verbosity)
        check_startup_config(config)
    except ConfigError as error:
        where = resolve_path(config_path)
        log.error("cannot start: %s%s", error, f"\n  (configuration file: {where})" if where else "")
        notifier.status(f"cannot start: invalid configuration: {'; '.join(error.problems)}")
        return ExitCode.CONFIG
    return Daemon(config, notifier=notifier, verbosity=verbosity).run()
