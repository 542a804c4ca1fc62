"""A focused plan (:mod:`syncd.plan.focus`) is the full plan: Hypothesis against :func:`syncd.plan.diff`."""

from __future__ import annotations

from dataclasses import replace
from itertools import count

from hypothesis import event, given, settings
from hypothesis import strategies as st

from syncd.after import state_after
from syncd.changes import CreateTeam, CreateUser, Plan
from syncd.model import Assignment, Policy, Snapshot, SourceGroup, SourceUser, StoreState, StoreTeam, StoreUser
from syncd.plan import diff
from syncd.plan.focus import Base, StateRows, focused, focused_diff
from tests.builders import ADMIN, DEFAULT, MEMBER, ROLES, VIEWER, group, state, stored_team, stored_user, user
from tests.test_plan_properties import NAMES, ROLE_IDS, worlds

USER_IDS = {name: f"00000000-0000-0000-0001-{index:012d}" for index, name in enumerate(NAMES)}


def settle(snapshot: Snapshot, store: StoreState, rounds: int = 3) -> tuple[StoreState, Plan]:
    """The store after applying the snapshot's plan until it changes nothing (or ``rounds`` ran out)."""
    ids = count(1000)
    for _ in range(rounds):
        plan = diff(snapshot, store)
        if not plan.changes:
            return store, plan
        store = applied(store, plan, ids)
    return store, diff(snapshot, store)


def applied(store: StoreState, plan: Plan, ids: count) -> StoreState:  # type: ignore[type-arg]
    return state_after(store, plan, *created(plan, ids))


def created(plan: Plan, ids: count) -> tuple[dict[str, int], dict[str, int]]:  # type: ignore[type-arg]
    """Local ids for the users and teams ``plan`` creates, as a store would give them."""
    users = {change.entra_id: next(ids) for change in plan.changes if isinstance(change, CreateUser)}
    teams = {change.entra_id: next(ids) for change in plan.changes if isinstance(change, CreateTeam)}
    return users, teams


@st.composite
def changed(draw: st.DrawFn, snapshot: Snapshot) -> Snapshot:
    """``snapshot`` after a few of the changes Graph reports: users edited, added, removed or deleted;
    assignments made and removed; groups renamed, emptied, filled, added and removed."""
    users = {u.id: u for u in snapshot.users}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3)):
        user_id = USER_IDS[name]
        action = draw(st.sampled_from(["edit", "remove", "add"]))
        if action == "remove":
            users.pop(user_id, None)
            continue
        current = users.get(user_id) or SourceUser(user_id, f"{name}@contoso.com", None, name, True, {})
        users[user_id] = replace(
            current,
            user_principal_name=draw(
                st.sampled_from(
                    [current.user_principal_name, f"{name}@contoso.com", "dup@contoso.com", "x@contoso.com"]
                )
            ),
            display_name=draw(st.sampled_from([current.display_name, f"{name} (y)"])),
            account_enabled=draw(st.sampled_from([current.account_enabled, not current.account_enabled])),
            attributes={"jobTitle": draw(st.sampled_from([None, "Eng", "Ops"]))},
            derived={},
        )
    assignments = set(snapshot.assignments)
    for assignment in draw(st.lists(st.sampled_from(sorted(assignments, key=repr)), max_size=2)) if assignments else []:
        assignments.discard(assignment)
    principals = [(user_id, "User") for user_id in USER_IDS.values()] + [(g.id, "Group") for g in snapshot.groups]
    for principal_id, kind in draw(st.lists(st.sampled_from(principals), max_size=2)):
        assignments.add(Assignment(principal_id, kind, draw(st.sampled_from(ROLE_IDS))))
    groups = list(snapshot.groups)
    for index in draw(st.lists(st.integers(0, max(len(groups) - 1, 0)), max_size=2, unique=True)) if groups else []:
        current_group = groups[index]
        members = draw(st.none() | st.lists(st.sampled_from(list(USER_IDS.values())), unique=True))
        groups[index] = SourceGroup(
            current_group.id,
            draw(st.sampled_from([current_group.display_name, "Sales", "Ops", "R&D", "Club"])),
            current_group.member_ids if draw(st.booleans()) else (None if members is None else tuple(members)),
        )
    if groups and draw(st.booleans()):
        groups.pop(draw(st.integers(0, len(groups) - 1)))
    deleted = snapshot.deleted_user_ids
    if draw(st.booleans()):
        deleted = frozenset(draw(st.lists(st.sampled_from(list(USER_IDS.values())), max_size=2)))
    return replace(
        snapshot,
        users=tuple(sorted(users.values(), key=lambda u: u.id)),
        assignments=tuple(sorted(assignments, key=repr)),
        groups=tuple(groups),
        deleted_user_ids=deleted,
    )


