"""``syncd run`` as a real process: the Graph simulator, a SQLite store and real signals.

Each test starts ``python -m syncd --config FILE run`` and talks to it the way systemd and an
operator do: SIGTERM, SIGINT and SIGHUP, a notify socket, HTTP scrapes of ``/metrics`` and
``/healthz``, and the log lines on stderr.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.config import load
from syncd.reconcile import RunOptions, run_once
from syncd.simulator import Simulator, generate_tenant
from syncd.store import SqlStore

pytestmark = pytest.mark.slow

INTERVAL = 0.005  # minutes: a cycle every 0.3 s
CLEAN_ENVIRONMENT = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "SYNCD_CONFIG",
    "CREDENTIALS_DIRECTORY",
    "CONFIGURATION_DIRECTORY",
    "STATE_DIRECTORY",
    "SYNCD_CLIENT_SECRET",
)

SLOW_APPLY_RUNNER = """
import os, sys, time
from pathlib import Path
from sqlalchemy import event
from sqlalchemy.engine import Engine

marker, delay = Path(os.environ["APPLY_MARKER"]), float(os.environ["APPLY_DELAY"])

@event.listens_for(Engine, "before_cursor_execute")
def slow_apply(conn, cursor, statement, parameters, context, executemany):
    writes = ("INSERT INTO USERS", "INSERT INTO TEAMS", "INSERT INTO TEAM_MEMBERS", "RELEASE SAVEPOINT")
    if statement.lstrip().upper().startswith(writes):
        marker.touch()
        end = time.monotonic() + delay
        while time.monotonic() < end:
            time.sleep(0.01)

from syncd.cli import main
sys.argv = ["syncd", *sys.argv[1:]]
main()
"""
"""Runs syncd with every write of an apply slowed down by $APPLY_DELAY seconds (a SQLAlchemy
event hook, so no syncd code is replaced); $APPLY_MARKER appears when the apply has begun.  On
PostgreSQL the rows go in by COPY, which SQLAlchemy does not see; the savepoint each group of
changes ends with is seen on both databases."""


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout}s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Syncd:
    """A syncd process whose stderr lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str], *, runner: str | None = None) -> None:
        command = [sys.executable, "-c", runner, *args] if runner else [sys.executable, "-m", "syncd", *args]
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.out: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stderr, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stdout, self.out), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    @property
    def stdout(self) -> str:
        return "\n".join(self.out)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def count(self, fragment: str) -> int:
        return sum(fragment in line for line in self.lines)

    def wait_for_line(self, fragment: str, times: int = 1, timeout: float = 20.0) -> None:
        wait_for(
            lambda: self.count(fragment) >= times or self.process.poll() is not None, timeout, f"{times} x {fragment!r}"
        )
        assert self.count(fragment) >= times, f"exited {self.process.returncode} before {fragment!r}:\n{self.text}"

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running after {timeout}s:\n{self.text}") from None
        finally:
            for reader in self._readers:
                reader.join(5)
        return self.process.returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


class Setup:
    """A simulator, a token file and a config writer for one test."""

    def __init__(self, directory: Path, sim: Simulator) -> None:
        self.directory = directory
        self.sim = sim
        self.config = directory / "config.toml"
        self.store_url = f"sqlite:///{directory / 'syncd.db'}"
        (directory / "token").write_text("t")
        self.processes: list[Syncd] = []

    def write_config(self, *, store_url: str | None = None, extra: str = "", **daemon: Any) -> Path:
        settings = {"interval_minutes": INTERVAL, "stop_timeout_seconds": 10, **daemon}
        lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
        self.config.write_text(
            f"[store]\nurl = {json.dumps(store_url or self.store_url)}\n\n"
            f'[graph]\nauth = "token_file"\ntoken_file = {json.dumps(str(self.directory / "token"))}\n'
            f"base_url = {json.dumps(self.sim.base_url)}\n"
            f"service_principal_id = {json.dumps(self.sim.tenant.service_principal_id)}\nmax_retries = 0\n\n"
            f"[daemon]\n{lines}\n{extra}"
        )
        return self.config

    def environment(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in CLEAN_ENVIRONMENT}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env

    def start(self, *args: str, runner: str | None = None, **env: str) -> Syncd:
        process = Syncd(["--config", str(self.config), *args], self.environment(**env), runner=runner)
        self.processes.append(process)
        return process

    def counts(self, url: str | None = None) -> dict[str, int]:
        with SqlStore(url or self.store_url) as store:
            store.ensure_schema()
            return store.reports.counts()

    def pending_changes(self) -> int:
        """How many changes a sync would still make (0: the store matches the tenant)."""
        return len(run_once(load(str(self.config)), RunOptions(dry_run=True)).plan.changes)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with Simulator(generate_tenant(seed=1, users=30, groups=3), token="t") as sim:
        each = Setup(tmp_path, sim)
        yield each
        for process in each.processes:
            process.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, setup: Setup) -> str:
    """A store URL on each backend."""
    if request.param == "sqlite":
        return setup.store_url
    return str(request.getfixturevalue("postgres_url"))


