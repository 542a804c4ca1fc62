"""The rules of Graph's documentation the simulator enforces, each broken once over real HTTP.

Advanced queries on membership navigations, ``$count`` without ``ConsistencyLevel``, the
permission table and limited information, ``checkMemberGroups``, members that are not users,
userPrincipalNames that begin with ``$``, replication lag, and the items of ``$batch``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from syncd.simulator import Simulator, Tenant, generate_tenant
from syncd.simulator.schema import DEVICE, ORG_CONTACT
from tests.test_simulator import EVENTUAL, TOKEN, call, control, quoted

METADATA = Path(__file__).resolve().parents[2] / "shared" / "graph-metadata" / "v1.0-directory.json"
EVERYTHING = {"Directory.Read.All"}
UNSUPPORTED = (400, "Request_UnsupportedQuery")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """A small tenant with every kind of member, created an hour ago, served by a simulator."""

    sim: Simulator
    clock: Clock
    alice: str
    bob: str
    adele: str
    inner: str
    outer: str
    other: str
    device: str
    contact: str
    automation: str

    @property
    def tenant(self) -> Tenant:
        return self.sim.tenant


@pytest.fixture
def world() -> Iterator[World]:
    tenant = Tenant(seed=11)
    clock = Clock()
    tenant.clock = clock
    alice = tenant.add_user("alice@contoso.com", "Alice", mail="alice@contoso.com")
    bob = tenant.add_user("bob@contoso.com", "Bob")
    adele = tenant.add_user("$adele@contoso.com", "Adele")
    inner = tenant.add_group("Inner", members=[bob, adele])
    device = tenant.add_device("LAPTOP-0042", operating_system="Windows")
    contact = tenant.add_contact("Fabrikam Support", mail="support@fabrikam.com")
    automation = tenant.add_service_principal("Contoso Automation")
    outer = tenant.add_group("Outer", members=[alice, inner, device, contact, automation])
    other = tenant.add_group("Other", members=[alice])
    tenant.assign(outer)
    tenant.assign(automation)
    clock.now += 3600
    with Simulator(tenant, token=TOKEN) as sim:
        yield World(sim, clock, alice, bob, adele, inner, outer, other, device, contact, automation)


def error_of(response: tuple[int, dict[str, str], Any]) -> tuple[int, str]:
    status, _, body = response
    return status, body["error"]["code"]


def post(sim: Simulator, path: str, body: Any, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    return call(sim, path, method="POST", body=body, **kwargs)


def batch(sim: Simulator, *requests: dict[str, Any]) -> dict[str, dict[str, Any]]:
    status, _, body = post(sim, "/$batch", {"requests": list(requests)})
    assert status == 200, body
    return {item["id"]: item for item in body["responses"]}


# ---------------------------------------- advanced queries (rules 1 and 2)


def test_a_cast_on_members_without_consistency_level_is_400(world: World) -> None:
    path = f"/groups/{world.outer}/members/microsoft.graph.user?$count=true"
    assert error_of(call(world.sim, path)) == UNSUPPORTED


def test_a_cast_on_members_without_count_is_400(world: World) -> None:
    path = f"/groups/{world.outer}/members/microsoft.graph.user"
    assert error_of(call(world.sim, path, headers=EVENTUAL)) == UNSUPPORTED


@pytest.mark.parametrize(
    "cast", ["microsoft.graph.user", "graph.user", "microsoft.graph.group", "graph.device", "graph.orgContact"]
)
def test_every_cast_on_transitive_members_without_the_header_is_400(world: World, cast: str) -> None:
    assert error_of(call(world.sim, f"/groups/{world.outer}/transitiveMembers/{cast}")) == UNSUPPORTED


def test_a_cast_with_consistency_level_and_count_lists_only_that_type_and_counts_it(world: World) -> None:
    path = f"/groups/{world.outer}/transitiveMembers/graph.user?$count=true&$select=id"
    status, _, body = call(world.sim, path, headers=EVENTUAL)
    assert status == 200
    assert body["@odata.context"] == f"{world.sim.base_url}/$metadata#users(id)"
    assert [item["id"] for item in body["value"]] == [world.alice, world.bob, world.adele]
    assert body["@odata.count"] == 3


# ---------------------------------------- limits of $filter values ("Some limitations apply to query parameters")


def _ids(count: int, known: str) -> str:
    return ",".join([f"'{known}'", *(f"'{uuid.UUID(int=index)}'" for index in range(1, count))])


def test_an_in_list_of_more_than_15_values_is_400_unless_advanced(world: World) -> None:
    fifteen = "/users?$select=id&$filter=" + quoted(f"id in ({_ids(15, world.alice)})")
    status, _, body = call(world.sim, fifteen)
    assert status == 200 and [item["id"] for item in body["value"]] == [world.alice]
    sixteen = "/users?$select=id&$filter=" + quoted(f"id in ({_ids(16, world.alice)})")
    assert error_of(call(world.sim, sixteen)) == UNSUPPORTED
    status, _, body = call(world.sim, sixteen + "&$count=true", headers=EVENTUAL)
    assert status == 200 and [item["id"] for item in body["value"]] == [world.alice]


def test_an_advanced_query_is_limited_by_the_length_of_its_url_as_sent(world: World) -> None:
    many = "/users?$select=id&$count=true&$filter=" + quoted(f"id in ({_ids(60, world.alice)})")
    assert len(world.sim.base_url + many) > 2048
    assert error_of(call(world.sim, many, headers=EVENTUAL)) == UNSUPPORTED
    query = "?$select=id&$count=true&$filter=" + quoted(f"id in ({_ids(15, world.alice)})")
    padding = 2048 - len(world.sim.base_url + "/%75%73ers" + query)
    escaped = "/%75%73ers" + query + "&x=" + "y" * (padding - 2)  # 2,049 characters as sent
    assert len(world.sim.base_url + escaped) == 2049
    assert error_of(call(world.sim, escaped, headers=EVENTUAL)) == UNSUPPORTED
    assert call(world.sim, escaped[:-1], headers=EVENTUAL)[0] == 200, "2,048 are allowed"


def test_an_eq_value_longer_than_120_characters_is_400_unless_advanced(world: World) -> None:
    name = "N" * 121
    world.tenant.add_group(name)
    path = "/groups?$select=id,displayName&$filter=" + quoted(f"displayName eq '{name}'")
    assert error_of(call(world.sim, path)) == UNSUPPORTED
    status, _, body = call(world.sim, path + "&$count=true", headers=EVENTUAL)
    assert status == 200 and [item["displayName"] for item in body["value"]] == [name]
    exact = "/groups?$select=id&$filter=" + quoted(f"displayName eq '{'N' * 120}'")
    assert call(world.sim, exact)[0] == 200, "120 characters are allowed"


def test_a_filter_on_members_without_consistency_level_and_count_is_400(world: World) -> None:
    path = f"/groups/{world.outer}/members?$filter=" + quoted("displayName eq 'Alice'")
    assert error_of(call(world.sim, path)) == UNSUPPORTED
    assert error_of(call(world.sim, path, headers=EVENTUAL)) == UNSUPPORTED
    status, _, body = call(world.sim, path + "&$count=true", headers=EVENTUAL)
    assert status == 200
    assert [item["id"] for item in body["value"]] == [world.alice]


def test_a_cast_on_member_of_needs_consistency_level_and_count_for_users_and_groups(world: World) -> None:
    world.tenant.set_permissions(EVERYTHING)
    expected = {
        f"/users/{world.bob}/memberOf/microsoft.graph.group": [world.inner],
        f"/users/{world.bob}/transitiveMemberOf/microsoft.graph.group": [world.inner, world.outer],
        f"/groups/{world.inner}/memberOf/microsoft.graph.group": [world.outer],
        f"/groups/{world.inner}/transitiveMemberOf/graph.group": [world.outer],
        f"/servicePrincipals/{world.automation}/memberOf/graph.group": [world.outer],
    }
    for path, groups in expected.items():
        assert error_of(call(world.sim, path)) == UNSUPPORTED, path
        status, _, body = call(world.sim, path + "?$count=true", headers=EVENTUAL)
        assert status == 200, path
        assert [item["id"] for item in body["value"]] == groups, path
        assert body["@odata.count"] == len(groups)


def test_plain_members_with_select_need_neither_the_header_nor_count(world: World) -> None:
    status, _, body = call(world.sim, f"/groups/{world.outer}/members?$select=id,displayName")
    assert status == 200
    assert "@odata.count" not in body
    assert len(body["value"]) == 5


def test_count_on_a_directory_collection_without_consistency_level_is_400(world: World) -> None:
    for path in ("/users?$count=true&$top=1", "/groups?$count=true", "/servicePrincipals?$count=true"):
        assert error_of(call(world.sim, path)) == UNSUPPORTED, path
    assert error_of(call(world.sim, f"/groups/{world.outer}/members?$count=true")) == UNSUPPORTED


def test_count_on_users_with_consistency_level_returns_the_count(world: World) -> None:
    status, _, body = call(world.sim, "/users?$count=true&$top=1", headers=EVENTUAL)
    assert status == 200
    assert body["@odata.count"] == 3
    assert len(body["value"]) == 1


# ---------------------------------------- permissions (rule 3)


@pytest.mark.parametrize(
    ("granted", "allowed"),
    [
        ({"Application.Read.All"}, True),
        ({"Application.ReadWrite.All"}, True),
        ({"Directory.Read.All"}, True),
        ({"Directory.ReadWrite.All"}, True),
        ({"User.Read.All", "GroupMember.Read.All"}, False),
    ],
)
def test_service_principal_endpoints_need_an_application_or_directory_permission(
    world: World, granted: set[str], allowed: bool
) -> None:
    world.tenant.set_permissions(granted)
    sp, app_id = world.tenant.service_principal_id, world.tenant.app_id
    for path in (
        "/servicePrincipals",
        f"/servicePrincipals/{sp}",
        f"/servicePrincipals(appId='{app_id}')",
        f"/servicePrincipals/{sp}/appRoleAssignedTo",
    ):
        assert call(world.sim, path)[0] == (200 if allowed else 403), path


@pytest.mark.parametrize(
    ("granted", "allowed"),
    [
        ({"User.Read.All"}, True),
        ({"User.ReadWrite.All"}, True),
        ({"Directory.Read.All"}, True),
        ({"Directory.ReadWrite.All"}, True),
        ({"GroupMember.Read.All", "Application.Read.All"}, False),
    ],
)
def test_user_endpoints_need_a_user_or_directory_permission(world: World, granted: set[str], allowed: bool) -> None:
    world.tenant.set_permissions(granted)
    for path in ("/users", f"/users/{world.alice}", "/users/alice@contoso.com"):
        assert call(world.sim, path)[0] == (200 if allowed else 403), path


@pytest.mark.parametrize(
    ("granted", "allowed"),
    [
        ({"GroupMember.Read.All"}, True),
        ({"GroupMember.ReadWrite.All"}, True),
        ({"Group.Read.All"}, True),
        ({"Group.ReadWrite.All"}, True),
        ({"Directory.Read.All"}, True),
        ({"Directory.ReadWrite.All"}, True),
        ({"User.Read.All", "Application.Read.All"}, False),
    ],
)
def test_group_endpoints_need_a_group_or_directory_permission(world: World, granted: set[str], allowed: bool) -> None:
    world.tenant.set_permissions(granted)
    group = world.outer
    for path in ("/groups", f"/groups/{group}", f"/groups/{group}/members", f"/groups/{group}/transitiveMembers"):
        assert call(world.sim, path)[0] == (200 if allowed else 403), path


@pytest.mark.parametrize("relation", ["memberOf", "transitiveMemberOf"])
def test_a_users_memberships_need_directory_read_all(world: World, relation: str) -> None:
    path = f"/users/{world.bob}/{relation}"
    world.tenant.set_permissions({"User.Read.All", "GroupMember.Read.All", "Group.Read.All"})
    status, _, body = call(world.sim, path)
    assert (status, body["error"]["code"]) == (403, "Authorization_RequestDenied")
    assert body["error"]["message"] == "Insufficient privileges to complete the operation."
    for granted in ({"Directory.Read.All"}, {"Directory.ReadWrite.All"}):
        world.tenant.set_permissions(granted)
        assert call(world.sim, path)[0] == 200


@pytest.mark.parametrize(
    ("granted", "allowed"),
    [
        ({"User.Read.All", "GroupMember.Read.All"}, True),
        ({"User.Read.All", "Group.Read.All"}, True),
        ({"User.ReadWrite.All", "Group.ReadWrite.All"}, True),
        ({"Directory.Read.All"}, True),
        ({"Directory.ReadWrite.All"}, True),
        ({"User.Read.All"}, False),
        ({"GroupMember.Read.All", "Group.Read.All"}, False),
        ({"Application.Read.All"}, False),
    ],
)
def test_check_member_groups_of_a_user_needs_user_and_group_read_or_directory(
    world: World, granted: set[str], allowed: bool
) -> None:
    world.tenant.set_permissions(granted)
    status, _, _ = post(world.sim, f"/users/{world.bob}/checkMemberGroups", {"groupIds": [world.outer]})
    assert status == (200 if allowed else 403)


@pytest.mark.parametrize(
    ("granted", "allowed"),
    [
        ({"GroupMember.Read.All"}, True),
        ({"Group.Read.All"}, True),
        ({"Directory.Read.All"}, True),
        ({"Group.ReadWrite.All"}, True),
        ({"User.Read.All"}, False),
    ],
)
def test_check_member_groups_of_a_group_needs_a_group_or_directory_permission(
    world: World, granted: set[str], allowed: bool
) -> None:
    world.tenant.set_permissions(granted)
    status, _, _ = post(world.sim, f"/groups/{world.inner}/checkMemberGroups", {"groupIds": [world.outer]})
    assert status == (200 if allowed else 403)


@pytest.mark.parametrize("holder", ["users", "groups"])
def test_the_assignments_a_user_or_group_holds_need_directory_or_app_role_assignment_permission(
    world: World, holder: str
) -> None:
    path = f"/{holder}/{world.alice if holder == 'users' else world.outer}/appRoleAssignments"
    world.tenant.set_permissions({"User.Read.All", "GroupMember.Read.All", "Application.Read.All"})
    assert call(world.sim, path)[0] == 403
    for granted in ({"AppRoleAssignment.ReadWrite.All"}, {"Directory.Read.All"}):
        world.tenant.set_permissions(granted)
        assert call(world.sim, path)[0] == 200


def test_check_member_groups_of_a_service_principal_needs_an_application_or_directory_permission(
    world: World,
) -> None:
    path = f"/servicePrincipals/{world.automation}/checkMemberGroups"
    world.tenant.set_permissions({"GroupMember.Read.All", "User.Read.All"})
    assert post(world.sim, path, {"groupIds": [world.outer]})[0] == 403
    world.tenant.set_permissions({"Application.Read.All"})
    assert post(world.sim, path, {"groupIds": [world.outer]})[2]["value"] == [world.outer]


def test_members_of_types_the_app_may_not_read_are_listed_with_limited_information(world: World) -> None:
    world.tenant.set_permissions({"GroupMember.Read.All", "User.Read.All"})
    status, _, body = call(world.sim, f"/groups/{world.outer}/members?$select=id,displayName,mail")
    assert status == 200
    by_id = {item["id"]: item for item in body["value"]}
    assert by_id[world.alice] == {
        "@odata.type": "#microsoft.graph.user",
        "id": world.alice,
        "displayName": "Alice",
        "mail": "alice@contoso.com",
    }
    assert by_id[world.device] == {"@odata.type": "#microsoft.graph.device", "id": world.device, "displayName": None}
    assert by_id[world.contact] == {
        "@odata.type": "#microsoft.graph.orgContact",
        "id": world.contact,
        "displayName": None,
        "mail": None,
    }
    assert by_id[world.automation] == {
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "id": world.automation,
        "displayName": None,
    }


def test_limited_information_without_select_gives_the_default_properties_as_null(world: World) -> None:
    world.tenant.set_permissions({"GroupMember.Read.All"})
    _, _, body = call(world.sim, f"/groups/{world.outer}/members")
    alice = next(item for item in body["value"] if item["id"] == world.alice)
    assert alice["displayName"] is None and alice["userPrincipalName"] is None
    assert {name for name, value in alice.items() if value is not None} == {"@odata.type", "id"}


def test_each_member_type_is_read_in_full_with_its_own_permission(world: World) -> None:
    world.tenant.set_permissions({"GroupMember.Read.All", "Device.Read.All", "OrgContact.Read.All"})
    _, _, body = call(world.sim, f"/groups/{world.outer}/members?$select=id,displayName")
    names = {item["id"]: item["displayName"] for item in body["value"]}
    assert names[world.device] == "LAPTOP-0042"
    assert names[world.contact] == "Fabrikam Support"
    assert names[world.alice] is None
    assert names[world.inner] == "Inner"


# ---------------------------------------- checkMemberGroups (rule 4)


def test_check_member_groups_answers_the_given_groups_the_user_is_in_even_through_nesting(world: World) -> None:
    world.tenant.set_permissions(EVERYTHING)
    missing = str(uuid.uuid4())
    body = {"groupIds": [world.other, world.outer, missing, world.inner]}
    status, _, answer = post(world.sim, f"/users/{world.bob}/checkMemberGroups", body)
    assert status == 200
    assert answer == {
        "@odata.context": f"{world.sim.base_url}/$metadata#Collection(Edm.String)",
        "value": [world.outer, world.inner],
    }


def test_check_member_groups_of_a_group_is_transitive_too(world: World) -> None:
    world.tenant.set_permissions(EVERYTHING)
    nest = world.tenant.add_group("Top", members=[world.outer])
    ids = [nest, world.other, world.outer]
    _, _, answer = post(world.sim, f"/groups/{world.inner}/checkMemberGroups", {"groupIds": ids})
    assert answer["value"] == [nest, world.outer]


@pytest.mark.parametrize(
    "body",
    [
        {"groupIds": []},
        {"groupIds": [str(uuid.uuid4()) for _ in range(21)]},
        {"groupIds": "not a list"},
        {"groupIds": ["not-a-guid"]},
        {"groupIds": [42]},
        {"groupIDs": [str(uuid.uuid4())]},
        ["not an object"],
        None,
    ],
)
def test_check_member_groups_with_a_malformed_body_is_400(world: World, body: Any) -> None:
    world.tenant.set_permissions(EVERYTHING)
    status, _, answer = post(world.sim, f"/users/{world.bob}/checkMemberGroups", body)
    assert (status, answer["error"]["code"]) == (400, "Request_BadRequest")


def test_check_member_groups_takes_up_to_20_groups(world: World) -> None:
    world.tenant.set_permissions(EVERYTHING)
    ids = [world.outer, *(str(uuid.uuid4()) for _ in range(19))]
    status, _, answer = post(world.sim, f"/users/{world.alice}/checkMemberGroups", {"groupIds": ids})
    assert (status, answer["value"]) == (200, [world.outer])


def test_check_member_groups_is_a_post(world: World) -> None:
    world.tenant.set_permissions(EVERYTHING)
    assert call(world.sim, f"/users/{world.bob}/checkMemberGroups")[0] == 405
    assert post(world.sim, f"/users/{world.bob}/memberOf", {"groupIds": [world.outer]})[0] == 405


def test_check_member_groups_in_a_batch_gets_its_body(world: World) -> None:
    world.tenant.set_permissions(EVERYTHING)
    headers = {"Content-Type": "application/json"}
    user_check = {"groupIds": [world.outer, world.other]}
    answers = batch(
        world.sim,
        {
            "id": "1",
            "method": "POST",
            "url": f"/users/{world.bob}/checkMemberGroups",
            "headers": headers,
            "body": user_check,
        },
        {
            "id": "2",
            "method": "POST",
            "url": f"/groups/{world.inner}/checkMemberGroups",
            "headers": headers,
            "body": {},
        },
    )
    assert (answers["1"]["status"], answers["1"]["body"]["value"]) == (200, [world.outer])
    assert answers["2"]["status"] == 400


def test_a_batch_item_with_a_body_but_no_content_type_refuses_the_batch(world: World) -> None:
    item = {"id": "1", "method": "POST", "url": f"/users/{world.bob}/checkMemberGroups", "body": {"groupIds": []}}
    status, _, answer = post(world.sim, "/$batch", {"requests": [item]})
    assert (status, answer["error"]["code"]) == (400, "BadRequest")


# ---------------------------------------- members that are not users (rule 5)


def test_devices_contacts_service_principals_and_groups_are_listed_as_members_with_their_type(world: World) -> None:
    world.tenant.set_permissions(EVERYTHING)
    _, _, body = call(world.sim, f"/groups/{world.outer}/members")
    types = {item["id"]: item["@odata.type"] for item in body["value"]}
    assert types == {
        world.alice: "#microsoft.graph.user",
        world.inner: "#microsoft.graph.group",
        world.device: "#microsoft.graph.device",
        world.contact: "#microsoft.graph.orgContact",
        world.automation: "#microsoft.graph.servicePrincipal",
    }
    device = next(item for item in body["value"] if item["id"] == world.device)
    assert list(device) == ["@odata.type", *DEVICE.defaults]
    contact = next(item for item in body["value"] if item["id"] == world.contact)
    assert list(contact) == ["@odata.type", *ORG_CONTACT.defaults]
    _, _, everyone = call(world.sim, f"/groups/{world.outer}/transitiveMembers?$select=id")
    assert len(everyone["value"]) == 7


def test_select_on_members_resolves_names_across_member_types_and_omits_those_a_type_lacks(world: World) -> None:
    world.tenant.set_permissions(EVERYTHING)
    path = f"/groups/{world.outer}/members?$select=id,userPrincipalName,operatingSystem,appId,mail"
    status, _, body = call(world.sim, path)
    assert status == 200
    by_id = {item["id"]: item for item in body["value"]}
    assert list(by_id[world.alice]) == ["@odata.type", "id", "userPrincipalName", "mail"]
    assert by_id[world.device] == {
        "@odata.type": "#microsoft.graph.device",
        "id": world.device,
        "operatingSystem": "Windows",
    }
    assert list(by_id[world.contact]) == ["@odata.type", "id", "mail"]
    assert list(by_id[world.automation]) == ["@odata.type", "id", "appId"]
    assert list(by_id[world.inner]) == ["@odata.type", "id", "mail"]


def test_select_of_a_property_no_member_type_has_is_400(world: World) -> None:
    status, _, body = call(world.sim, f"/groups/{world.outer}/members?$select=id,shoeSize")
    assert (status, body["error"]["code"]) == (400, "Request_BadRequest")
    assert "microsoft.graph.directoryObject" in body["error"]["message"]


def test_devices_and_contacts_cannot_be_assigned_app_roles(world: World) -> None:
    for principal in (world.device, world.contact):
        with pytest.raises(ValueError, match="cannot be assigned an app role"):
            world.tenant.assign(principal)


def test_a_service_principal_holds_its_assignment_and_is_listed_as_a_member(world: World) -> None:
    world.tenant.set_permissions(EVERYTHING)
    sp = world.tenant.service_principal_id
    _, _, assigned = call(world.sim, f"/servicePrincipals/{sp}/appRoleAssignedTo")
    assert {(item["principalId"], item["principalType"]) for item in assigned["value"]} == {
        (world.outer, "Group"),
        (world.automation, "ServicePrincipal"),
    }
    _, _, held = call(world.sim, f"/servicePrincipals/{world.automation}/appRoleAssignments")
    assert [item["resourceId"] for item in held["value"]] == [sp]
    _, _, groups = call(world.sim, f"/servicePrincipals/{world.automation}/memberOf")
    assert [item["id"] for item in groups["value"]] == [world.outer]


def test_control_api_creates_devices_and_contacts_that_can_join_groups(world: World) -> None:
    status, device = control(world.sim, "POST", "devices", {"displayName": "KIOSK-7", "operatingSystem": "Linux"})
    assert (status, device["displayName"], device["operatingSystem"]) == (201, "KIOSK-7", "Linux")
    status, contact = control(world.sim, "POST", "contacts", {"displayName": "Partner", "mail": "p@adatum.com"})
    assert (status, contact["mail"]) == (201, "p@adatum.com")
    for member in (device["id"], contact["id"]):
        assert control(world.sim, "POST", f"groups/{world.other}/members", {"id": member})[0] == 204
    assert world.tenant.member_ids(world.other) == [world.alice, device["id"], contact["id"]]
    summary = control(world.sim, "GET", "tenant")[1]
    assert (summary["devices"], summary["contacts"]) == (2, 2)


def test_generated_tenants_put_members_that_are_not_users_into_assigned_groups() -> None:
    tenant = generate_tenant(seed=4, users=80, groups=4)
    assigned = {item["principalId"] for item in tenant.list_assignments() if item["principalType"] == "Group"}
    kinds = {tenant.get(member).kind for group in assigned for member in tenant.member_ids(group)}
    assert kinds == {"user", "group", "servicePrincipal", "device", "orgContact"}
    holders = {item["principalType"] for item in tenant.list_assignments()}
    assert "ServicePrincipal" in holders
    again = generate_tenant(seed=4, users=80, groups=4)
    assert [again.member_ids(group) for group in again.group_ids()] == [
        tenant.member_ids(group) for group in tenant.group_ids()
    ]


@pytest.mark.skipif(not METADATA.is_file(), reason="shared/graph-metadata is not beside the repo")
def test_device_and_contact_properties_are_those_of_graph_metadata() -> None:
    types = json.loads(METADATA.read_text())["types"]
    inherited = {"id", *types["directoryObject"]["properties"]}
    for resource in (DEVICE, ORG_CONTACT):
        published = types[resource.name]["properties"]
        assert set(resource.properties) == inherited | set(published), resource.name
        collections = {name for name, kind in published.items() if kind.startswith("Collection(")}
        assert {name for name, unset in resource.properties.items() if unset == []} == collections
        assert set(resource.defaults) <= set(resource.properties)


# ---------------------------------------- userPrincipalNames beginning with $ (rule 6)


@pytest.mark.parametrize("path", ["/users/$adele@contoso.com", "/users/%24adele@contoso.com"])
def test_a_user_principal_name_beginning_with_dollar_after_a_slash_is_400(world: World, path: str) -> None:
    status, _, body = call(world.sim, path)
    assert (status, body["error"]["code"]) == (400, "Request_BadRequest")


def test_a_user_principal_name_beginning_with_dollar_is_found_in_parentheses_and_quotes(world: World) -> None:
    status, _, body = call(world.sim, "/users('$adele@contoso.com')?$select=id,userPrincipalName")
    assert (status, body["id"], body["userPrincipalName"]) == (200, world.adele, "$adele@contoso.com")
    assert call(world.sim, "/users('%24ADELE@contoso.com')")[0] == 200


def test_two_single_quotes_inside_the_key_stand_for_one(world: World) -> None:
    obrien = world.tenant.add_user("$o'brien@contoso.com")
    status, _, body = call(world.sim, "/users('$o''brien@contoso.com')")
    assert (status, body["id"]) == (200, obrien)
    assert call(world.sim, "/users('o''neil@contoso.com')")[0] == 404


def test_navigations_and_actions_follow_the_parenthesized_key(world: World) -> None:
    world.tenant.set_permissions(EVERYTHING)
    _, _, groups = call(world.sim, "/users('$adele@contoso.com')/transitiveMemberOf")
    assert [item["id"] for item in groups["value"]] == [world.inner, world.outer]
    status, _, answer = post(world.sim, "/users('$adele@contoso.com')/checkMemberGroups", {"groupIds": [world.outer]})
    assert (status, answer["value"]) == (200, [world.outer])


# ---------------------------------------- replication lag (rule 7)


def test_an_object_younger_than_the_lag_is_404_by_id_but_already_listed(world: World) -> None:
    tenant, sim = world.tenant, world.sim
    tenant.set_permissions(EVERYTHING)
    tenant.set_lag(60)
    newcomer = tenant.add_user("newcomer@contoso.com")
    team = tenant.add_group("New Team", members=[newcomer])
    tenant.assign(team)
    tenant.add_member(world.outer, newcomer)
    for path in (
        f"/users/{newcomer}",
        "/users/newcomer@contoso.com",
        f"/users/{newcomer}/memberOf",
        f"/groups/{team}",
        f"/groups/{team}/members",
    ):
        status, _, body = call(sim, path)
        assert (status, body["error"]["code"]) == (404, "Request_ResourceNotFound"), path
    status, _, _ = post(sim, f"/users/{newcomer}/checkMemberGroups", {"groupIds": [team]})
    assert status == 404
    assert newcomer in {item["id"] for item in call(sim, "/users?$top=999")[2]["value"]}
    assert team in {item["id"] for item in call(sim, "/groups")[2]["value"]}
    assert newcomer in {item["id"] for item in call(sim, f"/groups/{world.outer}/members")[2]["value"]}
    assigned = call(sim, f"/servicePrincipals/{tenant.service_principal_id}/appRoleAssignedTo")[2]["value"]
    assert team in {item["principalId"] for item in assigned}
    assert call(sim, f"/users/{world.alice}")[0] == 200


def test_the_lag_hides_only_objects_created_after_it_was_set() -> None:
    tenant = Tenant(seed=5)
    before = tenant.add_user("before@contoso.com")
    tenant.set_lag(60)
    after = tenant.add_user("after@contoso.com")
    with Simulator(tenant, token=TOKEN) as sim:
        assert call(sim, f"/servicePrincipals/{tenant.service_principal_id}")[0] == 200
        assert call(sim, f"/users/{before}")[0] == 200
        assert call(sim, f"/users/{after}")[0] == 404


def test_an_object_is_found_by_id_once_the_lag_has_passed(world: World) -> None:
    world.tenant.set_lag(5)
    user = world.tenant.add_user("late@contoso.com")
    world.clock.now += 4.9
    assert call(world.sim, f"/users/{user}")[0] == 404
    world.clock.now += 0.1
    assert call(world.sim, f"/users/{user}")[0] == 200


def test_the_lag_applies_inside_a_batch_and_is_set_by_the_control_api(world: World) -> None:
    assert control(world.sim, "PUT", "lag", {"seconds": 30}) == (200, {"seconds": 30.0})
    fresh = world.tenant.add_user("fresh@contoso.com")
    answers = batch(
        world.sim,
        {"id": "1", "method": "GET", "url": f"/users/{fresh}"},
        {"id": "2", "method": "GET", "url": f"/users/{world.alice}"},
    )
    assert (answers["1"]["status"], answers["2"]["status"]) == (404, 200)
    assert control(world.sim, "PUT", "lag", {"seconds": 0})[0] == 200
    assert call(world.sim, f"/users/{fresh}")[0] == 200


# ---------------------------------------- $batch items (rule 8)


def test_a_failed_batch_item_answers_its_own_status_while_the_others_succeed(world: World) -> None:
    world.sim.fail(world.bob, status=424)
    users = (world.alice, world.bob, world.adele)
    answers = batch(
        world.sim, *({"id": str(n), "method": "GET", "url": f"/users/{user}"} for n, user in enumerate(users, 1))
    )
    assert {key: item["status"] for key, item in answers.items()} == {"1": 200, "2": 424, "3": 200}
    assert answers["2"]["body"]["error"]["code"] == "FailedDependency"


def test_a_throttled_batch_item_carries_its_own_retry_after(world: World) -> None:
    world.sim.throttle(times=1, retry_after="7", path_regex=world.bob)
    answers = batch(
        world.sim,
        {"id": "a", "method": "GET", "url": f"/users/{world.alice}"},
        {"id": "b", "method": "GET", "url": f"/users/{world.bob}"},
    )
    assert (answers["a"]["status"], answers["b"]["status"]) == (200, 429)
    assert answers["b"]["headers"]["Retry-After"] == "7"
    assert "Retry-After" not in answers["a"]["headers"]


def test_an_item_depending_on_a_failed_item_is_424(world: World) -> None:
    world.sim.fail(world.bob, status=503, retry_after=1)
    answers = batch(
        world.sim,
        {"id": "1", "method": "GET", "url": f"/users/{world.bob}"},
        {"id": "2", "method": "GET", "url": f"/users/{world.alice}", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": f"/users/{world.adele}"},
    )
    assert {key: item["status"] for key, item in answers.items()} == {"1": 503, "2": 424, "3": 200}
    assert answers["1"]["headers"]["Retry-After"] == "1"
