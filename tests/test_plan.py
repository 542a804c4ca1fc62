"""The planner, one test per row of the semantics table and per attribute rule."""

from __future__ import annotations

from syncd.changes import (
    AddMember,
    AdoptUser,
    CreateTeam,
    CreateUser,
    DeactivateUser,
    DeleteTeam,
    ReactivateUser,
    RemoveMember,
    RenameTeam,
    ReplaceTeam,
    UpdateUser,
)
from syncd.model import FetchFailure, Policy
from syncd.plan import diff
from tests.builders import (
    ADMIN,
    BILLING,
    CUSTOM,
    CUSTOM_SMALL,
    GUEST,
    MEMBER,
    VIEWER,
    assigned,
    group,
    snapshot,
    state,
    stored_team,
    stored_user,
    user,
)

alice = user("alice", job_title="Engineer")
bob = user("bob")
carol = user("carol")


def ops(plan):
    return [change.op for change in plan.changes]


# ------------------------------------------------------------------ users in scope


def test_directly_assigned_enabled_user_is_created():
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice)]), state())
    assert plan.changes == (CreateUser(alice.id, "alice@contoso.com", "Alice", "member", {"title": "Engineer"}),)


def test_member_of_an_assigned_group_is_created_and_joins_the_team():
    sales = group("Sales", [alice])
    plan = diff(snapshot(users=[alice], groups=[sales], assignments=[assigned(sales)]), state())
    assert ops(plan) == ["create_user", "create_team", "add_member"]
    assert plan.changes[1] == CreateTeam(sales.id, "Sales")
    assert plan.changes[2] == AddMember(sales.id, "Sales", alice.id, "alice@contoso.com")


def test_member_of_an_unassigned_group_is_not_in_scope():
    sales = group("Sales", [alice])
    plan = diff(snapshot(users=[alice], groups=[sales]), state())
    assert plan.changes == ()


def test_local_user_with_same_email_and_no_entra_id_is_adopted_not_duplicated():
    local = stored_user(7, "alice@contoso.com", name="Alice", title="Engineer")
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice)]), state([local]))
    assert plan.changes == (AdoptUser(7, alice.id, "alice@contoso.com"),)


def test_adopting_an_inactive_local_user_reactivates_it():
    local = stored_user(7, "alice@contoso.com", name="Alice", title="Engineer", active=False)
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice)]), state([local]))
    assert ops(plan) == ["adopt_user", "reactivate_user"]


def test_changed_display_name_upn_title_and_role_update_the_same_row():
    stored = stored_user(3, "alice@contoso.com", source=alice, name="Alice", title="Engineer")
    renamed = user("alice", user_principal_name="Alice.Smith@Contoso.com", display_name="Alice Smith", job_title="Lead")
    plan = diff(snapshot(users=[renamed], assignments=[assigned(renamed, ADMIN)]), state([stored]))
    assert plan.changes == (
        UpdateUser(
            3,
            alice.id,
            "alice@contoso.com",
            (
                ("email", "alice@contoso.com", "alice.smith@contoso.com"),
                ("name", "Alice", "Alice Smith"),
                ("title", "Engineer", "Lead"),
                ("user_type", "member", "admin"),
            ),
        ),
    )


def test_unchanged_user_plans_nothing():
    stored = stored_user(3, "alice@contoso.com", source=alice, name="Alice", title="Engineer")
    assert diff(snapshot(users=[alice], assignments=[assigned(alice)]), state([stored])).changes == ()


# ------------------------------------------------------------------ deprovisioning


def test_unassigned_user_is_deactivated_not_deleted():
    stored = stored_user(3, "alice@contoso.com", source=alice)
    plan = diff(snapshot(users=[bob], assignments=[assigned(bob)]), state([stored]))
    assert DeactivateUser(3, alice.id, "alice@contoso.com", "unassigned") in plan.changes


def test_user_removed_from_every_assigned_group_is_deactivated_and_leaves_the_team():
    sales = group("Sales", [])
    stored = stored_user(3, "alice@contoso.com", source=alice)
    team = stored_team(1, "Sales", [3], entra_id=sales.id)
    plan = diff(snapshot(users=[], groups=[sales], assignments=[assigned(sales)]), state([stored], [team]))
    assert plan.changes == (
        DeactivateUser(3, alice.id, "alice@contoso.com", "unassigned"),
        RemoveMember(1, sales.id, "Sales", 3, "alice@contoso.com"),
    )


