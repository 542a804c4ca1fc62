"""Kill syncd anywhere: the data and the run record always agree, and the next sync converges.

Each scenario takes a store holding an earlier sync, starts ``syncd sync`` or ``syncd run`` as a
real process against the simulator (a tenant of a thousand users, whose next sync creates,
updates, renames and deactivates), and stops it with SIGKILL or SIGTERM at one point:

* ``fetch``: while Graph is being read (every request slowed down);
* ``apply``: inside the apply's transaction (every write slowed down, SLOW_APPLY_RUNNER's way);
* ``logging``: after the commit, while the change lines are being logged (each line slowed down).

Afterwards the run is either finished (success, partial or incomplete) with every change it counts
in the store, or it is ``running``/``failed`` with no changes and the store exactly as before; what
the process said agrees; and the next sync relabels a dead run truthfully and leaves nothing to do.
The slowdowns are SQLAlchemy and logging hooks in a runner script: no syncd code is replaced.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.config import load
from syncd.graph.fetch import fetch_snapshot
from syncd.graph.snapshot_file import write_snapshot
from syncd.reconcile import RunOptions, run_once
from syncd.simulator import Simulator, generate_tenant
from syncd.store import SqlStore
from tests.test_daemon_process import Setup, Syncd, wait_for

pytestmark = pytest.mark.slow

STOP_TIMEOUT = 1.0
EXIT_BOUND = 1.0
"""What ending the interpreter may add to a stop (a heavy import graph to tear down)."""
COMMITTED = ("success", "partial", "incomplete")
KINDS_OF_CHANGE = {"create_user", "update_user", "deactivate_user", "rename_team", "create_team", "add_member"}
"""What the stopped sync does to the earlier store (see the ``tenant`` fixture)."""

KILL_RUNNER = """
import logging, os, sys, time
from pathlib import Path
from sqlalchemy import event
from sqlalchemy.engine import Engine

if "APPLY_DELAY" in os.environ:
    apply_marker, apply_delay = Path(os.environ["APPLY_MARKER"]), float(os.environ["APPLY_DELAY"])

    @event.listens_for(Engine, "before_cursor_execute")
    def slow_apply(conn, cursor, statement, parameters, context, executemany):
        writes = ("INSERT INTO USERS", "INSERT INTO TEAMS", "INSERT INTO TEAM_MEMBERS", "RELEASE SAVEPOINT")
        if statement.lstrip().upper().startswith(writes):
            apply_marker.touch()
            end = time.monotonic() + apply_delay
            while time.monotonic() < end:
                time.sleep(0.01)

if "LOG_DELAY" in os.environ:
    log_marker, log_delay = Path(os.environ["LOG_MARKER"]), float(os.environ["LOG_DELAY"])

    class SlowChangeLines(logging.Filter):
        def filter(self, record):
            if getattr(record, "op", None) is not None:
                log_marker.touch()
                time.sleep(log_delay)
            return True

    logging.getLogger("syncd").addFilter(SlowChangeLines())