def same(focused: Plan, full: Plan) -> None:
    assert focused.changes == full.changes
    assert sorted(focused.errors, key=repr) == sorted(full.errors, key=repr)
    assert sorted(focused.warnings, key=repr) == sorted(full.warnings, key=repr)
    assert focused.held == full.held


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_a_focused_plan_is_the_full_plan(data: st.DataObject) -> None:
    before, store = data.draw(worlds())
    before = replace(before, scope="assigned")
    store, settled = settle(before, store)
    if settled.changes:
        event("the store did not settle")
        return
    after = data.draw(changed(before))
    made = focused(Base(before, settled), after, StateRows(store), Policy())
    full = diff(after, store)
    event("planned in full" if made is None else "focused")
    if made is None:
        return
    same(made.plan, full)
    # applied in full, the store settles where a full plan of the same snapshot says it does
    users, teams = created(made.plan, count(5000))
    settles = made.settled(users, teams)
    again = diff(after, state_after(store, made.plan, users, teams))
    event("settles" if settles is not None else "does not settle")
    if settles is None:
        assert again.changes or again.held
    else:
        same(settles, again)


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_a_focused_plan_from_snapshots_holding_only_some_users_is_the_full_plan(data: st.DataObject) -> None:
    """A read over the mirror's outline holds the users its round concerns; the focus asks for any
    other user it comes to (unchanged, as the stored mirror has it)."""
    before, store = data.draw(worlds())
    before = replace(before, scope="assigned")
    store, settled = settle(before, store)
    if settled.changes:
        return
    after = data.draw(changed(before))
    old, new = before.user_by_id(), after.user_by_id()
    differ = {user_id for user_id in old.keys() | new.keys() if old.get(user_id) != new.get(user_id)}
    kept = differ | set(data.draw(st.lists(st.sampled_from(sorted(new) or ["-"]), unique=True)))
    asked: list[set[str]] = []

    def unchanged(user_ids):  # type: ignore[no-untyped-def]
        asked.append(set(user_ids))
        return {user_id: new[user_id] for user_id in user_ids if user_id in new and user_id not in differ}

    def part(snapshot: Snapshot) -> Snapshot:
        return replace(snapshot, users=tuple(user for user in snapshot.users if user.id in kept))

    made = focused(Base(part(before), settled), part(after), StateRows(store), Policy(), unchanged=unchanged)
    if made is None:
        return
    same(made.plan, diff(after, store))
    event("asked for unchanged users" if asked else "held every user it needed")


def test_a_change_to_one_user_plans_only_the_rows_it_concerns() -> None:
    ann, bob, cy = user("ann"), user("bob"), user("cy")
    sales = group("Sales", [ann, bob, cy])
    before = Snapshot(
        app_roles=ROLES,
        assignments=(Assignment(sales.id, "Group", MEMBER), Assignment(ann.id, "User", ADMIN)),
        groups=(sales,),
        users=(ann, bob, cy),
    )
    store, settled = settle(before, state())
    assert not settled.changes
    after = replace(before, users=(ann, replace(bob, display_name="Robert", derived={}), cy))
    focused = focused_diff(Base(before, settled), after, store, Policy())
    assert focused is not None
    assert focused == diff(after, store)
    assert [change.op for change in focused.changes] == ["update_user"]


