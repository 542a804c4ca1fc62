"""Incremental runs: a run reads only what changed, costs a handful of requests, and ends where a full
read would.  When a full read is due it makes one; a link advances only with an applied run."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.config import Config, build
from syncd.errors import GraphError
from syncd.reconcile import RunMemory, RunOptions, RunResult, run_once
from syncd.runs import RunStatus
from syncd.simulator import Simulator, Tenant, generate_tenant
from syncd.store import SqlStore, Store
from syncd.store.rows import CURSOR_KEY

TOKEN = "incremental-test-token"
DELTA_PATHS = ("/users/delta", "/groups/delta", "/directoryObjects/delta")


@dataclass
class World:
    sim: Simulator
    store: SqlStore
    config: Config
    folder: Path

    @property
    def tenant(self) -> Tenant:
        return self.sim.tenant

    def sync(self, **options: Any) -> RunResult:
        return run_once(self.config, RunOptions(**options), store=self.store)

    def full_sync_into(self, store: Store) -> RunResult:
        return run_once(self.config, RunOptions(full=True), store=store)

    def paths(self) -> list[str]:
        return [target.split("?")[0].removeprefix("/v1.0") for _, target, _ in self.sim.request_log]

    def cursor(self) -> str | None:
        return self.store.get_state(CURSOR_KEY)


NO_LIMITS = {
    "max_deactivations": 10**6,
    "max_team_deletions": 10**6,
    "max_member_removals": 10**6,
    "max_type_downgrades": 10**6,
    "max_percent": 100,
}
"""Safety limits no test run reaches: every step of a test is applied."""


def configure(
    sim: Simulator,
    folder: Path,
    store_url: str,
    *,
    token_text: str = TOKEN,
    safety: dict[str, Any] | None = None,
    **sync: Any,
) -> Config:
    """A configuration that syncs ``sim``'s tenant into ``store_url`` (``safety``: the limits, none
    that a test reaches unless given)."""
    token = folder / "token"
    token.write_text(token_text)
    return build(
        {
            "store": {"url": store_url},
            "graph": {
                "auth": "token_file",
                "token_file": str(token),
                "base_url": sim.base_url,
                "service_principal_id": sim.tenant.service_principal_id,
                "max_retries": 0,
            },
            "sync": sync,
            "safety": NO_LIMITS if safety is None else safety,
        },
        base=folder,
    )


def directory(store: Store) -> tuple[Any, Any]:
    """What the store holds, by Entra id and email, ids of its own rows left out."""
    return store.reports.users(), store.reports.teams()


@contextmanager
def served(tmp_path: Path, tenant: Tenant, store_url: str | None = None) -> Iterator[World]:
    """``tenant`` served by a simulator, and a store (SQLite in ``tmp_path`` unless ``store_url``
    names another) configured to sync it."""
    with Simulator(tenant, token=TOKEN) as sim:
        config = configure(sim, tmp_path, store_url or f"sqlite:///{tmp_path / 'syncd.db'}")
        store = SqlStore(config.store.url)
        store.ensure_schema()
        try:
            yield World(sim, store, config, tmp_path)
        finally:
            store.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with served(tmp_path, generate_tenant(seed=3, users=300, groups=6, direct_assignments=40)) as world:
        yield world


@pytest.fixture
def synced(world: World) -> World:
    first = world.sync()
    assert first.status == RunStatus.SUCCESS, first.message
    return world


def converges_with_a_full_read(world: World) -> None:
    assert world.sync(dry_run=True, full=True).plan.changes == (), "a full read finds nothing left to do"


# --------------------------------------------------------------------------- cost


def test_an_unchanged_run_costs_four_requests(synced: World) -> None:
    synced.sim.reset_counts()
    result = synced.sync()
    assert result.status == RunStatus.SUCCESS and result.applied == 0
    assert result.graph_requests == 4
    paths = synced.paths()
    assert sorted(path for path in paths if path.endswith("/delta")) == sorted(DELTA_PATHS)
    assert sum(path.startswith("/servicePrincipals/") for path in paths) == 1


@pytest.mark.parametrize("users", [50, 2000])
def test_the_cost_of_an_unchanged_run_does_not_grow_with_the_tenant(tmp_path: Path, users: int) -> None:
    tenant = generate_tenant(seed=4, users=users, groups=max(2, users // 90), direct_assignments=users // 10)
    with Simulator(tenant, token=TOKEN) as sim:
        config = configure(sim, tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}")
        assert run_once(config, RunOptions()).status == RunStatus.SUCCESS
        assert run_once(config, RunOptions()).graph_requests == 4


def test_graph_refusing_the_assignment_delta_lists_the_assignments_whole(world: World) -> None:
    world.sim.fail(r"/directoryObjects/delta", status=400, times=None)
    assert world.sync().status == RunStatus.SUCCESS
    assert world.store.reports.reads()["mode"] == "incremental (assignments listed)"
    world.sim.reset_counts()
    assert world.sync().applied == 0
    assignments = len(world.tenant.list_assignments())
    assert world.sim.requests == 3 + math.ceil(assignments / 999)
    user = next(a["principalId"] for a in world.tenant.list_assignments() if a["principalType"] == "User")
    world.tenant.unassign(user)
    result = world.sync()
    assert result.applied_counts.get("deactivate_user") == 1


# --------------------------------------------------------------------------- changes arrive


def test_changes_in_graph_reach_the_store_as_a_full_read_would_bring_them(synced: World) -> None:
    tenant = synced.tenant
    direct = [a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "User"]
    groups = [a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "Group"]
    tenant.update_user(direct[0], display_name="Renamed Person", job_title="Chief")
    tenant.unassign(direct[1])
    tenant.update_user(direct[2], account_enabled=False)
    tenant.delete_user(direct[3])
    tenant.soft_delete_user(direct[4])
    moved = tenant.member_ids(groups[0])[0]
    tenant.remove_member(groups[0], moved)
    tenant.add_member(groups[1], moved)
    tenant.rename_group(groups[2], "Renamed Group")
    tenant.unassign(groups[3])
    newcomer = tenant.add_user("new.person@contoso.com", "New Person")
    tenant.assign(newcomer)
    new_group = tenant.add_group("New Group", members=[newcomer, direct[5]])
    tenant.assign(new_group)

    synced.sim.reset_counts()
    result = synced.sync()
    assert result.status == RunStatus.SUCCESS, result.message
    assert not any(path.endswith("/appRoleAssignedTo") for path in synced.paths()), "no full listing"
    assert synced.sync(dry_run=True, full=True).plan.changes == (), "a full read finds nothing left to do"
    users = {row["entra_id"]: row for row in synced.store.reports.users()}
    assert users[direct[0]]["name"] == "Renamed Person"
    assert (users[direct[1]]["active"], users[direct[1]]["inactive_reason"]) == (False, "unassigned")
    assert users[direct[2]]["inactive_reason"] == "disabled"
    assert users[direct[3]]["inactive_reason"] == "deleted"
    assert users[direct[4]]["inactive_reason"] == "deleted"
    assert users[newcomer]["active"]
    teams = {row["name"]: row for row in synced.store.reports.teams()}
    assert "Renamed Group" in teams and "New Group" in teams


def test_a_restored_user_comes_back_with_its_memberships(synced: World) -> None:
    tenant = synced.tenant
    active = {row["entra_id"] for row in synced.store.reports.users() if row["active"]}
    groups = [a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "Group"]
    member = next(member for group in groups for member in tenant.member_ids(group) if member in active)
    tenant.soft_delete_user(member)
    assert synced.sync().applied_counts.get("deactivate_user") == 1
    tenant.restore_user(member)
    result = synced.sync()
    assert result.applied_counts.get("reactivate_user") == 1
    converges_with_a_full_read(synced)


# --------------------------------------------------------------------------- when a full read is due


def test_a_link_graph_no_longer_honours_makes_a_full_read(synced: World) -> None:
    before = synced.store.reports.reads()["last_full_at"]
    synced.tenant.changelog.reset()
    synced.sim.reset_counts()
    result = synced.sync()
    assert result.status == RunStatus.SUCCESS
    assert any(path.endswith("/appRoleAssignedTo") for path in synced.paths())
    assert synced.store.reports.reads()["last_full_at"] >= before
    synced.sim.reset_counts()
    assert synced.sync().graph_requests == 4, "and incremental runs follow"


def test_an_expired_link_makes_a_full_read(synced: World) -> None:
    synced.tenant.clock = lambda: 10**9  # eight days and more later, on the tenant's clock
    synced.sim.reset_counts()
    assert synced.sync().status == RunStatus.SUCCESS
    assert any(path.endswith("/appRoleAssignedTo") for path in synced.paths())


def _edit_cursor(world: World, **values: Any) -> None:
    cursor = json.loads(world.cursor() or "{}")
    cursor.update(values)
    world.store.set_state(CURSOR_KEY, json.dumps(cursor))


@pytest.mark.parametrize(
    "edit",
    [
        {"selection": "id,displayName"},
        {"full_at": (datetime.now(UTC) - timedelta(hours=25)).isoformat()},
    ],
    ids=["another selection", "older than full_every_hours"],
)
def test_a_full_read_is_made_when_it_is_due(synced: World, edit: dict[str, str]) -> None:
    _edit_cursor(synced, **edit)
    synced.sim.reset_counts()
    assert synced.sync().status == RunStatus.SUCCESS
    assert any(path.endswith("/appRoleAssignedTo") for path in synced.paths())
    synced.sim.reset_counts()
    assert synced.sync().graph_requests == 4


def test_full_asks_for_a_full_read(synced: World) -> None:
    synced.sim.reset_counts()
    assert synced.sync(full=True).graph_requests > 4
    assert any(path.endswith("/appRoleAssignedTo") for path in synced.paths())


def test_nested_groups_read_in_full_every_run(tmp_path: Path) -> None:
    tenant = generate_tenant(seed=5, users=100, groups=3, direct_assignments=10)
    with Simulator(tenant, token=TOKEN) as sim:
        config = configure(sim, tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}", nested_groups=True)
        run_once(config, RunOptions())
        sim.reset_counts()
        run_once(config, RunOptions())
        assert not any("/delta" in target for _, target, _ in sim.request_log)
        assert any("transitiveMembers" in target for _, target, _ in sim.request_log)


# --------------------------------------------------------------------------- the link moves only with an applied run


def test_a_dry_run_leaves_the_link_where_it_was(synced: World) -> None:
    cursor = synced.cursor()
    user = next(a["principalId"] for a in synced.tenant.list_assignments() if a["principalType"] == "User")
    synced.tenant.unassign(user)
    plan = synced.sync(dry_run=True).plan
    assert [change.op for change in plan.changes] == ["deactivate_user"]
    assert synced.cursor() == cursor
    assert synced.sync().applied_counts == {"deactivate_user": 1}, "the change is read again"


def test_a_refused_run_leaves_the_link_where_it_was(synced: World) -> None:
    cursor = synced.cursor()
    users = [a["principalId"] for a in synced.tenant.list_assignments() if a["principalType"] == "User"]
    for user in users[:3]:
        synced.tenant.unassign(user)
    strict = build(
        {**_raw(synced.config), "safety": {"max_deactivations": 1, "max_team_deletions": 50}}, base=synced.folder
    )
    refused = run_once(strict, RunOptions(), store=synced.store)
    assert refused.status == RunStatus.REFUSED
    assert synced.store.reports.last_run()["graph_requests"] == refused.graph_requests > 0
    assert synced.cursor() == cursor
    assert synced.sync().applied_counts == {"deactivate_user": 3}


def test_a_delta_round_that_fails_halfway_feeds_nothing_and_deprovisions_nobody(synced: World) -> None:
    cursor = synced.cursor()
    users = [a["principalId"] for a in synced.tenant.list_assignments() if a["principalType"] == "User"]
    synced.tenant.unassign(users[0])
    synced.tenant.delete_user(users[1])
    synced.sim.fail(r"/groups/delta", status=503, times=None)
    result = synced.sync()
    assert result.status == RunStatus.INCOMPLETE
    assert result.applied_counts.get("deactivate_user", 0) == 0, "nobody is deprovisioned by a half-read round"
    assert synced.cursor() == cursor
    synced.sim.clear_faults()
    after = synced.sync()
    assert after.status == RunStatus.SUCCESS
    assert after.applied_counts == {"deactivate_user": 2}


def test_a_later_page_failing_feeds_nothing(synced: World) -> None:
    cursor = synced.cursor()
    for n in range(250):  # more than one page of users' changes
        synced.tenant.update_user(synced.tenant.user_ids()[n], job_title=f"Title {n}")
    synced.sim.fail(r"/users/delta", status=200, times=None, body={"value": [{"no": "id"}], "@odata.deltaLink": "x"})
    result = synced.sync()
    assert result.status == RunStatus.INCOMPLETE and result.applied == 0
    assert synced.cursor() == cursor


def _raw(config: Config) -> dict[str, Any]:
    return {
        "store": {"url": config.store.url},
        "graph": {
            "auth": "token_file",
            "token_file": config.graph.token_file,
            "base_url": config.graph.base_url,
            "service_principal_id": config.graph.service_principal_id,
            "max_retries": 0,
        },
    }


# --------------------------------------------------------------------------- what a process keeps between runs


def test_memory_between_runs_skips_nothing_another_process_changed(synced: World) -> None:
    memory = RunMemory()
    assert synced.sync(memory=memory).applied == 0
    assert synced.sync(memory=memory).applied == 0
    user = next(row for row in synced.store.reports.users() if row["active"] and row["entra_id"])
    synced.tenant.unassign(user["entra_id"])
    for group in synced.tenant.group_ids():
        if user["entra_id"] in synced.tenant.member_ids(group):
            synced.tenant.remove_member(group, user["entra_id"])
    with SqlStore(synced.config.store.url) as other:  # another process: a cron run, the other daemon
        assert run_once(synced.config, RunOptions(), store=other).applied_counts["deactivate_user"] == 1
        other.local.create_user("local.person@contoso.com", "Local Person")
    result = synced.sync(memory=memory)
    assert result.status == RunStatus.SUCCESS and result.applied == 0, result.plan.changes
    assert synced.sync(dry_run=True, full=True).plan.changes == ()


def test_memory_reuses_a_plan_only_for_the_same_snapshot_state_and_policy(synced: World) -> None:
    memory = RunMemory()
    synced.sync(memory=memory)
    synced.sync(memory=memory)
    reused = memory.last
    assert reused is not None
    assert synced.sync(memory=memory).plan is reused[3], "nothing changed: the same plan"
    strict = build({**_raw(synced.config), "roles": {"map": {"Billing Manager": "viewer"}}}, base=synced.folder)
    changed = run_once(strict, RunOptions(memory=memory), store=synced.store)
    assert changed.plan is not reused[3]
    assert changed.applied_counts.get("update_user", 0) > 0, "a new policy is planned anew"


def test_each_run_record_keeps_the_graph_requests_it_made(world: World) -> None:
    first = world.sync()
    second = world.sync()
    runs = world.store.reports.runs()
    assert [run["graph_requests"] for run in runs[:2]] == [second.graph_requests, first.graph_requests]
    assert second.graph_requests == 4 and first.graph_requests > 4


def test_a_failed_run_keeps_the_graph_requests_it_made_before_failing(synced: World) -> None:
    synced.sim.fail(r"/servicePrincipals/", status=401, times=None)
    synced.sim.reset_counts()
    with pytest.raises(GraphError, match="401"):
        synced.sync()
    failed = synced.store.reports.last_run()
    assert failed["status"] == "failed" and failed["graph_requests"] == synced.sim.requests >= 1


# --------------------------------------------------------------------------- a settled store


class Watched:
    """A store that counts how often a run loads the whole state or the whole mirror."""

    def __init__(self, store: SqlStore) -> None:
        self.store, self.loads = store, Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def load_state(self, *, users: bool = True) -> Any:
        self.loads["state" if users else "teams"] += 1
        return self.store.load_state(users=users)

    def load_mirror(self, *, users: bool = True) -> Any:
        self.loads["mirror" if users else "outline"] += 1
        return self.store.load_mirror(users=users)


@pytest.fixture
def settled(synced: World) -> World:
    """Synced, then one unchanged run, which leaves the settled record."""
    assert synced.sync().applied == 0
    return synced


def test_an_unchanged_run_after_a_settled_one_neither_loads_the_store_nor_plans(settled: World) -> None:
    watched = Watched(settled.store)
    settled.sim.reset_counts()
    result = run_once(settled.config, RunOptions(), store=watched)  # type: ignore[arg-type]
    assert result.status == RunStatus.SUCCESS and result.applied == 0 and result.graph_requests == 4
    assert watched.loads == {"outline": 1}
    assert settled.store.reports.last_run()["status"] == "success"
    converges_with_a_full_read(settled)


def test_changes_outside_the_application_leave_it_settled(settled: World) -> None:
    outsider = settled.tenant.add_user("outsider@contoso.com", "Out Sider")
    settled.tenant.update_user(outsider, jobTitle="Visitor")
    settled.tenant.add_group("Not assigned", members=[outsider])
    watched = Watched(settled.store)
    result = run_once(settled.config, RunOptions(), store=watched)  # type: ignore[arg-type]
    assert result.applied == 0 and watched.loads == {"outline": 1}
    converges_with_a_full_read(settled)


@pytest.mark.parametrize(
    "change",
    ["rename a user", "unassign a user", "rename a group", "remove a member", "new app role"],
)
def test_a_change_to_the_application_makes_a_run_of_its_own(settled: World, change: str) -> None:
    tenant = settled.tenant
    assigned = [a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "User"]
    group = next(a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "Group")
    if change == "rename a user":
        tenant.update_user(assigned[0], displayName="Someone Else")
    elif change == "unassign a user":
        tenant.unassign(assigned[0])
    elif change == "rename a group":
        tenant.rename_group(group, "Renamed Group")
    elif change == "remove a member":
        tenant.remove_member(group, tenant.member_ids(group)[0])
    else:
        tenant.add_app_role("Auditor", "auditor")
    watched = Watched(settled.store)
    settled.sim.reset_counts()
    result = run_once(settled.config, RunOptions(), store=watched)  # type: ignore[arg-type]
    assert result.status in (RunStatus.SUCCESS, RunStatus.PARTIAL)
    assert watched.loads["state"] + watched.loads["teams"] == 1, "the run read the store and planned"
    assert sorted(path for path in settled.paths() if path.endswith("/delta")) == sorted(DELTA_PATHS), (
        "the round read to find the change is the round folded: each link read once"
    )
    if change in ("rename a user", "unassign a user", "rename a group"):
        assert result.applied > 0
    converges_with_a_full_read(settled)


@pytest.fixture
def full_plans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many users each plan made in full (not from a focus) was made for."""
    import syncd.reconcile
    from syncd.plan import diff

    made: list[int] = []

    def counted(snapshot: Any, state: Any, policy: Any = None) -> Any:
        made.append(len(snapshot.users))
        return diff(snapshot, state, policy)

    monkeypatch.setattr(syncd.reconcile, "diff", counted)
    return made