from syncd.cli import main
sys.argv = ["syncd", *sys.argv[1:]]
main()
"""


class Tenant:
    """The simulator, and a snapshot file of the tenant as it was at the earlier sync."""

    def __init__(self, sim: Simulator, earlier: Path) -> None:
        self.sim = sim
        self.earlier = earlier


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenant]:
    directory = tmp_path_factory.mktemp("kills")
    (directory / "token").write_text("t")
    data = generate_tenant(seed=11, users=1000, groups=5, direct_assignments=40)
    with Simulator(data, token="t") as sim:
        groups = [item for item in data.assignments.values() if item.principal_type == "Group"]
        direct = [item for item in data.assignments.values() if item.principal_type == "User"]
        kept_group, later = groups[0], groups[1:] + direct[10:]
        for item in later:
            data.unassign(item.principal_id, item.app_role_id)
        earlier = directory / "earlier.json"
        config = Setup(directory, sim).write_config()
        write_snapshot(fetch_snapshot(load(str(config)).graph, load(str(config)).sync), earlier)
        for item in later:
            data.assign(item.principal_id, item.app_role_id)
        # the next sync also renames a team, updates users and deactivates one
        data.rename_group(kept_group.principal_id, "Renamed since")
        group = data.groups[kept_group.principal_id]
        for member_id in list(group.members or ())[:50]:
            if member_id in data.users:
                data.update_user(member_id, jobTitle="Moved on")
        data.unassign(direct[0].principal_id)
        yield Tenant(sim, earlier)


BOTH_STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def scenario(request: pytest.FixtureRequest, tenant: Tenant, tmp_path: Path) -> Iterator[Scenario]:
    url = f"sqlite:///{tmp_path / 'syncd.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    each = Scenario(tenant, tmp_path, url)
    yield each
    tenant.sim.clear_faults()
    for process in each.setup.processes:
        process.stop()


class Scenario:
    """One store synced from the earlier tenant, and a syncd process to stop."""

    def __init__(self, tenant: Tenant, directory: Path, url: str) -> None:
        self.tenant = tenant
        self.url = url
        self.setup = Setup(directory, tenant.sim)
        self.config = self.setup.write_config(store_url=url, interval_minutes=60, stop_timeout_seconds=STOP_TIMEOUT)
        earlier = run_once(load(str(self.config)), RunOptions(snapshot_path=str(tenant.earlier)))
        assert earlier.run_id is not None and earlier.applied > 100
        self.earlier_run = earlier.run_id
        self.before = self.contents()
        self.apply_marker = directory / "apply-started"
        self.log_marker = directory / "logging-started"

    def contents(self) -> tuple[Any, ...]:
        with SqlStore(self.url) as store:
            return store.load_state(), store.reports.users(), store.reports.teams()

    def start(self, command: str, point: str) -> Syncd:
        env: dict[str, str] = {}
        if point == "fetch":
            self.tenant.sim.delay(0.2)
        elif point == "apply":
            env = {"APPLY_MARKER": str(self.apply_marker), "APPLY_DELAY": "0.3"}
        else:
            env = {"LOG_MARKER": str(self.log_marker), "LOG_DELAY": "0.003"}
        served = self.tenant.sim.requests
        process = self.setup.start(command, runner=KILL_RUNNER, **env)
        if point == "fetch":
            wait_for(lambda: self.tenant.sim.requests >= served + 3, what="Graph to be read")
        else:
            wait_for((self.apply_marker if point == "apply" else self.log_marker).exists, what=f"the {point}")
        return process

    def wait(self, process: Syncd) -> int:
        """The exit status of ``process``; Graph answers at full speed again from then on."""
        try:
            return process.wait(timeout=30)
        finally:
            self.tenant.sim.clear_faults()

    def runs_since(self) -> list[dict[str, Any]]:
        with SqlStore(self.url) as store:
            return [run for run in store.reports.runs(limit=50) if run["id"] > self.earlier_run][::-1]

    def applied_rows(self, run_id: int) -> int:
        with SqlStore(self.url) as store:
            return sum(row["status"] == "applied" for row in store.reports.audit(run_id, limit=None))

    def pending(self) -> int:
        return len(run_once(load(str(self.config)), RunOptions(dry_run=True)).plan.changes)


def check_agreement(each: Scenario) -> dict[str, Any]:
    """The stopped run and the store agree; returns the run."""
    (run,) = each.runs_since()
    if run["status"] in COMMITTED:
        assert run["changes"] > 0 and each.applied_rows(run["id"]) == run["changes"], run
        assert set(run["summary"]) >= KINDS_OF_CHANGE, run["summary"]
        assert each.pending() == 0, "a finished run holds all of its changes"
    else:
        assert run["status"] in ("running", "failed"), run
        assert run["changes"] == 0 and each.applied_rows(run["id"]) == 0, run
        assert each.contents() == each.before, "a run that was not committed changed nothing"
    return run


def check_convergence(each: Scenario, stopped: dict[str, Any]) -> None:
    following = run_once(load(str(each.config)), RunOptions())
    assert following.status in COMMITTED
    with SqlStore(each.url) as store:
        after = store.reports.run(stopped["id"])
    assert after is not None
    if stopped["status"] == "running":
        assert (after["status"], after["changes"]) == ("failed", 0)
        assert "nothing of it was applied" in after["message"]
    else:
        assert after == stopped, "the next run leaves a run that ended as it is"
    assert each.pending() == 0


EXPECTED = {"fetch": "rolled back", "apply": "rolled back", "logging": "committed"}
ROLLED_BACK_LINE = {
    "run": "nothing of it was applied",
    "sync": "Stopped: nothing of it was applied",
}


@pytest.mark.parametrize("scenario", BOTH_STORES, indirect=True)
@pytest.mark.parametrize("point", ["fetch", "apply", "logging"])
def test_sigkill_at_any_point_leaves_the_run_record_and_the_data_in_agreement(scenario: Scenario, point: str) -> None:
    process = scenario.start("sync", point)
    process.signal(signal.SIGKILL)
    assert scenario.wait(process) == -signal.SIGKILL
    run = check_agreement(scenario)
    if EXPECTED[point] == "committed":
        assert run["status"] in COMMITTED, "the commit happened before the change lines were logged"
    else:
        assert run["status"] == "running", "killed before its commit: nothing recorded, nothing kept"
    check_convergence(scenario, run)


@pytest.mark.parametrize(
    ("scenario", "command"),
    [("sqlite", "sync"), ("sqlite", "run"), pytest.param("postgres", "run", marks=pytest.mark.postgres)],
    indirect=["scenario"],
)
@pytest.mark.parametrize("point", ["fetch", "apply", "logging"])
def test_sigterm_at_any_point_stops_in_time_and_says_what_the_store_holds(
    scenario: Scenario, point: str, command: str
) -> None:
    """``syncd run`` on both stores; ``syncd sync`` (whose SIGTERM the CLI turns into the same
    cooperative stop) on SQLite."""
    process = scenario.start(command, point)
    process.signal(signal.SIGTERM)
    began = time.monotonic()
    code = scenario.wait(process)
    took = time.monotonic() - began
    run = check_agreement(scenario)
    said = process.text
    assert "internal error" not in said
    assert "Traceback" not in said and "Exception ignored" not in said
    if EXPECTED[point] == "committed":
        assert run["status"] in COMMITTED
        assert "nothing of it was applied" not in said and "nothing half-applied" not in said
        assert "were applied and committed" in said, "the cut-short logging says the changes are in"
        if command == "sync":
            assert code == (0 if run["status"] == "success" else 3), said
            assert f"Run {run['id']} {run['status']}: applied {run['changes']} changes" in process.stdout
    else:
        assert (run["status"], run["message"]) == ("failed", "interrupted by shutdown; nothing of this run was applied")
        assert ROLLED_BACK_LINE[command] in said
        if command == "sync":
            assert code == 130, said
    if command == "run":
        assert code == 0, said
        assert took < STOP_TIMEOUT + EXIT_BOUND, f"stopped within the stop timeout ({took:.1f}s)\n{said}"
        assert "exiting without it" not in said, "it stopped at its next step"
    check_convergence(scenario, run)