def test_disabled_user_is_deactivated_with_reason_disabled():
    stored = stored_user(3, "alice@contoso.com", source=alice)
    disabled = user("alice", account_enabled=False, job_title="Engineer")
    plan = diff(snapshot(users=[disabled], assignments=[assigned(disabled)]), state([stored]))
    assert plan.changes == (DeactivateUser(3, alice.id, "alice@contoso.com", "disabled"),)


def test_deleted_user_is_deactivated_with_reason_deleted():
    stored = stored_user(3, "alice@contoso.com", source=alice)
    plan = diff(snapshot(deleted=[alice.id]), state([stored]))
    assert plan.changes == (DeactivateUser(3, alice.id, "alice@contoso.com", "deleted"),)


def test_disabled_user_never_provisioned_is_not_created():
    disabled = user("alice", account_enabled=False)
    assert diff(snapshot(users=[disabled], assignments=[assigned(disabled)]), state()).changes == ()


def test_inactive_managed_user_back_in_scope_is_reactivated_on_the_same_row():
    stored = stored_user(
        3, "alice@contoso.com", source=alice, name="Alice", title="Engineer", active=False, inactive_reason="unassigned"
    )
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice)]), state([stored]))
    assert plan.changes == (ReactivateUser(3, alice.id, "alice@contoso.com"),)


def test_inactive_user_stays_inactive_without_further_changes():
    stored = stored_user(3, "alice@contoso.com", source=alice, active=False, inactive_reason="unassigned")
    assert diff(snapshot(), state([stored])).changes == ()


# ------------------------------------------------------------------ teams


def test_group_renamed_renames_the_same_team():
    sales = group("Revenue", [])
    team = stored_team(1, "Sales", entra_id=sales.id)
    plan = diff(snapshot(groups=[sales], assignments=[assigned(sales)]), state(teams=[team]))
    assert plan.changes == (RenameTeam(1, sales.id, "Sales", "Revenue"),)


def test_member_added_and_removed_in_group_follows_in_team():
    sales = group("Sales", [alice, carol])
    stored = [
        stored_user(1, "alice@contoso.com", source=alice, name="Alice", title="Engineer"),
        stored_user(2, "bob@contoso.com", source=bob, name="Bob"),
        stored_user(3, "carol@contoso.com", source=carol, name="Carol"),
    ]
    team = stored_team(1, "Sales", [1, 2], entra_id=sales.id)
    plan = diff(
        snapshot(users=[alice, bob, carol], groups=[sales], assignments=[assigned(sales), assigned(bob)]),
        state(stored, [team]),
    )
    assert plan.changes == (
        RemoveMember(1, sales.id, "Sales", 2, "bob@contoso.com"),
        AddMember(sales.id, "Sales", carol.id, "carol@contoso.com"),
    )


def test_group_unassigned_deletes_the_team_and_keeps_what_it_was():
    sales = group("Sales", [alice])
    stored = stored_user(1, "alice@contoso.com", source=alice, name="Alice", title="Engineer")
    team = stored_team(4, "Sales", [1], entra_id=sales.id)
    plan = diff(snapshot(users=[alice], groups=[sales], assignments=[assigned(alice)]), state([stored], [team]))
    assert plan.changes == (DeleteTeam(4, sales.id, "Sales", ("alice@contoso.com",)),)


def test_group_named_like_an_unmanaged_team_takes_it_over_and_sets_its_members():
    sales = group("Sales", [alice])
    local_member = stored_user(9, "dave@contoso.com")
    team = stored_team(5, "Sales", [9])
    plan = diff(snapshot(users=[alice], groups=[sales], assignments=[assigned(sales)]), state([local_member], [team]))
    assert ops(plan) == ["create_user", "replace_team", "remove_member", "add_member"]
    assert plan.changes[1] == ReplaceTeam(5, sales.id, "Sales")
    assert plan.changes[2] == RemoveMember(5, sales.id, "Sales", 9, "dave@contoso.com")