@pytest.mark.parametrize("change", ["rename a user", "unassign a user", "rename a group", "move a member"])
def test_a_small_change_to_a_settled_store_is_planned_from_what_it_concerns(
    settled: World, full_plans: list[int], change: str
) -> None:
    tenant = settled.tenant
    assigned = [a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "User"]
    groups = [a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "Group"]
    if change == "rename a user":
        tenant.update_user(assigned[0], displayName="Someone Else")
    elif change == "unassign a user":
        tenant.unassign(assigned[0])
    elif change == "rename a group":
        tenant.rename_group(groups[0], "Renamed Group")
    else:
        target = set(tenant.member_ids(groups[1]))
        member = next(
            m
            for m in tenant.member_ids(groups[0])
            if m in tenant.users and m not in target and tenant.users[m].props.get("accountEnabled")
        )
        tenant.remove_member(groups[0], member)
        tenant.add_member(groups[1], member)
    watched = Watched(settled.store)
    result = run_once(settled.config, RunOptions(), store=watched)  # type: ignore[arg-type]
    assert result.status == RunStatus.SUCCESS and result.applied > 0
    assert full_plans == [], "planned from the focus, not in full"
    assert watched.loads == {"outline": 1, "teams": 1}, "neither every user nor the whole mirror was read"
    watched = Watched(settled.store)
    again = run_once(settled.config, RunOptions(), store=watched)  # type: ignore[arg-type]
    assert again.applied == 0 and watched.loads == {"outline": 1}, "the focused run left the store settled"
    converges_with_a_full_read(settled)


