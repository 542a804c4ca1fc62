"""The client speaks Microsoft Graph as its documentation says, against the strict simulator.

No OData casts on member relationships (advanced queries on a lagging index), users kept by
``@odata.type`` among every member type, limited-information objects never taken as evidence,
only reads the three documented permissions allow, ``$batch`` items with their own status,
``$``-UPNs addressed in parentheses, and replication lag that makes a read incomplete, not fatal.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from syncd.config import SyncConfig
from syncd.errors import GraphError
from syncd.graph import GraphStats, fetch_principal, fetch_snapshot, lookup_users
from syncd.graph.client import GraphClient
from syncd.simulator import Simulator, Tenant
from tests.test_graph import ALL_PERMISSIONS, configure


class Mixed:
    """Groups whose members are users, a nested group, a device, a contact and a service principal."""

    def __init__(self) -> None:
        t = self.tenant = Tenant(app_display_name="Workspace")
        self.admin = t.add_app_role("Admin", value="admin")
        self.ada = t.add_user(upn="ada@contoso.com", display_name="Ada")
        self.bob = t.add_user(upn="bob@contoso.com", display_name="Bob")
        self.dee = t.add_user(upn="dee@contoso.com", display_name="Dee")
        self.dollar = t.add_user(upn="$svc'ops@contoso.com", display_name="Ops Desk")
        self.printer = t.add_device("Printer 4th floor")
        self.supplier = t.add_contact("Supplier Desk", mail="desk@supplier.example")
        self.robot = t.add_service_principal("Robot")
        self.inner = t.add_group("Inner", members=[self.dee])
        self.sales = t.add_group(
            "Sales", members=[self.ada, self.bob, self.inner, self.printer, self.supplier, self.robot]
        )
        self.ops = t.add_group("Ops", members=[self.dollar])
        t.assign(self.sales)
        t.assign(self.ops)
        t.assign(self.robot, app_role_id=self.admin)


@pytest.fixture
def mixed() -> Mixed:
    return Mixed()


def graph_paths(sim: Simulator) -> list[str]:
    return [target for _, target, _ in sim.request_log + sim.batch_log]


# --------------------------------------------------------------------------- members without casts


@pytest.mark.parametrize("nested", [False, True])
def test_members_are_listed_without_a_cast_and_only_users_are_kept(mixed, tmp_path, nested):
    m = mixed
    with Simulator(m.tenant) as sim:
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig(nested_groups=nested))
        paths = graph_paths(sim)
    assert snapshot.complete, snapshot.failures
    sales = next(group for group in snapshot.groups if group.id == m.sales)
    expected = {m.ada, m.bob, m.dee} if nested else {m.ada, m.bob}
    assert set(sales.member_ids or ()) == expected
    assert not any(re.search(r"/(microsoft\.)?graph\.\w+", path.split("?")[0]) for path in paths), paths
    relation = "transitiveMembers" if nested else "members"
    assert any(f"/groups/{m.sales}/{relation}?" in path for path in paths)
    assert m.robot not in {a.principal_id for a in snapshot.assignments}  # a service principal's role


def test_a_member_type_spelled_in_another_case_is_still_a_user():
    from syncd.graph.decode import decode_member

    user = decode_member({"@odata.type": "#Microsoft.Graph.User", "id": "u1", "userPrincipalName": "a@b.c"})
    assert user is not None and user.id == "u1"
    assert decode_member({"@odata.type": "#microsoft.graph.device", "id": "d1", "displayName": "x"}) is None


def test_users_listed_with_limited_information_fail_that_group_naming_user_read_all(mixed, tmp_path):
    mixed.tenant.set_permissions(ALL_PERMISSIONS - {"User.Read.All"})
    with Simulator(mixed.tenant) as sim:
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig())
    assert not snapshot.complete
    assert all(group.member_ids is None for group in snapshot.groups)
    assert {failure.code for failure in snapshot.failures} == {"GRAPH_PERMISSION"}
    assert all("User.Read.All" in failure.message for failure in snapshot.failures)
    assert not snapshot.users  # nothing read with limited information is taken for a user


# --------------------------------------------------------------------------- on demand, three permissions


@pytest.mark.parametrize("nested", [False, True])
def test_a_user_on_demand_needs_only_the_three_documented_permissions(mixed, tmp_path, nested):
    m = mixed
    assert m.tenant.permissions == ALL_PERMISSIONS
    with Simulator(m.tenant) as sim:
        snapshot = fetch_principal(configure(sim, tmp_path), SyncConfig(nested_groups=nested), user="dee@contoso.com")
        paths = graph_paths(sim)
    assert snapshot.complete and snapshot.partial, snapshot.failures
    assert snapshot.subjects == {m.dee}
    # dee is in Sales only through Inner: a member of Sales with nested groups, not without
    assert [group.id for group in snapshot.groups] == ([m.sales] if nested else [])
    assert any(path.endswith("/checkMemberGroups") for path in paths)
    assert not any("memberOf" in path for path in paths)


def test_a_direct_member_on_demand_is_found_in_its_group(mixed, tmp_path):
    with Simulator(mixed.tenant) as sim:
        snapshot = fetch_principal(configure(sim, tmp_path), SyncConfig(), user="bob@contoso.com")
    assert snapshot.complete
    assert [(group.id, group.display_name, group.member_ids) for group in snapshot.groups] == [
        (mixed.sales, "Sales", (mixed.bob,))
    ]


@pytest.mark.parametrize("missing", sorted(ALL_PERMISSIONS))
def test_a_user_on_demand_without_a_permission_is_incomplete_and_changes_nothing(mixed, tmp_path, missing):
    mixed.tenant.set_permissions(ALL_PERMISSIONS - {missing})
    with Simulator(mixed.tenant) as sim:
        try:
            snapshot = fetch_principal(configure(sim, tmp_path), SyncConfig(), user=mixed.bob)
        except GraphError as error:  # the user itself could not be read
            assert error.code == "GRAPH_PERMISSION" and missing in error.message
            return
    assert not snapshot.complete
    assert any(missing in failure.message for failure in snapshot.failures)


def test_a_upn_starting_with_a_dollar_is_addressed_in_parentheses(mixed, tmp_path):
    with Simulator(mixed.tenant) as sim:
        snapshot = fetch_principal(configure(sim, tmp_path), SyncConfig(), user="$svc'ops@contoso.com")
        paths = graph_paths(sim)
    assert snapshot.complete and snapshot.subjects == {mixed.dollar}
    assert [group.id for group in snapshot.groups] == [mixed.ops]
    assert any(path.startswith("/v1.0/users('$svc''ops@contoso.com')") for path in paths), paths


def test_a_dollar_upn_in_a_lookup_by_id_is_addressed_in_parentheses_too(mixed, tmp_path):
    with Simulator(mixed.tenant) as sim:
        users, deleted = lookup_users(configure(sim, tmp_path), ["$svc'ops@contoso.com"])
    assert [user.id for user in users] == [mixed.dollar] and not deleted


# --------------------------------------------------------------------------- $batch items


def _no_sleep_client(graph):
    async def no_sleep(seconds: float) -> None:
        return None

    return GraphClient(graph, sleep=no_sleep, stats=GraphStats())


def test_a_batch_item_answered_424_is_retried_and_the_others_are_kept(tmp_path):
    t = Tenant()
    ids = [t.add_user(upn=f"user{n}@contoso.com") for n in range(5)]
    with Simulator(t) as sim:
        sim.fail(rf"/users/{ids[2]}", status=424, times=1)

        async def run():
            async with _no_sleep_client(configure(sim, tmp_path)) as client:
                return await client.batch_get([f"/users/{user_id}?$select=id" for user_id in ids], what="t")

        results = asyncio.run(run())
        assert sim.count(rf"/users/{ids[2]}", include_batch_items=True) == 2
        assert sim.count(rf"/users/{ids[0]}", include_batch_items=True) == 1
    assert [result.status for result in results] == [200] * 5
    assert [result.body["id"] for result in results] == ids


def test_answers_already_received_survive_a_batch_post_that_fails_for_good(tmp_path):
    t = Tenant()
    ids = [t.add_user(upn=f"user{n}@contoso.com") for n in range(4)]
    with Simulator(t) as sim:
        sim.throttle(times=1, retry_after="0", path_regex=rf"/users/{ids[3]}")

        async def run():
            async with _no_sleep_client(configure(sim, tmp_path, max_retries=1)) as client:
                send = client.send

                async def send_then_break_graph(method, url, **kwargs):
                    answer = await send(method, url, **kwargs)
                    sim.fail(r"^/v1\.0/\$batch", status=503, times=None)  # every later POST fails
                    return answer

                client.send = send_then_break_graph  # type: ignore[method-assign]
                return await client.batch_get([f"/users/{user_id}?$select=id" for user_id in ids], what="t")

        results = asyncio.run(run())
    assert [result.status for result in results[:3]] == [200, 200, 200]
    assert [result.body["id"] for result in results[:3]] == ids[:3]
    assert results[3].error is not None and results[3].error.code == "GRAPH_UNAVAILABLE"


def test_a_throttled_batch_item_waits_its_own_retry_after(tmp_path):
    t = Tenant()
    ids = [t.add_user(upn=f"user{n}@contoso.com") for n in range(3)]
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    with Simulator(t) as sim:
        sim.throttle(times=1, retry_after="0.25", path_regex=rf"/users/{ids[1]}")

        async def run():
            async with GraphClient(configure(sim, tmp_path), sleep=record) as client:
                return await client.batch_get([f"/users/{user_id}?$select=id" for user_id in ids], what="t")

        results = asyncio.run(run())
    assert [result.status for result in results] == [200, 200, 200]
    assert waits == [pytest.approx(0.25)]


# --------------------------------------------------------------------------- replication lag


def test_a_user_assigned_moments_ago_makes_the_read_incomplete_not_deleted(tmp_path):
    t = Tenant()
    old = t.add_user(upn="old@contoso.com")
    t.assign(old)
    t.set_lag(60)
    new = t.add_user(upn="new@contoso.com")
    t.assign(new)
    with Simulator(t) as sim:
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig())
    assert not snapshot.complete
    assert new not in snapshot.deleted_user_ids and new not in snapshot.user_by_id()
    assert [failure.code for failure in snapshot.failures] == ["GRAPH_NOT_FOUND"]
    assert new in snapshot.failures[0].message


def test_a_group_assigned_moments_ago_makes_the_read_incomplete(tmp_path):
    t = Tenant()
    ada = t.add_user(upn="ada@contoso.com")
    t.set_lag(60)
    fresh = t.add_group("Fresh", members=[ada])
    t.assign(fresh)
    with Simulator(t) as sim:
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig())
    assert not snapshot.complete and not snapshot.groups
    assert {failure.code for failure in snapshot.failures} == {"GRAPH_NOT_FOUND"}


# --------------------------------------------------------------------------- malformed answers


def test_a_next_link_that_leads_back_is_a_bad_response_not_an_endless_loop(mixed, tmp_path):
    with Simulator(mixed.tenant) as sim:
        loop = f"{sim.base_url}/servicePrincipals/{mixed.tenant.service_principal_id}/appRoleAssignedTo?$skiptoken=x"
        sim.fail(r"appRoleAssignedTo", status=200, times=None, body={"value": [], "@odata.nextLink": loop})
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig())
        assert sim.count("appRoleAssignedTo") == 2
    assert [failure.code for failure in snapshot.failures] == ["GRAPH_BAD_RESPONSE"]
    assert "nextLink" in snapshot.failures[0].message


def test_an_assignment_without_a_principal_type_makes_the_read_incomplete(mixed, tmp_path):
    body = {"value": [{"principalId": mixed.ada, "appRoleId": None}]}
    with Simulator(mixed.tenant) as sim:
        sim.fail(r"appRoleAssignedTo", status=200, times=None, body=body)
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig())
    assert not snapshot.complete
    assert [failure.code for failure in snapshot.failures] == ["GRAPH_BAD_RESPONSE"]


def test_a_member_without_an_odata_type_fails_that_group(mixed, tmp_path):
    body = {"value": [{"id": mixed.ada, "userPrincipalName": "ada@contoso.com"}]}
    with Simulator(mixed.tenant) as sim:
        sim.fail(rf"/groups/{mixed.sales}/members", status=200, times=None, body=body)
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig())
    sales = next(group for group in snapshot.groups if group.id == mixed.sales)
    assert sales.member_ids is None and not snapshot.complete
    assert any("@odata.type" in failure.message for failure in snapshot.failures)


def test_a_group_without_a_display_name_is_never_a_team_named_nothing(mixed, tmp_path):
    with Simulator(mixed.tenant) as sim:
        sim.fail(rf"/groups/{mixed.ops}\?", status=200, times=None, body={"id": mixed.ops, "displayName": None})
        snapshot = fetch_snapshot(configure(sim, tmp_path), SyncConfig())
    assert mixed.ops not in {group.id for group in snapshot.groups}
    assert not snapshot.complete
