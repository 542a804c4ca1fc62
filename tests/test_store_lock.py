"""One run at a time, across processes; a run that dies never blocks the next one."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from syncd.errors import LockedError
from syncd.store import SqlStore

HOLDER = """
import sys, time
from syncd.store import SqlStore


store = SqlStore(sys.argv[1])
with store.lock(holder="holder under test"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", flush=True)
"""

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(sql_store):
    """These tests look beneath the store contract: SQLite and PostgreSQL only."""
    return sql_store


@contextmanager
def holder_process(url: str, hold_seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock (for ``hold_seconds``) by the time the block starts."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(hold_seconds)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line == "locked", process.stderr.read() if process.stderr else line
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_a_second_run_waits_then_is_told_who_holds_the_lock(store, store_url):
    with holder_process(store_url, 60) as holder:
        started = time.monotonic()
        with pytest.raises(LockedError) as raised, store.lock(wait_seconds=0.6):
            pass
        waited = time.monotonic() - started
    assert waited >= 0.6
    message = raised.value.message
    assert f"pid {holder.pid}" in message
    assert f"host {socket.gethostname()}" in message
    assert "since 20" in message
    assert "holder under test" in message
    assert raised.value.code == "LOCKED"


def test_a_run_waiting_long_enough_gets_the_lock(store, store_url):
    with holder_process(store_url, 1.0), store.lock(wait_seconds=30):
        pass


def test_a_killed_holder_does_not_block_the_next_run(store, store_url):
    with holder_process(store_url, 60) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with store.lock(wait_seconds=10):
            pass


def test_the_lock_is_free_again_after_the_block(store):
    with store.lock(holder="first"):
        pass
    with store.lock(holder="second"):
        pass


def test_two_stores_in_one_process_exclude_each_other(store, store_url):
    with (
        SqlStore(store_url) as other,
        store.lock(holder="first"),
        pytest.raises(LockedError, match="first"),
        other.lock(),
    ):
        pass


def test_stores_in_different_databases_do_not_block_each_other(store, tmp_path):
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    with SqlStore(other_url) as other, store.lock(), other.lock():
        pass


def test_an_in_memory_store_locks_within_the_process():
    with (
        SqlStore("sqlite://") as memory,
        memory.lock(holder="memory"),
        pytest.raises(LockedError, match="memory"),
        memory.lock(),
    ):
        pass


def test_the_lock_works_before_the_schema_exists(store_url):
    with SqlStore.open(store_url) as empty, empty.lock(holder="first run"):
        empty.ensure_schema()