def test_a_rehire_through_a_settled_store_takes_over_the_deleted_accounts_row(
    settled: World, full_plans: list[int]
) -> None:
    tenant = settled.tenant
    leaver = next(
        a["principalId"]
        for a in tenant.list_assignments()
        if a["principalType"] == "User" and tenant.users[a["principalId"]].props.get("accountEnabled")
    )
    upn = str(tenant.users[leaver].props["userPrincipalName"])
    row = next(user for user in settled.store.reports.users() if user["entra_id"] == leaver)
    tenant.delete_user(leaver)
    assert settled.sync().applied_counts == {"deactivate_user": 1}
    assert full_plans == [], "the departure was planned from the focus"
    rehired = tenant.add_user(upn, "Back Again")
    tenant.assign(rehired)
    result = settled.sync()
    assert result.applied_counts.get("adopt_user") == 1 and full_plans == []
    after = next(user for user in settled.store.reports.users() if user["email"] == row["email"])
    assert after["entra_id"] == rehired and after["active"], "the new account took the row over"
    converges_with_a_full_read(settled)


def test_a_team_held_by_a_name_conflict_keeps_a_member_who_left_and_is_planned_with_it(
    settled: World, full_plans: list[int]
) -> None:
    tenant = settled.tenant
    first, second = [a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "Group"][:2]
    member = next(
        m
        for m in tenant.member_ids(first)
        if m in tenant.users and m not in tenant.member_ids(second) and tenant.users[m].props.get("accountEnabled")
    )
    tenant.assign(member)  # in scope whatever its groups say
    tenant.rename_group(second, str(tenant.groups[first].props["displayName"]))
    settled.sync()  # both groups are named alike: their teams are left as they are
    tenant.remove_member(first, member)
    settled.sync()  # the team of the first group still has the member
    someone = next(a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "User")
    tenant.update_user(someone, displayName="Someone Else")
    result = settled.sync()
    full = settled.sync(dry_run=True, full=True)
    assert full.plan.changes == ()
    shown = {(p.code, p.target, p.message) for p in (*result.plan.errors, *result.plan.warnings)}
    assert shown == {(p.code, p.target, p.message) for p in (*full.plan.errors, *full.plan.warnings)}
    assert "USER_NOT_READ" not in {p.code for p in result.plan.errors}


