"""One store, several syncd processes: the run lock decides who syncs.

These drive the real command line (``python -m syncd``): two ``syncd sync`` started together,
a lock holder killed with SIGKILL in the middle of its apply, and two ``syncd run`` daemons sharing one PostgreSQL store
for high availability.
"""

from __future__ import annotations

import itertools
import signal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from syncd.store.schema import sync_runs

from .test_daemon_process import SLOW_APPLY_RUNNER, Setup, Syncd, wait_for
from .test_daemon_process import setup as setup  # the fixtures, re-exported for pytest
from .test_daemon_process import url as url

pytestmark = pytest.mark.slow


def test_two_syncs_started_together_one_applies_and_the_other_exits_75(setup: Setup, url: str) -> None:
    setup.write_config(store_url=url)
    held = setup.sim.hold("appRoleAssignedTo")  # the first run reads Graph under the lock until released
    first = setup.start("sync")
    wait_for(held.arrived.is_set, what="the first run to hold the lock and read the assignments")
    second = setup.start("sync")
    assert second.wait(60) == 75, second.text
    assert "another syncd run holds the lock" in second.text
    held.release.set()
    assert first.wait(60) == 0, first.text
    setup.sim.clear_faults()
    assert setup.pending_changes() == 0


def test_a_lock_holder_killed_with_sigkill_does_not_block_the_next_run(setup: Setup, url: str, tmp_path: Path) -> None:
    setup.write_config(store_url=url)
    marker = tmp_path / "apply-started"
    holder = setup.start("sync", runner=SLOW_APPLY_RUNNER, APPLY_MARKER=str(marker), APPLY_DELAY="30")
    wait_for(marker.exists, what="the first run to hold the lock and begin its apply")
    holder.signal(signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    assert setup.counts(url) == {"active_users": 0, "inactive_users": 0, "teams": 0}, "its apply was rolled back"
    after = setup.start("sync")
    assert after.wait(60) == 0, after.text
    assert setup.pending_changes() == 0


@pytest.mark.postgres
def test_two_daemons_on_one_postgresql_store_never_run_a_cycle_at_once(
    setup: Setup,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    held = setup.sim.hold("appRoleAssignedTo")  # the first daemon's first cycle reads Graph under the lock
    daemons: list[Syncd] = []
    for name in ("a", "b"):
        setup.config = tmp_path / f"{name}.toml"
        setup.write_config(store_url=postgres_url, interval_minutes=0.003)
        daemons.append(setup.start("run"))
        if name == "a":
            wait_for(held.arrived.is_set, what="the first daemon to hold the lock and read the assignments")
    active, standby = daemons
    wait_for(lambda: standby.count("cycle failed [LOCKED]") >= 1, timeout=60, what="a LOCKED skip of the second")
    assert active.count("cycle success") == 0
    held.release.set()
    setup.sim.clear_faults()
    wait_for(lambda: sum(d.count("cycle success") for d in daemons) >= 6, timeout=60, what="six cycles")
    # the daemon that held the lock first stops: the other one takes over
    standby_before = standby.count("cycle success")
    active.signal(signal.SIGTERM)
    assert active.wait() == 0
    wait_for(lambda: standby.count("cycle success") > standby_before, timeout=60, what="the standby to take over")
    standby.signal(signal.SIGTERM)
    assert standby.wait() == 0
    assert all(daemon.count("cycle success") >= 1 for daemon in daemons), "either daemon can take a cycle"

    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            runs = connection.execute(
                select(sync_runs.c.started_at, sync_runs.c.finished_at, sync_runs.c.status)
                .where(sync_runs.c.status != "dry_run")
                .order_by(sync_runs.c.started_at)
            ).all()
    finally:
        engine.dispose()
    assert len(runs) >= 6
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None
        assert later.started_at >= earlier.finished_at, "two cycles overlapped"