def test_team_members_are_only_users_active_in_the_store():
    disabled = user("bob", account_enabled=False)
    sales = group("Sales", [alice, disabled])
    plan = diff(snapshot(users=[alice, disabled], groups=[sales], assignments=[assigned(sales)]), state())
    assert [c.email for c in plan.changes if isinstance(c, AddMember)] == ["alice@contoso.com"]


def test_local_users_and_teams_are_never_touched():
    local_user = stored_user(1, "zed@contoso.com")
    local_team = stored_team(2, "Book club", [1])
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice)]), state([local_user], [local_team]))
    assert ops(plan) == ["create_user"]


def test_deactivated_user_stays_in_local_teams():
    stored = stored_user(1, "alice@contoso.com", source=alice)
    local_team = stored_team(2, "Book club", [1])
    plan = diff(snapshot(), state([stored], [local_team]))
    assert ops(plan) == ["deactivate_user"]


def test_nested_group_members_count_only_when_flattened_by_the_source():
    # the Graph layer puts transitive members in member_ids only when nested_groups = true
    sales = group("Sales", [alice])
    plan = diff(snapshot(users=[alice, bob], groups=[sales], assignments=[assigned(sales)]), state())
    assert [c.target for c in plan.changes if isinstance(c, CreateUser)] == ["alice@contoso.com"]


# ------------------------------------------------------------------ attribute rules


def test_email_is_lowercased_upn_and_guest_upn_becomes_home_address():
    guest = user("ann", user_principal_name="Ann.Lee_Fabrikam.com#EXT#@contoso.onmicrosoft.com")
    plan = diff(snapshot(users=[guest], assignments=[assigned(guest)]), state())
    assert plan.changes[0].email == "ann.lee@fabrikam.com"


def test_email_attribute_mail_uses_mail():
    person = user("ann", mail="Ann@Fabrikam.COM")
    plan = diff(snapshot(users=[person], assignments=[assigned(person)]), state(), Policy(email_attribute="mail"))
    assert plan.changes[0].email == "ann@fabrikam.com"


def test_user_without_usable_email_is_an_error_and_others_proceed():
    nameless = user("ghost", user_principal_name=None)
    plan = diff(snapshot(users=[nameless, alice], assignments=[assigned(nameless), assigned(alice)]), state())
    assert ops(plan) == ["create_user"]
    assert [(e.code, e.entra_id) for e in plan.errors] == [("USER_NO_EMAIL", nameless.id)]


def test_two_users_with_the_same_email_are_both_errors():
    twin = user("alice2", user_principal_name="ALICE@contoso.com")
    plan = diff(snapshot(users=[alice, twin], assignments=[assigned(alice), assigned(twin)]), state())
    assert plan.changes == ()
    assert {e.code for e in plan.errors} == {"USER_EMAIL_CONFLICT"}
    assert len(plan.errors) == 2


def test_email_held_by_another_managed_user_is_an_error():
    old = stored_user(1, "alice@contoso.com", source=user("old-alice"), active=False)
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice)]), state([old]))
    assert plan.changes == ()
    assert [e.code for e in plan.errors] == ["USER_EMAIL_CONFLICT"]


def test_special_characters_are_removed_from_names_with_a_warning():
    zoe = user("zoe", display_name="Zoë O'Brien (Contractor) #1")
    plan = diff(snapshot(users=[zoe], assignments=[assigned(zoe)]), state())
    assert plan.changes[0].name == "Zoë O'Brien Contractor 1"
    assert [w.code for w in plan.warnings] == ["NAME_NORMALISED"]


def test_name_with_nothing_left_falls_back_to_email_local_part():
    odd = user("odd", display_name="(#)!")
    assert diff(snapshot(users=[odd], assignments=[assigned(odd)]), state()).changes[0].name == "odd"


def test_role_names_give_user_types():
    people = {role: user(f"u-{role}") for role in (ADMIN, MEMBER, VIEWER, GUEST, CUSTOM)}
    plan = diff(snapshot(users=people.values(), assignments=[assigned(u, r) for r, u in people.items()]), state())
    types = {c.entra_id: c.user_type for c in plan.changes}
    assert [types[people[r].id] for r in (ADMIN, MEMBER, VIEWER, GUEST, CUSTOM)] == [
        "admin",
        "member",
        "viewer",
        "guest",
        "12345",
    ]