def test_a_dry_run_of_a_settled_store_reads_and_plans_what_a_sync_would(settled: World, full_plans: list[int]) -> None:
    tenant = settled.tenant
    user = next(a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "User")
    watched = Watched(settled.store)
    quiet = run_once(settled.config, RunOptions(dry_run=True), store=watched)  # type: ignore[arg-type]
    assert quiet.plan.changes == () and watched.loads == {"outline": 1}
    tenant.update_user(user, displayName="Someone Else")
    watched = Watched(settled.store)
    dry = run_once(settled.config, RunOptions(dry_run=True), store=watched)  # type: ignore[arg-type]
    assert watched.loads == {"outline": 1, "teams": 1} and full_plans == []
    assert dry.plan == settled.sync(dry_run=True, full=True).plan
    cursor = settled.cursor()
    assert settled.sync().plan == dry.plan and settled.cursor() != cursor, "the dry run moved nothing"


def test_a_daemon_plans_its_cycles_from_what_changed(synced: World, full_plans: list[int]) -> None:
    memory = RunMemory()
    first = run_once(synced.config, RunOptions(memory=memory), store=synced.store)
    assert first.applied == 0 and len(full_plans) == 1
    user = next(a["principalId"] for a in synced.tenant.list_assignments() if a["principalType"] == "User")
    for name in ("Someone Else", "Someone Else Again"):
        synced.tenant.update_user(user, displayName=name)
        cycle = run_once(synced.config, RunOptions(memory=memory), store=synced.store)
        assert cycle.applied == 1
    assert len(full_plans) == 1, "each cycle after the first planned only the renamed user"
    converges_with_a_full_read(synced)