def test_taking_away_an_admin_is_planned_in_full() -> None:
    ann, bob = user("ann"), user("bob")
    before = Snapshot(
        app_roles=ROLES,
        assignments=(Assignment(ann.id, "User", ADMIN), Assignment(bob.id, "User", VIEWER)),
        users=(ann, bob),
    )
    store, settled = settle(before, state())
    after = replace(before, assignments=(Assignment(bob.id, "User", VIEWER),))
    assert focused_diff(Base(before, settled), after, store, Policy()) is None
    assert diff(after, store).errors[0].code == "LAST_ADMIN"


def test_a_group_renamed_into_a_local_teams_name_plans_its_members_and_that_teams() -> None:
    ann, bob = user("ann"), user("bob")
    sales = group("Sales", [ann])
    before = Snapshot(
        app_roles=ROLES, assignments=(Assignment(sales.id, "Group", MEMBER),), groups=(sales,), users=(ann,)
    )
    local = stored_user(50, "carol@contoso.com")
    store, settled = settle(before, state([local], [stored_team(60, "Club", [50])]))
    renamed = replace(before, groups=(SourceGroup(sales.id, "Club", (ann.id,)),), users=(ann, bob))
    focused = focused_diff(Base(before, settled), renamed, store, Policy())
    assert focused is not None
    same(focused, diff(renamed, store))


def test_taking_away_one_of_two_admins_is_focused_and_equal_to_the_full_plan() -> None:
    ann, bob, cy = user("ann"), user("bob"), user("cy")
    before = Snapshot(
        app_roles=ROLES,
        assignments=(
            Assignment(ann.id, "User", ADMIN),
            Assignment(bob.id, "User", ADMIN),
            Assignment(cy.id, "User", VIEWER),
        ),
        users=(ann, bob, cy),
    )
    store, settled = settle(before, state())
    after = replace(before, assignments=before.assignments[1:], users=(bob, cy))
    focused = focused_diff(Base(before, settled), after, store, Policy())
    assert focused is not None
    same(focused, diff(after, store))
    assert [(change.op, change.email) for change in focused.changes] == [("deactivate_user", "ann@contoso.com")]


# --------------------------------------------------------------------------- a richer world

EMAILS = [f"{name}@contoso.com" for name in NAMES[:6]] + ["dup@contoso.com", "x@contoso.com"]
RICH_IDS = {name: f"00000000-0000-0000-0001-{index:012d}" for index, name in enumerate([*NAMES[:6], "gone1", "gone2"])}
GROUP_NAMES = ["Sales", "Ops", "Club"]
GROUP_IDS = [f"00000000-0000-0000-0002-{index:012d}" for index in range(3)]