def test_default_access_role_gives_default_user_type():
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice)]), state(), Policy(default_user_type="viewer"))
    assert plan.changes[0].user_type == "viewer"


def test_several_roles_first_in_precedence_wins_and_smallest_custom_id():
    sales = group("Sales", [alice])
    assignments = [assigned(alice, VIEWER), assigned(alice, CUSTOM), assigned(sales, CUSTOM_SMALL), assigned(sales)]
    plan = diff(snapshot(users=[alice], groups=[sales], assignments=assignments), state())
    assert plan.changes[0].user_type == "678"
    policy = Policy(precedence=("viewer", "custom", "member"))
    assert (
        diff(snapshot(users=[alice], groups=[sales], assignments=assignments), state(), policy).changes[0].user_type
        == "viewer"
    )


def test_role_from_group_counts_for_members():
    sales = group("Sales", [alice])
    plan = diff(snapshot(users=[alice], groups=[sales], assignments=[assigned(sales, ADMIN)]), state())
    assert plan.changes[0].user_type == "admin"


def test_role_map_maps_other_role_names():
    policy = Policy(role_map={"Billing Manager": "admin"})
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice, BILLING)]), state(), policy)
    assert plan.changes[0].user_type == "admin"


def test_unknown_role_is_a_warning_and_falls_back_to_default_type():
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice, BILLING)]), state())
    assert plan.changes[0].user_type == "member"
    assert [w.code for w in plan.warnings] == ["ROLE_UNKNOWN"]


def test_provision_user_type_false_sets_type_only_at_creation():
    stored = stored_user(3, "alice@contoso.com", source=alice, name="Alice", title="Engineer")
    policy = Policy(provision_user_type=False)
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice, ADMIN)]), state([stored]), policy)
    assert plan.changes == ()
    assert (
        diff(snapshot(users=[alice], assignments=[assigned(alice, ADMIN)]), state(), policy).changes[0].user_type
        == "admin"
    )


def test_two_assigned_groups_with_the_same_name_are_errors_and_skipped():
    one, two = group("Sales", [alice], id="g1"), group("Sales", [bob], id="g2")
    plan = diff(snapshot(users=[alice, bob], groups=[one, two], assignments=[assigned(one), assigned(two)]), state())
    assert not [c for c in plan.changes if c.op.endswith("team")]
    assert [e.code for e in plan.errors] == ["TEAM_NAME_CONFLICT", "TEAM_NAME_CONFLICT"]


# ------------------------------------------------------------------ completeness


def test_incomplete_snapshot_never_deprovisions_by_absence():
    sales = group("Sales", [])
    stored = [stored_user(1, "alice@contoso.com", source=alice), stored_user(2, "bob@contoso.com", source=bob)]
    teams = [stored_team(1, "Sales", [1], entra_id=sales.id), stored_team(2, "Gone", [2], entra_id="gone")]
    failure = FetchFailure("GRAPH_UNAVAILABLE", "503", "/groups/x/members")
    plan = diff(snapshot(groups=[sales], assignments=[assigned(sales)], failures=[failure]), state(stored, teams))
    assert plan.changes == ()
    assert not plan.complete


def test_incomplete_snapshot_still_acts_on_positive_evidence():
    stored = stored_user(1, "alice@contoso.com", source=alice)
    failure = FetchFailure("GRAPH_UNAVAILABLE", "503", "/groups/x/members")
    plan = diff(snapshot(users=[user("alice", account_enabled=False)], failures=[failure]), state([stored]))
    assert plan.changes == (DeactivateUser(1, alice.id, "alice@contoso.com", "disabled"),)


def test_group_whose_members_could_not_be_read_keeps_its_team():
    sales = group("Sales", None)
    stored = stored_user(1, "alice@contoso.com", source=alice)
    team = stored_team(1, "Sales", [1], entra_id=sales.id)
    failure = FetchFailure("GRAPH_UNAVAILABLE", "503", f"/groups/{sales.id}/members")
    plan = diff(snapshot(groups=[sales], assignments=[assigned(sales)], failures=[failure]), state([stored], [team]))
    assert plan.changes == ()


