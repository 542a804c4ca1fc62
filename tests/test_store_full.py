"""A store on a full disk: every such failure is STORE_FAILED (exit 1) with its reason, never an
internal error, and nothing half-applied stays behind.

The disk is made full without privileges, in the syncd process alone: SQLite's ``max_page_count``
(set on every connection through a SQLAlchemy event, so no syncd code is replaced) stops the
database from growing, and ``RLIMIT_FSIZE`` makes every write past a size fail as a full disk does.
PostgreSQL's own answer to a full disk (SQLSTATE 53100) is raised by the server from a trigger.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.config import load
from syncd.reconcile import RunOptions, run_once
from syncd.simulator import Simulator, generate_tenant
from syncd.store import SqlStore
from tests.test_daemon_process import Setup

pytestmark = pytest.mark.slow

FULL_DISK_RUNNER = """
import os, resource, signal, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

if "MAX_PAGE_COUNT" in os.environ:
    @event.listens_for(Engine, "connect")
    def cannot_grow(dbapi_connection, record):
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            dbapi_connection.execute("PRAGMA max_page_count=" + os.environ["MAX_PAGE_COUNT"])

if "FILE_SIZE_LIMIT" in os.environ:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(os.environ["FILE_SIZE_LIMIT"]), hard))

from syncd.cli import main
sys.argv = ["syncd", *sys.argv[1:]]
main()
"""
"""Runs syncd with a database that cannot grow past $MAX_PAGE_COUNT pages, or with every file
write limited to $FILE_SIZE_LIMIT bytes."""


@pytest.fixture
def synced(tmp_path: Path) -> Iterator[Setup]:
    """A SQLite store synced with a tenant that then gains 600 users: the next sync must grow it."""
    yield from synced_setup(tmp_path, None)


@pytest.fixture
def synced_postgres(tmp_path: Path, postgres_url: str) -> Iterator[Setup]:
    """The same on PostgreSQL."""
    yield from synced_setup(tmp_path, postgres_url)


def synced_setup(tmp_path: Path, url: str | None) -> Iterator[Setup]:
    tenant = generate_tenant(seed=3, users=400, groups=4)
    with Simulator(tenant, token="t") as sim:
        setup = Setup(tmp_path, sim)
        if url is not None:
            setup.store_url = url
        setup.write_config()
        first = run_once(load(str(setup.config)), RunOptions())
        assert first.status == "success"
        group_id = next(iter(tenant.groups))
        for index in range(600):
            user_id = tenant.add_user(f"newcomer{index}@contoso.com", f"Newcomer {index} {'x' * 150}")
            tenant.add_member(group_id, user_id)
        yield setup
        for process in setup.processes:
            process.stop()


def store_contents(url: str) -> tuple[object, ...]:
    with SqlStore(url) as store:
        return store.load_state(), store.reports.users(), store.reports.teams()


def page_count(setup: Setup) -> int:
    with sqlite3.connect(setup.directory / "syncd.db") as connection:
        return int(connection.execute("PRAGMA page_count").fetchone()[0])


def syncd(setup: Setup, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FULL_DISK_RUNNER, "--config", str(setup.config), *args],
        env=setup.environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_store_failed(answer: subprocess.CompletedProcess[str], reason: str) -> None:
    assert answer.returncode == 1, answer.stderr
    assert "syncd: error [STORE_FAILED]: " in answer.stderr
    assert reason in answer.stderr
    assert "internal error" not in answer.stderr and "Traceback" not in answer.stderr


def test_a_database_that_cannot_grow_fails_the_sync_with_store_failed_and_keeps_nothing(synced: Setup) -> None:
    before = store_contents(synced.store_url)
    answer = syncd(synced, "sync", MAX_PAGE_COUNT=str(page_count(synced)))
    assert_store_failed(answer, "database or disk is full")
    assert store_contents(synced.store_url) == before, "nothing half-applied"
    with SqlStore(synced.store_url) as store:
        last = store.reports.last_run()
    assert last is not None and (last["status"], last["changes"]) == ("failed", 0)
    assert last["message"].startswith("STORE_FAILED: database error: database or disk is full")
    assert synced.pending_changes() > 0
    run_once(load(str(synced.config)), RunOptions())
    assert synced.pending_changes() == 0, "the next sync with room to grow converges"


def test_a_full_disk_at_the_lock_file_is_store_failed_not_an_internal_error(synced: Setup) -> None:
    before = store_contents(synced.store_url)
    answer = syncd(synced, "sync", FILE_SIZE_LIMIT="0")
    assert_store_failed(answer, "cannot write the lock file")
    assert store_contents(synced.store_url) == before


def test_a_full_disk_under_the_database_is_store_failed_with_the_reason(synced: Setup) -> None:
    before = store_contents(synced.store_url)
    answer = syncd(synced, "sync", FILE_SIZE_LIMIT="4096")
    assert_store_failed(answer, "database error: ")
    assert store_contents(synced.store_url) == before
    with SqlStore(synced.store_url) as store:
        runs = store.reports.runs()
    assert [run["status"] for run in runs if run["status"] not in ("success", "failed")] == [], (
        "any run is finished or failed; none claims changes it could not write"
    )


def test_the_daemon_reports_a_full_database_as_a_failed_cycle_and_keeps_running(synced: Setup) -> None:
    before = store_contents(synced.store_url)
    daemon = synced.start("run", runner=FULL_DISK_RUNNER, MAX_PAGE_COUNT=str(page_count(synced)))
    daemon.wait_for_line("cycle failed [STORE_FAILED]", times=2, timeout=60)
    assert "database or disk is full" in daemon.text
    assert daemon.process.poll() is None
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0, daemon.text
    assert "Traceback" not in daemon.text
    assert store_contents(synced.store_url) == before


@pytest.mark.postgres
def test_a_postgresql_server_out_of_disk_fails_the_sync_with_store_failed_and_keeps_nothing(
    synced_postgres: Setup,
) -> None:
    """What PostgreSQL answers on a full disk (SQLSTATE 53100, "could not extend file"), raised by
    the server itself from a trigger on the users table of this test's schema."""
    url = synced_postgres.store_url
    with SqlStore(url) as store, store.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION USING ERRCODE = 'disk_full', "
            "MESSAGE = 'could not extend file \"base/16384/16417\": No space left on device'; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER disk_full BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION disk_full()"
        )
    before = store_contents(url)
    answer = syncd(synced_postgres, "sync")
    assert_store_failed(answer, "could not extend file")
    assert store_contents(url) == before, "nothing half-applied"
    with SqlStore(url) as store:
        last = store.reports.last_run()
    assert last is not None and (last["status"], last["changes"]) == ("failed", 0)
    assert last["message"].startswith("STORE_FAILED: database error: could not extend file")
