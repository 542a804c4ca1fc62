"""The daemon's scheduling, stopping, reloading, notifications and metrics, around a fake cycle.

The daemon runs in a thread here (so no signal handlers: ``request_stop`` and ``request_reload``
are what the handlers call); ``test_daemon_process.py`` sends real signals to a real process.
"""

from __future__ import annotations

import io
import logging
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.cancel import Cancelled, check
from syncd.config import Config, DaemonConfig, build
from syncd.daemon import LAST_WORDS_SECONDS, STOP_MARGIN_SECONDS, Daemon, load_for_daemon, main
from syncd.errors import ConfigError, ExitCode, GraphError, LockedError, StoreError
from syncd.notify import Notifier
from syncd.reconcile import RunOptions, RunResult
from syncd.status_page import StatusView

FAST = 0.002  # minutes: a cycle every 0.12 s


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def make_config(**daemon: Any) -> Config:
    settings = {"interval_minutes": FAST, "stop_timeout_seconds": 5.0, **daemon}
    return replace(build({}), daemon=DaemonConfig(**settings))


class FakeCycle:
    """A cycle that succeeds, or does what the test scripts for each call."""

    def __init__(self, *script: Callable[[Config, RunOptions], RunResult]) -> None:
        self.script = list(script)
        self.calls = 0
        self.configs: list[Config] = []
        self.running = 0
        self.most_concurrent = 0
        self.lock = threading.Lock()

    def __call__(self, config: Config, options: RunOptions) -> RunResult:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most_concurrent = max(self.most_concurrent, self.running)
            step = self.script.pop(0) if self.script else None
        self.configs.append(config)
        try:
            if step is not None:
                return step(config, options)
            return RunResult("success", ExitCode.OK, message="Plan: no changes.", run_id=self.calls)
        finally:
            with self.lock:
                self.running -= 1


class FakeStore:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def check(self, config: Config) -> None:
        if self.error is not None:
            raise self.error

    def status(self, config: Config) -> StatusView:
        return StatusView(datetime.now(UTC), False, {"active_users": 5, "inactive_users": 1, "teams": 2})

    def last_success(self, config: Config) -> float | None:
        return None