def test_partial_on_demand_snapshot_only_touches_its_principal():
    stored = [stored_user(1, "bob@contoso.com", source=bob, name="Bob")]
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice)], partial=True), state(stored))
    assert ops(plan) == ["create_user"]


def test_scope_all_takes_every_user_and_group():
    sales = group("Sales", [alice])
    plan = diff(snapshot(users=[alice, bob], groups=[sales], scope="all"), state())
    assert ops(plan) == ["create_user", "create_user", "create_team", "add_member"]


def test_plan_orders_changes_users_then_teams_then_members():
    sales = group("Sales", [alice])
    old = group("Old", [])
    team = stored_team(9, "Old", [], entra_id=old.id)
    stored = stored_user(1, "bob@contoso.com", source=bob)
    plan = diff(snapshot(users=[alice], groups=[sales], assignments=[assigned(sales)]), state([stored], [team]))
    assert ops(plan) == ["create_user", "deactivate_user", "delete_team", "create_team", "add_member"]


# ------------------------------------------------------------------ on demand (partial snapshots)


def test_on_demand_user_out_of_scope_is_deactivated_as_unassigned():
    stored = stored_user(1, "alice@contoso.com", source=alice)
    plan = diff(snapshot(users=[alice], partial=True, subjects=frozenset({alice.id})), state([stored]))
    assert plan.changes == (DeactivateUser(1, alice.id, "alice@contoso.com", "unassigned"),)


def test_on_demand_user_deleted_in_entra_is_deactivated_as_deleted():
    stored = stored_user(1, "alice@contoso.com", source=alice)
    plan = diff(snapshot(deleted=[alice.id], partial=True, subjects=frozenset({alice.id})), state([stored]))
    assert plan.changes == (DeactivateUser(1, alice.id, "alice@contoso.com", "deleted"),)


def test_on_demand_unassigned_group_loses_its_team_but_its_members_stay():
    sales = group("Sales", [alice])
    stored = stored_user(1, "alice@contoso.com", source=alice, name="Alice", title="Engineer")
    team = stored_team(4, "Sales", [1], entra_id=sales.id)
    plan = diff(
        snapshot(users=[alice], groups=[sales], partial=True, subjects=frozenset({sales.id})), state([stored], [team])
    )
    assert plan.changes == (DeleteTeam(4, sales.id, "Sales", ("alice@contoso.com",)),)


def test_on_demand_group_removes_members_who_left_it():
    sales = group("Sales", [alice])
    stored = [
        stored_user(1, "alice@contoso.com", source=alice, name="Alice", title="Engineer"),
        stored_user(2, "bob@contoso.com", source=bob, name="Bob"),
    ]
    team = stored_team(4, "Sales", [1, 2], entra_id=sales.id)
    plan = diff(
        snapshot(
            users=[alice], groups=[sales], assignments=[assigned(sales)], partial=True, subjects=frozenset({sales.id})
        ),
        state(stored, [team]),
    )
    assert plan.changes == (RemoveMember(4, sales.id, "Sales", 2, "bob@contoso.com"),)


def test_on_demand_group_does_not_change_the_type_members_hold_through_other_roles():
    sales = group("Sales", [alice])
    stored = stored_user(1, "alice@contoso.com", source=alice, name="Alice", title="Engineer", user_type="admin")
    team = stored_team(4, "Sales", [1], entra_id=sales.id)
    plan = diff(
        snapshot(
            users=[alice], groups=[sales], assignments=[assigned(sales)], partial=True, subjects=frozenset({sales.id})
        ),
        state([stored], [team]),
    )
    assert plan.changes == ()


def test_group_renamed_to_a_local_teams_name_is_a_conflict_not_a_duplicate():
    sales = group("Book club", [])
    teams = [stored_team(1, "Sales", entra_id=sales.id), stored_team(2, "Book club")]
    plan = diff(snapshot(groups=[sales], assignments=[assigned(sales)]), state(teams=teams))
    assert plan.changes == ()
    assert [e.code for e in plan.errors] == ["TEAM_NAME_CONFLICT"]


