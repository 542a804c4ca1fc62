"""Hypothesis, through the real store: after applying a plan, planning again finds nothing to do."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.after import state_after
from syncd.apply import apply_plan
from syncd.model import (
    DEFAULT_ACCESS_ROLE_ID,
    Assignment,
    FetchFailure,
    Policy,
    Snapshot,
    SourceGroup,
    SourceUser,
    StoreState,
    StoreTeam,
    StoreUser,
)
from syncd.plan import diff
from syncd.records import plan_from_record, plan_record
from syncd.store import MemoryStore, SqlStore, Store
from syncd.store.schema import audit, sync_runs, team_members, teams, users
from tests.builders import ROLES
from tests.conftest import seed_state

NAMES = ["ann", "bob", "cy", "dee", "eve", "fay"]
USER_IDS = {name: f"00000000-0000-0000-0001-{index:012d}" for index, name in enumerate(NAMES)}
GROUP_IDS = [f"00000000-0000-0000-0002-{index:012d}" for index in range(4)]
TEAM_NAMES = ["Sales", "Ops", "R&D", "Club"]
ROLE_IDS = [DEFAULT_ACCESS_ROLE_ID] + [role.id for role in ROLES]


@st.composite
def snapshots(draw) -> Snapshot:
    """A tenant with colliding emails, odd names, disabled and deleted users, unreadable groups."""
    source_users = []
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True)):
        upn = draw(
            st.sampled_from(
                [
                    f"{name}@contoso.com",
                    f"{name.title()}@Contoso.com",
                    "shared@contoso.com",
                    f"{name}_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                    "not-an-email",
                    None,
                ]
            )
        )
        mail = draw(st.sampled_from([f"{name}@contoso.com", "shared@contoso.com", None]))
        source_users.append(
            SourceUser(
                USER_IDS[name],
                upn,
                mail,
                draw(st.sampled_from([name.title(), f"{name.title()} (Contractor)", "  ", None])),
                draw(st.sampled_from([True, True, False, None])),
                {"jobTitle": draw(st.sampled_from([None, "", "Engineer", "Boss"]))},
            )
        )
    groups = []
    for group_id in draw(st.lists(st.sampled_from(GROUP_IDS), unique=True)):
        members = draw(st.none() | st.lists(st.sampled_from(list(USER_IDS.values())), unique=True))
        groups.append(
            SourceGroup(group_id, draw(st.sampled_from(TEAM_NAMES)), None if members is None else tuple(members))
        )
    principals = [(u.id, "User") for u in source_users] + [(g.id, "Group") for g in groups]
    principals += [(user_id, "User") for user_id in draw(st.lists(st.sampled_from(list(USER_IDS.values()))))]
    assignments = tuple(
        Assignment(principal, kind, draw(st.sampled_from(ROLE_IDS)))
        for principal, kind in principals
        if draw(st.booleans())
    )
    failures = (FetchFailure("GRAPH_UNAVAILABLE", "members of a group"),) if draw(st.integers(0, 5)) == 0 else ()
    return Snapshot(
        scope=draw(st.sampled_from(["assigned", "assigned", "all"])),
        app_roles=ROLES,
        assignments=assignments,
        groups=tuple(groups),
        users=tuple(source_users),
        deleted_user_ids=frozenset(draw(st.lists(st.sampled_from(list(USER_IDS.values())), max_size=2))),
        failures=failures,
        partial=(partial := draw(st.integers(0, 5)) == 0),
        subjects=frozenset(
            draw(st.lists(st.sampled_from([*USER_IDS.values(), *GROUP_IDS]), max_size=2)) if partial else ()
        ),
    )


@st.composite
def store_states(draw) -> StoreState:
    """A store holding managed and local users, managed and local teams, some memberships."""
    stored = []
    emails = draw(
        st.lists(
            st.sampled_from([f"{n}@contoso.com" for n in NAMES] + ["shared@contoso.com", "ann@fabrikam.com"]),
            unique=True,
        )
    )
    strangers = [f"00000000-0000-0000-0009-{index:012d}" for index in range(2)]  # unknown to the tenant
    entra_pool = draw(st.permutations([*USER_IDS.values(), *strangers]))
    for local_id, email in enumerate(emails, start=1):
        managed = draw(st.booleans())
        active = draw(st.booleans())
        stored.append(
            StoreUser(
                local_id,
                email,
                draw(st.sampled_from(["Ann", "Someone", email.split("@")[0].title()])),
                draw(st.sampled_from(["member", "admin", "viewer", "12345"])),
                active,
                entra_pool[local_id - 1] if managed else None,
                None if active else "unassigned",
                {"title": draw(st.sampled_from([None, "Engineer"]))},
            )
        )
    stored_teams = []
    group_pool = draw(st.permutations(GROUP_IDS))
    for local_id in range(1, draw(st.integers(0, 4)) + 1):
        managed = draw(st.booleans())
        members = draw(st.lists(st.sampled_from([u.id for u in stored]), unique=True)) if stored else []
        stored_teams.append(
            StoreTeam(
                local_id,
                draw(st.sampled_from(TEAM_NAMES)),
                group_pool[local_id - 1] if managed else None,
                frozenset(members),
            )
        )
    return StoreState(tuple(stored), tuple(stored_teams))


def _empty(store: SqlStore) -> None:
    with store.transaction() as connection:
        for table in (audit, team_members, sync_runs, teams, users):
            connection.execute(table.delete())


def _apply(store: Store, snapshot: Snapshot, policy: Policy):
    before = store.load_state()
    plan = diff(snapshot, before, policy)
    assert plan_from_record(json.loads(json.dumps(plan_record(plan)))) == plan, "a saved plan is the plan"
    result = apply_plan(store, plan, store.begin_run("cli"))
    assert result.failed == [], result.failed
    assert result.applied == len(plan.changes)
    assert result.counts == plan.summary()
    assert state_after(before, plan, result.user_ids, result.team_ids) == store.load_state(), (
        "the plan replayed on the state is what the store holds"
    )
    return plan


def _applying_then_planning_again_finds_nothing(
    store: Store, snapshot: Snapshot, state: StoreState, policy: Policy
) -> None:
    if isinstance(store, SqlStore):
        _empty(store)
    seed_state(store, state)
    assert store.load_state() == state
    plan = _apply(store, snapshot, policy)
    again = diff(snapshot, store.load_state(), policy)
    assert again.changes == (), (plan.changes, again.changes)


@pytest.fixture
def sqlite_store(sqlite_url):
    with SqlStore.open(sqlite_url) as store:
        store.ensure_schema()
        yield store


@pytest.fixture
def postgres_store(postgres_url):
    with SqlStore.open(postgres_url) as store:
        store.ensure_schema()
        yield store


POLICIES = st.sampled_from([Policy(), Policy(email_attribute="mail"), Policy(provision_user_type=False)])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snapshot=snapshots(), state=store_states(), policy=POLICIES)
def test_applying_a_plan_then_planning_again_finds_nothing_on_sqlite(sqlite_store, snapshot, state, policy):
    _applying_then_planning_again_finds_nothing(sqlite_store, snapshot, state, policy)


@pytest.mark.postgres
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snapshot=snapshots(), state=store_states(), policy=POLICIES)
def test_applying_a_plan_then_planning_again_finds_nothing_on_postgres(postgres_store, snapshot, state, policy):
    _applying_then_planning_again_finds_nothing(postgres_store, snapshot, state, policy)


@settings(max_examples=100, deadline=None)
@given(snapshot=snapshots(), state=store_states(), policy=POLICIES)
def test_applying_a_plan_then_planning_again_finds_nothing_in_memory(snapshot, state, policy):
    _applying_then_planning_again_finds_nothing(MemoryStore(), snapshot, state, policy)