class Running:
    """A daemon running in a background thread."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.daemon.run()

    def stop(self, timeout: float = 10) -> int | None:
        self.daemon.request_stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the daemon did not stop"
        return self.code


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    running: list[Running] = []
    hard_exits: list[int] = []

    def start(config: Config | None = None, cycle: FakeCycle | None = None, **kwargs: Any) -> Running:
        kwargs.setdefault("store", FakeStore())
        kwargs.setdefault("notifier", Notifier(None))
        kwargs.setdefault("hard_exit", hard_exits.append)
        daemon = Daemon(config or make_config(), cycle=cycle or FakeCycle(), **kwargs)
        running.append(Running(daemon))
        return running[-1]

    yield start
    for each in running:
        if each.thread.is_alive():
            each.stop()
    assert hard_exits == [], "a cycle had to be abandoned"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(5)
    yield str(tmp_path / "notify.sock"), sock
    sock.close()


def messages(sock: socket.socket, until: str, timeout: float = 10) -> list[str]:
    received: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received.append(sock.recv(4096).decode())
        if until in received[-1]:
            return received
    raise AssertionError(f"{until} never arrived: {received}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- scheduling


def test_first_cycle_runs_at_start_without_waiting_for_the_interval(start: Callable[..., Running]) -> None:
    cycle = FakeCycle()
    running = start(make_config(interval_minutes=60), cycle=cycle)
    wait_for(lambda: cycle.calls >= 1)
    assert running.stop() == ExitCode.OK
    assert cycle.calls == 1


def test_cycles_repeat_every_interval(start: Callable[..., Running]) -> None:
    cycle = FakeCycle()
    running = start(cycle=cycle)
    wait_for(lambda: cycle.calls >= 3)
    assert running.stop() == ExitCode.OK


def test_a_failed_cycle_is_logged_with_its_code_and_retried_at_the_next_tick(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncd")

    def graph_down(config: Config, options: RunOptions) -> RunResult:
        raise GraphError("Graph answered 503 after 6 retries", code="GRAPH_UNAVAILABLE")

    def store_down(config: Config, options: RunOptions) -> RunResult:
        raise StoreError("connection refused", code="STORE_UNREACHABLE")

    def locked(config: Config, options: RunOptions) -> RunResult:
        raise LockedError("another syncd run holds the lock: pid 1 on host h")

    cycle = FakeCycle(graph_down, store_down, locked)
    running = start(cycle=cycle)
    wait_for(lambda: running.daemon.cycles_finished >= 4)
    assert running.stop() == ExitCode.OK
    text = caplog.text
    assert "cycle failed [GRAPH_UNAVAILABLE]" in text
    assert "cycle failed [STORE_UNREACHABLE]" in text
    assert "cycle failed [LOCKED]" in text
    assert "cycle success" in text
    failures = [r for r in caplog.records if "cycle failed" in r.getMessage()]
    assert [r.levelname for r in failures] == ["ERROR", "ERROR", "WARNING"]
    assert all(r.exc_info is None for r in failures), "an expected failure is one line, not a traceback"


def test_an_unexpected_exception_is_logged_with_its_traceback_and_the_daemon_goes_on(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    def bug(config: Config, options: RunOptions) -> RunResult:
        raise ZeroDivisionError("division by zero")

    cycle = FakeCycle(bug)
    running = start(cycle=cycle)
    wait_for(lambda: cycle.calls >= 2)
    assert running.stop() == ExitCode.OK
    (record,) = [r for r in caplog.records if r.getMessage() == "cycle failed unexpectedly"]
    assert record.exc_info is not None


def test_cycles_never_overlap_and_missed_ticks_are_not_made_up(start: Callable[..., Running]) -> None:
    def slow(config: Config, options: RunOptions) -> RunResult:
        time.sleep(0.6)  # five intervals
        return RunResult("success", ExitCode.OK)

    cycle = FakeCycle(slow)
    running = start(cycle=cycle)
    wait_for(lambda: cycle.calls >= 2)
    time.sleep(0.3)
    assert running.stop() == ExitCode.OK
    assert cycle.most_concurrent == 1
    assert cycle.calls < 6


def test_paused_provisioning_is_reported_not_failed(start: Callable[..., Running], listener: Any) -> None:
    path, sock = listener

    def paused(config: Config, options: RunOptions) -> RunResult:
        return RunResult("paused", ExitCode.OK, message="provisioning is paused (`syncd resume` turns it back on)")

    running = start(cycle=FakeCycle(paused), notifier=Notifier(path))
    received = messages(sock, until="STATUS=last cycle")
    assert "paused: provisioning is paused" in received[-1]
    assert running.daemon.metrics.paused._value.get() == 1
    running.stop()


# --------------------------------------------------------------------------- stopping


def test_stop_lets_the_cycle_in_flight_finish(start: Callable[..., Running]) -> None:
    finished = threading.Event()
    entered = threading.Event()

    def long(config: Config, options: RunOptions) -> RunResult:
        entered.set()
        time.sleep(0.5)
        finished.set()
        return RunResult("success", ExitCode.OK)

    running = start(cycle=FakeCycle(long))
    assert entered.wait(5)
    assert running.stop() == ExitCode.OK
    assert finished.is_set()


def endless_cycle() -> tuple[threading.Event, threading.Event, Callable[[Config, RunOptions], RunResult]]:
    """A cycle that runs until asked to stop, checking its cancel event between steps: (entered, stopped, cycle)."""
    entered = threading.Event()
    stopped = threading.Event()

    def endless(config: Config, options: RunOptions) -> RunResult:
        entered.set()
        try:
            while True:
                check(options.cancel)
                time.sleep(0.01)
        except Cancelled:
            stopped.set()
            raise

    return entered, stopped, endless


def stuck_cycle() -> tuple[threading.Event, threading.Event, Callable[[Config, RunOptions], RunResult]]:
    """A cycle blocked in one long call that never looks at its cancel event: (entered, release, cycle)."""
    entered = threading.Event()
    release = threading.Event()

    def stuck(config: Config, options: RunOptions) -> RunResult:
        entered.set()
        release.wait(30)
        return RunResult("success", ExitCode.OK)

    return entered, release, stuck


def test_a_cycle_still_running_shortly_before_the_stop_timeout_is_asked_to_stop(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncd")
    entered, stopped, endless = endless_cycle()

    running = start(make_config(stop_timeout_seconds=0.8), cycle=FakeCycle(endless))
    assert entered.wait(5)
    began = time.monotonic()
    assert running.stop() == ExitCode.OK
    assert time.monotonic() - began < 0.8, "stopped within the stop timeout"
    assert stopped.is_set(), "the endless cycle was asked to stop before the stop timeout"
    assert running.daemon.metrics.cycle_errors.labels("INTERRUPTED")._value.get() == 1
    assert "cycle interrupted by shutdown" in caplog.text and "nothing of it was applied" in caplog.text


def test_no_exception_is_ever_injected_into_the_cycle_thread(start: Callable[..., Running]) -> None:
    """The cycle learns of the stop through its cancel event only; code that does not look is never
    interrupted in the middle (where it might hold a lock or be inside a ``finally``)."""
    entered, release, stuck = stuck_cycle()
    outcome: list[BaseException | str] = []

    def watched(config: Config, options: RunOptions) -> RunResult:
        try:
            result = stuck(config, options)
        except BaseException as error:  # an injected exception would land here
            outcome.append(error)
            raise
        outcome.append("returned")
        assert options.cancel is not None and options.cancel.is_set(), "it was asked to stop"
        return result

    hard_exits: list[int] = []
    running = start(make_config(stop_timeout_seconds=0.6), cycle=FakeCycle(watched), hard_exit=hard_exits.append)
    assert entered.wait(5)
    running.daemon.request_stop()
    wait_for(lambda: hard_exits, timeout=3)
    release.set()
    wait_for(lambda: outcome, timeout=5)
    assert outcome == ["returned"]
    running.thread.join(5)


def test_a_second_stop_request_asks_the_cycle_to_stop_at_once(start: Callable[..., Running]) -> None:
    entered, stopped, endless = endless_cycle()

    running = start(make_config(stop_timeout_seconds=60), cycle=FakeCycle(endless))
    assert entered.wait(5)
    running.daemon.request_stop()
    time.sleep(0.2)
    assert not stopped.is_set()
    began = time.monotonic()
    assert running.stop() == ExitCode.OK, "a second request stops long before the 60 s stop timeout"
    assert stopped.is_set()
    assert time.monotonic() - began < 2


def test_a_cycle_that_does_not_stop_is_abandoned_at_the_stop_timeout_with_a_true_last_line(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    entered, release, stuck = stuck_cycle()
    hard_exits: list[int] = []

    def reading(config: Config, options: RunOptions) -> RunResult:
        assert options.watch is not None
        options.watch.run_id, options.watch.stage = 7, "reading"
        return stuck(config, options)

    running = start(make_config(stop_timeout_seconds=1), cycle=FakeCycle(reading), hard_exit=hard_exits.append)
    assert entered.wait(5)
    began = time.monotonic()
    running.daemon.request_stop()
    wait_for(lambda: hard_exits, timeout=5)
    assert time.monotonic() - began < 1 + 0.5, "abandoned at the stop timeout"
    assert hard_exits == [ExitCode.OK]
    release.set()
    running.thread.join(5)
    (line,) = [r.getMessage() for r in caplog.records if "exiting without it" in r.getMessage()]
    assert line.startswith("the cycle in flight did not stop within 1s; exiting without it: nothing of it was applied")
    assert "the next run records run 7 as failed" in line


@pytest.mark.parametrize(
    ("stage", "says"),
    [
        ("committed", "run 7 is committed and recorded; only the logging of its changes is cut short"),
        ("committing", "run 7 was being committed: the database keeps all of it or none of it"),
        ("applying", "nothing of it was applied: the database rolls back its open transaction"),
    ],
)
def test_the_last_line_of_an_abandoned_cycle_says_what_the_store_holds(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture, stage: str, says: str
) -> None:
    entered, release, stuck = stuck_cycle()
    hard_exits: list[int] = []

    def at_stage(config: Config, options: RunOptions) -> RunResult:
        assert options.watch is not None
        options.watch.run_id, options.watch.stage = 7, stage
        return stuck(config, options)

    running = start(make_config(stop_timeout_seconds=0.4), cycle=FakeCycle(at_stage), hard_exit=hard_exits.append)
    assert entered.wait(5)
    running.daemon.request_stop()
    wait_for(lambda: hard_exits, timeout=5)
    release.set()
    running.thread.join(5)
    assert says in caplog.text


def test_a_third_stop_signal_exits_at_once(start: Callable[..., Running]) -> None:
    entered, release, stuck = stuck_cycle()
    hard_exits: list[int] = []
    running = start(make_config(stop_timeout_seconds=60), cycle=FakeCycle(stuck), hard_exit=hard_exits.append)
    assert entered.wait(5)
    began = time.monotonic()
    for _ in range(3):
        running.daemon._on_signal(signal.SIGTERM, None)  # what the handler does, from this thread
    wait_for(lambda: hard_exits, timeout=5)
    assert time.monotonic() - began < 2, "long before the 60 s stop timeout"
    release.set()
    running.thread.join(5)


def test_the_stop_timeout_holds_even_when_the_main_thread_is_stuck_in_a_logging_lock(
    start: Callable[..., Running],
) -> None:
    """The issue's hang: the thread that stops the daemon waits for a log handler that the cycle
    holds (a blocked stderr).  A backstop thread ends the process shortly after the stop timeout."""
    entered, release, stuck = stuck_cycle()
    handler = logging.StreamHandler(io.StringIO())
    root = logging.getLogger()
    root.addHandler(handler)
    hard_exits: list[int] = []

    def holding_the_handler(config: Config, options: RunOptions) -> RunResult:
        handler.acquire()  # as if writing to a stderr nobody reads
        try:
            return stuck(config, options)
        finally:
            handler.release()

    try:
        running = start(
            make_config(stop_timeout_seconds=0.5), cycle=FakeCycle(holding_the_handler), hard_exit=hard_exits.append
        )
        assert entered.wait(5)
        began = time.monotonic()
        running.daemon.request_stop()
        wait_for(lambda: hard_exits, timeout=10)
        took = time.monotonic() - began
        assert took < 0.5 + STOP_MARGIN_SECONDS + LAST_WORDS_SECONDS + 0.5, took
    finally:
        release.set()
        root.removeHandler(handler)
    running.thread.join(5)
    assert hard_exits == [ExitCode.OK], "given up on once"


# --------------------------------------------------------------------------- reload


def test_reload_takes_a_new_configuration_for_the_next_cycle_and_reschedules(
    start: Callable[..., Running],
) -> None:
    cycle = FakeCycle()
    new = replace(make_config(interval_minutes=60), path="new.toml")
    running = start(cycle=cycle, reload_config=lambda: new)
    wait_for(lambda: cycle.calls >= 1)
    running.daemon.request_reload()
    wait_for(lambda: running.daemon.config is new)
    calls = cycle.calls
    time.sleep(0.5)
    assert cycle.calls <= calls + 1, "the new hour-long interval applies at once"
    next_cycle = running.daemon.next_cycle()
    assert next_cycle is not None
    assert next_cycle.timestamp() - time.time() > 3000
    running.stop()


def test_a_bad_configuration_on_reload_is_logged_and_the_old_one_kept(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture, listener: Any
) -> None:
    path, sock = listener
    caplog.set_level(logging.INFO, logger="syncd")

    def broken() -> Config:
        raise ConfigError(["daemon.interval_minutes: must be greater than 0", 'log.format: must be "text" or "json"'])

    cycle = FakeCycle()
    running = start(cycle=cycle, reload_config=broken, notifier=Notifier(path))
    old = running.daemon.config
    messages(sock, until="READY=1")
    running.daemon.request_reload()
    received = messages(sock, until="reload failed")
    assert any(message.startswith("RELOADING=1") for message in received)
    assert "READY=1" in received[-1]
    assert running.daemon.config is old
    assert "configuration not reloaded, the running one is kept" in caplog.text
    assert "daemon.interval_minutes: must be greater than 0" in caplog.text
    assert 'log.format: must be "text" or "json"' in caplog.text
    calls = cycle.calls
    wait_for(lambda: cycle.calls > calls + 1)
    running.stop()


def test_reload_moves_the_metrics_endpoint(start: Callable[..., Running]) -> None:
    first, second = free_port(), free_port()
    new = make_config(metrics_address=f"127.0.0.1:{second}")
    running = start(make_config(metrics_address=f"127.0.0.1:{first}"), reload_config=lambda: new)
    wait_for(lambda: running.daemon.cycles_finished >= 1)
    assert urllib.request.urlopen(f"http://127.0.0.1:{first}/healthz", timeout=5).status == 200
    running.daemon.request_reload()
    wait_for(lambda: running.daemon.config is new)
    assert urllib.request.urlopen(f"http://127.0.0.1:{second}/healthz", timeout=5).status == 200
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{first}/healthz", timeout=5)
    running.stop()


# --------------------------------------------------------------------------- systemd and metrics


def test_notify_protocol_ready_status_watchdog_stopping(start: Callable[..., Running], listener: Any) -> None:
    path, sock = listener
    running = start(make_config(interval_minutes=1), notifier=Notifier(path), environ={"WATCHDOG_USEC": "200000"})
    received = messages(sock, until="STATUS=last cycle")
    assert received[0].startswith("READY=1\nSTATUS=")
    assert "success: Plan: no changes." in received[-1]
    pings_before = sum(message == "WATCHDOG=1" for message in received)
    received = messages(sock, until="WATCHDOG=1")
    received += messages(sock, until="WATCHDOG=1")
    assert pings_before + sum(message == "WATCHDOG=1" for message in received) >= 2
    running.daemon.request_stop()
    assert messages(sock, until="STOPPING=1")[-1].startswith("STOPPING=1")
    running.stop()


def test_no_watchdog_pings_without_watchdog_usec(start: Callable[..., Running], listener: Any) -> None:
    path, sock = listener
    running = start(notifier=Notifier(path), environ={})
    wait_for(lambda: running.daemon.cycles_finished >= 2)
    running.stop()
    sock.settimeout(0.2)
    received = []
    try:
        while True:
            received.append(sock.recv(4096).decode())
    except TimeoutError:
        pass
    assert "WATCHDOG=1" not in received
    assert received[0].startswith("READY=1")
    assert received[-1].startswith("STOPPING=1")


def test_metrics_and_health_are_served_while_the_daemon_runs(start: Callable[..., Running]) -> None:
    port = free_port()
    running = start(make_config(metrics_address=f"127.0.0.1:{port}"))
    wait_for(lambda: running.daemon.cycles_finished >= 2)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        assert response.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'syncd_runs_total{status="success"}' in text
    assert 'syncd_users{state="active"} 5.0' in text
    assert "syncd_teams 2.0" in text
    running.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)


# --------------------------------------------------------------------------- start-up failures


def test_an_unreachable_database_at_start_exits_without_ready(
    start: Callable[..., Running], listener: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path, sock = listener
    cycle = FakeCycle()
    running = start(
        cycle=cycle,
        notifier=Notifier(path),
        store=FakeStore(StoreError("connection refused", code="STORE_UNREACHABLE")),
    )
    running.thread.join(5)
    assert running.code == ExitCode.FAILED
    assert cycle.calls == 0
    (received,) = messages(sock, until="STATUS=")
    assert "READY=1" not in received
    assert "cannot start: the database is not usable [STORE_UNREACHABLE]: connection refused" in caplog.text


def test_a_metrics_address_in_use_at_start_exits(start: Callable[..., Running]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        running = start(make_config(metrics_address=f"127.0.0.1:{taken.getsockname()[1]}"))
        running.thread.join(5)
    assert running.code == ExitCode.FAILED


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("syncd").setLevel(logging.NOTSET)


def test_main_exits_78_on_an_invalid_configuration_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[daemon]\ninterval_minutes = 0\nmetrics_address = 'nowhere'\n")
    assert main(str(config)) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "cannot start: invalid configuration" in err
    assert "daemon.interval_minutes: must be greater than 0" in err
    assert "daemon.metrics_address" in err
    assert str(config) in err
    assert "Traceback" not in err


def test_main_exits_78_without_a_graph_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[store]\nurl = '{tmp_path / 's.db'}'\n")
    assert main(str(config)) == ExitCode.CONFIG
    assert "graph: no [graph] section" in capsys.readouterr().err


def test_main_exits_78_when_the_client_secret_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNCD_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = tmp_path / "config.toml"
    config.write_text("[graph]\ntenant_id = 't'\nclient_id = 'c'\nservice_principal_id = 's'\n")
    assert main(str(config)) == ExitCode.CONFIG
    assert "no client secret found" in capsys.readouterr().err


def test_main_exits_78_when_the_file_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    assert main(str(tmp_path / "nope.toml")) == ExitCode.CONFIG
    assert "no such file" in capsys.readouterr().err


def test_a_reloaded_configuration_must_still_name_the_application(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[daemon]\ninterval_minutes = 5\n")
    with pytest.raises(ConfigError, match=r"graph: no \[graph\] section"):
        load_for_daemon(str(config))


def test_a_skipped_tick_of_an_overrunning_cycle_is_not_a_warning() -> None:
    from syncd.daemon import _OverrunFilter

    overrun = logging.LogRecord(
        "apscheduler.scheduler",
        logging.WARNING,
        __file__,
        1,
        'Execution of job "sync cycle" skipped: maximum number of running instances reached (1)',
        None,
        None,
    )
    other = logging.LogRecord(
        "apscheduler.scheduler", logging.WARNING, __file__, 1, "Run time of job was missed", None, None
    )
    overrun_filter = _OverrunFilter()
    overrun_filter.filter(overrun)
    assert overrun.levelno == logging.DEBUG
    assert overrun_filter.filter(other) and other.levelno == logging.WARNING