@st.composite
def rich_worlds(draw: st.DrawFn) -> tuple[Snapshot, StoreState]:
    """Admins managed and local, every inactive reason, emails several users claim, local teams
    named like groups, accounts in scope Graph did not return, groups whose members are unknown."""
    ids = list(RICH_IDS.values())
    users = [
        SourceUser(
            RICH_IDS[name],
            draw(st.sampled_from([*EMAILS, None])),
            None,
            draw(st.sampled_from([name, None])),
            draw(st.booleans()),
            {"jobTitle": None},
        )
        for name in draw(st.lists(st.sampled_from(NAMES[:6]), unique=True, min_size=1))
    ]
    groups = []
    for index in range(draw(st.integers(0, 3))):
        members = draw(st.none() | st.lists(st.sampled_from(ids), unique=True))
        name = draw(st.sampled_from(GROUP_NAMES))
        groups.append(SourceGroup(GROUP_IDS[index], name, None if members is None else tuple(members)))
    principals = [(u.id, "User") for u in users] + [(g.id, "Group") for g in groups]
    assignments = tuple(
        Assignment(principal, kind, draw(st.sampled_from(ROLE_IDS)))  # type: ignore[arg-type]
        for principal, kind in principals
        if draw(st.booleans())
    )
    snapshot = Snapshot(
        scope="assigned",
        app_roles=ROLES,
        assignments=assignments,
        groups=tuple(groups),
        users=tuple(users),
        deleted_user_ids=frozenset(draw(st.lists(st.sampled_from(ids), max_size=2))),
    )
    rows, taken = [], set()
    local_emails = [*EMAILS, "local1@contoso.com", "local2@contoso.com"]
    for local_id, email in enumerate(draw(st.lists(st.sampled_from(local_emails), unique=True)), start=1):
        entra = draw(st.none() | st.sampled_from(ids))
        entra = None if entra in taken else entra
        taken.add(entra)
        active = draw(st.booleans())
        reason = None if active or not entra else draw(st.sampled_from(["unassigned", "deleted", "disabled"]))
        user_type = draw(st.sampled_from(["member", "admin", "viewer"]))
        rows.append(StoreUser(local_id, email, email.split("@")[0], user_type, active, entra, reason, {"title": None}))
    teams, managed = [], set()
    for team_id in range(1, draw(st.integers(0, 4)) + 1):
        entra = draw(st.none() | st.sampled_from(GROUP_IDS))
        entra = None if entra in managed else entra
        managed.add(entra)
        members = draw(st.lists(st.sampled_from([row.id for row in rows]), unique=True)) if rows else []
        teams.append(StoreTeam(100 + team_id, draw(st.sampled_from(GROUP_NAMES)), entra, frozenset(members)))
    return snapshot, StoreState(tuple(rows), tuple(teams))


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_in_a_richer_world_a_focused_plan_is_the_full_plan(data: st.DataObject) -> None:
    before, store = data.draw(rich_worlds())
    store, settled = settle(before, store)
    if settled.changes or settled.held:
        return
    after = data.draw(changed(before))
    made = focused(Base(before, settled), after, StateRows(store), Policy())
    event("planned in full" if made is None else "focused")
    if made is None:
        return
    same(made.plan, diff(after, store))
    users, teams = created(made.plan, count(5000))
    settles = made.settled(users, teams)
    again = diff(after, state_after(store, made.plan, users, teams))
    if settles is None:
        assert again.changes or again.held
    else:
        same(settles, again)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(rich_worlds(), worlds()))
def test_applying_a_plan_leaves_nothing_to_do_and_without_errors_nothing_to_report(world) -> None:  # type: ignore[no-untyped-def]
    """What lets a run that applied a whole plan without errors leave the store settled without
    planning again; a plan with errors is planned again by the next run."""
    snapshot, state = world
    snapshot = replace(snapshot, scope="assigned")
    plan = diff(snapshot, state)
    again = diff(snapshot, applied(state, plan, count(1000)))
    assert again.changes == (), (plan, again)
    if not plan.errors and not plan.held:
        event("no errors")
        assert again == Plan(), again


def test_a_row_held_back_for_a_user_not_read_is_not_taken_over_by_a_new_account() -> None:
    """[not-read] leaves the row as it is, memberships included: a new account with its email is a
    conflict until a run reads the user, not a rehire (which would leave a membership to add)."""
    group_id = GROUP_IDS[0]
    dee = SourceUser("dee-id", "ann@contoso.com", None, "dee", True, {"jobTitle": None})
    snapshot = Snapshot(
        app_roles=ROLES,
        assignments=(Assignment(group_id, "Group", DEFAULT),),
        groups=(SourceGroup(group_id, "Sales", ("dee-id", "gone-id")),),
        users=(dee,),
    )
    row = StoreUser(1, "ann@contoso.com", "ann", "member", False, "gone-id", "deleted", {"title": None})
    plan = diff(snapshot, state([row]))
    assert [change.op for change in plan.changes] == ["create_team"]
    assert {problem.code for problem in plan.errors} == {"USER_NOT_READ", "USER_EMAIL_CONFLICT"}
    assert diff(snapshot, applied(state([row]), plan, count(1000))).changes == ()
