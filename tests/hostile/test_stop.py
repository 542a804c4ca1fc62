"""Stopping a run by asking: at every step a stop request is honoured, and what is said is true.

A run is stopped through ``RunOptions.cancel`` (what the daemon sets at its stop timeout, or at a
second SIGTERM).  Before the commit the run stops at its next step - the next Graph request, the
end of a retry wait, the next group of changes - rolls back, and is recorded as failed with nothing
applied.  After the commit nothing can undo it: a stop or an interrupt only cuts the logging of its
changes short, with a line that says they were committed.  On both stores, against the simulator.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.cancel import Cancelled
from syncd.config import Config, load
from syncd.reconcile import RunOptions, RunWatch, run_once
from syncd.simulator import Simulator, generate_tenant
from syncd.store import SqlStore
from tests.test_daemon_process import Setup

EMPTY = {"active_users": 0, "inactive_users": 0, "teams": 0}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(generate_tenant(seed=5, users=60, groups=4), token="t") as simulator:
        yield simulator


def configure(sim: Simulator, store_url: str, tmp_path: Path, *, max_retries: int = 0) -> Config:
    (tmp_path / "token").write_text("t")
    path = tmp_path / "config.toml"
    path.write_text(
        f"[store]\nurl = {json.dumps(store_url)}\n\n"
        f'[graph]\nauth = "token_file"\ntoken_file = {json.dumps(str(tmp_path / "token"))}\n'
        f"base_url = {json.dumps(sim.base_url)}\n"
        f"service_principal_id = {json.dumps(sim.tenant.service_principal_id)}\nmax_retries = {max_retries}\n"
    )
    return load(str(path))


def counts(store_url: str) -> dict[str, int]:
    with SqlStore(store_url) as store:
        store.ensure_schema()
        return store.reports.counts()


def last_run(store_url: str) -> dict[str, Any]:
    with SqlStore(store_url) as store:
        run = store.reports.last_run()
    assert run is not None
    return run


def pending(config: Config) -> int:
    return len(run_once(config, RunOptions(dry_run=True)).plan.changes)


def assert_failed_with_nothing_applied(store_url: str, stopped: Cancelled) -> None:
    run = last_run(store_url)
    assert (run["status"], run["changes"]) == ("failed", 0)
    assert run["message"] == "interrupted by shutdown; nothing of this run was applied"
    assert stopped.outcome == f"nothing of it was applied; run {run['id']} is recorded as failed"
    assert counts(store_url) == EMPTY


class OnChangeLines(logging.Handler):
    """Calls ``action`` at the ``at``-th change line the run logs (a record with an ``op``)."""

    def __init__(self, at: int, action: Any) -> None:
        super().__init__()
        self.at, self.action, self.seen = at, action, 0

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "op", None) is None:
            return
        self.seen += 1
        if self.seen == self.at:
            self.action()


@pytest.fixture
def on_change_line() -> Iterator[Any]:
    installed: list[logging.Handler] = []
    logger = logging.getLogger("syncd")

    def install(at: int, action: Any) -> OnChangeLines:
        handler = OnChangeLines(at, action)
        logger.addHandler(handler)
        installed.append(handler)
        return handler

    previous = logger.level
    logger.setLevel(logging.INFO)
    yield install
    for handler in installed:
        logger.removeHandler(handler)
    logger.setLevel(previous)


# --------------------------------------------------------------------------- before the commit


def test_a_stop_during_the_graph_fetch_sends_no_further_request(sim: Simulator, store_url: str, tmp_path: Path) -> None:
    config = configure(sim, store_url, tmp_path)
    sim.delay(0.1)
    cancel = threading.Event()

    def stop_after_three_requests() -> None:
        deadline = time.monotonic() + 10
        while sim.requests < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        cancel.set()

    threading.Thread(target=stop_after_three_requests, daemon=True).start()
    began = time.monotonic()
    with pytest.raises(Cancelled) as stopped:
        run_once(config, RunOptions(cancel=cancel))
    assert time.monotonic() - began < 5
    time.sleep(0.15)  # a request sent just before the stop is served (counted) after the 0.1 s delay
    sent = sim.requests
    time.sleep(0.3)
    assert sim.requests == sent, "nothing is sent after the run stopped"
    assert_failed_with_nothing_applied(store_url, stopped.value)


def test_a_stop_during_a_long_retry_wait_is_honoured_at_once(sim: Simulator, store_url: str, tmp_path: Path) -> None:
    config = configure(sim, store_url, tmp_path, max_retries=3)
    sim.throttle(times=None, retry_after=30, path_regex="appRoleAssignedTo")
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    began = time.monotonic()
    with pytest.raises(Cancelled) as stopped:
        run_once(config, RunOptions(cancel=cancel))
    assert time.monotonic() - began < 2, "not after the 30 s Graph asked for"
    assert_failed_with_nothing_applied(store_url, stopped.value)


def test_a_stop_as_the_apply_begins_rolls_it_back(sim: Simulator, store_url: str, tmp_path: Path) -> None:
    config = configure(sim, store_url, tmp_path)
    cancel = threading.Event()

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "apply changes":
            cancel.set()

    with pytest.raises(Cancelled) as stopped:
        run_once(config, RunOptions(cancel=cancel, progress=progress))
    assert_failed_with_nothing_applied(store_url, stopped.value)
    assert pending(config) > 0
    run_once(config, RunOptions())
    assert pending(config) == 0


# --------------------------------------------------------------------------- after the commit


def test_a_stop_while_the_changes_are_logged_cuts_the_logging_short_and_the_run_stands(
    sim: Simulator, store_url: str, tmp_path: Path, on_change_line: Any, caplog: pytest.LogCaptureFixture
) -> None:
    config = configure(sim, store_url, tmp_path)
    cancel = threading.Event()
    on_change_line(1, cancel.set)
    result = run_once(config, RunOptions(cancel=cancel))
    assert result.status in ("success", "partial") and result.applied > 10
    run = last_run(store_url)
    assert (run["status"], run["changes"]) == (result.status, result.applied)
    assert (
        f"stopped logging the changes of run {run['id']} after 1 of {result.applied}: "
        f"all {result.applied} were applied and committed"
    ) in caplog.text
    assert pending(config) == 0


def test_an_interrupt_while_the_changes_are_logged_does_not_undo_or_deny_the_commit(
    sim: Simulator, store_url: str, tmp_path: Path, on_change_line: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C (or a second SIGTERM to ``syncd sync``) arrives as KeyboardInterrupt wherever the CLI is."""

    def interrupt() -> None:
        raise KeyboardInterrupt

    config = configure(sim, store_url, tmp_path)
    on_change_line(3, interrupt)
    result = run_once(config, RunOptions())
    run = last_run(store_url)
    assert (run["status"], run["changes"]) == (result.status, result.applied)
    assert "nothing of this run was applied" not in caplog.text
    assert f"all {result.applied} were applied and committed" in caplog.text
    assert pending(config) == 0


