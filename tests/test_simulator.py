"""The Graph simulator, exercised over real HTTP with urllib and compared with Graph's examples."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from syncd.simulator import DEFAULT_ACCESS_ROLE_ID, Simulator, Tenant, generate_tenant
from syncd.simulator.demo_changes import apply_demo_changes

EXAMPLES = Path(__file__).parent / "fixtures" / "graph-examples"
PUBLISHED_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "graph-examples"
BROKEN_AS_PUBLISHED = "json-batching.response.json"
TOKEN = "test-token"
EVENTUAL = {"ConsistencyLevel": "eventual"}


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


def call(
    sim: Simulator,
    path: str,
    *,
    method: str = "GET",
    token: str | None = TOKEN,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request; ``path`` is relative to the base URL unless it is a full URL."""
    url = path if path.startswith("http") else sim.base_url + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, response_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, raw = error.code, dict(error.headers), error.read()
    return status, response_headers, json.loads(raw) if raw else None


def control(sim: Simulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, _, payload = call(sim, f"{sim.url}/_sim/{path}", method=method, token=None, body=body)
    return status, payload


def every_page(sim: Simulator, path: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    url: str | None = path
    while url:
        status, _, body = call(sim, url, **kwargs)
        assert status == 200, body
        items.extend(body["value"])
        url = body.get("@odata.nextLink")
    return items


def quoted(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


@pytest.fixture(scope="module")
def big() -> Iterator[Simulator]:
    """A read-only simulator over a generated tenant of 2,500 users."""
    with Simulator(generate_tenant(seed=7, users=2500, groups=5, nested_groups=2), token=TOKEN) as sim:
        yield sim


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A simulator over a small generated tenant that a test may change."""
    with Simulator(generate_tenant(seed=3, users=60, groups=3, direct_assignments=10), token=TOKEN) as server:
        yield server


# --------------------------------------------------------------------------- the examples


def test_every_example_fixture_is_valid_json() -> None:
    files = sorted(EXAMPLES.glob("*.json"))
    assert len(files) == 15
    for path in files:
        json.loads(path.read_text())


@pytest.mark.skipif(not PUBLISHED_EXAMPLES.is_dir(), reason="shared/graph-examples is not beside the repo")
def test_published_examples_are_valid_json_except_the_batch_response_with_its_trailing_comma() -> None:
    for path in sorted(PUBLISHED_EXAMPLES.glob("*.json")):
        text = path.read_text()
        if path.name == BROKEN_AS_PUBLISHED:
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
            fixed = text.replace('"OData-Version": "4.0",\n', '"OData-Version": "4.0"\n')
            assert (EXAMPLES / path.name).read_text() == fixed
        else:
            json.loads(text)
            assert (EXAMPLES / path.name).read_text() == text


# --------------------------------------------------------------------------- shapes


def test_service_principal_has_the_keys_of_the_graph_example(big: Simulator) -> None:
    status, headers, body = call(big, f"/servicePrincipals/{big.tenant.service_principal_id}")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert is_uuid(headers["request-id"])
    assert set(body) - {"@odata.context"} == set(example("serviceprincipal-get.response.json"))
    assert body["@odata.context"] == f"{big.base_url}/$metadata#servicePrincipals/$entity"
    assert body["id"] == big.tenant.service_principal_id
    assert body["appId"] == big.tenant.app_id


def test_service_principal_select_returns_the_selected_properties_and_app_roles_like_graph(big: Simulator) -> None:
    published = example("serviceprincipal-get.select-approles.response.json")
    path = f"/servicePrincipals/{big.tenant.service_principal_id}"
    status, _, body = call(big, path + "?$select=id,appId,displayName,appRoles,oauth2PermissionScopes")
    assert status == 200
    assert list(body) == list(published)
    assert body["@odata.context"].endswith(
        "#servicePrincipals(id,appId,displayName,appRoles,oauth2PermissionScopes)/$entity"
    )
    roles = {role["displayName"]: role for role in body["appRoles"]}
    assert set(roles) == {"Admin", "Member", "Viewer", "Guest", "12345", "Billing Manager"}
    for role in roles.values():
        assert set(role) == set(published["appRoles"][0])
        assert role["allowedMemberTypes"] == ["User"]
        assert role["origin"] == "Application"
        assert is_uuid(role["id"])
    assert DEFAULT_ACCESS_ROLE_ID not in {role["id"] for role in roles.values()}


def test_service_principal_can_be_read_by_app_id(big: Simulator) -> None:
    status, _, body = call(big, f"/servicePrincipals(appId='{big.tenant.app_id}')?$select=id,displayName")
    assert status == 200
    assert body["id"] == big.tenant.service_principal_id
    assert set(body) == {"@odata.context", "id", "displayName"}


def test_app_role_assigned_to_items_have_the_keys_of_the_graph_example(big: Simulator) -> None:
    published = example("serviceprincipal-list-approleassignedto.response.json")
    sp = big.tenant.service_principal_id
    items = every_page(big, f"/servicePrincipals/{sp}/appRoleAssignedTo")
    assert len(items) == len(big.tenant.assignments_to(sp))
    for item in items:
        assert list(item) == list(published["value"][0])
        assert all(is_uuid(item[key]) for key in ("appRoleId", "principalId", "resourceId"))
        assert item["resourceId"] == sp
    assert {item["principalType"] for item in items} == {"User", "Group", "ServicePrincipal"}
    _, _, body = call(big, f"/servicePrincipals/{sp}/appRoleAssignedTo?$top=1")
    assert body["@odata.context"] == f"{big.base_url}/$metadata#servicePrincipals('{sp}')/appRoleAssignedTo"


def test_user_has_the_default_properties_of_the_graph_example_and_account_enabled_only_when_selected(
    big: Simulator,
) -> None:
    user_id = big.tenant.user_ids()[0]
    status, _, body = call(big, f"/users/{user_id}")
    assert status == 200
    assert list(body) == ["@odata.context", *example("user-get.response.json")]
    assert "accountEnabled" not in body
    _, _, selected = call(big, f"/users/{user_id}?$select=id,accountEnabled")
    assert selected == {
        "@odata.context": f"{big.base_url}/$metadata#users(id,accountEnabled)/$entity",
        "id": user_id,
        "accountEnabled": True,
    }


def test_user_select_answers_exactly_the_selected_properties_like_the_graph_example(big: Simulator) -> None:
    published = example("user-get.select.response.json")
    status, _, body = call(
        big, f"/users/{big.tenant.user_ids()[0]}?$select=displayName,givenName,postalCode,identities"
    )
    assert status == 200
    assert list(body) == list(published)
    assert body["postalCode"] is None
    assert body["identities"] == []


def test_users_are_found_by_user_principal_name_in_any_case_including_guests(big: Simulator) -> None:
    guest = next(user for user in big.tenant.users.values() if "#EXT#" in user.props["userPrincipalName"])
    upn = guest.props["userPrincipalName"]
    status, _, body = call(big, f"/users/{quoted(upn)}")
    assert (status, body["id"]) == (200, guest.id)
    status, _, body = call(big, f"/users/{quoted(upn.upper())}")
    assert (status, body["id"]) == (200, guest.id)


def test_member_items_carry_their_odata_type_like_the_transitive_members_example(big: Simulator) -> None:
    published = example("group-list-transitivemembers.response.json")
    group_id = big.tenant.group_ids()[0]
    status, _, body = call(big, f"/groups/{group_id}/transitiveMembers?$select=id,mail")
    assert status == 200
    assert body["@odata.context"] == f"{big.base_url}/$metadata#directoryObjects(id,mail)"
    users = [item for item in body["value"] if item["@odata.type"] == "#microsoft.graph.user"]
    assert users
    assert all(list(item) == list(published["value"][0]) for item in users)
    _, _, members = call(big, f"/groups/{group_id}/members?$top=999")
    kinds = {item["@odata.type"] for item in members["value"]}
    assert {"#microsoft.graph.user", "#microsoft.graph.group"} <= kinds


def test_group_has_the_default_group_properties(big: Simulator) -> None:
    group_id = big.tenant.group_ids()[0]
    status, _, body = call(big, f"/groups/{group_id}")
    assert status == 200
    assert body["id"] == group_id
    assert {"displayName", "securityEnabled", "groupTypes", "mail", "createdDateTime"} <= set(body)
    _, _, selected = call(big, f"/groups/{group_id}?$select=id,displayName")
    assert set(selected) == {"@odata.context", "id", "displayName"}


def test_guid_typed_fields_are_valid_uuids(big: Simulator) -> None:
    for user in every_page(big, "/users?$top=999&$select=id"):
        assert is_uuid(user["id"])
    for group in every_page(big, "/groups?$select=id"):
        assert is_uuid(group["id"])


# --------------------------------------------------------------------------- paging and query options


def test_paging_past_999_returns_every_user_exactly_once(big: Simulator) -> None:
    big.reset_counts()
    users = every_page(big, "/users?$top=999&$select=id,userPrincipalName")
    ids = [user["id"] for user in users]
    assert len(ids) == len(set(ids)) == 2500
    assert set(ids) == set(big.tenant.user_ids())
    assert big.count(r"^/v1\.0/users\?") == 3


def test_next_link_points_back_at_the_simulator_and_keeps_select_and_top(big: Simulator) -> None:
    _, _, body = call(big, "/users?$top=5&$select=id,displayName")
    link = body["@odata.nextLink"]
    assert link.startswith(f"{big.base_url}/users?")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    assert query["$top"] == ["5"]
    assert query["$select"] == ["id,displayName"]
    assert "$skiptoken" in query


def test_default_page_size_is_100(big: Simulator) -> None:
    _, _, body = call(big, "/users")
    assert len(body["value"]) == 100
    assert "@odata.nextLink" in body


def test_top_above_999_is_a_bad_request(big: Simulator) -> None:
    status, _, body = call(big, "/users?$top=1000")
    assert status == 400
    assert body["error"]["code"] == "Request_BadRequest"
    status, _, _ = call(big, f"/groups/{big.tenant.group_ids()[0]}/members?$top=1000")
    assert status == 400


def test_select_of_an_unknown_property_is_a_bad_request(big: Simulator) -> None:
    status, _, body = call(big, "/users?$select=id,shoeSize")
    assert status == 400
    assert "shoeSize" in body["error"]["message"]


def test_filters_on_users(sim: Simulator) -> None:
    tenant = sim.tenant
    zoe = tenant.find_user("zoe.o'brien@contoso.com")
    literal = quoted("userPrincipalName eq 'ZOE.O''BRIEN@contoso.com'")
    _, _, body = call(sim, f"/users?$filter={literal}")
    assert [user["id"] for user in body["value"]] == [zoe.id]

    enabled = every_page(sim, "/users?$top=999&$select=id&$filter=" + quoted("accountEnabled eq true"))
    expected = {user.id for user in tenant.users.values() if user.props["accountEnabled"]}
    assert {user["id"] for user in enabled} == expected

    wanted = tenant.user_ids()[3:6]
    clause = "id in (" + ",".join(f"'{user_id}'" for user_id in wanted) + ")"
    _, _, body = call(sim, "/users?$filter=" + quoted(clause))
    assert sorted(user["id"] for user in body["value"]) == sorted(wanted)

    _, _, body = call(sim, "/users?$filter=" + quoted("startswith(displayName,'zoë o')"))
    assert [user["displayName"] for user in body["value"]] == ["Zoë O'Brien (Contractor)"]


def test_filter_on_group_display_name(sim: Simulator) -> None:
    group_id = sim.tenant.group_ids()[1]
    name = sim.tenant.get_group(group_id)["displayName"]
    _, _, body = call(sim, "/groups?$filter=" + quoted(f"displayName eq '{name}'"))
    assert [group["id"] for group in body["value"]] == [group_id]


def test_advanced_filter_operators_need_consistency_level_and_count(sim: Simulator) -> None:
    clause = "/users?$filter=" + quoted("accountEnabled ne false")
    status, _, body = call(sim, clause)
    assert (status, body["error"]["code"]) == (400, "Request_UnsupportedQuery")
    status, _, body = call(sim, clause + "&$count=true", headers={"ConsistencyLevel": "eventual"})
    assert status == 200
    assert body["@odata.count"] == sum(1 for user in sim.tenant.users.values() if user.props["accountEnabled"])


def test_a_user_deleted_between_pages_does_not_make_others_skip_or_repeat(sim: Simulator) -> None:
    before = set(sim.tenant.user_ids())
    _, _, first = call(sim, "/users?$top=20&$select=id")
    sim.tenant.delete_user(first["value"][-1]["id"])
    rest = every_page(sim, first["@odata.nextLink"])
    served = [user["id"] for user in first["value"]] + [user["id"] for user in rest]
    assert len(served) == len(set(served)) == len(before)


def test_app_role_assigned_to_honours_select(big: Simulator) -> None:
    path = f"/servicePrincipals/{big.tenant.service_principal_id}/appRoleAssignedTo?$select=principalId,appRoleId"
    _, _, body = call(big, path)
    assert body["@odata.context"].endswith("/appRoleAssignedTo(principalId,appRoleId)")
    assert all(list(item) == ["principalId", "appRoleId"] for item in body["value"])


def test_service_principals_can_be_filtered_by_app_id(big: Simulator) -> None:
    _, _, body = call(big, "/servicePrincipals?$filter=" + quoted(f"appId eq '{big.tenant.app_id}'"))
    assert [item["id"] for item in body["value"]] == [big.tenant.service_principal_id]


def test_concurrent_readers_see_every_user_once_while_the_tenant_changes(sim: Simulator) -> None:
    original = set(sim.tenant.user_ids())

    def read_all(_: int) -> list[str]:
        return [user["id"] for user in every_page(sim, "/users?$top=7&$select=id")]

    with ThreadPoolExecutor(max_workers=8) as pool:
        readers = [pool.submit(read_all, index) for index in range(16)]
        for index in range(20):
            sim.tenant.delete_user(sim.tenant.add_user(f"churn{index}@contoso.com"))
        results = [reader.result() for reader in readers]
    for ids in results:
        assert len(ids) == len(set(ids))
        assert original <= set(ids)
    assert all(entry[2] == 200 for entry in sim.request_log)


# --------------------------------------------------------------------------- errors


def test_missing_or_wrong_token_is_401_with_graph_error_body(sim: Simulator) -> None:
    for token in (None, "wrong"):
        status, headers, body = call(sim, "/users", token=token)
        assert status == 401
        assert body["error"]["code"] == "InvalidAuthenticationToken"
        assert set(body["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
        assert body["error"]["innerError"]["request-id"] == headers["request-id"]
    _, _, body = call(sim, "/users", token="wrong")
    assert body["error"]["message"] == "Access token validation failure. Invalid audience."


def test_missing_permission_is_403(sim: Simulator) -> None:
    sim.tenant.set_permissions({"Application.Read.All"})
    status, _, body = call(sim, "/users")
    assert status == 403
    assert body["error"]["code"] == "Authorization_RequestDenied"
    assert body["error"]["message"] == "Insufficient privileges to complete the operation."
    assert call(sim, f"/groups/{sim.tenant.group_ids()[0]}/members")[0] == 403
    assert call(sim, f"/servicePrincipals/{sim.tenant.service_principal_id}")[0] == 200
    sim.tenant.set_permissions({"Directory.Read.All"})
    assert call(sim, "/users")[0] == 200


def test_members_are_listed_with_type_id_and_null_properties_without_user_read_permission(sim: Simulator) -> None:
    sim.tenant.set_permissions({"GroupMember.Read.All"})
    group_id = sim.tenant.group_ids()[0]
    path = f"/groups/{group_id}/members/microsoft.graph.user?$select=id,mail&$count=true"
    status, _, body = call(sim, path, headers=EVENTUAL)
    assert status == 200
    assert body["value"]
    assert all(list(item) == ["@odata.type", "id", "mail"] for item in body["value"])
    assert all(item["mail"] is None and item["id"] for item in body["value"])


def test_unknown_object_is_404_with_graph_message(sim: Simulator) -> None:
    missing = str(uuid.uuid4())
    for path in (f"/users/{missing}", f"/groups/{missing}/members", f"/servicePrincipals/{missing}"):
        status, _, body = call(sim, path)
        assert status == 404
        assert body["error"]["code"] == "Request_ResourceNotFound"
        assert body["error"]["message"] == (
            f"Resource '{missing}' does not exist or one of its queried reference-property objects are not present."
        )


def test_unknown_paths_and_methods_are_refused(sim: Simulator) -> None:
    status, _, body = call(sim, "/drives")
    assert (status, body["error"]["code"]) == (400, "BadRequest")
    status, _, _ = call(sim, "/users", method="POST", body={"displayName": "x"})
    assert status == 405
    status, _, _ = call(sim, f"{sim.url}/beta/users")
    assert status == 400


def test_client_request_id_is_echoed(sim: Simulator) -> None:
    _, headers, _ = call(sim, "/users?$top=1", headers={"client-request-id": "abc-123"})
    assert headers["client-request-id"] == "abc-123"


# --------------------------------------------------------------------------- $batch


def batch_of(urls: list[str]) -> dict[str, Any]:
    return {"requests": [{"id": str(index), "method": "GET", "url": url} for index, url in enumerate(urls, 1)]}


def test_batch_items_succeed_and_fail_independently(sim: Simulator) -> None:
    users = sim.tenant.user_ids()[:4]
    sim.tenant.delete_user(users[1])
    urls = [f"/users/{users[0]}", f"users/{users[1]}?$select=id", f"users/{users[2]}", f"/users/{users[3]}"]
    sim.reset_counts()
    status, _, body = call(sim, "/$batch", method="POST", body=batch_of(urls))
    assert status == 200
    statuses = {item["id"]: item["status"] for item in body["responses"]}
    assert statuses == {"1": 200, "2": 404, "3": 200, "4": 200}
    by_id = {item["id"]: item for item in body["responses"]}
    assert by_id["1"]["body"]["id"] == users[0]
    assert by_id["2"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert sim.requests == 1
    assert sim.batch_items == 4
    assert sim.count(r"/users/", include_batch_items=True) == 4


def test_batch_response_has_the_shape_of_the_graph_example(sim: Simulator) -> None:
    published = example("json-batching.response.json")
    urls = [f"/users/{user_id}" for user_id in sim.tenant.user_ids()[:5]]
    _, _, body = call(sim, "/$batch", method="POST", body=batch_of(urls))
    assert list(body) == list(published)
    for item in body["responses"]:
        assert set(item) == {"id", "status", "headers", "body"}
    order = [item["id"] for item in body["responses"]]
    assert sorted(order) == ["1", "2", "3", "4", "5"]
    assert order != sorted(order)
    _, _, again = call(sim, "/$batch", method="POST", body=batch_of(urls))
    assert [item["id"] for item in again["responses"]] == order


def test_batch_of_more_than_20_requests_is_refused(sim: Simulator) -> None:
    urls = [f"/users/{user_id}" for user_id in sim.tenant.user_ids()[:21]]
    status, _, body = call(sim, "/$batch", method="POST", body=batch_of(urls))
    assert status == 400
    assert body["error"]["code"] == "BadRequest"
    assert call(sim, "/$batch", method="POST", body=batch_of(urls[:20]))[0] == 200


def test_throttled_batch_item_gets_429_with_its_own_retry_after(sim: Simulator) -> None:
    users = sim.tenant.user_ids()[:3]
    sim.throttle(times=1, retry_after="2.128", path_regex=users[1])
    _, _, body = call(sim, "/$batch", method="POST", body=batch_of([f"/users/{user_id}" for user_id in users]))
    by_id = {item["id"]: item for item in body["responses"]}
    assert [by_id[key]["status"] for key in ("1", "2", "3")] == [200, 429, 200]
    assert by_id["2"]["headers"]["Retry-After"] == "2.128"
    assert by_id["2"]["body"]["error"]["code"] == "TooManyRequests"


def test_batch_item_depending_on_a_failed_item_is_424(sim: Simulator) -> None:
    missing = str(uuid.uuid4())
    payload = {
        "requests": [
            {"id": "1", "method": "GET", "url": f"/users/{missing}"},
            {"id": "2", "method": "GET", "url": "/users?$top=1", "dependsOn": ["1"]},
        ]
    }
    _, _, body = call(sim, "/$batch", method="POST", body=payload)
    assert {item["id"]: item["status"] for item in body["responses"]} == {"1": 404, "2": 424}


def test_batch_needs_the_token_and_its_items_use_it(sim: Simulator) -> None:
    status, _, body = call(sim, "/$batch", method="POST", body=batch_of(["/users"]), token="wrong")
    assert (status, body["error"]["code"]) == (401, "InvalidAuthenticationToken")
    sim.tenant.set_permissions({"User.Read.All"})
    _, _, body = call(sim, "/$batch", method="POST", body=batch_of(["/users?$top=1", "/groups"]))
    assert {item["id"]: item["status"] for item in body["responses"]} == {"1": 200, "2": 403}


# --------------------------------------------------------------------------- faults


def test_throttle_answers_429_with_the_graph_example_body_and_retry_after(sim: Simulator) -> None:
    published = example("throttling-429.response.json")
    sim.throttle(times=2, retry_after="2.128")
    for _ in range(2):
        status, headers, body = call(sim, "/users?$top=1")
        assert status == 429
        assert headers["Retry-After"] == "2.128"
        assert list(body) == list(published)
        assert list(body["error"]) == list(published["error"])
        assert set(body["error"]["innerError"]) == set(published["error"]["innerError"])
    assert call(sim, "/users?$top=1")[0] == 200


def test_fail_once_then_succeed(sim: Simulator) -> None:
    sim.fail(r"/appRoleAssignedTo", status=503, times=1, retry_after=1)
    path = f"/servicePrincipals/{sim.tenant.service_principal_id}/appRoleAssignedTo"
    status, headers, body = call(sim, path)
    assert (status, headers["Retry-After"]) == (503, "1")
    assert "innerError" in body["error"]
    assert call(sim, path)[0] == 200
    assert [entry[2] for entry in sim.request_log[-2:]] == [503, 200]


def test_fail_with_a_given_body_and_forever(sim: Simulator) -> None:
    sim.fail(r"/groups", status=502, times=None, body={"message": "gateway"})
    for _ in range(3):
        assert call(sim, "/groups")[::2] == (502, {"message": "gateway"})
    sim.clear_faults()
    assert call(sim, "/groups")[0] == 200


def test_delay_holds_back_only_matching_responses(sim: Simulator) -> None:
    sim.delay(3, path_regex=r"/groups", times=1)
    assert call(sim, "/users?$top=1")[0] == 200
    request = urllib.request.Request(sim.base_url + "/groups?$top=1", headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(request, timeout=0.2)


def test_a_hold_keeps_matching_requests_waiting_until_released(sim: Simulator) -> None:
    held = sim.hold(r"/groups")
    answers: list[int] = []
    waiting = threading.Thread(target=lambda: answers.append(call(sim, "/groups?$top=1")[0]))
    waiting.start()
    assert held.arrived.wait(10)
    assert call(sim, "/users?$top=1")[0] == 200 and answers == []
    held.release.set()
    waiting.join(10)
    assert answers == [200]


# --------------------------------------------------------------------------- memberships


def test_transitive_members_flatten_nested_groups_once_even_with_a_cycle() -> None:
    tenant = Tenant()
    alice = tenant.add_user("alice@contoso.com", "Alice")
    bob = tenant.add_user("bob@contoso.com", "Bob")
    carol = tenant.add_user("carol@contoso.com", "Carol")
    inner = tenant.add_group("Inner", members=[bob, alice])
    outer = tenant.add_group("Outer", members=[alice, inner])
    tenant.add_member(inner, outer)
    tenant.add_member(inner, carol)
    with Simulator(tenant, token=TOKEN) as sim:
        path = f"/groups/{outer}/transitiveMembers/microsoft.graph.user?$select=id&$count=true"
        _, _, users = call(sim, path, headers=EVENTUAL)
        assert sorted(item["id"] for item in users["value"]) == sorted([alice, bob, carol])
        _, _, everything = call(sim, f"/groups/{outer}/transitiveMembers")
        types = [item["@odata.type"] for item in everything["value"]]
        assert types.count("#microsoft.graph.group") == 1
        assert types.count("#microsoft.graph.user") == 3
        _, _, direct = call(sim, f"/groups/{outer}/members/graph.user?$count=true", headers=EVENTUAL)
        assert [item["id"] for item in direct["value"]] == [alice]


def test_member_lists_page_past_999(big: Simulator) -> None:
    tenant = big.tenant
    group_id = max(tenant.group_ids(), key=lambda group: len(tenant.transitive_user_ids(group)))
    expected = tenant.transitive_user_ids(group_id)
    path = f"/groups/{group_id}/transitiveMembers/microsoft.graph.user?$top=100&$select=id&$count=true"
    items = every_page(big, path, headers=EVENTUAL)
    assert [item["id"] for item in items] == expected


def test_user_member_of_and_app_role_assignments(sim: Simulator) -> None:
    tenant = sim.tenant
    tenant.set_permissions({"Directory.Read.All"})
    group_id = tenant.group_ids()[0]
    user_id = tenant.member_ids(group_id)[0]
    _, _, groups = call(sim, f"/users/{user_id}/memberOf?$select=id,displayName")
    assert group_id in {item["id"] for item in groups["value"]}
    role = tenant.app_roles()[0]["id"]
    tenant.assign(user_id, role)
    _, _, held = call(sim, f"/users/{user_id}/appRoleAssignments")
    assert {(item["appRoleId"], item["principalType"]) for item in held["value"]} >= {(role, "User")}


# --------------------------------------------------------------------------- the tenant


def test_deleting_a_user_removes_its_assignments_and_memberships() -> None:
    tenant = Tenant()
    role = tenant.add_app_role("Admin", "admin")
    user = tenant.add_user("dora@contoso.com")
    group = tenant.add_group("Team", members=[user])
    tenant.assign(user, role)
    tenant.assign(group)
    tenant.delete_user(user)
    assert tenant.member_ids(group) == []
    assert [item["principalId"] for item in tenant.list_assignments()] == [group]
    tenant.delete_group(group)
    assert tenant.list_assignments() == []


def test_tenant_validates_ids_roles_and_unique_user_principal_names() -> None:
    tenant = Tenant()
    with pytest.raises(ValueError):
        tenant.add_user("x@contoso.com", id="not-a-guid")
    tenant.add_user("X@contoso.com")
    with pytest.raises(ValueError):
        tenant.add_user("x@CONTOSO.com")
    with pytest.raises(ValueError):
        tenant.assign(tenant.user_ids()[0], str(uuid.uuid4()))
    first = tenant.assign(tenant.user_ids()[0])
    assert tenant.assign(tenant.user_ids()[0], DEFAULT_ACCESS_ROLE_ID) == first
    assert tenant.unassign(tenant.user_ids()[0]) == 1


def test_tenant_changes_are_seen_by_the_next_request(sim: Simulator) -> None:
    user_id = sim.tenant.user_ids()[0]
    sim.tenant.update_user(user_id, displayName="Renamed", accountEnabled=False, job_title="Chief")
    _, _, body = call(sim, f"/users/{user_id}?$select=displayName,accountEnabled,jobTitle")
    assert (body["displayName"], body["accountEnabled"], body["jobTitle"]) == ("Renamed", False, "Chief")
    group_id = sim.tenant.group_ids()[0]
    sim.tenant.rename_group(group_id, "Renamed Team")
    _, _, assignments = call(sim, f"/servicePrincipals/{sim.tenant.service_principal_id}/appRoleAssignedTo")
    names = {item["principalId"]: item["principalDisplayName"] for item in assignments["value"]}
    assert names[group_id] == "Renamed Team"


# --------------------------------------------------------------------------- control API and counts


def test_control_api_changes_the_tenant_and_is_not_counted(sim: Simulator) -> None:
    sim.reset_counts()
    status, user = control(sim, "POST", "users", {"userPrincipalName": "new@contoso.com", "displayName": "New"})
    assert status == 201
    assert is_uuid(user["id"])
    assert control(sim, "PATCH", f"users/{user['id']}", {"jobTitle": "Boss"})[1]["jobTitle"] == "Boss"
    role = sim.tenant.app_roles()[1]["id"]
    status, assigned = control(sim, "POST", "assign", {"principalId": user["id"], "appRoleId": role})
    assert status == 201
    assert sim.tenant.list_assignments()[-1]["id"] == assigned["id"]
    status, group = control(sim, "POST", "groups", {"displayName": "Crew", "members": [user["id"]]})
    assert (status, group["members"]) == (201, [user["id"]])
    other = sim.tenant.user_ids()[0]
    assert control(sim, "POST", f"groups/{group['id']}/members", {"id": other})[0] == 204
    assert control(sim, "DELETE", f"groups/{group['id']}/members/{user['id']}")[0] == 204
    assert sim.tenant.member_ids(group["id"]) == [other]
    assert control(sim, "PATCH", f"groups/{group['id']}", {"displayName": "Crew 2"})[0] == 200
    assert control(sim, "POST", "unassign", {"principalId": user["id"]})[1] == {"removed": 1}
    assert control(sim, "DELETE", f"users/{user['id']}")[0] == 204
    assert control(sim, "DELETE", f"users/{user['id']}")[0] == 404
    assert control(sim, "DELETE", f"groups/{group['id']}")[0] == 204
    assert sim.requests == 0
    status, summary = control(sim, "GET", "tenant")
    assert summary["servicePrincipalId"] == sim.tenant.service_principal_id
    assert summary["baseUrl"] == sim.base_url


def test_control_api_faults_permissions_and_stats(sim: Simulator) -> None:
    assert control(sim, "POST", "faults", {"kind": "throttle", "times": 1, "retryAfter": "3"})[0] == 201
    status, headers, _ = call(sim, "/users?$top=1")
    assert (status, headers["Retry-After"]) == (429, "3")
    control(sim, "POST", "faults", {"kind": "fail", "path_regex": "/groups", "status": 500})
    assert control(sim, "DELETE", "faults")[0] == 204
    assert call(sim, "/groups")[0] == 200
    control(sim, "PUT", "permissions", {"permissions": ["Application.Read.All"]})
    assert call(sim, "/users")[0] == 403
    status, stats = control(sim, "GET", "stats")
    assert stats["requests"] == 3
    assert [entry[2] for entry in stats["log"]] == [429, 200, 403]
    control(sim, "POST", "reset-stats")
    assert sim.requests == 0
    assert control(sim, "GET", "nothing-here")[0] == 404
    assert control(sim, "POST", "users", {"displayName": "no upn"})[0] == 400


def test_request_log_and_count(sim: Simulator) -> None:
    sim.reset_counts()
    call(sim, "/users?$top=2&$select=id")
    call(sim, f"/groups/{sim.tenant.group_ids()[0]}/members")
    assert sim.requests == 2
    assert sim.request_log[0] == ("GET", "/v1.0/users?$top=2&$select=id", 200)
    assert sim.count(r"/members") == 1
    assert sim.count(r"\$top=2") == 1


def test_demo_changes_rename_unassign_change_a_role_and_disable(sim: Simulator) -> None:
    tenant = sim.tenant
    before = {item["id"]: item for item in tenant.list_assignments()}
    lines = apply_demo_changes(tenant)
    assert len(lines) == 4
    assert "renamed" in lines[0] and "unassigned" in lines[1] and "app role" in lines[2] and "disabled" in lines[3]
    assert len(tenant.list_assignments()) < len(before) + 1
    assert sum(not tenant.get_user(user_id)["accountEnabled"] for user_id in tenant.user_ids()) >= 1
    again = generate_tenant(seed=3, users=60, groups=3, direct_assignments=10)
    assert apply_demo_changes(again) == lines


# --------------------------------------------------------------------------- the generator


def test_generator_is_deterministic_for_a_seed() -> None:
    def dump(tenant: Tenant) -> Any:
        users = [tenant.get_user(user_id) for user_id in tenant.user_ids()]
        groups = [(tenant.get_group(group_id), tenant.member_ids(group_id)) for group_id in tenant.group_ids()]
        return tenant.service_principal_id, tenant.app_roles(), users, groups, tenant.list_assignments()

    assert dump(generate_tenant(seed=5, users=200, nested_groups=2)) == dump(
        generate_tenant(seed=5, users=200, nested_groups=2)
    )
    assert dump(generate_tenant(seed=5, users=200)) != dump(generate_tenant(seed=6, users=200))


def test_generator_builds_the_described_tenant() -> None:
    tenant = generate_tenant(seed=1, users=500, groups=5, direct_assignments=20, nested_groups=2)
    users = [tenant.get_user(user_id) for user_id in tenant.user_ids()]
    names = {user["displayName"] for user in users}
    assert "Zoë O'Brien (Contractor)" in names
    assert any("#EXT#" in user["userPrincipalName"] and user["userType"] == "Guest" for user in users)
    assert any(user["userPrincipalName"] != user["userPrincipalName"].lower() for user in users)
    assert any(not user["accountEnabled"] for user in users)
    assignments = tenant.list_assignments()
    by_type: dict[str, set[str]] = {}
    for item in assignments:
        by_type.setdefault(item["principalType"], set()).add(item["principalId"])
    assert len(by_type["Group"]) == 5
    assert len(by_type["User"]) == 20
    assert len(by_type["ServicePrincipal"]) == 1
    roles = {role["displayName"] for role in tenant.app_roles()}
    assert {"Admin", "Member", "Viewer", "Guest", "12345", "Billing Manager"} == roles
    assigned_groups = by_type["Group"]
    nested = [
        tenant.get_group(member)["displayName"]
        for group_id in assigned_groups
        for member in tenant.member_ids(group_id)
        if member in tenant.groups
    ]
    assert sorted(nested) == sorted([*(name for name in nested if " – Team " in name), "Meeting Room Equipment"])
    assert sum(" – Team " in name for name in nested) == 2
    others = {tenant.get(member).kind for group_id in assigned_groups for member in tenant.member_ids(group_id)}
    assert others == {"user", "group", "servicePrincipal", "device", "orgContact"}
    in_scope = set(by_type["User"])
    for group_id in assigned_groups:
        in_scope.update(tenant.transitive_user_ids(group_id))
    assert 0 < len(set(tenant.user_ids()) - in_scope) < 50
    unassigned_groups = set(tenant.group_ids()) - assigned_groups
    assert {tenant.get_group(group_id)["displayName"] for group_id in unassigned_groups} >= {
        "All Company",
        "Former Employees",
    }


def test_generator_puts_each_user_in_about_one_group_for_large_tenants() -> None:
    tenant = generate_tenant(seed=2, users=5000, groups=50, direct_assignments=0)
    memberships = sum(len(tenant.member_ids(group_id)) for group_id in tenant.group_ids()[:50])
    assert 4500 < memberships < 5500


@pytest.mark.slow
def test_generator_builds_100000_users_and_serves_999_item_pages() -> None:
    tenant = generate_tenant(seed=0, users=100_000, groups=50, direct_assignments=500)
    assert len(tenant.user_ids()) >= 100_000
    with Simulator(tenant, token=TOKEN) as sim:
        _, _, body = call(sim, "/users?$top=999&$select=id,userPrincipalName,mail,displayName,jobTitle,accountEnabled")
        assert len(body["value"]) == 999


# --------------------------------------------------------------------------- standalone


def test_module_runs_standalone_and_serves_the_generated_tenant(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncd.simulator",
            "--port",
            "0",
            "--users",
            "20",
            "--token",
            "tok",
            "--token-file",
            str(token_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        base_url = first.split()[-1]
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1.0")
        assert token_file.read_text() == "tok"
        request = urllib.request.Request(f"{base_url}/users?$top=1", headers={"Authorization": "Bearer tok"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert len(json.loads(response.read())["value"]) == 1
    finally:
        process.terminate()
        process.wait(timeout=10)