def test_new_entra_account_takes_over_the_row_of_a_deleted_account_with_its_email():
    old_id = user("old-alice").id
    old = stored_user(
        1,
        "alice@contoso.com",
        source=user("old-alice"),
        name="Alice",
        title="Engineer",
        active=False,
        inactive_reason="deleted",
    )
    team = stored_team(2, "Sales", [], entra_id=group("Sales").id)
    sales = group("Sales", [alice])
    plan = diff(snapshot(users=[alice], groups=[sales], assignments=[assigned(sales)]), state([old], [team]))
    assert plan.changes == (
        AdoptUser(1, alice.id, "alice@contoso.com", old_id),
        ReactivateUser(1, alice.id, "alice@contoso.com"),
        AddMember(sales.id, "Sales", alice.id, "alice@contoso.com"),
    )


def test_a_merely_unassigned_accounts_email_is_not_taken_over():
    old = stored_user(1, "alice@contoso.com", source=user("old-alice"), active=False, inactive_reason="unassigned")
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice)]), state([old]))
    assert plan.changes == ()
    assert [e.code for e in plan.errors] == ["USER_EMAIL_CONFLICT"]


def test_a_row_whose_account_is_found_deleted_now_is_taken_over_in_the_same_plan():
    old_id = user("old-alice").id
    old = stored_user(1, "alice@contoso.com", source=user("old-alice"), name="Alice", title="Engineer")
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice)], deleted=[old_id]), state([old]))
    assert plan.changes == (AdoptUser(1, alice.id, "alice@contoso.com", old_id),)


def test_incomplete_snapshot_does_not_change_user_types():
    # the admin role came through a group whose members could not be read
    stored = stored_user(1, "alice@contoso.com", source=alice, name="Alice", title="Engineer", user_type="admin")
    unread = group("Admins", None)
    failure = FetchFailure("GRAPH_UNAVAILABLE", "503", f"/groups/{unread.id}/members")
    plan = diff(
        snapshot(
            users=[user("alice", job_title="Lead")],
            groups=[unread],
            assignments=[assigned(alice), assigned(unread, ADMIN)],
            failures=[failure],
        ),
        state([stored], [stored_team(2, "Admins", [1], entra_id=unread.id)]),
    )
    assert plan.changes == (UpdateUser(1, alice.id, "alice@contoso.com", (("title", "Engineer", "Lead"),)),)


def test_a_row_whose_old_account_graph_still_has_is_not_taken_over():
    old_alice = user("old-alice", user_principal_name="loc@contoso.com")
    old = stored_user(1, "alice@contoso.com", source=old_alice, active=False, inactive_reason="deleted")
    plan = diff(snapshot(users=[alice, old_alice], assignments=[assigned(alice)]), state([old]))
    assert not [c for c in plan.changes if isinstance(c, AdoptUser)]
    assert [e.code for e in plan.errors] == ["USER_EMAIL_CONFLICT"]


def test_a_disabled_row_whose_account_graph_now_says_is_deleted_is_taken_over():
    old_id = user("old-alice").id
    old = stored_user(
        1,
        "alice@contoso.com",
        source=user("old-alice"),
        name="Alice",
        title="Engineer",
        active=False,
        inactive_reason="disabled",
    )
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice)], deleted=[old_id]), state([old]))
    assert plan.changes[:2] == (
        AdoptUser(1, alice.id, "alice@contoso.com", old_id),
        ReactivateUser(1, alice.id, "alice@contoso.com"),
    )


def test_a_blocked_rename_keeps_the_old_name_taken():
    renamed, newcomer = group("Book club", [], id="g-b"), group("Sales", [], id="g-c")
    teams = [stored_team(1, "Sales", entra_id="g-b"), stored_team(2, "Book club")]
    plan = diff(
        snapshot(groups=[renamed, newcomer], assignments=[assigned(renamed), assigned(newcomer)]), state(teams=teams)
    )
    assert plan.changes == ()
    assert sorted(e.entra_id for e in plan.errors) == ["g-b", "g-c"]


