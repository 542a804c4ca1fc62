"""Applying a plan, on SQLite, PostgreSQL and in memory: every op, one transaction, isolated failures,
audit.  The tests that reach beneath the store (statement hooks, a full disk) run on the SQL stores."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from syncd.apply import PARKED_DOMAIN, RunOutcome, apply_plan
from syncd.cancel import Cancelled
from syncd.changes import (
    AddMember,
    AdoptUser,
    CreateTeam,
    CreateUser,
    DeactivateUser,
    DeleteTeam,
    Plan,
    Problem,
    ReactivateUser,
    RemoveMember,
    RenameTeam,
    ReplaceTeam,
    UpdateUser,
)
from syncd.errors import StoreError
from syncd.model import StoreState
from syncd.store import SqlStore
from tests.builders import stored_team, stored_user
from tests.conftest import table_rows

ANN = "00000000-0000-0000-0001-000000000001"
BOB = "00000000-0000-0000-0001-000000000002"
CY = "00000000-0000-0000-0001-000000000003"
DEE = "00000000-0000-0000-0001-000000000004"
SALES = "00000000-0000-0000-0002-000000000001"
OPS = "00000000-0000-0000-0002-000000000002"


def create(entra_id: str, email: str, name: str = "", title: str | None = None, user_type: str = "member"):
    return CreateUser(entra_id, email, name or email.split("@")[0].title(), user_type, {"title": title})


def run(store, *changes, errors=(), warnings=()):
    run_id = store.begin_run("cli")
    return run_id, apply_plan(
        store, Plan(changes=tuple(changes), errors=tuple(errors), warnings=tuple(warnings)), run_id
    )


def users_by_email(store) -> dict:
    return {row["email"]: row for row in store.reports.users()}


def teams_by_name(store) -> dict:
    return {row["name"]: row for row in store.reports.teams()}


def snapshot_of(store) -> tuple:
    """Everything a plan can change, to prove a rolled-back apply changed nothing."""
    return store.load_state(), store.reports.users(), store.reports.teams()


# --------------------------------------------------------------------------- every op


def test_created_users_and_teams_with_members_land_with_audit(store):
    run_id, result = run(
        store,
        create(ANN, "ann@contoso.com", "Ann A", "Engineer", "admin"),
        create(BOB, "bob@contoso.com"),
        CreateTeam(SALES, "Sales"),
        AddMember(SALES, "Sales", ANN, "ann@contoso.com"),
        AddMember(SALES, "Sales", BOB, "bob@contoso.com"),
    )
    assert result.ok and result.applied == 5
    assert result.counts == {"create_user": 2, "create_team": 1, "add_member": 2}
    ann = users_by_email(store)["ann@contoso.com"]
    assert (ann["name"], ann["title"], ann["user_type"], ann["entra_id"], ann["active"]) == (
        "Ann A",
        "Engineer",
        "admin",
        ANN,
        True,
    )
    assert teams_by_name(store)["Sales"] == {
        "name": "Sales",
        "entra_id": SALES,
        "managed": True,
        "members": ["ann@contoso.com", "bob@contoso.com"],
    }
    memberships = table_rows(store, "team_members")
    assert {(row["source"], row["added_by_run"]) for row in memberships} == {("sync", run_id)}
    audit = store.reports.audit(run_id)
    assert [row["op"] for row in audit] == ["create_user", "create_user", "create_team", "add_member", "add_member"]
    assert {row["status"] for row in audit} == {"applied"}
    assert audit[0]["before"] is None
    assert audit[0]["after"] == {"email": "ann@contoso.com", "name": "Ann A", "title": "Engineer", "user_type": "admin"}
    assert (audit[0]["object_kind"], audit[0]["target"], audit[0]["entra_id"]) == ("user", "ann@contoso.com", ANN)
    assert audit[3]["object_kind"] == "membership"
    assert audit[3]["after"] == {"member": "ann@contoso.com", "user_entra_id": ANN}


def test_a_local_user_is_adopted_and_updated(store, seed):
    seed(store, StoreState(users=(stored_user(7, "ann@contoso.com", name="Ann"),)))
    _, result = run(
        store,
        AdoptUser(7, ANN, "ann@contoso.com"),
        UpdateUser(
            7,
            ANN,
            "ann@contoso.com",
            (("name", "Ann", "Ann Smith"), ("title", None, "Boss"), ("user_type", "member", "admin")),
        ),
    )
    assert result.ok
    assert store.load_state().users == (
        stored_user(7, "ann@contoso.com", name="Ann Smith", title="Boss", user_type="admin", entra_id=ANN),
    )


def test_deactivation_keeps_the_user_and_records_why(store, seed):
    seed(store, StoreState(users=(stored_user(1, "ann@contoso.com", entra_id=ANN),)))
    run_id, result = run(store, DeactivateUser(1, ANN, "ann@contoso.com", "disabled"))
    assert result.ok
    ann = users_by_email(store)["ann@contoso.com"]
    assert (ann["active"], ann["inactive_reason"]) == (False, "disabled")
    assert store.reports.counts() == {"active_users": 0, "inactive_users": 1, "teams": 0}
    assert table_rows(store, "users")[0]["deactivated_at"] is not None
    assert store.reports.audit(run_id)[0]["after"] == {"active": False, "inactive_reason": "disabled"}


def test_reactivation_clears_the_reason(store, seed):
    seed(
        store,
        StoreState(
            users=(stored_user(1, "ann@contoso.com", entra_id=ANN, active=False, inactive_reason="unassigned"),)
        ),
    )
    _, result = run(store, ReactivateUser(1, ANN, "ann@contoso.com"))
    assert result.ok
    assert store.load_state().users == (stored_user(1, "ann@contoso.com", entra_id=ANN),)
    assert table_rows(store, "users")[0]["deactivated_at"] is None


def test_teams_are_renamed_replaced_and_deleted(store, seed):
    seed(
        store,
        StoreState(
            users=(stored_user(1, "ann@contoso.com", entra_id=ANN), stored_user(2, "bob@contoso.com")),
            teams=(
                stored_team(1, "Sales", [1], entra_id=SALES),
                stored_team(2, "Ops", [2]),
                stored_team(3, "Gone", [1, 2], entra_id=DEE),
            ),
        ),
    )
    run_id, result = run(
        store,
        DeleteTeam(3, DEE, "Gone", ("ann@contoso.com", "bob@contoso.com")),
        RenameTeam(1, SALES, "Sales", "Sales EMEA"),
        ReplaceTeam(2, OPS, "Ops"),
        RemoveMember(2, OPS, "Ops", 2, "bob@contoso.com"),
        AddMember(OPS, "Ops", ANN, "ann@contoso.com"),
    )
    assert result.ok
    assert store.load_state().teams == (
        stored_team(1, "Sales EMEA", [1], entra_id=SALES),
        stored_team(2, "Ops", [1], entra_id=OPS),
    )
    assert len(store.load_state().users) == 2
    deleted = store.reports.audit(run_id)[0]
    assert (deleted["op"], deleted["before"], deleted["after"]) == (
        "delete_team",
        {"name": "Gone", "members": ["ann@contoso.com", "bob@contoso.com"]},
        None,
    )


def test_plan_errors_and_warnings_become_audit_rows(store):
    error = Problem("USER_NO_EMAIL", "user", ANN, "Ann", "no usable email")
    warning = Problem("NAME_NORMALISED", "user", BOB, "bob@contoso.com", "name changed")
    conflict = Problem("TEAM_NAME_CONFLICT", "group", SALES, "Sales", "two groups")
    run_id, result = run(store, create(BOB, "bob@contoso.com"), errors=[error, conflict], warnings=[warning])
    assert result.ok and result.applied == 1
    rows = store.reports.audit(run_id)
    assert [(row["status"], row["error_code"], row["object_kind"]) for row in rows] == [
        ("applied", None, "user"),
        ("error", "USER_NO_EMAIL", "user"),
        ("error", "TEAM_NAME_CONFLICT", "team"),
        ("warning", "NAME_NORMALISED", "user"),
    ]
    assert rows[1]["message"] == "no usable email"


def test_names_outside_ascii_survive_the_store_and_the_audit(store):
    run_id, result = run(store, create(ANN, "zoe@contoso.com", "Zoë O'Brien"), CreateTeam(SALES, "Ventes & Marché"))
    assert result.ok
    assert users_by_email(store)["zoe@contoso.com"]["name"] == "Zoë O'Brien"
    assert [row["after"]["name"] for row in store.reports.audit(run_id)] == ["Zoë O'Brien", "Ventes & Marché"]


def test_an_empty_plan_writes_nothing(store):
    run_id, result = run(store)
    assert result.ok and result.applied == 0
    assert store.reports.audit(run_id) == []


# --------------------------------------------------------------------------- emails


def test_two_users_swap_emails(store, seed):
    seed(
        store,
        StoreState(
            users=(stored_user(1, "ann@contoso.com", entra_id=ANN), stored_user(2, "bob@contoso.com", entra_id=BOB))
        ),
    )
    _, result = run(
        store,
        UpdateUser(1, ANN, "ann@contoso.com", (("email", "ann@contoso.com", "bob@contoso.com"),)),
        UpdateUser(2, BOB, "bob@contoso.com", (("email", "bob@contoso.com", "ann@contoso.com"),)),
    )
    assert result.ok
    assert {u.entra_id: u.email for u in store.load_state().users} == {ANN: "bob@contoso.com", BOB: "ann@contoso.com"}


def test_a_chain_of_email_changes_lands(store, seed):
    seed(
        store,
        StoreState(
            users=(stored_user(1, "a@contoso.com", entra_id=ANN), stored_user(2, "b@contoso.com", entra_id=BOB))
        ),
    )
    _, result = run(
        store,
        UpdateUser(1, ANN, "a@contoso.com", (("email", "a@contoso.com", "b@contoso.com"), ("name", "A", "Ay"))),
        UpdateUser(2, BOB, "b@contoso.com", (("email", "b@contoso.com", "c@contoso.com"),)),
    )
    assert result.ok
    assert {u.entra_id: (u.email, u.name) for u in store.load_state().users} == {
        ANN: ("b@contoso.com", "Ay"),
        BOB: ("c@contoso.com", "B"),
    }


def test_an_email_taken_by_someone_outside_the_plan_fails_that_update_and_what_needs_it(store, seed):
    seed(
        store,
        StoreState(
            users=(
                stored_user(1, "a@contoso.com", entra_id=ANN),
                stored_user(2, "b@contoso.com", entra_id=BOB),
                stored_user(3, "taken@contoso.com"),
            )
        ),
    )
    run_id, result = run(
        store,
        # Bob wants Ann's address, Ann wants one a local user holds: Ann fails, so Bob cannot move either
        UpdateUser(1, ANN, "a@contoso.com", (("email", "a@contoso.com", "taken@contoso.com"),)),
        UpdateUser(2, BOB, "b@contoso.com", (("email", "b@contoso.com", "a@contoso.com"), ("title", None, "X"))),
        UpdateUser(1, ANN, "a@contoso.com", (("name", "A", "Ann"),)),
    )
    assert [failure.change.entra_id for failure in result.failed] == [ANN, BOB]
    assert result.applied == 1
    emails = {u.id: (u.email, u.name, u.title) for u in store.load_state().users}
    assert emails == {
        1: ("a@contoso.com", "Ann", None),
        2: ("b@contoso.com", "B", None),
        3: ("taken@contoso.com", "Taken", None),
    }
    assert not any(PARKED_DOMAIN in email for email, _, _ in emails.values())
    statuses = [(row["status"], row["error_code"]) for row in store.reports.audit(run_id)]
    assert statuses == [("failed", "APPLY_FAILED"), ("failed", "APPLY_FAILED"), ("applied", None)]


# --------------------------------------------------------------------------- failure isolation


def test_one_rejected_change_fails_alone_and_its_memberships_with_it(store, seed):
    seed(store, StoreState(users=(stored_user(9, "taken@contoso.com"),)))
    run_id, result = run(
        store,
        create(ANN, "ann@contoso.com"),
        create(BOB, "taken@contoso.com"),
        create(CY, "cy@contoso.com"),
        CreateTeam(SALES, "Sales"),
        AddMember(SALES, "Sales", ANN, "ann@contoso.com"),
        AddMember(SALES, "Sales", BOB, "taken@contoso.com"),
        AddMember(SALES, "Sales", CY, "cy@contoso.com"),
    )
    assert result.applied == 5
    assert [(f.change.op, f.code) for f in result.failed] == [
        ("create_user", "APPLY_FAILED"),
        ("add_member", "APPLY_FAILED"),
    ]
    assert result.failed[1].message == "skipped: provisioning user taken@contoso.com failed"
    assert teams_by_name(store)["Sales"]["members"] == ["ann@contoso.com", "cy@contoso.com"]
    assert users_by_email(store)["taken@contoso.com"]["entra_id"] is None
    failed_rows = [row for row in store.reports.audit(run_id) if row["status"] == "failed"]
    assert [row["op"] for row in failed_rows] == ["create_user", "add_member"]
    assert all(row["error_code"] == "APPLY_FAILED" and row["message"] for row in failed_rows)


def test_a_change_whose_row_is_gone_fails_alone(store, seed):
    seed(
        store,
        StoreState(
            users=(stored_user(1, "ann@contoso.com", entra_id=ANN), stored_user(2, "bob@contoso.com", entra_id=BOB))
        ),
    )
    _, result = run(
        store,
        DeactivateUser(1, ANN, "ann@contoso.com", "unassigned"),
        DeactivateUser(404, DEE, "dee@contoso.com", "unassigned"),
        RenameTeam(404, SALES, "Sales", "Sales 2"),
    )
    assert [f.change.op for f in result.failed] == ["deactivate_user", "rename_team"]
    assert "no longer in the store" in result.failed[0].message
    assert users_by_email(store)["ann@contoso.com"]["active"] is False


def test_a_failed_adoption_fails_the_changes_to_that_user(store, seed):
    seed(
        store, StoreState(users=(stored_user(1, "ann@contoso.com", entra_id=ANN), stored_user(2, "local@contoso.com")))
    )
    _, result = run(
        store,
        AdoptUser(2, ANN, "local@contoso.com"),  # ANN already belongs to user 1
        UpdateUser(2, ANN, "local@contoso.com", (("name", "Local", "Ann"),)),
    )
    assert [f.change.op for f in result.failed] == ["adopt_user", "update_user"]
    assert "adopting" in result.failed[1].message
    assert users_by_email(store)["local@contoso.com"]["name"] == "Local"


# --------------------------------------------------------------------------- one transaction


def _big_plan() -> Plan:
    return Plan(
        changes=(
            create(ANN, "ann@contoso.com"),
            create(BOB, "bob@contoso.com"),
            DeactivateUser(1, CY, "cy@contoso.com", "unassigned"),
            CreateTeam(SALES, "Sales"),
            RenameTeam(1, OPS, "Ops", "Operations"),
            AddMember(SALES, "Sales", ANN, "ann@contoso.com"),
        )
    )


def _seed_small(store, seed) -> None:
    seed(
        store,
        StoreState(
            users=(stored_user(1, "cy@contoso.com", entra_id=CY),), teams=(stored_team(1, "Ops", [1], entra_id=OPS),)
        ),
    )


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError])
def test_an_interruption_mid_apply_leaves_the_store_as_it_was(sql_store, seed, interruption):
    store = sql_store
    _seed_small(store, seed)
    before = snapshot_of(store)
    run_id = store.begin_run("cli")

    def interrupt(_connection, _cursor, statement, *_args):
        if statement.startswith("SELECT users.entra_id"):  # after the users and teams, before the members
            raise interruption("stop")

    event.listen(store.engine, "before_cursor_execute", interrupt)
    try:
        with pytest.raises(interruption):
            apply_plan(store, _big_plan(), run_id)
    finally:
        event.remove(store.engine, "before_cursor_execute", interrupt)
    assert snapshot_of(store) == before
    assert store.reports.audit(run_id) == []


def test_a_database_failure_mid_apply_rolls_everything_back(sql_store, seed):
    store = sql_store
    _seed_small(store, seed)
    before = snapshot_of(store)
    run_id = store.begin_run("cli")

    def break_the_database(_connection, cursor, statement, *_args):
        if statement.startswith("SELECT users.entra_id"):
            cursor.execute("SELECT * FROM no_such_table")

    event.listen(store.engine, "before_cursor_execute", break_the_database)
    try:
        with pytest.raises(StoreError) as raised:
            apply_plan(store, _big_plan(), run_id)
    finally:
        event.remove(store.engine, "before_cursor_execute", break_the_database)
    assert raised.value.code in ("STORE_SCHEMA", "STORE_FAILED")
    assert snapshot_of(store) == before
    assert store.reports.audit(run_id) == []


# --------------------------------------------------------------------------- the run's record commits with its data


def _outcome(status: str = "success"):
    return lambda applied: RunOutcome(status, len(applied.failed), f"{applied.applied} changes")


def test_the_outcome_of_a_run_is_written_in_the_apply_transaction(sql_store):
    store = sql_store
    run_id = store.begin_run("cli")
    seen: list[str] = []

    def peek(connection, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("UPDATE SYNC_RUNS"):
            seen.append("outcome")
        elif statement.lstrip().upper().startswith(("INSERT INTO AUDIT", "COPY")) and not seen:
            seen.append("data")

    event.listen(store.engine, "before_cursor_execute", peek)
    try:
        result = apply_plan(store, _big_plan_for_empty(), run_id, finish=_outcome())
    finally:
        event.remove(store.engine, "before_cursor_execute", peek)
    assert seen[-1] == "outcome"
    run = store.reports.run(run_id)
    assert run is not None
    assert (run["status"], run["changes"], run["message"]) == ("success", result.applied, "4 changes")
    assert run["summary"] == {"create_user": 2, "create_team": 1, "add_member": 1}


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError, Cancelled])
def test_a_run_whose_apply_is_interrupted_keeps_no_data_and_no_outcome(sql_store, seed, interruption):
    """Whatever ends the apply before its commit leaves the run ``running`` and the store as it was:
    the next run relabels it failed with no changes, which is then true."""
    store = sql_store
    _seed_small(store, seed)
    before = snapshot_of(store)
    run_id = store.begin_run("cli")

    def interrupt(_connection, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("UPDATE SYNC_RUNS"):  # the very last statement before the commit
            raise interruption()

    event.listen(store.engine, "before_cursor_execute", interrupt)
    try:
        with pytest.raises(interruption):
            apply_plan(store, _big_plan(), run_id, finish=_outcome())
    finally:
        event.remove(store.engine, "before_cursor_execute", interrupt)
    assert snapshot_of(store) == before
    assert store.reports.run(run_id)["status"] == "running"
    with store.lock():
        store.begin_run("cli")
    relabelled = store.reports.run(run_id)
    assert (relabelled["status"], relabelled["changes"]) == ("failed", 0)
    assert "nothing of it was applied" in relabelled["message"]


def test_a_stop_request_is_honoured_between_groups_of_changes_and_rolls_back(sql_store, seed):
    store = sql_store
    _seed_small(store, seed)
    before = snapshot_of(store)
    run_id = store.begin_run("cli")
    cancel = threading.Event()

    def stop_after_the_first_group(_connection, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("RELEASE SAVEPOINT"):
            cancel.set()

    event.listen(store.engine, "before_cursor_execute", stop_after_the_first_group)
    try:
        with pytest.raises(Cancelled):
            apply_plan(store, _big_plan(), run_id, finish=_outcome(), cancel=cancel)
    finally:
        event.remove(store.engine, "before_cursor_execute", stop_after_the_first_group)
    assert snapshot_of(store) == before
    assert store.reports.audit(run_id) == []
    assert store.reports.run(run_id)["status"] == "running"


def test_a_stop_request_after_the_outcome_is_written_changes_nothing(store):
    run_id = store.begin_run("cli")
    cancel = threading.Event()

    def finish(applied):
        outcome = _outcome()(applied)
        cancel.set()  # too late: the outcome is being written, the commit follows
        return outcome

    result = apply_plan(store, _big_plan_for_empty(), run_id, finish=finish, cancel=cancel)
    assert result.applied == 4 and store.reports.run(run_id)["status"] == "success"
    assert len(store.reports.users()) == 2


def test_an_outcome_for_a_run_that_is_no_longer_running_is_refused_and_nothing_lands(store):
    run_id = store.begin_run("cli")
    store.finish_run(run_id, "failed", changes=0, errors=1, summary={}, message="given up")
    with pytest.raises(StoreError, match="no longer running"):
        apply_plan(store, _big_plan_for_empty(), run_id, finish=_outcome())
    assert store.reports.users() == [] and store.reports.audit(run_id) == []
    assert store.reports.run(run_id)["message"] == "given up"


def _big_plan_for_empty() -> Plan:
    return Plan(
        changes=(
            create(ANN, "ann@contoso.com"),
            create(BOB, "bob@contoso.com"),
            CreateTeam(SALES, "Sales"),
            AddMember(SALES, "Sales", ANN, "ann@contoso.com"),
        )
    )


# --------------------------------------------------------------------------- a database that cannot grow


def test_a_database_that_cannot_grow_fails_the_apply_with_the_reason_and_keeps_nothing(sqlite_url, seed):
    """SQLite rolls the whole transaction back when the database or disk is full, so the savepoint
    around the failing statement is gone; the reason must still be the full database."""
    store = SqlStore.open(sqlite_url)
    try:
        store.ensure_schema()
        _seed_small(store, seed)
        before = snapshot_of(store)
        run_id = store.begin_run("cli")
        with store.engine.connect() as connection:
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar()

        @event.listens_for(store.engine, "connect")
        def cannot_grow(dbapi_connection, _record):
            dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

        store.engine.dispose()
        many = tuple(
            create(f"00000000-0000-0000-0009-{n:012d}", f"user{n}@contoso.com", "x" * 200) for n in range(2000)
        )
        with pytest.raises(StoreError) as raised:
            apply_plan(store, Plan(changes=many), run_id, finish=_outcome())
        assert raised.value.code == "STORE_FAILED"
        assert "database or disk is full" in str(raised.value)
        assert snapshot_of(store) == before
        assert store.reports.run(run_id)["status"] == "running"
    finally:
        store.close()


# --------------------------------------------------------------------------- one transaction, on every store


class _Interrupting:
    """A store whose writer raises ``error`` the moment ``step`` is called: an interruption at any
    point of an apply, on any backend."""

    def __init__(self, store, step: str, error: type[BaseException]) -> None:
        self._store, self._step, self._error = store, step, error

    def __getattr__(self, name):
        return getattr(self._store, name)

    @contextmanager
    def write(self):
        with self._store.write() as writer:
            yield _InterruptingWriter(writer, self._step, self._error)


class _InterruptingWriter:
    def __init__(self, writer, step: str, error: type[BaseException]) -> None:
        self._writer, self._step, self._error = writer, step, error

    def __getattr__(self, name):
        method = getattr(self._writer, name)
        if name != self._step:
            return method

        def interrupted(*args, **kwargs):
            method(*args, **kwargs)  # the step's statements run; the commit never comes
            raise self._error()

        return interrupted


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError, Cancelled])
@pytest.mark.parametrize(
    "step",
    ["create_users", "deactivate_users", "create_teams", "rename_teams", "add_members", "write_audit", "finish_run"],
)
def test_an_apply_interrupted_at_any_step_leaves_every_store_as_it_was(store, seed, step, interruption):
    _seed_small(store, seed)
    before = snapshot_of(store)
    run_id = store.begin_run("cli")
    with pytest.raises(interruption):
        apply_plan(_Interrupting(store, step, interruption), _big_plan(), run_id, finish=_outcome())
    assert snapshot_of(store) == before
    assert store.reports.audit(run_id) == []
    assert store.reports.run(run_id)["status"] == "running"
