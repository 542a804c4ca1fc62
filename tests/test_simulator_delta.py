"""The simulator's delta queries follow Graph's documented rules, each shown over real HTTP.

Sources: user-delta, group-delta, directoryobject-delta (v1.0) and the concept pages
delta-query-overview, delta-query-users and delta-query-groups (see :mod:`syncd.simulator.delta`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from syncd.simulator import Simulator, Tenant
from syncd.simulator.delta import PAGE_MEMBERS, PAGE_OBJECTS, TOKEN_LIFETIME_SECONDS
from tests.test_simulator import TOKEN, call, quoted
from tests.test_simulator_rules import Clock, error_of

USERS = "/users/delta?$select=displayName,userPrincipalName,jobTitle,accountEnabled"
GROUPS = "/groups/delta?$select=displayName,members"
ASSIGNMENTS = "/directoryObjects/delta?$filter=" + quoted(
    "isof('microsoft.graph.appRoleAssignment') or isof('microsoft.graph.user')"
)


@dataclass
class Round:
    items: list[dict[str, Any]]
    delta_link: str
    pages: int


@dataclass
class World:
    sim: Simulator
    clock: Clock
    ann: str
    bob: str
    sales: str

    @property
    def tenant(self) -> Tenant:
        return self.sim.tenant


@pytest.fixture
def world() -> Iterator[World]:
    tenant = Tenant(seed=5)
    clock = Clock()
    tenant.clock = clock
    ann = tenant.add_user("ann@contoso.com", "Ann", job_title="Engineer")
    bob = tenant.add_user("bob@contoso.com", "Bob")
    sales = tenant.add_group("Sales", members=[ann])
    tenant.assign(sales)
    with Simulator(tenant, token=TOKEN) as sim:
        yield World(sim, clock, ann, bob, sales)


def full_round(sim: Simulator, url: str) -> Round:
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        status, _, body = call(sim, url)
        assert status == 200, body
        pages += 1
        assert not ("@odata.nextLink" in body and "@odata.deltaLink" in body), "a page can't contain both"
        items.extend(body["value"])
        if "@odata.nextLink" in body:
            url = body["@odata.nextLink"]
            assert "$skiptoken=" in url and "$select" not in url
            continue
        assert "$deltatoken=" in body["@odata.deltaLink"]
        return Round(items, body["@odata.deltaLink"], pages)


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


# ---------------------------------------- users


def test_the_first_users_round_returns_every_user_with_the_selected_properties(world: World) -> None:
    first = by_id(full_round(world.sim, USERS).items)
    assert set(first) == {world.ann, world.bob}
    assert first[world.ann] == {
        "id": world.ann,
        "displayName": "Ann",
        "userPrincipalName": "ann@contoso.com",
        "jobTitle": "Engineer",
        "accountEnabled": True,
    }
    assert "jobTitle" not in first[world.bob], "a property never set is left out"


def test_a_later_round_returns_only_what_changed_as_it_is_now(world: World) -> None:
    first = full_round(world.sim, USERS)
    assert full_round(world.sim, first.delta_link).items == []
    world.tenant.update_user(world.bob, job_title="Chef")
    world.tenant.update_user(world.ann, job_title=None)
    carol = world.tenant.add_user("carol@contoso.com", "Carol")
    changed = by_id(full_round(world.sim, first.delta_link).items)
    assert set(changed) == {world.ann, world.bob, carol}
    assert changed[world.bob]["jobTitle"] == "Chef"
    assert changed[world.bob]["displayName"] == "Bob", "unchanged selected properties come with it"
    assert changed[world.ann]["jobTitle"] is None, "a property set to null is sent as null"


def test_a_change_outside_the_selection_does_not_bring_the_user(world: World) -> None:
    first = full_round(world.sim, "/users/delta?$select=displayName")
    world.tenant.update_user(world.ann, job_title="Manager")
    assert full_round(world.sim, first.delta_link).items == []


def test_deleted_users_are_removed_changed_in_the_deleted_items_and_deleted_for_good(world: World) -> None:
    first = full_round(world.sim, USERS)
    world.tenant.soft_delete_user(world.ann)
    world.tenant.delete_user(world.bob)
    removed = by_id(full_round(world.sim, first.delta_link).items)
    assert removed[world.ann] == {"id": world.ann, "@removed": {"reason": "changed"}}
    assert removed[world.bob] == {"id": world.bob, "@removed": {"reason": "deleted"}}


def test_a_restored_user_shows_up_as_newly_created(world: World) -> None:
    world.tenant.soft_delete_user(world.ann)
    first = full_round(world.sim, USERS)
    assert world.ann not in by_id(first.items), "deleted before the first round: not returned"
    world.tenant.restore_user(world.ann)
    back = by_id(full_round(world.sim, first.delta_link).items)
    assert back[world.ann]["userPrincipalName"] == "ann@contoso.com"
    assert "@removed" not in back[world.ann]


def test_latest_answers_with_a_delta_link_and_no_objects(world: World) -> None:
    status, _, body = call(world.sim, USERS + "&$deltatoken=latest")
    assert status == 200
    assert body["value"] == [] and "@odata.deltaLink" in body
    world.tenant.update_user(world.ann, display_name="Ann B")
    assert [item["id"] for item in full_round(world.sim, body["@odata.deltaLink"]).items] == [world.ann]


def test_a_large_round_is_paged_and_changes_during_paging_are_replayed(world: World) -> None:
    for n in range(PAGE_OBJECTS + 50):
        world.tenant.add_user(f"user{n}@contoso.com", f"User {n}")
    url = USERS
    status, _, body = call(world.sim, url)
    assert status == 200 and len(body["value"]) == PAGE_OBJECTS and "@odata.nextLink" in body
    world.tenant.update_user(world.ann, job_title="Director")  # ann was on the first page already
    rest = full_round(world.sim, body["@odata.nextLink"])
    assert len(body["value"]) + len(rest.items) == PAGE_OBJECTS + 52
    replayed = by_id(full_round(world.sim, rest.delta_link).items)
    assert replayed[world.ann]["jobTitle"] == "Director"


@pytest.mark.parametrize("option", ["$top=5", "$orderby=displayName", "$expand=manager", "$count=true"])
def test_unsupported_query_options_on_a_delta_query_are_400(world: World, option: str) -> None:
    status, _, _ = call(world.sim, f"/users/delta?{option}")
    assert status == 400


def test_select_with_a_skip_token_is_400(world: World) -> None:
    for n in range(PAGE_OBJECTS + 1):
        world.tenant.add_user(f"user{n}@contoso.com")
    status, _, body = call(world.sim, USERS)
    assert status == 200 and "@odata.nextLink" in body
    assert error_of(call(world.sim, body["@odata.nextLink"] + "&$select=displayName"))[0] == 400


def test_a_filter_tracks_users_by_id_only_and_at_most_fifty(world: World) -> None:
    only_ann = full_round(world.sim, "/users/delta?$filter=" + quoted(f"id eq '{world.ann}'"))
    assert [item["id"] for item in only_ann.items] == [world.ann]
    assert error_of(call(world.sim, "/users/delta?$filter=" + quoted("displayName eq 'Ann'")))[0] == 400
    many = " or ".join(f"id eq '{world.ann}'" for _ in range(51))
    assert error_of(call(world.sim, "/users/delta?$filter=" + quoted(many)))[0] == 400


def test_users_delta_needs_user_read_all(world: World) -> None:
    world.tenant.set_permissions({"Application.Read.All", "GroupMember.Read.All"})
    assert error_of(call(world.sim, USERS)) == (403, "Authorization_RequestDenied")


# ---------------------------------------- tokens


def test_a_token_older_than_seven_days_is_sync_state_not_found(world: World) -> None:
    first = full_round(world.sim, USERS)
    world.clock.now += TOKEN_LIFETIME_SECONDS + 1
    assert error_of(call(world.sim, first.delta_link)) == (400, "syncStateNotFound")


def test_a_garbled_token_is_sync_state_not_found(world: World) -> None:
    assert error_of(call(world.sim, "/users/delta?$deltatoken=not-a-token")) == (400, "syncStateNotFound")


def test_after_a_reset_of_the_sync_state_a_token_is_410_with_the_initial_query_as_location(world: World) -> None:
    first = full_round(world.sim, USERS)
    world.tenant.changelog.reset()
    status, headers, body = call(world.sim, first.delta_link)
    assert (status, body["error"]["code"]) == (410, "resyncRequired")
    location = headers.get("Location") or headers.get("location")
    assert location is not None and "/users/delta?" in location and "$deltatoken" not in location
    assert full_round(world.sim, location).items, "the initial query works again"


# ---------------------------------------- groups


def test_groups_delta_carries_members_as_type_and_id(world: World) -> None:
    first = by_id(full_round(world.sim, GROUPS).items)
    assert first[world.sales] == {
        "id": world.sales,
        "displayName": "Sales",
        "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": world.ann}],
    }


def test_a_group_without_members_has_no_members_delta(world: World) -> None:
    empty = world.tenant.add_group("Empty")
    assert "members@delta" not in by_id(full_round(world.sim, GROUPS).items)[empty]


def test_members_that_join_and_leave_come_as_added_and_removed(world: World) -> None:
    first = full_round(world.sim, GROUPS)
    world.tenant.add_member(world.sales, world.bob)
    world.tenant.remove_member(world.sales, world.ann)
    change = by_id(full_round(world.sim, first.delta_link).items)[world.sales]
    assert change["members@delta"] == sorted(
        [
            {"@odata.type": "#microsoft.graph.user", "id": world.bob},
            {"@odata.type": "#microsoft.graph.user", "id": world.ann, "@removed": {"reason": "deleted"}},
        ],
        key=lambda entry: entry["id"],
    )


def test_a_user_in_the_deleted_items_keeps_its_memberships_until_deleted_for_good(world: World) -> None:
    first = full_round(world.sim, GROUPS)
    world.tenant.soft_delete_user(world.ann)
    after_soft = full_round(world.sim, first.delta_link)
    assert after_soft.items == []
    world.tenant.purge_user(world.ann)
    member = by_id(full_round(world.sim, after_soft.delta_link).items)[world.sales]["members@delta"]
    assert member == [{"@odata.type": "#microsoft.graph.user", "id": world.ann, "@removed": {"reason": "deleted"}}]


def test_a_deleted_group_is_removed_deleted(world: World) -> None:
    first = full_round(world.sim, GROUPS)
    world.tenant.delete_group(world.sales)
    assert by_id(full_round(world.sim, first.delta_link).items)[world.sales]["@removed"] == {"reason": "deleted"}


def test_a_large_group_is_split_over_pages_the_same_group_repeated(world: World) -> None:
    big = world.tenant.add_group("Big")
    for n in range(PAGE_MEMBERS + 100):
        world.tenant.add_member(big, world.tenant.add_user(f"member{n}@contoso.com"))
    round_ = full_round(world.sim, GROUPS)
    parts = [item for item in round_.items if item["id"] == big]
    assert len(parts) >= 2, "the same group object on several pages"
    assert all(part["displayName"] == "Big" for part in parts)
    merged = [entry["id"] for part in parts for entry in part["members@delta"]]
    assert len(merged) == len(set(merged)) == PAGE_MEMBERS + 100


def test_other_member_types_come_with_their_type(world: World) -> None:
    device = world.tenant.add_device("LAPTOP-1")
    world.tenant.add_member(world.sales, device)
    types = {entry["@odata.type"] for entry in by_id(full_round(world.sim, GROUPS).items)[world.sales]["members@delta"]}
    assert types == {"#microsoft.graph.user", "#microsoft.graph.device"}


# ---------------------------------------- app role assignments


def test_assignment_changes_come_through_directory_objects_delta(world: World) -> None:
    start = full_round(world.sim, ASSIGNMENTS + "&$deltatoken=latest")
    assert start.items == []
    made = world.tenant.assign(world.bob)
    world.tenant.unassign(world.sales)
    items = full_round(world.sim, start.delta_link).items
    assignments = [item for item in items if item["@odata.type"] == "#microsoft.graph.appRoleAssignment"]
    added = [item for item in assignments if "@removed" not in item]
    removed = [item for item in assignments if "@removed" in item]
    assert [item["id"] for item in added] == [made]
    assert added[0]["principalId"] == world.bob and added[0]["resourceId"] == world.tenant.service_principal_id
    assert added[0]["principalType"] == "User"
    assert len(removed) == 1 and removed[0]["@removed"] == {"reason": "deleted"}


def test_assignments_alone_are_400_and_a_missing_filter_is_400(world: World) -> None:
    alone = "/directoryObjects/delta?$filter=" + quoted("isof('microsoft.graph.appRoleAssignment')")
    assert error_of(call(world.sim, alone))[0] == 400
    assert error_of(call(world.sim, "/directoryObjects/delta"))[0] == 400


def test_assignment_delta_needs_user_read_all(world: World) -> None:
    world.tenant.set_permissions({"Application.Read.All", "GroupMember.Read.All"})
    assert error_of(call(world.sim, ASSIGNMENTS)) == (403, "Authorization_RequestDenied")
