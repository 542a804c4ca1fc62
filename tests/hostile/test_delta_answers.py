"""A broken or hostile answer in a delta round never costs a seat and never moves the delta links.

The same classes as test_graph_answers, in the incremental read: rounds that never end, links to
another origin, redirects, and items that are not understood.  Each test syncs a tenant once (a full
read that starts the links), unassigns a user, then syncs while the simulator answers one delta
query badly: the run must be incomplete (exit 3), the store and the links exactly as they were,
and the next healthy run must apply the unassignment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from syncd.simulator import Simulator
from syncd.store import SqlStore
from syncd.store.rows import CURSOR_KEY
from tests.test_cli_graph import TOKEN, Graphed
from tests.test_cli_graph import graphed as graphed  # the fixture, re-exported for pytest

QUERIES = {"users": r"/users/delta", "groups": r"/groups/delta", "assignments": r"/directoryObjects/delta"}


@pytest.fixture
def synced(graphed: Graphed) -> Graphed:
    code, _, err = graphed("sync")
    assert code == 0, err
    return graphed


@pytest.fixture
def elsewhere() -> Iterator[Simulator]:
    with Simulator(token=TOKEN) as other:
        yield other


def cursor(graphed: Graphed) -> str | None:
    with SqlStore(f"sqlite:///{graphed.tmp_path / 'syncd.db'}") as store:
        return store.get_state(CURSOR_KEY)


def unassign_someone(graphed: Graphed) -> str:
    """Unassign an active user who is in no assigned group: the next healthy run deactivates it."""
    tenant = graphed.tenant
    active = {row["entra_id"] for row in graphed.json("users") if row["active"]}
    assignments = tenant.list_assignments()
    grouped = {
        member for a in assignments if a["principalType"] == "Group" for member in tenant.member_ids(a["principalId"])
    }
    user = next(
        a["principalId"]
        for a in assignments
        if a["principalType"] == "User" and a["principalId"] in active and a["principalId"] not in grouped
    )
    tenant.unassign(user)
    return user


def sync_badly(graphed: Graphed, query: str, **fault: Any) -> tuple[int, str]:
    graphed.sim.fail(QUERIES[query], times=None, **fault)
    code, _, err = graphed("sync")
    return code, err


def assert_nothing_moved_then_converges(graphed: Graphed, before: Any, links: str | None, code: int, err: str) -> None:
    assert code == 3, err
    assert "Traceback" not in err
    assert graphed.json("users") == before, "a bad delta answer changed the store"
    assert cursor(graphed) == links, "a bad delta answer moved the links"
    graphed.sim.clear_faults()
    code, _, err = graphed("sync")
    assert code == 0, err
    assert sum(not row["active"] for row in graphed.json("users")) == sum(not row["active"] for row in before) + 1


def base(graphed: Graphed) -> str:
    return graphed.sim.base_url


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_a_round_whose_next_link_leads_back_to_itself_is_a_bad_response(synced, query):
    before, links = synced.json("users"), cursor(synced)
    unassign_someone(synced)
    loop = f"{base(synced)}/users/delta?$skiptoken=again"
    synced.sim.fail(r"skiptoken=again", status=200, times=None, body={"value": [], "@odata.nextLink": loop})
    code, err = sync_badly(synced, query, status=200, body={"value": [], "@odata.nextLink": loop})
    assert "GRAPH_BAD_RESPONSE" in err and "never ends" in err
    assert_nothing_moved_then_converges(synced, before, links, code, err)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_next_link_to_another_origin_is_never_followed(synced, elsewhere, host):
    before, links = synced.json("users"), cursor(synced)
    unassign_someone(synced)
    foreign = f"http://{host}:{elsewhere.port}/v1.0/users/delta?$skiptoken=x"
    code, err = sync_badly(synced, "users", status=200, body={"value": [], "@odata.nextLink": foreign})
    assert elsewhere.requests == 0, "a request (and the token) went to another origin"
    assert "outside the configured Graph" in err
    assert_nothing_moved_then_converges(synced, before, links, code, err)


def test_a_delta_link_to_another_origin_is_never_kept(synced, elsewhere):
    before, links = synced.json("users"), cursor(synced)
    unassign_someone(synced)
    foreign = f"http://127.0.0.1:{elsewhere.port}/v1.0/groups/delta?$deltatoken=x"
    code, err = sync_badly(synced, "groups", status=200, body={"value": [], "@odata.deltaLink": foreign})
    assert "outside the configured Graph" in err
    assert_nothing_moved_then_converges(synced, before, links, code, err)


@pytest.mark.parametrize("status", [301, 307])
def test_a_redirect_of_a_delta_query_is_never_followed(synced, elsewhere, status):
    before, links = synced.json("users"), cursor(synced)
    unassign_someone(synced)
    target = f"http://127.0.0.1:{elsewhere.port}/v1.0/users/delta"
    code, err = sync_badly(synced, "users", status=status, headers={"Location": target}, body="")
    assert elsewhere.requests == 0
    assert_nothing_moved_then_converges(synced, before, links, code, err)


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("users", {"value": [{"displayName": "no id"}], "@odata.deltaLink": "{base}/users/delta?$deltatoken=n"}),
        ("users", {"value": [{"id": "u1", "@removed": {"reason": "gone"}}], "@odata.deltaLink": "{base}/x"}),
        ("users", {"value": [{"id": "u1", "accountEnabled": "yes"}], "@odata.deltaLink": "{base}/x"}),
        ("groups", {"value": [{"id": "g1", "members@delta": {"id": "u1"}}], "@odata.deltaLink": "{base}/x"}),
        ("groups", {"value": [{"id": "g1", "displayName": 7}], "@odata.deltaLink": "{base}/x"}),
        ("groups", {"value": [{"id": "g1", "members@delta": [{"id": "u1"}]}], "@odata.deltaLink": "{base}/x"}),
        ("users", {"value": [], "@odata.nextLink": "{base}/a", "@odata.deltaLink": "{base}/b"}),
        ("users", {"value": []}),
        ("groups", {"value": "nothing", "@odata.deltaLink": "{base}/x"}),
    ],
    ids=[
        "user without id",
        "removed for an unknown reason",
        "accountEnabled not a boolean",
        "members@delta not a list",
        "group name not a string",
        "member without a type",
        "both links",
        "no link",
        "value not a list",
    ],
)
def test_an_answer_that_is_not_understood_fails_the_round(synced, query, body):
    before, links = synced.json("users"), cursor(synced)
    unassign_someone(synced)
    answer = {key: value.format(base=base(synced)) if isinstance(value, str) else value for key, value in body.items()}
    code, err = sync_badly(synced, query, status=200, body=answer)
    assert "GRAPH_BAD_RESPONSE" in err
    assert_nothing_moved_then_converges(synced, before, links, code, err)


@pytest.mark.parametrize("principal_type", [None, "", "Robot"])
def test_an_assignment_change_whose_principal_type_is_not_understood_fails_the_round(synced, principal_type):
    before, links = synced.json("users"), cursor(synced)
    unassign_someone(synced)
    item = {
        "@odata.type": "#microsoft.graph.appRoleAssignment",
        "id": "assignment-1",
        "principalId": "00000000-0000-0000-0000-0000000000aa",
        "principalType": principal_type,
        "resourceId": synced.tenant.service_principal_id,
        "appRoleId": None,
    }
    body = {"value": [item], "@odata.deltaLink": f"{base(synced)}/directoryObjects/delta?$deltatoken=z"}
    code, err = sync_badly(synced, "assignments", status=200, body=body)
    assert "GRAPH_BAD_RESPONSE" in err
    assert_nothing_moved_then_converges(synced, before, links, code, err)


def test_a_throttled_round_that_outlasts_its_retries_moves_nothing(synced):
    before, links = synced.json("users"), cursor(synced)
    unassign_someone(synced)
    code, err = sync_badly(synced, "groups", status=503)
    assert "GRAPH_UNAVAILABLE" in err
    assert_nothing_moved_then_converges(synced, before, links, code, err)
