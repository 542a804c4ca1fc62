"""A broken or hostile Graph never costs a seat: endless listings, answers from elsewhere,
malformed objects and answers about the wrong object fail their read, and nothing is deprovisioned.

Each test syncs a tenant once, then reads it again in full (``sync --full``) while the simulator
answers badly: the run must be incomplete (exit 3), the store exactly as it was, and the next
healthy run must converge.  The same classes of answer in a delta round are in test_delta_answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from syncd.simulator import Simulator
from tests.test_cli_graph import TOKEN, Graphed
from tests.test_cli_graph import graphed as graphed  # the fixture, re-exported for pytest


@pytest.fixture
def synced(graphed: Graphed) -> Graphed:
    code, _, err = graphed("sync")
    assert code == 0, err
    return graphed


@pytest.fixture
def elsewhere() -> Iterator[Simulator]:
    """Another Graph-like server on this machine: nothing may ever reach it."""
    with Simulator(token=TOKEN) as other:
        yield other


def state(graphed: Graphed) -> tuple[Any, Any]:
    return graphed.json("users"), graphed.json("teams")


def assert_nothing_changed_then_converges(graphed: Graphed, before: tuple[Any, Any], err: str, code: int) -> None:
    assert code == 3, err
    assert "Traceback" not in err
    assert state(graphed) == before, "a bad answer changed the store"
    graphed.sim.clear_faults()
    code, _, err = graphed("sync")
    assert code == 0, err
    assert graphed.json("plan")["changes"] == []


def a_group(graphed: Graphed) -> str:
    return next(a["principalId"] for a in graphed.tenant.list_assignments() if a["principalType"] == "Group")


def members_url(graphed: Graphed, group_id: str, token: str) -> str:
    return f"{graphed.sim.base_url}/groups/{group_id}/members?$skiptoken={token}"


def user_member(graphed: Graphed, group_id: str) -> dict[str, Any]:
    member_id = next(m for m in graphed.tenant.member_ids(group_id) if m in graphed.tenant.users)
    props = graphed.tenant.get_user(member_id)
    return {"@odata.type": "#microsoft.graph.user", **{k: props.get(k) for k in ("id", "userPrincipalName")}}


# --------------------------------------------------------------------------- listings that never end


def test_a_next_link_to_itself_is_a_bad_response_not_an_endless_loop(synced):
    before = state(synced)
    sp = synced.tenant.service_principal_id
    loop = f"{synced.sim.base_url}/servicePrincipals/{sp}/appRoleAssignedTo?$skiptoken=again"
    synced.sim.fail(r"appRoleAssignedTo", status=200, times=None, body={"value": [], "@odata.nextLink": loop})
    code, _, err = synced("sync", "--full")
    assert "GRAPH_BAD_RESPONSE" in err and "nextLink" in err
    assert synced.sim.count("appRoleAssignedTo") <= 3
    assert_nothing_changed_then_converges(synced, before, err, code)


def test_next_links_that_go_round_in_a_circle_are_a_bad_response(synced):
    before = state(synced)
    group_id = a_group(synced)
    member = user_member(synced, group_id)
    b, c = members_url(synced, group_id, "B"), members_url(synced, group_id, "C")
    synced.sim.fail(
        rf"/groups/{group_id}/members\?\$select", status=200, times=None, body={"value": [member], "@odata.nextLink": b}
    )
    synced.sim.fail(r"skiptoken=B", status=200, times=None, body={"value": [], "@odata.nextLink": c})
    synced.sim.fail(r"skiptoken=C", status=200, times=None, body={"value": [], "@odata.nextLink": b})
    code, _, err = synced("sync", "--full")
    assert "GRAPH_BAD_RESPONSE" in err
    assert_nothing_changed_then_converges(synced, before, err, code)


def test_pages_that_repeat_the_same_objects_under_new_links_are_a_bad_response(synced):
    before = state(synced)
    group_id = a_group(synced)
    member = user_member(synced, group_id)
    links = [members_url(synced, group_id, token) for token in ("B", "C", "D")]
    synced.sim.fail(
        rf"/groups/{group_id}/members\?\$select",
        status=200,
        times=None,
        body={"value": [member], "@odata.nextLink": links[0]},
    )
    synced.sim.fail(r"skiptoken=B", status=200, times=None, body={"value": [member], "@odata.nextLink": links[1]})
    synced.sim.fail(r"skiptoken=C", status=200, times=None, body={"value": [member], "@odata.nextLink": links[2]})
    code, _, err = synced("sync", "--full")
    assert "circle" in err
    assert_nothing_changed_then_converges(synced, before, err, code)


# --------------------------------------------------------------------------- answers from elsewhere


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_next_link_to_another_origin_is_never_followed(synced, elsewhere, host):
    """Another port on the same host (the token would go there) or another host altogether."""
    before = state(synced)
    group_id = a_group(synced)
    foreign = f"http://{host}:{elsewhere.port}/v1.0/groups/{group_id}/members?$skiptoken=x"
    body = {"value": [user_member(synced, group_id)], "@odata.nextLink": foreign}
    synced.sim.fail(rf"/groups/{group_id}/members", status=200, times=None, body=body)
    code, _, err = synced("sync", "--full")
    assert elsewhere.requests == 0, "a request (and the token) went to another origin"
    assert "outside the configured Graph" in err
    assert_nothing_changed_then_converges(synced, before, err, code)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_of_a_member_read_is_never_followed(synced, elsewhere, status):
    before = state(synced)
    group_id = a_group(synced)
    location = f"http://127.0.0.1:{elsewhere.port}/v1.0/groups/{group_id}/members"
    synced.sim.fail(rf"/groups/{group_id}/members", status=status, times=None, body="", headers={"Location": location})
    code, _, err = synced("sync", "--full")
    assert elsewhere.requests == 0
    assert "redirect" in err
    assert_nothing_changed_then_converges(synced, before, err, code)


# --------------------------------------------------------------------------- malformed answers


def test_a_service_principal_without_app_roles_demotes_nobody(synced):
    before = state(synced)
    sp = synced.tenant.service_principal_id
    synced.sim.fail(rf"/servicePrincipals/{sp}\?", status=200, times=None, body={"id": sp, "displayName": "Workspace"})
    code, _, err = synced("sync", "--full")
    assert "appRoles" in err
    assert_nothing_changed_then_converges(synced, before, err, code)


@pytest.mark.parametrize("principal_type", [None, "", "Robot", 7])
def test_an_assignment_whose_principal_type_is_missing_or_unknown_deprovisions_nobody(synced, principal_type):
    before = state(synced)
    assignments = synced.tenant.list_assignments()
    broken = [{**item, "principalType": principal_type} for item in assignments[:1]] + assignments[1:]
    if principal_type is None:
        del broken[0]["principalType"]
    synced.sim.fail(r"appRoleAssignedTo", status=200, times=None, body={"value": broken})
    code, _, err = synced("sync", "--full")
    assert "GRAPH_BAD_RESPONSE" in err
    assert_nothing_changed_then_converges(synced, before, err, code)


@pytest.mark.parametrize("spelling", ["#Microsoft.Graph.User", "#MICROSOFT.GRAPH.USER", "#graph.user"])
def test_a_member_type_in_another_spelling_is_still_a_user(synced, spelling):
    before = state(synced)
    group_id = a_group(synced)
    members = [
        {**synced.tenant.get_user(m), "@odata.type": spelling}
        for m in synced.tenant.member_ids(group_id)
        if m in synced.tenant.users
    ]
    synced.sim.fail(rf"/groups/{group_id}/members", status=200, times=None, body={"value": members})
    code, _, err = synced("sync", "--full")
    assert code == 0, err
    assert state(synced) == before


def test_a_batch_answer_about_another_user_is_a_bad_response(synced):
    before = state(synced)
    direct = [a["principalId"] for a in synced.tenant.list_assignments() if a["principalType"] == "User"]
    asked, other = direct[0], direct[1]
    impostor = {"id": other, **{k: v for k, v in synced.tenant.get_user(other).items() if k != "id"}}
    synced.sim.fail(rf"/users/{asked}\?", status=200, times=None, body=impostor)
    code, _, err = synced("sync", "--full")
    assert "GRAPH_BAD_RESPONSE" in err and asked in err
    assert_nothing_changed_then_converges(synced, before, err, code)


def test_a_group_answer_about_another_group_is_a_bad_response(synced):
    before = state(synced)
    groups = [a["principalId"] for a in synced.tenant.list_assignments() if a["principalType"] == "Group"]
    asked, other = groups[0], groups[1]
    synced.sim.fail(
        rf"/groups/{asked}\?\$select=id,displayName",
        status=200,
        times=None,
        body={"id": other, "displayName": "Impostor"},
    )
    code, _, err = synced("sync", "--full")
    assert "GRAPH_BAD_RESPONSE" in err
    assert "Impostor" not in {team["name"] for team in synced.json("teams")}
    assert_nothing_changed_then_converges(synced, before, err, code)


# --------------------------------------------------------------------------- messages


def test_a_500_answered_once_is_not_reported_as_after_every_retry(synced):
    synced.sim.fail(r"appRoleAssignedTo", status=500, times=1)
    code, _, err = synced("sync", "--full")
    assert code == 3 and "Graph answered 500" in err
    assert "after every retry" not in err and "retr" not in err.split("Graph answered 500", 1)[1].split("\n", 1)[0]


def test_a_503_that_outlasts_its_retries_says_how_often_it_was_retried(synced):
    synced.sim.fail(r"appRoleAssignedTo", status=503, times=None, retry_after="0")
    code, _, err = synced("sync", "--full")
    assert code == 3 and "Graph answered 503" in err and "after 1 retry" in err


@pytest.mark.parametrize("option", ["--user", "--group"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_user_or_group_is_a_usage_error_not_a_full_sync(synced, option, value):
    synced.sim.reset_counts()
    code, _, err = synced("sync", option, value)
    assert code == 2 and option in err
    assert synced.sim.requests == 0


@pytest.mark.parametrize("option", ["--user", "--group"])
@pytest.mark.parametrize("value", ["ada\x1b[2J@contoso.com", "Sales\x00", "x" * 400])
def test_a_user_or_group_no_directory_could_hold_is_a_usage_error(synced, option, value):
    synced.sim.reset_counts()
    code, _, err = synced("sync", option, value)
    assert code == 2 and option in err and "\x1b" not in err and "\x00" not in err
    assert synced.sim.requests == 0
