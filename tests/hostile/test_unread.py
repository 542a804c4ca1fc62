"""An assigned user whose object was not read is an error for that user, never a deprovisioning.

A snapshot may name a user in scope (assigned directly, or a member id of an assigned group) and yet
hold no user object for it: a snapshot file edited by hand, or a ``$batch`` answer that carried
another object than the one asked for.  Absence of the object is no evidence about the user: the
planner reports ``USER_NOT_READ`` and leaves the user's row exactly as it is, memberships included,
while everyone else is synced as usual.
"""

from __future__ import annotations

import pytest

from syncd.apply import apply_plan
from syncd.changes import AddMember, CreateUser, DeactivateUser, RemoveMember
from syncd.plan import diff
from tests.builders import assigned, group, snapshot, state, stored_team, stored_user, uid, user
from tests.test_cli import Syncd, snapshot_doc

alice = user("alice")
bob = user("bob")
carol = user("carol")


def touches(plan, user_id: int) -> list[str]:
    """The ops of a plan that act on the local user ``user_id``."""
    return [change.op for change in plan.changes if getattr(change, "user_id", None) == user_id]


def test_directly_assigned_user_missing_from_a_complete_snapshot_is_an_error_not_a_deactivation():
    stored = stored_user(3, "alice@contoso.com", source=alice)
    plan = diff(snapshot(users=[bob], assignments=[assigned(alice), assigned(bob)]), state([stored]))
    assert touches(plan, 3) == []
    assert [(e.code, e.entra_id, e.target) for e in plan.errors] == [("USER_NOT_READ", alice.id, "alice@contoso.com")]
    assert "assigned to the application" in plan.errors[0].message
    assert plan.changes == (CreateUser(bob.id, "bob@contoso.com", "Bob", "member", {"title": None}),)


def test_group_member_id_that_names_no_user_keeps_its_row_and_its_team_membership():
    sales = group("Sales", [alice, bob])
    team = stored_team(1, "Sales", [3, 4], entra_id=sales.id)
    stored = [stored_user(3, "alice@contoso.com", source=alice), stored_user(4, "bob@contoso.com", source=bob)]
    plan = diff(snapshot(users=[bob], groups=[sales], assignments=[assigned(sales)]), state(stored, [team]))
    assert plan.changes == ()
    assert [(e.code, e.entra_id) for e in plan.errors] == [("USER_NOT_READ", alice.id)]
    assert "member of assigned group 'Sales'" in plan.errors[0].message


def test_unread_user_is_neither_created_nor_added_while_the_rest_of_its_group_is():
    sales = group("Sales", [alice, bob])
    plan = diff(snapshot(users=[bob], groups=[sales], assignments=[assigned(sales)]), state())
    assert [c.op for c in plan.changes] == ["create_user", "create_team", "add_member"]
    assert plan.changes[2] == AddMember(sales.id, "Sales", bob.id, "bob@contoso.com")
    assert [e.code for e in plan.errors] == ["USER_NOT_READ"]


def test_an_unrelated_unassigned_user_is_still_deactivated_in_the_same_run():
    stored = [stored_user(3, "alice@contoso.com", source=alice), stored_user(5, "carol@contoso.com", source=carol)]
    plan = diff(snapshot(users=[], assignments=[assigned(alice)]), state(stored))
    assert plan.changes == (DeactivateUser(5, carol.id, "carol@contoso.com", "unassigned"),)
    assert [e.code for e in plan.errors] == ["USER_NOT_READ"]


def test_unread_inactive_user_is_not_reactivated_and_stays_out_of_teams():
    sales = group("Sales", [alice])
    stored = stored_user(3, "alice@contoso.com", source=alice, active=False, inactive_reason="unassigned")
    plan = diff(snapshot(groups=[sales], assignments=[assigned(sales)]), state([stored]))
    assert [c.op for c in plan.changes] == ["create_team"]
    assert [e.code for e in plan.errors] == ["USER_NOT_READ"]


def test_user_graph_answered_404_for_is_still_deactivated_as_deleted():
    stored = stored_user(3, "alice@contoso.com", source=alice)
    plan = diff(snapshot(assignments=[assigned(alice)], deleted=[alice.id]), state([stored]))
    assert plan.changes == (DeactivateUser(3, alice.id, "alice@contoso.com", "deleted"),)
    assert plan.errors == ()


def test_scope_all_member_missing_from_the_user_listing_is_not_read_not_deleted():
    sales = group("Sales", [alice])
    team = stored_team(1, "Sales", [3], entra_id=sales.id)
    stored = stored_user(3, "alice@contoso.com", source=alice)
    plan = diff(snapshot(scope="all", users=[], groups=[sales]), state([stored], [team]))
    assert touches(plan, 3) == []
    assert not any(isinstance(c, RemoveMember) for c in plan.changes)
    assert [e.code for e in plan.errors] == ["USER_NOT_READ"]


def test_unread_user_with_an_id_the_store_cannot_hold_is_reported_with_a_storable_id():
    odd = "\x1b]0;" + "x" * 100
    plan = diff(snapshot(assignments=[assigned(group("G", id=odd)), assigned(user("z", id=odd))]), state())
    assert plan.errors
    for error in plan.errors:
        assert "\x1b" not in error.entra_id + error.target + error.message
        assert len(error.entra_id) <= 64


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sync_from_a_snapshot_missing_an_assigned_user_keeps_that_user_and_exits_3(
    backend, tmp_path, capsys, monkeypatch, request
):
    url = None if backend == "sqlite" else request.getfixturevalue("postgres_url")
    syncd = Syncd(tmp_path, capsys, monkeypatch, url)
    syncd.write(snapshot_doc())
    assert syncd("sync", "--from-snapshot", str(syncd.snapshot))[0] == 0
    doc = snapshot_doc()
    doc["users"] = [u for u in doc["users"] if u["id"] != uid("alice")]  # still assigned, and still in Sales
    syncd.write(doc)
    planned = syncd("plan", "--json", "--from-snapshot", str(syncd.snapshot))
    code, _out, err = syncd("sync", "--from-snapshot", str(syncd.snapshot))
    assert planned[0] == code == 3, err
    assert "USER_NOT_READ" in planned[1] and "USER_NOT_READ" in err
    users = {row["email"]: row for row in syncd.json("users")}
    assert users["alice@contoso.com"]["active"]
    teams = syncd.json("teams")
    assert teams[0]["members"] == ["alice@contoso.com", "bob@contoso.com"]


def test_planned_error_matches_what_apply_records(store, seed):
    seed(store, state([stored_user(3, "alice@contoso.com", source=alice)]))
    plan = diff(snapshot(users=[bob], assignments=[assigned(alice), assigned(bob)]), store.load_state())
    run_id = store.begin_run("test")
    result = apply_plan(store, plan, run_id)
    assert result.failed == [] and result.applied == len(plan.changes) == 1
    rows = store.reports.audit(run_id)
    assert [(r["status"], r["error_code"]) for r in rows] == [("applied", None), ("error", "USER_NOT_READ")]
    assert {u.email: u.active for u in store.load_state().users} == {"alice@contoso.com": True, "bob@contoso.com": True}