def test_a_local_change_or_another_configuration_makes_a_run_of_its_own(settled: World) -> None:
    settled.store.local.create_user("local@contoso.com", "Local Person")
    watched = Watched(settled.store)
    run_once(settled.config, RunOptions(), store=watched)  # type: ignore[arg-type]
    assert watched.loads["state"] == 1
    precedence = build({**_raw(settled.config), "roles": {"precedence": ["member", "admin"]}}, base=settled.folder)
    watched = Watched(settled.store)
    run_once(precedence, RunOptions(), store=watched)  # type: ignore[arg-type]
    assert watched.loads["state"] == 1


def test_a_settled_run_reports_the_problems_the_last_plan_found(world: World) -> None:
    broken = world.tenant.add_user("bell@contoso.com", "Bell", job_title="Ring\athe bell")
    world.tenant.assign(broken)
    first, second = world.sync(), world.sync()
    watched = Watched(world.store)
    third = run_once(world.config, RunOptions(), store=watched)  # type: ignore[arg-type]
    assert watched.loads == {"outline": 1}
    assert first.status == second.status == third.status == RunStatus.PARTIAL
    assert [(p.code, p.target) for p in third.plan.errors] == [(p.code, p.target) for p in second.plan.errors]
    assert [row["error_code"] for row in world.store.reports.audit()] == ["USER_INVALID"]


