"""A store with the history an operator would meet: applied runs, per-object problems, a failed run,
an incomplete read, and a safety refusal still pending.  Shared by the status page's tests and its
browser test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd.config import Config
from syncd.errors import GraphError
from syncd.reconcile import RunOptions, RunResult, run_once
from syncd.runs import RunStatus
from syncd.simulator import Simulator, Tenant
from syncd.store import SqlStore
from tests.test_incremental import configure as incremental_configure

TOKEN = "status-page-token"
HOSTILE_TEAM = "<b>R&D</b> \"quoted\" <script>alert('x')</script>"


@dataclass
class History:
    sim: Simulator
    store: SqlStore
    config: Config
    results: dict[str, RunResult]
    unassigned: dict[str, str]
    """The users the pending refusal would deactivate: their emails by Entra id."""

    @property
    def tenant(self) -> Tenant:
        return self.sim.tenant

    def sync(self, config: Config | None = None) -> RunResult:
        return run_once(config or self.config, RunOptions(), store=self.store)


def configure(sim: Simulator, folder: Path, **safety: int) -> Config:
    url = f"sqlite:///{folder / 'syncd.db'}"
    return incremental_configure(sim, folder, url, token_text=TOKEN, safety={"max_deactivations": 5, **safety})


@contextmanager
def history(folder: Path) -> Iterator[History]:
    """Runs, oldest first: success, partial (a job title that cannot be stored, a name normalised), failed
    (Graph refused the token), incomplete (the groups could not be read), success, refused
    (eight users unassigned at once, over ``max_deactivations = 5``)."""
    tenant = Tenant(seed=12)
    admin = tenant.add_app_role("Admin", "admin")
    people = [tenant.add_user(f"user{n:02}@contoso.com", f"User {n:02}", job_title="Engineer") for n in range(24)]
    tenant.assign(people[0], admin)
    for person in people[1:]:
        tenant.assign(person)
    sales = tenant.add_group("Sales", members=people[:12])
    hostile = tenant.add_group(HOSTILE_TEAM, members=people[12:16])
    tenant.assign(sales)
    tenant.assign(hostile)
    with Simulator(tenant, token=TOKEN) as sim:
        config = configure(sim, folder)
        store = SqlStore(config.store.url)
        store.ensure_schema()
        try:
            world = History(sim, store, config, {}, {})
            results = world.results
            results["first"] = world.sync()

            tenant.assign(tenant.add_user("bell@contoso.com", "Bell", job_title="Ring\athe bell"))
            tenant.assign(tenant.add_user("odd@contoso.com", "Ödd <Bot> #1"))
            results["partial"] = world.sync()

            sim.fail(r"/servicePrincipals/", status=401, times=None)
            with pytest.raises(GraphError):
                world.sync()
            sim.clear_faults()

            sim.fail(r"/groups/delta", status=503, times=None)
            results["incomplete"] = world.sync()
            sim.clear_faults()

            results["success"] = world.sync()
            for n in range(16, 24):
                tenant.unassign(people[n])
                world.unassigned[people[n]] = f"user{n:02}@contoso.com"
            results["refused"] = world.sync()
            assert results["refused"].status == RunStatus.REFUSED, results["refused"].message
            yield world
        finally:
            store.close()
