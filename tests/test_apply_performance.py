"""How long a first sync of a large tenant takes to apply and to load back, on each backend.

Measured, not asserted: run ``pytest tests/test_apply_performance.py -m slow -s`` to see the
timings.  ``SYNCD_BENCHMARK_USERS`` sets the tenant size (default 100,000 users in 100 groups).
"""

from __future__ import annotations

import os
import time

import pytest

from syncd.apply import apply_plan
from syncd.changes import AddMember, CreateTeam, CreateUser, Plan
from syncd.model import Assignment, Snapshot, SourceGroup, SourceUser
from syncd.plan import diff


@pytest.fixture
def store(sql_store):
    """These tests look beneath the store contract: SQLite and PostgreSQL only."""
    return sql_store


USERS = int(os.environ.get("SYNCD_BENCHMARK_USERS", "100000"))
GROUPS = 100


def _tenant(user_count: int, group_count: int) -> Snapshot:
    users = tuple(
        SourceUser(
            f"00000000-0000-0000-0001-{index:012d}",
            f"user{index}@contoso.com",
            None,
            f"User {index}",
            True,
            {"jobTitle": "Engineer" if index % 3 else None},
        )
        for index in range(user_count)
    )
    groups = tuple(
        SourceGroup(
            f"00000000-0000-0000-0002-{group:012d}",
            f"Team {group}",
            tuple(user.id for user in users[group::group_count]),
        )
        for group in range(group_count)
    )
    return Snapshot(groups=groups, users=users, assignments=tuple(Assignment(group.id, "Group") for group in groups))


def _first_plan(snapshot: Snapshot) -> Plan:
    """The plan a first sync of ``snapshot`` makes (built directly, so only apply is timed)."""
    users = {user.id: user for user in snapshot.users}
    return Plan(
        changes=(
            *(
                CreateUser(
                    user.id,
                    str(user.user_principal_name),
                    str(user.display_name),
                    "member",
                    {"title": user.attributes["jobTitle"]},
                )
                for user in snapshot.users
            ),
            *(CreateTeam(group.id, group.display_name) for group in snapshot.groups),
            *(
                AddMember(group.id, group.display_name, member, str(users[member].user_principal_name))
                for group in snapshot.groups
                for member in group.member_ids or ()
            ),
        )
    )


@pytest.mark.slow
def test_a_first_sync_of_a_large_tenant_applies_in_seconds(store, record_property):
    snapshot = _tenant(USERS, GROUPS)
    plan = _first_plan(snapshot)
    started = time.perf_counter()
    result = apply_plan(store, plan, store.begin_run("cli"))
    applied = time.perf_counter()
    state = store.load_state()
    loaded = time.perf_counter()
    again = diff(snapshot, state)
    planned = time.perf_counter()

    assert result.ok
    assert result.counts == {"create_user": USERS, "create_team": GROUPS, "add_member": USERS}
    assert len(state.users) == USERS
    assert sum(len(team.member_ids) for team in state.teams) == USERS
    assert again.changes == ()
    timings = {"apply": applied - started, "load_state": loaded - applied, "plan again": planned - loaded}
    for name, seconds in timings.items():
        record_property(f"{store.dialect}_{name}_seconds", round(seconds, 2))
    print(
        f"\n{store.dialect}: {USERS} users in {GROUPS} teams: "
        + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in timings.items())
    )