def test_a_settled_record_that_cannot_be_read_is_ignored(settled: World) -> None:
    settled.store.set_state("settled", "{not json")
    watched = Watched(settled.store)
    assert run_once(settled.config, RunOptions(), store=watched).applied == 0  # type: ignore[arg-type]
    assert watched.loads["state"] == 1


def test_a_round_touches_the_application_only_through_what_it_holds() -> None:
    from syncd.mirror import DeltaRound, GroupItem, Mirror, MirrorAssignment, MirrorGroup, RemovedUser, touches
    from syncd.model import SourceUser

    def user(user_id: str) -> SourceUser:
        return SourceUser(user_id, f"{user_id}@contoso.com", None, user_id, True, {})

    direct = MirrorAssignment("a1", "ann", "User", "role")
    mirror = Mirror(
        hidden=frozenset({"gone"}),
        groups={"sales": MirrorGroup("sales", "Sales", frozenset({"bob"}))},
        assignments={"a1": direct, "a2": MirrorAssignment("a2", "sales", "Group", "role")},
    )
    quiet = [
        DeltaRound(users=(user("outsider"),), groups=(GroupItem("other", "Other"),)),
        DeltaRound(assignments=(direct, "a-of-another-app")),
        DeltaRound(listed_assignments=tuple(mirror.assignments.values())),
    ]
    loud = [
        DeltaRound(users=(user("ann"),)),
        DeltaRound(users=(user("bob"),)),
        DeltaRound(users=(RemovedUser("gone", "deleted"),)),
        DeltaRound(groups=(GroupItem("sales", "Sales 2"),)),
        DeltaRound(assignments=("a1",)),
        DeltaRound(assignments=(MirrorAssignment("a3", "cy", "User", "role"),)),
        DeltaRound(assignments=(MirrorAssignment("a1", "ann", "User", "other-role"),)),
        DeltaRound(listed_assignments=(direct,)),
    ]
    assert not any(touches(mirror, round_) for round_ in quiet)
    assert all(touches(mirror, round_) for round_ in loud)
    assert touches(mirror, DeltaRound(users=(user("outsider"),)), watched=frozenset({"outsider"}))


