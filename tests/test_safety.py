"""Brakes a security team would sign off: limits per category, absolute and in proportion, and the last admin.

The planner and the brakes are pure, so these run on snapshots and store states built in the test;
the command line's refusals, records and ``--allow`` are in test_cli_safety.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from syncd.changes import Plan
from syncd.model import Policy
from syncd.plan import diff
from syncd.safety import CATEGORIES, PROPORTION_FLOOR, Bases, Limits, check, counts
from tests.builders import ADMIN, MEMBER, VIEWER, assigned, group, snapshot, state, stored_team, stored_user, user


def tenant(size: int, *, admin: bool = False):
    """``size`` users assigned directly, all provisioned (member type), and one team with all of them."""
    people = [user(f"person{n}") for n in range(size)]
    rows = [
        stored_user(n + 1, f"person{n}@contoso.com", source=person, name=f"Person{n}")
        for n, person in enumerate(people)
    ]
    if admin:
        rows.append(stored_user(size + 1, "boss@contoso.com", source=user("boss"), name="Boss", user_type="admin"))
    team = group("Everyone", people)
    teams = [stored_team(1, "Everyone", range(1, size + 1), entra_id=team.id)]
    return people, team, state(rows, teams)


def everyone(people, team, **extra):
    """A snapshot in which every person is assigned (member role) and in the team."""
    return snapshot(
        users=people,
        groups=[team],
        assignments=[*(assigned(p, MEMBER) for p in people), assigned(team, MEMBER)],
        **extra,
    )


def refusals(plan: Plan, current, **options):
    return check(plan, Limits(), bases=Bases.of(current), policy=Policy(), **options)


def codes(found) -> list[str]:
    return [refusal.code for refusal in found]


# ------------------------------------------------------------------ deactivations, absolute and in proportion


def test_a_complete_read_that_finds_nobody_assigned_is_refused_on_any_tenant_size():
    for size in (1, 2, 20, 600):
        people, _team, current = tenant(size)
        plan = diff(snapshot(users=people), current)
        assert plan.count("deactivate_user") == size
        assert "SAFETY_DEACTIVATIONS" in codes(refusals(plan, current)), size


def test_ordinary_churn_in_a_tenant_of_fifty_is_never_blocked():
    people, team, current = tenant(50)
    for leaving in range(1, 16):  # up to 30% leave in one run
        kept = people[leaving:]
        plan = diff(everyone(kept, group("Everyone", kept, id=team.id)), current)
        assert plan.count("deactivate_user") == leaving
        assert codes(refusals(plan, current)) == [], leaving


def test_a_mass_event_in_a_tenant_of_twenty_is_stopped():
    people, team, current = tenant(20)
    kept = people[:12]  # 8 of 20 (40%) unassigned at once
    plan = diff(everyone(kept, group("Everyone", kept, id=team.id)), current)
    found = refusals(plan, current)
    assert codes(found) == ["SAFETY_DEACTIVATIONS", "SAFETY_MEMBER_REMOVALS"]
    assert "8 users of 20 active managed users (40%)" in found[0].message
    assert "safety.max_percent = 30%" in found[0].message
    assert "`syncd sync --allow deactivations`" in found[0].message


def test_below_the_floor_a_proportion_alone_refuses_nothing():
    people, team, current = tenant(5)
    kept = people[PROPORTION_FLOOR - 1 :]  # 2 of 5 (40%) leave
    plan = diff(everyone(kept, group("Everyone", kept, id=team.id)), current)
    assert codes(refusals(plan, current)) == []


def test_the_absolute_limit_holds_on_a_large_tenant():
    people, team, current = tenant(600)
    kept = people[:-10]
    plan = diff(everyone(kept, group("Everyone", kept, id=team.id)), current)
    assert codes(check(plan, Limits(max_deactivations=5), bases=Bases.of(current))) == ["SAFETY_DEACTIVATIONS"]
    assert codes(check(plan, Limits(max_deactivations=10), bases=Bases.of(current))) == []


# ------------------------------------------------------------------ the other categories


def test_team_deletions_are_braked_in_proportion_and_when_all_go():
    people = [user(f"p{n}") for n in range(10)]
    groups = [group(f"Team {n}", people) for n in range(10)]
    rows = [stored_user(n + 1, f"p{n}@contoso.com", source=p, name=f"P{n}") for n, p in enumerate(people)]
    teams = [stored_team(n + 1, f"Team {n}", range(1, 11), entra_id=g.id) for n, g in enumerate(groups)]
    current = state(rows, teams)
    users_assigned = [assigned(p, MEMBER) for p in people]

    def remaining(count: int) -> Plan:
        kept = groups[: 10 - count]
        return diff(
            snapshot(users=people, groups=kept, assignments=[*users_assigned, *(assigned(g) for g in kept)]), current
        )

    assert codes(refusals(remaining(2), current)) == []
    assert codes(refusals(remaining(4), current)) == ["SAFETY_TEAM_DELETIONS"]
    assert codes(refusals(remaining(10), current)) == ["SAFETY_TEAM_DELETIONS"]
    assert codes(refusals(remaining(4), current, allow={"team_deletions"})) == []


def test_the_only_team_of_a_tenant_may_go():
    people, _team, current = tenant(3)
    plan = diff(snapshot(users=people, assignments=[assigned(p, MEMBER) for p in people]), current)
    assert plan.count("delete_team") == 1
    assert codes(refusals(plan, current)) == []


def test_member_removals_are_braked():
    people, team, current = tenant(20)
    kept_members = people[:5]  # 15 of 20 memberships removed; everyone stays assigned
    plan = diff(
        snapshot(
            users=people,
            groups=[group("Everyone", kept_members, id=team.id)],
            assignments=[*(assigned(p, MEMBER) for p in people), assigned(team, MEMBER)],
        ),
        current,
    )
    assert plan.count("remove_member") == 15
    assert codes(refusals(plan, current)) == ["SAFETY_MEMBER_REMOVALS"]
    assert codes(check(plan, Limits(max_percent=100), bases=Bases.of(current))) == []
    assert codes(check(plan, Limits(max_percent=100, max_member_removals=10), bases=Bases.of(current))) == [
        "SAFETY_MEMBER_REMOVALS"
    ]


def test_type_downgrades_rank_by_precedence_and_are_braked():
    people, team, current = tenant(10)
    current = state([replace(u, user_type="admin") for u in current.users], current.teams)
    viewers = snapshot(users=people, groups=[team], assignments=[*(assigned(p, VIEWER) for p in people)])
    plan = diff(viewers, current, Policy(allow_last_admin=True))
    assert counts(plan, Policy())["type_downgrades"] == 10
    assert codes(refusals(plan, current)) == ["SAFETY_TYPE_DOWNGRADES"]
    upgrade = state([replace(u, user_type="viewer") for u in current.users], current.teams)
    plan = diff(snapshot(users=people, groups=[team], assignments=[assigned(p, ADMIN) for p in people]), upgrade)
    assert counts(plan, Policy())["type_downgrades"] == 0, "admin outranks viewer: an upgrade"


@pytest.mark.parametrize("category", CATEGORIES)
def test_allow_lifts_exactly_one_category_and_allow_deletes_all(category):
    people, _team, current = tenant(20)
    plan = diff(snapshot(users=people), current)  # everyone unassigned, the team gone with its members
    everything = set(codes(refusals(plan, current)))
    lifted = set(codes(refusals(plan, current, allow={category})))
    assert lifted == everything - {f"SAFETY_{category.upper()}"}
    assert refusals(plan, current, allow_deletes=True) == []


# ------------------------------------------------------------------ the last admin


def admins_tenant():
    ann, bob, cy = user("ann"), user("bob"), user("cy")
    current = state(
        [
            stored_user(1, "ann@contoso.com", source=ann, name="Ann", user_type="admin"),
            stored_user(2, "bob@contoso.com", source=bob, name="Bob"),
            stored_user(3, "cy@contoso.com", source=cy, name="Cy"),
        ]
    )
    return ann, bob, cy, current


def test_unassigning_the_last_admin_is_held_back_and_everything_else_applies():
    _ann, bob, _cy, current = admins_tenant()
    plan = diff(snapshot(users=[bob], assignments=[assigned(bob, MEMBER)]), current)
    assert [(c.op, c.target) for c in plan.changes] == [("deactivate_user", "cy@contoso.com")]
    assert [p.code for p in plan.errors] == ["LAST_ADMIN"]
    assert "--allow-last-admin" in plan.errors[0].message
    assert [c.target for c in plan.held] == ["ann@contoso.com"]
    again = diff(snapshot(users=[bob], assignments=[assigned(bob, MEMBER)]), current)
    assert [p.code for p in again.errors] == ["LAST_ADMIN"], "reported every run"


def test_demoting_the_last_admin_is_held_back_but_its_other_changes_apply():
    ann, bob, cy, current = admins_tenant()
    renamed = replace(ann, display_name="Ann Smith")
    plan = diff(
        snapshot(users=[renamed, bob, cy], assignments=[assigned(u, MEMBER) for u in (renamed, bob, cy)]), current
    )
    updates = [c for c in plan.changes if c.op == "update_user"]
    assert [(name, new) for c in updates for name, _, new in c.changes] == [("name", "Ann Smith")]
    assert [p.code for p in plan.errors] == ["LAST_ADMIN"]


def test_an_admin_entra_disabled_or_deleted_is_deactivated_even_if_last_and_the_run_says_so():
    ann, bob, cy, current = admins_tenant()
    disabled = replace(ann, account_enabled=False)
    plan = diff(snapshot(users=[disabled, bob, cy], assignments=[assigned(u) for u in (disabled, bob, cy)]), current)
    assert ("deactivate_user", "ann@contoso.com") in [(c.op, c.target) for c in plan.changes]
    assert [p.code for p in plan.errors] == ["NO_ADMIN_LEFT"]
    deleted = diff(snapshot(users=[bob, cy], assignments=[assigned(u) for u in (bob, cy)], deleted=[ann.id]), current)
    assert [p.code for p in deleted.errors] == ["NO_ADMIN_LEFT"]


def test_allow_last_admin_pushes_the_held_change_through_with_a_warning():
    _ann, bob, _cy, current = admins_tenant()
    plan = diff(snapshot(users=[bob], assignments=[assigned(bob, MEMBER)]), current, Policy(allow_last_admin=True))
    assert ("deactivate_user", "ann@contoso.com") in [(c.op, c.target) for c in plan.changes]
    assert plan.errors == () and [p.code for p in plan.warnings] == ["NO_ADMIN_LEFT"]


def test_another_admin_or_a_new_one_lets_the_last_one_go():
    _ann, bob, _cy, current = admins_tenant()
    promoted = diff(snapshot(users=[bob], assignments=[assigned(bob, ADMIN)]), current)
    assert ("deactivate_user", "ann@contoso.com") in [(c.op, c.target) for c in promoted.changes]
    assert promoted.errors == ()
    local_admin = state([*current.users, stored_user(9, "it@contoso.com", user_type="admin")])
    plan = diff(snapshot(users=[bob], assignments=[assigned(bob, MEMBER)]), local_admin)
    assert plan.errors == (), "an unmanaged admin counts: the store keeps an admin"


def test_everyone_unassigned_is_refused_even_though_the_last_admin_would_be_held():
    _ann, _bob, _cy, current = admins_tenant()
    plan = diff(snapshot(users=[]), current)
    assert [c.target for c in plan.held] == ["ann@contoso.com"]
    found = refusals(plan, current)
    assert codes(found) == ["SAFETY_DEACTIVATIONS"]
    assert "3 users of 3" in found[0].message
