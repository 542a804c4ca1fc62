"""Microsoft's published Graph example responses parse through syncd's Graph decoders.

The files under ``fixtures/graph-examples/`` are verbatim copies of the JSON bodies in the Graph
documentation (their provenance is in that folder's SOURCES.md).  Each is read with the decoder
that reads the same kind of answer from the live service; the service principal example is also
read with msgraph-sdk's typed model, and both readings must agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from syncd.graph.classify import graph_error
from syncd.graph.client import BATCH_SIZE, batch_request_body, batch_result
from syncd.graph.decode import (
    BadResponse,
    decode_assignment,
    decode_batch_response,
    decode_error,
    decode_group,
    decode_member,
    decode_page,
    decode_service_principal,
    decode_user,
    load_object,
)
from syncd.model import DEFAULT_ACCESS_ROLE_ID, Assignment

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "graph-examples"


def _assignments(body: dict[str, Any]) -> None:
    (assignment,) = [decode_assignment(item) for item in decode_page(body).items]
    assert assignment == Assignment("cdb555e3-b33e-4fd5-a427-17fadacbdfa7", "User", DEFAULT_ACCESS_ROLE_ID)


def _user(body: dict[str, Any]) -> None:
    user = decode_user(body)
    assert (user.id, user.user_principal_name, user.attributes["jobTitle"]) == (
        "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
        "AdeleV@contoso.com",
        "Retail Manager",
    )
    assert user.account_enabled is True  # not selected in the example: the model's default


def _selected_user(body: dict[str, Any]) -> None:
    # this $select left the id out; the id the request asked for stands in
    user = decode_user(body, fallback_id="87d349ed-44d7-43e1-9a83-5f2406dee5bd")
    assert (user.id, user.display_name, user.user_principal_name) == (
        "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
        "Adele Vance",
        None,
    )


def _user_page(body: dict[str, Any]) -> None:
    page = decode_page(body)
    users = [decode_user(item) for item in page.items]
    assert users and all(user.id for user in users)
    assert page.next_link is None or page.next_link.startswith("https://graph.microsoft.com/v1.0/")


def _group_page(body: dict[str, Any]) -> None:
    groups = [decode_group(item) for item in decode_page(body).items]
    assert groups and all(group_id and name for group_id, name in groups)


def _group_page_without_ids(body: dict[str, Any]) -> None:
    """This documented delta page omits the groups' ids; a group without an id is refused, not guessed."""
    (item,) = decode_page(body).items
    with pytest.raises(BadResponse, match="'id' is missing"):
        decode_group(item)
    assert decode_group({**item, "id": "g1"}) == ("g1", "All Company")


def _members(body: dict[str, Any]) -> None:
    (member,) = [decode_member(item) for item in decode_page(body).items]
    assert member is not None and member.id


def _untagged_members(body: dict[str, Any]) -> None:
    """Graph tags each object of a directoryObject collection with its type; an untagged member
    (this shortened example) could be a device or a contact, so it is refused rather than guessed."""
    (item,) = decode_page(body).items
    with pytest.raises(BadResponse, match=r"'@odata\.type' is missing"):
        decode_member(item)
    member = decode_member({**item, "@odata.type": "#microsoft.graph.user"})
    assert member is not None and member.id == "11111111-2222-3333-4444-555555555555"


def _batch_request(body: dict[str, Any]) -> None:
    """syncd's own batch body has the documented shape: id, method and a relative url."""
    documented = body["requests"]
    assert all({"id", "method", "url"} <= item.keys() for item in documented)
    ours = json.loads(batch_request_body({str(n): f"/users/u{n}?$select=id" for n in range(1, BATCH_SIZE + 1)}))
    assert len(ours["requests"]) == BATCH_SIZE
    assert all(set(item) == {"id", "method", "url"} and item["url"].startswith("/") for item in ours["requests"])


def _batch_response(body: dict[str, Any]) -> None:
    answers = decode_batch_response(body)
    assert {item_id: answer.status for item_id, answer in answers.items()} == {
        "1": 302,
        "2": 200,
        "3": 401,
        "4": 204,
        "5": 200,
    }
    users = batch_result("/users?$select=id", answers["5"], "reading users")
    assert users.error is None and decode_page(users.body).items[0]["userPrincipalName"] == "AdeleV@Contoso.com"
    denied = batch_result("/groups/x/events", answers["3"], "reading events")
    assert denied.error is not None and denied.error.code == "GRAPH_AUTH"
    empty = batch_result("/me", answers["4"], "updating me")
    assert empty.error is not None and empty.error.code == "GRAPH_BAD_RESPONSE"


def _service_principal(body: dict[str, Any]) -> None:
    """The raw decoder and msgraph-sdk's typed ServicePrincipal model read the same values."""
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
    from msgraph.generated.models.service_principal import ServicePrincipal

    ours = decode_service_principal(body)
    node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(body).encode())
    typed = node.get_object_value(ServicePrincipal)
    assert ours.id == str(typed.id)
    assert ours.app_id == typed.app_id and ours.display_name == typed.display_name
    assert [(role.id, role.display_name, role.value) for role in ours.app_roles] == [
        (str(role.id), role.display_name or "", role.value) for role in typed.app_roles or []
    ]


def _throttled(body: dict[str, Any]) -> None:
    assert decode_error(json.dumps(body).encode()) == ("TooManyRequests", "Please retry again later.")
    error = graph_error(429, json.dumps(body).encode(), "listing users", "/users")
    assert error.code == "GRAPH_THROTTLED" and "Please retry again later." in error.message


READERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "serviceprincipal-list-approleassignedto.response.json": _assignments,
    "user-get.response.json": _user,
    "user-get.select.response.json": _selected_user,
    "user-delta.response.json": _user_page,
    "delta-query-users.initial.response.json": _user_page,
    "delta-query-users.final-nextlink.response.json": _user_page,
    "group-delta.response.json": _group_page_without_ids,
    "delta-query-groups.deltalink-with-changes.response.json": _group_page,
    "group-list-members.response.json": _untagged_members,
    "group-list-transitivemembers.response.json": _members,
    "serviceprincipal-get.response.json": _service_principal,
    "serviceprincipal-get.select-approles.response.json": _service_principal,
    "json-batching.request.json": _batch_request,
    "json-batching.response.json": _batch_response,
    "throttling-429.response.json": _throttled,
}


def test_every_example_file_has_a_reader():
    assert EXAMPLES.is_dir(), f"{EXAMPLES} is missing"
    files = {path.name for path in EXAMPLES.glob("*.json")}
    assert files == set(READERS)


@pytest.mark.parametrize("name", sorted(READERS))
def test_example_parses_through_the_graph_decoders(name):
    body = load_object((EXAMPLES / name).read_bytes(), name)
    READERS[name](body)