def problems_of(result: RunResult) -> set[tuple[str, str, str]]:
    return {(p.code, p.target, p.message) for p in (*result.plan.errors, *result.plan.warnings)}


def two_users(first: str, second: str) -> tuple[Tenant, str, str, dict[str, str]]:
    """A tenant with two users, ann and bob, assigned with the roles named ``first`` and ``second``."""
    tenant = Tenant()
    roles = {name: tenant.add_app_role(name.title(), name) for name in {first, second}}
    ann, bob = tenant.add_user("ann@contoso.com", "Ann"), tenant.add_user("bob@contoso.com", "Bob")
    tenant.assign(ann, roles[first])
    tenant.assign(bob, roles[second])
    return tenant, ann, bob, roles


def test_after_the_last_admin_left_the_next_runs_report_what_a_full_read_reports(tmp_path: Path) -> None:
    tenant, ann, _, _ = two_users("admin", "member")
    with served(tmp_path, tenant) as world:
        world.sync()
        world.sync()
        tenant.update_user(ann, account_enabled=False)
        assert "NO_ADMIN_LEFT" in {p.code for p in world.sync().plan.errors}
        quiet = world.sync()
        assert problems_of(quiet) == problems_of(world.sync(dry_run=True, full=True)) == set()
        assert quiet.status == RunStatus.SUCCESS