# --------------------------------------------------------------------------- cycles and signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_daemon_runs_cycles_and_stops_cleanly_on_a_signal(setup: Setup, signum: int) -> None:
    setup.write_config()
    daemon = setup.start("run")
    daemon.wait_for_line("cycle success", times=2)
    assert setup.counts()["active_users"] > 0
    daemon.signal(signum)
    started = time.monotonic()
    assert daemon.wait() == 0, daemon.text
    assert time.monotonic() - started < 10
    assert "stopped" in daemon.lines[-1]
    assert "Traceback" not in daemon.text
    assert daemon.count("+ create user") == setup.counts()["active_users"], "the first cycle applied everything"
    assert setup.pending_changes() == 0


def test_a_graph_outage_fails_cycles_which_recover_without_a_restart(setup: Setup) -> None:
    setup.write_config()
    daemon = setup.start("run")
    daemon.wait_for_line("cycle success")
    setup.sim.fail(".*", status=503, times=None)
    daemon.wait_for_line("cycle failed [GRAPH_UNAVAILABLE]", times=2)
    setup.sim.clear_faults()
    successes = daemon.count("cycle success")
    daemon.wait_for_line("cycle success", times=successes + 1)
    assert daemon.process.poll() is None
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_a_held_lock_skips_the_cycle_until_it_is_free(setup: Setup) -> None:
    setup.write_config()
    with SqlStore(setup.store_url) as store:
        store.ensure_schema()
        with store.lock(holder="test"):
            daemon = setup.start("run")
            daemon.wait_for_line("cycle failed [LOCKED]", times=2)
            assert daemon.count("cycle success") == 0
        daemon.wait_for_line("cycle success")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_pause_and_resume_are_honoured_from_the_next_tick(setup: Setup) -> None:
    setup.write_config()
    daemon = setup.start("run")
    daemon.wait_for_line("cycle success")
    pause = subprocess.run(
        [sys.executable, "-m", "syncd", "--config", str(setup.config), "pause"],
        env=setup.environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pause.returncode == 0, pause.stderr
    daemon.wait_for_line("cycle paused", times=2)
    resume = subprocess.run(
        [sys.executable, "-m", "syncd", "--config", str(setup.config), "resume"],
        env=setup.environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resume.returncode == 0, resume.stderr
    successes = daemon.count("cycle success")
    daemon.wait_for_line("cycle success", times=successes + 1)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_sighup_keeps_the_running_config_when_the_new_one_is_bad_and_takes_a_good_one(setup: Setup) -> None:
    setup.write_config()
    daemon = setup.start("run")
    daemon.wait_for_line("cycle success")
    good = setup.config.read_text()
    setup.config.write_text(
        good.replace(f"interval_minutes = {INTERVAL}", "interval_minutes = -1") + '\n[log]\nformat = "yaml"\n'
    )
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_line("configuration not reloaded, the running one is kept")
    assert "daemon.interval_minutes: must be greater than 0" in daemon.text
    assert 'log.format: must be "text" or "json"' in daemon.text
    successes = daemon.count("cycle success")
    daemon.wait_for_line("cycle success", times=successes + 2)

    setup.config.write_text(good + '\n[log]\nformat = "json"\n')
    daemon.signal(signal.SIGHUP)
    wait_for(
        lambda: any(line.startswith("{") and "cycle success" in line for line in daemon.lines), what="a JSON cycle line"
    )
    entry = json.loads(next(line for line in daemon.lines if line.startswith("{") and "cycle success" in line))
    assert entry["logger"] == "syncd.daemon" and entry["status"] == "success"
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_an_invalid_configuration_exits_78_with_a_clear_message(setup: Setup) -> None:
    setup.write_config(interval_minutes=0)
    daemon = setup.start("run")
    assert daemon.wait() == 78
    assert "invalid configuration" in daemon.text
    assert "daemon.interval_minutes: must be greater than 0" in daemon.text
    assert "Traceback" not in daemon.text


# --------------------------------------------------------------------------- systemd and metrics


def test_notify_protocol_from_a_real_process(setup: Setup, tmp_path: Path) -> None:
    setup.write_config(interval_minutes=1)
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(20)
        daemon = setup.start("run", NOTIFY_SOCKET=str(path), WATCHDOG_USEC="400000")
        received: list[str] = []
        while not any(message.startswith("STATUS=last cycle") for message in received):
            received.append(sock.recv(4096).decode())
        while sum(message == "WATCHDOG=1" for message in received) < 3:
            received.append(sock.recv(4096).decode())
        daemon.signal(signal.SIGTERM)
        while not received[-1].startswith("STOPPING=1"):
            received.append(sock.recv(4096).decode())
        assert daemon.wait() == 0
    assert received[0].startswith("READY=1\nSTATUS=")
    assert any("success: Plan:" in message for message in received if message.startswith("STATUS=last cycle"))


def test_metrics_and_health_of_a_real_process(setup: Setup) -> None:
    port = free_port()
    setup.write_config(metrics_address=f"127.0.0.1:{port}")
    daemon = setup.start("run")
    daemon.wait_for_line("cycle success", times=2)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read())["status"] == "ok"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts = setup.counts()
    assert f'syncd_users{{state="active"}} {counts["active_users"]:.1f}' in text
    assert f"syncd_teams {counts['teams']:.1f}" in text
    assert f'syncd_changes_applied_total{{op="create_user"}} {counts["active_users"]:.1f}' in text
    assert "syncd_graph_requests_total" in text and "process_resident_memory_bytes" in text

    setup.sim.fail(".*", status=401, times=None)
    daemon.wait_for_line("cycle failed [GRAPH_AUTH]")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert 'syncd_cycle_errors_total{code="GRAPH_AUTH"}' in response.read().decode()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_health_turns_503_when_cycles_keep_failing(setup: Setup) -> None:
    port = free_port()
    setup.write_config(metrics_address=f"127.0.0.1:{port}", interval_minutes=0.002)
    setup.sim.fail(".*", status=503, times=None)
    daemon = setup.start("run")
    daemon.wait_for_line("cycle failed [GRAPH_UNAVAILABLE]")
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert answer.value.code == 503
    body = json.loads(answer.value.read())
    assert body["status"] == "unhealthy"
    assert body["reason"].startswith("no successful cycle yet; last cycle: failed: [GRAPH_UNAVAILABLE]")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


# --------------------------------------------------------------------------- SIGTERM during an apply


def start_slow_apply(
    setup: Setup, tmp_path: Path, delay: float, stop_timeout: float, url: str | None = None
) -> tuple[Syncd, Path]:
    setup.write_config(store_url=url, interval_minutes=60, stop_timeout_seconds=stop_timeout)
    marker = tmp_path / "apply-started"
    daemon = setup.start("run", runner=SLOW_APPLY_RUNNER, APPLY_MARKER=str(marker), APPLY_DELAY=str(delay))
    wait_for(marker.exists, what="the apply to begin")
    return daemon, marker


def test_sigterm_during_an_apply_lets_it_finish_when_there_is_time(setup: Setup, tmp_path: Path, url: str) -> None:
    daemon, _ = start_slow_apply(setup, tmp_path, delay=0.4, stop_timeout=20, url=url)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.text
    assert "cycle success" in daemon.text
    assert setup.pending_changes() == 0, "fully applied"


def test_sigterm_during_an_apply_that_overruns_the_stop_timeout_asks_it_to_stop_and_rolls_it_back(
    setup: Setup, tmp_path: Path, url: str
) -> None:
    daemon, _ = start_slow_apply(setup, tmp_path, delay=0.6, stop_timeout=2, url=url)
    daemon.signal(signal.SIGTERM)
    started = time.monotonic()
    assert daemon.wait() == 0, daemon.text
    assert time.monotonic() - started < 2 + 1
    assert "interrupting the cycle in flight" in daemon.text
    assert "cycle interrupted by shutdown" in daemon.text and "nothing of it was applied" in daemon.text
    assert "exiting without it" not in daemon.text, "it stopped at its next step, in time"
    assert "stopped" in daemon.lines[-1]
    assert setup.counts(url) == {"active_users": 0, "inactive_users": 0, "teams": 0}, "as before the cycle"
    with SqlStore(url) as store:
        last = store.reports.last_run()
    assert last is not None and last["status"] == "failed" and last["changes"] == 0
    assert last["message"] == "interrupted by shutdown; nothing of this run was applied"


def test_a_second_sigterm_asks_the_cycle_to_stop_at_once(setup: Setup, tmp_path: Path, url: str) -> None:
    daemon, _ = start_slow_apply(setup, tmp_path, delay=0.6, stop_timeout=60, url=url)
    daemon.signal(signal.SIGTERM)
    daemon.wait_for_line("stopping: waiting up to 60s")
    daemon.signal(signal.SIGTERM)
    started = time.monotonic()
    assert daemon.wait() == 0, daemon.text
    assert time.monotonic() - started < 3
    assert "second stop request: interrupting the cycle in flight" in daemon.text
    assert "cycle interrupted by shutdown" in daemon.text
    assert setup.counts(url) == {"active_users": 0, "inactive_users": 0, "teams": 0}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_third_signal_exits_at_once_when_the_cycle_cannot_stop(setup: Setup, tmp_path: Path, signum: int) -> None:
    runner = SLOW_APPLY_RUNNER.replace(
        "while time.monotonic() < end:\n            time.sleep(0.01)", "time.sleep(delay)"
    )
    setup.write_config(interval_minutes=60, stop_timeout_seconds=60)
    marker = tmp_path / "apply-started"
    daemon = setup.start("run", runner=runner, APPLY_MARKER=str(marker), APPLY_DELAY="30")
    wait_for(marker.exists, what="the apply to begin")
    daemon.signal(signum)
    daemon.wait_for_line("stopping: waiting up to 60s")
    daemon.signal(signum)
    daemon.wait_for_line("second stop request")
    daemon.signal(signum)
    started = time.monotonic()
    assert daemon.wait() == 0, daemon.text
    assert time.monotonic() - started < 2
    assert "exiting without it: nothing of it was applied" in daemon.text
    assert setup.counts() == {"active_users": 0, "inactive_users": 0, "teams": 0}, "as before the cycle"


def test_a_cycle_that_ignores_the_interrupt_is_abandoned_to_the_database_rollback(setup: Setup, tmp_path: Path) -> None:
    runner = SLOW_APPLY_RUNNER.replace(
        "while time.monotonic() < end:\n            time.sleep(0.01)", "time.sleep(delay)"
    )
    setup.write_config(interval_minutes=60, stop_timeout_seconds=1)
    marker = tmp_path / "apply-started"
    daemon = setup.start("run", runner=runner, APPLY_MARKER=str(marker), APPLY_DELAY="30")
    wait_for(marker.exists, what="the apply to begin")
    daemon.signal(signal.SIGTERM)
    started = time.monotonic()
    assert daemon.wait() == 0, daemon.text
    assert time.monotonic() - started < 1 + 1
    assert "did not stop within 1s; exiting without it: nothing of it was applied" in daemon.text
    assert setup.counts() == {"active_users": 0, "inactive_users": 0, "teams": 0}, "as before the cycle"
    with SqlStore(setup.store_url) as store:
        left = store.reports.last_run()
        assert left is not None and left["status"] == "running", "the process ended under it"
        run_once(load(str(setup.config)), RunOptions())
        relabelled = store.reports.run(left["id"])
    assert relabelled is not None and relabelled["status"] == "failed" and relabelled["changes"] == 0
    assert "nothing of it was applied" in relabelled["message"]
    assert setup.pending_changes() == 0
