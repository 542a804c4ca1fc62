"""The Graph layer against the simulator: real msgraph-sdk client, real HTTP on loopback."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from pathlib import Path

import pytest

from syncd.config import GraphConfig, SyncConfig
from syncd.errors import GraphError, InputError, SyncdError
from syncd.graph import (
    GraphStats,
    check,
    fetch_principal,
    fetch_snapshot,
    lookup_users,
    read_snapshot,
    write_snapshot,
)
from syncd.graph.client import BATCH_SIZE, PAGE_SIZE, GraphClient
from syncd.graph.fetch import fetch_snapshot_async
from syncd.model import DEFAULT_ACCESS_ROLE_ID, Assignment, SourceUser
from syncd.simulator import Simulator, Tenant, generate_tenant

ALL_PERMISSIONS = {"Application.Read.All", "User.Read.All", "GroupMember.Read.All"}


def configure(sim: Simulator, tmp_path: Path, *, token: str | None = None, **overrides: object) -> GraphConfig:
    """A GraphConfig that reaches ``sim`` with a bring-your-own token file."""
    token_file = tmp_path / "token"
    token_file.write_text(sim.token if token is None else token)
    settings: dict[str, object] = {
        "auth": "token_file",
        "token_file": str(token_file),
        "base_url": sim.base_url,
        "service_principal_id": sim.tenant.service_principal_id,
    }
    settings.update(overrides)
    return GraphConfig(**settings)  # type: ignore[arg-type]


class Workspace:
    """A small tenant: two roles, a nested group structure, direct assignments, a disabled user."""

    def __init__(self) -> None:
        t = self.tenant = Tenant(app_display_name="Workspace")
        self.admin = t.add_app_role("Admin", value="admin")
        self.viewer = t.add_app_role("Viewer", value="viewer")
        self.ada = t.add_user(upn="ada@contoso.com", display_name="Ada Lovelace", mail="ada@contoso.com")
        self.bob = t.add_user(upn="bob@contoso.com", display_name="Bob", job_title="Clerk")
        self.cy = t.add_user(upn="cy@contoso.com", display_name="Cy", account_enabled=False)
        self.dee = t.add_user(upn="dee@contoso.com", display_name="Dee")
        self.eve = t.add_user(upn="eve@contoso.com", display_name="Eve (unassigned)")
        self.inner = t.add_group("Inner", members=[self.dee])
        self.sales = t.add_group("Sales", members=[self.ada, self.bob, self.inner])
        self.other = t.add_group("Other", members=[self.eve])
        self.robot = t.add_service_principal("Robot")
        t.assign(self.sales, app_role_id=self.viewer)
        t.assign(self.ada, app_role_id=self.admin)
        t.assign(self.cy)
        t.assign(self.robot, app_role_id=self.admin)


@pytest.fixture
def workspace() -> Workspace:
    return Workspace()


# --------------------------------------------------------------------------- the full snapshot


def test_full_fetch_reads_roles_assignments_group_members_and_direct_users(workspace, tmp_path):
    w = workspace
    calls: list[tuple[str, int, int]] = []
    with Simulator(w.tenant) as sim:
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig(), progress=lambda *call: calls.append(call))
    assert ("fetch assignments", 3, 3) in calls and calls[-1] == ("fetch users", 1, 1)  # cy, the only non-member
    assert [call for call in calls if call[0] == "fetch groups"] == [("fetch groups", 0, 1), ("fetch groups", 1, 1)]
    assert snapshot.complete and not snapshot.partial and snapshot.scope == "assigned"
    assert {role.value for role in snapshot.app_roles} == {"admin", "viewer"}
    assert set(snapshot.assignments) == {
        Assignment(w.sales, "Group", w.viewer),
        Assignment(w.ada, "User", w.admin),
        Assignment(w.cy, "User", DEFAULT_ACCESS_ROLE_ID),
    }
    (sales,) = snapshot.groups
    assert (sales.id, sales.display_name, set(sales.member_ids or ())) == (w.sales, "Sales", {w.ada, w.bob})
    users = snapshot.user_by_id()
    assert set(users) == {w.ada, w.bob, w.cy}
    assert users[w.bob] == SourceUser(w.bob, "bob@contoso.com", None, "Bob", True, {"jobTitle": "Clerk"})
    assert users[w.cy].account_enabled is False


def test_a_fetched_snapshot_survives_the_snapshot_file(workspace, tmp_path):
    with Simulator(workspace.tenant) as sim:
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig())
    write_snapshot(snapshot, tmp_path / "snapshot.json")
    assert read_snapshot(tmp_path / "snapshot.json") == snapshot


def test_nested_groups_flatten_transitive_user_members_only_when_asked(workspace, tmp_path):
    w = workspace
    with Simulator(w.tenant) as sim:
        graph = configure(sim, tmp_path)
        direct = fetch_snapshot(graph, SyncConfig(nested_groups=False))
        nested = fetch_snapshot(graph, SyncConfig(nested_groups=True))
    assert set(direct.groups[0].member_ids or ()) == {w.ada, w.bob}
    assert set(nested.groups[0].member_ids or ()) == {w.ada, w.bob, w.dee}
    assert nested.user_by_id()[w.dee].user_principal_name == "dee@contoso.com"


def test_service_principal_can_be_named_by_app_id(workspace, tmp_path):
    with Simulator(workspace.tenant) as sim:
        graph = configure(sim, tmp_path, service_principal_id="", app_id=workspace.tenant.app_id)
        snapshot = fetch_snapshot(graph, SyncConfig())
    assert len(snapshot.assignments) == 3


def test_scope_all_lists_every_user_and_group_and_warns(workspace, tmp_path, caplog):
    w = workspace
    with Simulator(w.tenant) as sim, caplog.at_level(logging.WARNING, logger="syncd.graph"):
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig(scope="all"))
    assert snapshot.scope == "all" and snapshot.complete
    assert {user.id for user in snapshot.users} == {w.ada, w.bob, w.cy, w.dee, w.eve}
    assert {group.display_name for group in snapshot.groups} == {"Inner", "Sales", "Other"}
    assert {group.id: set(group.member_ids or ()) for group in snapshot.groups}[w.other] == {w.eve}
    assert any("every user and group in the directory" in record.message for record in caplog.records)


def test_assignments_are_paged_past_999(tmp_path):
    t = Tenant()
    user_ids = [t.add_user(upn=f"user{n}@contoso.com", display_name=f"User {n}") for n in range(2500)]
    for user_id in user_ids:
        t.assign(user_id)
    with Simulator(t) as sim:
        stats = GraphStats()
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig(), stats=stats)
        assignment_pages = sim.count(r"appRoleAssignedTo")
    assert len(snapshot.assignments) == 2500 and len(snapshot.users) == 2500 and snapshot.complete
    assert assignment_pages == math.ceil(2500 / PAGE_SIZE) == 3
    # 1 service principal + 3 assignment pages + 1 user count + 3 user pages: listing the directory
    # beats 125 $batch requests here.
    assert stats.requests == 1 + 3 + 1 + 3


def test_few_direct_users_in_a_large_directory_are_read_by_batch(tmp_path):
    t = Tenant()
    user_ids = [t.add_user(upn=f"user{n}@contoso.com") for n in range(3000)]
    for user_id in user_ids[:60]:
        t.assign(user_id)
    with Simulator(t) as sim:
        stats = GraphStats()
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig(), stats=stats)
        assert sim.batch_items == 60
    assert len(snapshot.users) == 60
    # 1 service principal + 1 assignment page + 1 user count + 3 batches of 20 (listing would take 4 pages)
    assert stats.requests == 1 + 1 + 1 + 3


# --------------------------------------------------------------------------- throttling and failures


def test_throttling_honours_a_fractional_retry_after(workspace, tmp_path):
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def run(graph: GraphConfig, stats: GraphStats):
        async with GraphClient(graph, sleep=record, stats=stats) as client:
            return await fetch_snapshot_async(client, graph, SyncConfig())

    with Simulator(workspace.tenant) as sim:
        sim.throttle(times=2, retry_after="0.05", path_regex="appRoleAssignedTo")
        stats = GraphStats()
        snapshot = asyncio.run(run(configure(sim, tmp_path), stats))
    assert snapshot.complete
    assert (stats.throttled, stats.retries) == (2, 2)
    assert waits == [pytest.approx(0.05), pytest.approx(0.05)]


def test_graphs_retry_after_of_2_128_seconds_is_waited_exactly(workspace, tmp_path):
    """The real value Graph sends; the sleep is injected so the test does not wait 2 s."""
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def run(graph: GraphConfig) -> None:
        async with GraphClient(graph, sleep=record) as client:
            await fetch_snapshot_async(client, graph, SyncConfig())

    with Simulator(workspace.tenant) as sim:
        sim.throttle(times=1, retry_after="2.128", path_regex="/servicePrincipals/")
        asyncio.run(run(configure(sim, tmp_path)))
    assert waits == [pytest.approx(2.128)]


def test_throttling_beyond_every_retry_is_graph_throttled(workspace, tmp_path):
    with Simulator(workspace.tenant) as sim:
        sim.throttle(times=None, retry_after="0.01", path_regex="/servicePrincipals/")
        with pytest.raises(GraphError) as raised:
            fetch_snapshot(configure(sim, tmp_path, max_retries=2), SyncConfig())
        assert sim.count(r"/servicePrincipals/") == 3
    assert raised.value.code == "GRAPH_THROTTLED"


def test_a_503_on_one_groups_members_leaves_that_group_unknown_and_the_snapshot_incomplete(workspace, tmp_path):
    w = workspace
    marketing = w.tenant.add_group("Marketing", members=[w.eve])
    w.tenant.assign(marketing)
    with Simulator(w.tenant) as sim:
        sim.fail(rf"/groups/{w.sales}/members", status=503, times=None)
        snapshot = fetch_snapshot(configure(sim, tmp_path, max_retries=1), SyncConfig())
    groups = {group.id: group for group in snapshot.groups}
    assert groups[w.sales].member_ids is None and groups[w.sales].display_name == "Sales"
    assert groups[marketing].member_ids == (w.eve,)
    assert not snapshot.complete
    (failure,) = snapshot.failures
    assert failure.code == "GRAPH_UNAVAILABLE"
    assert failure.path == f"/groups/{w.sales}/members"
    assert w.ada in snapshot.user_by_id()  # positive evidence still counts: ada is directly assigned


def test_a_failed_assignment_page_makes_the_snapshot_incomplete(tmp_path):
    t = Tenant()
    for n in range(1500):
        t.assign(t.add_user(upn=f"user{n}@contoso.com"))
    with Simulator(t) as sim:
        sim.fail(r"appRoleAssignedTo.*skiptoken", status=500, times=None)
        snapshot = fetch_snapshot(configure(sim, tmp_path, max_retries=0), SyncConfig())
    assert len(snapshot.assignments) == PAGE_SIZE
    assert [failure.code for failure in snapshot.failures] == ["GRAPH_UNAVAILABLE"]
    assert snapshot.failures[0].path.endswith("/appRoleAssignedTo")


def test_a_wrong_token_is_graph_auth_and_the_message_holds_no_token(workspace, tmp_path):
    with Simulator(workspace.tenant) as sim:
        with pytest.raises(GraphError) as raised:
            fetch_snapshot(configure(sim, tmp_path, token="not-the-token-x1"), SyncConfig())
        assert sim.count(r"servicePrincipals") == 1
    assert raised.value.code == "GRAPH_AUTH" and raised.value.status == 401
    assert "not-the-token-x1" not in raised.value.message and sim.token not in raised.value.message


@pytest.mark.parametrize(
    ("granted", "missing"),
    [
        (ALL_PERMISSIONS - {"GroupMember.Read.All"}, "GroupMember.Read.All"),
        (ALL_PERMISSIONS - {"Application.Read.All"}, "Application.Read.All"),
        (ALL_PERMISSIONS - {"User.Read.All"}, "User.Read.All"),
    ],
)
def test_a_missing_permission_makes_the_snapshot_incomplete_naming_it(workspace, tmp_path, granted, missing):
    workspace.tenant.set_permissions(granted)
    with Simulator(workspace.tenant) as sim:
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig())
    assert not snapshot.complete
    assert snapshot.failures and all(failure.code == "GRAPH_PERMISSION" for failure in snapshot.failures)
    assert all(missing in failure.message for failure in snapshot.failures)


def test_an_unknown_service_principal_is_graph_not_found_naming_the_id(workspace, tmp_path):
    absent = str(uuid.uuid4())
    with Simulator(workspace.tenant) as sim, pytest.raises(GraphError) as raised:
        fetch_snapshot(configure(sim, tmp_path, service_principal_id=absent), SyncConfig())
    assert raised.value.code == "GRAPH_NOT_FOUND"
    assert absent in raised.value.message


def test_graph_unreachable_is_graph_unavailable(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("t")
    graph = GraphConfig(
        auth="token_file",
        token_file=str(token_file),
        base_url="http://127.0.0.1:9/v1.0",
        service_principal_id=str(uuid.uuid4()),
        max_retries=0,
    )
    with pytest.raises(GraphError) as raised:
        fetch_snapshot(graph, SyncConfig())
    assert raised.value.code == "GRAPH_UNAVAILABLE"


# --------------------------------------------------------------------------- $batch and lookups


def test_lookup_users_reports_disabled_users_and_deleted_ids(workspace, tmp_path):
    w = workspace
    w.tenant.update_user(w.bob, accountEnabled=False)
    gone = w.tenant.add_user(upn="gone@contoso.com")
    w.tenant.delete_user(gone)
    never = str(uuid.uuid4())
    with Simulator(w.tenant) as sim:
        users, deleted = lookup_users(configure(sim, tmp_path), [w.ada, w.bob, gone, never])
    assert {user.id: user.account_enabled for user in users} == {w.ada: True, w.bob: False}
    assert deleted == {gone, never}


def test_a_throttled_batch_item_is_retried_on_its_own(workspace, tmp_path):
    w = workspace
    with Simulator(w.tenant) as sim:
        sim.fail(rf"/users/{w.bob}", status=429, times=1, retry_after="0.01")
        stats = GraphStats()
        users, deleted = lookup_users(configure(sim, tmp_path), [w.ada, w.bob, w.cy], stats=stats)
        assert (sim.requests, sim.batch_items) == (2, 4)  # 3 items, then bob's alone
    assert {user.id for user in users} == {w.ada, w.bob, w.cy} and not deleted
    assert (stats.requests, stats.batch_items, stats.throttled, stats.retries) == (2, 4, 1, 1)


def test_a_batch_item_failing_with_5xx_becomes_a_failure_of_that_user_only(tmp_path):
    t = Tenant()
    users = [t.add_user(upn=f"user{n}@contoso.com") for n in range(100)]
    for user_id in users:
        t.assign(user_id)
    for n in range(5000):
        t.add_user(upn=f"other{n}@contoso.com")
    with Simulator(t) as sim:
        sim.fail(rf"/users/{users[7]}", status=500, times=None)
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig())
    assert len(snapshot.users) == 99
    (failure,) = snapshot.failures
    assert failure.path == f"/users/{users[7]}" and failure.code == "GRAPH_UNAVAILABLE"


# --------------------------------------------------------------------------- one principal


def test_fetch_principal_for_a_user_includes_its_roles_through_assigned_groups(workspace, tmp_path):
    w = workspace
    with Simulator(w.tenant) as sim:
        graph = configure(sim, tmp_path)
        by_upn = fetch_principal(graph, SyncConfig(), user="ada@contoso.com")
        by_id = fetch_principal(graph, SyncConfig(), user=w.ada)
    assert by_upn == by_id
    assert by_upn.partial and by_upn.complete
    assert [user.id for user in by_upn.users] == [w.ada]
    assert set(by_upn.assignments) == {Assignment(w.ada, "User", w.admin), Assignment(w.sales, "Group", w.viewer)}
    (sales,) = by_upn.groups
    assert (sales.id, sales.display_name, sales.member_ids) == (w.sales, "Sales", (w.ada,))
    assert {role.value for role in by_upn.app_roles} == {"admin", "viewer"}


def test_fetch_principal_finds_a_user_by_mail_when_the_upn_differs(workspace, tmp_path):
    w = workspace
    fay = w.tenant.add_user(upn="fay_fabrikam.com#EXT#@contoso.onmicrosoft.com", mail="fay@fabrikam.com")
    w.tenant.assign(fay, app_role_id=w.viewer)
    with Simulator(w.tenant) as sim:
        graph = configure(sim, tmp_path)
        by_mail = fetch_principal(graph, SyncConfig(), user="fay@fabrikam.com")
        by_guest_upn = fetch_principal(graph, SyncConfig(), user="fay_fabrikam.com#EXT#@contoso.onmicrosoft.com")
    assert [user.id for user in by_mail.users] == [fay] == [user.id for user in by_guest_upn.users]
    assert by_mail.assignments == (Assignment(fay, "User", w.viewer),)


def test_fetch_principal_for_a_nested_member_follows_transitive_membership(workspace, tmp_path):
    w = workspace
    with Simulator(w.tenant) as sim:
        graph = configure(sim, tmp_path)
        direct = fetch_principal(graph, SyncConfig(), user="dee@contoso.com")
        nested = fetch_principal(graph, SyncConfig(nested_groups=True), user="dee@contoso.com")
    assert direct.groups == () and direct.assignments == ()
    assert [group.id for group in nested.groups] == [w.sales]


def test_fetch_principal_for_a_group_by_name_or_id(workspace, tmp_path):
    w = workspace
    with Simulator(w.tenant) as sim:
        graph = configure(sim, tmp_path)
        by_name = fetch_principal(graph, SyncConfig(), group="Sales")
        by_id = fetch_principal(graph, SyncConfig(), group=w.sales)
    assert by_name == by_id and by_name.partial
    (sales,) = by_name.groups
    assert set(sales.member_ids or ()) == {w.ada, w.bob}
    assert {user.id for user in by_name.users} == {w.ada, w.bob}
    assert set(by_name.assignments) == {Assignment(w.sales, "Group", w.viewer), Assignment(w.ada, "User", w.admin)}


def test_fetch_principal_for_unknown_names(workspace, tmp_path):
    w = workspace
    w.tenant.add_group("Twins")
    w.tenant.add_group("Twins")
    with Simulator(w.tenant) as sim:
        graph = configure(sim, tmp_path)
        with pytest.raises(SyncdError) as no_user:
            fetch_principal(graph, SyncConfig(), user="nobody@contoso.com")
        with pytest.raises(SyncdError) as no_group:
            fetch_principal(graph, SyncConfig(), group="Nobody")
        with pytest.raises(InputError, match="2 groups are named 'Twins'"):
            fetch_principal(graph, SyncConfig(), group="Twins")
    assert no_user.value.code == "NOT_FOUND" and "nobody@contoso.com" in no_user.value.message
    assert no_group.value.code == "NOT_FOUND"


# --------------------------------------------------------------------------- check


CHECK_STEPS = [
    "token",
    "service principal",
    "assignments",
    "user",
    "group",
    "group members",
    "user groups",
    "user listing",
    "group lookup",
]


def test_check_reports_every_step_ok(workspace, tmp_path):
    with Simulator(workspace.tenant) as sim:
        steps = check(configure(sim, tmp_path))
    assert [step.name for step in steps] == CHECK_STEPS
    assert all(step.ok for step in steps), steps
    assert "Workspace" in steps[1].detail and "2 app roles" in steps[1].detail


@pytest.mark.parametrize(
    ("missing", "failing"),
    [
        ("Application.Read.All", {"service principal", "assignments"}),
        ("User.Read.All", {"user", "group members", "user groups", "user listing"}),
        ("GroupMember.Read.All", {"group", "group members", "user groups", "group lookup"}),
    ],
)
def test_check_names_the_missing_permission_and_still_runs_the_other_steps(workspace, tmp_path, missing, failing):
    workspace.tenant.set_permissions(ALL_PERMISSIONS - {missing})
    with Simulator(workspace.tenant) as sim:
        steps = {step.name: step for step in check(configure(sim, tmp_path))}
    assert list(steps) == CHECK_STEPS
    assert {name for name, step in steps.items() if not step.ok} == failing
    for name in failing - {"assignments"}:
        assert missing in steps[name].detail, steps[name]


def test_check_with_an_unknown_service_principal_and_a_bad_token(workspace, tmp_path):
    absent = str(uuid.uuid4())
    with Simulator(workspace.tenant) as sim:
        unknown = {step.name: step for step in check(configure(sim, tmp_path, service_principal_id=absent))}
        rejected = check(configure(sim, tmp_path, token="wrong"))
        no_file = check(configure(sim, tmp_path, token_file=str(tmp_path / "absent")))
    assert not unknown["service principal"].ok and absent in unknown["service principal"].detail
    assert unknown["user"].ok and unknown["group members"].ok
    assert rejected[0].ok and not rejected[1].ok and "401" in rejected[1].detail
    assert [(step.name, step.ok) for step in no_file] == [("token", False)]


# --------------------------------------------------------------------------- request count


def test_a_full_fetch_takes_close_to_the_minimum_number_of_requests(tmp_path):
    tenant = generate_tenant(seed=0, users=5000, groups=50, direct_assignments=500)
    with Simulator(tenant) as sim:
        stats = GraphStats()
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig(), stats=stats)
        assert sim.requests == stats.requests
    assert snapshot.complete
    groups = [a.principal_id for a in snapshot.assignments if a.principal_type == "Group"]
    direct = {a.principal_id for a in snapshot.assignments if a.principal_type == "User"}
    members = {member for group in snapshot.groups for member in group.member_ids or ()}
    not_members = len(direct - members)
    minimum = (
        1  # the service principal
        + math.ceil(len(snapshot.assignments) / PAGE_SIZE)
        + math.ceil(len(groups) / BATCH_SIZE)  # group names
        + sum(max(1, math.ceil(len(group.member_ids or ()) / PAGE_SIZE)) for group in snapshot.groups)
        + min(math.ceil(not_members / BATCH_SIZE), math.ceil(5000 / PAGE_SIZE))  # direct users
    )
    assert stats.requests <= minimum + 1  # at most one more: the user count that picks batch or listing
    assert stats.requests <= 1.2 * minimum