def test_after_an_adoption_beside_a_conflict_the_next_runs_report_what_a_full_read_reports(tmp_path: Path) -> None:
    tenant, ann, bob, roles = two_users("member", "member")
    tenant.update_user(ann, userPrincipalName="cy@contoso.com")
    with served(tmp_path, tenant) as world:
        world.sync()
        world.sync()
        world.store.local.create_user("ann@contoso.com", "Ann (local)")
        tenant.update_user(bob, userPrincipalName="ann_contoso.com#EXT#@contoso.onmicrosoft.com")  # ann@contoso.com
        tenant.assign(tenant.add_user("ann@contoso.com", "Ann"), roles["member"])
        adopting = world.sync()
        assert "adopt_user" in {c.op for c in adopting.plan.changes}
        assert "USER_EMAIL_CONFLICT" in {p.code for p in adopting.plan.errors}
        assert problems_of(world.sync()) == problems_of(world.sync(dry_run=True, full=True))


def test_a_settled_plan_that_holds_the_last_admin_back_is_braked_as_when_it_was_made(tmp_path: Path) -> None:
    """The safety limits count the deactivation a settled plan holds back against the whole store,
    whether the run plans again or takes the settled plan: `syncd plan` and `syncd sync` alike."""
    tenant = Tenant()
    boss = tenant.add_user("boss@contoso.com", "Boss")
    tenant.assign(boss, tenant.add_app_role("Admin", "admin"))
    with served(tmp_path, tenant) as world:
        world.config = build(_raw(world.config), base=tmp_path)  # the default safety limits
        world.sync()
        tenant.unassign(boss)
        assert world.sync().status == RunStatus.REFUSED
        assert world.sync(allow=frozenset({"deactivations"})).plan.held, "the last admin is held back"
        for dry_run in (True, False):
            result = world.sync(dry_run=dry_run)
            assert [refusal.code for refusal in result.refusals] == ["SAFETY_DEACTIVATIONS"], dry_run


def test_on_every_backend_a_settled_store_plans_a_change_from_what_it_concerns(
    tmp_path: Path, store_url: str, full_plans: list[int]
) -> None:
    tenant = generate_tenant(seed=4, users=120, groups=4, direct_assignments=20)
    with served(tmp_path, tenant, store_url) as world:
        world.sync()
        world.sync()
        user = next(a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "User")
        group = next(a["principalId"] for a in tenant.list_assignments() if a["principalType"] == "Group")
        tenant.update_user(user, displayName="Someone Else")
        tenant.rename_group(group, "Renamed Group")
        full_plans.clear()
        watched = Watched(world.store)
        result = run_once(world.config, RunOptions(), store=watched)  # type: ignore[arg-type]
        assert result.applied_counts == {"update_user": 1, "rename_team": 1}
        assert full_plans == [] and watched.loads == {"outline": 1, "teams": 1}
        converges_with_a_full_read(world)