class InterruptedRightAfterTheCommit(RunWatch):
    """Raises KeyboardInterrupt the moment the run is marked committed: Ctrl-C at the worst instant."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if value == "committed":
            raise KeyboardInterrupt


def test_an_interrupt_right_after_the_commit_cannot_relabel_the_run(
    sim: Simulator, store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = configure(sim, store_url, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_once(config, RunOptions(watch=InterruptedRightAfterTheCommit()))
    run = last_run(store_url)
    assert run["status"] in ("success", "partial") and run["changes"] > 10
    assert f"run {run['id']} had already recorded how it ended, with its changes; that record stands" in caplog.text
    assert "nothing of this run was applied" not in caplog.text
    assert pending(config) == 0


class Killed(BaseException):
    """The process dying at this very point (what SIGKILL would do, without the process)."""


def test_a_run_that_dies_after_its_commit_is_recorded_as_applied_and_stays_so(
    sim: Simulator, store_url: str, tmp_path: Path, on_change_line: Any
) -> None:
    def die() -> None:
        raise Killed

    config = configure(sim, store_url, tmp_path)
    on_change_line(2, die)
    with pytest.raises(Killed):
        run_once(config, RunOptions())
    run = last_run(store_url)
    assert run["status"] in ("success", "partial") and run["changes"] > 10
    with SqlStore(store_url) as store:
        applied = [row for row in store.reports.audit(run["id"], limit=None) if row["status"] == "applied"]
    assert len(applied) == run["changes"], "the record counts what the store holds"
    assert pending(config) == 0
    following = run_once(config, RunOptions())
    assert following.applied == 0
    with SqlStore(store_url) as store:
        assert store.reports.run(run["id"]) == run, "the next start leaves a committed run as it is"


# --------------------------------------------------------------------------- the daemon, as a process


def test_the_daemon_stops_a_slow_graph_fetch_at_its_next_request_within_the_stop_timeout(tmp_path: Path) -> None:
    with Simulator(generate_tenant(seed=5, users=60, groups=4), token="t") as simulator:
        setup = Setup(tmp_path, simulator)
        setup.write_config(interval_minutes=60, stop_timeout_seconds=2)
        simulator.delay(0.3)
        daemon = setup.start("run")
        try:
            deadline = time.monotonic() + 20
            while simulator.requests < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            daemon.signal(signal.SIGTERM)
            began = time.monotonic()
            assert daemon.wait() == 0, daemon.text
            assert time.monotonic() - began < 2 + 1
        finally:
            daemon.stop()
        assert "cycle interrupted by shutdown" in daemon.text
        assert "nothing of it was applied; run 1 is recorded as failed" in daemon.text
        assert "exiting without it" not in daemon.text
        assert setup.counts() == EMPTY
        run = last_run(setup.store_url)
        assert (run["status"], run["changes"]) == ("failed", 0)