def test_a_user_deactivated_on_demand_leaves_every_managed_team_but_not_local_ones():
    stored = stored_user(1, "alice@contoso.com", source=alice)
    teams = [stored_team(2, "Sales", [1], entra_id=group("Sales").id), stored_team(3, "Book club", [1])]
    plan = diff(snapshot(users=[alice], partial=True, subjects=frozenset({alice.id})), state([stored], teams))
    assert plan.changes == (
        DeactivateUser(1, alice.id, "alice@contoso.com", "unassigned"),
        RemoveMember(2, group("Sales").id, "Sales", 1, "alice@contoso.com"),
    )


def test_a_type_left_out_of_precedence_still_beats_the_default():
    policy = Policy(precedence=("admin", "member"), default_user_type="member")
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice, VIEWER)]), state(), policy)
    assert plan.changes[0].user_type == "viewer"


def test_an_unknown_role_never_outranks_a_known_one():
    plan = diff(snapshot(users=[alice], assignments=[assigned(alice, VIEWER), assigned(alice, BILLING)]), state())
    assert plan.changes[0].user_type == "viewer"
    assert [w.code for w in plan.warnings] == ["ROLE_UNKNOWN"]


def test_a_takeover_waits_until_the_groups_members_can_be_read():
    sales = group("Sales", None)
    failure = FetchFailure("GRAPH_UNAVAILABLE", "503", f"/groups/{sales.id}/members")
    plan = diff(
        snapshot(groups=[sales], assignments=[assigned(sales)], failures=[failure]),
        state(teams=[stored_team(5, "Sales")]),
    )
    assert plan.changes == ()


def test_a_user_synced_on_demand_leaves_the_team_of_a_group_it_left():
    sales = group("Sales", [])
    stored = stored_user(1, "alice@contoso.com", source=alice, name="Alice", title="Engineer")
    team = stored_team(2, "Sales", [1], entra_id=sales.id)
    plan = diff(
        snapshot(users=[alice], assignments=[assigned(alice)], partial=True, subjects=frozenset({alice.id})),
        state([stored], [team]),
    )
    assert plan.changes == (RemoveMember(2, sales.id, "Sales", 1, "alice@contoso.com"),)


# ------------------------------------------------------------------ the table the planner mirrors


def test_the_planner_docstring_and_the_readme_name_the_same_semantics_rows_in_order():
    import re
    from pathlib import Path

    import syncd.plan
    from syncd.plan import SEMANTICS_ROWS

    docstring_rows = re.findall(r"^\[([a-z-]+)\]", syncd.plan.__doc__ or "", flags=re.MULTILINE)
    assert tuple(docstring_rows) == SEMANTICS_ROWS
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("## Semantics", 1)[1].split("\n\n| row |", 1)[1].split("\n\n", 1)[0]
    readme_rows = re.findall(r"^\| `([a-z-]+)` \|", table, flags=re.MULTILINE)
    assert tuple(readme_rows) == SEMANTICS_ROWS


def test_every_semantics_row_is_cited_by_the_stage_that_implements_it():
    import re
    from pathlib import Path

    from syncd.plan import SEMANTICS_ROWS

    stages = [
        p for p in (Path(__file__).resolve().parent.parent / "syncd" / "plan").glob("*.py") if p.name != "__init__.py"
    ]
    citation = re.compile(r"(?:#|^|\s)\[([a-z][a-z-]*)\](?=\s)", flags=re.MULTILINE)
    cited = {name for path in stages for name in citation.findall(path.read_text())}
    assert set(SEMANTICS_ROWS) - {"local"} <= cited
    assert cited <= set(SEMANTICS_ROWS)


def test_a_local_user_adopted_on_demand_leaves_the_managed_teams_of_groups_it_is_not_in():
    """Found by the apply property: the adoption and the leaving are one plan, so a second plan finds nothing."""
    from tests.builders import assigned, snapshot, state, stored_team, stored_user, user

    ann = user("ann")
    current = state(
        [stored_user(1, "ann@contoso.com", name="Ann", active=False, inactive_reason="unassigned")],
        [stored_team(1, "Sales", [1], entra_id="00000000-0000-0000-0002-000000000000")],
    )
    on_demand = snapshot(users=[ann], assignments=[assigned(ann)], partial=True, subjects=frozenset({ann.id}))
    plan = diff(on_demand, current)
    assert [change.op for change in plan.changes] == ["adopt_user", "reactivate_user", "remove_member"]
