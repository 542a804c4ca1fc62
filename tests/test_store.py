"""The store contract, on SQLite, PostgreSQL and in memory: state, writes, local objects, runs, audit,
named values.  Every store keeps it alike (the ``store`` fixture gives each backend in turn)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from syncd.changes import CreateUser
from syncd.errors import InputError, StoreError
from syncd.model import StoreState
from syncd.store import AuditRow
from tests.builders import stored_team, stored_user
from tests.conftest import table_rows

ANN = "00000000-0000-0000-0001-000000000001"
BOB = "00000000-0000-0000-0001-000000000002"
SALES = "00000000-0000-0000-0002-000000000001"


def _create(entra_id: str, email: str) -> CreateUser:
    return CreateUser(entra_id, email, email.split("@")[0].title(), "member", {"title": None})


def _state() -> StoreState:
    return StoreState(
        users=(
            stored_user(1, "ann@contoso.com", entra_id=ANN, title="Engineer", user_type="admin"),
            stored_user(2, "bob@contoso.com", entra_id=BOB, active=False, inactive_reason="unassigned"),
            stored_user(3, "cy@contoso.com", user_type="12345", name="Cy Zoë"),
        ),
        teams=(stored_team(1, "Sales", [1, 3], entra_id=SALES), stored_team(2, "Club", [3]), stored_team(3, "Empty")),
    )


class TestStoreContract:
    """What every store keeps, whatever database holds it."""

    def test_load_state_returns_what_was_stored(self, store, seed):
        seed(store, _state())
        assert store.load_state() == _state()

    def test_some_users_are_read_by_entra_id_email_or_local_id(self, store, seed, monkeypatch):
        monkeypatch.setattr("syncd.store.sql.LOOKUP_CHUNK", 1)  # one lookup per value: the chunks join up
        seed(store, _state())
        ann, bob, cy = _state().users
        assert store.load_users(entra_ids=[BOB, "unknown"]) == [bob]
        assert store.load_users(emails=["cy@contoso.com", "nobody@contoso.com"], ids=[1]) == [ann, cy]
        assert store.load_users(entra_ids=[ANN], emails=["ann@contoso.com"], ids=[1, 2]) == [ann, bob]
        assert store.load_users() == []
        assert store.load_state(users=False) == StoreState(teams=_state().teams)

    def test_admins_and_managed_seats(self, store, seed):
        seed(store, _state())
        ann = _state().users[0]
        assert store.active_admins(5) == [ann]
        assert store.active_admins(0) == []
        assert store.managed_seats() == 1, "ann: bob is inactive, cy is not managed"

    @pytest.mark.parametrize("limit", [5000, 1])
    def test_a_writer_resolves_entra_ids_to_local_ids(self, store, seed, monkeypatch, limit):
        monkeypatch.setattr("syncd.store.sql_writer.LOOKUP_BY_ID_LIMIT", limit)  # by lookups, or by a scan
        seed(store, _state())
        with store.write() as writer:
            assert writer.user_ids() == {ANN: 1, BOB: 2}
            assert writer.user_ids({BOB, "unknown"}) == {BOB: 2}
            assert writer.user_ids(set()) == {}

    def test_an_empty_store_has_an_empty_state(self, store):
        assert store.load_state() == StoreState()

    def test_users_and_teams_are_listed_sorted(self, store, seed):
        seed(store, _state())
        listed = store.reports.users()
        assert [row["email"] for row in listed] == ["ann@contoso.com", "bob@contoso.com", "cy@contoso.com"]
        assert listed[0] == {
            "email": "ann@contoso.com",
            "name": "Ann",
            "title": "Engineer",
            "active": True,
            "user_type": "admin",
            "entra_id": ANN,
            "managed": True,
            "inactive_reason": None,
        }
        assert listed[1]["inactive_reason"] == "unassigned"
        assert listed[2]["managed"] is False
        assert store.reports.teams() == [
            {"name": "Club", "entra_id": None, "managed": False, "members": ["cy@contoso.com"]},
            {"name": "Empty", "entra_id": None, "managed": False, "members": []},
            {"name": "Sales", "entra_id": SALES, "managed": True, "members": ["ann@contoso.com", "cy@contoso.com"]},
        ]

    def test_counts_are_seats_inactive_users_and_teams(self, store, seed):
        assert store.reports.counts() == {"active_users": 0, "inactive_users": 0, "teams": 0}
        seed(store, _state())
        assert store.reports.counts() == {"active_users": 2, "inactive_users": 1, "teams": 3}

    def test_a_local_user_is_created_lowercased_and_unmanaged(self, store):
        row = store.local.create_user(" Dee@Contoso.COM ", "Dee  Dee", "viewer")
        assert row == {
            "email": "dee@contoso.com",
            "name": "Dee Dee",
            "title": None,
            "active": True,
            "user_type": "viewer",
            "entra_id": None,
            "managed": False,
            "inactive_reason": None,
        }
        assert store.reports.users() == [row]

    def test_a_local_user_with_a_taken_email_is_refused(self, store):
        store.local.create_user("dee@contoso.com", "Dee")
        with pytest.raises(InputError, match=re.escape("dee@contoso.com already exists")):
            store.local.create_user("DEE@contoso.com", "Another Dee")
        assert len(store.reports.users()) == 1

    @pytest.mark.parametrize(
        ("email", "name", "user_type"),
        [
            ("not-an-email", "X", "member"),
            ("x@contoso.com", "   ", "member"),
            ("x@contoso.com", "X", "owner"),
        ],
    )
    def test_invalid_local_users_are_refused(self, store, email, name, user_type):
        with pytest.raises(InputError):
            store.local.create_user(email, name, user_type)
        assert store.reports.users() == []

    def test_a_local_team_is_created_with_its_members(self, store, seed):
        seed(store, _state())
        row = store.local.create_team("Book Club", ["CY@contoso.com", "ann@contoso.com"])
        assert row == {
            "name": "Book Club",
            "entra_id": None,
            "managed": False,
            "members": ["ann@contoso.com", "cy@contoso.com"],
        }
        assert row in store.reports.teams()
        assert {row["source"] for row in table_rows(store, "team_members")} == {"local"}

    def test_a_local_team_with_an_unknown_member_names_it_and_writes_nothing(self, store, seed):
        seed(store, _state())
        with pytest.raises(InputError, match=re.escape("nobody@contoso.com")) as raised:
            store.local.create_team("Book Club", ["ann@contoso.com", "nobody@contoso.com"])
        assert raised.value.code == "NOT_FOUND"
        assert "Book Club" not in [team["name"] for team in store.reports.teams()]

    def test_a_local_team_refuses_inactive_members_and_taken_names(self, store, seed):
        seed(store, _state())
        with pytest.raises(InputError, match=re.escape("bob@contoso.com")):
            store.local.create_team("Book Club", ["bob@contoso.com"])
        with pytest.raises(InputError, match="already exists"):
            store.local.create_team("Sales", [])
        assert store.reports.counts()["teams"] == 3

    def test_a_run_is_recorded_from_start_to_finish(self, store):
        assert store.reports.last_run() is None
        run_id = store.begin_run("cli")
        running = store.reports.last_run()
        assert running is not None
        assert (running["id"], running["status"], running["trigger"], running["finished_at"]) == (
            run_id,
            "running",
            "cli",
            None,
        )
        store.finish_run(run_id, "partial", changes=7, errors=2, summary={"create_user": 7}, message="2 errors")
        finished = store.reports.last_run()
        assert finished is not None
        assert finished["status"] == "partial"
        assert (finished["changes"], finished["errors"], finished["summary"], finished["message"]) == (
            7,
            2,
            {"create_user": 7},
            "2 errors",
        )
        started = datetime.fromisoformat(finished["started_at"])
        assert started.utcoffset() is not None and started.utcoffset().total_seconds() == 0
        assert datetime.fromisoformat(finished["finished_at"]) >= started

    def test_runs_are_listed_newest_first(self, store):
        ids = [store.begin_run(trigger) for trigger in ("cli", "daemon", "on-demand")]
        assert [run["id"] for run in store.reports.runs()] == ids[::-1]
        assert [run["trigger"] for run in store.reports.runs(limit=2)] == ["on-demand", "daemon"]

    def test_a_dry_run_is_recorded_as_such(self, store):
        run_id = store.begin_run("cli", dry_run=True)
        assert store.reports.last_run()["status"] == "dry_run"
        store.finish_run(run_id, "dry_run", changes=3, errors=0, summary={})

    def test_an_unknown_run_status_is_a_programming_error(self, store):
        run_id = store.begin_run("cli")
        with pytest.raises(ValueError):
            store.finish_run(run_id, "done", changes=0, errors=0, summary={})

    def test_runs_left_running_by_a_dead_process_are_closed_by_the_next_locked_run(self, store):
        dead = store.begin_run("daemon")
        with store.lock():
            store.begin_run("cli")
        runs = {run["id"]: run for run in store.reports.runs()}
        assert runs[dead]["status"] == "failed"
        assert runs[dead]["changes"] == 0
        assert "interrupted" in runs[dead]["message"] and "nothing of it was applied" in runs[dead]["message"]

    def test_failing_a_run_never_relabels_one_that_recorded_its_outcome(self, store):
        finished = store.begin_run("cli")
        store.finish_run(finished, "success", changes=12, errors=0, summary={"create_user": 12}, message="done")
        assert store.fail_run(finished, "interrupted; nothing of this run was applied") is False
        assert (store.reports.run(finished)["status"], store.reports.run(finished)["changes"]) == ("success", 12)

        running = store.begin_run("cli")
        assert store.fail_run(running, "STORE_FAILED: database error: database or disk is full") is True
        failed = store.reports.run(running)
        assert (failed["status"], failed["changes"], failed["errors"]) == ("failed", 0, 1)
        assert failed["message"] == "STORE_FAILED: database error: database or disk is full"

    def test_an_outcome_written_in_a_transaction_that_rolls_back_is_not_kept(self, store):
        run_id = store.begin_run("cli")
        with pytest.raises(RuntimeError), store.write() as writer:
            writer.finish_run(run_id, "success", changes=3, errors=0, summary={}, message="")
            raise RuntimeError("killed before the commit")
        assert store.reports.run(run_id)["status"] == "running"

    def test_audit_defaults_to_the_last_run_that_was_not_a_dry_run(self, store):
        first = store.begin_run("cli")
        second = store.begin_run("cli")
        store.begin_run("cli", dry_run=True)
        with store.write() as writer:
            for run_id, target in ((first, "a"), (second, "b"), (second, "c")):
                writer.write_audit(
                    run_id,
                    [AuditRow("create_user", "user", target, None, None, '{"email": "x"}', "applied", None, None)],
                )
        assert [row["target"] for row in store.reports.audit()] == ["b", "c"]
        assert [row["target"] for row in store.reports.audit(first)] == ["a"]
        row = store.reports.audit(first)[0]
        assert row["after"] == {"email": "x"}
        assert row["before"] is None
        assert datetime.fromisoformat(row["at"]).utcoffset().total_seconds() == 0
        assert len(store.reports.audit(second, limit=1)) == 1

    def test_problems_are_the_codes_of_recent_runs_newest_first(self, store):
        def problem(code: str, status: str, target: str) -> AuditRow:
            return AuditRow("problem", "user", target, None, None, None, status, code, "why")

        old, partial, failed, refused = (store.begin_run("daemon") for _ in range(4))
        store.begin_run("cli", dry_run=True)
        with store.write() as writer:
            writer.write_audit(old, [problem("USER_INVALID", "error", "a")])
            writer.write_audit(
                partial,
                [
                    problem("USER_NO_EMAIL", "error", "b"),
                    problem("USER_NO_EMAIL", "error", "c"),
                    problem("NAME_NORMALISED", "warning", "d"),
                    problem("USER_INVALID", "error", "e"),
                ],
            )
        store.finish_run(partial, "partial", changes=1, errors=3, summary={}, message="Plan: ... (3 errors).")
        store.fail_run(failed, "GRAPH_THROTTLED: Graph throttled every retry")
        store.finish_run(
            refused,
            "refused",
            changes=0,
            errors=0,
            summary={},
            message="SAFETY_DEACTIVATIONS: 9 would be deactivated; SAFETY_TEAM_DELETIONS: 3 teams; NOT_A_CODE: x",
        )
        problems = store.reports.problems()
        assert [(p["code"], p["level"], p["runs"], p["objects"], p["last_run"]) for p in problems] == [
            ("SAFETY_DEACTIVATIONS", "error", 1, 1, refused),
            ("SAFETY_TEAM_DELETIONS", "error", 1, 1, refused),
            ("GRAPH_THROTTLED", "error", 1, 1, failed),
            ("USER_INVALID", "error", 2, 1, partial),
            ("USER_NO_EMAIL", "error", 1, 2, partial),
            ("NAME_NORMALISED", "warning", 1, 1, partial),
        ]
        assert all(datetime.fromisoformat(p["last_at"]).utcoffset().total_seconds() == 0 for p in problems)
        assert [p["code"] for p in store.reports.problems(runs=2)] == [
            "SAFETY_DEACTIVATIONS",
            "SAFETY_TEAM_DELETIONS",
            "GRAPH_THROTTLED",
        ]
        assert store.reports.problems(runs=1)[0]["code"] == "SAFETY_DEACTIVATIONS"

    def test_audit_of_a_store_without_runs_is_empty(self, store):
        assert store.reports.audit() == []

    def test_named_values_and_pause(self, store):
        assert store.get_state("cursor") is None
        store.set_state("cursor", "one")
        store.set_state("cursor", "two")
        assert store.get_state("cursor") == "two"
        assert store.is_paused() is False
        store.set_paused(True)
        assert store.is_paused() is True
        store.set_paused(False)
        assert store.is_paused() is False

    def test_a_named_value_is_written_and_removed_in_a_transaction(self, store):
        with store.write() as writer:
            writer.set_value("settled", "one")
        assert store.get_state("settled") == "one"
        with pytest.raises(RuntimeError), store.write() as writer:
            writer.set_value("settled", None)
            raise RuntimeError("killed before the commit")
        assert store.get_state("settled") == "one"
        with store.write() as writer:
            writer.set_value("settled", None)
            writer.set_value("never", None)
        assert store.get_state("settled") is None and store.get_state("never") is None

    def test_a_failed_write_leaves_nothing_behind_and_is_a_store_error(self, store):
        with pytest.raises(StoreError) as raised, store.write() as writer:
            writer.create_users([_create(ANN, "a@x.com"), _create(BOB, "a@x.com")])
        assert raised.value.code == "STORE_FAILED"
        assert "INSERT" not in raised.value.message
        assert store.reports.users() == []


# --------------------------------------------------------------------------- the mirror


def _mirror_feed(*, replace: bool, incremental: bool, **parts):
    from syncd.mirror import Cursor, MirrorFeed

    cursor = Cursor(
        "https://graph/users-link",
        "https://graph/groups-link",
        parts.pop("assignments_link", "a-link"),
        "id,displayName",
        datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
    )
    return MirrorFeed(cursor, replace=replace, incremental=incremental, **parts)


class TestMirrorContract:
    """What every store keeps of the mirror: exactly what :func:`syncd.mirror.apply_feed` says."""

    def test_a_store_without_a_mirror_loads_none_and_reads_fully(self, store):
        assert store.load_mirror() is None
        assert store.reports.reads() == {"mode": "full", "last_full_at": None, "last_incremental_at": None}

    def test_a_full_feed_then_changes_load_back_as_apply_feed_says(self, store):
        from syncd.mirror import MirrorAssignment, MirrorGroup, apply_feed
        from syncd.model import SourceUser

        ann = SourceUser(ANN, "ann@contoso.com", None, "Ann", True, {"jobTitle": "Engineer"})
        bob = SourceUser(BOB, "bob@contoso.com", "bob@contoso.com", "Bob", False, {"jobTitle": None})
        sales = MirrorGroup(SALES, "Sales", frozenset({ANN, BOB}))
        direct = MirrorAssignment("a1", ANN, "User", "00000000-0000-0000-0000-000000000000")
        group = MirrorAssignment("a2", SALES, "Group", "11111111-0000-0000-0000-000000000000")
        full = _mirror_feed(
            replace=True, incremental=False, users=(ann, bob), groups=(sales,), assignments=(direct, group)
        )
        with store.write() as writer:
            writer.save_mirror(full)
        expected = apply_feed(None, full)
        assert store.load_mirror() == expected
        reads = store.reports.reads()
        assert (reads["mode"], reads["last_full_at"], reads["last_incremental_at"]) == (
            "incremental",
            "2026-12-01T08:00:00+00:00",
            None,
        )

        renamed = MirrorGroup(SALES, "Sales EMEA", frozenset({ANN}))
        changes = _mirror_feed(
            replace=False,
            incremental=True,
            assignments_link=None,
            users=(SourceUser(ANN, "ann@contoso.com", None, "Ann B", True, {"jobTitle": None}),),
            dropped_users=(BOB,),
            hidden=frozenset({BOB}),
            groups=(renamed,),
            dropped_assignments=("a1",),
        )
        with store.write() as writer:
            writer.save_mirror(changes)
        assert store.load_mirror() == apply_feed(expected, changes)
        assert store.load_mirror().hidden == {BOB}
        outline = store.load_mirror(users=False)
        assert outline == replace(apply_feed(expected, changes), users={}), "everything but the users' properties"
        # the users a run needs, read by id: the hidden and the unknown are not among them
        assert store.mirror_users([ANN, BOB, "nobody"]) == {ANN: apply_feed(expected, changes).users[ANN]}
        assert store.mirror_users([]) == {}
        reads = store.reports.reads()
        assert reads["mode"] == "incremental (assignments listed)" and reads["last_incremental_at"] is not None

    def test_a_mirror_written_in_a_transaction_that_rolls_back_is_not_kept(self, store):
        with pytest.raises(RuntimeError), store.write() as writer:
            writer.save_mirror(_mirror_feed(replace=True, incremental=False))
            raise RuntimeError("killed before the commit")
        assert store.load_mirror() is None
