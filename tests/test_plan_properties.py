"""Hypothesis: the planner is deterministic and indifferent to the order Graph lists things in."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.changes import AdoptUser, DeactivateUser, ReactivateUser, RemoveMember, UpdateUser
from syncd.model import DEFAULT_ACCESS_ROLE_ID, Assignment, Snapshot, SourceGroup, SourceUser, StoreState
from syncd.plan import diff
from tests.builders import ROLES, stored_team, stored_user

NAMES = ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal"]
ROLE_IDS = [DEFAULT_ACCESS_ROLE_ID] + [role.id for role in ROLES]


@st.composite
def worlds(draw):
    """A random tenant snapshot and a random store state sharing some of its people."""
    user_ids = {name: f"00000000-0000-0000-0001-{index:012d}" for index, name in enumerate(NAMES)}
    users = []
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True)):
        upn = draw(st.sampled_from([f"{name}@contoso.com", f"{name.upper()}@contoso.com", "dup@contoso.com", None]))
        users.append(
            SourceUser(
                user_ids[name],
                upn,
                None,
                draw(st.sampled_from([name, f"{name} (x)", None])),
                draw(st.booleans()),
                {"jobTitle": draw(st.sampled_from([None, "Eng"]))},
            )
        )
    groups = []
    for index in range(draw(st.integers(0, 3))):
        members = draw(st.none() | st.lists(st.sampled_from(list(user_ids.values())), unique=True))
        groups.append(
            SourceGroup(
                f"00000000-0000-0000-0002-{index:012d}",
                draw(st.sampled_from(["Sales", "Ops", "R&D"])),
                None if members is None else tuple(members),
            )
        )
    principals = [(u.id, "User") for u in users] + [(g.id, "Group") for g in groups]
    assignments = tuple(
        Assignment(pid, kind, draw(st.sampled_from(ROLE_IDS))) for pid, kind in principals if draw(st.booleans())
    )
    snapshot = Snapshot(
        scope=draw(st.sampled_from(["assigned", "assigned", "all"])),
        app_roles=ROLES,
        assignments=assignments,
        groups=tuple(groups),
        users=tuple(users),
        deleted_user_ids=frozenset(draw(st.lists(st.sampled_from(list(user_ids.values())), max_size=2))),
    )
    stored = []
    for local_id, name in enumerate(draw(st.lists(st.sampled_from(NAMES), unique=True)), start=1):
        managed = draw(st.booleans())
        stored.append(
            stored_user(
                local_id,
                f"{name}@contoso.com",
                entra_id=user_ids[name] if managed else None,
                active=draw(st.booleans()),
            )
        )
    teams = []
    for local_id in range(1, draw(st.integers(0, 3)) + 1):
        entra = draw(st.none() | st.sampled_from([g.id for g in groups] or [None]))
        members = draw(st.lists(st.sampled_from([u.id for u in stored] or [0]), unique=True)) if stored else []
        teams.append(stored_team(local_id, draw(st.sampled_from(["Sales", "Ops", "Club"])), members, entra_id=entra))
    unique_teams = {t.entra_id: t for t in teams if t.entra_id}
    teams = [t for t in teams if not t.entra_id] + list(unique_teams.values())
    return snapshot, StoreState(tuple(stored), tuple(teams))


@settings(max_examples=300, deadline=None)
@given(worlds(), st.randoms())
def test_planning_is_deterministic_and_order_independent(world, rnd: random.Random):
    snapshot, state = world
    first = diff(snapshot, state)
    assert diff(snapshot, state) == first
    shuffled = Snapshot(
        scope=snapshot.scope,
        app_roles=tuple(rnd.sample(snapshot.app_roles, len(snapshot.app_roles))),
        assignments=tuple(rnd.sample(snapshot.assignments, len(snapshot.assignments))),
        groups=tuple(rnd.sample(snapshot.groups, len(snapshot.groups))),
        users=tuple(rnd.sample(snapshot.users, len(snapshot.users))),
        deleted_user_ids=snapshot.deleted_user_ids,
    )
    state_shuffled = StoreState(
        tuple(rnd.sample(state.users, len(state.users))), tuple(rnd.sample(state.teams, len(state.teams)))
    )
    assert diff(shuffled, state_shuffled) == first


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_plan_never_deletes_users_and_never_touches_unmanaged_users_it_did_not_adopt(world):
    snapshot, state = world
    plan = diff(snapshot, state)
    unmanaged = {u.id for u in state.users if u.entra_id is None}
    adopted = {c.user_id for c in plan.changes if c.op == "adopt_user"}
    existing = {u.id for u in state.users}
    for change in plan.changes:
        # no change removes a user row: those that name one act on a row the store has
        if isinstance(change, (UpdateUser, DeactivateUser, ReactivateUser, AdoptUser, RemoveMember)):
            assert change.user_id in existing, change
        if change.op in ("update_user", "deactivate_user", "reactivate_user"):
            assert change.user_id not in unmanaged or change.user_id in adopted
