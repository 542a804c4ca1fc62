"""``syncd explain``: every reason syncd has for a user's or a group's state, from the last read or live."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from syncd.simulator import Simulator, Tenant
from tests.test_cli_graph import TOKEN, Graphed


@pytest.fixture
def world(tmp_path, capsys) -> Iterator[Graphed]:
    """Ann is in two assigned groups with two roles; Bob is assigned directly; Cy is in a group but
    disabled; Dee exists in Entra but is assigned nowhere; a local user and a local team exist."""
    tenant = Tenant(seed=4)
    admin = tenant.add_app_role("Admin", "admin")
    member = tenant.add_app_role("Member", "member")
    viewer = tenant.add_app_role("Viewer", "viewer")
    ann = tenant.add_user("ann@contoso.com", "Ann (Ops)", job_title="Engineer")
    bob = tenant.add_user("bob@contoso.com", "Bob")
    cy = tenant.add_user("cy@contoso.com", "Cy", account_enabled=False)
    tenant.add_user("dee@contoso.com", "Dee")
    sales = tenant.add_group("Sales", members=[ann, cy])
    ops = tenant.add_group("Ops", members=[ann])
    tenant.assign(sales, member)
    tenant.assign(ops, admin)
    tenant.assign(bob, viewer)
    with Simulator(tenant, token=TOKEN) as sim:
        graphed = Graphed(tmp_path, capsys, tenant, sim)
        code, _, err = graphed("sync")
        assert code == 0, err
        yield graphed


def steps(data: dict, topic: str) -> list[dict]:
    return [step for step in data["steps"] if step["topic"] == topic]


def test_a_user_with_two_roles_through_two_groups(world):
    data = world.json("explain", "ann@contoso.com")
    assert data["kind"] == "user" and data["source"] == "the last read"
    assignments = [step["group"] for step in steps(data, "assignment")]
    assert assignments == ["Ops", "Sales"]
    kind = steps(data, "type")[0]
    assert kind["user_type"] == "admin" and "wins by roles.precedence" in kind["text"]
    assert "Member gives member" in kind["text"] and "Admin gives admin" in kind["text"]
    assert steps(data, "name")[0]["name"] == "Ann Ops"
    assert steps(data, "email")[0]["email"] == "ann@contoso.com"
    assert steps(data, "scope")[0]["in_scope"] is True
    assert {step["team"] for step in steps(data, "team")} == {"Ops", "Sales"}
    assert steps(data, "pending")[0]["text"].startswith("nothing")
    assert [step["audit"]["op"] for step in steps(data, "audit")][-1] == "create_user"
    code, out, _ = world("explain", "ANN@contoso.com")
    assert code == 0 and "a direct member of assigned group 'Ops', role Admin" in out


def test_a_disabled_member_and_its_group(world):
    user = world.json("explain", "cy@contoso.com")
    assert steps(user, "enabled")[0]["enabled"] is False
    assert steps(user, "store")[0]["text"] == "not in the store"
    group = world.json("explain", "Sales")
    assert group["kind"] == "group"
    assert any("cy@contoso.com: left out: the account is disabled" in step["text"] for step in steps(group, "member"))
    assert any("ann@contoso.com: a member of the team" in step["text"] for step in steps(group, "member"))


def test_a_user_unassigned_since_shows_what_the_next_sync_does_and_why(world):
    bob = next(a["principalId"] for a in world.tenant.list_assignments() if a["principalType"] == "User")
    world.tenant.unassign(bob)
    code, _, err = world("sync", "--dry-run")
    assert code == 0, err
    live = world.json("explain", "bob@contoso.com", "--live")
    assert live["source"] == "live"
    assert steps(live, "assignment")[0]["text"].startswith("not assigned")
    assert any("deactivate user" in step["text"] for step in steps(live, "pending"))


def test_an_object_syncd_never_saw_says_what_it_would_take_and_exits_2(world):
    code, out, _ = world("explain", "dee@contoso.com")
    assert code == 2 and "syncd has never seen dee@contoso.com" in out and "assign it" in out
    code, _, err = world("explain", "nobody@contoso.com", "--live")
    assert code == 2 and "neither a user nor a group in Entra ID" in err


def test_a_user_held_back_by_a_safety_refusal_says_so(world):
    world.write_config("\n[safety]\nmax_deactivations = 0\n")
    bob = next(a["principalId"] for a in world.tenant.list_assignments() if a["principalType"] == "User")
    world.tenant.unassign(bob)
    code, _, _ = world("sync")
    assert code == 4
    data = world.json("explain", "bob@contoso.com")
    refused = steps(data, "refused")
    assert refused and "safety limit" in refused[0]["text"]
